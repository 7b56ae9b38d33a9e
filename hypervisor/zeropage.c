/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * zeropage.c - Linux's "zero page" (struct boot_params) at
 * CAVM_ZEROPAGE_ADDR: the kernel's setup header copied from the bzImage
 * (or a minimal one for an ELF), the loader fields a boot loader owns
 * (type_of_loader, cmd_line_ptr, ramdisk_*), and the e820 memory map.
 *
 * The one idea: boot_params is written field by field at the offsets of
 * Documentation/arch/x86/zero-page.rst and boot.rst, little-endian, into
 * a zeroed page; the kernel's own header bytes are copied, never parsed
 * into a struct.
 *
 * The e820 map: RAM [0, 0x9FC00), reserved [0x9FC00, 1 MiB) (EBDA, BIOS
 * area, MP table), RAM [1 MiB, min(mem, 3 GiB)), and RAM from 4 GiB for
 * the rest.  The 3..4 GiB hole (PCI MMIO, IOAPIC, LAPIC) is left out.
 */
#include <errno.h>
#include <string.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

/* boot_params offsets */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_HDR_MAX 0x7f /* through kernel_info_offset (0x268) */
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

/* setup_header offsets, within boot_params */
#define HDR_BOOT_FLAG 0x1fe
#define HDR_HEADER 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_CMD_LINE_PTR 0x228
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_CMDLINE_SIZE 0x238

#define E820_RAM 1
#define E820_RESERVED 2

static void e820_add(uint8_t *bp, unsigned *n, uint64_t addr, uint64_t size,
		     uint32_t type)
{
	uint8_t *e = bp + BP_E820_TABLE + 20 * *n;

	if (size == 0 || *n >= BP_E820_MAX)
		return;
	le64_put(e, addr);
	le64_put(e + 8, size);
	le32_put(e + 16, type);
	(*n)++;
}

int cavm_zeropage_write(struct cavm *vm, const uint8_t *hdr, size_t hdr_len,
			const char *cmdline, uint64_t initrd_addr,
			uint64_t initrd_len)
{
	uint8_t *bp = cavm_gpa_ptr(vm, CAVM_ZEROPAGE_ADDR, BP_SIZE);
	size_t clen = strlen(cmdline) + 1;
	uint8_t *cl = cavm_gpa_ptr(vm, CAVM_CMDLINE_ADDR, clen);
	uint64_t ram = cavm_ram_bytes(vm);
	uint64_t low = ram < CAVM_LOWMEM_MAX ? ram : CAVM_LOWMEM_MAX;
	unsigned n = 0;

	if (!bp || !cl || clen > CAVM_CMDLINE_MAX || low < CAVM_KERNEL_MIN)
		return -EINVAL;
	memset(bp, 0, BP_SIZE);
	if (hdr) {
		memcpy(bp + BP_HDR, hdr,
		       hdr_len < BP_HDR_MAX ? hdr_len : BP_HDR_MAX);
	} else {
		/* An ELF kernel brings no header: the fields Linux reads. */
		le16_put(bp + HDR_BOOT_FLAG, 0xAA55);
		memcpy(bp + HDR_HEADER, "HdrS", 4);
		le16_put(bp + HDR_VERSION, 0x020f);
		bp[HDR_LOADFLAGS] = 0x01; /* LOADED_HIGH */
		le32_put(bp + HDR_KERNEL_ALIGNMENT, 0x01000000);
		le32_put(bp + HDR_CMDLINE_SIZE, (uint32_t)CAVM_CMDLINE_MAX - 1);
	}
	bp[HDR_TYPE_OF_LOADER] = 0xff; /* no registered loader id */
	memcpy(cl, cmdline, clen);
	le32_put(bp + HDR_CMD_LINE_PTR, (uint32_t)CAVM_CMDLINE_ADDR);
	le32_put(bp + BP_EXT_CMD_LINE_PTR, 0);
	le32_put(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_addr);
	le32_put(bp + HDR_RAMDISK_SIZE, (uint32_t)initrd_len);
	le32_put(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_addr >> 32));
	le32_put(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(initrd_len >> 32));

	e820_add(bp, &n, 0, CAVM_EBDA_ADDR, E820_RAM);
	e820_add(bp, &n, CAVM_EBDA_ADDR, CAVM_KERNEL_MIN - CAVM_EBDA_ADDR,
		 E820_RESERVED);
	e820_add(bp, &n, CAVM_KERNEL_MIN, low - CAVM_KERNEL_MIN, E820_RAM);
	e820_add(bp, &n, CAVM_HIGHMEM_BASE, ram - low, E820_RAM);
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	return 0;
}
