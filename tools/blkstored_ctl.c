/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkstored_ctl.c - what blkstored answers on its control socket
 * (docs/control.md):
 *
 *   "hello"   who serves this store: version, store, pid
 *   "blkctl"  run a blkctl command line on the store this daemon owns,
 *             with the client's stdin/stdout/stderr (three descriptors
 *             passed with the request), and reply with its exit status
 *
 * The one idea: blkctl's command functions (tools/blkctl_cmds.c) run
 * here unchanged, on the store thread, printing to the client's own
 * terminal: the output is the offline output by construction.  The
 * online-only commands (stats, clients) get the server's figures through
 * struct bc_owner.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blkstore/server.h"
#include "tools/blkctl.h"

#define MAX_ARGV 16

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif

static int owner_stats(void *ctx, const char *disk, json_object **out)
{
	return iostats_json(srv_iostats(ctx), disk, out);
}

static int owner_clients(void *ctx, json_object **out)
{
	return srv_clients_json(ctx, out);
}

struct job {
	struct srv *srv;
	int argc;
	char *argv[MAX_ARGV + 1];
	const int *fds;
	bool tty;
	int status;
};

/* On the store thread. */
static int run_job(bs_store *st, void *arg)
{
	struct job *j = arg;
	struct bc_owner owner = {j->srv, owner_stats, owner_clients};
	int ofd = dup(j->fds[1]), efd = dup(j->fds[2]);
	FILE *out = ofd >= 0 ? fdopen(ofd, "w") : NULL;
	FILE *err = efd >= 0 ? fdopen(efd, "w") : NULL;
	if (!out || !err) {
		if (out)
			fclose(out);
		else if (ofd >= 0)
			close(ofd);
		if (err)
			fclose(err);
		else if (efd >= 0)
			close(efd);
		return -EMFILE;
	}
	struct bc_io io = {out, err, j->fds[0], j->fds[1], j->tty};
	struct bc_args a = {.owner = &owner,
			    .store = srv_options(j->srv)->store};
	bc_io_set(&io);
	j->status = bc_dispatch(st, j->argc, j->argv, &a, NULL);
	bc_io_set(NULL);
	fclose(out);
	fclose(err);
	return 0;
}

static int do_blkctl(struct srv_conn *c, json_object *req, const int *fds,
		     int nfds, json_object *reply)
{
	json_object *av, *tty;
	struct job j = {.srv = c->srv, .fds = fds};
	if (nfds < 3)
		return -EBADF; /* stdin, stdout, stderr must come along */
	if (!json_object_object_get_ex(req, "argv", &av) ||
	    !json_object_is_type(av, json_type_array) ||
	    json_object_array_length(av) < 1 ||
	    json_object_array_length(av) > MAX_ARGV)
		return -EINVAL;
	j.argc = (int)json_object_array_length(av);
	for (int i = 0; i < j.argc; i++) {
		json_object *e = json_object_array_get_idx(av, (size_t)i);
		if (!json_object_is_type(e, json_type_string))
			return -EINVAL;
		j.argv[i] = (char *)json_object_get_string(e);
	}
	const struct bc_command *cmd = bc_find_command(j.argv[0]);
	if (cmd && !cmd->online)
		return -EPERM; /* init: never through an owner */
	j.tty = json_object_object_get_ex(req, "tty", &tty) &&
		json_object_get_boolean(tty);
	srv_clog(c, SRV_INFO, "blkctl %s", j.argv[0]);
	int rc = srv_call(c->srv, run_job, &j);
	if (rc)
		return rc;
	json_object_object_add(reply, "exit", json_object_new_int(j.status));
	return 0;
}

int blkstored_ctl(void *ctx, struct srv_conn *c, json_object *req,
		  const int *fds, int nfds, json_object *reply)
{
	json_object *v;
	(void)ctx;
	json_object_object_get_ex(req, "cmd", &v);
	const char *cmd = json_object_get_string(v);
	if (!strcmp(cmd, "hello")) {
		json_object_object_add(reply, "server",
				       json_object_new_string("blkstored"));
		json_object_object_add(reply, "version",
				       json_object_new_string(PACKAGE_VERSION));
		json_object_object_add(reply, "store",
				       json_object_new_string(
					       srv_options(c->srv)->store));
		json_object_object_add(reply, "pid",
				       json_object_new_int64(getpid()));
		return 0;
	}
	if (!strcmp(cmd, "blkctl"))
		return do_blkctl(c, req, fds, nfds, reply);
	return -ENOSYS;
}
