/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * workload.c - the torture's operation generator and its model.
 *
 * The one idea: an operation is a pure function of the seed and the
 * model's state before it.  So the child (which runs it on a store) and
 * the parent (which only models) generate the same sequence, and the
 * parent can stop at any operation to know what the store must hold.
 * The generator never looks at a store's answers; what the store must
 * answer is part of the operation (op->expect).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/crash/workload.h"

#define POOL_BLOCKS 8u
#define HOT_BYTES (256u << 10) /* half the writes land here: overwrites */
#define MAX_WRITE (64u << 10)

static uint64_t rnd(struct wl *w) /* splitmix64 */
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(struct wl *w, uint64_t n)
{
	return n ? rnd(w) % n : 0;
}

uint64_t wl_nblocks(uint64_t size)
{
	return (size + BS_BLOCK_SIZE - 1) / BS_BLOCK_SIZE;
}

uint64_t wl_hash(const uint8_t *b)
{
	uint64_t h = 0x243f6a8885a308d3ull;
	for (unsigned i = 0; i < BS_BLOCK_SIZE; i += 8) {
		uint64_t x;
		memcpy(&x, b + i, 8);
		h = (h ^ x) * 0x9fb21c651e98df25ull;
		h ^= h >> 29;
	}
	return h;
}

void wl_cfg_init(struct wl_cfg *c, uint64_t seed, uint64_t ops)
{
	static const uint64_t limits[] = {16384, 64, 5};
	memset(c, 0, sizeof(*c));
	c->seed = seed;
	c->ops = ops ? ops : 300;
	c->max_size = 4u << 20;
	c->max_disks = 4;
	c->max_snaps = 6;
	/* Small dirty limits make disks commit on their own mid-write. */
	c->dirty_limit = limits[(seed >> 7) % 3];
}

int wl_init(struct wl *w, const struct wl_cfg *c)
{
	memset(w, 0, sizeof(*w));
	w->cfg = *c;
	w->rng = c->seed;
	w->pool = malloc(POOL_BLOCKS * BS_BLOCK_SIZE);
	w->buf = malloc(MAX_WRITE);
	if (!w->pool || !w->buf) {
		wl_free(w);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < POOL_BLOCKS * BS_BLOCK_SIZE; i += 8) {
		uint64_t x = rnd(w);
		memcpy(w->pool + i, &x, 8);
	}
	return 0;
}

void wl_free(struct wl *w)
{
	for (int i = 0; i < w->nent; i++)
		free(w->ent[i].data);
	free(w->ent);
	free(w->pool);
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

int wl_find(const struct wl *w, const char *name)
{
	for (int i = 0; i < w->nent; i++)
		if (!strcmp(w->ent[i].name, name))
			return i;
	return -1;
}

/* ---- choosing ---- */

/* A random live entity: disks (snap 0), snapshots (1) or either (-1). */
static int pick(struct wl *w, int snap, bool no_snaps)
{
	int n = 0, i;
	for (i = 0; i < w->nent; i++)
		if (w->ent[i].live && (snap < 0 || w->ent[i].snap == snap) &&
		    !(no_snaps && w->ent[i].nsnaps))
			n++;
	if (!n)
		return -1;
	int want = (int)below(w, (uint64_t)n);
	for (i = 0; i < w->nent; i++)
		if (w->ent[i].live && (snap < 0 || w->ent[i].snap == snap) &&
		    !(no_snaps && w->ent[i].nsnaps) && want-- == 0)
			break;
	return i;
}

static unsigned count(const struct wl *w, bool snap)
{
	unsigned n = 0;
	for (int i = 0; i < w->nent; i++)
		n += w->ent[i].live && w->ent[i].snap == snap;
	return n;
}

static uint64_t rand_size(struct wl *w)
{
	uint64_t maxb = w->cfg.max_size / BS_BLOCK_SIZE;
	uint64_t size = (16 + below(w, maxb - 15)) * BS_BLOCK_SIZE;
	if (below(w, 3) == 0) /* a partial last block */
		size -= BS_SECTOR * (1 + below(w, 7));
	return size;
}

static void rand_range(struct wl *w, uint64_t size, uint64_t *off,
		       uint64_t *len)
{
	uint64_t span = (below(w, 2) && size > HOT_BYTES) ? HOT_BYTES : size;
	switch (below(w, 3)) {
	case 0: /* whole blocks */
		*off = below(w, wl_nblocks(span)) * BS_BLOCK_SIZE;
		*len = (1 + below(w, 16)) * BS_BLOCK_SIZE;
		break;
	case 1: /* sectors */
		*off = below(w, span / BS_SECTOR) * BS_SECTOR;
		*len = (1 + below(w, 64)) * BS_SECTOR;
		break;
	default: /* bytes, unaligned */
		*off = below(w, span);
		*len = 1 + below(w, 12000);
		break;
	}
	if (*off >= size)
		*off = size - 1;
	if (*len > size - *off)
		*len = size - *off;
}

static void fill(struct wl *w, uint64_t off, uint64_t len)
{
	uint64_t mode = below(w, 8), base = rnd(w), i;
	const uint8_t *blk = w->pool + below(w, POOL_BLOCKS) * BS_BLOCK_SIZE;
	if (mode <= 2) { /* random */
		for (i = 0; i < len; i += 8) {
			uint64_t x = rnd(w);
			memcpy(w->buf + i, &x, len - i < 8 ? len - i : 8);
		}
	} else if (mode <= 4) { /* compressible */
		for (i = 0; i < len; i++)
			w->buf[i] = (uint8_t)(base + (i >> 8));
	} else if (mode <= 6) { /* a pool block: the same content elsewhere */
		for (i = 0; i < len; i++)
			w->buf[i] = blk[(off + i) % BS_BLOCK_SIZE];
	} else { /* zeros */
		memset(w->buf, 0, len);
	}
}

/* A new entity slot, not live until the operation is applied. */
static int reserve(struct wl *w, const char *name)
{
	if (w->nent == w->capent) {
		int cap = w->capent ? 2 * w->capent : 32;
		struct wl_ent *v = realloc(w->ent, (size_t)cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->ent = v;
		w->capent = cap;
	}
	struct wl_ent *e = &w->ent[w->nent];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->disk = -1;
	return w->nent++;
}

static bool nonzero(const struct wl_ent *e, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		if (e->data[i])
			return true;
	return false;
}

static const unsigned weights[W_NKINDS] = {
	[W_WRITE] = 36,   [W_ZEROES] = 4,   [W_DISCARD] = 4, [W_FLUSH] = 8,
	[W_FUA] = 5,      [W_SNAP] = 5,     [W_CLONE] = 3,   [W_CREATE] = 3,
	[W_DEL_SNAP] = 4, [W_DEL_DISK] = 2, [W_RESIZE] = 5,  [W_GC] = 3,
	[W_REOPEN] = 1,   [W_READ] = 6};

static unsigned weight(const struct wl *w, unsigned k)
{
	if (k == W_HOLD)
		return w->cfg.hold ? 4 : 0;
	if (k == W_REBUILD)
		return w->cfg.rebuild ? 1 : 0;
	return k < W_NKINDS ? weights[k] : 0;
}

static enum wl_kind rand_kind(struct wl *w)
{
	unsigned total = 0, k;
	for (k = 0; k < W_NKINDS; k++)
		total += weight(w, k);
	unsigned x = (unsigned)below(w, total);
	for (k = 0; k < W_NKINDS; k++) {
		if (x < weight(w, k))
			break;
		x -= weight(w, k);
	}
	return (enum wl_kind)k;
}

int wl_next(struct wl *w, uint64_t k, struct wl_op *op)
{
	char name[BS_SPEC_MAX];
	memset(op, 0, sizeof(*op));
	op->k = k;
	op->e = op->e2 = -1;
	if (k >= w->cfg.ops) {
		op->kind = W_CLOSE;
		return 0;
	}
	enum wl_kind kind = rand_kind(w);
	unsigned disks = count(w, false), snaps = count(w, true);
	/* Preconditions; an impossible choice becomes a write (or a
	 * create when there is no disk at all). */
	if ((kind == W_SNAP && (!disks || snaps >= w->cfg.max_snaps)) ||
	    ((kind == W_CLONE || kind == W_CREATE) &&
	     disks >= w->cfg.max_disks) ||
	    ((kind == W_DEL_SNAP || kind == W_HOLD) && !snaps) ||
	    (kind == W_DEL_DISK && pick(w, 0, true) < 0))
		kind = W_WRITE;
	if (!disks && kind != W_GC) /* no disk means no snapshot either */
		kind = W_CREATE;
	op->kind = kind;

	switch (kind) {
	case W_WRITE:
	case W_FUA:
	case W_ZEROES:
	case W_DISCARD:
		op->e = pick(w, 0, false);
		rand_range(w, w->ent[op->e].size, &op->off, &op->len);
		if (op->len > MAX_WRITE)
			op->len = MAX_WRITE;
		if (kind == W_WRITE || kind == W_FUA) {
			fill(w, op->off, op->len);
			op->buf = w->buf;
		}
		break;
	case W_READ:
		op->e = pick(w, -1, false);
		rand_range(w, w->ent[op->e].size, &op->off, &op->len);
		break;
	case W_FLUSH:
		op->e = below(w, 3) ? pick(w, 0, false) : -1;
		break;
	case W_SNAP:
		op->e = pick(w, 0, false);
		snprintf(name, sizeof(name), "%.64s@s%u", w->ent[op->e].name,
			 w->next_snap++);
		op->e2 = reserve(w, name);
		break;
	case W_CLONE:
	case W_CREATE:
		if (kind == W_CLONE)
			op->e = pick(w, -1, false);
		else
			op->size = rand_size(w);
		snprintf(name, sizeof(name), "d%u", w->next_disk++);
		op->e2 = reserve(w, name);
		break;
	case W_DEL_SNAP:
	case W_HOLD:
		op->e = pick(w, 1, false);
		break;
	case W_DEL_DISK:
		op->e = pick(w, 0, true);
		break;
	case W_RESIZE: {
		op->e = pick(w, 0, false);
		const struct wl_ent *e = &w->ent[op->e];
		op->size = rand_size(w);
		if (op->size == e->size)
			op->size = e->size > BS_BLOCK_SIZE
					   ? e->size - BS_SECTOR
					   : e->size + BS_SECTOR;
		if (op->size < e->size) {
			op->flags = below(w, 4) ? BS_RESIZE_FORCE : 0;
			if (!op->flags && nonzero(e, op->size, e->size))
				op->expect = BS_EDATALOSS;
		}
		break;
	}
	default: /* W_GC, W_REOPEN, W_REBUILD: the whole store */
		break;
	}
	return op->e2 == -ENOMEM ? -ENOMEM : 0;
}

/* ---- the model ---- */

static int set_size(struct wl_ent *e, uint64_t size)
{
	size_t have = (size_t)wl_nblocks(e->size) * BS_BLOCK_SIZE;
	size_t want = (size_t)wl_nblocks(size) * BS_BLOCK_SIZE;
	if (size < e->size)
		memset(e->data + size, 0, (size_t)(e->size - size));
	if (want != have || !e->data) {
		uint8_t *d = realloc(e->data, want ? want : 1);
		if (!d)
			return -ENOMEM;
		if (want > have)
			memset(d + have, 0, want - have);
		e->data = d;
	}
	e->size = size;
	return 0;
}

static int copy_from(struct wl_ent *dst, const struct wl_ent *src)
{
	dst->size = 0;
	int rc = set_size(dst, src->size);
	if (!rc)
		memcpy(dst->data, src->data,
		       (size_t)wl_nblocks(src->size) * BS_BLOCK_SIZE);
	return rc;
}

int wl_apply(struct wl *w, const struct wl_op *op)
{
	struct wl_ent *e = op->e >= 0 ? &w->ent[op->e] : NULL;
	struct wl_ent *n = op->e2 >= 0 ? &w->ent[op->e2] : NULL;
	int rc = 0;
	switch (op->kind) {
	case W_WRITE:
	case W_FUA:
		memcpy(e->data + op->off, op->buf, (size_t)op->len);
		break;
	case W_ZEROES:
	case W_DISCARD:
		memset(e->data + op->off, 0, (size_t)op->len);
		break;
	case W_SNAP:
		rc = copy_from(n, e);
		n->snap = true;
		n->disk = op->e;
		n->live = true;
		e->nsnaps++;
		break;
	case W_CLONE:
		rc = copy_from(n, e);
		n->live = true;
		break;
	case W_CREATE:
		rc = set_size(n, op->size);
		n->live = true;
		break;
	case W_DEL_SNAP:
		w->ent[e->disk].nsnaps--;
		/* fall through */
	case W_DEL_DISK:
		e->live = false;
		free(e->data);
		e->data = NULL;
		break;
	case W_RESIZE:
		if (op->expect == 0)
			rc = set_size(e, op->size);
		break;
	default:
		break;
	}
	return rc;
}

bool wl_is_flush(const struct wl_op *op)
{
	return op->kind == W_FLUSH || op->kind == W_FUA ||
	       op->kind == W_REOPEN || op->kind == W_REBUILD ||
	       op->kind == W_CLOSE;
}

const char *wl_kind_name(enum wl_kind k)
{
	static const char *const names[W_NKINDS] = {
		"write",       "zeroes", "discard",
		"flush",       "fua",    "snapshot",
		"clone",       "create", "delete-snapshot",
		"delete-disk", "resize", "gc",
		"reopen",      "read",   "hold",
		"rebuild",     "close"};
	return k < W_NKINDS ? names[k] : "?";
}

void wl_describe(const struct wl *w, const struct wl_op *op, char *out,
		 size_t n)
{
	const char *e = op->e >= 0 ? w->ent[op->e].name : "store";
	const char *e2 = op->e2 >= 0 ? w->ent[op->e2].name : "";
	snprintf(out, n,
		 "op %llu %s %s%s%s off=%llu len=%llu size=%llu flags=%u",
		 (unsigned long long)op->k, wl_kind_name(op->kind), e,
		 *e2 ? " -> " : "", e2, (unsigned long long)op->off,
		 (unsigned long long)op->len, (unsigned long long)op->size,
		 op->flags);
}
