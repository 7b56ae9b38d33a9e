/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commit.c - turning an open map's dirty nodes into stored nodes and one
 * new root.
 *
 * The idea: this is where the session's deferred count changes happen,
 * in three passes over the dirty tree.
 *  1. Prune (bottom-up): a dirty node whose slots all equal its orig and
 *     that has no changed child is no change at all; forget it.
 *  2. Resolve (top-down, Rodeh's lazy counts): when a dirty node is
 *     reached its parent slot holds a reference of its own on base N.  If
 *     N's count is 1 that reference is the only one: the copy steals N's
 *     child references, releases the old children of the slots it
 *     changed, and N drops to 0 without recursing.  Otherwise N is
 *     shared: the copy takes one reference per unchanged non-hole child
 *     and drops its reference on N, which others keep.  Either way every
 *     slot of the copy now owns its reference.
 *  3. Write (bottom-up): cas_put(CAS_PUT_NODE).  On 1 the new stored node
 *     keeps the copy's child references; on 0 the node already existed
 *     with references of its own, so the copy's are released.  The put's
 *     reference goes to the parent's slot, the root's to the caller.
 * Resolving a node before its children is what makes "count == 1" mean
 * "exclusively ours": a shared parent's copy has added its reference to
 * every child before any child is looked at.
 *
 * Invariants: an all-hole node is never stored (it is CAS_HOLE); an
 * unchanged map commits with no store call; a failure leaves the map
 * broken, with some count changes already pending in the store (a steal
 * lowers its node before the new nodes are stored): the caller must give
 * the whole transaction up (cas_rollback), never commit it.
 */
#include <errno.h>
#include <stdlib.h>

#include "parallax/internal.h"

static int pxi_prune(px_map *m, struct px_dnode *d)
{
	int unchanged = 1;

	for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
		if (d->child[i]) {
			if (pxi_prune(m, d->child[i])) {
				free(d->child[i]);
				d->child[i] = NULL;
				m->st.dirty_nodes--;
			} else {
				unchanged = 0;
			}
		}
		if (!pxi_eq(&d->slot[i], &d->orig[i]))
			unchanged = 0;
	}
	return unchanged;
}

static int pxi_resolve(px_map *m, struct px_dnode *d, unsigned level)
{
	uint32_t refs;
	int r;

	if (cas_name_is_hole(&d->base))
		return 0; /* a new node: every slot is owned already */
	r = cas_lookup(m->x.c, &d->base, &refs);
	if (r < 0)
		return r;
	if (refs == 0)
		return CAS_EREFCOUNT; /* our parent slot holds one */
	for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
		int same = pxi_eq(&d->slot[i], &d->orig[i]);

		if (refs > 1 && same) /* shared: a reference of our own */
			r = pxi_ref(&m->x, &d->slot[i]);
		else if (refs == 1 && !same) /* stolen: N's old child goes */
			r = pxi_release(&m->x, &d->orig[i], level - 1);
		else
			continue;
		if (r < 0)
			return r;
	}
	if (refs == 1)
		m->st.cow_steals++;
	else
		m->st.cow_shares++;
	r = pxi_unref(&m->x, &d->base); /* to 0 when stolen: no recursion */
	return r < 0 ? r : 0;
}

static int pxi_write(px_map *m, struct px_dnode *d, unsigned level,
		     cas_name *out)
{
	int r, holes = 1;

	r = pxi_resolve(m, d, level);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
		if (d->child[i]) {
			r = pxi_write(m, d->child[i], level - 1, &d->slot[i]);
			if (r < 0)
				return r;
			d->child[i] = NULL;
		}
		if (!cas_name_is_hole(&d->slot[i]))
			holes = 0;
	}
	if (holes) {
		*out = CAS_HOLE;
	} else {
		r = cas_put(m->x.c, d->slot, CAS_PUT_NODE, out);
		if (r < 0)
			return r;
		if (r == 1) {
			m->st.nodes_stored++;
			if (m->x.pc)
				pxi_cache_put(m->x.pc, out, d->slot);
		} else {
			m->st.nodes_deduped++;
			for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
				r = pxi_release(&m->x, &d->slot[i], level - 1);
				if (r < 0)
					return r;
			}
		}
	}
	free(d);
	m->st.dirty_nodes--;
	return 0;
}

int px_map_commit(px_map *m, cas_name *root)
{
	int r = 0;

	if (m->broken)
		return PX_EBROKEN;
	if (m->top && pxi_prune(m, m->top)) {
		free(m->top);
		m->top = NULL;
		m->st.dirty_nodes--;
	}
	/* The root slot is never shared: if it changed, the old root's
	 * reference is released like a stolen node's changed slot. */
	if (!pxi_eq(&m->root, &m->committed))
		r = pxi_release(&m->x, &m->committed, m->committed_height);
	if (r == 0 && m->top) {
		r = pxi_write(m, m->top, m->height, &m->root);
		if (r == 0)
			m->top = NULL;
	}
	if (r < 0) {
		m->broken = 1;
		return r;
	}
	m->committed = m->root;
	m->committed_height = m->height;
	m->committed_nblocks = m->nblocks;
	if (root)
		*root = m->root;
	return 0;
}
