/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_virtio_pci.c - pins cavm's PCI bus (hypervisor/pci.c), MSI-X
 * (msix.c) and the virtio 1.x PCI transport (virtio_pci.c) against a fake
 * VM: the test is the guest's driver, poking 0xCF8/0xCFC and the BARs
 * exactly as a driver would, and this file implements the cavm.h calls
 * those files make (MMIO ranges, ioeventfds, MSI routes, irqfds, IRQ
 * lines), recording what they did so every test can check the effect a
 * register write had on KVM's side, not only what reads back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/endian.h"
#include "hypervisor/cavm.h"
#include "hypervisor/msix.h"
#include "hypervisor/pci.h"
#include "hypervisor/virtio_pci.h"

/* ---- the fake VM ---- */

#define MAX_RANGES 16
#define MAX_GSI 64

struct range {
	uint64_t base, len;
	cavm_io_fn fn;
	void *opaque;
};

struct cavm {
	struct cavm_devices dv;
	struct range pio[MAX_RANGES], mmio[MAX_RANGES];
	unsigned npio, nmmio;
	int line[CAVM_IOAPIC_PINS];
	unsigned next_gsi;
	struct {
		uint64_t addr;
		uint32_t data;
		bool masked;
		int efd;
	} msi[MAX_GSI];
	struct {
		int efd;
		uint64_t addr;
	} iofd[8];
	unsigned niofd;
};

static struct cavm *g_vm; /* the test's VM, for the fake's callers */

struct cavm_devices *cavm_devices(struct cavm *vm)
{
	return &vm->dv;
}

static int add_range(struct range *r, unsigned *n, uint64_t base, uint64_t len,
		     cavm_io_fn fn, void *opaque)
{
	for (unsigned i = 0; i < *n; i++)
		if (base < r[i].base + r[i].len && r[i].base < base + len)
			return -EEXIST;
	if (*n == MAX_RANGES)
		return -ENOSPC;
	r[(*n)++] = (struct range){base, len, fn, opaque};
	return 0;
}

int cavm_pio_register(struct cavm *vm, uint16_t base, uint16_t len,
		      cavm_io_fn fn, void *opaque)
{
	return add_range(vm->pio, &vm->npio, base, len, fn, opaque);
}

int cavm_mmio_register(struct cavm *vm, uint64_t base, uint64_t len,
		       cavm_io_fn fn, void *opaque)
{
	return add_range(vm->mmio, &vm->nmmio, base, len, fn, opaque);
}

int cavm_mmio_unregister(struct cavm *vm, uint64_t base)
{
	for (unsigned i = 0; i < vm->nmmio; i++)
		if (vm->mmio[i].base == base) {
			vm->mmio[i] = vm->mmio[--vm->nmmio];
			return 0;
		}
	return -ENOENT;
}

int cavm_irq_line(struct cavm *vm, unsigned gsi, int level)
{
	assert_true(gsi < CAVM_IOAPIC_PINS);
	vm->line[gsi] = level;
	return 0;
}

int cavm_msi_alloc(struct cavm *vm, unsigned *gsi)
{
	if (vm->next_gsi == MAX_GSI)
		return -ENOSPC;
	*gsi = vm->next_gsi++;
	vm->msi[*gsi].efd = -1;
	return 0;
}

int cavm_msi_route(struct cavm *vm, unsigned gsi, uint64_t addr, uint32_t data,
		   bool masked)
{
	assert_true(gsi < vm->next_gsi);
	vm->msi[gsi].addr = addr;
	vm->msi[gsi].data = data;
	vm->msi[gsi].masked = masked;
	return 0;
}

int cavm_irqfd(struct cavm *vm, int efd, unsigned gsi, bool assign)
{
	assert_true(gsi < vm->next_gsi);
	vm->msi[gsi].efd = assign ? efd : -1;
	return 0;
}

int cavm_msi_signal(struct cavm *vm, uint64_t addr, uint32_t data)
{
	(void)vm;
	(void)addr;
	(void)data;
	return 0;
}

int cavm_ioeventfd(struct cavm *vm, int efd, uint64_t addr, unsigned len,
		   bool pio, bool assign)
{
	assert_false(pio);
	assert_int_equal(len, 0);
	if (assign) {
		for (unsigned i = 0; i < vm->niofd; i++)
			assert_false(vm->iofd[i].addr == addr);
		vm->iofd[vm->niofd].efd = efd;
		vm->iofd[vm->niofd++].addr = addr;
		return 0;
	}
	for (unsigned i = 0; i < vm->niofd; i++)
		if (vm->iofd[i].addr == addr && vm->iofd[i].efd == efd) {
			vm->iofd[i] = vm->iofd[--vm->niofd];
			return 0;
		}
	fail_msg("deassigning an ioeventfd that was not there");
	return -ENOENT;
}

void cavm_log(struct cavm *vm, int level, const char *fmt, ...)
{
	(void)vm;
	(void)level;
	(void)fmt;
}

bool cavm_log_enabled(struct cavm *vm, int level)
{
	(void)vm;
	return level <= CAVM_LOG_WARN;
}

static void (*exit_fn[8])(void *);
static void *exit_arg[8];
static unsigned nexit;

int cavm_at_exit(struct cavm *vm, void (*fn)(void *opaque), void *opaque)
{
	(void)vm;
	exit_fn[nexit] = fn;
	exit_arg[nexit++] = opaque;
	return 0;
}

/* ---- the driver's side: port and MMIO accesses ---- */

static struct range *find(struct range *r, unsigned n, uint64_t addr)
{
	for (unsigned i = 0; i < n; i++)
		if (addr >= r[i].base && addr < r[i].base + r[i].len)
			return &r[i];
	return NULL;
}

static uint64_t pio(uint16_t port, unsigned len, bool wr, uint64_t v)
{
	uint8_t d[8];
	struct range *r = find(g_vm->pio, g_vm->npio, port);
	le64_put(d, v);
	if (!r)
		return ~0ull;
	r->fn(r->opaque, port - r->base, d, len, wr);
	return le64_get(d) & (len == 8 ? ~0ull : (1ull << (8 * len)) - 1);
}

static uint64_t mmio(uint64_t addr, unsigned len, bool wr, uint64_t v)
{
	uint8_t d[8];
	struct range *r = find(g_vm->mmio, g_vm->nmmio, addr);
	le64_put(d, v);
	if (!r)
		return ~0ull & (len == 8 ? ~0ull : (1ull << (8 * len)) - 1);
	r->fn(r->opaque, addr - r->base, d, len, wr);
	return le64_get(d) & (len == 8 ? ~0ull : (1ull << (8 * len)) - 1);
}

static uint32_t cfg_addr(unsigned bus, unsigned slot, unsigned reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | (reg & 0xfc);
}

static uint32_t cfg_read(unsigned slot, unsigned reg, unsigned len)
{
	pio(0xcf8, 4, true, cfg_addr(0, slot, reg));
	return (uint32_t)pio((uint16_t)(0xcfc + (reg & 3)), len, false, 0);
}

static void cfg_write(unsigned slot, unsigned reg, unsigned len, uint32_t v)
{
	pio(0xcf8, 4, true, cfg_addr(0, slot, reg));
	pio((uint16_t)(0xcfc + (reg & 3)), len, true, v);
}

/* ---- a fake virtio device behind the transport ---- */

#define DEV_FEATURES (1ull << 32 | 1ull << 9 | 1ull << 2)

struct fake_dev {
	uint64_t chosen;
	unsigned resets, set_calls;
	bool defer; /* finish resets only when the test says */
	struct virtio_pci **vp;
};

static uint64_t fd_features(void *o)
{
	(void)o;
	return DEV_FEATURES;
}

static int fd_set_features(void *o, uint64_t f)
{
	struct fake_dev *d = o;
	d->set_calls++;
	if ((f & ~DEV_FEATURES) || !(f & (1ull << 32)))
		return -EINVAL;
	d->chosen = f;
	return 0;
}

static void fd_config(void *o, uint8_t *cfg, size_t len)
{
	(void)o;
	for (size_t i = 0; i < len; i++)
		cfg[i] = (uint8_t)(0xa0 + i);
}

static void fd_reset(void *o)
{
	struct fake_dev *d = o;
	d->resets++;
	if (!d->defer)
		virtio_pci_reset_done(*d->vp);
}

static const struct virtio_pci_ops fake_ops = {fd_features, fd_set_features,
					       fd_config, fd_reset};

struct fixture {
	struct cavm vm;
	struct fake_dev dev;
	struct virtio_pci *vp;
	uint64_t bar0, bar1;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	g_vm = &f->vm;
	nexit = 0;
	f->dev.vp = &f->vp;
	assert_int_equal(cavm_pci_init(&f->vm), 0);
	assert_int_equal(virtio_pci_create(&f->vm, VIRTIO_ID_BLOCK, 0x010000, 2,
					   128, &fake_ops, &f->dev, &f->vp),
			 0);
	f->bar0 = cfg_read(1, PCI_BAR0, 4) & ~0xfu;
	f->bar1 = cfg_read(1, PCI_BAR0 + 4, 4) & ~0xfu;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	virtio_pci_destroy(f->vp);
	while (nexit) {
		nexit--;
		exit_fn[nexit](exit_arg[nexit]);
	}
	free(f);
	return 0;
}

static uint64_t common(struct fixture *f, unsigned off, unsigned len, bool wr,
		       uint64_t v)
{
	return mmio(f->bar0 + VPCI_COMMON_OFF + off, len, wr, v);
}

static bool readable(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, 0) == 1;
}

static void drain(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
}

/* ---- tests ---- */

static void test_mechanism1(void **state)
{
	(void)state;
	/* The address register reads back what was written. */
	pio(0xcf8, 4, true, 0x80001234 & ~3u);
	assert_int_equal(pio(0xcf8, 4, false, 0), 0x80001234 & ~3u);
	/* A byte write at 0xCFB (Linux's type 1 probe) leaves it alone. */
	pio(0xcfb, 1, true, 1);
	assert_int_equal(pio(0xcf8, 4, false, 0), 0x80001234 & ~3u);
	/* Host bridge: class 06.00, vendor Red Hat. */
	assert_int_equal(cfg_read(0, PCI_VENDOR_ID, 2), 0x1b36);
	assert_int_equal(cfg_read(0, PCI_CLASS_PROG + 1, 2), 0x0600);
	assert_int_equal(cfg_read(0, PCI_HEADER_TYPE, 1), 0);
	/* The virtio device: modern-only id, revision 1. */
	assert_int_equal(cfg_read(1, PCI_VENDOR_ID, 4), 0x10421af4);
	assert_int_equal(cfg_read(1, PCI_REVISION_ID, 1), 1);
	assert_int_equal(cfg_read(1, PCI_SUBSYSTEM_ID, 2), 0x42);
	/* Nothing else: empty slot, other bus, other function, disabled. */
	assert_int_equal(cfg_read(2, 0, 4), 0xffffffffu);
	pio(0xcf8, 4, true, cfg_addr(1, 0, 0));
	assert_int_equal(pio(0xcfc, 4, false, 0), 0xffffffffu);
	pio(0xcf8, 4, true, cfg_addr(0, 1, 0) | 1u << 8);
	assert_int_equal(pio(0xcfc, 4, false, 0), 0xffffffffu);
	pio(0xcf8, 4, true, cfg_addr(0, 1, 0) & ~0x80000000u);
	assert_int_equal(pio(0xcfc, 4, false, 0), 0xffffffffu);
	/* Read-only fields stay. */
	cfg_write(1, PCI_VENDOR_ID, 4, 0);
	assert_int_equal(cfg_read(1, PCI_VENDOR_ID, 4), 0x10421af4);
	cfg_write(1, PCI_CAPABILITY_LIST, 1, 0);
	assert_int_not_equal(cfg_read(1, PCI_CAPABILITY_LIST, 1), 0);
	/* Byte and word reads of one dword agree. */
	assert_int_equal(cfg_read(1, PCI_DEVICE_ID, 2), 0x1042);
	assert_int_equal(cfg_read(1, PCI_DEVICE_ID + 1, 1), 0x10);
	/* INTA# and a line in the PCI range. */
	assert_int_equal(cfg_read(1, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(cfg_read(1, PCI_INTERRUPT_LINE, 1), PCI_INTX_GSI_BASE);
	struct cavm_pci_intx l[4];
	assert_int_equal(cavm_pci_intx_list(g_vm, l, 4), 1);
	assert_int_equal(l[0].slot, 1);
	assert_int_equal(l[0].gsi, PCI_INTX_GSI_BASE);
}

static void test_bars(void **state)
{
	struct fixture *f = *state;
	/* Placed by "firmware": in the window, naturally aligned. */
	assert_true(f->bar0 >= CAVM_PCI_MMIO_BASE &&
		    f->bar0 + VPCI_BAR_SIZE <=
			    CAVM_PCI_MMIO_BASE + CAVM_PCI_MMIO_SIZE);
	assert_int_equal(f->bar0 % VPCI_BAR_SIZE, 0);
	assert_int_equal(f->bar1 % VPCI_MSIX_BAR_SIZE, 0);
	assert_true(f->bar1 >= f->bar0 + VPCI_BAR_SIZE ||
		    f->bar1 + VPCI_MSIX_BAR_SIZE <= f->bar0);
	assert_true(cfg_read(1, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_int_equal(g_vm->nmmio, 2);
	assert_int_equal(g_vm->niofd, 2);
	assert_int_equal(g_vm->iofd[0].addr, f->bar0 + VPCI_NOTIFY_OFF);

	/* Sizing, as Linux does it: decoding off, all-ones, read, back. */
	cfg_write(1, PCI_COMMAND, 2, 0);
	assert_int_equal(g_vm->nmmio, 0);
	assert_int_equal(g_vm->niofd, 0);
	cfg_write(1, PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(cfg_read(1, PCI_BAR0, 4),
			 (uint32_t) ~(VPCI_BAR_SIZE - 1));
	cfg_write(1, PCI_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(cfg_read(1, PCI_BAR0 + 4, 4),
			 (uint32_t) ~(VPCI_MSIX_BAR_SIZE - 1));
	cfg_write(1, PCI_BAR0 + 8, 4, 0xffffffff); /* no BAR2 */
	assert_int_equal(cfg_read(1, PCI_BAR0 + 8, 4), 0);
	/* Moved elsewhere, decoding back on: mapped there, ioeventfds
	 * follow. */
	uint64_t nb = 0xd0000000;
	cfg_write(1, PCI_BAR0, 4, (uint32_t)nb);
	cfg_write(1, PCI_BAR0 + 4, 4, (uint32_t)f->bar1);
	cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(g_vm->nmmio, 2);
	assert_non_null(find(g_vm->mmio, g_vm->nmmio, nb));
	assert_null(find(g_vm->mmio, g_vm->nmmio, f->bar0));
	assert_int_equal(g_vm->niofd, 2);
	for (unsigned i = 0; i < 2; i++)
		assert_true(g_vm->iofd[i].addr == nb + VPCI_NOTIFY_OFF ||
			    g_vm->iofd[i].addr ==
				    nb + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT);
	/* Moving while decoding is on remaps at once. */
	cfg_write(1, PCI_BAR0, 4, (uint32_t)f->bar0);
	assert_non_null(find(g_vm->mmio, g_vm->nmmio, f->bar0));
	assert_null(find(g_vm->mmio, g_vm->nmmio, nb));
	/* A BAR placed over another one stays unmapped. */
	cfg_write(1, PCI_BAR0 + 4, 4, (uint32_t)f->bar0);
	assert_int_equal(g_vm->nmmio, 1);
	cfg_write(1, PCI_BAR0 + 4, 4, (uint32_t)f->bar1);
	assert_int_equal(g_vm->nmmio, 2);
}

/* Find the vendor capability of cfg_type t; its config offset. */
static unsigned vcap(unsigned t)
{
	unsigned seen = 0;
	for (unsigned c = cfg_read(1, PCI_CAPABILITY_LIST, 1); c;
	     c = cfg_read(1, c + 1, 1)) {
		assert_true(c >= 0x40 && c < 0x100 && c % 4 == 0);
		assert_true(++seen < 48); /* no loop */
		if (cfg_read(1, c, 1) == PCI_CAP_ID_VNDR &&
		    cfg_read(1, c + 3, 1) == t)
			return c;
		if (t == 0x100 && cfg_read(1, c, 1) == PCI_CAP_ID_MSIX)
			return c;
	}
	return 0;
}

static void test_caps(void **state)
{
	(void)state;
	assert_true(cfg_read(1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	static const unsigned off[] = {0, VPCI_COMMON_OFF, VPCI_NOTIFY_OFF,
				       VPCI_ISR_OFF, VPCI_DEVICE_OFF};
	for (unsigned t = 1; t <= 4; t++) {
		unsigned c = vcap(t);
		assert_int_not_equal(c, 0);
		assert_int_equal(cfg_read(1, c + 4, 1), VPCI_BAR_VIRTIO);
		assert_int_equal(cfg_read(1, c + 8, 4), off[t]);
		assert_true(cfg_read(1, c + 12, 4) > 0);
	}
	assert_int_equal(cfg_read(1, vcap(2) + 2, 1), 20);
	assert_int_equal(cfg_read(1, vcap(2) + 16, 4), VPCI_NOTIFY_MULT);
	assert_int_not_equal(vcap(5), 0); /* PCI config access */
	unsigned m = vcap(0x100);
	assert_int_not_equal(m, 0);
	assert_int_equal(cfg_read(1, m + 2, 2), 2); /* 3 vectors */
	assert_int_equal(cfg_read(1, m + 4, 4),
			 VPCI_MSIX_TABLE_OFF | VPCI_BAR_MSIX);
	assert_int_equal(cfg_read(1, m + 8, 4),
			 VPCI_MSIX_PBA_OFF | VPCI_BAR_MSIX);
}

static void test_features_status(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(common(f, 0x12, 2, false, 0), 2); /* num_queues */
	common(f, 0x00, 4, true, 0);
	assert_int_equal(common(f, 0x04, 4, false, 0), (uint32_t)DEV_FEATURES);
	common(f, 0x00, 4, true, 1);
	assert_int_equal(common(f, 0x04, 4, false, 0), 1);
	common(f, 0x00, 4, true, 7);
	assert_int_equal(common(f, 0x04, 4, false, 0), 0);
	/* A driver that asks for too much does not get FEATURES_OK. */
	common(f, 0x14, 1, true, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	common(f, 0x08, 4, true, 0);
	common(f, 0x0c, 4, true, 0xffffffff);
	common(f, 0x08, 4, true, 1);
	common(f, 0x0c, 4, true, 1);
	common(f, 0x14, 1, true, 0xb);
	assert_int_equal(common(f, 0x14, 1, false, 0), 3);
	assert_int_equal(f->dev.set_calls, 1);
	/* A fitting choice is taken. */
	common(f, 0x08, 4, true, 0);
	common(f, 0x0c, 4, true, 1u << 9);
	common(f, 0x14, 1, true, 0xb);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0xb);
	assert_int_equal(f->dev.chosen, 1ull << 32 | 1ull << 9);
	/* Features are frozen after FEATURES_OK. */
	common(f, 0x0c, 4, true, 1u << 2);
	assert_int_equal(common(f, 0x0c, 4, false, 0), 1u << 9);
	/* Wrong widths change nothing. */
	common(f, 0x14, 2, true, 0);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0xb);
	assert_int_equal(f->dev.resets, 0);
	/* Reset: everything back, the device told. */
	common(f, 0x14, 1, true, 0);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0);
	common(f, 0x08, 4, true, 0);
	assert_int_equal(common(f, 0x0c, 4, false, 0), 0);
	/* Device config: read only, any width. */
	uint64_t d = f->bar0 + VPCI_DEVICE_OFF;
	assert_int_equal(mmio(d, 1, false, 0), 0xa0);
	assert_int_equal(mmio(d + 4, 4, false, 0), 0xa7a6a5a4);
	assert_int_equal(mmio(d + 8, 8, false, 0), 0xafaeadacabaaa9a8ull);
}

static void driver_ok(struct fixture *f)
{
	common(f, 0x14, 1, true, 3);
	common(f, 0x08, 4, true, 1);
	common(f, 0x0c, 4, true, 1); /* VERSION_1 */
	common(f, 0x14, 1, true, 0xb);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0xb);
	common(f, 0x14, 1, true, 0xf);
}

static void test_queues(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci_queue q;
	common(f, 0x14, 1, true, 3);
	common(f, 0x08, 4, true, 1);
	common(f, 0x0c, 4, true, 1);
	common(f, 0x16, 2, true, 1);
	assert_int_equal(common(f, 0x18, 2, false, 0), 128);
	assert_int_equal(common(f, 0x1e, 2, false, 0), 1);
	common(f, 0x18, 2, true, 64);
	common(f, 0x20, 4, true, 0x1000);
	common(f, 0x24, 4, true, 0x1);
	common(f, 0x28, 8, true, 0x2000);
	common(f, 0x30, 4, true, 0x3000);
	assert_int_equal(common(f, 0x20, 8, false, 0), 0x100001000ull);
	assert_int_equal(common(f, 0x24, 4, false, 0), 1);
	assert_false(virtio_pci_queue(f->vp, 1, &q)); /* not enabled */
	common(f, 0x1c, 2, true, 1);
	/* Enabled: its registers are frozen. */
	common(f, 0x18, 2, true, 32);
	common(f, 0x30, 8, true, 0x9000);
	assert_int_equal(common(f, 0x18, 2, false, 0), 64);
	assert_false(virtio_pci_queue(f->vp, 1, &q)); /* no DRIVER_OK */
	drain(virtio_pci_kick_fd(f->vp, 1));
	driver_ok(f);
	/* DRIVER_OK looks at enabled queues. */
	assert_true(readable(virtio_pci_kick_fd(f->vp, 1)));
	assert_false(readable(virtio_pci_kick_fd(f->vp, 0)));
	assert_true(virtio_pci_queue(f->vp, 1, &q));
	assert_int_equal(q.size, 64);
	assert_int_equal(q.desc, 0x100001000ull);
	assert_int_equal(q.driver, 0x2000);
	assert_int_equal(q.device, 0x3000);
	assert_false(virtio_pci_queue(f->vp, 0, &q));
	/* A queue that does not exist reads 0 and takes nothing. */
	common(f, 0x16, 2, true, 5);
	assert_int_equal(common(f, 0x18, 2, false, 0), 0);
	common(f, 0x1c, 2, true, 1);
	assert_int_equal(common(f, 0x1c, 2, false, 0), 0);
	/* A notification through an exit (width the ioeventfd missed). */
	drain(virtio_pci_kick_fd(f->vp, 1));
	mmio(f->bar0 + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT, 4, true, 1);
	assert_true(readable(virtio_pci_kick_fd(f->vp, 1)));
	/* Reset: the queue is gone, its epoch moves on. */
	uint32_t epoch = q.epoch;
	common(f, 0x14, 1, true, 0);
	assert_false(virtio_pci_queue(f->vp, 1, &q));
	common(f, 0x16, 2, true, 1);
	assert_int_equal(common(f, 0x18, 2, false, 0), 128);
	assert_int_equal(common(f, 0x20, 8, false, 0), 0);
	common(f, 0x1c, 2, true, 1);
	driver_ok(f);
	assert_true(virtio_pci_queue(f->vp, 1, &q));
	assert_int_not_equal(q.epoch, epoch);
}

static uint64_t efd_count(int fd)
{
	uint64_t v = 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static void test_msix(void **state)
{
	struct fixture *f = *state;
	unsigned m = vcap(0x100);
	driver_ok(f);
	/* Vectors past the table read back as NO_VECTOR. */
	common(f, 0x10, 2, true, 3);
	assert_int_equal(common(f, 0x10, 2, false, 0), VIRTIO_MSI_NO_VECTOR);
	common(f, 0x10, 2, true, 2);
	assert_int_equal(common(f, 0x10, 2, false, 0), 2);
	common(f, 0x16, 2, true, 0);
	common(f, 0x1a, 2, true, 1);
	assert_int_equal(common(f, 0x1a, 2, false, 0), 1);
	/* Program vector 1, enable MSI-X: routed, irqfd attached. */
	uint64_t e1 = f->bar1 + VPCI_MSIX_TABLE_OFF + 16;
	mmio(e1, 4, true, 0xfee00000);
	mmio(e1 + 4, 4, true, 0);
	mmio(e1 + 8, 4, true, 0x4041);
	assert_int_equal(mmio(e1 + 12, 4, false, 0), 1); /* masked at reset */
	mmio(e1 + 12, 4, true, 0);
	cfg_write(1, m + 2, 2, MSIX_CTRL_ENABLE);
	unsigned gsi = 1; /* vector 1 got the second GSI */
	assert_int_equal(g_vm->msi[gsi].addr, 0xfee00000);
	assert_int_equal(g_vm->msi[gsi].data, 0x4041);
	assert_false(g_vm->msi[gsi].masked);
	int efd = g_vm->msi[gsi].efd;
	assert_true(efd >= 0);
	virtio_pci_queue_irq(f->vp, 0);
	assert_int_equal(efd_count(efd), 1);
	assert_int_equal(g_vm->line[PCI_INTX_GSI_BASE], 0);
	/* Masked vector: pending bit, no interrupt; unmask delivers. */
	mmio(e1 + 12, 4, true, 1);
	assert_true(g_vm->msi[gsi].masked);
	virtio_pci_queue_irq(f->vp, 0);
	assert_int_equal(efd_count(efd), 0);
	assert_int_equal(mmio(f->bar1 + VPCI_MSIX_PBA_OFF, 8, false, 0), 2);
	mmio(e1 + 12, 4, true, 0);
	assert_int_equal(efd_count(efd), 1);
	assert_int_equal(mmio(f->bar1 + VPCI_MSIX_PBA_OFF, 8, false, 0), 0);
	/* Function mask, the same. */
	cfg_write(1, m + 2, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	virtio_pci_queue_irq(f->vp, 0);
	assert_int_equal(efd_count(efd), 0);
	cfg_write(1, m + 2, 2, MSIX_CTRL_ENABLE);
	assert_int_equal(efd_count(efd), 1);
	/* Re-programming re-routes. */
	mmio(e1 + 8, 4, true, 0x4051);
	assert_int_equal(g_vm->msi[gsi].data, 0x4051);
	/* Odd accesses to the table do nothing; the PBA is read-only. */
	mmio(e1 + 2, 2, true, 0xffff);
	assert_int_equal(mmio(e1, 4, false, 0), 0xfee00000);
	mmio(f->bar1 + 0x100, 4, true, 1); /* past the table */
	mmio(f->bar1 + VPCI_MSIX_PBA_OFF, 8, true, ~0ull);
	assert_int_equal(mmio(f->bar1 + VPCI_MSIX_PBA_OFF, 8, false, 0), 0);
	/* Config changes use the config vector (2: not programmed, masked:
	 * pending). */
	uint8_t gen = (uint8_t)common(f, 0x15, 1, false, 0);
	virtio_pci_config_changed(f->vp);
	assert_int_equal(common(f, 0x15, 1, false, 0), (uint8_t)(gen + 1));
	assert_int_equal(mmio(f->bar1 + VPCI_MSIX_PBA_OFF, 8, false, 0), 4);
}

static void test_intx_isr(void **state)
{
	struct fixture *f = *state;
	driver_ok(f);
	unsigned line = PCI_INTX_GSI_BASE;
	virtio_pci_queue_irq(f->vp, 0);
	assert_int_equal(g_vm->line[line], 1);
	/* ISR: read to clear, the line goes down. */
	assert_int_equal(mmio(f->bar0 + VPCI_ISR_OFF, 1, false, 0), 1);
	assert_int_equal(g_vm->line[line], 0);
	assert_int_equal(mmio(f->bar0 + VPCI_ISR_OFF, 1, false, 0), 0);
	virtio_pci_config_changed(f->vp);
	assert_int_equal(g_vm->line[line], 1);
	assert_int_equal(mmio(f->bar0 + VPCI_ISR_OFF, 1, false, 0), 2);
	assert_int_equal(g_vm->line[line], 0);
	/* INTx disabled in the command register: ISR set, line quiet. */
	cfg_write(1, PCI_COMMAND, 2,
		  PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	virtio_pci_queue_irq(f->vp, 0);
	assert_int_equal(g_vm->line[line], 0);
	assert_int_equal(mmio(f->bar0 + VPCI_ISR_OFF, 1, false, 0), 1);
	cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	/* The device breaks: NEEDS_RESET, config interrupt, queues off;
	 * the driver cannot clear the bit, only a reset does. */
	virtio_pci_needs_reset(f->vp);
	assert_int_equal(common(f, 0x14, 1, false, 0),
			 0xf | VIRTIO_S_NEEDS_RESET);
	assert_int_equal(mmio(f->bar0 + VPCI_ISR_OFF, 1, false, 0), 2);
	common(f, 0x14, 1, true, 0xf);
	assert_int_equal(common(f, 0x14, 1, false, 0),
			 0xf | VIRTIO_S_NEEDS_RESET);
	common(f, 0x14, 1, true, 0);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0);
	assert_int_equal(f->dev.resets, 1);
}

static void test_pci_cfg_window(void **state)
{
	struct fixture *f = *state;
	unsigned c = vcap(5);
	common(f, 0x14, 1, true, 3);
	/* Read device_status (BAR0 + 0x14, 1 byte) through config space. */
	cfg_write(1, c + 4, 1, VPCI_BAR_VIRTIO);
	cfg_write(1, c + 8, 4, VPCI_COMMON_OFF + 0x14);
	cfg_write(1, c + 12, 4, 1);
	assert_int_equal(cfg_read(1, c + 16, 1), 3);
	/* ... and write it. */
	cfg_write(1, c + 16, 1, 7);
	assert_int_equal(common(f, 0x14, 1, false, 0), 7);
	/* A bad window (length 3, BAR 5) does nothing. */
	cfg_write(1, c + 12, 4, 3);
	cfg_write(1, c + 16, 1, 0);
	assert_int_equal(common(f, 0x14, 1, false, 0), 7);
	cfg_write(1, c + 4, 1, 5);
	cfg_write(1, c + 12, 4, 1);
	cfg_write(1, c + 16, 1, 0);
	assert_int_equal(common(f, 0x14, 1, false, 0), 7);
}

/* A reset the device finishes later: until then the driver reads the
 * old status and cannot change anything; no vCPU waits meanwhile. */
static void test_reset_deferred(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci_queue q;
	common(f, 0x16, 2, true, 0);
	common(f, 0x1c, 2, true, 1);
	driver_ok(f);
	assert_true(virtio_pci_queue(f->vp, 0, &q));
	f->dev.defer = true;
	common(f, 0x14, 1, true, 0);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0xf);
	assert_false(virtio_pci_queue(f->vp, 0, &q));
	common(f, 0x14, 1, true, 1); /* too early: ignored */
	common(f, 0x14, 1, true, 0); /* again: still the one reset */
	common(f, 0x16, 2, true, 1);
	assert_int_equal(common(f, 0x16, 2, false, 0), 0);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0xf);
	virtio_pci_reset_done(f->vp);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0);
	assert_int_equal(common(f, 0x1c, 2, false, 0), 0);
	/* A device that never left status 0 has nothing to reset. */
	common(f, 0x14, 1, true, 0);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0);
	f->dev.defer = false;
	driver_ok(f);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0xf);
}

/* xorshift64*: reproducible random accesses. */
static uint64_t rnd(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 2685821657736338717ull;
}

/* A guest poking at random: config space of every slot at every width,
 * every mapped BAR byte, interrupts from the device side in between.
 * Nothing may crash or leak (ASan), ids and capability structure stay,
 * and what KVM was told stays consistent: at most the two BARs mapped,
 * an ioeventfd per queue exactly while BAR0 is mapped, no duplicate
 * (the fake asserts that). */
static void test_fuzz(void **state)
{
	struct fixture *f = *state;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	unsigned caps = cfg_read(1, PCI_CAPABILITY_LIST, 1);
	for (unsigned i = 0; i < 200000; i++) {
		uint64_t r = rnd(&x), v = rnd(&x);
		unsigned len = 1u << (r % 3), op = (unsigned)(r >> 8) % 16;
		unsigned reg = (unsigned)(r >> 16) % PCI_CFG_SIZE & ~(len - 1);
		unsigned slot = (unsigned)(r >> 32) % 3;
		if (op < 5) {
			/* mostly the interesting part of the device's space */
			if (op < 3)
				reg = (PCI_COMMAND +
				       (unsigned)(r >> 40) % 0xa0) &
				      ~(len - 1);
			cfg_write(slot, reg, len, (uint32_t)v);
		} else if (op < 7) {
			cfg_read(slot, reg, len);
		} else if (op < 13 && g_vm->nmmio) {
			struct range *m = &g_vm->mmio[(r >> 40) % g_vm->nmmio];
			unsigned l = 1u << ((r >> 44) % 4);
			uint64_t off = (v >> 20) % m->len & ~(uint64_t)(l - 1);
			if (op < 7 + 2 && (v & 1))
				off = (v >> 20) % VPCI_COMMON_LEN & ~(l - 1ull);
			mmio(m->base + off, l, op < 10, v);
		} else if (op == 13) {
			virtio_pci_queue_irq(f->vp, (unsigned)(v % 3));
		} else if (op == 14) {
			virtio_pci_config_changed(f->vp);
		} else if (v % 64 == 0) {
			virtio_pci_needs_reset(f->vp);
		}
		assert_int_equal(cfg_read(1, PCI_VENDOR_ID, 4), 0x10421af4);
		assert_int_equal(cfg_read(0, PCI_VENDOR_ID, 2), 0x1b36);
		assert_int_equal(cfg_read(1, PCI_CAPABILITY_LIST, 1), caps);
		assert_true(g_vm->nmmio <= 2);
		bool bar0 = false;
		for (unsigned k = 0; k < g_vm->nmmio; k++) {
			assert_true(g_vm->mmio[k].base + g_vm->mmio[k].len <=
				    0x100000000ull);
			if (g_vm->mmio[k].len == VPCI_BAR_SIZE)
				bar0 = true;
		}
		assert_int_equal(g_vm->niofd, bar0 ? 2 : 0);
		struct virtio_pci_queue q;
		if (virtio_pci_queue(f->vp, 0, &q))
			assert_true(virtio_pci_status(f->vp) &
				    VIRTIO_S_DRIVER_OK);
	}
	/* Still a working device afterwards: reset and set up again. */
	cfg_write(1, PCI_BAR0, 4, (uint32_t)f->bar0);
	cfg_write(1, PCI_BAR0 + 4, 4, (uint32_t)f->bar1);
	cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	common(f, 0x14, 1, true, 0);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0);
	driver_ok(f);
	assert_int_equal(common(f, 0x14, 1, false, 0), 0xf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mechanism1, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bars, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features_status, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx_isr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_deferred, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
