/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * elf.c - load an ELF64 x86-64 image the way a bootloader loads vmlinux:
 * every PT_LOAD copied to its physical address (p_paddr), the rest of its
 * memory size zeroed, entry at e_entry (a physical address; a virtual one
 * inside a segment is translated through that segment).
 *
 * The one idea: the image is untrusted bytes.  Every offset and size is
 * read with explicit little-endian loads and checked against the file and
 * against guest RAM before anything is copied, and nothing may land below
 * 1 MiB, where cavm keeps the zero page, page tables and MP table.
 */
#include <errno.h>
#include <string.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

#define EHDR_SIZE 64
#define PHDR_SIZE 56
#define PT_LOAD 1
#define EM_X86_64 62

static bool in_file(size_t len, uint64_t off, uint64_t n)
{
	return off <= len && n <= len - off;
}

/* One program header: check it (copy false) or copy it.  Returns 1 for
 * a loaded segment, 0 for one that is not loaded, or -ENOEXEC. */
static int segment(struct cavm *vm, const uint8_t *img, size_t len,
		   const uint8_t *ph, unsigned i, bool copy, uint64_t e_entry,
		   uint64_t *entry, bool *entry_ok, uint64_t *top)
{
	uint64_t off = le64_get(ph + 8), vaddr = le64_get(ph + 16);
	uint64_t paddr = le64_get(ph + 24), filesz = le64_get(ph + 32);
	uint64_t memsz = le64_get(ph + 40);
	uint8_t *dst;

	if (le32_get(ph) != PT_LOAD || memsz == 0)
		return 0;
	if (filesz > memsz || !in_file(len, off, filesz)) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: ELF segment %u has a bad size or lies "
			 "outside the file",
			 i);
		return -ENOEXEC;
	}
	dst = paddr >= CAVM_KERNEL_MIN ? cavm_gpa_ptr(vm, paddr, memsz) : NULL;
	if (!dst) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: ELF segment %u at 0x%llx+0x%llx is not "
			 "inside guest RAM above 1 MiB (try more --mem)",
			 i, (unsigned long long)paddr,
			 (unsigned long long)memsz);
		return -ENOEXEC;
	}
	if (copy) {
		memcpy(dst, img + off, filesz);
		memset(dst + filesz, 0, memsz - filesz);
		return 1;
	}
	if (paddr + memsz > *top)
		*top = paddr + memsz;
	if (!*entry_ok && e_entry >= paddr && e_entry - paddr < memsz) {
		*entry = e_entry;
		*entry_ok = true;
	} else if (!*entry_ok && e_entry >= vaddr && e_entry - vaddr < memsz) {
		*entry = paddr + (e_entry - vaddr);
		*entry_ok = true;
	}
	return 1;
}

int cavm_elf_load(struct cavm *vm, const uint8_t *img, size_t len,
		  uint64_t *entry, uint64_t *end)
{
	uint64_t phoff, e_entry, top = 0;
	unsigned phnum, phentsize, loads = 0;
	bool entry_ok = false;

	if (len < EHDR_SIZE || memcmp(img, "\177ELF", 4) != 0)
		return -ENOEXEC;
	if (img[4] != 2 || img[5] != 1) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: not a 64-bit little-endian ELF");
		return -ENOEXEC;
	}
	if (le16_get(img + 18) != EM_X86_64) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: ELF machine %u is not "
			 "x86-64",
			 le16_get(img + 18));
		return -ENOEXEC;
	}
	e_entry = le64_get(img + 24);
	phoff = le64_get(img + 32);
	phentsize = le16_get(img + 54);
	phnum = le16_get(img + 56);
	if (phentsize < PHDR_SIZE || phnum == 0 ||
	    !in_file(len, phoff, (uint64_t)phnum * phentsize)) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "kernel: ELF program headers outside the file");
		return -ENOEXEC;
	}
	/* Pass 0 checks every segment, pass 1 copies: a bad image leaves
	 * guest memory as it was. */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < phnum; i++) {
			const uint8_t *ph =
				img + phoff + (uint64_t)i * phentsize;
			int ret = segment(vm, img, len, ph, i, pass == 1,
					  e_entry, entry, &entry_ok, &top);

			if (ret < 0)
				return ret;
			loads += ret > 0 && pass == 0;
		}
		if (pass == 1)
			break;
		if (loads == 0) {
			cavm_log(vm, CAVM_LOG_ERROR,
				 "kernel: ELF has no loadable "
				 "segment");
			return -ENOEXEC;
		}
		if (!entry_ok) {
			cavm_log(
				vm, CAVM_LOG_ERROR,
				"kernel: ELF entry 0x%llx is in no loaded segment",
				(unsigned long long)e_entry);
			return -ENOEXEC;
		}
	}
	*end = top;
	return 0;
}
