/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpu.c - what a vCPU looks like to the guest: CPUID (KVM's supported set
 * with per-vCPU APIC ids), the MSRs a Linux guest expects at boot, the
 * local APIC's LINT pins, the FPU, and for the boot vCPU the state the
 * 64-bit Linux boot protocol enters with (Documentation/arch/x86/boot.rst,
 * "64-bit Boot Protocol"): long mode, paging on, a flat GDT with
 * __BOOT_CS = 0x10 and __BOOT_DS = 0x18, %rsi = the zero page.
 *
 * The one idea: application processors are left in KVM's reset state and
 * wait for INIT/SIPI from the guest (the in-kernel LAPIC does that), so
 * only the boot vCPU gets registers here.
 *
 * Invariants: the identity map built here covers [0, 4 GiB) with 2 MiB
 * pages and lives in low memory (vm.h, CAVM_PML4_ADDR..); the tables and
 * the GDT are written with explicit little-endian stores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

#define MAX_CPUID 256

#define CR0_PE (1ull << 0)
#define CR0_ET (1ull << 4)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

static int supported_cpuid(struct cavm *vm)
{
	struct kvm_cpuid2 *c;

	if (vm->cpuid)
		return 0;
	c = calloc(1, sizeof(*c) + MAX_CPUID * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = MAX_CPUID;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int ret = -errno;

		free(c);
		cavm_log(vm, CAVM_LOG_ERROR, "KVM_GET_SUPPORTED_CPUID: %s",
			 strerror(-ret));
		return ret;
	}
	vm->cpuid = c;
	return 0;
}

static int cpuid_init(struct cavm *vm, struct cavm_vcpu *c)
{
	size_t sz = sizeof(*vm->cpuid) +
		    vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	struct kvm_cpuid2 *id = malloc(sz);
	int ret = 0;

	if (!id)
		return -ENOMEM;
	memcpy(id, vm->cpuid, sz);
	for (unsigned i = 0; i < id->nent; i++) {
		struct kvm_cpuid_entry2 *e = &id->entries[i];

		switch (e->function) {
		case 1:
			/* initial APIC id, logical processor count */
			e->ebx = (e->ebx & 0x0000ffffu) | (c->id << 24) |
				 ((vm->ncpus & 0xffu) << 16);
			e->ecx |= 1u << 31; /* running on a hypervisor */
			break;
		case 0xb:
		case 0x1f:
			e->edx = c->id; /* x2APIC id */
			break;
		}
	}
	if (ioctl(c->fd, KVM_SET_CPUID2, id) < 0) {
		ret = -errno;
		cavm_log(vm, CAVM_LOG_ERROR, "vCPU %u: KVM_SET_CPUID2: %s",
			 c->id, strerror(-ret));
	}
	free(id);
	return ret;
}

/* The MSRs Linux reads before it writes them, at their reset values. */
static void msrs_init(struct cavm *vm, struct cavm_vcpu *c)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} msrs[] = {
		{0x174, 0},      /* IA32_SYSENTER_CS */
		{0x175, 0},      /* IA32_SYSENTER_ESP */
		{0x176, 0},      /* IA32_SYSENTER_EIP */
		{0xc0000081, 0}, /* STAR */
		{0xc0000082, 0}, /* LSTAR */
		{0xc0000083, 0}, /* CSTAR */
		{0xc0000084, 0}, /* SYSCALL_MASK */
		{0xc0000102, 0}, /* KERNEL_GS_BASE */
		{0x10, 0},       /* TSC */
		{0x1a0, 1},      /* IA32_MISC_ENABLE: fast strings */
		{0x2ff, 0x806},  /* MTRR default type: on, write-back */
	};
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[1];
	} m;

	/* One at a time: a host without one of them loses only that one. */
	for (size_t i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++) {
		memset(&m, 0, sizeof(m));
		m.h.nmsrs = 1;
		m.e[0].index = msrs[i].index;
		m.e[0].data = msrs[i].value;
		if (ioctl(c->fd, KVM_SET_MSRS, &m) != 1)
			cavm_log(vm, CAVM_LOG_DEBUG,
				 "vCPU %u: MSR 0x%x not settable", c->id,
				 msrs[i].index);
	}
}

/* LINT0 delivers the PIC's ExtINT, LINT1 NMIs, as firmware leaves them. */
static int lapic_init(struct cavm *vm, struct cavm_vcpu *c)
{
	struct kvm_lapic_state l;
	uint8_t *r = (uint8_t *)l.regs;

	if (ioctl(c->fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	le32_put(r + 0x350, (le32_get(r + 0x350) & ~0x700u) | (7u << 8));
	le32_put(r + 0x360, (le32_get(r + 0x360) & ~0x700u) | (4u << 8));
	if (ioctl(c->fd, KVM_SET_LAPIC, &l) < 0)
		return -errno;
	(void)vm;
	return 0;
}

int cavm_cpu_init(struct cavm *vm, struct cavm_vcpu *c)
{
	struct kvm_fpu fpu;
	int ret;

	ret = supported_cpuid(vm);
	if (ret == 0)
		ret = cpuid_init(vm, c);
	if (ret < 0)
		return ret;
	msrs_init(vm, c);
	ret = lapic_init(vm, c);
	if (ret < 0) {
		cavm_log(vm, CAVM_LOG_ERROR, "vCPU %u: local APIC: %s", c->id,
			 strerror(-ret));
		return ret;
	}
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

int cavm_cpu_write_tables(struct cavm *vm)
{
	uint8_t *gdt = cavm_gpa_ptr(vm, CAVM_GDT_ADDR, 48);
	uint8_t *pml4 = cavm_gpa_ptr(vm, CAVM_PML4_ADDR, 4096);
	uint8_t *pdpt = cavm_gpa_ptr(vm, CAVM_PDPT_ADDR, 4096);
	uint8_t *pd = cavm_gpa_ptr(vm, CAVM_PD_ADDR, 4 * 4096);

	if (!gdt || !pml4 || !pdpt || !pd)
		return -ENOMEM;
	/* null, null, code 0x10 (64-bit), data 0x18, TSS 0x20 (16 bytes) */
	memset(gdt, 0, 48);
	le64_put(gdt + 0x10, 0x00af9b000000ffffull);
	le64_put(gdt + 0x18, 0x00cf93000000ffffull);
	le64_put(gdt + 0x20, 0x00008b0000000067ull);
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	le64_put(pml4, CAVM_PDPT_ADDR | 3);
	for (uint64_t i = 0; i < 4; i++)
		le64_put(pdpt + 8 * i, (CAVM_PD_ADDR + 4096 * i) | 3);
	for (uint64_t i = 0; i < 2048; i++)
		le64_put(pd + 8 * i, (i << 21) | 0x83); /* P, RW, 2 MiB */
	return 0;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

int cavm_cpu_boot_regs(struct cavm *vm, struct cavm_vcpu *c, uint64_t entry,
		       uint64_t zeropage)
{
	struct kvm_sregs sr;
	struct kvm_regs r;

	if (ioctl(c->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	seg(&sr.cs, CAVM_BOOT_CS, 0xb, true);
	seg(&sr.ds, CAVM_BOOT_DS, 0x3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.selector = 0x20;
	sr.tr.limit = 0x67;
	sr.tr.type = 0xb; /* 64-bit TSS, busy */
	sr.tr.present = 1;
	sr.gdt.base = CAVM_GDT_ADDR;
	sr.gdt.limit = 48 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = CR0_PE | CR0_ET | CR0_PG;
	sr.cr3 = CAVM_PML4_ADDR;
	sr.cr4 = CR4_PAE;
	sr.efer = EFER_LME | EFER_LMA;
	if (ioctl(c->fd, KVM_SET_SREGS, &sr) < 0)
		return -errno;
	memset(&r, 0, sizeof(r));
	r.rflags = 2;
	r.rip = entry;
	r.rsi = zeropage;
	r.rsp = CAVM_ZEROPAGE_ADDR + 0x1ff0; /* below the page tables */
	if (ioctl(c->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	(void)vm;
	return 0;
}

void cavm_cpu_dump(struct cavm *vm, struct cavm_vcpu *c)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(c->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(c->fd, KVM_GET_SREGS, &s) < 0)
		return;
	cavm_log(vm, CAVM_LOG_ERROR,
		 "vCPU %u: rip %016llx rsp %016llx rflags %08llx", c->id,
		 (unsigned long long)r.rip, (unsigned long long)r.rsp,
		 (unsigned long long)r.rflags);
	cavm_log(vm, CAVM_LOG_ERROR,
		 "  rax %016llx rbx %016llx rcx %016llx rdx %016llx",
		 (unsigned long long)r.rax, (unsigned long long)r.rbx,
		 (unsigned long long)r.rcx, (unsigned long long)r.rdx);
	cavm_log(vm, CAVM_LOG_ERROR, "  rsi %016llx rdi %016llx rbp %016llx",
		 (unsigned long long)r.rsi, (unsigned long long)r.rdi,
		 (unsigned long long)r.rbp);
	cavm_log(vm, CAVM_LOG_ERROR,
		 "  cr0 %llx cr2 %llx cr3 %llx cr4 %llx efer %llx cs %x",
		 (unsigned long long)s.cr0, (unsigned long long)s.cr2,
		 (unsigned long long)s.cr3, (unsigned long long)s.cr4,
		 (unsigned long long)s.efer, s.cs.selector);
}
