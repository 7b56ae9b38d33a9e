/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * irq.c - interrupts: the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT,
 * IRQ lines, MSI routes in KVM's GSI routing table, irqfds, direct MSIs
 * and ioeventfds.
 *
 * The one idea: KVM delivers every interrupt; this file only keeps KVM's
 * routing table in step with what devices ask for.  Setting any route
 * replaces KVM's whole table, so the table is mirrored here and sent
 * whole each time.
 *
 * Invariants: the table is always KVM's default irqchip routes (GSIs 0..15
 * to the PICs, 0..23 to the IOAPIC) plus one MSI route per allocated,
 * unmasked GSI from 24 up; msi_lock covers the mirror and the ioctl.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hypervisor/vm.h"

static int routes_commit(struct cavm *vm)
{
	size_t sz = sizeof(struct kvm_irq_routing) +
		    vm->nroutes * sizeof(struct kvm_irq_routing_entry);
	struct kvm_irq_routing *t = calloc(1, sz);
	int ret = 0;

	if (!t)
		return -ENOMEM;
	t->nr = vm->nroutes;
	memcpy(t->entries, vm->routes,
	       vm->nroutes * sizeof(struct kvm_irq_routing_entry));
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

static void route_irqchip(struct cavm *vm, unsigned gsi, unsigned chip,
			  unsigned pin)
{
	struct kvm_irq_routing_entry *e = &vm->routes[vm->nroutes++];

	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

/* KVM's own default table (PIC for GSIs 0..15, IOAPIC for 0..23): setting
 * any route replaces the whole table, so ours starts as a copy of it. */
int cavm_irq_init(struct cavm *vm)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return -errno;
	vm->routes = calloc(CAVM_MAX_GSI, sizeof(*vm->routes));
	if (!vm->routes)
		return -ENOMEM;
	for (unsigned i = 0; i < 16; i++)
		route_irqchip(vm, i,
			      i < 8 ? KVM_IRQCHIP_PIC_MASTER
				    : KVM_IRQCHIP_PIC_SLAVE,
			      i % 8);
	for (unsigned i = 0; i < CAVM_IOAPIC_PINS; i++)
		route_irqchip(vm, i, KVM_IRQCHIP_IOAPIC, i);
	vm->next_gsi = CAVM_IOAPIC_PINS;
	return routes_commit(vm);
}

int cavm_irq_line(struct cavm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level l = {.irq = gsi, .level = level ? 1 : 0};

	if (gsi >= CAVM_IOAPIC_PINS)
		return -EINVAL;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

int cavm_msi_alloc(struct cavm *vm, unsigned *gsi)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&vm->msi_lock);
	if (vm->next_gsi < CAVM_MAX_GSI) {
		*gsi = vm->next_gsi++;
		ret = 0;
	}
	pthread_mutex_unlock(&vm->msi_lock);
	return ret;
}

int cavm_msi_route(struct cavm *vm, unsigned gsi, uint64_t addr, uint32_t data,
		   bool masked)
{
	struct kvm_irq_routing_entry *e = NULL;
	int ret;

	if (gsi < CAVM_IOAPIC_PINS || gsi >= CAVM_MAX_GSI)
		return -EINVAL;
	pthread_mutex_lock(&vm->msi_lock);
	if (gsi >= vm->next_gsi) {
		pthread_mutex_unlock(&vm->msi_lock);
		return -EINVAL;
	}
	for (unsigned i = 0; i < vm->nroutes; i++)
		if (vm->routes[i].gsi == gsi)
			e = &vm->routes[i];
	if (masked) {
		/* No route: an irqfd signalled meanwhile delivers nothing. */
		if (e)
			*e = vm->routes[--vm->nroutes];
	} else {
		if (!e) {
			e = &vm->routes[vm->nroutes++];
			memset(e, 0, sizeof(*e));
		}
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)addr;
		e->u.msi.address_hi = (uint32_t)(addr >> 32);
		e->u.msi.data = data;
	}
	ret = routes_commit(vm);
	pthread_mutex_unlock(&vm->msi_lock);
	return ret;
}

int cavm_irqfd(struct cavm *vm, int efd, unsigned gsi, bool assign)
{
	struct kvm_irqfd f = {
		.fd = (uint32_t)efd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0)
		return -errno;
	return 0;
}

int cavm_msi_signal(struct cavm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi m = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	/* > 0: delivered, 0: the guest blocked it; both are fine. */
	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &m) < 0)
		return -errno;
	return 0;
}

int cavm_ioeventfd(struct cavm *vm, int efd, uint64_t addr, unsigned len,
		   bool pio, bool assign)
{
	struct kvm_ioeventfd e = {
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (len != 0 && len != 1 && len != 2 && len != 4 && len != 8)
		return -EINVAL;
	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &e) < 0)
		return -errno;
	return 0;
}
