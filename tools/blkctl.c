/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl.c - the admin CLI of a cavm store: main(), the command table,
 * option parsing and usage.
 *
 *   blkctl [-S STORE] COMMAND [ARGS...] [--json] ...
 *
 * The one idea: main() only parses.  It finds the command in one table,
 * checks its options and argument count, opens the store (-S or
 * $BLKCTL_STORE) when the command needs one, runs the command's function
 * (blkctl_store.c, blkctl_disk.c, blkctl_io.c) and closes the store, whose
 * close is the final group commit and so can fail too.  Adding a command
 * is one row here and one function.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/blkctl.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif

/* name, synopsis, help, options accepted, min and max arguments, whether
 * main opens the store, the function (struct bc_command in blkctl.h). */
static const struct bc_command commands[] = {
	{"init", "STORE", "create a new, empty store in directory STORE", 0, 1,
	 1, false, bc_cmd_init},
	{"create", "DISK SIZE", "create an empty (all-hole) disk", 0, 2, 2,
	 true, bc_cmd_create},
	{"list", "[--json]", "list disks, each followed by its snapshots",
	 BC_OPT_JSON, 0, 0, true, bc_cmd_list},
	{"info", "DISK|DISK@SNAP [--json]", "show one disk or snapshot",
	 BC_OPT_JSON, 1, 1, true, bc_cmd_info},
	{"import", "DISK FILE|-", "a raw image (or stdin) into a new disk", 0,
	 2, 2, true, bc_cmd_import},
	{"export", "DISK|DISK@SNAP FILE|-",
	 "a disk's bytes to FILE (sparse) or stdout", 0, 2, 2, true,
	 bc_cmd_export},
	{"read", "DISK|DISK@SNAP OFFSET LENGTH", "raw bytes to stdout", 0, 3, 3,
	 true, bc_cmd_read},
	{"write", "DISK OFFSET", "stdin, until EOF, at OFFSET; then flush", 0,
	 2, 2, true, bc_cmd_write},
	{"snapshot", "DISK@SNAP", "an immutable copy of DISK (O(1))", 0, 1, 1,
	 true, bc_cmd_snapshot},
	{"clone", "DISK|DISK@SNAP NEWDISK", "a new disk from another (O(1))", 0,
	 2, 2, true, bc_cmd_clone},
	{"delete", "DISK|DISK@SNAP", "delete a disk or a snapshot", 0, 1, 1,
	 true, bc_cmd_delete},
	{"resize", "DISK SIZE|+DELTA|-DELTA [--force]", "grow or shrink a disk",
	 BC_OPT_FORCE, 2, 2, true, bc_cmd_resize},
	{"diff", "DISK@A DISK@B|DISK [--json]", "changed byte ranges",
	 BC_OPT_JSON, 2, 2, true, bc_cmd_diff},
	{"df", "[--json]", "space used by the store", BC_OPT_JSON, 0, 0, true,
	 bc_cmd_df},
	{"gc", "[--json]", "free unreferenced chunks, compact segments",
	 BC_OPT_JSON, 0, 0, true, bc_cmd_gc},
	{"scrub", "", "verify every chunk; name the disks of damaged ones", 0,
	 0, 0, true, bc_cmd_scrub},
	{"fsck", "[--rebuild] [--repair]",
	 "recount every reference from the roots",
	 BC_OPT_REBUILD | BC_OPT_REPAIR, 0, 0, false, bc_cmd_fsck},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct {
	const char *name;
	unsigned opt;
} long_opts[] = {
	{"--json", BC_OPT_JSON},
	{"--force", BC_OPT_FORCE},
	{"--rebuild", BC_OPT_REBUILD},
	{"--repair", BC_OPT_REPAIR},
};

static void usage(FILE *f)
{
	fputs("usage: blkctl [-S STORE] COMMAND [ARGS...]\n"
	      "       blkctl --help | --version\n"
	      "\n"
	      "STORE defaults to $BLKCTL_STORE.  SIZE, OFFSET and LENGTH are "
	      "bytes, or a number\nwith K, M, G or T (powers of 1024).\n"
	      "\ncommands:\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %-34s %s\n", commands[i].name,
			commands[i].synopsis, commands[i].help);
	fputs("  help                                        this text\n"
	      "\nSee blkctl(1).\n",
	      f);
}

static void command_usage(const struct bc_command *c)
{
	printf("usage: blkctl [-S STORE] %s %s\n  %s\n", c->name, c->synopsis,
	       c->help);
}

static const struct bc_command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/*
 * The command's own arguments: long options anywhere, "--" ends them,
 * "-" (stdin/stdout) and "-DELTA" (resize) are arguments.  Returns
 * BC_EXIT_OK, BC_EXIT_USAGE (reported) or -1 for --help.
 */
static int parse_command(const struct bc_command *c, int argc, char **argv,
			 struct bc_args *a)
{
	bool opts_done = false;
	for (int i = 0; i < argc; i++) {
		char *arg = argv[i];
		bool is_opt = !opts_done && arg[0] == '-' && arg[1] &&
			      !(arg[1] >= '0' && arg[1] <= '9');
		if (is_opt && !strcmp(arg, "--")) {
			opts_done = true;
			continue;
		}
		if (is_opt && (!strcmp(arg, "-h") || !strcmp(arg, "--help")))
			return -1;
		if (is_opt) {
			unsigned opt = 0;
			for (size_t k = 0;
			     k < sizeof(long_opts) / sizeof(long_opts[0]); k++)
				if (!strcmp(arg, long_opts[k].name))
					opt = long_opts[k].opt;
			if (!(opt & c->opts))
				return bc_usage_error("%s: unknown option '%s'",
						      c->name, arg);
			a->opts |= opt;
			continue;
		}
		if (a->argc == c->max_args)
			return bc_usage_error("%s: unexpected argument '%s'",
					      c->name, arg);
		a->argv[a->argc++] = arg;
	}
	if (a->argc < c->min_args)
		return bc_usage_error("%s: missing arguments: expected %s",
				      c->name, c->synopsis);
	return BC_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct bc_args a = {.store = getenv("BLKCTL_STORE")};
	int i = 1;

	/* Global options, up to the command's name. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
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
		usage(stdout);
		return BC_EXIT_OK;
	}
	const struct bc_command *c = find_command(argv[i]);
	if (!c)
		return bc_usage_error("unknown command '%s'", argv[i]);
	a.cmd = c->name;
	int rc = parse_command(c, argc - i - 1, argv + i + 1, &a);
	if (rc < 0) {
		command_usage(c);
		return BC_EXIT_OK;
	}
	if (rc)
		return rc;
	if (a.store && !*a.store)
		a.store = NULL;
	if (!c->needs_store)
		return c->run(NULL, &a);
	if (!a.store)
		return bc_usage_error("no store given: use -S STORE or set "
				      "BLKCTL_STORE");

	bs_store *s;
	rc = bs_store_open(a.store, NULL, &s);
	if (rc)
		return bc_fail(rc, "cannot open store '%s'", a.store);
	int status = c->run(s, &a);
	rc = bs_store_close(s);
	if (rc && status == BC_EXIT_OK)
		return bc_fail(rc, "closing store '%s'", a.store);
	return status;
}
