/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control.c - cavm's control socket ("--control PATH"): the framing,
 * threads and JSON library of blkstored's (blkstore/ctl.c, server.h),
 * with the VM's commands (docs/control.md, "cavm"):
 *
 *   hello    who serves: cavm, version, pid, the stores it owns
 *   status   running or paused, vCPUs, memory, uptime, disks
 *   pause    every vCPU out of the guest and parked
 *   resume   back in
 *   stop     end the VM: disks flushed, stores closed, cavm exits 0
 *   disks    each disk: store, name, size, read-only, virtio status
 *   stats    each disk: notifications, passes, requests, errors, irqs
 *   blkctl   a blkctl command line on a store cavm owns (as blkstored)
 *
 * The one idea: cavm owns its stores the way blkstored does (one server
 * and store thread per store), so the socket is served by the first
 * store's server, and every store's lock file names it: blkctl finds
 * cavm exactly as it finds blkstored.  A blkctl request says which store
 * (its "store" field) when cavm owns several.
 *
 * Invariants: a command that changes nothing answers from atomic or
 * locked state and never waits for the store thread; blkctl commands run
 * on their store's thread, and after each one the guest hears of every
 * disk whose capacity changed (config change interrupt).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hypervisor/blk.h"
#include "tools/blkctl.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif

struct control {
	struct cavm *vm;
	struct srv *srv; /* whose listener it is */
	char path[PATH_MAX];
	pthread_t thread;
	int stopfd;
	uint64_t start_ns;
};

/* ---- blkctl through cavm (as tools/blkstored_ctl.c) ---- */

static struct blk_store *pick_store(struct cavm *vm, json_object *req)
{
	struct blk_store *all = blk_stores(vm);
	json_object *v;
	char abs[PATH_MAX];
	if (!json_object_object_get_ex(req, "store", &v))
		return all && !all->next ? all : NULL;
	if (!json_object_is_type(v, json_type_string) ||
	    !realpath(json_object_get_string(v), abs))
		return NULL;
	for (struct blk_store *st = all; st; st = st->next)
		if (!strcmp(st->path, abs))
			return st;
	return NULL;
}

struct job {
	struct bc_job bc;
	struct cavm *vm;
	struct blk_store *st;
};

/* On the store thread. */
static int run_job(bs_store *s, void *arg)
{
	struct job *j = arg;
	int rc = bc_job_run(s, &j->bc);
	/* A resize of an attached disk: the guest hears of it now. */
	blk_store_config_check(j->vm, j->st);
	return rc;
}

static int do_blkctl(struct cavm *vm, struct srv_conn *c, json_object *req,
		     const int *fds, int nfds, json_object *reply)
{
	struct job j = {.vm = vm};
	int rc = bc_job_parse(&j.bc, req, fds, nfds);
	if (rc)
		return rc;
	j.st = pick_store(vm, req);
	if (!j.st)
		return -ENOENT; /* not a store this cavm owns */
	j.bc.srv = j.st->srv;
	j.bc.store = j.st->path;
	srv_clog(c, SRV_INFO, "blkctl %s", j.bc.argv[0]);
	rc = srv_call(j.st->srv, run_job, &j);
	if (rc)
		return rc;
	json_object_object_add(reply, "exit",
			       json_object_new_int(j.bc.status));
	return 0;
}

/* ---- the VM's commands ---- */

static void add_disk(void *arg, const struct blk_info *i)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "store", json_object_new_string(i->store));
	json_object_object_add(e, "disk", json_object_new_string(i->disk));
	json_object_object_add(e, "size",
			       json_object_new_int64((int64_t)i->capacity));
	json_object_object_add(e, "readonly",
			       json_object_new_boolean(i->readonly));
	json_object_object_add(e, "virtio_status",
			       json_object_new_int(i->status));
	json_object_object_add(e, "broken", json_object_new_boolean(i->broken));
	json_object_array_add(arg, e);
}

static void add_stats(void *arg, const struct blk_info *i)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "disk", json_object_new_string(i->disk));
	json_object_object_add(e, "notifications",
			       json_object_new_int64((int64_t)i->kicks));
	json_object_object_add(e, "passes",
			       json_object_new_int64((int64_t)i->passes));
	json_object_object_add(e, "requests",
			       json_object_new_int64((int64_t)i->requests));
	json_object_object_add(e, "interrupts",
			       json_object_new_int64((int64_t)i->irqs));
	json_object_object_add(e, "errors",
			       json_object_new_int64((int64_t)i->errors));
	json_object_array_add(arg, e);
}

static const char *state(struct cavm *vm)
{
	return cavm_paused(vm) ? "paused" : "running";
}

static int64_t uptime_s(const struct control *ctl)
{
	return (int64_t)((srv_now_ns() - ctl->start_ns) / 1000000000ull);
}

int control_request(void *ctx, struct srv_conn *c, json_object *req,
		    const int *fds, int nfds, json_object *reply)
{
	struct cavm *vm = ctx;
	struct control *ctl = cavm_devices(vm)->control;
	json_object *v;
	int rc = 0;
	json_object_object_get_ex(req, "cmd", &v);
	const char *cmd = json_object_get_string(v);
	if (!ctl)
		return -ENOSYS;
	if (!strcmp(cmd, "blkctl"))
		return do_blkctl(vm, c, req, fds, nfds, reply);
	if (!strcmp(cmd, "hello")) {
		json_object *arr = json_object_new_array();
		for (struct blk_store *st = blk_stores(vm); st; st = st->next)
			json_object_array_add(arr,
					      json_object_new_string(st->path));
		json_object_object_add(reply, "server",
				       json_object_new_string("cavm"));
		json_object_object_add(reply, "version",
				       json_object_new_string(PACKAGE_VERSION));
		json_object_object_add(
			reply, "store",
			json_object_new_string(srv_options(ctl->srv)->store));
		json_object_object_add(reply, "stores", arr);
		json_object_object_add(reply, "pid",
				       json_object_new_int64(getpid()));
		return 0;
	}
	if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		bool p = cmd[0] == 'p';
		rc = p ? cavm_pause(vm) : cavm_resume(vm);
		if (rc)
			return rc;
		srv_clog(c, SRV_INFO, "%s", p ? "paused" : "resumed");
	} else if (!strcmp(cmd, "stop")) {
		srv_clog(c, SRV_INFO, "stop: flushing disks, then exiting");
		cavm_request_stop(vm, 0);
		json_object_object_add(reply, "state",
				       json_object_new_string("stopping"));
		return 0;
	} else if (!strcmp(cmd, "disks")) {
		json_object *arr = json_object_new_array();
		blk_foreach(vm, add_disk, arr);
		json_object_object_add(reply, "disks", arr);
		return 0;
	} else if (!strcmp(cmd, "stats")) {
		json_object *arr = json_object_new_array();
		blk_foreach(vm, add_stats, arr);
		json_object_object_add(reply, "uptime_s",
				       json_object_new_int64(uptime_s(ctl)));
		json_object_object_add(reply, "disks", arr);
		return 0;
	} else if (strcmp(cmd, "status")) {
		return -ENOSYS;
	}
	/* status, and the answer to pause / resume */
	unsigned n = 0;
	for (struct blk_store *st = blk_stores(vm); st; st = st->next)
		n++;
	json_object_object_add(reply, "state",
			       json_object_new_string(state(vm)));
	json_object_object_add(reply, "cpus",
			       json_object_new_int((int)cavm_ncpus(vm)));
	json_object_object_add(
		reply, "mem",
		json_object_new_int64((int64_t)cavm_ram_bytes(vm)));
	json_object_object_add(reply, "uptime_s",
			       json_object_new_int64(uptime_s(ctl)));
	json_object_object_add(reply, "stores", json_object_new_int((int)n));
	json_object_object_add(reply, "pid", json_object_new_int64(getpid()));
	return 0;
}

/* ---- the socket's thread ---- */

static void *control_main(void *arg)
{
	struct control *ctl = arg;
	srv_run(ctl->srv, ctl->stopfd);
	return NULL;
}

static void control_exit(void *opaque)
{
	struct control *ctl = opaque;
	uint64_t one = 1;
	ssize_t w = write(ctl->stopfd, &one, sizeof(one));
	(void)w;
	pthread_join(ctl->thread, NULL); /* connections drained */
	for (struct blk_store *st = blk_stores(ctl->vm); st; st = st->next)
		bs_store_announce(st->path, NULL);
	close(ctl->stopfd);
	cavm_devices(ctl->vm)->control = NULL;
	free(ctl);
}

int cavm_control_start(struct cavm *vm, const char *path)
{
	struct blk_store *stores = blk_stores(vm);
	char spec[PATH_MAX + 8], cwd[PATH_MAX];
	const char *what = "";
	int rc;

	if (!path)
		return 0;
	if (!stores) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "--control %s: needs a --disk (the socket is served "
			 "by the store's server)",
			 path);
		return -EINVAL;
	}
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->vm = vm;
	ctl->start_ns = srv_now_ns();
	/* The lock file names it for blkctl, from any directory. */
	int n;
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)))
		n = snprintf(ctl->path, sizeof(ctl->path), "%s/%s", cwd, path);
	else
		n = snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(ctl->path)) {
		cavm_log(vm, CAVM_LOG_ERROR, "--control %s: path too long",
			 path);
		free(ctl);
		return -ENAMETOOLONG;
	}
	/* The first store opened is the last in the list. */
	struct blk_store *first = stores;
	while (first->next)
		first = first->next;
	ctl->srv = first->srv;
	ctl->stopfd = eventfd(0, EFD_CLOEXEC);
	if (ctl->stopfd < 0) {
		rc = -errno;
		free(ctl);
		return rc;
	}
	snprintf(spec, sizeof(spec), "unix:%s", ctl->path);
	rc = srv_listen(ctl->srv, spec, "control", ctl_conn_main, &what);
	if (rc) {
		cavm_log(vm, CAVM_LOG_ERROR, "--control %s: %s: %s", path, what,
			 strerror(-rc));
		close(ctl->stopfd);
		free(ctl);
		return rc;
	}
	for (struct blk_store *st = stores; st; st = st->next)
		if ((rc = bs_store_announce(st->path, ctl->path)))
			cavm_log(vm, CAVM_LOG_WARN,
				 "cannot name the control socket in %s/lock: "
				 "%s (blkctl will not find cavm)",
				 st->path, bs_strerror(rc));
	cavm_devices(vm)->control = ctl;
	rc = -pthread_create(&ctl->thread, NULL, control_main, ctl);
	if (!rc)
		rc = cavm_at_exit(vm, control_exit, ctl);
	if (rc) {
		cavm_log(vm, CAVM_LOG_ERROR, "--control %s: %s", path,
			 strerror(-rc));
		return rc; /* setup failure: cavm ends before running */
	}
	return 0;
}
