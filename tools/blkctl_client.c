/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_client.c - blkctl's side of the control socket: find the owner
 * of a store and have it run a command (protocol in docs/control.md).
 *
 * The one idea: the owner holds an flock on STORE/lock and writes
 * "control=PATH" into it.  If the lock cannot be taken, somebody owns the
 * store; if the file names a socket, that is where commands go, together
 * with blkctl's stdin, stdout and stderr (SCM_RIGHTS), so the owner's
 * output lands exactly where a local run's would.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools/blkctl.h"

#define CTL_VERSION 1
#define REPLY_MAX 65536

int bc_owner_socket(const char *store, char *path, size_t len)
{
	char lock[PATH_MAX], buf[1024];
	snprintf(lock, sizeof(lock), "%s/lock", store);
	int fd = open(lock, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd); /* nobody holds it: no owner */
		return -ENOENT;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (!strncmp(line, "control=", 8) && line[8]) {
			snprintf(path, len, "%s", line + 8);
			return 0;
		}
	return -ENOENT; /* owned, but with no control socket */
}

/* FILE arguments are opened by the owner: make them absolute. */
static char *absolute(const char *arg)
{
	char cwd[PATH_MAX], *out;
	if (!strcmp(arg, "-") || arg[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return strdup(arg);
	if (asprintf(&out, "%s/%s", cwd, arg) < 0)
		return NULL;
	return out;
}

static int send_request(int sock, const char *line)
{
	int fds[3] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = {(void *)line, strlen(line)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	memset(cbuf, 0, sizeof(cbuf));
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	/* The descriptors ride with the first byte; the rest follows. */
	ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	size_t done = (size_t)n, len = strlen(line);
	while (done < len) {
		n = send(sock, line + done, len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

int bc_forward(const char *store, const char *sock_path, int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char reply[REPLY_MAX];
	size_t got = 0;
	int rc;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return bc_fail_msg("store '%s': control socket path too long",
				   store);
	strcpy(sa.sun_path, sock_path);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		if (sock >= 0)
			close(sock);
		return bc_fail(rc, "store '%s' is owned, but its control socket "
				   "%s does not answer", store, sock_path);
	}

	json_object *req = json_object_new_object();
	json_object *av = json_object_new_array();
	for (int i = 0; i < argc; i++) {
		bool file_arg = i == 2 && (!strcmp(argv[0], "import") ||
					   !strcmp(argv[0], "export"));
		char *v = file_arg ? absolute(argv[i]) : strdup(argv[i]);
		json_object_array_add(av, json_object_new_string(v ? v : ""));
		free(v);
	}
	json_object_object_add(req, "v", json_object_new_int(CTL_VERSION));
	json_object_object_add(req, "id", json_object_new_int(1));
	json_object_object_add(req, "cmd", json_object_new_string("blkctl"));
	json_object_object_add(req, "argv", av);
	/* Which store: an owner of several (cavm) needs to know. */
	char *st_abs = realpath(store, NULL);
	json_object_object_add(req, "store",
			       json_object_new_string(st_abs ? st_abs : store));
	free(st_abs);
	json_object_object_add(req, "tty", json_object_new_boolean(
						   bc_io()->err_tty));
	char *line = NULL;
	if (asprintf(&line, "%s\n",
		     json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) < 0)
		line = NULL;
	json_object_put(req);
	rc = line ? send_request(sock, line) : -ENOMEM;
	free(line);
	if (rc) {
		close(sock);
		return bc_fail(rc, "sending to the owner of '%s'", store);
	}

	/* One reply line, once the command has finished. */
	while (got < sizeof(reply) - 1) {
		ssize_t n = recv(sock, reply + got, sizeof(reply) - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(reply, '\n', got))
			break;
	}
	close(sock);
	reply[got] = 0;
	json_object *r = got ? json_tokener_parse(reply) : NULL, *v;
	int status = -1;
	if (r && json_object_object_get_ex(r, "exit", &v))
		status = json_object_get_int(v);
	else if (r && json_object_object_get_ex(r, "error", &v))
		bc_fail_msg("the owner of '%s' refused: %s", store,
			    json_object_get_string(v));
	else
		bc_fail_msg("no reply from the owner of '%s' (did it stop?)",
			    store);
	json_object_put(r);
	return status < 0 ? BC_EXIT_FAIL : status;
}
