/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dnode.c - dirty nodes: the in-memory copies an open map changes, and the
 * ownership rule that keeps their references exact.
 *
 * The idea (see internal.h): a dirty node copies a stored node 'base' and
 * keeps its slots as 'orig'.  A slot equal to orig[i] borrows base's
 * reference; a slot that differs owns one reference taken in this
 * session.  So the session never lowers a count that existed when it
 * began; undoing it (discard, or dropping a subtree cut off by a shrink)
 * releases exactly the owned references.
 *
 * Invariants: pxi_slot_set() keeps "owned <=> differs from orig" true on
 * every change, dropping the caller's extra reference when a slot goes
 * back to its original name; copying costs one node read and no count
 * change at all.
 */
#include <errno.h>
#include <stdlib.h>

#include "parallax/internal.h"

int pxi_dnode_new(px_map *m, const cas_name *base, struct px_dnode **out)
{
	struct px_dnode *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	d->base = *base;
	r = pxi_node_read(&m->x, base, 0, PX_NODE_SLOTS, d->orig);
	if (r < 0) {
		free(d);
		return r;
	}
	memcpy(d->slot, d->orig, sizeof(d->slot));
	m->st.dirty_nodes++;
	*out = d;
	return 0;
}

/* Release what a dirty subtree owns and free it.  The reference on
 * d->base belongs to d's parent slot and is not touched here. */
int pxi_dnode_drop(px_map *m, struct px_dnode *d, unsigned level)
{
	int r, err = 0;

	for (unsigned i = 0; i < PX_NODE_SLOTS; i++) {
		if (d->child[i]) {
			r = pxi_dnode_drop(m, d->child[i], level - 1);
			if (r < 0 && !err)
				err = r;
		}
		if (!pxi_eq(&d->slot[i], &d->orig[i])) {
			r = pxi_release(&m->x, &d->slot[i], level - 1);
			if (r < 0 && !err)
				err = r;
		}
	}
	free(d);
	m->st.dirty_nodes--;
	return err;
}

/* Put n (whose reference the caller hands over) in slot i of d, a node
 * at 'level'.  There must be no dirty child at i. */
int pxi_slot_set(px_map *m, struct px_dnode *d, unsigned i, const cas_name *n,
		 unsigned level)
{
	int r;

	if (pxi_eq(n, &d->slot[i])) /* already held: the slot's suffices */
		return pxi_release(&m->x, n, level - 1);
	if (!pxi_eq(&d->slot[i], &d->orig[i])) {
		r = pxi_release(&m->x, &d->slot[i], level - 1);
		if (r < 0)
			return r;
	}
	d->slot[i] = *n;
	if (pxi_eq(n, &d->orig[i])) { /* borrowed again from base */
		r = pxi_release(&m->x, n, level - 1);
		if (r < 0) {
			m->broken = 1;
			return r;
		}
	}
	return 0;
}

int pxi_make_top_dirty(px_map *m)
{
	if (m->top)
		return 0;
	return pxi_dnode_new(m, &m->root, &m->top);
}

int pxi_child_dirty(px_map *m, struct px_dnode *d, unsigned i,
		    struct px_dnode **out)
{
	int r;

	if (!d->child[i]) {
		r = pxi_dnode_new(m, &d->slot[i], &d->child[i]);
		if (r < 0)
			return r;
	}
	*out = d->child[i];
	return 0;
}
