/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bs_int.h - internals shared by the files of blkstore/.
 */
#ifndef CAVM_BS_INT_H
#define CAVM_BS_INT_H

#include "blkstore/blkstore.h"
#include "parallax/parallax.h"

#define BS_TABLE_DISKS "disks"
#define BS_TABLE_SNAPS "snaps"
#define BS_REC_VERSION 1u
/* Largest disk: the block map's arithmetic limit, in bytes. */
#define BS_MAX_SIZE ((uint64_t)PX_MAX_BLOCKS * (BS_BLOCK_SIZE / 2))

/* A catalogue record (a disk or a snapshot), encoded explicitly:
 *   u32 version | u32 flags | u64 size | root[32] | u64 allocated |
 *   u64 created | u16 origin length | origin bytes */
struct bs_rec {
	uint64_t size;
	cas_name root;
	uint64_t allocated;
	uint64_t created;
	char origin[BS_SPEC_MAX];
};
#define BS_REC_MAX (4 + 4 + 8 + 32 + 8 + 8 + 2 + BS_SPEC_MAX)

size_t bs_rec_encode(const struct bs_rec *r, uint8_t *buf);
int bs_rec_decode(const uint8_t *buf, size_t len, struct bs_rec *r);
/* Catalogue access: spec is "disk" (table disks) or "disk@snap" (snaps). */
int bs_cat_get(bs_store *s, const char *disk, const char *snap,
	       struct bs_rec *r);
int bs_cat_put(bs_store *s, const char *disk, const char *snap,
	       const struct bs_rec *r);
int bs_cat_del(bs_store *s, const char *disk, const char *snap);

static inline uint64_t bs_nblocks(uint64_t size)
{
	return (size + BS_BLOCK_SIZE - 1) / BS_BLOCK_SIZE;
}

/* An open disk or snapshot; shared by every bs_disk_open of the spec. */
struct bs_disk {
	struct bs_disk *next;
	bs_store *s;
	char disk[BS_NAME_MAX + 1];
	char snap[BS_NAME_MAX + 1];
	int users;
	bool ro;
	px_map *m;
	struct bs_rec rec;     /* committed catalogue record */
	uint64_t size;         /* current size (resizes are committed at once) */
	int64_t allocated;     /* current non-hole blocks */
	uint64_t unflushed;    /* blocks written since the last commit */
	uint64_t dirty_limit;  /* commit alone past this many unflushed */
};

struct bs_store {
	char *path;
	cas *c;
	px_cache *pc;
	struct bs_store_options opt;
	struct bs_disk *open;
};

/* Hidden disks (names starting with '.') are the store's own: an import
 * in progress is ".import-NAME", renamed at the end, removed at open if a
 * crash left it. */
#define BS_IMPORT_PREFIX ".import-"
int bs_disk_open_parsed(bs_store *s, const char *disk, const char *snap,
			bs_disk **out);
int bs_disk_create_any(bs_store *s, const char *name, uint64_t size);
int bs_disk_rename(bs_store *s, const char *from, const char *to);
int bs_delete_any(bs_store *s, const char *disk);
int bs_resize_any(bs_store *s, const char *name, uint64_t size, unsigned flags);
int bs_drop_hidden(bs_store *s);
/* bs_list, with the store's hidden disks too when 'hidden' (fsck: they
 * hold references like any disk). */
int bs_list_all(bs_store *s, bs_list_fn fn, void *arg, bool hidden);
int bs_disk_set_block(bs_disk *d, uint64_t blk, const cas_name *name);
int bs_disk_bound_dirty(bs_disk *d);

/*
 * End a store transaction: with rc == 0 make it durable (cas_sync); if
 * that or anything before it failed (rc != 0), give the whole
 * transaction up: the chunk store rolls back to its last commit and every
 * open disk reopens its committed map (bs_store_rollback).  Writes
 * acknowledged since the last flush are lost, as in a crash, and no count
 * is ever left half changed.  Returns rc, or the sync's error.
 */
int bs_sync(bs_store *s, int rc);
/* After a rebuild a crash interrupted: finish the recount (fsck.c). */
int bs_recount_if_pending(bs_store *s);
int bs_store_open_norecount(const char *path, const struct bs_store_options *o,
			    bs_store **out);
int bs_store_rollback(bs_store *s);

/* Commit one disk's map and record (no cas_sync). */
int bs_disk_commit(struct bs_disk *d);
struct bs_disk *bs_find_open(bs_store *s, const char *disk, const char *snap);

/* Root and size of a spec, from the open object if any (committed state). */
int bs_spec_root(bs_store *s, const char *spec, cas_name *root,
		 uint64_t *size, struct bs_rec *rec);

/* ---- nameset.c: a counting set of chunk names ---- */
struct bs_nameset_ent {
	cas_name name;
	uint32_t count;
	uint32_t mark; /* free for the user */
	bool used;
};
struct bs_nameset {
	struct bs_nameset_ent *v;
	size_t cap, n;
};
int bs_nameset_init(struct bs_nameset *ns);
void bs_nameset_free(struct bs_nameset *ns);
/* Add one to name's count; returns the new count, or -ENOMEM. */
int64_t bs_nameset_add(struct bs_nameset *ns, const cas_name *n);
struct bs_nameset_ent *bs_nameset_find(struct bs_nameset *ns,
				       const cas_name *n);

/* ---- walk.c: visit a tree's distinct chunks ---- */
/* fn gets every reference in the trees walked (the root once, each child
 * slot of each distinct node once): name, its level (0 = data) and
 * whether this is the first time the name is seen in ns.  Node read
 * errors go to err_fn and the walk goes on. */
typedef int (*bs_walk_fn)(void *arg, const cas_name *n, unsigned level,
			  bool first);
typedef void (*bs_walk_err_fn)(void *arg, const cas_name *n, int err);
int bs_walk(bs_store *s, struct bs_nameset *ns, const cas_name *root,
	    uint64_t nblocks, bs_walk_fn fn, bs_walk_err_fn err_fn, void *arg);

#endif
