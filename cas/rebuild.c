/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rebuild.c - recreate the chunk index from the segment files alone.
 *
 * The one idea: segments are the truth and the index is a cache of them.
 * Every segment is scanned record by record; a record that fails its CRC
 * (a torn tail, a damaged sector) is skipped by sliding to the next
 * 16-byte boundary, and one whose content does not hash to its name is
 * dropped.  Every good record is indexed with a count of zero and the
 * store is marked "recount pending": only the layer above knows which
 * names its roots reach, so it re-references them and calls
 * cas_recount_done(); until then gc refuses to run.
 *
 * The new index is built beside the old one (index.new/) and swapped in
 * by rename, so a crash during rebuild leaves the old index untouched.
 * Side tables (cas_kv_*) are replayed from the catalogue records the scan
 * meets (jreplay.c); only when there are none (a format 1 store) are they
 * carried over from the old index, if it can still be opened.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas/jreplay.h"

#define REBUILD_BATCH 50000 /* records per LMDB transaction */

struct kv_copy {
	struct kv_copy *next;
	char table[64];
	size_t klen, vlen;
	uint8_t data[];
};

/* Open the old index read-only if its page headers are sound (LMDB
 * would stop the process on a damaged one).  *env is NULL on failure. */
static int old_env_open(const char *idxdir, MDB_env **env)
{
	struct cas_index ix = {0};
	uint64_t bad;
	*env = NULL;
	if (mdb_env_create(&ix.env))
		return -ENOMEM;
	mdb_env_set_maxdbs(ix.env, 64);
	idx_set_assert(ix.env);
	if (mdb_env_open(ix.env, idxdir, MDB_RDONLY | MDB_NOTLS, 0600) ||
	    idx_check_pages(&ix, &bad)) {
		mdb_env_close(ix.env);
		return -EIO;
	}
	*env = ix.env;
	return 0;
}

/* Read every kv.* table of the old index, if it opens. */
static void carry_kv(const char *idxdir, struct kv_copy **out)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi main;
	MDB_cursor *cur;
	MDB_val k, v;

	if (old_env_open(idxdir, &env) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
		if (env)
			mdb_env_close(env);
		return;
	}
	if (mdb_dbi_open(txn, NULL, 0, &main) || mdb_cursor_open(txn, main, &cur))
		goto out;
	for (int q = mdb_cursor_get(cur, &k, &v, MDB_FIRST); q == 0;
	     q = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char name[64];
		MDB_dbi dbi;
		MDB_cursor *c2;
		MDB_val k2, v2;
		if (k.mv_size < 4 || k.mv_size >= sizeof(name) ||
		    memcmp(k.mv_data, "kv.", 3) != 0)
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = 0;
		if (mdb_dbi_open(txn, name, 0, &dbi) ||
		    mdb_cursor_open(txn, dbi, &c2))
			continue;
		for (int r = mdb_cursor_get(c2, &k2, &v2, MDB_FIRST); r == 0;
		     r = mdb_cursor_get(c2, &k2, &v2, MDB_NEXT)) {
			struct kv_copy *e =
				malloc(sizeof(*e) + k2.mv_size + v2.mv_size);
			if (!e)
				break;
			snprintf(e->table, sizeof(e->table), "%s", name);
			e->klen = k2.mv_size;
			e->vlen = v2.mv_size;
			memcpy(e->data, k2.mv_data, k2.mv_size);
			memcpy(e->data + k2.mv_size, v2.mv_data, v2.mv_size);
			e->next = *out;
			*out = e;
		}
		mdb_cursor_close(c2);
	}
	mdb_cursor_close(cur);
out:
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* The old index's word on the journal, if it opens: its store id and
 * the last catalogue record it committed (every commit up to that one
 * reached the disk whole, whatever its regions hold now). */
static void old_journal_meta(const char *idxdir, uint8_t *id, uint64_t *kvlast)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val k = {7, (void *)"storeid"}, v;

	*kvlast = 0;
	if (old_env_open(idxdir, &env) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
		if (env)
			mdb_env_close(env);
		return;
	}
	if (mdb_dbi_open(txn, "meta", 0, &meta) == 0 &&
	    mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == JR_ID_SIZE) {
		uint64_t seq, synced;
		memcpy(id, v.mv_data, JR_ID_SIZE);
		jr_meta_get(txn, meta, &seq, kvlast, &synced);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int list_segments(int dfd, uint32_t **ids, size_t *n)
{
	size_t cap = 0;
	int d2 = dup(dfd);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	struct dirent *e;
	*ids = NULL;
	*n = 0;
	if (!d) {
		if (d2 >= 0)
			close(d2);
		return -errno;
	}
	while ((e = readdir(d))) {
		unsigned id;
		int end = 0;
		if (sscanf(e->d_name, "%u.seg%n", &id, &end) != 1 ||
		    e->d_name[end] || id == 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			uint32_t *v = realloc(*ids, cap * sizeof(*v));
			if (!v) {
				closedir(d);
				return -ENOMEM;
			}
			*ids = v;
		}
		(*ids)[(*n)++] = id;
	}
	closedir(d);
	qsort(*ids, *n, sizeof(**ids), cmp_u32);
	return 0;
}

/* Index every good record of one segment. */
static int scan_segment(struct cas_index *ix, MDB_txn **txn, int dfd,
			uint32_t id, uint64_t *found, uint64_t *bad,
			unsigned *batch, struct jr_scan *js)
{
	char name[32];
	struct stat st;
	uint8_t chunk[CAS_CHUNK_SIZE];
	int rc = 0;

	snprintf(name, sizeof(name), "%06u.seg", id);
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	ssize_t got = pread(fd, buf, size, 0);
	close(fd);
	if (got < 0 || (uint64_t)got != size) {
		free(buf);
		return got < 0 ? -errno : -EIO;
	}
	bool in_bad_run = false;
	uint64_t off, bad_from = 0;
	rc = jr_scan_seg(js, id, buf, size);
	if (!rc && size < SEG_HDR_SIZE)
		rc = jr_scan_bad(js, 0, size);
	for (off = SEG_HDR_SIZE; off + REC_HDR_SIZE <= size && !rc;) {
		cas_name n, h = {{0}};
		unsigned flags;
		uint32_t stored, jpad = 0;
		uint32_t padded = rec_probe(buf + off, size - off, &n, &flags,
					    &stored);
		if (!padded) {
			rc = jr_scan_record(js, buf + off, size - off, off, &jpad);
			if (rc)
				break;
		}
		if (!padded && !jpad) {
			if (!in_bad_run) {
				(*bad)++;
				bad_from = off;
			}
			in_bad_run = true;
			off += REC_ALIGN;
			continue;
		}
		if (in_bad_run)
			rc = jr_scan_bad(js, bad_from, off);
		in_bad_run = false;
		if (jpad) { /* a catalogue record: replayed at the end */
			off += jpad;
			continue;
		}
		if (rec_decode(buf + off, size - off, &n, chunk) == 0) {
			if (flags & REC_F_NODE)
				cas_hash_node(chunk, &h);
			else
				cas_hash(chunk, &h);
		}
		if (memcmp(h.b, n.b, CAS_NAME_SIZE) != 0 || cas_name_is_hole(&n)) {
			(*bad)++;
			if (!rc)
				rc = jr_scan_bad(js, off, off + padded);
			off += padded;
			continue;
		}
		struct cas_loc l = {id, (uint32_t)off, (uint16_t)stored,
				    (uint8_t)flags};
		if (idx_lookup(*txn, ix->chunks, &n, NULL, NULL) == -ENOENT) {
			rc = idx_put_chunk(*txn, ix->chunks, &n, loc_pack(&l), 0);
			(*found)++;
			if (!rc && ++*batch >= REBUILD_BATCH) {
				*batch = 0;
				rc = idx_err(mdb_txn_commit(*txn));
				*txn = NULL;
				if (!rc)
					rc = idx_err(mdb_txn_begin(ix->env, NULL, 0, txn));
			}
		}
		off += padded;
	}
	/* A torn tail (too short for a record) is damage too. */
	if (!rc && size > SEG_HDR_SIZE && (in_bad_run || off < size))
		rc = jr_scan_bad(js, in_bad_run ? bad_from : off, size);
	/* A file too short for its header holds nothing (created just
	 * before a crash): left out, so the next open removes it. */
	if (!rc && size >= SEG_HDR_SIZE)
		rc = idx_seg_put(*txn, ix->segs, id, size, 0);
	free(buf);
	return rc;
}

static void rm_index_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		unlinkat(fd, "data.mdb", 0);
		unlinkat(fd, "lock.mdb", 0);
		close(fd);
	}
	rmdir(dir);
}

int cas_rebuild(const char *path, uint64_t *found, uint64_t *bad_records)
{
	struct cas_rebuild_info info;
	int rc = cas_rebuild_ex(path, &info);
	if (!rc && found)
		*found = info.found;
	if (!rc && bad_records)
		*bad_records = info.bad_records;
	return rc;
}

static int put_id(MDB_txn *txn, MDB_dbi dbi, const uint8_t *id)
{
	MDB_val k = {7, (void *)"storeid"}, v = {JR_ID_SIZE, (void *)id};
	return idx_err(mdb_put(txn, dbi, &k, &v, 0));
}

int cas_rebuild_ex(const char *path, struct cas_rebuild_info *info)
{
	struct jr_scan js = {0};
	uint8_t id[JR_ID_SIZE];
	bool have_id = false;
	uint64_t kvseq = 0, kvlast = 0;
	char idx[4096], nidx[4096], oidx[4096], segd[4096], lock[4096];
	struct kv_copy *kv = NULL;
	struct cas_index ix;
	MDB_txn *txn = NULL;
	uint32_t *ids = NULL;
	size_t nids = 0;
	uint64_t nfound = 0, nbad = 0;
	unsigned batch = 0;
	int lockfd, dfd = -1, rc;

	snprintf(idx, sizeof(idx), "%s/index", path);
	snprintf(nidx, sizeof(nidx), "%s/index.new", path);
	snprintf(oidx, sizeof(oidx), "%s/index.old", path);
	snprintf(segd, sizeof(segd), "%s/segments", path);
	snprintf(lock, sizeof(lock), "%s/lock", path);
	dfd = open(segd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? CAS_EBADSTORE : -errno;
	lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? CAS_ELOCKED : -errno;
		goto out_fds;
	}
	/* A rebuild that a crash cut off between its two steps below left
	 * the old index as index.old and none as index: take it back. */
	if (access(idx, F_OK) != 0 && access(oidx, F_OK) == 0 &&
	    rename(oidx, idx)) {
		rc = -errno;
		goto out_fds;
	}
	memset(info, 0, sizeof(*info));
	uint8_t old_id[JR_ID_SIZE] = {0};
	uint64_t old_last = 0;
	if (access(idx, F_OK) == 0)
		old_journal_meta(idx, old_id, &old_last);

	rm_index_dir(nidx);
	if (mkdir(nidx, 0700)) {
		rc = -errno;
		goto out_fds;
	}
	rc = idx_open(&ix, nidx, true);
	if (rc)
		goto out_fds;
	rc = idx_err(mdb_txn_begin(ix.env, NULL, 0, &txn));
	if (!rc)
		rc = idx_meta_put_u64(txn, ix.meta, "recount", 1);
	if (!rc)
		rc = list_segments(dfd, &ids, &nids);
	for (size_t i = 0; i < nids && !rc; i++)
		rc = scan_segment(&ix, &txn, dfd, ids[i], &nfound, &nbad, &batch,
				  &js);
	if (!rc)
		rc = jr_replay(&js, txn, info, old_id, old_last, id, &have_id,
			       &kvseq, &kvlast);
	/* Format 2 (a store id in the segments): the journal is the
	 * catalogue, even an empty one.  Format 1: the old index's. */
	if (!rc && !have_id && info->catalogue != CAS_CAT_JOURNAL &&
	    access(idx, F_OK) == 0) {
		carry_kv(idx, &kv);
		if (kv)
			info->catalogue = CAS_CAT_OLD_INDEX;
	}
	if (!rc)
		rc = idx_meta_put_u64(txn, ix.meta, "version", have_id ? 2 : 1);
	if (!rc && have_id)
		rc = put_id(txn, ix.meta, id);
	if (!rc && have_id)
		rc = jr_meta_put(txn, ix.meta, kvseq, kvlast, kvlast);
	for (struct kv_copy *e = kv; e && !rc; e = e->next) {
		info->entries++;
		MDB_dbi dbi;
		MDB_val k = {e->klen, e->data}, v = {e->vlen, e->data + e->klen};
		rc = idx_err(mdb_dbi_open(txn, e->table, MDB_CREATE, &dbi));
		if (!rc)
			rc = idx_err(mdb_put(txn, dbi, &k, &v, 0));
	}
	if (txn) {
		if (rc)
			mdb_txn_abort(txn);
		else
			rc = idx_err(mdb_txn_commit(txn));
	}
	if (!rc)
		rc = idx_err(mdb_env_sync(ix.env, 1));
	idx_close(&ix);
	int pfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!rc) { /* the new index's files must be durable by name too */
		int nfd = open(nidx, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (nfd < 0 || fsync(nfd))
			rc = -errno;
		if (nfd >= 0)
			close(nfd);
	}
	if (rc) {
		rm_index_dir(nidx);
		if (pfd >= 0)
			close(pfd);
		goto out_fds;
	}
	/* Swap in one step (there is never a moment without an index),
	 * make it durable, then drop the old one. */
	if (access(idx, F_OK) == 0) {
		int r = renameat2(AT_FDCWD, nidx, AT_FDCWD, idx, RENAME_EXCHANGE);
		if (r && (errno == EINVAL || errno == ENOSYS)) {
			/* No atomic exchange here: two steps; a crash between
			 * them is undone at the start of the next rebuild. */
			rm_index_dir(oidx);
			if (rename(idx, oidx) || rename(nidx, idx))
				rc = -errno;
			else
				rm_index_dir(oidx);
		} else if (r) {
			rc = -errno;
		}
	} else if (rename(nidx, idx)) {
		rc = -errno;
	}
	if (!rc && pfd >= 0 && fsync(pfd))
		rc = -errno;
	if (pfd >= 0)
		close(pfd);
	if (rc)
		goto out_fds;
	rm_index_dir(nidx); /* now the old index */
	info->found = nfound;
	info->bad_records = nbad;
out_fds:
	jr_scan_free(&js);
	while (kv) {
		struct kv_copy *e = kv;
		kv = e->next;
		free(e);
	}
	free(ids);
	close(lockfd);
	close(dfd);
	return rc;
}
