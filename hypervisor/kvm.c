/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kvm.c - one VM: the KVM file descriptors, guest RAM, the in-kernel
 * irqchip and PIT, the port/MMIO handler tables, MSI routes, irqfds and
 * ioeventfds, logging, and the stop/exit-hook sequence.  The vCPU threads
 * are vcpu.c; pausing them is here because it is VM state.
 *
 * The one idea: a guest access KVM cannot finish becomes one call to a
 * registered handler, found in a small sorted table under a rwlock; all
 * other guest interaction is KVM's (irqchip, irqfd, ioeventfd), and this
 * file only keeps KVM's tables in step with what devices ask for.
 *
 * Invariants: guest RAM is [0, min(mem, 3 GiB)) plus [4 GiB, ...) and
 * nothing else; KVM's GSI routing table is always the default irqchip
 * routes (GSIs 0..23) plus every allocated MSI route; exit hooks run
 * exactly once, after every vCPU thread has returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "hypervisor/vm.h"

uint64_t cavm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- logging ---- */

bool cavm_log_enabled(struct cavm *vm, int level)
{
	return level <= (vm ? vm->cfg.log_level : CAVM_LOG_INFO);
}

void cavm_log(struct cavm *vm, int level, const char *fmt, ...)
{
	static const char *const names[] = {"error: ", "warning: ", "", ""};
	char line[1024];
	va_list ap;
	int n;

	if (!cavm_log_enabled(vm, level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One write per line, so lines from threads never interleave. */
	fprintf(stderr, "cavm: %s%s\n",
		names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}

/* ---- guest memory ---- */

const struct vblk_mem *cavm_mem(struct cavm *vm)
{
	return &vm->mem;
}

void *cavm_gpa_ptr(struct cavm *vm, uint64_t gpa, uint64_t len)
{
	return vblk_mem_ptr(&vm->mem, gpa, len);
}

struct cavm_devices *cavm_devices(struct cavm *vm)
{
	return &vm->devices;
}

unsigned cavm_ncpus(struct cavm *vm)
{
	return vm->ncpus;
}

uint64_t cavm_ram_bytes(struct cavm *vm)
{
	return vm->cfg.mem_bytes;
}

static int set_region(struct cavm *vm, unsigned slot, uint64_t gpa,
		      uint64_t size, void *host)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	vm->regions[vm->mem.nregions++] = (struct vblk_mem_region){
		.gpa = gpa, .size = size, .host = host};
	return 0;
}

static int ram_init(struct cavm *vm)
{
	uint64_t bytes = vm->cfg.mem_bytes, low;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	int ret;

	/* Huge pages are reserved now, so a shortage fails here and not as
	 * a SIGBUS later; normal RAM is only touched as the guest uses it. */
	flags |= vm->cfg.hugepages ? MAP_HUGETLB : MAP_NORESERVE;
	vm->ram = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (vm->ram == MAP_FAILED) {
		ret = -errno;
		vm->ram = NULL;
		cavm_log(vm, CAVM_LOG_ERROR,
			 "cannot map %llu MiB of guest RAM%s: %s",
			 (unsigned long long)(bytes >> 20),
			 vm->cfg.hugepages ? " in huge pages (see "
					     "/proc/sys/vm/nr_hugepages)"
					   : "",
			 strerror(-ret));
		return ret;
	}
	vm->ram_map_bytes = bytes;
	if (!vm->cfg.hugepages)
		madvise(vm->ram, bytes, MADV_HUGEPAGE); /* a hint only */
	vm->mem.regions = vm->regions;
	low = bytes < CAVM_LOWMEM_MAX ? bytes : CAVM_LOWMEM_MAX;
	ret = set_region(vm, 0, 0, low, vm->ram);
	if (ret == 0 && bytes > low)
		ret = set_region(vm, 1, CAVM_HIGHMEM_BASE, bytes - low,
				 vm->ram + low);
	if (ret < 0)
		cavm_log(vm, CAVM_LOG_ERROR, "KVM_SET_USER_MEMORY_REGION: %s",
			 strerror(-ret));
	return ret;
}

/* ---- interrupts ---- */

static int routes_commit(struct cavm *vm)
{
	size_t sz = sizeof(struct kvm_irq_routing) +
		    vm->nroutes * sizeof(struct kvm_irq_routing_entry);
	struct kvm_irq_routing *t = calloc(1, sz);
	int ret = 0;

	if (!t)
		return -ENOMEM;
	t->nr = vm->nroutes;
	memcpy(t->entries, vm->routes,
	       vm->nroutes * sizeof(struct kvm_irq_routing_entry));
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

static void route_irqchip(struct cavm *vm, unsigned gsi, unsigned chip,
			  unsigned pin)
{
	struct kvm_irq_routing_entry *e = &vm->routes[vm->nroutes++];

	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

/* KVM's own default table (PIC for GSIs 0..15, IOAPIC for 0..23): setting
 * any route replaces the whole table, so ours starts as a copy of it. */
static int irq_init(struct cavm *vm)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return -errno;
	vm->routes = calloc(CAVM_MAX_GSI, sizeof(*vm->routes));
	if (!vm->routes)
		return -ENOMEM;
	for (unsigned i = 0; i < 16; i++)
		route_irqchip(vm, i,
			      i < 8 ? KVM_IRQCHIP_PIC_MASTER
				    : KVM_IRQCHIP_PIC_SLAVE,
			      i % 8);
	for (unsigned i = 0; i < CAVM_IOAPIC_PINS; i++)
		route_irqchip(vm, i, KVM_IRQCHIP_IOAPIC, i);
	vm->next_gsi = CAVM_IOAPIC_PINS;
	return routes_commit(vm);
}

int cavm_irq_line(struct cavm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level l = {.irq = gsi, .level = level ? 1 : 0};

	if (gsi >= CAVM_IOAPIC_PINS)
		return -EINVAL;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

int cavm_msi_alloc(struct cavm *vm, unsigned *gsi)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&vm->msi_lock);
	if (vm->next_gsi < CAVM_MAX_GSI) {
		*gsi = vm->next_gsi++;
		ret = 0;
	}
	pthread_mutex_unlock(&vm->msi_lock);
	return ret;
}

int cavm_msi_route(struct cavm *vm, unsigned gsi, uint64_t addr,
		   uint32_t data, bool masked)
{
	struct kvm_irq_routing_entry *e = NULL;
	int ret;

	if (gsi < CAVM_IOAPIC_PINS || gsi >= CAVM_MAX_GSI)
		return -EINVAL;
	pthread_mutex_lock(&vm->msi_lock);
	if (gsi >= vm->next_gsi) {
		pthread_mutex_unlock(&vm->msi_lock);
		return -EINVAL;
	}
	for (unsigned i = 0; i < vm->nroutes; i++)
		if (vm->routes[i].gsi == gsi)
			e = &vm->routes[i];
	if (masked) {
		/* No route: an irqfd signalled meanwhile delivers nothing. */
		if (e)
			*e = vm->routes[--vm->nroutes];
	} else {
		if (!e) {
			e = &vm->routes[vm->nroutes++];
			memset(e, 0, sizeof(*e));
		}
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)addr;
		e->u.msi.address_hi = (uint32_t)(addr >> 32);
		e->u.msi.data = data;
	}
	ret = routes_commit(vm);
	pthread_mutex_unlock(&vm->msi_lock);
	return ret;
}

int cavm_irqfd(struct cavm *vm, int efd, unsigned gsi, bool assign)
{
	struct kvm_irqfd f = {
		.fd = (uint32_t)efd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0)
		return -errno;
	return 0;
}

int cavm_msi_signal(struct cavm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi m = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	/* > 0: delivered, 0: the guest blocked it; both are fine. */
	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &m) < 0)
		return -errno;
	return 0;
}

int cavm_ioeventfd(struct cavm *vm, int efd, uint64_t addr, unsigned len,
		   bool pio, bool assign)
{
	struct kvm_ioeventfd e = {
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (len != 0 && len != 1 && len != 2 && len != 4 && len != 8)
		return -EINVAL;
	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &e) < 0)
		return -errno;
	return 0;
}

/* ---- port and MMIO handlers ---- */

static int io_register(struct cavm *vm, struct cavm_io_space *s,
		       uint64_t base, uint64_t len, cavm_io_fn fn, void *opaque)
{
	unsigned i;
	int ret = 0;

	if (len == 0 || !fn || base + len < base)
		return -EINVAL;
	pthread_rwlock_wrlock(&s->lock);
	for (i = 0; i < s->n && s->r[i].base < base; i++)
		;
	if ((i > 0 && s->r[i - 1].base + s->r[i - 1].len > base) ||
	    (i < s->n && base + len > s->r[i].base))
		ret = -EEXIST;
	else if (s->n == CAVM_MAX_IO)
		ret = -ENOSPC;
	if (ret == 0) {
		memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
		s->r[i] = (struct cavm_io_range){base, len, fn, opaque};
		s->n++;
	}
	pthread_rwlock_unlock(&s->lock);
	if (ret < 0)
		cavm_log(vm, CAVM_LOG_DEBUG,
			 "cannot register %s 0x%llx+0x%llx: %s",
			 s == &vm->pio ? "port" : "MMIO",
			 (unsigned long long)base, (unsigned long long)len,
			 strerror(-ret));
	return ret;
}

int cavm_pio_register(struct cavm *vm, uint16_t base, uint16_t len,
		      cavm_io_fn fn, void *opaque)
{
	if ((uint32_t)base + len > 0x10000)
		return -EINVAL;
	return io_register(vm, &vm->pio, base, len, fn, opaque);
}

int cavm_mmio_register(struct cavm *vm, uint64_t base, uint64_t len,
		       cavm_io_fn fn, void *opaque)
{
	return io_register(vm, &vm->mmio, base, len, fn, opaque);
}

int cavm_mmio_unregister(struct cavm *vm, uint64_t base)
{
	struct cavm_io_space *s = &vm->mmio;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&s->lock);
	for (unsigned i = 0; i < s->n; i++) {
		if (s->r[i].base != base)
			continue;
		memmove(&s->r[i], &s->r[i + 1],
			(s->n - i - 1) * sizeof(s->r[0]));
		s->n--;
		ret = 0;
		break;
	}
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

void cavm_io_dispatch(struct cavm *vm, bool pio, uint64_t addr, uint8_t *data,
		      unsigned len, bool is_write)
{
	struct cavm_io_space *s = pio ? &vm->pio : &vm->mmio;
	const struct cavm_io_range *hit = NULL;

	pthread_rwlock_rdlock(&s->lock);
	for (unsigned i = 0; i < s->n; i++) {
		const struct cavm_io_range *r = &s->r[i];

		if (addr >= r->base && addr - r->base < r->len) {
			hit = r;
			break;
		}
	}
	if (hit) {
		hit->fn(hit->opaque, addr - hit->base, data, len, is_write);
	} else {
		if (!is_write)
			memset(data, 0xff, len);
		cavm_log(vm, CAVM_LOG_DEBUG, "unclaimed %s %s 0x%llx len %u",
			 pio ? "port" : "MMIO", is_write ? "write" : "read",
			 (unsigned long long)addr, len);
	}
	pthread_rwlock_unlock(&s->lock);
}

/* ---- pause, stop, exit hooks ---- */

void cavm_request_stop(struct cavm *vm, int status)
{
	uint64_t one = 1;
	bool first = false;

	pthread_mutex_lock(&vm->state_lock);
	if (!vm->stopping) {
		vm->stopping = true;
		vm->exit_status = status;
		first = true;
	}
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
	if (!first)
		return;
	if (write(vm->stop_efd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow: already woken */
	}
	cavm_vcpus_kick(vm);
}

int cavm_pause(struct cavm *vm)
{
	int ret = 0;

	pthread_mutex_lock(&vm->state_lock);
	if (vm->stopping) {
		ret = -ESHUTDOWN;
	} else {
		vm->pause_req = true;
		pthread_mutex_unlock(&vm->state_lock);
		cavm_vcpus_kick(vm);
		pthread_mutex_lock(&vm->state_lock);
		while (vm->pause_req && !vm->stopping &&
		       vm->parked < vm->running)
			pthread_cond_wait(&vm->state_cond, &vm->state_lock);
		if (vm->stopping)
			ret = -ESHUTDOWN;
	}
	pthread_mutex_unlock(&vm->state_lock);
	return ret;
}

int cavm_resume(struct cavm *vm)
{
	pthread_mutex_lock(&vm->state_lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
	return 0;
}

bool cavm_paused(struct cavm *vm)
{
	bool p;

	pthread_mutex_lock(&vm->state_lock);
	p = vm->pause_req;
	pthread_mutex_unlock(&vm->state_lock);
	return p;
}

int cavm_at_exit(struct cavm *vm, void (*fn)(void *opaque), void *opaque)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&vm->hook_lock);
	if (vm->nhooks < CAVM_MAX_EXIT_HOOKS) {
		vm->hooks[vm->nhooks++] = (struct cavm_exit_hook){fn, opaque};
		ret = 0;
	}
	pthread_mutex_unlock(&vm->hook_lock);
	return ret;
}

static void run_exit_hooks(struct cavm *vm)
{
	pthread_mutex_lock(&vm->hook_lock);
	while (vm->nhooks > 0) {
		struct cavm_exit_hook h = vm->hooks[--vm->nhooks];

		pthread_mutex_unlock(&vm->hook_lock);
		h.fn(h.opaque);
		pthread_mutex_lock(&vm->hook_lock);
	}
	pthread_mutex_unlock(&vm->hook_lock);
}

/* ---- the VM ---- */

int cavm_create(const struct cavm_config *cfg, struct cavm **out)
{
	struct cavm *vm = calloc(1, sizeof(*vm));
	int ret, v;

	*out = NULL;
	if (!vm)
		return -ENOMEM;
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = -1;
	pthread_rwlock_init(&vm->pio.lock, NULL);
	pthread_rwlock_init(&vm->mmio.lock, NULL);
	pthread_mutex_init(&vm->state_lock, NULL);
	pthread_cond_init(&vm->state_cond, NULL);
	pthread_mutex_init(&vm->msi_lock, NULL);
	pthread_mutex_init(&vm->hook_lock, NULL);
	*out = vm; /* cavm_destroy() undoes a partial create */

	vm->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (vm->stop_efd < 0)
		return -errno;
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		cavm_log(vm, CAVM_LOG_ERROR,
			 "cannot open /dev/kvm: %s (is KVM enabled and are "
			 "you in the kvm group?)",
			 strerror(-ret));
		return ret;
	}
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		cavm_log(vm, CAVM_LOG_ERROR, "KVM API version %d, need %d", v,
			 KVM_API_VERSION);
		return -ENOTSUP;
	}
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
		{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
		{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
		{KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
		{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
		{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
		{KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI"},
		{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
		{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			cavm_log(vm, CAVM_LOG_ERROR,
				 "this kernel's KVM lacks %s", caps[i].name);
			return -ENOTSUP;
		}
	}
	v = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (v <= 0)
		return -EINVAL;
	vm->run_size = (size_t)v;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		cavm_log(vm, CAVM_LOG_ERROR, "KVM_CREATE_VM: %s",
			 strerror(-ret));
		return ret;
	}
	ret = ram_init(vm);
	if (ret < 0)
		return ret;
	ret = irq_init(vm);
	if (ret < 0) {
		cavm_log(vm, CAVM_LOG_ERROR, "cannot set up the irqchip: %s",
			 strerror(-ret));
		return ret;
	}
	return cavm_vcpus_create(vm);
}

int cavm_run(struct cavm *vm)
{
	sigset_t set;
	struct pollfd p[2];
	int sfd, ret;

	/* main() blocked these before any thread existed. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	ret = cavm_vcpus_start(vm);
	if (ret < 0)
		cavm_request_stop(vm, 1);
	p[0] = (struct pollfd){.fd = vm->stop_efd, .events = POLLIN};
	p[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
	for (;;) {
		if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (sfd >= 0 && (p[1].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				cavm_log(vm, CAVM_LOG_INFO,
					 "signal %u: stopping the VM",
					 si.ssi_signo);
				cavm_request_stop(vm, 128 + (int)si.ssi_signo);
			}
		}
	}
	cavm_vcpus_join(vm);
	run_exit_hooks(vm);
	if (sfd >= 0)
		close(sfd);
	return vm->exit_status;
}

void cavm_destroy(struct cavm *vm)
{
	if (!vm)
		return;
	run_exit_hooks(vm); /* a failed setup still closes its disks */
	for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->run_size);
		if (vm->vcpus[i].fd >= 0)
			close(vm->vcpus[i].fd);
	}
	free(vm->vcpus);
	free(vm->cpuid);
	free(vm->routes);
	if (vm->ram)
		munmap(vm->ram, vm->ram_map_bytes);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	pthread_rwlock_destroy(&vm->pio.lock);
	pthread_rwlock_destroy(&vm->mmio.lock);
	pthread_mutex_destroy(&vm->state_lock);
	pthread_cond_destroy(&vm->state_cond);
	pthread_mutex_destroy(&vm->msi_lock);
	pthread_mutex_destroy(&vm->hook_lock);
	free(vm);
}
