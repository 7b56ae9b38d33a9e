/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk.c - disk I/O: read and write at any byte offset, discard, write
 * zeroes, flush, block status.
 *
 * The one idea: a write is a cas_put of each 4 KiB block (partial blocks
 * are read, modified and put whole) and a px_map_update of its slot; the
 * map keeps the change in memory until the disk is committed.  A block
 * of zeros is the hole name, so writing zeros, discarding and
 * write-zeroes all make holes and store nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blkstore/bs_int.h"

struct bs_disk *bs_find_open(bs_store *s, const char *disk, const char *snap)
{
	for (struct bs_disk *d = s->open; d; d = d->next)
		if (!strcmp(d->disk, disk) && !strcmp(d->snap, snap ? snap : ""))
			return d;
	return NULL;
}

int bs_disk_open(bs_store *s, const char *spec, bs_disk **out)
{
	char disk[BS_NAME_MAX + 1], snap[BS_NAME_MAX + 1];
	int rc = bs_spec_parse(spec, disk, snap);
	return rc ? rc : bs_disk_open_parsed(s, disk, snap, out);
}

int bs_disk_open_parsed(bs_store *s, const char *disk, const char *snap,
			bs_disk **out)
{
	struct bs_rec rec;
	int rc;
	struct bs_disk *d = bs_find_open(s, disk, snap);
	if (d) {
		d->users++;
		*out = d;
		return 0;
	}
	rc = bs_cat_get(s, disk, snap, &rec);
	if (rc)
		return rc;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->s = s;
	strcpy(d->disk, disk);
	strcpy(d->snap, snap);
	d->ro = snap[0] != 0;
	d->rec = rec;
	d->size = rec.size;
	d->allocated = (int64_t)rec.allocated;
	d->dirty_limit = s->opt.dirty_limit;
	/* The map holds the catalogue record's root reference: a disk's
	 * map moves it at each commit; a snapshot's map only borrows it
	 * (a snapshot cannot be deleted while open). */
	rc = px_map_open(s->c, s->pc, &rec.root, bs_nblocks(rec.size), &d->m);
	if (rc)
		goto fail;
	d->users = 1;
	d->next = s->open;
	s->open = d;
	*out = d;
	return 0;
fail:
	free(d);
	return rc;
}

int bs_disk_commit(struct bs_disk *d)
{
	cas_name root = d->rec.root;
	if (d->ro || !d->m)
		return 0;
	if (px_map_dirty(d->m)) {
		int rc = px_map_commit(d->m, &root);
		if (rc)
			return rc;
	} else if (d->size == d->rec.size &&
		   (uint64_t)d->allocated == d->rec.allocated) {
		return 0;
	}
	d->rec.root = root;
	d->rec.size = d->size;
	d->rec.allocated = (uint64_t)d->allocated;
	d->unflushed = 0;
	return bs_cat_put(d->s, d->disk, NULL, &d->rec);
}

int bs_disk_flush(bs_disk *d)
{
	if (d->ro)
		return 0;
	/* Group commit: every other changed disk rides along. */
	return bs_store_flush(d->s);
}

int bs_disk_close(bs_disk *d)
{
	bs_store *s = d->s;
	int rc = 0;
	if (--d->users > 0)
		return 0;
	if (!d->ro)
		rc = bs_sync(s, bs_disk_commit(d));
	for (struct bs_disk **p = &s->open; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	int rc2 = d->m ? px_map_close(d->m) : 0;
	free(d);
	return rc ? rc : rc2;
}

uint64_t bs_disk_size(const bs_disk *d)
{
	return d->size;
}

bool bs_disk_readonly(const bs_disk *d)
{
	return d->ro;
}

static int check_range(bs_disk *d, uint64_t len, uint64_t off)
{
	if (!d->m)
		return BS_ENODISK; /* its creation was rolled back */
	if (off > d->size || len > d->size - off)
		return BS_ERANGE;
	return 0;
}

#define READ_BATCH 256

int bs_disk_read(bs_disk *d, void *buf, uint64_t len, uint64_t off)
{
	cas_name names[READ_BATCH];
	uint8_t tmp[BS_BLOCK_SIZE];
	uint8_t *out = buf;
	int rc = check_range(d, len, off);
	while (!rc && len) {
		uint64_t blk = off / BS_BLOCK_SIZE;
		uint64_t last = (off + len - 1) / BS_BLOCK_SIZE;
		uint64_t n = last - blk + 1;
		if (n > READ_BATCH)
			n = READ_BATCH;
		rc = px_map_lookup_range(d->m, blk, n, names);
		for (uint64_t i = 0; i < n && !rc; i++) {
			uint32_t in = (uint32_t)(off % BS_BLOCK_SIZE);
			uint32_t take = BS_BLOCK_SIZE - in;
			if (take > len)
				take = (uint32_t)len;
			if (cas_name_is_hole(&names[i]))
				memset(out, 0, take);
			else if (take == BS_BLOCK_SIZE)
				rc = cas_get(d->s->c, &names[i], out, 0);
			else if (!(rc = cas_get(d->s->c, &names[i], tmp, 0)))
				memcpy(out, tmp + in, take);
			out += take;
			off += take;
			len -= take;
		}
	}
	return rc;
}

/* Make block 'blk' name 'name', whose reference the caller holds (none
 * for the hole) and hands over. */
int bs_disk_set_block(bs_disk *d, uint64_t blk, const cas_name *name)
{
	cas_name old;
	if (!d->m) {
		if (!cas_name_is_hole(name))
			cas_unref(d->s->c, name);
		return BS_ENODISK; /* its creation was rolled back */
	}
	int rc = px_map_lookup(d->m, blk, &old);
	if (!rc && !memcmp(old.b, name->b, CAS_NAME_SIZE)) {
		/* Same content: drop the extra reference. */
		rc = cas_name_is_hole(name) ? 0 : cas_unref(d->s->c, name);
		return rc < 0 ? rc : 0;
	}
	if (!rc)
		rc = px_map_update(d->m, blk, name);
	if (rc) {
		cas_unref(d->s->c, name);
		return rc;
	}
	d->allocated += cas_name_is_hole(&old) - cas_name_is_hole(name);
	d->unflushed++;
	return 0;
}

/* Put one whole block's new content (NULL: zeros) into the map. */
static int set_block(bs_disk *d, uint64_t blk, const void *data)
{
	cas_name name = CAS_HOLE;
	if (data) {
		int rc = cas_put(d->s->c, data, 0, &name);
		if (rc < 0)
			return rc;
	}
	return bs_disk_set_block(d, blk, &name);
}

/* Commit this disk alone once it holds dirty_limit unflushed blocks. */
int bs_disk_bound_dirty(bs_disk *d)
{
	if (d->unflushed < d->dirty_limit)
		return 0;
	return bs_sync(d->s, bs_disk_commit(d));
}

/* Write (data != NULL) or zero (data == NULL) a byte range. */
static int modify(bs_disk *d, const uint8_t *data, uint64_t len, uint64_t off)
{
	uint8_t tmp[BS_BLOCK_SIZE];
	int rc;
	if (d->ro)
		return BS_EROFS;
	rc = check_range(d, len, off);
	while (!rc && len) {
		uint64_t blk = off / BS_BLOCK_SIZE;
		uint32_t in = (uint32_t)(off % BS_BLOCK_SIZE);
		uint32_t take = BS_BLOCK_SIZE - in;
		if (take > len)
			take = (uint32_t)len;
		if (take == BS_BLOCK_SIZE) {
			rc = set_block(d, blk, data);
		} else {
			/* Partial block: read, modify, write whole.  The
			 * bytes past the disk's end stay zero. */
			cas_name cur;
			rc = px_map_lookup(d->m, blk, &cur);
			if (!rc)
				rc = cas_get(d->s->c, &cur, tmp, 0);
			if (!rc) {
				if (data)
					memcpy(tmp + in, data, take);
				else
					memset(tmp + in, 0, take);
				rc = set_block(d, blk, tmp);
			}
		}
		if (data)
			data += take;
		off += take;
		len -= take;
	}
	/* Bound what a crash can lose. */
	return rc ? rc : bs_disk_bound_dirty(d);
}

int bs_disk_write(bs_disk *d, const void *buf, uint64_t len, uint64_t off)
{
	return modify(d, buf, len, off);
}

int bs_disk_discard(bs_disk *d, uint64_t len, uint64_t off)
{
	return modify(d, NULL, len, off);
}

int bs_disk_write_zeroes(bs_disk *d, uint64_t len, uint64_t off)
{
	return modify(d, NULL, len, off);
}

int bs_disk_block_status(bs_disk *d, uint64_t off, uint64_t len, bool *hole,
			 uint64_t *run)
{
	cas_name names[READ_BATCH];
	int rc = check_range(d, len, off);
	if (rc || len == 0)
		return rc ? rc : -EINVAL;
	uint64_t blk = off / BS_BLOCK_SIZE;
	uint64_t end = off + len;
	uint64_t pos = off;
	bool first = true;
	while (pos < end) {
		uint64_t n = (end - 1) / BS_BLOCK_SIZE - blk + 1;
		if (n > READ_BATCH)
			n = READ_BATCH;
		rc = px_map_lookup_range(d->m, blk, n, names);
		if (rc)
			return rc;
		for (uint64_t i = 0; i < n; i++, blk++) {
			bool h = cas_name_is_hole(&names[i]);
			if (first) {
				*hole = h;
				first = false;
			} else if (h != *hole) {
				*run = pos - off;
				return 0;
			}
			uint64_t next = (blk + 1) * BS_BLOCK_SIZE;
			pos = next < end ? next : end;
		}
	}
	*run = pos - off;
	return 0;
}
