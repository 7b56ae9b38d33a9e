// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * scen_io.c - scenarios of one request at a time: write and read back,
 * verify what the host imported, flush, discard, write-zeroes, GET_ID,
 * and a read-only disk refusing every change.
 *
 * Each scenario changes the range model (scen.h) exactly as it changes
 * the disk, and checks the disk against the model by reading it back;
 * guest_pattern.py applies the same changes on the host side.
 *   write    the whole range := pattern(seed), in 32 KiB requests of two
 *            16 KiB buffers, then read back in 32 KiB requests of eight
 *            4 KiB buffers
 *   discard  the range's second quarter (in blocks) := zeros
 *   wzeroes  the third quarter := zeros (UNMAP), and sectors 3..5 of the
 *            fourth quarter's first block := zeros (no UNMAP: a partial
 *            4 KiB block)
 *   rewrite  the first rblocks= blocks := pattern(seed2=), read back, not
 *            flushed (the crash test's writes that may be lost)
 */
#include "test/guest/scen.h"

#define CHUNK (32u * 1024u) /* bytes per request */

void model_set(struct ctx *c, uint64_t sec, uint64_t n, enum model_state s)
{
	for (uint64_t i = 0; i < n; i++)
		c->model[sec - c->sec0 + i] = (uint8_t)s;
}

bool range_ok(struct ctx *c, const char *name)
{
	uint64_t cap = c->b->capacity;

	if (!c->nsec || c->sec0 > cap || c->nsec > cap - c->sec0) {
		result_fail(c->g, name,
			    "range of %lu sectors at %lu is not inside the "
			    "disk (%lu sectors)",
			    (unsigned long)c->nsec, (unsigned long)c->sec0,
			    (unsigned long)cap);
		return false;
	}
	return true;
}

/* One request with the buffer split into n equal pieces. */
static int io_split(struct ctx *c, uint32_t type, uint64_t sec, uint8_t *buf,
		    uint32_t len, unsigned n)
{
	struct gblk_req *r = gblk_req_get(c->b);
	struct vq_buf d[BLK_MAX_BUFS];
	int ret;

	if (!r)
		return -G_ENOSPC;
	for (unsigned i = 0; i < n; i++)
		d[i] = (struct vq_buf){gpa(buf + i * (len / n)), len / n,
				       type == BLK_T_IN};
	ret = gblk_submit(c->b, r, type, sec, d, n, false);
	if (!ret) {
		vq_kick(&c->b->q);
		ret = gblk_wait(c->b, r, BLK_TIMEOUT_MS);
	}
	if (ret != -G_ETIMEDOUT && ret != -G_EIO)
		gblk_req_put(c->b, r);
	return ret;
}

int64_t range_check(struct ctx *c, uint64_t sec, uint64_t n, int *status)
{
	struct guest *g = c->g;

	*status = 0;
	while (n) {
		uint64_t k = n < CHUNK / SECTOR ? n : CHUNK / SECTOR;
		int ret = io_split(c, BLK_T_IN, sec, c->buf,
				   (uint32_t)(k * SECTOR), k % 8 == 0 ? 8 : 1);

		if (ret) {
			*status = ret;
			return -2;
		}
		for (uint64_t i = 0; i < k; i++) {
			const uint8_t *p = c->buf + i * SECTOR;
			uint8_t m = c->model[sec + i - c->sec0];
			bool good = true;

			if (m == M_PATTERN)
				good = pattern_check(p, g->p.seed, sec + i, 1) <
				       0;
			else if (m == M_PATTERN2)
				good = pattern_check(p, g->p.seed2, sec + i,
						     1) < 0;
			else if (m == M_ZERO)
				good = zero_check(p, 1) < 0;

			if (!good)
				return (int64_t)(sec + i);
		}
		sec += k;
		n -= k;
	}
	return -1;
}

/* Check the whole range; report under name.  true if it matched. */
static bool check_all(struct ctx *c, const char *name)
{
	int status;
	int64_t bad = range_check(c, c->sec0, c->nsec, &status);

	if (bad == -2) {
		result_fail(c->g, name, "read failed: %d", status);
		return false;
	}
	if (bad >= 0) {
		uint8_t m = c->model[bad - (int64_t)c->sec0];

		result_fail(c->g, name, "sector %ld should read as %s",
			    (long)bad,
			    m == M_ZERO       ? "zeros"
			    : m == M_PATTERN2 ? "the pattern of seed2"
					      : "the pattern");
		return false;
	}
	return true;
}

void scen_info(struct ctx *c)
{
	struct gblk *b = c->b;

	con_printf("virtio-blk: offered %#lx negotiated %#lx capacity %lu "
		   "sectors seg_max %u queue %u\n",
		   (unsigned long)b->offered, (unsigned long)b->features,
		   (unsigned long)b->capacity, b->seg_max, b->q.size);
	result_ok(c->g, "info");
}

static int write_range(struct ctx *c, uint64_t seed, uint64_t sec, uint64_t n)
{
	enum model_state m = seed == c->g->p.seed ? M_PATTERN : M_PATTERN2;

	while (n) {
		uint64_t k = n < CHUNK / SECTOR ? n : CHUNK / SECTOR;
		int ret;

		pattern_fill(c->buf, seed, sec, k);
		ret = io_split(c, BLK_T_OUT, sec, c->buf,
			       (uint32_t)(k * SECTOR), k % 2 == 0 ? 2 : 1);
		if (ret)
			return ret;
		model_set(c, sec, k, m);
		c->flushed = false;
		sec += k;
		n -= k;
	}
	return 0;
}

void scen_write(struct ctx *c)
{
	int ret;

	if (!range_ok(c, "write"))
		return;
	ret = write_range(c, c->g->p.seed, c->sec0, c->nsec);
	if (ret) {
		result_fail(c->g, "write", "write failed: %d", ret);
		return;
	}
	if (check_all(c, "write"))
		result_ok(c->g, "write");
}

void scen_rewrite(struct ctx *c)
{
	uint64_t n = c->g->p.rblocks * SPB;
	int ret;

	if (!range_ok(c, "rewrite"))
		return;
	if (!n || n > c->nsec) {
		result_fail(c->g, "rewrite", "rblocks= must be 1..blocks=");
		return;
	}
	ret = write_range(c, c->g->p.seed2, c->sec0, n);
	if (ret) {
		result_fail(c->g, "rewrite", "write failed: %d", ret);
		return;
	}
	if (check_all(c, "rewrite"))
		result_ok(c->g, "rewrite");
}

void scen_verify(struct ctx *c)
{
	if (!range_ok(c, "verify"))
		return;
	model_set(c, c->sec0, c->nsec, M_PATTERN);
	if (check_all(c, "verify"))
		result_ok(c->g, "verify");
}

void scen_zero(struct ctx *c)
{
	if (!range_ok(c, "zero"))
		return;
	model_set(c, c->sec0, c->nsec, M_ZERO);
	if (check_all(c, "zero"))
		result_ok(c->g, "zero");
}

void scen_flush(struct ctx *c)
{
	int ret;

	if (!(c->b->features & BLK_F_FLUSH)) {
		result_fail(c->g, "flush", "FLUSH not offered");
		return;
	}
	ret = gblk_io(c->b, BLK_T_FLUSH, 0, NULL, 0);
	if (ret) {
		result_fail(c->g, "flush", "status %d", ret);
		return;
	}
	c->flushed = true;
	con_printf("flushed\n");
	result_ok(c->g, "flush");
}

static bool quarters(struct ctx *c, const char *name, uint64_t *q)
{
	if (!range_ok(c, name))
		return false;
	if (c->nsec < 4 * SPB) {
		result_fail(c->g, name, "needs blocks=4 or more");
		return false;
	}
	*q = c->nsec / SPB / 4 * SPB; /* a quarter, in whole blocks */
	return true;
}

void scen_discard(struct ctx *c)
{
	uint64_t q;
	int ret;

	if (!quarters(c, "discard", &q))
		return;
	if (!(c->b->features & BLK_F_DISCARD)) {
		result_fail(c->g, "discard", "DISCARD not offered");
		return;
	}
	ret = gblk_dwz(c->b, BLK_T_DISCARD, c->sec0 + q, (uint32_t)q, 0);
	if (ret) {
		result_fail(c->g, "discard", "status %d", ret);
		return;
	}
	model_set(c, c->sec0 + q, q, M_ZERO);
	c->flushed = false;
	if (check_all(c, "discard"))
		result_ok(c->g, "discard");
}

void scen_wzeroes(struct ctx *c)
{
	uint64_t q;
	int ret;

	if (!quarters(c, "wzeroes", &q))
		return;
	if (!(c->b->features & BLK_F_WRITE_ZEROES)) {
		result_fail(c->g, "wzeroes", "WRITE_ZEROES not offered");
		return;
	}
	ret = gblk_dwz(c->b, BLK_T_WRITE_ZEROES, c->sec0 + 2 * q, (uint32_t)q,
		       BLK_DWZ_UNMAP);
	if (!ret)
		ret = gblk_dwz(c->b, BLK_T_WRITE_ZEROES, c->sec0 + 3 * q + 3, 3,
			       0);
	if (ret) {
		result_fail(c->g, "wzeroes", "status %d", ret);
		return;
	}
	model_set(c, c->sec0 + 2 * q, q, M_ZERO);
	model_set(c, c->sec0 + 3 * q + 3, 3, M_ZERO);
	c->flushed = false;
	if (check_all(c, "wzeroes"))
		result_ok(c->g, "wzeroes");
}

void scen_getid(struct ctx *c)
{
	char id[21];
	const char *want = c->g->p.serial;
	int ret;

	memset(c->buf, 0xaa, 32);
	ret = gblk_io(c->b, BLK_T_GET_ID, 0, c->buf, 20);
	if (ret) {
		result_fail(c->g, "getid", "status %d", ret);
		return;
	}
	memcpy(id, c->buf, 20);
	id[20] = '\0';
	con_printf("getid: \"%s\"\n", id);
	if (want) {
		size_t n = strlen(want);

		if (n > 20)
			n = 20;
		/* the serial, then NUL padding to 20 bytes */
		if (memcmp(c->buf, want, n)) {
			result_fail(c->g, "getid", "\"%s\" is not \"%s\"", id,
				    want);
			return;
		}
		for (size_t i = n; i < 20; i++)
			if (c->buf[i]) {
				result_fail(c->g, "getid",
					    "byte %lu after the serial is %#x",
					    (unsigned long)i, c->buf[i]);
				return;
			}
	}
	if (c->buf[20] != 0xaa) {
		result_fail(c->g, "getid", "the device wrote past 20 bytes");
		return;
	}
	result_ok(c->g, "getid");
}

/* A read-only disk: RO offered, and OUT, DISCARD, WRITE_ZEROES all
 * answered IOERR; the model (and the disk) unchanged. */
void scen_ro(struct ctx *c)
{
	int ret;

	if (!range_ok(c, "ro"))
		return;
	if (!(c->b->offered & BLK_F_RO)) {
		result_fail(c->g, "ro", "VIRTIO_BLK_F_RO not offered");
		return;
	}
	pattern_fill(c->buf, c->g->p.seed + 1, c->sec0, SPB);
	ret = gblk_io(c->b, BLK_T_OUT, c->sec0, c->buf, BLOCK);
	if (ret != BLK_S_IOERR) {
		result_fail(c->g, "ro", "a write got status %d, not IOERR",
			    ret);
		return;
	}
	if (c->b->features & BLK_F_DISCARD) {
		ret = gblk_dwz(c->b, BLK_T_DISCARD, c->sec0, SPB, 0);
		if (ret != BLK_S_IOERR) {
			result_fail(c->g, "ro",
				    "a discard got status %d, not IOERR", ret);
			return;
		}
	}
	if (c->b->features & BLK_F_WRITE_ZEROES) {
		ret = gblk_dwz(c->b, BLK_T_WRITE_ZEROES, c->sec0, SPB, 0);
		if (ret != BLK_S_IOERR) {
			result_fail(c->g, "ro",
				    "a write-zeroes got status %d, not IOERR",
				    ret);
			return;
		}
	}
	result_ok(c->g, "ro");
}
