/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * check.c - the expectation of a cut (see check.h) and the check of one
 * crash image against it.
 *
 * The check is the store's own tools plus the model: bs_fsck must find
 * every count right (no leak, no chunk freed early), bs_scrub no damaged
 * record, every disk and snapshot must read as the expectation allows,
 * a disk's allocated count must match the non-zero blocks read, the
 * segments alone must give back the same catalogue (the index file
 * deleted, rebuilt; CHECK_REBUILD), and when every disk and snapshot is
 * deleted and gc has run the store must be empty: no data, no nodes, at
 * most one segment file.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test/crash/check.h"

/* ---- the expectation ---- */

static int vl_add(struct vlist *l, long t, uint64_t v)
{
	if (l->n && l->v[l->n - 1].v == v)
		return 0;
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? 2 * l->cap : 2;
		struct ver *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = (struct ver){t, v};
	return 0;
}

static bool vl_has(const struct vlist *l, uint64_t v)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (l->v[i].v == v)
			return true;
	return false;
}

/* Keep in m[] (moments f..l) only those at which the list held v. */
static void vl_moments(const struct vlist *vl, uint64_t v, long f, long l,
		       uint8_t *m)
{
	for (uint32_t i = 0; i < vl->n; i++) {
		if (vl->v[i].v == v)
			continue;
		long from = vl->v[i].t;
		long to = i + 1 < vl->n ? vl->v[i + 1].t - 1 : l;
		for (long t = from < f ? f : from; t <= to && t <= l; t++)
			m[t - f] = 0;
	}
}

int exp_init(struct expect *x)
{
	uint8_t z[BS_BLOCK_SIZE] = {0};
	memset(x, 0, sizeof(*x));
	x->zero = wl_hash(z);
	x->f = x->l = -1;
	return 0;
}

static void ent_free(struct exp_ent *e)
{
	for (uint64_t i = 0; i < e->nblk; i++)
		free(e->blk[i].v);
	free(e->blk);
	free(e->size.v);
	memset(e, 0, sizeof(*e));
}

void exp_free(struct expect *x)
{
	for (int i = 0; i < x->nent; i++)
		ent_free(&x->e[i]);
	free(x->e);
	memset(x, 0, sizeof(*x));
}

static int grow(struct expect *x, int n)
{
	if (n <= x->nent)
		return 0;
	struct exp_ent *v = realloc(x->e, (size_t)n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + x->nent, 0, (size_t)(n - x->nent) * sizeof(*v));
	x->e = v;
	x->nent = n;
	return 0;
}

/* From moment t block b holds h.  A block not tracked so far was zero
 * (past the end, or a hole) since the entity's start. */
static int add_block(struct expect *x, struct exp_ent *e, uint64_t b, long t,
		     uint64_t h)
{
	if (b >= e->nblk) {
		struct vlist *v = realloc(e->blk, (b + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		e->blk = v;
		for (uint64_t i = e->nblk; i <= b; i++) {
			memset(&v[i], 0, sizeof(v[i]));
			if (vl_add(&v[i], e->start, x->zero))
				return -ENOMEM;
			e->nblk = i + 1;
		}
	}
	return vl_add(&e->blk[b], t, h);
}

/* A new entry that holds exactly what the model's entity holds now. */
static int ent_start(struct expect *x, struct exp_ent *e,
		     const struct wl_ent *m, long t)
{
	ent_free(e);
	e->start = t;
	int rc = vl_add(&e->size, t, m->size);
	for (uint64_t b = 0; !rc && b < wl_nblocks(m->size); b++)
		rc = add_block(x, e, b, t,
			       wl_hash(m->data + b * BS_BLOCK_SIZE));
	return rc;
}

int exp_begin(struct expect *x, const struct wl *w, long f)
{
	int rc = grow(x, w->nent);
	x->f = x->l = f;
	for (int i = 0; i < w->nent && !rc; i++) {
		if (!w->ent[i].live)
			continue;
		rc = ent_start(x, &x->e[i], &w->ent[i], f);
		x->e[i].at_f = true;
	}
	return rc;
}

static int note_range(struct expect *x, const struct wl *w, int i, long t,
		      uint64_t from, uint64_t to)
{
	const struct wl_ent *m = &w->ent[i];
	int rc = 0;
	for (uint64_t b = from; b < to && !rc; b++)
		rc = add_block(x, &x->e[i], b, t,
			       b < wl_nblocks(m->size)
				       ? wl_hash(m->data + b * BS_BLOCK_SIZE)
				       : x->zero);
	return rc;
}

int exp_note(struct expect *x, const struct wl *w, const struct wl_op *op,
	     uint64_t old_size)
{
	long t = (long)op->k;
	int rc = grow(x, w->nent);
	if (rc)
		return rc;
	x->l = t;
	switch (op->kind) {
	case W_WRITE:
	case W_FUA:
	case W_ZEROES:
	case W_DISCARD:
		return note_range(x, w, op->e, t, op->off / BS_BLOCK_SIZE,
				  (op->off + op->len - 1) / BS_BLOCK_SIZE + 1);
	case W_SNAP:
	case W_CLONE:
	case W_CREATE:
		rc = ent_start(x, &x->e[op->e2], &w->ent[op->e2], t);
		x->e[op->e2].created = true;
		return rc;
	case W_DEL_SNAP:
	case W_DEL_DISK:
		x->e[op->e].deleted = true;
		return 0;
	case W_RESIZE: {
		if (op->expect)
			return 0;
		uint64_t a = wl_nblocks(old_size), b = wl_nblocks(op->size);
		uint64_t lo = (a < b ? a : b), hi = (a < b ? b : a);
		rc = vl_add(&x->e[op->e].size, t, op->size);
		/* the new last block (its tail zeroed) and what was cut */
		return rc ? rc
			  : note_range(x, w, op->e, t, lo ? lo - 1 : 0, hi);
	}
	default:
		return 0;
	}
}

/* ---- the check ---- */

struct ctx {
	char *why;
	size_t n;
	int failed;
	struct bs_info *list;
	size_t nlist, caplist;
	unsigned fsck_lines, fsck_leaks;
	char fsck[4][256]; /* the first lines of a failing fsck */
};

static void fail(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	if (c->failed++)
		return; /* the first reason is the one worth reading */
	va_start(ap, fmt);
	vsnprintf(c->why, c->n, fmt, ap);
	va_end(ap);
}

static void fsck_line(void *arg, const char *line)
{
	struct ctx *c = arg;
	if (strstr(line, " distinct chunks reachable, "))
		return; /* the summary */
	if (strstr(line, "(leak)")) {
		c->fsck_leaks++;
		return;
	}
	if (c->fsck_lines < 4)
		snprintf(c->fsck[c->fsck_lines], sizeof(c->fsck[0]), "%s",
			 line);
	c->fsck_lines++;
}

/* fsck found problems: say so, with its first lines. */
static void fsck_fail(struct ctx *c, const char *when, int rc)
{
	if (rc < 0) {
		fail(c, "fsck%s: %s", when, bs_strerror(rc));
		return;
	}
	if (!c->fsck_lines) {
		fail(c,
		     "fsck%s: %u chunks leaked (count too high, no root "
		     "reaches them)",
		     when, c->fsck_leaks);
		return;
	}
	fail(c, "fsck%s: %d problems; first: %s%s%s", when, rc, c->fsck[0],
	     c->fsck_lines > 1 ? " | " : "",
	     c->fsck_lines > 1 ? c->fsck[1] : "");
}

/* fsck of a freshly opened image; known leaks repaired if allowed. */
static void fsck_first(struct ctx *c, bs_store *s, unsigned flags,
		       uint64_t *leaked)
{
	c->fsck_lines = c->fsck_leaks = 0;
	int rc = bs_fsck(s, 0, fsck_line, c);
	if (rc > 0 && !c->fsck_lines && (flags & CHECK_ALLOW_LEAKS)) {
		*leaked = c->fsck_leaks;
		c->fsck_lines = c->fsck_leaks = 0;
		rc = bs_fsck(s, BS_FSCK_REPAIR, fsck_line, c);
		if (rc >= 0 && !c->fsck_lines) {
			c->fsck_leaks = 0;
			rc = bs_fsck(s, 0, fsck_line, c);
		}
	}
	if (rc)
		fsck_fail(c, "", rc);
}

static int collect(void *arg, const struct bs_info *i)
{
	struct ctx *c = arg;
	if (c->nlist == c->caplist) {
		size_t cap = c->caplist ? 2 * c->caplist : 16;
		struct bs_info *v = realloc(c->list, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->list = v;
		c->caplist = cap;
	}
	c->list[c->nlist++] = *i;
	return 0;
}

static void spec_of(const struct bs_info *i, char *spec)
{
	if (i->snap[0])
		snprintf(spec, BS_SPEC_MAX, "%s@%s", i->disk, i->snap);
	else
		snprintf(spec, BS_SPEC_MAX, "%s", i->disk);
}

#define RBLOCKS 256u

static void check_one(struct ctx *c, bs_store *s, const struct bs_info *i,
		      const struct exp_ent *e, const char *spec,
		      const struct expect *x)
{
	long w = x->l - x->f + 1;
	uint8_t *when = malloc((size_t)w);
	if (!when) {
		fail(c, "out of memory");
		return;
	}
	/* the moments this entity existed, narrowed by what it holds */
	for (long t = 0; t < w; t++)
		when[t] = x->f + t >= e->start;
	if (!vl_has(&e->size, i->size)) {
		fail(c,
		     "%s has size %llu, never a size it had since the last "
		     "flush",
		     spec, (unsigned long long)i->size);
		free(when);
		return;
	}
	vl_moments(&e->size, i->size, x->f, x->l, when);
	bs_disk *d;
	int rc = bs_disk_open(s, spec, &d);
	if (rc) {
		fail(c, "%s: open: %s", spec, bs_strerror(rc));
		free(when);
		return;
	}
	uint8_t *buf = malloc(RBLOCKS * BS_BLOCK_SIZE);
	uint64_t nb = wl_nblocks(i->size), nonzero = 0;
	uint8_t zero[BS_BLOCK_SIZE] = {0};
	for (uint64_t b = 0; buf && b < nb && !c->failed; b += RBLOCKS) {
		uint64_t n = nb - b < RBLOCKS ? nb - b : RBLOCKS;
		uint64_t off = b * BS_BLOCK_SIZE, len = n * BS_BLOCK_SIZE;
		if (off + len > i->size)
			len = i->size - off;
		memset(buf, 0, n * BS_BLOCK_SIZE);
		rc = bs_disk_read(d, buf, len, off);
		if (rc) {
			fail(c, "%s: read at %llu: %s", spec,
			     (unsigned long long)off, bs_strerror(rc));
			break;
		}
		for (uint64_t k = 0; k < n; k++) {
			const uint8_t *blk = buf + k * BS_BLOCK_SIZE;
			uint64_t h = wl_hash(blk);
			bool tracked = b + k < e->nblk;
			bool ok = tracked ? vl_has(&e->blk[b + k], h)
					  : h == x->zero;
			nonzero += memcmp(blk, zero, BS_BLOCK_SIZE) != 0;
			if (!ok) {
				fail(c,
				     "%s: block %llu holds content it "
				     "never had since the last flush "
				     "(%u versions allowed)",
				     spec, (unsigned long long)(b + k),
				     tracked ? e->blk[b + k].n : 1);
				break;
			}
			if (tracked)
				vl_moments(&e->blk[b + k], h, x->f, x->l, when);
		}
	}
	if (!buf)
		fail(c, "out of memory");
	if (!c->failed && nonzero != i->allocated)
		fail(c,
		     "%s: catalogue says %llu allocated blocks, %llu "
		     "non-zero blocks read",
		     spec, (unsigned long long)i->allocated,
		     (unsigned long long)nonzero);
	bool one = false;
	for (long t = 0; t < w; t++)
		one |= when[t];
	if (!c->failed && !one)
		fail(c,
		     "%s: torn across commits: its size and each block are "
		     "versions it had since the last flush, but no single "
		     "moment (op %ld..%ld) had them all",
		     spec, x->f, x->l);
	free(when);
	free(buf);
	rc = bs_disk_close(d);
	if (rc)
		fail(c, "%s: close: %s", spec, bs_strerror(rc));
}

static unsigned count_segments(const char *path)
{
	char p[4200];
	unsigned n = 0;
	snprintf(p, sizeof(p), "%s/segments", path);
	DIR *d = opendir(p);
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += strstr(e->d_name, ".seg") != NULL;
	if (d)
		closedir(d);
	return n;
}

static bool same_info(const struct bs_info *a, const struct bs_info *b)
{
	return !strcmp(a->disk, b->disk) && !strcmp(a->snap, b->snap) &&
	       a->size == b->size && !memcmp(&a->root, &b->root, sizeof(a->root)) &&
	       a->allocated == b->allocated && a->created == b->created &&
	       !strcmp(a->origin, b->origin);
}

/*
 * The segments alone must give the catalogue the index has: close the
 * image (the open cut off what was not committed), lose the index file,
 * rebuild (a clean one: every count set from the roots), and list again.
 * *s is the reopened store, or NULL.
 */
static void check_rebuild(struct ctx *c, bs_store **s, const char *path)
{
	char p[4200];
	struct ctx again = {0};
	int rc = bs_store_close(*s);
	*s = NULL;
	if (rc) {
		fail(c, "close before rebuild: %s", bs_strerror(rc));
		return;
	}
	snprintf(p, sizeof(p), "%s/index/data.mdb", path);
	if (unlink(p)) {
		fail(c, "unlink %s: %s", p, strerror(errno));
		return;
	}
	rc = bs_rebuild(path, NULL, NULL);
	if (rc) {
		fail(c, "rebuild from the segments alone: %s",
		     rc < 0 ? bs_strerror(rc) : "problems found");
		return;
	}
	rc = bs_store_open(path, NULL, s);
	if (rc) {
		fail(c, "open after rebuild: %s", bs_strerror(rc));
		*s = NULL;
		return;
	}
	rc = bs_list(*s, collect, &again);
	if (rc)
		fail(c, "list after rebuild: %s", bs_strerror(rc));
	else if (again.nlist != c->nlist)
		fail(c, "rebuild from the segments: %zu disks and snapshots, "
			"the index had %zu",
		     again.nlist, c->nlist);
	for (size_t k = 0; k < c->nlist && !c->failed; k++)
		if (!same_info(&c->list[k], &again.list[k]))
			fail(c, "rebuild from the segments: %s%s%s differs "
				"from the index's (root, size or times)",
			     c->list[k].disk, c->list[k].snap[0] ? "@" : "",
			     c->list[k].snap);
	free(again.list);
}

/* Delete everything (snapshots first), gc: the store must be empty. */
static void check_empty(struct ctx *c, bs_store *s, const char *path)
{
	char spec[BS_SPEC_MAX];
	struct bs_store_stat st;
	struct cas_stat cs;
	int rc = 0;
	for (int pass = 0; pass < 2 && !rc; pass++)
		for (size_t k = 0; k < c->nlist && !rc; k++) {
			if ((pass == 0) != (c->list[k].snap[0] != 0))
				continue;
			spec_of(&c->list[k], spec);
			rc = bs_delete(s, spec);
			if (rc)
				fail(c, "delete %s: %s", spec, bs_strerror(rc));
		}
	if (rc)
		return;
	rc = bs_gc(s, NULL);
	if (!rc)
		rc = bs_store_stat(s, &st);
	if (!rc)
		rc = cas_stat(bs_store_cas(s), &cs);
	if (rc) {
		fail(c, "gc/stat after deleting everything: %s",
		     bs_strerror(rc));
		return;
	}
	if (st.stored_bytes || st.unique_data_chunks || st.node_chunks ||
	    cs.chunks)
		fail(c,
		     "leak: everything deleted and gc'ed, yet %llu stored "
		     "bytes, %llu data chunks, %llu node chunks, %llu index "
		     "entries remain",
		     (unsigned long long)st.stored_bytes,
		     (unsigned long long)st.unique_data_chunks,
		     (unsigned long long)st.node_chunks,
		     (unsigned long long)cs.chunks);
	else if (cs.segment_files > 1 || count_segments(path) > 1)
		fail(c,
		     "leak: everything deleted and gc'ed, yet %llu segments "
		     "indexed and %u segment files remain",
		     (unsigned long long)cs.segment_files,
		     count_segments(path));
	c->fsck_lines = c->fsck_leaks = 0;
	rc = bs_fsck(s, 0, fsck_line, c);
	if (rc)
		fsck_fail(c, " after deleting everything", rc);
}

int check_image(const char *path, const struct wl *w, const struct expect *x,
		unsigned flags, struct check_result *r)
{
	struct ctx c = {.why = r->why, .n = sizeof(r->why)};
	char spec[BS_SPEC_MAX], p[4200], q[4200];
	uint64_t checked = 0, damaged = 0;
	bs_store *s;
	int rc;
	snprintf(p, sizeof(p), "%s/index/data.mdb", path);
	snprintf(q, sizeof(q), "%s/store.conf", path);
	/* (An image cut during store creation is left to the open.) */
	if ((flags & CHECK_RAW_REBUILD) && !access(p, F_OK) && !access(q, F_OK)) {
		if (unlink(p)) {
			fail(&c, "unlink %s: %s", p, strerror(errno));
			return 1;
		}
		rc = bs_rebuild(path, NULL, NULL);
		if (rc) {
			fail(&c, "rebuild of the raw image from its segments: %s",
			     rc < 0 ? bs_strerror(rc)
				    : "problems found (a chunk named but missing?)");
			return 1;
		}
	}
	rc = bs_store_open(path, NULL, &s);
	if (rc) {
		fail(&c, "bs_store_open: %s", bs_strerror(rc));
		return 1;
	}
	r->why[0] = 0;
	r->leaked = 0;
	fsck_first(&c, s, flags, &r->leaked);
	rc = bs_scrub(s, NULL, NULL, &checked, &damaged);
	if (rc || damaged)
		fail(&c, "scrub: %s, %llu of %llu chunks damaged",
		     bs_strerror(rc), (unsigned long long)damaged,
		     (unsigned long long)checked);
	rc = bs_list(s, collect, &c);
	if (rc)
		fail(&c, "list: %s", bs_strerror(rc));
	for (size_t k = 0; k < c.nlist && !c.failed; k++) {
		spec_of(&c.list[k], spec);
		int i = wl_find(w, spec);
		if (i < 0 || i >= x->nent ||
		    !(x->e[i].at_f || x->e[i].created)) {
			fail(&c, "%s exists, but %s", spec,
			     i < 0 || i >= x->nent
				     ? "was never created before the cut"
				     : "was deleted before the last flush");
			break;
		}
		check_one(&c, s, &c.list[k], &x->e[i], spec, x);
	}
	for (int i = 0; i < x->nent && !c.failed; i++) {
		bool found = false;
		if (!x->e[i].at_f || x->e[i].deleted)
			continue;
		for (size_t k = 0; k < c.nlist && !found; k++) {
			spec_of(&c.list[k], spec);
			found = !strcmp(spec, w->ent[i].name);
		}
		if (!found)
			fail(&c,
			     "%s existed at the last flush and was not "
			     "deleted since, but is gone",
			     w->ent[i].name);
	}
	if (!c.failed && (flags & CHECK_REBUILD))
		check_rebuild(&c, &s, path);
	if (!c.failed)
		check_empty(&c, s, path);
	rc = s ? bs_store_close(s) : 0;
	if (rc)
		fail(&c, "close: %s", bs_strerror(rc));
	free(c.list);
	return c.failed ? 1 : 0;
}
