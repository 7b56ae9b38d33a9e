/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * resize.c - growing and shrinking an open map.
 *
 * The idea: the height follows the size.  Growing puts a new top node
 * above the root (the old root is its child 0), one per level, and costs
 * nothing while the map is all holes.  Shrinking first turns every slot
 * past the new end into a hole (whole subtrees at once, never block by
 * block), then takes off top nodes whose only child is child 0.
 *
 * Invariants: the ownership rule of dnode.c holds across every move; the
 * session still lowers no pre-existing count (what the cut-off slots held
 * is released at commit, by the copy-on-write that steals from their
 * node), so a resize is discarded exactly like an update; blocks past the
 * end stay holes.  A failure part way leaves the map broken.
 */
#include <errno.h>
#include <stdlib.h>

#include "parallax/internal.h"

/* Make every block >= end under d (a node at 'level' covering blocks from
 * 'base') a hole. */
static int pxi_clear_node(px_map *m, struct px_dnode *d, unsigned level,
			  uint64_t base, uint64_t end)
{
	uint64_t span = pxi_span(level - 1);
	struct px_dnode *c;
	int r;

	for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
		uint64_t s = base + i * span;

		if (s >= end) {
			if (d->child[i]) {
				r = pxi_dnode_drop(m, d->child[i], level - 1);
				d->child[i] = NULL;
				if (r < 0)
					return r;
			}
			if (!cas_name_is_hole(&d->slot[i])) {
				r = pxi_slot_set(m, d, i, &CAS_HOLE, level);
				if (r < 0)
					return r;
			}
		} else if (s + span > end && level > 1 &&
			   (d->child[i] || !cas_name_is_hole(&d->slot[i]))) {
			r = pxi_child_dirty(m, d, i, &c);
			if (r < 0)
				return r;
			r = pxi_clear_node(m, c, level - 1, s, end);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Take off the top node; its slots past 0 are holes already. */
static int pxi_level_drop(px_map *m)
{
	struct px_dnode *t;
	cas_name n0;
	int r;

	if (!m->top && cas_name_is_hole(&m->root)) {
		m->height--;
		return 0;
	}
	r = pxi_make_top_dirty(m);
	if (r < 0)
		return r;
	t = m->top;
	for (unsigned i = 1; i < PX_NODE_SLOTS; i++)
		if (t->child[i] || !cas_name_is_hole(&t->slot[i]))
			return -EIO; /* cannot happen after pxi_clear_node */
	n0 = t->slot[0];
	/* The root slot needs a reference on n0: t's own if it has one,
	 * else a new one (base keeps its borrowed one until commit). */
	if (pxi_eq(&n0, &t->orig[0])) {
		r = pxi_ref(&m->x, &n0);
		if (r < 0)
			return r;
	}
	/* The root slot's reference on t's base, if it took one. */
	if (!pxi_eq(&m->root, &m->committed)) {
		r = pxi_release(&m->x, &m->root, m->height);
		if (r < 0)
			return r;
	}
	m->top = t->child[0];
	m->root = n0;
	m->height--;
	free(t);
	m->st.dirty_nodes--;
	if (pxi_eq(&m->root, &m->committed)) /* borrowed again */
		return pxi_release(&m->x, &m->root, m->height);
	return 0;
}

/* Put a new top node above the root, the old root as its child 0. */
static int pxi_level_add(px_map *m)
{
	struct px_dnode *t;
	int r;

	if (!m->top && cas_name_is_hole(&m->root)) {
		m->height++;
		return 0;
	}
	r = pxi_dnode_new(m, &CAS_HOLE, &t);
	if (r < 0)
		return r;
	/* t's slot 0 differs from its orig (a hole): t owns a reference,
	 * the root slot's own if it had one, else a new one. */
	if (pxi_eq(&m->root, &m->committed)) {
		r = pxi_ref(&m->x, &m->root);
		if (r < 0) {
			free(t);
			m->st.dirty_nodes--;
			return r;
		}
	}
	t->slot[0] = m->root;
	t->child[0] = m->top;
	m->top = t;
	m->root = CAS_HOLE;
	m->height++;
	return 0;
}

int px_map_resize(px_map *m, uint64_t nblocks)
{
	unsigned h = px_height(nblocks);
	int r = 0;

	if (m->broken)
		return PX_EBROKEN;
	if (nblocks > PX_MAX_BLOCKS)
		return -EFBIG;
	if (nblocks < m->nblocks && (m->top || !cas_name_is_hole(&m->root))) {
		r = pxi_make_top_dirty(m);
		if (r < 0)
			return r;
		r = pxi_clear_node(m, m->top, m->height, 0, nblocks);
	}
	while (r == 0 && m->height > h)
		r = pxi_level_drop(m);
	while (r == 0 && m->height < h)
		r = pxi_level_add(m);
	if (r < 0) {
		m->broken = 1;
		return r;
	}
	m->nblocks = nblocks;
	return 0;
}
