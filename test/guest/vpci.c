// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vpci.c - the virtio 1.x PCI transport, driver side.
 *
 * The device describes itself with vendor capabilities (cfg_type 1
 * common, 2 notify, 3 ISR, 4 device config), each naming a BAR, an offset
 * and a length; each must lie inside its BAR or the device is refused.
 * Registers are accessed with their own width; 64-bit ones (features are
 * two 32-bit windows anyway, queue addresses) as two 32-bit halves, low
 * first, which the spec allows and every VMM handles.
 */
#include "test/guest/vpci.h"

/* struct virtio_pci_common_cfg */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX_CONFIG 0x10
#define CC_NUM_QUEUES 0x12
#define CC_STATUS 0x14
#define CC_CFG_GEN 0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOTIFY_OFF 0x1e
#define CC_Q_DESC 0x20
#define CC_Q_AVAIL 0x28
#define CC_Q_USED 0x30
#define CC_SIZE 0x38

/* struct virtio_pci_cap */
#define CAP_CFG_TYPE 3
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_NOTIFY_MULT 16

#define MSIX_CTRL 2
#define MSIX_TABLE 4
#define MSIX_ENABLE 0x8000
#define MSIX_MASKALL 0x4000

static int cap_addr(const struct vpci *vp, unsigned pos, uint32_t min_len,
		    uint64_t *addr, uint32_t *len)
{
	const struct pci_dev *d = &vp->pci;
	unsigned bar = pci_rd8(d, pos + CAP_BAR);
	uint32_t off = pci_rd32(d, pos + CAP_OFFSET);
	uint32_t l = pci_rd32(d, pos + CAP_LENGTH);

	if (bar > 5 || !d->bar[bar] || l < min_len || off > d->bar_size[bar] ||
	    l > d->bar_size[bar] - off) {
		con_printf("virtio: capability at %#x: BAR %u offset %#x "
			   "length %#x does not fit its BAR\n",
			   pos, bar, off, l);
		return -G_EINVAL;
	}
	*addr = d->bar[bar] + off;
	if (len)
		*len = l;
	return 0;
}

int vpci_probe(struct vpci *vp, uint16_t device_id, uint64_t *mmio_next,
	       bool move_bars)
{
	struct pci_dev *d = &vp->pci;
	unsigned pos = 0;
	int ret;

	memset(vp, 0, sizeof(*vp));
	ret = pci_find(0x1af4, device_id, d);
	if (ret) {
		con_printf("virtio: no device 1af4:%04x on bus 0\n", device_id);
		return ret;
	}
	ret = pci_setup_bars(d, mmio_next, move_bars);
	if (ret) {
		con_printf("virtio: BARs do not fit the MMIO window\n");
		return ret;
	}
	while ((pos = pci_cap_find(d, PCI_CAP_VENDOR, pos))) {
		uint8_t type = pci_rd8(d, pos + CAP_CFG_TYPE);

		if (type == 1 && !vp->common)
			ret = cap_addr(vp, pos, CC_SIZE, &vp->common, NULL);
		else if (type == 2 && !vp->notify) {
			ret = cap_addr(vp, pos, 2, &vp->notify, NULL);
			vp->notify_mult = pci_rd32(d, pos + CAP_NOTIFY_MULT);
		} else if (type == 3 && !vp->isr)
			ret = cap_addr(vp, pos, 1, &vp->isr, NULL);
		else if (type == 4 && !vp->device)
			ret = cap_addr(vp, pos, 1, &vp->device,
				       &vp->device_len);
		if (ret)
			return ret;
	}
	if (!vp->common || !vp->notify || !vp->isr) {
		con_printf("virtio: missing capability (common %#lx notify "
			   "%#lx isr %#lx)\n",
			   (unsigned long)vp->common, (unsigned long)vp->notify,
			   (unsigned long)vp->isr);
		return -G_ENODEV;
	}
	vp->msix_cap = pci_cap_find(d, PCI_CAP_MSIX, 0);
	if (vp->msix_cap) {
		uint32_t t = pci_rd32(d, vp->msix_cap + MSIX_TABLE);
		unsigned bir = t & 7;

		vp->msix_n =
			(pci_rd16(d, vp->msix_cap + MSIX_CTRL) & 0x7ff) + 1;
		if (bir < 6 && d->bar[bir] &&
		    (t & ~7u) + vp->msix_n * 16ull <= d->bar_size[bir])
			vp->msix_table = d->bar[bir] + (t & ~7u);
		else
			vp->msix_cap = 0;
	}
	con_printf("virtio: %02x:%02x.%u common %#lx notify %#lx (x%u) isr "
		   "%#lx device %#lx msix %u entries at %#lx\n",
		   d->bus, d->dev, d->fn, (unsigned long)vp->common,
		   (unsigned long)vp->notify, vp->notify_mult,
		   (unsigned long)vp->isr, (unsigned long)vp->device,
		   vp->msix_cap ? vp->msix_n : 0,
		   (unsigned long)vp->msix_table);
	return 0;
}

uint8_t vpci_status(const struct vpci *vp)
{
	return rd8(vp->common + CC_STATUS);
}

void vpci_set_status(const struct vpci *vp, uint8_t s)
{
	wr8(vp->common + CC_STATUS, s);
}

int vpci_reset(const struct vpci *vp)
{
	vpci_set_status(vp, 0);
	for (unsigned i = 0; i < 1000000; i++) {
		if (vpci_status(vp) == 0)
			return 0;
		cpu_relax();
	}
	return -G_ETIMEDOUT;
}

uint64_t vpci_features(const struct vpci *vp)
{
	uint64_t f;

	wr32(vp->common + CC_DFSELECT, 0);
	f = rd32(vp->common + CC_DF);
	wr32(vp->common + CC_DFSELECT, 1);
	return f | (uint64_t)rd32(vp->common + CC_DF) << 32;
}

void vpci_set_features(const struct vpci *vp, uint64_t f)
{
	wr32(vp->common + CC_GFSELECT, 0);
	wr32(vp->common + CC_GF, (uint32_t)f);
	wr32(vp->common + CC_GFSELECT, 1);
	wr32(vp->common + CC_GF, (uint32_t)(f >> 32));
}

uint8_t vpci_config_generation(const struct vpci *vp)
{
	return rd8(vp->common + CC_CFG_GEN);
}

uint16_t vpci_num_queues(const struct vpci *vp)
{
	return rd16(vp->common + CC_NUM_QUEUES);
}

uint16_t vpci_queue_max(const struct vpci *vp, uint16_t idx)
{
	wr16(vp->common + CC_Q_SELECT, idx);
	return rd16(vp->common + CC_Q_SIZE);
}

static void wr64_split(uint64_t a, uint64_t v)
{
	wr32(a, (uint32_t)v);
	wr32(a + 4, (uint32_t)(v >> 32));
}

uint64_t vpci_queue_setup(const struct vpci *vp, uint16_t idx, uint16_t size,
			  uint64_t desc, uint64_t avail, uint64_t used,
			  uint16_t vector)
{
	uint64_t c = vp->common;
	uint16_t off;

	wr16(c + CC_Q_SELECT, idx);
	wr16(c + CC_Q_SIZE, size);
	wr64_split(c + CC_Q_DESC, desc);
	wr64_split(c + CC_Q_AVAIL, avail);
	wr64_split(c + CC_Q_USED, used);
	wr16(c + CC_Q_MSIX, vector);
	if (rd16(c + CC_Q_MSIX) != vector)
		return 0;
	off = rd16(c + CC_Q_NOTIFY_OFF);
	wr16(c + CC_Q_ENABLE, 1);
	return vp->notify + (uint64_t)off * vp->notify_mult;
}

int vpci_set_config_vector(const struct vpci *vp, uint16_t vector)
{
	wr16(vp->common + CC_MSIX_CONFIG, vector);
	return rd16(vp->common + CC_MSIX_CONFIG) == vector ? 0 : -G_EINVAL;
}

int vpci_msix_set(const struct vpci *vp, unsigned n, uint8_t vector,
		  bool masked)
{
	uint64_t e = vp->msix_table + n * 16ull;

	if (!vp->msix_cap || n >= vp->msix_n)
		return -G_EINVAL;
	wr32(e + 12, 1);      /* mask while changing */
	wr32(e, 0xfee00000u); /* LAPIC of CPU 0, physical destination */
	wr32(e + 4, 0);
	wr32(e + 8, vector); /* fixed delivery, edge */
	wr32(e + 12, masked ? 1 : 0);
	return 0;
}

void vpci_msix_enable(const struct vpci *vp, bool on)
{
	uint16_t ctl;

	if (!vp->msix_cap)
		return;
	ctl = pci_rd16(&vp->pci, vp->msix_cap + MSIX_CTRL);
	ctl &= ~(MSIX_ENABLE | MSIX_MASKALL);
	if (on)
		ctl |= MSIX_ENABLE;
	pci_wr16(&vp->pci, vp->msix_cap + MSIX_CTRL, ctl);
}

void vpci_msix_dump(const struct vpci *vp, unsigned n)
{
	const struct pci_dev *d = &vp->pci;
	uint32_t pba;
	uint64_t e = vp->msix_table + n * 16ull;
	unsigned bir;

	if (!vp->msix_cap || n >= vp->msix_n)
		return;
	pba = pci_rd32(d, vp->msix_cap + 8);
	bir = pba & 7;
	con_printf("msix: control %#x entry %u: addr %#x:%#x data %#x ctl %#x "
		   "pba %#x\n",
		   pci_rd16(d, vp->msix_cap + MSIX_CTRL), n, rd32(e + 4),
		   rd32(e), rd32(e + 8), rd32(e + 12),
		   bir < 6 && d->bar[bir] ? rd32(d->bar[bir] + (pba & ~7u))
					  : 0xffffffffu);
}
