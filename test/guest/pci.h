/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pci.h - PCI configuration mechanism #1 (ports 0xCF8/0xCFC), BARs and
 * capability lists, as the test guest needs them.
 */
#ifndef CAVM_TEST_GUEST_PCI_H
#define CAVM_TEST_GUEST_PCI_H

#include "test/guest/guest.h"

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CMD_MEM 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP 0x0010
#define PCI_CAP_MSIX 0x11
#define PCI_CAP_VENDOR 0x09

struct pci_dev {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint64_t bar[6]; /* addresses (memory BARs), 0 if none */
	uint64_t bar_size[6];
};

uint32_t pci_rd32(const struct pci_dev *d, unsigned off);
uint16_t pci_rd16(const struct pci_dev *d, unsigned off);
uint8_t pci_rd8(const struct pci_dev *d, unsigned off);
void pci_wr32(const struct pci_dev *d, unsigned off, uint32_t v);
void pci_wr16(const struct pci_dev *d, unsigned off, uint16_t v);
/* Scan bus 0 and print what is there; fill d with the first
 * vendor:device found.  0 or -G_ENODEV. */
int pci_find(uint16_t vendor, uint16_t device, struct pci_dev *d);
/* Read (and size) every memory BAR; a BAR left at 0 (every BAR, with
 * force) gets an address in [*next, 0xE0000000), aligned to its size.
 * Memory decoding and bus mastering on.  0 or -G_ENOSPC. */
int pci_setup_bars(struct pci_dev *d, uint64_t *next, bool force);
/* The next capability after pos (0: the first) with id, or 0. */
unsigned pci_cap_find(const struct pci_dev *d, uint8_t id, unsigned pos);

#endif
