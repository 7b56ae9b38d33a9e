// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * scen_cfg.c - the device's configuration changing under the guest: a
 * resize done on the host while the guest runs.
 *
 *   resize   config changes go to MSI-X entry 1 (vector 0x40; queue 0
 *            stays polled); the guest prints "resize: waiting", and the
 *            host resizes the disk (blkctl through cavm's control
 *            socket).  Within 60 s the capacity must change, to
 *            resize_to= sectors when given, with a new config generation
 *            and a config-change interrupt.  Then the last block of the
 *            new capacity reads as zeros, takes pattern(seed), and reads
 *            back as it.
 */
#include "test/guest/scen.h"

#define VEC_MSIX 0x40
#define CFG_ENTRY 1
#define LAPIC_SVR 0xfee000f0ull
#define LAPIC_TPR 0xfee00080ull
#define WAIT_S 60

static void spin_ms(const struct guest *g, uint64_t ms)
{
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < ms * g->tsc_khz)
		cpu_relax();
}

/* the new space: zeros, then a block of pattern read back */
static void check_tail(struct ctx *c, uint64_t cap)
{
	uint64_t sec = (cap / SPB - 1) * SPB;
	int ret = gblk_io(c->b, BLK_T_IN, sec, c->buf, BLOCK);

	if (ret || zero_check(c->buf, SPB) >= 0) {
		result_fail(c->g, "resize",
			    "the new last block (sector %lu) does not read as "
			    "zeros (status %d)",
			    (unsigned long)sec, ret);
		return;
	}
	pattern_fill(c->buf, c->g->p.seed, sec, SPB);
	ret = gblk_io(c->b, BLK_T_OUT, sec, c->buf, BLOCK);
	if (!ret) {
		memset(c->buf, 0, BLOCK);
		ret = gblk_io(c->b, BLK_T_IN, sec, c->buf, BLOCK);
	}
	if (ret || pattern_check(c->buf, c->g->p.seed, sec, SPB) >= 0) {
		result_fail(c->g, "resize",
			    "write and read back at sector %lu: status %d",
			    (unsigned long)sec, ret);
		return;
	}
	con_printf("resize: sector %lu written and read back\n",
		   (unsigned long)sec);
	result_ok(c->g, "resize");
}

void scen_resize(struct ctx *c)
{
	struct gblk *b = c->b;
	uint64_t old = b->capacity, cap = old, want = c->g->p.resize_to;
	uint64_t before, t0;
	uint8_t gen0;

	if (!b->vp.msix_cap || b->vp.msix_n <= CFG_ENTRY) {
		result_fail(c->g, "resize", "no MSI-X entry %u", CFG_ENTRY);
		return;
	}
	wr32(LAPIC_TPR, 0);
	wr32(LAPIC_SVR, 0x1ff);
	vpci_msix_set(&b->vp, CFG_ENTRY, VEC_MSIX, false);
	vpci_msix_enable(&b->vp, true);
	if (vpci_set_config_vector(&b->vp, CFG_ENTRY)) {
		result_fail(c->g, "resize", "config vector refused");
		goto out;
	}
	gen0 = vpci_config_generation(&b->vp);
	before = irq_count;
	__asm__ volatile("sti");
	con_printf("resize: waiting (capacity %lu sectors)\n",
		   (unsigned long)old);
	t0 = rdtsc();
	while (cap == old && rdtsc() - t0 < WAIT_S * 1000 * c->g->tsc_khz) {
		spin_ms(c->g, 1);
		cap = gblk_capacity(b);
	}
	/* the interrupt follows the generation bump: give it 2 s */
	if (cap != old)
		irq_wait(c, before, 2000);
	__asm__ volatile("cli");
	con_printf("resize: capacity %lu -> %lu sectors, generation %u -> %u, "
		   "%lu interrupt(s)\n",
		   (unsigned long)old, (unsigned long)cap, gen0,
		   vpci_config_generation(&b->vp),
		   (unsigned long)(irq_count - before));
	if (cap == old) {
		result_fail(c->g, "resize", "capacity unchanged after %u s",
			    WAIT_S);
	} else if (want && cap != want) {
		result_fail(c->g, "resize", "capacity %lu, expected %lu",
			    (unsigned long)cap, (unsigned long)want);
	} else if (vpci_config_generation(&b->vp) == gen0) {
		result_fail(c->g, "resize", "config generation unchanged");
	} else if (irq_count == before) {
		result_fail(c->g, "resize", "no config-change interrupt");
	} else {
		b->capacity = cap;
		check_tail(c, cap);
	}
out:
	vpci_set_config_vector(&b->vp, VIRTIO_NO_VECTOR);
	vpci_msix_enable(&b->vp, false);
}
