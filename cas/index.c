/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * index.c - the LMDB index: chunk name -> (location, reference count),
 * segment accounting, and store metadata.
 *
 * The one idea: keep the per-chunk cost small.  A plain name-keyed B-tree
 * costs about 80 bytes per chunk (32-byte key + node header + value, pages
 * ~70% full after random inserts).  Instead the "chunks" table is
 * DUPSORT|DUPFIXED under 256 one-byte keys (the name's first byte): each
 * chunk is one fixed 42-byte item (the other 31 name bytes, the 7-byte
 * packed location, the count) packed with no per-item header in LMDB's
 * LEAF2 pages.  Lookups are MDB_GET_BOTH_RANGE on the name prefix of the item;
 * names are unique so updates keep the item's sort position (MDB_CURRENT).
 *
 * Tables:
 *   chunks  key name[0]  item name[1..32) | loc 7 bytes LE | refs u32 LE
 *   segs    key id u32 BE  value total u64 LE | live u64 LE
 *   meta    key string     value u64 LE ("version", "recount")
 *   kv.*    the side tables of cas_kv_* (kv.c)
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cas/cas_int.h"

#define IDX_MAP_SIZE (256ull << 30) /* address space only; file grows */
#define IDX_MAX_DBS 64

int idx_err(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		return -EIO;
	case MDB_VERSION_MISMATCH:
		return CAS_EVERSION;
	default:
		return rc < 0 ? rc : (rc < 30000 ? -rc : CAS_ELMDB);
	}
}

/* LMDB stops the process when a page breaks one of its assumptions
 * (it calls abort() once this returns): say what it means first. */
static void idx_assert(MDB_env *env, const char *msg)
{
	const char *path = NULL;
	if (mdb_env_get_path(env, &path))
		path = NULL;
	fprintf(stderr,
		"cas: the chunk index %s/data.mdb is damaged (LMDB: %s): the "
		"process stops; stop the store's owner and run `blkctl fsck "
		"--rebuild` to recreate the index from the segments\n",
		path ? path : "", msg);
}

void idx_set_assert(MDB_env *env)
{
	mdb_env_set_assert(env, idx_assert);
}

int idx_open(struct cas_index *ix, const char *dir, bool create)
{
	MDB_txn *txn = NULL;
	unsigned dbflags = create ? MDB_CREATE : 0;
	int rc;

	memset(ix, 0, sizeof(*ix));
	rc = mdb_env_create(&ix->env);
	if (rc)
		return idx_err(rc);
	mdb_env_set_mapsize(ix->env, IDX_MAP_SIZE);
	mdb_env_set_maxdbs(ix->env, IDX_MAX_DBS);
	mdb_env_set_maxreaders(ix->env, 510);
	idx_set_assert(ix->env);
	rc = mdb_env_open(ix->env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0600);
	if (rc)
		goto fail;
	/* LMDB trusts its pages: check their headers before any read, so a
	 * damaged index is an error, not a stopped process. */
	uint64_t bad;
	if (!create && idx_check_pages(ix, &bad)) {
		rc = CAS_EBADINDEX;
		goto fail;
	}
	rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
	if (rc)
		goto fail;
	rc = mdb_dbi_open(txn, "chunks", dbflags | MDB_DUPSORT | MDB_DUPFIXED,
			  &ix->chunks);
	if (!rc)
		rc = mdb_dbi_open(txn, "segs", dbflags, &ix->segs);
	if (!rc)
		rc = mdb_dbi_open(txn, "meta", dbflags, &ix->meta);
	if (rc) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
			rc = CAS_EBADSTORE;
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		goto fail;
	return 0;
fail:
	mdb_env_close(ix->env);
	ix->env = NULL;
	return rc == CAS_EBADSTORE || rc == CAS_EBADINDEX ? rc : idx_err(rc);
}

void idx_close(struct cas_index *ix)
{
	if (ix->env)
		mdb_env_close(ix->env);
	ix->env = NULL;
}

void idx_encode_val(uint8_t *v, const cas_name *n, uint64_t loc, uint32_t refs)
{
	memcpy(v, n->b + 1, CAS_NAME_SIZE - 1);
	for (int i = 0; i < 7; i++)
		v[31 + i] = (uint8_t)(loc >> (8 * i));
	le32_put(v + 38, refs);
}

void idx_decode_val(uint8_t key0, const uint8_t *v, cas_name *n, uint64_t *loc,
		    uint32_t *refs)
{
	if (n) {
		n->b[0] = key0;
		memcpy(n->b + 1, v, CAS_NAME_SIZE - 1);
	}
	if (loc) {
		uint64_t l = 0;
		for (int i = 0; i < 7; i++)
			l |= (uint64_t)v[31 + i] << (8 * i);
		*loc = l;
	}
	if (refs)
		*refs = le32_get(v + 38);
}

/* Position cur on n's item.  0, -ENOENT, or an error. */
static int idx_seek(MDB_cursor *cur, const cas_name *n, MDB_val *data)
{
	uint8_t probe[CHUNK_VAL_SIZE];
	MDB_val key = {1, (void *)n->b};

	memset(probe, 0, sizeof(probe));
	memcpy(probe, n->b + 1, CAS_NAME_SIZE - 1);
	data->mv_size = sizeof(probe);
	data->mv_data = probe;
	int rc = mdb_cursor_get(cur, &key, data, MDB_GET_BOTH_RANGE);
	if (rc)
		return idx_err(rc);
	if (data->mv_size != CHUNK_VAL_SIZE)
		return -EIO;
	if (memcmp(data->mv_data, n->b + 1, CAS_NAME_SIZE - 1) != 0)
		return -ENOENT;
	return 0;
}

int idx_lookup_cur(MDB_cursor *cur, const cas_name *n, uint64_t *loc,
		   uint32_t *refs)
{
	MDB_val data;
	int rc = idx_seek(cur, n, &data);
	if (!rc)
		idx_decode_val(n->b[0], data.mv_data, NULL, loc, refs);
	return rc;
}

int idx_lookup(MDB_txn *txn, MDB_dbi dbi, const cas_name *n, uint64_t *loc,
	       uint32_t *refs)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return idx_err(rc);
	rc = idx_lookup_cur(cur, n, loc, refs);
	mdb_cursor_close(cur);
	return rc;
}

int idx_put_chunk(MDB_txn *txn, MDB_dbi dbi, const cas_name *n, uint64_t loc,
		  uint32_t refs)
{
	uint8_t v[CHUNK_VAL_SIZE];
	MDB_val key = {1, (void *)n->b}, data = {sizeof(v), v};
	idx_encode_val(v, n, loc, refs);
	return idx_err(mdb_put(txn, dbi, &key, &data, MDB_NODUPDATA));
}

int idx_set_chunk_cur(MDB_cursor *cur, const cas_name *n, uint64_t loc,
		      uint32_t refs, bool del)
{
	MDB_val data;
	int rc = idx_seek(cur, n, &data);
	if (rc)
		return rc;
	if (del)
		return idx_err(mdb_cursor_del(cur, 0));
	uint8_t v[CHUNK_VAL_SIZE];
	MDB_val key = {1, (void *)n->b};
	MDB_val nd = {sizeof(v), v};
	idx_encode_val(v, n, loc, refs);
	return idx_err(mdb_cursor_put(cur, &key, &nd, MDB_CURRENT));
}

/* As idx_set_chunk_cur, for names visited in increasing order: when the
 * cursor already sits just before n (same key byte, *positioned), a few
 * MDB_NEXT_DUP steps find it without a descent from the root.  A dense
 * batch (say, a refcount change on most chunks) then costs a walk, not a
 * seek per chunk. */
int idx_update_sorted(MDB_cursor *cur, const cas_name *n, uint64_t loc,
		      uint32_t refs, bool *positioned, uint8_t *key0)
{
	MDB_val key, data;
	if (*positioned && *key0 == n->b[0]) {
		for (int k = 0; k < 8; k++) {
			if (mdb_cursor_get(cur, &key, &data, MDB_NEXT_DUP))
				break;
			if (data.mv_size != CHUNK_VAL_SIZE)
				break;
			int d = memcmp(data.mv_data, n->b + 1, CAS_NAME_SIZE - 1);
			if (d > 0)
				break;
			if (d == 0) {
				uint8_t v[CHUNK_VAL_SIZE];
				MDB_val k1 = {1, (void *)n->b}, nd = {sizeof(v), v};
				idx_encode_val(v, n, loc, refs);
				return idx_err(mdb_cursor_put(cur, &k1, &nd,
							      MDB_CURRENT));
			}
		}
	}
	int rc = idx_set_chunk_cur(cur, n, loc, refs, false);
	*positioned = rc == 0;
	*key0 = n->b[0];
	return rc;
}

int idx_set_chunk(MDB_txn *txn, MDB_dbi dbi, const cas_name *n, uint64_t loc,
		  uint32_t refs, bool del)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return idx_err(rc);
	rc = idx_set_chunk_cur(cur, n, loc, refs, del);
	mdb_cursor_close(cur);
	return rc;
}

static void seg_key(uint8_t *k, uint32_t id)
{
	k[0] = (uint8_t)(id >> 24);
	k[1] = (uint8_t)(id >> 16);
	k[2] = (uint8_t)(id >> 8);
	k[3] = (uint8_t)id;
}

int idx_seg_get(MDB_txn *txn, MDB_dbi dbi, uint32_t id, uint64_t *total,
		uint64_t *live)
{
	uint8_t k[4];
	MDB_val key = {4, k}, data;
	seg_key(k, id);
	int rc = mdb_get(txn, dbi, &key, &data);
	if (rc)
		return idx_err(rc);
	if (data.mv_size != 16)
		return -EIO;
	*total = le64_get(data.mv_data);
	*live = le64_get((uint8_t *)data.mv_data + 8);
	return 0;
}

int idx_seg_put(MDB_txn *txn, MDB_dbi dbi, uint32_t id, uint64_t total,
		uint64_t live)
{
	uint8_t k[4], v[16];
	MDB_val key = {4, k}, data = {16, v};
	seg_key(k, id);
	le64_put(v, total);
	le64_put(v + 8, live);
	return idx_err(mdb_put(txn, dbi, &key, &data, 0));
}

int idx_seg_del(MDB_txn *txn, MDB_dbi dbi, uint32_t id)
{
	uint8_t k[4];
	MDB_val key = {4, k};
	seg_key(k, id);
	int rc = mdb_del(txn, dbi, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

int idx_meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *k, uint64_t *v)
{
	MDB_val key = {strlen(k), (void *)k}, data;
	int rc = mdb_get(txn, dbi, &key, &data);
	if (rc)
		return idx_err(rc);
	if (data.mv_size != 8)
		return -EIO;
	*v = le64_get(data.mv_data);
	return 0;
}

int idx_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *k, uint64_t v)
{
	uint8_t b[8];
	MDB_val key = {strlen(k), (void *)k}, data = {8, b};
	le64_put(b, v);
	return idx_err(mdb_put(txn, dbi, &key, &data, 0));
}

/*
 * Check every page header of the environment's file: each page up to
 * the last one in use must carry its own number and known flags (an
 * overflow page's run is skipped).  LMDB trusts its pages and stops the
 * process on a damaged one (an assertion), so walks that read everything
 * (scrub, fsck) look first.  0, or -EIO with *bad set to the first bad
 * page.
 */
int idx_check_pages(struct cas_index *ix, uint64_t *bad)
{
	MDB_envinfo info;
	MDB_stat st;
	int fd;
	uint8_t h[16];
	if (mdb_env_info(ix->env, &info) || mdb_env_stat(ix->env, &st) ||
	    mdb_env_get_fd(ix->env, &fd))
		return CAS_ELMDB;
	const uint16_t known = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40 |
			       0x4000 | 0x8000;
	for (uint64_t pg = 0; pg <= info.me_last_pgno; pg++) {
		if (pread(fd, h, sizeof(h), (off_t)(pg * st.ms_psize)) !=
		    (ssize_t)sizeof(h)) {
			*bad = pg;
			return -EIO;
		}
		uint64_t no = le64_get(h);
		uint16_t flags = le16_get(h + 10);
		if (no != pg || (flags & ~known) || !(flags & 0x2f)) {
			*bad = pg;
			return -EIO;
		}
		if (flags & 0x04) /* overflow: the run's other pages are data */
			pg += le32_get(h + 12) ? le32_get(h + 12) - 1 : 0;
	}
	return 0;
}
