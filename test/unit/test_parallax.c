/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_parallax.c - pins parallax/parallax.h, the block maps, against a
 * real chunk store (cas/), never a mock of it.
 *
 * What each group pins:
 *  - shape: a new 2 TiB map is CAS_HOLE and reads as holes; writes read
 *    back across leaf boundaries and at the last block, before and after
 *    commit and across a store reopen; equal content is an equal root
 *    whatever the order of writes (Merkle);
 *  - counts: nothing leaks and nothing is freed early: after any mix of
 *    writes, snapshots, clones and releases, releasing every root and
 *    running gc leaves zero chunks, and every root still held reads right
 *    until then; an in-place rewrite costs O(height) count updates, the
 *    first write after a snapshot one per shared child; discard restores
 *    every count exactly;
 *  - resize: grow keeps content and adds levels (and equals the old tree
 *    lifted), shrink releases what falls off and removes levels;
 *  - diff: exactly the changed ranges, few node reads on a huge disk;
 *  - the node cache: bounded, CLOCK keeps the hot root, correct under
 *    eviction and with reader threads sharing one map;
 *  - a seeded random model run of all of it together.
 *
 * Block content is made from a seed (test_util.h's PRNG), seed 0 being
 * the hole, so the expected name of every block is known.  Each test gets
 * a fresh store in a mkdtemp directory, removed afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cas/cas.h"
#include "parallax/parallax.h"

#define CS CAS_CHUNK_SIZE
#define TIB2_BLOCKS (1ull << 29) /* 2 TiB of 4 KiB blocks */
#define MIB1_BLOCKS 256ull

/* ======================================================================
 * Fixture and helpers
 * ====================================================================== */

struct fx {
	char *dir;
	char *store;
	cas *c;
	px_cache *pc;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tu_mkdtemp("test_parallax");
	if (!f->dir || asprintf(&f->store, "%s/store", f->dir) < 0)
		return -1;
	if (cas_create(f->store, NULL) < 0 ||
	    cas_open(f->store, NULL, &f->c) < 0)
		return -1;
	if (px_cache_create(4096, &f->pc) < 0)
		return -1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	px_cache_destroy(f->pc);
	if (f->c)
		cas_close(f->c);
	if (f->dir)
		tu_rmrf(f->dir);
	free(f->store);
	free(f->dir);
	free(f);
	return 0;
}

static void assert_name_eq(const cas_name *a, const cas_name *b)
{
	assert_memory_equal(a->b, b->b, CAS_NAME_SIZE);
}

static void assert_name_ne(const cas_name *a, const cas_name *b)
{
	assert_memory_not_equal(a->b, b->b, CAS_NAME_SIZE);
}

/* Content of seed s (s != 0); seed 0 is the hole. */
static cas_name name_of(uint64_t seed)
{
	uint8_t buf[CS];
	cas_name n = CAS_HOLE;

	if (seed) {
		tu_fill_random(buf, CS, seed);
		cas_hash(buf, &n);
	}
	return n;
}

/* cas_put the content of 'seed': the caller now holds one reference. */
static cas_name put_seed(struct fx *f, uint64_t seed)
{
	uint8_t buf[CS];
	cas_name n = CAS_HOLE;

	if (seed) {
		tu_fill_random(buf, CS, seed);
		assert_true(cas_put(f->c, buf, 0, &n) >= 0);
	}
	return n;
}

static void write_seed(struct fx *f, px_map *m, uint64_t block, uint64_t seed)
{
	cas_name n = put_seed(f, seed);

	assert_int_equal(px_map_update(m, block, &n), 0);
}

static void check_block(px_map *m, uint64_t block, uint64_t seed)
{
	cas_name want = name_of(seed), got;

	assert_int_equal(px_map_lookup(m, block, &got), 0);
	assert_name_eq(&got, &want);
}

/* The count of a chunk, or UINT32_MAX when it is not indexed. */
static uint32_t refs_of(struct fx *f, const cas_name *n)
{
	uint32_t refs;

	if (cas_lookup(f->c, n, &refs) < 0)
		return UINT32_MAX;
	return refs;
}

/* gc, then the number of chunks left in the store. */
static uint64_t chunks_after_gc(struct fx *f)
{
	struct cas_stat st;

	assert_int_equal(cas_gc(f->c, NULL), 0);
	assert_int_equal(cas_stat(f->c, &st), 0);
	return st.chunks;
}

static px_map *open_map(struct fx *f, const cas_name *root, uint64_t nblocks)
{
	px_map *m = NULL;

	assert_int_equal(px_map_open(f->c, f->pc, root, nblocks, &m), 0);
	return m;
}

static cas_name commit(px_map *m)
{
	cas_name root;

	assert_int_equal(px_map_commit(m, &root), 0);
	return root;
}

/* Check a root against model[0..nblocks) (seeds) without taking over any
 * reference: a reader map borrows one and gives it back. */
static void check_root(struct fx *f, const cas_name *root, uint64_t nblocks,
		       const uint32_t *model)
{
	px_map *m;
	cas_name *got = malloc(nblocks * sizeof(*got));

	assert_non_null(got);
	assert_true(cas_ref(f->c, root) >= 0);
	m = open_map(f, root, nblocks);
	assert_int_equal(px_map_lookup_range(m, 0, nblocks, got), 0);
	for (uint64_t b = 0; b < nblocks; b++) {
		cas_name want = name_of(model[b]);
		assert_name_eq(&got[b], &want);
	}
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, root, nblocks), 0);
	free(got);
}

/* A sorted list of (name, count) of every live chunk, after a gc. */
struct dump {
	size_t n, cap;
	struct dump_ent {
		cas_name name;
		uint32_t refs;
	} * e;
};

static int dump_fn(void *arg, const cas_name *name, uint32_t refs)
{
	struct dump *d = arg;

	if (!refs)
		return 0;
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 64;
		d->e = realloc(d->e, d->cap * sizeof(*d->e));
		if (!d->e)
			return -ENOMEM;
	}
	d->e[d->n].name = *name;
	d->e[d->n].refs = refs;
	d->n++;
	return 0;
}

static int dump_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(cas_name));
}

static void dump_take(struct fx *f, struct dump *d)
{
	memset(d, 0, sizeof(*d));
	assert_int_equal(cas_gc(f->c, NULL), 0);
	assert_int_equal(cas_foreach(f->c, dump_fn, d), 0);
	qsort(d->e, d->n, sizeof(*d->e), dump_cmp);
}

static void assert_dump_eq(const struct dump *a, const struct dump *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_name_eq(&a->e[i].name, &b->e[i].name);
		assert_int_equal(a->e[i].refs, b->e[i].refs);
	}
}

/* ======================================================================
 * Shape
 * ====================================================================== */

static void test_height(void **state)
{
	(void)state;
	assert_int_equal(px_height(0), 1);
	assert_int_equal(px_height(1), 1);
	assert_int_equal(px_height(128), 1);
	assert_int_equal(px_height(129), 2);
	assert_int_equal(px_height(MIB1_BLOCKS), 2);
	assert_int_equal(px_height(16384), 2);
	assert_int_equal(px_height(16385), 3);
	assert_int_equal(px_height(TIB2_BLOCKS), 5);
	assert_int_equal(px_height(PX_MAX_BLOCKS), PX_MAX_HEIGHT);
}

static void test_new_2tib_is_hole(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	cas_name n, range[300];
	struct px_map_stats st;
	uint64_t probe[] = {0, 1, 127, 128, 16384, 123456789, TIB2_BLOCKS - 1};

	for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		memset(&n, 0xff, sizeof(n));
		assert_int_equal(px_map_lookup(m, probe[i], &n), 0);
		assert_true(cas_name_is_hole(&n));
	}
	memset(range, 0xff, sizeof(range));
	assert_int_equal(px_map_lookup_range(m, TIB2_BLOCKS - 300, 300, range),
			 0);
	for (size_t i = 0; i < 300; i++)
		assert_true(cas_name_is_hole(&range[i]));
	assert_int_equal(px_map_lookup(m, TIB2_BLOCKS, &n), -ERANGE);
	assert_int_equal(px_map_lookup_range(m, TIB2_BLOCKS - 1, 2, range),
			 -ERANGE);
	n = commit(m);
	assert_true(cas_name_is_hole(&n));
	px_map_stats(m, &st);
	assert_int_equal(st.node_reads, 0);
	assert_int_equal(st.nodes_stored, 0);
	assert_int_equal(st.refs_taken + st.refs_dropped, 0);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* Random blocks across leaf and interior boundaries and the last block:
 * read back before and after commit, and after a store reopen. */
static void test_roundtrip_and_reopen(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	uint64_t blocks[260], seeds[260];
	size_t nw = 0;
	uint64_t rs = 42;
	cas_name root, range[400];
	uint8_t buf[CS], want[CS];
	uint64_t fixed[] = {0,     127,   128,     129,     16383,
			    16384, 16385, 2097151, 2097152, TIB2_BLOCKS - 1};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		blocks[nw] = fixed[i];
		seeds[nw] = 1000 + nw;
		nw++;
	}
	while (nw < 250) {
		blocks[nw] = tu_rand64(&rs) % TIB2_BLOCKS;
		seeds[nw] = 1000 + nw;
		nw++;
	}
	/* Overwrites of earlier blocks, uncommitted. */
	for (size_t i = 0; i < 10; i++) {
		blocks[nw] = blocks[i * 3];
		seeds[nw] = 5000 + i;
		nw++;
	}
	for (size_t i = 0; i < nw; i++)
		write_seed(f, m, blocks[i], seeds[i]);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nw; i++) {
			int last = 1;
			for (size_t j = i + 1; j < nw; j++)
				if (blocks[j] == blocks[i])
					last = 0;
			if (last)
				check_block(m, blocks[i], seeds[i]);
		}
		check_block(m, 130, 0);
		check_block(m, TIB2_BLOCKS - 2, 0);
		if (pass == 0)
			root = commit(m);
	}
	assert_false(cas_name_is_hole(&root));
	assert_int_equal(refs_of(f, &root), 1);
	/* Overwritten names are gone, the last ones held once each. */
	for (size_t i = 0; i < 10; i++) {
		cas_name old = name_of(seeds[i * 3]);
		cas_name now = name_of(5000 + i);
		assert_true(refs_of(f, &old) == 0 ||
			    refs_of(f, &old) == UINT32_MAX);
		assert_int_equal(refs_of(f, &now), 1);
	}
	/* A range across the leaf boundary at 128 and the last blocks. */
	assert_int_equal(px_map_lookup_range(m, 0, 400, range), 0);
	{
		cas_name w0 = name_of(5000), w127 = name_of(1001);
		assert_name_eq(&range[0], &w0); /* block 0 overwritten */
		assert_name_eq(&range[127], &w127);
		assert_true(cas_name_is_hole(&range[130]));
	}
	assert_int_equal(px_map_close(m), 0);

	/* Reopen the store and read the committed root again. */
	assert_int_equal(cas_close(f->c), 0);
	f->c = NULL;
	assert_int_equal(cas_open(f->store, NULL, &f->c), 0);
	px_cache_destroy(f->pc); /* and a cold cache */
	assert_int_equal(px_cache_create(64, &f->pc), 0);
	m = open_map(f, &root, TIB2_BLOCKS);
	for (size_t i = 0; i < nw; i++) {
		int last = 1;
		cas_name n;
		for (size_t j = i + 1; j < nw; j++)
			if (blocks[j] == blocks[i])
				last = 0;
		if (!last)
			continue;
		check_block(m, blocks[i], seeds[i]);
		assert_int_equal(px_map_lookup(m, blocks[i], &n), 0);
		assert_int_equal(cas_get(f->c, &n, buf, CAS_GET_VERIFY), 0);
		tu_fill_random(want, CS, seeds[i]);
		assert_memory_equal(buf, want, CS);
	}
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &root, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

static void test_merkle_order(void **state)
{
	struct fx *f = *state;
	px_map *a = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	px_map *b = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	uint64_t blocks[100];
	uint64_t rs = 7;
	cas_name ra, rb;

	for (size_t i = 0; i < 100; i++)
		blocks[i] = i < 50 ? i * 3 : tu_rand64(&rs) % TIB2_BLOCKS;
	for (size_t i = 0; i < 100; i++)
		write_seed(f, a, blocks[i], 1 + i);
	/* b: reverse order, with detours (other data first, commits
	 * between) that end at the same content. */
	for (size_t i = 100; i-- > 0;) {
		write_seed(f, b, blocks[i], 777);
		if (i % 10 == 0)
			commit(b);
		write_seed(f, b, blocks[i], 1 + i);
	}
	write_seed(f, b, 1000000, 9); /* and a block written, then a hole */
	commit(b);
	assert_int_equal(px_map_update(b, 1000000, &CAS_HOLE), 0);
	ra = commit(a);
	rb = commit(b);
	assert_name_eq(&ra, &rb);
	assert_int_equal(refs_of(f, &ra), 2); /* one per map */
	assert_int_equal(px_map_close(a), 0);
	assert_int_equal(px_map_close(b), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &ra, TIB2_BLOCKS), 0);
	assert_true(chunks_after_gc(f) > 100); /* b's root still holds all */
	assert_int_equal(px_root_release(f->c, f->pc, &rb, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* ======================================================================
 * Counts
 * ====================================================================== */

static void test_clone_independent(void **state)
{
	struct fx *f = *state;
	px_map *a = open_map(f, &CAS_HOLE, TIB2_BLOCKS), *b;
	cas_name ra, rb, ra2;

	for (uint64_t i = 0; i < 300; i++)
		write_seed(f, a, i * 1000, 1 + i);
	ra = commit(a);
	/* Clone: copy the root and take a reference. */
	assert_int_equal(cas_ref(f->c, &ra), 2);
	b = open_map(f, &ra, TIB2_BLOCKS);
	for (uint64_t i = 0; i < 300; i += 2)
		write_seed(f, b, i * 1000, 10000 + i);
	write_seed(f, b, 5, 20000);
	rb = commit(b);
	assert_name_ne(&ra, &rb);
	assert_int_equal(refs_of(f, &ra), 1);
	assert_int_equal(refs_of(f, &rb), 1);
	for (uint64_t i = 0; i < 300; i++) {
		check_block(a, i * 1000, 1 + i);
		check_block(b, i * 1000, i % 2 ? 1 + i : 10000 + i);
	}
	check_block(a, 5, 0);
	check_block(b, 5, 20000);
	/* The original changes on; the clone does not see it. */
	write_seed(f, a, 1000, 30000);
	ra2 = commit(a);
	check_block(b, 1000, 2);
	check_block(a, 1000, 30000);
	assert_true(refs_of(f, &ra) == 0 || refs_of(f, &ra) == UINT32_MAX);
	assert_int_equal(px_map_close(a), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &ra2, TIB2_BLOCKS), 0);
	for (uint64_t i = 0; i < 300; i++)
		check_block(b, i * 1000, i % 2 ? 1 + i : 10000 + i);
	assert_int_equal(px_map_close(b), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &rb, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* Writes, snapshots, clones of snapshots, releases in an awkward order:
 * every root still held reads right, and at the end the store is empty. */
static void test_refcount_lifecycle(void **state)
{
	struct fx *f = *state;
	enum {
		NB = 40000,
		NSNAP = 6
	};
	uint32_t *model = calloc(NB, sizeof(*model));
	uint32_t *snapm[NSNAP + 2];
	cas_name snap[NSNAP + 2];
	size_t ns = 0;
	uint64_t rs = 99, seed = 1;
	px_map *m = open_map(f, &CAS_HOLE, NB), *cl;
	cas_name root;

	assert_non_null(model);
	for (int round = 0; round < NSNAP; round++) {
		for (int i = 0; i < 200; i++) {
			uint64_t b = tu_rand64(&rs) % NB;
			/* some repeated content: dedup across blocks */
			uint64_t s = tu_rand64(&rs) % 4 ? seed++ : 1;
			write_seed(f, m, b, s);
			model[b] = (uint32_t)s;
		}
		root = commit(m);
		assert_true(cas_ref(f->c, &root) >= 2); /* snapshot */
		snap[ns] = root;
		snapm[ns] = malloc(NB * sizeof(uint32_t));
		memcpy(snapm[ns], model, NB * sizeof(uint32_t));
		ns++;
	}
	/* A clone of snapshot 2, changed. */
	assert_true(cas_ref(f->c, &snap[2]) >= 2);
	cl = open_map(f, &snap[2], NB);
	snapm[ns] = malloc(NB * sizeof(uint32_t));
	memcpy(snapm[ns], snapm[2], NB * sizeof(uint32_t));
	for (int i = 0; i < 300; i++) {
		uint64_t b = tu_rand64(&rs) % NB;
		write_seed(f, cl, b, seed);
		snapm[ns][b] = (uint32_t)seed++;
	}
	snap[ns++] = commit(cl);
	assert_int_equal(px_map_close(cl), 0);
	/* The disk itself. */
	root = commit(m);
	assert_int_equal(px_map_close(m), 0);
	snap[ns] = root;
	snapm[ns++] = model;
	for (size_t i = 0; i < ns; i++)
		check_root(f, &snap[i], NB, snapm[i]);
	/* Release in an order that is neither creation nor its reverse,
	 * checking the survivors each time (nothing freed early). */
	size_t order[] = {2, 0, 7, 6, 4, 1, 5, 3};
	assert_int_equal(ns, sizeof(order) / sizeof(order[0]));
	for (size_t k = 0; k < ns; k++) {
		size_t i = order[k];
		assert_int_equal(px_root_release(f->c, f->pc, &snap[i], NB), 0);
		assert_true(chunks_after_gc(f) > 0 || k == ns - 1);
		for (size_t j = k + 1; j < ns; j++)
			check_root(f, &snap[order[j]], NB, snapm[order[j]]);
	}
	assert_int_equal(chunks_after_gc(f), 0);
	for (size_t i = 0; i < ns; i++)
		free(snapm[i]);
}

/* A leaf rewritten in place costs O(height) count updates; after a
 * snapshot the first write pays one reference per shared child, later
 * ones O(height) again. */
static void test_inplace_rewrite_cost(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	const uint64_t leaf = 128 * 77;
	const unsigned h = px_height(TIB2_BLOCKS);
	struct px_map_stats st;
	cas_name root, snap, old = name_of(1 + 7), n;

	for (uint64_t i = 0; i < 128; i++)
		write_seed(f, m, leaf + i, 1 + i);
	root = commit(m);
	for (uint64_t i = 0; i < 128; i++) {
		n = name_of(1 + i);
		assert_int_equal(refs_of(f, &n), 1);
	}
	px_map_stats_reset(m);
	write_seed(f, m, leaf + 7, 500);
	root = commit(m);
	px_map_stats(m, &st);
	assert_int_equal(st.refs_taken, 0);
	assert_int_equal(st.refs_dropped, h + 1); /* h old nodes + old block */
	assert_int_equal(st.cow_steals, h);
	assert_int_equal(st.cow_shares, 0);
	assert_int_equal(st.nodes_stored, h);
	assert_int_equal(st.dirty_nodes, 0);
	for (uint64_t i = 0; i < 128; i++) {
		n = name_of(i == 7 ? 500 : 1 + i);
		assert_int_equal(refs_of(f, &n), 1);
	}
	assert_true(refs_of(f, &old) == 0 || refs_of(f, &old) == UINT32_MAX);

	/* Snapshot: the path is shared now. */
	assert_int_equal(cas_ref(f->c, &root), 2);
	snap = root;
	px_map_stats_reset(m);
	write_seed(f, m, leaf + 9, 501);
	root = commit(m);
	px_map_stats(m, &st);
	assert_int_equal(st.cow_shares, h);
	/* one per non-hole child along the path: 1 per interior level,
	 * 127 unchanged blocks in the leaf */
	assert_int_equal(st.refs_taken, (h - 1) + 127);
	assert_int_equal(st.refs_dropped, h);
	n = name_of(1 + 9);
	assert_int_equal(refs_of(f, &n), 1); /* the snapshot's leaf only */
	n = name_of(1 + 10);
	assert_int_equal(refs_of(f, &n), 2); /* both leaves */

	/* And the next write is cheap again. */
	px_map_stats_reset(m);
	write_seed(f, m, leaf + 11, 502);
	root = commit(m);
	px_map_stats(m, &st);
	assert_int_equal(st.cow_steals, h);
	assert_int_equal(st.refs_taken, 0);
	assert_int_equal(st.refs_dropped, h + 1);
	n = name_of(1 + 11);
	assert_int_equal(refs_of(f, &n), 1); /* the snapshot keeps it */

	{
		/* check the snapshot through a reader map over its leaf */
		px_map *r;
		assert_int_equal(cas_ref(f->c, &snap), 2);
		r = open_map(f, &snap, TIB2_BLOCKS);
		for (uint64_t i = 0; i < 128; i++)
			check_block(r, leaf + i, i == 7 ? 500 : 1 + i);
		assert_int_equal(px_map_close(r), 0);
		assert_int_equal(
			px_root_release(f->c, f->pc, &snap, TIB2_BLOCKS), 0);
	}
	assert_int_equal(px_root_release(f->c, f->pc, &snap, TIB2_BLOCKS), 0);
	for (uint64_t i = 0; i < 128; i++)
		check_block(m, leaf + i,
			    i == 7    ? 500
			    : i == 9  ? 501
			    : i == 11 ? 502
				      : 1 + i);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &root, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

static void test_same_data_twice(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	struct px_map_stats st;
	cas_name r1, r2, x = name_of(3);

	write_seed(f, m, 5000, 3);
	write_seed(f, m, 5001, 4);
	r1 = commit(m);
	px_map_stats_reset(m);
	write_seed(f, m, 5000, 3);
	assert_int_equal(refs_of(f, &x), 1); /* the extra one was dropped */
	r2 = commit(m);
	assert_name_eq(&r1, &r2);
	px_map_stats(m, &st);
	assert_int_equal(st.nodes_stored + st.nodes_deduped, 0);
	assert_int_equal(refs_of(f, &r1), 1);
	/* A detour that comes back to the same data, uncommitted. */
	write_seed(f, m, 5000, 8);
	write_seed(f, m, 5000, 3);
	r2 = commit(m);
	assert_name_eq(&r1, &r2);
	assert_int_equal(refs_of(f, &x), 1);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &r1, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

static void test_zeros_everywhere(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	uint64_t blocks[500], rs = 5;
	cas_name root;

	for (size_t i = 0; i < 500; i++) {
		blocks[i] = i < 256 ? i : tu_rand64(&rs) % TIB2_BLOCKS;
		write_seed(f, m, blocks[i], 1 + i);
	}
	root = commit(m);
	assert_false(cas_name_is_hole(&root));
	assert_true(chunks_after_gc(f) > 500);
	for (size_t i = 0; i < 500; i++)
		assert_int_equal(px_map_update(m, blocks[i], &CAS_HOLE), 0);
	root = commit(m);
	assert_true(cas_name_is_hole(&root));
	/* The commit itself released everything. */
	assert_int_equal(chunks_after_gc(f), 0);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &root, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* Two leaves with the same content are one node held twice. */
static void test_shared_node_two_slots(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, 1024);
	cas_name root, leaf, n;
	struct px_map_stats st;

	for (uint64_t i = 0; i < 256; i++)
		write_seed(f, m, i, 1 + i % 128);
	root = commit(m);
	px_map_stats(m, &st);
	assert_int_equal(st.nodes_stored, 2); /* one leaf, one root */
	assert_int_equal(st.nodes_deduped, 1);
	for (uint64_t i = 0; i < 128; i++) {
		n = name_of(1 + i);
		assert_int_equal(refs_of(f, &n), 1); /* one leaf chunk */
	}
	/* root's slots 0 and 1 are the same leaf: count 2 */
	{
		uint8_t buf[CS];
		assert_int_equal(cas_get(f->c, &root, buf, 0), 0);
		memcpy(&leaf, buf, sizeof(leaf));
		assert_memory_equal(buf, buf + CAS_NAME_SIZE, CAS_NAME_SIZE);
		assert_int_equal(refs_of(f, &leaf), 2);
	}
	write_seed(f, m, 130, 999);
	root = commit(m);
	assert_int_equal(refs_of(f, &leaf), 1);
	n = name_of(1 + 2);
	assert_int_equal(refs_of(f, &n), 1); /* only the old leaf */
	n = name_of(1 + 3);
	assert_int_equal(refs_of(f, &n), 2); /* old leaf and new leaf */
	for (uint64_t i = 0; i < 256; i++)
		check_block(m, i, i == 130 ? 999 : 1 + i % 128);
	write_seed(f, m, 2, 999); /* now the old leaf goes, uniquely held */
	root = commit(m);
	for (uint64_t i = 0; i < 256; i++)
		check_block(m, i, i % 128 == 2 ? 999 : 1 + i % 128);
	assert_int_equal(refs_of(f, &root), 1);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &root, 1024), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* The same node at two positions, both changed in one commit: the first
 * copy finds it shared, the second takes it over. */
static void test_shared_node_both_changed(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, 1024);
	struct px_map_stats st;
	cas_name root, n;

	for (uint64_t i = 0; i < 256; i++)
		write_seed(f, m, i, 1 + i % 128);
	root = commit(m);
	px_map_stats_reset(m);
	write_seed(f, m, 5, 700);
	write_seed(f, m, 128 + 5, 701);
	root = commit(m);
	px_map_stats(m, &st);
	assert_int_equal(st.cow_steals, 2); /* the root, the second leaf */
	assert_int_equal(st.cow_shares, 1); /* the first leaf */
	assert_int_equal(st.refs_taken, 127);
	n = name_of(1 + 5);
	assert_true(refs_of(f, &n) == 0 || refs_of(f, &n) == UINT32_MAX);
	n = name_of(1 + 6);
	assert_int_equal(refs_of(f, &n), 2); /* one per new leaf */
	for (uint64_t i = 0; i < 256; i++)
		check_block(m, i, i == 5 ? 700 : i == 133 ? 701 : 1 + i % 128);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &root, 1024), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* A snapshot taken while the map has uncommitted changes still reads the
 * committed content after the commit. */
static void test_snapshot_while_dirty(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, 20000);
	cas_name r0, snap, r1;
	px_map *s;

	for (uint64_t i = 0; i < 300; i++)
		write_seed(f, m, i * 50, 1 + i);
	r0 = commit(m);
	for (uint64_t i = 0; i < 300; i += 3)
		write_seed(f, m, i * 50, 1000 + i);
	px_map_root(m, &snap, NULL);
	assert_name_eq(&snap, &r0);
	assert_int_equal(cas_ref(f->c, &snap), 2);
	r1 = commit(m);
	s = open_map(f, &snap, 20000);
	for (uint64_t i = 0; i < 300; i++) {
		check_block(s, i * 50, 1 + i);
		check_block(m, i * 50, i % 3 ? 1 + i : 1000 + i);
	}
	assert_int_equal(px_map_close(s), 0);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &snap, 20000), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &r1, 20000), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* 1000 clones, each of the one before, each with one changed block. */
static void test_nested_clones(void **state)
{
	struct fx *f = *state;
	enum {
		N = 1000
	};
	const uint64_t nb = TIB2_BLOCKS;
	cas_name *roots = calloc(N + 1, sizeof(*roots));
	px_map *m;

	assert_non_null(roots);
	px_cache_destroy(f->pc);
	assert_int_equal(px_cache_create(16384, &f->pc), 0);
	roots[0] = CAS_HOLE;
	for (int i = 1; i <= N; i++) {
		assert_true(cas_ref(f->c, &roots[i - 1]) >= 0);
		m = open_map(f, &roots[i - 1], nb);
		write_seed(f, m, (uint64_t)i * 536870 % nb, (uint64_t)i);
		roots[i] = commit(m);
		assert_int_equal(px_map_close(m), 0);
	}
	for (int i = 1; i <= N; i++) {
		m = open_map(f, &roots[i], nb);
		for (int j = 1; j <= N; j++)
			check_block(m, (uint64_t)j * 536870 % nb,
				    j <= i ? (uint64_t)j : 0);
		/* give the borrowed reference back untouched */
		assert_int_equal(px_map_close(m), 0);
	}
	/* Release from the middle outwards. */
	for (int k = 0; k < N; k++) {
		int i = k % 2 ? N / 2 - k / 2 : N / 2 + 1 + k / 2;
		assert_int_equal(px_root_release(f->c, f->pc, &roots[i], nb),
				 0);
		if (k == N / 2) {
			int keep = N / 2 + 1 + (k + 2) / 2; /* still held */
			m = open_map(f, &roots[keep], nb);
			assert_int_equal(cas_ref(f->c, &roots[keep]), 2);
			check_block(m, (uint64_t)keep * 536870 % nb,
				    (uint64_t)keep);
			check_block(m, 536870, 1);
			assert_int_equal(px_map_close(m), 0);
			assert_int_equal(cas_unref(f->c, &roots[keep]), 1);
		}
	}
	assert_int_equal(chunks_after_gc(f), 0);
	free(roots);
}

/* Discarding uncommitted updates and resizes leaves every count as it
 * was, and the map reads its committed content again. */
static void test_discard_restores_counts(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, 50000), *c2;
	struct dump before, after;
	cas_name root, snap;

	for (uint64_t i = 0; i < 400; i++)
		write_seed(f, m, i * 97 % 50000, 1 + i % 300);
	root = commit(m);
	snap = root; /* a snapshot makes part of the tree shared */
	assert_int_equal(cas_ref(f->c, &snap), 2);
	write_seed(f, m, 3, 4444);
	root = commit(m);
	dump_take(f, &before);
	assert_true(before.n > 400);

	for (int round = 0; round < 4; round++) {
		for (uint64_t i = 0; i < 200; i++)
			write_seed(f, m, i * 131 % 50000, 2000 + i);
		for (uint64_t i = 0; i < 50; i++) /* overwrite own writes */
			write_seed(f, m, i * 131 % 50000, 3000 + i);
		write_seed(f, m, 97, 1 + 1); /* same as committed */
		assert_int_equal(px_map_update(m, 0, &CAS_HOLE), 0);
		if (round >= 1)
			assert_int_equal(px_map_resize(m, 100), 0);
		if (round >= 2) {
			assert_int_equal(px_map_resize(m, TIB2_BLOCKS), 0);
			write_seed(f, m, TIB2_BLOCKS - 1, 5555);
		}
		if (round == 3) {
			assert_int_equal(px_map_resize(m, 1000), 0);
			assert_int_equal(px_map_resize(m, 50000), 0);
		}
		assert_true(px_map_dirty(m));
		assert_int_equal(px_map_discard(m), 0);
		assert_false(px_map_dirty(m));
		assert_int_equal(px_map_nblocks(m), 50000);
		check_block(m, 3, 4444);
		check_block(m, 97, 2);
		check_block(m, 97 * 2, 3);
		dump_take(f, &after);
		assert_dump_eq(&before, &after);
		free(after.e);
	}
	/* close with uncommitted changes: the same */
	assert_int_equal(cas_ref(f->c, &root), 2);
	c2 = open_map(f, &root, 50000);
	write_seed(f, c2, 10, 6666);
	assert_int_equal(px_map_resize(c2, 20), 0);
	assert_int_equal(px_map_close(c2), 0);
	assert_int_equal(cas_unref(f->c, &root), 1);
	dump_take(f, &after);
	assert_dump_eq(&before, &after);
	free(after.e);
	free(before.e);

	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &root, 50000), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &snap, 50000), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* ======================================================================
 * Resize
 * ====================================================================== */

static int count_ranges(void *arg, uint64_t first, uint64_t count)
{
	(void)first;
	(void)count;
	(*(int *)arg)++;
	return 0;
}

static void test_grow(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, MIB1_BLOCKS);
	cas_name r1, r2, r3;
	struct px_map_stats st;
	int nranges = 0;

	/* an all-hole map grows for nothing */
	assert_int_equal(px_map_resize(m, TIB2_BLOCKS), 0);
	assert_int_equal(px_map_resize(m, MIB1_BLOCKS), 0);
	px_map_stats(m, &st);
	assert_int_equal(st.node_reads + st.refs_taken + st.dirty_nodes, 0);

	write_seed(f, m, 0, 1);
	write_seed(f, m, 100, 2);
	write_seed(f, m, 255, 3);
	r1 = commit(m);
	assert_int_equal(px_map_resize(m, TIB2_BLOCKS), 0);
	check_block(m, 0, 1);
	check_block(m, 255, 3);
	check_block(m, 256, 0);
	r2 = commit(m);
	assert_name_ne(&r1, &r2);
	assert_int_equal(refs_of(f, &r2), 1);
	assert_int_equal(refs_of(f, &r1), 1); /* held by the new child 0 */
	/* The grown tree is the old one lifted: no difference. */
	assert_int_equal(px_diff(f->c, f->pc, &r1, MIB1_BLOCKS, &r2,
				 TIB2_BLOCKS, count_ranges, &nranges, NULL),
			 0);
	assert_int_equal(nranges, 0);
	write_seed(f, m, TIB2_BLOCKS - 1, 4);
	r3 = commit(m);
	check_block(m, 0, 1);
	check_block(m, 100, 2);
	check_block(m, 255, 3);
	check_block(m, TIB2_BLOCKS - 1, 4);
	{
		uint64_t nb;
		cas_name cr;
		px_map_root(m, &cr, &nb);
		assert_name_eq(&cr, &r3);
		assert_int_equal(nb, TIB2_BLOCKS);
	}
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &r3, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);

	/* grow within one session, from a dirty map, then commit */

	m = open_map(f, &CAS_HOLE, 100);
	write_seed(f, m, 99, 5);
	assert_int_equal(px_map_resize(m, 100000), 0);
	write_seed(f, m, 99999, 6);
	assert_int_equal(px_map_resize(m, 3000000), 0);
	check_block(m, 99, 5);
	check_block(m, 99999, 6);
	r1 = commit(m);
	check_block(m, 99, 5);
	check_block(m, 99999, 6);
	/* grow and shrink back in one session: the same root, same counts */
	assert_int_equal(px_map_resize(m, TIB2_BLOCKS), 0); /* height 5 */
	write_seed(f, m, 5000000, 7);
	assert_int_equal(px_map_resize(m, 3000000), 0); /* height 4 */
	check_block(m, 99999, 6);
	assert_int_equal(px_map_resize(m, TIB2_BLOCKS), 0);
	check_block(m, 5000000, 0);
	assert_int_equal(px_map_resize(m, 3000000), 0);
	r2 = commit(m);
	assert_name_eq(&r1, &r2);
	assert_int_equal(refs_of(f, &r1), 1);
	px_map_stats(m, &st);
	assert_int_equal(st.dirty_nodes, 0);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &r1, 3000000), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

static void test_shrink(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, TIB2_BLOCKS), *fresh;
	cas_name r1, r2, rf, gone = name_of(12), cut = name_of(14);
	cas_name n;

	write_seed(f, m, 5, 10);
	write_seed(f, m, 200, 11);
	write_seed(f, m, 20000, 12);
	write_seed(f, m, 250, 14);
	write_seed(f, m, TIB2_BLOCKS - 1, 13);
	r1 = commit(m);
	assert_true(cas_ref(f->c, &r1) == 2);       /* keep a snapshot */
	assert_int_equal(px_map_resize(m, 250), 0); /* height 2, mid-leaf */
	check_block(m, 5, 10);
	check_block(m, 200, 11);
	assert_int_equal(px_map_lookup(m, 250, &n), -ERANGE);
	n = name_of(99);
	assert_int_equal(px_map_update(m, 20000, &n), -ERANGE);
	r2 = commit(m);
	/* The same as a fresh 250-block map with the same writes. */
	fresh = open_map(f, &CAS_HOLE, 250);
	write_seed(f, fresh, 5, 10);
	write_seed(f, fresh, 200, 11);
	rf = commit(fresh);
	assert_name_eq(&r2, &rf);
	assert_int_equal(px_map_close(fresh), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &rf, 250), 0);
	/* The snapshot still has everything. */
	assert_int_equal(refs_of(f, &gone), 1);
	assert_int_equal(px_root_release(f->c, f->pc, &r1, TIB2_BLOCKS), 0);
	assert_true(refs_of(f, &gone) == 0 || refs_of(f, &gone) == UINT32_MAX);
	assert_true(refs_of(f, &cut) == 0 || refs_of(f, &cut) == UINT32_MAX);
	/* 2 data chunks, 2 leaves, 1 root: exactly what is left */
	assert_int_equal(chunks_after_gc(f), 5);
	/* Growing back does not bring the cut blocks back. */
	assert_int_equal(px_map_resize(m, TIB2_BLOCKS), 0);
	check_block(m, 20000, 0);
	check_block(m, 250, 0);
	check_block(m, TIB2_BLOCKS - 1, 0);
	check_block(m, 200, 11);
	r2 = commit(m);
	/* Shrink to nothing. */
	assert_int_equal(px_map_resize(m, 0), 0);
	r2 = commit(m);
	assert_true(cas_name_is_hole(&r2));
	assert_int_equal(chunks_after_gc(f), 0);
	assert_int_equal(px_map_close(m), 0);
}

/* ======================================================================
 * Diff
 * ====================================================================== */

static int count_ranges_stop(void *arg, uint64_t first, uint64_t count)
{
	(void)arg;
	(void)first;
	(void)count;
	return 123;
}

struct ranges {
	size_t n;
	uint64_t first[64], count[64];
};

static int collect(void *arg, uint64_t first, uint64_t count)
{
	struct ranges *r = arg;

	if (r->n == 64)
		return -ENOSPC;
	r->first[r->n] = first;
	r->count[r->n] = count;
	r->n++;
	return 0;
}

static void test_diff(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, TIB2_BLOCKS);
	struct ranges rg = {0};
	struct px_diff_stats ds;
	cas_name r1, r2;
	uint64_t rs = 11;

	for (int i = 0; i < 300; i++)
		write_seed(f, m, tu_rand64(&rs) % TIB2_BLOCKS, 1 + i);
	for (uint64_t b = 1000; b < 1300; b++)
		write_seed(f, m, b, 400 + b);
	r1 = commit(m);
	assert_int_equal(cas_ref(f->c, &r1), 2);
	/* changes: a run across a leaf boundary, two singles, a block
	 * rewritten with its own data (no change), one written and put back
	 * (no change), one hole punched */
	for (uint64_t b = 1270; b < 1290; b++)
		write_seed(f, m, b, 9000 + b);
	write_seed(f, m, 5000000, 7);
	write_seed(f, m, TIB2_BLOCKS - 1, 8);
	write_seed(f, m, 1100, 400 + 1100);
	write_seed(f, m, 1101, 77);
	write_seed(f, m, 1101, 400 + 1101);
	assert_int_equal(px_map_update(m, 1200, &CAS_HOLE), 0);
	r2 = commit(m);
	assert_int_equal(px_diff(f->c, f->pc, &r1, TIB2_BLOCKS, &r2,
				 TIB2_BLOCKS, collect, &rg, &ds),
			 0);
	assert_int_equal(rg.n, 4);
	assert_int_equal(rg.first[0], 1200);
	assert_int_equal(rg.count[0], 1);
	assert_int_equal(rg.first[1], 1270);
	assert_int_equal(rg.count[1], 20);
	assert_int_equal(rg.first[2], 5000000);
	assert_int_equal(rg.count[2], 1);
	assert_int_equal(rg.first[3], TIB2_BLOCKS - 1);
	assert_int_equal(rg.count[3], 1);
	assert_int_equal(ds.ranges, 4);
	assert_int_equal(ds.blocks, 23);
	/* few nodes: 2 per level per changed path, at most (4 paths, as
	 * 1200 and 1270..1289 share their upper levels) */
	assert_true(ds.node_reads <= 2 * 5 * 4);
	/* The other way round gives the same ranges. */
	memset(&rg, 0, sizeof(rg));
	assert_int_equal(px_diff(f->c, NULL, &r2, TIB2_BLOCKS, &r1, TIB2_BLOCKS,
				 collect, &rg, &ds),
			 0);
	assert_int_equal(rg.n, 4);
	assert_true(ds.node_reads <= 2 * 5 * 4);
	/* equal roots: nothing, no reads */
	memset(&rg, 0, sizeof(rg));
	assert_int_equal(px_diff(f->c, f->pc, &r2, TIB2_BLOCKS, &r2,
				 TIB2_BLOCKS, collect, &rg, &ds),
			 0);
	assert_int_equal(rg.n, 0);
	assert_int_equal(ds.node_reads, 0);
	/* against the empty disk: every written block */
	memset(&rg, 0, sizeof(rg));
	{
		px_map *s = open_map(f, &CAS_HOLE, 2000);
		cas_name rs2;
		write_seed(f, s, 3, 1);
		write_seed(f, s, 4, 2);
		write_seed(f, s, 1999, 3);
		rs2 = commit(s);
		assert_int_equal(px_diff(f->c, f->pc, &CAS_HOLE, 0, &rs2, 2000,
					 collect, &rg, NULL),
				 0);
		assert_int_equal(rg.n, 2);
		assert_int_equal(rg.first[0], 3);
		assert_int_equal(rg.count[0], 2);
		assert_int_equal(rg.first[1], 1999);
		/* fn's non-zero return stops the walk */
		assert_int_equal(px_diff(f->c, f->pc, &rs2, 2000, &r2,
					 TIB2_BLOCKS, count_ranges_stop, NULL,
					 NULL),
				 123);
		assert_int_equal(px_map_close(s), 0);
		assert_int_equal(px_root_release(f->c, f->pc, &rs2, 2000), 0);
	}
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &r1, TIB2_BLOCKS), 0);
	assert_int_equal(px_root_release(f->c, f->pc, &r2, TIB2_BLOCKS), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* ======================================================================
 * Cache
 * ====================================================================== */

struct reader {
	struct fx *f;
	px_map *m;
	const uint32_t *model;
	uint64_t nb;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	cas_name n, want;

	for (int round = 0; round < 20; round++) {
		for (uint64_t b = 0; b < r->nb; b += 7) {
			want = name_of(r->model[b]);
			if (px_map_lookup(r->m, b, &n) != 0 ||
			    memcmp(&n, &want, sizeof(n)) != 0)
				r->bad++;
		}
	}
	return NULL;
}

static void test_cache_bounded_and_threads(void **state)
{
	struct fx *f = *state;
	enum {
		NB = 60000,
		NT = 4
	};
	uint32_t *model = calloc(NB, sizeof(*model));
	px_map *m = open_map(f, &CAS_HOLE, NB);
	struct px_cache_stats cs;
	struct reader rd[NT];
	pthread_t th[NT];
	cas_name root;

	assert_non_null(model);
	for (uint64_t b = 0; b < NB; b += 37) {
		model[b] = (uint32_t)(b + 1);
		write_seed(f, m, b, b + 1);
	}
	root = commit(m);
	assert_int_equal(px_map_close(m), 0);
	px_cache_destroy(f->pc);
	assert_int_equal(px_cache_create(8, &f->pc), 0); /* tiny */
	/* threads 0 and 1 share one map, 2 and 3 have their own */
	for (int t = 0; t < NT; t++) {
		rd[t] = (struct reader){.f = f, .model = model, .nb = NB};
		if (t == 1) {
			rd[t].m = rd[0].m;
			continue;
		}
		assert_true(cas_ref(f->c, &root) >= 2);
		rd[t].m = open_map(f, &root, NB);
	}
	for (int t = 0; t < NT; t++)
		assert_int_equal(
			pthread_create(&th[t], NULL, reader_main, &rd[t]), 0);
	for (int t = 0; t < NT; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(rd[t].bad, 0);
	}
	{
		struct px_map_stats st;
		px_map_stats(rd[0].m, &st); /* two threads' reads, none lost */
		/* height 3, no hole on the way: 3 nodes per lookup */
		assert_int_equal(st.node_reads, 2 * 20 * ((NB + 6) / 7) * 3);
	}
	for (int t = 0; t < NT; t++) {
		if (t == 1)
			continue;
		assert_int_equal(px_map_close(rd[t].m), 0);
		assert_true(cas_unref(f->c, &root) >= 1);
	}
	assert_int_equal(refs_of(f, &root), 1);
	px_cache_stats(f->pc, &cs);
	assert_true(cs.nodes <= 8);
	assert_true(cs.evictions > 0);
	assert_true(cs.hits > 0);
	assert_true(cs.misses > 0);
	/* a warm, big enough cache: a second pass is all hits */
	px_cache_destroy(f->pc);
	assert_int_equal(px_cache_create(1024, &f->pc), 0);
	check_root(f, &root, NB, model);
	px_cache_stats(f->pc, &cs);
	{
		uint64_t misses = cs.misses;
		check_root(f, &root, NB, model);
		px_cache_stats(f->pc, &cs);
		assert_int_equal(cs.misses, misses);
	}
	assert_int_equal(px_cache_create(0, &(px_cache *){NULL}), -EINVAL);
	assert_int_equal(px_root_release(f->c, f->pc, &root, NB), 0);
	assert_int_equal(chunks_after_gc(f), 0);
	free(model);
}

/* CLOCK keeps what is used: the root, read by every lookup, survives a
 * stream of leaves each read once through a cache of 8. */
static void test_cache_clock(void **state)
{
	struct fx *f = *state;
	px_map *m = open_map(f, &CAS_HOLE, 128 * 100);
	struct px_cache_stats cs;
	px_cache *pc;
	cas_name root, n;

	for (uint64_t k = 0; k < 100; k++)
		write_seed(f, m, k * 128, 1 + k);
	root = commit(m);
	assert_int_equal(px_map_close(m), 0);
	assert_int_equal(px_cache_create(8, &pc), 0);
	assert_int_equal(px_map_open(f->c, pc, &root, 128 * 100, &m), 0);
	for (uint64_t k = 0; k < 100; k++) {
		cas_name want = name_of(1 + k);
		assert_int_equal(px_map_lookup(m, k * 128, &n), 0);
		assert_name_eq(&n, &want);
	}
	px_cache_stats(pc, &cs);
	assert_int_equal(cs.misses, 1 + 100); /* the root once, each leaf */
	assert_int_equal(cs.hits, 99);
	assert_int_equal(cs.nodes, 8);
	assert_int_equal(cs.evictions, 101 - 8);
	assert_int_equal(px_map_close(m), 0);
	px_cache_destroy(pc);
	assert_int_equal(px_root_release(f->c, f->pc, &root, 128 * 100), 0);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* ======================================================================
 * Errors
 * ====================================================================== */

static void test_errors(void **state)
{
	struct fx *f = *state;
	px_map *m = NULL;
	cas_name n = name_of(1), missing = name_of(2);

	assert_int_equal(px_map_open(f->c, f->pc, &missing, 10, &m), -ENOENT);
	assert_null(m);
	assert_int_equal(
		px_map_open(f->c, f->pc, &CAS_HOLE, PX_MAX_BLOCKS + 1, &m),
		-EFBIG);
	m = open_map(f, &CAS_HOLE, 10);
	n = put_seed(f, 1);
	assert_int_equal(px_map_update(m, 10, &n), -ERANGE);
	assert_int_equal(refs_of(f, &n), 1); /* still the caller's */
	assert_int_equal(px_map_resize(m, PX_MAX_BLOCKS + 1), -EFBIG);
	assert_int_equal(px_map_update(m, 9, &n), 0);
	assert_int_equal(refs_of(f, &n), 1); /* now the map's */
	assert_non_null(px_strerror(PX_EBROKEN));
	assert_string_not_equal(px_strerror(PX_EBROKEN), px_strerror(-ERANGE));
	assert_non_null(px_strerror(-ENOENT));
	assert_int_equal(px_map_close(m), 0); /* discards: n released */
	assert_true(refs_of(f, &n) == 0 || refs_of(f, &n) == UINT32_MAX);
	assert_int_equal(chunks_after_gc(f), 0);
}

/* ======================================================================
 * A seeded random run of everything against a model
 * ====================================================================== */

static void test_random_model(void **state)
{
	struct fx *f = *state;
	enum {
		MAXB = 40000,
		NSNAP = 12
	};
	uint32_t *cur = calloc(MAXB, sizeof(uint32_t));
	uint32_t *com = calloc(MAXB, sizeof(uint32_t));
	uint32_t *sm[NSNAP];
	uint64_t snb[NSNAP];
	cas_name sr[NSNAP];
	size_t ns = 0;
	uint64_t rs = 2024, nb = 3000, cnb = 3000;
	px_map *m = open_map(f, &CAS_HOLE, nb);
	cas_name root = CAS_HOLE;

	for (int step = 0; step < 3000; step++) {
		uint64_t op = tu_rand64(&rs) % 100;

		if (op < 80 && nb) {
			uint64_t b = tu_rand64(&rs) % nb;
			uint64_t s =
				tu_rand64(&rs) % 5 ? tu_rand64(&rs) % 500 : 0;
			write_seed(f, m, b, s);
			cur[b] = (uint32_t)s;
		} else if (op < 88) {
			root = commit(m);
			memcpy(com, cur, MAXB * sizeof(uint32_t));
			cnb = nb;
		} else if (op < 92) {
			assert_int_equal(px_map_discard(m), 0);
			memcpy(cur, com, MAXB * sizeof(uint32_t));
			nb = cnb;
		} else if (op < 96) {
			uint64_t n2 = tu_rand64(&rs) % MAXB;
			assert_int_equal(px_map_resize(m, n2), 0);
			for (uint64_t b = n2; b < nb; b++)
				cur[b] = 0;
			nb = n2;
		} else if (ns < NSNAP) {
			/* snapshot of the committed root */
			px_map_root(m, &sr[ns], &snb[ns]);
			assert_true(cas_ref(f->c, &sr[ns]) >= 0);
			sm[ns] = malloc(MAXB * sizeof(uint32_t));
			memcpy(sm[ns], com, MAXB * sizeof(uint32_t));
			ns++;
		}
		if (step % 500 == 0) {
			for (uint64_t b = 0; b < nb; b++)
				check_block(m, b, cur[b]);
		}
	}
	root = commit(m);
	memcpy(com, cur, MAXB * sizeof(uint32_t));
	cnb = nb;
	assert_int_equal(px_map_close(m), 0);
	check_root(f, &root, cnb, com);
	for (size_t i = 0; i < ns; i++)
		check_root(f, &sr[i], snb[i], sm[i]);
	for (size_t i = 0; i < ns; i++) {
		assert_int_equal(px_root_release(f->c, f->pc, &sr[i], snb[i]),
				 0);
		free(sm[i]);
	}
	check_root(f, &root, cnb, com);
	assert_int_equal(px_root_release(f->c, f->pc, &root, cnb), 0);
	assert_int_equal(chunks_after_gc(f), 0);
	free(cur);
	free(com);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_height),
		T(test_new_2tib_is_hole),
		T(test_roundtrip_and_reopen),
		T(test_merkle_order),
		T(test_clone_independent),
		T(test_refcount_lifecycle),
		T(test_inplace_rewrite_cost),
		T(test_same_data_twice),
		T(test_zeros_everywhere),
		T(test_shared_node_two_slots),
		T(test_shared_node_both_changed),
		T(test_snapshot_while_dirty),
		T(test_nested_clones),
		T(test_discard_restores_counts),
		T(test_grow),
		T(test_shrink),
		T(test_diff),
		T(test_cache_bounded_and_threads),
		T(test_cache_clock),
		T(test_errors),
		T(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
