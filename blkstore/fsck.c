/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fsck.c - store maintenance: gc, scrub (naming the disks a damaged chunk
 * belongs to), fsck (every reference count recomputed from the roots),
 * and rebuild (index from segments, then recount).
 *
 * The one idea: the catalogue's roots are the only truth about what is
 * referenced.  Walking them (walk.c) gives every chunk's expected count;
 * any difference from the index is either a leak (count too high: space
 * never reclaimed) or, far worse, a count too low (a chunk could be freed
 * while still reachable).  fsck reports both and, asked to, sets them
 * right.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkstore/bs_int.h"

int bs_gc(bs_store *s, struct cas_gc_result *r)
{
	int rc = bs_store_flush(s);
	return rc ? rc : cas_gc(s->c, r);
}

struct root_ent {
	char spec[BS_SPEC_MAX];
	cas_name root;
	uint64_t nblocks;
};
struct roots {
	struct root_ent *v;
	size_t n, cap;
};

static int add_root(void *arg, const struct bs_info *i)
{
	struct roots *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 32;
		struct root_ent *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	struct root_ent *e = &r->v[r->n++];
	if (i->snap[0])
		snprintf(e->spec, sizeof(e->spec), "%s@%s", i->disk, i->snap);
	else
		snprintf(e->spec, sizeof(e->spec), "%s", i->disk);
	e->root = i->root;
	e->nblocks = bs_nblocks(i->size);
	return 0;
}

struct report {
	bs_report_fn fn;
	void *arg;
	uint64_t problems;
	uint64_t unreadable; /* map nodes the walk could not read */
};

static void say(struct report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct report *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r->fn)
		r->fn(r->arg, line);
}

static void walk_err(void *arg, const cas_name *n, int err)
{
	struct report *r = arg;
	char hex[2 * CAS_NAME_SIZE + 1];
	cas_name_format(n, hex);
	r->problems++;
	r->unreadable++;
	say(r, "map node %s cannot be read: %s (the blocks under it are lost)",
	    hex, bs_strerror(err));
}

/* Expected counts of every chunk the catalogue's roots reach. */
static int expected_counts(bs_store *s, struct bs_nameset *ns,
			   struct report *rep, struct roots *roots)
{
	int rc = bs_list_all(s, add_root, roots, true);
	for (size_t i = 0; i < roots->n && !rc; i++)
		rc = bs_walk(s, ns, &roots->v[i].root, roots->v[i].nblocks,
			     NULL, walk_err, rep);
	return rc;
}

struct cmp_ctx {
	bs_store *s;
	struct bs_nameset *ns;
	struct report *rep;
	bool repair;
	int err;
};

static int compare_one(void *arg, const cas_name *n, uint32_t refs)
{
	struct cmp_ctx *c = arg;
	char hex[2 * CAS_NAME_SIZE + 1];
	struct bs_nameset_ent *e = bs_nameset_find(c->ns, n);
	uint32_t want = e ? e->count : 0;
	if (e)
		e->mark = 1;
	if (refs == want)
		return 0;
	cas_name_format(n, hex);
	c->rep->problems++;
	/* With a map node unreadable, what lies under it was not counted:
	 * a count above the walk's may be right.  Never lower it then. */
	bool lower_unsafe = refs > want && c->rep->unreadable;
	say(c->rep, "chunk %s: index count %u, roots reach it %u time%s (%s)%s",
	    hex, refs, want, want == 1 ? "" : "s",
	    refs > want ? "leak" : "count too low: could be freed while in use",
	    !c->repair     ? ""
	    : lower_unsafe ? "; not lowered: a map node could not be read, so "
			     "what lies under it is unknown"
			   : "; repaired");
	if (c->repair && !lower_unsafe) {
		int rc = cas_set_refs(c->s->c, n, want);
		if (rc)
			return c->err = rc;
	}
	return 0;
}

static int fsck_run(bs_store *s, unsigned flags, struct report *rep)
{
	struct bs_nameset ns;
	struct roots roots = {0};
	int rc = bs_nameset_init(&ns);
	if (rc)
		return rc;
	rc = bs_store_flush(s);
	uint64_t bad_page;
	if (!rc && (rc = cas_check_index(s->c, &bad_page)) == CAS_EBADINDEX)
		say(rep, "the chunk index is damaged (LMDB page %llu): run "
			 "fsck --rebuild to recreate it from the segments",
		    (unsigned long long)bad_page);
	if (!rc)
		rc = expected_counts(s, &ns, rep, &roots);
	struct cmp_ctx cc = {s, &ns, rep, flags & BS_FSCK_REPAIR, 0};
	if (!rc)
		rc = cas_foreach(s->c, compare_one, &cc);
	if (!rc)
		rc = cc.err;
	for (size_t i = 0; i < ns.cap && !rc; i++) {
		struct bs_nameset_ent *e = &ns.v[i];
		char hex[2 * CAS_NAME_SIZE + 1];
		if (!e->used || e->mark)
			continue;
		cas_name_format(&e->name, hex);
		rep->problems++;
		say(rep, "chunk %s is referenced %u time%s but missing from the "
			 "store (its blocks read as errors)",
		    hex, e->count, e->count == 1 ? "" : "s");
	}
	if (!rc && (flags & BS_FSCK_REPAIR))
		rc = bs_sync(s, 0);
	if (!rc)
		say(rep, "%zu roots, %zu distinct chunks reachable, %llu problem%s",
		    roots.n, ns.n, (unsigned long long)rep->problems,
		    rep->problems == 1 ? "" : "s");
	free(roots.v);
	bs_nameset_free(&ns);
	return rc;
}

int bs_fsck(bs_store *s, unsigned flags, bs_report_fn fn, void *arg)
{
	struct report rep = {fn, arg, 0, 0};
	int rc = fsck_run(s, flags, &rep);
	return rc ? rc : (int)(rep.problems > INT32_MAX ? INT32_MAX : rep.problems);
}

/*
 * Set every count from the roots after an index rebuild, and let gc run
 * again only on a complete count: with no catalogue (lost with the index:
 * none was replayed from the segments) or unreadable map nodes, zero counts would let gc delete chunks that
 * disks may still need.  Problems are counted into rep.
 */
static int recount(bs_store *s, struct report *rep, bool catalogue_known)
{
	struct bs_nameset ns;
	struct roots roots = {0};
	struct cas_stat st;
	int rc = bs_nameset_init(&ns);
	if (!rc)
		rc = expected_counts(s, &ns, rep, &roots);
	for (size_t i = 0; i < ns.cap && !rc; i++) {
		struct bs_nameset_ent *e = &ns.v[i];
		if (!e->used)
			continue;
		int r = cas_set_refs(s->c, &e->name, e->count);
		if (r == -ENOENT) {
			char hex[2 * CAS_NAME_SIZE + 1];
			cas_name_format(&e->name, hex);
			rep->problems++;
			say(rep, "chunk %s is referenced but no segment holds it",
			    hex);
		} else if (r) {
			rc = r;
		}
	}
	if (!rc)
		rc = cas_stat(s->c, &st);
	if (!rc && roots.n == 0 && st.chunks > 0 && !catalogue_known) {
		rep->problems++;
		say(rep, "the catalogue of disks was lost with the index: %llu "
			 "chunks are kept but no disk names them; gc stays "
			 "disabled so that nothing is deleted",
		    (unsigned long long)st.chunks);
	} else if (!rc && rep->unreadable) {
		say(rep, "%llu map node%s could not be read: gc stays disabled "
			 "so that the chunks under them are kept",
		    (unsigned long long)rep->unreadable,
		    rep->unreadable == 1 ? "" : "s");
	} else if (!rc) {
		rc = cas_recount_done(s->c);
	}
	if (!rc)
		say(rep, "recounted references from %zu roots", roots.n);
	free(roots.v);
	bs_nameset_free(&ns);
	return rc;
}

int bs_recount_if_pending(bs_store *s)
{
	struct report rep = {NULL, NULL, 0, 0};
	return cas_recount_pending(s->c) ? recount(s, &rep, false) : 0;
}

int bs_rebuild(const char *path, bs_report_fn fn, void *arg)
{
	struct report rep = {fn, arg, 0, 0};
	struct cas_rebuild_info ri;
	bs_store *s;
	int rc = cas_rebuild_ex(path, &ri);
	if (rc)
		return rc;
	say(&rep, "index rebuilt from segments: %llu chunks found, %llu bad "
		  "record%s skipped",
	    (unsigned long long)ri.found, (unsigned long long)ri.bad_records,
	    ri.bad_records == 1 ? "" : "s");
	if (ri.catalogue == CAS_CAT_JOURNAL)
		say(&rep, "catalogue replayed from the segments: %llu entr%s "
			  "(checkpoint %llu, %llu commit%s after it)",
		    (unsigned long long)ri.entries, ri.entries == 1 ? "y" : "ies",
		    (unsigned long long)ri.checkpoint_seq,
		    (unsigned long long)ri.commits_replayed,
		    ri.commits_replayed == 1 ? "" : "s");
	else if (ri.catalogue == CAS_CAT_OLD_INDEX)
		say(&rep, "catalogue carried over from the old index: %llu "
			  "entr%s",
		    (unsigned long long)ri.entries, ri.entries == 1 ? "y" : "ies");
	if (ri.commits_skipped)
		say(&rep, "%llu catalogue commit%s skipped: written just before "
			  "a crash and not whole on disk (the catalogue is as "
			  "it was before %s)",
		    (unsigned long long)ri.commits_skipped,
		    ri.commits_skipped == 1 ? "" : "s",
		    ri.commits_skipped == 1 ? "it" : "them");
	if (ri.foreign_records)
		say(&rep, "%llu record%s that look%s like catalogue records but "
			  "carry another store's id ignored",
		    (unsigned long long)ri.foreign_records,
		    ri.foreign_records == 1 ? "" : "s",
		    ri.foreign_records == 1 ? "s" : "");
	rc = bs_store_open_norecount(path, NULL, &s);
	if (rc)
		return rc;
	/* An empty catalogue replayed from the segments is known empty
	 * (every disk deleted, gc not run yet), not lost. */
	rc = recount(s, &rep, ri.catalogue == CAS_CAT_JOURNAL);
	int rc2 = bs_store_close(s);
	if (rc || rc2)
		return rc ? rc : rc2;
	return (int)(rep.problems > INT32_MAX ? INT32_MAX : rep.problems);
}

/* ---- scrub ---- */

struct scrub_ctx {
	struct bs_nameset bad;
	int first_err;
};

static void on_bad(void *arg, const cas_name *n, int err)
{
	struct scrub_ctx *sc = arg;
	if (bs_nameset_add(&sc->bad, n) > 0) {
		struct bs_nameset_ent *e = bs_nameset_find(&sc->bad, n);
		e->mark = (uint32_t)-err;
	}
}

struct owner_ctx {
	struct bs_nameset *bad;
	char **specs; /* per slot of bad */
	const char *spec;
};

static int find_owner(void *arg, const cas_name *n, unsigned level, bool first)
{
	struct owner_ctx *o = arg;
	(void)level;
	struct bs_nameset_ent *e = first ? bs_nameset_find(o->bad, n) : NULL;
	if (!e)
		return 0; /* not damaged, or already noted for this root */
	char **sp = &o->specs[e - o->bad->v];
	size_t len = (*sp ? strlen(*sp) + 1 : 0) + strlen(o->spec) + 1;
	char *ns = malloc(len);
	if (!ns)
		return -ENOMEM;
	snprintf(ns, len, "%s%s%s", *sp ? *sp : "", *sp ? "," : "", o->spec);
	free(*sp);
	*sp = ns;
	return 0;
}

int bs_scrub(bs_store *s, bs_damage_fn fn, void *arg, uint64_t *checked,
	     uint64_t *damaged)
{
	struct scrub_ctx sc = {0};
	struct roots roots = {0};
	uint64_t ck = 0, dm = 0;
	int rc = bs_nameset_init(&sc.bad);
	if (rc)
		return rc;
	rc = bs_store_flush(s);
	if (!rc)
		rc = cas_scrub(s->c, on_bad, &sc, &ck, &dm);
	if (!rc && dm) {
		char **specs = calloc(sc.bad.cap, sizeof(*specs));
		rc = specs ? bs_list_all(s, add_root, &roots, true) : -ENOMEM;
		for (size_t i = 0; i < roots.n && !rc; i++) {
			/* A fresh set per root: each root's own walk. */
			struct bs_nameset seen;
			struct owner_ctx o = {&sc.bad, specs, roots.v[i].spec};
			rc = bs_nameset_init(&seen);
			if (!rc)
				rc = bs_walk(s, &seen, &roots.v[i].root,
					     roots.v[i].nblocks, find_owner,
					     NULL, &o);
			bs_nameset_free(&seen);
		}
		for (size_t i = 0; specs && i < sc.bad.cap; i++) {
			if (!rc && sc.bad.v[i].used && fn)
				fn(arg, &sc.bad.v[i].name, -(int)sc.bad.v[i].mark,
				   specs[i] ? specs[i] : "");
			free(specs[i]);
		}
		free(specs);
	}
	if (checked)
		*checked = ck;
	if (damaged)
		*damaged = dm;
	free(roots.v);
	bs_nameset_free(&sc.bad);
	return rc;
}
