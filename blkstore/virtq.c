/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtq.c - guest memory translation and the virtio 1.x split virtqueue,
 * walked from the device side.
 *
 * The one idea: everything in guest memory is the guest's to change at
 * any moment, so each value is read once into a local and checked there
 * (a descriptor, an index), and every address goes through the one
 * translation, vblk_mem_map(), which only ever compares gpa - start with
 * a region's size and never forms gpa + len.
 *
 * Ordering (spec "Virtqueues", and the Linux driver's barriers): read
 * avail->idx, acquire fence, then ring entries and descriptors; write the
 * used element, release fence, then used->idx; a full fence between
 * publishing used->idx (or avail_event) and reading what the driver
 * decides from it (used_event, avail->flags, avail->idx again), so that
 * neither side misses the other's last move.
 *
 * Chains: a chain in the descriptor table is at most 'size' long and an
 * indirect table at most its own entry count (VBLK_MAX_SEGS at most), so
 * a loop is a chain that runs out of budget.  An indirect descriptor must
 * not have NEXT and must not sit in an indirect table; it may end a
 * direct chain.  Device-readable buffers come before device-writable
 * ones.  Breaking any of these rules is a broken ring (-EPROTO).  A
 * buffer outside guest memory, or a chain needing more than
 * VBLK_MAX_SEGS iovecs, only spoils the request (chain->err).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "blkstore/vblk.h"
#include "common/endian.h"

/* ---- guest memory ---- */

int vblk_mem_check(const struct vblk_mem *m)
{
	if (!m || (m->nregions && !m->regions))
		return -EINVAL;
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct vblk_mem_region *a = &m->regions[i];
		if (!a->size || !a->host || a->size - 1 > UINT64_MAX - a->gpa)
			return -EINVAL;
		for (unsigned j = 0; j < i; j++) {
			const struct vblk_mem_region *b = &m->regions[j];
			/* Disjoint iff one ends before the other starts
			 * (last bytes, so no sum can wrap). */
			if (!(a->gpa + (a->size - 1) < b->gpa ||
			      b->gpa + (b->size - 1) < a->gpa))
				return -EINVAL;
		}
	}
	return 0;
}

void *vblk_mem_map(const struct vblk_mem *m, uint64_t gpa, uint64_t len,
		   uint64_t *run)
{
	*run = 0;
	if (!len)
		return NULL;
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct vblk_mem_region *r = &m->regions[i];
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		uint64_t off = gpa - r->gpa;
		uint64_t left = r->size - off;
		*run = len < left ? len : left;
		return (uint8_t *)r->host + off;
	}
	return NULL;
}

void *vblk_mem_ptr(const struct vblk_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t run;
	void *p = vblk_mem_map(m, gpa, len, &run);
	return p && run == len ? p : NULL;
}

int vblk_mem_iov(const struct vblk_mem *m, uint64_t gpa, uint64_t len,
		 struct iovec *iov, unsigned max)
{
	unsigned n = 0;
	if (len && len - 1 > UINT64_MAX - gpa)
		return -EFAULT; /* wraps past 2^64 */
	while (len) {
		uint64_t run;
		void *p = vblk_mem_map(m, gpa, len, &run);
		if (!p)
			return -EFAULT;
		if (run > SIZE_MAX)
			run = SIZE_MAX;
		if (n == max)
			return -E2BIG;
		iov[n].iov_base = p;
		iov[n].iov_len = (size_t)run;
		n++;
		gpa += run; /* cannot wrap: checked above */
		len -= run;
	}
	return (int)n;
}

/* ---- shared ring fields: single loads and stores, little-endian ---- */

typedef uint16_t __attribute__((may_alias)) u16_alias;
typedef uint32_t __attribute__((may_alias)) u32_alias;

static uint16_t ring_get16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const u16_alias *)p, __ATOMIC_RELAXED));
}

static void ring_put16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((u16_alias *)p, htole16(v), __ATOMIC_RELAXED);
}

static void ring_put32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((u32_alias *)p, htole32(v), __ATOMIC_RELAXED);
}

/* avail: flags, idx, ring[size], used_event; used: flags, idx,
 * ring[size] of {id, len}, avail_event */
#define AVAIL_IDX 2u
#define AVAIL_RING 4u
#define USED_IDX 2u
#define USED_RING 4u

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static void desc_read(const uint8_t *table, uint32_t i, struct desc *d)
{
	uint8_t b[VBLK_DESC_SIZE];
	memcpy(b, table + (size_t)i * VBLK_DESC_SIZE, sizeof(b)); /* once */
	d->addr = le64_get(b);
	d->len = le32_get(b + 8);
	d->flags = le16_get(b + 12);
	d->next = le16_get(b + 14);
}

__attribute__((format(printf, 2, 3))) static int ring_fail(struct vblk_ring *r,
							   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return -EPROTO;
}

/* ---- a pass ---- */

static uint8_t *map_ring(struct vblk_ring *r, const char *what, uint64_t gpa,
			 uint64_t len, unsigned align)
{
	uint8_t *p;
	if (gpa % align) {
		ring_fail(r, "%s ring at 0x%llx is not %u-byte aligned", what,
			  (unsigned long long)gpa, align);
		return NULL;
	}
	p = vblk_mem_ptr(r->mem, gpa, len);
	if (!p) {
		ring_fail(r, "%s ring [0x%llx, +%llu) is not in guest memory",
			  what, (unsigned long long)gpa,
			  (unsigned long long)len);
		return NULL;
	}
	if ((uintptr_t)p % align) {
		ring_fail(r, "%s ring is mapped misaligned in the host", what);
		return NULL;
	}
	return p;
}

int vblk_ring_begin(struct vblk_ring *r, struct vblk_vq *q,
		    const struct vblk_mem *m, uint64_t features)
{
	memset(r, 0, sizeof(*r));
	r->q = q;
	r->mem = m;
	r->indirect = features & VBLK_F_INDIRECT_DESC;
	r->event_idx = features & VBLK_F_EVENT_IDX;
	r->used_start = q->used_idx;
	r->avail_idx = q->last_avail;
	if (!q->size || q->size > VBLK_QUEUE_MAX || (q->size & (q->size - 1)))
		return ring_fail(r, "queue size %u: not a power of two to %u",
				 q->size, VBLK_QUEUE_MAX);
	uint64_t n = q->size, ev = r->event_idx ? 2 : 0;
	r->desc =
		map_ring(r, "descriptor", q->desc_gpa, n * VBLK_DESC_SIZE, 16);
	if (r->desc)
		r->avail = map_ring(r, "available", q->avail_gpa,
				    AVAIL_RING + 2 * n + ev, 2);
	if (r->avail)
		r->used = map_ring(r, "used", q->used_gpa,
				   USED_RING + 8 * n + ev, 4);
	return r->used ? 0 : -EPROTO;
}

/* Add descriptor d's buffer to the chain (it is neither indirect nor out
 * of order: checked by the caller). */
static void chain_add(struct vblk_ring *r, struct vblk_chain *c,
		      const struct desc *d)
{
	bool w = d->flags & VBLK_DESC_F_WRITE;
	unsigned used = c->nr + c->nw;
	int n;
	if (!d->len || c->err)
		return;
	n = vblk_mem_iov(r->mem, d->addr, d->len, c->iov + used,
			 VBLK_MAX_SEGS - used);
	if (n < 0) {
		c->err = n;
		if (n == -E2BIG)
			snprintf(r->why, sizeof(r->why),
				 "chain needs more than %u segments",
				 VBLK_MAX_SEGS);
		else
			snprintf(r->why, sizeof(r->why),
				 "buffer [0x%llx, +%u) is not in guest memory",
				 (unsigned long long)d->addr, d->len);
		return;
	}
	if (w) {
		c->nw += (unsigned)n;
		c->wlen += d->len;
	} else {
		c->nr += (unsigned)n;
		c->rlen += d->len;
	}
}

/* Follow indirect descriptor d (met in the descriptor table, or in an
 * indirect table if in_table): its table and entry count. */
static int indirect_table(struct vblk_ring *r, const struct desc *d,
			  bool in_table, const uint8_t **table, uint32_t *n)
{
	if (!r->indirect)
		return ring_fail(r, "indirect descriptor, not negotiated");
	if (in_table)
		return ring_fail(r, "indirect descriptor in an indirect table");
	if (d->flags & VBLK_DESC_F_NEXT)
		return ring_fail(r, "indirect descriptor with NEXT");
	if (!d->len || d->len % VBLK_DESC_SIZE ||
	    d->len / VBLK_DESC_SIZE > VBLK_MAX_SEGS)
		return ring_fail(r, "indirect table of %u bytes", d->len);
	*table = vblk_mem_ptr(r->mem, d->addr, d->len);
	if (!*table)
		return ring_fail(r,
				 "indirect table [0x%llx, +%u) is not in "
				 "guest memory",
				 (unsigned long long)d->addr, d->len);
	*n = d->len / VBLK_DESC_SIZE;
	return 0;
}

/* Walk the chain at 'head' into c. */
static int chain_walk(struct vblk_ring *r, uint16_t head, struct vblk_chain *c)
{
	const uint8_t *table = r->desc;
	uint32_t tsize = r->q->size, budget = r->q->size, i = head;
	bool in_table = false, seen_write = false;
	uint64_t last_w_addr = 0;
	uint32_t last_w_len = 0;
	struct desc d;
	int rc;

	c->head = head;
	c->nr = c->nw = 0;
	c->rlen = c->wlen = 0;
	c->err = 0;
	c->status = NULL;
	for (;;) {
		if (!budget--)
			return ring_fail(r,
					 "chain at head %u outgrows its "
					 "table of %u: a loop?",
					 head, tsize);
		desc_read(table, i, &d);
		if (d.flags & VBLK_DESC_F_INDIRECT) {
			rc = indirect_table(r, &d, in_table, &table, &tsize);
			if (rc)
				return rc;
			budget = tsize;
			in_table = true;
			i = 0;
			continue;
		}
		if (d.flags & VBLK_DESC_F_WRITE) {
			seen_write = true;
			if (d.len) {
				last_w_addr = d.addr;
				last_w_len = d.len;
			}
		} else if (seen_write) {
			return ring_fail(r, "device-readable descriptor after "
					    "a device-writable one");
		}
		chain_add(r, c, &d);
		if (!(d.flags & VBLK_DESC_F_NEXT))
			break;
		if (d.next >= tsize)
			return ring_fail(r, "next index %u past a table of %u",
					 d.next, tsize);
		i = d.next;
	}
	/* The status byte: the last byte of the writable part. */
	if (last_w_len && last_w_len - 1 <= UINT64_MAX - last_w_addr)
		c->status =
			vblk_mem_ptr(r->mem, last_w_addr + last_w_len - 1, 1);
	return 0;
}

int vblk_ring_pop(struct vblk_ring *r, struct vblk_chain *c)
{
	struct vblk_vq *q = r->q;
	if (q->last_avail == r->avail_idx) {
		r->avail_idx = ring_get16(r->avail + AVAIL_IDX);
		uint16_t pending = (uint16_t)(r->avail_idx - q->last_avail);
		if (pending > q->size)
			return ring_fail(r,
					 "available index moved from %u "
					 "to %u on a queue of %u",
					 q->last_avail, r->avail_idx, q->size);
		if (!pending)
			return 0;
		/* The entries and descriptors behind the index. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	}
	uint16_t head = ring_get16(r->avail + AVAIL_RING +
				   2u * (q->last_avail & (q->size - 1)));
	if (head >= q->size)
		return ring_fail(r, "available head %u past a queue of %u",
				 head, q->size);
	int rc = chain_walk(r, head, c);
	if (rc)
		return rc;
	q->last_avail++;
	return 1;
}

void vblk_ring_push(struct vblk_ring *r, uint16_t head, uint32_t len)
{
	struct vblk_vq *q = r->q;
	uint8_t *e = r->used + USED_RING + 8u * (q->used_idx & (q->size - 1));
	ring_put32(e, head);
	ring_put32(e + 4, len);
	/* The element (and the buffers' bytes) before the index. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->used_idx++;
	ring_put16(r->used + USED_IDX, q->used_idx);
}

bool vblk_ring_rearm(struct vblk_ring *r)
{
	struct vblk_vq *q = r->q;
	if (!r->event_idx)
		return false;
	ring_put16(r->used + USED_RING + 8u * q->size, q->last_avail);
	/* avail_event out before avail->idx is read again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return ring_get16(r->avail + AVAIL_IDX) != q->last_avail;
}

bool vblk_ring_end(struct vblk_ring *r)
{
	struct vblk_vq *q = r->q;
	if (!r->used)
		return false;
	/* used->idx out before the driver's wishes are read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (r->event_idx) {
		uint16_t ev = ring_get16(r->avail + AVAIL_RING + 2u * q->size);
		return vblk_need_event(ev, q->used_idx, r->used_start);
	}
	if (q->used_idx == r->used_start)
		return false;
	return !(ring_get16(r->avail) & VBLK_AVAIL_F_NO_INTERRUPT);
}
