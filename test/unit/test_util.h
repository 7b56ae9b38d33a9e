/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_util.h - small helpers shared by the unit tests: scratch
 * directories (mkdtemp under $TMPDIR, removed recursively), a seeded PRNG
 * so that every test's data is reproducible, and file helpers for tests
 * that damage on-disk bytes on purpose.
 *
 * Header-only (static functions) so each test program stays one file.
 */
#ifndef CAVM_TEST_UTIL_H
#define CAVM_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scratch directories ---------------------------------------------- */

/* A fresh empty directory "$TMPDIR/<tag>.XXXXXX" (or under /tmp).  The
 * returned string is malloc'ed; NULL on failure. */
static inline char *tu_mkdtemp(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&p, "%s/%s.XXXXXX", base, tag) < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

static int tu_rm_one(const char *path, const struct stat *sb, int flag,
		     struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -errno : 0;
}

/* rm -rf path; 0 or -errno.  A missing path is not an error. */
static inline int tu_rmrf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	return nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- reproducible data ------------------------------------------------- */

/* splitmix64: tiny, seeded, good enough to make data that does not
 * compress. */
static inline uint64_t tu_rand64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill len bytes (a multiple of 8) with the PRNG stream of 'seed'. */
static inline void tu_fill_random(void *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed * 0x2545f4914f6cdd1dull + 1;
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = tu_rand64(&s);
		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* Fill len bytes with text-like, very compressible content that still
 * differs for each seed. */
static inline void tu_fill_text(void *buf, size_t len, uint64_t seed)
{
	char *p = buf;
	size_t off = 0;

	while (off < len) {
		char line[96];
		int n = snprintf(
			line, sizeof(line),
			"line %llu of a compressible block, seed %llu\n",
			(unsigned long long)(off / 48),
			(unsigned long long)seed);
		size_t k = (size_t)n < len - off ? (size_t)n : len - off;
		memcpy(p + off, line, k);
		off += k;
	}
}

/* ---- files ------------------------------------------------------------- */

/* XOR one byte of a file at 'off' with 'mask'; 0 or -errno. */
static inline int tu_flip_byte(const char *path, off_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, &b, 1, off) != 1) {
		ret = -EIO;
		goto out;
	}
	b ^= mask;
	if (pwrite(fd, &b, 1, off) != 1)
		ret = -EIO;
	else if (fsync(fd) < 0)
		ret = -errno;
out:
	close(fd);
	return ret;
}

/* Read len bytes at off; 0 or -errno / -EIO on a short read. */
static inline int tu_read_at(const char *path, off_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static inline int tu_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

#endif
