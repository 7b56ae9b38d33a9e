/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio_pci_int.h - the inside of the virtio-pci transport, shared by
 * virtio_pci.c (capabilities, BARs, interrupts, notifications) and
 * virtio_pci_common.c (the common configuration registers).  Nothing
 * else includes it; devices use virtio_pci.h.
 *
 * Invariant: every field below is guarded by vp->lock, except the
 * immutable setup (pci, vm, ops, opaque, nq, max_size, the kick fds).
 */
#ifndef CAVM_HYPERVISOR_VIRTIO_PCI_INT_H
#define CAVM_HYPERVISOR_VIRTIO_PCI_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hypervisor/msix.h"
#include "hypervisor/pci.h"
#include "hypervisor/virtio_pci.h"

struct vq_regs {
	uint16_t size, msix;
	bool enabled;
	uint64_t desc, driver, device;
	uint32_t epoch;
	int kick; /* eventfd */
};

struct virtio_pci {
	struct pci_dev pci;
	struct msix msix;
	struct cavm *vm;
	const struct virtio_pci_ops *ops;
	void *opaque;
	pthread_mutex_t lock;

	unsigned nq;
	uint16_t max_size;
	uint32_t dev_feat_sel, drv_feat_sel;
	uint64_t drv_features;
	uint16_t config_msix;
	uint8_t status;
	bool resetting;     /* ops->reset started, not yet done */
	uint8_t old_status; /* what the driver reads meanwhile */
	uint8_t generation;
	uint16_t queue_sel;
	uint8_t isr;
	bool intx_up;
	uint64_t irqs;
	unsigned pci_cfg_cap; /* offset of the PCI config access cap */
	struct vq_regs q[VIRTIO_PCI_MAX_QUEUES];
};

/* virtio_pci.c: the INTx line up or down; a queue's kick eventfd. */
void vpci_set_intx(struct virtio_pci *vp, bool up);
void vpci_kick(struct virtio_pci *vp, unsigned q);

/* virtio_pci_common.c: a driver access to the common configuration
 * (off < VPCI_COMMON_LEN, len 1..8); takes vp->lock itself. */
void vpci_common_access(struct virtio_pci *vp, unsigned off, uint8_t *data,
			unsigned len, bool is_write);
/* Every register back to its reset value (vp->lock held). */
void vpci_reset_regs(struct virtio_pci *vp);

#endif
