/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cache.c - the node cache: name -> node content, shared by every map of
 * a store and by every thread that reads them.
 *
 * The idea: nodes are immutable and named by their content, so an entry
 * is right forever and the cache needs no invalidation at all, only a
 * bound.  Entries live in one array; a hash table of chains (indices)
 * finds them; CLOCK (a 'used' bit and a sweeping hand) picks the victim.
 * Readers copy the slots they need under the mutex, never a pointer into
 * the cache, so eviction cannot pull a node from under anyone.
 *
 * Invariants: at most max_nodes entries; a name is in at most one entry;
 * every chain holds exactly the valid entries that hash to it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "parallax/internal.h"

#define NIL (-1)

struct pxc_entry {
	cas_name name;
	int32_t next; /* hash chain */
	uint8_t valid;
	uint8_t used; /* CLOCK's second chance */
	cas_name slot[PX_NODE_SLOTS];
};

struct px_cache {
	pthread_mutex_t lock;
	size_t n;    /* entries */
	size_t hand; /* CLOCK */
	uint32_t mask;
	int32_t *bucket;
	struct pxc_entry *e;
	struct px_cache_stats st;
};

int px_cache_create(size_t max_nodes, px_cache **out)
{
	px_cache *pc;
	size_t nb = 1;

	if (max_nodes == 0 || max_nodes > INT32_MAX / 2)
		return -EINVAL;
	while (nb < 2 * max_nodes)
		nb <<= 1;
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	pc->bucket = malloc(nb * sizeof(*pc->bucket));
	pc->e = calloc(max_nodes, sizeof(*pc->e));
	if (!pc->bucket || !pc->e) {
		free(pc->bucket);
		free(pc->e);
		free(pc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nb; i++)
		pc->bucket[i] = NIL;
	pc->n = max_nodes;
	pc->mask = (uint32_t)(nb - 1);
	pthread_mutex_init(&pc->lock, NULL);
	*out = pc;
	return 0;
}

void px_cache_destroy(px_cache *pc)
{
	if (!pc)
		return;
	pthread_mutex_destroy(&pc->lock);
	free(pc->bucket);
	free(pc->e);
	free(pc);
}

void px_cache_stats(px_cache *pc, struct px_cache_stats *st)
{
	pthread_mutex_lock(&pc->lock);
	*st = pc->st;
	pthread_mutex_unlock(&pc->lock);
}

/* Names are SHA-256 outputs: any 4 bytes of them are a good hash. */
static uint32_t pxc_hash(const px_cache *pc, const cas_name *n)
{
	uint32_t h;

	memcpy(&h, n->b, sizeof(h));
	return h & pc->mask;
}

static int32_t pxc_find(const px_cache *pc, const cas_name *n)
{
	for (int32_t i = pc->bucket[pxc_hash(pc, n)]; i != NIL;
	     i = pc->e[i].next)
		if (pxi_eq(&pc->e[i].name, n))
			return i;
	return NIL;
}

static void pxc_unlink(px_cache *pc, int32_t idx)
{
	int32_t *p = &pc->bucket[pxc_hash(pc, &pc->e[idx].name)];

	while (*p != idx)
		p = &pc->e[*p].next;
	*p = pc->e[idx].next;
	pc->e[idx].valid = 0;
	pc->st.nodes--;
	pc->st.evictions++;
}

/* CLOCK: the first entry that is free or was not used since the hand last
 * passed it. */
static int32_t pxc_victim(px_cache *pc)
{
	for (;;) {
		struct pxc_entry *e = &pc->e[pc->hand];
		int32_t idx = (int32_t)pc->hand;

		pc->hand = (pc->hand + 1) % pc->n;
		if (!e->valid)
			return idx;
		if (e->used) {
			e->used = 0;
			continue;
		}
		pxc_unlink(pc, idx);
		return idx;
	}
}

int pxi_cache_get(px_cache *pc, const cas_name *node, unsigned first,
		  unsigned count, cas_name *out)
{
	int32_t i;

	pthread_mutex_lock(&pc->lock);
	i = pxc_find(pc, node);
	if (i != NIL) {
		memcpy(out, pc->e[i].slot + first, count * sizeof(*out));
		pc->e[i].used = 1;
		pc->st.hits++;
	} else {
		pc->st.misses++;
	}
	pthread_mutex_unlock(&pc->lock);
	return i != NIL;
}

void pxi_cache_put(px_cache *pc, const cas_name *node, const cas_name *slots)
{
	int32_t i;
	uint32_t h;

	pthread_mutex_lock(&pc->lock);
	if (pxc_find(pc, node) == NIL) { /* another reader may have won */
		i = pxc_victim(pc);
		h = pxc_hash(pc, node);
		pc->e[i].name = *node;
		memcpy(pc->e[i].slot, slots, sizeof(pc->e[i].slot));
		pc->e[i].valid = 1;
		pc->e[i].used = 0;
		pc->e[i].next = pc->bucket[h];
		pc->bucket[h] = i;
		pc->st.nodes++;
	}
	pthread_mutex_unlock(&pc->lock);
}
