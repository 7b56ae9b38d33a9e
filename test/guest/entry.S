/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * entry.S - the guest's first instructions, its CPU tables, and the few
 * ring-0 stubs it keeps.
 *
 * The idea: do as little as possible in ring 0 (emulated on hosts without
 * full hardware virtualization, a few million instructions per second)
 * and run everything else in ring 3, where the CPU runs it natively.
 * _start is entered like a vmlinux through the 64-bit boot protocol
 * (Linux boot.rst: long mode, paging on, interrupts off, %rsi = zero
 * page).  It trusts nothing the VMM set up beyond that: it loads its own
 * GDT and page tables (static data below: the first 4 GiB identity
 * mapped with 2 MiB pages, every page user-accessible, 3..4 GiB uncached
 * for MMIO), lets kern.c fill the IDT and the TSS, and irets into
 * user_main() at CPL 3 with IOPL 3, so port I/O (serial, PCI config, the
 * exit port) works from ring 3 (or, on hosts that run ring 3 natively
 * with IOPL 0, traps to gp_stub, which does it in ring 0).
 *
 * Back to ring 0 only through: an exception (kern_exception: report and
 * exit; #GP goes to kern_gp first, which does ring 3's port I/O where
 * the host keeps IOPL 0, and its hlt: halt forever, the "wait after
 * flushed" of the crash test without burning a host CPU), and the MSI-X
 * vector 0x40 (counts interrupts, EOIs the local APIC).
 *
 * Selectors: 0x10 kernel code, 0x18 kernel data (as boot.rst), 0x20|3
 * user code, 0x28|3 user data, 0x30 TSS.
 */
	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cli
	cld
	movq %rsi, boot_params_gpa(%rip)
	leaq kstack_top(%rip), %rsp
	/* ring-0 code runs on user pages: SMEP/SMAP must be off */
	movq %cr4, %rax
	andq $~((1 << 20) | (1 << 21)), %rax
	movq %rax, %cr4
	lgdt gdt_desc(%rip)
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	pushq $0x10
	leaq 1f(%rip), %rax
	pushq %rax
	lretq
1:	leaq pml4(%rip), %rax
	movq %rax, %cr3
	call kern_init
	/* iretq to ring 3: SS, RSP, RFLAGS (IOPL 3, IF 0), CS, RIP */
	pushq $0x2b
	leaq ustack_top(%rip), %rax
	subq $8, %rax /* as if user_main had been called */
	pushq %rax
	pushq $0x3002
	pushq $0x23
	leaq user_main(%rip), %rax
	pushq %rax
	iretq

/* Exceptions 0..31: push a zero error code where the CPU pushes none,
 * then the vector, and report from C. */
.macro EXC vec
	.balign 16
exc_\vec:
	.if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
	.else
	pushq $0
	.endif
	pushq $\vec
	jmp exc_common
.endm

	.text
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
EXC \v
.endr

/* #GP: ring 3's port I/O, cli and sti.  IOPL 3 lets ring 3 do them on
 * real hardware; where ring 3 runs natively under a host that keeps
 * IOPL 0 they fault instead, and kern_gp() does them here and steps
 * over the instruction.  Anything else is a real #GP. */
	.balign 16
gp_stub:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq %rsp, %rdi
	call kern_gp
	testl %eax, %eax
	jnz 4f
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	addq $8, %rsp /* error code */
	iretq
4:	addq $72, %rsp
	pushq $13
	jmp exc_common

exc_common:
	movq (%rsp), %rdi
	movq 8(%rsp), %rsi
	leaq 16(%rsp), %rdx
	andq $-16, %rsp
	call kern_exception
2:	cli
	hlt
	jmp 2b

	/* MSI-X: count, EOI (xAPIC EOI register at 0xfee000b0), return */
	.globl irq_stub
irq_stub:
	pushq %rax
	lock incq irq_count(%rip)
	movabsq $0xfee000b0, %rax
	movl $0, (%rax)
	popq %rax
	iretq

	.section .rodata
	.balign 8
	.globl exc_stubs
exc_stubs:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12
	.quad exc_\v
.endr
	.quad gp_stub
.irp v, 14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad exc_\v
.endr

	.data
	.balign 16
gdt:
	.quad 0
	.quad 0
	.quad 0x00af9a000000ffff /* 0x10 kernel code, 64-bit */
	.quad 0x00cf92000000ffff /* 0x18 kernel data */
	.quad 0x00affa000000ffff /* 0x20 user code, 64-bit, DPL 3 */
	.quad 0x00cff2000000ffff /* 0x28 user data, DPL 3 */
	.globl gdt_tss
gdt_tss:
	.quad 0, 0               /* 0x30 TSS: kern_init fills it */
gdt_end:
	.balign 8
	.word 0, 0, 0
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.balign 8
	.globl boot_params_gpa
boot_params_gpa:
	.quad 0
	.globl irq_count
irq_count:
	.quad 0

	.section .data.pagetables, "aw"
	.balign 4096
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0007
	.quad pd + 0x1007
	.quad pd + 0x2007
	.quad pd + 0x3007
	.fill 508, 8, 0
pd:
	/* 0..3 GiB: RAM, write-back; P RW US PS */
	.set i, 0
	.rept 1536
	.quad (i << 21) | 0x87
	.set i, i + 1
	.endr
	/* 3..4 GiB: PCI MMIO, IOAPIC, LAPIC; PWT PCD as well */
	.rept 512
	.quad (i << 21) | 0x9f
	.set i, i + 1
	.endr

	.section .stack, "aw", @nobits
	.balign 4096
	.space 16384
	.globl kstack_top
kstack_top:
	.space 65536
	.globl ustack_top
ustack_top:

	.section .note.GNU-stack, "", @progbits
