/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * wl_exec.c - the child's side of the workload: run one operation on
 * the store and hold the store to the model while it is alive.
 *
 * Every call's result is checked against op->expect, and a read is
 * compared with the model byte for byte, so a bug that needs no crash
 * at all is reported as such (with the operation) before any crash image
 * is built.  Every live disk stays open (as under a daemon), so flushes
 * are group commits over all of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/crash/workload.h"

#define FAIL(w, ...)                                               \
	do {                                                       \
		snprintf((w)->err, sizeof((w)->err), __VA_ARGS__); \
		return -1;                                         \
	} while (0)

static int want(struct wl *w, const struct wl_op *op, const char *what, int rc,
		int expect)
{
	char d[256];
	if (rc == expect)
		return 0;
	wl_describe(w, op, d, sizeof(d));
	FAIL(w, "%s: %s returned %d (%s), expected %d (%s)", d, what, rc,
	     bs_strerror(rc), expect, bs_strerror(expect));
}

static int check_read(struct wl *w, const struct wl_op *op, bs_disk *h,
		      const struct wl_ent *e)
{
	char d[256];
	uint8_t *b = malloc(op->len ? op->len : 1);
	if (!b)
		FAIL(w, "out of memory");
	int rc = bs_disk_read(h, b, op->len, op->off);
	if (!rc && bs_disk_size(h) != e->size) {
		wl_describe(w, op, d, sizeof(d));
		free(b);
		FAIL(w, "%s: %s has size %llu, model %llu", d, e->name,
		     (unsigned long long)bs_disk_size(h),
		     (unsigned long long)e->size);
	}
	if (!rc && memcmp(b, e->data + op->off, (size_t)op->len)) {
		uint64_t i = 0;
		while (b[i] == e->data[op->off + i])
			i++;
		wl_describe(w, op, d, sizeof(d));
		free(b);
		FAIL(w, "%s: %s differs from the model at byte %llu", d,
		     e->name, (unsigned long long)(op->off + i));
	}
	free(b);
	return want(w, op, "bs_disk_read", rc, 0);
}

/* Open every live disk (and every held snapshot) after an open. */
static int reopen_all(struct wl *w, const struct wl_op *op)
{
	struct bs_store_options o;
	bs_store_options_default(&o);
	o.dirty_limit = w->cfg.dirty_limit;
	o.io_engine = CAS_IO_SYNC; /* what the recorder sees (pc_record.c) */
	int rc = bs_store_open(w->path, &o, &w->s);
	if (want(w, op, "bs_store_open", rc, 0))
		return -1;
	for (int i = 0; i < w->nent; i++) {
		struct wl_ent *e = &w->ent[i];
		bool held = e->h != NULL;
		e->h = NULL;
		if (e->live && (!e->snap || held) &&
		    want(w, op, "bs_disk_open",
			 bs_disk_open(w->s, e->name, &e->h), 0))
			return -1;
	}
	return 0;
}

int wl_exec(struct wl *w, const struct wl_op *op)
{
	struct wl_ent *e = op->e >= 0 ? &w->ent[op->e] : NULL;
	struct wl_ent *n = op->e2 >= 0 ? &w->ent[op->e2] : NULL;
	bs_store *s = w->s;
	int rc;

	switch (op->kind) {
	case W_WRITE:
	case W_FUA:
		rc = bs_disk_write(e->h, op->buf, op->len, op->off);
		if (want(w, op, "bs_disk_write", rc, 0))
			return -1;
		if (op->kind == W_FUA)
			return want(w, op, "bs_disk_flush", bs_disk_flush(e->h),
				    0);
		return 0;
	case W_ZEROES:
		rc = bs_disk_write_zeroes(e->h, op->len, op->off);
		return want(w, op, "bs_disk_write_zeroes", rc, 0);
	case W_DISCARD:
		rc = bs_disk_discard(e->h, op->len, op->off);
		return want(w, op, "bs_disk_discard", rc, 0);
	case W_FLUSH:
		rc = e ? bs_disk_flush(e->h) : bs_store_flush(s);
		return want(w, op, "flush", rc, 0);
	case W_SNAP:
		rc = bs_snapshot(s, e->name, strchr(n->name, '@') + 1);
		return want(w, op, "bs_snapshot", rc, 0);
	case W_CLONE:
	case W_CREATE:
		if (op->kind == W_CLONE)
			rc = bs_clone(s, e->name, n->name);
		else
			rc = bs_disk_create(s, n->name, op->size);
		if (want(w, op, "create/clone", rc, 0))
			return -1;
		return want(w, op, "bs_disk_open",
			    bs_disk_open(s, n->name, &n->h), 0);
	case W_DEL_SNAP:
	case W_DEL_DISK:
		if (e->h) {
			rc = bs_disk_close(e->h);
			e->h = NULL;
			if (want(w, op, "bs_disk_close", rc, 0))
				return -1;
		}
		return want(w, op, "bs_delete", bs_delete(s, e->name), 0);
	case W_RESIZE: {
		uint64_t before = bs_disk_size(e->h);
		rc = bs_resize(s, e->name, op->size, op->flags);
		if (want(w, op, "bs_resize", rc, op->expect))
			return -1;
		uint64_t now = bs_disk_size(e->h);
		if (now != (rc ? before : op->size))
			FAIL(w, "resize of %s to %llu: the open disk says %llu",
			     e->name, (unsigned long long)op->size,
			     (unsigned long long)now);
		return 0;
	}
	case W_GC:
		return want(w, op, "bs_gc", bs_gc(s, NULL), 0);
	case W_REOPEN:
	case W_REBUILD:
	case W_CLOSE:
		rc = bs_store_close(s);
		w->s = NULL;
		if (want(w, op, "bs_store_close", rc, 0))
			return -1;
		if (op->kind == W_CLOSE) {
			wl_drop_handles(w);
			return 0;
		}
		if (op->kind == W_REBUILD &&
		    want(w, op, "bs_rebuild", bs_rebuild(w->path, NULL, NULL),
			 0))
			return -1;
		return reopen_all(w, op);
	case W_READ:
		if (e->h)
			return check_read(w, op, e->h, e);
		bs_disk *h;
		rc = bs_disk_open(s, e->name, &h);
		if (want(w, op, "bs_disk_open", rc, 0))
			return -1;
		rc = check_read(w, op, h, e);
		int rc2 = bs_disk_close(h);
		return rc ? rc : want(w, op, "bs_disk_close", rc2, 0);
	case W_HOLD: /* toggle: a snapshot held open across what follows */
		if (e->h) {
			rc = bs_disk_close(e->h);
			e->h = NULL;
			return want(w, op, "bs_disk_close", rc, 0);
		}
		return want(w, op, "bs_disk_open",
			    bs_disk_open(s, e->name, &e->h), 0);
	default:
		FAIL(w, "unknown operation %d", op->kind);
	}
}

void wl_drop_handles(struct wl *w)
{
	for (int i = 0; i < w->nent; i++)
		w->ent[i].h = NULL;
}
