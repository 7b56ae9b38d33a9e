/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_blkstore.c - pins the rules of blkstore/: disks, byte-granular I/O,
 * flush and reopen, snapshots and clones, delete + gc, resize safety,
 * holes, import/export, fsck and rebuild, and every bad input.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "blkstore/blkstore.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)

struct fx {
	char dir[64];
	char store[96];
	bs_store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(f->dir, sizeof(f->dir), "%s/tbsXXXXXX", tmp);
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	if (bs_store_create(f->store, NULL) || bs_store_open(f->store, NULL, &f->s))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[160];
	if (f->s)
		bs_store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	assert_int_equal(bs_store_close(f->s), 0);
	assert_int_equal(bs_store_open(f->store, NULL, &f->s), 0);
}

/* Deterministic content: block-sized pattern from a seed. */
static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static void assert_fsck_clean(struct fx *f)
{
	assert_int_equal(bs_fsck(f->s, 0, NULL, NULL), 0);
}

static void write_at(struct fx *f, const char *spec, uint64_t off, size_t n,
		     uint32_t seed)
{
	bs_disk *d;
	uint8_t *b = malloc(n);
	fill(b, n, seed);
	assert_int_equal(bs_disk_open(f->s, spec, &d), 0);
	assert_int_equal(bs_disk_write(d, b, n, off), 0);
	assert_int_equal(bs_disk_close(d), 0);
	free(b);
}

static void check_at(struct fx *f, const char *spec, uint64_t off, size_t n,
		     uint32_t seed)
{
	bs_disk *d;
	uint8_t *b = malloc(n), *want = malloc(n);
	if (seed)
		fill(want, n, seed);
	else
		memset(want, 0, n);
	assert_int_equal(bs_disk_open(f->s, spec, &d), 0);
	assert_int_equal(bs_disk_read(d, b, n, off), 0);
	assert_memory_equal(b, want, n);
	assert_int_equal(bs_disk_close(d), 0);
	free(b);
	free(want);
}

static struct bs_store_stat stat_of(struct fx *f)
{
	struct bs_store_stat st;
	assert_int_equal(bs_store_stat(f->s, &st), 0);
	return st;
}

/*
 * The split I/O path (disk_mt.c) that blkstored's NBD workers use must be
 * the same disk as bs_disk_read/bs_disk_write: random byte ranges, some
 * unaligned, written through bs_disk_prepare + bs_disk_write_prepared
 * and read through bs_disk_names + bs_disk_read_names, with and without
 * a chunk cache (a tiny one, so it evicts), against a model buffer.
 */
static void split_write(bs_disk *d, bs_chunk_cache *cc, const uint8_t *b,
			uint64_t n, uint64_t off)
{
	uint64_t whole = bs_whole_blocks(off, n);
	struct cas_prepared *p = calloc(whole ? whole : 1, sizeof(*p));
	assert_int_equal(bs_disk_prepare(d, b, n, off, p, cc), 0);
	assert_int_equal(bs_disk_write_prepared(d, b, n, off, p), 0);
	free(p);
}

static void split_read(bs_disk *d, bs_chunk_cache *cc, uint8_t *b,
		       uint64_t n, uint64_t off)
{
	cas_name *names = calloc(bs_span_blocks(off, n) + 1, sizeof(*names));
	assert_int_equal(bs_disk_names(d, off, n, names), 0);
	assert_int_equal(bs_disk_read_names(d, names, b, n, off, cc), 0);
	free(names);
}

static void test_split_io_matches_plain_io(void **state)
{
	struct fx *f = *state;
	const uint64_t size = 4 * MiB;
	uint8_t *model = calloc(1, size), *buf = malloc(1 * MiB);
	bs_chunk_cache *cc;
	bs_disk *d;
	uint32_t x = 12345;
	assert_int_equal(bs_chunk_cache_create(64 << 10, &cc), 0);
	assert_int_equal(bs_disk_create(f->s, "mt", size), 0);
	assert_int_equal(bs_disk_open(f->s, "mt", &d), 0);
	for (int i = 0; i < 400; i++) {
		x = x * 1103515245u + 12345u;
		uint64_t n = 1 + (x >> 8) % (256 << 10);
		x = x * 1103515245u + 12345u;
		uint64_t off = (uint64_t)(x >> 4) % (size - n);
		if (i % 3 == 0) /* aligned, as most guests write */
			off &= ~4095ull, n = (n + 4095) & ~4095ull;
		if (off + n > size)
			n = size - off;
		int kind = i % 4;
		if (kind == 0 || kind == 1) {
			/* half the writes repeat a few blocks (dedup) */
			fill(buf, n, kind ? (uint32_t)i : 7);
			memcpy(model + off, buf, n);
			if (i % 2)
				split_write(d, i % 5 ? cc : NULL, buf, n, off);
			else
				assert_int_equal(bs_disk_write(d, buf, n, off), 0);
		} else {
			if (kind == 2)
				split_read(d, i % 5 ? cc : NULL, buf, n, off);
			else
				assert_int_equal(bs_disk_read(d, buf, n, off), 0);
			assert_memory_equal(buf, model + off, n);
		}
		if (i % 97 == 0)
			assert_int_equal(bs_disk_flush(d), 0);
	}
	/* the whole disk, both ways, then after a reopen */
	for (uint64_t off = 0; off < size; off += 1 * MiB) {
		split_read(d, cc, buf, 1 * MiB, off);
		assert_memory_equal(buf, model + off, 1 * MiB);
	}
	assert_int_equal(bs_disk_close(d), 0);
	reopen(f);
	assert_int_equal(bs_disk_open(f->s, "mt", &d), 0);
	for (uint64_t off = 0; off < size; off += 1 * MiB) {
		split_read(d, NULL, buf, 1 * MiB, off);
		assert_memory_equal(buf, model + off, 1 * MiB);
	}
	struct bs_chunk_cache_stats cs;
	bs_chunk_cache_stats(cc, &cs);
	assert_true(cs.hits > 0 && cs.misses > 0);
	assert_true(cs.entries <= cs.capacity && cs.capacity == 16);
	assert_int_equal(bs_disk_close(d), 0);
	bs_chunk_cache_destroy(cc);
	assert_fsck_clean(f);
	free(model);
	free(buf);
}

/* The split path's guards: range, read-only, a name the store does not
 * hold, a bad cache size. */
static void test_split_io_errors(void **state)
{
	struct fx *f = *state;
	uint8_t b[8192] = {0};
	cas_name names[3];
	struct cas_prepared p[2];
	bs_chunk_cache *cc = (bs_chunk_cache *)1;
	bs_disk *d;
	assert_int_equal(bs_chunk_cache_create(100, &cc), -EINVAL);
	assert_null(cc);
	assert_int_equal(bs_disk_create(f->s, "e", 1 * MiB), 0);
	assert_int_equal(bs_disk_open(f->s, "e", &d), 0);
	assert_int_equal(bs_disk_names(d, 1 * MiB - 4096, 8192, names),
			 BS_ERANGE);
	assert_int_equal(bs_disk_prepare(d, b, 8192, 0, p, NULL), 0);
	assert_int_equal(bs_disk_write_prepared(d, b, 8192, 1 * MiB - 4096, p),
			 BS_ERANGE);
	/* a name nobody stored: an error, never zeros or other bytes */
	memset(&names[0], 0x5a, sizeof(names[0]));
	int rc = bs_disk_read_names(d, names, b, 4096, 0, NULL);
	assert_true(rc == -ENOENT || rc == -EIO);
	assert_int_equal(bs_disk_close(d), 0);
	assert_int_equal(bs_snapshot(f->s, "e", "s"), 0);
	assert_int_equal(bs_disk_open(f->s, "e@s", &d), 0);
	assert_int_equal(bs_disk_prepare(d, b, 8192, 0, p, NULL), 0);
	assert_int_equal(bs_disk_write_prepared(d, b, 8192, 0, p), BS_EROFS);
	assert_int_equal(bs_disk_close(d), 0);
	assert_fsck_clean(f);
}

/* The write path's compressibility estimate must not cost space where
 * zstd pays: text-like blocks still get compressed, random ones are
 * stored raw (and read back right either way). */
static void test_prepare_compression_choice(void **state)
{
	struct fx *f = *state;
	const uint64_t n = 256 * 4096;
	uint8_t *b = malloc(n);
	struct cas_prepared *p = calloc(256, sizeof(*p));
	bs_disk *d;
	assert_int_equal(bs_disk_create(f->s, "r", 2 * n), 0);
	assert_int_equal(bs_disk_open(f->s, "r", &d), 0);
	fill(b, n, 99); /* xorshift bytes: uniform */
	assert_int_equal(bs_disk_prepare(d, b, n, 0, p, NULL), 0);
	assert_int_equal(bs_disk_write_prepared(d, b, n, 0, p), 0);
	for (uint64_t i = 0; i < n; i++) /* text-like: 16 letters */
		b[i] = (uint8_t)('a' + ((i * 7 + i / 4096) % 16));
	assert_int_equal(bs_disk_prepare(d, b, n, n, p, NULL), 0);
	assert_int_equal(bs_disk_write_prepared(d, b, n, n, p), 0);
	assert_int_equal(bs_disk_flush(d), 0);
	struct bs_store_stat st = stat_of(f);
	/* random half stored at least raw size; text half compresses well */
	assert_true(st.data_stored_bytes >= n);
	assert_true(st.data_stored_bytes < n + n / 2);
	assert_int_equal(bs_disk_read(d, b, n, n), 0);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(b[i], (uint8_t)('a' + ((i * 7 + i / 4096) % 16)));
	assert_int_equal(bs_disk_close(d), 0);
	free(b);
	free(p);
}

static void test_rw_unaligned_and_reopen(void **state)
{
	struct fx *f = *state;
	assert_int_equal(bs_disk_create(f->s, "vm1", 64 * MiB), 0);
	write_at(f, "vm1", 1000, 10000, 1);        /* spans 4 blocks */
	write_at(f, "vm1", 5 * MiB + 4096, 8192, 2); /* aligned */
	write_at(f, "vm1", 64 * MiB - 100, 100, 3); /* the very end */
	check_at(f, "vm1", 1000, 10000, 1);
	check_at(f, "vm1", 0, 1000, 0);             /* around stays zero */
	check_at(f, "vm1", 11000, 4000, 0);
	reopen(f);
	check_at(f, "vm1", 1000, 10000, 1);
	check_at(f, "vm1", 5 * MiB + 4096, 8192, 2);
	check_at(f, "vm1", 64 * MiB - 100, 100, 3);
	struct bs_info i;
	assert_int_equal(bs_info(f->s, "vm1", &i), 0);
	assert_int_equal(i.allocated, 3 + 2 + 1);
	assert_fsck_clean(f);
}

static void test_io_bounds_and_readonly(void **state)
{
	struct fx *f = *state;
	bs_disk *d;
	uint8_t b[4096] = {1};
	assert_int_equal(bs_disk_create(f->s, "vm1", 1 * MiB), 0);
	assert_int_equal(bs_disk_open(f->s, "vm1", &d), 0);
	assert_int_equal(bs_disk_write(d, b, 4096, 1 * MiB - 2048), BS_ERANGE);
	assert_int_equal(bs_disk_read(d, b, 1, 1 * MiB), BS_ERANGE);
	assert_int_equal(bs_disk_read(d, b, 4096, UINT64_MAX - 10), BS_ERANGE);
	assert_int_equal(bs_disk_close(d), 0);
	assert_int_equal(bs_snapshot(f->s, "vm1", "s1"), 0);
	assert_int_equal(bs_disk_open(f->s, "vm1@s1", &d), 0);
	assert_true(bs_disk_readonly(d));
	assert_int_equal(bs_disk_write(d, b, 4096, 0), BS_EROFS);
	assert_int_equal(bs_disk_discard(d, 4096, 0), BS_EROFS);
	assert_int_equal(bs_disk_close(d), 0);
	struct bs_store_stat st = stat_of(f);
	assert_int_equal(st.unique_data_chunks, 0);
}

static void test_bad_names_and_sizes(void **state)
{
	struct fx *f = *state;
	bs_disk *d;
	assert_int_equal(bs_disk_create(f->s, "", MiB), BS_EBADNAME);
	assert_int_equal(bs_disk_create(f->s, "a/b", MiB), BS_EBADNAME);
	assert_int_equal(bs_disk_create(f->s, "-x", MiB), BS_EBADNAME);
	assert_int_equal(bs_disk_create(f->s, "a@b", MiB), BS_EBADNAME);
	assert_int_equal(bs_disk_create(f->s, "vm", 0), BS_EBADSIZE);
	assert_int_equal(bs_disk_create(f->s, "vm", 1000), BS_EBADSIZE);
	assert_int_equal(bs_disk_create(f->s, "vm", UINT64_MAX & ~511ull),
			 BS_EBADSIZE);
	assert_int_equal(bs_disk_create(f->s, "vm", MiB), 0);
	assert_int_equal(bs_disk_create(f->s, "vm", MiB), BS_EEXIST);
	assert_int_equal(bs_disk_open(f->s, "nope", &d), BS_ENODISK);
	assert_int_equal(bs_disk_open(f->s, "vm@nope", &d), BS_ENOSNAP);
	assert_int_equal(bs_snapshot(f->s, "nope", "s"), BS_ENODISK);
	assert_int_equal(bs_snapshot(f->s, "vm", "s"), 0);
	assert_int_equal(bs_snapshot(f->s, "vm", "s"), BS_EEXIST);
	assert_int_equal(bs_clone(f->s, "vm@nope", "c"), BS_ENOSNAP);
	assert_int_equal(bs_clone(f->s, "vm@s", "vm"), BS_EEXIST);
	assert_int_equal(bs_delete(f->s, "vm"), BS_EHASSNAPS);
	assert_int_equal(bs_delete(f->s, "nope"), BS_ENODISK);
	assert_int_equal(bs_resize(f->s, "vm", 777, 0), BS_EBADSIZE);
	assert_int_equal(bs_resize(f->s, "nope", MiB, 0), BS_ENODISK);
	assert_int_equal(bs_disk_open(f->s, "vm", &d), 0);
	assert_int_equal(bs_delete(f->s, "vm@s"), 0);
	assert_int_equal(bs_delete(f->s, "vm"), BS_EBUSY);
	assert_int_equal(bs_disk_close(d), 0);
	assert_int_equal(bs_delete(f->s, "vm"), 0);
	assert_int_equal(stat_of(f).disks, 0);
	assert_fsck_clean(f);
}

static void test_snapshot_and_clone(void **state)
{
	struct fx *f = *state;
	bs_disk *d;
	assert_int_equal(bs_disk_create(f->s, "gold", 16 * MiB), 0);
	write_at(f, "gold", 0, 4 * MiB, 10);
	/* Snapshot of an open disk with unflushed writes: holds them. */
	assert_int_equal(bs_disk_open(f->s, "gold", &d), 0);
	uint8_t b[8192];
	fill(b, sizeof(b), 11);
	assert_int_equal(bs_disk_write(d, b, sizeof(b), 8 * MiB), 0);
	assert_int_equal(bs_snapshot(f->s, "gold", "base"), 0);
	fill(b, sizeof(b), 12); /* after the snapshot: not in it */
	assert_int_equal(bs_disk_write(d, b, sizeof(b), 8 * MiB), 0);
	assert_int_equal(bs_disk_close(d), 0);
	check_at(f, "gold@base", 8 * MiB, 8192, 11);
	check_at(f, "gold", 8 * MiB, 8192, 12);

	assert_int_equal(bs_clone(f->s, "gold@base", "c1"), 0);
	assert_int_equal(bs_clone(f->s, "gold", "c2"), 0);
	write_at(f, "c1", 4096, 4096, 13);
	check_at(f, "c1", 4096, 4096, 13);
	check_at(f, "c1", 0, 4096, 10); /* first block shared with gold */
	check_at(f, "gold", 0, 8192, 10); /* the clone's write stayed there */
	check_at(f, "gold@base", 0, 8192, 10);
	assert_fsck_clean(f);
}

static void test_snapshot_and_clone_content(void **state)
{
	struct fx *f = *state;
	uint8_t *gold = malloc(4 * MiB);
	fill(gold, 4 * MiB, 20);
	assert_int_equal(bs_disk_create(f->s, "gold", 16 * MiB), 0);
	bs_disk *d;
	assert_int_equal(bs_disk_open(f->s, "gold", &d), 0);
	assert_int_equal(bs_disk_write(d, gold, 4 * MiB, 0), 0);
	assert_int_equal(bs_disk_close(d), 0);
	assert_int_equal(bs_snapshot(f->s, "gold", "base"), 0);
	struct bs_store_stat before = stat_of(f);
	for (int i = 0; i < 10; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(bs_clone(f->s, "gold@base", name), 0);
	}
	struct bs_store_stat after = stat_of(f);
	/* Clones cost no data. */
	assert_int_equal(after.unique_data_chunks, before.unique_data_chunks);
	assert_int_equal(after.stored_bytes, before.stored_bytes);
	for (int i = 0; i < 10; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		write_at(f, name, (uint64_t)i * 4096 * 7 + 123, 5000, 100 + i);
	}
	for (int i = 0; i < 10; i++) {
		char name[16];
		uint8_t *want = malloc(4 * MiB), *got = malloc(4 * MiB);
		memcpy(want, gold, 4 * MiB);
		fill(want + (uint64_t)i * 4096 * 7 + 123, 5000, 100 + i);
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(bs_disk_open(f->s, name, &d), 0);
		assert_int_equal(bs_disk_read(d, got, 4 * MiB, 0), 0);
		assert_memory_equal(got, want, 4 * MiB);
		assert_int_equal(bs_disk_close(d), 0);
		free(want);
		free(got);
	}
	check_at(f, "gold@base", 0, 4 * MiB, 20);
	/* Each clone changed 2 blocks: 20 new unique chunks. */
	assert_int_equal(stat_of(f).unique_data_chunks,
			 before.unique_data_chunks + 20);
	assert_fsck_clean(f);
	free(gold);
}

static void test_delete_and_gc_return_space(void **state)
{
	struct fx *f = *state;
	struct cas_gc_result r;
	assert_int_equal(bs_disk_create(f->s, "vm", 32 * MiB), 0);
	write_at(f, "vm", 0, 8 * MiB, 30);
	struct bs_store_stat base = stat_of(f);
	assert_int_equal(bs_snapshot(f->s, "vm", "s1"), 0);
	write_at(f, "vm", 0, 8 * MiB, 31); /* now the snapshot alone holds 30 */
	struct bs_store_stat two = stat_of(f);
	assert_true(two.unique_data_chunks >= 2 * base.unique_data_chunks);
	assert_int_equal(bs_delete(f->s, "vm@s1"), 0);
	assert_int_equal(bs_gc(f->s, &r), 0);
	struct bs_store_stat after = stat_of(f);
	assert_int_equal(after.unique_data_chunks, base.unique_data_chunks);
	assert_true(r.chunks_freed >= 2048);
	assert_true(after.stored_bytes < two.stored_bytes);
	check_at(f, "vm", 0, 8 * MiB, 31);
	assert_fsck_clean(f);
	/* Deleting everything empties the store. */
	assert_int_equal(bs_delete(f->s, "vm"), 0);
	assert_int_equal(bs_gc(f->s, &r), 0);
	after = stat_of(f);
	assert_int_equal(after.unique_data_chunks, 0);
	assert_int_equal(after.node_chunks, 0);
	assert_int_equal(after.stored_bytes, 0);
	/* ... and gives the files back, the active segment's included. */
	assert_int_equal(after.segment_bytes, 0);
}

static void test_holes_discard_zeroes(void **state)
{
	struct fx *f = *state;
	bs_disk *d;
	struct bs_info i;
	assert_int_equal(bs_disk_create(f->s, "vm", 4 * MiB), 0);
	write_at(f, "vm", 0, 1 * MiB, 40);
	assert_int_equal(bs_disk_open(f->s, "vm", &d), 0);
	assert_int_equal(bs_disk_discard(d, 64 * 1024, 4096), 0);
	assert_int_equal(bs_disk_write_zeroes(d, 100, 200000), 0); /* partial */
	uint8_t z[4096] = {0};
	assert_int_equal(bs_disk_write(d, z, 4096, 2 * MiB), 0); /* zeros */
	bool hole;
	uint64_t run;
	assert_int_equal(bs_disk_block_status(d, 4096, MiB, &hole, &run), 0);
	assert_true(hole);
	assert_int_equal(run, 64 * 1024);
	assert_int_equal(bs_disk_block_status(d, 0, MiB, &hole, &run), 0);
	assert_false(hole);
	assert_int_equal(run, 4096);
	assert_int_equal(bs_disk_close(d), 0);
	assert_int_equal(bs_info(f->s, "vm", &i), 0);
	assert_int_equal(i.allocated, 256 - 16);
	check_at(f, "vm", 4096, 65536, 0);
	check_at(f, "vm", 200000, 100, 0);
	uint8_t want[4096], got[4096];
	fill(want, 4096, 40); /* block 0 untouched */
	assert_int_equal(bs_disk_open(f->s, "vm", &d), 0);
	assert_int_equal(bs_disk_read(d, got, 4096, 0), 0);
	assert_memory_equal(got, want, 4096);
	assert_int_equal(bs_disk_close(d), 0);
	assert_fsck_clean(f);
}

static void test_resize(void **state)
{
	struct fx *f = *state;
	struct bs_info i;
	assert_int_equal(bs_disk_create(f->s, "vm", 8 * MiB), 0);
	write_at(f, "vm", 6 * MiB, 4096, 50);
	/* Grow far (adds levels), content kept. */
	assert_int_equal(bs_resize(f->s, "vm", 2 * TiB, 0), 0);
	check_at(f, "vm", 6 * MiB, 4096, 50);
	write_at(f, "vm", 2 * TiB - 4096, 4096, 51);
	/* Shrink past written data: refused, then forced. */
	assert_int_equal(bs_resize(f->s, "vm", 4 * MiB, 0), BS_EDATALOSS);
	assert_int_equal(bs_info(f->s, "vm", &i), 0);
	assert_int_equal(i.size, 2 * TiB);
	assert_int_equal(bs_resize(f->s, "vm", 7 * MiB, BS_RESIZE_FORCE), 0);
	assert_int_equal(bs_info(f->s, "vm", &i), 0);
	assert_int_equal(i.size, 7 * MiB);
	assert_int_equal(i.allocated, 1);
	/* A shrink that drops only holes needs no force. */
	assert_int_equal(bs_resize(f->s, "vm", 6 * MiB + 4096, 0), 0);
	/* Unaligned shrink into written bytes: refused; forced zeroes them. */
	assert_int_equal(bs_resize(f->s, "vm", 6 * MiB + 512, 0), BS_EDATALOSS);
	assert_int_equal(bs_resize(f->s, "vm", 6 * MiB + 512, BS_RESIZE_FORCE), 0);
	assert_int_equal(bs_resize(f->s, "vm", 8 * MiB, 0), 0);
	uint8_t want[4096];
	fill(want, 4096, 50);
	memset(want + 512, 0, 4096 - 512);
	bs_disk *d;
	uint8_t got[4096];
	assert_int_equal(bs_disk_open(f->s, "vm", &d), 0);
	assert_int_equal(bs_disk_read(d, got, 4096, 6 * MiB), 0);
	assert_memory_equal(got, want, 4096);
	assert_int_equal(bs_disk_close(d), 0);
	assert_fsck_clean(f);
}

static void test_2tib_costs_nothing(void **state)
{
	struct fx *f = *state;
	struct bs_store_stat a = stat_of(f);
	assert_int_equal(bs_disk_create(f->s, "big", 2 * TiB), 0);
	assert_int_equal(bs_snapshot(f->s, "big", "s"), 0);
	assert_int_equal(bs_clone(f->s, "big@s", "big2"), 0);
	struct bs_store_stat b = stat_of(f);
	assert_int_equal(b.stored_bytes, a.stored_bytes);
	assert_int_equal(b.unique_data_chunks, 0);
	assert_int_equal(b.logical_bytes, 4 * TiB);
	check_at(f, "big2", 2 * TiB - 8192, 8192, 0);
	write_at(f, "big2", TiB, 4096, 60);
	check_at(f, "big2", TiB, 4096, 60);
	check_at(f, "big", TiB, 4096, 0);
	assert_fsck_clean(f);
}

static void test_nested_clones(void **state)
{
	struct fx *f = *state;
	enum { DEPTH = 200 };
	char prev[16] = "d0", name[16];
	assert_int_equal(bs_disk_create(f->s, "d0", 4 * MiB), 0);
	for (int i = 1; i <= DEPTH; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		assert_int_equal(bs_clone(f->s, prev, name), 0);
		write_at(f, name, (uint64_t)(i % 1000) * 4096, 4096, 1000 + i);
		snprintf(prev, sizeof(prev), "%s", name);
	}
	for (int i = 1; i <= DEPTH; i++)
		check_at(f, prev, (uint64_t)(i % 1000) * 4096, 4096, 1000 + i);
	assert_fsck_clean(f);
	struct cas_gc_result r;
	for (int i = DEPTH; i >= 0; i--) {
		snprintf(name, sizeof(name), "d%d", i);
		assert_int_equal(bs_delete(f->s, name), 0);
	}
	assert_int_equal(bs_gc(f->s, &r), 0);
	assert_int_equal(stat_of(f).stored_bytes, 0);
}

static void test_import_export_sparse(void **state)
{
	struct fx *f = *state;
	char img[160], out[160];
	snprintf(img, sizeof(img), "%s/in.img", f->dir);
	snprintf(out, sizeof(out), "%s/out.img", f->dir);
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	uint8_t b[12345];
	fill(b, sizeof(b), 70);
	assert_int_equal(pwrite(fd, b, sizeof(b), 3 * MiB + 7), (ssize_t)sizeof(b));
	assert_int_equal(ftruncate(fd, 10 * MiB + 1000), 0); /* odd size */
	assert_int_equal(bs_import(f->s, "imp", fd, NULL, NULL), 0);
	struct bs_info i;
	assert_int_equal(bs_info(f->s, "imp", &i), 0);
	assert_int_equal(i.size, 10 * MiB + 1024);
	assert_int_equal(i.allocated, 4);
	/* A name taken: import changes nothing. */
	assert_int_equal(bs_import(f->s, "imp", fd, NULL, NULL), BS_EEXIST);
	close(fd);
	int ofd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(bs_export(f->s, "imp", ofd, true, NULL, NULL), 0);
	struct stat st;
	assert_int_equal(fstat(ofd, &st), 0);
	assert_int_equal(st.st_size, 10 * MiB + 1024);
	assert_true((uint64_t)st.st_blocks * 512 < 1 * MiB); /* sparse */
	uint8_t got[sizeof(b)];
	assert_int_equal(pread(ofd, got, sizeof(got), 3 * MiB + 7), (ssize_t)sizeof(got));
	assert_memory_equal(got, b, sizeof(b));
	close(ofd);
	/* A pipe (unknown length) imports too. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], b, 5000), 5000);
	close(p[1]);
	assert_int_equal(bs_import(f->s, "piped", p[0], NULL, NULL), 0);
	close(p[0]);
	assert_int_equal(bs_info(f->s, "piped", &i), 0);
	assert_int_equal(i.size, 5120);
	check_at(f, "piped", 0, 5000, 70);
	check_at(f, "piped", 5000, 120, 0);
	assert_fsck_clean(f);
}

struct ranges {
	uint64_t off[16], len[16];
	int n;
};

static int add_range(void *arg, uint64_t off, uint64_t len)
{
	struct ranges *r = arg;
	if (r->n == 16)
		return -E2BIG;
	r->off[r->n] = off;
	r->len[r->n++] = len;
	return 0;
}

static void test_diff(void **state)
{
	struct fx *f = *state;
	assert_int_equal(bs_disk_create(f->s, "vm", 2 * TiB), 0);
	write_at(f, "vm", 0, 4096, 80);
	assert_int_equal(bs_snapshot(f->s, "vm", "a"), 0);
	write_at(f, "vm", 8192, 8192, 81);
	write_at(f, "vm", TiB, 4096, 82);
	assert_int_equal(bs_snapshot(f->s, "vm", "b"), 0);
	struct ranges r = {0};
	assert_int_equal(bs_diff(f->s, "vm@a", "vm@b", add_range, &r), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.off[0], 8192);
	assert_int_equal(r.len[0], 8192);
	assert_int_equal(r.off[1], TiB);
	assert_int_equal(r.len[1], 4096);
	r.n = 0;
	assert_int_equal(bs_diff(f->s, "vm@b", "vm", add_range, &r), 0);
	assert_int_equal(r.n, 0);
	write_at(f, "vm", 0, 4096, 80); /* same content again: no change */
	assert_int_equal(bs_diff(f->s, "vm@b", "vm", add_range, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(bs_diff(f->s, "vm@a", "nope", add_range, &r), BS_ENODISK);
}

static void test_fsck_detects_and_repairs(void **state)
{
	struct fx *f = *state;
	struct bs_info i;
	assert_int_equal(bs_disk_create(f->s, "vm", 4 * MiB), 0);
	write_at(f, "vm", 0, 64 * 1024, 90);
	assert_fsck_clean(f);
	assert_int_equal(bs_info(f->s, "vm", &i), 0);
	/* Break one count: an extra reference on the root. */
	assert_true(cas_ref(bs_store_cas(f->s), &i.root) > 0);
	assert_int_equal(cas_sync(bs_store_cas(f->s)), 0);
	assert_int_equal(bs_fsck(f->s, 0, NULL, NULL), 1);
	assert_int_equal(bs_fsck(f->s, BS_FSCK_REPAIR, NULL, NULL), 1);
	assert_fsck_clean(f);
}

static void test_rebuild(void **state)
{
	struct fx *f = *state;
	char idx[200];
	assert_int_equal(bs_disk_create(f->s, "vm", 16 * MiB), 0);
	write_at(f, "vm", 0, 2 * MiB, 95);
	assert_int_equal(bs_snapshot(f->s, "vm", "s"), 0);
	write_at(f, "vm", MiB, 4096, 96);
	assert_int_equal(bs_clone(f->s, "vm@s", "c"), 0);
	assert_int_equal(bs_store_close(f->s), 0);
	f->s = NULL;
	/* The index is recreated from segments (kv carried over), then the
	 * counts are recounted from the roots. */
	assert_int_equal(bs_rebuild(f->store, NULL, NULL), 0);
	assert_int_equal(bs_store_open(f->store, NULL, &f->s), 0);
	assert_fsck_clean(f);
	check_at(f, "vm@s", 0, 2 * MiB, 95);
	check_at(f, "vm", MiB, 4096, 96);
	check_at(f, "c", 0, MiB, 95);
	/* With the index lost entirely, the catalogue comes back from the
	 * catalogue records in the segments: every disk and snapshot, with
	 * its root, and the counts recounted from those roots. */
	assert_int_equal(bs_store_close(f->s), 0);
	f->s = NULL;
	snprintf(idx, sizeof(idx), "rm -rf '%s/index'", f->store);
	assert_int_equal(system(idx), 0);
	assert_int_equal(bs_rebuild(f->store, NULL, NULL), 0);
	assert_int_equal(bs_store_open(f->store, NULL, &f->s), 0);
	assert_int_equal(stat_of(f).disks, 2);
	assert_int_equal(stat_of(f).snapshots, 1);
	assert_fsck_clean(f);
	check_at(f, "vm@s", 0, 2 * MiB, 95);
	check_at(f, "vm", MiB, 4096, 96);
	check_at(f, "c", 0, MiB, 95);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rw_unaligned_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_bounds_and_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names_and_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_and_clone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_and_clone_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_and_gc_return_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holes_discard_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_2tib_costs_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_clones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_export_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_diff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_detects_and_repairs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_io_matches_plain_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_io_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_compression_choice, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
