/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * powercut.h - power-cut simulation for the crash torture (test only).
 *
 * Two halves, after SQLite's crash VFS and dm-log-writes:
 *
 *  - Recording (pc_hooks.c, pc_record.c).  The torture binary itself
 *    defines libc's file-mutating calls (open*, write, pwrite*, writev,
 *    pwritev*, ftruncate, fsync, fdatasync, sync, syncfs, rename*,
 *    unlink*, mkdir*, rmdir ...); each one goes through to the real call
 *    (dlsym RTLD_NEXT) and, while recording is on and the file lies under
 *    the recorded root, appends the operation to a log: its file (by
 *    inode, not by descriptor), offset, length and data, or its path.
 *    The dynamic linker lets the executable's definitions win for shared
 *    libraries too, so LMDB's pwrite/writev/fdatasync and its O_DSYNC
 *    meta-page writes are recorded with cas's segment I/O: the whole
 *    store is cut at once.  Built with -DPC_PRELOAD -shared -fPIC the two
 *    files are an LD_PRELOAD object that records by itself
 *    ($POWERCUT_DIR, $POWERCUT_LOG) for any other program.
 *
 *  - Replay (pc_replay.c).  Given the log, a cut point (a record index:
 *    records before it were issued, none after) and a policy, build the
 *    directory a power cut there could leave (docs/crash-testing.md has
 *    the model): synced operations always survive; each unsynced one is
 *    dropped, kept, or (a write) torn at 512-byte sectors, as the policy
 *    and its seed say, independently of order.
 *
 * Log records are little-endian and explicit (common/endian.h).
 */
#ifndef CAVM_TEST_CRASH_POWERCUT_H
#define CAVM_TEST_CRASH_POWERCUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- recording ---- */

/* Start recording operations on files under 'root' into a new log at
 * 'logpath' (which must lie outside root).  The current content of root
 * (every directory and regular file) is logged first: it is the state a
 * cut can never go behind.  0 or -errno. */
int pc_rec_start(const char *root, const char *logpath);
/* A marker in the log, ordered with the I/O around it (the torture marks
 * "operation k starts" and "flush k completed").  Also writes the log's
 * buffer out, so a child that dies keeps its log up to the last mark. */
void pc_rec_mark(uint32_t kind, uint64_t value);
/* Stop recording and close the log.  0 or -errno. */
int pc_rec_stop(void);
/* Speed: fsync, fdatasync, sync and syncfs return at once without the
 * real call (still recorded).  Nothing here relies on the real disk's
 * durability, only on the log; the torture turns this on. */
void pc_set_nosync(bool on);

/* ---- the log ---- */

enum pc_type {
	PC_BASE_DIR = 1, /* a directory present when recording began */
	PC_BASE_FILE,    /* a file present then, with its content */
	PC_WRITE,        /* data at an offset (flag PC_F_DSYNC: synced) */
	PC_TRUNC,        /* ftruncate/truncate/O_TRUNC: new size */
	PC_SYNC,         /* fsync/fdatasync of a file or directory */
	PC_SYNCALL,      /* sync()/syncfs(): everything */
	PC_CREATE,       /* a new file's directory entry */
	PC_MKDIR,
	PC_UNLINK,
	PC_RMDIR,
	PC_RENAME,
	PC_MARK,
};
#define PC_F_DSYNC 1u /* write through an O_DSYNC/O_SYNC descriptor */

struct pc_rec {
	uint8_t type;
	uint8_t flags;
	uint32_t id;       /* inode the record is about (1, 2, ...) */
	uint32_t parent;   /* its directory (the new one for a rename) */
	uint32_t parent2;  /* rename: the old directory */
	uint64_t off;      /* WRITE: offset; TRUNC: size; MARK: kind */
	uint64_t len;      /* WRITE/BASE_FILE: data bytes; MARK: value */
	const char *path;  /* relative to the root ("" = the root) */
	const char *path2; /* rename: the new path */
	const uint8_t *data;
};

struct pc_log;
int pc_log_load(const char *path, struct pc_log **out);
void pc_log_free(struct pc_log *l);
size_t pc_log_count(const struct pc_log *l);
const struct pc_rec *pc_log_rec(const struct pc_log *l, size_t i);
/* Is record i a durability point (a sync, or an O_DSYNC write)? */
bool pc_log_is_sync(const struct pc_log *l, size_t i);
/* Print records [from, to) one per line (for debugging a failure). */
void pc_log_dump(const struct pc_log *l, size_t from, size_t to, void *file);

/* ---- replay ---- */

enum pc_policy {
	PC_DROP,    /* every unsynced operation lost */
	PC_KEEP,    /* every one kept (what a process crash leaves) */
	PC_PREFIX,  /* kept up to a random point, lost after (in order) */
	PC_REORDER, /* lost up to a random point, kept after */
	PC_RANDOM,  /* each kept or lost by a coin */
	PC_TORN,    /* writes kept, lost or torn per 512-byte sector */
	PC_NPOLICY
};
const char *pc_policy_name(int p);
int pc_policy_parse(const char *s); /* -1 if unknown */

/* How directory entries (create, rename, unlink, mkdir) become durable:
 *  strict   only an fsync of their directory makes them so (POSIX; the
 *           default); unsynced ones are each kept or lost by the policy;
 *  journal  any completed fsync/fdatasync makes every earlier one
 *           durable, and unsynced ones survive as a prefix (ext4/XFS
 *           journal order). */
enum pc_nsmodel {
	PC_NS_STRICT,
	PC_NS_JOURNAL
};

struct pc_image_stats {
	size_t ops;     /* data and namespace records before the cut */
	size_t durable; /* synced: always applied */
	size_t kept, dropped, torn;
};

/* Build the crash image of a cut before record 'cut' (0..count) in
 * 'outdir' (created; must not exist).  The seed drives every choice, so
 * the same arguments give the same image.  0 or -errno. */
int pc_image_build(const struct pc_log *l, size_t cut, int policy,
		   uint64_t seed, enum pc_nsmodel ns, const char *outdir,
		   struct pc_image_stats *st);

/* rm -rf (test helper).  0 or -errno. */
int pc_rmtree(const char *path);

#endif
