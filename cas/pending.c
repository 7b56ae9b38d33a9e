/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pending.c - the table of chunk changes made since the last cas_sync().
 *
 * The one idea: reference counting is batched and coalesced here.  Every
 * name touched since the last commit has one entry holding its committed
 * count and a signed delta; a ref followed by an unref cancels in memory
 * and costs the index nothing.  At commit each entry becomes at most one
 * index write, applied in name order.
 *
 * After a commit the entries stay as a cache of the index ("clean":
 * delta 0, base = the committed count, location known), so a name put or
 * read again soon after costs no LMDB lookup; past PEND_CACHE_MAX entries
 * the cache starts over.  gc empties it (compaction moves locations).
 *
 * Open addressing with linear probing, keyed by the name's first 8 bytes
 * (SHA-256 output is uniform).  No single deletes: pend_settle() rebuilds
 * the table.  Locking is the caller's (see cas_int.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "cas/cas_int.h"

#define PEND_MIN_CAP 1024u

static size_t pend_hash(const cas_name *n)
{
	uint64_t h;
	memcpy(&h, n->b, sizeof(h));
	return (size_t)h;
}

int pend_init(struct pend_table *t)
{
	t->slots = calloc(PEND_MIN_CAP, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->cap = PEND_MIN_CAP;
	t->count = 0;
	return 0;
}

void pend_free(struct pend_table *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->count = 0;
}

struct pend *pend_find(const struct pend_table *t, const cas_name *n)
{
	size_t mask = t->cap - 1;
	for (size_t i = pend_hash(n) & mask;; i = (i + 1) & mask) {
		struct pend *p = &t->slots[i];
		if (!p->used)
			return NULL;
		if (memcmp(p->name.b, n->b, CAS_NAME_SIZE) == 0)
			return p;
	}
}

static struct pend *slot_for(struct pend *slots, size_t cap, const cas_name *n)
{
	size_t mask = cap - 1;
	size_t i = pend_hash(n) & mask;
	while (slots[i].used)
		i = (i + 1) & mask;
	return &slots[i];
}

static int pend_grow(struct pend_table *t)
{
	size_t cap = t->cap * 2;
	struct pend *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].used)
			*slot_for(slots, cap, &t->slots[i].name) = t->slots[i];
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return 0;
}

struct pend *pend_insert(struct pend_table *t, const cas_name *n)
{
	if ((t->count + 1) * 2 > t->cap && pend_grow(t) < 0)
		return NULL;
	struct pend *p = slot_for(t->slots, t->cap, n);
	memset(p, 0, sizeof(*p));
	p->name = *n;
	p->used = 1;
	t->count++;
	return p;
}

int pend_settle(struct pend_table *t, size_t max_keep)
{
	size_t keep = 0;
	for (size_t i = 0; i < t->cap; i++) {
		struct pend *p = &t->slots[i];
		if (p->used && (p->in_index || (int64_t)p->base + p->delta > 0))
			keep++;
	}
	if (keep > max_keep) {
		pend_clear(t);
		return 0;
	}
	size_t cap = PEND_MIN_CAP;
	while (cap < 2 * (keep + 1))
		cap *= 2;
	struct pend *slots = calloc(cap, sizeof(*slots));
	if (!slots) {
		pend_clear(t);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->cap; i++) {
		struct pend *p = &t->slots[i];
		int64_t fin = (int64_t)p->base + p->delta;
		if (!p->used || (!p->in_index && fin <= 0))
			continue; /* never indexed: nothing to cache */
		struct pend *q = slot_for(slots, cap, &p->name);
		*q = *p;
		q->base = (uint32_t)fin;
		q->delta = 0;
		q->in_index = 1;
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	t->count = keep;
	t->dirty = 0;
	return 0;
}

void pend_clear(struct pend_table *t)
{
	if (t->count == 0)
		return;
	/* After a very large batch, give the memory back. */
	if (t->cap > 64 * PEND_MIN_CAP) {
		struct pend *slots = calloc(PEND_MIN_CAP, sizeof(*slots));
		if (slots) {
			free(t->slots);
			t->slots = slots;
			t->cap = PEND_MIN_CAP;
			t->count = 0;
			t->dirty = 0;
			return;
		}
	}
	memset(t->slots, 0, t->cap * sizeof(*t->slots));
	t->count = 0;
	t->dirty = 0;
}
