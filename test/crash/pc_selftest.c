/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pc_selftest.c - the power-cut simulation checked on a scenario small
 * enough to know every answer (torture -T; CI runs it first).
 *
 * A file is created and made durable (fsync of it and of its directory),
 * then overwritten and extended without a sync; a second file is written
 * through an O_DSYNC descriptor; a third is created and fsync'ed but its
 * directory is not; a baseline file is renamed without a directory
 * fsync.  For each policy the image must hold exactly what the model of
 * docs/crash-testing.md allows: synced things always, unsynced ones as
 * the policy says, a torn sector never mixed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/crash/powercut.h"

#define S 512

static int bad(const char *what, const char *img)
{
	fprintf(stderr, "powercut self-test: %s (image %s)\n", what, img);
	return 1;
}

/* Read a file of the image; size -1 if absent. */
static long slurp(const char *img, const char *name, char *buf, size_t cap)
{
	char p[4200];
	snprintf(p, sizeof(p), "%.4000s/%.16s", img, name);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return -1;
	long n = (long)read(fd, buf, cap);
	close(fd);
	return n;
}

static bool all(const char *b, size_t n, char c)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != c)
			return false;
	return true;
}

static int record(const char *root, const char *log)
{
	char p[4200], q[4200], b[2048];
	int fd, dfd, rc;
	if (strlen(root) > 4000)
		return -ENAMETOOLONG;
	snprintf(p, sizeof(p), "%.4000s/base", root);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	memset(b, 'B', sizeof(b));
	if (fd < 0 || write(fd, b, 1000) != 1000)
		return -EIO;
	close(fd);
	if ((rc = pc_rec_start(root, log)))
		return rc;
	dfd = open(root, O_RDONLY | O_DIRECTORY);
	/* f: created, written, all durable */
	snprintf(p, sizeof(p), "%.4000s/f", root);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	memset(b, 'a', 1024);
	pwrite(fd, b, 1024, 0);
	fsync(fd);
	fsync(dfd);
	/* then overwritten and extended, unsynced */
	memset(b, 'b', 1024);
	pwrite(fd, b, 1024, 0);
	memset(b, 'c', S);
	pwrite(fd, b, S, 2048);
	close(fd);
	/* h: name durable, then one O_DSYNC write */
	snprintf(p, sizeof(p), "%.4000s/h", root);
	fd = open(p, O_CREAT | O_WRONLY | O_DSYNC, 0600);
	fsync(dfd);
	memset(b, 'd', S);
	pwrite(fd, b, S, 0);
	close(fd);
	/* g: its data synced, its name not */
	snprintf(p, sizeof(p), "%.4000s/g", root);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	write(fd, "g", 1);
	fsync(fd);
	close(fd);
	/* a rename nobody syncs */
	snprintf(p, sizeof(p), "%.4000s/base", root);
	snprintf(q, sizeof(q), "%.4000s/base2", root);
	rename(p, q);
	pc_rec_mark(1, 0);
	close(dfd);
	return pc_rec_stop();
}

static int check(int pol, enum pc_nsmodel ns, const char *img)
{
	char b[4096];
	long n = slurp(img, "f", b, sizeof(b));
	bool kept = pol == PC_KEEP;
	if (n < 1024)
		return bad("f lost durable data", img);
	for (long s = 0; s < 1024; s += S)
		if (!all(b + s, S, 'a') && !all(b + s, S, 'b'))
			return bad("f: a sector mixes two versions", img);
	if (pol == PC_DROP && (n != 1024 || !all(b, 1024, 'a')))
		return bad("drop: f must be exactly its synced content", img);
	if (kept && (n != 2560 || !all(b, 1024, 'b') ||
		     !all(b + 1024, 1024, 0) || !all(b + 2048, S, 'c')))
		return bad("keep: f must hold every write", img);
	if (n != 1024 && n != 2048 && n != 2560)
		return bad("f has a size no history explains", img);
	if (n == 2560 && !all(b + 2048, S, 'c') && !all(b + 2048, S, 0))
		return bad("f: appended sector is neither written nor zero",
			   img);
	n = slurp(img, "g", b, sizeof(b));
	if (ns == PC_NS_STRICT && pol == PC_DROP && n >= 0)
		return bad("strict drop: g's name was never synced", img);
	if ((ns == PC_NS_JOURNAL || kept) && (n != 1 || b[0] != 'g'))
		return bad("g's name is durable here and so is its data", img);
	n = slurp(img, "h", b, sizeof(b));
	if (n != S || !all(b, S, 'd'))
		return bad("h: an O_DSYNC write is durable", img);
	bool base = slurp(img, "base", b, sizeof(b)) == 1000;
	bool base2 = slurp(img, "base2", b, sizeof(b)) == 1000;
	if (base == base2)
		return bad("the renamed file must be under exactly one name",
			   img);
	if ((pol == PC_DROP && !base) || (kept && !base2))
		return bad("the unsynced rename went the wrong way", img);
	return 0;
}

int pc_selftest(const char *dir);
int pc_selftest(const char *dir)
{
	char root[4000], log[4000], img[4000];
	struct pc_log *l;
	int fails = 0;
	snprintf(root, sizeof(root), "%.3900s/pcroot", dir);
	snprintf(log, sizeof(log), "%.3900s/pclog", dir);
	snprintf(img, sizeof(img), "%.3900s/pcimg", dir);
	pc_rmtree(root);
	if (mkdir(root, 0700) || record(root, log) || pc_log_load(log, &l)) {
		fprintf(stderr, "powercut self-test: cannot record\n");
		return 1;
	}
	size_t cut = pc_log_count(l);
	for (int ns = PC_NS_STRICT; ns <= PC_NS_JOURNAL; ns++)
		for (int p = 0; p < PC_NPOLICY; p++)
			for (uint64_t seed = 1; seed <= 16; seed++) {
				pc_rmtree(img);
				if (pc_image_build(l, cut, p, seed, ns, img,
						   NULL)) {
					fails++;
					continue;
				}
				fails += check(p, ns, img);
			}
	pc_log_free(l);
	pc_rmtree(img);
	pc_rmtree(root);
	unlink(log);
	printf("powercut self-test: %s\n", fails ? "FAILED" : "ok");
	return fails ? 1 : 0;
}
