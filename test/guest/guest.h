/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guest.h - the freestanding test guest's whole internal contract.
 *
 * The guest is one x86-64 program with no libc: entry.S and kern.c run in
 * ring 0 just long enough to set up the CPU, everything else (PCI scan,
 * the virtio-pci driver, the scenarios) runs in ring 3 with IOPL 3, so
 * port I/O and the identity-mapped MMIO window are reachable from there.
 *
 * Layout of the code, bottom up:
 *   lib.c       console (polled 8250 at 0x3f8), formatted output, memory
 *               and string functions, the exit port, rdtsc timing;
 *   boot.c      the zero page (e820, command line), key=value parameters,
 *               the RAM allocator, the data pattern;
 *   pci.c       configuration mechanism #1, BARs, capability lists;
 *   vpci.c      the virtio 1.x PCI transport (common/notify/ISR/device
 *               configuration structures, MSI-X table);
 *   vq.c        the driver side of a split virtqueue;
 *   blk.c       virtio-blk requests on top of them;
 *   scen_*.c    the test scenarios; main.c picks them from test=.
 *
 * Guest memory shared with the device (rings, request headers) is written
 * through the rd/wr functions below, never as C structs: x86 is
 * little-endian, so a natural aligned access is the wire encoding, and a
 * volatile one is a single load or store the device can race with.
 *
 * One struct guest (main.c's) carries all state; the only other mutable
 * globals are the CPU tables entry.S and kern.c own.
 */
#ifndef CAVM_TEST_GUEST_H
#define CAVM_TEST_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NORETURN __attribute__((noreturn))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))

/* errno values the guest returns (negative), as Linux numbers them */
#define G_EIO 5
#define G_ENOMEM 12
#define G_EINVAL 22
#define G_ENOSPC 28
#define G_ENODEV 19
#define G_ETIMEDOUT 110

/* ---- port I/O (ring 3 may use it: IOPL 3) ---- */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* ---- shared memory and MMIO: one sized access each ---- */
static inline uint8_t rd8(uint64_t a)
{
	return *(volatile uint8_t *)(uintptr_t)a;
}
static inline uint16_t rd16(uint64_t a)
{
	return *(volatile uint16_t *)(uintptr_t)a;
}
static inline uint32_t rd32(uint64_t a)
{
	return *(volatile uint32_t *)(uintptr_t)a;
}
static inline uint64_t rd64(uint64_t a)
{
	return *(volatile uint64_t *)(uintptr_t)a;
}
static inline void wr8(uint64_t a, uint8_t v)
{
	*(volatile uint8_t *)(uintptr_t)a = v;
}
static inline void wr16(uint64_t a, uint16_t v)
{
	*(volatile uint16_t *)(uintptr_t)a = v;
}
static inline void wr32(uint64_t a, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)a = v;
}
static inline void wr64(uint64_t a, uint64_t v)
{
	*(volatile uint64_t *)(uintptr_t)a = v;
}
static inline uint64_t gpa(const void *p)
{
	return (uint64_t)(uintptr_t)p; /* identity map */
}
/* x86 is TSO: ordering with the device needs the compiler's fence, plus
 * mfence where a store must be seen before a later load. */
static inline void barrier(void)
{
	__asm__ volatile("" : : : "memory");
}
static inline void mb(void)
{
	__asm__ volatile("mfence" : : : "memory");
}
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* ---- lib.c ---- */
void con_putc(char c);
void con_write(const char *s, size_t n);
void con_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void con_vprintf(const char *fmt, va_list ap);
int g_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
/* The exit port: a 32-bit out to 0xf4 ends cavm with status & 0xff. */
NORETURN void guest_exit(uint32_t status);
/* Back to ring 0 and halt with interrupts off, forever. */
NORETURN void guest_halt(void);

/* ---- boot.c ---- */
#define GUEST_E820_MAX 128
#define GUEST_CMDLINE_MAX 2048

struct e820_entry {
	uint64_t addr, size;
	uint32_t type; /* 1 usable, 2 reserved, ... */
};

struct guest_params {
	uint64_t seed;      /* pattern seed */
	uint64_t seed2;     /* the rewrite scenario's seed */
	uint64_t rblocks;   /* and how many blocks it rewrites */
	uint64_t start;     /* first 4 KiB block the scenarios use */
	uint64_t blocks;    /* how many */
	uint64_t qd;        /* queue depth of the multi-request scenarios */
	uint64_t secs;      /* bench duration */
	uint64_t qsize;     /* virtqueue size the driver asks for */
	uint64_t bar_base;  /* nonzero: move the device's BARs there */
	uint64_t resize_to; /* the capacity (sectors) resize waits for */
	bool event_idx;     /* negotiate VIRTIO_F_EVENT_IDX */
	bool indirect;      /* negotiate VIRTIO_F_INDIRECT_DESC */
	bool hold;          /* halt instead of exiting at the end */
	const char *serial; /* expected GET_ID (disk name), or NULL */
	const char *tests;  /* test= list, comma separated */
};

struct guest {
	uint64_t zero_page;
	char cmdline[GUEST_CMDLINE_MAX];
	struct e820_entry e820[GUEST_E820_MAX];
	unsigned ne820;
	uint64_t heap, heap_end; /* bump allocator over free RAM */
	uint64_t ram_end;        /* end of the usable region holding the heap */
	uint64_t tsc_khz;
	struct guest_params p;
	unsigned failures, passes;
};

/* Read the zero page at zp (e820, command line); 0 or -G_EINVAL. */
int boot_read(struct guest *g, uint64_t zp);
void boot_print(const struct guest *g);
/* The value of key=VALUE on the command line (up to a space), copied into
 * buf; NULL if absent. */
const char *cmd_get(const struct guest *g, const char *key, char *buf,
		    size_t size);
uint64_t cmd_u64(const struct guest *g, const char *key, uint64_t dflt);
void params_read(struct guest *g, char *serial, size_t ssize, char *tests,
		 size_t tsize);
/* Zeroed, aligned guest RAM; NULL when the heap is exhausted. */
void *galloc(struct guest *g, uint64_t size, uint64_t align);
/* TSC frequency: tsc_khz= on the command line, else the PIT. */
void time_init(struct guest *g);
uint64_t time_us(const struct guest *g, uint64_t tsc_delta);

/* The data pattern (host side: test/integration/guest_pattern.py): word i
 * (0..63) of 512-byte sector s is mix64(mix64(seed) ^ (s * 64 + i)),
 * little-endian; mix64 is splitmix64's finalizer. */
uint64_t mix64(uint64_t x);
void pattern_fill(void *buf, uint64_t seed, uint64_t sector, uint64_t nsectors);
/* Sector index (relative) of the first mismatch, or -1. */
int64_t pattern_check(const void *buf, uint64_t seed, uint64_t sector,
		      uint64_t nsectors);
int64_t zero_check(const void *buf, uint64_t nsectors);

/* Results */
void result_ok(struct guest *g, const char *name);
void result_fail(struct guest *g, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- kern.c (ring 0) ---- */
void kern_init(void);
int kern_gp(uint64_t *frame);
NORETURN void kern_exception(uint64_t vec, uint64_t err, uint64_t *frame);

#endif
