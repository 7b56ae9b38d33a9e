/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * update.c - writing one block's name into an open map.
 *
 * The idea: copy-on-write of the path from the root to the block's leaf,
 * in memory only (pxi_dnode_new reads a node and changes no count), then
 * one slot change under the ownership rule of dnode.c.  Nothing is
 * written to the store and no existing count is lowered before commit.
 *
 * Invariants: on any error the caller keeps its reference on 'name' and
 * the map reads as before (copied but unchanged nodes are harmless: commit
 * prunes them).
 */
#include <errno.h>

#include "parallax/internal.h"

int px_map_update(px_map *m, uint64_t block, const cas_name *name)
{
	struct px_dnode *d;
	unsigned level;
	int r;

	if (m->broken)
		return PX_EBROKEN;
	if (block >= m->nblocks)
		return -ERANGE;
	r = pxi_make_top_dirty(m);
	if (r < 0)
		return r;
	d = m->top;
	for (level = m->height; level > 1; level--) {
		r = pxi_child_dirty(m, d, pxi_index(block, level), &d);
		if (r < 0)
			return r;
	}
	return pxi_slot_set(m, d, pxi_index(block, 1), name, 1);
}
