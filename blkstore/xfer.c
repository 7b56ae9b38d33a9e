/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xfer.c - whole-disk transfers and comparisons: export a disk, diff two
 * roots, a disk's usage.
 *
 * The one idea: holes cost nothing.  Export seeks over zero blocks and
 * sizes the file with ftruncate; diff and usage walk only the subtrees
 * whose names differ.  (Import lives in import.c.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blkstore/bs_int.h"

#define XFER_BUF (1u << 20)

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off,
		     bool positioned)
{
	while (n) {
		ssize_t w = positioned ? pwrite(fd, p, n, (off_t)off)
				       : write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int bs_export(bs_store *s, const char *spec, int fd, bool sparse,
	      bs_progress_fn fn, void *arg)
{
	struct stat st;
	bs_disk *d;
	if (fstat(fd, &st))
		return -errno;
	bool positioned = S_ISREG(st.st_mode);
	if (!positioned)
		sparse = false;
	int rc = bs_disk_open(s, spec, &d);
	if (rc)
		return rc;
	uint8_t *buf = malloc(XFER_BUF);
	uint64_t size = bs_disk_size(d);
	if (!buf)
		rc = -ENOMEM;
	if (!rc && positioned && ftruncate(fd, 0))
		rc = -errno;
	for (uint64_t pos = 0; pos < size && !rc;) {
		size_t n = size - pos < XFER_BUF ? (size_t)(size - pos) : XFER_BUF;
		rc = bs_disk_read(d, buf, n, pos);
		for (size_t o = 0; o < n && !rc; o += BS_BLOCK_SIZE) {
			size_t k = n - o < BS_BLOCK_SIZE ? n - o : BS_BLOCK_SIZE;
			if (sparse && all_zero(buf + o, k))
				continue;
			rc = write_all(fd, buf + o, k, pos + o, positioned);
		}
		pos += n;
		if (fn && !rc)
			fn(arg, pos, size);
	}
	if (!rc && positioned && ftruncate(fd, (off_t)size))
		rc = -errno;
	free(buf);
	int rc2 = bs_disk_close(d);
	return rc ? rc : rc2;
}

struct diff_ctx {
	bs_diff_fn fn;
	void *arg;
	uint64_t limit; /* bytes: the larger of the two sizes */
};

static int diff_cb(void *arg, uint64_t first, uint64_t count)
{
	struct diff_ctx *c = arg;
	uint64_t off = first * BS_BLOCK_SIZE, len = count * BS_BLOCK_SIZE;
	if (off >= c->limit)
		return 0;
	if (len > c->limit - off)
		len = c->limit - off;
	return c->fn(c->arg, off, len);
}

int bs_diff(bs_store *s, const char *a, const char *b, bs_diff_fn fn, void *arg)
{
	cas_name ra, rb;
	uint64_t sa, sb;
	int rc = bs_spec_root(s, a, &ra, &sa, NULL);
	if (!rc)
		rc = bs_spec_root(s, b, &rb, &sb, NULL);
	if (rc)
		return rc;
	struct diff_ctx c = {fn, arg, sa > sb ? sa : sb};
	return px_diff(s->c, s->pc, &ra, bs_nblocks(sa), &rb, bs_nblocks(sb),
		       diff_cb, &c, NULL);
}

static int usage_cb(void *arg, const cas_name *n, unsigned level, bool first)
{
	struct bs_usage *u = arg;
	(void)n;
	if (!first)
		return 0;
	if (level == 0)
		u->unique_data++;
	else
		u->nodes++;
	return 0;
}

struct alloc_ctx {
	uint64_t blocks;
};

static int alloc_cb(void *arg, uint64_t first, uint64_t count)
{
	(void)first;
	((struct alloc_ctx *)arg)->blocks += count;
	return 0;
}

int bs_usage(bs_store *s, const char *spec, struct bs_usage *u)
{
	struct bs_nameset ns;
	struct alloc_ctx ac = {0};
	cas_name root;
	uint64_t size;
	memset(u, 0, sizeof(*u));
	int rc = bs_spec_root(s, spec, &root, &size, NULL);
	if (rc)
		return rc;
	rc = px_diff(s->c, s->pc, &root, bs_nblocks(size), &CAS_HOLE,
		     bs_nblocks(size), alloc_cb, &ac, NULL);
	if (!rc)
		rc = bs_nameset_init(&ns);
	if (rc)
		return rc;
	rc = bs_walk(s, &ns, &root, bs_nblocks(size), usage_cb, NULL, u);
	bs_nameset_free(&ns);
	u->size = size;
	u->allocated = ac.blocks;
	return rc;
}
