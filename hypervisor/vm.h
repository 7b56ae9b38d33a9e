/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vm.h - the inside of struct cavm and the core's own calls (kvm.c,
 * vcpu.c, irq.c, io.c, cpu.c, boot.c, elf.c, decompress.c, zeropage.c,
 * mptable.c, acpi.c, serial.c, i8042.c, exitport.c, main.c).  Devices use cavm.h
 * only.
 *
 * The one idea: one struct holds the whole VM, so nothing in the core
 * keeps global state.  Locks, outermost first: io (a rwlock per address
 * space, read-held while a handler runs), then state (pause/stop), then
 * msi.  A PIO handler may (un)register MMIO ranges (PCI BAR moves); an
 * MMIO handler may not.
 */
#ifndef CAVM_HYPERVISOR_VM_H
#define CAVM_HYPERVISOR_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "hypervisor/cavm.h"

/* Fixed guest physical addresses (docs/hypervisor.md, "Memory layout"). */
#define CAVM_GDT_ADDR 0x500ull
#define CAVM_ZEROPAGE_ADDR 0x7000ull
#define CAVM_PML4_ADDR 0x9000ull
#define CAVM_PDPT_ADDR 0xA000ull
#define CAVM_PD_ADDR 0xB000ull /* 4 pages: 2 MiB pages over 4 GiB */
#define CAVM_CMDLINE_ADDR 0x20000ull
#define CAVM_CMDLINE_MAX 0x10000ull /* bytes, with the NUL */
#define CAVM_EBDA_ADDR 0x9FC00ull   /* e820 reserved from here to 1 MiB */
#define CAVM_ACPI_ADDR 0xE0000ull /* RSDP, then the tables (acpi.c) */
#define CAVM_MPTABLE_ADDR 0xF0000ull
#define CAVM_KERNEL_MIN 0x100000ull /* nothing is loaded below 1 MiB */

#define CAVM_BOOT_CS 0x10
#define CAVM_BOOT_DS 0x18

#define CAVM_MAX_CPUS 255u /* MP table APIC ids are one byte */
#define CAVM_MAX_IO 64u    /* ranges per address space */
#define CAVM_MAX_GSI 1024u
#define CAVM_MAX_EXIT_HOOKS 64u

struct cavm_io_range {
	uint64_t base, len;
	cavm_io_fn fn;
	void *opaque;
};

struct cavm_io_space {
	pthread_rwlock_t lock;
	struct cavm_io_range r[CAVM_MAX_IO];
	unsigned n; /* sorted by base */
};

struct cavm_vcpu {
	struct cavm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
};

struct cavm_exit_hook {
	void (*fn)(void *opaque);
	void *opaque;
};

struct cavm_config {
	uint64_t mem_bytes;
	unsigned ncpus;
	bool hugepages;
	int log_level; /* enum cavm_log_level */
};

struct cavm {
	struct cavm_config cfg;
	int kvm_fd, vm_fd;
	size_t run_size; /* the kvm_run mapping per vCPU */

	/* guest RAM: one mapping, split into up to two regions */
	uint8_t *ram;
	size_t ram_map_bytes;
	struct vblk_mem_region regions[2];
	struct vblk_mem mem;

	struct cavm_vcpu *vcpus;
	unsigned ncpus;
	struct kvm_cpuid2 *cpuid; /* KVM's supported set, per-vCPU fix-ups */

	struct cavm_io_space pio, mmio;

	/* pause and stop: state lock, one cond for every change */
	pthread_mutex_t state_lock;
	pthread_cond_t state_cond;
	bool stopping;
	int exit_status;
	bool pause_req;
	unsigned parked;  /* vCPU threads parked for a pause */
	unsigned running; /* vCPU threads not yet returned */
	int stop_efd;     /* written once on stop; main waits on it */

	/* MSI routes: the GSI routing table KVM holds, mirrored */
	pthread_mutex_t msi_lock;
	struct kvm_irq_routing_entry *routes;
	unsigned nroutes;
	unsigned next_gsi;

	struct cavm_exit_hook hooks[CAVM_MAX_EXIT_HOOKS];
	unsigned nhooks;
	pthread_mutex_t hook_lock;

	struct cavm_devices devices; /* pci.c, blk.c, control.c own it */

	/* when cavm_run started (CLOCK_MONOTONIC ns), for the start figure */
	uint64_t t_start_ns;
};

/* irq.c: irqchip, PIT and the default GSI routes. */
int cavm_irq_init(struct cavm *vm);

/* kvm.c */
int cavm_create(const struct cavm_config *cfg, struct cavm **out);
/* Start every vCPU, wait for a stop, join them and run the exit hooks.
 * Returns the exit status. */
int cavm_run(struct cavm *vm);
void cavm_destroy(struct cavm *vm);
/* io.c: an access from a vCPU thread, to its handler (or all-ones). */
void cavm_io_dispatch(struct cavm *vm, bool pio, uint64_t addr, uint8_t *data,
		      unsigned len, bool is_write);
uint64_t cavm_now_ns(void);

/* vcpu.c: the vCPU threads. */
int cavm_vcpus_create(struct cavm *vm);
int cavm_vcpus_start(struct cavm *vm);
void cavm_vcpus_kick(struct cavm *vm);
void cavm_vcpus_join(struct cavm *vm);

/* cpu.c: CPUID, MSRs, LAPIC and the 64-bit boot state. */
int cavm_cpu_init(struct cavm *vm, struct cavm_vcpu *c);
int cavm_cpu_boot_regs(struct cavm *vm, struct cavm_vcpu *c, uint64_t entry,
		       uint64_t zeropage);
/* Page tables and GDT in low memory for the 64-bit entry. */
int cavm_cpu_write_tables(struct cavm *vm);
void cavm_cpu_dump(struct cavm *vm, struct cavm_vcpu *c);

/* boot.c: load a kernel (bzImage or ELF), initrd and command line. */
struct cavm_boot {
	const char *kernel, *initrd, *cmdline;
	uint64_t entry; /* out: physical entry point */
};
int cavm_boot_load(struct cavm *vm, struct cavm_boot *b);

/* elf.c: an ELF64 x86-64 image, PT_LOADs at p_paddr. */
int cavm_elf_load(struct cavm *vm, const uint8_t *img, size_t len,
		  uint64_t *entry, uint64_t *end);

/* decompress.c: a bzImage payload by its magic, into a malloc'd buffer. */
int cavm_decompress(const uint8_t *in, size_t len, uint8_t **out,
		    size_t *outlen, const char **format);

/* zeropage.c: boot_params (Linux's struct boot_params, by offsets). */
#define BP_SIZE 4096u
/* Fill the zero page at CAVM_ZEROPAGE_ADDR: setup header 'hdr' (hdr_len
 * bytes from offset 0x1f1 of the kernel image, or NULL for an ELF),
 * command line, initrd, e820. */
int cavm_zeropage_write(struct cavm *vm, const uint8_t *hdr, size_t hdr_len,
			const char *cmdline, uint64_t initrd_addr,
			uint64_t initrd_len);

/* mptable.c */
int cavm_mptable_write(struct cavm *vm);
/* acpi.c: tables for power-off only, and the PM1a registers. */
int cavm_acpi_init(struct cavm *vm);

/* Devices of the core (serial.c, i8042.c, exitport.c). */
struct cavm_serial_opts {
	const char *out_path; /* NULL: stdout, and stdin is the input */
};
int cavm_serial_init(struct cavm *vm, const struct cavm_serial_opts *o);
int cavm_i8042_init(struct cavm *vm);
int cavm_exitport_init(struct cavm *vm);

#endif
