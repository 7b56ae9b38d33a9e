/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_guest_pattern.c - pins the test guest's data pattern
 * (test/guest/pattern.c, compiled here for the host) to fixed values, the
 * same ones test/integration/guest_elf.py pins for the host's generator
 * (guest_pattern.py): the two must agree for every export/import check,
 * and this catches a divergence even on hosts without KVM, where the
 * guest never runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test/guest/guest.h"

static void test_mix64(void **state)
{
	(void)state;
	/* splitmix64's first output from state 0 */
	assert_int_equal(mix64(0), 0xe220a8397b1dcdafull);
}

static void test_vectors(void **state)
{
	uint64_t w[64];

	(void)state;
	pattern_fill(w, 1, 0, 1);
	assert_int_equal(w[0], 0x5e41ab087439611eull);
	pattern_fill(w, 7, 12345, 1);
	assert_int_equal(w[63], 0x6ea2cd56bc277409ull);
}

static void test_checks(void **state)
{
	static uint64_t buf[4 * 64];
	uint8_t *b = (uint8_t *)buf;

	(void)state;
	pattern_fill(buf, 3, 100, 4);
	assert_int_equal(pattern_check(buf, 3, 100, 4), -1);
	assert_int_equal(pattern_check(buf, 4, 100, 4), 0); /* other seed */
	assert_int_equal(pattern_check(buf, 3, 101, 4), 0); /* misplaced */
	b[2 * 512 + 17] ^= 1;
	assert_int_equal(pattern_check(buf, 3, 100, 4), 2);
	for (unsigned i = 0; i < sizeof(buf); i++)
		b[i] = 0;
	assert_int_equal(zero_check(buf, 4), -1);
	b[3 * 512 + 511] = 1;
	assert_int_equal(zero_check(buf, 4), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mix64),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
