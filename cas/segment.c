/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * segment.c - the segment files: a directory of append-only chunk logs
 * named NNNNNN.seg, and the table of open file descriptors readers use.
 *
 * The one idea: a segment is only ever appended to (by the writer, through
 * a tail buffer in cas.c) and removed whole (by compaction, under
 * seg_lock held exclusively); so readers never see a record change under
 * them.  Which segments exist and how much of each is committed is the
 * index's business (the "segs" table), not the directory listing's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas/cas_int.h"

int seg_open_dir(struct seg_set *s, const char *dir)
{
	memset(s, 0, sizeof(*s));
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return errno == ENOENT ? CAS_EBADSTORE : -errno;
	s->next_id = 1;
	return 0;
}

void seg_close_all(struct seg_set *s)
{
	for (uint32_t i = 0; i < s->nfds; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	free(s->fds);
	free(s->tail);
	free(s->dirty);
	if (s->dirfd >= 0)
		close(s->dirfd);
	memset(s, 0, sizeof(*s));
	s->dirfd = -1;
}

static int seg_fds_reserve(struct seg_set *s, uint32_t id)
{
	if (id < s->nfds)
		return 0;
	uint32_t n = s->nfds ? s->nfds : 64;
	while (n <= id)
		n *= 2;
	int *fds = realloc(s->fds, n * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	for (uint32_t i = s->nfds; i < n; i++)
		fds[i] = -1;
	s->fds = fds;
	s->nfds = n;
	return 0;
}

int seg_file_open(struct seg_set *s, uint32_t id, bool create)
{
	char name[32];
	int rc = seg_fds_reserve(s, id);
	if (rc < 0)
		return rc;
	if (s->fds[id] >= 0)
		return 0;
	snprintf(name, sizeof(name), "%06u.seg", id);
	int fd = openat(s->dirfd, name,
			O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0),
			0600);
	if (fd < 0)
		return -errno;
	s->fds[id] = fd;
	if (create)
		s->dir_dirty = true;
	return 0;
}

int seg_mark_dirty(struct seg_set *s, uint32_t id)
{
	for (size_t i = 0; i < s->ndirty; i++)
		if (s->dirty[i] == id)
			return 0;
	if (s->ndirty == s->dirty_cap) {
		size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 8;
		uint32_t *d = realloc(s->dirty, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		s->dirty = d;
		s->dirty_cap = cap;
	}
	s->dirty[s->ndirty++] = id;
	return 0;
}
