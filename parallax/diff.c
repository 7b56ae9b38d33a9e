/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * diff.c - which blocks differ between two roots.
 *
 * The idea: Merkle trees compare by name.  Two equal names are equal
 * subtrees, whatever they hold, so the walk goes down only where the
 * names differ and its cost follows what changed, not the disk's size.
 * Roots of different heights are compared by lifting the lower one: a
 * name of height h seen as a node of a higher level is a node whose
 * child 0 is that name and whose other children are holes (exactly what
 * growing a map stores).
 *
 * Invariants: blocks come out in increasing order, merged into maximal
 * ranges; a block counts as changed iff its two names differ (past a
 * map's end a block is a hole); no count changes, only reads.
 */
#include <errno.h>
#include <stdlib.h>

#include "parallax/internal.h"

struct pxi_diff {
	struct pxi_ctx x;
	struct px_map_stats st;
	px_diff_fn fn;
	void *arg;
	uint64_t first, count; /* the range being merged */
	uint64_t ranges, blocks;
	cas_name *buf; /* two nodes per level */
};

static int pxi_emit(struct pxi_diff *df, uint64_t block)
{
	int r;

	df->blocks++;
	if (df->count && df->first + df->count == block) {
		df->count++;
		return 0;
	}
	if (df->count) {
		df->ranges++;
		r = df->fn(df->arg, df->first, df->count);
		if (r)
			return r;
	}
	df->first = block;
	df->count = 1;
	return 0;
}

/* The children of name n (height h) seen as a node at 'level' >= h. */
static int pxi_view(struct pxi_diff *df, const cas_name *n, unsigned h,
		    unsigned level, cas_name *kids)
{
	if (h == level)
		return pxi_node_read(&df->x, n, 0, PX_NODE_SLOTS, kids);
	memset(kids, 0, PX_NODE_SLOTS * sizeof(*kids));
	kids[0] = *n;
	return 0;
}

static int pxi_diff_rec(struct pxi_diff *df, const cas_name *a, unsigned ha,
			const cas_name *b, unsigned hb, unsigned level,
			uint64_t base)
{
	cas_name *ka, *kb;
	int r;

	if (pxi_eq(a, b))
		return 0;
	if (level == 0)
		return pxi_emit(df, base);
	ka = df->buf + (size_t)(level - 1) * 2 * PX_NODE_SLOTS;
	kb = ka + PX_NODE_SLOTS;
	r = pxi_view(df, a, ha, level, ka);
	if (r == 0)
		r = pxi_view(df, b, hb, level, kb);
	if (r)
		return r;
	ha = ha == level ? level - 1 : ha;
	hb = hb == level ? level - 1 : hb;
	for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
		r = pxi_diff_rec(df, &ka[i], ha, &kb[i], hb, level - 1,
				 base + i * pxi_span(level - 1));
		if (r)
			return r;
	}
	return 0;
}

int px_diff(cas *c, px_cache *pc, const cas_name *a, uint64_t nblocks_a,
	    const cas_name *b, uint64_t nblocks_b, px_diff_fn fn, void *arg,
	    struct px_diff_stats *st)
{
	struct pxi_diff df = {.fn = fn, .arg = arg};
	unsigned ha, hb;
	int r;

	if (!c || !a || !b || !fn)
		return -EINVAL;
	if (nblocks_a > PX_MAX_BLOCKS || nblocks_b > PX_MAX_BLOCKS)
		return -EFBIG;
	ha = px_height(nblocks_a);
	hb = px_height(nblocks_b);
	df.x.c = c;
	df.x.pc = pc;
	df.x.st = &df.st;
	df.buf = malloc((size_t)PX_MAX_HEIGHT * 2 * CAS_CHUNK_SIZE);
	if (!df.buf)
		return -ENOMEM;
	r = pxi_diff_rec(&df, a, ha, b, hb, ha > hb ? ha : hb, 0);
	if (r == 0 && df.count) {
		df.ranges++;
		r = fn(arg, df.first, df.count);
	}
	free(df.buf);
	if (st) {
		st->node_reads = df.st.node_reads;
		st->ranges = df.ranges;
		st->blocks = df.blocks;
	}
	return r;
}
