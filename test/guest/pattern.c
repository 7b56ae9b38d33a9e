// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pattern.c - the data pattern the guest writes and verifies, a pure
 * function of (seed, sector) that test/integration/guest_pattern.py
 * computes too, so a host script can build the image a scenario must
 * leave and compare `blkctl export` with it (or `blkctl import` one for
 * the guest to check).
 *
 * Word i (0..63, little-endian) of 512-byte sector s is
 * mix64(mix64(seed) ^ (s * 64 + i)), mix64 being splitmix64's finalizer
 * (with its additive constant): every sector of every seed differs, so a
 * misplaced, stale or torn sector cannot pass.
 */
#include "test/guest/guest.h"

#define WORDS 64 /* per 512-byte sector */

uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void pattern_fill(void *buf, uint64_t seed, uint64_t sector, uint64_t nsectors)
{
	uint64_t *w = buf, k = mix64(seed);

	for (uint64_t s = 0; s < nsectors; s++)
		for (unsigned i = 0; i < WORDS; i++)
			*w++ = mix64(k ^ ((sector + s) * WORDS + i));
}

int64_t pattern_check(const void *buf, uint64_t seed, uint64_t sector,
		      uint64_t nsectors)
{
	const uint64_t *w = buf;
	uint64_t k = mix64(seed);

	for (uint64_t s = 0; s < nsectors; s++)
		for (unsigned i = 0; i < WORDS; i++)
			if (*w++ != mix64(k ^ ((sector + s) * WORDS + i)))
				return (int64_t)s;
	return -1;
}

int64_t zero_check(const void *buf, uint64_t nsectors)
{
	const uint64_t *w = buf;

	for (uint64_t s = 0; s < nsectors; s++)
		for (unsigned i = 0; i < WORDS; i++)
			if (*w++)
				return (int64_t)s;
	return -1;
}
