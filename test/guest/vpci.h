/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vpci.h - the virtio 1.x PCI transport ("Virtio Over PCI Bus"), driver
 * side: the device's capabilities, its common configuration structure,
 * notifications, and the MSI-X table.
 */
#ifndef CAVM_TEST_GUEST_VPCI_H
#define CAVM_TEST_GUEST_VPCI_H

#include "test/guest/pci.h"

/* device_status bits */
#define VIRTIO_ACKNOWLEDGE 1u
#define VIRTIO_DRIVER 2u
#define VIRTIO_DRIVER_OK 4u
#define VIRTIO_FEATURES_OK 8u
#define VIRTIO_NEEDS_RESET 64u
#define VIRTIO_FAILED 128u

#define VIRTIO_NO_VECTOR 0xffffu

struct vpci {
	struct pci_dev pci;
	uint64_t common, notify, isr, device; /* MMIO addresses */
	uint32_t notify_mult;
	uint32_t device_len;
	unsigned msix_cap;   /* config offset of the MSI-X capability, or 0 */
	uint64_t msix_table; /* MMIO address of the table */
	unsigned msix_n;     /* entries */
};

/* Find the device (vendor 0x1af4, device 0x1040 + id), place its BARs
 * (all of them from *mmio_next with move_bars), locate the virtio
 * structures.  0 or negative errno, with a message. */
int vpci_probe(struct vpci *vp, uint16_t device_id, uint64_t *mmio_next,
	       bool move_bars);
uint8_t vpci_status(const struct vpci *vp);
void vpci_set_status(const struct vpci *vp, uint8_t s);
/* Write 0 and wait (up to ~1 s of spins) until the device reads 0. */
int vpci_reset(const struct vpci *vp);
uint64_t vpci_features(const struct vpci *vp);
void vpci_set_features(const struct vpci *vp, uint64_t f);
uint8_t vpci_config_generation(const struct vpci *vp);
uint16_t vpci_num_queues(const struct vpci *vp);
/* Select queue idx; its maximum size (0: no such queue). */
uint16_t vpci_queue_max(const struct vpci *vp, uint16_t idx);
/* Program the selected queue: size, ring addresses, MSI-X vector; enable
 * it.  Returns the notification address, or 0 if the device refused the
 * vector (it reads back VIRTIO_NO_VECTOR). */
uint64_t vpci_queue_setup(const struct vpci *vp, uint16_t idx, uint16_t size,
			  uint64_t desc, uint64_t avail, uint64_t used,
			  uint16_t vector);
/* Program MSI-X entry n (address 0xFEE00000 | apic id << 12, data =
 * vector) and enable MSI-X on the function.  0 or -G_EINVAL. */
int vpci_msix_set(const struct vpci *vp, unsigned n, uint8_t vector,
		  bool masked);
void vpci_msix_enable(const struct vpci *vp, bool on);
/* Print MSI-X control, entry n as read back, and the first PBA word. */
void vpci_msix_dump(const struct vpci *vp, unsigned n);
int vpci_set_config_vector(const struct vpci *vp, uint16_t vector);

#endif
