/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * msix.h - an MSI-X capability, its vector table and pending bit array,
 * each vector a KVM GSI routed to the guest's message with an irqfd
 * attached (msix.c).
 *
 * The one idea: raising a vector is one eventfd write from any thread
 * (the kernel injects it), unless the vector or the whole function is
 * masked: then its pending bit is set, and unmasking delivers it.
 *
 * Invariants: the table is only ever read or written as whole, aligned
 * 4- or 8-byte accesses inside it (others are ignored / read as zero);
 * the PBA is read-only; the KVM route of a vector always holds the
 * table's current address and data.  One mutex (a leaf lock).
 */
#ifndef CAVM_HYPERVISOR_MSIX_H
#define CAVM_HYPERVISOR_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hypervisor/pci.h"

#define MSIX_MAX_VECTORS 64u
#define MSIX_ENTRY_SIZE 16u
#define MSIX_CAP_LEN 12u
#define MSIX_CTRL_ENABLE 0x8000u
#define MSIX_CTRL_MASKALL 0x4000u
#define MSIX_VECTOR_MASKED 1u

struct msix {
	struct cavm *vm;
	pthread_mutex_t lock;
	unsigned n;
	unsigned cap; /* offset of the capability in config space */
	bool enabled, maskall;
	uint8_t table[MSIX_MAX_VECTORS * MSIX_ENTRY_SIZE];
	uint64_t pending; /* the PBA */
	unsigned gsi[MSIX_MAX_VECTORS];
	int efd[MSIX_MAX_VECTORS];
	uint64_t raised; /* vectors delivered, for statistics */
};

/* Add the capability to d: n vectors, table at table_off and PBA at
 * pba_off of BAR 'bar'; allocate a GSI and an irqfd per vector. */
int msix_init(struct msix *m, struct pci_dev *d, unsigned n, unsigned bar,
	      uint32_t table_off, uint32_t pba_off);
/* Once d is registered (pci_register): a GSI, an eventfd and an irqfd
 * per vector, the route masked until the guest programs it. */
int msix_setup_irqs(struct msix *m, struct cavm *vm);
/* Detach the irqfds, close the eventfds (the GSIs stay allocated). */
void msix_destroy(struct msix *m);
/* The message control word changed (pci_dev_ops.cfg_access). */
void msix_cfg_written(struct msix *m, struct pci_dev *d);
/* Guest accesses to the table and the PBA (off relative to each). */
void msix_table_access(struct msix *m, uint64_t off, uint8_t *data,
		       unsigned len, bool is_write);
void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, unsigned len,
		     bool is_write);
bool msix_enabled(struct msix *m);
/* Raise vector v (any thread): delivered now, or left pending if masked.
 * false if MSI-X is off or v is out of range (the caller uses INTx). */
bool msix_raise(struct msix *m, unsigned v);

#endif
