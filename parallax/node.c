/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * node.c - reading a stored map node: the cache first, the store on a
 * miss, and the tree's geometry (px_height).
 *
 * A node is CAS_CHUNK_SIZE bytes holding PX_NODE_SLOTS names and nothing
 * else: no header, no level, no byte order to decode.  Its name is
 * SHA-256(0x01 || content) (cas_hash_node), which is checked on every
 * read from the store, so a damaged or misplaced node is -EIO, never a
 * wrong map; what the cache holds was checked when it came in.
 */
#include <errno.h>

#include "parallax/internal.h"

unsigned px_height(uint64_t nblocks)
{
	unsigned h = 1;

	while (h < PX_MAX_HEIGHT && nblocks > pxi_span(h))
		h++;
	return h;
}

int pxi_node_read(struct pxi_ctx *x, const cas_name *node, unsigned first,
		  unsigned count, cas_name *out)
{
	cas_name buf[PX_NODE_SLOTS], check;
	int r;

	if (first > PX_NODE_SLOTS || count > PX_NODE_SLOTS - first)
		return -EINVAL;
	if (cas_name_is_hole(node)) {
		memset(out, 0, count * sizeof(*out));
		return 0;
	}
	if (x->st) /* lookups may run on several threads at once */
		__atomic_fetch_add(&x->st->node_reads, 1, __ATOMIC_RELAXED);
	if (x->pc && pxi_cache_get(x->pc, node, first, count, out))
		return 0;
	r = cas_get(x->c, node, buf, 0);
	if (r < 0)
		return r;
	cas_hash_node(buf, &check);
	if (!pxi_eq(&check, node))
		return -EIO;
	if (x->pc)
		pxi_cache_put(x->pc, node, buf);
	memcpy(out, buf + first, count * sizeof(*out));
	return 0;
}
