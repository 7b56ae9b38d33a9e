/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vblk_probe_guest.c - a tiny freestanding guest for cavm_devices.sh:
 * loaded like a vmlinux (64-bit entry, %rsi = zero page), it finds the
 * virtio-blk device by scanning PCI bus 0 through 0xCF8/0xCFC, drives it
 * through the modern virtio-pci transport by polling, and ends through the
 * exit port (0xf4) with 0 for success or the number of the failed check.
 *
 * The one idea: the fewest guest instructions that cross every layer of
 * cavm's disk path (PCI config, capabilities, BAR MMIO, common config,
 * a split queue, the notify ioeventfd, the store thread, the used ring).
 * It is not the full test guest (test/guest/): one mode per boot, chosen
 * by the command line: "vblk=write|hold|read|getid|protected|bad|msix|
 * intx".  msix and intx wait for the completion's interrupt; "hold"
 * writes and flushes like "write", then says so and waits to be killed;
 * "protected" expects a read-only disk.  The data: 8 sectors at sector
 * 8 holding byte (i * 7 + 3) & 0xff.
 *
 * Built by the test with the host compiler, freestanding, linked at
 * 1 MiB; identity paging and a stack come from cavm's 64-bit setup.
 */
#include <stdint.h>

#define RING_BASE 0x400000ull /* identity-mapped RAM the guest uses */
#define QSZ 64u
#define SECTOR0 8u
#define NSECT 8u

static inline void outb(uint16_t p, uint8_t v)
{
	__asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p));
}
static inline void outl(uint16_t p, uint32_t v)
{
	__asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(p));
}
static inline uint32_t inl(uint16_t p)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p));
	return v;
}

static void puts_(const char *s)
{
	while (*s)
		outb(0x3f8, (uint8_t)*s++);
}

static void done(unsigned code)
{
	puts_(code ? "vblk-probe: FAIL\n" : "vblk-probe: PASS\n");
	outl(0xf4, code);
	for (;;)
		__asm__ volatile("hlt");
}

static uint32_t cfg32(unsigned slot, unsigned reg)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
	return inl(0xcfc);
}
static void cfg32w(unsigned slot, unsigned reg, uint32_t v)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
	outl(0xcfc, v);
}

#define MMIO(t, a) (*(volatile t *)(uintptr_t)(a))

static int streq(const char *a, const char *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* "vblk=MODE" in the command line: MODE's first letter. */
static char mode(const uint8_t *zp)
{
	const char *c =
		(const char *)(uintptr_t) * (const uint32_t *)(zp + 0x228);
	for (; c && *c; c++)
		if (streq(c, "vblk=", 5))
			return c[5];
	return 0;
}

struct vq {
	volatile uint8_t *desc, *avail, *used;
	uint16_t avail_idx, used_seen;
	uint64_t notify;
};

static void desc(struct vq *q, unsigned i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	volatile uint8_t *d = q->desc + 16 * i;
	MMIO(uint64_t, d) = addr;
	MMIO(uint32_t, d + 8) = len;
	MMIO(uint16_t, d + 12) = flags;
	MMIO(uint16_t, d + 14) = next;
}

/* Make head available and notify. */
static void post(struct vq *q, uint16_t head)
{
	MMIO(uint16_t, q->avail + 4 + 2 * (q->avail_idx % QSZ)) = head;
	__asm__ volatile("mfence" ::: "memory");
	MMIO(uint16_t, q->avail + 2) = ++q->avail_idx;
	__asm__ volatile("mfence" ::: "memory");
	MMIO(uint16_t, q->notify) = 0;
}

/* Wait (polling) for the next used entry: its head, or -1. */
static int reap(struct vq *q)
{
	for (unsigned long i = 0; i < 2000000000ul; i++) {
		if (MMIO(uint16_t, q->used + 2) != q->used_seen) {
			__asm__ volatile("lfence" ::: "memory");
			int head = (int)MMIO(uint32_t,
					     q->used + 4 +
						     8 * (q->used_seen % QSZ));
			q->used_seen++;
			return head;
		}
		__asm__ volatile("pause");
	}
	return -1;
}

static int submit(struct vq *q, uint16_t head)
{
	post(q, head);
	return reap(q);
}

/* ---- interrupts: one vector (0x41), counted by irq_entry ---- */

#define VEC 0x41
volatile uint32_t irq_count;
volatile uint64_t isr_addr; /* INTx: the handler reads (clears) ISR */
static uint8_t idt[16 * (VEC + 1)] __attribute__((aligned(16)));
void irq_entry(void);

static void irq_setup(void)
{
	uint64_t h = (uintptr_t)irq_entry;
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	uint8_t *e = idt + 16 * VEC;
	e[0] = (uint8_t)h;
	e[1] = (uint8_t)(h >> 8);
	e[2] = (uint8_t)cs;
	e[3] = (uint8_t)(cs >> 8);
	e[4] = 0;
	e[5] = 0x8e; /* present, interrupt gate */
	for (int i = 0; i < 6; i++)
		e[6 + i] = (uint8_t)(h >> (16 + 8 * i));
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} d = {sizeof(idt) - 1, (uintptr_t)idt};
	__asm__ volatile("lidt %0" ::"m"(d));
	MMIO(uint32_t, 0xfee000f0) = 0x1ff; /* LAPIC on, spurious 0xff */
}

/* Sleep until the count passes n (the test's timeout ends a hang). */
static void irq_wait(uint32_t n)
{
	while (irq_count <= n)
		__asm__ volatile("sti; hlt; cli");
}

__asm__(".globl irq_entry\n"
	"irq_entry:\n"
	"	push %rax\n"
	"	lock incl irq_count(%rip)\n"
	"	mov isr_addr(%rip), %rax\n"
	"	test %rax, %rax\n"
	"	jz 1f\n"
	"	movb (%rax), %al\n"
	"1:	mov $0xfee000b0, %eax\n" /* LAPIC EOI */
	"	movl $0, (%rax)\n"
	"	pop %rax\n"
	"	iretq\n");

void guest_main(const uint8_t *zp)
{
	char m = mode(zp);
	unsigned slot;
	puts_("vblk-probe: start\n");
	for (slot = 0; slot < 32; slot++)
		if (cfg32(slot, 0) == 0x10421af4)
			break;
	if (slot == 32)
		done(10);
	cfg32w(slot, 4, cfg32(slot, 4) | 0x6); /* memory, bus master */
	uint64_t common = 0, notify = 0, mult = 0, devcfg = 0, isr = 0;
	unsigned mx = 0;
	for (unsigned c = cfg32(slot, 0x34) & 0xff; c;
	     c = (cfg32(slot, c) >> 8) & 0xff) {
		uint32_t w0 = cfg32(slot, c);
		if ((w0 & 0xff) == 0x11)
			mx = c;
		if ((w0 & 0xff) != 0x09)
			continue;
		unsigned type = w0 >> 24, bar = cfg32(slot, c + 4) & 0xff;
		uint64_t base = cfg32(slot, 0x10 + 4 * bar) & ~0xfull;
		uint64_t a = base + cfg32(slot, c + 8);
		if (type == 1)
			common = a;
		else if (type == 2) {
			notify = a;
			mult = cfg32(slot, c + 16);
		} else if (type == 3) {
			isr = a;
		} else if (type == 4) {
			devcfg = a;
		}
	}
	if (!common || !notify || !devcfg || !isr || !mx)
		done(11);
	MMIO(uint8_t, common + 0x14) = 0; /* reset */
	while (MMIO(uint8_t, common + 0x14))
		;
	MMIO(uint8_t, common + 0x14) = 1 | 2;
	MMIO(uint32_t, common + 0x00) = 1;
	if (!(MMIO(uint32_t, common + 0x04) & 1)) /* VERSION_1 */
		done(12);
	int ro = 0;
	MMIO(uint32_t, common + 0x00) = 0;
	ro = (MMIO(uint32_t, common + 0x04) >> 5) & 1;
	MMIO(uint32_t, common + 0x08) = 0;
	MMIO(uint32_t, common + 0x0c) = 1u << 9 | (uint32_t)ro << 5; /* FLUSH */
	MMIO(uint32_t, common + 0x08) = 1;
	MMIO(uint32_t, common + 0x0c) = 1;
	MMIO(uint8_t, common + 0x14) = 1 | 2 | 8;
	if (!(MMIO(uint8_t, common + 0x14) & 8))
		done(13);
	if (MMIO(uint64_t, devcfg) != 64 * 2048) /* 64 MiB in sectors */
		done(14);

	struct vq q = {0};
	q.desc = (volatile uint8_t *)(uintptr_t)RING_BASE;
	q.avail = q.desc + 16 * QSZ;
	q.used = (volatile uint8_t *)(uintptr_t)(RING_BASE + 0x1000);
	for (unsigned i = 0; i < 0x2000; i++)
		q.desc[i] = 0;
	MMIO(uint16_t, common + 0x16) = 0;
	MMIO(uint16_t, common + 0x18) = QSZ;
	MMIO(uint64_t, common + 0x20) = (uintptr_t)q.desc;
	MMIO(uint64_t, common + 0x28) = (uintptr_t)q.avail;
	MMIO(uint64_t, common + 0x30) = (uintptr_t)q.used;
	MMIO(uint16_t, common + 0x1c) = 1;
	q.notify = notify + mult * MMIO(uint16_t, common + 0x1e);
	uint64_t table = 0;
	if (m == 'm') {
		/* MSI-X: queue 0 -> vector 0, config -> vector 1, both
		 * sent to the boot CPU's LAPIC as VEC. */
		MMIO(uint16_t, common + 0x10) = 1;
		MMIO(uint16_t, common + 0x1a) = 0;
		if (MMIO(uint16_t, common + 0x10) != 1 ||
		    MMIO(uint16_t, common + 0x1a) != 0)
			done(30);
		MMIO(uint16_t, common + 0x1a) = 77; /* no such vector */
		if (MMIO(uint16_t, common + 0x1a) != 0xffff)
			done(31);
		MMIO(uint16_t, common + 0x1a) = 0;
		uint32_t t = cfg32(slot, mx + 4);
		table = (cfg32(slot, 0x10 + 4 * (t & 7)) & ~0xfull) + (t & ~7u);
		for (unsigned v = 0; v < 2; v++) {
			MMIO(uint32_t, table + 16 * v) = 0xfee00000;
			MMIO(uint32_t, table + 16 * v + 4) = 0;
			MMIO(uint32_t, table + 16 * v + 8) = VEC;
			MMIO(uint32_t, table + 16 * v + 12) = 0;
		}
		cfg32w(slot, mx, cfg32(slot, mx) | 0x8000u << 16);
	}
	if (m == 'i') {
		/* INTx: the IOAPIC pin the line register names, level
		 * triggered, active high, to the boot CPU. */
		unsigned gsi = cfg32(slot, 0x3c) & 0xff;
		MMIO(uint32_t, 0xfec00000) = 0x10 + 2 * gsi;
		MMIO(uint32_t, 0xfec00010) = VEC | 1u << 15;
		MMIO(uint32_t, 0xfec00000) = 0x11 + 2 * gsi;
		MMIO(uint32_t, 0xfec00010) = 0;
		isr_addr = isr;
	}
	if (m == 'm' || m == 'i')
		irq_setup();
	MMIO(uint8_t, common + 0x14) = 1 | 2 | 8 | 4;

	volatile uint8_t *hdr =
		(volatile uint8_t *)(uintptr_t)(RING_BASE + 0x2000);
	volatile uint8_t *data = hdr + 0x1000;
	volatile uint8_t *status = hdr + 0x100;
	unsigned n = NSECT * 512;
	int wr = m == 'w' || m == 'h' || m == 'p';
	if ((m == 'p') != ro)
		done(15); /* VIRTIO_BLK_F_RO offered exactly on ,ro */
	MMIO(uint32_t, hdr) = m == 'g' ? 8 : wr ? 1 : 0; /* GET_ID/OUT/IN */
	MMIO(uint32_t, hdr + 4) = 0;
	MMIO(uint64_t, hdr + 8) = SECTOR0;
	for (unsigned i = 0; i < n; i++)
		data[i] = wr ? (uint8_t)(i * 7 + 3) : 0;
	*status = 0xff;
	uint64_t daddr = (uintptr_t)data;
	if (m == 'b')
		daddr = 0x7fff00000000ull; /* outside guest RAM */
	desc(&q, 0, (uintptr_t)hdr, 16, 1, 1);
	desc(&q, 1, daddr, m == 'g' ? 20 : n, 1 | (wr ? 0 : 2), 2);
	desc(&q, 2, (uintptr_t)status, 1, 2, 0);
	if (m == 'm' || m == 'i') {
		post(&q, 0);
		irq_wait(0); /* the completion's interrupt */
		if (reap(&q) < 0)
			done(32);
	} else if (submit(&q, 0) < 0) {
		done(20);
	}
	uint8_t want = m == 'b' || m == 'p' ? 1 : 0; /* IOERR : OK */
	if (*status != want)
		done(21);
	if (m == 'r')
		for (unsigned i = 0; i < n; i++)
			if (data[i] != (uint8_t)(i * 7 + 3))
				done(22);
	if (m == 'g' && !streq((const char *)data, "d0\0", 3))
		done(23);
	if (m == 'w' || m == 'h') { /* FLUSH */
		MMIO(uint32_t, hdr) = 4;
		*status = 0xff;
		desc(&q, 0, (uintptr_t)hdr, 16, 1, 2);
		if (submit(&q, 0) < 0 || *status != 0)
			done(24);
	}
	if (m == 'h') {
		puts_("vblk-probe: flushed\n");
		for (;;)
			__asm__ volatile("hlt");
	}
	if (m == 'm') {
		/* Masked: the interrupt waits in the PBA; unmasking
		 * delivers it. */
		uint32_t pba = cfg32(slot, mx + 8);
		uint64_t pb = (cfg32(slot, 0x10 + 4 * (pba & 7)) & ~0xfull) +
			      (pba & ~7u);
		MMIO(uint32_t, table + 12) = 1;
		*status = 0xff;
		if (submit(&q, 0) < 0 || *status != 0)
			done(33);
		unsigned long i = 0;
		while (!(MMIO(uint64_t, pb) & 1) && ++i < 2000000000ul)
			__asm__ volatile("pause");
		if (!(MMIO(uint64_t, pb) & 1) || irq_count != 1)
			done(34);
		MMIO(uint32_t, table + 12) = 0;
		irq_wait(1);
		if (MMIO(uint64_t, pb) & 1)
			done(35);
	}
	if (m == 'i' && (MMIO(uint8_t, isr) != 0 || irq_count != 1))
		done(36); /* read-to-clear: the handler took it */
	if (m == 'b') {
		/* A chain that loops: the device breaks (NEEDS_RESET) and
		 * cavm goes on. */
		desc(&q, 0, (uintptr_t)hdr, 16, 1, 1);
		desc(&q, 1, (uintptr_t)data, 512, 1 | 2, 0);
		MMIO(uint16_t, q.avail + 4 + 2 * (q.avail_idx % QSZ)) = 0;
		MMIO(uint16_t, q.avail + 2) = ++q.avail_idx;
		MMIO(uint16_t, q.notify) = 0;
		for (unsigned long i = 0; i < 2000000000ul; i++)
			if (MMIO(uint8_t, common + 0x14) & 0x40)
				done(0);
		done(25);
	}
	done(0);
}

__asm__(".globl _start\n"
	"_start:\n"
	"	lea stack_top(%rip), %rsp\n"
	"	mov %rsi, %rdi\n"
	"	call guest_main\n"
	"1:	hlt\n"
	"	jmp 1b\n"
	".bss\n"
	".balign 16\n"
	"	.skip 16384\n"
	"stack_top:\n");
