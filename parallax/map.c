/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * map.c - an open map's life (open, discard, close) and its reads.
 *
 * The idea: an open map is a session on top of its last committed root.
 * Reads walk the dirty nodes where the session changed something and the
 * stored nodes (through the cache) everywhere else.  Discard drops the
 * dirty nodes' owned references and the root slot's, and the map is back
 * at its session's start exactly (see internal.h for why that is enough).
 *
 * Invariants: the disk's one reference is on 'committed' all session long
 * (px_map_commit moves it); the root slot owns a reference on 'root' only
 * when root != committed; blocks at or past nblocks are holes.
 */
#include <errno.h>
#include <stdlib.h>

#include "parallax/internal.h"

int px_map_open(cas *c, px_cache *pc, const cas_name *root, uint64_t nblocks,
		px_map **out)
{
	px_map *m;
	int r;

	if (!c || !root || !out)
		return -EINVAL;
	if (nblocks > PX_MAX_BLOCKS)
		return -EFBIG;
	if (!cas_name_is_hole(root)) {
		r = cas_lookup(c, root, NULL);
		if (r < 0)
			return r;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->x.c = c;
	m->x.pc = pc;
	m->x.st = &m->st;
	m->committed = m->root = *root;
	m->committed_height = m->height = px_height(nblocks);
	m->committed_nblocks = m->nblocks = nblocks;
	*out = m;
	return 0;
}

int px_map_discard(px_map *m)
{
	int r = 0, r2 = 0;

	if (m->broken)
		return PX_EBROKEN;
	if (m->top) {
		r = pxi_dnode_drop(m, m->top, m->height);
		m->top = NULL;
	}
	if (!pxi_eq(&m->root, &m->committed))
		r2 = pxi_release(&m->x, &m->root, m->height);
	m->root = m->committed;
	m->height = m->committed_height;
	m->nblocks = m->committed_nblocks;
	if (r < 0 || r2 < 0) {
		m->broken = 1;
		return r < 0 ? r : r2;
	}
	return 0;
}

/* Free a broken map's memory without touching any count. */
static void pxi_dnode_free(struct px_dnode *d)
{
	for (unsigned i = 0; i < PX_NODE_SLOTS; i++)
		if (d->child[i])
			pxi_dnode_free(d->child[i]);
	free(d);
}

int px_map_close(px_map *m)
{
	int r;

	if (!m)
		return 0;
	r = px_map_discard(m);
	if (m->top)
		pxi_dnode_free(m->top);
	free(m);
	return r;
}

/* Slots [i, i + count) of the leaf holding 'block' (count stays within
 * that leaf). */
static int pxi_leaf_read(px_map *m, uint64_t block, unsigned count,
			 cas_name *out)
{
	const struct px_dnode *d = m->top;
	cas_name n = m->root;
	unsigned level, i;
	int r;

	for (level = m->height; level > 1; level--) {
		i = pxi_index(block, level);
		if (d && d->child[i]) {
			d = d->child[i];
			continue;
		}
		if (d) {
			n = d->slot[i];
			d = NULL;
			continue;
		}
		if (cas_name_is_hole(&n))
			break;
		r = pxi_node_read(&m->x, &n, i, 1, &n);
		if (r < 0)
			return r;
	}
	i = pxi_index(block, 1);
	if (d) {
		memcpy(out, d->slot + i, count * sizeof(*out));
		return 0;
	}
	return pxi_node_read(&m->x, &n, i, count, out);
}

int px_map_lookup(px_map *m, uint64_t block, cas_name *out)
{
	return px_map_lookup_range(m, block, 1, out);
}

int px_map_lookup_range(px_map *m, uint64_t first, uint64_t count,
			cas_name *out)
{
	if (m->broken)
		return PX_EBROKEN;
	if (first > m->nblocks || count > m->nblocks - first)
		return -ERANGE;
	while (count) {
		unsigned i = pxi_index(first, 1);
		unsigned n = PX_NODE_SLOTS - i;
		int r;

		if (n > count)
			n = (unsigned)count;
		r = pxi_leaf_read(m, first, n, out);
		if (r < 0)
			return r;
		first += n;
		count -= n;
		out += n;
	}
	return 0;
}

void px_map_root(const px_map *m, cas_name *root, uint64_t *nblocks)
{
	if (root)
		*root = m->committed;
	if (nblocks)
		*nblocks = m->committed_nblocks;
}

uint64_t px_map_nblocks(const px_map *m)
{
	return m->nblocks;
}

int px_map_dirty(const px_map *m)
{
	return m->top || !pxi_eq(&m->root, &m->committed) ||
	       m->nblocks != m->committed_nblocks;
}

void px_map_stats(const px_map *m, struct px_map_stats *st)
{
	*st = m->st;
}

void px_map_stats_reset(px_map *m)
{
	uint64_t dirty = m->st.dirty_nodes;

	memset(&m->st, 0, sizeof(m->st));
	m->st.dirty_nodes = dirty;
}
