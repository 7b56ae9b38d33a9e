/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_cas.c - throughput of the chunk store against its ceilings.
 *
 * Not a test: it prints a table and one JSON line, and fails only when the
 * store returns an error.  The idea is to compare each store operation with
 * the cost it cannot avoid on this machine:
 *   - a duplicate put must hash the block, so its ceiling is SHA-256 alone;
 *   - a unique put must hash and compress, so its ceiling is SHA-256 + zstd
 *     (both measured here on the same blocks, at the same level).
 * The blocks are 4 KiB pieces of real files of this machine (shared
 * libraries and /usr/share, at most 1 MiB from one file, all-zero blocks
 * skipped), which gives a realistic compressibility mix.
 *
 * Every figure is the median of -r repetitions; every store phase uses a
 * fresh store under -d and includes its final cas_sync().
 *
 *   bench_cas [-n MiB] [-r reps] [-l level] [-d dir] [-i chunks]
 *   bench_cas -L "-7,-3,1,3"   zstd alone at each level, to choose one
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "cas/cas.h"

#define BS CAS_CHUNK_SIZE
#define MAX_REPS 101
#define PER_FILE_MAX (1u << 20)

struct cfg {
	uint64_t mib;
	int reps;
	int level;
	const char *dir;
	uint64_t index_chunks;
	const char *levels; /* -L list, or NULL */
};

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_cas: %s: %s\n", what,
		err < 0 ? cas_strerror(err) : strerror(err));
	exit(1);
}

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

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double mbps(uint64_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / secs / 1e6 : 0;
}

/* ---- the block set ----------------------------------------------------- */

static struct {
	uint8_t *buf;
	size_t n, max; /* blocks held / wanted (this root) */
} blk;

static int is_zero(const uint8_t *p)
{
	for (size_t i = 0; i < BS; i++)
		if (p[i])
			return 0;
	return 1;
}

static int load_file(const char *path, const struct stat *sb, int type,
		     struct FTW *ftw)
{
	(void)ftw;
	if (blk.n >= blk.max)
		return 1; /* stop the walk */
	if (type != FTW_F || !S_ISREG(sb->st_mode) || sb->st_size < 512)
		return 0;

	int fd = open(path, O_RDONLY | O_NOATIME);
	if (fd < 0)
		fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	for (size_t got = 0; got < PER_FILE_MAX && blk.n < blk.max;) {
		uint8_t *p = blk.buf + blk.n * BS;
		ssize_t r = read(fd, p, BS);

		if (r <= 0)
			break;
		got += (size_t)r;
		if ((size_t)r < BS) /* a file's tail, zero-padded as on disk */
			memset(p + r, 0, BS - (size_t)r);
		if (!is_zero(p))
			blk.n++;
		if ((size_t)r < BS)
			break;
	}
	close(fd);
	return 0;
}

/* Half of the set from each root (whatever is missing from one comes from
 * the other). */
static size_t load_blocks(uint64_t bytes)
{
	const char *roots[] = {"/usr/lib/x86_64-linux-gnu", "/usr/share"};
	size_t want = bytes / BS;

	blk.buf = aligned_alloc(4096, want * BS);
	if (!blk.buf)
		die("allocating the block set", ENOMEM);
	blk.n = 0;
	blk.max = want / 2;
	nftw(roots[0], load_file, 32, FTW_PHYS);
	blk.max = want;
	nftw(roots[1], load_file, 32, FTW_PHYS);
	if (blk.n < want)
		nftw(roots[0], load_file, 32, FTW_PHYS); /* may repeat blocks */
	return blk.n;
}

static const uint8_t *block(size_t i)
{
	return blk.buf + i * BS;
}

/* ---- ceilings ---------------------------------------------------------- */

static double run_sha(size_t n)
{
	cas_name name;
	double t = now_s();

	for (size_t i = 0; i < n; i++)
		cas_hash(block(i), &name);
	return now_s() - t;
}

/* zstd alone; *stored gets the bytes a store would keep per block (the
 * compressed size, or the raw size when compressing does not save). */
static double run_zstd(size_t n, int level, int with_sha, uint64_t *stored)
{
	ZSTD_CCtx *cx = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(BS);
	uint8_t *out = malloc(cap);
	uint64_t total = 0;
	cas_name name;
	double t;

	if (!cx || !out)
		die("zstd context", ENOMEM);
	t = now_s();
	for (size_t i = 0; i < n; i++) {
		if (with_sha)
			cas_hash(block(i), &name);
		size_t c = ZSTD_compressCCtx(cx, out, cap, block(i), BS, level);
		if (ZSTD_isError(c))
			die(ZSTD_getErrorName(c), EINVAL);
		total += c < BS ? c : BS;
	}
	t = now_s() - t;
	ZSTD_freeCCtx(cx);
	free(out);
	if (stored)
		*stored = total;
	return t;
}

/* ---- store phases ------------------------------------------------------ */

static char *fresh_dir(const char *base)
{
	char *p;

	if (asprintf(&p, "%s/bench_cas.XXXXXX", base) < 0 || !mkdtemp(p))
		die("mkdtemp", errno);
	return p;
}

static int rm_one(const char *p, const struct stat *sb, int t, struct FTW *f)
{
	(void)sb;
	(void)t;
	(void)f;
	return remove(p);
}

static void rmrf(const char *p)
{
	nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static cas *open_store(const char *dir, int level, char **path)
{
	struct cas_options o;
	cas *c;
	int r;

	cas_options_default(&o);
	o.compress_level = level;
	if (asprintf(path, "%s/store", dir) < 0)
		die("asprintf", ENOMEM);
	if ((r = cas_create(*path, &o)))
		die("cas_create", r);
	if ((r = cas_open(*path, &o, &c)))
		die("cas_open", r);
	return c;
}

static double put_all(cas *c, size_t n, cas_name *names)
{
	double t = now_s();
	int r;

	for (size_t i = 0; i < n; i++)
		if ((r = cas_put(c, block(i), 0, &names[i])) < 0)
			die("cas_put", r);
	if ((r = cas_sync(c)))
		die("cas_sync", r);
	return now_s() - t;
}

static double get_all(cas *c, size_t n, const cas_name *names,
		      const size_t *order, unsigned flags)
{
	uint8_t buf[BS];
	double t = now_s();
	int r;

	for (size_t i = 0; i < n; i++)
		if ((r = cas_get(c, &names[order[i]], buf, flags)))
			die("cas_get", r);
	return now_s() - t;
}

struct store_res {
	double put_unique, put_dup, put_dup_cold, get, get_verify, put_raw,
		get_cold;
	uint64_t chunks, stored, index_bytes;
};

static void store_rep(const struct cfg *g, size_t n, cas_name *names,
		      const size_t *order, struct store_res *res)
{
	char *dir = fresh_dir(g->dir), *path;
	cas *c = open_store(dir, g->level, &path);
	struct cas_stat st;
	int r;

	res->put_unique = put_all(c, n, names);
	res->put_dup = put_all(c, n, names);
	res->get = get_all(c, n, names, order, 0);
	res->get_verify = get_all(c, n, names, order, CAS_GET_VERIFY);
	/* Again with a cold name cache: after a reopen every name is found
	 * through the LMDB index. */
	if ((r = cas_close(c)) || (r = cas_open(path, NULL, &c)))
		die("reopen", r);
	res->get_cold = get_all(c, n, names, order, 0);
	if ((r = cas_close(c)) || (r = cas_open(path, NULL, &c)))
		die("reopen", r);
	res->put_dup_cold = put_all(c, n, names);
	if ((r = cas_stat(c, &st)))
		die("cas_stat", r);
	res->chunks = st.chunks;
	res->stored = st.stored_bytes;
	res->index_bytes = st.index_bytes;
	if ((r = cas_close(c)))
		die("cas_close", r);
	rmrf(dir);
	free(path);
	free(dir);

	/* Compression off, in its own fresh store. */
	dir = fresh_dir(g->dir);
	c = open_store(dir, 0, &path);
	res->put_raw = put_all(c, n, names);
	if ((r = cas_close(c)))
		die("cas_close", r);
	rmrf(dir);
	free(path);
	free(dir);
}

/* Index bytes per chunk at scale: 'count' synthetic unique blocks (a
 * counter in an otherwise constant block: cheap, unique, compressible). */
static double index_scale(const struct cfg *g, uint64_t count,
			  struct cas_stat *st)
{
	char *dir = fresh_dir(g->dir), *path;
	cas *c = open_store(dir, g->level > 0 ? g->level : 1, &path);
	uint8_t b[BS];
	cas_name name;
	double t = now_s();
	int r;

	memset(b, 0x5a, sizeof(b));
	for (uint64_t i = 0; i < count; i++) {
		memcpy(b, &i, sizeof(i));
		memcpy(b + BS - sizeof(i), &i, sizeof(i));
		if ((r = cas_put(c, b, 0, &name)) < 0)
			die("cas_put (index scale)", r);
		if (i % 65536 == 65535 && (r = cas_sync(c)))
			die("cas_sync (index scale)", r);
	}
	if ((r = cas_sync(c)))
		die("cas_sync", r);
	t = now_s() - t;
	if ((r = cas_stat(c, st)))
		die("cas_stat", r);
	cas_close(c);
	rmrf(dir);
	free(path);
	free(dir);
	return t;
}

/* ---- modes ------------------------------------------------------------- */

static void level_sweep(const struct cfg *g, size_t n)
{
	const uint64_t bytes = (uint64_t)n * BS;
	char *list = strdup(g->levels), *save = NULL;
	int first = 1;

	printf("%-8s %12s %10s\n", "level", "zstd MB/s", "ratio");
	char json[4096];
	size_t jl = (size_t)snprintf(json, sizeof(json),
				     "{\"bench\":\"cas_levels\",\"blocks\":%zu,"
				     "\"reps\":%d,\"levels\":[",
				     n, g->reps);
	for (char *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int level = atoi(tok);
		double t[MAX_REPS];
		uint64_t stored = 0;

		for (int k = 0; k < g->reps; k++)
			t[k] = run_zstd(n, level, 0, &stored);
		double m = median(t, g->reps);
		double ratio = (double)bytes / (double)stored;

		printf("%-8d %12.1f %10.3f\n", level, mbps(bytes, m), ratio);
		jl += (size_t)snprintf(json + jl, sizeof(json) - jl,
				       "%s{\"level\":%d,\"mbps\":%.1f,"
				       "\"ratio\":%.4f}",
				       first ? "" : ",", level, mbps(bytes, m),
				       ratio);
		first = 0;
	}
	snprintf(json + jl, sizeof(json) - jl, "]}");
	printf("%s\n", json);
	free(list);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_cas [-n MiB] [-r reps] [-l level] [-d dir] "
		"[-i index_chunks] [-L levels]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct cas_options def;
	struct cfg g;
	int opt;

	cas_options_default(&def);
	g = (struct cfg){.mib = 64,
			 .reps = 5,
			 .level = def.compress_level,
			 .dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
			 .index_chunks = 1000000,
			 .levels = NULL};
	while ((opt = getopt(argc, argv, "n:r:l:d:i:L:h")) != -1) {
		switch (opt) {
		case 'n':
			g.mib = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			g.reps = atoi(optarg);
			break;
		case 'l':
			g.level = atoi(optarg);
			break;
		case 'd':
			g.dir = optarg;
			break;
		case 'i':
			g.index_chunks = strtoull(optarg, NULL, 0);
			break;
		case 'L':
			g.levels = optarg;
			break;
		default:
			usage();
		}
	}
	if (!g.mib || g.reps < 1 || g.reps > MAX_REPS)
		usage();

	size_t n = load_blocks(g.mib << 20);
	const uint64_t bytes = (uint64_t)n * BS;
	if (n < 16)
		die("too few non-zero blocks found", ENOENT);
	printf("blocks: %zu (%.1f MiB) from /usr/lib/x86_64-linux-gnu and "
	       "/usr/share, %d reps, medians\n",
	       n, (double)bytes / (1 << 20), g.reps);

	if (g.levels) {
		level_sweep(&g, n);
		return 0;
	}

	/* Ceilings. */
	double t_sha[MAX_REPS], t_z[MAX_REPS], t_sz[MAX_REPS];
	uint64_t zstored = 0;
	for (int k = 0; k < g.reps; k++) {
		t_sha[k] = run_sha(n);
		t_z[k] = run_zstd(n, g.level, 0, &zstored);
		t_sz[k] = run_zstd(n, g.level, 1, NULL);
	}

	/* Store phases. */
	cas_name *names = calloc(n, sizeof(*names));
	size_t *order = malloc(n * sizeof(*order));
	if (!names || !order)
		die("allocating", ENOMEM);
	uint64_t s = 88172645463325252ull;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		size_t j = s % (i + 1), tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	double t_pu[MAX_REPS], t_pd[MAX_REPS], t_g[MAX_REPS], t_gv[MAX_REPS],
		t_pr[MAX_REPS], t_pdc[MAX_REPS], t_gc[MAX_REPS];
	struct store_res res = {0};
	for (int k = 0; k < g.reps; k++) {
		store_rep(&g, n, names, order, &res);
		t_pu[k] = res.put_unique;
		t_pd[k] = res.put_dup;
		t_pdc[k] = res.put_dup_cold;
		t_gc[k] = res.get_cold;
		t_g[k] = res.get;
		t_gv[k] = res.get_verify;
		t_pr[k] = res.put_raw;
	}

	const double sha = mbps(bytes, median(t_sha, g.reps));
	const double zs = mbps(bytes, median(t_z, g.reps));
	const double sz = mbps(bytes, median(t_sz, g.reps));
	const double pu = mbps(bytes, median(t_pu, g.reps));
	const double pd = mbps(bytes, median(t_pd, g.reps));
	const double pdc = mbps(bytes, median(t_pdc, g.reps));
	const double gtc = mbps(bytes, median(t_gc, g.reps));
	const double gt = mbps(bytes, median(t_g, g.reps));
	const double gv = mbps(bytes, median(t_gv, g.reps));
	const double pr = mbps(bytes, median(t_pr, g.reps));
	const double zratio = (double)bytes / (double)zstored;
	const double sratio =
		res.stored ? (double)res.chunks * BS / (double)res.stored : 0;
	const double idx_small =
		res.chunks ? (double)res.index_bytes / (double)res.chunks : 0;

	/* Index at scale. */
	struct cas_stat ist = {0};
	double t_idx = 0;
	if (g.index_chunks)
		t_idx = index_scale(&g, g.index_chunks, &ist);
	const double idx_big =
		ist.chunks ? (double)ist.index_bytes / (double)ist.chunks : 0;

	printf("\n%-40s %10s\n", "phase (zstd level)", "MB/s");
	printf("%-34s(%3d) %10.1f\n", "ceiling: SHA-256 alone", g.level, sha);
	printf("%-34s(%3d) %10.1f\n", "ceiling: zstd alone", g.level, zs);
	printf("%-34s(%3d) %10.1f\n", "ceiling: SHA-256 + zstd", g.level, sz);
	printf("%-34s(%3d) %10.1f\n", "put unique + sync", g.level, pu);
	printf("%-34s(%3d) %10.1f\n", "put unique + sync", 0, pr);
	printf("%-34s(%3d) %10.1f\n", "put duplicate + sync", g.level, pd);
	printf("%-34s(%3d) %10.1f\n", "put duplicate, cold cache + sync",
	       g.level, pdc);
	printf("%-34s(%3d) %10.1f\n", "get, random order", g.level, gt);
	printf("%-34s(%3d) %10.1f\n", "get, cold cache, random order",
	       g.level, gtc);
	printf("%-34s(%3d) %10.1f\n", "get + verify, random order", g.level,
	       gv);
	printf("\n%-40s %10.3f\n", "dup put / SHA ceiling", pd / sha);
	printf("%-40s %10.3f\n", "dup put, cold cache / SHA ceiling",
	       pdc / sha);
	printf("%-40s %10.3f\n", "unique put / (SHA+zstd) ceiling", pu / sz);
	printf("%-40s %10.3f\n", "compression ratio, zstd alone", zratio);
	printf("%-40s %10.3f\n", "compression ratio, store (raw/stored)",
	       sratio);
	printf("%-40s %10zu\n", "unique chunks in the set", (size_t)res.chunks);
	printf("%-40s %10.1f\n", "index bytes / chunk (this set)", idx_small);
	if (g.index_chunks)
		printf("%-31s %8llu %10.1f  (%.1f s, %.0f puts/s)\n",
		       "index bytes / chunk at", (unsigned long long)ist.chunks,
		       idx_big, t_idx, (double)g.index_chunks / t_idx);

	printf("{\"bench\":\"cas\",\"blocks\":%zu,\"bytes\":%llu,\"reps\":%d,"
	       "\"level\":%d,\"sha_mbps\":%.1f,\"zstd_mbps\":%.1f,"
	       "\"sha_zstd_mbps\":%.1f,\"put_unique_mbps\":%.1f,"
	       "\"put_unique_raw_mbps\":%.1f,\"put_dup_mbps\":%.1f,"
	       "\"get_mbps\":%.1f,\"get_verify_mbps\":%.1f,"
	       "\"put_dup_cold_mbps\":%.1f,\"get_cold_mbps\":%.1f,"
	       "\"dup_vs_sha\":%.3f,\"dup_cold_vs_sha\":%.3f,"
	       "\"unique_vs_sha_zstd\":%.3f,"
	       "\"zstd_ratio\":%.4f,\"store_ratio\":%.4f,"
	       "\"unique_chunks\":%llu,\"index_bytes_per_chunk\":%.1f,"
	       "\"index_scale_chunks\":%llu,"
	       "\"index_scale_bytes_per_chunk\":%.1f,"
	       "\"index_scale_secs\":%.2f}\n",
	       n, (unsigned long long)bytes, g.reps, g.level, sha, zs, sz, pu,
	       pr, pd, gt, gv, pdc, gtc, pd / sha, pdc / sha, pu / sz, zratio,
	       sratio,
	       (unsigned long long)res.chunks, idx_small,
	       (unsigned long long)ist.chunks, idx_big, t_idx);

	free(names);
	free(order);
	free(blk.buf);
	return 0;
}
