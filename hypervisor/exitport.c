/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * exitport.c - the test exit port: a guest `out` to port 0xf4 ends cavm
 * with exit status (value & 0xff), after the usual stop sequence (vCPUs
 * stopped, disks flushed).  The test guest (test/guest/) ends every run
 * this way; docs/hypervisor.md documents it for guest authors.
 *
 * The one idea: ending is a request like any other stop, so it is as
 * clean as a control-socket `stop`; the first request wins.  Any access
 * width works; the value is the little-endian bytes written.  Reads
 * return all-ones, as from an empty port.
 */
#include <string.h>

#include "hypervisor/vm.h"

#define EXIT_PORT 0xf4

static void exitport_io(void *opaque, uint64_t off, uint8_t *data, unsigned len,
			bool is_write)
{
	struct cavm *vm = opaque;
	uint32_t v = 0;

	(void)off;
	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	cavm_log(vm, CAVM_LOG_DEBUG, "exit port: guest wrote 0x%x", v);
	cavm_request_stop(vm, (int)(v & 0xff));
}

int cavm_exitport_init(struct cavm *vm)
{
	return cavm_pio_register(vm, EXIT_PORT, 1, exitport_io, vm);
}
