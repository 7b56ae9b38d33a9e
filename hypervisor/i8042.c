/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * i8042.c - just enough of the PC keyboard controller (ports 0x60, 0x64)
 * for Linux to probe it quietly and for `reboot=k`: command 0xFE (pulse
 * the reset line) ends cavm cleanly, exit status 0, disks flushed.
 *
 * The one idea: a controller with no keyboard and no mouse attached.  The
 * controller commands Linux's i8042 driver uses (read/write the command
 * byte, self tests, port enable/disable, write output port) answer as a
 * real one does; bytes sent to a device get no answer, so the driver
 * decides no device is there.  Output-port writes that clear bit 0 reset
 * the machine as well, as on a PC.
 *
 * Invariants: state under one mutex; the output buffer holds at most a
 * few bytes; nothing a guest writes can fail other than by resetting.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "hypervisor/vm.h"

#define DATA_PORT 0x60
#define CMD_PORT 0x64

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08

struct i8042 {
	struct cavm *vm;
	pthread_mutex_t lock;
	uint8_t ctr;     /* the command byte */
	uint8_t pending; /* a command waiting for its data byte, or 0 */
	uint8_t out[4];
	unsigned nout;
	bool last_was_cmd;
};

static void push(struct i8042 *k, uint8_t v)
{
	if (k->nout < sizeof(k->out))
		k->out[k->nout++] = v;
}

static void command(struct i8042 *k, uint8_t c)
{
	switch (c) {
	case 0x20: /* read command byte */
		push(k, k->ctr);
		break;
	case 0x60: /* write command byte */
	case 0xd1: /* write output port */
	case 0xd2: /* write keyboard output buffer */
	case 0xd3: /* write aux output buffer */
	case 0xd4: /* write to aux device */
		k->pending = c;
		break;
	case 0xa7: /* disable aux */
		k->ctr |= 0x20;
		break;
	case 0xa8: /* enable aux */
		k->ctr &= (uint8_t)~0x20;
		break;
	case 0xa9: /* aux interface test: ok */
	case 0xab: /* keyboard interface test: ok */
		push(k, 0x00);
		break;
	case 0xaa: /* controller self test */
		push(k, 0x55);
		break;
	case 0xad: /* disable keyboard */
		k->ctr |= 0x10;
		break;
	case 0xae: /* enable keyboard */
		k->ctr &= (uint8_t)~0x10;
		break;
	case 0xfe: /* pulse reset */
		cavm_log(k->vm, CAVM_LOG_INFO, "guest reset (i8042)");
		cavm_request_stop(k->vm, 0);
		break;
	default: /* other pulses and vendor commands: ignored */
		break;
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t c = k->pending;

	k->pending = 0;
	switch (c) {
	case 0x60:
		k->ctr = v;
		break;
	case 0xd1:
		if (!(v & 0x01)) {
			cavm_log(k->vm, CAVM_LOG_INFO,
				 "guest reset (i8042 output port)");
			cavm_request_stop(k->vm, 0);
		}
		break;
	case 0xd2:
	case 0xd3:
		push(k, v);
		break;
	default: /* to a device (0xd4 or none): nobody answers */
		break;
	}
}

static void i8042_io(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		     bool is_write)
{
	struct i8042 *k = opaque;
	uint16_t port = (uint16_t)(off == 0 ? DATA_PORT : CMD_PORT);

	pthread_mutex_lock(&k->lock);
	if (is_write) {
		if (port == CMD_PORT)
			command(k, data[0]);
		else
			data_write(k, data[0]);
		k->last_was_cmd = port == CMD_PORT;
	} else if (port == CMD_PORT) {
		data[0] = (uint8_t)((k->nout ? ST_OBF : 0) | ST_SYS |
				    (k->last_was_cmd ? ST_CMD : 0));
	} else {
		data[0] = k->nout ? k->out[0] : 0;
		if (k->nout) {
			for (unsigned i = 1; i < k->nout; i++)
				k->out[i - 1] = k->out[i];
			k->nout--;
		}
	}
	for (unsigned i = 1; !is_write && i < len; i++)
		data[i] = 0xff;
	pthread_mutex_unlock(&k->lock);
}

/* The two ports are 4 apart: one handler per port, 'off' says which. */
static void data_io(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		    bool is_write)
{
	(void)off;
	i8042_io(opaque, 0, data, len, is_write);
}

static void cmd_io(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		   bool is_write)
{
	(void)off;
	i8042_io(opaque, 4, data, len, is_write);
}

static void i8042_free(void *opaque)
{
	struct i8042 *k = opaque;

	pthread_mutex_destroy(&k->lock);
	free(k);
}

int cavm_i8042_init(struct cavm *vm)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int ret;

	if (!k)
		return -ENOMEM;
	k->vm = vm;
	k->ctr = 0x30; /* interrupts off, both ports disabled */
	pthread_mutex_init(&k->lock, NULL);
	ret = cavm_at_exit(vm, i8042_free, k);
	if (ret < 0) {
		i8042_free(k);
		return ret;
	}
	ret = cavm_pio_register(vm, DATA_PORT, 1, data_io, k);
	if (ret == 0)
		ret = cavm_pio_register(vm, CMD_PORT, 1, cmd_io, k);
	return ret;
}
