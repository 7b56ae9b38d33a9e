/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cavm_bench_guest.S - the guest of test/bench/bench_cavm.sh: its first
 * instruction after entry ends the VM through port 0xf4, so a VMM's wall
 * time from exec to exit is its start-to-first-instruction time plus its
 * teardown.  One ELF boots on both VMMs compared: cavm enters _start in
 * 64-bit mode; QEMU enters entry32 in 32-bit mode through the PVH note
 * (XEN_ELFNOTE_PHYS32_ENTRY), its isa-debug-exit device at 0xf4.  With
 * -DSPIN it loops instead (for memory measurements).
 */
	.section .note.pvh, "a"
	.balign 4
	.long 4			/* name size: "Xen\0" */
	.long 4			/* descriptor size */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long entry32

	.text
	.code32
entry32:
#ifdef SPIN
1:	pause
	jmp 1b
#endif
	mov $0x21, %al		/* cavm: status 33; QEMU: (0x21 << 1) | 1 = 67 */
	out %al, $0xf4
	hlt

	.code64
	.globl _start
_start:
#ifdef SPIN
1:	pause
	jmp 1b
#endif
	mov $0x21, %al		/* cavm: status 33; QEMU: (0x21 << 1) | 1 = 67 */
	out %al, $0xf4
	hlt
