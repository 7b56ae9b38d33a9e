/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * check.h - what a crash image must hold, and the check of one image.
 *
 * The expectation of a cut is built from the model: F is the last flush
 * that completed before the cut, L the last operation that had started.
 * A moment t in F..L is "after operation t" (F = -1: before any).  Per
 * disk or snapshot the expectation keeps:
 *   - whether it existed at F (then it must exist unless deleted since),
 *     was created since (may exist), was deleted since (may be gone);
 *   - the history of its size and of each 4 KiB block's content (as a
 *     hash) over the moments since F, or since it was created.
 * An image passes when each disk reads as its model did at one single
 * moment of its history: every block and the size one version (so a
 * write after F may or may not be there, never anything else), and all
 * of them from the same moment (commits happen between operations, so
 * nothing may be torn across a committed root: invariant 2).  A
 * snapshot never changes, so it must be exact.
 */
#ifndef CAVM_TEST_CRASH_CHECK_H
#define CAVM_TEST_CRASH_CHECK_H

#include "test/crash/workload.h"

struct ver {
	long t;     /* from this moment on ... */
	uint64_t v; /* ... the value (a size, or a block's hash) */
};

struct vlist {
	struct ver *v;
	uint32_t n, cap;
};

struct exp_ent {
	bool at_f, created, deleted;
	long start; /* first moment in the window it existed */
	struct vlist size;
	struct vlist *blk; /* per block */
	uint64_t nblk;
};

struct expect {
	struct exp_ent *e; /* indexed like the workload's entities */
	int nent;
	uint64_t zero; /* hash of a zero block */
	long f, l;     /* the window of moments */
};

int exp_init(struct expect *x);
void exp_free(struct expect *x);
/* The state at F (moment f): every live entity as it is now in w. */
int exp_begin(struct expect *x, const struct wl *w, long f);
/* An operation after F, applied to w already; old_size is its entity's
 * size before it. */
int exp_note(struct expect *x, const struct wl *w, const struct wl_op *op,
	     uint64_t old_size);

/* Open the image at 'path' and check it against x (fsck, scrub, every
 * disk and snapshot, then delete everything and gc: nothing may be left).
 * With CHECK_ALLOW_LEAKS an fsck that finds only counts too high (space
 * leaked, nothing at risk) is repaired and counted in r->leaked instead
 * of failing, so that a known leak does not hide other bugs.
 * 0 if the image holds; 1 with r->why filled if not. */
#define CHECK_ALLOW_LEAKS 1u
/* Also: close, delete index/data.mdb, rebuild from the segments alone;
 * the catalogue (every disk and snapshot: size, root, times, origin)
 * must be the one the index had.  The check goes on with that store. */
#define CHECK_REBUILD 2u
/* Instead, before anything else: delete index/data.mdb of the crash
 * image as it is (never opened: uncommitted bytes still there) and
 * rebuild from the segments; the rebuild must find nothing missing and
 * the store must then pass every check against the model (a commit cut
 * by the crash is either all there or not at all). */
#define CHECK_RAW_REBUILD 4u
struct check_result {
	char why[1024];
	uint64_t leaked; /* chunks whose count was too high */
};
int check_image(const char *path, const struct wl *w, const struct expect *x,
		unsigned flags, struct check_result *r);

#endif
