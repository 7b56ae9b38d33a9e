/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kvm.c - one VM: the KVM file descriptors, guest RAM, logging, pause and
 * resume, and the stop/exit-hook sequence.  The vCPU threads are vcpu.c,
 * interrupts irq.c, the port/MMIO handler tables io.c.
 *
 * The one idea: the VM ends one way only.  Whoever wants it to end calls
 * cavm_request_stop(); the main thread, waiting in cavm_run(), then joins
 * the vCPU threads and runs the exit hooks, so devices flush their disks
 * with no vCPU left to touch them.
 *
 * Invariants: guest RAM is [0, min(mem, 3 GiB)) plus [4 GiB, ...) and
 * nothing else; exit hooks run exactly once, after every vCPU thread has
 * returned (or on a failed setup, from cavm_destroy()).
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
		names[level < 0   ? 0
		      : level > 3 ? 3
				  : level],
		line);
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
	ret = cavm_irq_init(vm);
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
