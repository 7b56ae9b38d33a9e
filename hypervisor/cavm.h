/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cavm.h - the internal contract of the cavm VMM: what the core (kvm.c,
 * cpu.c, boot.c, mptable.c, serial.c, i8042.c, main.c) offers devices
 * (pci.c, virtio_pci.c, blk.c, control.c), and the few entry points the
 * devices offer main.c back.
 *
 * The one idea: a struct cavm is one VM; devices never see KVM file
 * descriptors, only these calls.  Port and MMIO accesses the kernel
 * cannot complete reach a registered handler on the vCPU thread that made
 * them; everything else (interrupts, ioeventfds, pausing, stopping) goes
 * through the functions below.
 *
 * Invariants:
 *  - Guest memory is RAM [0, min(mem, 3 GiB)) and, for mem > 3 GiB, the
 *    rest from 4 GiB up.  Nothing else is guest RAM; every guest address
 *    a device follows goes through cavm_mem()/cavm_gpa_ptr() (bounds
 *    checked, never raw arithmetic on a host pointer).
 *  - Handlers run on vCPU threads, possibly several at once: a device
 *    locks its own state.  Handlers never block on the store.
 *  - cavm_request_stop() is the only way to end: vCPUs leave KVM_RUN,
 *    exit hooks run once (disks flushed), then the process exits with the
 *    first status requested.
 *
 * Errors: negative errno.  Additive changes by either side are fine;
 * mark them with a comment naming the side.
 */
#ifndef CAVM_HYPERVISOR_CAVM_H
#define CAVM_HYPERVISOR_CAVM_H

#include <stdbool.h>
#include <stdint.h>

#include "blkstore/vblk.h"

struct cavm; /* one VM */

/* ---- guest memory ---- */

/* RAM below the 32-bit hole and above 4 GiB, as a vblk_mem table valid
 * for the VM's life. */
const struct vblk_mem *cavm_mem(struct cavm *vm);
/* [gpa, gpa+len) as one host pointer; NULL if not all of it is in one RAM
 * region (or len is 0). */
void *cavm_gpa_ptr(struct cavm *vm, uint64_t gpa, uint64_t len);

/* Guest physical layout (docs/hypervisor.md, "Memory layout"). */
#define CAVM_LOWMEM_MAX 0xC0000000ull   /* RAM below 4 GiB ends here */
#define CAVM_HIGHMEM_BASE 0x100000000ull /* the rest of RAM starts here */

/* The 32-bit MMIO window for PCI BARs: [CAVM_PCI_MMIO_BASE, +SIZE).
 * 0xE0000000..0xF0000000 is reserved (future ECAM), the IOAPIC is at
 * 0xFEC00000 and the local APIC at 0xFEE00000. */
#define CAVM_PCI_MMIO_BASE 0xC0000000ull
#define CAVM_PCI_MMIO_SIZE 0x20000000ull
#define CAVM_IOAPIC_BASE 0xFEC00000ull
#define CAVM_LAPIC_BASE 0xFEE00000ull

/* ---- port and MMIO handlers ----
 * Called on vCPU threads (a device locks its own state).  'off' is
 * relative to the registered base; data is little-endian, len 1/2/4/8.
 * Unclaimed reads return all-ones, unclaimed writes are ignored (logged
 * at debug level).  Ranges may not overlap: -EEXIST. */
typedef void (*cavm_io_fn)(void *opaque, uint64_t off, uint8_t *data,
			   unsigned len, bool is_write);
int cavm_pio_register(struct cavm *vm, uint16_t base, uint16_t len,
		      cavm_io_fn fn, void *opaque);
int cavm_mmio_register(struct cavm *vm, uint64_t base, uint64_t len,
		       cavm_io_fn fn, void *opaque);
/* Remove the MMIO range registered at base (a BAR moved); -ENOENT if none.
 * When it returns, no vCPU is still inside that range's handler.
 * (Core, additive.)  Both MMIO calls take the MMIO table's write lock,
 * which every MMIO handler runs under: call them from a PIO handler or
 * another thread, never from an MMIO handler, and never while holding a
 * lock an MMIO handler may wait for. */
int cavm_mmio_unregister(struct cavm *vm, uint64_t base);

/* ---- interrupts: in-kernel irqchip (IOAPIC GSIs 0..23) ---- */
#define CAVM_IOAPIC_PINS 24u

int cavm_irq_line(struct cavm *vm, unsigned gsi, int level); /* KVM_IRQ_LINE */
/* MSI through KVM's GSI routing table: allocate a GSI (>= 24) routed to
 * the message, re-route it when the guest reprograms the vector (masked:
 * the route is kept but no interrupt is delivered), and attach an eventfd
 * (irqfd) so another thread can raise it. */
int cavm_msi_alloc(struct cavm *vm, unsigned *gsi);
int cavm_msi_route(struct cavm *vm, unsigned gsi, uint64_t addr,
		   uint32_t data, bool masked);
int cavm_irqfd(struct cavm *vm, int efd, unsigned gsi, bool assign);
/* Raise an MSI directly (KVM_SIGNAL_MSI), e.g. from a vCPU thread. */
int cavm_msi_signal(struct cavm *vm, uint64_t addr, uint32_t data);
/* ioeventfd: a guest write of any value to [addr, addr+len) signals efd
 * without an exit to userspace.  len 0 (any width) or 1/2/4/8. */
int cavm_ioeventfd(struct cavm *vm, int efd, uint64_t addr, unsigned len,
		   bool pio, bool assign);

/* ---- lifecycle ---- */
enum cavm_log_level {
	CAVM_LOG_ERROR,
	CAVM_LOG_WARN,
	CAVM_LOG_INFO,
	CAVM_LOG_DEBUG
};
/* One line on stderr ("cavm: ..."), safe from any thread; messages above
 * the VM's level (INFO, or DEBUG with -v) are dropped. */
void cavm_log(struct cavm *vm, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool cavm_log_enabled(struct cavm *vm, int level);

/* Ask the VM to end: vCPUs stop, devices' exit hooks run (disks flushed),
 * cavm exits with 'status'.  Safe from any thread (also a vCPU thread or
 * a signal-free context), idempotent (first status wins). */
void cavm_request_stop(struct cavm *vm, int status);
int cavm_pause(struct cavm *vm); /* all vCPUs out of KVM_RUN and parked */
int cavm_resume(struct cavm *vm);
bool cavm_paused(struct cavm *vm);
unsigned cavm_ncpus(struct cavm *vm);
uint64_t cavm_ram_bytes(struct cavm *vm);

/* Devices register an exit hook (run once, after vCPUs stopped, in reverse
 * registration order): flush and close disks there. */
int cavm_at_exit(struct cavm *vm, void (*fn)(void *opaque), void *opaque);

/* ---- the devices' side (pci.c, blk.c, control.c) ---- */

/* PCI host bridge 00:00.0 and config mechanism #1 at 0xCF8/0xCFC. */
int cavm_pci_init(struct cavm *vm);
/* Parse and attach "STORE:DISK[,ro]" as a virtio-blk PCI device. */
int cavm_blk_add(struct cavm *vm, const char *spec);
/* Start the control socket at path (NULL: none). */
int cavm_control_start(struct cavm *vm, const char *path);

/* (Devices side, additive.)  Per-VM state of pci.c, blk.c and control.c:
 * kvm.c keeps one, zero-initialised, inside struct cavm and returns it
 * here (e.g. "return &vm->devices;"); only the devices' files touch it. */
struct pci;
struct blk_set;
struct control;
struct cavm_devices {
	struct pci *pci;          /* pci.c */
	struct blk_set *blk;      /* blk.c: stores and disks */
	struct control *control;  /* control.c */
};
struct cavm_devices *cavm_devices(struct cavm *vm);

/* (Devices side, additive.)  For the MP table: the PCI devices' INTx
 * lines, after every cavm_blk_add.  Each is pin INTA# (1) of device
 * 'slot' on bus 0, wired to IOAPIC pin 'gsi' (16..23), level triggered,
 * active high.  Returns how many (at most max) were filled in. */
struct cavm_pci_intx {
	uint8_t slot, pin, gsi;
};
unsigned cavm_pci_intx_list(struct cavm *vm, struct cavm_pci_intx *out,
			    unsigned max);

#endif
