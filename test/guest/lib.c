// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * lib.c - what a libc would give the guest: the console, formatted
 * output, memory and string functions, the exit port.
 *
 * The console is the 8250 at 0x3f8, written by polling the line status
 * register (no interrupts, no state: callable from ring 0 and ring 3).
 * A line goes out character by character, each an exit to the VMM, so
 * scenarios print little.  The formatter knows what the guest uses:
 * %d %i %u %x %p %s %c %%, the l and ll modifiers, '#', '0' and a width.
 */
#include "test/guest/guest.h"

#define COM1 0x3f8
#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define EXIT_PORT 0xf4

void con_putc(char c)
{
	/* bounded: a UART that never says "empty" must not hang the guest */
	for (unsigned i = 0; i < 100000; i++)
		if (inb(COM1 + UART_LSR) & UART_LSR_THRE)
			break;
	outb(COM1, (uint8_t)c);
}

void con_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			con_putc('\r');
		con_putc(s[i]);
	}
}

struct out {
	char *buf; /* NULL: the console */
	size_t size, len;
};

static void out_c(struct out *o, char c)
{
	if (!o->buf) {
		con_write(&c, 1);
	} else if (o->len + 1 < o->size) {
		o->buf[o->len] = c;
	}
	o->len++;
}

static void out_num(struct out *o, uint64_t v, unsigned base, bool neg,
		    unsigned width, bool zero, bool alt)
{
	char tmp[24];
	unsigned n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (alt && base == 16) { /* the width includes the 0x */
		out_c(o, '0');
		out_c(o, 'x');
		width = width > 2 ? width - 2 : 0;
	}
	if (neg)
		out_c(o, '-');
	for (unsigned w = n + neg; w < width; w++)
		out_c(o, zero ? '0' : ' ');
	while (n)
		out_c(o, tmp[--n]);
}

static void format(struct out *o, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		unsigned width = 0, lng = 0;
		bool zero = false, alt = false;
		uint64_t u;
		int64_t s;

		if (*fmt != '%') {
			out_c(o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '#') {
			alt = true;
			fmt++;
		}
		if (*fmt == '0') {
			zero = true;
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i':
			s = lng ? va_arg(ap, long) : va_arg(ap, int);
			u = s < 0 ? -(uint64_t)s : (uint64_t)s;
			out_num(o, u, 10, s < 0, width, zero, false);
			break;
		case 'u':
		case 'x':
			u = lng ? va_arg(ap, unsigned long)
				: va_arg(ap, unsigned);
			out_num(o, u, *fmt == 'u' ? 10 : 16, false, width, zero,
				alt);
			break;
		case 'p':
			u = (uint64_t)(uintptr_t)va_arg(ap, void *);
			out_num(o, u, 16, false, width, zero, true);
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			size_t n;

			if (!str)
				str = "(null)";
			n = strlen(str);
			for (size_t w = n; w < width; w++)
				out_c(o, ' ');
			while (*str)
				out_c(o, *str++);
			break;
		}
		case 'c':
			out_c(o, (char)va_arg(ap, int));
			break;
		case '%':
			out_c(o, '%');
			break;
		default:
			out_c(o, '?');
			if (!*fmt)
				return;
		}
	}
}

void con_vprintf(const char *fmt, va_list ap)
{
	struct out o = {0};

	format(&o, fmt, ap);
}

void con_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	con_vprintf(fmt, ap);
	va_end(ap);
}

int g_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	struct out o = {buf, size, 0};
	va_list ap;

	va_start(ap, fmt);
	format(&o, fmt, ap);
	va_end(ap);
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

/* gcc may emit calls to these four even when freestanding; rep movsb
 * and rep stosb are fast in ring 3 and keep gcc from turning a loop here
 * back into a call to itself */
void *memset(void *d, int c, size_t n)
{
	void *p = d;

	__asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(c) : "memory");
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *p = d;

	__asm__ volatile("rep movsb" : "+D"(p), "+S"(s), "+c"(n) : : "memory");
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;

	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return (uint8_t)a[i] < (uint8_t)b[i] ? -1 : 1;
		if (!a[i])
			return 0;
	}
	return 0;
}

void guest_exit(uint32_t status)
{
	outl(EXIT_PORT, status);
	/* a VMM without the exit port: stop here */
	guest_halt();
}

/* hlt is privileged at any IOPL: from ring 3 it traps to kern_gp(),
 * which halts in ring 0; in ring 0 (IF clear) it halts right here. */
void guest_halt(void)
{
	for (;;)
		__asm__ volatile("hlt");
}
