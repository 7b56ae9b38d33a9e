/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pc_hooks.c - libc's file-mutating calls, as the program's own: each
 * runs the real call (dlsym RTLD_NEXT) and reports to the recorder
 * (pc_record.c) what it did.
 *
 * The one idea: an executable's definitions win over libc's for the
 * program and for every shared library it loads, so LMDB's pwrite,
 * writev, fdatasync and its O_DSYNC meta-page writes come through here
 * like cas's segment I/O does.  Calls libc makes internally (stdio's
 * write, opendir's openat) are not seen; the store's files are not
 * written that way.  Every hook returns the real call's result and
 * errno, recording or not.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "test/crash/pc_int.h"

void *pc_real(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p) {
		fprintf(stderr, "powercut: no real %s: %s\n", name, dlerror());
		abort();
	}
	return p;
}

/* ---- open ---- */

typedef int (*openat_fn)(int, const char *, int, ...);

static int hook_open(bool large, int dirfd, const char *path, int flags,
		     mode_t mode)
{
	static openat_fn real_openat, real_openat64;
	struct pc_name n;
	if (!real_openat) {
		real_openat64 = (openat_fn)pc_real("openat64");
		real_openat = (openat_fn)pc_real("openat");
	}
	/* Only a create or a truncate changes anything at open. */
	bool look = pc_on() && (flags & (O_CREAT | O_TRUNC));
	if (look)
		pc_name_look(dirfd, path, &n);
	int fd =
		(large ? real_openat64 : real_openat)(dirfd, path, flags, mode);
	if (look && fd >= 0)
		pc_note_opened(&n, fd, flags);
	return fd;
}

static mode_t va_mode(int flags, va_list ap)
{
	bool need = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
	return need ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = va_mode(flags, ap);
	va_end(ap);
	return hook_open(false, AT_FDCWD, path, flags, m);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = va_mode(flags, ap);
	va_end(ap);
	return hook_open(true, AT_FDCWD, path, flags, m);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = va_mode(flags, ap);
	va_end(ap);
	return hook_open(false, dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = va_mode(flags, ap);
	va_end(ap);
	return hook_open(true, dirfd, path, flags, m);
}

/* _FORTIFY_SOURCE's forms of open without a mode. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

int __open_2(const char *path, int flags)
{
	return hook_open(false, AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags)
{
	return hook_open(true, AT_FDCWD, path, flags, 0);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	return hook_open(false, dirfd, path, flags, 0);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	return hook_open(true, dirfd, path, flags, 0);
}

int creat(const char *path, mode_t mode)
{
	return hook_open(false, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
			 mode);
}

int creat64(const char *path, mode_t mode)
{
	return hook_open(true, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
			 mode);
}

/* ---- data ---- */

static void one(int fd, const void *buf, ssize_t r, int64_t off)
{
	struct iovec v = {(void *)buf, (size_t)r};
	if (r > 0 && pc_on())
		pc_note_write(fd, &v, 1, (size_t)r, off, 0);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	PC_REAL(ssize_t, write, (int, const void *, size_t));
	ssize_t r = real_write(fd, buf, n);
	one(fd, buf, r, -1);
	return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	PC_REAL(ssize_t, pwrite, (int, const void *, size_t, off_t));
	ssize_t r = real_pwrite(fd, buf, n, off);
	one(fd, buf, r, off);
	return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	PC_REAL(ssize_t, pwrite64, (int, const void *, size_t, off64_t));
	ssize_t r = real_pwrite64(fd, buf, n, off);
	one(fd, buf, r, off);
	return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	PC_REAL(ssize_t, writev, (int, const struct iovec *, int));
	ssize_t r = real_writev(fd, iov, cnt);
	if (r > 0 && pc_on())
		pc_note_write(fd, iov, cnt, (size_t)r, -1, 0);
	return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	PC_REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t));
	ssize_t r = real_pwritev(fd, iov, cnt, off);
	if (r > 0 && pc_on())
		pc_note_write(fd, iov, cnt, (size_t)r, off, 0);
	return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	PC_REAL(ssize_t, pwritev64, (int, const struct iovec *, int, off64_t));
	ssize_t r = real_pwritev64(fd, iov, cnt, off);
	if (r > 0 && pc_on())
		pc_note_write(fd, iov, cnt, (size_t)r, off, 0);
	return r;
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	PC_REAL(ssize_t, pwritev2,
		(int, const struct iovec *, int, off_t, int));
	ssize_t r = real_pwritev2(fd, iov, cnt, off, flags);
	if (r > 0 && pc_on())
		pc_note_write(fd, iov, cnt, (size_t)r, off,
			      (flags & (RWF_DSYNC | RWF_SYNC)) ? PC_F_DSYNC
							       : 0);
	return r;
}

int ftruncate(int fd, off_t len)
{
	PC_REAL(int, ftruncate, (int, off_t));
	int r = real_ftruncate(fd, len);
	if (r == 0 && pc_on())
		pc_note_fd(fd, PC_TRUNC, (uint64_t)len);
	return r;
}

int ftruncate64(int fd, off64_t len)
{
	PC_REAL(int, ftruncate64, (int, off64_t));
	int r = real_ftruncate64(fd, len);
	if (r == 0 && pc_on())
		pc_note_fd(fd, PC_TRUNC, (uint64_t)len);
	return r;
}

int truncate(const char *path, off_t len)
{
	PC_REAL(int, truncate, (const char *, off_t));
	int r = real_truncate(path, len);
	if (r == 0 && pc_on())
		pc_note_path_trunc(path, (uint64_t)len);
	return r;
}

int truncate64(const char *path, off64_t len)
{
	PC_REAL(int, truncate64, (const char *, off64_t));
	int r = real_truncate64(path, len);
	if (r == 0 && pc_on())
		pc_note_path_trunc(path, (uint64_t)len);
	return r;
}

/* ---- durability ---- */

int fsync(int fd)
{
	PC_REAL(int, fsync, (int));
	int r = pc_nosync() ? 0 : real_fsync(fd);
	if (r == 0 && pc_on())
		pc_note_fd(fd, PC_SYNC, 0);
	return r;
}

int fdatasync(int fd)
{
	PC_REAL(int, fdatasync, (int));
	int r = pc_nosync() ? 0 : real_fdatasync(fd);
	if (r == 0 && pc_on())
		pc_note_fd(fd, PC_SYNC, 0);
	return r;
}

void sync(void)
{
	PC_REAL(void, sync, (void));
	if (!pc_nosync())
		real_sync();
	if (pc_on())
		pc_note_syncall();
}

int syncfs(int fd)
{
	PC_REAL(int, syncfs, (int));
	int r = pc_nosync() ? 0 : real_syncfs(fd);
	if (r == 0 && pc_on())
		pc_note_syncall();
	return r;
}

/* ---- directory entries ---- */

int unlinkat(int dirfd, const char *path, int flags)
{
	PC_REAL(int, unlinkat, (int, const char *, int));
	struct pc_name n;
	pc_name_look(dirfd, path, &n);
	int r = real_unlinkat(dirfd, path, flags);
	if (r == 0)
		pc_note_removed(&n,
				(flags & AT_REMOVEDIR) ? PC_RMDIR : PC_UNLINK);
	return r;
}

int unlink(const char *path)
{
	PC_REAL(int, unlink, (const char *));
	struct pc_name n;
	pc_name_look(AT_FDCWD, path, &n);
	int r = real_unlink(path);
	if (r == 0)
		pc_note_removed(&n, PC_UNLINK);
	return r;
}

int rmdir(const char *path)
{
	PC_REAL(int, rmdir, (const char *));
	struct pc_name n;
	pc_name_look(AT_FDCWD, path, &n);
	int r = real_rmdir(path);
	if (r == 0)
		pc_note_removed(&n, PC_RMDIR);
	return r;
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	PC_REAL(int, mkdirat, (int, const char *, mode_t));
	struct pc_name n;
	pc_name_look(dirfd, path, &n);
	int r = real_mkdirat(dirfd, path, mode);
	if (r == 0)
		pc_note_mkdir(&n);
	return r;
}

int mkdir(const char *path, mode_t mode)
{
	PC_REAL(int, mkdir, (const char *, mode_t));
	struct pc_name n;
	pc_name_look(AT_FDCWD, path, &n);
	int r = real_mkdir(path, mode);
	if (r == 0)
		pc_note_mkdir(&n);
	return r;
}

int renameat2(int ofd, const char *old, int nfd, const char *new,
	      unsigned int flags)
{
	PC_REAL(int, renameat2,
		(int, const char *, int, const char *, unsigned int));
	struct pc_name o, n;
	pc_name_look(ofd, old, &o);
	pc_name_look(nfd, new, &n);
	int r = real_renameat2(ofd, old, nfd, new, flags);
	if (r == 0)
		pc_note_renamed(&o, &n);
	return r;
}

int renameat(int ofd, const char *old, int nfd, const char *new)
{
	return renameat2(ofd, old, nfd, new, 0);
}

int rename(const char *old, const char *new)
{
	return renameat2(AT_FDCWD, old, AT_FDCWD, new, 0);
}

/* ---- engines the hooks cannot see ---- */

/* io_uring writes through shared rings, libaio through io_submit, and
 * neither is decoded here.  While recording their setup fails, so a
 * store falls back to pwrite; otherwise the real setup runs.  The ring
 * and context are opaque to this file. */
int io_uring_queue_init(unsigned entries, void *ring, unsigned flags);
int io_uring_queue_init(unsigned entries, void *ring, unsigned flags)
{
	if (pc_on())
		return -ENOSYS;
	PC_REAL(int, io_uring_queue_init, (unsigned, void *, unsigned));
	return real_io_uring_queue_init(entries, ring, flags);
}

int io_setup(int nr, void *ctx);
int io_setup(int nr, void *ctx)
{
	if (pc_on())
		return -ENOSYS;
	PC_REAL(int, io_setup, (int, void *));
	return real_io_setup(nr, ctx);
}
