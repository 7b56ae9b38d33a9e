/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io.c - the port and MMIO handler tables: devices register ranges, vCPU
 * threads dispatch the accesses KVM hands to userspace.
 *
 * The one idea: a guest access KVM cannot finish becomes one call to the
 * handler whose range holds the address, found in a small sorted table;
 * nobody's range means all-ones on a read and nothing on a write.
 *
 * Invariants: ranges in one address space never overlap; each space has a
 * rwlock, read-held while a handler runs, so unregistering waits for the
 * handlers inside that range to return.  A PIO handler may (un)register
 * MMIO ranges (PCI BARs move through config space); an MMIO handler must
 * not touch the MMIO table.
 */
#include <errno.h>
#include <string.h>

#include "hypervisor/vm.h"

static int io_register(struct cavm *vm, struct cavm_io_space *s, uint64_t base,
		       uint64_t len, cavm_io_fn fn, void *opaque)
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
