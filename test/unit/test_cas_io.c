/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_cas_io.c - pins the I/O engines (cas/io.c): each one stores and
 * reads back chunks across a sync, a reopen and a compaction, and the
 * store reports the engine it really uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cas/cas.h"

static void fill(uint8_t *p, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 7;
	for (size_t i = 0; i < CAS_CHUNK_SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)(i % 3 ? x : 'a' + i % 7); /* half compressible */
	}
}

static void run_engine(int engine)
{
	char dir[] = "/tmp/tcasioXXXXXX", store[64], cmd[96];
	struct cas_options o;
	cas *c;
	enum { N = 600 };
	cas_name names[N];
	uint8_t buf[CAS_CHUNK_SIZE], want[CAS_CHUNK_SIZE];
	struct cas_gc_result r;

	assert_non_null(mkdtemp(dir));
	snprintf(store, sizeof(store), "%s/s", dir);
	cas_options_default(&o);
	o.io_engine = engine;
	o.segment_size = 1 << 20; /* several segments, so gc compacts */
	assert_int_equal(cas_create(store, &o), 0);
	assert_int_equal(cas_open(store, &o, &c), 0);
	if (cas_io_engine(c) != engine) {
		/* The kernel or a sandbox refuses this engine: the store fell
		 * back (tested by the other cases); nothing to test here. */
		printf("skipped: %s is not available on this machine (store "
		       "fell back to %s)\n", cas_io_engine_name(engine),
		       cas_io_engine_name(cas_io_engine(c)));
		cas_close(c);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
		skip();
	}
	for (int i = 0; i < N; i++) {
		fill(buf, (uint32_t)i);
		assert_true(cas_put(c, buf, 0, &names[i]) >= 0);
	}
	for (int i = 0; i < N; i++) { /* from the tail buffer and the files */
		fill(want, (uint32_t)i);
		assert_int_equal(cas_get(c, &names[i], buf, CAS_GET_VERIFY), 0);
		assert_memory_equal(buf, want, CAS_CHUNK_SIZE);
	}
	assert_int_equal(cas_sync(c), 0);
	for (int i = 0; i < N; i += 2)
		assert_true(cas_unref(c, &names[i]) >= 0);
	assert_int_equal(cas_gc(c, &r), 0);
	assert_true(r.segments_compacted > 0);
	assert_int_equal(cas_close(c), 0);
	assert_int_equal(cas_open(store, &o, &c), 0);
	for (int i = 1; i < N; i += 2) {
		fill(want, (uint32_t)i);
		assert_int_equal(cas_get(c, &names[i], buf, CAS_GET_VERIFY), 0);
		assert_memory_equal(buf, want, CAS_CHUNK_SIZE);
	}
	assert_int_equal(cas_close(c), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_io_uring(void **state)
{
	(void)state;
	run_engine(CAS_IO_URING);
}

static void test_libaio(void **state)
{
	(void)state;
	run_engine(CAS_IO_LIBAIO);
}

static void test_sync(void **state)
{
	(void)state;
	run_engine(CAS_IO_SYNC);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(cas_io_engine_name(CAS_IO_URING), "io_uring");
	assert_string_equal(cas_io_engine_name(CAS_IO_LIBAIO), "libaio");
	assert_string_equal(cas_io_engine_name(CAS_IO_SYNC), "sync");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_io_uring),
		cmocka_unit_test(test_libaio),
		cmocka_unit_test(test_sync),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
