/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mptable.c - the Intel MultiProcessor Specification 1.4 tables a guest
 * finds interrupts and CPUs through when there is no ACPI: the MP
 * floating pointer at CAVM_MPTABLE_ADDR (0xF0000, scanned by Linux) and
 * the configuration table right after it.
 *
 * Contents: one processor entry per vCPU (APIC id = vCPU index, the first
 * is the boot processor), bus 0 PCI and bus 1 ISA, one IOAPIC (id =
 * number of vCPUs, at CAVM_IOAPIC_BASE), ISA IRQs 0..15 wired to IOAPIC
 * pins 0..15 (as KVM's in-kernel PIT and irqchip deliver them, GSI =
 * pin), each PCI device's INTx line (pci.c says which IOAPIC pin; level,
 * active high) for guests without MSI-X, and LINT0 = ExtINT, LINT1 = NMI
 * on every local APIC.
 *
 * The one idea: written byte by byte, little-endian, with the two
 * checksums computed last; the region lies in e820-reserved memory.
 */
#include <errno.h>
#include <string.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

#define MPF_SIZE 16
#define MPC_HDR_SIZE 44
#define MP_PROC_SIZE 20
#define MP_ENTRY_SIZE 8
#define BUS_PCI 0
#define BUS_ISA 1
#define ISA_IRQS 16
#define MAX_INTX 32

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0x100 - sum);
}

static void cpuid1(struct cavm *vm, uint32_t *eax, uint32_t *edx)
{
	*eax = 0x600; /* family 6, if KVM did not say */
	*edx = 0x201; /* FPU, APIC */
	for (unsigned i = 0; vm->cpuid && i < vm->cpuid->nent; i++) {
		if (vm->cpuid->entries[i].function == 1) {
			*eax = vm->cpuid->entries[i].eax;
			*edx = vm->cpuid->entries[i].edx;
		}
	}
}

static uint8_t *entry8(uint8_t *p, uint8_t type, uint8_t a, uint16_t flags,
		       uint8_t b, uint8_t c, uint8_t d, uint8_t e)
{
	p[0] = type;
	p[1] = a;
	le16_put(p + 2, flags);
	p[4] = b;
	p[5] = c;
	p[6] = d;
	p[7] = e;
	return p + MP_ENTRY_SIZE;
}

int cavm_mptable_write(struct cavm *vm)
{
	struct cavm_pci_intx intx[MAX_INTX];
	unsigned nintx = cavm_pci_intx_list(vm, intx, MAX_INTX);
	unsigned n = vm->ncpus, count = 0;
	size_t len = MPC_HDR_SIZE + n * MP_PROC_SIZE +
		     (2 + 1 + ISA_IRQS + nintx + 2) * MP_ENTRY_SIZE;
	uint8_t *mpf = cavm_gpa_ptr(vm, CAVM_MPTABLE_ADDR, MPF_SIZE + len);
	uint8_t *mpc, *p;
	uint8_t ioapic = (uint8_t)n;
	uint32_t sig, feat;

	if (!mpf || CAVM_MPTABLE_ADDR + MPF_SIZE + len > 0x100000)
		return -ENOSPC;
	memset(mpf, 0, MPF_SIZE + len);
	mpc = mpf + MPF_SIZE;

	/* the floating pointer */
	memcpy(mpf, "_MP_", 4);
	le32_put(mpf + 4, (uint32_t)(CAVM_MPTABLE_ADDR + MPF_SIZE));
	mpf[8] = 1; /* length in 16-byte units */
	mpf[9] = 4; /* spec 1.4 */
	/* feature bytes 0: a configuration table is present, no IMCR */

	/* the configuration table header; length and counts below */
	memcpy(mpc, "PCMP", 4);
	mpc[6] = 4;
	memcpy(mpc + 8, "CAVM    ", 8);
	memcpy(mpc + 16, "KVM VMM     ", 12);
	le32_put(mpc + 36, (uint32_t)CAVM_LAPIC_BASE);

	p = mpc + MPC_HDR_SIZE;
	cpuid1(vm, &sig, &feat);
	for (unsigned i = 0; i < n; i++, count++) {
		p[0] = 0;                    /* processor */
		p[1] = (uint8_t)i;           /* local APIC id */
		p[2] = 0x14;                 /* local APIC version */
		p[3] = 1 | (i == 0 ? 2 : 0); /* enabled, boot processor */
		le32_put(p + 4, sig);
		le32_put(p + 8, feat);
		p += MP_PROC_SIZE;
	}
	p = entry8(p, 1, BUS_PCI, 0, 0, 0, 0, 0);
	memcpy(p - 6, "PCI   ", 6);
	p = entry8(p, 1, BUS_ISA, 0, 0, 0, 0, 0);
	memcpy(p - 6, "ISA   ", 6);
	count += 2;
	/* IOAPIC: id, version 0x11, enabled, address */
	p[0] = 2;
	p[1] = ioapic;
	p[2] = 0x11;
	p[3] = 1;
	le32_put(p + 4, (uint32_t)CAVM_IOAPIC_BASE);
	p += MP_ENTRY_SIZE;
	count++;
	/* I/O interrupts: type INT, flags "conforms to bus" */
	for (unsigned irq = 0; irq < ISA_IRQS; irq++, count++)
		p = entry8(p, 3, 0, 0, BUS_ISA, (uint8_t)irq, ioapic,
			   (uint8_t)irq);
	/* PCI: source irq is (slot << 2) | (pin - 1); level, active high */
	for (unsigned i = 0; i < nintx; i++, count++)
		p = entry8(p, 3, 0, 0x0d, BUS_PCI,
			   (uint8_t)((intx[i].slot << 2) |
				     ((intx[i].pin - 1) & 3)),
			   ioapic, intx[i].gsi);
	/* local interrupts to every local APIC (0xff) */
	p = entry8(p, 4, 3, 0, BUS_ISA, 0, 0xff, 0); /* ExtINT on LINT0 */
	p = entry8(p, 4, 1, 0, BUS_ISA, 0, 0xff, 1); /* NMI on LINT1 */
	count += 2;

	le16_put(mpc + 4, (uint16_t)len);
	le16_put(mpc + 34, (uint16_t)count);
	mpc[7] = checksum(mpc, len);
	mpf[10] = checksum(mpf, MPF_SIZE);
	return 0;
}
