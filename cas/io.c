/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io.c - the I/O engine under segment files: io_uring (liburing), Linux
 * AIO (libaio), or plain pread/pwrite, chosen when the store opens.
 *
 * The one idea: the store's callers are synchronous (a get returns its
 * chunk), so every engine offers the same three synchronous calls, and
 * what differs is how the kernel is asked.  Each thread that does I/O
 * gets its own io_uring or AIO context on first use (freed when the
 * thread exits), so readers never share a submission queue or a lock.
 * If io_uring cannot be set up (an old kernel, a seccomp filter, a
 * container that forbids it), the store falls back to libaio, then to
 * pread/pwrite, and says so (cas_io_engine()).
 */
#include <errno.h>
#include <libaio.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "cas/cas_int.h"

#define RING_DEPTH 8

struct io_thread {
	int kind; /* CAS_IO_URING or CAS_IO_LIBAIO once set up, else -1 */
	pid_t pid; /* a child after fork() must not use its parent's ring */
	struct io_uring ring;
	io_context_t aio;
};

static pthread_once_t io_once = PTHREAD_ONCE_INIT;
static pthread_key_t io_key;

static void io_thread_free(void *p)
{
	struct io_thread *t = p;
	if (t->kind == CAS_IO_URING)
		io_uring_queue_exit(&t->ring);
	else if (t->kind == CAS_IO_LIBAIO)
		io_destroy(t->aio);
	free(t);
}

static void io_init_once(void)
{
	pthread_key_create(&io_key, io_thread_free);
}

/* This thread's context for engine 'kind', or NULL if it cannot be had. */
static struct io_thread *io_thread(int kind)
{
	pthread_once(&io_once, io_init_once);
	struct io_thread *t = pthread_getspecific(io_key);
	if (t && t->kind == kind && t->pid == getpid())
		return t;
	if (t) { /* another engine on this thread, or inherited by fork */
		io_thread_free(t);
		pthread_setspecific(io_key, NULL);
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->kind = -1;
	if (kind == CAS_IO_URING && io_uring_queue_init(RING_DEPTH, &t->ring, 0) == 0)
		t->kind = kind;
	else if (kind == CAS_IO_LIBAIO && io_setup(RING_DEPTH, &t->aio) == 0)
		t->kind = kind;
	if (t->kind < 0) {
		free(t);
		return NULL;
	}
	t->pid = getpid();
	pthread_setspecific(io_key, t);
	return t;
}

int cas_io_probe(int want)
{
	for (int kind = want; kind < CAS_IO_SYNC; kind++)
		if (io_thread(kind))
			return kind;
	return CAS_IO_SYNC;
}

static ssize_t uring_rw(struct io_thread *t, bool wr, int fd, void *buf,
			size_t len, uint64_t off)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	struct io_uring_cqe *cqe;
	if (!sqe)
		return -EBUSY;
	if (wr)
		io_uring_prep_write(sqe, fd, buf, (unsigned)len, off);
	else
		io_uring_prep_read(sqe, fd, buf, (unsigned)len, off);
	int rc = io_uring_submit_and_wait(&t->ring, 1);
	if (rc < 0)
		return rc;
	rc = io_uring_wait_cqe(&t->ring, &cqe);
	if (rc < 0)
		return rc;
	ssize_t res = cqe->res;
	io_uring_cqe_seen(&t->ring, cqe);
	return res;
}

static ssize_t aio_rw(struct io_thread *t, bool wr, int fd, void *buf,
		      size_t len, uint64_t off)
{
	struct iocb cb, *cbs[1] = {&cb};
	struct io_event ev;
	if (wr)
		io_prep_pwrite(&cb, fd, buf, len, (long long)off);
	else
		io_prep_pread(&cb, fd, buf, len, (long long)off);
	int rc = io_submit(t->aio, 1, cbs);
	if (rc != 1)
		return rc < 0 ? rc : -EIO;
	do
		rc = io_getevents(t->aio, 1, 1, &ev, NULL);
	while (rc == -EINTR);
	if (rc != 1)
		return rc < 0 ? rc : -EIO;
	return (ssize_t)(long)ev.res;
}

/* One transfer of up to len bytes; like pread/pwrite but -errno. */
static ssize_t io_once_rw(int engine, bool wr, int fd, void *buf, size_t len,
			  uint64_t off)
{
	struct io_thread *t = engine == CAS_IO_SYNC ? NULL : io_thread(engine);
	if (t && engine == CAS_IO_URING)
		return uring_rw(t, wr, fd, buf, len, off);
	if (t && engine == CAS_IO_LIBAIO)
		return aio_rw(t, wr, fd, buf, len, off);
	ssize_t n = wr ? pwrite(fd, buf, len, (off_t)off)
		       : pread(fd, buf, len, (off_t)off);
	return n < 0 ? -errno : n;
}

/* Every byte, through short transfers and interruptions. */
static int io_all(int engine, bool wr, int fd, uint8_t *buf, size_t len,
		  uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = io_once_rw(engine, wr, fd, buf + done, len - done,
				       off + done);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO; /* a read past the end of the file */
		done += (size_t)n;
	}
	return 0;
}

int cas_io_read(int engine, int fd, void *buf, size_t len, uint64_t off)
{
	return io_all(engine, false, fd, buf, len, off);
}

int cas_io_write(int engine, int fd, const void *buf, size_t len, uint64_t off)
{
	return io_all(engine, true, fd, (uint8_t *)buf, len, off);
}

#define FSYNC_TAG 0xf5f5f5f5ull

int cas_io_fsync_begin(int engine, int fd)
{
	struct io_thread *t = engine == CAS_IO_URING ? io_thread(engine) : NULL;
	struct io_uring_sqe *sqe = t ? io_uring_get_sqe(&t->ring) : NULL;
	if (sqe) {
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, FSYNC_TAG);
		if (io_uring_submit(&t->ring) == 1)
			return 1;
	}
	return fdatasync(fd) ? -errno : 0;
}

int cas_io_fsync_end(int engine)
{
	struct io_thread *t = io_thread(engine);
	struct io_uring_cqe *cqe;
	if (!t || engine != CAS_IO_URING)
		return -EINVAL;
	for (;;) {
		int rc = io_uring_wait_cqe(&t->ring, &cqe);
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			return rc;
		bool mine = io_uring_cqe_get_data64(cqe) == FSYNC_TAG;
		int res = cqe->res;
		io_uring_cqe_seen(&t->ring, cqe);
		if (mine)
			return res < 0 ? res : 0;
	}
}

const char *cas_io_engine_name(int engine)
{
	switch (engine) {
	case CAS_IO_URING:
		return "io_uring";
	case CAS_IO_LIBAIO:
		return "libaio";
	default:
		return "sync";
	}
}
