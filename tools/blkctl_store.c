/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_store.c - the commands about the store as a whole: init, df, gc,
 * scrub, fsck.
 *
 * scrub and fsck exit 0 only when they found nothing wrong: a script can
 * run them after every step and trust the status alone.  Their findings
 * go to stdout, one line each; the verdict, when it is a failure, is the
 * usual one line on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "tools/blkctl.h"

int bc_cmd_init(bs_store *unused, const struct bc_args *a)
{
	(void)unused;
	int rc = bs_store_create(a->argv[0], NULL);
	if (rc)
		return bc_fail(rc, "init '%s'", a->argv[0]);
	return BC_EXIT_OK;
}

/* ---- df ---- */

static void df_json(const struct bs_store_stat *st, bool overcommit)
{
	json_object *o = json_object_new_object();
	bc_json_add_u64(o, "disks", st->disks);
	bc_json_add_u64(o, "snapshots", st->snapshots);
	bc_json_add_u64(o, "logical_bytes", st->logical_bytes);
	bc_json_add_u64(o, "allocated_bytes", st->allocated_bytes);
	bc_json_add_u64(o, "referenced_bytes", st->referenced_bytes);
	bc_json_add_u64(o, "unique_data_chunks", st->unique_data_chunks);
	bc_json_add_u64(o, "node_chunks", st->node_chunks);
	bc_json_add_u64(o, "stored_bytes", st->stored_bytes);
	bc_json_add_u64(o, "data_stored_bytes", st->data_stored_bytes);
	bc_json_add_u64(o, "segment_bytes", st->segment_bytes);
	bc_json_add_u64(o, "index_bytes", st->index_bytes);
	json_object_object_add(o, "dedup_ratio",
			       json_object_new_double(st->dedup_ratio));
	json_object_object_add(o, "compression_ratio",
			       json_object_new_double(st->compression_ratio));
	bc_json_add_u64(o, "fs_free_bytes", st->fs_free_bytes);
	json_object_object_add(o, "thin_overcommit",
			       json_object_new_boolean(overcommit));
	bc_json_print(o);
}

static void df_row(const char *what, const char *value)
{
	fprintf(BC_OUT, "%-20s %s\n", what, value);
}

static void df_bytes(const char *what, uint64_t v)
{
	char h[BC_HSIZE_MAX];
	df_row(what, bc_human_size(v, h));
}

static void df_count(const char *what, uint64_t v)
{
	char n[32];
	snprintf(n, sizeof(n), "%llu", (unsigned long long)v);
	df_row(what, n);
}

static void df_ratio(const char *what, double v)
{
	char n[32];
	snprintf(n, sizeof(n), "%.2fx", v);
	df_row(what, n);
}

int bc_cmd_df(bs_store *s, const struct bc_args *a)
{
	struct bs_store_stat st;
	char x[BC_HSIZE_MAX], y[BC_HSIZE_MAX];
	int rc = bs_store_stat(s, &st);
	if (rc)
		return bc_fail(rc, "df '%s'", a->store);
	/* Thin provisioning: could the disks, filled up, still fit? */
	bool overcommit = st.logical_bytes > st.stored_bytes + st.fs_free_bytes;
	if (a->opts & BC_OPT_JSON) {
		df_json(&st, overcommit);
		return BC_EXIT_OK;
	}
	df_count("disks", st.disks);
	df_count("snapshots", st.snapshots);
	df_bytes("logical", st.logical_bytes);
	df_bytes("allocated", st.allocated_bytes);
	df_bytes("referenced", st.referenced_bytes);
	df_count("unique data chunks", st.unique_data_chunks);
	df_count("map nodes", st.node_chunks);
	df_bytes("stored", st.stored_bytes);
	df_bytes("stored data", st.data_stored_bytes);
	df_bytes("segment files", st.segment_bytes);
	df_bytes("index", st.index_bytes);
	df_ratio("dedup ratio", st.dedup_ratio);
	df_ratio("compression ratio", st.compression_ratio);
	df_bytes("filesystem free", st.fs_free_bytes);
	if (overcommit)
		fprintf(BC_OUT, "warning: thin overcommit: disks total %s but only %s "
		       "free\n",
		       bc_human_size(st.logical_bytes, x),
		       bc_human_size(st.stored_bytes + st.fs_free_bytes, y));
	return BC_EXIT_OK;
}

/* ---- gc ---- */

int bc_cmd_gc(bs_store *s, const struct bc_args *a)
{
	struct cas_gc_result r;
	char m[BC_HSIZE_MAX], f[BC_HSIZE_MAX];
	memset(&r, 0, sizeof(r));
	int rc = bs_gc(s, &r);
	if (rc)
		return bc_fail(rc, "gc '%s'", a->store);
	if (a->opts & BC_OPT_JSON) {
		json_object *o = json_object_new_object();
		bc_json_add_u64(o, "chunks_freed", r.chunks_freed);
		bc_json_add_u64(o, "segments_compacted", r.segments_compacted);
		bc_json_add_u64(o, "bytes_moved", r.bytes_moved);
		bc_json_add_u64(o, "bytes_reclaimed", r.bytes_reclaimed);
		bc_json_print(o);
		return BC_EXIT_OK;
	}
	fprintf(BC_OUT, "gc: %llu chunks freed, %llu segments compacted, %s moved, "
	       "%s reclaimed\n",
	       (unsigned long long)r.chunks_freed,
	       (unsigned long long)r.segments_compacted,
	       bc_human_size(r.bytes_moved, m),
	       bc_human_size(r.bytes_reclaimed, f));
	return BC_EXIT_OK;
}

/* ---- scrub ---- */

static void on_damage(void *arg, const cas_name *name, int err,
		      const char *specs)
{
	char hex[2 * CAS_NAME_SIZE + 1];
	(void)arg;
	cas_name_format(name, hex);
	fprintf(BC_OUT, "damaged chunk %s: %s; referenced by: %s\n", hex,
	       bs_strerror(err), *specs ? specs : "(nothing)");
}

int bc_cmd_scrub(bs_store *s, const struct bc_args *a)
{
	uint64_t checked = 0, damaged = 0;
	int rc = bs_scrub(s, on_damage, NULL, &checked, &damaged);
	if (rc)
		return bc_fail(rc, "scrub '%s'", a->store);
	fprintf(BC_OUT, "scrub: %llu chunks checked, %llu damaged\n",
	       (unsigned long long)checked, (unsigned long long)damaged);
	if (damaged)
		return bc_fail_msg("scrub '%s': %llu damaged chunk%s found",
				   a->store, (unsigned long long)damaged,
				   damaged == 1 ? "" : "s");
	return BC_EXIT_OK;
}

/* ---- fsck ---- */

static void report_line(void *arg, const char *line)
{
	(void)arg;
	fprintf(BC_OUT, "%s\n", line);
}

int bc_cmd_fsck(bs_store *owned, const struct bc_args *a)
{
	bs_store *s;
	int problems = 0, rc;
	if (owned) {
		/* In the store's owner: the store is open and stays so. */
		if (a->opts & BC_OPT_REBUILD)
			return bc_fail_msg("fsck --rebuild '%s': the index is "
					   "rebuilt with the store closed: stop "
					   "its owner first", a->store);
		rc = bs_fsck(owned, (a->opts & BC_OPT_REPAIR) ? BS_FSCK_REPAIR : 0,
			     report_line, NULL);
		if (rc < 0)
			return bc_fail(rc, "fsck '%s'", a->store);
		if (rc)
			return bc_fail_msg(
				"fsck '%s': %d problem%s found%s", a->store, rc,
				rc == 1 ? "" : "s",
				(a->opts & BC_OPT_REPAIR) ? " (counts repaired)" : "");
		return BC_EXIT_OK;
	}
	if (!a->store)
		return bc_usage_error("no store given: use -S STORE or set "
				      "BLKCTL_STORE");
	if (a->opts & BC_OPT_REBUILD) {
		/* The index is rebuilt with the store closed. */
		rc = bs_rebuild(a->store, report_line, NULL);
		if (rc < 0)
			return bc_fail(rc, "fsck --rebuild '%s'", a->store);
		problems += rc;
	}
	rc = bs_store_open(a->store, NULL, &s);
	if (rc)
		return bc_fail(rc, "cannot open store '%s'", a->store);
	rc = bs_fsck(s, (a->opts & BC_OPT_REPAIR) ? BS_FSCK_REPAIR : 0,
		     report_line, NULL);
	int rc2 = bs_store_close(s);
	if (rc < 0)
		return bc_fail(rc, "fsck '%s'", a->store);
	if (rc2)
		return bc_fail(rc2, "closing store '%s'", a->store);
	problems += rc;
	if (problems)
		return bc_fail_msg(
			"fsck '%s': %d problem%s found%s", a->store, problems,
			problems == 1 ? "" : "s",
			(a->opts & BC_OPT_REPAIR) ? " (counts repaired)" : "");
	return BC_EXIT_OK;
}
