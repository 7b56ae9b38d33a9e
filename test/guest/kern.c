// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kern.c - the guest's ring-0 C: the IDT and the TSS, and the exception
 * report.
 *
 * Ring 0 may run emulated (a few million instructions per second), so
 * this file stays a few hundred instructions long at run time.  The
 * tables are CPU structures in guest memory, filled byte by byte (little
 * endian) like any other wire format.
 *
 * kern_gp() stands in for IOPL 3 where the host runs ring 3 natively with
 * IOPL 0: it performs a faulting in/out/cli/sti of ring 3 (decoded from
 * the few forms the guest uses: E4-E7, EC-EF, optional 66 prefix, FA,
 * FB) and steps over it.  A hlt from ring 3 (guest_halt) halts here for
 * good: a software interrupt gate would be the classic way back to ring
 * 0, but such hosts fault `int n` from ring 3 with #UD.
 *
 * Gates: 0..31 exceptions (DPL 0: report and exit 99; #GP first through
 * kern_gp), 0x40 the MSI-X vector.
 * The TSS holds only RSP0: the stack an exception or interrupt from ring
 * 3 lands on.
 */
#include "test/guest/guest.h"

#define IDT_ENTRIES 256
#define VEC_MSIX 0x40
#define SEL_KCODE 0x10
#define SEL_TSS 0x30
#define TSS_SIZE 104

extern const uint64_t exc_stubs[32];
extern uint8_t gdt_tss[16];
extern uint8_t kstack_top[];
void irq_stub(void);

static uint8_t idt[IDT_ENTRIES * 16]
	__attribute__((aligned(16), section(".data")));
static uint8_t tss[TSS_SIZE] __attribute__((aligned(16), section(".data")));

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

/* A 64-bit interrupt gate (type 0xE: IF cleared on entry). */
static void set_gate(unsigned vec, uint64_t handler, unsigned dpl)
{
	uint8_t *e = idt + vec * 16;

	put16(e, handler);
	put16(e + 2, SEL_KCODE);
	e[4] = 0;                        /* IST */
	e[5] = 0x80 | (dpl << 5) | 0x0e; /* present, DPL, type */
	put16(e + 6, handler >> 16);
	put32(e + 8, handler >> 32);
	put32(e + 12, 0);
}

void kern_init(void)
{
	uint64_t base = (uint64_t)(uintptr_t)tss;
	uint64_t limit = TSS_SIZE - 1;
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};

	for (unsigned v = 0; v < 32; v++)
		set_gate(v, exc_stubs[v], 0);
	set_gate(VEC_MSIX, (uint64_t)(uintptr_t)irq_stub, 0);

	put64(tss + 4, (uint64_t)(uintptr_t)kstack_top); /* RSP0 */
	put16(tss + 102, TSS_SIZE);                      /* no I/O bitmap */

	/* 16-byte system descriptor: available 64-bit TSS (type 9) */
	put16(gdt_tss, limit);
	put16(gdt_tss + 2, base);
	gdt_tss[4] = base >> 16;
	gdt_tss[5] = 0x89;
	gdt_tss[6] = (limit >> 16) & 0xf;
	gdt_tss[7] = base >> 24;
	put32(gdt_tss + 8, base >> 32);
	put32(gdt_tss + 12, 0);

	__asm__ volatile("lidt %0" : : "m"(idtr));
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS));
}

/* The registers gp_stub saved, then what the CPU pushed. */
enum {
	R_R11,
	R_R10,
	R_R9,
	R_R8,
	R_RDI,
	R_RSI,
	R_RDX,
	R_RCX,
	R_RAX,
	R_ERR,
	R_RIP,
	R_CS,
	R_RFLAGS
};

#define RFLAGS_IF 0x200ull

int kern_gp(uint64_t *f)
{
	const uint8_t *ip = (const uint8_t *)(uintptr_t)f[R_RIP];
	unsigned len = 1, size = 4;
	uint16_t port;
	uint8_t op;

	if (f[R_ERR] || (f[R_CS] & 3) != 3)
		return -1;
	op = ip[0];
	if (op == 0x66) {
		size = 2;
		op = ip[1];
		len = 2;
	}
	switch (op) {
	case 0xf4: /* hlt: guest_halt() from ring 3, forever */
		for (;;)
			__asm__ volatile("cli; hlt");
	case 0xfa: /* cli */
		f[R_RFLAGS] &= ~RFLAGS_IF;
		f[R_RIP] += len;
		return 0;
	case 0xfb: /* sti */
		f[R_RFLAGS] |= RFLAGS_IF;
		f[R_RIP] += len;
		return 0;
	case 0xe4:
	case 0xe5:
	case 0xe6:
	case 0xe7:
		port = ip[len];
		len++;
		break;
	case 0xec:
	case 0xed:
	case 0xee:
	case 0xef:
		port = (uint16_t)f[R_RDX];
		break;
	default:
		return -1;
	}
	if (!(op & 1))
		size = 1;
	if (op & 2) { /* out */
		if (size == 1)
			outb(port, (uint8_t)f[R_RAX]);
		else if (size == 2)
			outw(port, (uint16_t)f[R_RAX]);
		else
			outl(port, (uint32_t)f[R_RAX]);
	} else if (size == 1) {
		f[R_RAX] = (f[R_RAX] & ~0xffull) | inb(port);
	} else if (size == 2) {
		f[R_RAX] = (f[R_RAX] & ~0xffffull) | inw(port);
	} else {
		f[R_RAX] = inl(port); /* a 32-bit result zero-extends */
	}
	f[R_RIP] += len;
	return 0;
}

/* frame: RIP, CS, RFLAGS, RSP, SS as the CPU pushed them. */
void kern_exception(uint64_t vec, uint64_t err, uint64_t *frame)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	con_printf("FAIL exception: vector %lu error %#lx rip %#lx cs %#lx "
		   "rflags %#lx rsp %#lx cr2 %#lx\n",
		   (unsigned long)vec, (unsigned long)err,
		   (unsigned long)frame[0], (unsigned long)frame[1],
		   (unsigned long)frame[2], (unsigned long)frame[3],
		   (unsigned long)cr2);
	guest_exit(99);
}
