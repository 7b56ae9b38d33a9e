/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * boot.c - put a Linux kernel (or anything built like one) into guest
 * memory and make the boot vCPU ready to enter it: an ELF vmlinux loaded
 * directly, or a bzImage whose compressed payload is decompressed here on
 * the host and loaded as the ELF it is; the initrd at the top of low RAM;
 * the zero page and command line; page tables, GDT, registers for the
 * 64-bit entry.
 *
 * The one idea: a bzImage's real-mode setup and in-guest decompressor are
 * never run.  Its setup header says where the payload is and its magic
 * says how it is compressed (decompress.c); the result is the vmlinux ELF
 * the decompressor would have loaded, entered at its physical entry
 * point with %rsi = the zero page, as boot.rst's 64-bit protocol allows.
 * On hosts where guest kernel mode is emulated this is the difference
 * between seconds and minutes; everywhere it skips a copy of the kernel.
 *
 * Invariants: every field read from the image is range-checked before it
 * is used; a bad image stops cavm with a message naming the field.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

/* setup header, offsets in the bzImage file (boot.rst) */
#define SH_SETUP_SECTS 0x1f1
#define SH_BOOT_FLAG 0x1fe
#define SH_JUMP_END 0x201 /* the header ends at 0x202 + this byte */
#define SH_HEADER 0x202
#define SH_VERSION 0x206
#define SH_INITRD_ADDR_MAX 0x22c
#define SH_XLOADFLAGS 0x236
#define SH_CMDLINE_SIZE 0x238
#define SH_PAYLOAD_OFFSET 0x248
#define SH_PAYLOAD_LENGTH 0x24c
#define SH_PREF_ADDRESS 0x258
#define SH_INIT_SIZE 0x260
#define SH_MIN_LEN 0x264
#define XLF_KERNEL_64 0x1

struct image {
	uint8_t *p;
	size_t len;
};

static int map_file(struct cavm *vm, const char *what, const char *path,
		    struct image *im)
{
	struct stat st;
	int fd, ret = 0;

	im->p = NULL;
	im->len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		cavm_log(vm, CAVM_LOG_ERROR, "%s %s: %s", what, path,
			 strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		cavm_log(vm, CAVM_LOG_ERROR, "%s %s: not a non-empty file",
			 what, path);
		ret = -EINVAL;
		goto out;
	}
	im->p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (im->p == MAP_FAILED) {
		ret = -errno;
		im->p = NULL;
		cavm_log(vm, CAVM_LOG_ERROR, "%s %s: %s", what, path,
			 strerror(-ret));
		goto out;
	}
	im->len = (size_t)st.st_size;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static bool is_bzimage(const struct image *im)
{
	return im->len >= SH_MIN_LEN &&
	       memcmp(im->p + SH_HEADER, "HdrS", 4) == 0 &&
	       le16_get(im->p + SH_BOOT_FLAG) == 0xAA55;
}

/* The bzImage's payload, decompressed and loaded as an ELF. */
static int load_bzimage(struct cavm *vm, const struct image *im,
			uint64_t *entry, uint64_t *end)
{
	const uint8_t *h = im->p;
	unsigned version = le16_get(h + SH_VERSION);
	unsigned sects = h[SH_SETUP_SECTS] ? h[SH_SETUP_SECTS] : 4;
	uint64_t off =
		(uint64_t)(sects + 1) * 512 + le32_get(h + SH_PAYLOAD_OFFSET);
	uint64_t plen = le32_get(h + SH_PAYLOAD_LENGTH);
	const char *format = "?";
	uint8_t *elf = NULL;
	size_t elf_len = 0;
	uint64_t t0 = cavm_now_ns(), init_end;
	int ret;

	if (version < 0x020c || !(h[SH_XLOADFLAGS] & XLF_KERNEL_64)) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: bzImage protocol %u.%02u without a 64-bit "
			 "entry (needs 2.12 and XLF_KERNEL_64)",
			 version >> 8, version & 0xff);
		return -ENOEXEC;
	}
	if (plen == 0 || off > im->len || plen > im->len - off) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: bzImage payload 0x%llx+0x%llx is outside "
			 "the file",
			 (unsigned long long)off, (unsigned long long)plen);
		return -ENOEXEC;
	}
	ret = cavm_decompress(im->p + off, plen, &elf, &elf_len, &format);
	if (ret < 0) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: cannot decompress the %s payload: %s", format,
			 strerror(-ret));
		return ret;
	}
	cavm_log(vm, CAVM_LOG_DEBUG,
		 "kernel: %s payload, %zu -> %zu bytes in %.1f ms", format,
		 (size_t)plen, elf_len, (double)(cavm_now_ns() - t0) / 1e6);
	ret = cavm_elf_load(vm, elf, elf_len, entry, end);
	free(elf);
	if (ret < 0)
		return ret;
	/* The kernel uses init_size bytes from where it was loaded. */
	init_end = le64_get(h + SH_PREF_ADDRESS) + le32_get(h + SH_INIT_SIZE);
	if (init_end > *end)
		*end = init_end;
	return 0;
}

/* The initrd at the top of low RAM, below what the kernel can reach. */
static int load_initrd(struct cavm *vm, const char *path, uint64_t max_addr,
		       uint64_t kernel_end, uint64_t *addr, uint64_t *len)
{
	uint64_t ram = cavm_ram_bytes(vm);
	uint64_t top = ram < CAVM_LOWMEM_MAX ? ram : CAVM_LOWMEM_MAX;
	struct image im;
	uint8_t *dst;
	int ret;

	ret = map_file(vm, "initrd", path, &im);
	if (ret < 0)
		return ret;
	if (max_addr + 1 < top)
		top = max_addr + 1;
	kernel_end = (kernel_end + 0xfff) & ~0xfffull;
	if (im.len > top || ((top - im.len) & ~0xfffull) < kernel_end) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "initrd %s: %zu bytes do not fit between the kernel "
			 "and 0x%llx (try more --mem)",
			 path, im.len, (unsigned long long)top);
		ret = -ENOMEM;
		goto out;
	}
	*addr = (top - im.len) & ~0xfffull;
	*len = im.len;
	dst = cavm_gpa_ptr(vm, *addr, im.len);
	if (!dst) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(dst, im.p, im.len);
out:
	munmap(im.p, im.len);
	return ret;
}

int cavm_boot_load(struct cavm *vm, struct cavm_boot *b)
{
	struct image im;
	const uint8_t *hdr = NULL;
	size_t hdr_len = 0, cmdline_max = CAVM_CMDLINE_MAX - 1;
	uint64_t end = 0, initrd_addr = 0, initrd_len = 0;
	uint64_t initrd_max = 0x7fffffff;
	const char *cmdline = b->cmdline ? b->cmdline : "";
	int ret;

	ret = map_file(vm, "kernel", b->kernel, &im);
	if (ret < 0)
		return ret;
	if (im.len >= 4 && memcmp(im.p, "\177ELF", 4) == 0) {
		ret = cavm_elf_load(vm, im.p, im.len, &b->entry, &end);
	} else if (is_bzimage(&im)) {
		hdr = im.p + SH_SETUP_SECTS;
		hdr_len =
			(size_t)SH_HEADER + im.p[SH_JUMP_END] - SH_SETUP_SECTS;
		if (hdr_len > im.len - SH_SETUP_SECTS) /* a short file */
			hdr_len = im.len - SH_SETUP_SECTS;
		if (le16_get(im.p + SH_VERSION) >= 0x0206 &&
		    le32_get(im.p + SH_CMDLINE_SIZE) < cmdline_max)
			cmdline_max = le32_get(im.p + SH_CMDLINE_SIZE);
		initrd_max = le32_get(im.p + SH_INITRD_ADDR_MAX);
		ret = load_bzimage(vm, &im, &b->entry, &end);
	} else {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel %s: neither an ELF nor a bzImage", b->kernel);
		ret = -ENOEXEC;
	}
	if (ret < 0)
		goto out;
	if (strlen(cmdline) > cmdline_max) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "command line: %zu bytes, this kernel takes at most "
			 "%zu",
			 strlen(cmdline), cmdline_max);
		ret = -E2BIG;
		goto out;
	}
	if (b->initrd) {
		ret = load_initrd(vm, b->initrd, initrd_max, end, &initrd_addr,
				  &initrd_len);
		if (ret < 0)
			goto out;
	}
	ret = cavm_zeropage_write(vm, hdr, hdr_len, cmdline, initrd_addr,
				  initrd_len);
	if (ret == 0)
		ret = cavm_cpu_write_tables(vm);
	if (ret == 0)
		ret = cavm_cpu_boot_regs(vm, &vm->vcpus[0], b->entry,
					 CAVM_ZEROPAGE_ADDR);
	if (ret < 0)
		cavm_log(vm, CAVM_LOG_ERROR, "cannot set up the boot state: %s",
			 strerror(-ret));
out:
	munmap(im.p, im.len);
	return ret;
}
