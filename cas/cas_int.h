/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cas_int.h - internals shared by the files of cas/.  Not a public header:
 * nothing outside cas/ includes it.
 *
 * Who touches what (one writer thread W, many reader threads R):
 *   c->mu       protects the pending table and the active segment's tail
 *               buffer: W takes it to change either; R takes it to look up a
 *               pending name or copy from the tail.  W reads both unlocked.
 *   c->seg_lock rwlock over the segment fd table: R holds it shared from the
 *               index lookup through the pread, so compaction (W, exclusive)
 *               cannot remove a file a reader is about to read.
 *   LMDB        W owns the only write transaction and one long-lived read
 *               transaction (renewed after each commit); R open their own
 *               short read transactions (MDB_NOTLS).
 */
#ifndef CAVM_CAS_INT_H
#define CAVM_CAS_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cas/cas.h"
#include "common/endian.h"

/* ---- hash.c ---- */
uint32_t cas_crc32c(uint32_t crc, const void *buf, size_t len);
bool cas_is_zero(const void *buf, size_t len);

/* ---- record.c: segment and record formats (docs/cas-format.md) ---- */
#define SEG_HDR_SIZE 64u
#define SEG_MAGIC "CAVMSEG1"
#define SEG_VERSION 1u
#define SEG_ID_OFF 20u /* the store id (zero in format 1 segments) */
#define REC_HDR_SIZE 48u
#define REC_MAGIC 0x52534143u /* "CASR" */
#define REC_VERSION 1u
#define REC_ALIGN 16u
#define REC_F_ZSTD 1u
#define REC_F_NODE 2u
#define REC_MAX_SIZE (REC_HDR_SIZE + CAS_CHUNK_SIZE)

static inline uint32_t rec_padded(uint32_t stored_len)
{
	return (REC_HDR_SIZE + stored_len + REC_ALIGN - 1) & ~(REC_ALIGN - 1);
}

/* A chunk's location, packed into 56 bits (7 bytes) for the index:
 *   bits  0-11 stored_len - 1   bit 12 zstd   bit 13 node
 *   bits 14-35 offset / 16 (so segments are at most 64 MiB)
 *   bits 36-55 segment id (ids are reused once free: see seg_next_id) */
struct cas_loc {
	uint32_t seg;
	uint32_t off;
	uint16_t len; /* stored (payload) length, 1..4096 */
	uint8_t flags;
};
#define CAS_SEG_MAX_BYTES (64ull << 20)
#define CAS_SEG_MAX_ID ((1u << 20) - 1)
uint64_t loc_pack(const struct cas_loc *l);
void loc_unpack(uint64_t v, struct cas_loc *l);

void seg_hdr_encode(uint8_t *hdr, uint32_t seg_id, const uint8_t *store_id);
int seg_hdr_check(const uint8_t *hdr, uint32_t seg_id);

/* Build a record for 'data' into rec (REC_MAX_SIZE bytes, zero-padded to
 * its padded size).  level 0 = never compress.  Returns the padded size;
 * *loc gets len and flags. */
uint32_t rec_build(uint8_t *rec, const cas_name *name, const void *data,
		   int level, unsigned rec_flags, struct cas_loc *loc);
/* Check a record's header against its expected name and length, its CRC,
 * and decode its payload into out (4096 bytes).  -EIO on any damage. */
int rec_decode(const uint8_t *rec, size_t avail, const cas_name *expect,
	       uint8_t *out);
/* For scans: does a plausible, CRC-valid record start here?  Returns its
 * padded size (and name, flags, stored length) or 0. */
uint32_t rec_probe(const uint8_t *rec, size_t avail, cas_name *name,
		   unsigned *flags, uint32_t *stored_len);

/* ---- pending.c: in-memory changes since the last sync ---- */
struct pend {
	cas_name name;
	uint64_t loc;    /* packed location */
	uint32_t base;   /* committed count (0 when new) */
	int32_t delta;   /* change since the last commit */
	uint8_t used;
	uint8_t in_index;
};
struct pend_table {
	struct pend *slots;
	size_t cap; /* power of two */
	size_t count;
	size_t dirty; /* entries changed since the last commit (a bound) */
};
#define PEND_CACHE_MAX 262144 /* clean entries kept after a commit */
int pend_init(struct pend_table *t);
void pend_free(struct pend_table *t);
struct pend *pend_find(const struct pend_table *t, const cas_name *n);
/* Insert a new entry (the name must be absent); NULL on ENOMEM. */
struct pend *pend_insert(struct pend_table *t, const cas_name *n);
void pend_clear(struct pend_table *t);
/* After a commit: every entry becomes clean (or goes, if never indexed);
 * past max_keep entries the table is emptied instead. */
int pend_settle(struct pend_table *t, size_t max_keep);

/* ---- index.c: the LMDB index ---- */
#define CHUNK_VAL_SIZE 42u /* name[1..32) + loc (7 bytes) + refs u32 */
struct cas_index {
	MDB_env *env;
	MDB_dbi chunks; /* DUPSORT|DUPFIXED: key name[0], value CHUNK_VAL */
	MDB_dbi segs;   /* u32 BE seg id -> total u64, live u64 */
	MDB_dbi meta;   /* "version", "recount" */
};
int idx_open(struct cas_index *ix, const char *dir, bool create);
void idx_close(struct cas_index *ix);
int idx_err(int mdb_rc); /* MDB error -> cas error */
int idx_lookup(MDB_txn *txn, MDB_dbi dbi, const cas_name *n, uint64_t *loc,
	       uint32_t *refs);
int idx_lookup_cur(MDB_cursor *cur, const cas_name *n, uint64_t *loc,
		   uint32_t *refs);
int idx_set_chunk_cur(MDB_cursor *cur, const cas_name *n, uint64_t loc,
		      uint32_t refs, bool del);
int idx_update_sorted(MDB_cursor *cur, const cas_name *n, uint64_t loc,
		      uint32_t refs, bool *positioned, uint8_t *key0);
int idx_put_chunk(MDB_txn *txn, MDB_dbi dbi, const cas_name *n, uint64_t loc,
		  uint32_t refs);
void idx_encode_val(uint8_t *v, const cas_name *n, uint64_t loc,
		    uint32_t refs);
void idx_decode_val(uint8_t key0, const uint8_t *v, cas_name *n,
		    uint64_t *loc, uint32_t *refs);
/* Update (refs > 0 or keep) or delete an existing entry. */
int idx_set_chunk(MDB_txn *txn, MDB_dbi dbi, const cas_name *n, uint64_t loc,
		  uint32_t refs, bool del);
int idx_seg_get(MDB_txn *txn, MDB_dbi dbi, uint32_t id, uint64_t *total,
		uint64_t *live);
int idx_seg_put(MDB_txn *txn, MDB_dbi dbi, uint32_t id, uint64_t total,
		uint64_t live);
int idx_seg_del(MDB_txn *txn, MDB_dbi dbi, uint32_t id);
int idx_check_pages(struct cas_index *ix, uint64_t *bad);
/* Make an LMDB assertion (a damaged page) print what to do first. */
void idx_set_assert(MDB_env *env);
int idx_meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *k, uint64_t *v);
int idx_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *k, uint64_t v);

/* ---- segment.c: segment files ---- */
struct seg_set {
	int dirfd;          /* the segments/ directory */
	int *fds;           /* fd per segment id, -1 when none */
	uint32_t nfds;      /* size of fds[] */
	/* active segment (appends) */
	uint32_t active;    /* 0 when none yet */
	uint64_t flushed;   /* bytes of the active file on disk */
	uint8_t *tail;      /* buffered appends not yet written */
	size_t tail_len, tail_cap;
	/* segments written since the last sync (to fdatasync) */
	uint32_t *dirty;
	size_t ndirty, dirty_cap;
	bool dir_dirty;     /* a segment file was created: fsync the dir */
	uint32_t next_id;
	bool ids_wrapped;   /* next_id passed CAS_SEG_MAX_ID: look for gaps */
};
int seg_open_dir(struct seg_set *s, const char *dir);
void seg_close_all(struct seg_set *s);
/* Open (or create, with create=true) file 'id' into the fd table. */
int seg_file_open(struct seg_set *s, uint32_t id, bool create);
int seg_mark_dirty(struct seg_set *s, uint32_t id);

/* ---- io.c ---- */
/* The first engine from 'want' down that works on this thread. */
int cas_io_probe(int want);
int cas_io_read(int engine, int fd, void *buf, size_t len, uint64_t off);
int cas_io_write(int engine, int fd, const void *buf, size_t len,
		 uint64_t off);
/* fdatasync(fd) that runs while the caller does something else (with
 * io_uring): 1 if started (then cas_io_fsync_end waits for it, on the
 * same thread, with no other I/O of that thread in between), else the
 * result of a plain fdatasync done at once. */
int cas_io_fsync_begin(int engine, int fd);
int cas_io_fsync_end(int engine);

/* ---- kv.c ---- */
struct kv_op {
	struct kv_op *next;
	MDB_dbi dbi;
	bool del;
	size_t klen, vlen;
	uint8_t data[]; /* key, then value */
};
void kv_ops_free(struct kv_op **head);
/* The handle of side table 'table' (opened, or created, on first use;
 * renews the writer's read transaction when it opens one). */
int kv_dbi_get(cas *c, const char *table, MDB_dbi *out);
/* The table name (without "kv.") of an open handle, or NULL. */
const char *kv_dbi_name(const cas *c, MDB_dbi dbi);

/* ---- journal.c: catalogue records (docs/cas-format.md) ---- */
#define JR_MAGIC 0x4A534143u /* "CASJ" */
#define JR_VERSION 1u
#define JR_KIND_COMMIT 1u
#define JR_KIND_CHECKPOINT 2u
#define JR_HDR_SIZE 48u
#define JR_BODY_HDR 16u
#define JR_REGION_SIZE 12u
#define JR_ENT_HDR 8u
#define JR_ENT_TOMB 1u
#define JR_ID_SIZE 16u
#define JR_MAX_REGIONS 1024u
#define JR_PART_MAX (60u << 10) /* body bytes per part, unless one entry
				   is bigger: fits the smallest segment */
#define JR_BODY_MAX (1u << 20)
struct jr_rec {
	unsigned kind;
	uint8_t id[JR_ID_SIZE];
	uint64_t seq, prev;
	uint32_t part, nparts, nentries, nregions;
	const uint8_t *regions; /* nregions * (seg, start, end) u32 LE */
	const uint8_t *entries;
	size_t entries_len;
};
void jr_store_id_new(uint8_t id[JR_ID_SIZE]);
/* Append the commit record of the staged kv writes (once per batch). */
int jr_commit(cas *c);
/* Append a checkpoint of every committed side-table entry (none if
 * there is no entry and skip_if_empty). */
int jr_checkpoint(cas *c, bool skip_if_empty);
/* In the commit transaction: the journal's sequence numbers; 'synced'
 * says the records appended so far are fdatasync'ed before it commits
 * (else the index says only up to c->jsynced). */
int jr_commit_meta(cas *c, MDB_txn *txn, bool synced);
/* meta "journal": the last number used, the last one committed, the
 * last one known durable. */
int jr_meta_put(MDB_txn *txn, MDB_dbi meta, uint64_t seq, uint64_t last,
		uint64_t synced);
int jr_meta_get(MDB_txn *txn, MDB_dbi meta, uint64_t *seq, uint64_t *last,
		uint64_t *synced);
/* After that transaction committed. */
void jr_committed(cas *c, bool synced);
/* Is there a well-formed, CRC-valid catalogue record here?  Its padded
 * size (and *out, pointing into rec) or 0. */
uint32_t jr_probe(const uint8_t *rec, size_t avail, struct jr_rec *out);
void kv_dbis_free(cas *c);
int kv_apply(cas *c, MDB_txn *txn);

/* ---- the store object ---- */
struct cas {
	char *path;
	int lockfd;
	struct cas_options opt;
	int io;               /* the I/O engine in use (CAS_IO_*) */
	struct cas_index ix;
	struct seg_set seg;
	struct pend_table pend;
	MDB_txn *rtxn;        /* writer's long-lived read transaction */
	MDB_cursor *rcur;     /* ... and its cursor on the chunks table */
	pthread_mutex_t mu;   /* pending table + tail buffer */
	pthread_rwlock_t seg_lock;
	struct kv_op *kv_ops; /* staged side-table writes, newest first */
	bool recount;         /* refcounts await a recount (after rebuild) */
	bool recount_clear;   /* clear the recount mark at the next commit */
	struct kv_dbi *kv_dbis; /* side-table handles opened so far */
	size_t nkv_dbis;
	uint8_t store_id[JR_ID_SIZE];
	uint64_t jseq;        /* last journal sequence number used */
	uint64_t jlast;       /* last one committed to the index */
	uint64_t jpend;       /* last one appended since the last commit */
	uint64_t jsynced;     /* last one known fdatasync'ed */
	bool japp;            /* the staged kv writes are journaled */
	bool upgrade;         /* commit format 2 (and the store id) */
	uint8_t rec_buf[REC_MAX_SIZE];
};

/* cas.c helpers used by gc.c */
int cas_flush_tail(cas *c);
int cas_append_record(cas *c, const uint8_t *rec, uint32_t padded,
		      struct cas_loc *loc);
int cas_read_loc(cas *c, const struct cas_loc *loc, uint8_t *rec);
int cas_renew_rtxn(cas *c);
int cas_commit_pending(cas *c, MDB_txn *txn);
struct seg_delta {
	uint32_t seg;
	int64_t live;
};
int cas_commit_segs(cas *c, MDB_txn *txn, struct seg_delta *sd, size_t nsd);

#endif
