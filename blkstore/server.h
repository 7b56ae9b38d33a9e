/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * server.h - the pieces of blkstored: logging, the store thread and its
 * work queue, listening sockets and connection threads.  Internal to
 * blkstore/ and tools/blkstored.c; blkstore.h stays the store's contract.
 *
 * The one idea: the store (blkstore.h) is single-threaded, so exactly one
 * thread, the store thread, ever calls it.  Everything else (accepting,
 * parsing a protocol, socket I/O) runs on other threads, which hand the
 * store thread small closures (srv_call) and wait for their result.
 * server.c explains why no lock is held around socket I/O.
 */
#ifndef CAVM_BLKSTORE_SERVER_H
#define CAVM_BLKSTORE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <json-c/json.h>

#include "blkstore/blkstore.h"

/* ---- logging: one line per message on stderr, safe from any thread ---- */
enum srv_level {
	SRV_ERROR,
	SRV_WARN,
	SRV_INFO,
	SRV_DEBUG
};

struct srv;
struct srv_conn;

/* s may be NULL (before the server exists: level INFO). */
void srv_log(const struct srv *s, enum srv_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, prefixed with the connection's protocol, number and peer. */
void srv_clog(const struct srv_conn *c, enum srv_level level, const char *fmt,
	      ...) __attribute__((format(printf, 3, 4)));
bool srv_log_enabled(const struct srv *s, enum srv_level level);

/* ---- the server ---- */
struct srv_options {
	const char *store;          /* store directory */
	enum srv_level log_level;   /* SRV_INFO, or SRV_DEBUG with -v */
	const char *log_name;       /* log lines start "NAME: " (NULL:
				       "blkstored") */
	unsigned max_conns;         /* 0: SRV_MAX_CONNS_DEFAULT */
	const char *default_export; /* NBD export "" means this; NULL: none */
	struct bs_store_options store_opts; /* io_engine etc.; zero: defaults */
	bool have_store_opts;
	/* The control protocol's commands (ctl.c): run on the connection's
	 * thread with the request, the descriptors it carried, and a reply
	 * object to fill; returns 0 or a blkstore error (sent as "error"). */
	int (*ctl_fn)(void *ctx, struct srv_conn *c, json_object *req,
		      const int *fds, int nfds, json_object *reply);
	void *ctl_ctx;
};
#define SRV_MAX_CONNS_DEFAULT 256u

/* Open the store (bs_store_open: its lock keeps a second owner out) and
 * start the store thread.  Errors are blkstore codes (bs_strerror). */
int srv_create(const struct srv_options *o, struct srv **out);
const struct srv_options *srv_options(const struct srv *s);

/* A protocol's connection handler: runs on the connection's own thread,
 * returns when the connection is finished (the server closes the fd). */
typedef void (*srv_conn_fn)(struct srv_conn *c);

/*
 * Listen on "unix:PATH" (socket mode 0600, removed at exit; a stale
 * socket nobody answers on is replaced) or "tcp:[HOST:]PORT" (HOST
 * defaults to 127.0.0.1; [v6] in brackets; PORT 0 picks a free one).
 * 'proto' names the protocol in logs ("nbd").  Errors: -errno; *what
 * (may be NULL) gets a static description of the step that failed.
 */
int srv_listen(struct srv *s, const char *spec, const char *proto,
	       srv_conn_fn fn, const char **what);
/*
 * Accept connections until stop_fd becomes readable (a signalfd, say),
 * then shut down gracefully: stop accepting, let every connection finish
 * the request it is in (up to SRV_GRACE_MS, then cut it off), wait for
 * every connection thread.  Returns 0, or -errno if polling failed.
 */
#define SRV_GRACE_MS 10000
int srv_run(struct srv *s, int stop_fd);

/* Stop the store thread, bs_store_flush + bs_store_close, remove the
 * unix sockets, free everything.  Returns the flush/close result. */
int srv_destroy(struct srv *s);

/* Who is connected: {"clients":[{"id","proto","peer","export",
 * "requests","connected_s"}]}. */
int srv_clients_json(struct srv *s, json_object **out);
/* Name what a connection serves (shown by srv_clients_json). */
void srv_conn_set_export(struct srv_conn *c, const char *name);
/* The server's per-disk I/O statistics. */
struct iostats *srv_iostats(struct srv *s);

/* Kinds of disk operation, for per-disk statistics (iostats.c). */
enum srv_op {
	SRV_OP_READ,
	SRV_OP_WRITE,
	SRV_OP_FLUSH,
	SRV_OP_TRIM,
	SRV_OP_ZERO,
	SRV_OP_OTHER, /* block status, cache */
	SRV_OP_COUNT
};

/* ---- the store thread ---- */
/*
 * A closure for the store thread: fn(store, arg).  srv_call() queues it
 * and waits for its result; it is the only way any thread but the store
 * thread reaches the bs_store and its disks.  srv_submit() queues without
 * waiting: w->complete(w) then runs on the store thread (keep it short,
 * never socket I/O) once fn has returned, with w->rc set.
 */
typedef int (*srv_fn)(bs_store *st, void *arg);
struct srv_work {
	srv_fn fn;
	void *arg;
	void (*complete)(struct srv_work *w);
	void *priv;
	int rc;
	struct srv_work *next; /* the queue's */
};
int srv_call(struct srv *s, srv_fn fn, void *arg);
void srv_submit(struct srv *s, struct srv_work *w);

/* ---- connections ---- */
struct srv_conn {
	struct srv *srv;
	int fd;
	unsigned id;
	const char *proto;
	char peer[80];        /* "unix" or "ADDR:PORT" */
	uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0: none.  Receiving past it
				 fails with -ETIMEDOUT (handshake limits). */
	uint64_t start_ns;
	char export_name[BS_SPEC_MAX]; /* what it serves ("" none yet) */
	_Atomic uint64_t requests;
};

uint64_t srv_now_ns(void);

/*
 * Receive exactly len bytes.  'idle' says nothing of the current message
 * has been read yet: there, a server that is stopping ends the connection
 * (-ESHUTDOWN) instead of waiting for a new request.  Otherwise a
 * stopping server waits up to its grace period for the rest.
 * Returns 0, -ECONNRESET (peer closed or failed: a short read is a
 * dropped client), -ESHUTDOWN, or -ETIMEDOUT.
 */
int srv_recv(struct srv_conn *c, void *buf, size_t len, bool idle);
/*
 * Receive whatever has arrived, up to len bytes, for a reader that
 * buffers a stream: with 'wait', at least one byte (waiting as srv_recv
 * does, 'idle' meaning the same); without, possibly none.  Returns the
 * byte count (0 only without 'wait'), -ECONNRESET, -ESHUTDOWN or
 * -ETIMEDOUT.
 */
ssize_t srv_recv_some(struct srv_conn *c, void *buf, size_t len, bool idle,
		      bool wait);
/* Read and throw away len bytes (an oversized payload), same results. */
int srv_discard(struct srv_conn *c, uint64_t len, void *scratch,
		size_t scratch_len);
/* Send every byte of iov[0..n) (sendmsg, MSG_NOSIGNAL; iov is consumed).
 * Returns 0, -ECONNRESET, or -ETIMEDOUT (stopping and the peer does not
 * read). */
int srv_sendv(struct srv_conn *c, struct iovec *iov, int n);
int srv_send(struct srv_conn *c, const void *buf, size_t len);

bool srv_stopping(const struct srv *s);
/* When a stopping server cuts connections off (0: not stopping). */
uint64_t srv_grace_end_ns(const struct srv *s);

/* ---- server_net.c: the sockets themselves ---- */
/* Bind and listen as srv_listen() describes; *fd, *desc (as bound) and
 * *unix_path (malloc'ed, NULL for TCP) are set on success. */
int srv_sock_listen(const char *spec, int *fd, char *desc, size_t dlen,
		    char **unix_path, const char **what);
/* A freshly accepted socket: receive/send ticks, TCP_NODELAY; its peer's
 * address in words. */
void srv_sock_accepted(int fd, char *peer, size_t plen);
#define SRV_TICK_MS 250

/* ---- iostats.c ---- */
struct iostats;
struct iostat;
int iostats_create(struct iostats **out);
void iostats_destroy(struct iostats *t);
/* The entry of a disk (created on first use; lives as long as t). */
struct iostat *iostats_get(struct iostats *t, const char *disk);
/* Lock-free: a few atomic adds. */
void iostat_record(struct iostat *e, enum srv_op op, uint64_t bytes,
		   uint64_t ns, bool failed);
/* {"uptime_s":..,"disks":[...]} of every disk, or of one. */
int iostats_json(struct iostats *t, const char *disk, json_object **out);

/* ---- protocols ---- */
/* The control socket (ctl.c, docs/control.md): JSON lines. */
void ctl_conn_main(struct srv_conn *c);
/* NBD (blkstore/nbd.c, docs/nbd.md): one connection, handshake to end. */
void nbd_conn_main(struct srv_conn *c);

#endif
