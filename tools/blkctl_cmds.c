/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_cmds.c - blkctl's command table, the parsing of a command's
 * arguments, and dispatch.  Shared by blkctl itself and by blkstored,
 * which runs forwarded commands on the store it owns (docs/control.md),
 * so both print exactly the same output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/blkctl.h"

/* name, synopsis, help, options accepted, min and max arguments, whether
 * main opens the store, the function (struct bc_command in blkctl.h). */
const struct bc_command bc_commands[] = {
	{"init", "STORE", "create a new, empty store in directory STORE", 0, 1,
	 1, false, false, bc_cmd_init},
	{"create", "DISK SIZE", "create an empty (all-hole) disk", 0, 2, 2,
	 true, true, bc_cmd_create},
	{"list", "[--json]", "list disks, each followed by its snapshots",
	 BC_OPT_JSON, 0, 0, true, true, bc_cmd_list},
	{"info", "DISK|DISK@SNAP [--json]", "show one disk or snapshot",
	 BC_OPT_JSON, 1, 1, true, true, bc_cmd_info},
	{"import", "DISK FILE|-", "a raw image (or stdin) into a new disk", 0,
	 2, 2, true, true, bc_cmd_import},
	{"export", "DISK|DISK@SNAP FILE|-",
	 "a disk's bytes to FILE (sparse) or stdout", 0, 2, 2, true,
	 true, bc_cmd_export},
	{"read", "DISK|DISK@SNAP OFFSET LENGTH", "raw bytes to stdout", 0, 3, 3,
	 true, true, bc_cmd_read},
	{"write", "DISK OFFSET", "stdin, until EOF, at OFFSET; then flush", 0,
	 2, 2, true, true, bc_cmd_write},
	{"snapshot", "DISK@SNAP", "an immutable copy of DISK (O(1))", 0, 1, 1,
	 true, true, bc_cmd_snapshot},
	{"clone", "DISK|DISK@SNAP NEWDISK", "a new disk from another (O(1))", 0,
	 2, 2, true, true, bc_cmd_clone},
	{"delete", "DISK|DISK@SNAP", "delete a disk or a snapshot", 0, 1, 1,
	 true, true, bc_cmd_delete},
	{"resize", "DISK SIZE|+DELTA|-DELTA [--force]", "grow or shrink a disk",
	 BC_OPT_FORCE, 2, 2, true, true, bc_cmd_resize},
	{"diff", "DISK@A DISK@B|DISK [--json]", "changed byte ranges",
	 BC_OPT_JSON, 2, 2, true, true, bc_cmd_diff},
	{"df", "[--json]", "space used by the store", BC_OPT_JSON, 0, 0, true,
	 true, bc_cmd_df},
	{"gc", "[--json]", "free unreferenced chunks, compact segments",
	 BC_OPT_JSON, 0, 0, true, true, bc_cmd_gc},
	{"scrub", "", "verify every chunk; name the disks of damaged ones", 0,
	 0, 0, true, true, bc_cmd_scrub},
	{"stats", "[DISK] [--json]",
	 "I/O per disk since the owner started (needs blkstored)", BC_OPT_JSON,
	 0, 1, true, true, bc_cmd_stats},
	{"clients", "[--json]", "connected clients (needs blkstored)",
	 BC_OPT_JSON, 0, 0, true, true, bc_cmd_clients},
	{"fsck", "[--rebuild] [--repair]",
	 "recount every reference from the roots",
	 BC_OPT_REBUILD | BC_OPT_REPAIR, 0, 0, false, true, bc_cmd_fsck},
};
const size_t bc_ncommands = sizeof(bc_commands) / sizeof(bc_commands[0]);
#define NCOMMANDS bc_ncommands

static const struct {
	const char *name;
	unsigned opt;
} long_opts[] = {
	{"--json", BC_OPT_JSON},
	{"--force", BC_OPT_FORCE},
	{"--rebuild", BC_OPT_REBUILD},
	{"--repair", BC_OPT_REPAIR},
};

void bc_usage(FILE *f)
{
	fputs("usage: blkctl [-S STORE] COMMAND [ARGS...]\n"
	      "       blkctl --help | --version\n"
	      "\n"
	      "STORE defaults to $BLKCTL_STORE.  SIZE, OFFSET and LENGTH are "
	      "bytes, or a number\nwith K, M, G or T (powers of 1024).\n"
	      "\ncommands:\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %-34s %s\n", bc_commands[i].name,
			bc_commands[i].synopsis, bc_commands[i].help);
	fputs("  help                                        this text\n"
	      "\nSee blkctl(1).\n",
	      f);
}

static void command_usage(const struct bc_command *c)
{
	fprintf(BC_OUT, "usage: blkctl [-S STORE] %s %s\n  %s\n", c->name, c->synopsis,
	       c->help);
}

const struct bc_command *bc_find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(bc_commands[i].name, name))
			return &bc_commands[i];
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


/*
 * Parse argv (argv[0]: the command) and run the command on s.  Used by
 * main() with the store it opened (or NULL), and by blkstored for a
 * command forwarded over the control socket.
 */
int bc_dispatch(bs_store *s, int argc, char **argv, struct bc_args *a,
		const struct bc_command **cmd)
{
	const struct bc_command *c = bc_find_command(argv[0]);
	if (cmd)
		*cmd = c;
	if (!c)
		return bc_usage_error("unknown command '%s'", argv[0]);
	a->cmd = c->name;
	int rc = parse_command(c, argc - 1, argv + 1, a);
	if (rc < 0) {
		command_usage(c);
		return BC_EXIT_OK;
	}
	return rc ? rc : c->run(s, a);
}
