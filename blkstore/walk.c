/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * walk.c - visit every chunk reference a set of roots holds, the way the
 * reference counts are defined (docs/parallax.md): a root counts once per
 * holder; a stored node holds one reference per non-hole slot, counted
 * once per distinct node however many parents name it.  So a walk over
 * all roots with one shared name set reproduces every count exactly, and
 * it visits each distinct node once (cost follows the store's unique
 * content, not the sum of disk sizes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blkstore/bs_int.h"

struct frame {
	cas_name name;
	unsigned level;
};

int bs_walk(bs_store *s, struct bs_nameset *ns, const cas_name *root,
	    uint64_t nblocks, bs_walk_fn fn, bs_walk_err_fn err_fn, void *arg)
{
	uint8_t node[CAS_CHUNK_SIZE];
	struct frame *st = NULL;
	size_t n = 0, cap = 0;
	unsigned h = px_height(nblocks);
	int rc;

	if (cas_name_is_hole(root))
		return 0;
	int64_t c = bs_nameset_add(ns, root);
	if (c < 0)
		return (int)c;
	rc = fn ? fn(arg, root, h, c == 1) : 0;
	if (rc || c != 1)
		return rc;
	cap = 64;
	st = malloc(cap * sizeof(*st));
	if (!st)
		return -ENOMEM;
	st[n++] = (struct frame){*root, h};
	while (n && !rc) {
		struct frame f = st[--n];
		int e = cas_get(s->c, &f.name, node, 0);
		if (e) {
			if (err_fn)
				err_fn(arg, &f.name, e);
			continue;
		}
		for (unsigned i = 0; i < PX_NODE_SLOTS && !rc; i++) {
			cas_name child;
			memcpy(child.b, node + i * CAS_NAME_SIZE, CAS_NAME_SIZE);
			if (cas_name_is_hole(&child))
				continue;
			c = bs_nameset_add(ns, &child);
			if (c < 0) {
				rc = (int)c;
				break;
			}
			rc = fn ? fn(arg, &child, f.level - 1, c == 1) : 0;
			if (rc || f.level == 1 || c != 1)
				continue;
			if (n == cap) {
				cap *= 2;
				struct frame *ns2 = realloc(st, cap * sizeof(*st));
				if (!ns2) {
					rc = -ENOMEM;
					break;
				}
				st = ns2;
			}
			st[n++] = (struct frame){child, f.level - 1};
		}
	}
	free(st);
	return rc;
}
