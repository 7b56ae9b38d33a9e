/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * server.c - blkstored's machinery: the store thread and its work queue,
 * listening sockets, one thread per connection, graceful shutdown, and
 * the socket helpers every protocol uses.  NBD lives in nbd*.c.
 *
 * How the work is split, and why:
 *
 * - The store thread is the only thread that ever touches the bs_store
 *   and its bs_disks (blkstore.h: "used by one thread at a time").  It
 *   pops closures (struct srv_work: fn(store, arg)) off one FIFO queue
 *   and runs them in order.  Because every disk operation of every
 *   connection passes through this one ordered queue, a write that was
 *   acknowledged on any connection is in the shared in-memory map before
 *   anything queued after it runs, and a flush from any connection
 *   (bs_disk_flush: a store-wide group commit) covers it.  That is the
 *   whole multi-connection consistency argument (docs/nbd.md).
 *
 * - Each connection has its own thread: it parses its protocol, receives
 *   payloads into its own buffer, queues a closure naming that buffer
 *   (srv_call) and sleeps until the store thread has run it, then sends
 *   the reply.  A slow or stalled client therefore blocks only its own
 *   thread.
 *
 * - No lock is ever held around socket I/O or around a disk operation.
 *   The one mutex (qmu) guards only the queue's links and the completion
 *   flags, for a few instructions at a time.  The store thread does no
 *   socket I/O at all, and a connection thread does no store calls, so
 *   there is nothing to lock around either: ownership, not locking,
 *   keeps the store single-threaded.  Buffers are handed over through the
 *   queue (the mutex gives the happens-before), never shared at once.
 *
 * - Later, chunk reads and hashing can move onto connection threads
 *   (cas_get and cas_prepare are thread-safe): the store thread would
 *   then only resolve block names and apply prepared puts.  The queue
 *   does not change; only what a closure does.
 *
 * Shutdown: the main thread's srv_run() stops accepting, raises
 * 'stopping', and waits.  Connection threads notice at their next idle
 * point (sockets have a short receive timeout, SRV_TICK_MS, so a blocked
 * receive wakes up to look) and leave; one in the middle of a request
 * finishes it first.  After SRV_GRACE_MS the remaining sockets are shut
 * down under them.  Only then does the store thread stop, and the store
 * is flushed and closed.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "blkstore/server.h"

#define SRV_MAX_LISTEN 16

struct listener {
	int fd;
	const char *proto;
	srv_conn_fn fn;
	char desc[160];
	char *unix_path; /* to remove at exit */
};

struct conn_slot {
	struct srv_conn c; /* first: a srv_conn * is a conn_slot * */
	srv_conn_fn fn;
	pthread_t thread;
	bool dead;
	struct conn_slot *next;
};

struct srv {
	struct srv_options opt;
	bs_store *st;

	/* the store thread's queue */
	pthread_t store_thread;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct srv_work *qhead, *qtail;
	bool qstop;

	struct listener lst[SRV_MAX_LISTEN];
	int nlst;

	/* connections */
	pthread_mutex_t cmu;
	struct conn_slot *conns;
	unsigned nconns, next_id;
	int reapfd; /* eventfd: a connection thread has finished */

	atomic_bool stopping;
	uint64_t stop_ns;
	struct iostats *stats;
};

/* ---- logging ---- */

static const char *level_name[] = {"error", "warn", "info", "debug"};

bool srv_log_enabled(const struct srv *s, enum srv_level level)
{
	return level <= (s ? s->opt.log_level : SRV_INFO);
}

static void vlog(const struct srv *s, enum srv_level level, const char *pfx,
		 const char *fmt, va_list ap)
{
	char line[1024];
	if (!srv_log_enabled(s, level))
		return;
	int n = snprintf(line, sizeof(line), "%s: %s: %s",
			 s && s->opt.log_name ? s->opt.log_name : "blkstored",
			 level_name[level], pfx);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	/* One write per line: lines of different threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void srv_log(const struct srv *s, enum srv_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(s, level, "", fmt, ap);
	va_end(ap);
}

void srv_clog(const struct srv_conn *c, enum srv_level level, const char *fmt,
	      ...)
{
	char pfx[128];
	va_list ap;
	snprintf(pfx, sizeof(pfx), "%s conn %u (%s): ", c->proto, c->id,
		 c->peer);
	va_start(ap, fmt);
	vlog(c->srv, level, pfx, fmt, ap);
	va_end(ap);
}

uint64_t srv_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the store thread ---- */

static void *store_main(void *arg)
{
	struct srv *s = arg;
	pthread_mutex_lock(&s->qmu);
	for (;;) {
		while (!s->qhead && !s->qstop)
			pthread_cond_wait(&s->qcv, &s->qmu);
		struct srv_work *w = s->qhead;
		if (!w)
			break; /* stopping and drained */
		s->qhead = s->qtail = NULL;
		pthread_mutex_unlock(&s->qmu);
		while (w) {
			/* complete() may free w: take the link first. */
			struct srv_work *next = w->next;
			w->rc = w->fn(s->st, w->arg);
			w->complete(w);
			w = next;
		}
		pthread_mutex_lock(&s->qmu);
	}
	pthread_mutex_unlock(&s->qmu);
	return NULL;
}

void srv_submit(struct srv *s, struct srv_work *w)
{
	w->next = NULL;
	pthread_mutex_lock(&s->qmu);
	if (s->qtail)
		s->qtail->next = w;
	else
		s->qhead = w;
	s->qtail = w;
	pthread_cond_signal(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
}

struct call_wait {
	struct srv *s;
	pthread_cond_t cv;
	bool done;
};

static void call_done(struct srv_work *w)
{
	struct call_wait *cw = w->priv;
	/* Signalled under the mutex: once the waiter sees 'done' the store
	 * thread has let go of cw, so the waiter may destroy it. */
	pthread_mutex_lock(&cw->s->qmu);
	cw->done = true;
	pthread_cond_signal(&cw->cv);
	pthread_mutex_unlock(&cw->s->qmu);
}

int srv_call(struct srv *s, srv_fn fn, void *arg)
{
	struct call_wait cw = {.s = s};
	struct srv_work w = {
		.fn = fn, .arg = arg, .complete = call_done, .priv = &cw};
	pthread_cond_init(&cw.cv, NULL);
	srv_submit(s, &w);
	pthread_mutex_lock(&s->qmu);
	while (!cw.done)
		pthread_cond_wait(&cw.cv, &s->qmu);
	pthread_mutex_unlock(&s->qmu);
	pthread_cond_destroy(&cw.cv);
	return w.rc;
}

/* ---- create / destroy ---- */

int srv_create(const struct srv_options *o, struct srv **out)
{
	struct srv *s = calloc(1, sizeof(*s));
	int rc;
	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->opt = *o;
	if (!s->opt.max_conns)
		s->opt.max_conns = SRV_MAX_CONNS_DEFAULT;
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	pthread_mutex_init(&s->cmu, NULL);
	s->reapfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->reapfd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = iostats_create(&s->stats);
	if (rc)
		goto fail;
	rc = bs_store_open(o->store, o->have_store_opts ? &o->store_opts : NULL,
			   &s->st);
	if (rc)
		goto fail;
	rc = -pthread_create(&s->store_thread, NULL, store_main, s);
	if (rc) {
		bs_store_close(s->st);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->reapfd >= 0)
		close(s->reapfd);
	iostats_destroy(s->stats);
	free(s);
	return rc;
}

void srv_conn_set_export(struct srv_conn *c, const char *name)
{
	pthread_mutex_lock(&c->srv->cmu);
	snprintf(c->export_name, sizeof(c->export_name), "%s", name);
	pthread_mutex_unlock(&c->srv->cmu);
}

struct iostats *srv_iostats(struct srv *s)
{
	return s->stats;
}

int srv_clients_json(struct srv *s, json_object **out)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	uint64_t now = srv_now_ns();
	pthread_mutex_lock(&s->cmu);
	for (struct conn_slot *cs = s->conns; cs; cs = cs->next) {
		const struct srv_conn *c = &cs->c;
		json_object *e = json_object_new_object();
		json_object_object_add(e, "id", json_object_new_int64(c->id));
		json_object_object_add(e, "proto", json_object_new_string(c->proto));
		json_object_object_add(e, "peer", json_object_new_string(c->peer));
		json_object_object_add(e, "export",
				       json_object_new_string(c->export_name));
		json_object_object_add(e, "requests",
				       json_object_new_int64((int64_t)c->requests));
		json_object_object_add(e, "connected_s",
				       json_object_new_int64((int64_t)((now - c->start_ns) / 1000000000ull)));
		json_object_array_add(arr, e);
	}
	pthread_mutex_unlock(&s->cmu);
	json_object_object_add(o, "clients", arr);
	*out = o;
	return 0;
}

const struct srv_options *srv_options(const struct srv *s)
{
	return &s->opt;
}

bool srv_stopping(const struct srv *s)
{
	return atomic_load(&s->stopping);
}

static void close_listeners(struct srv *s)
{
	for (int i = 0; i < s->nlst; i++) {
		struct listener *l = &s->lst[i];
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
		if (l->unix_path) {
			unlink(l->unix_path);
			free(l->unix_path);
			l->unix_path = NULL;
		}
	}
}

int srv_destroy(struct srv *s)
{
	if (!s)
		return 0;
	pthread_mutex_lock(&s->qmu);
	s->qstop = true;
	pthread_cond_signal(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	pthread_join(s->store_thread, NULL);
	/* The store is this thread's now: flush (to report its result on
	 * its own), then close, which commits once more (a no-op). */
	int rc = bs_store_flush(s->st);
	if (rc)
		srv_log(s, SRV_ERROR, "final flush of %s failed: %s",
			s->opt.store, bs_strerror(rc));
	int rc2 = bs_store_close(s->st);
	if (rc2)
		srv_log(s, SRV_ERROR, "closing %s failed: %s", s->opt.store,
			bs_strerror(rc2));
	close_listeners(s);
	close(s->reapfd);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	pthread_mutex_destroy(&s->cmu);
	iostats_destroy(s->stats);
	free(s);
	return rc ? rc : rc2;
}

uint64_t srv_grace_end_ns(const struct srv *s)
{
	if (!srv_stopping(s))
		return 0;
	return s->stop_ns + SRV_GRACE_MS * 1000000ull;
}

/* ---- listeners ---- */

int srv_listen(struct srv *s, const char *spec, const char *proto,
	       srv_conn_fn fn, const char **what)
{
	const char *dummy;
	if (!what)
		what = &dummy;
	if (s->nlst == SRV_MAX_LISTEN) {
		*what = "too many listeners";
		return -EMFILE;
	}
	struct listener *l = &s->lst[s->nlst];
	int rc = srv_sock_listen(spec, &l->fd, l->desc, sizeof(l->desc),
				 &l->unix_path, what);
	if (rc)
		return rc;
	l->proto = proto;
	l->fn = fn;
	s->nlst++;
	srv_log(s, SRV_INFO, "%s: listening on %s", proto, l->desc);
	return 0;
}

/* ---- connections ---- */

static void *conn_main(void *arg)
{
	struct conn_slot *cs = arg;
	struct srv *s = cs->c.srv;
	uint64_t one = 1;
	cs->fn(&cs->c);
	/* The fd stays open until srv_run has joined this thread, so a
	 * forced shutdown() can never hit a reused descriptor. */
	pthread_mutex_lock(&s->cmu);
	cs->dead = true;
	pthread_mutex_unlock(&s->cmu);
	ssize_t w = write(s->reapfd, &one, sizeof(one));
	(void)w;
	return NULL;
}

/* Join and free every finished connection thread. */
static void reap(struct srv *s)
{
	struct conn_slot *dead = NULL;
	uint64_t v;
	ssize_t r = read(s->reapfd, &v, sizeof(v));
	(void)r;
	pthread_mutex_lock(&s->cmu);
	for (struct conn_slot **p = &s->conns; *p;) {
		struct conn_slot *cs = *p;
		if (cs->dead) {
			*p = cs->next;
			cs->next = dead;
			dead = cs;
			s->nconns--;
		} else {
			p = &cs->next;
		}
	}
	pthread_mutex_unlock(&s->cmu);
	while (dead) {
		struct conn_slot *cs = dead;
		dead = cs->next;
		pthread_join(cs->thread, NULL);
		srv_clog(&cs->c, SRV_DEBUG, "closed");
		close(cs->c.fd);
		free(cs);
	}
}

static void accept_one(struct srv *s, struct listener *l)
{
	int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
		    errno == ENOBUFS) {
			srv_log(s, SRV_WARN, "%s: accept on %s: %s", l->proto,
				l->desc, strerror(errno));
			poll(NULL, 0, 100); /* let connections finish */
		}
		return;
	}
	struct conn_slot *cs = calloc(1, sizeof(*cs));
	if (!cs || s->nconns >= s->opt.max_conns) {
		srv_log(s, SRV_WARN, "%s: refusing a connection on %s: %s",
			l->proto, l->desc,
			cs ? "too many connections" : "out of memory");
		free(cs);
		close(fd);
		return;
	}
	cs->c.srv = s;
	cs->c.fd = fd;
	cs->c.id = ++s->next_id;
	cs->c.start_ns = srv_now_ns();
	cs->c.proto = l->proto;
	cs->fn = l->fn;
	srv_sock_accepted(fd, cs->c.peer, sizeof(cs->c.peer));

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	pthread_mutex_lock(&s->cmu);
	int rc = pthread_create(&cs->thread, &attr, conn_main, cs);
	if (!rc) {
		cs->next = s->conns;
		s->conns = cs;
		s->nconns++;
	}
	pthread_mutex_unlock(&s->cmu);
	pthread_attr_destroy(&attr);
	if (rc) {
		srv_log(s, SRV_WARN, "%s: no thread for a connection: %s",
			l->proto, strerror(rc));
		close(fd);
		free(cs);
		return;
	}
	srv_clog(&cs->c, SRV_DEBUG, "accepted on %s", l->desc);
}

/* Cut off every connection still running (grace period over). */
static void force_close(struct srv *s)
{
	pthread_mutex_lock(&s->cmu);
	for (struct conn_slot *cs = s->conns; cs; cs = cs->next)
		if (!cs->dead) {
			srv_clog(&cs->c, SRV_WARN,
				 "still busy after the grace period: cut off");
			shutdown(cs->c.fd, SHUT_RDWR);
		}
	pthread_mutex_unlock(&s->cmu);
}

static void drain(struct srv *s)
{
	bool forced = false;
	reap(s);
	if (s->nconns)
		srv_log(s, SRV_INFO, "stopping: waiting for %u connection(s)",
			s->nconns);
	while (s->nconns) {
		uint64_t now = srv_now_ns(), end = srv_grace_end_ns(s);
		int ms = now < end ? (int)((end - now) / 1000000) + 1 : 1000;
		struct pollfd p = {s->reapfd, POLLIN, 0};
		if (poll(&p, 1, ms) == 0 && !forced) {
			force_close(s);
			forced = true;
		}
		reap(s);
	}
}

int srv_run(struct srv *s, int stop_fd)
{
	struct pollfd p[SRV_MAX_LISTEN + 2];
	int rc = 0;
	for (;;) {
		int n = 0;
		p[n++] = (struct pollfd){stop_fd, POLLIN, 0};
		p[n++] = (struct pollfd){s->reapfd, POLLIN, 0};
		for (int i = 0; i < s->nlst; i++)
			p[n++] = (struct pollfd){s->lst[i].fd, POLLIN, 0};
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			srv_log(s, SRV_ERROR, "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents)
			reap(s);
		for (int i = 0; i < s->nlst; i++)
			if (p[2 + i].revents)
				accept_one(s, &s->lst[i]);
	}
	/* Stop accepting first, then let the connections wind down. */
	srv_log(s, SRV_INFO, "stopping: no new connections");
	s->stop_ns = srv_now_ns();
	atomic_store(&s->stopping, true);
	close_listeners(s);
	drain(s);
	return rc;
}
