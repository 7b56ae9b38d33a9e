/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_disks.c - snapshots, clones and reads through clone chains,
 * each measured against its peer in the same run.
 *
 * Not a test: it prints a table and one JSON line, and fails only when
 * the store returns an error.  Every figure is the median of -r
 * repetitions.
 *
 * a) bs_snapshot() and bs_clone() wall time per call (each ends with the
 *    store's durable commit, cas_sync) on a 1 GiB disk and on a 2 TiB
 *    disk holding the same -m MiB of data at the same offsets: does the
 *    cost depend on the disk's size?  Goal: clone < 10 ms at 2 TiB.
 *    For context: an empty group commit (bs_store_flush with nothing
 *    dirty: the fsync floor) and a snapshot taken right after one dirty
 *    4 KiB write (commits a map path first).
 * b) -n random 4 KiB bs_disk_read()s (same seed, blocks inside the
 *    written region) on a clone at depth 1 and on a clone at depth -D
 *    (a clone of a clone of ... of the base snapshot, each level with one
 *    4 KiB write at a distinct block).  Goal: depth D within 10% of
 *    depth 1.  Each repetition closes and reopens the store before the
 *    cold pass (empty map-node cache and chunk store state), then runs
 *    the same reads again (warm).  The OS page cache is not dropped
 *    unless -C (posix_fadvise DONTNEED on the store's files only).
 *
 *   bench_disks [-d DIR] [-r REPS] [-n READS] [-D DEPTH] [-m MiB] [-C] [-k]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blkstore/blkstore.h"

#define BLK BS_BLOCK_SIZE
#define MAX_REPS 101
#define WBUF (1u << 20)
#define GIB (1ull << 30)
#define TIB (1ull << 40)

struct cfg {
	const char *dir;
	int reps;
	uint64_t reads;
	int depth;
	uint64_t mib;
	bool evict;
	bool keep;
};

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_disks: %s: %s\n", what,
		err < 0 ? bs_strerror(err) : strerror(err));
	exit(1);
}

#define CHECK(what, expr)                                                      \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ < 0)                                                   \
			die(what, rc_);                                        \
	} while (0)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *in, int n)
{
	double v[MAX_REPS];

	memcpy(v, in, (size_t)n * sizeof(*v));
	qsort(v, (size_t)n, sizeof(*v), dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double minv(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

static double maxv(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void loadavg(char *out, size_t n)
{
	FILE *f = fopen("/proc/loadavg", "re");

	if (!f || !fgets(out, (int)n, f))
		snprintf(out, n, "?");
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = 0;
}

/*
 * Block 'i' of generation 'gen': unique (its index and generation come
 * first) and of mixed compressibility like a real disk: half text-like
 * (words from a small dictionary), a quarter low-entropy binary, a
 * quarter random.
 */
static void fill_block(uint8_t *b, uint64_t i, uint64_t gen)
{
	static const char *words[] = {
		"the ", "disk ", "block ", "of ", "and ", "snapshot ", "clone ",
		"root ", "name ", "chunk ", "store ", "write ", "read ",
		"commit ", "tree ", "node ", "map ", "hole ", "data ", "file ",
		"\n", "int ", "return ", "if (", ") {\n", "}\n", "static ",
		"void ", "char *", "uint64_t ", "= 0;\n", "for (", "while (",
	};
	const size_t nw = sizeof(words) / sizeof(words[0]);
	uint64_t s = (i + 1) * 0x9e3779b97f4a7c15ull ^ (gen + 1) * 0xbf58476d1ce4e5b9ull;
	size_t p = 16;

	if (!s)
		s = 1;
	memcpy(b, &i, 8);
	memcpy(b + 8, &gen, 8);
	switch (i % 4) {
	case 0:
	case 1:
		while (p < BLK) {
			const char *w = words[xorshift(&s) % nw];
			size_t l = strlen(w);
			if (l > BLK - p)
				l = BLK - p;
			memcpy(b + p, w, l);
			p += l;
		}
		break;
	case 2:
		for (; p < BLK; p++)
			b[p] = (uint8_t)(xorshift(&s) % 8 == 0 ? xorshift(&s) : 0x20);
		break;
	default:
		for (; p + 8 <= BLK; p += 8) {
			uint64_t r = xorshift(&s);
			memcpy(b + p, &r, 8);
		}
		break;
	}
}

/* Write blocks [first, first+n) of generation gen. */
static void write_blocks(bs_disk *d, uint64_t first, uint64_t n, uint64_t gen)
{
	static uint8_t buf[WBUF];
	const uint64_t per = WBUF / BLK;

	for (uint64_t b = first; b < first + n; b += per) {
		uint64_t k = first + n - b < per ? first + n - b : per;
		for (uint64_t j = 0; j < k; j++)
			fill_block(buf + j * BLK, b + j, gen);
		CHECK("bs_disk_write", bs_disk_write(d, buf, k * BLK, b * BLK));
	}
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

static int evict_one(const char *p, const struct stat *st, int flag,
		     struct FTW *f)
{
	(void)f;
	if (flag == FTW_F && S_ISREG(st->st_mode)) {
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	return 0;
}

static bs_store *open_store(const char *path)
{
	bs_store *s;

	CHECK("bs_store_open", bs_store_open(path, NULL, &s));
	return s;
}

/* ---- a) snapshot and clone ---- */

struct snap_result {
	const char *label;
	uint64_t size;
	double write_mbps;
	double commit_ms[MAX_REPS], snap_ms[MAX_REPS], clone_ms[MAX_REPS],
		dirty_snap_ms[MAX_REPS];
};

/* Make store 'path' with disk "d" of 'size' holding 'mib' MiB from block
 * 0 and a snapshot d@base (for part b); then time the calls. */
static void bench_snap(const struct cfg *c, const char *path, uint64_t size,
		       struct snap_result *r)
{
	char sn[32], cn[32], spec[64];
	bs_store *s;
	bs_disk *d;
	uint64_t nblk = c->mib * (1u << 20) / BLK;
	uint8_t blk[BLK];

	r->size = size;
	CHECK("bs_store_create", bs_store_create(path, NULL));
	s = open_store(path);
	CHECK("bs_disk_create", bs_disk_create(s, "d", size));
	CHECK("bs_disk_open", bs_disk_open(s, "d", &d));
	double t0 = now_s();
	write_blocks(d, 0, nblk, 0);
	CHECK("bs_disk_flush", bs_disk_flush(d));
	r->write_mbps = (double)c->mib / (now_s() - t0);
	CHECK("bs_snapshot base", bs_snapshot(s, "d", "base"));

	for (int i = 0; i < c->reps; i++) {
		double t = now_s();
		CHECK("bs_store_flush", bs_store_flush(s));
		r->commit_ms[i] = (now_s() - t) * 1e3;

		snprintf(sn, sizeof(sn), "s%d", i);
		t = now_s();
		CHECK("bs_snapshot", bs_snapshot(s, "d", sn));
		r->snap_ms[i] = (now_s() - t) * 1e3;

		snprintf(spec, sizeof(spec), "d@%s", sn);
		snprintf(cn, sizeof(cn), "c%d", i);
		t = now_s();
		CHECK("bs_clone", bs_clone(s, spec, cn));
		r->clone_ms[i] = (now_s() - t) * 1e3;

		/* One dirty block (spread over the written region), then a
		 * snapshot: it commits that map path first. */
		fill_block(blk, (uint64_t)i * 7919 % nblk, 1000 + (uint64_t)i);
		CHECK("bs_disk_write",
		      bs_disk_write(d, blk, BLK, (uint64_t)i * 7919 % nblk * BLK));
		snprintf(sn, sizeof(sn), "w%d", i);
		t = now_s();
		CHECK("bs_snapshot dirty", bs_snapshot(s, "d", sn));
		r->dirty_snap_ms[i] = (now_s() - t) * 1e3;
	}
	CHECK("bs_disk_close", bs_disk_close(d));
	CHECK("bs_store_close", bs_store_close(s));
}

/* ---- b) reads through clone chains ---- */

static uint64_t chain_block(int level, uint64_t nblk)
{
	/* Distinct for level < nblk / 61 (1074 at 256 MiB), spread out. */
	return (uint64_t)level * 61 % nblk;
}

/* Build x1 (depth 1) and y<D> (depth D) from d@base; returns the chain's
 * build time per level in ms. */
static double build_chains(const struct cfg *c, const char *path,
			   uint64_t nblk)
{
	char prev[32] = "d@base", name[32];
	uint8_t blk[BLK];
	bs_store *s = open_store(path);
	bs_disk *d;

	CHECK("bs_clone x1", bs_clone(s, "d@base", "x1"));
	CHECK("bs_disk_open x1", bs_disk_open(s, "x1", &d));
	fill_block(blk, chain_block(0, nblk), 2000);
	CHECK("bs_disk_write", bs_disk_write(d, blk, BLK, chain_block(0, nblk) * BLK));
	CHECK("bs_disk_close", bs_disk_close(d));

	double t0 = now_s();
	for (int lv = 0; lv < c->depth; lv++) {
		snprintf(name, sizeof(name), "y%d", lv + 1);
		CHECK("bs_clone chain", bs_clone(s, prev, name));
		CHECK("bs_disk_open", bs_disk_open(s, name, &d));
		fill_block(blk, chain_block(lv, nblk), 2000 + (uint64_t)lv);
		CHECK("bs_disk_write",
		      bs_disk_write(d, blk, BLK, chain_block(lv, nblk) * BLK));
		CHECK("bs_disk_close", bs_disk_close(d));
		snprintf(prev, sizeof(prev), "%s", name);
	}
	double per = (now_s() - t0) * 1e3 / c->depth;
	CHECK("bs_store_close", bs_store_close(s));
	return per;
}

static uint64_t sink;

static double read_pass(bs_disk *d, const uint64_t *blocks, uint64_t n)
{
	uint8_t buf[BLK];
	double t = now_s();

	for (uint64_t i = 0; i < n; i++) {
		CHECK("bs_disk_read", bs_disk_read(d, buf, BLK, blocks[i] * BLK));
		sink += buf[i % BLK];
	}
	return (double)n / (now_s() - t);
}

/* One repetition on 'disk': fresh store handle, cold pass, warm pass. */
static void read_rep(const struct cfg *c, const char *path, const char *disk,
		     const uint64_t *blocks, double *cold, double *warm)
{
	bs_disk *d;

	if (c->evict)
		nftw(path, evict_one, 16, FTW_PHYS);
	bs_store *s = open_store(path);
	CHECK("bs_disk_open", bs_disk_open(s, disk, &d));
	*cold = read_pass(d, blocks, c->reads);
	*warm = read_pass(d, blocks, c->reads);
	CHECK("bs_disk_close", bs_disk_close(d));
	CHECK("bs_store_close", bs_store_close(s));
}

static void usage(void)
{
	fputs("usage: bench_disks [-d DIR] [-r REPS] [-n READS] [-D DEPTH] "
	      "[-m MiB] [-C] [-k]\n"
	      "  -d DIR    work under DIR (default $TMPDIR or /tmp)\n"
	      "  -r REPS   repetitions, medians reported (default 5)\n"
	      "  -n READS  random 4 KiB reads per pass (default 20000)\n"
	      "  -D DEPTH  clone chain depth (default 1000)\n"
	      "  -m MiB    data written to each disk (default 256)\n"
	      "  -C        also evict the store's files from the page cache "
	      "before cold passes\n"
	      "  -k        keep the work directory\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct cfg c = {NULL, 5, 20000, 1000, 256, false, false};
	char work[4096], p1[4200], p2[4200], la0[128], la1[128];
	int opt;

	while ((opt = getopt(argc, argv, "d:r:n:D:m:Ckh")) != -1) {
		switch (opt) {
		case 'd': c.dir = optarg; break;
		case 'r': c.reps = atoi(optarg); break;
		case 'n': c.reads = strtoull(optarg, NULL, 0); break;
		case 'D': c.depth = atoi(optarg); break;
		case 'm': c.mib = strtoull(optarg, NULL, 0); break;
		case 'C': c.evict = true; break;
		case 'k': c.keep = true; break;
		default: usage();
		}
	}
	if (optind != argc || c.reps < 1 || c.reps > MAX_REPS || !c.reads ||
	    c.depth < 1 || c.mib < 1 || c.mib > 1024)
		usage();
	uint64_t nblk = c.mib * (1u << 20) / BLK;
	if ((uint64_t)c.depth >= nblk / 61)
		die("-D too deep for -m (needs depth < MiB*256/61)", EINVAL);
	if (!c.dir)
		c.dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(work, sizeof(work), "%s/bench_disks.XXXXXX", c.dir);
	if (!mkdtemp(work))
		die("mkdtemp", errno);
	snprintf(p1, sizeof(p1), "%s/s1g", work);
	snprintf(p2, sizeof(p2), "%s/s2t", work);
	loadavg(la0, sizeof(la0));

	printf("bench_disks: reps %d, %llu MiB written per disk, %llu reads per "
	       "pass, chain depth %d, page cache %s\n",
	       c.reps, (unsigned long long)c.mib, (unsigned long long)c.reads,
	       c.depth, c.evict ? "evicted before cold passes" : "kept");
	printf("work dir %s; load average at start: %s\n\n", work, la0);
	fflush(stdout);

	/* a) */
	static struct snap_result r1 = {.label = "1 GiB"}, r2 = {.label = "2 TiB"};
	bench_snap(&c, p1, GIB, &r1);
	bench_snap(&c, p2, 2 * TIB, &r2);
	struct snap_result *rs[2] = {&r1, &r2};

	printf("a) snapshot / clone wall time per call, ms (median of %d; "
	       "min..max)\n", c.reps);
	printf("   %-34s %-22s %-22s\n", "", "1 GiB disk", "2 TiB disk");
	const struct {
		const char *what;
		size_t off;
	} rows[] = {
		{"empty group commit (fsync floor)", offsetof(struct snap_result, commit_ms)},
		{"bs_snapshot (clean disk)", offsetof(struct snap_result, snap_ms)},
		{"bs_clone (from the snapshot)", offsetof(struct snap_result, clone_ms)},
		{"bs_snapshot after 1 dirty 4 KiB", offsetof(struct snap_result, dirty_snap_ms)},
	};
	double med[4][2];
	for (size_t k = 0; k < 4; k++) {
		printf("   %-34s", rows[k].what);
		for (int j = 0; j < 2; j++) {
			const double *v = (const double *)((const char *)rs[j] + rows[k].off);
			char cell[64];
			med[k][j] = median(v, c.reps);
			snprintf(cell, sizeof(cell), "%.2f (%.2f..%.2f)", med[k][j],
				 minv(v, c.reps), maxv(v, c.reps));
			printf(" %-22s", cell);
		}
		printf("\n");
	}
	printf("   %-34s %-22.0f %-22.0f\n", "(setup: write + flush, MiB/s)",
	       r1.write_mbps, r2.write_mbps);
	bool clone_goal = med[2][1] < 10.0;
	printf("   goal clone < 10 ms at 2 TiB: %.2f ms -> %s; "
	       "2 TiB / 1 GiB clone time: %.2fx\n\n",
	       med[2][1], clone_goal ? "MET" : "NOT MET", med[2][1] / med[2][0]);
	fflush(stdout);

	/* b) */
	double per_level = build_chains(&c, p1, nblk);
	uint64_t *blocks = malloc(c.reads * sizeof(*blocks));
	if (!blocks)
		die("malloc", ENOMEM);
	uint64_t seed = 42;
	for (uint64_t i = 0; i < c.reads; i++)
		blocks[i] = xorshift(&seed) % nblk;
	char deep[32];
	snprintf(deep, sizeof(deep), "y%d", c.depth);
	double cold1[MAX_REPS], warm1[MAX_REPS], coldD[MAX_REPS], warmD[MAX_REPS];
	for (int i = 0; i < c.reps; i++) {
		/* Alternate the order: drift on a noisy machine hits both. */
		if (i % 2 == 0) {
			read_rep(&c, p1, "x1", blocks, &cold1[i], &warm1[i]);
			read_rep(&c, p1, deep, blocks, &coldD[i], &warmD[i]);
		} else {
			read_rep(&c, p1, deep, blocks, &coldD[i], &warmD[i]);
			read_rep(&c, p1, "x1", blocks, &cold1[i], &warm1[i]);
		}
	}
	double c1 = median(cold1, c.reps), cD = median(coldD, c.reps);
	double w1 = median(warm1, c.reps), wD = median(warmD, c.reps);
	printf("b) random 4 KiB reads, reads/s (median of %d; min..max), %llu "
	       "reads in %llu MiB, seed 42\n",
	       c.reps, (unsigned long long)c.reads, (unsigned long long)c.mib);
	printf("   (chain built at %.2f ms per level: clone + 4 KiB write + "
	       "close, each durable)\n", per_level);
	char hd[32];
	snprintf(hd, sizeof(hd), "depth %d", c.depth);
	printf("   %-10s %-26s %-26s %s\n", "pass", "depth 1", hd, "D/1");
	struct {
		const char *name;
		double *a, *b, ma, mb;
	} pr[] = {{"cold", cold1, coldD, c1, cD}, {"warm", warm1, warmD, w1, wD}};
	for (int k = 0; k < 2; k++) {
		char x[64], y[64];
		snprintf(x, sizeof(x), "%.0f (%.0f..%.0f)", pr[k].ma,
			 minv(pr[k].a, c.reps), maxv(pr[k].a, c.reps));
		snprintf(y, sizeof(y), "%.0f (%.0f..%.0f)", pr[k].mb,
			 minv(pr[k].b, c.reps), maxv(pr[k].b, c.reps));
		printf("   %-10s %-26s %-26s %.3f\n", pr[k].name, x, y,
		       pr[k].mb / pr[k].ma);
	}
	bool depth_goal = cD / c1 >= 0.9 && wD / w1 >= 0.9;
	printf("   goal depth %d within 10%% of depth 1: cold %.3f, warm %.3f "
	       "-> %s\n\n",
	       c.depth, cD / c1, wD / w1, depth_goal ? "MET" : "NOT MET");

	loadavg(la1, sizeof(la1));
	printf("load average at end: %s\n", la1);
	printf("{\"bench\":\"disks\",\"reps\":%d,\"mib\":%llu,\"reads\":%llu,"
	       "\"depth\":%d,\"evict\":%s,"
	       "\"commit_ms_1g\":%.3f,\"commit_ms_2t\":%.3f,"
	       "\"snapshot_ms_1g\":%.3f,\"snapshot_ms_2t\":%.3f,"
	       "\"clone_ms_1g\":%.3f,\"clone_ms_2t\":%.3f,"
	       "\"dirty_snapshot_ms_1g\":%.3f,\"dirty_snapshot_ms_2t\":%.3f,"
	       "\"clone_goal_met\":%s,\"chain_ms_per_level\":%.3f,"
	       "\"reads_s_depth1_cold\":%.0f,\"reads_s_deep_cold\":%.0f,"
	       "\"reads_s_depth1_warm\":%.0f,\"reads_s_deep_warm\":%.0f,"
	       "\"ratio_cold\":%.3f,\"ratio_warm\":%.3f,\"depth_goal_met\":%s,"
	       "\"loadavg_start\":\"%s\",\"loadavg_end\":\"%s\"}\n",
	       c.reps, (unsigned long long)c.mib, (unsigned long long)c.reads,
	       c.depth, c.evict ? "true" : "false", med[0][0], med[0][1],
	       med[1][0], med[1][1], med[2][0], med[2][1], med[3][0], med[3][1],
	       clone_goal ? "true" : "false", per_level, c1, cD, w1, wD, cD / c1,
	       wD / w1, depth_goal ? "true" : "false", la0, la1);
	free(blocks);
	if (!c.keep)
		nftw(work, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		fprintf(stderr, "bench_disks: kept %s\n", work);
	return sink == 0xdeadbeefull ? 3 : 0; /* keep the reads */
}
