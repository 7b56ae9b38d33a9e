/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pci.h - the PCI bus as devices see it: a 256-byte configuration space
 * per function, memory BARs, capability lists, and an INTx line.
 * Implemented by pci.c (host bridge, config mechanism #1, BAR placement)
 * and used by virtio_pci.c and msix.c.
 *
 * The one idea: a device describes itself (ids, BARs, capabilities, which
 * config bits the guest may change) and registers; from then on pci.c
 * owns its config space and maps each BAR's MMIO handler wherever the
 * guest puts the BAR, telling the device (bar_moved) so it can move what
 * hangs off that address (ioeventfds).
 *
 * Invariants:
 *  - Config space is only changed through the writable-bits mask, so
 *    read-only fields (ids, capability lists, BAR size bits) stay what
 *    the device set, whatever the guest writes.
 *  - A BAR is mapped exactly when memory decoding is on and its address
 *    lies wholly inside the 32-bit space; at most one mapping at a time.
 *  - Lock order: the bus lock (config space, BAR mappings), then a
 *    device's own lock.  BAR handlers never take the bus lock.
 */
#ifndef CAVM_HYPERVISOR_PCI_H
#define CAVM_HYPERVISOR_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "hypervisor/cavm.h"

#define PCI_CFG_SIZE 256u
#define PCI_NUM_BARS 6u
#define PCI_MAX_SLOTS 32u

/* standard header offsets (type 0) */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CAP_START 0x40

#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_BAR_MEM_64 0x4

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* INTx lines of PCI devices use IOAPIC pins from here on, level
 * triggered, active high (the MP table says so). */
#define PCI_INTX_GSI_BASE 16u

struct pci_dev;

struct pci_dev_ops {
	/* A config access at [reg, reg+len) (already applied, for a write)
	 * that touches this device's capabilities (reg >= 0x40).  For a
	 * read it runs first, so it may refresh the bytes read.  Bus lock
	 * held. */
	void (*cfg_access)(struct pci_dev *d, unsigned reg, unsigned len,
			   bool is_write);
	/* BAR 'bar' was mapped at addr (on) or unmapped (!on).  Bus lock
	 * held. */
	void (*bar_moved)(struct pci_dev *d, unsigned bar, uint64_t addr,
			  bool on);
};

struct pci_bar {
	uint32_t size; /* power of two >= 4096; 0: no BAR */
	cavm_io_fn fn;
	void *opaque;
	uint64_t mapped; /* where it is mapped, when 'on' */
	bool on;
};

struct pci_dev {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may change */
	struct pci_bar bar[PCI_NUM_BARS];
	uint8_t cap_end;  /* next free capability offset */
	uint8_t cap_last; /* last capability (0: none yet) */
	unsigned slot;    /* device number on bus 0, set by pci_register */
	unsigned gsi;     /* INTx line (IOAPIC pin), set by pci_register */
	const struct pci_dev_ops *ops;
	void *opaque; /* the device's own state */
	struct cavm *vm;
};

/* Fill the header: ids, class (base << 16 | sub << 8 | prog-if), INTA. */
void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		  uint16_t subsys_id);
/* A 32-bit memory BAR of 'size' bytes served by fn(opaque, off, ...). */
int pci_dev_add_bar(struct pci_dev *d, unsigned bar, uint32_t size,
		    cavm_io_fn fn, void *opaque);
/* Append a capability of 'len' bytes (id and next are filled in);
 * returns its offset in config space, or -ENOSPC. */
int pci_dev_add_cap(struct pci_dev *d, uint8_t id, unsigned len);

/* Place the device on bus 0 (next free slot), its BARs in the MMIO
 * window, memory decoding on (as firmware leaves it), and map them. */
int pci_register(struct cavm *vm, struct pci_dev *d);

/* Config space accessors for devices (bus lock held: in ops only). */
static inline uint16_t pci_cfg16(const struct pci_dev *d, unsigned reg)
{
	return (uint16_t)(d->cfg[reg] | d->cfg[reg + 1] << 8);
}
static inline uint32_t pci_cfg32(const struct pci_dev *d, unsigned reg)
{
	return (uint32_t)pci_cfg16(d, reg) | (uint32_t)pci_cfg16(d, reg + 2)
						     << 16;
}

/* The bus: config mechanism #1 (for tests; cavm_pci_init registers it
 * at 0xCF8/0xCFC). */
void pci_cf8_access(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		    bool is_write);
void pci_cfc_access(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		    bool is_write);

#endif
