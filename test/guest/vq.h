/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vq.h - the driver side of a virtio 1.x split virtqueue: descriptor
 * table, available ring (the driver's), used ring (the device's).
 */
#ifndef CAVM_TEST_GUEST_VQ_H
#define CAVM_TEST_GUEST_VQ_H

#include "test/guest/guest.h"

#define VQ_DESC_F_NEXT 1u
#define VQ_DESC_F_WRITE 2u
#define VQ_DESC_F_INDIRECT 4u
#define VQ_AVAIL_F_NO_INTERRUPT 1u
#define VQ_USED_F_NO_NOTIFY 1u

struct vq_buf {
	uint64_t addr;
	uint32_t len;
	bool write; /* device-writable */
};

struct gvq {
	uint16_t size, idx;
	uint64_t desc, avail, used; /* guest addresses of the three parts */
	uint64_t notify;            /* MMIO address of the doorbell */
	bool event_idx;
	bool irq; /* ask for interrupts (else suppress) */
	uint16_t free_head, nfree;
	uint16_t avail_idx;  /* the driver's copy of avail->idx */
	uint16_t kicked_idx; /* avail_idx at the last kick decision */
	uint16_t last_used;  /* next used entry to consume */
	void **cookie;       /* per head */
	unsigned long kicks, notifies;
};

/* Carve the rings for 'size' entries out of the guest heap (size a power
 * of two).  0 or -G_ENOMEM. */
int vq_alloc(struct guest *g, struct gvq *q, uint16_t size);
/* Empty the rings and the driver's state (after a device reset). */
void vq_reset(struct gvq *q);
/* Add one chain: bufs[0..n), readable ones first.  Returns the head or
 * -G_ENOSPC.  Not visible to the device before vq_publish(). */
int vq_add(struct gvq *q, const struct vq_buf *bufs, unsigned n, void *cookie);
/* The same chain through an indirect table (n * 16 bytes at table). */
int vq_add_indirect(struct gvq *q, uint64_t table, const struct vq_buf *bufs,
		    unsigned n, void *cookie);
/* Put head in the available ring (not yet published). */
void vq_push_head(struct gvq *q, uint16_t head);
/* Publish avail->idx, then kick if the device wants it (EVENT_IDX:
 * avail_event; else unless VRING_USED_F_NO_NOTIFY). */
void vq_kick(struct gvq *q);
/* Take one used entry: 1 (cookie, len set), 0 if none, -G_EIO if the
 * device returned an id that is not an outstanding head. */
int vq_get(struct gvq *q, void **cookie, uint32_t *len);
/* Raw access for the broken-ring scenarios. */
void vq_desc_set(struct gvq *q, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next);
/* Take n free descriptors, chained with NEXT in order, unpublished;
 * returns the first or -G_ENOSPC (raw chains are never freed: the
 * scenario resets the queue after each). */
int vq_take(struct gvq *q, unsigned n, uint16_t *idx);
/* avail->idx as published, and poke it directly. */
void vq_set_avail_idx(struct gvq *q, uint16_t v);
uint16_t vq_used_idx(const struct gvq *q);

#endif
