/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pci.c - the PCI bus: host bridge 00:00.0, configuration mechanism #1
 * (address at 0xCF8, data at 0xCFC..0xCFF), BAR placement in the 32-bit
 * MMIO window and BAR mapping as the guest moves them, capability lists,
 * INTx line assignment.
 *
 * The one idea: cavm plays the firmware once (every BAR gets an address,
 * memory decoding is on) and afterwards only follows what the guest
 * writes through the writable-bits mask.  BAR sizing needs no special
 * case: the size bits of a BAR are not writable, so writing all-ones
 * reads back ~(size - 1) | flags, as on hardware.
 *
 * Invariants: only bus 0, function 0 of each slot exists; everything else
 * reads all-ones and ignores writes.  A BAR is mapped only while memory
 * decoding is on and it lies wholly below 4 GiB without wrapping; a BAR
 * the guest places on top of something else stays unmapped (logged).
 * The bus lock serialises every config access (pci.h: lock order).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/endian.h"
#include "hypervisor/pci.h"

#define CF8_ENABLE 0x80000000u

struct pci {
	struct cavm *vm;
	pthread_mutex_t lock;
	uint32_t cf8; /* the address register */
	struct pci_dev *slot[PCI_MAX_SLOTS];
	unsigned nslots;
	uint64_t mmio_next; /* bump allocator in the MMIO window */
	struct pci_dev bridge;
};

static struct pci *bus_of(struct cavm *vm)
{
	return cavm_devices(vm)->pci;
}

void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		  uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	le16_put(d->cfg + PCI_VENDOR_ID, vendor);
	le16_put(d->cfg + PCI_DEVICE_ID, device);
	d->cfg[PCI_REVISION_ID] = revision;
	d->cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
	d->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
	d->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
	le16_put(d->cfg + PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor);
	le16_put(d->cfg + PCI_SUBSYSTEM_ID, subsys_id);
	/* I/O and memory decoding, bus mastering, INTx disable. */
	le16_put(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
						 PCI_COMMAND_MASTER |
						 PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cfg[PCI_INTERRUPT_PIN] = 1; /* INTA# */
	d->cap_end = PCI_CAP_START;
}

int pci_dev_add_bar(struct pci_dev *d, unsigned bar, uint32_t size,
		    cavm_io_fn fn, void *opaque)
{
	if (bar >= PCI_NUM_BARS || size < 4096 || (size & (size - 1)) ||
	    d->bar[bar].size)
		return -EINVAL;
	d->bar[bar] =
		(struct pci_bar){.size = size, .fn = fn, .opaque = opaque};
	/* 32-bit, non-prefetchable memory: flag bits 0; size bits fixed. */
	le32_put(d->wmask + PCI_BAR0 + 4 * bar, ~(size - 1));
	return 0;
}

int pci_dev_add_cap(struct pci_dev *d, uint8_t id, unsigned len)
{
	unsigned off = d->cap_end;
	if (len < 2 || off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	if (d->cap_last)
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	d->cap_last = (uint8_t)off;
	d->cap_end = (uint8_t)((off + len + 3) & ~3u);
	return (int)off;
}

/* Map or unmap every BAR to follow the command register and the BARs'
 * addresses.  Bus lock held. */
static void update_bars(struct pci_dev *d)
{
	bool mem = pci_cfg16(d, PCI_COMMAND) & PCI_COMMAND_MEMORY;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size)
			continue;
		uint64_t addr = pci_cfg32(d, PCI_BAR0 + 4 * i) & ~0xfull;
		bool want = mem && addr && addr + b->size <= 0x100000000ull;
		if (b->on && (!want || addr != b->mapped)) {
			if (d->ops && d->ops->bar_moved)
				d->ops->bar_moved(d, i, b->mapped, false);
			cavm_mmio_unregister(d->vm, b->mapped);
			b->on = false;
		}
		if (want && !b->on) {
			int rc = cavm_mmio_register(d->vm, addr, b->size, b->fn,
						    b->opaque);
			if (rc) {
				cavm_log(d->vm, CAVM_LOG_DEBUG,
					 "pci 00:%02x.0: BAR%u at %#llx not "
					 "mapped: %s",
					 d->slot, i, (unsigned long long)addr,
					 strerror(-rc));
				continue;
			}
			b->mapped = addr;
			b->on = true;
			if (d->ops && d->ops->bar_moved)
				d->ops->bar_moved(d, i, addr, true);
		}
	}
}

static struct pci_dev *selected(struct pci *p, unsigned *reg)
{
	uint32_t a = p->cf8;
	unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f,
		 fn = (a >> 8) & 7;
	if (!(a & CF8_ENABLE) || bus || fn || slot >= p->nslots)
		return NULL;
	*reg = a & 0xfc;
	return p->slot[slot];
}

static void cfg_write(struct pci_dev *d, unsigned reg, const uint8_t *data,
		      unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		uint8_t m = d->wmask[reg + i];
		d->cfg[reg + i] =
			(uint8_t)((d->cfg[reg + i] & ~m) | (data[i] & m));
	}
	if (reg < PCI_COMMAND + 2 && reg + len > PCI_COMMAND)
		update_bars(d);
	else if (reg < PCI_BAR0 + 4 * PCI_NUM_BARS && reg + len > PCI_BAR0)
		update_bars(d);
	else if (reg >= PCI_CAP_START && d->ops && d->ops->cfg_access)
		d->ops->cfg_access(d, reg, len, true);
}

void pci_cf8_access(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		    bool is_write)
{
	struct pci *p = opaque;
	/* Only a 32-bit access at 0xCF8 is the address register (byte
	 * accesses there are chipset registers we do not have). */
	if (off != 0 || len != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (is_write)
		p->cf8 = le32_get(data);
	else
		le32_put(data, p->cf8);
	pthread_mutex_unlock(&p->lock);
}

void pci_cfc_access(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		    bool is_write)
{
	struct pci *p = opaque;
	unsigned reg = 0;
	pthread_mutex_lock(&p->lock);
	struct pci_dev *d = selected(p, &reg);
	reg += (unsigned)off;
	if (!d || off + len > 4 || len > 4) {
		if (!is_write)
			memset(data, 0xff, len);
	} else if (is_write) {
		cfg_write(d, reg, data, len);
	} else {
		if (reg >= PCI_CAP_START && d->ops && d->ops->cfg_access)
			d->ops->cfg_access(d, reg, len, false);
		memcpy(data, d->cfg + reg, len);
	}
	pthread_mutex_unlock(&p->lock);
}

int pci_register(struct cavm *vm, struct pci_dev *d)
{
	struct pci *p = bus_of(vm);
	if (!p)
		return -ENODEV;
	pthread_mutex_lock(&p->lock);
	if (p->nslots == PCI_MAX_SLOTS) {
		pthread_mutex_unlock(&p->lock);
		return -ENOSPC;
	}
	/* Firmware's job: addresses for every BAR, naturally aligned. */
	uint64_t next = p->mmio_next;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t size = d->bar[i].size;
		if (!size)
			continue;
		next = (next + size - 1) & ~((uint64_t)size - 1);
		if (next + size > CAVM_PCI_MMIO_BASE + CAVM_PCI_MMIO_SIZE) {
			pthread_mutex_unlock(&p->lock);
			return -ENOSPC;
		}
		le32_put(d->cfg + PCI_BAR0 + 4 * i, (uint32_t)next);
		next += size;
	}
	p->mmio_next = next;
	d->vm = vm;
	d->slot = p->nslots;
	d->gsi = PCI_INTX_GSI_BASE +
		 (d->slot - 1) % (CAVM_IOAPIC_PINS - PCI_INTX_GSI_BASE);
	d->cfg[PCI_INTERRUPT_LINE] = (uint8_t)d->gsi;
	le16_put(d->cfg + PCI_COMMAND,
		 pci_cfg16(d, PCI_COMMAND) | PCI_COMMAND_MEMORY);
	p->slot[p->nslots++] = d;
	update_bars(d);
	pthread_mutex_unlock(&p->lock);
	cavm_log(vm, CAVM_LOG_DEBUG,
		 "pci 00:%02x.0: %04x:%04x, INTA# on GSI %u", d->slot,
		 pci_cfg16(d, PCI_VENDOR_ID), pci_cfg16(d, PCI_DEVICE_ID),
		 d->gsi);
	return 0;
}

static void pci_free(void *opaque)
{
	struct pci *p = opaque;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int cavm_pci_init(struct cavm *vm)
{
	struct cavm_devices *dv = cavm_devices(vm);
	int rc;
	if (dv->pci)
		return -EALREADY;
	struct pci *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->vm = vm;
	p->mmio_next = CAVM_PCI_MMIO_BASE;
	/* The host bridge: Red Hat's "QEMU PCIe host bridge" ids, class
	 * 06.00 (what Linux's pci_sanity_check looks for). */
	pci_dev_init(&p->bridge, 0x1b36, 0x0008, 0x060000, 0, 0x1af4, 0x1100);
	p->bridge.cfg[PCI_INTERRUPT_PIN] = 0;
	p->bridge.wmask[PCI_INTERRUPT_LINE] = 0;
	p->bridge.vm = vm;
	p->slot[p->nslots++] = &p->bridge;
	rc = cavm_pio_register(vm, 0xcf8, 4, pci_cf8_access, p);
	if (!rc)
		rc = cavm_pio_register(vm, 0xcfc, 4, pci_cfc_access, p);
	if (!rc)
		rc = cavm_at_exit(vm, pci_free, p);
	if (rc) {
		/* Registered handlers would point at freed memory: this is
		 * a setup failure, and cavm stops before running. */
		cavm_log(vm, CAVM_LOG_ERROR, "PCI bus: %s", strerror(-rc));
		return rc;
	}
	dv->pci = p;
	return 0;
}

unsigned cavm_pci_intx_list(struct cavm *vm, struct cavm_pci_intx *out,
			    unsigned max)
{
	struct pci *p = bus_of(vm);
	unsigned n = 0;
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nslots && n < max; i++) {
		struct pci_dev *d = p->slot[i];
		if (!d->cfg[PCI_INTERRUPT_PIN])
			continue;
		out[n++] = (struct cavm_pci_intx){(uint8_t)d->slot,
						  d->cfg[PCI_INTERRUPT_PIN],
						  (uint8_t)d->gsi};
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}
