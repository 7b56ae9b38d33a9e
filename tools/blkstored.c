/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkstored.c - the host's storage daemon: main(), options, signals,
 * daemonising and readiness.  The server itself is blkstore/server.c
 * (store thread, connections) and blkstore/nbd*.c (NBD).
 *
 *   blkstored -S STORE --nbd unix:PATH|tcp:[HOST:]PORT ... [-f] [-v]
 *
 * The one idea: everything that can fail at start (the store's lock, a
 * socket already in use) fails before the daemon says it is ready, with
 * a message on stderr and a non-zero exit; a parent started without -f
 * returns only once the daemon is ready (or has failed).  SIGTERM and
 * SIGINT arrive through a signalfd on the main thread, which then stops
 * the server gracefully: finish in-flight requests, flush, close.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "blkstore/server.h"

/* blkstored_ctl.c: the control socket's commands. */
int blkstored_ctl(void *ctx, struct srv_conn *c, json_object *req,
		  const int *fds, int nfds, json_object *reply);

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif
#define MAX_NBD 16

static void usage(FILE *f)
{
	fputs("usage: blkstored -S STORE [--nbd ADDRESS]... [--control PATH] "
	      "[OPTIONS]\n"
	      "\n"
	      "Serve the disks of STORE: each disk as a read-write NBD "
	      "export named DISK,\neach snapshot as a read-only export "
	      "named DISK@SNAP.\n"
	      "\n"
	      "  -S, --store STORE         the store directory (required)\n"
	      "      --nbd unix:PATH       listen for NBD on a unix socket "
	      "(mode 0600)\n"
	      "      --nbd tcp:[HOST:]PORT listen for NBD on TCP (HOST: "
	      "127.0.0.1)\n"
	      "      --default-export SPEC what the export name \"\" means "
	      "(default: none)\n"
	      "      --max-connections N   at most N clients at once "
	      "(default 256)\n"
	      "      --control PATH        the control socket (default "
	      "STORE/control.sock)\n"
	      "      --io-engine E         io_uring (default), libaio or "
	      "sync\n"
	      "  -f, --foreground          do not daemonise\n"
	      "  -p, --pid-file PATH       write the daemon's pid to PATH\n"
	      "  -v, --verbose             log debug messages too\n"
	      "      --log stderr|syslog   where log lines go (default "
	      "stderr)\n"
	      "  -h, --help, --version\n"
	      "\n"
	      "Logs go to stderr (the journal, under systemd) or to syslog "
	      "(facility\ndaemon).  SIGTERM or SIGINT: stop accepting, "
	      "finish requests\nin flight, flush the store and exit 0.  "
	      "See docs/nbd.md.\n",
	      f);
}

/* systemd's readiness protocol (Type=notify), if we run under it. */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = path ? strlen(path) : 0;
	if (!len || len >= sizeof(sa.sun_path) ||
	    (path[0] != '/' && path[0] != '@'))
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

/* Fork; the parent waits for the child's word (one byte: 0 = ready) and
 * exits with it.  Returns the write end of that pipe, in the child. */
static int daemon_start(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC)) {
		perror("blkstored: pipe");
		exit(1);
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("blkstored: fork");
		exit(1);
	}
	if (pid > 0) {
		unsigned char st = 1;
		close(p[1]);
		if (read(p[0], &st, 1) != 1)
			st = 1; /* the child died before it was ready */
		_exit(st);
	}
	close(p[0]);
	setsid();
	return p[1];
}

static void daemon_ready(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	unsigned char ok = 0;
	ssize_t w = write(fd, &ok, 1);
	(void)w;
	close(fd);
}

/* On the store thread: which I/O engine the store really uses. */
static int io_engine_of(bs_store *st, void *arg)
{
	*(int *)arg = cas_io_engine(bs_store_cas(st));
	return 0;
}

static int write_pid_file(const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "%ld\n", (long)getpid());
	return fclose(f) ? -errno : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"store", required_argument, NULL, 'S'},
		{"nbd", required_argument, NULL, 'n'},
		{"default-export", required_argument, NULL, 'd'},
		{"max-connections", required_argument, NULL, 'm'},
		{"foreground", no_argument, NULL, 'f'},
		{"pid-file", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"control", required_argument, NULL, 'c'},
		{"io-engine", required_argument, NULL, 'e'},
		{"log", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct srv_options o = {.log_level = SRV_INFO,
				.ctl_fn = blkstored_ctl};
	const char *nbd[MAX_NBD], *pid_file = NULL, *control = NULL;
	char control_buf[4096];
	int nnbd = 0, opt, ready_fd = -1;
	bool foreground = false, use_syslog = false;
	char *end;

	while ((opt = getopt_long(argc, argv, "S:fp:vh", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'S':
			o.store = optarg;
			break;
		case 'n':
			if (nnbd == MAX_NBD) {
				fprintf(stderr, "blkstored: at most %d --nbd\n",
					MAX_NBD);
				return 2;
			}
			nbd[nnbd++] = optarg;
			break;
		case 'd':
			o.default_export = optarg;
			break;
		case 'm':
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 10);
			if (errno || *end || m == 0 || m > 65536) {
				fprintf(stderr, "blkstored: --max-connections: "
						"expected 1..65536\n");
				return 2;
			}
			o.max_conns = (unsigned)m;
			break;
		case 'f':
			foreground = true;
			break;
		case 'p':
			pid_file = optarg;
			break;
		case 'v':
			o.log_level = SRV_DEBUG;
			break;
		case 'c':
			control = optarg;
			break;
		case 'l':
			if (strcmp(optarg, "stderr") && strcmp(optarg, "syslog")) {
				fprintf(stderr, "blkstored: --log: stderr or "
						"syslog\n");
				return 2;
			}
			use_syslog = !strcmp(optarg, "syslog");
			break;
		case 'e':
			bs_store_options_default(&o.store_opts);
			o.have_store_opts = true;
			if (!strcmp(optarg, "io_uring"))
				o.store_opts.io_engine = CAS_IO_URING;
			else if (!strcmp(optarg, "libaio"))
				o.store_opts.io_engine = CAS_IO_LIBAIO;
			else if (!strcmp(optarg, "sync"))
				o.store_opts.io_engine = CAS_IO_SYNC;
			else {
				fprintf(stderr, "blkstored: --io-engine: "
						"io_uring, libaio or sync\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("blkstored (cavm) %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !o.store) {
		fprintf(stderr, "blkstored: %s\n",
			optind < argc ? "unexpected argument"
				      : "no store given: use -S STORE");
		usage(stderr);
		return 2;
	}
	if (!control) {
		snprintf(control_buf, sizeof(control_buf), "%s/control.sock",
			 o.store);
		control = control_buf;
	}
	char control_spec[8500], control_abs[4200];
	if (control[0] != '/' && getcwd(control_abs, sizeof(control_abs) - 256)) {
		size_t l = strlen(control_abs);
		snprintf(control_abs + l, sizeof(control_abs) - l, "/%s", control);
		control = control_abs;
	}
	snprintf(control_spec, sizeof(control_spec), "unix:%s", control);
	char dname[BS_NAME_MAX + 1], sname[BS_NAME_MAX + 1];
	if (o.default_export && bs_spec_parse(o.default_export, dname, sname)) {
		fprintf(stderr, "blkstored: --default-export '%s': %s\n",
			o.default_export, bs_strerror(BS_EBADNAME));
		return 2;
	}

	/* Every thread inherits this mask: the signals reach only the
	 * signalfd, read by the main thread. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("blkstored: signalfd");
		return 1;
	}
	if (!foreground)
		ready_fd = daemon_start();

	struct srv *s;
	int rc = srv_create(&o, &s);
	if (rc) {
		srv_log(NULL, SRV_ERROR, "cannot open store %s: %s%s", o.store,
			bs_strerror(rc),
			rc == CAS_ELOCKED
				? " (another blkstored, cavm or blkctl owns "
				  "it; stop that first)"
				: "");
		return 1;
	}
	for (int i = 0; i < nnbd; i++) {
		const char *what = "";
		rc = srv_listen(s, nbd[i], "nbd", nbd_conn_main, &what);
		if (rc) {
			srv_log(s, SRV_ERROR, "cannot listen on %s: %s: %s",
				nbd[i], what, strerror(-rc));
			srv_destroy(s);
			return 1;
		}
	}
	{
		const char *what = "";
		rc = srv_listen(s, control_spec, "control", ctl_conn_main, &what);
		if (!rc && (rc = bs_store_announce(o.store, control))) {
			/* Serving matters more than being found. */
			srv_log(s, SRV_WARN, "cannot name the control socket in "
				"%s/lock: %s: blkctl will not find this daemon",
				o.store, strerror(-rc));
			rc = 0;
		}
		if (rc) {
			srv_log(s, SRV_ERROR, "cannot serve control socket %s: "
				"%s: %s", control, what, strerror(-rc));
			srv_destroy(s);
			return 1;
		}
		srv_log(s, SRV_INFO, "control socket %s (blkctl -S %s works "
			"through it)", control, o.store);
	}
	if (pid_file && (rc = write_pid_file(pid_file))) {
		srv_log(s, SRV_ERROR, "cannot write %s: %s", pid_file,
			strerror(-rc));
		srv_destroy(s);
		return 1;
	}
	int engine = CAS_IO_SYNC;
	int want = o.have_store_opts ? o.store_opts.io_engine : CAS_IO_URING;
	srv_call(s, io_engine_of, &engine);
	if (engine != want)
		srv_log(s, SRV_WARN, "%s is not available here: segment I/O "
			"falls back to %s", cas_io_engine_name(want),
			cas_io_engine_name(engine));
	/* Until here a failure is told on stderr, to whoever started us;
	 * from here on, lines go where --log says. */
	if (use_syslog) {
		srv_log(s, SRV_INFO, "logging to syslog from now on");
		srv_log_open("blkstored", true);
	}
	srv_log(s, SRV_INFO, "serving %s (pid %ld, I/O engine %s)", o.store,
		(long)getpid(), cas_io_engine_name(engine));
	sd_notify_msg("READY=1");
	if (ready_fd >= 0)
		daemon_ready(ready_fd);

	rc = srv_run(s, sfd);
	struct signalfd_siginfo si;
	if (read(sfd, &si, sizeof(si)) == sizeof(si))
		srv_log(s, SRV_INFO, "stopped by signal %u, flushing",
			si.ssi_signo);
	sd_notify_msg("STOPPING=1");
	bs_store_announce(o.store, NULL);
	int rc2 = srv_destroy(s);
	if (pid_file)
		unlink(pid_file);
	srv_log(NULL, rc || rc2 ? SRV_ERROR : SRV_INFO, "%s",
		rc || rc2 ? "exiting after errors" : "stopped cleanly");
	return rc || rc2 ? 1 : 0;
}
