/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * server_net.c - blkstored's sockets: listening on unix and TCP
 * addresses, setting up accepted sockets, and receiving and sending
 * whole messages on a connection thread.
 *
 * The one idea: a connection thread blocks in recv()/sendmsg() with a
 * short timeout (SRV_TICK_MS), so it never needs a signal or a second
 * descriptor to learn that the server is stopping: each timeout is a
 * tick at which it looks.  A tick costs nothing while requests flow.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "blkstore/server.h"

#define LISTEN_BACKLOG 128

static int listen_unix(const char *path, int *out, char **unix_path,
		       const char **what)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat stb;
	int fd, rc;

	if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
		*what = "unix socket path is empty or too long (max 107)";
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*what = "socket";
		return -errno;
	}
	if (lstat(path, &stb) == 0) {
		/* A leftover of a server that died is replaced; a socket
		 * somebody answers on, or any other file, is not. */
		if (!S_ISSOCK(stb.st_mode)) {
			*what = "path exists and is not a socket";
			rc = -EEXIST;
			goto fail;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			*what = "another server is listening on this socket";
			rc = -EADDRINUSE;
			goto fail;
		}
		if (errno != ECONNREFUSED) {
			*what = "probing the existing socket";
			rc = -errno;
			goto fail;
		}
		close(fd);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || unlink(path)) {
			*what = "replacing the stale socket";
			rc = -errno;
			goto fail;
		}
	}
	/* Owner only.  umask is process-wide: listeners are set up before
	 * any connection exists and while the store thread is idle. */
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (rc) {
		*what = "bind";
		goto fail;
	}
	if (chmod(path, 0600) || listen(fd, LISTEN_BACKLOG)) {
		rc = -errno;
		*what = "listen";
		unlink(path);
		goto fail;
	}
	*unix_path = strdup(path);
	if (!*unix_path) {
		unlink(path);
		rc = -ENOMEM;
		goto fail;
	}
	*out = fd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return rc;
}

static void addr_words(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "unix");
	}
}

/* "[HOST:]PORT", HOST possibly "[v6]"; an empty or missing HOST is
 * 127.0.0.1: listening beyond this host must be asked for. */
static int parse_hostport(const char *s, char *host, size_t hlen, char *port,
			  size_t plen)
{
	const char *colon;
	snprintf(host, hlen, "127.0.0.1");
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= hlen)
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = 0;
		s = end + 2;
	} else if ((colon = strrchr(s, ':'))) {
		if ((size_t)(colon - s) >= hlen)
			return -EINVAL;
		if (colon > s) {
			memcpy(host, s, (size_t)(colon - s));
			host[colon - s] = 0;
		}
		s = colon + 1;
	}
	if (!*s || strlen(s) >= plen || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	snprintf(port, plen, "%s", s);
	return 0;
}

static int listen_tcp(const char *spec, int *out, char *desc, size_t dlen,
		      const char **what)
{
	char host[256], port[16];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*res, *ai;
	int rc = parse_hostport(spec, host, sizeof(host), port, sizeof(port));
	if (rc) {
		*what = "expected tcp:[HOST:]PORT";
		return rc;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		*what = "cannot resolve the host";
		return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	}
	rc = -EADDRNOTAVAIL;
	*what = "no usable address";
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) ||
		    listen(fd, LISTEN_BACKLOG)) {
			rc = -errno;
			*what = "bind/listen";
			close(fd);
			continue;
		}
		struct sockaddr_storage ss = {0};
		socklen_t sl = sizeof(ss);
		char words[128] = "?";
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			addr_words((struct sockaddr *)&ss, words,
				   sizeof(words));
		snprintf(desc, dlen, "tcp:%s", words);
		*out = fd;
		rc = 0;
		break;
	}
	freeaddrinfo(res);
	return rc;
}

int srv_sock_listen(const char *spec, int *fd, char *desc, size_t dlen,
		    char **unix_path, const char **what)
{
	const char *dummy;
	if (!what)
		what = &dummy;
	*unix_path = NULL;
	if (!strncmp(spec, "unix:", 5)) {
		int rc = listen_unix(spec + 5, fd, unix_path, what);
		if (!rc)
			snprintf(desc, dlen, "%s", spec);
		return rc;
	}
	if (!strncmp(spec, "tcp:", 4))
		return listen_tcp(spec + 4, fd, desc, dlen, what);
	*what = "expected unix:PATH or tcp:[HOST:]PORT";
	return -EINVAL;
}

void srv_sock_accepted(int fd, char *peer, size_t plen)
{
	struct timeval tv = {0, SRV_TICK_MS * 1000};
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		/* Replies are written whole (one sendmsg): no Nagle wait. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		addr_words((struct sockaddr *)&ss, peer, plen);
	} else {
		snprintf(peer, plen, "unix");
	}
}

/* ---- whole messages on a connection thread ---- */

/* A receive or send timed out (one tick): is it time to give up? */
static int tick(struct srv_conn *c, bool idle)
{
	uint64_t now = srv_now_ns();
	uint64_t grace_end = srv_grace_end_ns(c->srv);
	if (c->deadline_ns && now > c->deadline_ns)
		return -ETIMEDOUT;
	if (grace_end) {
		if (idle)
			return -ESHUTDOWN;
		if (now > grace_end)
			return -ETIMEDOUT;
	}
	return 0;
}

int srv_recv(struct srv_conn *c, void *buf, size_t len, bool idle)
{
	uint8_t *p = buf;
	size_t got = 0;
	if (idle && srv_stopping(c->srv))
		return -ESHUTDOWN;
	while (got < len) {
		ssize_t n = recv(c->fd, p + got, len - got, MSG_WAITALL);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -ECONNRESET;
		int rc = tick(c, idle && got == 0);
		if (rc)
			return rc;
	}
	return 0;
}

ssize_t srv_recv_some(struct srv_conn *c, void *buf, size_t len, bool idle,
		      bool wait)
{
	if (wait && idle && srv_stopping(c->srv))
		return -ESHUTDOWN;
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, wait ? 0 : MSG_DONTWAIT);
		if (n > 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -ECONNRESET;
		if (!wait)
			return 0;
		int rc = tick(c, idle);
		if (rc)
			return rc;
	}
}

int srv_discard(struct srv_conn *c, uint64_t len, void *scratch,
		size_t scratch_len)
{
	while (len) {
		size_t n = len < scratch_len ? (size_t)len : scratch_len;
		int rc = srv_recv(c, scratch, n, false);
		if (rc)
			return rc;
		len -= n;
	}
	return 0;
}

int srv_sendv(struct srv_conn *c, struct iovec *iov, int n)
{
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	while (mh.msg_iovlen) {
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -ECONNRESET;
			int rc = tick(c, false);
			if (rc)
				return rc;
			continue;
		}
		size_t done = (size_t)w;
		while (mh.msg_iovlen && done >= mh.msg_iov->iov_len) {
			done -= mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base =
				(uint8_t *)mh.msg_iov->iov_base + done;
			mh.msg_iov->iov_len -= done;
		}
	}
	return 0;
}

int srv_send(struct srv_conn *c, const void *buf, size_t len)
{
	struct iovec iov = {(void *)buf, len};
	return srv_sendv(c, &iov, 1);
}
