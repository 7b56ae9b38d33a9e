/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vcpu.c - one thread per vCPU: KVM_RUN, the exit dispatch, parking for
 * a pause, leaving on a stop.
 *
 * The one idea: a vCPU is only ever told things through VM state (the
 * pause and stop flags under state_lock) and then kicked out of KVM_RUN:
 * the kicker sets kvm_run.immediate_exit and sends SIGUSR1 to the thread,
 * so a kick that lands just before KVM_RUN is not lost (KVM returns EINTR
 * at once) and one that lands inside it interrupts it.  The thread clears
 * immediate_exit and re-reads the flags before it enters again.
 *
 * Invariants: a vCPU thread never holds state_lock inside KVM_RUN or a
 * handler; exits KVM cannot explain (internal error, failed entry, triple
 * fault) stop the VM with status 1 and a register dump, never a crash.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hypervisor/vm.h"

#define KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig; /* only here so the signal interrupts KVM_RUN */
}

int cavm_vcpus_create(struct cavm *vm)
{
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	int ret;

	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 1;
	if (vm->cfg.ncpus == 0 || vm->cfg.ncpus > (unsigned)max ||
	    vm->cfg.ncpus > CAVM_MAX_CPUS) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "%u vCPUs asked, this host allows 1 to %u",
			 vm->cfg.ncpus,
			 (unsigned)max < CAVM_MAX_CPUS ? (unsigned)max
						       : CAVM_MAX_CPUS);
		return -EINVAL;
	}
	vm->vcpus = calloc(vm->cfg.ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->cfg.ncpus; i++)
		vm->vcpus[i].fd = -1;
	vm->ncpus = vm->cfg.ncpus;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct cavm_vcpu *c = &vm->vcpus[i];

		c->vm = vm;
		c->id = i;
		c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (c->fd < 0) {
			ret = -errno;
			cavm_log(vm, CAVM_LOG_ERROR, "KVM_CREATE_VCPU %u: %s",
				 i, strerror(-ret));
			return ret;
		}
		c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE,
			      MAP_SHARED, c->fd, 0);
		if (c->run == MAP_FAILED) {
			c->run = NULL;
			return -errno;
		}
		ret = cavm_cpu_init(vm, c);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The guest did something no one can continue from: say what and where. */
static void fatal_exit(struct cavm_vcpu *c, const char *what)
{
	cavm_log(c->vm, CAVM_LOG_ERROR, "vCPU %u: %s", c->id, what);
	cavm_cpu_dump(c->vm, c);
	cavm_request_stop(c->vm, 1);
}

/* Handle one exit; false when the thread must leave. */
static bool handle_exit(struct cavm_vcpu *c)
{
	struct cavm *vm = c->vm;
	struct kvm_run *r = c->run;
	char msg[128];

	switch (r->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *data = (uint8_t *)r + r->io.data_offset;

		for (uint32_t i = 0; i < r->io.count; i++) {
			cavm_io_dispatch(vm, true, r->io.port, data, r->io.size,
					 r->io.direction == KVM_EXIT_IO_OUT);
			data += r->io.size;
		}
		return true;
	}
	case KVM_EXIT_MMIO:
		cavm_io_dispatch(vm, false, r->mmio.phys_addr, r->mmio.data,
				 r->mmio.len, r->mmio.is_write);
		return true;
	case KVM_EXIT_HLT: /* only without an in-kernel LAPIC */
		return true;
	case KVM_EXIT_SHUTDOWN:
		fatal_exit(c, "triple fault (KVM_EXIT_SHUTDOWN)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(msg, sizeof(msg),
			 "VM entry failed, hardware reason 0x%llx",
			 (unsigned long long)
				 r->fail_entry.hardware_entry_failure_reason);
		fatal_exit(c, msg);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(msg, sizeof(msg), "KVM internal error, suberror %u",
			 r->internal.suberror);
		fatal_exit(c, msg);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		cavm_log(vm, CAVM_LOG_INFO, "guest system event %u: stopping",
			 r->system_event.type);
		cavm_request_stop(vm, 0);
		return false;
	default:
		snprintf(msg, sizeof(msg), "unhandled exit reason %u",
			 r->exit_reason);
		fatal_exit(c, msg);
		return false;
	}
}

/* Wait while a pause is asked; true when the thread must leave. */
static bool park(struct cavm_vcpu *c)
{
	struct cavm *vm = c->vm;
	bool stop;

	pthread_mutex_lock(&vm->state_lock);
	while (vm->pause_req && !vm->stopping) {
		vm->parked++;
		pthread_cond_broadcast(&vm->state_cond);
		pthread_cond_wait(&vm->state_cond, &vm->state_lock);
		vm->parked--;
	}
	stop = vm->stopping;
	pthread_mutex_unlock(&vm->state_lock);
	return stop;
}

static void *vcpu_main(void *arg)
{
	struct cavm_vcpu *c = arg;
	struct cavm *vm = c->vm;
	bool first = c->id == 0;

	for (;;) {
		if (park(c))
			break;
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			int e = errno;

			__atomic_store_n(&c->run->immediate_exit, 0,
					 __ATOMIC_SEQ_CST);
			if (e == EINTR || e == EAGAIN)
				continue;
			cavm_log(vm, CAVM_LOG_ERROR, "vCPU %u: KVM_RUN: %s",
				 c->id, strerror(e));
			cavm_request_stop(vm, 1);
			break;
		}
		if (first) {
			/* The boot vCPU's first exit: the guest has run. */
			first = false;
			cavm_log(vm, CAVM_LOG_DEBUG,
				 "first guest exit %.3f ms after start",
				 (double)(cavm_now_ns() - vm->t_start_ns) /
					 1e6);
		}
		if (!handle_exit(c))
			break;
	}
	pthread_mutex_lock(&vm->state_lock);
	vm->running--;
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
	return NULL;
}

int cavm_vcpus_start(struct cavm *vm)
{
	struct sigaction sa;
	sigset_t set;
	int ret;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN gets EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct cavm_vcpu *c = &vm->vcpus[i];

		pthread_mutex_lock(&vm->state_lock);
		vm->running++;
		pthread_mutex_unlock(&vm->state_lock);
		ret = pthread_create(&c->thread, NULL, vcpu_main, c);
		if (ret != 0) {
			pthread_mutex_lock(&vm->state_lock);
			vm->running--;
			pthread_mutex_unlock(&vm->state_lock);
			cavm_log(vm, CAVM_LOG_ERROR,
				 "cannot start vCPU thread %u: %s", i,
				 strerror(ret));
			return -ret;
		}
		__atomic_store_n(&c->started, true, __ATOMIC_RELEASE);
	}
	return 0;
}

void cavm_vcpus_kick(struct cavm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct cavm_vcpu *c = &vm->vcpus[i];

		if (!__atomic_load_n(&c->started, __ATOMIC_ACQUIRE))
			continue;
		__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(c->thread, KICK_SIGNAL);
	}
}

void cavm_vcpus_join(struct cavm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct cavm_vcpu *c = &vm->vcpus[i];

		if (!c->started)
			continue;
		pthread_join(c->thread, NULL);
		c->started = false;
	}
}
