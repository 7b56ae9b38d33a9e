/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_job.c - a "blkctl" control request (docs/control.md) run by the
 * process that owns a store: blkstored, or cavm for the stores its disks
 * live in.  Both owners check the request and run it here, so a command
 * behaves the same whoever owns the store.
 *
 * The one idea: blkctl's command functions run unchanged on the owner's
 * store thread, printing to the client's own descriptors (passed with
 * the request), so the output is the offline output by construction; the
 * online-only commands (stats, clients) get the server's figures through
 * struct bc_owner.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "blkstore/server.h"
#include "tools/blkctl.h"

int bc_job_parse(struct bc_job *j, json_object *req, const int *fds,
		 int nfds)
{
	json_object *av, *tty;
	if (nfds < 3)
		return -EBADF; /* stdin, stdout, stderr must come along */
	if (!json_object_object_get_ex(req, "argv", &av) ||
	    !json_object_is_type(av, json_type_array) ||
	    json_object_array_length(av) < 1 ||
	    json_object_array_length(av) > BC_JOB_MAX_ARGV)
		return -EINVAL;
	j->argc = (int)json_object_array_length(av);
	for (int i = 0; i < j->argc; i++) {
		json_object *e = json_object_array_get_idx(av, (size_t)i);
		if (!json_object_is_type(e, json_type_string))
			return -EINVAL;
		j->argv[i] = (char *)json_object_get_string(e);
	}
	j->argv[j->argc] = NULL;
	const struct bc_command *cmd = bc_find_command(j->argv[0]);
	if (cmd && !cmd->online)
		return -EPERM; /* init: never through an owner */
	j->fds = fds;
	j->tty = json_object_object_get_ex(req, "tty", &tty) &&
		 json_object_get_boolean(tty);
	return 0;
}

static int owner_stats(void *ctx, const char *disk, json_object **out)
{
	return iostats_json(srv_iostats(ctx), disk, out);
}

static int owner_clients(void *ctx, json_object **out)
{
	return srv_clients_json(ctx, out);
}

int bc_job_run(bs_store *st, void *arg)
{
	struct bc_job *j = arg;
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
	struct bc_args a = {.owner = &owner, .store = j->store};
	bc_io_set(&io);
	j->status = bc_dispatch(st, j->argc, j->argv, &a, NULL);
	bc_io_set(NULL);
	fclose(out);
	fclose(err);
	return 0;
}
