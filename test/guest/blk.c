// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * blk.c - virtio-blk requests for the test guest.
 *
 * A request is a chain: the 16-byte header (readable), the data buffers
 * (readable for OUT, writable for IN and GET_ID), the status byte
 * (writable), directly or through the request's own indirect table.
 * Completion is found by polling the used ring in ring 3 (native speed);
 * every millisecond or so the device status is read too, so a device
 * that broke (DEVICE_NEEDS_RESET) ends the wait instead of a timeout.
 */
#include "test/guest/blk.h"

#define NREQS 64
#define TABLE_ENTRIES 64

uint64_t gblk_capacity(const struct gblk *b)
{
	uint64_t lo, hi;
	uint8_t gen;

	do { /* a 64-bit field: re-read if the generation moved */
		gen = vpci_config_generation(&b->vp);
		lo = rd32(b->vp.device);
		hi = rd32(b->vp.device + 4);
	} while (gen != vpci_config_generation(&b->vp));
	return hi << 32 | lo;
}

static int setup(struct gblk *b, uint64_t want)
{
	struct guest *g = b->g;
	uint16_t qmax, qsize;
	uint64_t notify;
	int ret = vpci_reset(&b->vp);

	if (ret) {
		con_printf("virtio-blk: device does not reset\n");
		return ret;
	}
	vpci_set_status(&b->vp, VIRTIO_ACKNOWLEDGE);
	vpci_set_status(&b->vp, VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER);
	b->offered = vpci_features(&b->vp);
	if (!(b->offered & F_VERSION_1)) {
		con_printf("virtio-blk: VERSION_1 not offered (%#lx)\n",
			   (unsigned long)b->offered);
		return -G_ENODEV;
	}
	b->features = b->offered & (want | F_VERSION_1);
	vpci_set_features(&b->vp, b->features);
	vpci_set_status(&b->vp, VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER |
					VIRTIO_FEATURES_OK);
	if (!(vpci_status(&b->vp) & VIRTIO_FEATURES_OK)) {
		con_printf("virtio-blk: features %#lx refused\n",
			   (unsigned long)b->features);
		return -G_EINVAL;
	}
	qmax = vpci_queue_max(&b->vp, 0);
	qsize = (uint16_t)(g->p.qsize < qmax ? g->p.qsize : qmax);
	if (!qsize || (qsize & (qsize - 1))) {
		con_printf("virtio-blk: queue size %u (max %u) unusable\n",
			   qsize, qmax);
		return -G_EINVAL;
	}
	if (!b->q.size) {
		ret = vq_alloc(g, &b->q, qsize);
		if (ret)
			return ret;
	} else if (b->q.size != qsize) {
		return -G_EINVAL;
	}
	b->q.event_idx = !!(b->features & F_EVENT_IDX);
	vq_reset(&b->q);
	notify = vpci_queue_setup(
		&b->vp, 0, qsize,
		b->desc_override ? b->desc_override : b->q.desc, b->q.avail,
		b->q.used, b->q.irq ? 0 : VIRTIO_NO_VECTOR);
	if (!notify) {
		con_printf("virtio-blk: queue vector refused\n");
		return -G_EINVAL;
	}
	b->desc_override = 0;
	b->q.notify = notify;
	b->q.idx = 0;
	b->capacity = gblk_capacity(b);
	b->seg_max =
		(b->features & BLK_F_SEG_MAX) ? rd32(b->vp.device + 12) : 1;
	for (unsigned i = 0; i < b->nreqs; i++)
		b->reqs[i].busy = false;
	b->outstanding = 0;
	vpci_set_status(&b->vp, VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER |
					VIRTIO_FEATURES_OK | VIRTIO_DRIVER_OK);
	return 0;
}

int gblk_init(struct gblk *b, struct guest *g, uint64_t want)
{
	int ret;

	if (!b->probed) {
		b->g = g;
		b->mmio_next = g->p.bar_base ? g->p.bar_base : 0xC0000000ull;
		ret = vpci_probe(&b->vp, VIRTIO_ID_BLOCK_PCI, &b->mmio_next,
				 g->p.bar_base != 0);
		if (ret)
			return ret;
		b->nreqs = NREQS;
		b->reqs = galloc(g, sizeof(*b->reqs) * NREQS, 64);
		if (!b->reqs)
			return -G_ENOMEM;
		for (unsigned i = 0; i < NREQS; i++) {
			void *t = galloc(g, TABLE_ENTRIES * 16, 16);

			if (!t)
				return -G_ENOMEM;
			b->reqs[i].table = gpa(t);
		}
		b->probed = true;
	}
	b->features = want; /* remembered for gblk_reinit */
	return setup(b, want);
}

int gblk_reinit(struct gblk *b)
{
	return setup(b, b->features);
}

bool gblk_needs_reset(const struct gblk *b)
{
	return vpci_status(&b->vp) & VIRTIO_NEEDS_RESET;
}

struct gblk_req *gblk_req_get(struct gblk *b)
{
	for (unsigned i = 0; i < b->nreqs; i++) {
		struct gblk_req *r = &b->reqs[i];

		if (!r->busy) {
			r->busy = true;
			r->done = false;
			r->len = 0;
			return r;
		}
	}
	return NULL;
}

void gblk_req_put(struct gblk *b, struct gblk_req *r)
{
	(void)b;
	r->busy = false;
}

int gblk_submit(struct gblk *b, struct gblk_req *r, uint32_t type,
		uint64_t sector, const struct vq_buf *data, unsigned n,
		bool indirect)
{
	struct vq_buf bufs[BLK_MAX_BUFS + 2];
	unsigned k = 0;
	int head;

	if (n > BLK_MAX_BUFS)
		return -G_EINVAL;
	wr32(gpa(r->hdr), type);
	wr32(gpa(r->hdr) + 4, 0);
	wr64(gpa(r->hdr) + 8, sector);
	wr8(gpa(&r->status), 0xff); /* the device must overwrite it */
	r->done = false;
	bufs[k++] = (struct vq_buf){gpa(r->hdr), 16, false};
	for (unsigned i = 0; i < n; i++)
		bufs[k++] = data[i];
	bufs[k++] = (struct vq_buf){gpa(&r->status), 1, true};
	head = indirect ? vq_add_indirect(&b->q, r->table, bufs, k, r)
			: vq_add(&b->q, bufs, k, r);
	if (head < 0)
		return head;
	b->outstanding++;
	return 0;
}

struct gblk_req *gblk_poll(struct gblk *b, int *err)
{
	void *cookie;
	uint32_t len;
	int ret = vq_get(&b->q, &cookie, &len);
	struct gblk_req *r;

	*err = 0;
	if (ret <= 0) {
		*err = ret;
		return NULL;
	}
	r = cookie;
	r->len = len;
	r->done = true;
	b->outstanding--;
	b->completions++;
	return r;
}

int gblk_wait(struct gblk *b, struct gblk_req *r, uint64_t timeout_ms)
{
	uint64_t t0 = rdtsc(), step = b->g->tsc_khz, next = t0 + step;
	uint64_t limit = timeout_ms * b->g->tsc_khz;
	int err;

	while (!r->done) {
		uint64_t now;

		if (gblk_poll(b, &err))
			continue;
		if (err)
			return err;
		now = rdtsc();
		if (now >= next) { /* about once a millisecond */
			next = now + step;
			if (gblk_needs_reset(b))
				return -G_EIO;
			if (now - t0 > limit)
				return -G_ETIMEDOUT;
		}
		cpu_relax();
	}
	return rd8(gpa(&r->status));
}

int gblk_io(struct gblk *b, uint32_t type, uint64_t sector, void *buf,
	    uint32_t len)
{
	struct gblk_req *r = gblk_req_get(b);
	struct vq_buf d = {gpa(buf), len,
			   type == BLK_T_IN || type == BLK_T_GET_ID};
	int ret;

	if (!r)
		return -G_ENOSPC;
	ret = gblk_submit(b, r, type, sector, &d, len ? 1 : 0, false);
	if (!ret) {
		vq_kick(&b->q);
		ret = gblk_wait(b, r, BLK_TIMEOUT_MS);
	}
	if (ret != -G_ETIMEDOUT && ret != -G_EIO)
		gblk_req_put(b, r);
	return ret;
}

int gblk_dwz(struct gblk *b, uint32_t type, uint64_t sector, uint32_t n,
	     uint32_t flags)
{
	struct gblk_req *r = gblk_req_get(b);
	struct vq_buf d;
	int ret;

	if (!r)
		return -G_ENOSPC;
	wr64(gpa(r->seg), sector);
	wr32(gpa(r->seg) + 8, n);
	wr32(gpa(r->seg) + 12, flags);
	d = (struct vq_buf){gpa(r->seg), 16, false};
	ret = gblk_submit(b, r, type, 0, &d, 1, false);
	if (!ret) {
		vq_kick(&b->q);
		ret = gblk_wait(b, r, BLK_TIMEOUT_MS);
	}
	if (ret != -G_ETIMEDOUT && ret != -G_EIO)
		gblk_req_put(b, r);
	return ret;
}
