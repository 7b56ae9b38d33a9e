// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vq.c - the driver side of a split virtqueue.
 *
 * Free descriptors form a list through their own next fields (the table
 * is the driver's; the device only reads it).  A chain's length is found
 * again at completion by walking its NEXT flags, bounded by the queue
 * size.  Everything the device writes (used ring, avail_event) is read
 * once per use with a single volatile access, and a used id that is not
 * an outstanding head is reported instead of trusted.
 *
 * Polling mode: interrupts are suppressed (VRING_AVAIL_F_NO_INTERRUPT, or
 * with EVENT_IDX a used_event kept half a ring-index space ahead), so a
 * device that honours them never raises one while the guest polls.
 */
#include "test/guest/vq.h"

#define DESC(q, i) ((q)->desc + (uint64_t)(i)*16)
#define AVAIL_FLAGS(q) ((q)->avail)
#define AVAIL_IDX(q) ((q)->avail + 2)
#define AVAIL_RING(q, i) ((q)->avail + 4 + (uint64_t)(i)*2)
#define USED_EVENT(q) ((q)->avail + 4 + (uint64_t)(q)->size * 2)
#define USED_FLAGS(q) ((q)->used)
#define USED_IDX(q) ((q)->used + 2)
#define USED_RING(q, i) ((q)->used + 4 + (uint64_t)(i)*8)
#define AVAIL_EVENT(q) ((q)->used + 4 + (uint64_t)(q)->size * 8)

int vq_alloc(struct guest *g, struct gvq *q, uint16_t size)
{
	uint64_t dsz = (uint64_t)size * 16, asz = 6 + (uint64_t)size * 2;
	uint64_t usz = 6 + (uint64_t)size * 8;
	void *d = galloc(g, dsz, 4096), *a = galloc(g, asz, 4096);
	void *u = galloc(g, usz, 4096);
	void *c = galloc(g, sizeof(void *) * size, 8);

	if (!d || !a || !u || !c || !size || (size & (size - 1)))
		return -G_ENOMEM;
	memset(q, 0, sizeof(*q));
	q->size = size;
	q->desc = gpa(d);
	q->avail = gpa(a);
	q->used = gpa(u);
	q->cookie = c;
	vq_reset(q);
	return 0;
}

void vq_reset(struct gvq *q)
{
	memset((void *)(uintptr_t)q->desc, 0, (uint64_t)q->size * 16);
	memset((void *)(uintptr_t)q->avail, 0, 6 + (uint64_t)q->size * 2);
	memset((void *)(uintptr_t)q->used, 0, 6 + (uint64_t)q->size * 8);
	memset(q->cookie, 0, sizeof(void *) * q->size);
	for (uint16_t i = 0; i < q->size; i++)
		vq_desc_set(q, i, 0, 0, 0, (uint16_t)(i + 1));
	q->free_head = 0;
	q->nfree = q->size;
	q->avail_idx = q->kicked_idx = q->last_used = 0;
	q->kicks = q->notifies = 0;
	if (!q->irq) {
		wr16(AVAIL_FLAGS(q), VQ_AVAIL_F_NO_INTERRUPT);
		wr16(USED_EVENT(q), 0x8000);
	}
}

void vq_desc_set(struct gvq *q, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	uint64_t d = DESC(q, i);

	wr64(d, addr);
	wr32(d + 8, len);
	wr16(d + 12, flags);
	wr16(d + 14, next);
}

int vq_take(struct gvq *q, unsigned n, uint16_t *idx)
{
	uint16_t head = q->free_head, i = head;

	if (!n || n > q->nfree)
		return -G_ENOSPC;
	for (unsigned k = 0; k < n; k++) {
		idx[k] = i;
		i = rd16(DESC(q, i) + 14);
	}
	q->free_head = i;
	q->nfree = (uint16_t)(q->nfree - n);
	return head;
}

static int fill_chain(struct gvq *q, const struct vq_buf *bufs, unsigned n,
		      void *cookie, bool indirect, uint64_t table)
{
	uint16_t idx[64];
	int head;

	if (!n || n > ARRAY_SIZE(idx))
		return -G_EINVAL;
	if (indirect) {
		for (unsigned k = 0; k < n; k++) {
			uint64_t d = table + k * 16ull;

			wr64(d, bufs[k].addr);
			wr32(d + 8, bufs[k].len);
			wr16(d + 12,
			     (uint16_t)((bufs[k].write ? VQ_DESC_F_WRITE : 0) |
					(k + 1 < n ? VQ_DESC_F_NEXT : 0)));
			wr16(d + 14, (uint16_t)(k + 1));
		}
		head = vq_take(q, 1, idx);
		if (head < 0)
			return head;
		vq_desc_set(q, idx[0], table, n * 16, VQ_DESC_F_INDIRECT, 0);
	} else {
		head = vq_take(q, n, idx);
		if (head < 0)
			return head;
		for (unsigned k = 0; k < n; k++)
			vq_desc_set(
				q, idx[k], bufs[k].addr, bufs[k].len,
				(uint16_t)((bufs[k].write ? VQ_DESC_F_WRITE
							  : 0) |
					   (k + 1 < n ? VQ_DESC_F_NEXT : 0)),
				k + 1 < n ? idx[k + 1] : 0);
	}
	q->cookie[head] = cookie;
	vq_push_head(q, (uint16_t)head);
	return head;
}

int vq_add(struct gvq *q, const struct vq_buf *bufs, unsigned n, void *cookie)
{
	return fill_chain(q, bufs, n, cookie, false, 0);
}

int vq_add_indirect(struct gvq *q, uint64_t table, const struct vq_buf *bufs,
		    unsigned n, void *cookie)
{
	return fill_chain(q, bufs, n, cookie, true, table);
}

void vq_push_head(struct gvq *q, uint16_t head)
{
	wr16(AVAIL_RING(q, q->avail_idx & (q->size - 1)), head);
	q->avail_idx++;
}

void vq_kick(struct gvq *q)
{
	uint16_t new = q->avail_idx, old = q->kicked_idx;
	bool need;

	barrier();
	wr16(AVAIL_IDX(q), new); /* TSO: ring entries are visible first */
	mb();                    /* the index before avail_event is read */
	if (q->event_idx) {
		uint16_t ev = rd16(AVAIL_EVENT(q));

		need = (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
	} else {
		need = !(rd16(USED_FLAGS(q)) & VQ_USED_F_NO_NOTIFY);
	}
	q->kicked_idx = new;
	q->kicks++;
	if (need && new != old) {
		wr16(q->notify, q->idx);
		q->notifies++;
	}
}

void vq_set_avail_idx(struct gvq *q, uint16_t v)
{
	barrier();
	wr16(AVAIL_IDX(q), v);
	mb();
	wr16(q->notify, q->idx);
}

uint16_t vq_used_idx(const struct gvq *q)
{
	return rd16(USED_IDX(q));
}

int vq_get(struct gvq *q, void **cookie, uint32_t *len)
{
	uint64_t e;
	uint32_t id;
	uint16_t i, n = 1, last;

	if (rd16(USED_IDX(q)) == q->last_used)
		return 0;
	barrier(); /* x86 keeps loads in order; the compiler must too */
	e = USED_RING(q, q->last_used & (q->size - 1));
	id = rd32(e);
	*len = rd32(e + 4);
	if (id >= q->size || !q->cookie[id])
		return -G_EIO;
	*cookie = q->cookie[id];
	q->cookie[id] = NULL;
	/* free the chain: walk it (bounded) to its last descriptor */
	for (i = (uint16_t)id, last = i;
	     (rd16(DESC(q, i) + 12) & VQ_DESC_F_NEXT) && n < q->size; n++) {
		i = rd16(DESC(q, i) + 14);
		last = i;
	}
	vq_desc_set(q, last, 0, 0, 0, q->free_head);
	q->free_head = (uint16_t)id;
	q->nfree = (uint16_t)(q->nfree + n);
	q->last_used++;
	if (q->event_idx)
		wr16(USED_EVENT(q),
		     (uint16_t)(q->last_used + (q->irq ? 0 : 0x8000)));
	return 1;
}
