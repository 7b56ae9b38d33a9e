// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * scen_bad.c - deliberately broken requests and rings.
 *
 * Each case starts from a freshly reset device, hands it one bad chain
 * (or a bad ring index), and then requires one of the two answers the
 * virtio-blk device may give (docs/virtio-blk.md): the request completes
 * with VIRTIO_BLK_S_IOERR, or the device sets DEVICE_NEEDS_RESET.  A
 * request that succeeds, a wrong status, or silence for 10 s fails the
 * case.  Then the driver resets the device, sets it up again, and one
 * read of the range's first block must succeed (and match the model):
 * the device works again and the VMM is still alive.
 */
#include "test/guest/scen.h"

#define TIB 0x10000000000ull /* far outside any test guest's RAM */
#define WAIT_MS 10000

enum bad_kind {
	BAD_OUTSIDE,    /* data buffer outside RAM */
	BAD_WRAP,       /* data buffer wrapping past 2^64 */
	BAD_HUGE,       /* 4 GiB - 512 byte data buffer */
	BAD_LOOP,       /* chain looping back on itself */
	BAD_HEAD,       /* head index past the queue */
	BAD_AVAIL_JUMP, /* avail->idx more than the queue size ahead */
	BAD_INDIR_LEN,  /* indirect table of 24 bytes */
	BAD_INDIR_OUT,  /* indirect table outside RAM */
	BAD_INDIR_NEXT, /* indirect descriptor inside an indirect table */
	BAD_NO_STATUS,  /* no device-writable descriptor at all */
	BAD_RING,       /* descriptor table outside RAM */
};

static const struct {
	enum bad_kind kind;
	const char *name;
} cases[] = {
	{BAD_OUTSIDE, "buffer outside RAM"},
	{BAD_WRAP, "buffer wrapping past 2^64"},
	{BAD_HUGE, "4 GiB buffer"},
	{BAD_LOOP, "looping chain"},
	{BAD_HEAD, "head index past the queue"},
	{BAD_AVAIL_JUMP, "avail index jump"},
	{BAD_INDIR_LEN, "indirect table of 24 bytes"},
	{BAD_INDIR_OUT, "indirect table outside RAM"},
	{BAD_INDIR_NEXT, "nested indirect table"},
	{BAD_NO_STATUS, "no status byte"},
	{BAD_RING, "descriptor table outside RAM"},
};

/* Publish the bad input; the request's status byte is r->status. */
static void inject(struct ctx *c, enum bad_kind k, struct gblk_req *r)
{
	struct gvq *q = &c->b->q;
	uint64_t hdr = gpa(r->hdr), st = gpa(&r->status);
	uint64_t data = gpa(c->buf), t = r->table;
	uint16_t d[3];
	const uint16_t N = VQ_DESC_F_NEXT, W = VQ_DESC_F_WRITE;

	wr32(hdr, BLK_T_IN);
	wr32(hdr + 4, 0);
	wr64(hdr + 8, c->sec0);
	wr8(st, 0xff);
	vq_take(q, 3, d);
	vq_desc_set(q, d[0], hdr, 16, N, d[1]);
	vq_desc_set(q, d[2], st, 1, W, 0);
	switch (k) {
	case BAD_OUTSIDE:
		vq_desc_set(q, d[1], TIB, BLOCK, N | W, d[2]);
		break;
	case BAD_WRAP:
		vq_desc_set(q, d[1], ~0ull - BLOCK + 1, 2 * BLOCK, N | W, d[2]);
		break;
	case BAD_HUGE:
		vq_desc_set(q, d[1], data, 0xfffffe00u, N | W, d[2]);
		break;
	case BAD_LOOP: /* data -> status -> data ...: all writable, so
			  only the loop itself is wrong */
		vq_desc_set(q, d[1], data, BLOCK, N | W, d[2]);
		vq_desc_set(q, d[2], st, 1, N | W, d[1]);
		break;
	case BAD_HEAD:
		vq_desc_set(q, d[1], data, BLOCK, N | W, d[2]);
		vq_push_head(q, (uint16_t)(q->size + 7));
		vq_kick(q);
		return;
	case BAD_AVAIL_JUMP:
		vq_desc_set(q, d[1], data, BLOCK, N | W, d[2]);
		vq_push_head(q, d[0]);
		vq_set_avail_idx(q, (uint16_t)(q->size + 1));
		return;
	case BAD_INDIR_LEN:
	case BAD_INDIR_OUT:
	case BAD_INDIR_NEXT:
		/* table: header, data, status; d[0] points at it */
		wr64(t, hdr);
		wr32(t + 8, 16);
		wr16(t + 12, N);
		wr16(t + 14, 1);
		wr64(t + 16, data);
		wr32(t + 24, BLOCK);
		wr16(t + 28, (uint16_t)(N | W));
		wr16(t + 30, 2);
		wr64(t + 32, st);
		wr32(t + 40, 1);
		wr16(t + 44, W);
		wr16(t + 46, 0);
		if (k == BAD_INDIR_NEXT) /* the data entry made indirect */
			wr16(t + 28, (uint16_t)(N | VQ_DESC_F_INDIRECT));
		vq_desc_set(q, d[0], k == BAD_INDIR_OUT ? TIB : t,
			    k == BAD_INDIR_LEN ? 24 : 48, VQ_DESC_F_INDIRECT,
			    0);
		break;
	case BAD_NO_STATUS:
		vq_desc_set(q, d[1], data, BLOCK, N, d[2]);
		vq_desc_set(q, d[2], data + BLOCK, 1, 0, 0);
		break;
	case BAD_RING: /* a sound chain, in a table the device cannot see */
		vq_desc_set(q, d[1], data, BLOCK, N | W, d[2]);
		break;
	}
	q->cookie[d[0]] = r;
	vq_push_head(q, d[0]);
	vq_kick(q);
}

/* 1: answered IOERR, 2: NEEDS_RESET, 0: neither (reported). */
static int observe(struct ctx *c, const char *what, struct gblk_req *r)
{
	struct gblk *b = c->b;
	uint64_t t0 = rdtsc(), limit = WAIT_MS * c->g->tsc_khz;

	while (rdtsc() - t0 < limit) {
		if (vq_used_idx(&b->q) != b->q.last_used) {
			uint8_t s = rd8(gpa(&r->status));

			if (s == BLK_S_IOERR)
				return 1;
			result_fail(c->g, "bad", "%s: completed with status %u",
				    what, s);
			return 0;
		}
		if (gblk_needs_reset(b))
			return 2;
		for (unsigned i = 0; i < 1000; i++)
			cpu_relax();
	}
	result_fail(c->g, "bad", "%s: neither IOERR nor NEEDS_RESET in %u ms",
		    what, WAIT_MS);
	return 0;
}

void scen_bad(struct ctx *c)
{
	unsigned ioerr = 0, resets = 0;

	if (!range_ok(c, "bad"))
		return;
	if (!(c->b->features & F_INDIRECT_DESC)) {
		result_fail(c->g, "bad", "needs INDIRECT_DESC");
		return;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		struct gblk_req *r;
		int64_t bad;
		int ret, status;

		if (cases[i].kind == BAD_RING)
			c->b->desc_override = TIB;
		ret = gblk_reinit(c->b);

		r = ret ? NULL : gblk_req_get(c->b);
		if (!r) {
			result_fail(c->g, "bad", "%s: device setup: %d",
				    cases[i].name, ret);
			return;
		}
		inject(c, cases[i].kind, r);
		ret = observe(c, cases[i].name, r);
		if (!ret)
			return;
		con_printf("bad: %s: %s\n", cases[i].name,
			   ret == 1 ? "IOERR" : "DEVICE_NEEDS_RESET");
		if (ret == 1)
			ioerr++;
		else
			resets++;
		/* reset, and the device must work again */
		ret = gblk_reinit(c->b);
		if (ret) {
			result_fail(c->g, "bad", "%s: reset: %d", cases[i].name,
				    ret);
			return;
		}
		bad = range_check(c, c->sec0, SPB, &status);
		if (bad != -1) {
			result_fail(c->g, "bad",
				    "%s: after reset the first block reads "
				    "wrong (%ld, status %d)",
				    cases[i].name, (long)bad, status);
			return;
		}
	}
	con_printf("bad: %u cases, %u IOERR, %u DEVICE_NEEDS_RESET\n",
		   (unsigned)ARRAY_SIZE(cases), ioerr, resets);
	result_ok(c->g, "bad");
}
