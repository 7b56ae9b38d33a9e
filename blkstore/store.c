/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * store.c - a store: its directory, store.conf, the catalogue records of
 * disks and snapshots, group commit, and store-wide statistics.
 *
 * The one idea: the catalogue lives in the chunk index's side tables, so
 * a disk's new root and the reference counts it implies reach disk in the
 * same LMDB transaction (invariant 3).  bs_store_flush() commits every
 * changed disk's map, stages the new records, then makes it all durable
 * with one cas_sync(): one fdatasync round and one transaction for any
 * number of disks (group commit).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "blkstore/bs_int.h"
#include "common/endian.h"

#define CONF_NAME "store.conf"
#define CONF_FORMAT 1

void bs_store_options_default(struct bs_store_options *o)
{
	o->compress_level = 1;
	o->cache_nodes = 65536; /* 256 MiB of map nodes */
	o->dirty_limit = 16384; /* 64 MiB of unflushed blocks per disk */
	o->io_engine = CAS_IO_URING;
}

bool bs_name_valid(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > BS_NAME_MAX || n[0] == '.' || n[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = n[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
		      ch == '-'))
			return false;
	}
	return true;
}

int bs_spec_parse(const char *spec, char disk[BS_NAME_MAX + 1],
		  char snap[BS_NAME_MAX + 1])
{
	const char *at = spec ? strchr(spec, '@') : NULL;
	size_t dl = at ? (size_t)(at - spec) : (spec ? strlen(spec) : 0);
	if (!spec || dl == 0 || dl > BS_NAME_MAX)
		return BS_EBADNAME;
	memcpy(disk, spec, dl);
	disk[dl] = 0;
	snap[0] = 0;
	if (at) {
		if (strlen(at + 1) > BS_NAME_MAX)
			return BS_EBADNAME;
		strcpy(snap, at + 1);
		if (!bs_name_valid(snap))
			return BS_EBADNAME;
	}
	return bs_name_valid(disk) ? 0 : BS_EBADNAME;
}

/* ---- catalogue records ---- */

size_t bs_rec_encode(const struct bs_rec *r, uint8_t *b)
{
	size_t ol = strnlen(r->origin, BS_SPEC_MAX - 1);
	le32_put(b, BS_REC_VERSION);
	le32_put(b + 4, 0);
	le64_put(b + 8, r->size);
	memcpy(b + 16, r->root.b, 32);
	le64_put(b + 48, r->allocated);
	le64_put(b + 56, r->created);
	le16_put(b + 64, (uint16_t)ol);
	memcpy(b + 66, r->origin, ol);
	return 66 + ol;
}

int bs_rec_decode(const uint8_t *b, size_t len, struct bs_rec *r)
{
	if (len < 66 || le32_get(b) != BS_REC_VERSION)
		return -EIO;
	size_t ol = le16_get(b + 64);
	if (ol >= BS_SPEC_MAX || 66 + ol != len)
		return -EIO;
	memset(r, 0, sizeof(*r));
	r->size = le64_get(b + 8);
	memcpy(r->root.b, b + 16, 32);
	r->allocated = le64_get(b + 48);
	r->created = le64_get(b + 56);
	memcpy(r->origin, b + 66, ol);
	r->origin[ol] = 0;
	return 0;
}

static void cat_key(const char *disk, const char *snap, char *key)
{
	if (snap && *snap)
		snprintf(key, BS_SPEC_MAX, "%s@%s", disk, snap);
	else
		snprintf(key, BS_SPEC_MAX, "%s", disk);
}

int bs_cat_get(bs_store *s, const char *disk, const char *snap,
	       struct bs_rec *r)
{
	char key[BS_SPEC_MAX];
	uint8_t buf[BS_REC_MAX];
	size_t len = sizeof(buf);
	cat_key(disk, snap, key);
	int rc = cas_kv_get(s->c, (snap && *snap) ? BS_TABLE_SNAPS : BS_TABLE_DISKS,
			    key, strlen(key), buf, &len);
	if (rc == -ENOENT)
		return (snap && *snap) ? BS_ENOSNAP : BS_ENODISK;
	return rc ? rc : bs_rec_decode(buf, len, r);
}

int bs_cat_put(bs_store *s, const char *disk, const char *snap,
	       const struct bs_rec *r)
{
	char key[BS_SPEC_MAX];
	uint8_t buf[BS_REC_MAX];
	cat_key(disk, snap, key);
	size_t len = bs_rec_encode(r, buf);
	return cas_kv_put(s->c, (snap && *snap) ? BS_TABLE_SNAPS : BS_TABLE_DISKS,
			  key, strlen(key), buf, len);
}

int bs_cat_del(bs_store *s, const char *disk, const char *snap)
{
	char key[BS_SPEC_MAX];
	cat_key(disk, snap, key);
	return cas_kv_del(s->c, (snap && *snap) ? BS_TABLE_SNAPS : BS_TABLE_DISKS,
			  key, strlen(key));
}

/* ---- store.conf ---- */

static int conf_write(const char *path, int level)
{
	char p[4200], tmp[4200], text[256];
	snprintf(p, sizeof(p), "%s/" CONF_NAME, path);
	snprintf(tmp, sizeof(tmp), "%s/" CONF_NAME ".tmp", path);
	int n = snprintf(text, sizeof(text),
			 "# cavm store\nformat = %d\nchunk_size = %u\n"
			 "compression = %s\ncompression_level = %d\n"
			 "flash = none\n",
			 CONF_FORMAT, BS_BLOCK_SIZE, level ? "zstd" : "none",
			 level);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = (write(fd, text, (size_t)n) == n && fsync(fd) == 0) ? 0 : -errno;
	close(fd);
	if (!rc && rename(tmp, p))
		rc = -errno;
	if (!rc) { /* the new name must survive a power cut too */
		int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd))
			rc = -errno;
		if (dfd >= 0)
			close(dfd);
	}
	return rc;
}

static int conf_read(const char *path, int *level)
{
	char p[4200], line[256];
	int format = -1, chunk = -1;
	snprintf(p, sizeof(p), "%s/" CONF_NAME, path);
	FILE *f = fopen(p, "re");
	if (!f)
		return errno == ENOENT ? BS_ENOTSTORE : -errno;
	while (fgets(line, sizeof(line), f)) {
		int v;
		if (sscanf(line, "format = %d", &v) == 1)
			format = v;
		else if (sscanf(line, "chunk_size = %d", &v) == 1)
			chunk = v;
		else if (sscanf(line, "compression_level = %d", &v) == 1)
			*level = v;
	}
	fclose(f);
	if (format != CONF_FORMAT || chunk != (int)BS_BLOCK_SIZE)
		return BS_ECONF;
	return 0;
}

/* A chunk store with no store.conf, holding nothing: what a crash during
 * bs_store_create leaves (the chunk store is created first). */
static bool interrupted_create(const char *path)
{
	char p[4200];
	struct cas_stat st;
	cas *c;
	snprintf(p, sizeof(p), "%s/" CONF_NAME, path);
	if (access(p, F_OK) == 0 || cas_open(path, NULL, &c))
		return false;
	bool empty = cas_stat(c, &st) == 0 && st.chunks == 0 &&
		     st.index_entries == 0;
	cas_close(c);
	return empty;
}

int bs_store_create(const char *path, const struct bs_store_options *o)
{
	struct bs_store_options d;
	if (!o) {
		bs_store_options_default(&d);
		o = &d;
	}
	int rc = cas_create(path, NULL);
	if (rc == CAS_EEXIST && interrupted_create(path))
		rc = 0; /* a crash stopped an earlier create: finish it */
	if (rc == CAS_EEXIST)
		return BS_ENOTEMPTY;
	if (rc)
		return rc;
	return conf_write(path, o->compress_level);
}

int bs_store_open(const char *path, const struct bs_store_options *o,
		  bs_store **out)
{
	int rc = bs_store_open_norecount(path, o, out);
	if (!rc)
		rc = bs_recount_if_pending(*out);
	if (!rc && !cas_recount_pending((*out)->c))
		rc = bs_drop_hidden(*out); /* imports a crash interrupted */
	if (rc && *out) {
		bs_store_close(*out);
		*out = NULL;
	}
	return rc;
}

int bs_store_open_norecount(const char *path, const struct bs_store_options *o,
			    bs_store **out)
{
	struct cas_options co;
	bs_store *s = calloc(1, sizeof(*s));
	int level = 1, rc;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	bs_store_options_default(&s->opt);
	rc = conf_read(path, &level);
	if (rc)
		goto fail;
	if (o)
		s->opt = *o;
	s->opt.compress_level = level; /* the store's, from store.conf */
	cas_options_default(&co);
	co.compress_level = s->opt.compress_level;
	co.io_engine = s->opt.io_engine;
	s->path = strdup(path);
	rc = cas_open(path, &co, &s->c);
	if (rc == CAS_EBADSTORE)
		rc = BS_ENOTSTORE;
	if (rc)
		goto fail;
	rc = px_cache_create(s->opt.cache_nodes, &s->pc);
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	if (s->c)
		cas_close(s->c);
	free(s->path);
	free(s);
	return rc;
}

int bs_store_flush(bs_store *s)
{
	return bs_sync(s, 0);
}

/* Every commit is a group commit: the chunk store commits all pending
 * count changes at once, so every open disk's map must be committed with
 * them, or the counts its unflushed writes took would reach disk with no
 * root to explain them (a leak after a crash). */
int bs_sync(bs_store *s, int rc)
{
	for (struct bs_disk *d = s->open; d && !rc; d = d->next)
		rc = bs_disk_commit(d);
	if (!rc)
		rc = cas_sync(s->c);
	if (rc)
		bs_store_rollback(s);
	return rc;
}

int bs_store_rollback(bs_store *s)
{
	int rc = cas_rollback(s->c);
	for (struct bs_disk *d = s->open; d; d = d->next) {
		struct bs_rec rec;
		if (d->m)
			px_map_close(d->m); /* broken or not: state is gone */
		d->m = NULL;
		int r = bs_cat_get(s, d->disk, d->snap, &rec);
		if (!r)
			r = px_map_open(s->c, s->pc, &rec.root,
					bs_nblocks(rec.size), &d->m);
		if (r) {
			d->m = NULL; /* gone with the rollback: I/O fails */
			continue;
		}
		d->rec = rec;
		d->size = rec.size;
		d->allocated = (int64_t)rec.allocated;
		d->unflushed = 0;
	}
	return rc;
}

int bs_store_close(bs_store *s)
{
	if (!s)
		return 0;
	int rc = bs_store_flush(s);
	while (s->open) {
		struct bs_disk *d = s->open;
		s->open = d->next;
		if (d->m)
			px_map_close(d->m);
		free(d);
	}
	int rc2 = cas_close(s->c);
	px_cache_destroy(s->pc);
	free(s->path);
	free(s);
	return rc ? rc : rc2;
}

int bs_store_announce(const char *path, const char *control)
{
	char p[4200], text[4200 + 64];
	int n = control ? snprintf(text, sizeof(text), "pid=%ld\ncontrol=%s\n",
				   (long)getpid(), control)
			: 0;
	snprintf(p, sizeof(p), "%s/lock", path);
	/* In place: the file must stay the inode the owner holds locked. */
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (ftruncate(fd, 0) || (n > 0 && pwrite(fd, text, (size_t)n, 0) != n))
		rc = -errno;
	close(fd);
	return rc;
}

cas *bs_store_cas(bs_store *s)
{
	return s->c;
}

/* ---- statistics ---- */

struct stat_acc {
	struct bs_store_stat *st;
};

/* Sums saturate: disks of up to 2^63 bytes each can overflow a total. */
static void add_sat(uint64_t *acc, uint64_t v)
{
	if (__builtin_add_overflow(*acc, v, acc))
		*acc = UINT64_MAX;
}

static int stat_one(void *arg, const struct bs_info *i)
{
	struct bs_store_stat *st = arg;
	if (i->snap[0]) {
		st->snapshots++;
	} else {
		st->disks++;
		add_sat(&st->logical_bytes, i->size);
		add_sat(&st->allocated_bytes, i->allocated * BS_BLOCK_SIZE);
	}
	add_sat(&st->referenced_bytes, i->allocated * BS_BLOCK_SIZE);
	return 0;
}

int bs_store_stat(bs_store *s, struct bs_store_stat *st)
{
	struct cas_stat cs;
	struct statvfs vfs;
	memset(st, 0, sizeof(*st));
	int rc = bs_store_flush(s);
	if (!rc)
		rc = bs_list(s, stat_one, st);
	if (!rc)
		rc = cas_stat(s->c, &cs);
	if (rc)
		return rc;
	st->unique_data_chunks = cs.live_data_chunks;
	st->node_chunks = cs.live_node_chunks;
	st->stored_bytes = cs.stored_bytes;
	st->data_stored_bytes = cs.data_stored_bytes;
	st->segment_bytes = cs.segment_bytes;
	st->index_bytes = cs.index_bytes;
	st->dedup_ratio = cs.live_data_chunks
				  ? (double)st->referenced_bytes / BS_BLOCK_SIZE /
					    (double)cs.live_data_chunks
				  : 0;
	st->compression_ratio =
		cs.data_stored_bytes ? (double)cs.live_data_chunks *
					       BS_BLOCK_SIZE /
					       (double)cs.data_stored_bytes
				     : 0;
	if (statvfs(s->path, &vfs) == 0)
		st->fs_free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	return 0;
}

const char *bs_strerror(int err)
{
	switch (err) {
	case BS_ENODISK:
		return "no such disk";
	case BS_ENOSNAP:
		return "no such snapshot";
	case BS_EEXIST:
		return "a disk or snapshot of that name already exists";
	case BS_EBADNAME:
		return "invalid name (1-64 of A-Z a-z 0-9 _ . -, not starting "
		       "with . or -)";
	case BS_EBADSIZE:
		return "invalid size (must be a non-zero multiple of 512)";
	case BS_EROFS:
		return "snapshots are read-only";
	case BS_EDATALOSS:
		return "shrinking would drop written blocks (use --force)";
	case BS_EHASSNAPS:
		return "disk has snapshots: delete them first";
	case BS_EBUSY:
		return "disk is in use";
	case BS_ENOTSTORE:
		return "not a cavm store (no store.conf)";
	case BS_ERANGE:
		return "I/O past the end of the disk";
	case BS_ENOTEMPTY:
		return "directory is not empty (or already holds a store)";
	case BS_ECONF:
		return "store.conf is damaged or of an unsupported format";
	case PX_EBROKEN:
		return px_strerror(err);
	default:
		return cas_strerror(err);
	}
}
