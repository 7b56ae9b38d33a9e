/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * torture.c - power-cut torture of the store, in the spirit of ZFS's
 * ztest: a seeded random workload on several disks runs in a child
 * whose every file operation is recorded (powercut.h); the parent then
 * cuts the recording at chosen points, builds the crash images a power
 * cut could leave under several policies, opens each with bs_store_open
 * and holds it to the model (check.h).
 *
 *   torture [-s SEED] [-n OPS] [-c CRASHES] [-d DIR] [-l SECONDS]
 *           [-k CUT] [-p POLICY] [-m strict|journal] [-x FEATURES]
 *           [-S MAXSIZE_KIB] [-o] [-v]
 *
 * Everything follows from the seed: the workload, the cut points, each
 * image's choices.  A failure prints the command that reruns it, and
 * -k/-p check one image only (-o keeps it on disk to look at).
 * docs/crash-testing.md is the manual.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test/crash/check.h"
#include "test/crash/powercut.h"

int pc_selftest(const char *dir); /* pc_selftest.c */

#define MARK_OP 1u      /* operation k starts */
#define MARK_FLUSHED 2u /* operation k (a flush) completed */
#define MARK_CREATED 3u /* -x create: the store exists */

struct opts {
	uint64_t seed, ops, crashes, long_secs, max_kib;
	bool seed_set, keep, verbose, selftest;
	long cut;   /* -k, or -1 */
	int policy; /* -p, or -1 */
	enum pc_nsmodel ns;
	bool x_hold, x_create, x_rebuild;
	bool allow_leaks; /* -a leaks */
	char dir[4096];
};

struct totals {
	uint64_t seeds, points, images, failures;
	uint64_t leaky_images, leaked_chunks; /* -a leaks */
	uint64_t unsynced, dropped, torn; /* what the images did with them */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: torture [-s SEED] [-n OPS] [-c CRASHES] [-d DIR] "
		"[-l SECONDS]\n"
		"               [-k CUT] [-p POLICY] [-m strict|journal] "
		"[-x hold,create,rebuild|none]\n"
		"               [-S MAXSIZE_KIB] [-a leaks] [-o] [-v]\n"
		"policies: drop keep prefix reorder random torn\n");
	exit(2);
}

/* The flags beyond -s/-n/-c that change what a run does, as typed. */
static const char *extra_args(const struct opts *o)
{
	static char b[128];
	size_t n = 0;
	b[0] = 0;
	if (o->ns == PC_NS_JOURNAL)
		n += (size_t)snprintf(b + n, sizeof(b) - n, " -m journal");
	if (!o->x_hold || o->x_create || o->x_rebuild)
		n += (size_t)snprintf(
			b + n, sizeof(b) - n, " -x %s%s%s%s",
			o->x_hold ? "hold," : "", o->x_create ? "create," : "",
			o->x_rebuild ? "rebuild," : "",
			o->x_hold || o->x_create || o->x_rebuild ? "" : "none");
	if (n && b[n - 1] == ',')
		b[--n] = 0;
	if (o->max_kib)
		n += (size_t)snprintf(b + n, sizeof(b) - n, " -S %llu",
				      (unsigned long long)o->max_kib);
	if (o->allow_leaks)
		snprintf(b + n, sizeof(b) - n, " -a leaks");
	return b;
}

static void cfg_for(const struct opts *o, uint64_t seed, struct wl_cfg *c)
{
	wl_cfg_init(c, seed, o->ops);
	c->hold = o->x_hold;
	c->rebuild = o->x_rebuild;
	if (o->max_kib)
		c->max_size = o->max_kib << 10;
}

/* ---- the child: the workload under the recorder ---- */

static int child_run(const struct opts *o, uint64_t seed, const char *store,
		     const char *log)
{
	struct wl w;
	struct wl_cfg cfg;
	struct wl_op op;
	struct bs_store_options bo;
	int rc;

	cfg_for(o, seed, &cfg);
	if (wl_init(&w, &cfg))
		return 2;
	w.path = store;
	rc = pc_rec_start(store, log);
	if (rc) {
		fprintf(stderr, "torture: cannot record %s: %s\n", store,
			strerror(-rc));
		return 2;
	}
	bs_store_options_default(&bo);
	bo.dirty_limit = cfg.dirty_limit;
	bo.io_engine = CAS_IO_SYNC; /* what the recorder sees (pc_record.c) */
	if (o->x_create) {
		rc = bs_store_create(store, &bo);
		if (rc) {
			fprintf(stderr, "torture: create: %s\n",
				bs_strerror(rc));
			return 2;
		}
		pc_rec_mark(MARK_CREATED, 0);
	}
	rc = bs_store_open(store, &bo, &w.s);
	if (rc) {
		fprintf(stderr, "torture: open: %s\n", bs_strerror(rc));
		return 2;
	}
	for (uint64_t k = 0; k <= cfg.ops; k++) {
		if (wl_next(&w, k, &op))
			return 2;
		if (o->verbose) {
			char d[256];
			wl_describe(&w, &op, d, sizeof(d));
			fprintf(stderr, "  %s\n", d);
		}
		pc_rec_mark(MARK_OP, k);
		if (wl_exec(&w, &op)) {
			fprintf(stderr,
				"FAIL seed=%llu (no crash needed): %s\n",
				(unsigned long long)seed, w.err);
			return 1;
		}
		wl_apply(&w, &op);
		if (wl_is_flush(&op))
			pc_rec_mark(MARK_FLUSHED, k);
	}
	rc = pc_rec_stop();
	wl_free(&w);
	if (rc) {
		fprintf(stderr, "torture: log: %s\n", strerror(-rc));
		return 2;
	}
	return 0;
}

/* ---- the parent: cut points, images, checks ---- */

struct cutinfo {
	size_t cut;
	long flushed; /* F: last completed flush, -1 if none */
	long started; /* L: last started operation, -1 if none */
};

static void marks_before(const struct pc_log *l, size_t cut, struct cutinfo *ci)
{
	ci->cut = cut;
	ci->flushed = ci->started = -1;
	for (size_t i = 0; i < cut; i++) {
		const struct pc_rec *r = pc_log_rec(l, i);
		if (r->type != PC_MARK)
			continue;
		if (r->off == MARK_OP)
			ci->started = (long)r->len;
		else if (r->off == MARK_FLUSHED)
			ci->flushed = (long)r->len;
	}
}

/* The model at the cut: run the workload to L, the expectation from F. */
static int expect_for(const struct opts *o, uint64_t seed,
		      const struct cutinfo *ci, struct wl *w, struct expect *x)
{
	struct wl_cfg cfg;
	struct wl_op op;
	int rc;
	cfg_for(o, seed, &cfg);
	if ((rc = wl_init(w, &cfg)) || (rc = exp_init(x)))
		return rc;
	if (ci->flushed < 0)
		rc = exp_begin(x, w, -1);
	for (long k = 0; k <= ci->started && !rc; k++) {
		rc = wl_next(w, (uint64_t)k, &op);
		uint64_t old = op.e >= 0 ? w->ent[op.e].size : 0;
		if (!rc)
			rc = wl_apply(w, &op);
		if (!rc && k == ci->flushed)
			rc = exp_begin(x, w, k);
		else if (!rc && k > ci->flushed)
			rc = exp_note(x, w, &op, old);
	}
	return rc;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* Cut points: the end, random ones, and ones next to syncs and
 * directory changes (where ordering bugs live). */
static size_t pick_cuts(const struct pc_log *l, size_t first, uint64_t seed,
			uint64_t want, size_t *cuts)
{
	size_t n = pc_log_count(l), m = 0, nsync = 0;
	uint64_t rng = mix(seed, 0xc0ffee);
	size_t *sy = malloc((n + 1) * sizeof(*sy));
	if (!sy)
		return 0;
	for (size_t i = first; i < n; i++) {
		uint8_t t = pc_log_rec(l, i)->type;
		if (pc_log_is_sync(l, i) || t == PC_RENAME || t == PC_CREATE ||
		    t == PC_UNLINK || t == PC_MKDIR || t == PC_TRUNC)
			sy[nsync++] = i;
	}
	cuts[m++] = n;
	for (uint64_t k = 1; k < want && n > first; k++) {
		rng = mix(rng, k);
		if ((k & 1) && nsync)
			cuts[m++] = sy[rng % nsync] + ((rng >> 32) & 1);
		else
			cuts[m++] = first + rng % (n - first);
	}
	free(sy);
	qsort(cuts, m, sizeof(*cuts), cmp_size);
	size_t u = 0;
	for (size_t i = 0; i < m; i++)
		if (!u || cuts[u - 1] != cuts[i])
			cuts[u++] = cuts[i];
	return u;
}

static void say_fail(const struct opts *o, uint64_t seed,
		     const struct cutinfo *ci, size_t n, int p, const char *why)
{
	printf("FAIL seed=%llu cut=%zu/%zu policy=%s ns=%s (last flush: op "
	       "%ld, started: op %ld): %s\n",
	       (unsigned long long)seed, ci->cut, n, pc_policy_name(p),
	       o->ns == PC_NS_STRICT ? "strict" : "journal", ci->flushed,
	       ci->started, why);
}

/* check_image in a child: a store that crashes or hangs on an image is
 * a finding to report, not the end of the run. */
static int check_forked(const char *img, const struct wl *w,
			const struct expect *x, unsigned flags,
			struct check_result *cr)
{
	int fds[2], status;
	if (pipe(fds)) {
		perror("pipe");
		exit(2);
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		close(fds[0]);
		alarm(600);
		int bad = check_image(img, w, x, flags, cr);
		ssize_t n = write(fds[1], cr, sizeof(*cr));
		_exit(n == (ssize_t)sizeof(*cr) ? bad : 3);
	}
	close(fds[1]);
	memset(cr, 0, sizeof(*cr));
	ssize_t n = read(fds[0], cr, sizeof(*cr));
	close(fds[0]);
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		exit(2);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) <= 1 &&
	    n == (ssize_t)sizeof(*cr))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		snprintf(cr->why, sizeof(cr->why),
			 "checking the image crashed the store: signal %d "
			 "(%s)%s",
			 WTERMSIG(status), strsignal(WTERMSIG(status)),
			 WTERMSIG(status) == SIGALRM ? ", a hang" : "");
	else
		snprintf(cr->why, sizeof(cr->why),
			 "the image check exited with status %d",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 1;
}

static int check_cut(const struct opts *o, uint64_t seed,
		     const struct pc_log *l, size_t cut, struct totals *t,
		     const char *imgdir)
{
	struct cutinfo ci;
	struct wl w;
	struct expect x;
	struct check_result cr;
	char keep[4400];
	int failed = 0;

	marks_before(l, cut, &ci);
	if (expect_for(o, seed, &ci, &w, &x)) {
		fprintf(stderr, "torture: out of memory\n");
		exit(2);
	}
	t->points++;
	for (int p = 0; p < PC_NPOLICY; p++) {
		struct pc_image_stats st;
		if (o->policy >= 0 && p != o->policy)
			continue;
		pc_rmtree(imgdir);
		int rc = pc_image_build(l, cut, p,
					mix(mix(seed, cut), (uint64_t)p), o->ns,
					imgdir, &st);
		if (rc) {
			fprintf(stderr, "torture: building image: %s\n",
				strerror(-rc));
			exit(2);
		}
		t->images++;
		t->unsynced += st.ops - st.durable;
		t->dropped += st.dropped;
		t->torn += st.torn;
		int bad = check_forked(imgdir, &w, &x,
				       /* every other cut: rebuilt raw */
				       ((cut & 1) ? CHECK_RAW_REBUILD
						  : CHECK_REBUILD) |
					       (o->allow_leaks ? CHECK_ALLOW_LEAKS
							       : 0),
				       &cr);
		if (cr.leaked) {
			t->leaky_images++;
			t->leaked_chunks += cr.leaked;
		}
		if (o->verbose || bad)
			printf("  cut %zu %-7s F=%ld L=%ld ops=%zu durable=%zu "
			       "kept=%zu dropped=%zu torn=%zu: %s\n",
			       cut, pc_policy_name(p), ci.flushed, ci.started,
			       st.ops, st.durable, st.kept, st.dropped, st.torn,
			       bad ? "FAIL" : "ok");
		if (bad) {
			failed++;
			t->failures++;
			say_fail(o, seed, &ci, pc_log_count(l), p, cr.why);
			printf("  rerun this image: torture -s %llu -n %llu -k %zu "
			       "-p %s%s -o\n",
			       (unsigned long long)seed,
			       (unsigned long long)o->ops, cut,
			       pc_policy_name(p), extra_args(o));
		}
		if (o->keep && (bad || o->cut >= 0)) {
			snprintf(keep, sizeof(keep), "%s-%zu-%s", imgdir, cut,
				 pc_policy_name(p));
			pc_rmtree(keep);
			rename(imgdir, keep);
			printf("  image kept in %s\n", keep);
		}
	}
	pc_rmtree(imgdir);
	wl_free(&w);
	exp_free(&x);
	return failed;
}

static int run_seed(const struct opts *o, uint64_t seed, struct totals *t)
{
	char store[4200], log[4200], img[4200];
	double t0 = now();
	int failed = 0, status;

	snprintf(store, sizeof(store), "%s/store", o->dir);
	snprintf(log, sizeof(log), "%s/log", o->dir);
	snprintf(img, sizeof(img), "%s/img", o->dir);
	pc_rmtree(store);
	pc_rmtree(img);
	if (o->x_create) {
		if (mkdir(store, 0700)) {
			perror(store);
			exit(2);
		}
	} else {
		struct bs_store_options bo;
		bs_store_options_default(&bo);
		bo.compress_level = (int)(mix(seed, 1) % 3) == 0 ? 0 : 1;
		int rc = bs_store_create(store, &bo);
		if (rc) {
			fprintf(stderr, "torture: create %s: %s\n", store,
				bs_strerror(rc));
			exit(2);
		}
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0)
		_exit(child_run(o, seed, store, log));
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		exit(2);
	}
	t->seeds++;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
			exit(2);
		printf("FAIL seed=%llu: the workload failed without a crash "
		       "(status %d)\n",
		       (unsigned long long)seed, status);
		t->failures++;
		return 1;
	}

	struct pc_log *l;
	int rc = pc_log_load(log, &l);
	if (rc) {
		fprintf(stderr, "torture: log %s: %s\n", log, strerror(-rc));
		exit(2);
	}
	size_t n = pc_log_count(l), first = 0;
	while (first < n && (pc_log_rec(l, first)->type == PC_BASE_DIR ||
			     pc_log_rec(l, first)->type == PC_BASE_FILE))
		first++;
	if (o->x_create) /* cut only once bs_store_create has returned */
		for (size_t i = first; i < n; i++) {
			const struct pc_rec *r = pc_log_rec(l, i);
			if (r->type == PC_MARK && r->off == MARK_CREATED) {
				first = i + 1;
				break;
			}
		}
	size_t *cuts = malloc((o->crashes + 1) * sizeof(*cuts)), ncuts;
	if (!cuts)
		exit(2);
	if (o->cut >= 0) {
		cuts[0] = (size_t)o->cut < n ? (size_t)o->cut : n;
		ncuts = 1;
	} else {
		ncuts = pick_cuts(l, first, seed, o->crashes, cuts);
	}
	uint64_t images0 = t->images;
	for (size_t i = 0; i < ncuts; i++)
		failed += check_cut(o, seed, l, cuts[i], t, img);
	struct stat st;
	stat(log, &st);
	printf("seed %llu: %llu ops, %zu log records (%.1f MiB), %zu crash "
	       "points, %llu images: %s (%.1f s)\n",
	       (unsigned long long)seed, (unsigned long long)o->ops, n,
	       st.st_size / 1048576.0, ncuts,
	       (unsigned long long)(t->images - images0),
	       failed ? "FAILED" : "ok", now() - t0);
	if (failed)
		printf("rerun: torture -s %llu -n %llu -c %llu%s\n",
		       (unsigned long long)seed, (unsigned long long)o->ops,
		       (unsigned long long)o->crashes, extra_args(o));
	fflush(stdout);
	free(cuts);
	pc_log_free(l);
	return failed ? 1 : 0;
}

static void parse_x(struct opts *o, char *s)
{
	o->x_hold = o->x_create = o->x_rebuild = false;
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (!strcmp(tok, "hold"))
			o->x_hold = true;
		else if (!strcmp(tok, "create"))
			o->x_create = true;
		else if (!strcmp(tok, "rebuild"))
			o->x_rebuild = true;
		else if (strcmp(tok, "none"))
			usage();
	}
}

int main(int argc, char **argv)
{
	struct opts o = {.ops = 300,
			 .crashes = 20,
			 .cut = -1,
			 .policy = -1,
			 .x_hold = true};
	struct totals t = {0};
	bool made_dir = false;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "a:s:n:c:d:l:k:p:m:x:S:ovD:T")) != -1) {
		switch (c) {
		case 'D': { /* dump a log: torture -D LOG */
			struct pc_log *l;
			int rc = pc_log_load(optarg, &l);
			if (rc) {
				fprintf(stderr, "%s: %s\n", optarg,
					strerror(-rc));
				return 2;
			}
			pc_log_dump(l, 0, pc_log_count(l), stdout);
			pc_log_free(l);
			return 0;
		}
		case 'a':
			if (strcmp(optarg, "leaks"))
				usage();
			o.allow_leaks = true;
			break;
		case 's':
			o.seed = strtoull(optarg, NULL, 0);
			o.seed_set = true;
			break;
		case 'n':
			o.ops = strtoull(optarg, NULL, 0);
			break;
		case 'c':
			o.crashes = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			snprintf(o.dir, sizeof(o.dir), "%s", optarg);
			break;
		case 'l':
			o.long_secs = strtoull(optarg, NULL, 0);
			break;
		case 'k':
			o.cut = strtol(optarg, NULL, 0);
			break;
		case 'p':
			o.policy = pc_policy_parse(optarg);
			if (o.policy < 0)
				usage();
			break;
		case 'm':
			if (!strcmp(optarg, "journal"))
				o.ns = PC_NS_JOURNAL;
			else if (strcmp(optarg, "strict"))
				usage();
			break;
		case 'x':
			parse_x(&o, optarg);
			break;
		case 'S':
			o.max_kib = strtoull(optarg, NULL, 0);
			if (o.max_kib < 128)
				usage();
			break;
		case 'o':
			o.keep = true;
			break;
		case 'T':
			o.selftest = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !o.ops || !o.crashes)
		usage();
	if (!o.seed_set &&
	    getrandom(&o.seed, sizeof(o.seed), 0) != (ssize_t)sizeof(o.seed))
		o.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	if (!o.seed_set)
		o.seed %= 1000000000000ull; /* short enough to type */
	if (!o.dir[0]) {
		/* tmpfs if there is one: the images' syncs cost nothing */
		const char *tmp = getenv("TMPDIR");
		if (!tmp)
			tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
							    : "/tmp";
		snprintf(o.dir, sizeof(o.dir), "%s/torture.XXXXXX", tmp);
		if (!mkdtemp(o.dir)) {
			perror(o.dir);
			return 2;
		}
		made_dir = true;
	} else if (mkdir(o.dir, 0700) && errno != EEXIST) {
		perror(o.dir);
		return 2;
	}

	if (o.selftest) {
		int rc = pc_selftest(o.dir);
		if (made_dir)
			pc_rmtree(o.dir);
		return rc;
	}
	pc_set_nosync(true); /* the log is the disk: real syncs only cost */
	double t0 = now();
	uint64_t seed = o.seed;
	do {
		printf("torture: seed %llu (rerun: torture -s %llu -n %llu -c "
		       "%llu%s)\n",
		       (unsigned long long)seed, (unsigned long long)seed,
		       (unsigned long long)o.ops, (unsigned long long)o.crashes,
		       extra_args(&o));
		run_seed(&o, seed, &t);
		seed = mix(seed, 0x5eed) % 1000000000000ull;
	} while (o.long_secs && now() - t0 < (double)o.long_secs);

	printf("torture: %llu seed%s, %llu crash points, %llu images checked, "
	       "%llu failure%s (%.1f s)\n",
	       (unsigned long long)t.seeds, t.seeds == 1 ? "" : "s",
	       (unsigned long long)t.points, (unsigned long long)t.images,
	       (unsigned long long)t.failures, t.failures == 1 ? "" : "s",
	       now() - t0);
	printf("torture: the images dropped %llu and tore %llu of %llu "
	       "unsynced operations\n",
	       (unsigned long long)t.dropped, (unsigned long long)t.torn,
	       (unsigned long long)t.unsynced);
	if (t.leaky_images)
		printf("torture: %llu images leaked %llu chunks after the cut "
		       "(fsck: count too high; tolerated by -a leaks, "
		       "repaired before checking on)\n",
		       (unsigned long long)t.leaky_images,
		       (unsigned long long)t.leaked_chunks);
	if (made_dir && !t.failures && !o.keep)
		pc_rmtree(o.dir);
	else
		printf("torture: work directory %s\n", o.dir);
	return t.failures ? 1 : 0;
}
