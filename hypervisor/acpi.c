/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * acpi.c - the minimal ACPI a guest needs to power the machine off: RSDP,
 * XSDT, FADT, FACS, MADT and a DSDT holding only \_S5, at CAVM_ACPI_ADDR (in
 * the e820-reserved BIOS area, where Linux looks for the RSDP), plus the
 * PM1a event and control registers at ports 0x600 and 0x604.  A guest
 * that writes SLP_EN with SLP_TYP 5 (S5, soft off) to PM1a_CNT, as
 * Linux's `poweroff` does, ends cavm with exit status 0 after the usual
 * clean stop (disks flushed).
 *
 * The one idea: ACPI here is the power button plus what Linux insists on
 * once it sees ACPI at all: a MADT (with ACPI present Linux ignores the
 * MP table), saying what mptable.c says: one local APIC per vCPU, the
 * IOAPIC with GSIs 0..23, ISA IRQs identity-mapped (KVM's PIT is on GSI
 * 0), the SCI on IRQ 9 level/active-high, NMI on LINT1.  There is no PCI
 * host bridge in the DSDT, so Linux scans PCI bus 0 directly and PCI
 * devices interrupt through MSI-X; a guest that needs INTx routing boots
 * with acpi=off and gets it from the MP table.  SMI_CMD is 0, so the
 * system is always in ACPI mode (PM1a_CNT reads SCI_EN set).
 *
 * Invariants: tables written byte by byte, little-endian, each checksum
 * computed last over its final bytes (ACPI 6.x layouts; FADT revision 6).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

#define PM1_EVT_PORT 0x600
#define PM1_CNT_PORT 0x604
#define SCI_IRQ 9

#define RSDP_OFF 0x000
#define XSDT_OFF 0x040
#define FACS_OFF 0x080 /* 64-byte aligned */
#define FADT_OFF 0x100
#define DSDT_OFF 0x300
#define MADT_OFF 0x400
#define ACPI_BYTES (MADT_OFF + 44 + 8 * CAVM_MAX_CPUS + 12 + 10 + 6)

#define HDR_LEN 36
#define FADT_LEN 276
#define FACS_LEN 64

#define SCI_EN 0x0001
#define SLP_TYP_SHIFT 10
#define SLP_TYP_MASK (7u << SLP_TYP_SHIFT)
#define SLP_EN (1u << 13)
#define S5_TYP 5u

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return (uint8_t)(0x100 - s);
}

/* The common table header; the checksum is set by finish(). */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	le32_put(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "CAVM  ", 6);
	memcpy(t + 16, "CAVMVMM ", 8);
	le32_put(t + 24, 1);       /* OEM revision */
	memcpy(t + 28, "CAVM", 4); /* creator id */
	le32_put(t + 32, 1);       /* creator revision */
}

static void finish(uint8_t *t)
{
	t[9] = 0;
	t[9] = checksum(t, le32_get(t + 4));
}

/* Generic address structure: system I/O space, bit width, address. */
static void gas_io(uint8_t *g, uint8_t bits, uint64_t port)
{
	g[0] = 1; /* system I/O */
	g[1] = bits;
	g[2] = 0;
	g[3] = bits == 32 ? 3 : 2; /* dword or word access */
	le64_put(g + 4, port);
}

/* The MADT; returns its length. */
static uint32_t write_madt(uint8_t *m, unsigned ncpus)
{
	uint8_t *p = m + 44;

	le32_put(m + 36, (uint32_t)CAVM_LAPIC_BASE);
	le32_put(m + 40, 1); /* PCAT_COMPAT: there are 8259s (to mask) */
	for (unsigned i = 0; i < ncpus; i++, p += 8) {
		p[0] = 0; /* processor local APIC */
		p[1] = 8;
		p[2] = (uint8_t)i;  /* processor UID */
		p[3] = (uint8_t)i;  /* APIC id, as in the MP table */
		le32_put(p + 4, 1); /* enabled */
	}
	p[0] = 1; /* IOAPIC, id after the CPUs' as in the MP table */
	p[1] = 12;
	p[2] = (uint8_t)ncpus;
	le32_put(p + 4, (uint32_t)CAVM_IOAPIC_BASE);
	le32_put(p + 8, 0); /* GSI base */
	p += 12;
	p[0] = 2; /* interrupt source override: the SCI */
	p[1] = 10;
	p[2] = 0; /* ISA */
	p[3] = SCI_IRQ;
	le32_put(p + 4, SCI_IRQ);
	le16_put(p + 8, 0x000d); /* active high, level */
	p += 10;
	p[0] = 4; /* local APIC NMI: every processor, LINT1 */
	p[1] = 6;
	p[2] = 0xff;
	le16_put(p + 3, 0);
	p[5] = 1;
	p += 6;
	return (uint32_t)(p - m);
}

static void write_tables(uint8_t *base, uint64_t gpa, unsigned ncpus)
{
	uint8_t *rsdp = base + RSDP_OFF, *xsdt = base + XSDT_OFF;
	uint8_t *facs = base + FACS_OFF, *fadt = base + FADT_OFF;
	uint8_t *dsdt = base + DSDT_OFF, *madt = base + MADT_OFF;
	uint32_t madt_len;
	/* Name (_S5, Package (4) { 5, 0, 0, 0 }) */
	static const uint8_t s5[] = {0x08, '_',  'S',  '5',  '_',  0x12, 0x07,
				     0x04, 0x0a, 0x05, 0x00, 0x00, 0x00};

	memset(base, 0, ACPI_BYTES);

	header(dsdt, "DSDT", HDR_LEN + sizeof(s5), 2);
	memcpy(dsdt + HDR_LEN, s5, sizeof(s5));
	finish(dsdt);

	memcpy(facs, "FACS", 4);
	le32_put(facs + 4, FACS_LEN);
	facs[32] = 2; /* version */

	header(fadt, "FACP", FADT_LEN, 6);
	le32_put(fadt + 36, (uint32_t)(gpa + FACS_OFF)); /* FIRMWARE_CTRL */
	le32_put(fadt + 40, (uint32_t)(gpa + DSDT_OFF));
	le16_put(fadt + 46, SCI_IRQ);
	/* SMI_CMD (48) = 0: always in ACPI mode */
	le32_put(fadt + 56, PM1_EVT_PORT); /* PM1a_EVT_BLK */
	le32_put(fadt + 64, PM1_CNT_PORT); /* PM1a_CNT_BLK */
	fadt[88] = 4;                      /* PM1_EVT_LEN */
	fadt[89] = 2;                      /* PM1_CNT_LEN */
	le16_put(fadt + 109, 0x0006);      /* IAPC_BOOT_ARCH: 8042, no VGA */
	/* Flags: WBINVD, no fixed power/sleep buttons, no RTC wake */
	le32_put(fadt + 112, (1u << 0) | (1u << 4) | (1u << 5));
	fadt[131] = 1;                        /* FADT minor version (6.1) */
	le64_put(fadt + 132, gpa + FACS_OFF); /* X_FIRMWARE_CTRL */
	le64_put(fadt + 140, gpa + DSDT_OFF); /* X_DSDT */
	gas_io(fadt + 148, 32, PM1_EVT_PORT); /* X_PM1a_EVT_BLK */
	gas_io(fadt + 172, 16, PM1_CNT_PORT); /* X_PM1a_CNT_BLK */
	finish(fadt);

	madt_len = write_madt(madt, ncpus);
	header(madt, "APIC", madt_len, 5);
	finish(madt);

	header(xsdt, "XSDT", HDR_LEN + 16, 1);
	le64_put(xsdt + HDR_LEN, gpa + FADT_OFF);
	le64_put(xsdt + HDR_LEN + 8, gpa + MADT_OFF);
	finish(xsdt);

	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "CAVM  ", 6);
	rsdp[15] = 2;            /* ACPI 2.0+ */
	le32_put(rsdp + 16, 0);  /* no RSDT: the XSDT only */
	le32_put(rsdp + 20, 36); /* length */
	le64_put(rsdp + 24, gpa + XSDT_OFF);
	rsdp[8] = checksum(rsdp, 20);
	rsdp[32] = checksum(rsdp, 36);
}

struct pm {
	struct cavm *vm;
	pthread_mutex_t lock;
	uint16_t evt_en, cnt;
};

static void pm_evt_io(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		      bool is_write)
{
	struct pm *pm = opaque;

	/* status (0..1): no event ever; enable (2..3): kept, no effect */
	pthread_mutex_lock(&pm->lock);
	for (unsigned i = 0; i < len && off + i < 4; i++) {
		unsigned b = (unsigned)off + i;

		if (is_write && b >= 2)
			pm->evt_en = (uint16_t)((pm->evt_en &
						 ~(0xffu << (8 * (b - 2)))) |
						(data[i] << (8 * (b - 2))));
		else if (!is_write)
			data[i] =
				b >= 2 ? (uint8_t)(pm->evt_en >> (8 * (b - 2)))
				       : 0;
	}
	pthread_mutex_unlock(&pm->lock);
}

static void pm_cnt_io(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		      bool is_write)
{
	struct pm *pm = opaque;
	uint16_t v;
	bool off_req = false;

	pthread_mutex_lock(&pm->lock);
	v = pm->cnt;
	for (unsigned i = 0; i < len && off + i < 2; i++) {
		unsigned sh = 8 * ((unsigned)off + i);

		if (is_write)
			v = (uint16_t)((v & ~(0xffu << sh)) | (data[i] << sh));
		else
			data[i] = (uint8_t)((pm->cnt | SCI_EN) >> sh);
	}
	if (is_write) {
		off_req = (v & SLP_EN) &&
			  ((v & SLP_TYP_MASK) >> SLP_TYP_SHIFT) == S5_TYP;
		pm->cnt = (uint16_t)(v & ~SLP_EN); /* SLP_EN reads as 0 */
	}
	pthread_mutex_unlock(&pm->lock);
	if (off_req) {
		cavm_log(pm->vm, CAVM_LOG_INFO, "guest powered off (ACPI S5)");
		cavm_request_stop(pm->vm, 0);
	}
}

static void pm_free(void *opaque)
{
	struct pm *pm = opaque;

	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

int cavm_acpi_init(struct cavm *vm)
{
	uint8_t *base = cavm_gpa_ptr(vm, CAVM_ACPI_ADDR, ACPI_BYTES);
	struct pm *pm;
	int ret;

	if (!base)
		return -ENOSPC;
	write_tables(base, CAVM_ACPI_ADDR, cavm_ncpus(vm));
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pm->vm = vm;
	pthread_mutex_init(&pm->lock, NULL);
	ret = cavm_at_exit(vm, pm_free, pm);
	if (ret < 0) {
		pm_free(pm);
		return ret;
	}
	ret = cavm_pio_register(vm, PM1_EVT_PORT, 4, pm_evt_io, pm);
	if (ret == 0)
		ret = cavm_pio_register(vm, PM1_CNT_PORT, 2, pm_cnt_io, pm);
	return ret;
}
