/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio_pci.h - the virtio 1.x modern PCI transport (virtio_pci.c) as a
 * device model (blk.c) uses it.
 *
 * The one idea: the transport owns every register the driver programs
 * (status, features, queue setup, MSI-X vectors, ISR) and turns a
 * driver's notification into a readable eventfd; the device owns what a
 * queue holds.  A device thread waits on virtio_pci_kick_fd(), takes the
 * queue's registers with virtio_pci_queue(), processes, and raises
 * virtio_pci_queue_irq().
 *
 * Threads: every function here may be called from any thread.  The ops
 * are called on vCPU threads, without the transport's lock held.
 */
#ifndef CAVM_HYPERVISOR_VIRTIO_PCI_H
#define CAVM_HYPERVISOR_VIRTIO_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hypervisor/cavm.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + virtio device id */
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_PCI_MAX_QUEUES 8u
#define VIRTIO_MSI_NO_VECTOR 0xffffu

/* device_status bits */
#define VIRTIO_S_ACKNOWLEDGE 1u
#define VIRTIO_S_DRIVER 2u
#define VIRTIO_S_DRIVER_OK 4u
#define VIRTIO_S_FEATURES_OK 8u
#define VIRTIO_S_NEEDS_RESET 0x40u
#define VIRTIO_S_FAILED 0x80u

/* BAR layout: BAR0 holds the virtio structures, BAR1 the MSI-X table
 * and PBA (docs/hypervisor.md, "virtio-pci"). */
#define VPCI_BAR_VIRTIO 0u
#define VPCI_BAR_MSIX 1u
#define VPCI_COMMON_OFF 0x0000u
#define VPCI_COMMON_LEN 0x40u
#define VPCI_ISR_OFF 0x1000u
#define VPCI_DEVICE_OFF 0x2000u
#define VPCI_DEVICE_LEN 0x1000u
#define VPCI_NOTIFY_OFF 0x3000u
#define VPCI_NOTIFY_MULT 4u
#define VPCI_BAR_SIZE 0x4000u
#define VPCI_MSIX_TABLE_OFF 0x0u
#define VPCI_MSIX_PBA_OFF 0x800u
#define VPCI_MSIX_BAR_SIZE 0x1000u

struct virtio_pci;

struct virtio_pci_ops {
	/* Feature bits to offer (must include VERSION_1, bit 32). */
	uint64_t (*features)(void *opaque);
	/* The driver set FEATURES_OK with these: 0, or < 0 to refuse. */
	int (*set_features)(void *opaque, uint64_t features);
	/* Device config space into cfg[0..len). */
	void (*config)(void *opaque, uint8_t *cfg, size_t len);
	/* The driver reset the device (status 0): stop processing, forget
	 * the queues' state, then call virtio_pci_reset_done() (from any
	 * thread, also from within this call).  Must not block. */
	void (*reset)(void *opaque);
};

/* Registers of one queue as the driver left them, and an epoch that
 * changes whenever the queue is (re-)enabled or the device reset: a
 * device restarts its ring indexes at 0 when it sees a new epoch. */
struct virtio_pci_queue {
	uint16_t size;
	uint64_t desc, driver, device;
	uint32_t epoch;
};

/* Create the transport of a device of virtio type 'device_id' with
 * nqueues queues of at most max_size entries, and register it on the
 * PCI bus (BARs mapped, ioeventfds on the notify addresses, MSI-X
 * vectors for the queues and the config change). */
int virtio_pci_create(struct cavm *vm, unsigned device_id, uint32_t class_code,
		      unsigned nqueues, uint16_t max_size,
		      const struct virtio_pci_ops *ops, void *opaque,
		      struct virtio_pci **out);
/* After the vCPUs stopped: ioeventfds and irqfds released, freed. */
void virtio_pci_destroy(struct virtio_pci *vp);

/* Readable when the driver notified queue q (read and clear it with
 * virtio_pci_kick_clear). */
int virtio_pci_kick_fd(struct virtio_pci *vp, unsigned q);
void virtio_pci_kick_clear(struct virtio_pci *vp, unsigned q);
/* Queue q's registers, if the driver enabled it and set DRIVER_OK and
 * the device does not need a reset; else false. */
bool virtio_pci_queue(struct virtio_pci *vp, unsigned q,
		      struct virtio_pci_queue *out);
/* Interrupt for queue q: its MSI-X vector, or INTx with ISR bit 0. */
void virtio_pci_queue_irq(struct virtio_pci *vp, unsigned q);
/* The device config changed: config_generation moves on, config
 * interrupt (ISR bit 1). */
void virtio_pci_config_changed(struct virtio_pci *vp);
/* The device broke: DEVICE_NEEDS_RESET and a config interrupt. */
void virtio_pci_needs_reset(struct virtio_pci *vp);
uint8_t virtio_pci_status(struct virtio_pci *vp);
/* The device has finished the reset ops->reset started. */
void virtio_pci_reset_done(struct virtio_pci *vp);
/* Interrupts raised so far (statistics). */
uint64_t virtio_pci_irqs(struct virtio_pci *vp);

/* The handlers, for tests: BAR0, and the PCI device itself. */
void virtio_pci_bar_access(void *opaque, uint64_t off, uint8_t *data,
			   unsigned len, bool is_write);
struct pci_dev *virtio_pci_dev(struct virtio_pci *vp);

#endif
