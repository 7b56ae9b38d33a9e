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
 *   MODE_SMP    start vCPU 1 (INIT, SIPI to a real-mode trampoline copied
 *               to 0x8000), which prints "AP up" and exits 7
 *   MODE_IRQ    COM1's transmitter interrupt through the IOAPIC (pin 4,
 *               vector 0x30): none while MCR.OUT2 is clear, exactly one
 *               once it is set, IIR reading "THR empty" in the handler;
 *               exits 0x42 (3: interrupt without OUT2, 4: none with it,
 *               5: wrong IIR)
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
#elif defined(MODE_SMP)
	lea ap_start(%rip), %rsi
	mov $0x8000, %rdi
	mov $(ap_end - ap_start), %rcx
	rep movsb
	mov $0xfee00000, %rdi		/* the local APIC */
	movl $0x01000000, 0x310(%rdi)	/* ICR high: APIC id 1 */
	movl $0x00004500, 0x300(%rdi)	/* INIT */
	movl $0x01000000, 0x310(%rdi)
	movl $0x00004608, 0x300(%rdi)	/* start-up, vector 0x08: 0x8000 */
1:	pause
	jmp 1b
#elif defined(MODE_IRQ)
	mov $0xff, %al			/* mask both 8259s */
	out %al, $0x21
	out %al, $0xa1
	lea idt(%rip), %rdi		/* gate 0x30 -> irq_handler */
	lea irq_handler(%rip), %rax
	mov %ax, 0x300(%rdi)
	movw $0x10, 0x302(%rdi)
	movw $0x8e00, 0x304(%rdi)	/* present, interrupt gate */
	shr $16, %rax
	mov %ax, 0x306(%rdi)
	shr $16, %rax
	mov %eax, 0x308(%rdi)
	lidt idtr(%rip)
	mov $0xfee00000, %rdi
	movl $0x1ff, 0xf0(%rdi)		/* LAPIC software-enabled */
	mov $0xfec00000, %rdi		/* IOAPIC redirection entry 4 */
	movl $0x19, (%rdi)
	movl $0, 0x10(%rdi)		/* to APIC id 0 */
	movl $0x18, (%rdi)
	movl $0x30, 0x10(%rdi)		/* vector 0x30, edge, unmasked */
	mov $0x3f9, %dx
	mov $0x02, %al			/* IER: THR empty */
	out %al, (%dx)
	sti
	mov $200000, %ecx
1:	pause
	loop 1b
	mov $3, %eax
	cmpl $0, irq_count(%rip)
	jne 9f
	mov $0x3fc, %dx
	mov $0x08, %al			/* MCR: OUT2 */
	out %al, (%dx)
	mov $2000000, %ecx
2:	cmpl $0, irq_count(%rip)
	jne 3f
	pause
	loop 2b
	mov $4, %eax
	jmp 9f
3:	mov $200000, %ecx		/* and no second one */
4:	pause
	loop 4b
	mov $6, %eax
	cmpl $1, irq_count(%rip)
	jne 9f
	mov $5, %eax
	movzbl irq_iir(%rip), %edx
	and $0x0f, %edx
	cmp $0x02, %edx
	jne 9f
	mov $0x42, %eax
9:	out %eax, $0xf4
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

#ifdef MODE_IRQ
irq_handler:
	push %rax
	push %rdx
	mov $0x3fa, %dx			/* IIR: reading it acknowledges */
	in (%dx), %al
	mov %al, irq_iir(%rip)
	incl irq_count(%rip)
	mov $0xfee000b0, %rax		/* EOI */
	movl $0, (%rax)
	pop %rdx
	pop %rax
	iretq
#endif

#ifdef MODE_SMP
	.code16
ap_start:				/* real mode, CS:IP = 0800:0000 */
	mov $0x3f8, %dx
	mov $'A', %al
	out %al, (%dx)
	mov $'P', %al
	out %al, (%dx)
	mov $' ', %al
	out %al, (%dx)
	mov $'u', %al
	out %al, (%dx)
	mov $'p', %al
	out %al, (%dx)
	mov $'\n', %al
	out %al, (%dx)
	mov $7, %al
	out %al, $0xf4
3:	hlt
	jmp 3b
ap_end:
	.code64
#endif

	.data
#ifdef MODE_IRQ
	.balign 16
idt:	.fill 0x310, 1, 0
idtr:	.word 0x30f
	.quad idt
irq_count:
	.long 0
irq_iir:
	.byte 0
#endif
hello:	.asciz "tiny guest: cmdline="
e820:	.asciz " e820="
still:	.asciz "still here\n"
null_idt:
	.word 0
	.quad 0
