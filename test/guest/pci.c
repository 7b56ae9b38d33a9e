// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pci.c - PCI configuration space through mechanism #1: 0xCF8 takes
 * enable | bus | device | function | dword offset, 0xCFC..0xCFF is the
 * dword (byte and word accesses at their own offset inside it).
 *
 * Everything read here comes from the VMM and is bounded: capability
 * walks stop after 48 steps (a loop in the list), BAR sizes must be
 * powers of two.  The VMM normally places BARs itself in
 * 0xC0000000..0xE0000000; only a BAR it left at 0 is placed here, or
 * every BAR when asked to (bar_base=: moving BARs, as an OS may).
 */
#include "test/guest/pci.h"

#define CFG_ADDR 0xcf8
#define CFG_DATA 0xcfc
#define MMIO_END 0xE0000000ull

static void select_reg(const struct pci_dev *d, unsigned off)
{
	outl(CFG_ADDR, 0x80000000u | (uint32_t)d->bus << 16 |
			       (uint32_t)d->dev << 11 | (uint32_t)d->fn << 8 |
			       (off & 0xfc));
}

uint32_t pci_rd32(const struct pci_dev *d, unsigned off)
{
	select_reg(d, off);
	return inl(CFG_DATA);
}

uint16_t pci_rd16(const struct pci_dev *d, unsigned off)
{
	select_reg(d, off);
	return inw(CFG_DATA + (off & 2));
}

uint8_t pci_rd8(const struct pci_dev *d, unsigned off)
{
	select_reg(d, off);
	return inb(CFG_DATA + (off & 3));
}

void pci_wr32(const struct pci_dev *d, unsigned off, uint32_t v)
{
	select_reg(d, off);
	outl(CFG_DATA, v);
}

void pci_wr16(const struct pci_dev *d, unsigned off, uint16_t v)
{
	select_reg(d, off);
	outw(CFG_DATA + (off & 2), v);
}

int pci_find(uint16_t vendor, uint16_t device, struct pci_dev *found)
{
	bool seen = false;

	for (unsigned dev = 0; dev < 32; dev++) {
		unsigned nfn = 1;

		for (unsigned fn = 0; fn < nfn; fn++) {
			struct pci_dev d = {.bus = 0, .dev = dev, .fn = fn};
			uint32_t id = pci_rd32(&d, PCI_VENDOR_ID);

			if ((id & 0xffff) == 0xffff)
				continue;
			if (fn == 0 && (pci_rd8(&d, PCI_HEADER_TYPE) & 0x80))
				nfn = 8;
			d.vendor = id & 0xffff;
			d.device = id >> 16;
			con_printf("pci 00:%02x.%u %04x:%04x class %06x\n", dev,
				   fn, d.vendor, d.device,
				   pci_rd32(&d, 0x08) >> 8);
			if (!seen && d.vendor == vendor && d.device == device) {
				*found = d;
				seen = true;
			}
		}
	}
	return seen ? 0 : -G_ENODEV;
}

int pci_setup_bars(struct pci_dev *d, uint64_t *next, bool force)
{
	uint16_t cmd = pci_rd16(d, PCI_COMMAND);

	/* decoding off while sizing */
	pci_wr16(d, PCI_COMMAND, cmd & ~(PCI_CMD_MEM | 1));
	for (unsigned i = 0; i < 6; i++) {
		unsigned off = PCI_BAR0 + 4 * i;
		uint32_t lo = pci_rd32(d, off), hi = 0, slo, shi = 0xffffffff;
		bool is64 = (lo & 6) == 4;
		uint64_t addr, size;

		d->bar[i] = d->bar_size[i] = 0;
		if (lo & 1) /* I/O BAR: unused */
			continue;
		if (is64 && i == 5)
			return -G_EINVAL;
		pci_wr32(d, off, 0xffffffff);
		slo = pci_rd32(d, off);
		pci_wr32(d, off, lo);
		if (is64) {
			hi = pci_rd32(d, off + 4);
			pci_wr32(d, off + 4, 0xffffffff);
			shi = pci_rd32(d, off + 4);
			pci_wr32(d, off + 4, hi);
		}
		size = ~(((uint64_t)shi << 32) | (slo & ~0xfull)) + 1;
		if (!is64)
			size &= 0xffffffffull;
		addr = ((uint64_t)hi << 32) | (lo & ~0xfull);
		/* No BAR here (all zeros), or a size that is not a power
		 * of two (no real device has one): leave it alone. */
		if ((slo & ~0xfull) == 0 || (size & (size - 1))) {
			if (is64)
				i++;
			continue;
		}
		if (!addr || force) {
			addr = ALIGN_UP(*next, size);
			if (addr >= MMIO_END || size > MMIO_END - addr)
				return -G_ENOSPC;
			*next = addr + size;
			pci_wr32(d, off, (uint32_t)addr | (lo & 0xf));
			if (is64)
				pci_wr32(d, off + 4, (uint32_t)(addr >> 32));
			con_printf("pci: BAR%u placed at %#lx\n", i,
				   (unsigned long)addr);
		}
		d->bar[i] = addr;
		d->bar_size[i] = size;
		if (is64)
			i++;
	}
	pci_wr16(d, PCI_COMMAND,
		 cmd | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE);
	return 0;
}

unsigned pci_cap_find(const struct pci_dev *d, uint8_t id, unsigned pos)
{
	unsigned steps = 0;

	if (!(pci_rd16(d, PCI_STATUS) & PCI_STATUS_CAP))
		return 0;
	pos = pos ? pci_rd8(d, pos + 1) : pci_rd8(d, PCI_CAP_PTR);
	while (pos >= 0x40 && steps++ < 48) {
		pos &= 0xfc;
		if (pci_rd8(d, pos) == id)
			return pos;
		pos = pci_rd8(d, pos + 1);
	}
	return 0;
}
