/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * catalog.c - disks and snapshots as names: create, snapshot, clone,
 * delete, info, list, resize.
 *
 * The one idea: a snapshot or a clone is a catalogue record naming an
 * existing root plus one cas_ref() of that root, committed together by
 * one cas_sync(): O(1) whatever the disk's size.  Deleting releases one
 * reference; parallax frees whatever only that root reached.  An open
 * disk is committed first, so a snapshot holds every write acknowledged
 * before it and none after (crash-consistent).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blkstore/bs_int.h"

static int size_ok(uint64_t size)
{
	return size && size % BS_SECTOR == 0 && size <= BS_MAX_SIZE;
}

int bs_disk_create(bs_store *s, const char *name, uint64_t size)
{
	if (!bs_name_valid(name))
		return BS_EBADNAME;
	return bs_disk_create_any(s, name, size);
}

int bs_disk_create_any(bs_store *s, const char *name, uint64_t size)
{
	struct bs_rec rec;
	if (!size_ok(size))
		return BS_EBADSIZE;
	int rc = bs_cat_get(s, name, NULL, &rec);
	if (rc == 0)
		return BS_EEXIST;
	if (rc != BS_ENODISK)
		return rc;
	memset(&rec, 0, sizeof(rec));
	rec.size = size;
	rec.root = CAS_HOLE;
	rec.created = (uint64_t)time(NULL);
	return bs_sync(s, bs_cat_put(s, name, NULL, &rec));
}

int bs_spec_root(bs_store *s, const char *spec, cas_name *root,
		 uint64_t *size, struct bs_rec *out)
{
	char disk[BS_NAME_MAX + 1], snap[BS_NAME_MAX + 1];
	struct bs_rec rec;
	int rc = bs_spec_parse(spec, disk, snap);
	if (rc)
		return rc;
	struct bs_disk *d = bs_find_open(s, disk, snap);
	if (d && !d->ro) {
		rc = bs_sync(s, bs_disk_commit(d));
		if (rc)
			return rc;
		rec = d->rec;
	} else {
		rc = bs_cat_get(s, disk, snap, &rec);
		if (rc)
			return rc;
	}
	if (root)
		*root = rec.root;
	if (size)
		*size = rec.size;
	if (out)
		*out = rec;
	return 0;
}

int bs_snapshot(bs_store *s, const char *disk, const char *snap)
{
	struct bs_rec rec, tmp;
	if (!bs_name_valid(disk) || !bs_name_valid(snap))
		return BS_EBADNAME;
	int rc = bs_spec_root(s, disk, NULL, NULL, &rec);
	if (rc)
		return rc;
	rc = bs_cat_get(s, disk, snap, &tmp);
	if (rc == 0)
		return BS_EEXIST;
	if (rc != BS_ENOSNAP)
		return rc;
	rc = cas_ref(s->c, &rec.root);
	if (rc < 0)
		return rc;
	rec.created = (uint64_t)time(NULL);
	rec.origin[0] = 0;
	return bs_sync(s, bs_cat_put(s, disk, snap, &rec));
}

int bs_clone(bs_store *s, const char *src, const char *newdisk)
{
	struct bs_rec rec, tmp;
	if (!bs_name_valid(newdisk))
		return BS_EBADNAME;
	int rc = bs_spec_root(s, src, NULL, NULL, &rec);
	if (rc)
		return rc;
	rc = bs_cat_get(s, newdisk, NULL, &tmp);
	if (rc == 0)
		return BS_EEXIST;
	if (rc != BS_ENODISK)
		return rc;
	rc = cas_ref(s->c, &rec.root);
	if (rc < 0)
		return rc;
	rec.created = (uint64_t)time(NULL);
	snprintf(rec.origin, sizeof(rec.origin), "%s", src);
	return bs_sync(s, bs_cat_put(s, newdisk, NULL, &rec));
}

static int delete_parsed(bs_store *s, const char *disk, const char *snap);

struct snap_probe {
	const char *disk;
	size_t len;
	bool found;
};

static int probe_snap(void *arg, const void *k, size_t klen, const void *v,
		      size_t vlen)
{
	struct snap_probe *p = arg;
	(void)v;
	(void)vlen;
	if (klen > p->len && !memcmp(k, p->disk, p->len) &&
	    ((const char *)k)[p->len] == '@') {
		p->found = true;
		return 1;
	}
	return 0;
}

int bs_delete(bs_store *s, const char *spec)
{
	char disk[BS_NAME_MAX + 1], snap[BS_NAME_MAX + 1];
	int rc = bs_spec_parse(spec, disk, snap);
	return rc ? rc : delete_parsed(s, disk, snap);
}

int bs_delete_any(bs_store *s, const char *disk)
{
	return delete_parsed(s, disk, "");
}

int bs_disk_rename(bs_store *s, const char *from, const char *to)
{
	struct bs_rec rec;
	if (bs_find_open(s, from, ""))
		return BS_EBUSY;
	int rc = bs_cat_get(s, from, NULL, &rec);
	if (!rc)
		rc = bs_cat_put(s, to, NULL, &rec);
	if (!rc)
		rc = bs_cat_del(s, from, NULL);
	return bs_sync(s, rc); /* one transaction: both or none */
}

static int drop_collect(void *arg, const void *k, size_t klen, const void *v,
			size_t vlen)
{
	char (*names)[BS_NAME_MAX + 1] = arg;
	size_t pl = strlen(BS_IMPORT_PREFIX);
	(void)v;
	(void)vlen;
	if (klen > pl && klen <= BS_NAME_MAX && !memcmp(k, BS_IMPORT_PREFIX, pl)) {
		for (int i = 0; i < 16; i++)
			if (!names[i][0]) {
				memcpy(names[i], k, klen);
				names[i][klen] = 0;
				return 0;
			}
		return 1; /* 16 at a time */
	}
	return 0;
}

int bs_drop_hidden(bs_store *s)
{
	char names[16][BS_NAME_MAX + 1];
	int rc;
	do {
		memset(names, 0, sizeof(names));
		rc = cas_kv_foreach(s->c, BS_TABLE_DISKS, drop_collect, names);
		if (rc < 0)
			return rc;
		for (int i = 0; i < 16 && names[i][0]; i++) {
			int r = bs_delete_any(s, names[i]);
			if (r)
				return r;
		}
	} while (names[0][0]);
	return 0;
}

static int delete_parsed(bs_store *s, const char *disk, const char *snap)
{
	struct bs_rec rec;
	int rc = bs_cat_get(s, disk, snap, &rec);
	if (rc)
		return rc;
	if (bs_find_open(s, disk, snap))
		return BS_EBUSY;
	if (!snap[0]) {
		struct snap_probe p = {disk, strlen(disk), false};
		rc = cas_kv_foreach(s->c, BS_TABLE_SNAPS, probe_snap, &p);
		if (rc < 0)
			return rc;
		if (p.found)
			return BS_EHASSNAPS;
	}
	rc = bs_cat_del(s, disk, snap);
	if (!rc)
		rc = px_root_release(s->c, s->pc, &rec.root,
				     bs_nblocks(rec.size));
	return bs_sync(s, rc);
}

static void fill_info(bs_store *s, const char *disk, const char *snap,
		      const struct bs_rec *r, struct bs_info *i)
{
	memset(i, 0, sizeof(*i));
	snprintf(i->disk, sizeof(i->disk), "%s", disk);
	snprintf(i->snap, sizeof(i->snap), "%s", snap ? snap : "");
	i->size = r->size;
	i->root = r->root;
	i->allocated = r->allocated;
	i->created = r->created;
	snprintf(i->origin, sizeof(i->origin), "%s", r->origin);
	i->is_open = bs_find_open(s, disk, snap) != NULL;
}

int bs_info(bs_store *s, const char *spec, struct bs_info *out)
{
	char disk[BS_NAME_MAX + 1], snap[BS_NAME_MAX + 1];
	struct bs_rec rec;
	int rc = bs_spec_parse(spec, disk, snap);
	if (!rc)
		rc = bs_spec_root(s, spec, NULL, NULL, &rec);
	if (!rc)
		fill_info(s, disk, snap, &rec, out);
	return rc;
}

struct ent {
	char key[BS_SPEC_MAX];
	struct bs_rec rec;
};
struct ent_vec {
	struct ent *v;
	size_t n, cap;
	int err;
};

static int collect(void *arg, const void *k, size_t klen, const void *v,
		   size_t vlen)
{
	struct ent_vec *e = arg;
	if (klen >= BS_SPEC_MAX)
		return e->err = -EIO;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 32;
		struct ent *nv = realloc(e->v, cap * sizeof(*nv));
		if (!nv)
			return e->err = -ENOMEM;
		e->v = nv;
		e->cap = cap;
	}
	struct ent *x = &e->v[e->n];
	memcpy(x->key, k, klen);
	x->key[klen] = 0;
	if (bs_rec_decode(v, vlen, &x->rec))
		return e->err = -EIO;
	e->n++;
	return 0;
}

int bs_list(bs_store *s, bs_list_fn fn, void *arg)
{
	return bs_list_all(s, fn, arg, false);
}

int bs_list_all(bs_store *s, bs_list_fn fn, void *arg, bool hidden)
{
	struct ent_vec disks = {0}, snaps = {0};
	struct bs_info info;
	int rc = bs_store_flush(s);
	if (!rc)
		rc = cas_kv_foreach(s->c, BS_TABLE_DISKS, collect, &disks);
	if (!rc)
		rc = cas_kv_foreach(s->c, BS_TABLE_SNAPS, collect, &snaps);
	if (!rc)
		rc = disks.err ? disks.err : snaps.err;
	for (size_t i = 0; i < disks.n && !rc; i++) {
		const char *name = disks.v[i].key;
		size_t len = strlen(name);
		if (name[0] == '.' && !hidden)
			continue; /* the store's own, e.g. an import in progress */
		fill_info(s, name, NULL, &disks.v[i].rec, &info);
		rc = fn(arg, &info);
		for (size_t j = 0; j < snaps.n && !rc; j++) {
			const char *k = snaps.v[j].key;
			if (strncmp(k, name, len) || k[len] != '@')
				continue;
			fill_info(s, name, k + len + 1, &snaps.v[j].rec, &info);
			rc = fn(arg, &info);
		}
	}
	free(disks.v);
	free(snaps.v);
	return rc;
}

/* ---- resize ---- */

struct count_ctx {
	uint64_t from; /* count blocks at or past this one */
	uint64_t n;
};

static int count_tail(void *arg, uint64_t first, uint64_t count)
{
	struct count_ctx *c = arg;
	uint64_t end = first + count;
	if (end > c->from)
		c->n += end - (first > c->from ? first : c->from);
	return 0;
}

int bs_resize(bs_store *s, const char *name, uint64_t size, unsigned flags)
{
	if (!bs_name_valid(name))
		return BS_EBADNAME;
	return bs_resize_any(s, name, size, flags);
}

int bs_resize_any(bs_store *s, const char *name, uint64_t size, unsigned flags)
{
	bs_disk *d;
	uint8_t blk[BS_BLOCK_SIZE];
	if (!size_ok(size))
		return BS_EBADSIZE;
	int rc = bs_disk_open_parsed(s, name, "", &d);
	if (rc)
		return rc;
	rc = bs_sync(s, bs_disk_commit(d));
	if (rc || size == d->size)
		goto out;
	uint64_t old_nb = bs_nblocks(d->size), new_nb = bs_nblocks(size);
	if (size < d->size) {
		/* What would be dropped: written blocks past the new end,
		 * and non-zero bytes in the new last block past the size. */
		struct count_ctx cc = {new_nb, 0};
		bool tail_dirty = false;
		rc = px_diff(s->c, s->pc, &d->rec.root, old_nb, &CAS_HOLE,
			     old_nb, count_tail, &cc, NULL);
		if (!rc && size % BS_BLOCK_SIZE) {
			uint64_t base = (new_nb - 1) * BS_BLOCK_SIZE;
			uint64_t avail = d->size - base;
			if (avail > BS_BLOCK_SIZE)
				avail = BS_BLOCK_SIZE;
			memset(blk, 0, sizeof(blk));
			rc = bs_disk_read(d, blk, avail, base);
			for (uint64_t i = size - base; !rc && i < avail; i++)
				tail_dirty |= blk[i] != 0;
		}
		if (!rc && (cc.n || tail_dirty) && !(flags & BS_RESIZE_FORCE))
			rc = BS_EDATALOSS;
		/* The bytes past the new size must read as zeros if the
		 * disk grows again. */
		if (!rc && tail_dirty)
			rc = bs_disk_write_zeroes(d, (new_nb * BS_BLOCK_SIZE < d->size ? new_nb * BS_BLOCK_SIZE : d->size) - size, size);
		if (rc)
			goto out;
		d->allocated -= (int64_t)cc.n;
	}
	rc = px_map_resize(d->m, new_nb);
	if (rc)
		goto out;
	d->size = size;
	rc = bs_sync(s, bs_disk_commit(d));
out:;
	int rc2 = bs_disk_close(d);
	return rc ? rc : rc2;
}
