/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * workload.h - the torture's seeded workload and its model.
 *
 * One generator, two users.  The child runs each operation on a real
 * store (recorded by powercut) and checks every result against the
 * model; the parent runs the very same generator without a store to
 * rebuild the model at any operation, since an operation depends only
 * on the seed and on the model's state before it.  The model is a byte
 * image of every disk and snapshot ("what a reader must see").
 *
 * Disks are named d<N> and snapshots d<N>@s<M>, N and M never reused, so
 * a name has one lifetime and "may this name exist after a cut" has one
 * answer.
 */
#ifndef CAVM_TEST_CRASH_WORKLOAD_H
#define CAVM_TEST_CRASH_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "blkstore/blkstore.h"

enum wl_kind {
	W_WRITE,   /* data: random, compressible, duplicated, or zeros */
	W_ZEROES,  /* bs_disk_write_zeroes */
	W_DISCARD, /* bs_disk_discard */
	W_FLUSH,   /* bs_disk_flush / bs_store_flush */
	W_FUA,     /* a write, then a flush of that disk */
	W_SNAP,
	W_CLONE, /* from a disk or a snapshot */
	W_CREATE,
	W_DEL_SNAP,
	W_DEL_DISK,
	W_RESIZE, /* grow or shrink, forced or not */
	W_GC,
	W_REOPEN,  /* bs_store_close, bs_store_open */
	W_READ,    /* child only: compare a range with the model */
	W_HOLD,    /* open a snapshot and keep it open (-x hold) */
	W_REBUILD, /* close, bs_rebuild (fsck --rebuild), open (-x rebuild) */
	W_CLOSE,   /* the last operation: bs_store_close */
	W_NKINDS
};

struct wl_cfg {
	uint64_t seed;
	uint64_t ops;
	uint64_t max_size; /* bytes per disk */
	unsigned max_disks, max_snaps;
	bool hold;            /* -x hold: W_HOLD operations */
	bool rebuild;         /* -x rebuild: W_REBUILD operations */
	uint64_t dirty_limit; /* chosen from the seed */
};

struct wl_ent {
	char name[BS_SPEC_MAX];
	bool live, snap;
	int disk;        /* a snapshot's disk (entity index) */
	unsigned nsnaps; /* a disk's live snapshots */
	uint64_t size;
	uint8_t *data; /* whole blocks; bytes past size are zero */
	bs_disk *h;    /* child: the open disk (or held snapshot) */
};

struct wl_op {
	enum wl_kind kind;
	uint64_t k; /* operation number */
	int e;      /* the entity operated on (-1: whole store) */
	int e2;     /* the entity created (snap, clone, create) */
	uint64_t off, len, size;
	unsigned flags;     /* W_RESIZE: BS_RESIZE_FORCE */
	int expect;         /* result the store must give */
	const uint8_t *buf; /* W_WRITE/W_FUA data (len bytes) */
};

struct wl {
	struct wl_cfg cfg;
	uint64_t rng;
	struct wl_ent *ent;
	int nent, capent;
	unsigned next_disk, next_snap;
	uint8_t *pool; /* blocks reused for duplicates */
	uint8_t *buf;  /* the current write's data */
	size_t bufcap;
	bs_store *s; /* child only */
	const char *path;
	char err[512]; /* child: what went wrong */
};

/* Fill cfg from a seed and the user's choices (0 = default). */
void wl_cfg_init(struct wl_cfg *c, uint64_t seed, uint64_t ops);
int wl_init(struct wl *w, const struct wl_cfg *c);
void wl_free(struct wl *w);
/* The next operation (number k); k == cfg.ops gives W_CLOSE. */
int wl_next(struct wl *w, uint64_t k, struct wl_op *op);
/* Apply a generated operation to the model (after it ran, if it did). */
int wl_apply(struct wl *w, const struct wl_op *op);
/* Child: run it on the store (w->s) and check the results; 0, or -1 with
 * w->err set. */
int wl_exec(struct wl *w, const struct wl_op *op);
/* Child: close disks and snapshots held open (before a close or reopen). */
void wl_drop_handles(struct wl *w);
const char *wl_kind_name(enum wl_kind k);
void wl_describe(const struct wl *w, const struct wl_op *op, char *out,
		 size_t n);
/* Does the op end with everything flushed (the durable points)? */
bool wl_is_flush(const struct wl_op *op);
int wl_find(const struct wl *w, const char *name);

/* A block's content hash (64 bits are plenty to tell versions apart). */
uint64_t wl_hash(const uint8_t *block);
uint64_t wl_nblocks(uint64_t size);

#endif
