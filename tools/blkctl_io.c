/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_io.c - the commands that move bytes: import, export, read,
 * write.
 *
 * The one idea: check everything that can be checked before the first
 * byte moves, so that a refused command changes nothing.  export looks
 * the disk up before it creates the output file (and removes a file it
 * created if the export fails); write knows how much it will write
 * before it writes: from the size of a regular file on stdin, or by
 * reading a pipe to its end first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/blkctl.h"

#define IO_BUF (1u << 20)

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Up to 'want' bytes (fewer only at end of file). */
static int read_some(int fd, uint8_t *p, size_t want, size_t *got)
{
	*got = 0;
	while (*got < want) {
		ssize_t r = read(fd, p + *got, want - *got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

/* ---- import and export ---- */

int bc_cmd_import(bs_store *s, const struct bc_args *a)
{
	const char *disk = a->argv[0], *file = a->argv[1];
	bool from_stdin = !strcmp(file, "-");
	struct bc_progress p;
	int fd = from_stdin ? BC_IN_FD : open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bc_fail(-errno, "import '%s': cannot open '%s'", disk,
			       file);
	bc_progress_init(&p, "import", disk);
	int rc = bs_import(s, disk, fd, bc_progress_cb, &p);
	bc_progress_end(&p);
	if (!from_stdin)
		close(fd);
	if (rc)
		return bc_fail(rc, "import '%s' from '%s'", disk, file);
	return BC_EXIT_OK;
}

int bc_cmd_export(bs_store *s, const struct bc_args *a)
{
	const char *spec = a->argv[0], *file = a->argv[1];
	bool to_stdout = !strcmp(file, "-");
	bool created = false;
	struct bs_info info;
	struct bc_progress p;
	int fd = BC_OUT_FD;

	int rc = bs_info(s, spec, &info);
	if (rc)
		return bc_fail(rc, "export '%s'", spec);
	if (to_stdout && isatty(fd))
		return bc_fail_msg(
			"export '%s': refusing to write a disk image "
			"to a terminal (redirect stdout or give a FILE)",
			spec);
	if (!to_stdout) {
		fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		created = fd >= 0;
		if (fd < 0 && errno == EEXIST)
			fd = open(file, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return bc_fail(-errno, "export '%s': cannot open '%s'",
				       spec, file);
	}
	bc_progress_init(&p, "export", spec);
	rc = bs_export(s, spec, fd, !to_stdout, bc_progress_cb, &p);
	bc_progress_end(&p);
	if (!to_stdout && close(fd) && !rc)
		rc = -errno;
	if (rc && created)
		unlink(file);
	if (rc)
		return bc_fail(rc, "export '%s' to '%s'", spec, file);
	return BC_EXIT_OK;
}

/* ---- read ---- */

int bc_cmd_read(bs_store *s, const struct bc_args *a)
{
	const char *spec = a->argv[0];
	uint64_t off, len;
	bs_disk *d;
	int rc = bc_size_arg(a->cmd, "offset", a->argv[1], &off);
	if (!rc)
		rc = bc_size_arg(a->cmd, "length", a->argv[2], &len);
	if (rc)
		return rc;
	rc = bs_disk_open(s, spec, &d);
	if (rc)
		return bc_fail(rc, "read '%s'", spec);
	uint64_t size = bs_disk_size(d);
	uint8_t *buf = malloc(IO_BUF);
	if (!buf)
		rc = -ENOMEM;
	else if (off > size || len > size - off)
		rc = BS_ERANGE; /* before any output */
	while (!rc && len) {
		size_t n = len < IO_BUF ? (size_t)len : IO_BUF;
		rc = bs_disk_read(d, buf, n, off);
		if (!rc)
			rc = write_all(BC_OUT_FD, buf, n);
		off += n;
		len -= n;
	}
	free(buf);
	int rc2 = bs_disk_close(d);
	if (rc || rc2)
		return bc_fail(rc ? rc : rc2, "read '%s' at %s length %s", spec,
			       a->argv[1], a->argv[2]);
	return BC_EXIT_OK;
}

/* ---- write ---- */

/* stdin is a pipe or a terminal: read it all (at most room + 1 bytes, to
 * tell "too much" from "just fits"), then write. */
static int write_buffered(bs_disk *d, uint64_t off, uint64_t room)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, got;
	int rc = 0;
	do {
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : IO_BUF;
			uint8_t *nb = realloc(buf, ncap);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		rc = read_some(BC_IN_FD, buf + len, cap - len, &got);
		len += got;
		if (!rc && len > room)
			rc = BS_ERANGE;
	} while (!rc && got);
	if (!rc && len)
		rc = bs_disk_write(d, buf, len, off);
	free(buf);
	return rc;
}

/* stdin is a regular file: its size is known, so stream it. */
static int write_streamed(bs_disk *d, uint64_t off, uint64_t room,
			  uint64_t left)
{
	size_t got;
	int rc = left > room ? BS_ERANGE : 0;
	uint8_t *buf = rc ? NULL : malloc(IO_BUF);
	if (!rc && !buf)
		rc = -ENOMEM;
	while (!rc && left) {
		rc = read_some(BC_IN_FD, buf, left < IO_BUF ? left : IO_BUF,
			       &got);
		if (!rc && got == 0)
			break; /* the file shrank: write what there was */
		if (!rc)
			rc = bs_disk_write(d, buf, got, off);
		off += got;
		left -= got;
	}
	free(buf);
	return rc;
}

int bc_cmd_write(bs_store *s, const struct bc_args *a)
{
	const char *spec = a->argv[0];
	struct stat st;
	uint64_t off;
	bs_disk *d;
	int rc = bc_size_arg(a->cmd, "offset", a->argv[1], &off);
	if (rc)
		return rc;
	rc = bs_disk_open(s, spec, &d);
	if (rc)
		return bc_fail(rc, "write '%s'", spec);
	uint64_t size = bs_disk_size(d);
	if (bs_disk_readonly(d))
		rc = BS_EROFS;
	else if (off > size)
		rc = BS_ERANGE;
	else if (fstat(BC_IN_FD, &st))
		rc = -errno;
	if (!rc && S_ISREG(st.st_mode)) {
		off_t pos = lseek(BC_IN_FD, 0, SEEK_CUR);
		uint64_t left = (uint64_t)st.st_size > (uint64_t)pos
					? (uint64_t)st.st_size - (uint64_t)pos
					: 0;
		rc = write_streamed(d, off, size - off, left);
	} else if (!rc) {
		rc = write_buffered(d, off, size - off);
	}
	if (!rc)
		rc = bs_disk_flush(d);
	int rc2 = bs_disk_close(d);
	if (rc || rc2)
		return bc_fail(rc ? rc : rc2, "write '%s' at offset %s", spec,
			       a->argv[1]);
	return BC_EXIT_OK;
}
