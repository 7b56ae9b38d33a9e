/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl.c - the control socket's protocol: newline-delimited JSON requests
 * and replies, each with a protocol version (docs/control.md).
 *
 *   -> {"v":1,"id":7,"cmd":"blkctl","argv":["list","--json"],"tty":false}
 *   <- {"v":1,"id":7,"exit":0}
 *
 * The one idea: this file only frames and checks; what a command does is
 * the program's (srv_options.ctl_fn), so the daemon can run blkctl's own
 * command functions.  A request may carry file descriptors (SCM_RIGHTS,
 * attached to its first byte): blkctl passes its stdin, stdout and stderr
 * so that a command's output goes exactly where a local run's would.
 * Every request gets one reply line; a malformed one gets an "error"
 * reply and the connection goes on (only a line too long to be a request
 * ends it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blkstore/server.h"

#define CTL_VERSION 1
#define CTL_LINE_MAX 65536
#define CTL_MAX_FDS 8

struct ctl_in {
	char buf[CTL_LINE_MAX];
	size_t len;
	int fds[CTL_MAX_FDS];
	int nfds;
};

static void close_fds(struct ctl_in *in)
{
	for (int i = 0; i < in->nfds; i++)
		close(in->fds[i]);
	in->nfds = 0;
}

/* Receive more bytes (and any descriptors).  0, or < 0: connection over. */
static int ctl_recv(struct srv_conn *c, struct ctl_in *in, bool idle)
{
	char cbuf[CMSG_SPACE(CTL_MAX_FDS * sizeof(int))];
	for (;;) {
		struct iovec iov = {in->buf + in->len, sizeof(in->buf) - in->len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == EINTR)) {
			/* A receive tick: leave if the server is stopping
			 * and we are between requests. */
			if (srv_stopping(c->srv) && idle)
				return -ESHUTDOWN;
			continue;
		}
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
				       sizeof(int));
				if (in->nfds < CTL_MAX_FDS)
					in->fds[in->nfds++] = fd;
				else
					close(fd);
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			srv_clog(c, SRV_WARN, "descriptors cut off");
		in->len += (size_t)n;
		return 0;
	}
}

static int send_reply(struct srv_conn *c, json_object *reply)
{
	const char *s = json_object_to_json_string_ext(reply,
						       JSON_C_TO_STRING_PLAIN);
	struct iovec iov[2] = {{(void *)s, strlen(s)}, {(void *)"\n", 1}};
	return srv_sendv(c, iov, 2);
}

static void handle(struct srv_conn *c, const char *line, struct ctl_in *in)
{
	const struct srv_options *o = srv_options(c->srv);
	json_object *reply = json_object_new_object(), *v, *id = NULL;
	json_object *req = json_tokener_parse(line);
	int rc = 0;

	json_object_object_add(reply, "v", json_object_new_int(CTL_VERSION));
	if (!req || !json_object_is_type(req, json_type_object)) {
		json_object_object_add(reply, "error",
				       json_object_new_string("not a JSON object"));
		goto out;
	}
	if (json_object_object_get_ex(req, "id", &id))
		json_object_object_add(reply, "id", json_object_get(id));
	if (!json_object_object_get_ex(req, "v", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    json_object_get_int(v) != CTL_VERSION) {
		json_object_object_add(reply, "error",
				       json_object_new_string(
					       "unsupported protocol version "
					       "(this server speaks 1)"));
		goto out;
	}
	if (!json_object_object_get_ex(req, "cmd", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_object_add(reply, "error",
				       json_object_new_string("no \"cmd\""));
		goto out;
	}
	srv_clog(c, SRV_DEBUG, "request %s", json_object_get_string(v));
	rc = o->ctl_fn ? o->ctl_fn(o->ctl_ctx, c, req, in->fds, in->nfds, reply)
		       : -ENOSYS;
	if (rc) {
		json_object_object_add(reply, "error",
				       json_object_new_string(
					       rc == -ENOSYS ? "unknown command"
							     : bs_strerror(rc)));
		json_object_object_add(reply, "code", json_object_new_int(rc));
	}
out:
	c->requests++;
	if (send_reply(c, reply))
		srv_clog(c, SRV_DEBUG, "could not send the reply");
	json_object_put(reply);
	json_object_put(req);
}

void ctl_conn_main(struct srv_conn *c)
{
	struct ctl_in *in = calloc(1, sizeof(*in));
	if (!in)
		return;
	for (;;) {
		char *nl = memchr(in->buf, '\n', in->len);
		if (!nl) {
			if (in->len == sizeof(in->buf)) {
				srv_clog(c, SRV_WARN, "request line over %d "
						      "bytes: dropped",
					 CTL_LINE_MAX);
				break;
			}
			if (ctl_recv(c, in, in->len == 0))
				break;
			continue;
		}
		*nl = 0;
		handle(c, in->buf, in);
		close_fds(in); /* descriptors belong to one request */
		size_t used = (size_t)(nl - in->buf) + 1;
		memmove(in->buf, nl + 1, in->len - used);
		in->len -= used;
	}
	close_fds(in);
	free(in);
}
