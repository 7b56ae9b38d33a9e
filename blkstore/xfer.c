/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xfer.c - whole-disk transfers and comparisons: import a raw image,
 * export a disk, diff two roots, a disk's usage.
 *
 * The one idea: holes cost nothing in either direction.  Import skips a
 * sparse file's holes (SEEK_DATA/SEEK_HOLE) and turns zero blocks into
 * holes; export seeks over zero blocks and sizes the file with ftruncate;
 * diff and usage walk only the subtrees whose names differ.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blkstore/bs_int.h"

#define XFER_BUF (4u << 20)
#define XFER_BLOCKS (XFER_BUF / BS_BLOCK_SIZE)
#define MAX_THREADS 8
/* A stream of unknown length is imported into a disk this large (holes
 * cost nothing) and shrunk to what arrived. */
#define STREAM_SIZE (1ull << 50)

static int read_full(int fd, uint8_t *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = read(fd, buf + *got, len - *got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

/*
 * Import is bound by hashing (and compressing) every block, which the
 * chunk store lets any thread do (cas_prepare); only the store and map
 * updates run on this, the writer, thread.  So each batch is prepared by
 * every core at once, then applied in order.
 */
struct prep_job {
	cas *c;
	const uint8_t *buf;
	struct cas_prepared *p;
	size_t first, count;
};

static void *prep_run(void *arg)
{
	struct prep_job *j = arg;
	for (size_t i = j->first; i < j->first + j->count; i++)
		cas_prepare(j->c, j->buf + i * BS_BLOCK_SIZE, 0, &j->p[i]);
	return NULL;
}

struct importer {
	bs_disk *d;
	uint8_t *buf;
	struct cas_prepared *prep;
	int threads;
};

/* Write n bytes of buf at pos (a block boundary). */
static int import_batch(struct importer *im, size_t n, uint64_t pos)
{
	struct prep_job jobs[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	size_t blocks = n / BS_BLOCK_SIZE, per = (blocks + im->threads - 1) / im->threads;
	int started = 0, rc = 0;
	cas *c = bs_store_cas(im->d->s);

	for (int t = 0; t < im->threads; t++) {
		size_t first = (size_t)t * per;
		jobs[t] = (struct prep_job){c, im->buf, im->prep, first,
					    first >= blocks ? 0
					    : (blocks - first < per ? blocks - first : per)};
	}
	for (int t = 1; t < im->threads; t++)
		if (jobs[t].count && !pthread_create(&tid[t], NULL, prep_run, &jobs[t]))
			started |= 1 << t;
		else
			prep_run(&jobs[t]);
	prep_run(&jobs[0]);
	for (int t = 1; t < im->threads; t++)
		if (started & (1 << t))
			pthread_join(tid[t], NULL);
	uint64_t blk = pos / BS_BLOCK_SIZE;
	for (size_t i = 0; i < blocks && !rc; i++) {
		const struct cas_prepared *p = &im->prep[i];
		cas_name name = p->name;
		if (!cas_name_is_hole(&name)) {
			rc = cas_put_prepared(c, p, im->buf + i * BS_BLOCK_SIZE);
			if (rc < 0)
				break;
			rc = 0;
		}
		rc = bs_disk_set_block(im->d, blk + i, &name);
	}
	if (!rc && n % BS_BLOCK_SIZE)
		rc = bs_disk_write(im->d, im->buf + blocks * BS_BLOCK_SIZE,
				   n % BS_BLOCK_SIZE, pos + blocks * BS_BLOCK_SIZE);
	return rc ? rc : bs_disk_bound_dirty(im->d);
}

static int import_regular(struct importer *im, int fd, uint64_t total,
			  bs_progress_fn fn, void *arg)
{
	uint8_t *buf = im->buf;
	uint64_t pos = 0;
	int rc = 0;
	while (pos < total && !rc) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* only a hole remains */
			data = (off_t)pos; /* no SEEK_DATA: read everything */
		}
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > total)
			hole = (off_t)total;
		/* Keep block alignment so every write is whole blocks. */
		pos = (uint64_t)data & ~(uint64_t)(BS_BLOCK_SIZE - 1);
		while (pos < (uint64_t)hole && !rc) {
			size_t want = XFER_BUF;
			if (pos + want > total)
				want = (size_t)(total - pos);
			ssize_t n = pread(fd, buf, want, (off_t)pos);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				rc = n < 0 ? -errno : -EIO;
				break;
			}
			rc = import_batch(im, (size_t)n, pos);
			pos += (uint64_t)n;
			if (fn)
				fn(arg, pos, total);
		}
	}
	return rc;
}

int bs_import(bs_store *s, const char *disk, int fd, bs_progress_fn fn,
	      void *arg)
{
	struct stat st;
	bs_disk *d;
	uint64_t size, total = 0;
	int rc;

	if (fstat(fd, &st))
		return -errno;
	bool regular = S_ISREG(st.st_mode);
	if (regular) {
		total = (uint64_t)st.st_size;
		size = (total + BS_SECTOR - 1) / BS_SECTOR * BS_SECTOR;
	} else {
		size = STREAM_SIZE;
	}
	/* Atomic: the image goes into a hidden disk, renamed when complete
	 * (a crash leaves the hidden disk, removed at the next open).  So
	 * no intermediate commit is needed for safety: only to bound
	 * memory, every 1 GiB. */
	char tmp[BS_NAME_MAX + 16];
	struct bs_rec exist;
	if (!bs_name_valid(disk))
		return BS_EBADNAME;
	rc = bs_cat_get(s, disk, NULL, &exist);
	if (rc != BS_ENODISK)
		return rc ? rc : BS_EEXIST;
	snprintf(tmp, sizeof(tmp), BS_IMPORT_PREFIX "%s", disk);
	bs_delete_any(s, tmp);
	rc = bs_disk_create_any(s, tmp, size);
	if (rc)
		return rc;
	struct importer im = {0};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	im.threads = ncpu < 1 ? 1 : (ncpu > MAX_THREADS ? MAX_THREADS : (int)ncpu);
	im.buf = malloc(XFER_BUF);
	im.prep = malloc(XFER_BLOCKS * sizeof(*im.prep));
	uint8_t *buf = im.buf;
	rc = buf && im.prep ? bs_disk_open_parsed(s, tmp, "", &d) : -ENOMEM;
	if (rc) {
		free(buf);
		free(im.prep);
		bs_delete_any(s, tmp);
		return rc;
	}
	im.d = d;
	d->dirty_limit = (1ull << 30) / BS_BLOCK_SIZE;
	if (regular) {
		rc = import_regular(&im, fd, total, fn, arg);
	} else {
		uint64_t pos = 0;
		size_t got;
		do {
			rc = read_full(fd, buf, XFER_BUF, &got);
			if (!rc && got)
				rc = import_batch(&im, got, pos);
			pos += got;
			if (fn && !rc)
				fn(arg, pos, 0);
		} while (!rc && got == XFER_BUF);
		total = pos;
	}
	int rc2 = bs_disk_close(d);
	free(buf);
	free(im.prep);
	if (!rc)
		rc = rc2;
	if (!rc && !regular) {
		uint64_t final = (total + BS_SECTOR - 1) / BS_SECTOR * BS_SECTOR;
		rc = final ? bs_resize_any(s, tmp, final, 0) : BS_EBADSIZE;
	}
	if (!rc)
		rc = bs_disk_rename(s, tmp, disk);
	if (rc)
		bs_delete_any(s, tmp); /* a failed import leaves nothing */
	return rc;
}

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
