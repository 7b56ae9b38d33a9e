/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * casdemo.c - the chunk store at work on real files.
 *
 * Creates a fresh store, cuts every regular file of the given trees into
 * 4 KiB blocks (the last one zero-padded) and puts each block, twice: the
 * second pass must store nothing new, which is dedup at work.  Then it
 * reports what the store holds, reads a sample of blocks back (verified
 * against their names) and compares them with the files, and scrubs the
 * whole store.  The exit status is 0 only if every check held.
 *
 * It uses nothing but cas/cas.h: what it shows is that layer's contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cas/cas.h"

#define INPUT_CAP (300ull << 20) /* logical bytes read, at most */
#define SAMPLES 2000u            /* blocks read back and compared */
#define MIB(x) ((double)(x) / (1 << 20))

typedef unsigned long long ull;

struct file {
	char *path;
	uint64_t first; /* its first block's index in demo.names */
	uint64_t nblocks;
};

struct demo {
	cas *c;
	struct file *files;
	size_t nfiles, cap;
	uint64_t nblocks, bytes, holes;
	cas_name *names; /* each block's name, from the first pass */
	/* results */
	uint64_t fresh[2]; /* new chunks, per pass */
	double secs[2];    /* time in cas_put and cas_sync, per pass */
	struct cas_stat st[2];
	uint64_t checked, mismatches, scrubbed, damaged;
	int failed; /* checks that did not hold */
};

/* nftw() takes no user argument, so the walk fills this one. */
static struct demo *walking;

static int walk_one(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	struct demo *d = walking;
	uint64_t nb =
		((uint64_t)st->st_size + CAS_CHUNK_SIZE - 1) / CAS_CHUNK_SIZE;

	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode) || access(path, R_OK))
		return 0;
	if ((d->nblocks + nb) * CAS_CHUNK_SIZE > INPUT_CAP)
		return 0; /* too big for what is left; a smaller one may fit */
	if (d->nfiles == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 1024;
		d->files = realloc(d->files, d->cap * sizeof(*d->files));
		if (!d->files)
			return -1;
	}
	d->files[d->nfiles++] = (struct file){strdup(path), d->nblocks, nb};
	d->nblocks += nb;
	d->bytes += (uint64_t)st->st_size;
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	return remove(path);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "casdemo: %s: %s\n", what, cas_strerror(err));
	exit(1);
}

/* Block 'b' of the file, zero-padded past its end (a regular file's read
 * is short only at its end). */
static void read_block(const struct file *f, int fd, uint64_t b, char *buf)
{
	ssize_t n = pread(fd, buf, CAS_CHUNK_SIZE, (off_t)(b * CAS_CHUNK_SIZE));

	if (n < 0)
		die(f->path, -errno);
	memset(buf + n, 0, CAS_CHUNK_SIZE - (size_t)n);
}

static int open_file(const struct file *f)
{
	int fd = open(f->path, O_RDONLY);

	if (fd < 0)
		die(f->path, -errno);
	return fd;
}

/* Put every block of every file, then sync. */
static void put_pass(struct demo *d, int pass)
{
	char buf[CAS_CHUNK_SIZE];
	double t;
	cas_name n;
	int r;

	for (size_t i = 0; i < d->nfiles; i++) {
		struct file *f = &d->files[i];
		int fd = open_file(f);

		for (uint64_t b = 0; b < f->nblocks; b++) {
			read_block(f, fd, b, buf);
			t = now();
			r = cas_put(d->c, buf, 0, &n);
			d->secs[pass] += now() - t;
			if (r < 0)
				die("cas_put", r);
			d->fresh[pass] += (uint64_t)r;
			d->names[f->first + b] = n;
		}
		close(fd);
	}
	t = now();
	if ((r = cas_sync(d->c)) < 0)
		die("cas_sync", r);
	d->secs[pass] += now() - t;
	if ((r = cas_stat(d->c, &d->st[pass])) < 0)
		die("cas_stat", r);
}

/* Read about SAMPLES blocks back, spread evenly, and compare. */
static void verify_sample(struct demo *d)
{
	uint64_t step = d->nblocks / SAMPLES + 1;
	char want[CAS_CHUNK_SIZE], got[CAS_CHUNK_SIZE];

	for (size_t i = 0; i < d->nfiles; i++) {
		struct file *f = &d->files[i];
		uint64_t b = (f->first + step - 1) / step * step;
		int fd, r;

		if (b >= f->first + f->nblocks)
			continue;
		fd = open_file(f);
		for (; b < f->first + f->nblocks; b += step, d->checked++) {
			read_block(f, fd, b - f->first, want);
			r = cas_get(d->c, &d->names[b], got, CAS_GET_VERIFY);
			if (r < 0 || memcmp(want, got, sizeof(got))) {
				fprintf(stderr, "casdemo: %s, block %llu: %s\n",
					f->path, (ull)(b - f->first),
					r < 0 ? cas_strerror(r)
					      : "content differs");
				d->mismatches++;
			}
		}
		close(fd);
	}
}

static void report_bad(void *arg, const cas_name *name, int err)
{
	char hex[2 * CAS_NAME_SIZE + 1];

	(void)arg;
	cas_name_format(name, hex);
	fprintf(stderr, "casdemo: damaged chunk %s: %s\n", hex,
		cas_strerror(err));
}

static void check(struct demo *d, int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "casdemo: FAILED: %s\n", what);
		d->failed++;
	}
}

static void report(struct demo *d)
{
	const struct cas_stat *s = &d->st[1];
	double mib = MIB(d->nblocks * CAS_CHUNK_SIZE);

	for (uint64_t b = 0; b < d->nblocks; b++)
		d->holes += cas_name_is_hole(&d->names[b]);
	printf("input      %zu files, %llu blocks of 4 KiB, %.1f MiB; %llu "
	       "all-zero (holes: never stored)\n",
	       d->nfiles, (ull)d->nblocks, MIB(d->bytes), (ull)d->holes);
	printf("pass 1     %llu new chunks, %.1f MiB/s (put + sync)\n",
	       (ull)d->fresh[0], mib / d->secs[0]);
	printf("pass 2     %llu new chunks, %lld new bytes stored, %.1f MiB/s\n",
	       (ull)d->fresh[1],
	       (long long)(s->stored_bytes - d->st[0].stored_bytes),
	       mib / d->secs[1]);
	printf("chunks     %llu unique, %llu references, %llu compressed\n",
	       (ull)s->chunks, (ull)s->refs, (ull)s->compressed_chunks);
	printf("bytes      %.1f MiB raw, %.1f MiB stored, segments %.1f MiB "
	       "in %llu file(s)\n",
	       MIB(s->raw_bytes), MIB(s->stored_bytes), MIB(s->segment_bytes),
	       (ull)s->segment_files);
	printf("dedup      %.2fx (blocks / unique chunks)\n",
	       (double)d->nblocks / s->chunks);
	printf("compress   %.2fx (raw / stored bytes)\n",
	       (double)s->raw_bytes / s->stored_bytes);
	printf("index      %.1f MiB, %.0f bytes per unique chunk\n",
	       MIB(s->index_bytes), (double)s->index_bytes / s->chunks);
	printf("verify     %llu blocks read back with CAS_GET_VERIFY, "
	       "%llu mismatches\n",
	       (ull)d->checked, (ull)d->mismatches);
	printf("scrub      %llu chunks checked, %llu damaged\n",
	       (ull)d->scrubbed, (ull)d->damaged);

	check(d, d->fresh[0] == s->chunks, "pass 1's new chunks != unique");
	check(d, d->fresh[1] == 0, "pass 2 stored new chunks");
	check(d, s->stored_bytes == d->st[0].stored_bytes,
	      "pass 2 stored new bytes");
	check(d, s->refs == 2 * (d->nblocks - d->holes),
	      "references != 2 x non-hole blocks");
	check(d, d->mismatches == 0, "blocks read back differ from the files");
	check(d, d->scrubbed == s->chunks, "scrub did not check every chunk");
	check(d, d->damaged == 0, "scrub found damage");
}

int main(int argc, char **argv)
{
	static char *default_trees[] = {"/usr/share/doc",
					"/usr/lib/x86_64-linux-gnu", NULL};
	struct demo d = {0};
	int keep = 0, opt, r;
	const char *dir;
	char **trees;

	while ((opt = getopt(argc, argv, "k")) != -1) {
		if (opt != 'k')
			goto usage;
		keep = 1;
	}
	if (optind >= argc)
		goto usage;
	dir = argv[optind];
	trees = optind + 1 < argc ? argv + optind + 1 : default_trees;

	walking = &d;
	for (char **t = trees; *t; t++) {
		if (trees == default_trees && access(*t, F_OK))
			continue; /* a default tree this system lacks */
		if (nftw(*t, walk_one, 16, FTW_PHYS))
			die(*t, -errno);
	}
	if (!d.nblocks)
		die("no data in the given trees", -ENODATA);
	if (!(d.names = calloc(d.nblocks, sizeof(*d.names))))
		die("calloc", -ENOMEM);

	if ((r = cas_create(dir, NULL)) < 0 || (r = cas_open(dir, NULL, &d.c)))
		die(dir, r);
	put_pass(&d, 0);
	put_pass(&d, 1);
	verify_sample(&d);
	r = cas_scrub(d.c, report_bad, NULL, &d.scrubbed, &d.damaged);
	if (r < 0)
		die("cas_scrub", r);
	printf("store      %s\n", dir);
	report(&d);
	if ((r = cas_close(d.c)) < 0)
		die("cas_close", r);

	if (d.failed)
		fprintf(stderr, "casdemo: %d checks failed; store kept in %s\n",
			d.failed, dir);
	else if (!keep && nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS))
		die(dir, -errno);
	else
		printf("result     all checks passed%s\n",
		       keep ? "; store kept" : "");
	for (size_t i = 0; i < d.nfiles; i++)
		free(d.files[i].path);
	free(d.files);
	free(d.names);
	return d.failed ? 1 : 0;

usage:
	fprintf(stderr,
		"usage: casdemo [-k] STOREDIR [TREE...]\n"
		"  default TREEs: %s %s; at most 300 MiB are read\n"
		"  -k  keep the new store (removed by default)\n",
		default_trees[0], default_trees[1]);
	return 2;
}
