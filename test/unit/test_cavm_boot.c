/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_cavm_boot.c - pins what cavm puts in guest memory before the first
 * instruction: the payload decompressors (hypervisor/decompress.c: gzip,
 * xz, zstd, lz4 legacy; corrupt, truncated and unsupported input), the
 * ELF loader (elf.c: every header field that can point outside the file
 * or outside RAM), the zero page (zeropage.c: e820 for RAM below and above
 * the hole, command line, initrd, setup header copy), the MP table
 * (mptable.c: signatures, lengths, checksums, entries) and the ACPI
 * tables and PM1a registers (acpi.c: pointers, checksums, \_S5, which
 * writes power off).
 *
 * Guest RAM here is a plain buffer behind a real struct cavm (vm.h) that
 * only has its memory table filled in; the few cavm.h calls these files
 * make are implemented below.
 */
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include <cmocka.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

/* ---- the fake VM: RAM and the cavm.h calls the files under test use */

#define RAM_MB 32

static struct cavm *vm_new(uint64_t ram_bytes, unsigned ncpus)
{
	struct cavm *vm = calloc(1, sizeof(*vm));
	uint64_t low =
		ram_bytes < CAVM_LOWMEM_MAX ? ram_bytes : CAVM_LOWMEM_MAX;

	assert_non_null(vm);
	vm->cfg.mem_bytes = ram_bytes;
	vm->ncpus = ncpus;
	/* only the low part is backed; tests never touch RAM above 4 GiB */
	vm->ram = calloc(1, low);
	assert_non_null(vm->ram);
	vm->regions[0] = (struct vblk_mem_region){0, low, vm->ram};
	vm->mem.regions = vm->regions;
	vm->mem.nregions = 1;
	return vm;
}

static void vm_free(struct cavm *vm)
{
	free(vm->ram);
	free(vm);
}

void *cavm_gpa_ptr(struct cavm *vm, uint64_t gpa, uint64_t len)
{
	return vblk_mem_ptr(&vm->mem, gpa, len);
}

uint64_t cavm_ram_bytes(struct cavm *vm)
{
	return vm->cfg.mem_bytes;
}

unsigned cavm_ncpus(struct cavm *vm)
{
	return vm->ncpus;
}

static char last_log[512];

void cavm_log(struct cavm *vm, int level, const char *fmt, ...)
{
	va_list ap;

	(void)vm;
	(void)level;
	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
}

static unsigned fake_nintx;

unsigned cavm_pci_intx_list(struct cavm *vm, struct cavm_pci_intx *out,
			    unsigned max)
{
	(void)vm;
	for (unsigned i = 0; i < fake_nintx && i < max; i++)
		out[i] = (struct cavm_pci_intx){.slot = (uint8_t)(1 + i),
						.pin = 1,
						.gsi = (uint8_t)(16 + i)};
	return fake_nintx < max ? fake_nintx : max;
}

/* port handlers (acpi.c registers its PM1a ports) and stops */
static struct {
	uint16_t base, len;
	cavm_io_fn fn;
	void *opaque;
} fake_pio[4];
static unsigned fake_npio;
static int stop_status = -1;
static struct {
	void (*fn)(void *);
	void *opaque;
} fake_hooks[4];
static unsigned fake_nhooks;

int cavm_pio_register(struct cavm *vm, uint16_t base, uint16_t len,
		      cavm_io_fn fn, void *opaque)
{
	(void)vm;
	assert_true(fake_npio < 4);
	fake_pio[fake_npio].base = base;
	fake_pio[fake_npio].len = len;
	fake_pio[fake_npio].fn = fn;
	fake_pio[fake_npio].opaque = opaque;
	fake_npio++;
	return 0;
}

int cavm_at_exit(struct cavm *vm, void (*fn)(void *opaque), void *opaque)
{
	(void)vm;
	assert_true(fake_nhooks < 4);
	fake_hooks[fake_nhooks].fn = fn;
	fake_hooks[fake_nhooks].opaque = opaque;
	fake_nhooks++;
	return 0;
}

void cavm_request_stop(struct cavm *vm, int status)
{
	(void)vm;
	if (stop_status < 0)
		stop_status = status;
}

/* ---- decompression ---- */

#define PLAIN_LEN (300u * 1024 + 7)

static uint8_t *plain(void)
{
	uint8_t *p = malloc(PLAIN_LEN);

	assert_non_null(p);
	for (size_t i = 0; i < PLAIN_LEN; i++) /* compressible, not trivial */
		p[i] = (uint8_t)((i * 7) ^ (i >> 9));
	return p;
}

/* Append the kernel build's 4-byte size. */
static size_t append_size(uint8_t *buf, size_t n)
{
	le32_put(buf + n, PLAIN_LEN);
	return n + 4;
}

static size_t make_gzip(const uint8_t *in, uint8_t *out, size_t cap)
{
	z_stream z;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY),
			 Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = PLAIN_LEN;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	deflateEnd(&z);
	return z.total_out; /* gzip's trailer already holds the size */
}

static size_t make_xz(const uint8_t *in, uint8_t *out, size_t cap)
{
	size_t pos = 0;

	assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in,
						 PLAIN_LEN, out, &pos, cap),
			 LZMA_OK);
	return append_size(out, pos);
}

/* with a checksum, as the zstd tool the kernel build runs writes it */
static size_t make_zstd(const uint8_t *in, uint8_t *out, size_t cap)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t n;

	assert_non_null(c);
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 19);
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	n = ZSTD_compress2(c, out, cap, in, PLAIN_LEN);
	ZSTD_freeCCtx(c);
	assert_false(ZSTD_isError(n));
	return append_size(out, n);
}

/* lz4 -l: magic, then (le32 size, block) per 8 MiB; two blocks here by
 * splitting the input, to cover the loop. */
static size_t make_lz4(const uint8_t *in, uint8_t *out, size_t cap)
{
	size_t pos = 4, half = PLAIN_LEN / 2;
	int n;

	le32_put(out, 0x184C2102u);
	n = LZ4_compress_default((const char *)in, (char *)out + pos + 4,
				 (int)half, (int)(cap - pos - 4));
	assert_true(n > 0);
	le32_put(out + pos, (uint32_t)n);
	pos += 4 + (size_t)n;
	n = LZ4_compress_default((const char *)in + half, (char *)out + pos + 4,
				 (int)(PLAIN_LEN - half), (int)(cap - pos - 4));
	assert_true(n > 0);
	le32_put(out + pos, (uint32_t)n);
	pos += 4 + (size_t)n;
	return append_size(out, pos);
}

static void check_format(size_t (*make)(const uint8_t *, uint8_t *, size_t),
			 const char *name)
{
	size_t cap = PLAIN_LEN * 2, len;
	uint8_t *in = plain(), *c = malloc(cap), *out = NULL;
	size_t outlen = 0;
	const char *fmt = NULL;

	assert_non_null(c);
	len = make(in, c, cap);
	assert_int_equal(cavm_decompress(c, len, &out, &outlen, &fmt), 0);
	assert_string_equal(fmt, name);
	assert_int_equal(outlen, PLAIN_LEN);
	assert_memory_equal(out, in, PLAIN_LEN);
	free(out);

	/* truncated: half the stream is an error, not a short success */
	out = NULL;
	assert_true(cavm_decompress(c, len / 2, &out, &outlen, &fmt) < 0);
	assert_null(out);
	/* corrupt: bytes in the middle flipped */
	for (size_t i = len / 3; i < len / 3 + 64; i++)
		c[i] ^= 0x5a;
	if (cavm_decompress(c, len, &out, &outlen, &fmt) == 0) {
		/* lz4 has no checksum: then at least not the original */
		assert_string_equal(name, "lz4");
		assert_true(outlen != PLAIN_LEN ||
			    memcmp(out, in, PLAIN_LEN) != 0);
		free(out);
	}
	free(c);
	free(in);
}

static void test_decompress_gzip(void **state)
{
	(void)state;
	check_format(make_gzip, "gzip");
}

static void test_decompress_xz(void **state)
{
	(void)state;
	check_format(make_xz, "xz");
}

static void test_decompress_zstd(void **state)
{
	(void)state;
	check_format(make_zstd, "zstd");
}

static void test_decompress_lz4(void **state)
{
	(void)state;
	check_format(make_lz4, "lz4");
}

static void test_decompress_unsupported(void **state)
{
	uint8_t buf[64] = {0};
	uint8_t *out = (uint8_t *)1;
	size_t outlen = 1;
	const char *fmt = NULL;

	(void)state;
	memcpy(buf, "BZh9", 4);
	assert_int_equal(cavm_decompress(buf, sizeof(buf), &out, &outlen, &fmt),
			 -ENOTSUP);
	assert_string_equal(fmt, "bzip2");
	assert_null(out);
	memcpy(buf, "\x89LZO", 4);
	assert_int_equal(cavm_decompress(buf, sizeof(buf), &out, &outlen, &fmt),
			 -ENOTSUP);
	assert_string_equal(fmt, "lzo");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(cavm_decompress(buf, sizeof(buf), &out, &outlen, &fmt),
			 -ENOTSUP);
	assert_string_equal(fmt, "unknown");
	/* a magic with nothing after it */
	assert_int_equal(cavm_decompress((const uint8_t *)"\x1f\x8b", 2, &out,
					 &outlen, &fmt),
			 -ENOTSUP);
}

/* ---- ELF ---- */

#define ELF_LEN 0x3000

/* An ELF64 x86-64 with one PT_LOAD: file [0x1000, 0x1000+filesz) to
 * paddr, memsz bytes, entry at paddr + 0x10. */
static uint8_t *make_elf(uint64_t paddr, uint64_t filesz, uint64_t memsz)
{
	uint8_t *e = calloc(1, ELF_LEN);
	uint8_t *ph = e + 64;

	assert_non_null(e);
	memcpy(e, "\177ELF", 4);
	e[4] = 2; /* 64-bit */
	e[5] = 1; /* little-endian */
	e[6] = 1;
	le16_put(e + 16, 2);  /* ET_EXEC */
	le16_put(e + 18, 62); /* x86-64 */
	le32_put(e + 20, 1);
	le64_put(e + 24, paddr + 0x10);
	le64_put(e + 32, 64); /* phoff */
	le16_put(e + 52, 64);
	le16_put(e + 54, 56);
	le16_put(e + 56, 1);
	le32_put(ph, 1); /* PT_LOAD */
	le64_put(ph + 8, 0x1000);
	le64_put(ph + 16, 0xffffffff80000000ull + paddr); /* vaddr */
	le64_put(ph + 24, paddr);
	le64_put(ph + 32, filesz);
	le64_put(ph + 40, memsz);
	memset(e + 0x1000, 0xab, ELF_LEN - 0x1000);
	return e;
}

static void test_elf_good(void **state)
{
	struct cavm *vm = vm_new(RAM_MB << 20, 1);
	uint8_t *e = make_elf(0x200000, 0x800, 0x3000);
	uint64_t entry = 0, end = 0;

	(void)state;
	memset(vm->ram + 0x200000, 0xcc, 0x4000); /* bss must be zeroed */
	assert_int_equal(cavm_elf_load(vm, e, ELF_LEN, &entry, &end), 0);
	assert_int_equal(entry, 0x200010);
	assert_int_equal(end, 0x203000);
	assert_int_equal(vm->ram[0x200000], 0xab);
	assert_int_equal(vm->ram[0x2007ff], 0xab);
	assert_int_equal(vm->ram[0x200800], 0);
	assert_int_equal(vm->ram[0x202fff], 0);
	assert_int_equal(vm->ram[0x203000], 0xcc); /* past memsz: untouched */

	/* a virtual entry point inside the segment is translated */
	le64_put(e + 24, 0xffffffff80200020ull);
	assert_int_equal(cavm_elf_load(vm, e, ELF_LEN, &entry, &end), 0);
	assert_int_equal(entry, 0x200020);
	free(e);
	vm_free(vm);
}

static void expect_bad(uint8_t *e, size_t len, const char *msg)
{
	struct cavm *vm = vm_new(RAM_MB << 20, 1);
	uint64_t entry = 0, end = 0;

	last_log[0] = 0;
	assert_int_equal(cavm_elf_load(vm, e, len, &entry, &end), -ENOEXEC);
	if (msg && !strstr(last_log, msg))
		fail_msg("log '%s' lacks '%s'", last_log, msg);
	/* nothing was copied into RAM */
	for (size_t i = 0; i < (RAM_MB << 20); i += 4096)
		assert_int_equal(vm->ram[i], 0);
	vm_free(vm);
}

static void test_elf_bad(void **state)
{
	uint8_t *e;

	(void)state;
	e = make_elf(0x200000, 0x800, 0x3000);
	expect_bad(e, 32, NULL); /* shorter than a header */
	e[4] = 1;
	expect_bad(e, ELF_LEN, "64-bit little-endian");
	e[4] = 2;
	le16_put(e + 18, 3);
	expect_bad(e, ELF_LEN, "not x86-64");
	le16_put(e + 18, 62);
	le64_put(e + 32, ELF_LEN - 10); /* program headers past the end */
	expect_bad(e, ELF_LEN, "program headers outside");
	le64_put(e + 32, UINT64_MAX - 20); /* and wrapping */
	expect_bad(e, ELF_LEN, "program headers outside");
	le64_put(e + 32, 64);
	le16_put(e + 56, 0);
	expect_bad(e, ELF_LEN, "program headers outside");
	le16_put(e + 56, 1);
	le16_put(e + 54, 32); /* phentsize too small */
	expect_bad(e, ELF_LEN, "program headers outside");
	le16_put(e + 54, 56);
	free(e);

	/* segment: filesz > memsz, data past the file, offset wrapping */
	e = make_elf(0x200000, 0x800, 0x400);
	expect_bad(e, ELF_LEN, "bad size");
	free(e);
	e = make_elf(0x200000, 0x3000, 0x3000);
	expect_bad(e, ELF_LEN, "outside the file");
	le64_put(e + 64 + 8, UINT64_MAX - 0x100);
	expect_bad(e, ELF_LEN, "outside the file");
	free(e);
	/* below 1 MiB, past the end of RAM, wrapping past 2^64 */
	e = make_elf(0x9000, 0x800, 0x1000);
	expect_bad(e, ELF_LEN, "above 1 MiB");
	free(e);
	e = make_elf((RAM_MB << 20) - 0x1000, 0x800, 0x2000);
	expect_bad(e, ELF_LEN, "not inside guest RAM");
	free(e);
	e = make_elf(UINT64_MAX - 0x800, 0x800, 0x2000);
	expect_bad(e, ELF_LEN, "not inside guest RAM");
	free(e);
	/* entry outside every segment; no PT_LOAD at all */
	e = make_elf(0x200000, 0x800, 0x1000);
	le64_put(e + 24, 0x900000);
	expect_bad(e, ELF_LEN, "in no loaded segment");
	le32_put(e + 64, 4); /* PT_NOTE */
	expect_bad(e, ELF_LEN, "no loadable segment");
	free(e);
}

/* ---- zero page ---- */

struct e820 {
	uint64_t addr, size;
	uint32_t type;
};

static unsigned read_e820(struct cavm *vm, struct e820 *t)
{
	const uint8_t *bp = vm->ram + CAVM_ZEROPAGE_ADDR;
	unsigned n = bp[0x1e8];

	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = bp + 0x2d0 + 20 * i;

		t[i] = (struct e820){le64_get(e), le64_get(e + 8),
				     le32_get(e + 16)};
	}
	return n;
}

static void test_zeropage_elf(void **state)
{
	struct cavm *vm = vm_new(RAM_MB << 20, 1);
	const uint8_t *bp = vm->ram + CAVM_ZEROPAGE_ADDR;
	struct e820 t[8];

	(void)state;
	memset(vm->ram + CAVM_ZEROPAGE_ADDR, 0x77, BP_SIZE); /* stale */
	assert_int_equal(cavm_zeropage_write(vm, NULL, 0, "console=ttyS0",
					     0x1800000, 0x1234),
			 0);
	assert_int_equal(read_e820(vm, t), 3);
	assert_int_equal(t[0].addr, 0);
	assert_int_equal(t[0].size, 0x9fc00);
	assert_int_equal(t[0].type, 1);
	assert_int_equal(t[1].addr, 0x9fc00);
	assert_int_equal(t[1].size, 0x100000 - 0x9fc00);
	assert_int_equal(t[1].type, 2);
	assert_int_equal(t[2].addr, 0x100000);
	assert_int_equal(t[2].size, (RAM_MB << 20) - 0x100000);
	assert_int_equal(t[2].type, 1);
	assert_memory_equal(bp + 0x202, "HdrS", 4);
	assert_int_equal(le16_get(bp + 0x1fe), 0xAA55);
	assert_int_equal(bp[0x210], 0xff);               /* type_of_loader */
	assert_int_equal(bp[0x1ef], 0);                  /* sentinel */
	assert_int_equal(le32_get(bp + 0x228), 0x20000); /* cmd_line_ptr */
	assert_string_equal((const char *)vm->ram + 0x20000, "console=ttyS0");
	assert_int_equal(le32_get(bp + 0x218), 0x1800000); /* ramdisk */
	assert_int_equal(le32_get(bp + 0x21c), 0x1234);
	assert_int_equal(le32_get(bp + 0xc0), 0);
	assert_int_equal(bp[0x100], 0); /* stale bytes cleared */
	vm_free(vm);
}

static void test_zeropage_bzimage_and_high_ram(void **state)
{
	/* 5 GiB: 3 GiB below the hole, 2 GiB from 4 GiB up */
	struct cavm *vm = vm_new(5ull << 30, 1);
	const uint8_t *bp = vm->ram + CAVM_ZEROPAGE_ADDR;
	uint8_t hdr[0x7f];
	struct e820 t[8];

	(void)state;
	memset(hdr, 0x11, sizeof(hdr));
	memcpy(hdr + (0x202 - 0x1f1), "HdrS", 4);
	assert_int_equal(cavm_zeropage_write(vm, hdr, sizeof(hdr), "", 0, 0),
			 0);
	assert_int_equal(read_e820(vm, t), 4);
	assert_int_equal(t[2].addr + t[2].size, 0xC0000000ull);
	assert_int_equal(t[3].addr, 0x100000000ull);
	assert_int_equal(t[3].size, 2ull << 30);
	assert_int_equal(t[3].type, 1);
	/* the kernel's header is copied, then the loader's fields set */
	assert_int_equal(bp[0x1f1], 0x11);
	assert_int_equal(bp[0x214], 0x11); /* code32_start: kernel's */
	assert_int_equal(bp[0x210], 0xff);
	assert_int_equal(le32_get(bp + 0x228), 0x20000);
	assert_int_equal(le32_get(bp + 0x218), 0);
	assert_int_equal(bp[0x1f1 + 0x7f], 0); /* nothing past the header */
	vm_free(vm);
}

/* ---- MP table ---- */

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static void test_mptable(void **state)
{
	struct cavm *vm = vm_new(RAM_MB << 20, 3);
	const uint8_t *mpf = vm->ram + CAVM_MPTABLE_ADDR, *mpc, *p;
	unsigned len, count, procs = 0, buses = 0, ioapics = 0, ints = 0,
			     lints = 0, pci_ints = 0;

	(void)state;
	fake_nintx = 2;
	assert_int_equal(cavm_mptable_write(vm), 0);
	assert_memory_equal(mpf, "_MP_", 4);
	assert_int_equal(mpf[8], 1);
	assert_int_equal(mpf[9], 4);
	assert_int_equal(sum(mpf, 16), 0);
	assert_int_equal(le32_get(mpf + 4), CAVM_MPTABLE_ADDR + 16);
	mpc = vm->ram + le32_get(mpf + 4);
	assert_memory_equal(mpc, "PCMP", 4);
	len = le16_get(mpc + 4);
	count = le16_get(mpc + 34);
	assert_int_equal(sum(mpc, len), 0);
	assert_int_equal(le32_get(mpc + 36), 0xFEE00000u);
	p = mpc + 44;
	for (unsigned i = 0; i < count; i++) {
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], procs); /* APIC id */
			assert_int_equal(p[3], procs == 0 ? 3 : 1);
			procs++;
			p += 20;
			continue;
		case 1:
			assert_memory_equal(p + 2, buses ? "ISA   " : "PCI   ",
					    6);
			buses++;
			break;
		case 2:
			assert_int_equal(p[1], 3); /* id = ncpus */
			assert_int_equal(le32_get(p + 4), 0xFEC00000u);
			ioapics++;
			break;
		case 3:
			if (p[4] == 0) { /* PCI bus */
				assert_int_equal(p[5], (1 + pci_ints) << 2);
				assert_int_equal(p[7], 16 + pci_ints);
				assert_int_equal(le16_get(p + 2), 0x0d);
				pci_ints++;
			} else {
				assert_int_equal(p[5], p[7]); /* ISA 1:1 */
			}
			ints++;
			break;
		case 4:
			assert_int_equal(p[6], 0xff);
			lints++;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
		p += 8;
	}
	assert_int_equal(p - mpc, len);
	assert_int_equal(procs, 3);
	assert_int_equal(buses, 2);
	assert_int_equal(ioapics, 1);
	assert_int_equal(ints, 16 + 2);
	assert_int_equal(pci_ints, 2);
	assert_int_equal(lints, 2);
	/* in e820-reserved memory, below 1 MiB */
	assert_true(CAVM_MPTABLE_ADDR >= CAVM_EBDA_ADDR);
	assert_true(CAVM_MPTABLE_ADDR + 16 + len <= 0x100000);
	fake_nintx = 0;
	vm_free(vm);
}

/* ---- ACPI ---- */

static const uint8_t *acpi_table(struct cavm *vm, uint64_t gpa, const char *sig)
{
	const uint8_t *t = vm->ram + gpa;
	uint32_t len = le32_get(t + 4);

	assert_true(gpa + len <= 0x100000 && gpa >= CAVM_EBDA_ADDR);
	assert_memory_equal(t, sig, 4);
	assert_int_equal(sum(t, len), 0);
	return t;
}

static void pio(unsigned i, uint16_t port, uint16_t v, unsigned len,
		bool is_write, uint16_t *out)
{
	uint8_t d[2];

	assert_true(port >= fake_pio[i].base &&
		    port < fake_pio[i].base + fake_pio[i].len);
	le16_put(d, v);
	fake_pio[i].fn(fake_pio[i].opaque, port - fake_pio[i].base, d, len,
		       is_write);
	if (out)
		*out = len == 2 ? le16_get(d) : d[0];
}

static void test_acpi(void **state)
{
	struct cavm *vm = vm_new(RAM_MB << 20, 2);
	const uint8_t *rsdp = vm->ram + CAVM_ACPI_ADDR, *xsdt, *fadt, *dsdt;
	const uint8_t *madt, *p;
	static const uint8_t s5[] = {0x08, '_',  'S',  '5',  '_',  0x12, 0x07,
				     0x04, 0x0a, 0x05, 0x00, 0x00, 0x00};
	uint16_t v;

	(void)state;
	fake_npio = fake_nhooks = 0;
	stop_status = -1;
	assert_int_equal(cavm_acpi_init(vm), 0);
	/* RSDP: where Linux scans, both checksums, the XSDT */
	assert_int_equal(CAVM_ACPI_ADDR % 16, 0);
	assert_true(CAVM_ACPI_ADDR >= 0xE0000);
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(sum(rsdp, 36), 0);
	assert_int_equal(rsdp[15], 2);
	xsdt = acpi_table(vm, le64_get(rsdp + 24), "XSDT");
	assert_int_equal(le32_get(xsdt + 4), 36 + 16); /* FADT, MADT */
	fadt = acpi_table(vm, le64_get(xsdt + 36), "FACP");
	madt = acpi_table(vm, le64_get(xsdt + 44), "APIC");
	/* the MADT says what the MP table says: 2 CPUs, the IOAPIC (id 2),
	 * the SCI override, LINT1 NMI */
	assert_int_equal(le32_get(madt + 36), 0xFEE00000u);
	p = madt + 44;
	for (unsigned i = 0; i < 2; i++, p += 8) {
		assert_int_equal(p[0], 0);
		assert_int_equal(p[1], 8);
		assert_int_equal(p[3], i);
		assert_int_equal(le32_get(p + 4), 1);
	}
	assert_int_equal(p[0], 1);
	assert_int_equal(p[2], 2);
	assert_int_equal(le32_get(p + 4), 0xFEC00000u);
	assert_int_equal(le32_get(p + 8), 0);
	p += 12;
	assert_int_equal(p[0], 2);
	assert_int_equal(p[3], 9);
	assert_int_equal(le32_get(p + 4), 9);
	p += 10;
	assert_int_equal(p[0], 4);
	assert_int_equal(p[5], 1);
	p += 6;
	assert_int_equal(p - madt, le32_get(madt + 4));
	assert_int_equal(le32_get(fadt + 4), 276);
	assert_int_equal(le32_get(fadt + 40), le64_get(fadt + 140));
	dsdt = acpi_table(vm, le64_get(fadt + 140), "DSDT");
	assert_int_equal(le32_get(dsdt + 4), 36 + sizeof(s5));
	assert_memory_equal(dsdt + 36, s5, sizeof(s5));
	assert_memory_equal(vm->ram + le64_get(fadt + 132), "FACS", 4);
	assert_int_equal(le32_get(fadt + 48), 0); /* no SMI_CMD */
	assert_int_equal(le32_get(fadt + 64), 0x604);
	assert_int_equal(fadt[89], 2);
	assert_int_equal(le64_get(fadt + 172 + 4), 0x604); /* X_PM1a_CNT */
	assert_int_equal(fake_npio, 2);

	/* PM1a_CNT: SCI_EN reads set; SLP_EN with a type other than 5
	 * changes nothing; S5 stops with status 0; SLP_EN reads 0 */
	pio(1, 0x604, 0, 2, false, &v);
	assert_int_equal(v & 1, 1);
	pio(1, 0x604, 0x2000 | (3 << 10), 2, true, NULL);
	assert_int_equal(stop_status, -1);
	pio(1, 0x604, 0, 2, false, &v);
	assert_int_equal(v & 0x2000, 0);
	pio(1, 0x605, 0x34, 1, true, NULL); /* high byte alone: S5 + SLP_EN */
	assert_int_equal(stop_status, 0);
	/* PM1a status reads 0, enable keeps what was written */
	pio(0, 0x600, 0, 2, false, &v);
	assert_int_equal(v, 0);
	pio(0, 0x602, 0x0120, 2, true, NULL);
	pio(0, 0x602, 0, 2, false, &v);
	assert_int_equal(v, 0x0120);
	for (unsigned i = fake_nhooks; i-- > 0;)
		fake_hooks[i].fn(fake_hooks[i].opaque);
	vm_free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decompress_gzip),
		cmocka_unit_test(test_decompress_xz),
		cmocka_unit_test(test_decompress_zstd),
		cmocka_unit_test(test_decompress_lz4),
		cmocka_unit_test(test_decompress_unsupported),
		cmocka_unit_test(test_elf_good),
		cmocka_unit_test(test_elf_bad),
		cmocka_unit_test(test_zeropage_elf),
		cmocka_unit_test(test_zeropage_bzimage_and_high_ram),
		cmocka_unit_test(test_mptable),
		cmocka_unit_test(test_acpi),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
