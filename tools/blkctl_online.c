/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_online.c - the commands only a running owner can answer:
 * `stats [DISK]` (I/O per disk since the owner started) and `clients`
 * (who is connected).  The owner hands its data over as JSON
 * (struct bc_owner); --json prints it as is, else a table.
 */
#include <stdio.h>
#include <string.h>

#include "tools/blkctl.h"

static int no_owner(const struct bc_args *a)
{
	return bc_fail_msg("%s: store '%s' has no running owner "
			   "(start blkstored -S %s)",
			   a->cmd, a->store ? a->store : "", a->store ? a->store : "STORE");
}

static uint64_t u64_of(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? (uint64_t)json_object_get_int64(v)
						   : 0;
}

static double dbl_of(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}

static const char *str_of(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

int bc_cmd_stats(bs_store *s, const struct bc_args *a)
{
	json_object *st = NULL, *disks;
	if (!a->owner || !a->owner->stats)
		return no_owner(a);
	struct bs_info info;
	int rc = a->argc ? bs_info(s, a->argv[0], &info) : 0;
	if (rc)
		return bc_fail(rc, "stats '%s'", a->argv[0]);
	rc = a->owner->stats(a->owner->ctx, a->argc ? a->argv[0] : NULL, &st);
	if (rc)
		return bc_fail(rc, "stats%s%s", a->argc ? " " : "",
			       a->argc ? a->argv[0] : "");
	if (a->opts & BC_OPT_JSON) {
		bc_json_print(st);
		return BC_EXIT_OK;
	}
	fprintf(BC_OUT, "since %llu s ago\n",
		(unsigned long long)u64_of(st, "uptime_s"));
	fprintf(BC_OUT, "%-20s %9s %9s %10s %10s %8s %8s %8s %8s\n", "DISK",
		"READ/s", "WRITE/s", "READ MB/s", "WRITE MB/s", "FLUSHES",
		"p50 us", "p99 us", "max us");
	if (json_object_object_get_ex(st, "disks", &disks))
		for (size_t i = 0; i < json_object_array_length(disks); i++) {
			json_object *d = json_object_array_get_idx(disks, i);
			fprintf(BC_OUT,
				"%-20s %9.1f %9.1f %10.2f %10.2f %8llu %8llu %8llu %8llu\n",
				str_of(d, "disk"), dbl_of(d, "read_ops_s"),
				dbl_of(d, "write_ops_s"),
				dbl_of(d, "read_bytes_s") / 1e6,
				dbl_of(d, "write_bytes_s") / 1e6,
				(unsigned long long)u64_of(d, "flushes"),
				(unsigned long long)u64_of(d, "lat_p50_us"),
				(unsigned long long)u64_of(d, "lat_p99_us"),
				(unsigned long long)u64_of(d, "lat_max_us"));
		}
	json_object_put(st);
	return BC_EXIT_OK;
}

int bc_cmd_clients(bs_store *s, const struct bc_args *a)
{
	json_object *cl = NULL, *arr;
	(void)s;
	if (!a->owner || !a->owner->clients)
		return no_owner(a);
	int rc = a->owner->clients(a->owner->ctx, &cl);
	if (rc)
		return bc_fail(rc, "clients");
	if (a->opts & BC_OPT_JSON) {
		bc_json_print(cl);
		return BC_EXIT_OK;
	}
	fprintf(BC_OUT, "%-5s %-8s %-24s %-20s %10s\n", "ID", "PROTO", "PEER",
		"EXPORT", "REQUESTS");
	if (json_object_object_get_ex(cl, "clients", &arr))
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *c = json_object_array_get_idx(arr, i);
			fprintf(BC_OUT, "%-5llu %-8s %-24s %-20s %10llu\n",
				(unsigned long long)u64_of(c, "id"),
				str_of(c, "proto"), str_of(c, "peer"),
				str_of(c, "export")[0] ? str_of(c, "export") : "-",
				(unsigned long long)u64_of(c, "requests"));
		}
	json_object_put(cl);
	return BC_EXIT_OK;
}
