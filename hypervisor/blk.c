/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blk.c - virtio-blk PCI devices on embedded store disks
 * ("--disk STORE:DISK[,ro]").
 *
 * The one idea: three threads, each doing one thing.  vCPU threads only
 * touch transport registers (virtio_pci.c); a notification (ioeventfd)
 * wakes the disk's I/O thread, which hands one processing pass to the
 * store's thread (srv_call, blkstore/server.h) and waits; the pass runs
 * the shared request code (blkstore/vblk.h) and raises the interrupt.
 * So requests never run on a vCPU thread, and every disk operation of
 * every disk on a store, and every blkctl command sent to the control
 * socket, is serialised by the one store thread.
 *
 * Invariants:
 *  - The queue's ring indexes (struct vblk_vq) live on the store thread
 *    only; a new queue epoch (enable, reset) restarts them at 0.
 *  - A device reset is a closure queued to the store thread, so it runs
 *    after any pass in progress; the transport shows the driver the old
 *    status until it has run.  No vCPU waits for the store thread.
 *  - At exit (hooks run after the vCPUs stopped): the I/O threads stop,
 *    the disks close, then each store is flushed and closed
 *    (srv_destroy), so everything acknowledged is durable.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blkstore/vblk.h"
#include "common/endian.h"
#include "hypervisor/blk.h"
#include "hypervisor/pci.h"
#include "hypervisor/virtio_pci.h"

#define BLK_QUEUE_SIZE 256u
#define PCI_CLASS_STORAGE_SCSI 0x010000u /* what QEMU's virtio-blk says */

struct blk {
	struct cavm *vm;
	struct blk_store *st;
	char disk[BS_SPEC_MAX];
	bool readonly;
	bs_disk *bd;
	struct iostat *io; /* the server's per-disk statistics */
	struct vblk_dev *vdev;
	struct virtio_pci *vp;
	pthread_t thread;
	bool running;
	int stopfd;
	/* store thread only */
	struct vblk_vq vq;
	uint32_t epoch;
	bool have_queue;
	struct srv_work reset; /* at most one in flight (virtio_pci.c) */
	/* statistics */
	_Atomic uint64_t kicks, passes, requests, errors;
	struct blk *next;
};

struct blk_set {
	struct blk_store *stores;
	struct blk *disks, **tail;
	bool hooked; /* set_exit registered */
};

static struct blk_set *set_of(struct cavm *vm, bool create)
{
	struct cavm_devices *dv = cavm_devices(vm);
	if (!dv->blk && create) {
		dv->blk = calloc(1, sizeof(*dv->blk));
		if (dv->blk)
			dv->blk->tail = &dv->blk->disks;
	}
	return dv->blk;
}

/* ---- the store thread's side ---- */

static int pass(bs_store *s, void *arg)
{
	struct blk *b = arg;
	struct virtio_pci_queue q;
	bool irq = false;
	(void)s;
	if (!virtio_pci_queue(b->vp, 0, &q))
		return 0;
	if (!b->have_queue || q.epoch != b->epoch) {
		b->vq = (struct vblk_vq){.size = q.size,
					 .desc_gpa = q.desc,
					 .avail_gpa = q.driver,
					 .used_gpa = q.device};
		b->epoch = q.epoch;
		b->have_queue = true;
	}
	b->passes++;
	int n = vblk_dev_process(b->vdev, cavm_mem(b->vm), &b->vq, &irq);
	if (n > 0)
		b->requests += (uint64_t)n;
	if (irq)
		virtio_pci_queue_irq(b->vp, 0);
	if (n == -EIO) {
		b->errors++;
		virtio_pci_needs_reset(b->vp);
	}
	return 0;
}

static int reset_on_store(bs_store *s, void *arg)
{
	struct blk *b = arg;
	(void)s;
	vblk_dev_reset(b->vdev);
	b->have_queue = false;
	return 0;
}

void blk_store_config_check(struct cavm *vm, struct blk_store *st)
{
	struct blk_set *set = set_of(vm, false);
	for (struct blk *b = set ? set->disks : NULL; b; b = b->next)
		if (b->st == st && vblk_dev_config_changed(b->vdev)) {
			cavm_log(vm, CAVM_LOG_INFO, "disk %s: capacity changed",
				 b->disk);
			virtio_pci_config_changed(b->vp);
		}
}

/* ---- the I/O thread ---- */

static void *io_main(void *arg)
{
	struct blk *b = arg;
	struct pollfd p[2] = {{virtio_pci_kick_fd(b->vp, 0), POLLIN, 0},
			      {b->stopfd, POLLIN, 0}};
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue; /* EINTR */
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		virtio_pci_kick_clear(b->vp, 0);
		b->kicks++;
		srv_call(b->st->srv, pass, b);
	}
	return NULL;
}

/* ---- transport callbacks (vCPU threads) ---- */

static uint64_t op_features(void *opaque)
{
	struct blk *b = opaque;
	return vblk_dev_features(b->vdev);
}

static int op_set_features(void *opaque, uint64_t f)
{
	struct blk *b = opaque;
	return vblk_dev_set_features(b->vdev, f);
}

static void op_config(void *opaque, uint8_t *cfg, size_t len)
{
	struct blk *b = opaque;
	vblk_dev_config(b->vdev, cfg, len);
}

static void reset_done(struct srv_work *w)
{
	struct blk *b = w->arg;
	virtio_pci_reset_done(b->vp);
}

/* Queued behind any pass in progress: once it has run, no pass is
 * using the old rings, and the driver reads status 0. */
static void op_reset(void *opaque)
{
	struct blk *b = opaque;
	b->reset = (struct srv_work){
		.fn = reset_on_store, .arg = b, .complete = reset_done};
	srv_submit(b->st->srv, &b->reset);
}

static const struct virtio_pci_ops blk_ops = {op_features, op_set_features,
					      op_config, op_reset};

static void vblk_log(void *arg, enum vblk_level level, const char *msg)
{
	struct blk *b = arg;
	int l = level == VBLK_LOG_ERROR  ? CAVM_LOG_ERROR
		: level == VBLK_LOG_WARN ? CAVM_LOG_WARN
					 : CAVM_LOG_DEBUG;
	cavm_log(b->vm, l, "disk %s: %s", b->disk, msg);
}

/* Per request, on the store thread: what `blkctl stats` shows. */
static void vblk_stats(void *arg, uint32_t type, uint64_t bytes, uint64_t ns,
		       uint8_t status)
{
	struct blk *b = arg;
	enum srv_op op = type == VBLK_T_IN             ? SRV_OP_READ
			 : type == VBLK_T_OUT          ? SRV_OP_WRITE
			 : type == VBLK_T_FLUSH        ? SRV_OP_FLUSH
			 : type == VBLK_T_DISCARD      ? SRV_OP_TRIM
			 : type == VBLK_T_WRITE_ZEROES ? SRV_OP_ZERO
						       : SRV_OP_OTHER;
	iostat_record(b->io, op, bytes, ns, status != VBLK_S_OK);
}

/* ---- setup and teardown ---- */

static int open_disk(bs_store *s, void *arg)
{
	struct blk *b = arg;
	int rc = bs_disk_open(s, b->disk, &b->bd);
	if (rc)
		return rc;
	/* GET_ID answers the disk's name (the spec, for a snapshot). */
	rc = vblk_dev_create(b->bd, b->disk, VBLK_F_ALL, &b->vdev);
	if (rc) {
		bs_disk_close(b->bd);
		return rc;
	}
	if (b->readonly)
		vblk_dev_set_readonly(b->vdev);
	vblk_dev_set_log(b->vdev, vblk_log, b);
	b->io = iostats_get(srv_iostats(b->st->srv), b->disk);
	if (b->io)
		vblk_dev_set_stats(b->vdev, vblk_stats, b);
	return 0;
}

static int close_disk(bs_store *s, void *arg)
{
	struct blk *b = arg;
	(void)s;
	vblk_dev_close(b->vdev);
	int rc = bs_disk_flush(b->bd);
	int rc2 = bs_disk_close(b->bd);
	return rc ? rc : rc2;
}

static void blk_exit(void *opaque)
{
	struct blk *b = opaque;
	uint64_t one = 1;
	if (b->running) {
		ssize_t w = write(b->stopfd, &one, sizeof(one));
		(void)w;
		pthread_join(b->thread, NULL);
	}
	/* Queued after any reset still pending, which completes first. */
	int rc = srv_call(b->st->srv, close_disk, b);
	if (rc)
		cavm_log(b->vm, CAVM_LOG_ERROR, "disk %s: flush and close: %s",
			 b->disk, bs_strerror(rc));
	virtio_pci_destroy(b->vp);
	close(b->stopfd);
	/* b stays in the list (control.c may still walk it): freed with
	 * the set. */
}

static void store_exit(void *opaque)
{
	struct blk_store *st = opaque;
	int rc = srv_destroy(st->srv); /* flush, close, unlock */
	st->srv = NULL;
	if (rc)
		fprintf(stderr, "cavm: store %s: final flush failed: %s\n",
			st->path, bs_strerror(rc));
}

static void set_exit(void *opaque)
{
	struct blk_set *set = opaque;
	while (set->disks) {
		struct blk *b = set->disks;
		set->disks = b->next;
		free(b);
	}
	while (set->stores) {
		struct blk_store *st = set->stores;
		set->stores = st->next;
		free(st);
	}
	free(set);
}

static int get_store(struct cavm *vm, struct blk_set *set, const char *path,
		     struct blk_store **out)
{
	char abs[PATH_MAX];
	if (!realpath(path, abs)) {
		int rc = -errno;
		cavm_log(vm, CAVM_LOG_ERROR, "store %s: %s", path,
			 strerror(errno));
		return rc;
	}
	for (struct blk_store *st = set->stores; st; st = st->next)
		if (!strcmp(st->path, abs)) {
			*out = st;
			return 0;
		}
	struct blk_store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	snprintf(st->path, sizeof(st->path), "%s", abs);
	struct srv_options o = {
		.store = st->path,
		.log_level = cavm_log_enabled(vm, CAVM_LOG_DEBUG) ? SRV_DEBUG
								  : SRV_INFO,
		.log_name = "cavm",
		.ctl_fn = control_request,
		.ctl_ctx = vm};
	int rc = srv_create(&o, &st->srv);
	if (rc) {
		cavm_log(vm, CAVM_LOG_ERROR, "cannot open store %s: %s%s",
			 st->path, bs_strerror(rc),
			 rc == CAS_ELOCKED ? " (another blkstored or cavm "
					     "owns it; stop that first)"
					   : "");
		free(st);
		/* Said in words above; the caller gets an errno. */
		return rc == CAS_ELOCKED ? -EBUSY : rc < -4095 ? -EINVAL : rc;
	}
	/* Registered before its disks' hooks, so it runs after them. */
	rc = cavm_at_exit(vm, store_exit, st);
	if (rc) {
		srv_destroy(st->srv);
		free(st);
		return rc;
	}
	st->next = set->stores;
	set->stores = st;
	*out = st;
	return 0;
}

/* "STORE:DISK[,ro]": the disk is after the last ':', options after a
 * ',' that follows it (disk names have neither). */
static int parse_spec(struct cavm *vm, const char *spec, char *store,
		      size_t slen, char *disk, bool *ro)
{
	const char *colon = strrchr(spec, ':');
	*ro = false;
	if (!colon || colon == spec) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "--disk %s: expected STORE:DISK[,ro]", spec);
		return -EINVAL;
	}
	const char *comma = strchr(colon, ',');
	size_t dlen = comma ? (size_t)(comma - colon - 1) : strlen(colon + 1);
	if (comma && strcmp(comma, ",ro")) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "--disk %s: unknown option '%s' (only ,ro)", spec,
			 comma + 1);
		return -EINVAL;
	}
	*ro = comma != NULL;
	char d[BS_NAME_MAX + 1], sn[BS_NAME_MAX + 1];
	if ((size_t)(colon - spec) >= slen || dlen >= BS_SPEC_MAX) {
		cavm_log(vm, CAVM_LOG_ERROR, "--disk %s: too long", spec);
		return -ENAMETOOLONG;
	}
	memcpy(store, spec, (size_t)(colon - spec));
	store[colon - spec] = 0;
	memcpy(disk, colon + 1, dlen);
	disk[dlen] = 0;
	if (bs_spec_parse(disk, d, sn)) {
		cavm_log(vm, CAVM_LOG_ERROR,
			 "--disk %s: '%s' is not a disk name (DISK or "
			 "DISK@SNAP)",
			 spec, disk);
		return -EINVAL;
	}
	return 0;
}

int cavm_blk_add(struct cavm *vm, const char *spec)
{
	char store[PATH_MAX];
	struct blk_set *set = set_of(vm, true);
	struct blk *b;
	int rc;

	if (!set)
		return -ENOMEM;
	if (!set->hooked) {
		rc = cavm_at_exit(vm, set_exit, set); /* runs last */
		if (rc)
			return rc;
		set->hooked = true;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vm = vm;
	b->stopfd = -1;
	rc = parse_spec(vm, spec, store, sizeof(store), b->disk, &b->readonly);
	if (rc)
		goto fail;
	rc = get_store(vm, set, store, &b->st);
	if (rc)
		goto fail;
	for (struct blk *o = set->disks; o; o = o->next)
		if (o->st == b->st && !strcmp(o->disk, b->disk)) {
			cavm_log(vm, CAVM_LOG_ERROR,
				 "--disk %s: that disk is attached already",
				 spec);
			rc = -EEXIST;
			goto fail;
		}
	rc = srv_call(b->st->srv, open_disk, b);
	if (rc) {
		cavm_log(vm, CAVM_LOG_ERROR, "--disk %s: %s", spec,
			 bs_strerror(rc));
		/* Said in words above; the caller gets an errno. */
		rc = rc == BS_ENODISK || rc == BS_ENOSNAP ? -ENOENT
		     : rc < -4095                         ? -EINVAL
							  : rc;
		goto fail;
	}
	b->stopfd = eventfd(0, EFD_CLOEXEC);
	rc = b->stopfd < 0 ? -errno : 0;
	if (!rc)
		rc = virtio_pci_create(vm, VIRTIO_ID_BLOCK,
				       PCI_CLASS_STORAGE_SCSI, 1,
				       BLK_QUEUE_SIZE, &blk_ops, b, &b->vp);
	if (!rc)
		rc = -pthread_create(&b->thread, NULL, io_main, b);
	if (!rc) {
		b->running = true;
		rc = cavm_at_exit(vm, blk_exit, b);
	}
	if (rc) {
		cavm_log(vm, CAVM_LOG_ERROR, "--disk %s: device: %s", spec,
			 strerror(-rc));
		if (b->running) {
			uint64_t one = 1;
			ssize_t w = write(b->stopfd, &one, sizeof(one));
			(void)w;
			pthread_join(b->thread, NULL);
		}
		srv_call(b->st->srv, close_disk, b);
		if (b->vp)
			return rc; /* on the bus: b stays (setup ends here) */
		goto fail;
	}
	*set->tail = b;
	set->tail = &b->next;
	cavm_log(vm, CAVM_LOG_INFO, "disk %s:%s%s on pci 00:%02x.0",
		 b->st->path, b->disk, b->readonly ? " (read-only)" : "",
		 virtio_pci_dev(b->vp)->slot);
	return 0;
fail:
	if (b->stopfd >= 0)
		close(b->stopfd);
	free(b);
	return rc;
}

/* ---- for the control socket ---- */

struct blk_store *blk_stores(struct cavm *vm)
{
	struct blk_set *set = set_of(vm, false);
	return set ? set->stores : NULL;
}

void blk_foreach(struct cavm *vm,
		 void (*fn)(void *arg, const struct blk_info *), void *arg)
{
	struct blk_set *set = set_of(vm, false);
	for (struct blk *b = set ? set->disks : NULL; b; b = b->next) {
		uint8_t cfg[8];
		vblk_dev_config(b->vdev, cfg, sizeof(cfg));
		uint64_t f = vblk_dev_features(b->vdev);
		struct blk_info i = {
			.store = b->st->path,
			.disk = b->disk,
			.readonly = (f & VBLK_F_RO) != 0,
			.broken = vblk_dev_broken(b->vdev),
			.capacity = le64_get(cfg) * BS_SECTOR,
			.status = virtio_pci_status(b->vp),
			.features = f,
			.kicks = b->kicks,
			.passes = b->passes,
			.requests = b->requests,
			.errors = b->errors,
			.irqs = virtio_pci_irqs(b->vp),
		};
		fn(arg, &i);
	}
}
