/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl.c - the admin CLI of a cavm store: main().
 *
 *   blkctl [-S STORE] COMMAND [ARGS...] [--json] ...
 *
 * The one idea: the same commands, wherever the store lives.  With no
 * owner, blkctl opens the store itself (its lock keeps others out) and
 * runs the command (blkctl_cmds.c).  When the store is owned (blkstored,
 * or an embedded cavm), opening fails with CAS_ELOCKED and the lock file
 * names the owner's control socket: blkctl sends the command line there
 * with its own stdin, stdout and stderr (blkctl_client.c), the owner runs
 * the very same command function on its store, printing straight to
 * blkctl's terminal, and blkctl exits with the command's status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/blkctl.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif

int main(int argc, char **argv)
{
	struct bc_args a = {.store = getenv("BLKCTL_STORE")};
	int i = 1;

	/* Global options, up to the command's name. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			bc_usage(stdout);
			return BC_EXIT_OK;
		} else if (!strcmp(o, "--version")) {
			printf("blkctl (cavm) %s\n", PACKAGE_VERSION);
			return BC_EXIT_OK;
		} else if (!strcmp(o, "-S") || !strcmp(o, "--store")) {
			if (++i == argc)
				return bc_usage_error("%s needs a STORE", o);
			a.store = argv[i];
		} else if (!strncmp(o, "-S", 2)) {
			a.store = o + 2;
		} else if (!strncmp(o, "--store=", 8)) {
			a.store = o + 8;
		} else {
			return bc_usage_error("unknown option '%s'", o);
		}
	}
	if (i == argc)
		return bc_usage_error("no command given");
	if (!strcmp(argv[i], "help")) {
		bc_usage(stdout);
		return BC_EXIT_OK;
	}
	if (a.store && !*a.store)
		a.store = NULL;
	const struct bc_command *c = bc_find_command(argv[i]);
	if (!c)
		return bc_usage_error("unknown command '%s'", argv[i]);
	if (c->needs_store && !a.store)
		return bc_usage_error("no store given: use -S STORE or set "
				      "BLKCTL_STORE");

	/* Is the store owned?  Then the owner runs the command. */
	char sock[4096];
	if (c->online && a.store &&
	    bc_owner_socket(a.store, sock, sizeof(sock)) == 0)
		return bc_forward(a.store, sock, argc - i, argv + i);

	if (!c->needs_store)
		return bc_dispatch(NULL, argc - i, argv + i, &a, NULL);
	bs_store *s;
	int rc = bs_store_open(a.store, NULL, &s);
	if (rc)
		return bc_fail(rc, "cannot open store '%s'", a.store);
	int status = bc_dispatch(s, argc - i, argv + i, &a, NULL);
	rc = bs_store_close(s);
	if (rc && status == BC_EXIT_OK)
		return bc_fail(rc, "closing store '%s'", a.store);
	return status;
}
