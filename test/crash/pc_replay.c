/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pc_replay.c - the replay half of the power-cut simulation: from a log
 * and a cut point, the directory a power cut there could leave.
 *
 * The one idea: decide each operation's fate first, then apply the
 * survivors in log order.  An operation is durable when a completed sync
 * covers it (docs/crash-testing.md, "The model"):
 *   - a write or truncate of file F: a later fsync/fdatasync of F, a
 *     sync()/syncfs(), or its own O_DSYNC descriptor;
 *   - a directory entry (create, mkdir, unlink, rmdir, rename): a later
 *     fsync of the directory holding it (both directories for a rename),
 *     or, in the journal model, any later sync at all.
 * A sync is complete if it was issued before the cut; the very last
 * record before the cut is "in flight": a sync there completed or not
 * by a coin.  Durable operations are always applied.  The others are
 * applied, dropped or (writes) torn as the policy says; applying the
 * survivors in order means a sector holds some version it held since
 * its last sync, never a mix within a sector, never a version from after
 * the cut.  Files are inodes: data written to a file whose name was lost
 * is lost with it, and a rename carries whatever data the inode has.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/endian.h"
#include "test/crash/powercut.h"

#define PC_HDR 40u
#define PC_SECTOR 512u

struct pc_log {
	uint8_t *buf;
	size_t size;
	struct pc_rec *v;
	size_t n;
	uint32_t max_id;
};

/* ---- loading ---- */

static char *dup_path(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

int pc_log_load(const char *path, struct pc_log **out)
{
	struct pc_log *l = calloc(1, sizeof(*l));
	struct stat st;
	size_t cap = 0;
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*out = NULL;
	if (!l || fd < 0 || fstat(fd, &st)) {
		rc = l ? -errno : -ENOMEM;
		goto fail;
	}
	l->size = (size_t)st.st_size;
	l->buf = malloc(l->size ? l->size : 1);
	if (!l->buf) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t done = 0; done < l->size;) {
		ssize_t n = read(fd, l->buf + done, l->size - done);
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto fail;
		}
		done += (size_t)n;
	}
	if (l->size < 8 || memcmp(l->buf, "PCLOG001", 8)) {
		rc = -EINVAL;
		goto fail;
	}
	/* A log cut short (its writer died) ends at its last whole record. */
	for (size_t off = 8; off + PC_HDR <= l->size;) {
		const uint8_t *h = l->buf + off;
		struct pc_rec r;
		size_t pl = le16_get(h + 2), pl2 = le16_get(h + 4);
		memset(&r, 0, sizeof(r));
		r.type = h[0];
		r.flags = h[1];
		r.id = le32_get(h + 8);
		r.parent = le32_get(h + 12);
		r.parent2 = le32_get(h + 16);
		r.off = le64_get(h + 24);
		r.len = le64_get(h + 32);
		size_t data = (r.type == PC_WRITE || r.type == PC_BASE_FILE)
				      ? (size_t)r.len
				      : 0;
		if (r.type < PC_BASE_DIR || r.type > PC_MARK)
			break;
		if (off + PC_HDR + pl + pl2 + data > l->size)
			break;
		r.path = dup_path(h + PC_HDR, pl);
		r.path2 = pl2 ? dup_path(h + PC_HDR + pl, pl2) : NULL;
		r.data = h + PC_HDR + pl + pl2;
		if (l->n == cap) {
			cap = cap ? 2 * cap : 1024;
			struct pc_rec *v = realloc(l->v, cap * sizeof(*v));
			if (!v) {
				rc = -ENOMEM;
				goto fail;
			}
			l->v = v;
		}
		l->v[l->n++] = r;
		if (r.id > l->max_id)
			l->max_id = r.id;
		off += PC_HDR + pl + pl2 + data;
	}
	close(fd);
	*out = l;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	pc_log_free(l);
	return rc;
}

void pc_log_free(struct pc_log *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->v[i].path);
		free((char *)l->v[i].path2);
	}
	free(l->v);
	free(l->buf);
	free(l);
}

size_t pc_log_count(const struct pc_log *l)
{
	return l->n;
}

const struct pc_rec *pc_log_rec(const struct pc_log *l, size_t i)
{
	return &l->v[i];
}

bool pc_log_is_sync(const struct pc_log *l, size_t i)
{
	const struct pc_rec *r = &l->v[i];
	return r->type == PC_SYNC || r->type == PC_SYNCALL ||
	       (r->type == PC_WRITE && (r->flags & PC_F_DSYNC));
}

void pc_log_dump(const struct pc_log *l, size_t from, size_t to, void *file)
{
	static const char *const names[] = {
		"?",     "base-dir", "base-file", "write", "trunc",
		"sync",  "syncall",  "create",    "mkdir", "unlink",
		"rmdir", "rename",   "mark"};
	FILE *f = file;
	for (size_t i = from; i < to && i < l->n; i++) {
		const struct pc_rec *r = &l->v[i];
		fprintf(f, "%6zu %-9s id=%-3u", i, names[r->type], r->id);
		if (r->type == PC_WRITE || r->type == PC_BASE_FILE)
			fprintf(f, " off=%llu len=%llu%s",
				(unsigned long long)r->off,
				(unsigned long long)r->len,
				(r->flags & PC_F_DSYNC) ? " dsync" : "");
		else if (r->type == PC_TRUNC)
			fprintf(f, " size=%llu", (unsigned long long)r->off);
		else if (r->type == PC_MARK)
			fprintf(f, " kind=%llu value=%llu",
				(unsigned long long)r->off,
				(unsigned long long)r->len);
		if (r->path && *r->path)
			fprintf(f, " %s", r->path);
		if (r->path2)
			fprintf(f, " -> %s", r->path2);
		if (r->parent)
			fprintf(f, " (dir %u)", r->parent);
		fputc('\n', f);
	}
}

/* ---- policies ---- */

static const char *const policy_names[PC_NPOLICY] = {
	"drop", "keep", "prefix", "reorder", "random", "torn"};

const char *pc_policy_name(int p)
{
	return p >= 0 && p < PC_NPOLICY ? policy_names[p] : "?";
}

int pc_policy_parse(const char *s)
{
	for (int p = 0; p < PC_NPOLICY; p++)
		if (!strcmp(s, policy_names[p]))
			return p;
	return -1;
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool coin(uint64_t *s)
{
	return rng_next(s) >> 63;
}

/* ---- the image in memory ---- */

struct inode {
	uint8_t *data;
	size_t size, cap;
};

struct dent {
	char *path;
	uint32_t id;
	bool dir;
};

struct image {
	struct inode *ino; /* by id */
	struct dent *ents;
	size_t nents, capents;
};

static int ino_resize(struct inode *f, size_t size)
{
	if (size > f->cap) {
		size_t cap = f->cap ? f->cap : 65536;
		while (cap < size)
			cap *= 2;
		uint8_t *d = realloc(f->data, cap);
		if (!d)
			return -ENOMEM;
		memset(d + f->cap, 0, cap - f->cap);
		f->data = d;
		f->cap = cap;
	}
	if (size < f->size)
		memset(f->data + size, 0, f->size - size);
	f->size = size;
	return 0;
}

static int ino_write(struct inode *f, uint64_t off, const uint8_t *p, size_t n)
{
	if (off + n > f->size) {
		int rc = ino_resize(f, off + n);
		if (rc)
			return rc;
	}
	memcpy(f->data + off, p, n);
	return 0;
}

static struct dent *ent_find(struct image *im, const char *path)
{
	for (size_t i = 0; i < im->nents; i++)
		if (!strcmp(im->ents[i].path, path))
			return &im->ents[i];
	return NULL;
}

/* Remove a name and, for a directory, everything under it: with fates
 * chosen per operation an rmdir can survive while the unlinks of what
 * the directory held did not, and those entries are orphans now. */
static void ent_del(struct image *im, const char *path)
{
	size_t pl = strlen(path);
	for (size_t i = 0; i < im->nents;) {
		const char *p = im->ents[i].path;
		if (!strcmp(p, path) ||
		    (!strncmp(p, path, pl) && p[pl] == '/')) {
			free(im->ents[i].path);
			im->ents[i] = im->ents[--im->nents];
		} else {
			i++;
		}
	}
}

static int ent_set(struct image *im, const char *path, uint32_t id, bool dir)
{
	struct dent *e = ent_find(im, path);
	if (e) {
		e->id = id;
		e->dir = dir;
		return 0;
	}
	if (im->nents == im->capents) {
		size_t cap = im->capents ? 2 * im->capents : 64;
		struct dent *v = realloc(im->ents, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		im->ents = v;
		im->capents = cap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	im->ents[im->nents++] = (struct dent){p, id, dir};
	return 0;
}

/* rename(2) on the name space: old's entry (and, for a directory,
 * everything under it) moves to new, replacing what new named. */
static int ent_rename(struct image *im, const char *old, const char *new)
{
	struct dent *e = ent_find(im, old);
	if (!e || !strcmp(old, new))
		return 0; /* its creation was lost, or nothing moves */
	uint32_t id = e->id;
	bool dir = e->dir;
	size_t ol = strlen(old);
	ent_del(im, new); /* what new named goes (an empty directory, say) */
	e = ent_find(im, old);
	if (!e)
		return 0; /* old was under new: not a rename(2) would allow */
	free(e->path);
	*e = im->ents[--im->nents];
	for (size_t i = 0; i < im->nents; i++) {
		char *p = im->ents[i].path;
		if (!strncmp(p, old, ol) && p[ol] == '/') {
			size_t n = strlen(new) + strlen(p + ol) + 1;
			char *q = malloc(n);
			if (!q)
				return -ENOMEM;
			snprintf(q, n, "%s%s", new, p + ol);
			free(p);
			im->ents[i].path = q;
		}
	}
	return ent_set(im, new, id, dir);
}

/* ---- fates ---- */

enum fate {
	APPLY,
	DROP,
	TORN
};

struct plan {
	int policy;
	uint64_t rng;
	size_t pivot;    /* PREFIX/REORDER */
	size_t ns_pivot; /* journal model */
	enum pc_nsmodel ns;
	size_t *last_sync; /* by id: 1 + index of the last completed sync */
	size_t last_all;   /* 1 + index of the last completed sync() */
	size_t last_any; /* 1 + index of the last completed sync of any kind */
	bool inflight_done;
	size_t cut;
};

static bool is_ns(uint8_t t)
{
	return t == PC_CREATE || t == PC_MKDIR || t == PC_UNLINK ||
	       t == PC_RMDIR || t == PC_RENAME;
}

static bool completed(const struct plan *p, size_t j)
{
	return j + 1 < p->cut || p->inflight_done;
}

static bool synced_after(const struct plan *p, uint32_t id, size_t k)
{
	if (k < p->last_all)
		return true;
	if (!id) /* not tracked (outside the recorded tree): assume kept */
		return true;
	return k < p->last_sync[id];
}

static bool durable(const struct plan *p, const struct pc_rec *r, size_t k)
{
	if (r->type == PC_WRITE || r->type == PC_TRUNC)
		return synced_after(p, r->id, k) ||
		       (r->type == PC_WRITE && (r->flags & PC_F_DSYNC) &&
			completed(p, k));
	if (p->ns == PC_NS_JOURNAL)
		return k < p->last_any;
	if (r->type == PC_RENAME)
		return synced_after(p, r->parent, k) &&
		       synced_after(p, r->parent2, k);
	return synced_after(p, r->parent, k);
}

static enum fate choose(struct plan *p, const struct pc_rec *r, size_t k)
{
	if (is_ns(r->type) && p->ns == PC_NS_JOURNAL)
		return k < p->ns_pivot ? APPLY : DROP;
	switch (p->policy) {
	case PC_DROP:
		return DROP;
	case PC_KEEP:
		return APPLY;
	case PC_PREFIX:
		return k < p->pivot ? APPLY : DROP;
	case PC_REORDER:
		return k >= p->pivot ? APPLY : DROP;
	case PC_RANDOM:
		return coin(&p->rng) ? APPLY : DROP;
	default: { /* PC_TORN */
		uint64_t x = rng_next(&p->rng) % 3;
		if (r->type != PC_WRITE)
			return x ? APPLY : DROP;
		return x == 0 ? APPLY : x == 1 ? DROP : TORN;
	}
	}
}

/* Some 512-byte sectors of a write reach the disk, some do not; the file
 * size may have moved to the write's end even so (zeros show there). */
static int apply_torn(struct plan *p, struct inode *f, const struct pc_rec *r)
{
	uint64_t off = r->off, end = r->off + r->len, reached = f->size;
	while (off < end) {
		uint64_t next = (off / PC_SECTOR + 1) * PC_SECTOR;
		if (next > end)
			next = end;
		if (coin(&p->rng)) {
			int rc = ino_write(f, off, r->data + (off - r->off),
					   (size_t)(next - off));
			if (rc)
				return rc;
			if (next > reached)
				reached = next;
		}
		off = next;
	}
	if (coin(&p->rng) && end > reached)
		reached = end;
	return reached > f->size ? ino_resize(f, reached) : 0;
}

static int plan_init(struct plan *p, const struct pc_log *l, size_t cut,
		     int policy, uint64_t seed, enum pc_nsmodel ns)
{
	memset(p, 0, sizeof(*p));
	p->policy = policy;
	p->rng = seed;
	p->ns = ns;
	p->cut = cut;
	p->last_sync = calloc(l->max_id + 1, sizeof(size_t));
	if (!p->last_sync)
		return -ENOMEM;
	p->inflight_done = coin(&p->rng);
	for (size_t j = 0; j < cut; j++) {
		const struct pc_rec *r = &l->v[j];
		if (r->type != PC_SYNC && r->type != PC_SYNCALL)
			continue;
		if (!completed(p, j))
			continue;
		p->last_any = j + 1;
		if (r->type == PC_SYNCALL)
			p->last_all = j + 1;
		else
			p->last_sync[r->id] = j + 1;
	}
	p->pivot = cut ? (size_t)(rng_next(&p->rng) % (cut + 1)) : 0;
	if (policy == PC_DROP)
		p->ns_pivot = 0;
	else if (policy == PC_KEEP)
		p->ns_pivot = cut;
	else
		p->ns_pivot = cut ? (size_t)(rng_next(&p->rng) % (cut + 1)) : 0;
	return 0;
}

/* ---- building ---- */

static int apply(struct image *im, struct plan *p, const struct pc_rec *r,
		 size_t k, struct pc_image_stats *st)
{
	enum fate f = APPLY;
	if (r->type == PC_MARK || r->type == PC_SYNC || r->type == PC_SYNCALL)
		return 0;
	if (r->type != PC_BASE_DIR && r->type != PC_BASE_FILE) {
		st->ops++;
		if (durable(p, r, k)) {
			st->durable++;
		} else {
			f = choose(p, r, k);
			if (f == APPLY)
				st->kept++;
			else if (f == DROP)
				st->dropped++;
			else
				st->torn++;
		}
	}
	if (f == DROP)
		return 0;
	struct inode *ino = &im->ino[r->id];
	switch (r->type) {
	case PC_BASE_DIR:
		return ent_set(im, r->path, r->id, true);
	case PC_BASE_FILE: {
		int rc = ino_write(ino, 0, r->data, (size_t)r->len);
		return rc ? rc : ent_set(im, r->path, r->id, false);
	}
	case PC_WRITE:
		if (f == TORN)
			return apply_torn(p, ino, r);
		return ino_write(ino, r->off, r->data, (size_t)r->len);
	case PC_TRUNC:
		return ino_resize(ino, (size_t)r->off);
	case PC_CREATE:
		return ent_set(im, r->path, r->id, false);
	case PC_MKDIR:
		return ent_set(im, r->path, r->id, true);
	case PC_UNLINK:
	case PC_RMDIR:
		ent_del(im, r->path);
		return 0;
	case PC_RENAME:
		return ent_rename(im, r->path, r->path2);
	}
	return 0;
}

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->path,
		      ((const struct dent *)b)->path);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write the image out.  Sorted, a directory comes before what it holds;
 * an entry whose directory did not survive is unreachable and skipped. */
static int materialize(struct image *im, const char *outdir)
{
	char p[4096];
	int rc = 0;
	qsort(im->ents, im->nents, sizeof(*im->ents), cmp_dent);
	for (size_t i = 0; i < im->nents && !rc; i++) {
		const struct dent *e = &im->ents[i];
		struct stat st;
		if (!*e->path) /* the root */
			continue;
		snprintf(p, sizeof(p), "%s/%s", outdir, e->path);
		char *slash = strrchr(p, '/');
		*slash = 0;
		bool parent_ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
		*slash = '/';
		if (!parent_ok)
			continue;
		if (e->dir) {
			if (mkdir(p, 0700))
				rc = -errno;
			continue;
		}
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			break;
		}
		const struct inode *f = &im->ino[e->id];
		rc = write_all(fd, f->data, f->size);
		close(fd);
	}
	return rc;
}

int pc_image_build(const struct pc_log *l, size_t cut, int policy,
		   uint64_t seed, enum pc_nsmodel ns, const char *outdir,
		   struct pc_image_stats *st)
{
	struct pc_image_stats dummy;
	struct image im = {0};
	struct plan p;
	int rc;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (cut > l->n || policy < 0 || policy >= PC_NPOLICY)
		return -EINVAL;
	rc = plan_init(&p, l, cut, policy, seed, ns);
	if (rc)
		return rc;
	im.ino = calloc(l->max_id + 1, sizeof(*im.ino));
	if (!im.ino) {
		rc = -ENOMEM;
		goto out;
	}
	/* The tree as recording began is there whatever the cut. */
	for (size_t k = 0; k < l->n && !rc; k++) {
		uint8_t t = l->v[k].type;
		if (k >= cut && t != PC_BASE_DIR && t != PC_BASE_FILE)
			break;
		rc = apply(&im, &p, &l->v[k], k, st);
	}
	if (!rc && mkdir(outdir, 0700))
		rc = -errno;
	if (!rc)
		rc = materialize(&im, outdir);
out:
	for (size_t i = 0; im.ino && i <= l->max_id; i++)
		free(im.ino[i].data);
	free(im.ino);
	for (size_t i = 0; i < im.nents; i++)
		free(im.ents[i].path);
	free(im.ents);
	free(p.last_sync);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -errno : 0;
}

int pc_rmtree(const char *path)
{
	struct stat st;
	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
