/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * import.c - a raw image (file or stream) into a new disk.
 *
 * The one idea: import is bound by hashing (and compressing) every block,
 * which the chunk store lets any thread do (cas_prepare); only storing the
 * prepared records and updating the map must happen on this, the writer,
 * thread.  So a regular file is cut into batches along its data extents
 * (SEEK_DATA/SEEK_HOLE: holes are never read), worker threads read and
 * prepare batches ahead into a ring of slots, and this thread applies
 * them in order.  Reading, hashing and applying overlap.
 *
 * Atomic: the image goes into a hidden disk ".import-NAME", renamed to
 * NAME in one transaction when complete; a crash leaves the hidden disk,
 * which the next open removes.  So nothing needs committing before the
 * end except to bound memory (every 1 GiB).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blkstore/bs_int.h"

#define BATCH (4u << 20)
#define BATCH_BLOCKS (BATCH / BS_BLOCK_SIZE)
#define MAX_WORKERS 8
#define SLOTS 4
/* A stream of unknown length goes into a disk this large (holes cost
 * nothing) and is shrunk to what arrived. */
#define STREAM_SIZE (1ull << 50)

struct batch {
	uint64_t pos; /* block-aligned */
	size_t n;
};

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

struct slot {
	int state;
	int rc;
	size_t n;
	uint8_t *buf;
	struct cas_prepared *prep;
};

struct pipeline {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	cas *c;
	int fd;
	struct batch *b;
	size_t nb, next; /* batches, next to claim */
	struct slot slot[SLOTS];
	bool stop;
};

static void prepare(cas *c, const uint8_t *buf, size_t n,
		    struct cas_prepared *p)
{
	for (size_t i = 0; i < n / BS_BLOCK_SIZE; i++)
		cas_prepare(c, buf + i * BS_BLOCK_SIZE, 0, &p[i]);
}

static void *worker(void *arg)
{
	struct pipeline *pl = arg;
	pthread_mutex_lock(&pl->mu);
	for (;;) {
		while (!pl->stop && pl->next < pl->nb &&
		       pl->slot[pl->next % SLOTS].state != SLOT_FREE)
			pthread_cond_wait(&pl->cv, &pl->mu);
		if (pl->stop || pl->next >= pl->nb)
			break;
		size_t k = pl->next++;
		struct slot *s = &pl->slot[k % SLOTS];
		s->state = SLOT_BUSY;
		pthread_mutex_unlock(&pl->mu);

		const struct batch *b = &pl->b[k];
		size_t done = 0;
		int rc = 0;
		while (done < b->n) {
			ssize_t r = pread(pl->fd, s->buf + done, b->n - done,
					  (off_t)(b->pos + done));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				rc = r < 0 ? -errno : -EIO; /* file shrank */
				break;
			}
			done += (size_t)r;
		}
		if (!rc)
			prepare(pl->c, s->buf, b->n, s->prep);

		pthread_mutex_lock(&pl->mu);
		s->n = b->n;
		s->rc = rc;
		s->state = SLOT_READY;
		pthread_cond_broadcast(&pl->cv);
	}
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

/* Store a prepared batch of n bytes at pos. */
static int apply(bs_disk *d, const uint8_t *buf, const struct cas_prepared *p,
		 size_t n, uint64_t pos)
{
	cas *c = bs_store_cas(d->s);
	size_t blocks = n / BS_BLOCK_SIZE;
	uint64_t blk = pos / BS_BLOCK_SIZE;
	int rc = 0;
	for (size_t i = 0; i < blocks && !rc; i++) {
		cas_name name = p[i].name;
		if (!cas_name_is_hole(&name)) {
			rc = cas_put_prepared(c, &p[i], buf + i * BS_BLOCK_SIZE);
			if (rc < 0)
				break;
		}
		rc = bs_disk_set_block(d, blk + i, &name);
	}
	if (!rc && n % BS_BLOCK_SIZE) /* the file's last, partial block */
		rc = bs_disk_write(d, buf + blocks * BS_BLOCK_SIZE,
				   n % BS_BLOCK_SIZE, pos + blocks * BS_BLOCK_SIZE);
	return rc ? rc : bs_disk_bound_dirty(d);
}

/* The file's data extents, cut into batches. */
static int plan(int fd, uint64_t total, struct batch **out, size_t *nout)
{
	struct batch *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t pos = 0;
	while (pos < total) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only a hole remains */
		if (data < 0)
			data = (off_t)pos; /* no SEEK_DATA here: read it all */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > total)
			hole = (off_t)total;
		/* Whole blocks: the extent widened to block boundaries (the
		 * file's last block may be partial). */
		uint64_t start = (uint64_t)data & ~(uint64_t)(BS_BLOCK_SIZE - 1);
		uint64_t end = ((uint64_t)hole + BS_BLOCK_SIZE - 1) &
			       ~(uint64_t)(BS_BLOCK_SIZE - 1);
		if (start < pos)
			start = pos;
		if (end > total)
			end = total;
		for (uint64_t b = start; b < end; b += BATCH) {
			uint64_t len = end - b < BATCH ? end - b : BATCH;
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				struct batch *nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[n++] = (struct batch){b, (size_t)len};
		}
		hole = (off_t)end;
		pos = (uint64_t)hole;
	}
	*out = v;
	*nout = n;
	return 0;
}

static int import_file(bs_disk *d, int fd, uint64_t total, bs_progress_fn fn,
		       void *arg)
{
	struct pipeline pl = {.c = bs_store_cas(d->s), .fd = fd};
	pthread_t tid[MAX_WORKERS];
	int nw = 0, rc;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int want = ncpu < 1 ? 1 : (ncpu > MAX_WORKERS ? MAX_WORKERS : (int)ncpu);

	rc = plan(fd, total, &pl.b, &pl.nb);
	if (rc)
		return rc;
	for (int i = 0; i < SLOTS && !rc; i++) {
		pl.slot[i].buf = malloc(BATCH);
		pl.slot[i].prep = malloc(BATCH_BLOCKS * sizeof(struct cas_prepared));
		if (!pl.slot[i].buf || !pl.slot[i].prep)
			rc = -ENOMEM;
	}
	pthread_mutex_init(&pl.mu, NULL);
	pthread_cond_init(&pl.cv, NULL);
	for (int i = 0; i < want && !rc; i++)
		if (pthread_create(&tid[nw], NULL, worker, &pl) == 0)
			nw++;
	if (!rc && nw == 0)
		rc = -EAGAIN;

	for (size_t k = 0; k < pl.nb && !rc; k++) {
		struct slot *s = &pl.slot[k % SLOTS];
		pthread_mutex_lock(&pl.mu);
		while (s->state != SLOT_READY)
			pthread_cond_wait(&pl.cv, &pl.mu);
		pthread_mutex_unlock(&pl.mu);
		rc = s->rc ? s->rc : apply(d, s->buf, s->prep, s->n, pl.b[k].pos);
		pthread_mutex_lock(&pl.mu);
		s->state = SLOT_FREE;
		pthread_cond_broadcast(&pl.cv);
		pthread_mutex_unlock(&pl.mu);
		if (fn && !rc)
			fn(arg, pl.b[k].pos + pl.b[k].n, total);
	}

	pthread_mutex_lock(&pl.mu);
	pl.stop = true;
	pthread_cond_broadcast(&pl.cv);
	pthread_mutex_unlock(&pl.mu);
	for (int i = 0; i < nw; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < SLOTS; i++) {
		free(pl.slot[i].buf);
		free(pl.slot[i].prep);
	}
	pthread_mutex_destroy(&pl.mu);
	pthread_cond_destroy(&pl.cv);
	free(pl.b);
	return rc;
}

/* A pipe or other stream: read in order, prepare on this thread. */
static int import_stream(bs_disk *d, int fd, uint64_t *total,
			 bs_progress_fn fn, void *arg)
{
	uint8_t *buf = malloc(BATCH);
	struct cas_prepared *p = malloc(BATCH_BLOCKS * sizeof(*p));
	uint64_t pos = 0;
	int rc = buf && p ? 0 : -ENOMEM;
	while (!rc) {
		size_t got = 0;
		while (got < BATCH) {
			ssize_t r = read(fd, buf + got, BATCH - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				rc = -errno;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (rc || got == 0)
			break;
		prepare(bs_store_cas(d->s), buf, got, p);
		rc = apply(d, buf, p, got, pos);
		pos += got;
		if (fn && !rc)
			fn(arg, pos, 0);
		if (got < BATCH)
			break;
	}
	free(buf);
	free(p);
	*total = pos;
	return rc;
}

int bs_import(bs_store *s, const char *disk, int fd, bs_progress_fn fn,
	      void *arg)
{
	char tmp[BS_NAME_MAX + 16];
	struct bs_rec exist;
	struct stat st;
	bs_disk *d;
	uint64_t size, total = 0;
	int rc;

	if (!bs_name_valid(disk))
		return BS_EBADNAME;
	if (fstat(fd, &st))
		return -errno;
	rc = bs_cat_get(s, disk, NULL, &exist);
	if (rc != BS_ENODISK)
		return rc ? rc : BS_EEXIST;
	bool regular = S_ISREG(st.st_mode);
	if (regular) {
		total = (uint64_t)st.st_size;
		size = (total + BS_SECTOR - 1) / BS_SECTOR * BS_SECTOR;
	} else {
		size = STREAM_SIZE;
	}
	snprintf(tmp, sizeof(tmp), BS_IMPORT_PREFIX "%s", disk);
	bs_delete_any(s, tmp);
	rc = bs_disk_create_any(s, tmp, size);
	if (rc)
		return rc;
	rc = bs_disk_open_parsed(s, tmp, "", &d);
	if (rc) {
		bs_delete_any(s, tmp);
		return rc;
	}
	d->dirty_limit = (1ull << 30) / BS_BLOCK_SIZE;
	if (regular)
		rc = import_file(d, fd, total, fn, arg);
	else
		rc = import_stream(d, fd, &total, fn, arg);
	int rc2 = bs_disk_close(d);
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
