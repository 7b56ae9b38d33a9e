/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * jreplay.c - the catalogue back from the segments: what a rebuild
 * learns about catalogue records while it scans, and the replay that
 * turns them into side tables (docs/cas-format.md, "Rebuild").
 *
 * The one idea: believe only what provably reached the disk.  The newest
 * whole checkpoint is the base; after it, a commit counts only if it is
 * whole and its data was durable: a later record names it as prev, or no
 * byte of its regions is torn (or the old index, if it still opens, says
 * it committed it).  For each key the highest sequence number
 * wins; a tombstone deletes.  Records whose store id is not the store's
 * (bytes a guest wrote that happen to look like one) are ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cas/jreplay.h"

static int grow(void **v, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	void *nv = realloc(*v, c * sz);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = c;
	return 0;
}

void jr_scan_free(struct jr_scan *js)
{
	for (size_t i = 0; i < js->nitems; i++)
		free(js->items[i].copy);
	for (size_t i = 0; i < js->nsegs; i++)
		free(js->segs[i].bad);
	free(js->items);
	free(js->segs);
	memset(js, 0, sizeof(*js));
}

int jr_scan_seg(struct jr_scan *js, uint32_t id, const uint8_t *buf,
		uint64_t size)
{
	int rc = grow((void **)&js->segs, &js->capsegs, js->nsegs,
		      sizeof(*js->segs));
	if (rc)
		return rc;
	struct jr_seg *s = &js->segs[js->nsegs++];
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->size = size;
	s->hdr_ok = size >= SEG_HDR_SIZE && seg_hdr_check(buf, id) == 0;
	if (s->hdr_ok)
		memcpy(s->hdr_id, buf + SEG_ID_OFF, JR_ID_SIZE);
	return 0;
}

int jr_scan_bad(struct jr_scan *js, uint64_t a, uint64_t b)
{
	struct jr_seg *s = &js->segs[js->nsegs - 1];
	if (s->nbad && s->bad[s->nbad - 1].b == a) {
		s->bad[s->nbad - 1].b = b;
		return 0;
	}
	int rc = grow((void **)&s->bad, &s->capbad, s->nbad, sizeof(*s->bad));
	if (rc)
		return rc;
	s->bad[s->nbad++] = (struct jr_span){a, b};
	return 0;
}

int jr_scan_record(struct jr_scan *js, const uint8_t *rec, size_t avail,
		   uint64_t off, uint32_t *padded)
{
	struct jr_rec r;
	*padded = jr_probe(rec, avail, &r);
	if (!*padded)
		return 0;
	int rc = grow((void **)&js->items, &js->capitems, js->nitems,
		      sizeof(*js->items));
	if (rc)
		return rc;
	struct jr_item *it = &js->items[js->nitems];
	size_t len = JR_HDR_SIZE + le32_get(rec + 8);
	it->copy = malloc(len);
	if (!it->copy)
		return -ENOMEM;
	memcpy(it->copy, rec, len);
	jr_probe(it->copy, len, &it->r); /* point into the copy */
	it->seg = js->segs[js->nsegs - 1].id;
	it->off = off;
	js->nitems++;
	return 0;
}

/* ---- the decision ---- */

/* The store's id: the one most segment headers carry (format 2). */
static bool store_id(const struct jr_scan *js, uint8_t *id)
{
	size_t best = 0;
	for (size_t i = 0; i < js->nsegs; i++) {
		const struct jr_seg *s = &js->segs[i];
		size_t n = 0;
		if (!s->hdr_ok || cas_is_zero(s->hdr_id, JR_ID_SIZE))
			continue;
		for (size_t j = 0; j < js->nsegs; j++)
			n += js->segs[j].hdr_ok &&
			     !memcmp(js->segs[j].hdr_id, s->hdr_id, JR_ID_SIZE);
		if (n > best) {
			best = n;
			memcpy(id, s->hdr_id, JR_ID_SIZE);
		}
	}
	return best > 0;
}

static const struct jr_seg *find_seg(const struct jr_scan *js, uint32_t id)
{
	for (size_t i = 0; i < js->nsegs; i++)
		if (js->segs[i].id == id)
			return &js->segs[i];
	return NULL;
}

/* Does every byte of the commit's regions still hold good records? */
static bool regions_ok(const struct jr_scan *js, const struct jr_rec *r)
{
	for (uint32_t i = 0; i < r->nregions; i++) {
		const uint8_t *p = r->regions + (size_t)i * JR_REGION_SIZE;
		uint64_t a = le32_get(p + 4), b = le32_get(p + 8);
		const struct jr_seg *s = find_seg(js, le32_get(p));
		if (!s || a > b || b > s->size ||
		    (a < SEG_HDR_SIZE && !s->hdr_ok))
			return false;
		for (size_t k = 0; k < s->nbad; k++)
			if (s->bad[k].a < b && s->bad[k].b > a)
				return false;
	}
	return true;
}

static int cmp_item(const void *x, const void *y)
{
	const struct jr_item *a = *(const struct jr_item *const *)x;
	const struct jr_item *b = *(const struct jr_item *const *)y;
	if (a->r.seq != b->r.seq)
		return a->r.seq < b->r.seq ? -1 : 1;
	if (a->r.kind != b->r.kind)
		return a->r.kind < b->r.kind ? -1 : 1;
	return a->r.part < b->r.part ? -1 : a->r.part > b->r.part;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

struct kv_ent {
	const uint8_t *table, *key, *val;
	size_t tlen, klen, vlen;
	bool tomb;
	uint64_t seq;
};

static int cmp_ent(const void *x, const void *y)
{
	const struct kv_ent *a = x, *b = y;
	if (a->tlen != b->tlen)
		return a->tlen < b->tlen ? -1 : 1;
	int d = memcmp(a->table, b->table, a->tlen);
	if (d)
		return d;
	if (a->klen != b->klen)
		return a->klen < b->klen ? -1 : 1;
	d = memcmp(a->key, b->key, a->klen);
	if (d)
		return d;
	return a->seq > b->seq ? -1 : a->seq < b->seq; /* newest first */
}

struct ent_vec {
	struct kv_ent *v;
	size_t n, cap;
};

/* Add every entry of the parts v[0..n) (one sequence number). */
static int add_entries(struct ent_vec *e, struct jr_item **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct jr_rec *r = &v[i]->r;
		const uint8_t *p = r->entries;
		for (uint32_t k = 0; k < r->nentries; k++) {
			int rc = grow((void **)&e->v, &e->cap, e->n,
				      sizeof(*e->v));
			if (rc)
				return rc;
			struct kv_ent *x = &e->v[e->n++];
			x->tlen = p[0];
			x->tomb = p[1] & JR_ENT_TOMB;
			x->klen = le16_get(p + 2);
			x->vlen = le32_get(p + 4);
			x->table = p + JR_ENT_HDR;
			x->key = x->table + x->tlen;
			x->val = x->key + x->klen;
			x->seq = r->seq;
			p = x->val + x->vlen; /* jr_probe checked the bounds */
		}
	}
	return 0;
}

/* Is v[0..n) all parts of one sequence number, each once? */
static bool whole(struct jr_item **v, size_t n)
{
	uint32_t want = v[0]->r.nparts;
	uint32_t next = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i]->r.nparts != want || v[i]->r.kind != v[0]->r.kind)
			return false;
		if (v[i]->r.part == next)
			next++;
		else if (v[i]->r.part + 1 != next)
			return false; /* a gap (a copy of the same part is fine) */
	}
	return next == want;
}

int jr_replay(struct jr_scan *js, MDB_txn *txn, struct cas_rebuild_info *info,
	      const uint8_t *old_id, uint64_t old_last, uint8_t *id_out,
	      bool *have_id, uint64_t *kvseq, uint64_t *kvlast)
{
	struct jr_item **v = NULL;
	uint64_t *prevs = NULL;
	struct ent_vec e = {0};
	size_t n = 0;
	int rc = 0;

	*have_id = store_id(js, id_out);
	*kvseq = *kvlast = 0;
	if (js->nitems) {
		v = malloc(js->nitems * sizeof(*v));
		prevs = malloc(js->nitems * sizeof(*prevs));
		if (!v || !prevs) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < js->nitems; i++) {
		struct jr_item *it = &js->items[i];
		if (!*have_id || memcmp(it->r.id, id_out, JR_ID_SIZE)) {
			info->foreign_records++;
			continue;
		}
		prevs[n] = it->r.prev;
		v[n++] = it;
		if (it->r.seq > *kvseq)
			*kvseq = it->r.seq;
	}
	if (n == 0)
		goto out; /* no catalogue records: the caller decides */
	if (memcmp(old_id, id_out, JR_ID_SIZE))
		old_last = 0; /* another store's index: no word on ours */
	info->catalogue = CAS_CAT_JOURNAL;
	qsort(v, n, sizeof(*v), cmp_item);
	qsort(prevs, n, sizeof(*prevs), cmp_u64);

	/* The newest whole checkpoint. */
	size_t base = n; /* index of its first part */
	uint64_t ckpt = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && v[j]->r.seq == v[i]->r.seq)
			j++;
		if (v[i]->r.kind == JR_KIND_CHECKPOINT && whole(v + i, j - i)) {
			base = i;
			ckpt = v[i]->r.seq;
		}
		i = j;
	}
	info->checkpoint_seq = ckpt;
	*kvlast = ckpt;
	if (base < n) {
		size_t j = base;
		while (j < n && v[j]->r.seq == ckpt)
			j++;
		rc = add_entries(&e, v + base, j - base);
	}
	/* Then every believable commit after it, in order: one whose
	 * prev was not believed (or is missing) is not either, so the
	 * result is always the catalogue after some prefix of the commits,
	 * never one with a change in the middle left out. */
	uint64_t *done = malloc((n + 1) * sizeof(*done));
	size_t ndone = 0;
	if (!done)
		rc = -ENOMEM;
	for (size_t i = 0; i < n && !rc;) {
		size_t j = i;
		while (j < n && v[j]->r.seq == v[i]->r.seq)
			j++;
		const struct jr_rec *r = &v[i]->r;
		if (r->kind == JR_KIND_COMMIT && r->seq > ckpt) {
			bool named = r->seq <= old_last ||
				     bsearch(&r->seq, prevs, n, sizeof(*prevs),
					     cmp_u64) != NULL;
			bool chained = r->prev <= ckpt;
			for (size_t k = 0; k < ndone && !chained; k++)
				chained = done[k] == r->prev;
			if (chained && whole(v + i, j - i) &&
			    (named || regions_ok(js, r))) {
				rc = add_entries(&e, v + i, j - i);
				info->commits_replayed++;
				*kvlast = r->seq;
				done[ndone++] = r->seq;
			} else {
				info->commits_skipped++;
			}
		}
		i = j;
	}
	free(done);
	if (rc)
		goto out;

	/* For each key the newest entry wins; a tombstone deletes. */
	qsort(e.v, e.n, sizeof(*e.v), cmp_ent);
	for (size_t i = 0; i < e.n && !rc; i++) {
		const struct kv_ent *x = &e.v[i];
		if (i > 0 && x->tlen == e.v[i - 1].tlen &&
		    x->klen == e.v[i - 1].klen &&
		    !memcmp(x->table, e.v[i - 1].table, x->tlen) &&
		    !memcmp(x->key, e.v[i - 1].key, x->klen))
			continue; /* an older entry of the same key */
		if (x->tomb)
			continue;
		char name[JR_MAX_TABLE_NAME];
		MDB_dbi dbi;
		snprintf(name, sizeof(name), "kv.%.*s", (int)x->tlen,
			 (const char *)x->table);
		MDB_val k = {x->klen, (void *)x->key},
			d = {x->vlen, (void *)x->val};
		rc = idx_err(mdb_dbi_open(txn, name, MDB_CREATE, &dbi));
		if (!rc)
			rc = idx_err(mdb_put(txn, dbi, &k, &d, 0));
		info->entries++;
	}
out:
	free(e.v);
	free(v);
	free(prevs);
	return rc;
}
