/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * iostats.c - per-disk I/O statistics of the daemon: request counts,
 * bytes and a latency histogram since start (blkctl stats).
 *
 * The one idea: recording must cost a few atomic adds on the request
 * path, from any connection thread, with no lock.  Latencies go into 64
 * log2 buckets of nanoseconds (plus an exact maximum); percentiles are
 * read from the histogram (to within a factor of two, reported as the
 * bucket's upper bound) only when someone asks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blkstore/server.h"

#define LAT_BUCKETS 64

struct iostat {
	struct iostat *next;
	char disk[BS_SPEC_MAX];
	_Atomic uint64_t ops[SRV_OP_COUNT];
	_Atomic uint64_t bytes[SRV_OP_COUNT];
	_Atomic uint64_t errors;
	_Atomic uint64_t lat[LAT_BUCKETS];
	_Atomic uint64_t lat_max;
};

struct iostats {
	pthread_mutex_t mu; /* creation of entries only */
	struct iostat *head;
	uint64_t start_ns;
};

int iostats_create(struct iostats **out)
{
	struct iostats *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	t->start_ns = srv_now_ns();
	*out = t;
	return 0;
}

void iostats_destroy(struct iostats *t)
{
	if (!t)
		return;
	while (t->head) {
		struct iostat *e = t->head;
		t->head = e->next;
		free(e);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

struct iostat *iostats_get(struct iostats *t, const char *disk)
{
	struct iostat *e;
	pthread_mutex_lock(&t->mu);
	for (e = t->head; e; e = e->next)
		if (!strcmp(e->disk, disk))
			break;
	if (!e && (e = calloc(1, sizeof(*e)))) {
		strncpy(e->disk, disk, sizeof(e->disk) - 1);
		e->next = t->head;
		t->head = e;
	}
	pthread_mutex_unlock(&t->mu);
	return e; /* entries live as long as the table */
}

void iostat_record(struct iostat *e, enum srv_op op, uint64_t bytes,
		   uint64_t ns, bool failed)
{
	if (!e || op >= SRV_OP_COUNT)
		return;
	e->ops[op]++;
	e->bytes[op] += bytes;
	if (failed)
		e->errors++;
	unsigned b = ns ? 63 - (unsigned)__builtin_clzll(ns) : 0;
	e->lat[b]++;
	uint64_t m = e->lat_max;
	while (ns > m && !__atomic_compare_exchange_n(&e->lat_max, &m, ns, false,
						      __ATOMIC_RELAXED,
						      __ATOMIC_RELAXED))
		;
}

/* The upper bound (µs) of the bucket holding the q-quantile. */
static uint64_t percentile_us(const uint64_t *lat, uint64_t n, double q)
{
	uint64_t want = (uint64_t)((double)n * q), seen = 0;
	for (unsigned b = 0; b < LAT_BUCKETS; b++) {
		seen += lat[b];
		if (seen > want || (seen == n && n))
			return ((2ull << b) + 999) / 1000;
	}
	return 0;
}

static void add_disk(json_object *arr, const struct iostat *e, double secs)
{
	static const char *names[SRV_OP_COUNT] = {"reads", "writes", "flushes",
						  "trims", "zeroes", "other"};
	uint64_t lat[LAT_BUCKETS], n = 0;
	json_object *d = json_object_new_object();
	json_object_object_add(d, "disk", json_object_new_string(e->disk));
	for (int op = 0; op < SRV_OP_COUNT; op++)
		json_object_object_add(d, names[op],
				       json_object_new_int64((int64_t)e->ops[op]));
	json_object_object_add(d, "read_bytes",
			       json_object_new_int64((int64_t)e->bytes[SRV_OP_READ]));
	json_object_object_add(d, "write_bytes",
			       json_object_new_int64((int64_t)e->bytes[SRV_OP_WRITE]));
	json_object_object_add(d, "errors", json_object_new_int64((int64_t)e->errors));
	json_object_object_add(d, "read_ops_s",
			       json_object_new_double((double)e->ops[SRV_OP_READ] / secs));
	json_object_object_add(d, "write_ops_s",
			       json_object_new_double((double)e->ops[SRV_OP_WRITE] / secs));
	json_object_object_add(d, "read_bytes_s",
			       json_object_new_double((double)e->bytes[SRV_OP_READ] / secs));
	json_object_object_add(d, "write_bytes_s",
			       json_object_new_double((double)e->bytes[SRV_OP_WRITE] / secs));
	for (unsigned b = 0; b < LAT_BUCKETS; b++)
		n += lat[b] = e->lat[b];
	json_object_object_add(d, "lat_p50_us",
			       json_object_new_int64((int64_t)percentile_us(lat, n, 0.50)));
	json_object_object_add(d, "lat_p90_us",
			       json_object_new_int64((int64_t)percentile_us(lat, n, 0.90)));
	json_object_object_add(d, "lat_p99_us",
			       json_object_new_int64((int64_t)percentile_us(lat, n, 0.99)));
	json_object_object_add(d, "lat_max_us",
			       json_object_new_int64((int64_t)((e->lat_max + 999) / 1000)));
	json_object_array_add(arr, d);
}

int iostats_json(struct iostats *t, const char *disk, json_object **out)
{
	double secs = (double)(srv_now_ns() - t->start_ns) / 1e9;
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	bool found = false;
	if (secs <= 0)
		secs = 1e-9;
	pthread_mutex_lock(&t->mu);
	for (struct iostat *e = t->head; e; e = e->next)
		if (!disk || !strcmp(disk, e->disk)) {
			add_disk(arr, e, secs);
			found = true;
		}
	pthread_mutex_unlock(&t->mu);
	if (disk && !found) { /* no I/O yet (the caller knows it exists) */
		struct iostat *z = calloc(1, sizeof(*z));
		if (z) {
			strncpy(z->disk, disk, sizeof(z->disk) - 1);
			add_disk(arr, z, secs);
			free(z);
		}
	}
	json_object_object_add(o, "uptime_s", json_object_new_int64((int64_t)secs));
	json_object_object_add(o, "disks", arr);
	*out = o;
	return 0;
}
