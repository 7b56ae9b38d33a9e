// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * boot.c - what the VMM hands the guest: the zero page (struct
 * boot_params: e820 map, command line), the key=value parameters on that
 * command line, the free RAM after the image, and the TSC's frequency.
 *
 * The zero page is input from outside and is read field by field at the
 * offsets of Linux's arch/x86/include/uapi/asm/bootparam.h, bounded: at
 * most 128 e820 entries, a command line cut at GUEST_CMDLINE_MAX - 1.
 * The heap is the part of the e820 usable region holding the image that
 * lies past the image's end (_end in guest.lds), below 3 GiB.
 */
#include "test/guest/guest.h"

#define ZP_EXT_CMD_LINE_PTR 0x0c8
#define ZP_E820_ENTRIES 0x1e8
#define ZP_HDR_MAGIC 0x202 /* "HdrS" */
#define ZP_CMD_LINE_PTR 0x228
#define ZP_E820_TABLE 0x2d0
#define E820_ENTRY_SIZE 20
#define E820_USABLE 1
#define LOW_MEM_END 0xC0000000ull

extern uint8_t _end[];

int boot_read(struct guest *g, uint64_t zp)
{
	uint64_t cmd, end = gpa(_end);
	unsigned n;

	if (!zp)
		return -G_EINVAL;
	g->zero_page = zp;
	n = rd8(zp + ZP_E820_ENTRIES);
	if (n > GUEST_E820_MAX)
		n = GUEST_E820_MAX;
	g->ne820 = n;
	for (unsigned i = 0; i < n; i++) {
		uint64_t e = zp + ZP_E820_TABLE + i * E820_ENTRY_SIZE;

		g->e820[i].addr = rd64(e);
		g->e820[i].size = rd64(e + 8);
		g->e820[i].type = rd32(e + 16);
	}

	cmd = rd32(zp + ZP_CMD_LINE_PTR) |
	      ((uint64_t)rd32(zp + ZP_EXT_CMD_LINE_PTR) << 32);
	g->cmdline[0] = '\0';
	if (cmd && cmd < LOW_MEM_END) {
		unsigned i;

		for (i = 0; i < GUEST_CMDLINE_MAX - 1; i++) {
			char c = (char)rd8(cmd + i);

			if (!c)
				break;
			g->cmdline[i] = c;
		}
		g->cmdline[i] = '\0';
	}

	/* the heap: the rest of the usable region the image lies in */
	for (unsigned i = 0; i < n; i++) {
		struct e820_entry *e = &g->e820[i];
		uint64_t top = e->addr + e->size;

		if (e->type != E820_USABLE || e->addr > end || top <= end)
			continue;
		if (top > LOW_MEM_END)
			top = LOW_MEM_END;
		g->heap = ALIGN_UP(end, 4096);
		g->heap_end = top & ~4095ull;
		g->ram_end = top;
	}
	return g->heap_end > g->heap ? 0 : -G_ENOMEM;
}

void boot_print(const struct guest *g)
{
	static const char *const names[] = {"?",    "usable", "reserved",
					    "ACPI", "NVS",    "unusable"};

	con_printf("zero page at %#lx, %u e820 entries\n",
		   (unsigned long)g->zero_page, g->ne820);
	for (unsigned i = 0; i < g->ne820; i++) {
		const struct e820_entry *e = &g->e820[i];

		con_printf("e820: [mem %#018lx-%#018lx] %s\n",
			   (unsigned long)e->addr,
			   (unsigned long)(e->addr + e->size - 1),
			   e->type < ARRAY_SIZE(names) ? names[e->type] : "?");
	}
	con_printf("cmdline: %s\n", g->cmdline);
	con_printf("heap: %#lx-%#lx\n", (unsigned long)g->heap,
		   (unsigned long)g->heap_end);
}

const char *cmd_get(const struct guest *g, const char *key, char *buf,
		    size_t size)
{
	size_t klen = strlen(key);
	const char *s = g->cmdline;

	while (*s) {
		while (*s == ' ')
			s++;
		if (!strncmp(s, key, klen) && s[klen] == '=') {
			size_t n = 0;

			s += klen + 1;
			while (s[n] && s[n] != ' ' && n + 1 < size) {
				buf[n] = s[n];
				n++;
			}
			buf[n] = '\0';
			return buf;
		}
		while (*s && *s != ' ')
			s++;
	}
	return NULL;
}

/* decimal or 0x hex; anything else gives dflt */
uint64_t cmd_u64(const struct guest *g, const char *key, uint64_t dflt)
{
	char buf[32];
	const char *s = cmd_get(g, key, buf, sizeof(buf));
	uint64_t v = 0;
	unsigned base = 10;

	if (!s || !*s)
		return dflt;
	if (s[0] == '0' && s[1] == 'x') {
		base = 16;
		s += 2;
	}
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else
			return dflt;
		v = v * base + d;
	}
	return v;
}

void params_read(struct guest *g, char *serial, size_t ssize, char *tests,
		 size_t tsize)
{
	struct guest_params *p = &g->p;

	p->seed = cmd_u64(g, "seed", 1);
	p->seed2 = cmd_u64(g, "seed2", p->seed + 1);
	p->rblocks = cmd_u64(g, "rblocks", 1);
	p->start = cmd_u64(g, "start", 0);
	p->blocks = cmd_u64(g, "blocks", 64);
	p->qd = cmd_u64(g, "qd", 16);
	p->secs = cmd_u64(g, "secs", 2);
	p->qsize = cmd_u64(g, "qsize", 256);
	p->bar_base = cmd_u64(g, "bar_base", 0);
	p->resize_to = cmd_u64(g, "resize_to", 0);
	p->event_idx = cmd_u64(g, "event_idx", 1) != 0;
	p->indirect = cmd_u64(g, "indirect", 1) != 0;
	p->hold = cmd_u64(g, "hold", 0) != 0;
	p->serial = cmd_get(g, "serial", serial, ssize);
	p->tests = cmd_get(g, "test", tests, tsize);
	if (!p->tests)
		p->tests = "info";
}

void *galloc(struct guest *g, uint64_t size, uint64_t align)
{
	uint64_t a = ALIGN_UP(g->heap, align ? align : 8);

	if (a < g->heap || a > g->heap_end || size > g->heap_end - a)
		return NULL;
	g->heap = a + size;
	memset((void *)(uintptr_t)a, 0, size);
	return (void *)(uintptr_t)a;
}

/* PIT channel 2, mode 0, gated through port 0x61: PIT_MS of TSC.  A
 * vCPU descheduled while it waits only makes a round longer, so the
 * shortest of three rounds is the estimate. */
#define PIT_HZ 1193182u
#define PIT_MS 25u
#define PIT_ROUNDS 3

static uint64_t pit_tsc_khz(void)
{
	uint32_t latch = PIT_HZ / (1000 / PIT_MS);
	uint8_t v = inb(0x61);
	uint64_t t0, t1;
	unsigned long spins = 0;

	outb(0x61, (uint8_t)((v & ~0x02) | 0x01));
	outb(0x43, 0xb0);
	outb(0x42, latch & 0xff);
	outb(0x42, (uint8_t)(latch >> 8));
	t0 = rdtsc();
	while (!(inb(0x61) & 0x20) && spins < 50000000ul)
		spins++;
	t1 = rdtsc();
	return (t1 - t0) / PIT_MS;
}

void time_init(struct guest *g)
{
	g->tsc_khz = cmd_u64(g, "tsc_khz", 0);
	if (g->tsc_khz) {
		con_printf("tsc: %lu kHz (command line)\n",
			   (unsigned long)g->tsc_khz);
		return;
	}
	g->tsc_khz = ~0ull;
	for (unsigned i = 0; i < PIT_ROUNDS; i++) {
		uint64_t k = pit_tsc_khz();

		if (k < g->tsc_khz)
			g->tsc_khz = k;
	}
	if (g->tsc_khz < 100000) { /* < 100 MHz: no PIT behind port 0x61 */
		con_printf("tsc: PIT calibration failed (%lu kHz), assuming "
			   "2 GHz; pass tsc_khz=\n",
			   (unsigned long)g->tsc_khz);
		g->tsc_khz = 2000000;
		return;
	}
	con_printf("tsc: %lu kHz (PIT)\n", (unsigned long)g->tsc_khz);
}

uint64_t time_us(const struct guest *g, uint64_t tsc_delta)
{
	return tsc_delta / g->tsc_khz * 1000 +
	       tsc_delta % g->tsc_khz * 1000 / g->tsc_khz;
}
