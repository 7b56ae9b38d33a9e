/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * serial.c - an 8250/16550A UART at 0x3f8 (COM1, IRQ 4): the guest's
 * console.  Output goes to stdout or a file; with stdout, stdin is the
 * input (a terminal is put in non-canonical, no-echo mode and restored at
 * exit; Ctrl-C still stops cavm, which flushes disks).
 *
 * The one idea: transmission is instant, so THR is always empty and the
 * transmitter interrupt is pending whenever it is enabled and has not
 * been acknowledged by reading IIR; received bytes wait in a 16-byte
 * FIFO filled by an input thread that blocks while the FIFO is full.
 * Registers: RBR/THR, IER, IIR/FCR, LCR, MCR (loopback, OUT2 gates the
 * IRQ as on a PC), LSR, MSR, SCR, and the divisor latch behind LCR.DLAB.
 *
 * Invariants: all state under one mutex; the IRQ line is driven only when
 * its level changes; nothing the guest writes can block the input thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "hypervisor/vm.h"

#define COM1_BASE 0x3f8
#define COM1_IRQ 4
#define FIFO_SIZE 16

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

struct serial {
	struct cavm *vm;
	pthread_mutex_t lock;
	pthread_cond_t room;
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thri_pending;
	int irq_level;
	uint8_t rx[FIFO_SIZE];
	unsigned rx_head, rx_count;

	int out_fd;
	bool own_out;
	bool input, quit, have_thread, tty_saved;
	int quit_efd;
	pthread_t thread;
	struct termios saved;
};

static uint8_t iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_count > 0)
		return fifo | IIR_RDI;
	if ((s->ier & IER_THRI) && s->thri_pending)
		return fifo | IIR_THRI;
	return fifo | IIR_NONE;
}

static void update_irq(struct serial *s)
{
	int level = !(iir(s) & IIR_NONE) && (s->mcr & MCR_OUT2);

	if (level != s->irq_level) {
		s->irq_level = level;
		cavm_irq_line(s->vm, COM1_IRQ, level);
	}
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_count < FIFO_SIZE) {
		s->rx[(s->rx_head + s->rx_count) % FIFO_SIZE] = c;
		s->rx_count++;
	}
}

static uint8_t rx_pop(struct serial *s)
{
	uint8_t c = 0;

	if (s->rx_count > 0) {
		c = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % FIFO_SIZE;
		s->rx_count--;
		pthread_cond_signal(&s->room);
	}
	return c;
}

static void write_out(struct serial *s, uint8_t c)
{
	while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static uint8_t reg_read(struct serial *s, unsigned reg)
{
	bool dlab = s->lcr & LCR_DLAB;
	uint8_t v;

	switch (reg) {
	case 0:
		return dlab ? s->dll : rx_pop(s);
	case 1:
		return dlab ? s->dlm : s->ier;
	case 2:
		v = iir(s);
		if ((v & 0x0f) == IIR_THRI)
			s->thri_pending = false; /* reading IIR acknowledges */
		return v;
	case 3:
		return s->lcr;
	case 4:
		return s->mcr;
	case 5:
		return (s->rx_count ? LSR_DR : 0) | LSR_THRE | LSR_TEMT;
	case 6:
		if (s->mcr & MCR_LOOP) /* outputs wired back to inputs */
			return (uint8_t)(((s->mcr & 0x02) << 3) |
					 ((s->mcr & 0x01) << 5) |
					 ((s->mcr & 0x04) << 4) |
					 ((s->mcr & 0x08) << 4));
		return 0xb0; /* DCD, DSR, CTS */
	default:
		return s->scr;
	}
}

static void reg_write(struct serial *s, unsigned reg, uint8_t v)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (reg) {
	case 0:
		if (dlab) {
			s->dll = v;
		} else if (s->mcr & MCR_LOOP) {
			rx_push(s, v);
			s->thri_pending = true;
		} else {
			write_out(s, v);
			s->thri_pending = true;
		}
		break;
	case 1:
		if (dlab) {
			s->dlm = v;
		} else {
			/* enabling THRI with THR empty raises it */
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->thri_pending = true;
			s->ier = v & 0x0f;
		}
		break;
	case 2:
		s->fcr = v & (FCR_ENABLE | 0xc0);
		if (v & FCR_CLEAR_RX) {
			s->rx_count = 0;
			pthread_cond_signal(&s->room);
		}
		break;
	case 3:
		s->lcr = v;
		break;
	case 4:
		s->mcr = v & 0x1f;
		break;
	case 7:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

static void serial_io(void *opaque, uint64_t off, uint8_t *data, unsigned len,
		      bool is_write)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	/* Byte registers: a wider access touches consecutive ones. */
	for (unsigned i = 0; i < len && off + i < 8; i++) {
		if (is_write)
			reg_write(s, (unsigned)off + i, data[i]);
		else
			data[i] = reg_read(s, (unsigned)off + i);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void *input_main(void *arg)
{
	struct serial *s = arg;
	struct pollfd p[2] = {
		{.fd = STDIN_FILENO, .events = POLLIN},
		{.fd = s->quit_efd, .events = POLLIN},
	};
	uint8_t buf[FIFO_SIZE];

	for (;;) {
		unsigned room;
		ssize_t n;
		bool quit;

		pthread_mutex_lock(&s->lock);
		while (!s->quit && s->rx_count == FIFO_SIZE)
			pthread_cond_wait(&s->room, &s->lock);
		room = FIFO_SIZE - s->rx_count;
		quit = s->quit;
		pthread_mutex_unlock(&s->lock);
		if (quit)
			break;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		n = read(STDIN_FILENO, buf, room);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break; /* end of input: the guest just sees none */
		pthread_mutex_lock(&s->lock);
		for (ssize_t i = 0; i < n; i++)
			rx_push(s, buf[i]);
		update_irq(s);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

static void serial_exit(void *opaque)
{
	struct serial *s = opaque;
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_broadcast(&s->room);
	pthread_mutex_unlock(&s->lock);
	if (s->have_thread) {
		if (write(s->quit_efd, &one, sizeof(one)) < 0) {
			/* cannot fail short of overflow */
		}
		pthread_join(s->thread, NULL);
	}
	if (s->tty_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &s->saved);
	if (s->own_out)
		close(s->out_fd);
	if (s->quit_efd >= 0)
		close(s->quit_efd);
	pthread_cond_destroy(&s->room);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void raw_tty(struct serial *s)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &s->saved) < 0)
		return;
	t = s->saved;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
	t.c_iflag &= ~(tcflag_t)(ICRNL | IXON);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		s->tty_saved = true;
}

int cavm_serial_init(struct cavm *vm, const struct cavm_serial_opts *o)
{
	struct serial *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->quit_efd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->room, NULL);
	s->out_fd = STDOUT_FILENO;
	if (o->out_path) {
		s->out_fd =
			open(o->out_path,
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->out_fd < 0) {
			ret = -errno;
			cavm_log(vm, CAVM_LOG_ERROR, "serial output %s: %s",
				 o->out_path, strerror(-ret));
			serial_exit(s);
			return ret;
		}
		s->own_out = true;
	} else {
		/* A terminal we do not own (cavm started with &) would stop
		 * the whole process on the first read (SIGTTIN): no input. */
		s->input = !isatty(STDIN_FILENO) ||
			   tcgetpgrp(STDIN_FILENO) == getpgrp();
		if (!s->input)
			cavm_log(vm, CAVM_LOG_INFO,
				 "serial: in the background, no console input");
	}
	ret = cavm_pio_register(vm, COM1_BASE, 8, serial_io, s);
	if (ret < 0) {
		serial_exit(s);
		return ret;
	}
	/* From here on the exit hook owns s. */
	ret = cavm_at_exit(vm, serial_exit, s);
	if (ret < 0)
		return ret;
	if (s->input) {
		s->quit_efd = eventfd(0, EFD_CLOEXEC);
		if (s->quit_efd < 0)
			return -errno;
		raw_tty(s);
		ret = pthread_create(&s->thread, NULL, input_main, s);
		if (ret != 0)
			return -ret;
		s->have_thread = true;
	}
	return 0;
}
