/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cas.c - the chunk store object: create/open/close, put, get, ref/unref,
 * sync, stat.
 *
 * The one idea: every change is first made in memory (a record appended
 * to the active segment's tail buffer, an entry in the pending table), so
 * a put costs a hash, maybe a compression, and a memcpy; cas_sync() then
 * makes the batch durable in the only safe order: segment data written
 * and fdatasync'ed, then one LMDB transaction for every index change.
 * An index entry therefore never points at bytes that are not durable.
 *
 * Threads and locks: see cas_int.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cas/cas_int.h"

#define TAIL_CAP (1u << 20)

_Static_assert(sizeof(((struct cas_prepared *)0)->rec) >= REC_MAX_SIZE,
	       "cas_prepared.rec must hold a whole record");
#define FORMAT_VERSION 2u /* 1: no catalogue records (upgraded at open) */

void cas_options_default(struct cas_options *o)
{
	o->compress_level = 1;
	o->segment_size = CAS_SEG_MAX_BYTES;
	o->compact_threshold_pct = 50;
	o->io_engine = CAS_IO_URING;
}

int cas_io_engine(const cas *c)
{
	return c->io;
}

static void opts_fix(struct cas_options *o, const struct cas_options *in)
{
	cas_options_default(o);
	if (in)
		*o = *in;
	if (o->segment_size < (1u << 16) || o->segment_size > CAS_SEG_MAX_BYTES)
		o->segment_size = CAS_SEG_MAX_BYTES;
	if (o->compact_threshold_pct > 100)
		o->compact_threshold_pct = 100;
	if (o->io_engine < CAS_IO_URING || o->io_engine > CAS_IO_SYNC)
		o->io_engine = CAS_IO_URING;
}

static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

static int fsync_path(const char *p)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

static int meta_put_id(MDB_txn *txn, MDB_dbi dbi, const uint8_t *id)
{
	MDB_val k = {7, (void *)"storeid"}, v = {JR_ID_SIZE, (void *)id};
	return idx_err(mdb_put(txn, dbi, &k, &v, 0));
}

static int meta_get_id(MDB_txn *txn, MDB_dbi dbi, uint8_t *id)
{
	MDB_val k = {7, (void *)"storeid"}, v;
	int rc = idx_err(mdb_get(txn, dbi, &k, &v));
	if (!rc && (v.mv_size != JR_ID_SIZE || cas_is_zero(v.mv_data, JR_ID_SIZE)))
		rc = -EIO;
	if (!rc)
		memcpy(id, v.mv_data, JR_ID_SIZE);
	return rc;
}

static int dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int rc = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			rc = CAS_EEXIST;
			break;
		}
	closedir(d);
	return rc;
}

int cas_create(const char *path, const struct cas_options *o)
{
	char *idx = path_join(path, "index"), *seg = path_join(path, "segments");
	struct cas_index ix;
	MDB_txn *txn;
	int rc;
	(void)o;

	if (!idx || !seg) {
		rc = -ENOMEM;
		goto out;
	}
	if (mkdir(path, 0700) && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	if (access(idx, F_OK) == 0 || access(seg, F_OK) == 0) {
		rc = CAS_EEXIST;
		goto out;
	}
	rc = dir_empty(path);
	if (rc)
		goto out;
	if (mkdir(idx, 0700) || mkdir(seg, 0700)) {
		rc = -errno;
		goto out;
	}
	rc = idx_open(&ix, idx, true);
	if (rc)
		goto out;
	rc = idx_err(mdb_txn_begin(ix.env, NULL, 0, &txn));
	if (!rc) {
		uint8_t id[JR_ID_SIZE];
		jr_store_id_new(id);
		rc = idx_meta_put_u64(txn, ix.meta, "version", FORMAT_VERSION);
		if (!rc)
			rc = meta_put_id(txn, ix.meta, id);
		if (!rc)
			rc = idx_err(mdb_txn_commit(txn));
		else
			mdb_txn_abort(txn);
	}
	idx_close(&ix);
	if (!rc)
		rc = fsync_path(idx);
	if (!rc)
		rc = fsync_path(seg);
	if (!rc)
		rc = fsync_path(path);
out:
	free(idx);
	free(seg);
	return rc;
}

/* Drop segment files the index does not know (written after the last
 * commit, or compacted away just before a crash) and find the next id. */
static int seg_reconcile(cas *c, MDB_txn *txn)
{
	uint32_t maxid = 0;
	bool removed = false;
	int dfd = dup(c->seg.dirfd);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned id;
		int end = 0;
		uint64_t total, live;
		if (sscanf(e->d_name, "%u.seg%n", &id, &end) != 1 ||
		    e->d_name[end] != 0 || id == 0)
			continue;
		if (id > maxid)
			maxid = id;
		if (idx_seg_get(txn, c->ix.segs, id, &total, &live) == -ENOENT &&
		    unlinkat(c->seg.dirfd, e->d_name, 0) == 0)
			removed = true;
	}
	closedir(d);
	/* Gone for good before new records (and catalogue sequence
	 * numbers) are written: a crash must not bring them back. */
	if (removed && fsync(c->seg.dirfd))
		return -errno;

	/* The highest committed segment becomes the active one again if it
	 * has room; its uncommitted tail is cut off. */
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = idx_err(mdb_cursor_open(txn, c->ix.segs, &cur));
	if (rc)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 4 && v.mv_size == 16) {
		const uint8_t *kb = k.mv_data;
		uint32_t id = (uint32_t)kb[0] << 24 | kb[1] << 16 | kb[2] << 8 | kb[3];
		uint64_t total = le64_get(v.mv_data);
		if (id > maxid)
			maxid = id;
		if (total >= SEG_HDR_SIZE && total + REC_MAX_SIZE <= c->opt.segment_size) {
			struct stat st;
			rc = seg_file_open(&c->seg, id, false);
			if (!rc && fstat(c->seg.fds[id], &st))
				rc = -errno;
			/* Shorter than committed: catalogue records the last
			 * commits did not wait for were lost (data is always
			 * waited for).  The segment ends where its bytes do;
			 * the open writes a checkpoint (cas_open). */
			if (!rc && (uint64_t)st.st_size < total) {
				uint64_t live = le64_get((uint8_t *)v.mv_data + 8);
				total = (uint64_t)st.st_size & ~(uint64_t)(REC_ALIGN - 1);
				if (total < SEG_HDR_SIZE)
					total = SEG_HDR_SIZE;
				rc = idx_seg_put(txn, c->ix.segs, id, total, live);
			}
			/* The cut must be durable before new records (and
			 * catalogue sequence numbers) reuse the space. */
			if (!rc && (uint64_t)st.st_size != total &&
			    (ftruncate(c->seg.fds[id], (off_t)total) ||
			     fdatasync(c->seg.fds[id])))
				rc = -errno;
			if (!rc) {
				c->seg.active = id;
				c->seg.flushed = total;
			}
		} else {
			rc = 0;
		}
	} else {
		rc = rc == MDB_NOTFOUND ? 0 : idx_err(rc);
	}
	mdb_cursor_close(cur);
	c->seg.next_id = maxid + 1;
	return rc;
}

int cas_open(const char *path, const struct cas_options *o, cas **out)
{
	cas *c = calloc(1, sizeof(*c));
	char *idx = path_join(path, "index"), *seg = path_join(path, "segments");
	char *lock = path_join(path, "lock");
	MDB_txn *txn = NULL;
	uint64_t ver = 0, recount = 0;
	int rc;

	*out = NULL;
	if (!c || !idx || !seg || !lock) {
		rc = -ENOMEM;
		goto fail_early;
	}
	c->lockfd = -1;
	c->seg.dirfd = -1;
	opts_fix(&c->opt, o);
	c->path = strdup(path);
	if (access(idx, F_OK) || access(seg, F_OK)) {
		rc = CAS_EBADSTORE;
		goto fail_early;
	}
	char *mdb = path_join(idx, "data.mdb");
	bool lost = mdb && access(mdb, F_OK) != 0;
	free(mdb);
	if (lost) {
		/* Never let LMDB create an empty index over lost data. */
		rc = CAS_EBADINDEX;
		goto fail_early;
	}
	c->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lockfd < 0) {
		rc = -errno;
		goto fail_early;
	}
	if (flock(c->lockfd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? CAS_ELOCKED : -errno;
		goto fail_early;
	}
	rc = idx_open(&c->ix, idx, false);
	if (rc)
		goto fail_early;
	rc = seg_open_dir(&c->seg, seg);
	if (rc)
		goto fail;
	rc = idx_err(mdb_txn_begin(c->ix.env, NULL, 0, &txn));
	if (rc)
		goto fail;
	rc = idx_meta_get_u64(txn, c->ix.meta, "version", &ver);
	if (rc == -ENOENT)
		rc = CAS_EBADSTORE;
	else if (!rc && ver != FORMAT_VERSION && ver != 1)
		rc = CAS_EVERSION;
	if (!rc && ver == FORMAT_VERSION) {
		rc = meta_get_id(txn, c->ix.meta, c->store_id);
		if (rc == -ENOENT)
			rc = CAS_EBADSTORE;
		if (!rc)
			jr_meta_get(txn, c->ix.meta, &c->jseq, &c->jlast,
				    &c->jsynced);
	}
	if (!rc && idx_meta_get_u64(txn, c->ix.meta, "recount", &recount) == 0)
		c->recount = recount != 0;
	if (!rc)
		rc = seg_reconcile(c, txn);
	if (rc) {
		mdb_txn_abort(txn);
		goto fail;
	}
	rc = idx_err(mdb_txn_commit(txn));
	if (rc)
		goto fail;
	c->io = cas_io_probe(c->opt.io_engine);
	c->seg.tail = malloc(TAIL_CAP);
	c->seg.tail_cap = TAIL_CAP;
	if (!c->seg.tail || pend_init(&c->pend)) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = idx_err(mdb_txn_begin(c->ix.env, NULL, MDB_RDONLY, &c->rtxn));
	if (!rc)
		rc = idx_err(mdb_cursor_open(c->rtxn, c->ix.chunks, &c->rcur));
	if (rc)
		goto fail;
	pthread_mutex_init(&c->mu, NULL);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(
		&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->seg_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	free(idx);
	free(seg);
	free(lock);
	if (ver == 1 || c->jsynced < c->jlast) {
		/* Format 1: give the store an id and its catalogue a first
		 * checkpoint, in a new segment (whose header has the id).
		 * Or the last catalogue records may not have reached the
		 * disk (a crash after commits that wrote no data): a
		 * checkpoint puts the catalogue back in the segments. */
		if (ver == 1) {
			jr_store_id_new(c->store_id);
			c->upgrade = true;
			c->seg.active = 0;
		}
		rc = jr_checkpoint(c, false);
		if (!rc)
			rc = cas_sync(c);
		if (rc) {
			cas_rollback(c);
			c->upgrade = false; /* the close must not commit it */
			cas_close(c);
			return rc;
		}
	}
	*out = c;
	return 0;
fail:
	seg_close_all(&c->seg);
	pend_free(&c->pend);
	idx_close(&c->ix);
fail_early:
	if (c && c->lockfd >= 0)
		close(c->lockfd);
	if (c)
		free(c->path);
	free(c);
	free(idx);
	free(seg);
	free(lock);
	return rc;
}

/* Tell the index that every catalogue record is durable (commits that
 * wrote no data left it behind), so the next open needs no checkpoint. */
static int jr_settle(cas *c)
{
	MDB_txn *txn;
	if (c->jsynced >= c->jlast)
		return 0;
	int rc = idx_err(mdb_txn_begin(c->ix.env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = jr_commit_meta(c, txn, true);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = idx_err(mdb_txn_commit(txn));
	if (!rc)
		jr_committed(c, true);
	return rc ? rc : cas_renew_rtxn(c);
}

int cas_close(cas *c)
{
	if (!c)
		return 0;
	int rc = cas_sync(c);
	if (!rc)
		rc = jr_settle(c);
	if (c->rcur)
		mdb_cursor_close(c->rcur);
	if (c->rtxn)
		mdb_txn_abort(c->rtxn);
	idx_close(&c->ix);
	seg_close_all(&c->seg);
	pend_free(&c->pend);
	kv_ops_free(&c->kv_ops);
	kv_dbis_free(c);
	pthread_mutex_destroy(&c->mu);
	pthread_rwlock_destroy(&c->seg_lock);
	close(c->lockfd);
	free(c->path);
	free(c);
	return rc;
}

int cas_renew_rtxn(cas *c)
{
	mdb_txn_reset(c->rtxn);
	int rc = idx_err(mdb_txn_renew(c->rtxn));
	return rc ? rc : idx_err(mdb_cursor_renew(c->rtxn, c->rcur));
}

/* ---- segment appends (writer) ---- */

int cas_flush_tail(cas *c)
{
	struct seg_set *s = &c->seg;
	if (s->tail_len == 0)
		return 0;
	int rc = cas_io_write(c->io, s->fds[s->active], s->tail, s->tail_len,
			      s->flushed);
	if (rc)
		return rc; /* the buffer stays: a later sync retries */
	/* Start writeback now so the fdatasync at the next sync has less
	 * to wait for (advisory: errors surface at that fdatasync). */
	sync_file_range(s->fds[s->active], (off_t)s->flushed, (off_t)s->tail_len,
			SYNC_FILE_RANGE_WRITE);
	pthread_mutex_lock(&c->mu);
	s->flushed += s->tail_len;
	s->tail_len = 0;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* The next segment id: ids grow until CAS_SEG_MAX_ID, then the lowest
 * id that neither the index nor the directory uses is taken again. */
static int seg_next_id(cas *c, uint32_t *out)
{
	struct seg_set *s = &c->seg;
	if (s->next_id > CAS_SEG_MAX_ID)
		s->ids_wrapped = true;
	if (!s->ids_wrapped) {
		*out = s->next_id++;
		return 0;
	}
	for (uint32_t id = 1; id <= CAS_SEG_MAX_ID; id++) {
		char name[32];
		uint64_t total, live;
		if (id < s->nfds && s->fds[id] >= 0)
			continue;
		if (idx_seg_get(c->rtxn, c->ix.segs, id, &total, &live) != -ENOENT)
			continue;
		snprintf(name, sizeof(name), "%06u.seg", id);
		if (faccessat(s->dirfd, name, F_OK, 0) == 0)
			continue;
		*out = id;
		return 0;
	}
	return -ENOSPC; /* a million live segments of 64 MiB */
}

static int seg_roll(cas *c)
{
	struct seg_set *s = &c->seg;
	uint32_t id;
	int rc = seg_next_id(c, &id);
	if (rc)
		return rc;

	if (s->active) {
		rc = cas_flush_tail(c);
		if (rc)
			return rc;
	}
	pthread_rwlock_wrlock(&c->seg_lock);
	rc = seg_file_open(s, id, true);
	pthread_rwlock_unlock(&c->seg_lock);
	if (rc)
		return rc;
	rc = seg_mark_dirty(s, id);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->mu);
	s->active = id;
	s->flushed = 0;
	seg_hdr_encode(s->tail, id, c->store_id);
	s->tail_len = SEG_HDR_SIZE;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int cas_append_record(cas *c, const uint8_t *rec, uint32_t padded,
		      struct cas_loc *loc)
{
	struct seg_set *s = &c->seg;
	int rc;

	if (!s->active ||
	    s->flushed + s->tail_len + padded > c->opt.segment_size) {
		rc = seg_roll(c);
		if (rc)
			return rc;
	}
	if (s->tail_len + padded > s->tail_cap) {
		rc = cas_flush_tail(c);
		if (rc)
			return rc;
	}
	rc = seg_mark_dirty(s, s->active);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->mu);
	memcpy(s->tail + s->tail_len, rec, padded);
	loc->seg = s->active;
	loc->off = (uint32_t)(s->flushed + s->tail_len);
	s->tail_len += padded;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* ---- pending entries (writer) ---- */

/* The pending entry of n, created from the index if needed; with
 * 'add' != 0 the new entry is born with that delta (one lock, not two:
 * this is the dedup put's hot path). */
static int pend_touch_add(cas *c, const cas_name *n, int add, struct pend **out,
			  bool *added)
{
	uint64_t loc;
	uint32_t refs;
	struct pend *p = pend_find(&c->pend, n);
	*added = false;
	if (!p) {
		int rc = idx_lookup_cur(c->rcur, n, &loc, &refs);
		if (rc)
			return rc;
		if ((add < 0 && refs == 0) || (add > 0 && refs == UINT32_MAX))
			add = 0; /* let pend_add report the error */
		pthread_mutex_lock(&c->mu);
		p = pend_insert(&c->pend, n);
		if (p) {
			p->loc = loc;
			p->base = refs;
			p->in_index = 1;
			p->delta = add;
			c->pend.dirty += add != 0;
		}
		pthread_mutex_unlock(&c->mu);
		if (!p)
			return -ENOMEM;
		*added = add != 0;
	}
	*out = p;
	return 0;
}

static int pend_touch(cas *c, const cas_name *n, struct pend **out)
{
	bool added;
	return pend_touch_add(c, n, 0, out, &added);
}

static int64_t pend_count(const struct pend *p)
{
	return (int64_t)p->base + p->delta;
}

static int pend_add(cas *c, struct pend *p, int d)
{
	int64_t now = pend_count(p) + d;
	if (now < 0)
		return CAS_EREFCOUNT;
	if (now > UINT32_MAX || p->delta + (int64_t)d > INT32_MAX ||
	    p->delta + (int64_t)d < INT32_MIN)
		return -EOVERFLOW;
	pthread_mutex_lock(&c->mu);
	p->delta += d;
	c->pend.dirty++;
	pthread_mutex_unlock(&c->mu);
	return now > INT32_MAX ? INT32_MAX : (int)now;
}

static int put_common(cas *c, const cas_name *name, const void *data,
		      unsigned flags, const uint8_t *rec, uint32_t padded)
{
	struct pend *p;
	struct cas_loc loc;
	int rc;

	if (cas_name_is_hole(name))
		return 0;
	bool added;
	rc = pend_touch_add(c, name, 1, &p, &added);
	if (rc == 0 && added)
		return p->base == 0;
	if (rc == 0) {
		int64_t before = pend_count(p);
		rc = pend_add(c, p, 1);
		return rc < 0 ? rc : before == 0;
	}
	if (rc != -ENOENT)
		return rc;

	if (!rec) {
		int level = (flags & CAS_PUT_NOCOMPRESS) ? 0
							 : c->opt.compress_level;
		padded = rec_build(c->rec_buf, name, data, level,
				   (flags & CAS_PUT_NODE) ? REC_F_NODE : 0, &loc);
		rec = c->rec_buf;
	}
	/* The record header holds the length and flags the index needs. */
	loc.len = (uint16_t)(le16_get(rec + 6) ? le16_get(rec + 6)
					       : CAS_CHUNK_SIZE);
	loc.flags = rec[5] & (REC_F_ZSTD | REC_F_NODE);
	rc = cas_append_record(c, rec, padded, &loc);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->mu);
	p = pend_insert(&c->pend, name);
	if (p) {
		p->loc = loc_pack(&loc);
		p->delta = 1;
		c->pend.dirty++;
	}
	pthread_mutex_unlock(&c->mu);
	return p ? 1 : -ENOMEM;
}

int cas_put_named(cas *c, const cas_name *name, const void *data,
		  unsigned flags)
{
	return put_common(c, name, data, flags, NULL, 0);
}

int cas_prepare(cas *c, const void *data, unsigned flags,
		struct cas_prepared *p)
{
	struct cas_loc loc;
	if (flags & CAS_PUT_NODE)
		cas_hash_node(data, &p->name);
	else
		cas_hash(data, &p->name);
	p->flags = flags;
	p->size = 0;
	if (cas_name_is_hole(&p->name) || cas_lookup(c, &p->name, NULL) == 0)
		return 0; /* nothing to store, or already stored: no work */
	int level = (flags & CAS_PUT_NOCOMPRESS) ? 0 : c->opt.compress_level;
	p->size = rec_build(p->rec, &p->name, data, level,
			    (flags & CAS_PUT_NODE) ? REC_F_NODE : 0, &loc);
	return 0;
}

int cas_put_prepared(cas *c, const struct cas_prepared *p, const void *data)
{
	return put_common(c, &p->name, data, p->flags, p->size ? p->rec : NULL,
			  p->size);
}

int cas_put(cas *c, const void *data, unsigned flags, cas_name *name)
{
	if (flags & CAS_PUT_NODE)
		cas_hash_node(data, name);
	else
		cas_hash(data, name);
	return cas_put_named(c, name, data, flags);
}

int cas_ref(cas *c, const cas_name *name)
{
	struct pend *p;
	bool added;
	if (cas_name_is_hole(name))
		return 0;
	int rc = pend_touch_add(c, name, 1, &p, &added);
	if (rc)
		return rc;
	if (added)
		return pend_count(p) > INT32_MAX ? INT32_MAX : (int)pend_count(p);
	return pend_add(c, p, 1);
}

int cas_unref(cas *c, const cas_name *name)
{
	struct pend *p;
	if (cas_name_is_hole(name))
		return 0;
	int rc = pend_touch(c, name, &p);
	return rc ? rc : pend_add(c, p, -1);
}

int cas_set_refs(cas *c, const cas_name *name, uint32_t refs)
{
	struct pend *p;
	if (cas_name_is_hole(name))
		return 0;
	int rc = pend_touch(c, name, &p);
	if (rc)
		return rc;
	int64_t d = (int64_t)refs - p->base;
	if (d > INT32_MAX || d < INT32_MIN)
		return -EOVERFLOW;
	pthread_mutex_lock(&c->mu);
	p->delta = (int32_t)d;
	c->pend.dirty++;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* ---- reads (any thread) ---- */

/* Where is 'n'?  Looks at pending changes, then the index.  If the record
 * is still in the tail buffer it is copied to rec and *copied set.
 * Called with seg_lock held shared. */
static int locate(cas *c, const cas_name *n, struct cas_loc *l, uint8_t *rec,
		  bool *copied, uint32_t *refs)
{
	uint64_t packed;
	int rc = 0;

	*copied = false;
	pthread_mutex_lock(&c->mu);
	struct pend *p = pend_find(&c->pend, n);
	if (p) {
		packed = p->loc;
		if (refs)
			*refs = (uint32_t)pend_count(p);
		loc_unpack(packed, l);
		if (rec && l->seg == c->seg.active && l->off >= c->seg.flushed) {
			memcpy(rec, c->seg.tail + (l->off - c->seg.flushed),
			       rec_padded(l->len));
			*copied = true;
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (p)
		return 0;

	MDB_txn *txn;
	rc = idx_err(mdb_txn_begin(c->ix.env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = idx_lookup(txn, c->ix.chunks, n, &packed, refs);
	mdb_txn_abort(txn);
	if (!rc)
		loc_unpack(packed, l);
	return rc;
}

/* Read the record at l into rec.  Called with seg_lock held shared; may
 * drop and retake it to open a segment file (-EAGAIN: locate again). */
static int read_record(cas *c, const struct cas_loc *l, uint8_t *rec)
{
	struct seg_set *s = &c->seg;
	if (l->seg >= s->nfds || s->fds[l->seg] < 0) {
		pthread_rwlock_unlock(&c->seg_lock);
		pthread_rwlock_wrlock(&c->seg_lock);
		int rc = seg_file_open(s, l->seg, false);
		pthread_rwlock_unlock(&c->seg_lock);
		pthread_rwlock_rdlock(&c->seg_lock);
		return rc == -ENOENT ? -EAGAIN : (rc ? rc : -EAGAIN);
	}
	return cas_io_read(c->io, s->fds[l->seg], rec, rec_padded(l->len),
			   l->off);
}

int cas_get(cas *c, const cas_name *name, void *buf, unsigned flags)
{
	uint8_t rec[REC_MAX_SIZE];
	struct cas_loc l;
	bool copied;
	int rc, tries = 0;

	if (cas_name_is_hole(name)) {
		memset(buf, 0, CAS_CHUNK_SIZE);
		return 0;
	}
	pthread_rwlock_rdlock(&c->seg_lock);
	do {
		rc = locate(c, name, &l, rec, &copied, NULL);
		if (!rc && !copied)
			rc = read_record(c, &l, rec);
	} while (rc == -EAGAIN && ++tries < 4);
	pthread_rwlock_unlock(&c->seg_lock);
	if (rc == -EAGAIN)
		rc = -EIO;
	if (rc) {
		memset(buf, 0, CAS_CHUNK_SIZE);
		return rc;
	}
	rc = rec_decode(rec, rec_padded(l.len), name, buf);
	if (!rc && (flags & CAS_GET_VERIFY)) {
		cas_name got;
		if (l.flags & REC_F_NODE)
			cas_hash_node(buf, &got);
		else
			cas_hash(buf, &got);
		if (memcmp(got.b, name->b, CAS_NAME_SIZE) != 0) {
			memset(buf, 0, CAS_CHUNK_SIZE);
			rc = -EIO;
		}
	}
	return rc;
}

int cas_lookup(cas *c, const cas_name *name, uint32_t *refs)
{
	struct cas_loc l;
	bool copied;
	uint32_t r = 0;
	if (cas_name_is_hole(name)) {
		if (refs)
			*refs = 0;
		return 0;
	}
	int rc = locate(c, name, &l, NULL, &copied, &r);
	if (!rc && refs)
		*refs = r;
	return rc;
}

/* ---- commit (writer) ---- */

static int cmp_pend(const void *a, const void *b)
{
	const struct pend *x = *(const struct pend *const *)a;
	const struct pend *y = *(const struct pend *const *)b;
	return memcmp(x->name.b, y->name.b, CAS_NAME_SIZE);
}

static int cmp_sd(const void *a, const void *b)
{
	const struct seg_delta *x = a, *y = b;
	return x->seg < y->seg ? -1 : x->seg > y->seg;
}

/* Apply segment accounting: live deltas and the new committed size of
 * every segment written since the last commit. */
int cas_commit_segs(cas *c, MDB_txn *txn, struct seg_delta *sd, size_t nsd)
{
	struct seg_set *s = &c->seg;
	int rc = 0;
	qsort(sd, nsd, sizeof(*sd), cmp_sd);
	for (size_t i = 0; i < nsd && !rc;) {
		uint32_t id = sd[i].seg;
		int64_t d = 0;
		uint64_t total = 0, live = 0;
		for (; i < nsd && sd[i].seg == id; i++)
			d += sd[i].live;
		rc = idx_seg_get(txn, c->ix.segs, id, &total, &live);
		if (rc == -ENOENT)
			rc = 0;
		for (size_t k = 0; k < s->ndirty; k++) {
			struct stat st;
			if (s->dirty[k] != id)
				continue;
			if (fstat(s->fds[id], &st))
				return -errno;
			total = (uint64_t)st.st_size;
		}
		if (!rc && (int64_t)live + d < 0)
			rc = -EIO; /* accounting bug: refuse to commit */
		if (!rc)
			rc = idx_seg_put(txn, c->ix.segs, id, total,
					 (uint64_t)((int64_t)live + d));
	}
	return rc;
}

int cas_commit_pending(cas *c, MDB_txn *txn)
{
	struct pend_table *t = &c->pend;
	size_t n = 0, nsd = 0;
	int rc = 0;
	struct pend **v = malloc((t->count + 1) * sizeof(*v));
	struct seg_delta *sd =
		malloc((t->count + c->seg.ndirty + 1) * sizeof(*sd));
	if (!v || !sd) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].used &&
		    (t->slots[i].delta != 0 || !t->slots[i].in_index))
			v[n++] = &t->slots[i]; /* clean cache entries: nothing */
	qsort(v, n, sizeof(*v), cmp_pend);

	MDB_cursor *cur = NULL;
	bool positioned = false;
	uint8_t key0 = 0;
	rc = idx_err(mdb_cursor_open(txn, c->ix.chunks, &cur));
	for (size_t i = 0; i < n && !rc; i++) {
		struct pend *p = v[i];
		int64_t fin = pend_count(p);
		struct cas_loc l;
		loc_unpack(p->loc, &l);
		int64_t sz = rec_padded(l.len);
		if (!p->in_index) {
			if (fin > 0) {
				rc = idx_put_chunk(txn, c->ix.chunks, &p->name,
						   p->loc, (uint32_t)fin);
				positioned = false; /* an insert moves pages */
				sd[nsd++] = (struct seg_delta){l.seg, sz};
			}
		} else if (p->delta != 0) {
			rc = idx_update_sorted(cur, &p->name, p->loc,
					       (uint32_t)fin, &positioned, &key0);
			if (p->base == 0 && fin > 0)
				sd[nsd++] = (struct seg_delta){l.seg, sz};
			else if (p->base > 0 && fin == 0)
				sd[nsd++] = (struct seg_delta){l.seg, -sz};
		}
	}
	if (cur)
		mdb_cursor_close(cur);
	for (size_t k = 0; k < c->seg.ndirty; k++)
		sd[nsd++] = (struct seg_delta){c->seg.dirty[k], 0};
	if (!rc)
		rc = cas_commit_segs(c, txn, sd, nsd);
out:
	free(v);
	free(sd);
	return rc;
}

/* Under 16 MiB free where the store lives. */
static bool fs_nearly_full(cas *c)
{
	struct statvfs v;
	return fstatvfs(c->seg.dirfd, &v) == 0 &&
	       (uint64_t)v.f_bavail * v.f_frsize < (16u << 20);
}

int cas_sync(cas *c)
{
	struct seg_set *s = &c->seg;
	MDB_txn *txn;
	int rc;

	if (!c->pend.dirty && !c->kv_ops && !s->ndirty && !c->recount_clear &&
	    !c->upgrade)
		return 0;
	/* The catalogue's commit record goes after this sync's chunks and
	 * is made durable with them.  A commit that wrote nothing else
	 * (snapshot, clone, create, delete, rename) names only chunks
	 * already durable: its record's fdatasync runs while the index
	 * commits, and is waited for before returning.  Until a later
	 * commit says so, the index notes that record as maybe not
	 * durable, so an open after a crash writes a checkpoint. */
	bool data = s->ndirty > 0;
	int inflight = 0;
	rc = jr_commit(c);
	bool overlap = !rc && !data && c->jpend && !c->upgrade &&
		       !s->dir_dirty && s->ndirty == 1 &&
		       s->dirty[0] == s->active;
	if (!rc)
		rc = cas_flush_tail(c);
	if (!rc && overlap)
		inflight = rc = cas_io_fsync_begin(c->io, s->fds[s->active]);
	if (rc > 0)
		rc = 0;
	for (size_t i = 0; i < s->ndirty && !rc && !overlap; i++)
		if (fdatasync(s->fds[s->dirty[i]]))
			rc = -errno;
	if (!rc && s->dir_dirty && fsync(s->dirfd))
		rc = -errno;
	if (rc)
		return rc;
	s->dir_dirty = false;

	rc = idx_err(mdb_txn_begin(c->ix.env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = cas_commit_pending(c, txn);
	if (!rc)
		rc = kv_apply(c, txn);
	if (!rc && c->recount_clear)
		rc = idx_meta_put_u64(txn, c->ix.meta, "recount", 0);
	if (!rc)
		rc = jr_commit_meta(c, txn, !overlap);
	if (!rc && c->upgrade)
		rc = idx_meta_put_u64(txn, c->ix.meta, "version", FORMAT_VERSION);
	if (!rc && c->upgrade)
		rc = meta_put_id(txn, c->ix.meta, c->store_id);
	if (rc)
		mdb_txn_abort(txn);
	else
		rc = idx_err(mdb_txn_commit(txn));
	if (rc == -EIO && fs_nearly_full(c))
		rc = -ENOSPC; /* LMDB reports a short write as EIO */
	int frc = inflight > 0 ? cas_io_fsync_end(c->io) : 0;
	if (rc)
		return rc;
	pthread_mutex_lock(&c->mu);
	pend_settle(&c->pend, PEND_CACHE_MAX); /* what stays is a cache */
	pthread_mutex_unlock(&c->mu);
	s->ndirty = 0;
	kv_ops_free(&c->kv_ops);
	jr_committed(c, !overlap);
	c->upgrade = false;
	if (c->recount_clear) {
		c->recount = false;
		c->recount_clear = false;
	}
	rc = cas_renew_rtxn(c);
	/* Committed, but its catalogue record may not be durable: say so
	 * (the index already marks it; the next open checkpoints). */
	return frc ? frc : rc;
}

int cas_rollback(cas *c)
{
	struct seg_set *s = &c->seg;
	int rc = 0;
	pthread_rwlock_wrlock(&c->seg_lock);
	pthread_mutex_lock(&c->mu);
	pend_clear(&c->pend);
	s->tail_len = 0;
	/* Every segment written since the last commit goes back to its
	 * committed size; one the index does not know yet goes away. */
	for (size_t i = 0; i < s->ndirty; i++) {
		uint32_t id = s->dirty[i];
		uint64_t total, live;
		if (id >= s->nfds || s->fds[id] < 0)
			continue;
		if (idx_seg_get(c->rtxn, c->ix.segs, id, &total, &live) == 0) {
			if (ftruncate(s->fds[id], (off_t)total) && !rc)
				rc = -errno;
			if (id == s->active)
				s->flushed = total;
		} else {
			char name[32];
			close(s->fds[id]);
			s->fds[id] = -1;
			snprintf(name, sizeof(name), "%06u.seg", id);
			unlinkat(s->dirfd, name, 0);
			if (id == s->active) {
				s->active = 0;
				s->flushed = 0;
			}
		}
	}
	s->ndirty = 0;
	pthread_mutex_unlock(&c->mu);
	pthread_rwlock_unlock(&c->seg_lock);
	kv_ops_free(&c->kv_ops);
	c->recount_clear = false;
	c->jpend = 0;
	c->japp = false;
	return rc;
}

int cas_recount_pending(cas *c)
{
	return c->recount;
}

int cas_recount_done(cas *c)
{
	if (!c->recount)
		return 0;
	c->recount_clear = true;
	return cas_sync(c);
}

/* ---- statistics ---- */

static uint64_t free_pages(MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t n = 0;
	if (mdb_cursor_open(txn, 0, &cur))
		return 0;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size >= sizeof(size_t))
			n += *(const size_t *)v.mv_data;
	mdb_cursor_close(cur);
	return n;
}

int cas_stat(cas *c, struct cas_stat *st)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_envinfo info;
	MDB_stat est;
	int rc = cas_sync(c);
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	rc = idx_err(mdb_txn_begin(c->ix.env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = idx_err(mdb_cursor_open(txn, c->ix.chunks, &cur));
	if (rc)
		goto out;
	int r;
	for (r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0;
	     r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t loc;
		uint32_t refs;
		struct cas_loc l;
		idx_decode_val(0, v.mv_data, NULL, &loc, &refs);
		loc_unpack(loc, &l);
		st->index_entries++;
		st->chunks++; /* count-zero chunks stay stored until gc */
		st->refs += refs;
		if (l.flags & REC_F_ZSTD)
			st->compressed_chunks++;
		if (refs && (l.flags & REC_F_NODE)) {
			st->live_node_chunks++;
		} else if (refs) {
			st->live_data_chunks++;
			st->data_stored_bytes += rec_padded(l.len);
		}
	}
	mdb_cursor_close(cur);
	if (r != MDB_NOTFOUND) {
		rc = -EIO; /* a damaged index page: say so, never stop quietly */
		goto out;
	}
	st->raw_bytes = st->chunks * CAS_CHUNK_SIZE;
	rc = idx_err(mdb_cursor_open(txn, c->ix.segs, &cur));
	if (rc)
		goto out;
	for (r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0;
	     r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		st->segment_files++;
		st->segment_bytes += le64_get(v.mv_data);
		st->stored_bytes += le64_get((uint8_t *)v.mv_data + 8);
	}
	mdb_cursor_close(cur);
	if (r != MDB_NOTFOUND) {
		rc = -EIO;
		goto out;
	}
	mdb_env_info(c->ix.env, &info);
	mdb_env_stat(c->ix.env, &est);
	st->index_bytes =
		((uint64_t)info.me_last_pgno + 1 - free_pages(txn)) * est.ms_psize;
out:
	mdb_txn_abort(txn);
	return rc;
}

const char *cas_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case CAS_EBADSTORE:
		return "not a chunk store (no index/ and segments/)";
	case CAS_EVERSION:
		return "chunk store format version not supported";
	case CAS_ERECOUNT:
		return "reference counts await a recount after an index rebuild";
	case CAS_EREFCOUNT:
		return "reference count would drop below zero";
	case CAS_ELMDB:
		return "unexpected LMDB error in the chunk index";
	case CAS_EEXIST:
		return "a chunk store already exists there, or the directory is not empty";
	case CAS_ELOCKED:
		return "chunk store is in use by another process";
	case CAS_EBADINDEX:
		return "the chunk index is damaged (blkctl fsck --rebuild "
		       "recreates it from the segments)";
	case -EIO:
		return "damaged data: a chunk record failed its checks";
	default:
		if (err < 0 && err > -4096)
			return strerror(-err);
		return "unknown chunk store error";
	}
}
