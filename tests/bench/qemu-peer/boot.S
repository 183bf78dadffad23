/*
 * boot.S - the multiboot (v1) entry of the QEMU peer's guest (dirtier.c): a stack, then kmain
 * with the bootloader's magic and information, in 32-bit protected mode without paging; and the
 * timer's interrupt handler.
 */
	.set MB_MAGIC, 0x1BADB002
	.set MB_FLAGS, 0x00000003 /* modules page-aligned, memory information */

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.section .text
	.global _start
_start:
	cli
	mov $stack_top, %esp
	push %ebx
	push %eax
	call kmain
1:	hlt
	jmp 1b

/* The PIT's interrupt (IRQ 0, vector 32): count it, end it at the PIC. */
	.global irq0_stub
irq0_stub:
	push %eax
	incl pit_irqs
	mov $0x20, %al
	out %al, $0x20
	pop %eax
	iret

/* Any other vector: nothing to do (none is expected). */
	.global ignore_stub
ignore_stub:
	iret

	.section .bss
	.align 16
stack:
	.skip 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
