/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blk.h - cavm's virtio-blk disks on embedded stores (blk.c), as the
 * control socket (control.c) sees them: the stores cavm owns, each with
 * its blkstored-style server (store thread), and the disks on them.
 *
 * Invariants: a store is opened once however many disks use it (one
 * server, one store thread); a disk is attached at most once.  The
 * lists are built before the vCPUs start and never change afterwards,
 * so any thread may walk them.
 */
#ifndef CAVM_HYPERVISOR_BLK_H
#define CAVM_HYPERVISOR_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "blkstore/server.h"
#include "hypervisor/cavm.h"

struct blk_store {
	char path[4096]; /* as given, made absolute */
	struct srv *srv;
	struct blk_store *next;
};

struct blk_info {
	const char *store, *disk;
	bool readonly, broken;
	uint64_t capacity; /* bytes, as the guest was last told */
	uint8_t status;    /* virtio device_status */
	uint64_t features; /* offered */
	uint64_t kicks, passes, requests, errors, irqs;
};

struct blk_store *blk_stores(struct cavm *vm);
/* Calls fn for every disk, in --disk order. */
void blk_foreach(struct cavm *vm,
		 void (*fn)(void *arg, const struct blk_info *), void *arg);
/* On st's store thread, after something may have resized its disks (a
 * blkctl command): tell the guest about every capacity that changed. */
void blk_store_config_check(struct cavm *vm, struct blk_store *st);

/* control.c: the control socket's commands, given to every store's
 * server as srv_options.ctl_fn with the VM as ctx. */
int control_request(void *ctx, struct srv_conn *c, json_object *req,
		    const int *fds, int nfds, json_object *reply);

#endif
