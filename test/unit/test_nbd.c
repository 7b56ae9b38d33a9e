/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_nbd.c - pins blkstore/server*.c and nbd*.c below the daemon: the
 * store thread's queue (order, many callers), the listening sockets'
 * rules (mode 0600, stale sockets replaced, live ones and other files
 * refused, address syntax), and one NBD connection driven over a
 * socketpair byte by byte against a real store (handshake, write, FUA,
 * read with a hole chunk, block status, errors, disconnect).
 *
 * The real peers (qemu, libnbd, fio) are test/integration/nbd_*.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cmocka.h>

#include "blkstore/nbd_int.h"
#include "test/unit/test_util.h"

struct fix {
	char *dir;
	char store[4200];
	struct srv *s;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct srv_options o = {.log_level = SRV_WARN};
	bs_store *st;
	f->dir = tu_mkdtemp("test_nbd");
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	assert_int_equal(bs_store_create(f->store, NULL), 0);
	assert_int_equal(bs_store_open(f->store, NULL, &st), 0);
	assert_int_equal(bs_disk_create(st, "d", 1 << 20), 0);
	assert_int_equal(bs_snapshot(st, "d", "s"), 0);
	assert_int_equal(bs_store_close(st), 0);
	o.store = f->store;
	assert_int_equal(srv_create(&o, &f->s), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	assert_int_equal(srv_destroy(f->s), 0);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- the store thread ---- */

struct order {
	int last[8];
	int bad;
	pthread_t owner; /* every closure must run on one thread */
	int calls;
};
struct order_arg {
	struct order *o;
	int who, seq;
};

static int record(bs_store *st, void *arg)
{
	struct order_arg *a = arg;
	assert_non_null(st);
	if (!a->o->calls++)
		a->o->owner = pthread_self();
	else if (!pthread_equal(a->o->owner, pthread_self()))
		a->o->bad++;
	if (a->o->last[a->who] != a->seq - 1)
		a->o->bad++; /* one caller's calls ran out of order */
	a->o->last[a->who] = a->seq;
	return a->seq;
}

struct caller {
	struct srv *s;
	struct order *o;
	int who;
};

static void *call_many(void *arg)
{
	struct caller *c = arg;
	for (int i = 1; i <= 500; i++) {
		struct order_arg a = {c->o, c->who, i};
		if (srv_call(c->s, record, &a) != i)
			c->o->bad++;
	}
	return NULL;
}

static void test_store_thread_order(void **state)
{
	struct fix *f = *state;
	struct order o = {0};
	pthread_t t[8];
	struct caller c[8];
	for (int i = 0; i < 8; i++) {
		c[i] = (struct caller){f->s, &o, i};
		pthread_create(&t[i], NULL, call_many, &c[i]);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(o.bad, 0);
	assert_int_equal(o.calls, 8 * 500);
	assert_false(pthread_equal(o.owner, pthread_self()));
}

/* ---- listening sockets ---- */

static void test_listen_rules(void **state)
{
	struct fix *f = *state;
	char path[4300], desc[160], *up;
	const char *what;
	struct stat st;
	int fd, fd2;

	snprintf(path, sizeof(path), "unix:%s/a.sock", f->dir);
	assert_int_equal(
		srv_sock_listen(path, &fd, desc, sizeof(desc), &up, &what), 0);
	assert_int_equal(stat(up, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(up);
	/* Somebody listens: refused.  Nobody does (stale): replaced. */
	assert_int_equal(
		srv_sock_listen(path, &fd2, desc, sizeof(desc), &up, &what),
		-EADDRINUSE);
	close(fd);
	assert_int_equal(
		srv_sock_listen(path, &fd2, desc, sizeof(desc), &up, &what), 0);
	close(fd2);
	free(up);
	/* Not a socket: never removed. */
	snprintf(path, sizeof(path), "%s/file", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	snprintf(path, sizeof(path), "unix:%s/file", f->dir);
	assert_int_equal(
		srv_sock_listen(path, &fd, desc, sizeof(desc), &up, &what),
		-EEXIST);
	/* Address syntax. */
	const char *bad[] = {"tcp:",  "tcp:x", "tcp:127.0.0.1:", "tcp:[::1]",
			     "udp:1", "unix:", "tcp:1:2:x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(srv_sock_listen(bad[i], &fd, desc,
						     sizeof(desc), &up, &what),
				     0);
	assert_int_equal(
		srv_sock_listen("tcp:0", &fd, desc, sizeof(desc), &up, &what),
		0);
	assert_non_null(strstr(desc, "tcp:127.0.0.1:"));
	assert_null(up);
	close(fd);
}

/* ---- one NBD connection over a socketpair ---- */

struct peer {
	struct srv_conn sc;
	pthread_t t;
};

static void *serve(void *arg)
{
	nbd_conn_main(arg);
	return NULL;
}

static void xsend(int fd, const void *b, size_t n)
{
	assert_int_equal(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void xrecv(int fd, void *b, size_t n)
{
	if (n == 0)
		return; /* recv() of nothing would wait for data */
	assert_int_equal(recv(fd, b, n, MSG_WAITALL), (ssize_t)n);
}

static void opt(int fd, uint32_t o, const void *d, uint32_t len)
{
	uint8_t h[16];
	nbd_put64(h, NBD_IHAVEOPT);
	nbd_put32(h + 8, o);
	nbd_put32(h + 12, len);
	xsend(fd, h, 16);
	if (len)
		xsend(fd, d, len);
}

/* Read option replies up to the final one; returns its type. */
static uint32_t opt_final(int fd, uint64_t *size, uint16_t *flags)
{
	for (;;) {
		uint8_t h[20], d[512];
		xrecv(fd, h, 20);
		assert_true(nbd_get64(h) == NBD_REP_MAGIC);
		uint32_t type = nbd_get32(h + 12), len = nbd_get32(h + 16);
		assert_true(len <= sizeof(d));
		xrecv(fd, d, len);
		if (type == NBD_REP_INFO && nbd_get16(d) == NBD_INFO_EXPORT) {
			*size = nbd_get64(d + 2);
			*flags = nbd_get16(d + 10);
		}
		if (type != NBD_REP_INFO && type != NBD_REP_META_CONTEXT &&
		    type != NBD_REP_SERVER)
			return type;
	}
}

static void request(int fd, uint16_t type, uint16_t flags, uint64_t off,
		    uint32_t len)
{
	uint8_t h[28];
	nbd_put32(h, NBD_REQUEST_MAGIC);
	nbd_put16(h + 4, flags);
	nbd_put16(h + 6, type);
	nbd_put64(h + 8, 0x1234);
	nbd_put64(h + 16, off);
	nbd_put32(h + 24, len);
	xsend(fd, h, 28);
}

/* One structured chunk: its type and flags, payload into p. */
static uint16_t chunk(int fd, uint8_t *p, uint32_t *len, uint16_t *flags)
{
	uint8_t h[20];
	xrecv(fd, h, 16);
	if (nbd_get32(h) == NBD_SIMPLE_REPLY_MAGIC) {
		assert_true(nbd_get64(h + 8) == 0x1234);
		*len = nbd_get32(h + 4); /* the error, for a simple reply */
		return 0xffff;
	}
	xrecv(fd, h + 16, 4);
	assert_true(nbd_get32(h) == NBD_STRUCTURED_REPLY_MAGIC);
	assert_true(nbd_get64(h + 8) == 0x1234);
	*flags = nbd_get16(h + 4);
	*len = nbd_get32(h + 16);
	xrecv(fd, p, *len);
	return nbd_get16(h + 6);
}

static void test_nbd_session(void **state)
{
	struct fix *f = *state;
	static uint8_t data[65536], got[70000];
	struct peer p = {.sc = {.srv = f->s, .proto = "nbd", .peer = "test"}};
	int sv[2];
	uint8_t h[18], d[64];
	uint64_t size = 0;
	uint16_t tflags = 0, cflags;
	uint32_t len;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p.sc.fd = sv[1];
	pthread_create(&p.t, NULL, serve, &p.sc);

	xrecv(sv[0], h, 18);
	assert_true(nbd_get64(h) == NBD_MAGIC &&
		    nbd_get64(h + 8) == NBD_IHAVEOPT);
	nbd_put32(d, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	xsend(sv[0], d, 4);
	opt(sv[0], 77, "junk", 4);
	assert_true(opt_final(sv[0], &size, &tflags) == NBD_REP_ERR_UNSUP);
	opt(sv[0], NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	assert_true(opt_final(sv[0], &size, &tflags) == NBD_REP_ACK);
	/* SET_META_CONTEXT d: base:allocation */
	nbd_put32(d, 1);
	d[4] = 'd';
	nbd_put32(d + 5, 1);
	nbd_put32(d + 9, 15);
	memcpy(d + 13, "base:allocation", 15);
	opt(sv[0], NBD_OPT_SET_META_CONTEXT, d, 28);
	assert_true(opt_final(sv[0], &size, &tflags) == NBD_REP_ACK);
	nbd_put32(d, 1);
	d[4] = 'd';
	nbd_put16(d + 5, 0);
	opt(sv[0], NBD_OPT_GO, d, 7);
	assert_true(opt_final(sv[0], &size, &tflags) == NBD_REP_ACK);
	assert_true(size == 1 << 20);
	cflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		 NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
		 NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_DF;
	assert_true((tflags & cflags) == cflags);
	assert_false(tflags & NBD_FLAG_READ_ONLY);

	/* FUA write of 64 KiB at 128 KiB (the rest stays holes). */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	request(sv[0], NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 128 << 10, 65536);
	xsend(sv[0], data, sizeof(data));
	assert_int_equal(chunk(sv[0], got, &len, &cflags), 0xffff);
	assert_int_equal(len, 0);

	/* Read 0..192 KiB: a hole chunk for 0..128 KiB, then the data. */
	request(sv[0], NBD_CMD_READ, 0, 0, 192 << 10);
	bool hole = false, done = false;
	memset(got, 0xee, sizeof(got));
	static uint8_t all[192 << 10];
	while (!done) {
		uint16_t t = chunk(sv[0], got, &len, &cflags);
		done = cflags & NBD_REPLY_FLAG_DONE;
		if (t == NBD_REPLY_TYPE_OFFSET_HOLE) {
			hole = true;
			assert_true(nbd_get64(got) == 0);
			assert_int_equal(nbd_get32(got + 8), 128 << 10);
			memset(all, 0, 128 << 10);
		} else {
			assert_int_equal(t, NBD_REPLY_TYPE_OFFSET_DATA);
			uint64_t off = nbd_get64(got);
			memcpy(all + off, got + 8, len - 8);
		}
	}
	assert_true(hole);
	assert_memory_equal(all + (128 << 10), data, sizeof(data));

	/* Block status: hole+zero, data, hole+zero. */
	request(sv[0], NBD_CMD_BLOCK_STATUS, 0, 0, 1 << 20);
	assert_int_equal(chunk(sv[0], got, &len, &cflags),
			 NBD_REPLY_TYPE_BLOCK_STATUS);
	assert_int_equal(len, 4 + 3 * 8);
	assert_int_equal(nbd_get32(got), NBD_META_ID);
	assert_int_equal(nbd_get32(got + 4), 128 << 10);
	assert_int_equal(nbd_get32(got + 8), NBD_STATE_HOLE | NBD_STATE_ZERO);
	assert_int_equal(nbd_get32(got + 12), 64 << 10);
	assert_int_equal(nbd_get32(got + 16), 0);

	/* Errors keep the stream in step. */
	request(sv[0], NBD_CMD_READ, 0, 1 << 20, 1);
	assert_int_equal(chunk(sv[0], got, &len, &cflags),
			 NBD_REPLY_TYPE_ERROR);
	assert_int_equal(nbd_get32(got), NBD_EINVAL);
	request(sv[0], NBD_CMD_WRITE, 0, (1 << 20) - 8, 16);
	xsend(sv[0], data, 16);
	assert_int_equal(chunk(sv[0], got, &len, &cflags),
			 NBD_REPLY_TYPE_ERROR);
	assert_int_equal(nbd_get32(got), NBD_ENOSPC);
	request(sv[0], 99, 0, 0, 0);
	assert_int_equal(chunk(sv[0], got, &len, &cflags),
			 NBD_REPLY_TYPE_ERROR);
	assert_int_equal(nbd_get32(got), NBD_EINVAL);
	request(sv[0], NBD_CMD_FLUSH, 0, 0, 0);
	assert_int_equal(chunk(sv[0], got, &len, &cflags), 0xffff);
	assert_int_equal(len, 0);

	request(sv[0], NBD_CMD_DISC, 0, 0, 0);
	pthread_join(p.t, NULL); /* the server side ended by itself */
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_thread_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_listen_rules, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nbd_session, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
