/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cavm_tiny_guest.S - the smallest guest cavm can boot, for
 * test/integration/cavm_boot.sh: an ELF entered in 64-bit mode with %rsi
 * = the zero page.  It prints a greeting, the command line and the number
 * of e820 entries on COM1, then does what MODE says:
 *   MODE_EXIT   write 0x12a to the exit port (cavm must exit 42)
 *   MODE_ECHO   wait for one byte on COM1 and exit with it
 *   MODE_RESET  pulse the reset line through the i8042 (exit 0)
 *   MODE_FAULT  triple fault: no IDT, then int3 (exit 1, registers logged)
 *   MODE_SPIN   loop forever (for signals)
 *   MODE_POWEROFF  ACPI: PM1a_CNT (port 0x604) with SLP_EN and SLP_TYP 0
 *               (must not stop), print "still here", then SLP_TYP 5 (S5:
 *               cavm exits 0)
 * Build: cc -nostdlib -static -no-pie -Wl,-Ttext=0x200000 -DMODE_x
 */
	.code64
	.text
	.globl _start
_start:
	mov %rsi, %rbx
	lea hello(%rip), %rsi
	call puts
	mov 0x228(%rbx), %esi		/* cmd_line_ptr */
	call puts
	lea e820(%rip), %rsi
	call puts
	movzbl 0x1e8(%rbx), %eax	/* e820_entries */
	add $'0', %al
	call putc
	mov $'\n', %al
	call putc
#if defined(MODE_ECHO)
1:	mov $0x3fd, %dx			/* LSR: wait for data ready */
	in (%dx), %al
	test $1, %al
	jz 1b
	mov $0x3f8, %dx
	in (%dx), %al
	movzbl %al, %eax
	out %eax, $0xf4
#elif defined(MODE_RESET)
	mov $0xfe, %al
	out %al, $0x64
#elif defined(MODE_FAULT)
	lidt null_idt(%rip)
	int3
#elif defined(MODE_POWEROFF)
	mov $0x604, %dx
	mov $0x2001, %ax		/* SLP_EN, SLP_TYP 0 */
	out %ax, (%dx)
	lea still(%rip), %rsi
	call puts
	mov $0x604, %dx
	mov $0x3401, %ax		/* SLP_EN, SLP_TYP 5 */
	out %ax, (%dx)
	mov $0x12a, %eax		/* not reached */
	out %eax, $0xf4
#elif defined(MODE_SPIN)
1:	pause
	jmp 1b
#else
	mov $0x12a, %eax
	out %eax, $0xf4
#endif
2:	hlt
	jmp 2b

putc:
	mov $0x3f8, %dx
	out %al, (%dx)
	ret
puts:
	lodsb
	test %al, %al
	jz 3f
	call putc
	jmp puts
3:	ret

	.data
hello:	.asciz "tiny guest: cmdline="
e820:	.asciz " e820="
still:	.asciz "still here\n"
null_idt:
	.word 0
	.quad 0
