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

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif

static int do_blkctl(struct srv_conn *c, json_object *req, const int *fds,
		     int nfds, json_object *reply)
{
	struct bc_job j = {.srv = c->srv, .store = srv_options(c->srv)->store};
	int rc = bc_job_parse(&j, req, fds, nfds);
	if (rc)
		return rc;
	srv_clog(c, SRV_INFO, "blkctl %s", j.argv[0]);
	rc = srv_call(c->srv, bc_job_run, &j);
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
