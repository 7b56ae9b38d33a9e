// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * scen_queue.c - scenarios with many requests in flight or unusual
 * chains: queue depth (qd=), indirect tables, the QD read benchmark, and
 * one request completed through MSI-X.
 *
 *   qd        the range := pattern, one 4 KiB write per block in a
 *             scrambled order with qd requests outstanding, then read
 *             back the same way, each block checked as it completes
 *   indirect  the range := pattern, each block one request whose chain is
 *             an indirect table of header, eight 512-byte buffers and the
 *             status byte; read back the same way
 *   bench     4 KiB reads of the range's blocks in turn, qd outstanding,
 *             for secs= seconds (by the TSC): "bench start" before,
 *             "bench reqs_per_s=N ... reqs=R" after, so a host can also
 *             time it by its own clock
 *   msix      queue 0 on MSI-X vector 0x40, one read, the interrupt
 *             counted by the ring-0 MSI-X entry; then back to polling
 */
#include "test/guest/scen.h"

#define VEC_MSIX 0x40
#define LAPIC_SVR 0xfee000f0ull
#define LAPIC_TPR 0xfee00080ull

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* block i of n in a scrambled (but complete) order */
static uint64_t scramble(uint64_t i, uint64_t n, uint64_t mul)
{
	return (i * mul + 3) % n;
}

/* Keep up to qd single-block requests going over all blocks of the
 * range; on completion of a read, check it.  0 or a failure reported. */
static int run_qd(struct ctx *c, const char *name, uint32_t type, uint64_t qd,
		  unsigned *max_out)
{
	struct gblk *b = c->b;
	uint64_t nblk = c->nsec / SPB, next = 0, done = 0, mul = 5;
	uint64_t step = c->g->tsc_khz, last = rdtsc();

	while (gcd(mul, nblk) != 1)
		mul += 2;
	*max_out = 0;
	while (done < nblk) {
		struct gblk_req *r;
		int err;

		while (next < nblk && b->outstanding < qd) {
			uint64_t blk = scramble(next++, nblk, mul);
			uint64_t sec = c->sec0 + blk * SPB;
			struct vq_buf d;

			r = gblk_req_get(b);
			if (!r)
				break;
			r->user = sec;
			d = (struct vq_buf){gpa(c->buf + (r - b->reqs) * BLOCK),
					    BLOCK, type == BLK_T_IN};
			if (type == BLK_T_OUT)
				pattern_fill((void *)(uintptr_t)d.addr,
					     c->g->p.seed, sec, SPB);
			if (gblk_submit(b, r, type, sec, &d, 1, false)) {
				result_fail(c->g, name, "queue full");
				return -1;
			}
		}
		if (b->outstanding > *max_out)
			*max_out = b->outstanding;
		vq_kick(&b->q);
		r = gblk_poll(b, &err);
		if (err) {
			result_fail(c->g, name, "bad used entry");
			return -1;
		}
		if (!r) {
			uint64_t now = rdtsc();

			if (now - last > BLK_TIMEOUT_MS * step) {
				result_fail(c->g, name,
					    "no completion for %u ms "
					    "(needs reset: %d)",
					    BLK_TIMEOUT_MS,
					    gblk_needs_reset(b));
				return -1;
			}
			cpu_relax();
			continue;
		}
		last = rdtsc();
		done++;
		if (rd8(gpa(&r->status)) != BLK_S_OK) {
			result_fail(c->g, name, "sector %lu: status %u",
				    (unsigned long)r->user,
				    rd8(gpa(&r->status)));
			return -1;
		}
		if (type == BLK_T_IN &&
		    pattern_check(c->buf + (r - b->reqs) * BLOCK, c->g->p.seed,
				  r->user, SPB) >= 0) {
			result_fail(c->g, name, "block at sector %lu differs",
				    (unsigned long)r->user);
			return -1;
		}
		if (type == BLK_T_OUT)
			model_set(c, r->user, SPB, M_PATTERN);
		gblk_req_put(b, r);
	}
	return 0;
}

void scen_qd(struct ctx *c)
{
	uint64_t qd = c->g->p.qd;
	unsigned mw, mr;

	if (!range_ok(c, "qd"))
		return;
	if (qd < 1 || qd > c->b->nreqs || qd * 3 > c->b->q.size) {
		result_fail(c->g, "qd", "qd=%lu: 1..%u with queue size %u",
			    (unsigned long)qd, c->b->nreqs, c->b->q.size);
		return;
	}
	if (run_qd(c, "qd", BLK_T_OUT, qd, &mw) ||
	    run_qd(c, "qd", BLK_T_IN, qd, &mr))
		return;
	c->flushed = false;
	con_printf("qd: %lu blocks written and read back, %u and %u "
		   "requests in flight at most\n",
		   (unsigned long)(c->nsec / SPB), mw, mr);
	result_ok(c->g, "qd");
}

static int io_indirect(struct ctx *c, uint32_t type, uint64_t sec)
{
	struct gblk_req *r = gblk_req_get(c->b);
	struct vq_buf d[SPB];
	int ret;

	if (!r)
		return -G_ENOSPC;
	for (unsigned i = 0; i < SPB; i++)
		d[i] = (struct vq_buf){gpa(c->buf + i * SECTOR), SECTOR,
				       type == BLK_T_IN};
	ret = gblk_submit(c->b, r, type, sec, d, SPB, true);
	if (!ret) {
		vq_kick(&c->b->q);
		ret = gblk_wait(c->b, r, BLK_TIMEOUT_MS);
	}
	if (ret != -G_ETIMEDOUT && ret != -G_EIO)
		gblk_req_put(c->b, r);
	return ret;
}

void scen_indirect(struct ctx *c)
{
	if (!range_ok(c, "indirect"))
		return;
	if (!(c->b->features & F_INDIRECT_DESC)) {
		result_fail(c->g, "indirect", "INDIRECT_DESC not negotiated");
		return;
	}
	for (uint64_t s = c->sec0; s < c->sec0 + c->nsec; s += SPB) {
		int ret;

		pattern_fill(c->buf, c->g->p.seed, s, SPB);
		ret = io_indirect(c, BLK_T_OUT, s);
		if (ret) {
			result_fail(c->g, "indirect", "write at %lu: %d",
				    (unsigned long)s, ret);
			return;
		}
		model_set(c, s, SPB, M_PATTERN);
		c->flushed = false;
	}
	for (uint64_t s = c->sec0; s < c->sec0 + c->nsec; s += SPB) {
		int ret;

		memset(c->buf, 0, BLOCK);
		ret = io_indirect(c, BLK_T_IN, s);
		if (ret) {
			result_fail(c->g, "indirect", "read at %lu: %d",
				    (unsigned long)s, ret);
			return;
		}
		if (pattern_check(c->buf, c->g->p.seed, s, SPB) >= 0) {
			result_fail(c->g, "indirect",
				    "block at sector %lu differs",
				    (unsigned long)s);
			return;
		}
	}
	result_ok(c->g, "indirect");
}

void scen_bench(struct ctx *c)
{
	struct gblk *b = c->b;
	uint64_t qd = c->g->p.qd, nblk = c->nsec / SPB, next = 0, n = 0;
	uint64_t t0, t1, limit, us;
	unsigned long notifies0 = b->q.notifies;

	if (!range_ok(c, "bench"))
		return;
	if (qd < 1 || qd > b->nreqs || qd * 3 > b->q.size) {
		result_fail(c->g, "bench", "bad qd=%lu", (unsigned long)qd);
		return;
	}
	limit = c->g->p.secs * 1000 * c->g->tsc_khz;
	con_printf("bench start\n"); /* a host may time from here */
	t0 = t1 = rdtsc();
	for (;;) {
		struct gblk_req *r;
		int err;

		while (t1 - t0 < limit && b->outstanding < qd) {
			uint64_t sec = c->sec0 + (next++ % nblk) * SPB;
			struct vq_buf d;

			r = gblk_req_get(b);
			d = (struct vq_buf){gpa(c->buf + (r - b->reqs) * BLOCK),
					    BLOCK, true};
			gblk_submit(b, r, BLK_T_IN, sec, &d, 1, false);
		}
		vq_kick(&b->q);
		while ((r = gblk_poll(b, &err))) {
			if (rd8(gpa(&r->status)) != BLK_S_OK) {
				result_fail(c->g, "bench", "status %u",
					    rd8(gpa(&r->status)));
				return;
			}
			gblk_req_put(b, r);
			n++;
		}
		if (err) {
			result_fail(c->g, "bench", "bad used entry");
			return;
		}
		t1 = rdtsc();
		if (t1 - t0 >= limit && !b->outstanding)
			break;
		if (t1 - t0 > limit + BLK_TIMEOUT_MS * c->g->tsc_khz) {
			result_fail(c->g, "bench", "requests never completed");
			return;
		}
	}
	us = time_us(c->g, t1 - t0);
	con_printf("bench reqs_per_s=%lu qd=%lu bs=4096 reqs=%lu us=%lu "
		   "notifies=%lu\n",
		   (unsigned long)(us ? n * 1000000 / us : 0),
		   (unsigned long)qd, (unsigned long)n, (unsigned long)us,
		   b->q.notifies - notifies0);
	result_ok(c->g, "bench");
}

/* Spinning in ring 3 may not exit to the host at all, and some hosts
 * only deliver an injected interrupt at the next exit: read the device
 * status (an MMIO exit) every millisecond. */
int64_t irq_wait(struct ctx *c, uint64_t before, uint64_t ms)
{
	uint64_t t0 = rdtsc(), next = t0;

	while (irq_count == before) {
		uint64_t now = rdtsc();

		if (now - t0 > ms * c->g->tsc_khz)
			return -1;
		if (now >= next) {
			next = now + c->g->tsc_khz;
			(void)vpci_status(&c->b->vp);
		}
		cpu_relax();
	}
	return (int64_t)time_us(c->g, rdtsc() - t0);
}

void scen_msix(struct ctx *c)
{
	struct gblk *b = c->b;
	struct gblk_req *r;
	struct vq_buf d;
	uint64_t before;
	int64_t waited;
	int ret;

	if (!b->vp.msix_cap) {
		result_fail(c->g, "msix", "no MSI-X capability");
		return;
	}
	wr32(LAPIC_TPR, 0);
	wr32(LAPIC_SVR, 0x1ff); /* APIC software-enabled, spurious 0xff */
	b->q.irq = true;
	vpci_msix_set(&b->vp, 0, VEC_MSIX, false);
	vpci_msix_enable(&b->vp, true);
	ret = gblk_reinit(b);
	if (ret) {
		result_fail(c->g, "msix", "device setup with vector 0: %d",
			    ret);
		goto out;
	}
	/* As an interrupt-driven driver: kick, wait for the interrupt, only
	 * then look at the used ring.  Consuming the completion first would
	 * move used_event past it (EVENT_IDX), and a device that had not yet
	 * decided would rightly send no interrupt. */
	r = gblk_req_get(b);
	d = (struct vq_buf){gpa(c->buf), BLOCK, true};
	if (!r || gblk_submit(b, r, BLK_T_IN, 0, &d, 1, false)) {
		result_fail(c->g, "msix", "cannot queue a read");
		goto out;
	}
	before = irq_count;
	__asm__ volatile("sti");
	vq_kick(&b->q);
	waited = irq_wait(c, before, 2000);
	__asm__ volatile("cli");
	if (waited < 0) {
		vpci_msix_dump(&b->vp, 0);
		con_printf("msix: used idx %u, ISR %#x\n", vq_used_idx(&b->q),
			   rd8(b->vp.isr));
		result_fail(c->g, "msix", "no interrupt within 2 s");
		goto out;
	}
	ret = gblk_wait(b, r, BLK_TIMEOUT_MS);
	if (ret) {
		result_fail(c->g, "msix", "read: %d", ret);
		goto out;
	}
	gblk_req_put(b, r);
	con_printf("msix: %lu interrupt(s), the first after %ld us\n",
		   (unsigned long)(irq_count - before), (long)waited);
	result_ok(c->g, "msix");
out:
	b->q.irq = false;
	vpci_msix_enable(&b->vp, false);
	ret = gblk_reinit(b);
	if (ret)
		result_fail(c->g, "msix", "back to polling: %d", ret);
}
