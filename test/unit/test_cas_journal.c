/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_cas_journal.c - pins the catalogue journal: the side tables
 * (cas_kv_*) come back from the segments alone when the LMDB index is
 * lost or unreadable (docs/cas-format.md, "Catalogue record").
 *
 * What can fail here:
 *  - after the index file is deleted, or overwritten with garbage, a
 *    rebuild restores every table exactly: the last value of each key,
 *    deleted keys stay deleted, across many commits;
 *  - after gc compacted away the segments that held old catalogue
 *    records (a checkpoint replaces them), the same holds, and the number
 *    of catalogue records in the segments stays bounded;
 *  - a last commit whose chunk data is torn is not believed (the catalogue
 *    is the one before it), but the same commit named by a later one is;
 *  - a record forged inside a chunk's content (what a guest could write)
 *    is ignored unless it carries the store's id, which no guest knows;
 *  - a commit that writes no data syncs its record while the index
 *    commits: if a crash loses the record after the index committed,
 *    the next open writes a checkpoint (the index has the change); with
 *    the index lost too, the catalogue is the one after the last commit
 *    whose record survived in order, never one with a change in the
 *    middle missing;
 *  - a format 1 store (no store id, no catalogue records) is rebuilt from
 *    its old index, and cas_open upgrades it so that afterwards the
 *    segments alone suffice.
 *
 * On-disk knowledge used (docs/cas-format.md): segments start with a
 * 64-byte header whose bytes 20..35 are the store id and 60..63 a CRC32C
 * of bytes 0..59; a chunk record has its name at offset 8; a catalogue
 * record is laid out as the format page says.  The index's meta table
 * holds "version" (u64) and "storeid".
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "cas/cas.h"

#define CS CAS_CHUNK_SIZE

struct fx {
	char *dir, *store;
	cas *c;
	struct cas_options opt;
};

static int setup_opts(void **state, uint64_t seg_size)
{
	struct fx *f = calloc(1, sizeof(*f));
	*state = f;
	if (!f)
		return -1;
	cas_options_default(&f->opt);
	if (seg_size)
		f->opt.segment_size = seg_size;
	f->dir = tu_mkdtemp("test_cas_journal");
	if (!f->dir || asprintf(&f->store, "%s/store", f->dir) < 0)
		return -1;
	if (cas_create(f->store, &f->opt) || cas_open(f->store, &f->opt, &f->c))
		return -1;
	return 0;
}

static int setup(void **state)
{
	return setup_opts(state, 0);
}

static int setup_small(void **state)
{
	return setup_opts(state, 64 * 1024);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (!f)
		return 0;
	if (f->c)
		cas_close(f->c);
	if (f->dir)
		tu_rmrf(f->dir);
	free(f->store);
	free(f->dir);
	free(f);
	return 0;
}

static void fx_close(struct fx *f)
{
	assert_int_equal(cas_close(f->c), 0);
	f->c = NULL;
}

static void fx_open(struct fx *f)
{
	assert_int_equal(cas_open(f->store, &f->opt, &f->c), 0);
}

static char *path_of(struct fx *f, const char *rel)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", f->store, rel) >= 0);
	return p;
}

static void lose_index(struct fx *f)
{
	char *p = path_of(f, "index/data.mdb");
	assert_int_equal(unlink(p), 0);
	free(p);
}

/* Overwrite the whole index file with garbage (same size). */
static void garble_index(struct fx *f)
{
	char *p = path_of(f, "index/data.mdb");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size);
	assert_non_null(b);
	tu_fill_random(b, (size_t)st.st_size, 77);
	FILE *fp = fopen(p, "r+");
	assert_non_null(fp);
	assert_int_equal(fwrite(b, 1, (size_t)st.st_size, fp),
			 (size_t)st.st_size);
	assert_int_equal(fclose(fp), 0);
	free(b);
	free(p);
}

static cas_name put_random(cas *c, uint64_t seed)
{
	uint8_t buf[CS];
	cas_name n;
	tu_fill_random(buf, CS, seed);
	assert_int_equal(cas_put(c, buf, 0, &n), 1);
	return n;
}

/* ---- a model of the side tables ---- */

#define MKEYS 40
struct model {
	char val[2][MKEYS][48]; /* [table][key]; "" = absent */
};
static const char *const TABLES[2] = {"disks", "snaps"};

static void key_of(int k, char *out)
{
	sprintf(out, "key-%02d", k);
}

static void m_put(struct fx *f, struct model *m, int t, int k, const char *v)
{
	char key[16];
	key_of(k, key);
	assert_int_equal(
		cas_kv_put(f->c, TABLES[t], key, strlen(key), v, strlen(v)), 0);
	snprintf(m->val[t][k], sizeof(m->val[t][k]), "%s", v);
}

static void m_del(struct fx *f, struct model *m, int t, int k)
{
	char key[16];
	key_of(k, key);
	assert_int_equal(cas_kv_del(f->c, TABLES[t], key, strlen(key)), 0);
	m->val[t][k][0] = 0;
}

struct seen {
	int n;
	const struct model *m;
	int t;
};

static int count_fn(void *arg, const void *k, size_t klen, const void *v,
		    size_t vlen)
{
	struct seen *s = arg;
	(void)k;
	(void)klen;
	(void)v;
	(void)vlen;
	s->n++;
	return 0;
}

/* The store's tables hold exactly the model. */
static void m_check(cas *c, const struct model *m)
{
	for (int t = 0; t < 2; t++) {
		int want = 0;
		for (int k = 0; k < MKEYS; k++) {
			char key[16], buf[64];
			size_t vlen = sizeof(buf);
			key_of(k, key);
			int r = cas_kv_get(c, TABLES[t], key, strlen(key), buf,
					   &vlen);
			if (!m->val[t][k][0]) {
				assert_int_equal(r, -ENOENT);
				continue;
			}
			want++;
			assert_int_equal(r, 0);
			assert_int_equal(vlen, strlen(m->val[t][k]));
			assert_memory_equal(buf, m->val[t][k], vlen);
		}
		struct seen s = {0, m, t};
		assert_int_equal(cas_kv_foreach(c, TABLES[t], count_fn, &s), 0);
		assert_int_equal(s.n, want);
	}
}

/* A seeded run of commits: puts, overwrites, deletes, some chunks. */
static void churn(struct fx *f, struct model *m, int rounds, uint64_t seed)
{
	uint64_t s = seed;
	for (int r = 0; r < rounds; r++) {
		int ops = 1 + (int)(tu_rand64(&s) % 4);
		for (int i = 0; i < ops; i++) {
			int t = (int)(tu_rand64(&s) % 2);
			int k = (int)(tu_rand64(&s) % MKEYS);
			if (tu_rand64(&s) % 4 == 0) {
				m_del(f, m, t, k);
			} else {
				char v[48];
				snprintf(v, sizeof(v), "v%d-%llu", r,
					 (unsigned long long)(tu_rand64(&s) %
							      1000));
				m_put(f, m, t, k, v);
			}
		}
		if (r % 3 == 0)
			put_random(f->c, seed * 1000 + (uint64_t)r);
		assert_int_equal(cas_sync(f->c), 0);
	}
}

static void rebuild_expect(struct fx *f, int catalogue,
			   struct cas_rebuild_info *info)
{
	assert_int_equal(cas_rebuild_ex(f->store, info), 0);
	assert_int_equal(info->catalogue, catalogue);
}

/* ====================================================================== */

static void test_index_deleted(void **state)
{
	struct fx *f = *state;
	struct model m = {0};
	struct cas_rebuild_info info;

	churn(f, &m, 60, 1);
	/* A rename-like commit: one key in, one out, in one sync. */
	m_put(f, &m, 0, 3, "renamed");
	m_del(f, &m, 0, 4);
	assert_int_equal(cas_sync(f->c), 0);
	/* Staged twice in one commit: the last write wins. */
	m_put(f, &m, 1, 5, "first");
	m_put(f, &m, 1, 5, "second");
	m_put(f, &m, 1, 6, "doomed");
	m_del(f, &m, 1, 6);
	fx_close(f);
	lose_index(f);

	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_int_equal(info.checkpoint_seq, 0);
	assert_true(info.commits_replayed >= 60);
	assert_int_equal(info.commits_skipped, 0);
	assert_int_equal(info.foreign_records, 0);
	fx_open(f);
	m_check(f->c, &m);

	/* The rebuilt store goes on journaling: more commits, a second
	 * loss, still exact. */
	churn(f, &m, 10, 2);
	fx_close(f);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	fx_open(f);
	m_check(f->c, &m);
}

static void test_index_garbage(void **state)
{
	struct fx *f = *state;
	struct model m = {0};
	struct cas_rebuild_info info;

	churn(f, &m, 30, 3);
	fx_close(f);
	garble_index(f);
	/* The index cannot be read... */
	assert_true(cas_open(f->store, &f->opt, &f->c) != 0);
	f->c = NULL;
	/* ...but the segments hold the catalogue. */
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	fx_open(f);
	m_check(f->c, &m);
}

/* Count catalogue records: the magic at a 16-byte boundary, version 1,
 * kind 1 or 2. */
static size_t count_journal_records(struct fx *f)
{
	char *sd = path_of(f, "segments");
	DIR *d = opendir(sd);
	struct dirent *e;
	size_t n = 0;
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (!strstr(e->d_name, ".seg"))
			continue;
		char *p;
		assert_true(asprintf(&p, "%s/%s", sd, e->d_name) >= 0);
		FILE *fp = fopen(p, "r");
		assert_non_null(fp);
		uint8_t b[16];
		while (fread(b, 1, 16, fp) == 16)
			n += b[0] == 'C' && b[1] == 'A' && b[2] == 'S' &&
			     b[3] == 'J' && b[4] == 1 &&
			     (b[5] == 1 || b[5] == 2);
		fclose(fp);
		free(p);
	}
	closedir(d);
	free(sd);
	return n;
}

static void test_gc_checkpoint(void **state)
{
	struct fx *f = *state;
	struct model m = {0};
	struct cas_rebuild_info info;
	struct cas_gc_result r;
	uint64_t seed = 100;
	size_t most = 0;

	/* Rounds of: chunks written and dropped (so segments empty out),
	 * catalogue changes, gc. */
	for (int round = 0; round < 12; round++) {
		cas_name n[24];
		for (int i = 0; i < 24; i++)
			n[i] = put_random(f->c, seed++);
		churn(f, &m, 8, seed++);
		for (int i = 0; i < 24; i++)
			assert_int_equal(cas_unref(f->c, &n[i]), 0);
		assert_int_equal(cas_gc(f->c, &r), 0);
		size_t jr = count_journal_records(f);
		if (jr > most)
			most = jr;
	}
	/* Old records went with the segments gc removed: the journal does
	 * not grow with history (12 rounds x 8 commits = 96). */
	assert_true(most < 60);
	churn(f, &m, 5, seed++);
	fx_close(f);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_true(info.checkpoint_seq > 0);
	assert_int_equal(info.commits_replayed, 5);
	fx_open(f);
	m_check(f->c, &m);
}

/* Find the segment file and offset of the record of chunk n. */
static void find_record(struct fx *f, const cas_name *n, char **path,
			off_t *off)
{
	char *sd = path_of(f, "segments");
	DIR *d = opendir(sd);
	struct dirent *e;
	*path = NULL;
	assert_non_null(d);
	while ((e = readdir(d)) && !*path) {
		if (!strstr(e->d_name, ".seg"))
			continue;
		char *p;
		assert_true(asprintf(&p, "%s/%s", sd, e->d_name) >= 0);
		FILE *fp = fopen(p, "r");
		assert_non_null(fp);
		uint8_t b[48];
		for (off_t o = 64; !*path; o += 16) {
			if (fseeko(fp, o, SEEK_SET) ||
			    fread(b, 1, 48, fp) != 48)
				break;
			if (!memcmp(b, "CASR", 4) && !memcmp(b + 8, n->b, 32)) {
				*path = p;
				*off = o;
			}
		}
		fclose(fp);
		if (!*path)
			free(p);
	}
	closedir(d);
	free(sd);
	assert_non_null(*path);
}

static void test_torn_last_commit(void **state)
{
	struct fx *f = *state;
	struct model m = {0};
	struct cas_rebuild_info info;
	char *seg;
	off_t off;

	m_put(f, &m, 0, 1, "old-root");
	assert_int_equal(cas_sync(f->c), 0);
	/* The last commit: a chunk and the value naming it.  Its chunk
	 * record is then torn, as if the power went before its sync. */
	cas_name x = put_random(f->c, 4242);
	m_put(f, &m, 0, 1, "new-root");
	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	find_record(f, &x, &seg, &off);
	assert_int_equal(tu_flip_byte(seg, off + 48 + 100, 0x10), 0);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_int_equal(info.commits_skipped, 1);
	fx_open(f);
	snprintf(m.val[0][1], sizeof(m.val[0][1]), "old-root");
	m_check(f->c, &m);

	/* Put it back: the same commit is believed again. */
	fx_close(f);
	assert_int_equal(tu_flip_byte(seg, off + 48 + 100, 0x10), 0);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_int_equal(info.commits_skipped, 0);
	fx_open(f);
	snprintf(m.val[0][1], sizeof(m.val[0][1]), "new-root");
	m_check(f->c, &m);

	/* A later commit names it as committed: then later damage to its
	 * data (bit rot, not a crash) does not undo it. */
	m_put(f, &m, 1, 2, "later");
	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	assert_int_equal(tu_flip_byte(seg, off + 48 + 100, 0x10), 0);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_int_equal(info.commits_skipped, 0);
	fx_open(f);
	m_check(f->c, &m);
	free(seg);
}

/* ---- commits that wrote no data: record synced beside the index ---- */

/* Offsets of the catalogue records in the (only) segment file. */
static int journal_offsets(struct fx *f, off_t *off, int max, char **path)
{
	*path = path_of(f, "segments/000001.seg");
	FILE *fp = fopen(*path, "r");
	uint8_t b[16];
	int n = 0;
	assert_non_null(fp);
	for (off_t o = 0; fread(b, 1, 16, fp) == 16; o += 16)
		if (!memcmp(b, "CASJ", 4) && b[4] == 1 && n < max)
			off[n++] = o;
	fclose(fp);
	return n;
}

/* In a child that then ends without closing (a crash after its last
 * commit): a=1 with a chunk, then b=2 and c=3 (catalogue only: their
 * records synced beside the index commit, which notes them as maybe
 * not durable). */
static void crash_after_lazy_commits(struct fx *f)
{
	fx_close(f);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cas *c;
		if (cas_open(f->store, &f->opt, &c))
			_exit(2);
		uint8_t buf[CS];
		cas_name n;
		tu_fill_random(buf, CS, 555);
		int r = cas_put(c, buf, 0, &n) != 1;
		r |= cas_kv_put(c, "disks", "a", 1, "1", 1) || cas_sync(c);
		r |= cas_kv_put(c, "disks", "b", 1, "2", 1) || cas_sync(c);
		r |= cas_kv_put(c, "disks", "c", 1, "3", 1) || cas_sync(c);
		_exit(r ? 3 : 0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void expect_abc(struct fx *f, const char *a, const char *b,
		       const char *c)
{
	const char *want[3] = {a, b, c};
	for (int i = 0; i < 3; i++) {
		char k[2] = {(char)('a' + i), 0}, buf[8];
		size_t vlen = sizeof(buf);
		int r = cas_kv_get(f->c, "disks", k, 1, buf, &vlen);
		if (!want[i]) {
			assert_int_equal(r, -ENOENT);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(vlen, 1);
		assert_int_equal(buf[0], want[i][0]);
	}
}

static void test_lazy_lost_index_kept(void **state)
{
	struct fx *f = *state;
	struct cas_rebuild_info info;
	off_t off[8];
	char *seg;

	crash_after_lazy_commits(f);
	/* The crash lost the two records (cut between the index commit
	 * and their sync). */
	assert_int_equal(journal_offsets(f, off, 8, &seg), 3);
	assert_int_equal(truncate(seg, off[1]), 0);
	free(seg);
	/* The index has them: the open puts them back (a checkpoint). */
	fx_open(f);
	expect_abc(f, "1", "2", "3");
	fx_close(f);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_true(info.checkpoint_seq > 0);
	fx_open(f);
	expect_abc(f, "1", "2", "3");
}

static void test_lazy_lost_with_index(void **state)
{
	struct fx *f = *state;
	struct cas_rebuild_info info;
	off_t off[8];
	char *seg;

	crash_after_lazy_commits(f);
	/* Index and the b record lost, c kept (written out of order):
	 * c comes after b, so it is not believed either. */
	assert_int_equal(journal_offsets(f, off, 8, &seg), 3);
	uint8_t zero[48] = {0};
	FILE *fp = fopen(seg, "r+");
	assert_non_null(fp);
	assert_int_equal(fseeko(fp, off[1], SEEK_SET), 0);
	assert_int_equal(fwrite(zero, 1, sizeof(zero), fp), sizeof(zero));
	assert_int_equal(fclose(fp), 0);
	free(seg);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_int_equal(info.commits_replayed, 1);
	assert_int_equal(info.commits_skipped, 1);
	fx_open(f);
	expect_abc(f, "1", NULL, NULL);
}

/* A segment file created just before a crash, with nothing in it: the
 * rebuild leaves it out and the open removes it (it would otherwise
 * stay forever: gc never picks an empty file). */
static void test_empty_segment_file(void **state)
{
	struct fx *f = *state;
	struct model m = {0};
	struct cas_rebuild_info info;

	churn(f, &m, 3, 9);
	fx_close(f);
	char *empty = path_of(f, "segments/000099.seg");
	FILE *fp = fopen(empty, "w");
	assert_non_null(fp);
	assert_int_equal(fclose(fp), 0);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	fx_open(f);
	assert_int_equal(access(empty, F_OK), -1);
	m_check(f->c, &m);
	struct cas_stat st;
	assert_int_equal(cas_stat(f->c, &st), 0);
	assert_int_equal(st.segment_files, 1);
	free(empty);
}

/* ---- forged records ---- */

static uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A chunk whose content is a commit record putting disks/evil = "x". */
static void forge(uint8_t *chunk, const uint8_t *id)
{
	uint8_t *r = chunk + 16;
	const char *t = "disks", *k = "evil", *v = "x";
	size_t body = 16 + 8 + 5 + 4 + 1;
	memset(chunk, 0x5a, CS);
	memset(r, 0, 48 + body);
	memcpy(r, "CASJ", 4);
	r[4] = 1;
	r[5] = 1;
	le32(r + 8, (uint32_t)body);
	memcpy(r + 16, id, 16);
	le64(r + 32, 1ull << 60);
	le64(r + 40, 0);
	uint8_t *b = r + 48;
	le32(b, 0);
	le32(b + 4, 1);
	le32(b + 8, 1);
	le32(b + 12, 0);
	b[16] = 5;
	b[17] = 0;
	b[18] = 4;
	b[19] = 0;
	le32(b + 20, 1);
	memcpy(b + 24, t, 5);
	memcpy(b + 29, k, 4);
	memcpy(b + 33, v, 1);
	uint32_t crc = crc32c(0, r, 12);
	crc = crc32c(crc, r + 16, 32 + body);
	le32(r + 12, crc);
}

static void forged_case(struct fx *f, const uint8_t *id, bool want_taken)
{
	uint8_t chunk[CS];
	cas_name n;
	char *seg;
	off_t off;
	struct cas_rebuild_info info;

	fx_open(f);
	forge(chunk, id);
	assert_true(cas_put(f->c, chunk, CAS_PUT_NOCOMPRESS, &n) >= 0);
	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	/* Damage the chunk record's header so the scan slides into its
	 * content and meets the forged record. */
	find_record(f, &n, &seg, &off);
	assert_int_equal(tu_flip_byte(seg, off + 44, 0xff), 0);
	free(seg);
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	/* The first forgery stays in the store: it is met every time. */
	assert_int_equal(info.foreign_records, 1);
	fx_open(f);
	char buf[8];
	size_t vlen = sizeof(buf);
	assert_int_equal(cas_kv_get(f->c, "disks", "evil", 4, buf, &vlen),
			 want_taken ? 0 : -ENOENT);
	vlen = sizeof(buf);
	assert_int_equal(cas_kv_get(f->c, "disks", "good", 4, buf, &vlen), 0);
	fx_close(f);
}

static void test_forged_record(void **state)
{
	struct fx *f = *state;
	uint8_t id[16], other[16];

	assert_int_equal(cas_kv_put(f->c, "disks", "good", 4, "g", 1), 0);
	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	char *first;
	assert_true(asprintf(&first, "%s/segments/000001.seg", f->store) >= 0);
	assert_int_equal(tu_read_at(first, 20, id, 16), 0);
	free(first);
	tu_fill_random(other, 16, 5);
	/* What a guest can write: a record with an id it has to guess. */
	forged_case(f, other, false);
	/* The same bytes with the store's own id would be believed: the id
	 * is what keeps guest content out of the catalogue. */
	forged_case(f, id, true);
}

/* ---- format 1 ---- */

static void lmdb_edit(struct fx *f, bool make_v1)
{
	char *idx = path_of(f, "index");
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, disks;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 64), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 256ull << 30), 0);
	assert_int_equal(mdb_env_open(env, idx, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	MDB_val k = {7, "version"}, v;
	uint8_t one[8] = {make_v1 ? 1 : 2};
	if (make_v1) {
		v = (MDB_val){8, one};
		assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
		k = (MDB_val){7, "storeid"};
		assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
		assert_int_equal(
			mdb_dbi_open(txn, "kv.disks", MDB_CREATE, &disks), 0);
		k = (MDB_val){3, "vm1"};
		v = (MDB_val){6, "root-a"};
		assert_int_equal(mdb_put(txn, disks, &k, &v, 0), 0);
	} else {
		assert_int_equal(mdb_get(txn, meta, &k, &v), 0);
		assert_int_equal(v.mv_size, 8);
		assert_int_equal(((uint8_t *)v.mv_data)[0], 2);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(idx);
}

/* Zero the store id in every segment header (format 1 had none). */
static void zero_seg_ids(struct fx *f)
{
	char *sd = path_of(f, "segments");
	DIR *d = opendir(sd);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (!strstr(e->d_name, ".seg"))
			continue;
		char *p;
		assert_true(asprintf(&p, "%s/%s", sd, e->d_name) >= 0);
		FILE *fp = fopen(p, "r+");
		uint8_t h[64];
		assert_non_null(fp);
		assert_int_equal(fread(h, 1, 64, fp), 64);
		memset(h + 20, 0, 16);
		le32(h + 60, crc32c(0, h, 60));
		assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
		assert_int_equal(fwrite(h, 1, 64, fp), 64);
		fclose(fp);
		free(p);
	}
	closedir(d);
	free(sd);
}

static void test_format1_store(void **state)
{
	struct fx *f = *state;
	struct cas_rebuild_info info;
	char buf[16];
	size_t vlen;

	/* A format 1 store: chunks, a catalogue only in the index. */
	cas_name n = put_random(f->c, 9);
	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	lmdb_edit(f, true);
	zero_seg_ids(f);

	/* Rebuilt as it is: the catalogue comes from the old index. */
	rebuild_expect(f, CAS_CAT_OLD_INDEX, &info);
	assert_int_equal(info.entries, 1);
	assert_int_equal(info.found, 1);

	/* Opened: upgraded to format 2 in place, catalogue kept. */
	fx_open(f);
	vlen = sizeof(buf);
	assert_int_equal(cas_kv_get(f->c, "disks", "vm1", 3, buf, &vlen), 0);
	assert_memory_equal(buf, "root-a", 6);
	assert_int_equal(cas_lookup(f->c, &n, NULL), 0);
	fx_close(f);
	lmdb_edit(f, false);

	/* Now the segments alone carry it. */
	lose_index(f);
	rebuild_expect(f, CAS_CAT_JOURNAL, &info);
	assert_true(info.checkpoint_seq > 0);
	fx_open(f);
	vlen = sizeof(buf);
	assert_int_equal(cas_kv_get(f->c, "disks", "vm1", 3, buf, &vlen), 0);
	assert_int_equal(vlen, 6);
	assert_memory_equal(buf, "root-a", 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_index_deleted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_index_garbage, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_gc_checkpoint, setup_small,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forged_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_format1_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_empty_segment_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lazy_lost_index_kept,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_lost_with_index,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
