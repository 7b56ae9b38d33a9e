/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cas.h - the content-addressed chunk store: cavm's bottom layer.
 *
 * A chunk is CAS_CHUNK_SIZE bytes of content named by the SHA-256 of that
 * content.  Chunks live in append-only segment files (one self-describing
 * record each, optionally zstd-compressed) and are found through an LMDB
 * index that maps name -> (segment, offset, length, flags) plus a reference
 * count.  The all-zero chunk is never stored: its name is CAS_HOLE (all
 * zero bytes), which every call accepts and none counts.
 *
 * Threads: one writer thread calls everything that changes the store
 * (put, ref, unref, sync, gc, ...); any number of other threads may call
 * cas_get(), cas_lookup() and cas_hash() at the same time.
 *
 * Durability: put/ref/unref take effect in memory at once (cas_get sees a
 * chunk as soon as cas_put returns) and reach disk together at cas_sync():
 * segment data is fdatasync'ed first, then every pending index change is
 * committed in one LMDB transaction.  A crash before cas_sync() loses the
 * changes since the previous sync and nothing else.
 *
 * Errors: 0 on success, a negative errno (-EIO: damaged data, -ENOENT: no
 * such chunk, -ENOSPC, ...) or one of the CAS_E* codes below.
 * cas_strerror() turns any of them into words.
 */
#ifndef CAVM_CAS_H
#define CAVM_CAS_H

#include <stddef.h>
#include <stdint.h>

#define CAS_CHUNK_SIZE 4096u
#define CAS_NAME_SIZE 32u

/* Layer-specific error codes (negative, outside the errno range). */
#define CAS_EBADSTORE (-30600)   /* directory is not a chunk store */
#define CAS_EVERSION (-30601)    /* store format version not supported */
#define CAS_ERECOUNT (-30602)    /* refcounts await a recount after rebuild */
#define CAS_EREFCOUNT (-30603)   /* unref below zero */
#define CAS_ELMDB (-30604)       /* unexpected LMDB error (see log) */
#define CAS_EEXIST (-30605)      /* store already exists */
#define CAS_ELOCKED (-30606)     /* store is in use by another process */
#define CAS_EBADINDEX (-30607)   /* the index file is damaged */

typedef struct cas_name {
	uint8_t b[CAS_NAME_SIZE];
} cas_name;

/* The reserved name of the all-zero chunk (all bytes zero). */
extern const cas_name CAS_HOLE;

typedef struct cas cas;

/* I/O engines for segment files (io.c).  The store falls back down this
 * list when one cannot be set up; cas_io_engine() says which it uses. */
#define CAS_IO_URING 0
#define CAS_IO_LIBAIO 1
#define CAS_IO_SYNC 2

struct cas_options {
	/* zstd level for new chunks; 0 stores everything uncompressed. */
	int compress_level;
	/* Segment files are closed for appends at this size (bytes). */
	uint64_t segment_size;
	/* Compaction rewrites a sealed segment whose live fraction is below
	 * this percentage. */
	unsigned compact_threshold_pct;
	/* CAS_IO_URING (the default), CAS_IO_LIBAIO or CAS_IO_SYNC. */
	int io_engine;
};

/* The engine in use, and any engine's name ("io_uring", ...). */
int cas_io_engine(const cas *c);
const char *cas_io_engine_name(int engine);

/* Fill *o with the defaults (level 1, 64 MiB segments, 50%, io_uring). */
void cas_options_default(struct cas_options *o);

/* Create a new, empty store in directory 'path' (created if missing; must
 * be empty, else CAS_EEXIST).  Options may be NULL for the defaults. */
int cas_create(const char *path, const struct cas_options *o);

/* Open an existing store read-write.  The store directory's 'lock' file is
 * held (flock) while open: a second opener gets CAS_ELOCKED.  Options may be NULL; the compression
 * level and thresholds given here apply to this session only. */
int cas_open(const char *path, const struct cas_options *o, cas **out);

/* Sync (as cas_sync) and release everything.  Returns the sync's result;
 * the store is closed either way. */
int cas_close(cas *c);

static inline int cas_name_is_hole(const cas_name *n)
{
	for (unsigned i = 0; i < CAS_NAME_SIZE; i++)
		if (n->b[i])
			return 0;
	return 1;
}

/* SHA-256 of one chunk; CAS_HOLE for the all-zero chunk.  Thread-safe.
 * cas_hash_node() is the map-node domain (see CAS_PUT_NODE); an all-zero
 * node is also CAS_HOLE (an all-hole subtree). */
void cas_hash(const void *data, cas_name *out);
void cas_hash_node(const void *data, cas_name *out);

/* Hex form (64 chars + NUL) and back.  cas_name_parse returns -EINVAL on
 * anything but 64 hex digits. */
void cas_name_format(const cas_name *n, char out[2 * CAS_NAME_SIZE + 1]);
int cas_name_parse(const char *s, cas_name *out);

/*
 * Store one chunk and take one reference to it; its name goes to *name.
 * If the name is already stored only the reference is added (no data is
 * written).  The all-zero chunk is never stored: *name = CAS_HOLE.
 *
 * Returns 1 when the chunk's count went from 0 to 1 (newly stored, or
 * brought back from zero before the next gc), 0 when it was already
 * referenced, or a negative error.  A layer whose chunks hold references
 * to other chunks (map nodes) counts those only on a 1.
 *
 * flags:
 *   CAS_PUT_NOCOMPRESS  content known not to compress
 *   CAS_PUT_NODE        the chunk is a map node: its name is taken in a
 *                       separate domain, SHA-256(0x01 || content), so no
 *                       data block can ever share a node's name (a guest
 *                       writing a block equal to a node must not merge the
 *                       two and confuse their reference counting).
 */
#define CAS_PUT_NOCOMPRESS 1u
#define CAS_PUT_NODE 2u
int cas_put(cas *c, const void *data, unsigned flags, cas_name *name);

/* Same, for content whose name the caller has already computed with
 * cas_hash()/cas_hash_node() (for example on another thread). */
int cas_put_named(cas *c, const cas_name *name, const void *data,
		  unsigned flags);

/*
 * Split put for many threads: cas_prepare() does the expensive part
 * (hashing, and compressing unless the chunk is already stored) on any
 * thread; cas_put_prepared() then stores it on the writer thread, with
 * the same result as cas_put().  'data' must still hold the content at
 * put time (it is used if the chunk vanished in between).  The fields
 * after 'name' belong to the store.
 */
struct cas_prepared {
	cas_name name;
	uint32_t size;  /* record bytes ready in rec; 0 if none */
	uint32_t flags; /* the put flags */
	uint8_t rec[64 + CAS_CHUNK_SIZE];
};
int cas_prepare(cas *c, const void *data, unsigned flags,
		struct cas_prepared *p);
int cas_put_prepared(cas *c, const struct cas_prepared *p, const void *data);

/* Add / drop one reference; returns the new count (>= 0).  -ENOENT if the
 * chunk is not stored, CAS_EREFCOUNT on an unref below zero.  The hole is
 * accepted and ignored (returns 0).  Updates are batched and coalesced in
 * memory until cas_sync(); a chunk at zero stays readable until then. */
int cas_ref(cas *c, const cas_name *name);
int cas_unref(cas *c, const cas_name *name);

/*
 * Read a chunk: CAS_CHUNK_SIZE bytes go to buf.  The record's checksum is
 * always checked; with CAS_GET_VERIFY the content is also hashed and
 * compared with its name.  A damaged record or a mismatch is -EIO; buf is
 * then zeroed, never left holding wrong data.  The hole reads as zeros.
 * Thread-safe.
 */
#define CAS_GET_VERIFY 1u
int cas_get(cas *c, const cas_name *name, void *buf, unsigned flags);

/* Is the chunk stored?  *refs (may be NULL) gets its current count
 * (pending changes included).  0 if present, -ENOENT if not. */
int cas_lookup(cas *c, const cas_name *name, uint32_t *refs);

/* Make every change so far durable: data first, then the index.  On
 * failure nothing has changed on disk and the changes stay pending: retry
 * cas_sync(), or give them up with cas_rollback(). */
int cas_sync(cas *c);

/*
 * Give up every change since the last successful cas_sync(): puts,
 * reference changes and kv writes are forgotten, and segment bytes
 * written since are cut off (giving their space back).  The store is
 * exactly as the last commit left it.  For a layer whose transaction
 * failed half way (a full disk): counts are never left half changed.
 * Chunks put since the last sync can no longer be read.  Writer thread.
 */
int cas_rollback(cas *c);

/*
 * Garbage collection: syncs, removes index entries whose count is zero,
 * then compacts every sealed segment whose live fraction is below the
 * threshold (live records are copied forward, the index updated, the old
 * file removed).  Refused with CAS_ERECOUNT after a rebuild until
 * cas_recount_done().
 */
struct cas_gc_result {
	uint64_t chunks_freed;       /* zero-count entries removed */
	uint64_t segments_compacted; /* segment files rewritten and removed */
	uint64_t bytes_moved;        /* record bytes copied forward */
	uint64_t bytes_reclaimed;    /* segment file bytes given back */
};
int cas_gc(cas *c, struct cas_gc_result *r);

/*
 * Scrub: read every indexed chunk, check its record and its hash.  For
 * each damaged chunk 'bad' is called (if not NULL) with the name and the
 * error.  *checked / *damaged (may be NULL) get the counts.  Returns 0 when
 * the scan completed (damage is reported, not returned).
 */
typedef void (*cas_bad_fn)(void *arg, const cas_name *name, int err);
/* Check the index file's pages before a walk that reads all of it:
 * CAS_EBADINDEX (and *bad_page) if one is damaged. */
int cas_check_index(cas *c, uint64_t *bad_page);
int cas_scrub(cas *c, cas_bad_fn bad, void *arg, uint64_t *checked,
	      uint64_t *damaged);

/*
 * Rebuild the index of the store at 'path' from its segments alone (the
 * store must not be open), side tables (cas_kv_*) included: see
 * cas_rebuild_ex.  Every valid record found is indexed with a
 * reference count of zero; the store is then marked "recount pending": the
 * layer above must cas_ref() every name reachable from its roots and call
 * cas_recount_done().  *found / *bad_records (may be NULL) get counts.
 */
int cas_rebuild(const char *path, uint64_t *found, uint64_t *bad_records);

/*
 * The same, saying where the side tables came from.  They are replayed
 * from the catalogue records in the segments (docs/cas-format.md): the
 * newest whole checkpoint, then every commit after it whose data is
 * provably durable; only a store whose segments hold none (format 1)
 * takes them from the old index, if that still opens.
 */
#define CAS_CAT_NONE 0      /* no catalogue found: side tables empty */
#define CAS_CAT_JOURNAL 1   /* replayed from the segments */
#define CAS_CAT_OLD_INDEX 2 /* carried over from the old index */
struct cas_rebuild_info {
	uint64_t found;            /* chunks indexed */
	uint64_t bad_records;      /* damaged records skipped */
	int catalogue;             /* CAS_CAT_* */
	uint64_t checkpoint_seq;   /* the checkpoint replayed (0: none) */
	uint64_t commits_replayed; /* commit records applied after it */
	uint64_t commits_skipped;  /* torn, partial or not provably durable */
	uint64_t entries;          /* side-table entries restored */
	uint64_t foreign_records;  /* catalogue records of another store id */
};
int cas_rebuild_ex(const char *path, struct cas_rebuild_info *info);
int cas_recount_pending(cas *c);
int cas_recount_done(cas *c);

/* Visit every indexed chunk with its committed count (syncs first).
 * Stops early and returns fn's value if fn returns non-zero. */
typedef int (*cas_iter_fn)(void *arg, const cas_name *name, uint32_t refs);
int cas_foreach(cas *c, cas_iter_fn fn, void *arg);

/* Set a chunk's committed count to exactly 'refs' (used by fsck repair).
 * Pending changes to that chunk are folded in first. */
int cas_set_refs(cas *c, const cas_name *name, uint32_t refs);

/*
 * A small key-value side table for the layer above (disk roots, snapshot
 * names), kept in the same LMDB environment so that its changes commit in
 * the very transaction that commits the chunk refcounts (invariant 3: a
 * root and the counts it implies change together or not at all).
 * Tables are named by short strings ("disks", "snaps"); keys up to 256
 * bytes, values up to 64 KiB.  Writes are staged and committed by the next
 * cas_sync(); reads see staged writes.  Writer thread only.
 */
#define CAS_KV_MAX_KEY 256u
#define CAS_KV_MAX_VAL 65536u
int cas_kv_put(cas *c, const char *table, const void *key, size_t klen,
	       const void *val, size_t vlen);
int cas_kv_del(cas *c, const char *table, const void *key, size_t klen);
/* *vlen is the buffer size on entry and the value's size on return;
 * -ENOENT if absent, -ENOBUFS (with *vlen set) if the buffer is short. */
int cas_kv_get(cas *c, const char *table, const void *key, size_t klen,
	       void *val, size_t *vlen);
typedef int (*cas_kv_fn)(void *arg, const void *key, size_t klen,
			 const void *val, size_t vlen);
/* Committed and staged entries in key order; stops early on non-zero. */
int cas_kv_foreach(cas *c, const char *table, cas_kv_fn fn, void *arg);

struct cas_stat {
	uint64_t chunks;         /* unique stored chunks (count-zero ones
				    included until gc removes them) */
	uint64_t refs;           /* sum of reference counts */
	uint64_t raw_bytes;      /* chunks * CAS_CHUNK_SIZE */
	uint64_t stored_bytes;   /* live record bytes in segments */
	uint64_t compressed_chunks;
	/* chunks with a count above zero, split by kind */
	uint64_t live_data_chunks;
	uint64_t live_node_chunks;
	uint64_t data_stored_bytes; /* record bytes of the live data chunks */
	uint64_t segment_files;
	uint64_t segment_bytes;  /* size of all segment files */
	uint64_t index_bytes;    /* LMDB pages in use (free pages excluded) */
	uint64_t index_entries;
};
/* Committed figures (syncs first). */
int cas_stat(cas *c, struct cas_stat *st);

const char *cas_strerror(int err);

#endif
