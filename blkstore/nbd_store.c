/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd_store.c - what the NBD server asks of the store, as closures for
 * the store thread: open and close exports, list them, read, write,
 * trim, zero, flush, and block status.
 *
 * The one idea: each function here is called on a connection thread and
 * returns only after its closure ran on the store thread (srv_call), so
 * the blkstore API is only ever entered from that one thread.  The
 * closures do nothing but store calls: no socket I/O, no waiting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkstore/nbd_int.h"

uint32_t nbd_errno(int err, bool writing)
{
	switch (err) {
	case 0:
		return 0;
	case BS_EROFS:
	case -EPERM:
	case -EACCES:
	case -EROFS:
		return NBD_EPERM;
	case BS_ERANGE: /* the disk shrank under the export */
		return writing ? NBD_ENOSPC : NBD_EINVAL;
	case -ENOSPC:
	case -EDQUOT:
	case -EFBIG:
		return NBD_ENOSPC;
	case -ENOMEM:
		return NBD_ENOMEM;
	case -EINVAL:
	case BS_EBADSIZE:
		return NBD_EINVAL;
	default:
		return NBD_EIO;
	}
}

int nbd_resolve(struct srv *s, const char *name, char out[BS_SPEC_MAX])
{
	char disk[BS_NAME_MAX + 1], snap[BS_NAME_MAX + 1];
	if (!*name) {
		name = srv_options(s)->default_export;
		if (!name)
			return BS_ENODISK;
	}
	/* Pure string checks: safe on any thread. */
	if (strlen(name) >= BS_SPEC_MAX || bs_spec_parse(name, disk, snap))
		return BS_EBADNAME;
	strcpy(out, name);
	return 0;
}

/* ---- exports ---- */

struct open_arg {
	const char *spec;
	struct nbd_export *e;
	bool peek; /* close again at once: only size and mode wanted */
};

static int do_open(bs_store *st, void *arg)
{
	struct open_arg *a = arg;
	bs_disk *d;
	int rc = bs_disk_open(st, a->spec, &d);
	if (rc)
		return rc;
	a->e->size = bs_disk_size(d);
	a->e->ro = bs_disk_readonly(d);
	if (a->peek)
		return bs_disk_close(d);
	a->e->d = d;
	return 0;
}

int nbd_export_open(struct srv *s, const char *spec, struct nbd_export *e)
{
	struct open_arg a = {spec, e, false};
	memset(e, 0, sizeof(*e));
	int rc = srv_call(s, do_open, &a);
	if (!rc)
		strcpy(e->name, spec);
	return rc;
}

int nbd_export_peek(struct srv *s, const char *spec, uint64_t *size, bool *ro)
{
	struct nbd_export e = {0};
	struct open_arg a = {spec, &e, true};
	int rc = srv_call(s, do_open, &a);
	if (size)
		*size = e.size;
	if (ro)
		*ro = e.ro;
	return rc;
}

static int do_close(bs_store *st, void *arg)
{
	(void)st;
	return bs_disk_close(arg);
}

void nbd_export_close(struct srv *s, struct nbd_export *e)
{
	if (!e->d)
		return;
	int rc = srv_call(s, do_close, e->d);
	if (rc)
		srv_log(s, SRV_ERROR, "nbd: closing export %s: %s", e->name,
			bs_strerror(rc));
	e->d = NULL;
}

struct list_arg {
	char *names;
	size_t len, cap, count;
};

static int list_one(void *arg, const struct bs_info *i)
{
	struct list_arg *a = arg;
	size_t need = strlen(i->disk) + 1 + strlen(i->snap) + 1;
	if (a->len + need + 1 > a->cap) {
		size_t cap = (a->cap + need + 1) * 2;
		char *n = realloc(a->names, cap);
		if (!n)
			return -ENOMEM;
		a->names = n;
		a->cap = cap;
	}
	char *p = a->names + a->len;
	if (i->snap[0])
		a->len += (size_t)sprintf(p, "%s@%s", i->disk, i->snap) + 1;
	else
		a->len += (size_t)sprintf(p, "%s", i->disk) + 1;
	a->names[a->len] = 0;
	a->count++;
	return 0;
}

static int do_list(bs_store *st, void *arg)
{
	return bs_list(st, list_one, arg);
}

int nbd_export_list(struct srv *s, char **names, size_t *count)
{
	struct list_arg a = {0};
	int rc = srv_call(s, do_list, &a);
	if (!rc && !a.names)
		a.names = calloc(1, 1);
	if (!rc && !a.names)
		rc = -ENOMEM;
	if (rc) {
		free(a.names);
		return rc;
	}
	*names = a.names;
	*count = a.count;
	return 0;
}

/* ---- I/O ---- */

struct io_arg {
	bs_disk *d;
	enum nbd_op op;
	void *buf;
	uint64_t off, len;
	bool fua;
};

static int do_io(bs_store *st, void *arg)
{
	struct io_arg *a = arg;
	int rc = 0;
	(void)st;
	switch (a->op) {
	case NBD_OP_READ:
		return bs_disk_read(a->d, a->buf, a->len, a->off);
	case NBD_OP_WRITE:
		rc = bs_disk_write(a->d, a->buf, a->len, a->off);
		break;
	case NBD_OP_TRIM:
		rc = bs_disk_discard(a->d, a->len, a->off);
		break;
	case NBD_OP_ZERO:
		rc = bs_disk_write_zeroes(a->d, a->len, a->off);
		break;
	case NBD_OP_FLUSH:
		return bs_disk_flush(a->d);
	}
	return (rc || !a->fua) ? rc : bs_disk_flush(a->d);
}

int nbd_disk_io(struct srv *s, bs_disk *d, enum nbd_op op, void *buf,
		uint64_t off, uint64_t len, bool fua)
{
	struct io_arg a = {d, op, buf, off, len, fua};
	return srv_call(s, do_io, &a);
}

struct spans_arg {
	bs_disk *d;
	struct nbd_span *v;
	unsigned n;
};

static int do_names(bs_store *st, void *arg)
{
	struct spans_arg *a = arg;
	(void)st;
	for (unsigned i = 0; i < a->n; i++) {
		struct nbd_span *v = &a->v[i];
		if (!v->rc)
			v->rc = bs_disk_names(a->d, v->off, v->len, v->names);
	}
	return 0;
}

void nbd_disk_names(struct srv *s, bs_disk *d, struct nbd_span *v, unsigned n)
{
	struct spans_arg a = {d, v, n};
	srv_call(s, do_names, &a);
}

static int do_write_prepared(bs_store *st, void *arg)
{
	struct spans_arg *a = arg;
	(void)st;
	for (unsigned i = 0; i < a->n; i++) {
		struct nbd_span *v = &a->v[i];
		if (i && v[-1].req == v->req && v[-1].rc && !v->rc)
			v->rc = v[-1].rc; /* the request failed already */
		if (v->rc)
			continue;
		if (v->len)
			v->rc = bs_disk_write_prepared(a->d, v->buf, v->len,
						       v->off, v->p);
		if (!v->rc && v->fua)
			v->rc = bs_disk_flush(a->d);
	}
	return 0;
}

void nbd_disk_write_prepared(struct srv *s, bs_disk *d, struct nbd_span *v,
			     unsigned n)
{
	struct spans_arg a = {d, v, n};
	srv_call(s, do_write_prepared, &a);
}

/* How far one request may make the store thread scan: the rest is left
 * for the client's next request (the spec allows a short reply). */
#define EXTENT_SCAN_MAX (1ull << 30)

struct ext_arg {
	bs_disk *d;
	uint64_t off, len;
	struct nbd_extent *ext;
	unsigned max, n;
};

static int do_extents(bs_store *st, void *arg)
{
	struct ext_arg *a = arg;
	uint64_t pos = a->off;
	uint64_t end =
		a->off + (a->len < EXTENT_SCAN_MAX ? a->len : EXTENT_SCAN_MAX);
	(void)st;
	a->n = 0;
	while (pos < end) {
		bool hole;
		uint64_t run;
		int rc =
			bs_disk_block_status(a->d, pos, end - pos, &hole, &run);
		if (rc)
			return a->n ? 0 : rc; /* report what we have */
		if (run == 0 || run > end - pos)
			return a->n ? 0 : -EIO;
		uint32_t flags = hole ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
		if (a->n && a->ext[a->n - 1].flags == flags) {
			a->ext[a->n - 1].len += (uint32_t)run;
		} else {
			if (a->n == a->max)
				break;
			a->ext[a->n++] =
				(struct nbd_extent){(uint32_t)run, flags};
		}
		pos += run;
	}
	return 0;
}

int nbd_disk_extents(struct srv *s, bs_disk *d, uint64_t off, uint64_t len,
		     struct nbd_extent *ext, unsigned max, unsigned *n)
{
	struct ext_arg a = {d, off, len, ext, max, 0};
	int rc = srv_call(s, do_extents, &a);
	*n = a.n;
	return rc;
}
