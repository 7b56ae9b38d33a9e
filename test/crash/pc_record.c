/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pc_record.c - the recording half of the power-cut simulation: what the
 * libc hooks (pc_hooks.c) report, logged if it touches the recorded tree.
 *
 * The one idea: a file is known by its inode, not by a descriptor or a
 * path.  Recording starts by logging the root's tree (each directory and
 * file gets an id from its st_dev/st_ino); after that every write, sync
 * and truncate is found by fstat()ing the descriptor and looking the inode
 * up, so dup()ed descriptors, LMDB's separate O_DSYNC descriptor and
 * rename()d files all land on the right file without tracking open() and
 * close().  Paths matter only for directory entries (create, rename,
 * unlink, mkdir, rmdir), which are logged relative to the root with the
 * id of the directory that holds them.
 *
 * One process, one log: a child forked while recording must stop first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/endian.h"
#include "test/crash/pc_int.h"

#define PC_LOG_MAGIC "PCLOG001"
#define PC_HDR 40u
#define PC_BUF (4u << 20)

struct pc_ino {
	dev_t dev;
	ino_t ino;
	uint32_t id;
};

struct pc_recorder {
	pthread_mutex_t mu;
	bool on;
	char root[PATH_MAX];
	size_t rootlen;
	int logfd;
	uint8_t *buf;
	size_t buflen;
	int err; /* first error writing the log */
	bool nosync;
	struct pc_ino *inos;
	size_t ninos, capinos;
	uint32_t next_id;
};

static struct pc_recorder R = {.mu = PTHREAD_MUTEX_INITIALIZER, .logfd = -1};

/* The log writer must not go through our own write(). */
static ssize_t pc_real_write(int fd, const void *b, size_t n)
{
	PC_REAL(ssize_t, write, (int, const void *, size_t));
	return real_write(fd, b, n);
}

/* ---- the log ---- */

static void log_flush(void)
{
	size_t done = 0;
	while (done < R.buflen) {
		ssize_t n =
			pc_real_write(R.logfd, R.buf + done, R.buflen - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!R.err)
				R.err = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	R.buflen = 0;
}

static void log_put(const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		size_t room = PC_BUF - R.buflen;
		size_t take = n < room ? n : room;
		memcpy(R.buf + R.buflen, b, take);
		R.buflen += take;
		b += take;
		n -= take;
		if (R.buflen == PC_BUF)
			log_flush();
	}
}

/* One record's header and paths; the caller appends 'len' data bytes
 * for PC_WRITE and PC_BASE_FILE. */
static void log_rec(const struct pc_rec *r)
{
	uint8_t h[PC_HDR];
	size_t pl = r->path ? strlen(r->path) : 0;
	size_t pl2 = r->path2 ? strlen(r->path2) : 0;
	memset(h, 0, sizeof(h));
	h[0] = r->type;
	h[1] = r->flags;
	le16_put(h + 2, (uint16_t)pl);
	le16_put(h + 4, (uint16_t)pl2);
	le32_put(h + 8, r->id);
	le32_put(h + 12, r->parent);
	le32_put(h + 16, r->parent2);
	le64_put(h + 24, r->off);
	le64_put(h + 32, r->len);
	log_put(h, sizeof(h));
	log_put(r->path, pl);
	log_put(r->path2, pl2);
}

/* ---- inodes ---- */

static uint32_t ino_find(dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < R.ninos; i++)
		if (R.inos[i].dev == dev && R.inos[i].ino == ino)
			return R.inos[i].id;
	return 0;
}

static void ino_forget(dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < R.ninos; i++)
		if (R.inos[i].dev == dev && R.inos[i].ino == ino) {
			R.inos[i] = R.inos[--R.ninos];
			return;
		}
}

/* A new id for (dev, ino), replacing what a reused inode number had. */
static uint32_t ino_new(dev_t dev, ino_t ino)
{
	ino_forget(dev, ino);
	if (R.ninos == R.capinos) {
		size_t cap = R.capinos ? 2 * R.capinos : 64;
		struct pc_ino *v = realloc(R.inos, cap * sizeof(*v));
		if (!v)
			abort(); /* test-only: out of memory is fatal */
		R.inos = v;
		R.capinos = cap;
	}
	R.inos[R.ninos++] = (struct pc_ino){dev, ino, R.next_id};
	return R.next_id++;
}

static uint32_t fd_id(int fd, struct stat *st)
{
	if (fstat(fd, st) || !(S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)))
		return 0;
	return ino_find(st->st_dev, st->st_ino);
}

/* ---- paths ---- */

/* Collapse "//", "." and ".." of an absolute path in place. */
static void path_norm(char *p)
{
	char *out = p, *in = p;
	while (*in) {
		while (*in == '/')
			in++;
		if (!*in)
			break;
		char *end = strchr(in, '/');
		size_t n = end ? (size_t)(end - in) : strlen(in);
		if (n == 1 && in[0] == '.') {
			/* skip */
		} else if (n == 2 && in[0] == '.' && in[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, in, n);
			out += n;
		}
		in += n;
	}
	if (out == p)
		*out++ = '/';
	*out = 0;
}

/* The absolute form of (dirfd, path); false if it cannot be known. */
static bool path_abs(int dirfd, const char *path, char *out)
{
	char base[PATH_MAX];
	if (!path)
		return false;
	if (path[0] == '/') {
		snprintf(out, PATH_MAX, "%s", path);
	} else {
		if (dirfd == AT_FDCWD) {
			if (!getcwd(base, sizeof(base)))
				return false;
		} else {
			char link[64];
			snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
			ssize_t n = readlink(link, base, sizeof(base) - 1);
			if (n <= 0)
				return false;
			base[n] = 0;
		}
		if (snprintf(out, PATH_MAX, "%s/%s", base, path) >= PATH_MAX)
			return false;
	}
	path_norm(out);
	return true;
}

/* The path relative to the root if abs lies strictly under it. */
static const char *path_rel(const char *abs)
{
	if (strncmp(abs, R.root, R.rootlen) || abs[R.rootlen] != '/' ||
	    !abs[R.rootlen + 1])
		return NULL;
	return abs + R.rootlen + 1;
}

/* The id of the directory holding abs. */
static uint32_t parent_id(const char *abs)
{
	char dir[PATH_MAX];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s", abs);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
	if (stat(dir, &st))
		return 0;
	return ino_find(st.st_dev, st.st_ino);
}

/* ---- what the hooks report ---- */

bool pc_on(void)
{
	return R.on;
}

bool pc_nosync(void)
{
	return R.nosync;
}

void pc_set_nosync(bool on)
{
	R.nosync = on;
}

void pc_note_write(int fd, const struct iovec *iov, int cnt, size_t n,
		   int64_t off, unsigned flags)
{
	struct stat st;
	int e = errno;
	pthread_mutex_lock(&R.mu);
	uint32_t id = R.on ? fd_id(fd, &st) : 0;
	if (id && S_ISREG(st.st_mode)) {
		int fl = fcntl(fd, F_GETFL);
		if (off < 0)
			off = (int64_t)lseek(fd, 0, SEEK_CUR) - (int64_t)n;
		if (fl >= 0 && (fl & (O_DSYNC | O_SYNC)))
			flags |= PC_F_DSYNC;
		struct pc_rec r = {.type = PC_WRITE,
				   .flags = (uint8_t)flags,
				   .id = id,
				   .off = (uint64_t)off,
				   .len = n};
		log_rec(&r);
		for (int i = 0; i < cnt && n; i++) {
			size_t take = iov[i].iov_len < n ? iov[i].iov_len : n;
			log_put(iov[i].iov_base, take);
			n -= take;
		}
	}
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

void pc_note_fd(int fd, uint8_t type, uint64_t off)
{
	struct stat st;
	int e = errno;
	pthread_mutex_lock(&R.mu);
	uint32_t id = R.on ? fd_id(fd, &st) : 0;
	if (id) {
		struct pc_rec r = {.type = type, .id = id, .off = off};
		log_rec(&r);
	}
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

void pc_note_path_trunc(const char *path, uint64_t size)
{
	struct stat st;
	int e = errno;
	pthread_mutex_lock(&R.mu);
	uint32_t id =
		R.on && !stat(path, &st) ? ino_find(st.st_dev, st.st_ino) : 0;
	if (id) {
		struct pc_rec r = {.type = PC_TRUNC, .id = id, .off = size};
		log_rec(&r);
	}
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

void pc_note_syncall(void)
{
	int e = errno;
	pthread_mutex_lock(&R.mu);
	if (R.on) {
		struct pc_rec r = {.type = PC_SYNCALL};
		log_rec(&r);
	}
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

void pc_name_look(int dirfd, const char *path, struct pc_name *n)
{
	int e = errno;
	n->rel = NULL;
	n->exists = false;
	if (R.on && path_abs(dirfd, path, n->abs))
		n->rel = path_rel(n->abs);
	if (n->rel)
		n->exists = lstat(n->abs, &n->st) == 0;
	errno = e;
}

void pc_note_opened(const struct pc_name *n, int fd, int flags)
{
	struct stat st;
	int e = errno;
	pthread_mutex_lock(&R.mu);
	if (R.on && n->rel && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if ((flags & O_CREAT) && !n->exists) {
			struct pc_rec r = {.type = PC_CREATE,
					   .path = n->rel,
					   .parent = parent_id(n->abs)};
			r.id = ino_new(st.st_dev, st.st_ino);
			log_rec(&r);
		} else if ((flags & O_TRUNC) &&
			   (flags & O_ACCMODE) != O_RDONLY) {
			struct pc_rec r = {
				.type = PC_TRUNC,
				.off = 0,
				.id = ino_find(st.st_dev, st.st_ino)};
			if (r.id)
				log_rec(&r);
		}
	}
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

/* Log a name's removal (caller holds R.mu). */
static void removed(const struct pc_name *n, uint8_t type)
{
	struct pc_rec r = {.type = type,
			   .path = n->rel,
			   .id = ino_find(n->st.st_dev, n->st.st_ino),
			   .parent = parent_id(n->abs)};
	log_rec(&r);
	if (S_ISDIR(n->st.st_mode) || n->st.st_nlink <= 1)
		ino_forget(n->st.st_dev, n->st.st_ino);
}

void pc_note_removed(const struct pc_name *n, uint8_t type)
{
	int e = errno;
	pthread_mutex_lock(&R.mu);
	if (R.on && n->rel && n->exists)
		removed(n, type);
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

void pc_note_mkdir(const struct pc_name *n)
{
	struct stat st;
	int e = errno;
	pthread_mutex_lock(&R.mu);
	if (R.on && n->rel && stat(n->abs, &st) == 0) {
		struct pc_rec r = {.type = PC_MKDIR,
				   .path = n->rel,
				   .parent = parent_id(n->abs)};
		r.id = ino_new(st.st_dev, st.st_ino);
		log_rec(&r);
	}
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

/* A file moved in from outside is not followed (the torture never does
 * that); one moved out is gone from the tree. */
void pc_note_renamed(const struct pc_name *o, const struct pc_name *n)
{
	int e = errno;
	pthread_mutex_lock(&R.mu);
	if (R.on && o->rel && o->exists && !n->rel) {
		removed(o, PC_UNLINK);
	} else if (R.on && o->rel && o->exists) {
		struct pc_rec r = {.type = PC_RENAME,
				   .path = o->rel,
				   .path2 = n->rel,
				   .id = ino_find(o->st.st_dev, o->st.st_ino),
				   .parent = parent_id(n->abs),
				   .parent2 = parent_id(o->abs)};
		log_rec(&r);
		if (n->exists &&
		    !(n->st.st_dev == o->st.st_dev &&
		      n->st.st_ino == o->st.st_ino) &&
		    (S_ISDIR(n->st.st_mode) || n->st.st_nlink <= 1))
			ino_forget(n->st.st_dev, n->st.st_ino);
	}
	pthread_mutex_unlock(&R.mu);
	errno = e;
}

/* ---- start, mark, stop ---- */

static int base_file(const char *abs, const char *rel, uint32_t id)
{
	struct stat st;
	int fd = open(abs, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		close(fd);
		return -errno;
	}
	struct pc_rec r = {.type = PC_BASE_FILE,
			   .id = id,
			   .path = rel,
			   .len = (uint64_t)st.st_size};
	log_rec(&r);
	uint8_t b[65536];
	uint64_t left = (uint64_t)st.st_size;
	while (left) {
		ssize_t n = read(fd, b, left < sizeof(b) ? left : sizeof(b));
		if (n <= 0) { /* the file shrank under us: pad as logged */
			memset(b, 0, sizeof(b));
			n = (ssize_t)(left < sizeof(b) ? left : sizeof(b));
		}
		log_put(b, (size_t)n);
		left -= (uint64_t)n;
	}
	close(fd);
	return 0;
}

static int base_tree(const char *abs, const char *rel)
{
	struct stat st;
	if (lstat(abs, &st))
		return -errno;
	struct pc_rec r = {.type = PC_BASE_DIR,
			   .path = rel,
			   .id = ino_new(st.st_dev, st.st_ino)};
	log_rec(&r);
	DIR *d = opendir(abs);
	if (!d)
		return -errno;
	struct dirent *e;
	int rc = 0;
	while (!rc && (e = readdir(d))) {
		char ca[PATH_MAX], cr[PATH_MAX];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(ca, sizeof(ca), "%s/%s", abs, e->d_name);
		snprintf(cr, sizeof(cr), "%s%s%s", rel, *rel ? "/" : "",
			 e->d_name);
		if (lstat(ca, &st))
			continue;
		if (S_ISDIR(st.st_mode))
			rc = base_tree(ca, cr);
		else if (S_ISREG(st.st_mode))
			rc = base_file(ca, cr, ino_new(st.st_dev, st.st_ino));
	}
	closedir(d);
	return rc;
}

int pc_rec_start(const char *root, const char *logpath)
{
	if (R.on)
		return -EBUSY;
	if (!realpath(root, R.root))
		return -errno;
	R.rootlen = strlen(R.root);
	R.buf = malloc(PC_BUF);
	if (!R.buf)
		return -ENOMEM;
	R.buflen = 0;
	R.err = 0;
	R.ninos = 0;
	R.next_id = 1;
	R.logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (R.logfd < 0) {
		free(R.buf);
		R.buf = NULL;
		return -errno;
	}
	log_put(PC_LOG_MAGIC, 8);
	int rc = base_tree(R.root, "");
	log_flush();
	if (!rc)
		rc = R.err;
	if (rc) {
		close(R.logfd);
		R.logfd = -1;
		free(R.buf);
		R.buf = NULL;
		return rc;
	}
	R.on = true;
	return 0;
}

void pc_rec_mark(uint32_t kind, uint64_t value)
{
	pthread_mutex_lock(&R.mu);
	if (R.on) {
		struct pc_rec r = {.type = PC_MARK, .off = kind, .len = value};
		log_rec(&r);
		log_flush();
	}
	pthread_mutex_unlock(&R.mu);
}

int pc_rec_stop(void)
{
	pthread_mutex_lock(&R.mu);
	if (!R.on) {
		pthread_mutex_unlock(&R.mu);
		return 0;
	}
	R.on = false;
	log_flush();
	int rc = R.err;
	if (close(R.logfd) && !rc)
		rc = -errno;
	R.logfd = -1;
	free(R.buf);
	R.buf = NULL;
	free(R.inos);
	R.inos = NULL;
	R.ninos = R.capinos = 0;
	pthread_mutex_unlock(&R.mu);
	return rc;
}

#ifdef PC_PRELOAD
/* As an LD_PRELOAD object: record $POWERCUT_DIR into $POWERCUT_LOG for
 * the whole life of the process. */
__attribute__((constructor)) static void pc_preload_start(void)
{
	const char *dir = getenv("POWERCUT_DIR"), *log = getenv("POWERCUT_LOG");
	if (dir && log && pc_rec_start(dir, log))
		fprintf(stderr, "powercut: cannot record %s into %s\n", dir,
			log);
}

__attribute__((destructor)) static void pc_preload_stop(void)
{
	pc_rec_stop();
}
#endif
