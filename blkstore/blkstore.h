/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkstore.h - the store and its disks: the layer every program uses.
 *
 * A store is a directory (ARCHITECTURE.md, Data model): a chunk store
 * (cas/) plus store.conf, a catalogue of disks and snapshots kept in the
 * chunk index's side tables, and the lock that says who owns it.  A disk
 * is a name, a size in bytes (a multiple of 512) and a committed root
 * (parallax/): its content as a radix Merkle tree of 4 KiB chunk names.
 * A snapshot DISK@SNAP is a named, immutable root; a clone is a new disk
 * whose first root is a snapshot's or another disk's.  Both cost one
 * reference, whatever the size.
 *
 * Durability (ARCHITECTURE.md invariants 2 and 3): a write is acknowledged
 * once its data is in the chunk store's memory; bs_disk_flush() (and
 * bs_store_flush()) make every acknowledged write durable and then replace
 * the committed roots of every changed disk in one LMDB transaction (group
 * commit).  A disk holding more than the store's dirty limit of unflushed
 * blocks is committed on its own, so a crash loses a bounded amount.
 *
 * Threads: a store and its disks are used by one thread at a time (the
 * daemon serialises through its own queue).
 *
 * Errors: 0 (or a count) on success; negative errno, a CAS_E* or PX_E*
 * code, or a BS_E* code below.  bs_strerror() gives words for every one.
 */
#ifndef CAVM_BLKSTORE_H
#define CAVM_BLKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"

#define BS_BLOCK_SIZE 4096u
#define BS_SECTOR 512u
#define BS_NAME_MAX 64u /* a disk or snapshot name */
#define BS_SPEC_MAX (2 * BS_NAME_MAX + 2)

#define BS_ENODISK (-30800)   /* no such disk */
#define BS_ENOSNAP (-30801)   /* no such snapshot */
#define BS_EEXIST (-30802)    /* a disk or snapshot of that name exists */
#define BS_EBADNAME (-30803)  /* invalid disk or snapshot name */
#define BS_EBADSIZE (-30804)  /* size zero, not a multiple of 512, too big */
#define BS_EROFS (-30805)     /* snapshots are read-only */
#define BS_EDATALOSS (-30806) /* shrink would drop written blocks */
#define BS_EHASSNAPS (-30807) /* disk has snapshots: delete them first */
#define BS_EBUSY (-30808)     /* disk is open */
#define BS_ENOTSTORE (-30809) /* directory is not a cavm store */
#define BS_ERANGE (-30810)    /* I/O past the end of the disk */
#define BS_ECONF (-30811)     /* store.conf is damaged or unsupported */
#define BS_ENOTEMPTY (-30812) /* store directory not empty / exists */

typedef struct bs_store bs_store;
typedef struct bs_disk bs_disk;

struct bs_store_options {
	int compress_level;        /* zstd level for new chunks; 0 = off */
	uint64_t cache_nodes;      /* map node cache entries (4 KiB each) */
	uint64_t dirty_limit;      /* unflushed blocks per disk before an
				      automatic commit */
	int io_engine;             /* CAS_IO_URING (default), _LIBAIO, _SYNC */
};
void bs_store_options_default(struct bs_store_options *o);

/* Create a store in an empty (or missing) directory. */
int bs_store_create(const char *path, const struct bs_store_options *o);
/* Open read-write; one process at a time (BS_EBUSY-like CAS_ELOCKED). */
int bs_store_open(const char *path, const struct bs_store_options *o,
		  bs_store **out);
/* Flush everything, close open disks, release the store. */
int bs_store_close(bs_store *s);
/* Group commit: flush and commit every disk with unflushed writes. */
int bs_store_flush(bs_store *s);
cas *bs_store_cas(bs_store *s);
/* The owner of an open store says where its control socket is: written
 * into STORE/lock (which the owner holds locked), where blkctl looks.
 * NULL clears it. */
int bs_store_announce(const char *path, const char *control);

/* Names: 1..64 of [A-Za-z0-9_.-], not starting with '.' or '-'.
 * A spec is DISK or DISK@SNAP. */
bool bs_name_valid(const char *name);
int bs_spec_parse(const char *spec, char disk[BS_NAME_MAX + 1],
		  char snap[BS_NAME_MAX + 1]);

/* ---- catalogue ---- */
struct bs_info {
	char disk[BS_NAME_MAX + 1];
	char snap[BS_NAME_MAX + 1]; /* "" for a disk */
	uint64_t size;              /* bytes */
	cas_name root;              /* committed root */
	uint64_t allocated;         /* non-hole blocks (committed) */
	uint64_t created;           /* unix seconds */
	char origin[BS_SPEC_MAX];   /* clone source, "" if none */
	bool is_open;
};
int bs_disk_create(bs_store *s, const char *name, uint64_t size);
/* Delete a disk (BS_EHASSNAPS if it has snapshots, BS_EBUSY if open) or
 * a snapshot; frees what only it held. */
int bs_delete(bs_store *s, const char *spec);
int bs_snapshot(bs_store *s, const char *disk, const char *snap);
/* A new disk from DISK@SNAP or from DISK's current content. */
int bs_clone(bs_store *s, const char *src_spec, const char *newdisk);
int bs_info(bs_store *s, const char *spec, struct bs_info *out);
/* Disks and snapshots in name order (a disk before its snapshots). */
typedef int (*bs_list_fn)(void *arg, const struct bs_info *info);
int bs_list(bs_store *s, bs_list_fn fn, void *arg);
/* Grow or shrink.  A shrink that would drop written blocks needs
 * BS_RESIZE_FORCE (else BS_EDATALOSS).  Works on open disks too. */
#define BS_RESIZE_FORCE 1u
int bs_resize(bs_store *s, const char *disk, uint64_t size, unsigned flags);

/* ---- I/O ---- */
/* Open DISK (read-write) or DISK@SNAP (read-only).  A disk opened twice
 * is one shared object underneath. */
int bs_disk_open(bs_store *s, const char *spec, bs_disk **out);
int bs_disk_close(bs_disk *d);
uint64_t bs_disk_size(const bs_disk *d);
bool bs_disk_readonly(const bs_disk *d);
int bs_disk_read(bs_disk *d, void *buf, uint64_t len, uint64_t off);
int bs_disk_write(bs_disk *d, const void *buf, uint64_t len, uint64_t off);
/* Both make holes of whole blocks and zero the bytes of partial ones. */
int bs_disk_discard(bs_disk *d, uint64_t len, uint64_t off);
int bs_disk_write_zeroes(bs_disk *d, uint64_t len, uint64_t off);
int bs_disk_flush(bs_disk *d);
/* Is [off, off+len) a hole from its start?  *run gets how many bytes from
 * off share the answer (at least one block unless at the end). */
int bs_disk_block_status(bs_disk *d, uint64_t off, uint64_t len,
			 bool *hole, uint64_t *run);

/* Import a raw image (fd: file or pipe) into a new disk of the image's
 * size (rounded up to 512); zero blocks stay holes.  Export writes the
 * disk's bytes to fd; with 'sparse' (fd a regular file) holes are skipped
 * by seeking, and the file is sized with ftruncate. */
typedef void (*bs_progress_fn)(void *arg, uint64_t done, uint64_t total);
int bs_import(bs_store *s, const char *disk, int fd, bs_progress_fn fn,
	      void *arg);
int bs_export(bs_store *s, const char *spec, int fd, bool sparse,
	      bs_progress_fn fn, void *arg);

/* Changed byte ranges between two specs (DISK@A vs DISK@B or DISK). */
typedef int (*bs_diff_fn)(void *arg, uint64_t off, uint64_t len);
int bs_diff(bs_store *s, const char *a, const char *b, bs_diff_fn fn,
	    void *arg);

/* ---- statistics ---- */
struct bs_usage {            /* of one disk or snapshot */
	uint64_t size;
	uint64_t allocated;        /* non-hole blocks */
	uint64_t unique_data;      /* distinct data chunks it names */
	uint64_t nodes;            /* distinct map nodes */
};
int bs_usage(bs_store *s, const char *spec, struct bs_usage *u);

struct bs_store_stat {
	uint64_t disks, snapshots;
	uint64_t logical_bytes;     /* sum of disk sizes */
	uint64_t allocated_bytes;   /* sum of disks' non-hole blocks * 4 KiB */
	uint64_t referenced_bytes;  /* same over disks and snapshots */
	uint64_t unique_data_chunks;
	uint64_t node_chunks;
	uint64_t stored_bytes;      /* live record bytes, data and nodes */
	uint64_t data_stored_bytes; /* of the data chunks only */
	uint64_t segment_bytes;     /* segment files on disk */
	uint64_t index_bytes;
	double dedup_ratio;         /* referenced blocks / unique data chunks */
	double compression_ratio;  /* unique data bytes / their stored bytes */
	uint64_t fs_free_bytes;     /* free space of the store's filesystem */
};
int bs_store_stat(bs_store *s, struct bs_store_stat *st);

/* ---- maintenance ---- */
int bs_gc(bs_store *s, struct cas_gc_result *r);
/* Verify every chunk; for each damaged one, fn gets its name, the error
 * and the specs (comma-separated) that reach it. */
typedef void (*bs_damage_fn)(void *arg, const cas_name *name, int err,
			     const char *specs);
int bs_scrub(bs_store *s, bs_damage_fn fn, void *arg, uint64_t *checked,
	     uint64_t *damaged);
/*
 * fsck: recompute every chunk's count from all roots and compare with the
 * index.  Each difference goes to fn as a line of text; with
 * BS_FSCK_REPAIR the counts are set right.  Returns the number of problems
 * found (0 = clean) or an error.
 */
#define BS_FSCK_REPAIR 1u
typedef void (*bs_report_fn)(void *arg, const char *line);
int bs_fsck(bs_store *s, unsigned flags, bs_report_fn fn, void *arg);
/* Recreate the index of a closed store from its segments, then recount
 * from the catalogue's roots (fsck --rebuild). */
int bs_rebuild(const char *path, bs_report_fn fn, void *arg);

/* ---- I/O split across threads (disk_mt.c) ----
 *
 * The same reads and writes as bs_disk_read/bs_disk_write, cut so that
 * the expensive part runs on any thread while the store thread (the one
 * that uses the store, as above) does only what must be serialised:
 * looking block names up in the map and applying prepared writes.
 *
 *   read:  store thread: bs_disk_names(d, off, len, names)
 *          any thread:   bs_disk_read_names(d, names, buf, len, off, cc)
 *   write: any thread:   bs_disk_prepare(d, buf, len, off, p, cc)
 *          store thread: bs_disk_write_prepared(d, buf, len, off, p)
 *
 * cc, if not NULL, is a chunk cache (below) the any-thread halves share.
 *
 * "Any thread" means concurrently with the store thread and with each
 * other, on a disk that stays open meanwhile (those two touch only the
 * chunk store, through its thread-safe cas_get and cas_prepare).
 *
 * Names go stale: once bs_disk_names returns, a later write may replace
 * a block and a gc may free its old chunk.  Then bs_disk_read_names
 * fails (-ENOENT, or -EIO: cas_get checks every record's name and
 * checksum, so a chunk that was freed or moved never yields another
 * chunk's bytes) and the caller looks the names up again.  A read that
 * races with a write to the same block returns the old or the new data.
 */

/* How many blocks [off, off+len) touches (names[] needs this many), and
 * how many it covers whole (p[] of bs_disk_prepare needs this many). */
static inline uint64_t bs_span_blocks(uint64_t off, uint64_t len)
{
	return len ? (off + len - 1) / BS_BLOCK_SIZE - off / BS_BLOCK_SIZE + 1
		   : 0;
}
static inline uint64_t bs_whole_blocks(uint64_t off, uint64_t len)
{
	uint64_t first = (off + BS_BLOCK_SIZE - 1) / BS_BLOCK_SIZE;
	uint64_t end = (off + len) / BS_BLOCK_SIZE;
	return end > first ? end - first : 0;
}

/*
 * A cache of chunk contents in memory, by name, for bs_disk_read_names:
 * a chunk read once is then copied, not read, checked and decompressed
 * again.  A name's content never changes, so an entry is never stale and
 * one entry serves every disk, snapshot and clone that names the chunk.
 * Bounded to 'bytes' (rounded to whole chunks; memory is taken as entries
 * fill), evicted by CLOCK; thread-safe (sharded locks).
 */
typedef struct bs_chunk_cache bs_chunk_cache;
struct bs_chunk_cache_stats {
	uint64_t hits, misses, entries, capacity; /* entries: chunks held */
};
int bs_chunk_cache_create(uint64_t bytes, bs_chunk_cache **out);
void bs_chunk_cache_destroy(bs_chunk_cache *cc);
void bs_chunk_cache_stats(bs_chunk_cache *cc, struct bs_chunk_cache_stats *st);

/* Store thread: the names of the blocks [off, off+len) touches. */
int bs_disk_names(bs_disk *d, uint64_t off, uint64_t len, cas_name *names);
/* Any thread: the bytes [off, off+len) given the names of the blocks
 * they touch (from bs_disk_names), through cc if not NULL.  -ENOENT or
 * -EIO: look the names up again. */
int bs_disk_read_names(bs_disk *d, const cas_name *names, void *buf,
		       uint64_t len, uint64_t off, bs_chunk_cache *cc);
/* Any thread: hash every block a write of buf at off covers whole, and
 * compress it if it is new and does not look incompressible (a byte
 * entropy estimate), into p[0 .. bs_whole_blocks(off, len)); with cc,
 * the blocks go into the cache too. */
int bs_disk_prepare(bs_disk *d, const void *buf, uint64_t len, uint64_t off,
		    struct cas_prepared *p, bs_chunk_cache *cc);
/* Store thread: the write of buf at off (as bs_disk_write), its whole
 * blocks taken from p (bs_disk_prepare of the same buf, off and len). */
int bs_disk_write_prepared(bs_disk *d, const void *buf, uint64_t len,
			   uint64_t off, const struct cas_prepared *p);

const char *bs_strerror(int err);

#endif
