/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nameset.c - a counting hash set of chunk names (fsck's expected counts,
 * usage's distinct chunks, scrub's damaged names).  Open addressing keyed
 * by the name's first 8 bytes; SHA-256 output needs no further mixing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blkstore/bs_int.h"

int bs_nameset_init(struct bs_nameset *ns)
{
	ns->cap = 1024;
	ns->n = 0;
	ns->v = calloc(ns->cap, sizeof(*ns->v));
	return ns->v ? 0 : -ENOMEM;
}

void bs_nameset_free(struct bs_nameset *ns)
{
	free(ns->v);
	ns->v = NULL;
	ns->cap = ns->n = 0;
}

static size_t slot(const struct bs_nameset_ent *v, size_t cap,
		   const cas_name *n)
{
	uint64_t h;
	memcpy(&h, n->b, sizeof(h));
	size_t i = (size_t)h & (cap - 1);
	while (v[i].used && memcmp(v[i].name.b, n->b, CAS_NAME_SIZE))
		i = (i + 1) & (cap - 1);
	return i;
}

struct bs_nameset_ent *bs_nameset_find(struct bs_nameset *ns,
				       const cas_name *n)
{
	struct bs_nameset_ent *e = &ns->v[slot(ns->v, ns->cap, n)];
	return e->used ? e : NULL;
}

int64_t bs_nameset_add(struct bs_nameset *ns, const cas_name *n)
{
	if ((ns->n + 1) * 2 > ns->cap) {
		size_t cap = ns->cap * 2;
		struct bs_nameset_ent *v = calloc(cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < ns->cap; i++)
			if (ns->v[i].used)
				v[slot(v, cap, &ns->v[i].name)] = ns->v[i];
		free(ns->v);
		ns->v = v;
		ns->cap = cap;
	}
	struct bs_nameset_ent *e = &ns->v[slot(ns->v, ns->cap, n)];
	if (!e->used) {
		memset(e, 0, sizeof(*e));
		e->name = *n;
		e->used = true;
		ns->n++;
	}
	return ++e->count;
}
