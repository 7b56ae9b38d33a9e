/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_cas.c - pins the contract of cas/cas.h, the content-addressed
 * chunk store.
 *
 * Every rule the header states has a test here that can fail:
 *  - names: a data chunk is named SHA-256(content), a map node
 *    SHA-256(0x01 || content) (computed here with OpenSSL, never through
 *    cas_hash), the all-zero chunk is CAS_HOLE and is never stored; the hex
 *    form round trips and rejects anything but 64 hex digits;
 *  - dedup: the same content is stored once and only its count grows;
 *  - split put: cas_prepare on any thread + cas_put_prepared give what
 *    cas_put gives, also when the chunk appears or vanishes in between;
 *  - compression: compressible chunks are stored smaller, incompressible
 *    ones and level 0 / CAS_PUT_NOCOMPRESS are stored raw; all round trip;
 *  - counts: ref/unref return the new count, refuse to go below zero and
 *    coalesce in memory until cas_sync;
 *  - damage: a flipped byte in a segment record reads as -EIO with a zeroed
 *    buffer, never as wrong data, and scrub names exactly the damaged chunk;
 *  - gc and compaction free zero-count chunks, give segment bytes back and
 *    keep every live chunk readable, also across a reopen;
 *  - rebuild: the index comes back from the segments alone, with counts at
 *    zero and gc refused until the layer above recounts (the side tables
 *    too: test_cas_journal.c);
 *  - the store lock, kv side tables, one writer with concurrent readers,
 *    cas_strerror.
 *
 * On-disk knowledge used by the damage tests (the segment format):
 * STORE/segments/NNNNNN.seg start with a 64-byte header; the first record
 * follows with a 48-byte header (u32 magic, u8 version, u8 flags,
 * u16 stored_len, 32-byte name, u32 raw_len, u32 crc32c) and its payload.
 * The LMDB index lives in STORE/index/.
 *
 * Each test gets a fresh store in a mkdtemp directory, removed afterwards.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "cas/cas.h"

#define CS CAS_CHUNK_SIZE
#define MIB (1024u * 1024u)

/* Segment format offsets (see the top comment). */
#define SEG_HDR 64
#define REC_HDR 48
#define REC_NAME_OFF 8

/* ======================================================================
 * Fixture: a fresh store per test.
 * ====================================================================== */

struct fx {
	char *dir;   /* mkdtemp directory, removed at teardown */
	char *store; /* dir/store */
	cas *c;      /* open store, or NULL */
	struct cas_options opt;
};

static int fx_teardown(void **state);

static int fx_setup_opts(void **state, const struct cas_options *o)
{
	struct fx *f = calloc(1, sizeof(*f));
	int r;

	*state = f;
	if (!f)
		return -1;
	f->opt = *o;
	f->dir = tu_mkdtemp("test_cas");
	if (!f->dir || asprintf(&f->store, "%s/store", f->dir) < 0)
		goto fail;
	if ((r = cas_create(f->store, &f->opt)) != 0) {
		fprintf(stderr, "cas_create: %s\n", cas_strerror(r));
		goto fail;
	}
	if ((r = cas_open(f->store, &f->opt, &f->c)) != 0) {
		fprintf(stderr, "cas_open: %s\n", cas_strerror(r));
		f->c = NULL;
		goto fail;
	}
	return 0;
fail:
	fx_teardown(state);
	*state = NULL;
	return -1;
}

static int fx_setup(void **state)
{
	struct cas_options o;

	cas_options_default(&o);
	return fx_setup_opts(state, &o);
}

/* Small segments, so that a few thousand chunks seal several of them. */
static int fx_setup_small(void **state)
{
	struct cas_options o;

	cas_options_default(&o);
	o.segment_size = 1 * MIB;
	return fx_setup_opts(state, &o);
}

/* A store created with compression off. */
static int fx_setup_level0(void **state)
{
	struct cas_options o;

	cas_options_default(&o);
	o.compress_level = 0;
	return fx_setup_opts(state, &o);
}

static int fx_teardown(void **state)
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
	assert_non_null(f->c);
	assert_int_equal(cas_close(f->c), 0);
	f->c = NULL;
}

static void fx_open(struct fx *f)
{
	assert_null(f->c);
	assert_int_equal(cas_open(f->store, &f->opt, &f->c), 0);
	assert_non_null(f->c);
}

static void fx_reopen(struct fx *f)
{
	fx_close(f);
	fx_open(f);
}

/* ======================================================================
 * Independent hashing (OpenSSL one-shot, never cas_hash).
 * ====================================================================== */

static void sha_data(const void *data, cas_name *out)
{
	SHA256(data, CS, out->b);
}

static void sha_node(const void *data, cas_name *out)
{
	uint8_t buf[1 + CS];

	buf[0] = 0x01;
	memcpy(buf + 1, data, CS);
	SHA256(buf, sizeof(buf), out->b);
}

static int name_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CAS_NAME_SIZE);
}

#define assert_name_equal(x, y) \
	assert_memory_equal((x)->b, (y)->b, CAS_NAME_SIZE)
#define assert_name_not_equal(x, y) \
	assert_memory_not_equal((x)->b, (y)->b, CAS_NAME_SIZE)

/* ======================================================================
 * Chunk helpers: content is a function of (kind, seed) so it can be
 * regenerated for checking.
 * ====================================================================== */

enum kind {
	K_RANDOM,
	K_TEXT
};

static void make_chunk(void *buf, enum kind k, uint64_t seed)
{
	if (k == K_RANDOM)
		tu_fill_random(buf, CS, seed);
	else
		tu_fill_text(buf, CS, seed);
}

/* Put a chunk, assert the put's return value (1 or 0, or -1 for "don't
 * care, but no error") and that its name is the independent hash. */
static void put_check(cas *c, const void *buf, unsigned flags, int expect,
		      cas_name *name)
{
	cas_name want;
	int r = cas_put(c, buf, flags, name);

	if (expect >= 0)
		assert_int_equal(r, expect);
	else
		assert_true(r >= 0);
	if (flags & CAS_PUT_NODE)
		sha_node(buf, &want);
	else
		sha_data(buf, &want);
	assert_name_equal(name, &want);
}

static cas_name put_kind(cas *c, enum kind k, uint64_t seed, unsigned flags)
{
	uint8_t buf[CS];
	cas_name n;

	make_chunk(buf, k, seed);
	put_check(c, buf, flags, 1, &n);
	return n;
}

/* Read 'name' (with 'flags') and compare with the regenerated content. */
static void get_check(cas *c, const cas_name *name, enum kind k, uint64_t seed,
		      unsigned flags)
{
	uint8_t want[CS], got[CS];

	make_chunk(want, k, seed);
	memset(got, 0xa5, sizeof(got));
	assert_int_equal(cas_get(c, name, got, flags), 0);
	assert_memory_equal(got, want, CS);
}

static uint32_t refs_of(cas *c, const cas_name *name)
{
	uint32_t refs = 0xdeadbeef;

	assert_int_equal(cas_lookup(c, name, &refs), 0);
	return refs;
}

static struct cas_stat stat_of(cas *c)
{
	struct cas_stat st;

	memset(&st, 0xff, sizeof(st));
	assert_int_equal(cas_stat(c, &st), 0);
	return st;
}

/* ======================================================================
 * Segment files.
 * ====================================================================== */

static int ends_with_seg(const char *s)
{
	size_t n = strlen(s);

	return n > 4 && strcmp(s + n - 4, ".seg") == 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted full paths of STORE/segments/ *.seg; returns how many (<= max). */
static int seg_list(const char *store, char **paths, int max)
{
	char *dir;
	DIR *d;
	struct dirent *e;
	int n = 0;

	assert_true(asprintf(&dir, "%s/segments", store) >= 0);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) && n < max) {
		if (!ends_with_seg(e->d_name))
			continue;
		assert_true(asprintf(&paths[n], "%s/%s", dir, e->d_name) >= 0);
		n++;
	}
	closedir(d);
	free(dir);
	qsort(paths, n, sizeof(*paths), str_cmp);
	return n;
}

static void seg_list_free(char **paths, int n)
{
	for (int i = 0; i < n; i++)
		free(paths[i]);
}

/* Total size of the segment files, measured with stat(2). */
static uint64_t seg_bytes(const char *store, int *count)
{
	char *paths[4096];
	int n = seg_list(store, paths, 4096);
	uint64_t total = 0;

	for (int i = 0; i < n; i++) {
		struct stat st;

		assert_int_equal(stat(paths[i], &st), 0);
		total += (uint64_t)st.st_size;
	}
	seg_list_free(paths, n);
	if (count)
		*count = n;
	return total;
}

/* Path of the first (oldest) segment file; malloc'ed. */
static char *first_seg(const char *store)
{
	char *paths[4096];
	int n = seg_list(store, paths, 4096);
	char *p;

	assert_true(n >= 1);
	p = paths[0];
	seg_list_free(paths + 1, n - 1);
	return p;
}

/* The name in the first record's header of the first segment. */
static cas_name first_record_name(const char *store)
{
	char *seg = first_seg(store);
	cas_name n;

	assert_int_equal(
		tu_read_at(seg, SEG_HDR + REC_NAME_OFF, n.b, CAS_NAME_SIZE), 0);
	free(seg);
	return n;
}

static void flip_first_record(const char *store, off_t off_in_record)
{
	char *seg = first_seg(store);

	assert_int_equal(tu_flip_byte(seg, SEG_HDR + off_in_record, 0x40), 0);
	free(seg);
}

/* ======================================================================
 * cas_foreach collection.
 * ====================================================================== */

struct ref_entry {
	cas_name name;
	uint32_t refs;
};

struct ref_map {
	struct ref_entry *e;
	size_t n, cap;
};

static int collect_fn(void *arg, const cas_name *name, uint32_t refs)
{
	struct ref_map *m = arg;

	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->e = realloc(m->e, m->cap * sizeof(*m->e));
		if (!m->e)
			return -ENOMEM;
	}
	m->e[m->n].name = *name;
	m->e[m->n].refs = refs;
	m->n++;
	return 0;
}

/* Every indexed chunk with its count, sorted by name. */
static struct ref_map collect(cas *c)
{
	struct ref_map m = {0};

	assert_int_equal(cas_foreach(c, collect_fn, &m), 0);
	if (m.n)
		qsort(m.e, m.n, sizeof(*m.e), name_cmp);
	return m;
}

static void assert_maps_equal(const struct ref_map *a, const struct ref_map *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_name_equal(&a->e[i].name, &b->e[i].name);
		assert_int_equal(a->e[i].refs, b->e[i].refs);
	}
}

/* ======================================================================
 * Names and hashing.
 * ====================================================================== */

static void test_options_default(void **state)
{
	struct cas_options o;

	(void)state;
	memset(&o, 0xff, sizeof(o));
	cas_options_default(&o);
	assert_int_equal(o.compress_level, 1);
	assert_int_equal(o.segment_size, 64ull * MIB);
	assert_int_equal(o.compact_threshold_pct, 50);
}

static void test_hash_matches_sha256(void **state)
{
	uint8_t buf[CS];
	cas_name got, want;

	(void)state;
	for (uint64_t seed = 1; seed <= 8; seed++) {
		make_chunk(buf, seed & 1 ? K_RANDOM : K_TEXT, seed);
		cas_hash(buf, &got);
		sha_data(buf, &want);
		assert_name_equal(&got, &want);
		cas_hash_node(buf, &got);
		sha_node(buf, &want);
		assert_name_equal(&got, &want);
		sha_data(buf, &want);
		assert_name_not_equal(&got, &want);
	}

	/* The zero chunk is the hole in both domains, and CAS_HOLE is all
	 * zero bytes. */
	memset(buf, 0, sizeof(buf));
	assert_true(tu_is_zero(CAS_HOLE.b, CAS_NAME_SIZE));
	memset(&got, 0xff, sizeof(got));
	cas_hash(buf, &got);
	assert_name_equal(&got, &CAS_HOLE);
	memset(&got, 0xff, sizeof(got));
	cas_hash_node(buf, &got);
	assert_name_equal(&got, &CAS_HOLE);
	assert_true(cas_name_is_hole(&got));

	/* One non-zero byte anywhere is not the hole. */
	buf[CS - 1] = 1;
	cas_hash(buf, &got);
	sha_data(buf, &want);
	assert_name_equal(&got, &want);
	assert_false(cas_name_is_hole(&got));
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static void test_name_format_parse(void **state)
{
	uint8_t buf[CS];
	cas_name n, back;
	char hex[2 * CAS_NAME_SIZE + 1];
	char bad[2 * CAS_NAME_SIZE + 8];

	(void)state;
	tu_fill_random(buf, CS, 42);
	sha_data(buf, &n);

	memset(hex, 'x', sizeof(hex));
	cas_name_format(&n, hex);
	assert_int_equal(strlen(hex), 2 * CAS_NAME_SIZE);
	for (unsigned i = 0; i < CAS_NAME_SIZE; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		assert_true(hi >= 0 && lo >= 0);
		assert_int_equal((hi << 4) | lo, n.b[i]);
	}

	memset(&back, 0, sizeof(back));
	assert_int_equal(cas_name_parse(hex, &back), 0);
	assert_name_equal(&back, &n);

	/* Upper case hex digits are hex digits too. */
	for (char *p = hex; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	memset(&back, 0, sizeof(back));
	assert_int_equal(cas_name_parse(hex, &back), 0);
	assert_name_equal(&back, &n);

	/* The hole's hex form. */
	cas_name_format(&CAS_HOLE, hex);
	for (unsigned i = 0; i < 2 * CAS_NAME_SIZE; i++)
		assert_int_equal(hex[i], '0');
	memset(&back, 0xff, sizeof(back));
	assert_int_equal(cas_name_parse(hex, &back), 0);
	assert_name_equal(&back, &CAS_HOLE);

	/* Rejects: 63 digits, 65 digits, a non-hex digit anywhere, empty,
	 * a "0x" prefix, spaces. */
	cas_name_format(&n, hex);
	memcpy(bad, hex, 63);
	bad[63] = 0;
	assert_int_equal(cas_name_parse(bad, &back), -EINVAL);
	memcpy(bad, hex, 64);
	bad[64] = '0';
	bad[65] = 0;
	assert_int_equal(cas_name_parse(bad, &back), -EINVAL);
	const char badch[] = {'g', 'G', 'x', ' ', '-', ':', (char)0xc3};
	for (size_t k = 0; k < sizeof(badch); k++) {
		for (unsigned pos = 0; pos < 64; pos += 21) {
			memcpy(bad, hex, 65);
			bad[pos] = badch[k];
			assert_int_equal(cas_name_parse(bad, &back), -EINVAL);
		}
		memcpy(bad, hex, 65);
		bad[63] = badch[k];
		assert_int_equal(cas_name_parse(bad, &back), -EINVAL);
	}
	assert_int_equal(cas_name_parse("", &back), -EINVAL);
	snprintf(bad, sizeof(bad), "0x%.62s", hex);
	assert_int_equal(cas_name_parse(bad, &back), -EINVAL);
	snprintf(bad, sizeof(bad), " %.63s", hex);
	assert_int_equal(cas_name_parse(bad, &back), -EINVAL);
	snprintf(bad, sizeof(bad), "%.64s\n", hex);
	assert_int_equal(cas_name_parse(bad, &back), -EINVAL);
}

/* ======================================================================
 * put / get / dedup / hole.
 * ====================================================================== */

static void test_put_get_roundtrip(void **state)
{
	struct fx *f = *state;
	cas_name names[16];
	uint32_t refs;

	for (int i = 0; i < 16; i++)
		names[i] =
			put_kind(f->c, i & 1 ? K_TEXT : K_RANDOM, 100 + i, 0);

	/* Visible at once, before any sync, with and without verify. */
	for (int i = 0; i < 16; i++) {
		get_check(f->c, &names[i], i & 1 ? K_TEXT : K_RANDOM, 100 + i,
			  0);
		get_check(f->c, &names[i], i & 1 ? K_TEXT : K_RANDOM, 100 + i,
			  CAS_GET_VERIFY);
		assert_int_equal(cas_lookup(f->c, &names[i], NULL), 0);
		assert_int_equal(refs_of(f->c, &names[i]), 1);
	}

	assert_int_equal(cas_sync(f->c), 0);
	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, 16);
	assert_int_equal(st.refs, 16);
	assert_int_equal(st.raw_bytes, 16ull * CS);
	assert_true(st.index_entries >= 16);
	assert_true(st.index_bytes > 0);
	assert_true(st.segment_files >= 1);
	assert_true(st.segment_bytes >= st.stored_bytes);

	for (int i = 0; i < 16; i++)
		get_check(f->c, &names[i], i & 1 ? K_TEXT : K_RANDOM, 100 + i,
			  CAS_GET_VERIFY);

	/* cas_put_named with the name from cas_hash does the same. */
	uint8_t buf[CS];
	cas_name n;
	make_chunk(buf, K_RANDOM, 999);
	cas_hash(buf, &n);
	assert_int_equal(cas_put_named(f->c, &n, buf, 0), 1);
	assert_int_equal(cas_put_named(f->c, &n, buf, 0), 0);
	assert_int_equal(cas_lookup(f->c, &n, &refs), 0);
	assert_int_equal(refs, 2);
	get_check(f->c, &n, K_RANDOM, 999, CAS_GET_VERIFY);
}

static void test_get_unknown(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CS];
	cas_name n;
	uint32_t refs = 77;

	make_chunk(buf, K_RANDOM, 5);
	sha_data(buf, &n);
	assert_int_equal(cas_get(f->c, &n, buf, 0), -ENOENT);
	assert_int_equal(cas_get(f->c, &n, buf, CAS_GET_VERIFY), -ENOENT);
	assert_int_equal(cas_lookup(f->c, &n, &refs), -ENOENT);

	/* Also after something else is stored and synced. */
	put_kind(f->c, K_RANDOM, 6, 0);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(cas_get(f->c, &n, buf, 0), -ENOENT);
	assert_int_equal(cas_lookup(f->c, &n, NULL), -ENOENT);

	/* The same content's node name is another name: not stored. */
	make_chunk(buf, K_RANDOM, 6);
	sha_node(buf, &n);
	assert_int_equal(cas_get(f->c, &n, buf, 0), -ENOENT);
}

static void test_dedup(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CS];
	cas_name a, b;

	make_chunk(buf, K_RANDOM, 7);
	put_check(f->c, buf, 0, 1, &a);
	assert_int_equal(cas_sync(f->c), 0);
	struct cas_stat before = stat_of(f->c);
	uint64_t disk_before = seg_bytes(f->store, NULL);
	assert_int_equal(before.chunks, 1);
	assert_true(before.stored_bytes >= CS);

	put_check(f->c, buf, 0, 0, &b);
	assert_name_equal(&a, &b);
	assert_int_equal(refs_of(f->c, &a), 2);
	assert_int_equal(cas_sync(f->c), 0);

	struct cas_stat after = stat_of(f->c);
	assert_int_equal(after.chunks, 1);
	assert_int_equal(after.refs, 2);
	assert_int_equal(after.stored_bytes, before.stored_bytes);
	assert_int_equal(after.segment_bytes, before.segment_bytes);
	assert_int_equal(seg_bytes(f->store, NULL), disk_before);

	/* A third time, and through cas_put_named. */
	assert_int_equal(cas_put_named(f->c, &a, buf, 0), 0);
	assert_int_equal(refs_of(f->c, &a), 3);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(stat_of(f->c).segment_bytes, before.segment_bytes);
	get_check(f->c, &a, K_RANDOM, 7, CAS_GET_VERIFY);
}

static void test_zero_block_is_hole(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CS];
	cas_name n;
	uint32_t refs = 77;
	int r;

	memset(buf, 0, sizeof(buf));
	memset(&n, 0xff, sizeof(n));
	r = cas_put(f->c, buf, 0, &n);
	assert_true(r >= 0);
	assert_name_equal(&n, &CAS_HOLE);

	memset(&n, 0xff, sizeof(n));
	assert_true(cas_put(f->c, buf, CAS_PUT_NODE, &n) >= 0);
	assert_name_equal(&n, &CAS_HOLE);
	assert_true(cas_put(f->c, buf, CAS_PUT_NOCOMPRESS, &n) >= 0);
	assert_name_equal(&n, &CAS_HOLE);
	assert_true(cas_put_named(f->c, &CAS_HOLE, buf, 0) >= 0);

	/* Nothing stored, nothing counted. */
	assert_int_equal(cas_sync(f->c), 0);
	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, 0);
	assert_int_equal(st.refs, 0);
	assert_int_equal(st.stored_bytes, 0);
	assert_int_equal(st.raw_bytes, 0);
	assert_int_equal(st.compressed_chunks, 0);
	struct ref_map m = collect(f->c);
	assert_int_equal(m.n, 0);
	free(m.e);

	/* The hole reads as zeros, with and without verify. */
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(cas_get(f->c, &CAS_HOLE, buf, 0), 0);
	assert_true(tu_is_zero(buf, CS));
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(cas_get(f->c, &CAS_HOLE, buf, CAS_GET_VERIFY), 0);
	assert_true(tu_is_zero(buf, CS));

	/* ref / unref / set_refs of the hole are accepted and ignored. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(cas_ref(f->c, &CAS_HOLE), 0);
		assert_int_equal(cas_unref(f->c, &CAS_HOLE), 0);
		assert_int_equal(cas_unref(f->c, &CAS_HOLE), 0);
	}
	assert_int_equal(cas_set_refs(f->c, &CAS_HOLE, 5), 0);
	r = cas_lookup(f->c, &CAS_HOLE, &refs);
	assert_true(r == 0 || r == -ENOENT);
	if (r == 0)
		assert_int_equal(refs, 0);

	assert_int_equal(cas_sync(f->c), 0);
	st = stat_of(f->c);
	assert_int_equal(st.chunks, 0);
	assert_int_equal(st.refs, 0);
	assert_int_equal(st.stored_bytes, 0);
}

/* ======================================================================
 * Compression.
 * ====================================================================== */

static void test_compressible_stored_smaller(void **state)
{
	struct fx *f = *state;
	enum {
		N = 20
	};
	cas_name n[N];

	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_TEXT, 1000 + i, 0);
	assert_int_equal(cas_sync(f->c), 0);

	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, N);
	assert_int_equal(st.compressed_chunks, N);
	assert_true(st.stored_bytes > 0);
	assert_true(st.stored_bytes < (uint64_t)N * CS / 2);
	assert_int_equal(st.raw_bytes, (uint64_t)N * CS);

	for (int i = 0; i < N; i++) {
		get_check(f->c, &n[i], K_TEXT, 1000 + i, 0);
		get_check(f->c, &n[i], K_TEXT, 1000 + i, CAS_GET_VERIFY);
	}
	fx_reopen(f);
	for (int i = 0; i < N; i++)
		get_check(f->c, &n[i], K_TEXT, 1000 + i, CAS_GET_VERIFY);
	assert_int_equal(stat_of(f->c).compressed_chunks, N);
}

static void test_incompressible_stored_raw(void **state)
{
	struct fx *f = *state;
	enum {
		N = 20
	};
	cas_name n[N];

	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_RANDOM, 2000 + i, 0);
	assert_int_equal(cas_sync(f->c), 0);

	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, N);
	assert_int_equal(st.compressed_chunks, 0);
	assert_true(st.stored_bytes >= (uint64_t)N * CS);

	for (int i = 0; i < N; i++)
		get_check(f->c, &n[i], K_RANDOM, 2000 + i, CAS_GET_VERIFY);
}

static void test_nocompress_flag(void **state)
{
	struct fx *f = *state;
	enum {
		N = 10
	};
	cas_name n[N];

	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_TEXT, 3000 + i, CAS_PUT_NOCOMPRESS);
	assert_int_equal(cas_sync(f->c), 0);

	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, N);
	assert_int_equal(st.compressed_chunks, 0);
	assert_true(st.stored_bytes >= (uint64_t)N * CS);
	for (int i = 0; i < N; i++)
		get_check(f->c, &n[i], K_TEXT, 3000 + i, CAS_GET_VERIFY);
}

static void test_level0_stores_raw(void **state)
{
	struct fx *f = *state;
	enum {
		N = 10
	};
	cas_name n[N];

	/* The level given to cas_open applies to this session. */
	fx_close(f);
	f->opt.compress_level = 0;
	fx_open(f);

	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_TEXT, 4000 + i, 0);
	assert_int_equal(cas_sync(f->c), 0);

	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, N);
	assert_int_equal(st.compressed_chunks, 0);
	assert_true(st.stored_bytes >= (uint64_t)N * CS);
	for (int i = 0; i < N; i++)
		get_check(f->c, &n[i], K_TEXT, 4000 + i, CAS_GET_VERIFY);

	/* Back to level 1 in a new session: new chunks compress, old ones
	 * still read. */
	fx_close(f);
	f->opt.compress_level = 1;
	fx_open(f);
	cas_name m = put_kind(f->c, K_TEXT, 4999, 0);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(stat_of(f->c).compressed_chunks, 1);
	get_check(f->c, &m, K_TEXT, 4999, CAS_GET_VERIFY);
	for (int i = 0; i < N; i++)
		get_check(f->c, &n[i], K_TEXT, 4000 + i, CAS_GET_VERIFY);
}

static void test_level0_created_store(void **state)
{
	struct fx *f = *state;
	cas_name n = put_kind(f->c, K_TEXT, 4100, 0);

	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(stat_of(f->c).compressed_chunks, 0);
	assert_true(stat_of(f->c).stored_bytes >= CS);
	get_check(f->c, &n, K_TEXT, 4100, CAS_GET_VERIFY);
}

/* ======================================================================
 * Node domain.
 * ====================================================================== */

static void test_node_domain(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CS], got[CS];
	cas_name d, nd, h;

	for (int k = 0; k < 2; k++) {
		enum kind kind = k ? K_TEXT : K_RANDOM;

		make_chunk(buf, kind, 5000 + k);
		put_check(f->c, buf, 0, 1, &d);
		/* Same content as a node: a new chunk (returns 1), another
		 * name, SHA-256(0x01 || content). */
		put_check(f->c, buf, CAS_PUT_NODE, 1, &nd);
		assert_name_not_equal(&d, &nd);
		cas_hash_node(buf, &h);
		assert_name_equal(&h, &nd);
		assert_int_equal(refs_of(f->c, &d), 1);
		assert_int_equal(refs_of(f->c, &nd), 1);

		/* Dedup within the node domain. */
		put_check(f->c, buf, CAS_PUT_NODE, 0, &h);
		assert_name_equal(&h, &nd);
		assert_int_equal(refs_of(f->c, &nd), 2);
		assert_int_equal(refs_of(f->c, &d), 1);
		assert_int_equal(cas_put_named(f->c, &nd, buf, CAS_PUT_NODE),
				 0);
		assert_int_equal(refs_of(f->c, &nd), 3);

		get_check(f->c, &d, kind, 5000 + k, CAS_GET_VERIFY);
		get_check(f->c, &nd, kind, 5000 + k, CAS_GET_VERIFY);
		assert_int_equal(cas_sync(f->c), 0);
		get_check(f->c, &d, kind, 5000 + k, CAS_GET_VERIFY);
		get_check(f->c, &nd, kind, 5000 + k, CAS_GET_VERIFY);
		fx_reopen(f);
		memset(got, 0, sizeof(got));
		get_check(f->c, &d, kind, 5000 + k, CAS_GET_VERIFY);
		get_check(f->c, &nd, kind, 5000 + k, CAS_GET_VERIFY);
		assert_int_equal(refs_of(f->c, &nd), 3);
	}
	assert_int_equal(stat_of(f->c).chunks, 4);

	/* A node put through cas_put_named with a fresh name. */
	make_chunk(buf, K_RANDOM, 5100);
	cas_hash_node(buf, &h);
	assert_int_equal(cas_put_named(f->c, &h, buf, CAS_PUT_NODE), 1);
	get_check(f->c, &h, K_RANDOM, 5100, CAS_GET_VERIFY);
	sha_data(buf, &d);
	assert_int_equal(cas_lookup(f->c, &d, NULL), -ENOENT);
}

/* ======================================================================
 * Split put: cas_prepare (any thread) + cas_put_prepared (writer).
 * ====================================================================== */

static void test_prepare_same_as_put(void **state)
{
	struct fx *f = *state;
	struct cas_prepared *p = calloc(1, sizeof(*p));
	uint8_t buf[CS];
	cas_name want;

	assert_non_null(p);
	/* New data chunks, compressible and not, and a node: put_prepared
	 * returns 1 and stores under the independent hash. */
	for (int k = 0; k < 4; k++) {
		enum kind kind = k & 1 ? K_TEXT : K_RANDOM;
		unsigned flags = k >= 2 ? CAS_PUT_NODE : 0;

		make_chunk(buf, kind, 10000 + k);
		assert_int_equal(cas_prepare(f->c, buf, flags, p), 0);
		if (flags & CAS_PUT_NODE)
			sha_node(buf, &want);
		else
			sha_data(buf, &want);
		assert_name_equal(&p->name, &want);
		/* Nothing is stored by prepare alone. */
		assert_int_equal(cas_lookup(f->c, &want, NULL), -ENOENT);
		assert_int_equal(cas_put_prepared(f->c, p, buf), 1);
		assert_int_equal(refs_of(f->c, &want), 1);
		get_check(f->c, &want, kind, 10000 + k, CAS_GET_VERIFY);

		/* Already stored: 0, one more reference, no data written. */
		assert_int_equal(cas_sync(f->c), 0);
		uint64_t seg = stat_of(f->c).segment_bytes;
		assert_int_equal(cas_prepare(f->c, buf, flags, p), 0);
		assert_name_equal(&p->name, &want);
		assert_int_equal(cas_put_prepared(f->c, p, buf), 0);
		assert_int_equal(refs_of(f->c, &want), 2);
		assert_int_equal(cas_sync(f->c), 0);
		assert_int_equal(stat_of(f->c).segment_bytes, seg);
	}
	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, 4);
	assert_int_equal(st.compressed_chunks, 2);

	/* CAS_PUT_NOCOMPRESS is honoured. */
	make_chunk(buf, K_TEXT, 10010);
	assert_int_equal(cas_prepare(f->c, buf, CAS_PUT_NOCOMPRESS, p), 0);
	assert_int_equal(cas_put_prepared(f->c, p, buf), 1);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(stat_of(f->c).compressed_chunks, 2);
	get_check(f->c, &p->name, K_TEXT, 10010, CAS_GET_VERIFY);

	/* The hole: its name, nothing stored. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(cas_prepare(f->c, buf, 0, p), 0);
	assert_name_equal(&p->name, &CAS_HOLE);
	assert_true(cas_put_prepared(f->c, p, buf) >= 0);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(stat_of(f->c).chunks, 5);
	free(p);
}

static void test_prepare_races(void **state)
{
	struct fx *f = *state;
	struct cas_prepared *p = calloc(2, sizeof(*p));
	uint8_t buf[CS];

	assert_non_null(p);

	/* Prepared while new, stored by someone else before put_prepared:
	 * deduplicated (0), one record only. */
	make_chunk(buf, K_TEXT, 11000);
	assert_int_equal(cas_prepare(f->c, buf, 0, &p[0]), 0);
	assert_int_equal(cas_prepare(f->c, buf, 0, &p[1]), 0);
	assert_int_equal(cas_sync(f->c), 0);
	uint64_t seg0 = stat_of(f->c).segment_bytes;
	cas_name n;
	put_check(f->c, buf, 0, 1, &n);
	assert_int_equal(cas_sync(f->c), 0);
	uint64_t seg1 = stat_of(f->c).segment_bytes;
	assert_true(seg1 > seg0);
	assert_int_equal(cas_put_prepared(f->c, &p[0], buf), 0);
	assert_int_equal(cas_put_prepared(f->c, &p[1], buf), 0);
	assert_int_equal(refs_of(f->c, &n), 3);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(stat_of(f->c).segment_bytes, seg1);
	assert_int_equal(stat_of(f->c).chunks, 1);

	/* Prepared while stored, gone (gc) before put_prepared: stored again
	 * from 'data', readable. */
	make_chunk(buf, K_RANDOM, 11001);
	put_check(f->c, buf, 0, 1, &n);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(cas_prepare(f->c, buf, 0, &p[0]), 0);
	assert_int_equal(cas_unref(f->c, &n), 0);
	struct cas_gc_result r;
	assert_int_equal(cas_gc(f->c, &r), 0);
	assert_int_equal(r.chunks_freed, 1);
	assert_int_equal(cas_lookup(f->c, &n, NULL), -ENOENT);
	assert_int_equal(cas_put_prepared(f->c, &p[0], buf), 1);
	get_check(f->c, &n, K_RANDOM, 11001, CAS_GET_VERIFY);
	assert_int_equal(refs_of(f->c, &n), 1);
	fx_reopen(f);
	get_check(f->c, &n, K_RANDOM, 11001, CAS_GET_VERIFY);

	/* Two prepares of the same new content, both put: 1 then 0. */
	make_chunk(buf, K_RANDOM, 11002);
	assert_int_equal(cas_prepare(f->c, buf, CAS_PUT_NODE, &p[0]), 0);
	assert_int_equal(cas_prepare(f->c, buf, CAS_PUT_NODE, &p[1]), 0);
	assert_int_equal(cas_sync(f->c), 0);
	seg0 = stat_of(f->c).segment_bytes;
	assert_int_equal(cas_put_prepared(f->c, &p[0], buf), 1);
	assert_int_equal(cas_put_prepared(f->c, &p[1], buf), 0);
	assert_int_equal(refs_of(f->c, &p[0].name), 2);
	assert_int_equal(cas_sync(f->c), 0);
	assert_true(stat_of(f->c).segment_bytes - seg0 <= CS + 64);
	get_check(f->c, &p[0].name, K_RANDOM, 11002, CAS_GET_VERIFY);
	free(p);
}

/* Preparer threads run while the writer keeps putting other chunks. */
#define PREP_N 300

struct prep_arg {
	cas *c;
	struct cas_prepared *p;
	int first, count, err;
};

static void *prep_thread(void *arg)
{
	struct prep_arg *a = arg;
	uint8_t buf[CS];

	for (int i = 0; i < a->count; i++) {
		int idx = a->first + i;
		make_chunk(buf, idx % 2 ? K_TEXT : K_RANDOM, 12000 + idx);
		int r = cas_prepare(a->c, buf, 0, &a->p[idx]);
		if (r && !a->err)
			a->err = r;
	}
	return NULL;
}

static void test_prepare_threads(void **state)
{
	struct fx *f = *state;
	struct cas_prepared *p = calloc(PREP_N, sizeof(*p));
	struct prep_arg a[2];
	pthread_t t[2];
	uint8_t buf[CS];

	assert_non_null(p);
	/* A third of the contents is already stored before the threads
	 * start, so both prepare paths run. */
	for (int i = 0; i < PREP_N; i += 3)
		put_kind(f->c, i % 2 ? K_TEXT : K_RANDOM, 12000 + i, 0);
	for (int k = 0; k < 2; k++) {
		a[k] = (struct prep_arg){f->c, p, k * PREP_N / 2, PREP_N / 2,
					 0};
		assert_int_equal(
			pthread_create(&t[k], NULL, prep_thread, &a[k]), 0);
	}
	for (int i = 0; i < 200; i++) {
		cas_name n = put_kind(f->c, K_RANDOM, 13000 + i, 0);
		if (i % 50 == 49)
			assert_int_equal(cas_sync(f->c), 0);
		(void)n;
	}
	for (int k = 0; k < 2; k++) {
		pthread_join(t[k], NULL);
		assert_int_equal(a[k].err, 0);
	}
	for (int i = 0; i < PREP_N; i++) {
		enum kind kind = i % 2 ? K_TEXT : K_RANDOM;
		cas_name want;

		make_chunk(buf, kind, 12000 + i);
		sha_data(buf, &want);
		assert_name_equal(&p[i].name, &want);
		assert_int_equal(cas_put_prepared(f->c, &p[i], buf),
				 i % 3 ? 1 : 0);
		assert_int_equal(refs_of(f->c, &want), i % 3 ? 1 : 2);
	}
	assert_int_equal(cas_sync(f->c), 0);
	for (int i = 0; i < PREP_N; i++)
		get_check(f->c, &p[i].name, i % 2 ? K_TEXT : K_RANDOM,
			  12000 + i, CAS_GET_VERIFY);
	assert_int_equal(stat_of(f->c).chunks, PREP_N + 200);
	free(p);
}

/* ======================================================================
 * Reference counts.
 * ====================================================================== */

static void test_ref_unref(void **state)
{
	struct fx *f = *state;
	cas_name n = put_kind(f->c, K_RANDOM, 6000, 0);
	uint8_t buf[CS];
	uint32_t refs;

	assert_int_equal(cas_ref(f->c, &n), 2);
	assert_int_equal(cas_ref(f->c, &n), 3);
	assert_int_equal(refs_of(f->c, &n), 3);
	assert_int_equal(cas_unref(f->c, &n), 2);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(refs_of(f->c, &n), 2);
	assert_int_equal(stat_of(f->c).refs, 2);
	assert_int_equal(cas_unref(f->c, &n), 1);
	assert_int_equal(cas_unref(f->c, &n), 0);

	/* Below zero: refused, count unchanged, also after a sync. */
	assert_int_equal(cas_unref(f->c, &n), CAS_EREFCOUNT);
	assert_int_equal(refs_of(f->c, &n), 0);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(cas_unref(f->c, &n), CAS_EREFCOUNT);
	assert_int_equal(refs_of(f->c, &n), 0);

	/* At zero the chunk is still stored and readable until gc. */
	get_check(f->c, &n, K_RANDOM, 6000, CAS_GET_VERIFY);
	struct ref_map m = collect(f->c);
	assert_int_equal(m.n, 1);
	assert_name_equal(&m.e[0].name, &n);
	assert_int_equal(m.e[0].refs, 0);
	free(m.e);

	/* Brought back from zero: put returns 1, no data written. */
	uint64_t seg_before = stat_of(f->c).segment_bytes;
	make_chunk(buf, K_RANDOM, 6000);
	cas_name again;
	put_check(f->c, buf, 0, 1, &again);
	assert_name_equal(&again, &n);
	assert_int_equal(refs_of(f->c, &n), 1);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(stat_of(f->c).segment_bytes, seg_before);

	/* cas_ref from zero also works (returns 1). */
	assert_int_equal(cas_unref(f->c, &n), 0);
	assert_int_equal(cas_ref(f->c, &n), 1);

	/* Put and dropped to zero within one sync window: readable until
	 * the sync (what becomes of it at the sync is not pinned). */
	cas_name brief = put_kind(f->c, K_TEXT, 6002, 0);
	assert_int_equal(cas_unref(f->c, &brief), 0);
	assert_int_equal(refs_of(f->c, &brief), 0);
	get_check(f->c, &brief, K_TEXT, 6002, CAS_GET_VERIFY);
	assert_int_equal(cas_unref(f->c, &brief), CAS_EREFCOUNT);

	/* Unknown names. */
	cas_name unknown;
	make_chunk(buf, K_RANDOM, 6001);
	sha_data(buf, &unknown);
	assert_int_equal(cas_ref(f->c, &unknown), -ENOENT);
	assert_int_equal(cas_unref(f->c, &unknown), -ENOENT);
	assert_int_equal(cas_lookup(f->c, &unknown, &refs), -ENOENT);
	assert_int_equal(cas_get(f->c, &unknown, buf, 0), -ENOENT);

	/* Counts persist. */
	assert_int_equal(cas_ref(f->c, &n), 2);
	fx_reopen(f);
	assert_int_equal(refs_of(f->c, &n), 2);
}

static void test_ref_coalescing(void **state)
{
	struct fx *f = *state;
	cas_name n = put_kind(f->c, K_RANDOM, 6100, 0);

	assert_int_equal(cas_ref(f->c, &n), 2);
	assert_int_equal(cas_sync(f->c), 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(cas_ref(f->c, &n), 3);
		assert_int_equal(cas_unref(f->c, &n), 2);
	}
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(refs_of(f->c, &n), 2);
	struct ref_map m = collect(f->c);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.e[0].refs, 2);
	free(m.e);

	/* Down to zero and back many times: still one chunk, still there. */
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(cas_unref(f->c, &n), 1);
		assert_int_equal(cas_unref(f->c, &n), 0);
		assert_int_equal(cas_ref(f->c, &n), 1);
		assert_int_equal(cas_ref(f->c, &n), 2);
	}
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(refs_of(f->c, &n), 2);
	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.refs, 2);

	/* A large count coalesced in memory. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(cas_ref(f->c, &n), 3 + i);
	assert_int_equal(cas_sync(f->c), 0);
	fx_reopen(f);
	assert_int_equal(refs_of(f->c, &n), 1002);
}

static void test_set_refs(void **state)
{
	struct fx *f = *state;
	cas_name n = put_kind(f->c, K_RANDOM, 6200, 0);
	cas_name other = put_kind(f->c, K_RANDOM, 6201, 0);

	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(cas_set_refs(f->c, &n, 5), 0);
	assert_int_equal(refs_of(f->c, &n), 5);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(refs_of(f->c, &n), 5);

	/* Pending changes are folded in first: the result is exactly 7. */
	assert_int_equal(cas_ref(f->c, &n), 6);
	assert_int_equal(cas_ref(f->c, &n), 7);
	assert_int_equal(cas_set_refs(f->c, &n, 7), 0);
	assert_int_equal(cas_sync(f->c), 0);
	assert_int_equal(refs_of(f->c, &n), 7);
	assert_int_equal(cas_unref(f->c, &n), 6);
	assert_int_equal(cas_set_refs(f->c, &n, 2), 0);
	assert_int_equal(refs_of(f->c, &n), 2);
	assert_int_equal(cas_ref(f->c, &n), 3);

	assert_int_equal(refs_of(f->c, &other), 1);
	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.refs, 4);

	uint8_t buf[CS];
	cas_name unknown;
	make_chunk(buf, K_RANDOM, 6202);
	sha_data(buf, &unknown);
	assert_true(cas_set_refs(f->c, &unknown, 1) < 0);
	assert_int_equal(cas_lookup(f->c, &unknown, NULL), -ENOENT);

	fx_reopen(f);
	assert_int_equal(refs_of(f->c, &n), 3);
	assert_int_equal(refs_of(f->c, &other), 1);
}

static int stop_after_3(void *arg, const cas_name *name, uint32_t refs)
{
	int *calls = arg;

	(void)name;
	(void)refs;
	return ++*calls == 3 ? 7 : 0;
}

static void test_foreach(void **state)
{
	struct fx *f = *state;
	enum {
		N = 10
	};
	cas_name n[N];

	for (int i = 0; i < N; i++) {
		n[i] = put_kind(f->c, K_RANDOM, 6300 + i, 0);
		for (int k = 0; k < i; k++)
			assert_int_equal(cas_ref(f->c, &n[i]), k + 2);
	}
	/* No explicit sync: foreach syncs first and sees committed counts. */
	struct ref_map m = collect(f->c);
	assert_int_equal(m.n, N);
	for (int i = 0; i < N; i++) {
		struct ref_entry *e =
			bsearch(&n[i], m.e, m.n, sizeof(*m.e), name_cmp);
		assert_non_null(e);
		assert_int_equal(e->refs, i + 1);
	}
	free(m.e);

	int calls = 0;
	assert_int_equal(cas_foreach(f->c, stop_after_3, &calls), 7);
	assert_int_equal(calls, 3);
}

/* ======================================================================
 * Damage: -EIO, zeroed buffer, scrub.
 * ====================================================================== */

struct bad_log {
	int calls;
	cas_name name;
	int err;
};

static void bad_cb(void *arg, const cas_name *name, int err)
{
	struct bad_log *l = arg;

	l->calls++;
	l->name = *name;
	l->err = err;
}

/* One random chunk alone in a closed store; returns its name. */
static cas_name one_chunk_closed(struct fx *f, enum kind k, uint64_t seed)
{
	cas_name n = put_kind(f->c, k, seed, 0);
	cas_name rec;

	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	/* Sanity of the format assumption the damage tests rely on. */
	rec = first_record_name(f->store);
	assert_name_equal(&rec, &n);
	return n;
}

static void expect_eio(struct fx *f, const cas_name *n)
{
	uint8_t buf[CS];

	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(cas_get(f->c, n, buf, 0), -EIO);
	assert_true(tu_is_zero(buf, CS));
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(cas_get(f->c, n, buf, CAS_GET_VERIFY), -EIO);
	assert_true(tu_is_zero(buf, CS));
	/* Still indexed: the damage is in the data, not the index. */
	assert_int_equal(cas_lookup(f->c, n, NULL), 0);
}

static void expect_scrub_names(struct fx *f, const cas_name *n,
			       uint64_t want_checked)
{
	struct bad_log l = {0};
	uint64_t checked = 0, damaged = 0;

	assert_int_equal(cas_scrub(f->c, bad_cb, &l, &checked, &damaged), 0);
	assert_int_equal(checked, want_checked);
	assert_int_equal(damaged, 1);
	assert_int_equal(l.calls, 1);
	assert_name_equal(&l.name, n);
	assert_int_equal(l.err, -EIO);
}

static void test_corrupt_payload(void **state)
{
	struct fx *f = *state;
	cas_name n = one_chunk_closed(f, K_RANDOM, 7000);

	flip_first_record(f->store, REC_HDR + 7);
	fx_open(f);
	expect_eio(f, &n);
	expect_scrub_names(f, &n, 1);
	/* NULL callback and counters are allowed. */
	assert_int_equal(cas_scrub(f->c, NULL, NULL, NULL, NULL), 0);
}

/* A compressed record: the damage must not leak half-decompressed data. */
static void test_corrupt_compressed_payload(void **state)
{
	struct fx *f = *state;
	cas_name n = one_chunk_closed(f, K_TEXT, 7050);

	flip_first_record(f->store, REC_HDR + 7);
	fx_open(f);
	assert_int_equal(stat_of(f->c).compressed_chunks, 1);
	expect_eio(f, &n);
	expect_scrub_names(f, &n, 1);
}

static void test_corrupt_header_name(void **state)
{
	struct fx *f = *state;
	cas_name n = one_chunk_closed(f, K_RANDOM, 7100);

	flip_first_record(f->store, REC_NAME_OFF + 3);
	fx_open(f);
	expect_eio(f, &n);
	expect_scrub_names(f, &n, 1);
}

static void test_scrub_finds_exactly_the_damaged(void **state)
{
	struct fx *f = *state;
	enum {
		N = 12
	};
	cas_name n[N];
	struct bad_log l = {0};
	uint64_t checked = 0, damaged = 99;

	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, i % 3 ? K_RANDOM : K_TEXT, 7200 + i,
				i % 4 == 1 ? CAS_PUT_NODE : 0);

	/* Healthy store: everything checked, nothing damaged. */
	assert_int_equal(cas_scrub(f->c, bad_cb, &l, &checked, &damaged), 0);
	assert_int_equal(checked, N);
	assert_int_equal(damaged, 0);
	assert_int_equal(l.calls, 0);

	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	cas_name first = first_record_name(f->store);
	assert_name_equal(&first, &n[0]);
	flip_first_record(f->store, REC_HDR + 7);
	fx_open(f);

	expect_scrub_names(f, &n[0], N);
	for (int i = 1; i < N; i++)
		get_check(f->c, &n[i], i % 3 ? K_RANDOM : K_TEXT, 7200 + i,
			  CAS_GET_VERIFY);
	expect_eio(f, &n[0]);
}

/* ======================================================================
 * GC and compaction.
 * ====================================================================== */

static void test_gc_frees_and_reclaims(void **state)
{
	struct fx *f = *state;
	enum {
		N = 3000,
		EVERY = 300
	}; /* keep N / EVERY = 10 */
	const uint64_t keep = N / EVERY;
	cas_name *n = calloc(N, sizeof(*n));
	struct cas_gc_result r;
	int files_before, files_after;

	assert_non_null(n);
	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_RANDOM, 8000 + i, 0);
	assert_int_equal(cas_sync(f->c), 0);
	uint64_t before = seg_bytes(f->store, &files_before);
	assert_true(files_before >= 5);
	assert_true(before >= (uint64_t)N * CS);

	for (int i = 0; i < N; i++)
		if (i % EVERY != 0)
			assert_int_equal(cas_unref(f->c, &n[i]), 0);

	memset(&r, 0xff, sizeof(r));
	assert_int_equal(cas_gc(f->c, &r), 0);
	uint64_t after = seg_bytes(f->store, &files_after);
	const uint64_t freed_raw = (N - keep) * CS;

	assert_int_equal(r.chunks_freed, N - keep);
	assert_true(r.segments_compacted >= 1);
	assert_true(after < before);
	assert_true(before - after >= freed_raw * 8 / 10);
	assert_true(r.bytes_reclaimed >= before - after);
	assert_true(r.bytes_moved <= keep * (CS + 64));
	assert_true(files_after < files_before);

	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, keep);
	assert_int_equal(st.refs, keep);
	assert_int_equal(st.segment_bytes, after);
	assert_int_equal(st.segment_files, (uint64_t)files_after);
	assert_true(st.stored_bytes >= keep * CS);
	assert_true(st.stored_bytes <= keep * (CS + 64));

	for (int i = 0; i < N; i++) {
		if (i % EVERY == 0) {
			get_check(f->c, &n[i], K_RANDOM, 8000 + i,
				  CAS_GET_VERIFY);
			assert_int_equal(refs_of(f->c, &n[i]), 1);
		} else {
			assert_int_equal(cas_lookup(f->c, &n[i], NULL),
					 -ENOENT);
		}
	}
	uint8_t buf[CS];
	assert_int_equal(cas_get(f->c, &n[1], buf, 0), -ENOENT);

	/* A second gc has nothing left to free. */
	assert_int_equal(cas_gc(f->c, &r), 0);
	assert_int_equal(r.chunks_freed, 0);

	/* A freed chunk can be stored again. */
	n[1] = put_kind(f->c, K_RANDOM, 8001, 0);
	get_check(f->c, &n[1], K_RANDOM, 8001, CAS_GET_VERIFY);
	free(n);
}

static void test_gc_keeps_live_across_compaction(void **state)
{
	struct fx *f = *state;
	enum {
		N = 1500
	};
	cas_name *n = calloc(N, sizeof(*n));
	struct cas_gc_result r;
	uint64_t live = 0;

#define LIVE(i) ((i) % 5 < 2) /* 40% live, spread over every segment */
	assert_non_null(n);
	for (int i = 0; i < N; i++) {
		n[i] = put_kind(f->c, i % 7 ? K_RANDOM : K_TEXT, 9000 + i,
				i % 11 == 3 ? CAS_PUT_NODE : 0);
		if (i % 13 == 0)
			assert_int_equal(cas_ref(f->c, &n[i]), 2);
	}
	assert_int_equal(cas_sync(f->c), 0);
	for (int i = 0; i < N; i++) {
		if (LIVE(i)) {
			live++;
			continue;
		}
		if (i % 13 == 0)
			assert_int_equal(cas_unref(f->c, &n[i]), 1);
		assert_int_equal(cas_unref(f->c, &n[i]), 0);
	}

	assert_int_equal(f->opt.compact_threshold_pct, 50);
	assert_int_equal(cas_gc(f->c, &r), 0);
	assert_int_equal(r.chunks_freed, N - live);
	assert_true(r.segments_compacted >= 2);
	assert_true(r.bytes_moved > 0);
	assert_true(r.bytes_reclaimed > r.bytes_moved);

	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N; i++) {
			enum kind k = i % 7 ? K_RANDOM : K_TEXT;

			if (LIVE(i)) {
				get_check(f->c, &n[i], k, 9000 + i, 0);
				get_check(f->c, &n[i], k, 9000 + i,
					  CAS_GET_VERIFY);
				assert_int_equal(refs_of(f->c, &n[i]),
						 i % 13 == 0 ? 2 : 1);
			} else {
				uint8_t buf[CS];

				assert_int_equal(cas_get(f->c, &n[i], buf, 0),
						 -ENOENT);
			}
		}
		struct cas_stat st = stat_of(f->c);
		assert_int_equal(st.chunks, live);
		uint64_t checked = 0, damaged = 1;
		assert_int_equal(
			cas_scrub(f->c, NULL, NULL, &checked, &damaged), 0);
		assert_int_equal(checked, live);
		assert_int_equal(damaged, 0);
		fx_reopen(f);
	}

	/* After compaction and reopen, a gc with nothing new to free does
	 * not lose anything either. */
	assert_int_equal(cas_gc(f->c, &r), 0);
	assert_int_equal(r.chunks_freed, 0);
	for (int i = 0; i < N; i += 5)
		get_check(f->c, &n[i], i % 7 ? K_RANDOM : K_TEXT, 9000 + i,
			  CAS_GET_VERIFY);
#undef LIVE
	free(n);
}

static void test_gc_threshold(void **state)
{
	struct fx *f = *state;
	enum {
		N = 1200
	};
	cas_name *n = calloc(N, sizeof(*n));
	struct cas_gc_result r;

	/* 80% live everywhere: above a 50% threshold, nothing compacted. */
	assert_non_null(n);
	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_RANDOM, 9500 + i, 0);
	assert_int_equal(cas_sync(f->c), 0);
	for (int i = 0; i < N; i += 5)
		assert_int_equal(cas_unref(f->c, &n[i]), 0);
	int files_before;
	uint64_t before = seg_bytes(f->store, &files_before);

	assert_int_equal(cas_gc(f->c, &r), 0);
	assert_int_equal(r.chunks_freed, N / 5);
	assert_int_equal(r.segments_compacted, 0);
	assert_int_equal(r.bytes_moved, 0);
	int files_after;
	assert_int_equal(seg_bytes(f->store, &files_after), before);
	assert_int_equal(files_after, files_before);
	assert_int_equal(stat_of(f->c).chunks, N - N / 5);

	/* The threshold given to cas_open applies: at 90% they compact. */
	fx_close(f);
	f->opt.compact_threshold_pct = 90;
	fx_open(f);
	assert_int_equal(cas_gc(f->c, &r), 0);
	assert_int_equal(r.chunks_freed, 0);
	assert_true(r.segments_compacted >= 1);
	assert_true(seg_bytes(f->store, NULL) < before);
	for (int i = 0; i < N; i++) {
		if (i % 5)
			get_check(f->c, &n[i], K_RANDOM, 9500 + i,
				  CAS_GET_VERIFY);
		else
			assert_int_equal(cas_lookup(f->c, &n[i], NULL),
					 -ENOENT);
	}
	free(n);
}

/* ======================================================================
 * Rebuild.
 * ====================================================================== */

struct made {
	cas_name name;
	enum kind kind;
	uint64_t seed;
};

/* A store with data and node chunks, compressed and not, over several
 * 1 MiB segments, various counts.  Returns how many chunks. */
static size_t build_mixed(struct fx *f, struct made *m, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < 700; i++) {
		unsigned flags = 0;

		assert_true(n < max);
		m[n].kind = i % 5 == 0 ? K_TEXT : K_RANDOM;
		m[n].seed = 20000 + i;
		if (i % 9 == 4)
			flags |= CAS_PUT_NODE;
		if (i % 25 == 10)
			flags |= CAS_PUT_NOCOMPRESS;
		m[n].name = put_kind(f->c, m[n].kind, m[n].seed, flags);
		for (int k = 0; k < i % 4; k++)
			assert_int_equal(cas_ref(f->c, &m[n].name), k + 2);
		n++;
	}
	assert_int_equal(cas_sync(f->c), 0);
	struct cas_stat st = stat_of(f->c);
	assert_int_equal(st.chunks, n);
	assert_true(st.compressed_chunks > 0);
	assert_true(st.compressed_chunks < n);
	assert_true(st.segment_files >= 2);
	return n;
}

static void check_all(struct fx *f, const struct made *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		get_check(f->c, &m[i].name, m[i].kind, m[i].seed,
			  CAS_GET_VERIFY);
}

static char *index_file(struct fx *f)
{
	char *p;

	assert_true(asprintf(&p, "%s/index/data.mdb", f->store) >= 0);
	return p;
}

static void test_rebuild_from_segments(void **state)
{
	struct fx *f = *state;
	struct made *m = calloc(1000, sizeof(*m));
	struct cas_gc_result r;
	uint64_t found = 0, bad = 99;

	assert_non_null(m);
	size_t n = build_mixed(f, m, 1000);
	assert_int_equal(cas_kv_put(f->c, "disks", "d", 1, "root", 4), 0);
	struct ref_map want = collect(f->c);
	assert_int_equal(want.n, n);
	assert_int_equal(cas_recount_pending(f->c), 0);
	fx_close(f);

	char *idx = index_file(f);
	assert_int_equal(unlink(idx), 0);
	free(idx);
	assert_int_equal(cas_rebuild(f->store, &found, &bad), 0);
	assert_int_equal(found, n);
	assert_int_equal(bad, 0);

	fx_open(f);
	assert_true(cas_recount_pending(f->c) > 0);
	assert_int_equal(cas_gc(f->c, &r), CAS_ERECOUNT);
	check_all(f, m, n);

	/* Counts are all zero until the recount. */
	struct ref_map zero = collect(f->c);
	assert_int_equal(zero.n, n);
	for (size_t i = 0; i < zero.n; i++) {
		assert_name_equal(&zero.e[i].name, &want.e[i].name);
		assert_int_equal(zero.e[i].refs, 0);
	}
	free(zero.e);
	/* (Whether cas_stat counts zero-count chunks in 'chunks' is not
	 * pinned: they are indexed but awaiting gc or a recount.) */
	struct cas_stat st = stat_of(f->c);
	assert_true(st.index_entries >= n);
	assert_int_equal(st.refs, 0);

	/* The old index was gone: its kv entries came back from the
	 * catalogue records in the segments (test_cas_journal.c has more). */
	char v[16];
	size_t vlen = sizeof(v);
	assert_int_equal(cas_kv_get(f->c, "disks", "d", 1, v, &vlen), 0);
	assert_int_equal(vlen, 4);
	assert_memory_equal(v, "root", 4);

	/* Still pending across a reopen. */
	fx_reopen(f);
	assert_true(cas_recount_pending(f->c) > 0);
	assert_int_equal(cas_gc(f->c, &r), CAS_ERECOUNT);

	/* The layer above recounts. */
	for (size_t i = 0; i < want.n; i++)
		for (uint32_t k = 0; k < want.e[i].refs; k++)
			assert_int_equal(cas_ref(f->c, &want.e[i].name),
					 (int)k + 1);
	assert_int_equal(cas_recount_done(f->c), 0);
	assert_int_equal(cas_recount_pending(f->c), 0);
	struct ref_map got = collect(f->c);
	assert_maps_equal(&got, &want);
	free(got.e);

	memset(&r, 0xff, sizeof(r));
	assert_int_equal(cas_gc(f->c, &r), 0);
	assert_int_equal(r.chunks_freed, 0);

	fx_reopen(f);
	assert_int_equal(cas_recount_pending(f->c), 0);
	got = collect(f->c);
	assert_maps_equal(&got, &want);
	free(got.e);
	check_all(f, m, n);

	free(want.e);
	free(m);
}

static void test_rebuild_keeps_kv(void **state)
{
	struct fx *f = *state;
	struct made *m = calloc(1000, sizeof(*m));
	uint64_t found = 0, bad = 99;
	char v[16];
	size_t vlen;

	assert_non_null(m);
	size_t n = build_mixed(f, m, 1000);
	assert_int_equal(cas_kv_put(f->c, "disks", "vm1", 3, "root-a", 6), 0);
	assert_int_equal(cas_kv_put(f->c, "snaps", "s1", 2, "root-b", 6), 0);
	fx_close(f);

	/* The store must not be open: a rebuild of an open store fails and
	 * changes nothing. */
	fx_open(f);
	assert_true(cas_rebuild(f->store, &found, &bad) < 0);
	assert_int_equal(cas_recount_pending(f->c), 0);
	assert_int_equal(refs_of(f->c, &m[3].name), 4);
	fx_close(f);

	assert_int_equal(cas_rebuild(f->store, &found, &bad), 0);
	assert_int_equal(found, n);
	assert_int_equal(bad, 0);
	fx_open(f);
	assert_true(cas_recount_pending(f->c) > 0);
	vlen = sizeof(v);
	assert_int_equal(cas_kv_get(f->c, "disks", "vm1", 3, v, &vlen), 0);
	assert_int_equal(vlen, 6);
	assert_memory_equal(v, "root-a", 6);
	vlen = sizeof(v);
	assert_int_equal(cas_kv_get(f->c, "snaps", "s1", 2, v, &vlen), 0);
	assert_int_equal(vlen, 6);
	assert_memory_equal(v, "root-b", 6);
	assert_int_equal(refs_of(f->c, &m[3].name), 0);
	assert_int_equal(stat_of(f->c).refs, 0);
	check_all(f, m, n);
	free(m);
}

static void test_rebuild_counts_bad_records(void **state)
{
	struct fx *f = *state;
	enum {
		N = 30
	};
	cas_name n[N];
	uint64_t found = 0, bad = 0;

	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_RANDOM, 21000 + i, 0);
	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	cas_name first = first_record_name(f->store);
	assert_name_equal(&first, &n[0]);
	flip_first_record(f->store, REC_HDR + 7);

	char *idx = index_file(f);
	assert_int_equal(unlink(idx), 0);
	free(idx);
	assert_int_equal(cas_rebuild(f->store, &found, &bad), 0);
	assert_int_equal(found, N - 1);
	assert_int_equal(bad, 1);
	assert_int_equal(cas_rebuild(f->store, NULL, NULL), 0);

	fx_open(f);
	uint8_t buf[CS];
	assert_int_equal(cas_get(f->c, &n[0], buf, 0), -ENOENT);
	for (int i = 1; i < N; i++)
		get_check(f->c, &n[i], K_RANDOM, 21000 + i, CAS_GET_VERIFY);
	struct ref_map m = collect(f->c);
	assert_int_equal(m.n, N - 1);
	free(m.e);
}

/* A damaged index page (here: page 2 zeroed, its header gone) makes the
 * store refuse to open with CAS_EBADINDEX, never an LMDB assertion that
 * stops the process; a rebuild from the segments recovers. */
static void test_damaged_index_page(void **state)
{
	struct fx *f = *state;
	enum {
		N = 3000
	};
	uint8_t zero[4096] = {0};
	cas_name *n = calloc(N, sizeof(*n));

	assert_non_null(n);
	for (int i = 0; i < N; i++)
		n[i] = put_kind(f->c, K_RANDOM, 31000 + i, 0);
	assert_int_equal(cas_sync(f->c), 0);
	fx_close(f);
	char *idx = index_file(f);
	struct stat st;
	assert_int_equal(stat(idx, &st), 0);
	assert_true(st.st_size >= 3 * 4096);
	FILE *fp = fopen(idx, "r+");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 2 * 4096, SEEK_SET), 0);
	assert_int_equal(fwrite(zero, 1, sizeof(zero), fp), sizeof(zero));
	assert_int_equal(fclose(fp), 0);
	free(idx);

	assert_int_equal(cas_open(f->store, &f->opt, &f->c), CAS_EBADINDEX);
	assert_null(f->c);
	assert_int_equal(cas_rebuild(f->store, NULL, NULL), 0);
	fx_open(f);
	for (int i = 0; i < N; i += 97)
		get_check(f->c, &n[i], K_RANDOM, 31000 + i, CAS_GET_VERIFY);
	free(n);
}

/* ======================================================================
 * Open / close / lock.
 * ====================================================================== */

static void test_reopen_keeps_everything(void **state)
{
	struct fx *f = *state;
	enum {
		N = 50
	};
	cas_name n[N];

	for (int i = 0; i < N; i++) {
		n[i] = put_kind(f->c, i & 1 ? K_TEXT : K_RANDOM, 22000 + i,
				i % 10 == 0 ? CAS_PUT_NODE : 0);
		for (int k = 0; k < i % 3; k++)
			cas_ref(f->c, &n[i]);
	}
	assert_int_equal(cas_kv_put(f->c, "disks", "a", 1, "1", 1), 0);
	assert_int_equal(cas_sync(f->c), 0);
	struct cas_stat st0 = stat_of(f->c);
	fx_reopen(f);

	struct cas_stat st1 = stat_of(f->c);
	assert_int_equal(st1.chunks, st0.chunks);
	assert_int_equal(st1.refs, st0.refs);
	assert_int_equal(st1.stored_bytes, st0.stored_bytes);
	assert_int_equal(st1.compressed_chunks, st0.compressed_chunks);
	for (int i = 0; i < N; i++) {
		get_check(f->c, &n[i], i & 1 ? K_TEXT : K_RANDOM, 22000 + i,
			  CAS_GET_VERIFY);
		assert_int_equal(refs_of(f->c, &n[i]), 1 + i % 3);
	}
	char v[4];
	size_t vlen = sizeof(v);
	assert_int_equal(cas_kv_get(f->c, "disks", "a", 1, v, &vlen), 0);
	assert_int_equal(vlen, 1);
	assert_int_equal(v[0], '1');

	/* New puts after a reopen go on working. */
	cas_name x = put_kind(f->c, K_RANDOM, 22999, 0);
	get_check(f->c, &x, K_RANDOM, 22999, CAS_GET_VERIFY);
}

static void test_close_syncs(void **state)
{
	struct fx *f = *state;
	cas_name a = put_kind(f->c, K_RANDOM, 23000, 0);
	cas_name b = put_kind(f->c, K_TEXT, 23001, CAS_PUT_NODE);

	assert_int_equal(cas_ref(f->c, &a), 2);
	assert_int_equal(cas_kv_put(f->c, "disks", "k", 1, "v", 1), 0);
	/* No cas_sync here. */
	fx_reopen(f);
	get_check(f->c, &a, K_RANDOM, 23000, CAS_GET_VERIFY);
	get_check(f->c, &b, K_TEXT, 23001, CAS_GET_VERIFY);
	assert_int_equal(refs_of(f->c, &a), 2);
	assert_int_equal(refs_of(f->c, &b), 1);
	char v[4];
	size_t vlen = sizeof(v);
	assert_int_equal(cas_kv_get(f->c, "disks", "k", 1, v, &vlen), 0);
	assert_int_equal(vlen, 1);
}

static void test_lock_and_bad_store(void **state)
{
	struct fx *f = *state;
	cas *second = (cas *)0x1;

	assert_int_equal(cas_open(f->store, NULL, &second), CAS_ELOCKED);
	/* The first handle is unaffected. */
	cas_name n = put_kind(f->c, K_RANDOM, 24000, 0);
	assert_int_equal(cas_sync(f->c), 0);

	/* Creating over an existing store, open or closed. */
	assert_int_equal(cas_create(f->store, NULL), CAS_EEXIST);
	fx_close(f);
	assert_int_equal(cas_create(f->store, NULL), CAS_EEXIST);

	/* Released at close: opening works again (with NULL options). */
	second = NULL;
	assert_int_equal(cas_open(f->store, NULL, &second), 0);
	assert_non_null(second);
	get_check(second, &n, K_RANDOM, 24000, CAS_GET_VERIFY);
	assert_int_equal(cas_close(second), 0);
	fx_open(f);

	/* A directory that is not a store. */
	char *plain, *file;
	assert_true(asprintf(&plain, "%s/plain", f->dir) >= 0);
	assert_int_equal(mkdir(plain, 0700), 0);
	assert_int_equal(cas_open(plain, NULL, &second), CAS_EBADSTORE);
	assert_true(asprintf(&file, "%s/junk", plain) >= 0);
	FILE *fp = fopen(file, "w");
	assert_non_null(fp);
	fputs("not a store\n", fp);
	fclose(fp);
	assert_int_equal(cas_open(plain, NULL, &second), CAS_EBADSTORE);
	/* Creating in a non-empty directory fails and leaves it alone. */
	assert_true(cas_create(plain, NULL) < 0);
	assert_int_equal(access(file, F_OK), 0);
	free(file);
	free(plain);

	/* A missing directory is an error too. */
	char *missing;
	assert_true(asprintf(&missing, "%s/missing", f->dir) >= 0);
	assert_true(cas_open(missing, NULL, &second) < 0);
	free(missing);

	/* cas_create creates the directory and gives an openable store. */
	char *fresh, *parent;
	assert_true(asprintf(&fresh, "%s/a/b", f->dir) >= 0);
	assert_true(asprintf(&parent, "%s/a", f->dir) >= 0);
	assert_int_equal(mkdir(parent, 0700), 0);
	assert_int_equal(cas_create(fresh, NULL), 0);
	assert_int_equal(cas_open(fresh, NULL, &second), 0);
	assert_int_equal(stat_of(second).chunks, 0);
	assert_int_equal(cas_close(second), 0);
	free(parent);
	free(fresh);
}

/* ======================================================================
 * kv side tables.
 * ====================================================================== */

struct kv_rec {
	int n;
	char keys[64][300];
	size_t klens[64];
	char vals[64][64];
	size_t vlens[64];
	int stop_at;
};

static int kv_collect(void *arg, const void *key, size_t klen, const void *val,
		      size_t vlen)
{
	struct kv_rec *r = arg;

	if (r->n >= 64 || klen > 300)
		return -1;
	memcpy(r->keys[r->n], key, klen);
	r->klens[r->n] = klen;
	memcpy(r->vals[r->n], val, vlen < 64 ? vlen : 64);
	r->vlens[r->n] = vlen;
	r->n++;
	return r->stop_at && r->n == r->stop_at ? 5 : 0;
}

/* Assert the table holds exactly the NUL-terminated keys ks (in that
 * order) with values vs. */
static void expect_kv(cas *c, const char *table, const char *const *ks,
		      const char *const *vs, int n)
{
	struct kv_rec *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	assert_int_equal(cas_kv_foreach(c, table, kv_collect, r), 0);
	assert_int_equal(r->n, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(r->klens[i], strlen(ks[i]));
		assert_memory_equal(r->keys[i], ks[i], strlen(ks[i]));
		assert_int_equal(r->vlens[i], strlen(vs[i]));
		assert_memory_equal(r->vals[i], vs[i], strlen(vs[i]));
	}
	free(r);
}

static void expect_val(cas *c, const char *table, const char *k, const char *v)
{
	char buf[64];
	size_t vlen = sizeof(buf);

	assert_int_equal(cas_kv_get(c, table, k, strlen(k), buf, &vlen), 0);
	assert_int_equal(vlen, strlen(v));
	assert_memory_equal(buf, v, vlen);
}

static void expect_absent(cas *c, const char *table, const char *k)
{
	char buf[64];
	size_t vlen = sizeof(buf);

	assert_int_equal(cas_kv_get(c, table, k, strlen(k), buf, &vlen),
			 -ENOENT);
}

#define KVP(c, t, k, v) \
	assert_int_equal(cas_kv_put(c, t, k, strlen(k), v, strlen(v)), 0)

static void test_kv_basic(void **state)
{
	struct fx *f = *state;

	expect_absent(f->c, "disks", "b");
	expect_kv(f->c, "disks", NULL, NULL, 0);

	/* Staged writes are visible at once, in key order. */
	KVP(f->c, "disks", "b", "vb");
	KVP(f->c, "disks", "ab", "vab");
	KVP(f->c, "disks", "c", "vc");
	KVP(f->c, "disks", "a", "va");
	expect_val(f->c, "disks", "ab", "vab");
	{
		const char *ks[] = {"a", "ab", "b", "c"};
		const char *vs[] = {"va", "vab", "vb", "vc"};
		expect_kv(f->c, "disks", ks, vs, 4);
	}

	/* Tables are separate. */
	KVP(f->c, "snaps", "b", "snap-b");
	expect_val(f->c, "snaps", "b", "snap-b");
	expect_val(f->c, "disks", "b", "vb");
	expect_absent(f->c, "snaps", "a");

	assert_int_equal(cas_sync(f->c), 0);

	/* Staged changes over committed ones: overwrite, delete, insert. */
	KVP(f->c, "disks", "b", "vb2");
	assert_int_equal(cas_kv_del(f->c, "disks", "c", 1), 0);
	KVP(f->c, "disks", "bb", "vbb");
	KVP(f->c, "disks", "0", "v0");
	expect_absent(f->c, "disks", "c");
	expect_val(f->c, "disks", "b", "vb2");
	{
		const char *ks[] = {"0", "a", "ab", "b", "bb"};
		const char *vs[] = {"v0", "va", "vab", "vb2", "vbb"};
		expect_kv(f->c, "disks", ks, vs, 5);
		fx_reopen(f); /* close syncs */
		expect_kv(f->c, "disks", ks, vs, 5);
	}
	expect_absent(f->c, "disks", "c");
	{
		const char *ks[] = {"b"};
		const char *vs[] = {"snap-b"};
		expect_kv(f->c, "snaps", ks, vs, 1);
	}

	/* A deleted-then-put key is back; put-then-deleted is gone. */
	assert_int_equal(cas_kv_del(f->c, "disks", "a", 1), 0);
	KVP(f->c, "disks", "a", "va3");
	KVP(f->c, "disks", "zz", "tmp");
	assert_int_equal(cas_kv_del(f->c, "disks", "zz", 2), 0);
	expect_val(f->c, "disks", "a", "va3");
	expect_absent(f->c, "disks", "zz");
	assert_int_equal(cas_sync(f->c), 0);
	fx_reopen(f);
	expect_val(f->c, "disks", "a", "va3");
	expect_absent(f->c, "disks", "zz");

	/* Early stop. */
	struct kv_rec *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->stop_at = 2;
	assert_true(cas_kv_foreach(f->c, "disks", kv_collect, r) != 0);
	assert_int_equal(r->n, 2);
	free(r);
}

static void test_kv_binary_and_buffers(void **state)
{
	struct fx *f = *state;
	const uint8_t k1[] = {0, 1, 2, 0};
	const uint8_t k2[] = {0, 1, 2};
	uint8_t val[100], buf[128];
	size_t vlen;

	for (int i = 0; i < 100; i++)
		val[i] = (uint8_t)(i * 7);
	assert_int_equal(cas_kv_put(f->c, "t", k1, sizeof(k1), val, 100), 0);
	assert_int_equal(cas_kv_put(f->c, "t", k2, sizeof(k2), val, 3), 0);

	/* Embedded NULs: k2 is a prefix of k1, they are distinct keys. */
	vlen = sizeof(buf);
	assert_int_equal(cas_kv_get(f->c, "t", k2, sizeof(k2), buf, &vlen), 0);
	assert_int_equal(vlen, 3);

	/* Short buffer: -ENOBUFS with the real size. */
	vlen = 10;
	assert_int_equal(cas_kv_get(f->c, "t", k1, sizeof(k1), buf, &vlen),
			 -ENOBUFS);
	assert_int_equal(vlen, 100);
	vlen = 99;
	assert_int_equal(cas_kv_get(f->c, "t", k1, sizeof(k1), buf, &vlen),
			 -ENOBUFS);
	assert_int_equal(vlen, 100);
	vlen = 100;
	memset(buf, 0, sizeof(buf));
	assert_int_equal(cas_kv_get(f->c, "t", k1, sizeof(k1), buf, &vlen), 0);
	assert_int_equal(vlen, 100);
	assert_memory_equal(buf, val, 100);

	assert_int_equal(cas_sync(f->c), 0);
	vlen = 10;
	assert_int_equal(cas_kv_get(f->c, "t", k1, sizeof(k1), buf, &vlen),
			 -ENOBUFS);
	assert_int_equal(vlen, 100);

	/* Empty value. */
	assert_int_equal(cas_kv_put(f->c, "t", "e", 1, "", 0), 0);
	vlen = sizeof(buf);
	assert_int_equal(cas_kv_get(f->c, "t", "e", 1, buf, &vlen), 0);
	assert_int_equal(vlen, 0);
}

static void test_kv_limits(void **state)
{
	struct fx *f = *state;
	uint8_t *big = malloc(CAS_KV_MAX_VAL + 2);
	uint8_t *got = malloc(CAS_KV_MAX_VAL + 2);
	uint8_t key[CAS_KV_MAX_KEY + 2];
	size_t vlen;

	assert_non_null(big);
	assert_non_null(got);
	tu_fill_random(big, CAS_KV_MAX_VAL, 77);
	memset(key, 'k', sizeof(key));

	/* The largest allowed key and value. */
	assert_int_equal(
		cas_kv_put(f->c, "t", key, CAS_KV_MAX_KEY, big, CAS_KV_MAX_VAL),
		0);

	/* One byte over: rejected, nothing stored. */
	assert_int_equal(cas_kv_put(f->c, "t", key, CAS_KV_MAX_KEY + 1, "v", 1),
			 -EINVAL);
	assert_int_equal(cas_kv_put(f->c, "t", "x", 1, big, CAS_KV_MAX_VAL + 1),
			 -EINVAL);
	vlen = CAS_KV_MAX_VAL + 2;
	assert_int_equal(cas_kv_get(f->c, "t", "x", 1, got, &vlen), -ENOENT);

	struct kv_rec *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	assert_int_equal(cas_kv_foreach(f->c, "t", kv_collect, r), 0);
	assert_int_equal(r->n, 1);
	assert_int_equal(r->klens[0], CAS_KV_MAX_KEY);
	assert_int_equal(r->vlens[0], CAS_KV_MAX_VAL);

	assert_int_equal(cas_sync(f->c), 0);
	fx_reopen(f);
	vlen = CAS_KV_MAX_VAL + 2;
	assert_int_equal(cas_kv_get(f->c, "t", key, CAS_KV_MAX_KEY, got, &vlen),
			 0);
	assert_int_equal(vlen, CAS_KV_MAX_VAL);
	assert_memory_equal(got, big, CAS_KV_MAX_VAL);
	vlen = CAS_KV_MAX_VAL + 2;
	assert_int_equal(cas_kv_get(f->c, "t", "x", 1, got, &vlen), -ENOENT);
	r->n = 0;
	assert_int_equal(cas_kv_foreach(f->c, "t", kv_collect, r), 0);
	assert_int_equal(r->n, 1);

	free(r);
	free(big);
	free(got);
}

/* ======================================================================
 * One writer, concurrent readers.
 * ====================================================================== */

#define CONC_MAX 100000

struct conc {
	cas *c;
	cas_name *names;         /* live chunks, content seed = index */
	atomic_size_t published; /* names[0..published) are readable */
	atomic_int stop;
	atomic_int errors;
	atomic_int first_err;
	atomic_ulong reads;
	int writer_err;
	uint64_t gcs, compacted; /* writer's gc runs / segments compacted */
	unsigned reader_seed[2];
};

static void conc_fail(struct conc *s, int err)
{
	int zero = 0;

	atomic_fetch_add(&s->errors, 1);
	atomic_compare_exchange_strong(&s->first_err, &zero, err ? err : -1);
}

static void *conc_reader(void *arg)
{
	struct conc *s = ((void **)arg)[0];
	unsigned *seedp = ((void **)arg)[1];
	uint64_t rs = *seedp;
	uint8_t buf[CS], want[CS];

	while (!atomic_load(&s->stop)) {
		size_t n = atomic_load_explicit(&s->published,
						memory_order_acquire);
		if (!n)
			continue;
		size_t i = tu_rand64(&rs) % n;
		int r = cas_get(s->c, &s->names[i], buf, CAS_GET_VERIFY);

		if (r) {
			conc_fail(s, r);
			continue;
		}
		tu_fill_random(want, CS, 30000 + i);
		if (memcmp(buf, want, CS))
			conc_fail(s, 1);
		if (cas_lookup(s->c, &s->names[i], NULL))
			conc_fail(s, 2);
		atomic_fetch_add(&s->reads, 1);
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *conc_writer(void *arg)
{
	struct conc *s = arg;
	uint8_t buf[CS];
	double start = now_s();
	size_t i = 0;
	int r = 0;

	/* About 0.5 s, but at least two gc runs (up to 20 s on a slow
	 * machine) so that compaction happens under the readers. */
	while (i < CONC_MAX) {
		double t = now_s() - start;

		if (t > 20 || (t > 0.5 && s->gcs >= 8))
			break;
		cas_name g;

		/* A live chunk, published to the readers. */
		tu_fill_random(buf, CS, 30000 + i);
		r = cas_put(s->c, buf, 0, &s->names[i]);
		if (r != 1)
			goto fail;
		atomic_store_explicit(&s->published, i + 1,
				      memory_order_release);
		/* Two garbage chunks, so that sealed segments are a third
		 * live and gc compacts them under the readers' feet. */
		for (int k = 0; k < 2; k++) {
			tu_fill_random(buf, CS, 900000 + 2 * i + k);
			if ((r = cas_put(s->c, buf, 0, &g)) != 1)
				goto fail;
			if ((r = cas_unref(s->c, &g)) != 0)
				goto fail;
		}
		if (i % 3 == 0) {
			size_t j = i / 2;
			if ((r = cas_ref(s->c, &s->names[j])) < 2)
				goto fail;
			if ((r = cas_unref(s->c, &s->names[j])) < 1)
				goto fail;
		}
		if (i % 64 == 63 && (r = cas_sync(s->c)))
			goto fail;
		if (i % 128 == 127) {
			struct cas_gc_result gr;
			if ((r = cas_gc(s->c, &gr)))
				goto fail;
			s->compacted += gr.segments_compacted;
			s->gcs++;
		}
		i++;
	}
	r = cas_sync(s->c);
	if (r)
		goto fail;
	return NULL;
fail:
	s->writer_err = r ? r : -1;
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct fx *f = *state;
	struct conc *s = calloc(1, sizeof(*s));
	pthread_t w, rd[2];
	void *args[2][2];

	assert_non_null(s);
	s->c = f->c;
	s->names = calloc(CONC_MAX, sizeof(cas_name));
	assert_non_null(s->names);
	for (int k = 0; k < 2; k++) {
		s->reader_seed[k] = 1234 + k;
		args[k][0] = s;
		args[k][1] = &s->reader_seed[k];
		assert_int_equal(
			pthread_create(&rd[k], NULL, conc_reader, args[k]), 0);
	}
	assert_int_equal(pthread_create(&w, NULL, conc_writer, s), 0);
	pthread_join(w, NULL);
	atomic_store(&s->stop, 1);
	for (int k = 0; k < 2; k++)
		pthread_join(rd[k], NULL);

	assert_int_equal(s->writer_err, 0);
	assert_int_equal(atomic_load(&s->first_err), 0);
	assert_int_equal(atomic_load(&s->errors), 0);
	assert_true(atomic_load(&s->published) > 100);
	assert_true(atomic_load(&s->reads) > 100);
	assert_true(s->gcs >= 1);
	assert_true(s->compacted >= 1);
	print_message("    %zu chunks published, %lu verified reads, %llu gc "
		      "runs compacting %llu segments\n",
		      atomic_load(&s->published), atomic_load(&s->reads),
		      (unsigned long long)s->gcs,
		      (unsigned long long)s->compacted);

	/* Everything published is still there after the dust settles. */
	size_t n = atomic_load(&s->published);
	for (size_t i = 0; i < n; i++)
		get_check(f->c, &s->names[i], K_RANDOM, 30000 + i,
			  CAS_GET_VERIFY);
	free(s->names);
	free(s);
}

/* ======================================================================
 * Error strings.
 * ====================================================================== */

static void test_strerror(void **state)
{
	const int codes[] = {CAS_EBADSTORE, CAS_EVERSION, CAS_ERECOUNT,
			     CAS_EREFCOUNT, CAS_ELMDB,    CAS_EEXIST,
			     CAS_ELOCKED,   -EIO,         -ENOENT};
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const char *a = cas_strerror(codes[i]);

		assert_non_null(a);
		assert_true(strlen(a) > 0);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(a, cas_strerror(codes[j]));
	}
	assert_non_null(cas_strerror(0));
	assert_non_null(cas_strerror(-30699));
}

/* ====================================================================== */

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
#define TS(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_small, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_default),
		cmocka_unit_test(test_hash_matches_sha256),
		cmocka_unit_test(test_name_format_parse),
		cmocka_unit_test(test_strerror),
		T(test_put_get_roundtrip),
		T(test_get_unknown),
		T(test_dedup),
		T(test_zero_block_is_hole),
		T(test_compressible_stored_smaller),
		T(test_incompressible_stored_raw),
		T(test_nocompress_flag),
		T(test_level0_stores_raw),
		cmocka_unit_test_setup_teardown(test_level0_created_store,
						fx_setup_level0, fx_teardown),
		T(test_node_domain),
		T(test_prepare_same_as_put),
		T(test_prepare_races),
		T(test_prepare_threads),
		T(test_ref_unref),
		T(test_ref_coalescing),
		T(test_set_refs),
		T(test_foreach),
		T(test_corrupt_payload),
		T(test_corrupt_compressed_payload),
		T(test_corrupt_header_name),
		T(test_scrub_finds_exactly_the_damaged),
		TS(test_gc_frees_and_reclaims),
		TS(test_gc_keeps_live_across_compaction),
		TS(test_gc_threshold),
		TS(test_rebuild_from_segments),
		TS(test_rebuild_keeps_kv),
		T(test_rebuild_counts_bad_records),
		T(test_damaged_index_page),
		T(test_reopen_keeps_everything),
		T(test_close_syncs),
		T(test_lock_and_bad_store),
		T(test_kv_basic),
		T(test_kv_binary_and_buffers),
		T(test_kv_limits),
		TS(test_concurrent_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
