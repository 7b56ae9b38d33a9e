/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * refs.c - every reference count change parallax makes goes through here,
 * so the counters in px_map_stats are exact, and so does the one way a
 * tree is let go of: pxi_release() and its public face px_root_release().
 *
 * The idea: a node's count is the number of its direct holders (Rodeh's
 * lazy counts).  Dropping the last one makes the node garbage, and only
 * then are its own references on its children dropped: read the node (a
 * chunk at zero stays readable until the next cas_sync) and release each
 * non-hole child, nodes recursively, data chunks by a plain unref.
 *
 * Invariants: the hole is never counted (no store call at all); the
 * recursion is bounded by the height (at most PX_MAX_HEIGHT frames, one
 * 4 KiB buffer each, on the heap); a failure part way leaks references
 * (fsck finds them) and never frees anything early.
 */
#include <errno.h>
#include <stdlib.h>

#include "parallax/internal.h"

int pxi_ref(struct pxi_ctx *x, const cas_name *n)
{
	if (cas_name_is_hole(n))
		return 0;
	if (x->st)
		x->st->refs_taken++;
	return cas_ref(x->c, n);
}

int pxi_unref(struct pxi_ctx *x, const cas_name *n)
{
	if (cas_name_is_hole(n))
		return 0;
	if (x->st)
		x->st->refs_dropped++;
	return cas_unref(x->c, n);
}

int pxi_release(struct pxi_ctx *x, const cas_name *n, unsigned level)
{
	cas_name *kids;
	int r, first_err = 0;

	r = pxi_unref(x, n);
	if (r != 0 || level == 0 || cas_name_is_hole(n))
		return r < 0 ? r : 0;
	kids = malloc(CAS_CHUNK_SIZE);
	if (!kids)
		return -ENOMEM;
	r = pxi_node_read(x, n, 0, PX_NODE_SLOTS, kids);
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
		r = pxi_release(x, &kids[i], level - 1);
		if (r < 0 && !first_err)
			first_err = r;
	}
	r = first_err;
out:
	free(kids);
	return r;
}

int px_root_release(cas *c, px_cache *pc, const cas_name *root,
		    uint64_t nblocks)
{
	struct pxi_ctx x = {.c = c, .pc = pc, .st = NULL};

	if (nblocks > PX_MAX_BLOCKS)
		return -EFBIG;
	return pxi_release(&x, root, px_height(nblocks));
}
