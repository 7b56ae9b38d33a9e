/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_disk.c - the commands about disks and snapshots as names:
 * create, list, info, snapshot, clone, delete, resize, diff.
 *
 * Each is one library call and its printing.  Human output is a table
 * with sizes as "1.0 GiB"; --json is one document on one line with exact
 * byte counts, for scripts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/blkctl.h"

int bc_cmd_create(bs_store *s, const struct bc_args *a)
{
	uint64_t size;
	int rc = bc_size_arg(a->cmd, "size", a->argv[1], &size);
	if (rc)
		return rc;
	rc = bs_disk_create(s, a->argv[0], size);
	if (rc)
		return bc_fail(rc, "create '%s' of size '%s'", a->argv[0],
			       a->argv[1]);
	return BC_EXIT_OK;
}

/* ---- list and info ---- */

static json_object *info_json(const struct bs_info *i)
{
	char spec[BS_SPEC_MAX], hex[2 * CAS_NAME_SIZE + 1], t[BC_TIME_MAX];
	json_object *o = json_object_new_object();
	bc_info_spec(i, spec);
	cas_name_format(&i->root, hex);
	bc_json_add_str(o, "name", spec);
	bc_json_add_str(o, "disk", i->disk);
	if (i->snap[0])
		bc_json_add_str(o, "snapshot", i->snap);
	bc_json_add_u64(o, "size", i->size);
	bc_json_add_u64(o, "allocated_bytes", i->allocated * BS_BLOCK_SIZE);
	bc_json_add_str(o, "root", hex);
	bc_json_add_str(o, "origin", i->origin);
	bc_json_add_str(o, "created", bc_iso_time(i->created, t));
	bc_json_add_u64(o, "created_unix", i->created);
	return o;
}

struct list_ctx {
	json_object *disks; /* --json: the array of disks */
	json_object *snaps; /* the current disk's "snapshots" */
	struct bs_info *v;  /* human: every row, to size the columns */
	size_t n, cap;
};

static int list_one(void *arg, const struct bs_info *i)
{
	struct list_ctx *c = arg;
	if (c->disks) {
		json_object *o = info_json(i);
		if (i->snap[0] && c->snaps) {
			json_object_array_add(c->snaps, o);
		} else {
			c->snaps = json_object_new_array();
			json_object_object_add(o, "snapshots", c->snaps);
			json_object_array_add(c->disks, o);
		}
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct bs_info *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = *i;
	return 0;
}

static void list_table(const struct list_ctx *c)
{
	char spec[BS_SPEC_MAX], sz[BC_HSIZE_MAX], al[BC_HSIZE_MAX];
	char t[BC_TIME_MAX];
	int w = 4, wo = 6; /* "NAME", "ORIGIN" */
	for (size_t k = 0; k < c->n; k++) {
		bc_info_spec(&c->v[k], spec);
		if ((int)strlen(spec) > w)
			w = (int)strlen(spec);
		if ((int)strlen(c->v[k].origin) > wo)
			wo = (int)strlen(c->v[k].origin);
	}
	fprintf(BC_OUT, "%-*s  %10s  %10s  %-*s  %s\n", w, "NAME", "SIZE", "ALLOCATED",
	       wo, "ORIGIN", "CREATED");
	for (size_t k = 0; k < c->n; k++) {
		const struct bs_info *i = &c->v[k];
		bc_info_spec(i, spec);
		fprintf(BC_OUT, "%-*s  %10s  %10s  %-*s  %s\n", w, spec,
		       bc_human_size(i->size, sz),
		       bc_human_size(i->allocated * BS_BLOCK_SIZE, al), wo,
		       i->origin[0] ? i->origin : "-",
		       bc_iso_time(i->created, t));
	}
}

int bc_cmd_list(bs_store *s, const struct bc_args *a)
{
	struct list_ctx c = {0};
	bool json = a->opts & BC_OPT_JSON;
	if (json)
		c.disks = json_object_new_array();
	int rc = bs_list(s, list_one, &c);
	if (rc) {
		json_object_put(c.disks);
		free(c.v);
		return bc_fail(rc, "list '%s'", a->store);
	}
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "disks", c.disks);
		bc_json_print(o);
	} else {
		list_table(&c);
	}
	free(c.v);
	return BC_EXIT_OK;
}

int bc_cmd_info(bs_store *s, const struct bc_args *a)
{
	struct bs_info i;
	struct bs_usage u;
	char spec[BS_SPEC_MAX], hex[2 * CAS_NAME_SIZE + 1];
	char h[BC_HSIZE_MAX], t[BC_TIME_MAX];
	int rc = bs_info(s, a->argv[0], &i);
	if (!rc)
		rc = bs_usage(s, a->argv[0], &u);
	if (rc)
		return bc_fail(rc, "info '%s'", a->argv[0]);
	if (a->opts & BC_OPT_JSON) {
		json_object *o = info_json(&i);
		bc_json_add_u64(o, "unique_data_chunks", u.unique_data);
		bc_json_add_u64(o, "map_nodes", u.nodes);
		json_object_object_add(o, "open",
				       json_object_new_boolean(i.is_open));
		bc_json_print(o);
		return BC_EXIT_OK;
	}
	bc_info_spec(&i, spec);
	cas_name_format(&i.root, hex);
	fprintf(BC_OUT, "%-20s %s\n", "name", spec);
	fprintf(BC_OUT, "%-20s %s (%llu bytes)\n", "size", bc_human_size(i.size, h),
	       (unsigned long long)i.size);
	fprintf(BC_OUT, "%-20s %s (%llu blocks)\n", "allocated",
	       bc_human_size(i.allocated * BS_BLOCK_SIZE, h),
	       (unsigned long long)i.allocated);
	fprintf(BC_OUT, "%-20s %s\n", "root", hex);
	fprintf(BC_OUT, "%-20s %s\n", "origin", i.origin[0] ? i.origin : "-");
	fprintf(BC_OUT, "%-20s %s\n", "created", bc_iso_time(i.created, t));
	fprintf(BC_OUT, "%-20s %llu\n", "unique data chunks",
	       (unsigned long long)u.unique_data);
	fprintf(BC_OUT, "%-20s %llu\n", "map nodes", (unsigned long long)u.nodes);
	return BC_EXIT_OK;
}

/* ---- snapshot, clone, delete ---- */

int bc_cmd_snapshot(bs_store *s, const struct bc_args *a)
{
	char disk[BS_NAME_MAX + 1], snap[BS_NAME_MAX + 1];
	int rc = bs_spec_parse(a->argv[0], disk, snap);
	if (rc)
		return bc_fail(rc, "snapshot '%s'", a->argv[0]);
	if (!snap[0])
		return bc_usage_error("snapshot: expected DISK@SNAP, got '%s'",
				      a->argv[0]);
	rc = bs_snapshot(s, disk, snap);
	if (rc)
		return bc_fail(rc, "snapshot '%s'", a->argv[0]);
	return BC_EXIT_OK;
}

int bc_cmd_clone(bs_store *s, const struct bc_args *a)
{
	int rc = bs_clone(s, a->argv[0], a->argv[1]);
	if (rc)
		return bc_fail(rc, "clone '%s' to '%s'", a->argv[0],
			       a->argv[1]);
	return BC_EXIT_OK;
}

int bc_cmd_delete(bs_store *s, const struct bc_args *a)
{
	int rc = bs_delete(s, a->argv[0]);
	if (rc)
		return bc_fail(rc, "delete '%s'", a->argv[0]);
	return BC_EXIT_OK;
}

/* ---- resize ---- */

int bc_cmd_resize(bs_store *s, const struct bc_args *a)
{
	const char *arg = a->argv[1];
	struct bs_info i;
	uint64_t v, size;
	char disk[BS_NAME_MAX + 1], snap[BS_NAME_MAX + 1];
	int sign = (*arg == '+') - (*arg == '-');

	int rc = bc_size_arg(a->cmd, "size", sign ? arg + 1 : arg, &v);
	if (rc)
		return rc;
	rc = bs_spec_parse(a->argv[0], disk, snap);
	if (!rc && snap[0])
		rc = BS_EROFS;
	if (!rc)
		rc = bs_info(s, a->argv[0], &i);
	if (rc)
		return bc_fail(rc, "resize '%s'", a->argv[0]);
	size = v;
	if (sign > 0 && v > UINT64_MAX - i.size)
		rc = BS_EBADSIZE;
	else if (sign > 0)
		size = i.size + v;
	else if (sign < 0)
		size = v < i.size ? i.size - v : 0; /* 0: refused below */
	if (!rc)
		rc = bs_resize(s, a->argv[0], size,
			       (a->opts & BC_OPT_FORCE) ? BS_RESIZE_FORCE : 0);
	if (rc)
		return bc_fail(rc, "resize '%s' to '%s'", a->argv[0], arg);
	return BC_EXIT_OK;
}

/* ---- diff ---- */

struct diff_ctx {
	bool json;
	json_object *ranges;
	uint64_t off, len; /* the range being merged; len 0 = none */
	uint64_t total, count;
};

static void diff_emit(struct diff_ctx *c)
{
	if (!c->len)
		return;
	c->total += c->len;
	c->count++;
	if (c->json) {
		json_object *r = json_object_new_object();
		bc_json_add_u64(r, "offset", c->off);
		bc_json_add_u64(r, "length", c->len);
		json_object_array_add(c->ranges, r);
	} else {
		fprintf(BC_OUT, "%llu %llu\n", (unsigned long long)c->off,
		       (unsigned long long)c->len);
	}
	c->len = 0;
}

/* The library may report adjacent runs separately: print them merged. */
static int diff_one(void *arg, uint64_t off, uint64_t len)
{
	struct diff_ctx *c = arg;
	if (c->len && c->off + c->len == off) {
		c->len += len;
		return 0;
	}
	diff_emit(c);
	c->off = off;
	c->len = len;
	return 0;
}

int bc_cmd_diff(bs_store *s, const struct bc_args *a)
{
	struct diff_ctx c = {.json = a->opts & BC_OPT_JSON};
	char h[BC_HSIZE_MAX];
	if (c.json)
		c.ranges = json_object_new_array();
	int rc = bs_diff(s, a->argv[0], a->argv[1], diff_one, &c);
	if (rc) {
		json_object_put(c.ranges);
		return bc_fail(rc, "diff '%s' '%s'", a->argv[0], a->argv[1]);
	}
	diff_emit(&c);
	if (c.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "ranges", c.ranges);
		bc_json_add_u64(o, "changed_bytes", c.total);
		bc_json_print(o);
	} else {
		fprintf(BC_OUT, "total %llu bytes (%s) in %llu range%s\n",
		       (unsigned long long)c.total, bc_human_size(c.total, h),
		       (unsigned long long)c.count, c.count == 1 ? "" : "s");
	}
	return BC_EXIT_OK;
}
