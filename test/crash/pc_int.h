/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pc_int.h - between the libc hooks (pc_hooks.c) and the recorder
 * (pc_record.c).  Not part of the simulation's contract (powercut.h).
 *
 * A hook runs the real call, then tells the recorder what happened; the
 * recorder decides whether it concerns a file under the recorded root
 * and logs it.  Calls that change a directory entry look at the name
 * before the real call (what it was) and report after it.  Every pc_note
 * function keeps errno as it found it.
 */
#ifndef CAVM_TEST_CRASH_PC_INT_H
#define CAVM_TEST_CRASH_PC_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "test/crash/powercut.h"

/* The next definition of a libc function (dlsym RTLD_NEXT); aborts if
 * there is none. */
void *pc_real(const char *name);
#define PC_REAL(type, name, args)       \
	static type(*real_##name) args; \
	if (!real_##name)               \
	real_##name = (type(*) args)pc_real(#name)

bool pc_on(void);
bool pc_nosync(void); /* pc_set_nosync() */

/* After a write of n bytes at off (-1: at the descriptor's position, now
 * past them) gathered from iov; flags may hold PC_F_DSYNC. */
void pc_note_write(int fd, const struct iovec *iov, int cnt, size_t n,
		   int64_t off, unsigned flags);
/* After ftruncate (PC_TRUNC, off = size) or fsync/fdatasync (PC_SYNC). */
void pc_note_fd(int fd, uint8_t type, uint64_t off);
void pc_note_path_trunc(const char *path, uint64_t size);
void pc_note_syncall(void);

/* A name as it was before the call that changes it. */
struct pc_name {
	char abs[PATH_MAX];
	const char *rel; /* NULL: not under the root (or not recording) */
	bool exists;
	struct stat st;
};
void pc_name_look(int dirfd, const char *path, struct pc_name *n);
/* After a successful open with O_CREAT or O_TRUNC. */
void pc_note_opened(const struct pc_name *n, int fd, int flags);
/* After unlink (PC_UNLINK) or rmdir (PC_RMDIR). */
void pc_note_removed(const struct pc_name *n, uint8_t type);
void pc_note_mkdir(const struct pc_name *n);
void pc_note_renamed(const struct pc_name *from, const struct pc_name *to);

#endif
