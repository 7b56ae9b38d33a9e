/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * internal.h - what the files of parallax/ share and nobody else sees:
 * the tree's geometry, the in-memory dirty node, the open map, and the
 * counted wrappers around the store's reference calls.
 *
 * The one idea: a dirty node remembers the stored node it copies ('base')
 * and that node's slots ('orig').  A slot equal to orig[i] is borrowed:
 * its reference is still held by base.  A slot that differs is owned: the
 * dirty node holds one reference on it, taken in this session (from the
 * caller's cas_put, or our own cas_ref).  orig[i]'s reference stays with
 * base until commit.  That is what makes discard exact: undoing a session
 * means dropping the owned references and nothing else.
 *
 * Invariants:
 *  - child[i] != NULL implies slot[i] == child[i]->base;
 *  - slot[i] owned <=> slot[i] != orig[i]; a hole is never counted;
 *  - the map's root slot behaves the same with orig = 'committed'.
 */
#ifndef CAVM_PARALLAX_INTERNAL_H
#define CAVM_PARALLAX_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "parallax/parallax.h"

/* A name at level 0 is a data chunk; at level L >= 1 a node covering
 * 128^L blocks.  Slot i of a level-L node covers pxi_span(L - 1). */
static inline uint64_t pxi_span(unsigned level)
{
	return 1ull << (PX_SLOT_BITS * level);
}

static inline unsigned pxi_index(uint64_t block, unsigned level)
{
	return (unsigned)(block >> (PX_SLOT_BITS * (level - 1))) &
	       (PX_NODE_SLOTS - 1);
}

static inline int pxi_eq(const cas_name *a, const cas_name *b)
{
	return memcmp(a->b, b->b, CAS_NAME_SIZE) == 0;
}

/* What every walk needs: the store, the cache (may be NULL) and the
 * counters to bump. */
struct pxi_ctx {
	cas *c;
	px_cache *pc;
	struct px_map_stats *st;
};

struct px_dnode {
	cas_name base; /* stored node copied, CAS_HOLE for a new one */
	cas_name orig[PX_NODE_SLOTS];
	cas_name slot[PX_NODE_SLOTS];
	struct px_dnode *child[PX_NODE_SLOTS]; /* level >= 2 only */
};

struct px_map {
	struct pxi_ctx x;
	struct px_map_stats st;
	/* The session's start: the disk's reference is on 'committed'. */
	cas_name committed;
	unsigned committed_height;
	uint64_t committed_nblocks;
	/* Now: the root slot names 'root' (top->base when top is dirty). */
	cas_name root;
	unsigned height;
	uint64_t nblocks;
	struct px_dnode *top;
	int broken;
};

/* refs.c: counted store calls and the recursive release. */
int pxi_ref(struct pxi_ctx *x, const cas_name *n);
int pxi_unref(struct pxi_ctx *x, const cas_name *n);
int pxi_release(struct pxi_ctx *x, const cas_name *n, unsigned level);

/* node.c: slots [first, first + count) of a stored node, through the
 * cache; the hole reads as all holes. */
int pxi_node_read(struct pxi_ctx *x, const cas_name *node, unsigned first,
		  unsigned count, cas_name *out);

/* cache.c: 1 and the slots on a hit, 0 on a miss. */
int pxi_cache_get(px_cache *pc, const cas_name *node, unsigned first,
		  unsigned count, cas_name *out);
void pxi_cache_put(px_cache *pc, const cas_name *node, const cas_name *slots);

/* dnode.c: copy-on-write in memory. */
int pxi_dnode_new(px_map *m, const cas_name *base, struct px_dnode **out);
int pxi_dnode_drop(px_map *m, struct px_dnode *d, unsigned level);
int pxi_slot_set(px_map *m, struct px_dnode *d, unsigned i, const cas_name *n,
		 unsigned level);
int pxi_make_top_dirty(px_map *m);
int pxi_child_dirty(px_map *m, struct px_dnode *d, unsigned i,
		    struct px_dnode **out);

#endif
