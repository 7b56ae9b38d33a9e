/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * journal.c - the catalogue journal: the side tables (cas_kv_*) written
 * into the segments as their own records, so that losing the LMDB index
 * loses no disk.  Format in docs/cas-format.md ("Catalogue record").
 *
 * The one idea: the segments are the truth, so every kv change goes
 * there too, in the same sync as the chunks it names.  cas_sync() appends
 * one commit record (the last staged write of each key) after the sync's
 * chunk records and before the fdatasync round; cas_gc() appends a
 * checkpoint (every committed entry) before it compacts, which makes every
 * older catalogue record dead, so compaction never copies them.
 *
 * Invariants: sequence numbers grow by one per record and are never
 * reused; a commit's "prev" is the last sequence number that reached the
 * index before it was written (so naming it proves that commit's data
 * durable); a commit's regions cover every segment byte appended since the
 * previous commit, up to the record itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cas/cas_int.h"

#define JR_MAX_TABLE 32u

struct jr_ent {
	const char *table; /* without the "kv." prefix */
	const uint8_t *key, *val;
	size_t tlen, klen, vlen;
	bool tomb;
};

struct jr_vec {
	struct jr_ent *v;
	size_t n, cap;
};

static int jr_vec_push(struct jr_vec *e, const struct jr_ent *x)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 32;
		struct jr_ent *nv = realloc(e->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		e->v = nv;
		e->cap = cap;
	}
	e->v[e->n++] = *x;
	return 0;
}

static size_t ent_size(const struct jr_ent *e)
{
	return JR_ENT_HDR + e->tlen + e->klen + e->vlen;
}

void jr_store_id_new(uint8_t id[JR_ID_SIZE])
{
	/* Random, and never all zero (zero means "format 1 segment"). */
	do {
		if (getrandom(id, JR_ID_SIZE, 0) != (ssize_t)JR_ID_SIZE) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t x = (uint64_t)ts.tv_nsec ^
				     (uint64_t)ts.tv_sec << 30 ^
				     (uint64_t)getpid() << 17;
			for (unsigned i = 0; i < JR_ID_SIZE; i++) {
				x = x * 6364136223846793005ull +
				    1442695040888963407ull;
				id[i] = (uint8_t)(x >> 56);
			}
		}
	} while (cas_is_zero(id, JR_ID_SIZE));
}

/* Encode and append one record.  body: the 16-byte part header is
 * filled here; the caller leaves room for it and the regions. */
static int jr_append(cas *c, unsigned kind, uint64_t seq, uint8_t *rec,
		     size_t body_len)
{
	struct cas_loc loc;
	size_t padded = (JR_HDR_SIZE + body_len + REC_ALIGN - 1) &
			~(size_t)(REC_ALIGN - 1);
	le32_put(rec, JR_MAGIC);
	rec[4] = JR_VERSION;
	rec[5] = (uint8_t)kind;
	le16_put(rec + 6, 0);
	le32_put(rec + 8, (uint32_t)body_len);
	memcpy(rec + 16, c->store_id, JR_ID_SIZE);
	le64_put(rec + 32, seq);
	le64_put(rec + 40, c->jlast);
	uint32_t crc = cas_crc32c(0, rec, 12);
	crc = cas_crc32c(crc, rec + 16, JR_HDR_SIZE - 16 + body_len);
	le32_put(rec + 12, crc);
	memset(rec + JR_HDR_SIZE + body_len, 0,
	       padded - JR_HDR_SIZE - body_len);
	return cas_append_record(c, rec, (uint32_t)padded, &loc);
}

/* Write entries as one record, or as several parts of one sequence
 * number when they do not fit in JR_PART_MAX bytes of body. */
static int jr_write(cas *c, unsigned kind, const struct jr_vec *e,
		    const uint8_t *regions, uint32_t nregions)
{
	size_t fixed = JR_BODY_HDR + (size_t)nregions * JR_REGION_SIZE;
	uint32_t nparts = 0;
	int rc = 0;

	/* Count the parts: greedy, at least one entry per part. */
	size_t most = fixed;
	for (size_t i = 0; i < e->n || nparts == 0;) {
		size_t body = fixed;
		nparts++;
		while (i < e->n && (body == fixed ||
				    body + ent_size(&e->v[i]) <= JR_PART_MAX))
			body += ent_size(&e->v[i++]);
		if (body > most)
			most = body;
	}
	uint64_t seq = ++c->jseq;
	uint8_t *rec = malloc(JR_HDR_SIZE + most + REC_ALIGN);
	if (!rec)
		return -ENOMEM;
	size_t i = 0;
	for (uint32_t part = 0; part < nparts && !rc; part++) {
		uint8_t *b = rec + JR_HDR_SIZE;
		size_t body = fixed;
		size_t first = i;
		while (i < e->n && (body == fixed ||
				    body + ent_size(&e->v[i]) <= JR_PART_MAX))
			body += ent_size(&e->v[i++]);
		le32_put(b, part);
		le32_put(b + 4, nparts);
		le32_put(b + 8, (uint32_t)(i - first));
		le32_put(b + 12, nregions);
		if (nregions)
			memcpy(b + JR_BODY_HDR, regions,
			       (size_t)nregions * JR_REGION_SIZE);
		uint8_t *p = b + fixed;
		for (size_t k = first; k < i; k++) {
			const struct jr_ent *x = &e->v[k];
			p[0] = (uint8_t)x->tlen;
			p[1] = x->tomb ? JR_ENT_TOMB : 0;
			le16_put(p + 2, (uint16_t)x->klen);
			le32_put(p + 4, (uint32_t)x->vlen);
			p += JR_ENT_HDR;
			memcpy(p, x->table, x->tlen);
			p += x->tlen;
			memcpy(p, x->key, x->klen);
			p += x->klen;
			if (x->vlen)
				memcpy(p, x->val, x->vlen);
			p += x->vlen;
		}
		rc = jr_append(c, kind, seq, rec, body);
	}
	free(rec);
	if (!rc)
		c->jpend = seq;
	return rc;
}

/* The byte ranges appended since the last commit, one per segment
 * written: from its committed size to its current end. */
static int jr_regions(cas *c, uint8_t **out, uint32_t *n)
{
	struct seg_set *s = &c->seg;
	*out = NULL;
	*n = 0;
	if (s->ndirty > JR_MAX_REGIONS)
		return -EOVERFLOW;
	uint8_t *r = malloc(s->ndirty * JR_REGION_SIZE + 1);
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < s->ndirty; i++) {
		uint32_t id = s->dirty[i];
		uint64_t total = 0, live, end;
		if (idx_seg_get(c->rtxn, c->ix.segs, id, &total, &live))
			total = 0;
		if (id == s->active) {
			end = s->flushed + s->tail_len;
		} else {
			struct stat st;
			if (id >= s->nfds || s->fds[id] < 0 ||
			    fstat(s->fds[id], &st)) {
				free(r);
				return -EIO;
			}
			end = (uint64_t)st.st_size;
		}
		le32_put(r + i * JR_REGION_SIZE, id);
		le32_put(r + i * JR_REGION_SIZE + 4, (uint32_t)total);
		le32_put(r + i * JR_REGION_SIZE + 8, (uint32_t)end);
	}
	*out = r;
	*n = (uint32_t)s->ndirty;
	return 0;
}

int jr_commit(cas *c)
{
	struct jr_vec e = {0};
	uint8_t *regions = NULL;
	uint32_t nregions = 0;
	int rc = 0;

	if (!c->kv_ops || c->japp)
		return 0;
	/* The last staged write of each key (the list is newest first). */
	for (struct kv_op *o = c->kv_ops; o && !rc; o = o->next) {
		bool seen = false;
		for (size_t i = 0; i < e.n && !seen; i++)
			seen = e.v[i].klen == o->klen &&
			       kv_dbi_name(c, o->dbi) == e.v[i].table &&
			       memcmp(e.v[i].key, o->data, o->klen) == 0;
		if (seen)
			continue;
		const char *t = kv_dbi_name(c, o->dbi);
		if (!t) {
			rc = -EINVAL;
			break;
		}
		struct jr_ent x = {t,         o->data, o->data + o->klen,
				   strlen(t), o->klen, o->del ? 0 : o->vlen,
				   o->del};
		rc = jr_vec_push(&e, &x);
	}
	/* The regions end where the record goes; if the record does not
	 * fit and starts a new segment, the old one's region ends at its
	 * end, which is the same thing. */
	if (!rc)
		rc = jr_regions(c, &regions, &nregions);
	if (!rc)
		rc = jr_write(c, JR_KIND_COMMIT, &e, regions, nregions);
	if (!rc)
		c->japp = true;
	free(regions);
	free(e.v);
	return rc;
}

/* ---- checkpoint ---- */

struct jr_tables {
	char (*name)[JR_MAX_TABLE + 1];
	size_t n;
};

static int list_tables(cas *c, struct jr_tables *t)
{
	MDB_dbi main;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = idx_err(mdb_dbi_open(c->rtxn, NULL, 0, &main));
	if (!rc)
		rc = idx_err(mdb_cursor_open(c->rtxn, main, &cur));
	if (rc)
		return rc;
	int q;
	for (q = mdb_cursor_get(cur, &k, &v, MDB_FIRST); q == 0 && !rc;
	     q = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 4 || k.mv_size > 3 + JR_MAX_TABLE ||
		    memcmp(k.mv_data, "kv.", 3) != 0)
			continue;
		void *nn = realloc(t->name, (t->n + 1) * sizeof(*t->name));
		if (!nn) {
			rc = -ENOMEM;
			break;
		}
		t->name = nn;
		memcpy(t->name[t->n], (char *)k.mv_data + 3, k.mv_size - 3);
		t->name[t->n][k.mv_size - 3] = 0;
		t->n++;
	}
	mdb_cursor_close(cur);
	if (!rc && q != MDB_NOTFOUND)
		rc = -EIO;
	return rc;
}

int jr_checkpoint(cas *c, bool skip_if_empty)
{
	struct jr_tables t = {0};
	struct jr_vec e = {0};
	MDB_dbi *dbi = NULL;
	int rc = list_tables(c, &t);
	if (!rc && t.n && !(dbi = calloc(t.n, sizeof(*dbi))))
		rc = -ENOMEM;
	/* Open every handle first: opening one renews the read txn. */
	for (size_t i = 0; i < t.n && !rc; i++)
		rc = kv_dbi_get(c, t.name[i], &dbi[i]);
	for (size_t i = 0; i < t.n && !rc; i++) {
		MDB_cursor *cur;
		MDB_val k, v;
		rc = idx_err(mdb_cursor_open(c->rtxn, dbi[i], &cur));
		if (rc)
			break;
		int q;
		for (q = mdb_cursor_get(cur, &k, &v, MDB_FIRST); q == 0 && !rc;
		     q = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct jr_ent x = {t.name[i], k.mv_data,
					   v.mv_data, strlen(t.name[i]),
					   k.mv_size, v.mv_size,
					   false};
			if (k.mv_size == 0 || k.mv_size > CAS_KV_MAX_KEY ||
			    v.mv_size > CAS_KV_MAX_VAL)
				rc = -EIO;
			else
				rc = jr_vec_push(&e, &x);
		}
		mdb_cursor_close(cur);
		if (!rc && q != MDB_NOTFOUND)
			rc = -EIO;
	}
	if (!rc && !(skip_if_empty && e.n == 0))
		rc = jr_write(c, JR_KIND_CHECKPOINT, &e, NULL, 0);
	free(e.v);
	free(dbi);
	free(t.name);
	return rc;
}

int jr_meta_put(MDB_txn *txn, MDB_dbi meta, uint64_t seq, uint64_t last,
		uint64_t synced)
{
	uint8_t b[24];
	MDB_val k = {7, (void *)"journal"}, v = {sizeof(b), b};
	le64_put(b, seq);
	le64_put(b + 8, last);
	le64_put(b + 16, synced);
	return idx_err(mdb_put(txn, meta, &k, &v, 0));
}

int jr_meta_get(MDB_txn *txn, MDB_dbi meta, uint64_t *seq, uint64_t *last,
		uint64_t *synced)
{
	MDB_val k = {7, (void *)"journal"}, v;
	int rc = idx_err(mdb_get(txn, meta, &k, &v));
	if (!rc && v.mv_size != 24)
		rc = -EIO;
	const uint8_t *b = rc ? NULL : v.mv_data;
	*seq = b ? le64_get(b) : 0;
	*last = b ? le64_get(b + 8) : 0;
	*synced = b ? le64_get(b + 16) : 0;
	return rc;
}

int jr_commit_meta(cas *c, MDB_txn *txn, bool synced)
{
	uint64_t last = c->jpend ? c->jpend : c->jlast;
	uint64_t now = synced ? last : c->jsynced;
	if (!c->jpend && now == c->jsynced)
		return 0; /* nothing new to say */
	return jr_meta_put(txn, c->ix.meta, c->jseq, last, now);
}

void jr_committed(cas *c, bool synced)
{
	if (c->jpend)
		c->jlast = c->jpend;
	if (synced)
		c->jsynced = c->jlast;
	c->jpend = 0;
	c->japp = false;
}

/* ---- reading ---- */

uint32_t jr_probe(const uint8_t *rec, size_t avail, struct jr_rec *out)
{
	if (avail < JR_HDR_SIZE + JR_BODY_HDR || le32_get(rec) != JR_MAGIC ||
	    rec[4] != JR_VERSION ||
	    (rec[5] != JR_KIND_COMMIT && rec[5] != JR_KIND_CHECKPOINT) ||
	    le16_get(rec + 6) != 0)
		return 0;
	uint32_t blen = le32_get(rec + 8);
	if (blen < JR_BODY_HDR || blen > JR_BODY_MAX ||
	    JR_HDR_SIZE + (size_t)blen > avail)
		return 0;
	uint32_t crc = cas_crc32c(0, rec, 12);
	crc = cas_crc32c(crc, rec + 16, JR_HDR_SIZE - 16 + blen);
	if (crc != le32_get(rec + 12))
		return 0;
	const uint8_t *b = rec + JR_HDR_SIZE;
	uint32_t part = le32_get(b), nparts = le32_get(b + 4);
	uint32_t nent = le32_get(b + 8), nreg = le32_get(b + 12);
	if (nparts == 0 || part >= nparts || nreg > JR_MAX_REGIONS ||
	    (rec[5] == JR_KIND_CHECKPOINT && nreg) ||
	    JR_BODY_HDR + (size_t)nreg * JR_REGION_SIZE > blen)
		return 0;
	/* Every body byte must belong to a well-formed entry. */
	size_t off = JR_BODY_HDR + (size_t)nreg * JR_REGION_SIZE;
	for (uint32_t i = 0; i < nent; i++) {
		if (off + JR_ENT_HDR > blen)
			return 0;
		const uint8_t *p = b + off;
		size_t tl = p[0], kl = le16_get(p + 2), vl = le32_get(p + 4);
		if (tl == 0 || tl > JR_MAX_TABLE || (p[1] & ~JR_ENT_TOMB) ||
		    kl == 0 || kl > CAS_KV_MAX_KEY || vl > CAS_KV_MAX_VAL ||
		    ((p[1] & JR_ENT_TOMB) && vl) ||
		    off + JR_ENT_HDR + tl + kl + vl > blen)
			return 0;
		for (size_t j = 0; j < tl; j++) {
			char ch = (char)p[JR_ENT_HDR + j];
			if (!((ch >= 'a' && ch <= 'z') ||
			      (ch >= '0' && ch <= '9') || ch == '_' ||
			      ch == '-'))
				return 0;
		}
		off += JR_ENT_HDR + tl + kl + vl;
	}
	if (off != blen)
		return 0;
	if (out) {
		out->kind = rec[5];
		memcpy(out->id, rec + 16, JR_ID_SIZE);
		out->seq = le64_get(rec + 32);
		out->prev = le64_get(rec + 40);
		out->part = part;
		out->nparts = nparts;
		out->nentries = nent;
		out->nregions = nreg;
		out->regions = b + JR_BODY_HDR;
		out->entries = b + JR_BODY_HDR + (size_t)nreg * JR_REGION_SIZE;
		out->entries_len =
			blen - (JR_BODY_HDR + (size_t)nreg * JR_REGION_SIZE);
	}
	return (JR_HDR_SIZE + blen + REC_ALIGN - 1) & ~(REC_ALIGN - 1);
}
