/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gc.c - garbage collection, segment compaction, scrub and iteration.
 *
 * The one idea: names never change, only locations do.  Compaction copies
 * each live record of a sparse sealed segment, byte for byte, to the
 * active segment, makes the copies durable, commits the new locations in
 * one LMDB transaction, and only then removes the old file (holding
 * seg_lock exclusively so no reader is between lookup and pread).  A crash
 * at any point leaves either the old locations (the copies are an
 * uncommitted tail, cut at the next open) or the new ones (the old file is
 * unknown to the index and removed at the next open).
 *
 * A segment is removed only if every live byte the index accounts to it
 * was found intact and moved; otherwise it is kept (scrub will name the
 * damage) rather than turning damaged chunks into dangling ones.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cas/cas_int.h"

struct name_vec {
	cas_name *v;
	size_t n, cap;
};

static int name_vec_push(struct name_vec *nv, const cas_name *n)
{
	if (nv->n == nv->cap) {
		size_t cap = nv->cap ? nv->cap * 2 : 256;
		cas_name *v = realloc(nv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		nv->v = v;
		nv->cap = cap;
	}
	nv->v[nv->n++] = *n;
	return 0;
}

/* Remove index entries whose committed count is zero. */
static int gc_sweep(cas *c, uint64_t *freed)
{
	struct name_vec dead = {0};
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = idx_err(mdb_txn_begin(c->ix.env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = idx_err(mdb_cursor_open(txn, c->ix.chunks, &cur));
	if (rc)
		goto out;
	int r;
	for (r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0 && !rc;
	     r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		cas_name n;
		uint32_t refs;
		idx_decode_val(*(uint8_t *)k.mv_data, v.mv_data, &n, NULL, &refs);
		if (refs == 0)
			rc = name_vec_push(&dead, &n);
	}
	mdb_cursor_close(cur);
	if (!rc && r != MDB_NOTFOUND)
		rc = -EIO; /* a damaged index page: no sweep on half a view */
	for (size_t i = 0; i < dead.n && !rc; i++)
		rc = idx_set_chunk(txn, c->ix.chunks, &dead.v[i], 0, 0, true);
out:
	if (!rc && dead.n)
		rc = idx_err(mdb_txn_commit(txn));
	else
		mdb_txn_abort(txn);
	if (!rc)
		*freed = dead.n;
	free(dead.v);
	return rc ? rc : cas_renew_rtxn(c);
}

struct move {
	cas_name name;
	uint64_t loc;
	uint32_t refs;
};

struct seg_victim {
	uint32_t id;
	uint64_t total, live;
};

/* Copy the live records of segment v to the active segment.  Appends the
 * new locations to *mv; returns 1 if the segment may be removed, 0 if it
 * must be kept (damage), or an error. */
static int compact_one(cas *c, const struct seg_victim *v, struct move **mv,
		       size_t *nmv, size_t *capmv, uint64_t *moved)
{
	uint8_t *buf = malloc(v->total ? v->total : 1);
	uint64_t live_found = 0;
	size_t first = *nmv;
	int rc;

	if (!buf)
		return -ENOMEM;
	pthread_rwlock_wrlock(&c->seg_lock);
	rc = seg_file_open(&c->seg, v->id, false);
	pthread_rwlock_unlock(&c->seg_lock);
	if (!rc)
		rc = cas_io_read(c->io, c->seg.fds[v->id], buf, v->total, 0);
	for (uint64_t off = SEG_HDR_SIZE; !rc && off + REC_HDR_SIZE <= v->total;) {
		cas_name name;
		uint64_t packed = 0;
		uint32_t refs = 0;
		struct cas_loc l;
		uint32_t padded = rec_probe(buf + off, v->total - off, &name,
					    NULL, NULL);
		if (!padded) {
			/* A catalogue record is dead once the checkpoint
			 * gc_compact wrote first is committed: skip it. */
			uint32_t jp = jr_probe(buf + off, v->total - off, NULL);
			off += jp ? jp : REC_ALIGN;
			continue;
		}
		int lr = idx_lookup_cur(c->rcur, &name, &packed, &refs);
		loc_unpack(packed, &l);
		if (lr == 0 && refs > 0 && l.seg == v->id && l.off == off) {
			struct cas_loc nl = l;
			rc = cas_append_record(c, buf + off, padded, &nl);
			if (rc)
				break;
			if (*nmv == *capmv) {
				size_t cap = *capmv ? *capmv * 2 : 1024;
				struct move *m = realloc(*mv, cap * sizeof(*m));
				if (!m) {
					rc = -ENOMEM;
					break;
				}
				*mv = m;
				*capmv = cap;
			}
			(*mv)[(*nmv)++] = (struct move){name, loc_pack(&nl), refs};
			live_found += padded;
		} else if (lr && lr != -ENOENT) {
			rc = lr;
		}
		off += padded;
	}
	free(buf);
	if (rc)
		return rc;
	if (live_found != v->live) {
		/* Something live here is damaged: keep the file, drop the
		 * copies (they stay an unreferenced tail). */
		*nmv = first;
		return 0;
	}
	*moved += live_found;
	return 1;
}

static int gc_compact(cas *c, struct cas_gc_result *r)
{
	struct seg_victim *vic = NULL;
	size_t nv = 0, capv = 0, nmv = 0, capmv = 0;
	struct move *mv = NULL;
	bool *remove = NULL;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_txn *txn;
	uint64_t moved = 0;
	int rc;

	/* An active segment that is mostly dead is sealed first, so that gc
	 * can give its space back too (the next put starts a new one). */
	uint64_t at, al;
	if (c->seg.active && c->seg.tail_len == 0 &&
	    idx_seg_get(c->rtxn, c->ix.segs, c->seg.active, &at, &al) == 0 &&
	    al * 100 < at * c->opt.compact_threshold_pct) {
		pthread_mutex_lock(&c->mu);
		c->seg.active = 0;
		c->seg.flushed = 0;
		pthread_mutex_unlock(&c->mu);
	}

	/* Choose sealed segments whose live fraction is under threshold. */
	rc = idx_err(mdb_cursor_open(c->rtxn, c->ix.segs, &cur));
	if (rc)
		return rc;
	int q;
	size_t nall = 0; /* every segment the index knows */
	for (q = mdb_cursor_get(cur, &k, &v, MDB_FIRST); q == 0;
	     q = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kb = k.mv_data;
		nall++;
		struct seg_victim s = {
			(uint32_t)kb[0] << 24 | kb[1] << 16 | kb[2] << 8 | kb[3],
			le64_get(v.mv_data), le64_get((uint8_t *)v.mv_data + 8)};
		if (s.id == c->seg.active ||
		    s.live * 100 >= s.total * c->opt.compact_threshold_pct)
			continue;
		if (nv == capv) {
			capv = capv ? capv * 2 : 16;
			struct seg_victim *nvv = realloc(vic, capv * sizeof(*vic));
			if (!nvv) {
				rc = -ENOMEM;
				break;
			}
			vic = nvv;
		}
		vic[nv++] = s;
	}
	mdb_cursor_close(cur);
	if (!rc && q != MDB_NOTFOUND)
		rc = -EIO;
	if (rc || nv == 0)
		goto out;
	remove = calloc(nv, sizeof(*remove));
	if (!remove) {
		rc = -ENOMEM;
		goto out;
	}

	size_t nremove = 0;
	for (size_t i = 0; i < nv && !rc; i++) {
		rc = compact_one(c, &vic[i], &mv, &nmv, &capmv, &moved);
		if (rc > 0) {
			remove[i] = true;
			nremove++;
			rc = 0;
		}
	}
	/* The catalogue as committed goes in with the copies, before any
	 * old segment (and the catalogue records in it) can go.  Not
	 * needed when the catalogue is empty and no segment stays: nothing
	 * is left to supersede (and an empty store keeps no file). */
	if (!rc)
		rc = jr_checkpoint(c, nremove == nall);
	if (rc)
		goto out;

	/* Copies durable first, then the new locations in one commit. */
	rc = cas_flush_tail(c);
	for (size_t i = 0; i < c->seg.ndirty && !rc; i++)
		if (fdatasync(c->seg.fds[c->seg.dirty[i]]))
			rc = -errno;
	if (!rc && c->seg.dir_dirty && fsync(c->seg.dirfd))
		rc = -errno;
	if (rc)
		goto out;
	c->seg.dir_dirty = false;
	rc = idx_err(mdb_txn_begin(c->ix.env, NULL, 0, &txn));
	if (rc)
		goto out;
	struct seg_delta *sd = malloc((nmv + c->seg.ndirty + 1) * sizeof(*sd));
	size_t nsd = 0;
	if (!sd)
		rc = -ENOMEM;
	for (size_t i = 0; i < nmv && !rc; i++) {
		struct cas_loc l;
		loc_unpack(mv[i].loc, &l);
		rc = idx_set_chunk(txn, c->ix.chunks, &mv[i].name, mv[i].loc,
				   mv[i].refs, false);
		sd[nsd++] = (struct seg_delta){l.seg, rec_padded(l.len)};
	}
	for (size_t i = 0; i < c->seg.ndirty && !rc; i++)
		sd[nsd++] = (struct seg_delta){c->seg.dirty[i], 0};
	if (!rc)
		rc = cas_commit_segs(c, txn, sd, nsd);
	for (size_t i = 0; i < nv && !rc; i++)
		if (remove[i])
			rc = idx_seg_del(txn, c->ix.segs, vic[i].id);
	if (!rc)
		rc = jr_commit_meta(c, txn, true);
	free(sd);
	if (rc) {
		mdb_txn_abort(txn);
		goto out;
	}
	rc = idx_err(mdb_txn_commit(txn));
	if (rc)
		goto out;
	c->seg.ndirty = 0;
	jr_committed(c, true);
	rc = cas_renew_rtxn(c);

	/* Committed: the old files are unreachable; remove them. */
	pthread_rwlock_wrlock(&c->seg_lock);
	for (size_t i = 0; i < nv; i++) {
		char name[32];
		uint32_t id = vic[i].id;
		if (!remove[i])
			continue;
		if (id < c->seg.nfds && c->seg.fds[id] >= 0) {
			close(c->seg.fds[id]);
			c->seg.fds[id] = -1;
		}
		snprintf(name, sizeof(name), "%06u.seg", id);
		unlinkat(c->seg.dirfd, name, 0);
		r->segments_compacted++;
		r->bytes_reclaimed += vic[i].total;
	}
	pthread_rwlock_unlock(&c->seg_lock);
	fsync(c->seg.dirfd);
	r->bytes_moved += moved;
out:
	free(vic);
	free(mv);
	free(remove);
	return rc;
}

int cas_gc(cas *c, struct cas_gc_result *r)
{
	struct cas_gc_result dummy;
	if (!r)
		r = &dummy;
	memset(r, 0, sizeof(*r));
	if (c->recount)
		return CAS_ERECOUNT;
	int rc = cas_sync(c);
	/* Compaction moves locations and the sweep removes entries: the
	 * name cache starts over. */
	pthread_mutex_lock(&c->mu);
	pend_clear(&c->pend);
	pthread_mutex_unlock(&c->mu);
	if (!rc)
		rc = gc_sweep(c, &r->chunks_freed);
	if (!rc)
		rc = gc_compact(c, r);
	return rc;
}

int cas_foreach(cas *c, cas_iter_fn fn, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = cas_sync(c);
	if (rc)
		return rc;
	rc = idx_err(mdb_txn_begin(c->ix.env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = idx_err(mdb_cursor_open(txn, c->ix.chunks, &cur));
	if (!rc) {
		int q;
		for (q = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		     q == 0 && !rc; q = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			cas_name n;
			uint32_t refs;
			idx_decode_val(*(uint8_t *)k.mv_data, v.mv_data, &n,
				       NULL, &refs);
			rc = fn(arg, &n, refs);
		}
		mdb_cursor_close(cur);
		if (!rc && q != MDB_NOTFOUND)
			rc = -EIO; /* the walk could not finish: say so */
	}
	mdb_txn_abort(txn);
	return rc;
}

struct scrub_ctx {
	cas *c;
	cas_bad_fn bad;
	void *arg;
	uint64_t checked, damaged;
	uint8_t buf[CAS_CHUNK_SIZE];
};

static int scrub_one(void *arg, const cas_name *n, uint32_t refs)
{
	struct scrub_ctx *s = arg;
	(void)refs;
	int rc = cas_get(s->c, n, s->buf, CAS_GET_VERIFY);
	s->checked++;
	if (rc) {
		s->damaged++;
		if (s->bad)
			s->bad(s->arg, n, rc);
	}
	return 0;
}

int cas_check_index(cas *c, uint64_t *bad_page)
{
	uint64_t bad = 0;
	int rc = cas_sync(c);
	if (!rc && idx_check_pages(&c->ix, &bad))
		rc = CAS_EBADINDEX;
	if (bad_page)
		*bad_page = bad;
	return rc;
}

int cas_scrub(cas *c, cas_bad_fn bad, void *arg, uint64_t *checked,
	      uint64_t *damaged)
{
	int crc = cas_check_index(c, NULL);
	if (crc)
		return crc;
	struct scrub_ctx *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->bad = bad;
	s->arg = arg;
	int rc = cas_foreach(c, scrub_one, s);
	if (checked)
		*checked = s->checked;
	if (damaged)
		*damaged = s->damaged;
	free(s);
	return rc;
}
