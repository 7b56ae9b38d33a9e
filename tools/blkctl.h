/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl.h - what the files of blkctl share: the command table's shape,
 * the parsed command line, error reporting and the output helpers.
 *
 * The one idea: blkctl is argument parsing and printing around
 * blkstore/blkstore.h, nothing more.  Every command is one function that
 * gets the open store and its positional arguments, calls the library,
 * prints, and returns an exit status.  Every failure is reported by
 * bc_fail() or bc_usage_error() as exactly one line on stderr, before
 * anything has been changed where the library allows it.
 */
#ifndef CAVM_BLKCTL_H
#define CAVM_BLKCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "blkstore/blkstore.h"

/* Exit statuses (blkctl(1), EXIT STATUS). */
#define BC_EXIT_OK 0
#define BC_EXIT_FAIL 1
#define BC_EXIT_USAGE 2

/* Per-command options; a command accepts the ones in its table entry. */
#define BC_OPT_JSON 1u
#define BC_OPT_FORCE 2u
#define BC_OPT_REBUILD 4u
#define BC_OPT_REPAIR 8u

#define BC_MAX_ARGS 4

/*
 * What the store's owner (blkstored) offers beyond the store: the
 * online-only commands' data.  NULL when blkctl opened the store itself.
 */
struct bc_owner {
	void *ctx;
	/* {"uptime_s":..,"disks":[{"disk":..,"reads":..,...}]} */
	int (*stats)(void *ctx, const char *disk, json_object **out);
	/* {"clients":[{"id":..,"proto":..,"peer":..,"export":..,...}]} */
	int (*clients)(void *ctx, json_object **out);
};

struct bc_args {
	const struct bc_owner *owner; /* set in blkstored, else NULL */
	const char *store; /* -S STORE or $BLKCTL_STORE; NULL if neither */
	const char *cmd;   /* the command's name, for messages */
	unsigned opts;     /* BC_OPT_* given */
	int argc;          /* positional arguments */
	char *argv[BC_MAX_ARGS];
};

struct bc_command {
	const char *name;
	const char *synopsis; /* arguments, as in the usage text */
	const char *help;     /* one line */
	unsigned opts;        /* BC_OPT_* accepted */
	int min_args, max_args;
	bool needs_store; /* main opens -S STORE before run() */
	bool online;      /* may run in the store's owner (blkstored) */
	int (*run)(bs_store *s, const struct bc_args *a);
};

/*
 * The streams of the command running on this thread: blkctl's own stdio,
 * or, in blkstored, the client's, whose file descriptors came over the
 * control socket (docs/control.md).  So a command prints the same bytes
 * to the same terminal whether it ran here or in the store's owner.
 */
struct bc_io {
	FILE *out, *err;
	int in_fd, out_fd;
	bool err_tty; /* draw progress bars */
};
const struct bc_io *bc_io(void);
/* Make io the current thread's streams (NULL: the process's stdio). */
void bc_io_set(const struct bc_io *io);
#define BC_OUT (bc_io()->out)
#define BC_ERR (bc_io()->err)
#define BC_IN_FD (bc_io()->in_fd)
#define BC_OUT_FD (bc_io()->out_fd)

/* ---- blkctl_cmds.c: the command table, shared with blkstored ---- */
extern const struct bc_command bc_commands[];
extern const size_t bc_ncommands;
const struct bc_command *bc_find_command(const char *name);
/*
 * Parse a command line (argv[0] is the command's name) into *a and run
 * it against the open store s (NULL for commands that open nothing).
 * Returns the exit status; usage errors and --help are handled.
 */
int bc_dispatch(bs_store *s, int argc, char **argv, struct bc_args *a,
		const struct bc_command **cmd);
void bc_usage(FILE *f);

/*
 * A "blkctl" control request run by the store's owner (blkctl_job.c,
 * used by blkstored and cavm).  bc_job_parse checks the request (argv:
 * 1 to BC_JOB_MAX_ARGV strings, not an offline-only command; the three
 * descriptors stdin, stdout, stderr; "tty"): 0, -EBADF, -EINVAL or
 * -EPERM.  bc_job_run is an srv_fn: srv_call(j->srv, bc_job_run, j) runs
 * the command on the store thread and leaves its exit status in
 * j->status.  argv points into the request: keep it alive meanwhile.
 */
#define BC_JOB_MAX_ARGV 16
struct srv;
struct bc_job {
	struct srv *srv;   /* the store's server (for stats, clients) */
	const char *store; /* its path, as blkctl's -S */
	int argc;
	char *argv[BC_JOB_MAX_ARGV + 1];
	const int *fds;
	bool tty;
	int status;
};
int bc_job_parse(struct bc_job *j, json_object *req, const int *fds,
		 int nfds);
int bc_job_run(bs_store *st, void *arg);

/* ---- blkctl_util.c ---- */

/* "blkctl: <what>: <bs_strerror(err)>"; returns BC_EXIT_FAIL. */
int bc_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "blkctl: <what>" for a failure that has no library error code. */
int bc_fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "blkctl: <what> (try 'blkctl --help')"; returns BC_EXIT_USAGE. */
int bc_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A byte count: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024; "KiB" etc. accepted too).  Rejects signs, spaces,
 * fractions, anything trailing and overflow.  0 on success, -EINVAL or
 * -ERANGE.
 */
int bc_parse_size(const char *s, uint64_t *out);
/* A size argument ('what': "size", "offset", ...) of command 'cmd'; on
 * failure prints the usage error and returns BC_EXIT_USAGE, else 0. */
int bc_size_arg(const char *cmd, const char *what, const char *s,
		uint64_t *out);

/* "512 B", "4.0 KiB", "1.0 GiB", ... */
#define BC_HSIZE_MAX 32
const char *bc_human_size(uint64_t bytes, char buf[BC_HSIZE_MAX]);
/* ISO-8601 UTC: "2024-05-01T12:00:00Z". */
#define BC_TIME_MAX 32
const char *bc_iso_time(uint64_t unix_seconds, char buf[BC_TIME_MAX]);
/* DISK or DISK@SNAP of a bs_info. */
void bc_info_spec(const struct bs_info *i, char out[BS_SPEC_MAX]);

/* Print one JSON document on one line, then free it. */
void bc_json_print(json_object *o);
/* json_object_new_uint64, named for symmetry with the other helpers. */
void bc_json_add_u64(json_object *o, const char *key, uint64_t v);
void bc_json_add_str(json_object *o, const char *key, const char *v);

/* A progress bar on stderr, drawn only when stderr is a terminal. */
struct bc_progress {
	const char *verb, *name; /* "import", "golden" */
	bool tty;
	int last_permille;
	uint64_t last_bytes;
	bool drawn;
};
void bc_progress_init(struct bc_progress *p, const char *verb,
		      const char *name);
void bc_progress_cb(void *arg, uint64_t done,
		    uint64_t total); /* bs_progress_fn */
void bc_progress_end(struct bc_progress *p);

/* ---- the commands, one file per group ---- */
int bc_cmd_init(bs_store *s, const struct bc_args *a);
int bc_cmd_df(bs_store *s, const struct bc_args *a);
int bc_cmd_gc(bs_store *s, const struct bc_args *a);
int bc_cmd_scrub(bs_store *s, const struct bc_args *a);
int bc_cmd_fsck(bs_store *s, const struct bc_args *a);

int bc_cmd_create(bs_store *s, const struct bc_args *a);
int bc_cmd_list(bs_store *s, const struct bc_args *a);
int bc_cmd_info(bs_store *s, const struct bc_args *a);
int bc_cmd_snapshot(bs_store *s, const struct bc_args *a);
int bc_cmd_clone(bs_store *s, const struct bc_args *a);
int bc_cmd_delete(bs_store *s, const struct bc_args *a);
int bc_cmd_resize(bs_store *s, const struct bc_args *a);
int bc_cmd_diff(bs_store *s, const struct bc_args *a);

int bc_cmd_import(bs_store *s, const struct bc_args *a);
int bc_cmd_export(bs_store *s, const struct bc_args *a);
int bc_cmd_read(bs_store *s, const struct bc_args *a);

int bc_cmd_stats(bs_store *s, const struct bc_args *a);
int bc_cmd_clients(bs_store *s, const struct bc_args *a);

/* ---- blkctl_client.c: forwarding to the store's owner ---- */
/* The owner's control socket, from STORE/lock ("control=PATH"): 0 and
 * path filled, or -ENOENT (no owner named), or -errno. */
int bc_owner_socket(const char *store, char *path, size_t len);
/* Run argv (argv[0]: the command) in the owner; returns its exit status,
 * or reports a failure to reach it. */
int bc_forward(const char *store, const char *sock, int argc, char **argv);
int bc_cmd_write(bs_store *s, const struct bc_args *a);

#endif
