/*
 * dirtier.c - the guest the benchmark's QEMU peer migrates: QEMU's own kind of benchmark
 * workload, as close to the sim guest's as a bare machine gets.
 *
 * Booted by QEMU as a multiboot kernel (-kernel, 32-bit protected mode, no paging), it fills
 * touch_mib MiB of memory from 2 MiB on with pages that do not compress (each 32-bit word a
 * hash of its page and place), says "dirtier: touched" on the first serial port, then writes 8
 * bytes (a counter) of random pages of that memory at dirty_mibps MiB/s of pages, for ever.
 * Time comes from the PIT's interrupt every millisecond; between them the vCPU halts, so the
 * guest takes a host CPU only for its writes, as the sim guest's paced vCPU threads do.
 * Command line (-append): "touch_mib=N dirty_mibps=N seed=N".
 */
#include <stdint.h>

#define PAGE       4096u
#define BASE       0x200000u
#define PIT_HZ     1193182u
#define TICKS_1MS  (PIT_HZ / 1000u)
#define MB_CMDLINE 0x4u

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
};

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void serial_puts(const char *s)
{
	for (; *s; s++) {
		while (!(inb(0x3f8 + 5) & 0x20))
			;
		outb(0x3f8, (uint8_t)*s);
	}
}

static void serial_putu(uint32_t v)
{
	char buf[12], *p = buf + sizeof(buf) - 1;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	serial_puts(p);
}

/* The value after "key=" in the command line, or def. */
static uint32_t arg(const char *cmdline, const char *key, uint32_t def)
{
	for (const char *p = cmdline; p && *p; p++) {
		const char *k = key, *q = p;
		uint32_t v = 0;

		if (p != cmdline && p[-1] != ' ')
			continue;
		while (*k && *q == *k) {
			k++;
			q++;
		}
		if (*k || *q != '=')
			continue;
		for (q++; *q >= '0' && *q <= '9'; q++)
			v = v * 10 + (uint32_t)(*q - '0');
		return v;
	}
	return def;
}

struct idt_entry {
	uint16_t off_lo, sel;
	uint8_t zero, flags;
	uint16_t off_hi;
} __attribute__((packed));

static struct idt_entry idt[256];
volatile uint32_t pit_irqs; /* incremented by irq0_stub (boot.S) */
void irq0_stub(void);
void ignore_stub(void);

static void idt_set(unsigned v, void (*fn)(void), uint16_t cs)
{
	uint32_t a = (uint32_t)(uintptr_t)fn;

	idt[v].off_lo = (uint16_t)a;
	idt[v].sel = cs;
	idt[v].zero = 0;
	idt[v].flags = 0x8e; /* present, ring 0, 32-bit interrupt gate */
	idt[v].off_hi = (uint16_t)(a >> 16);
}

/* Interrupts: the PIC's IRQs at vectors 32-47, the PIT's alone unmasked, at 1 kHz. */
static void timer_init(void)
{
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	for (unsigned v = 0; v < 256; v++)
		idt_set(v, ignore_stub, cs);
	idt_set(32, irq0_stub, cs);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x20, 0x11); /* PIC: ICW1..4, master at 32, slave at 40 */
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xfe); /* IRQ 0 only */
	outb(0xa1, 0xff);
	outb(0x43, 0x34); /* PIT channel 0: rate generator */
	outb(0x40, (uint8_t)TICKS_1MS);
	outb(0x40, (uint8_t)(TICKS_1MS >> 8));
}

void kmain(uint32_t magic, const struct mb_info *mb);

void kmain(uint32_t magic, const struct mb_info *mb)
{
	const char *cmdline = magic == 0x2BADB002 && (mb->flags & MB_CMDLINE)
	                          ? (const char *)(uintptr_t)mb->cmdline
	                          : "";
	uint32_t touch_mib = arg(cmdline, "touch_mib", 512);
	uint32_t dirty_mibps = arg(cmdline, "dirty_mibps", 32);
	uint32_t rng = arg(cmdline, "seed", 1) | 1, npages = touch_mib * 256, credit = 0;

	outb(0x3f8 + 1, 0x00); /* COM1: no interrupts, 115200 8n1 */
	outb(0x3f8 + 3, 0x80);
	outb(0x3f8 + 0, 0x01);
	outb(0x3f8 + 1, 0x00);
	outb(0x3f8 + 3, 0x03);
	for (uint32_t pg = 0; pg < npages; pg++) {
		volatile uint32_t *w = (volatile uint32_t *)(uintptr_t)(BASE + pg * PAGE);

		for (uint32_t i = 0; i < PAGE / 4; i++)
			w[i] = (pg * 0x9e3779b1u) ^ (i * 0x85ebca6bu) ^ ((pg ^ i) * 0xc2b2ae35u);
	}
	serial_puts("dirtier: touched ");
	serial_putu(touch_mib);
	serial_puts(" MiB, dirtying ");
	serial_putu(dirty_mibps);
	serial_puts(" MiB/s\n");
	timer_init();
	for (uint32_t seen = 0;;) {
		uint32_t now;

		__asm__ volatile("sti; hlt; cli");
		now = pit_irqs;
		/* every millisecond, dirty_mibps * 256 / 1000 pages are due (in thousandths) */
		credit += (now - seen) * dirty_mibps * 256;
		seen = now;
		while (credit >= 1000) {
			volatile uint32_t *w;

			credit -= 1000;
			rng ^= rng << 13;
			rng ^= rng >> 17;
			rng ^= rng << 5;
			w = (volatile uint32_t *)(uintptr_t)(BASE + (rng % npages) * PAGE);
			w[0]++;
			w[1] = rng;
		}
	}
}
