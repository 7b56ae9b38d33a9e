/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_virtio_blk.c - pins blkstore/vblk.h: guest memory translation, the
 * split virtqueue as a device walks it, and virtio-blk requests on a real
 * store.  The test plays the driver: it lays out rings and requests in a
 * fake guest memory (16 MiB at 0, a 16 MiB hole, then two adjacent 1 MiB
 * regions), calls vblk_dev_process() and checks the used ring, status
 * bytes and the disk (through bs_disk_read).  Every region has canary
 * bytes on both sides, checked after every test: no guest input may make
 * the device write outside guest memory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "blkstore/vblk.h"
#include "common/endian.h"
#include "test/unit/test_util.h"

#define MiB (1ull << 20)
#define DISK_SIZE (64 * MiB)
#define CAP (DISK_SIZE / 512)

#define R0_GPA 0ull
#define R0_SIZE (16 * MiB)
#define R1_GPA (32 * MiB) /* after a hole */
#define R1_SIZE (1 * MiB)
#define R2_GPA (R1_GPA + R1_SIZE) /* adjacent to R1, another host block */
#define R2_SIZE (1 * MiB)
#define GAP_GPA (20 * MiB)
#define CANARY 4096u
#define CANARY_BYTE 0xa5

#define DESC_GPA 0x1000ull /* up to 256 entries */
#define AVAIL_GPA 0x2000ull
#define USED_GPA 0x3000ull
#define HEAP_GPA 0x10000ull

#define W VBLK_DESC_F_WRITE
#define FEAT_STD (VBLK_F_ALL & ~(VBLK_F_RO | VBLK_F_EVENT_IDX))

struct fx {
	char *dir;
	char store[256];
	bs_store *s;
	bs_disk *d;
	struct vblk_dev *dev;
	uint8_t *raw[3];
	struct vblk_mem_region reg[3];
	struct vblk_mem mem;
	struct vblk_vq q;
	/* the driver's side */
	uint16_t avail_idx, used_seen, next_desc;
	uint64_t heap;
	bool notify;
	unsigned nlog[3];
	char last_log[256];
};

/* ---- fixture ---- */

static void log_cb(void *arg, enum vblk_level level, const char *msg)
{
	struct fx *f = arg;
	f->nlog[level]++;
	snprintf(f->last_log, sizeof(f->last_log), "%s", msg);
}

static void q_init(struct fx *f, uint16_t size)
{
	memset(&f->q, 0, sizeof(f->q));
	f->q.size = size;
	f->q.desc_gpa = DESC_GPA;
	f->q.avail_gpa = AVAIL_GPA;
	f->q.used_gpa = USED_GPA;
	f->avail_idx = f->used_seen = f->next_desc = 0;
	memset(f->reg[0].host, 0, HEAP_GPA); /* rings */
}

static void dev_open(struct fx *f, const char *spec, const char *serial,
		     uint64_t mask, uint64_t negotiate)
{
	if (f->dev)
		vblk_dev_close(f->dev);
	if (f->d)
		assert_int_equal(bs_disk_close(f->d), 0);
	assert_int_equal(bs_disk_open(f->s, spec, &f->d), 0);
	assert_int_equal(vblk_dev_create(f->d, serial, mask, &f->dev), 0);
	vblk_dev_set_log(f->dev, log_cb, f);
	assert_int_equal(vblk_dev_set_features(f->dev, negotiate), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const uint64_t gpa[3] = {R0_GPA, R1_GPA, R2_GPA};
	const uint64_t size[3] = {R0_SIZE, R1_SIZE, R2_SIZE};
	if (!f || !(f->dir = tu_mkdtemp("tvblk")))
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	if (bs_store_create(f->store, NULL) ||
	    bs_store_open(f->store, NULL, &f->s) ||
	    bs_disk_create(f->s, "vm0", DISK_SIZE))
		return -1;
	for (int i = 0; i < 3; i++) {
		f->raw[i] = malloc(size[i] + 2 * CANARY);
		if (!f->raw[i])
			return -1;
		memset(f->raw[i], CANARY_BYTE, CANARY);
		memset(f->raw[i] + CANARY, 0, size[i]);
		memset(f->raw[i] + CANARY + size[i], CANARY_BYTE, CANARY);
		f->reg[i] = (struct vblk_mem_region){gpa[i], size[i],
						     f->raw[i] + CANARY};
	}
	f->mem.regions = f->reg;
	f->mem.nregions = 3;
	f->heap = HEAP_GPA;
	q_init(f, 256);
	*state = f;
	dev_open(f, "vm0", "vm0-serial", VBLK_F_ALL, FEAT_STD);
	return 0;
}

static void check_canaries(struct fx *f)
{
	for (int i = 0; i < 3; i++) {
		const uint8_t *lo = f->raw[i];
		const uint8_t *hi = f->raw[i] + CANARY + f->reg[i].size;
		for (unsigned j = 0; j < CANARY; j++) {
			assert_int_equal(lo[j], CANARY_BYTE);
			assert_int_equal(hi[j], CANARY_BYTE);
		}
	}
}

static int teardown(void **state)
{
	struct fx *f = *state;
	check_canaries(f);
	vblk_dev_close(f->dev);
	if (f->d)
		bs_disk_close(f->d);
	bs_store_close(f->s);
	tu_rmrf(f->dir);
	free(f->dir);
	for (int i = 0; i < 3; i++)
		free(f->raw[i]);
	free(f);
	return 0;
}

/* ---- the driver ---- */

/* Host address of guest bytes the test knows are there. */
static uint8_t *g2h(struct fx *f, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < 3; i++)
		if (gpa >= f->reg[i].gpa &&
		    gpa + len <= f->reg[i].gpa + f->reg[i].size)
			return (uint8_t *)f->reg[i].host +
			       (gpa - f->reg[i].gpa);
	fail_msg("test bug: 0x%llx not in guest memory",
		 (unsigned long long)gpa);
	return NULL;
}

static uint64_t galloc(struct fx *f, uint64_t len)
{
	if (f->heap + len > R0_SIZE)
		f->heap = HEAP_GPA;
	uint64_t g = f->heap;
	f->heap = (f->heap + len + 15) & ~15ull;
	return g;
}

static void put_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *p = table + 16 * i;
	le64_put(p, addr);
	le32_put(p + 8, len);
	le16_put(p + 12, flags);
	le16_put(p + 14, next);
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags; /* W, or VBLK_DESC_F_INDIRECT */
};

/* Descriptors for s[0..n), linked in the table; the head's index. */
static uint16_t drv_chain(struct fx *f, const struct seg *s, unsigned n)
{
	uint8_t *t = g2h(f, DESC_GPA, 16ull * f->q.size);
	uint16_t head = f->next_desc;
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % f->q.size);
		uint16_t next = (uint16_t)((idx + 1) % f->q.size);
		put_desc(t, idx, s[i].gpa, s[i].len,
			 (uint16_t)(s[i].flags |
				    (i + 1 < n ? VBLK_DESC_F_NEXT : 0)),
			 next);
	}
	f->next_desc = (uint16_t)((head + n) % f->q.size);
	return head;
}

/* An indirect table for s[0..n) and the one descriptor naming it. */
static uint16_t drv_indirect(struct fx *f, const struct seg *s, unsigned n)
{
	uint64_t tg = galloc(f, 16ull * n);
	uint8_t *t = g2h(f, tg, 16ull * n);
	for (unsigned i = 0; i < n; i++)
		put_desc(t, i, s[i].gpa, s[i].len,
			 (uint16_t)(s[i].flags |
				    (i + 1 < n ? VBLK_DESC_F_NEXT : 0)),
			 (uint16_t)(i + 1));
	struct seg one = {tg, 16 * n, VBLK_DESC_F_INDIRECT};
	return drv_chain(f, &one, 1);
}

static void drv_set_avail_idx(struct fx *f, uint16_t idx)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
	le16_put(g2h(f, AVAIL_GPA + 2, 2), idx);
}

static void drv_avail(struct fx *f, uint16_t head)
{
	le16_put(g2h(f, AVAIL_GPA + 4 + 2 * (f->avail_idx % f->q.size), 2),
		 head);
	f->avail_idx++;
	drv_set_avail_idx(f, f->avail_idx);
}

static uint16_t used_idx(struct fx *f)
{
	return le16_get(g2h(f, USED_GPA + 2, 2));
}

/* The next used element; fails if there is none. */
static void drv_used(struct fx *f, uint16_t *id, uint32_t *len)
{
	assert_int_not_equal(used_idx(f), f->used_seen);
	uint8_t *e = g2h(f, USED_GPA + 4 + 8 * (f->used_seen % f->q.size), 8);
	*id = (uint16_t)le32_get(e);
	*len = le32_get(e + 4);
	f->used_seen++;
}

static void expect_used(struct fx *f, uint16_t head, uint32_t len)
{
	uint16_t id;
	uint32_t l;
	drv_used(f, &id, &l);
	assert_int_equal(id, head);
	assert_int_equal(l, len);
}

static int run(struct fx *f)
{
	return vblk_dev_process(f->dev, &f->mem, &f->q, &f->notify);
}

static uint64_t mk_hdr(struct fx *f, uint32_t type, uint64_t sector)
{
	uint64_t g = galloc(f, 16);
	uint8_t *p = g2h(f, g, 16);
	le32_put(p, type);
	le32_put(p + 4, 0);
	le64_put(p + 8, sector);
	return g;
}

static uint64_t mk_status(struct fx *f)
{
	uint64_t g = galloc(f, 1);
	*g2h(f, g, 1) = 0xee; /* neither OK, IOERR nor UNSUPP */
	return g;
}

static uint64_t mk_data(struct fx *f, uint32_t len, uint64_t seed)
{
	uint64_t g = galloc(f, len);
	if (seed)
		tu_fill_random(g2h(f, g, len), len, seed);
	else
		memset(g2h(f, g, len), 0x5a, len);
	return g;
}

static uint8_t status_at(struct fx *f, uint64_t gpa)
{
	return *g2h(f, gpa, 1);
}

/* Submit one request and process it: its status byte. */
static uint8_t one(struct fx *f, const struct seg *s, unsigned n,
		   uint32_t used_len)
{
	uint16_t head = drv_chain(f, s, n);
	drv_avail(f, head);
	assert_int_equal(run(f), 1);
	expect_used(f, head, used_len);
	assert_false(vblk_dev_broken(f->dev));
	while (n > 1 && !(s[n - 1].len && (s[n - 1].flags & W)))
		n--; /* the status byte: last byte of the last writable */
	return status_at(f, s[n - 1].gpa + s[n - 1].len - 1);
}

/* Simple OUT / IN: header, one data buffer, status. */
static uint8_t blk_write(struct fx *f, uint64_t sector, uint64_t data,
			 uint32_t len)
{
	uint64_t h = mk_hdr(f, VBLK_T_OUT, sector), st = mk_status(f);
	struct seg s[] = {{h, 16, 0}, {data, len, 0}, {st, 1, W}};
	return one(f, s, 3, 1);
}

static uint8_t blk_read(struct fx *f, uint64_t sector, uint64_t data,
			uint32_t len, uint32_t used_len)
{
	uint64_t h = mk_hdr(f, VBLK_T_IN, sector), st = mk_status(f);
	struct seg s[] = {{h, 16, 0}, {data, len, W}, {st, 1, W}};
	return one(f, s, 3, used_len);
}

/* The disk's bytes, read through the store. */
static void disk_expect(struct fx *f, uint64_t off, const void *want,
			size_t len)
{
	uint8_t *b = malloc(len);
	assert_int_equal(bs_disk_read(f->d, b, len, off), 0);
	assert_memory_equal(b, want, len);
	free(b);
}

static void disk_expect_zero(struct fx *f, uint64_t off, size_t len)
{
	uint8_t *z = calloc(1, len);
	disk_expect(f, off, z, len);
	free(z);
}

static void disk_fill(struct fx *f, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);
	tu_fill_random(b, len, seed);
	assert_int_equal(bs_disk_write(f->d, b, len, off), 0);
	free(b);
}

static void disk_expect_seed(struct fx *f, uint64_t off, size_t len,
			     uint64_t seed)
{
	uint8_t *b = malloc(len);
	tu_fill_random(b, len, seed);
	disk_expect(f, off, b, len);
	free(b);
}

/* ---- guest memory ---- */

static void test_mem_translate(void **state)
{
	struct fx *f = *state;
	const struct vblk_mem *m = &f->mem;
	uint64_t run;
	struct iovec iov[4];

	assert_int_equal(vblk_mem_check(m), 0);
	assert_ptr_equal(vblk_mem_ptr(m, 0, R0_SIZE), f->reg[0].host);
	assert_ptr_equal(vblk_mem_ptr(m, R0_SIZE - 1, 1),
			 (uint8_t *)f->reg[0].host + R0_SIZE - 1);
	assert_null(vblk_mem_ptr(m, R0_SIZE - 1, 2)); /* into the hole */
	assert_null(vblk_mem_ptr(m, R0_SIZE, 1));     /* the hole */
	assert_null(vblk_mem_ptr(m, GAP_GPA, 16));
	assert_null(vblk_mem_ptr(m, 0, 0)); /* nothing */
	assert_null(vblk_mem_ptr(m, UINT64_MAX, 1));
	assert_null(vblk_mem_ptr(m, 16, UINT64_MAX)); /* gpa + len wraps */
	assert_null(vblk_mem_ptr(m, R1_GPA + 10, R1_SIZE)); /* R1 into R2 */

	/* map: the run inside the first region */
	assert_ptr_equal(vblk_mem_map(m, R2_GPA - 100, 300, &run),
			 (uint8_t *)f->reg[1].host + R1_SIZE - 100);
	assert_int_equal(run, 100);
	assert_null(vblk_mem_map(m, GAP_GPA, 1, &run));
	assert_int_equal(run, 0);

	/* iov: adjacent regions split, holes and wraps refused */
	assert_int_equal(vblk_mem_iov(m, R2_GPA - 100, 300, iov, 4), 2);
	assert_ptr_equal(iov[0].iov_base,
			 (uint8_t *)f->reg[1].host + R1_SIZE - 100);
	assert_int_equal(iov[0].iov_len, 100);
	assert_ptr_equal(iov[1].iov_base, f->reg[2].host);
	assert_int_equal(iov[1].iov_len, 200);
	assert_int_equal(vblk_mem_iov(m, R2_GPA - 100, 300, iov, 1), -E2BIG);
	assert_int_equal(vblk_mem_iov(m, R2_GPA + R2_SIZE - 10, 20, iov, 4),
			 -EFAULT);
	assert_int_equal(vblk_mem_iov(m, R0_SIZE - 10, 20, iov, 4), -EFAULT);
	assert_int_equal(vblk_mem_iov(m, 5, 0, iov, 4), 0);
	assert_int_equal(vblk_mem_iov(m, UINT64_MAX - 15, 32, iov, 4), -EFAULT);

	/* A region at the top of the address space and one at 0: a range
	 * that would wrap from one into the other is refused. */
	static uint8_t top[4096], bottom[4096];
	struct vblk_mem_region wr[2] = {{UINT64_MAX - 4095, 4096, top},
					{0, 4096, bottom}};
	struct vblk_mem wm = {wr, 2};
	assert_int_equal(vblk_mem_check(&wm), 0);
	assert_ptr_equal(vblk_mem_ptr(&wm, UINT64_MAX, 1), top + 4095);
	assert_int_equal(vblk_mem_iov(&wm, UINT64_MAX - 15, 32, iov, 4),
			 -EFAULT);
	assert_null(vblk_mem_ptr(&wm, UINT64_MAX - 15, 32));

	/* bad tables */
	struct vblk_mem_region bad[2] = {{0, 8192, top}, {4096, 4096, bottom}};
	struct vblk_mem bm = {bad, 2};
	assert_int_equal(vblk_mem_check(&bm), -EINVAL); /* overlap */
	bad[1] = (struct vblk_mem_region){8192, 0, bottom};
	assert_int_equal(vblk_mem_check(&bm), -EINVAL); /* empty */
	bad[1] = (struct vblk_mem_region){UINT64_MAX - 10, 4096, bottom};
	assert_int_equal(vblk_mem_check(&bm), -EINVAL); /* wraps */
	bad[1] = (struct vblk_mem_region){8192, 4096, NULL};
	assert_int_equal(vblk_mem_check(&bm), -EINVAL); /* unmapped */
	bad[1] = (struct vblk_mem_region){8192, 4096, bottom};
	assert_int_equal(vblk_mem_check(&bm), 0); /* adjacent is fine */
}

/* ---- features and config ---- */

static void test_features_config(void **state)
{
	struct fx *f = *state;
	uint8_t cfg[96];
	struct vblk_dev *dev;
	uint64_t off = vblk_dev_features(f->dev);

	assert_true(off & VBLK_F_VERSION_1);
	assert_true(off & VBLK_F_FLUSH);
	assert_true(off & VBLK_F_DISCARD);
	assert_true(off & VBLK_F_WRITE_ZEROES);
	assert_true(off & VBLK_F_EVENT_IDX);
	assert_true(off & VBLK_F_INDIRECT_DESC);
	assert_true(off & VBLK_F_SEG_MAX);
	assert_false(off & VBLK_F_RO);

	memset(cfg, 0xff, sizeof(cfg));
	vblk_dev_config(f->dev, cfg, sizeof(cfg));
	assert_int_equal(le64_get(cfg), CAP);
	assert_int_equal(le32_get(cfg + 8), 0); /* size_max */
	assert_int_equal(le32_get(cfg + 12), VBLK_SEG_MAX);
	assert_int_equal(le32_get(cfg + 20), 512); /* blk_size */
	assert_int_equal(cfg[24], 3);              /* 4 KiB physical */
	assert_int_equal(le16_get(cfg + 26), 8);
	assert_int_equal(cfg[32], 1); /* writeback: FLUSH negotiated */
	assert_int_equal(cfg[33], 0);
	assert_int_equal(le32_get(cfg + 36), VBLK_MAX_DWZ_SECTORS);
	assert_int_equal(le32_get(cfg + 40), VBLK_MAX_DWZ_SEGS);
	assert_int_equal(le32_get(cfg + 44), 8);
	assert_int_equal(le32_get(cfg + 48), VBLK_MAX_DWZ_SECTORS);
	assert_int_equal(le32_get(cfg + 52), VBLK_MAX_DWZ_SEGS);
	assert_int_equal(cfg[56], 1);
	for (unsigned i = 57; i < sizeof(cfg); i++)
		assert_int_equal(cfg[i], 0);
	/* a short window */
	uint8_t small[4] = {0};
	vblk_dev_config(f->dev, small, sizeof(small));
	assert_memory_equal(small, cfg, 4);

	/* negotiation */
	assert_int_equal(vblk_dev_set_features(f->dev, VBLK_F_FLUSH), -EINVAL);
	assert_int_equal(vblk_dev_set_features(f->dev, off | VBLK_F_RO),
			 -EINVAL);
	assert_int_equal(vblk_dev_set_features(f->dev, off | (1ull << 34)),
			 -EINVAL);
	assert_int_equal(vblk_dev_set_features(f->dev, VBLK_F_VERSION_1), 0);
	vblk_dev_config(f->dev, cfg, sizeof(cfg));
	assert_int_equal(cfg[32], 0); /* writethrough */

	/* a transport mask */
	assert_int_equal(vblk_dev_create(f->d, "x", VBLK_F_FLUSH, &dev),
			 -EINVAL);
	assert_int_equal(vblk_dev_create(f->d, "x",
					 VBLK_F_VERSION_1 | VBLK_F_FLUSH, &dev),
			 0);
	assert_int_equal(vblk_dev_features(dev),
			 VBLK_F_VERSION_1 | VBLK_F_FLUSH);
	vblk_dev_config(dev, cfg, sizeof(cfg));
	assert_int_equal(le32_get(cfg + 12), 0);
	assert_int_equal(le32_get(cfg + 36), 0);
	assert_int_equal(le32_get(cfg + 48), 0);
	assert_int_equal(cfg[56], 0);
	vblk_dev_close(dev);

	/* resize: the capacity follows once, for the config interrupt */
	assert_false(vblk_dev_config_changed(f->dev));
	assert_int_equal(bs_resize(f->s, "vm0", 2 * DISK_SIZE, 0), 0);
	assert_true(vblk_dev_config_changed(f->dev));
	assert_false(vblk_dev_config_changed(f->dev));
	vblk_dev_config(f->dev, cfg, 8);
	assert_int_equal(le64_get(cfg), 2 * CAP);
}

/* ---- requests ---- */

static void test_write_read(void **state)
{
	struct fx *f = *state;
	uint64_t d = mk_data(f, 8192, 1), back = galloc(f, 8192);

	assert_int_equal(blk_write(f, 16, d, 8192), VBLK_S_OK);
	assert_true(f->notify);
	disk_expect(f, 16 * 512, g2h(f, d, 8192), 8192);
	disk_expect_zero(f, 0, 16 * 512);
	assert_int_equal(blk_read(f, 16, back, 8192, 8193), VBLK_S_OK);
	assert_memory_equal(g2h(f, back, 8192), g2h(f, d, 8192), 8192);

	/* the last sector, and an empty read at the very end */
	uint64_t d2 = mk_data(f, 512, 2);
	assert_int_equal(blk_write(f, CAP - 1, d2, 512), VBLK_S_OK);
	disk_expect(f, DISK_SIZE - 512, g2h(f, d2, 512), 512);
	uint64_t h = mk_hdr(f, VBLK_T_IN, CAP), st = mk_status(f);
	struct seg s[] = {{h, 16, 0}, {st, 1, W}};
	assert_int_equal(one(f, s, 2, 1), VBLK_S_OK);

	/* many requests in one pass */
	uint16_t heads[10];
	uint64_t sts[10];
	for (int i = 0; i < 10; i++) {
		uint64_t hh = mk_hdr(f, VBLK_T_OUT, 1000 + 8 * i);
		uint64_t dd = mk_data(f, 4096, 100 + i);
		sts[i] = mk_status(f);
		struct seg ss[] = {{hh, 16, 0}, {dd, 4096, 0}, {sts[i], 1, W}};
		heads[i] = drv_chain(f, ss, 3);
		drv_avail(f, heads[i]);
	}
	assert_int_equal(run(f), 10);
	assert_true(f->notify);
	for (int i = 0; i < 10; i++) {
		expect_used(f, heads[i], 1);
		assert_int_equal(status_at(f, sts[i]), VBLK_S_OK);
		disk_expect_seed(f, (1000 + 8 * i) * 512ull, 4096, 100 + i);
	}
	/* a large request: several bounce-buffer slices, cut at odd
	 * places by its descriptors */
	const uint32_t parts[] = {300 * 1024 + 512, 4096, 700 * 1024 - 512, 512,
				  20 * 1024};
	uint64_t total = 0, big = galloc(f, 1024 * 1024 + 24 * 1024);
	for (int i = 0; i < 5; i++)
		total += parts[i];
	tu_fill_random(g2h(f, big, total), total, 30);
	uint64_t hb = mk_hdr(f, VBLK_T_OUT, 4096), sb = mk_status(f);
	struct seg sw[7] = {{hb, 16, 0}};
	struct seg sr[7] = {{mk_hdr(f, VBLK_T_IN, 4096), 16, 0}};
	uint64_t rback = galloc(f, total);
	for (uint64_t i = 0, o = 0; i < 5; o += parts[i], i++) {
		sw[i + 1] = (struct seg){big + o, parts[i], 0};
		sr[i + 1] = (struct seg){rback + o, parts[i], W};
	}
	sw[6] = (struct seg){sb, 1, W};
	sr[6] = (struct seg){sb, 1, W};
	assert_int_equal(one(f, sw, 7, 1), VBLK_S_OK);
	disk_expect_seed(f, 4096 * 512, total, 30);
	assert_int_equal(one(f, sr, 7, (uint32_t)total + 1), VBLK_S_OK);
	assert_memory_equal(g2h(f, rback, total), g2h(f, big, total), total);

	/* nothing new: no interrupt */
	assert_int_equal(run(f), 0);
	assert_false(f->notify);
}

static void test_multi_descriptor(void **state)
{
	struct fx *f = *state;
	uint64_t a = mk_data(f, 4096, 3), b = mk_data(f, 4096, 4),
		 c = mk_data(f, 512, 5);
	uint64_t h = mk_hdr(f, VBLK_T_OUT, 64), st = mk_status(f);
	struct seg s[] = {{h, 16, 0},
			  {a, 4096, 0},
			  {b, 4096, 0},
			  {c, 512, 0},
			  {st, 1, W}};
	assert_int_equal(one(f, s, 5, 1), VBLK_S_OK);
	disk_expect(f, 64 * 512, g2h(f, a, 4096), 4096);
	disk_expect(f, 64 * 512 + 4096, g2h(f, b, 4096), 4096);
	disk_expect(f, 64 * 512 + 8192, g2h(f, c, 512), 512);

	/* IN into two buffers, the status byte the last of the second */
	uint64_t x = galloc(f, 4096), y = galloc(f, 4096 + 512 + 1);
	*g2h(f, y + 4608, 1) = 0xee;
	uint64_t h2 = mk_hdr(f, VBLK_T_IN, 64);
	struct seg r[] = {{h2, 16, 0}, {x, 4096, W}, {y, 4608 + 1, W}};
	assert_int_equal(one(f, r, 3, 8192 + 512 + 1), VBLK_S_OK);
	assert_memory_equal(g2h(f, x, 4096), g2h(f, a, 4096), 4096);
	assert_memory_equal(g2h(f, y, 4096), g2h(f, b, 4096), 4096);
	assert_memory_equal(g2h(f, y + 4096, 512), g2h(f, c, 512), 512);

	/* header and data in one readable buffer, empty descriptors */
	uint64_t hd = galloc(f, 16 + 1024);
	memcpy(g2h(f, hd, 16), g2h(f, mk_hdr(f, VBLK_T_OUT, 200), 16), 16);
	tu_fill_random(g2h(f, hd + 16, 1024), 1024, 6);
	uint64_t st2 = mk_status(f);
	struct seg t[] = {{hd, 16 + 1024, 0},
			  {GAP_GPA, 0, 0},
			  {st2, 1, W},
			  {GAP_GPA, 0, W}};
	assert_int_equal(one(f, t, 4, 1), VBLK_S_OK);
	assert_int_equal(status_at(f, st2), VBLK_S_OK);
	disk_expect_seed(f, 200 * 512, 1024, 6);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	uint64_t a = mk_data(f, 2048, 7), b = mk_data(f, 2048, 8);
	uint64_t h = mk_hdr(f, VBLK_T_OUT, 300), st = mk_status(f);
	struct seg s[] = {{h, 16, 0}, {a, 2048, 0}, {b, 2048, 0}, {st, 1, W}};
	uint16_t head = drv_indirect(f, s, 4);
	drv_avail(f, head);
	assert_int_equal(run(f), 1);
	expect_used(f, head, 1);
	assert_int_equal(status_at(f, st), VBLK_S_OK);
	disk_expect(f, 300 * 512, g2h(f, a, 2048), 2048);
	disk_expect(f, 300 * 512 + 2048, g2h(f, b, 2048), 2048);

	/* a direct header, then an indirect table ending the chain */
	uint64_t x = galloc(f, 4096), st2 = mk_status(f);
	uint64_t h2 = mk_hdr(f, VBLK_T_IN, 300);
	uint64_t tg = galloc(f, 32);
	put_desc(g2h(f, tg, 32), 0, x, 4096, W | VBLK_DESC_F_NEXT, 1);
	put_desc(g2h(f, tg, 32), 1, st2, 1, W, 0);
	struct seg c[] = {{h2, 16, 0}, {tg, 32, VBLK_DESC_F_INDIRECT}};
	head = drv_chain(f, c, 2);
	drv_avail(f, head);
	assert_int_equal(run(f), 1);
	expect_used(f, head, 4097);
	assert_int_equal(status_at(f, st2), VBLK_S_OK);
	assert_memory_equal(g2h(f, x, 2048), g2h(f, a, 2048), 2048);
	assert_memory_equal(g2h(f, x + 2048, 2048), g2h(f, b, 2048), 2048);

	/* an indirect table in the second region */
	uint64_t t3 = R1_GPA + 4096, x3 = R1_GPA + 8192, st3 = R1_GPA + 16384;
	uint64_t h3 = mk_hdr(f, VBLK_T_IN, 300);
	put_desc(g2h(f, t3, 48), 0, h3, 16, VBLK_DESC_F_NEXT, 1);
	put_desc(g2h(f, t3, 48), 1, x3, 512, W | VBLK_DESC_F_NEXT, 2);
	put_desc(g2h(f, t3, 48), 2, st3, 1, W, 0);
	struct seg i3 = {t3, 48, VBLK_DESC_F_INDIRECT};
	head = drv_chain(f, &i3, 1);
	drv_avail(f, head);
	assert_int_equal(run(f), 1);
	expect_used(f, head, 513);
	assert_int_equal(status_at(f, st3), VBLK_S_OK);
	assert_memory_equal(g2h(f, x3, 512), g2h(f, a, 512), 512);
}

static void test_odd_splits(void **state)
{
	struct fx *f = *state;
	/* header in 3 + 13 bytes, data in 1 + 511 + 1000 + 536, status
	 * with the last data bytes' neighbour: its own 1-byte buffer */
	uint64_t h = mk_hdr(f, VBLK_T_OUT, 77);
	uint64_t src = mk_data(f, 2048, 9);
	uint64_t st = mk_status(f);
	struct seg s[] = {
		{h, 3, 0},         {h + 3, 13, 0},       {src, 1, 0},
		{src + 1, 511, 0}, {src + 512, 1000, 0}, {src + 1512, 536, 0},
		{st, 1, W}};
	assert_int_equal(one(f, s, 7, 1), VBLK_S_OK);
	disk_expect(f, 77 * 512, g2h(f, src, 2048), 2048);

	/* read it back across the R1|R2 boundary, the status byte the last
	 * byte of a buffer that also holds data */
	uint64_t x = R2_GPA - 300, y = R2_GPA + 4096;
	uint64_t h2 = mk_hdr(f, VBLK_T_IN, 77);
	*g2h(f, y + 1024, 1) = 0xee;
	struct seg r[] = {
		{h2, 16, 0}, {x, 7, W}, {x + 7, 1017, W}, {y, 1025, W}};
	assert_int_equal(one(f, r, 4, 2049), VBLK_S_OK);
	assert_int_equal(*g2h(f, y + 1024, 1), VBLK_S_OK);
	assert_memory_equal(g2h(f, x, 300), g2h(f, src, 300), 300);
	assert_memory_equal(g2h(f, R2_GPA, 724), g2h(f, src + 300, 724), 724);
	assert_memory_equal(g2h(f, y, 1024), g2h(f, src + 1024, 1024), 1024);

	/* a write whose one data buffer crosses the boundary */
	uint64_t h3 = mk_hdr(f, VBLK_T_OUT, 500), st3 = mk_status(f);
	tu_fill_random(g2h(f, R2_GPA - 2048, 2048), 2048, 10);
	tu_fill_random(g2h(f, R2_GPA, 2048), 2048, 11);
	struct seg w[] = {{h3, 16, 0}, {R2_GPA - 2048, 4096, 0}, {st3, 1, W}};
	assert_int_equal(one(f, w, 3, 1), VBLK_S_OK);
	disk_expect_seed(f, 500 * 512, 2048, 10);
	disk_expect_seed(f, 500 * 512 + 2048, 2048, 11);
}

/* In a child process: open the store, write 4 KiB of 'seed' at 'sector'
 * through a new device (then FLUSH if asked), and exit without closing
 * anything, as a crash would.  No cmocka asserts here: 0 or 1 out. */
static void crash_child(struct fx *f, uint64_t feats, uint64_t sector,
			uint64_t seed, bool flush)
{
	bs_store *s;
	bs_disk *d;
	struct vblk_dev *dev;
	bool irq;
	/* The parent's per-thread io_uring came along with fork(): a child
	 * must not use it (its completions are the parent's), so the child
	 * reads and writes with plain pread/pwrite. */
	struct bs_store_options o;
	bs_store_options_default(&o);
	o.io_engine = CAS_IO_SYNC;
	if (bs_store_open(f->store, &o, &s) || bs_disk_open(s, "vm0", &d) ||
	    vblk_dev_create(d, "vm0", VBLK_F_ALL, &dev) ||
	    vblk_dev_set_features(dev, feats))
		_exit(1);
	uint64_t h = mk_hdr(f, VBLK_T_OUT, sector), st = mk_status(f);
	uint64_t data = mk_data(f, 4096, seed);
	struct seg w[] = {{h, 16, 0}, {data, 4096, 0}, {st, 1, W}};
	drv_avail(f, drv_chain(f, w, 3));
	uint64_t h2 = mk_hdr(f, VBLK_T_FLUSH, 0), st2 = mk_status(f);
	struct seg fl[] = {{h2, 16, 0}, {st2, 1, W}};
	if (flush)
		drv_avail(f, drv_chain(f, fl, 2));
	if (vblk_dev_process(dev, &f->mem, &f->q, &irq) != 1 + flush ||
	    status_at(f, st) != VBLK_S_OK ||
	    (flush && status_at(f, st2) != VBLK_S_OK))
		_exit(1);
	_exit(0);
}

static void crash_after(struct fx *f, uint64_t feats, uint64_t sector,
			uint64_t seed, bool flush)
{
	int wst;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_child(f, feats, sector, seed, flush);
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst));
	assert_int_equal(WEXITSTATUS(wst), 0);
}

static void test_flush_and_writethrough(void **state)
{
	struct fx *f = *state;
	uint64_t h = mk_hdr(f, VBLK_T_FLUSH, 0), st = mk_status(f);
	struct seg s[] = {{h, 16, 0}, {st, 1, W}};
	assert_int_equal(one(f, s, 2, 1), VBLK_S_OK);

	/* The store belongs to one process at a time: hand it over. */
	vblk_dev_close(f->dev);
	f->dev = NULL;
	assert_int_equal(bs_disk_close(f->d), 0);
	f->d = NULL;
	assert_int_equal(bs_store_close(f->s), 0);

	/* FLUSH negotiated, none sent: the write may be lost (and with
	 * this store it is: the disk's root was never committed) */
	crash_after(f, FEAT_STD, 8, 19, false);
	/* FLUSH negotiated and sent after the write: it survives */
	crash_after(f, FEAT_STD, 16, 20, true);
	/* FLUSH offered but not negotiated: every write is stable when it
	 * completes */
	crash_after(f, VBLK_F_VERSION_1, 24, 21, false);

	assert_int_equal(bs_store_open(f->store, NULL, &f->s), 0);
	dev_open(f, "vm0", "vm0", VBLK_F_ALL, FEAT_STD);
	disk_expect_zero(f, 8 * 512, 4096);
	disk_expect_seed(f, 16 * 512, 4096, 20);
	disk_expect_seed(f, 24 * 512, 4096, 21);
}

static void test_get_id(void **state)
{
	struct fx *f = *state;
	char want[20] = "vm0-serial";
	uint64_t h = mk_hdr(f, VBLK_T_GET_ID, 0), id = galloc(f, 40);
	uint64_t st = mk_status(f);
	memset(g2h(f, id, 40), 0x77, 40);
	struct seg s[] = {{h, 16, 0}, {id, 20, W}, {st, 1, W}};
	assert_int_equal(one(f, s, 3, 21), VBLK_S_OK);
	assert_memory_equal(g2h(f, id, 20), want, 20);
	assert_int_equal(*g2h(f, id + 20, 1), 0x77);

	/* a buffer too small gets what fits; a big one 20 bytes */
	struct seg s2[] = {{h, 16, 0}, {id, 5, W}, {st, 1, W}};
	assert_int_equal(one(f, s2, 3, 6), VBLK_S_OK);
	struct seg s3[] = {{h, 16, 0}, {id, 40, W}, {st, 1, W}};
	assert_int_equal(one(f, s3, 3, 21), VBLK_S_OK);

	/* 20 bytes exactly has no NUL; longer is cut */
	dev_open(f, "vm0", "0123456789abcdefghijKLMN", VBLK_F_ALL, FEAT_STD);
	memset(g2h(f, id, 40), 0x77, 40);
	assert_int_equal(one(f, s3, 3, 21), VBLK_S_OK);
	assert_memory_equal(g2h(f, id, 20), "0123456789abcdefghij", 20);
	assert_int_equal(*g2h(f, id + 20, 1), 0x77);
}

/* A DISCARD / WRITE_ZEROES request with segments {sector, num, flags}. */
static uint8_t dwz(struct fx *f, uint32_t type, const uint64_t (*segs)[3],
		   unsigned n, uint32_t extra_bytes)
{
	uint64_t h = mk_hdr(f, type, 0), st = mk_status(f);
	uint32_t len = 16 * n + extra_bytes;
	uint64_t g = galloc(f, len ? len : 1);
	memset(g2h(f, g, len ? len : 1), 0, len ? len : 1);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = g2h(f, g + 16 * i, 16);
		le64_put(p, segs[i][0]);
		le32_put(p + 8, (uint32_t)segs[i][1]);
		le32_put(p + 12, (uint32_t)segs[i][2]);
	}
	struct seg s[] = {{h, 16, 0}, {g, len, 0}, {st, 1, W}};
	return one(f, s, 3, 1);
}

static void test_discard_write_zeroes(void **state)
{
	struct fx *f = *state;
	disk_fill(f, 0, 128 * 512, 13);

	const uint64_t two[][3] = {{8, 16, 0}, {40, 8, 0}};
	assert_int_equal(dwz(f, VBLK_T_DISCARD, two, 2, 0), VBLK_S_OK);
	disk_expect_zero(f, 8 * 512, 16 * 512);
	disk_expect_zero(f, 40 * 512, 8 * 512);
	uint8_t *all = malloc(128 * 512);
	tu_fill_random(all, 128 * 512, 13);
	disk_expect(f, 0, all, 8 * 512);
	disk_expect(f, 24 * 512, all + 24 * 512, 16 * 512);
	disk_expect(f, 48 * 512, all + 48 * 512, 80 * 512);

	/* write zeroes, unmap or not; odd (sub-block) ranges too */
	const uint64_t wz[][3] = {{60, 3, VBLK_DWZ_F_UNMAP}, {70, 1, 0}};
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, wz, 2, 0), VBLK_S_OK);
	disk_expect_zero(f, 60 * 512, 3 * 512);
	disk_expect_zero(f, 70 * 512, 512);
	disk_expect(f, 63 * 512, all + 63 * 512, 7 * 512);
	disk_expect(f, 71 * 512, all + 71 * 512, 57 * 512);

	/* refusals change nothing */
	const uint64_t unmap[][3] = {{100, 8, VBLK_DWZ_F_UNMAP}};
	assert_int_equal(dwz(f, VBLK_T_DISCARD, unmap, 1, 0), VBLK_S_UNSUPP);
	const uint64_t rsvd[][3] = {{100, 8, 2}};
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, rsvd, 1, 0),
			 VBLK_S_UNSUPP);
	const uint64_t big[][3] = {{100, VBLK_MAX_DWZ_SECTORS + 1ull, 0}};
	assert_int_equal(dwz(f, VBLK_T_DISCARD, big, 1, 0), VBLK_S_IOERR);
	const uint64_t past[][3] = {{100, 8, 0}, {CAP - 4, 8, 0}};
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, past, 2, 0), VBLK_S_IOERR);
	const uint64_t wrap[][3] = {{100, 8, 0}, {UINT64_MAX - 2, 8, 0}};
	assert_int_equal(dwz(f, VBLK_T_DISCARD, wrap, 2, 0), VBLK_S_IOERR);
	assert_int_equal(dwz(f, VBLK_T_DISCARD, two, 1, 8), VBLK_S_IOERR);
	assert_int_equal(dwz(f, VBLK_T_DISCARD, two, 0, 0), VBLK_S_IOERR);
	uint64_t(*many)[3] = calloc(VBLK_MAX_DWZ_SEGS + 1, sizeof(*many));
	for (unsigned i = 0; i <= VBLK_MAX_DWZ_SEGS; i++) {
		many[i][0] = 100 + i;
		many[i][1] = 1;
	}
	assert_int_equal(dwz(f, VBLK_T_DISCARD, (const uint64_t(*)[3])many,
			     VBLK_MAX_DWZ_SEGS + 1, 0),
			 VBLK_S_IOERR);
	disk_expect(f, 100 * 512, all + 100 * 512, 28 * 512);
	/* the most segments allowed */
	assert_int_equal(dwz(f, VBLK_T_DISCARD, (const uint64_t(*)[3])many,
			     VBLK_MAX_DWZ_SEGS, 0),
			 VBLK_S_OK);
	disk_expect_zero(f, 100 * 512, 28 * 512);
	free(many);

	/* not negotiated */
	assert_int_equal(
		vblk_dev_set_features(f->dev, VBLK_F_VERSION_1 | VBLK_F_FLUSH),
		0);
	assert_int_equal(dwz(f, VBLK_T_DISCARD, two, 1, 0), VBLK_S_UNSUPP);
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, two, 1, 0), VBLK_S_UNSUPP);

	/* a segment over the limit on a disk big enough to hold it */
	assert_int_equal(vblk_dev_set_features(f->dev, FEAT_STD), 0);
	assert_int_equal(bs_resize(f->s, "vm0", 4096 * MiB, 0), 0);
	const uint64_t huge[][3] = {{0, VBLK_MAX_DWZ_SECTORS + 1ull, 0}};
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, huge, 1, 0), VBLK_S_IOERR);
	disk_expect(f, 0, all, 8 * 512);
	const uint64_t most[][3] = {
		{2 * VBLK_MAX_DWZ_SECTORS, VBLK_MAX_DWZ_SECTORS, 0}};
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, most, 1, 0), VBLK_S_OK);
	free(all);
}

static void test_read_only(void **state)
{
	struct fx *f = *state;
	disk_fill(f, 0, 64 * 512, 14);
	assert_int_equal(bs_disk_flush(f->d), 0);
	assert_int_equal(bs_snapshot(f->s, "vm0", "s1"), 0);
	dev_open(f, "vm0@s1", "snap", VBLK_F_ALL, FEAT_STD | VBLK_F_RO);
	assert_true(vblk_dev_features(f->dev) & VBLK_F_RO);
	/* RO is offered even if the transport's mask leaves it out */
	struct vblk_dev *d2;
	assert_int_equal(vblk_dev_create(f->d, "x", VBLK_F_VERSION_1, &d2), 0);
	assert_true(vblk_dev_features(d2) & VBLK_F_RO);
	vblk_dev_close(d2);

	uint64_t d = mk_data(f, 4096, 15);
	assert_int_equal(blk_write(f, 0, d, 4096), VBLK_S_IOERR);
	const uint64_t one_seg[][3] = {{0, 8, 0}};
	assert_int_equal(dwz(f, VBLK_T_DISCARD, one_seg, 1, 0), VBLK_S_IOERR);
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, one_seg, 1, 0),
			 VBLK_S_IOERR);
	disk_expect_seed(f, 0, 64 * 512, 14);

	/* refused as a guest error, before the store is asked */
	assert_int_equal(f->nlog[VBLK_LOG_WARN], 0);

	uint64_t back = galloc(f, 4096);
	assert_int_equal(blk_read(f, 0, back, 4096, 4097), VBLK_S_OK);
	uint8_t want[4096];
	tu_fill_random(want, sizeof(want), 14);
	assert_memory_equal(g2h(f, back, 4096), want, 4096);
	uint64_t h = mk_hdr(f, VBLK_T_FLUSH, 0), st = mk_status(f);
	struct seg s[] = {{h, 16, 0}, {st, 1, W}};
	assert_int_equal(one(f, s, 2, 1), VBLK_S_OK);
}

struct stats_seen {
	unsigned n;
	uint32_t type[8];
	uint64_t bytes[8];
	uint8_t status[8];
};

static void stats_cb(void *arg, uint32_t type, uint64_t bytes, uint64_t ns,
		     uint8_t status)
{
	struct stats_seen *s = arg;
	(void)ns;
	if (s->n < 8) {
		s->type[s->n] = type;
		s->bytes[s->n] = bytes;
		s->status[s->n] = status;
	}
	s->n++;
}

/* The statistics hook sees every request once, with its type, data
 * bytes and status. */
static void test_stats_hook(void **state)
{
	struct fx *f = *state;
	struct stats_seen seen = {0};
	vblk_dev_set_stats(f->dev, stats_cb, &seen);
	uint64_t d = mk_data(f, 8192, 18);
	assert_int_equal(blk_write(f, 0, d, 8192), VBLK_S_OK);
	uint64_t back = galloc(f, 4096);
	assert_int_equal(blk_read(f, 8, back, 4096, 4097), VBLK_S_OK);
	uint64_t h = mk_hdr(f, VBLK_T_FLUSH, 0), st = mk_status(f);
	struct seg s[] = {{h, 16, 0}, {st, 1, W}};
	assert_int_equal(one(f, s, 2, 1), VBLK_S_OK);
	/* past the end: IOERR, still counted */
	assert_int_equal(blk_read(f, CAP, back, 4096, 1), VBLK_S_IOERR);
	assert_int_equal(seen.n, 4);
	assert_int_equal(seen.type[0], VBLK_T_OUT);
	assert_int_equal(seen.bytes[0], 8192);
	assert_int_equal(seen.type[1], VBLK_T_IN);
	assert_int_equal(seen.bytes[1], 4096);
	assert_int_equal(seen.type[2], VBLK_T_FLUSH);
	assert_int_equal(seen.bytes[2], 0);
	assert_int_equal(seen.status[2], VBLK_S_OK);
	assert_int_equal(seen.type[3], VBLK_T_IN);
	assert_int_equal(seen.status[3], VBLK_S_IOERR);
}

/* A writable disk attached read-only (cavm's "--disk STORE:DISK,ro"). */
static void test_set_readonly(void **state)
{
	struct fx *f = *state;
	disk_fill(f, 0, 64 * 512, 16);
	if (f->dev)
		vblk_dev_close(f->dev);
	assert_int_equal(vblk_dev_create(f->d, "ro", VBLK_F_ALL, &f->dev), 0);
	assert_false(vblk_dev_features(f->dev) & VBLK_F_RO);
	vblk_dev_set_readonly(f->dev);
	vblk_dev_set_log(f->dev, log_cb, f);
	assert_true(vblk_dev_features(f->dev) & VBLK_F_RO);
	assert_int_equal(vblk_dev_set_features(f->dev, FEAT_STD | VBLK_F_RO), 0);

	uint64_t d = mk_data(f, 4096, 17);
	assert_int_equal(blk_write(f, 0, d, 4096), VBLK_S_IOERR);
	const uint64_t one_seg[][3] = {{0, 8, 0}};
	assert_int_equal(dwz(f, VBLK_T_DISCARD, one_seg, 1, 0), VBLK_S_IOERR);
	assert_int_equal(dwz(f, VBLK_T_WRITE_ZEROES, one_seg, 1, 0),
			 VBLK_S_IOERR);
	disk_expect_seed(f, 0, 64 * 512, 16);
	assert_int_equal(f->nlog[VBLK_LOG_WARN], 0);
	/* the disk itself stays writable for others */
	assert_false(bs_disk_readonly(f->d));
	uint64_t back = galloc(f, 4096);
	assert_int_equal(blk_read(f, 0, back, 4096, 4097), VBLK_S_OK);
	uint8_t want[4096];
	tu_fill_random(want, sizeof(want), 16);
	assert_memory_equal(g2h(f, back, 4096), want, 4096);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	uint64_t d = mk_data(f, 4096, 16);

	/* past the end, overflowing sector numbers, partial sectors */
	assert_int_equal(blk_read(f, CAP - 4, d, 4096, 1), VBLK_S_IOERR);
	assert_int_equal(blk_write(f, CAP - 4, d, 4096), VBLK_S_IOERR);
	assert_int_equal(blk_write(f, CAP + 1, d, 512), VBLK_S_IOERR);
	assert_int_equal(blk_write(f, 1ull << 55, d, 512), VBLK_S_IOERR);
	assert_int_equal(blk_write(f, UINT64_MAX, d, 512), VBLK_S_IOERR);
	assert_int_equal(blk_read(f, UINT64_MAX >> 9, d, 512, 1), VBLK_S_IOERR);
	assert_int_equal(blk_write(f, 0, d, 100), VBLK_S_IOERR);
	assert_int_equal(blk_read(f, 0, d, 1000, 1), VBLK_S_IOERR);
	disk_expect_zero(f, DISK_SIZE - 4096, 4096);
	disk_expect_zero(f, 0, 4096);

	/* unknown and legacy types */
	const uint32_t types[] = {2,  3,  5,           10,        14,
				  15, 16, 0x80000000u, UINT32_MAX};
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint64_t h = mk_hdr(f, types[i], 0), st = mk_status(f);
		struct seg s[] = {{h, 16, 0}, {d, 512, W}, {st, 1, W}};
		assert_int_equal(one(f, s, 3, 1), VBLK_S_UNSUPP);
	}
	assert_true(f->nlog[VBLK_LOG_DEBUG] > 0);
	assert_int_equal(f->nlog[VBLK_LOG_ERROR], 0);

	/* a header too short, or none */
	uint64_t h = mk_hdr(f, VBLK_T_IN, 0), st = mk_status(f);
	struct seg s1[] = {{h, 8, 0}, {d, 512, W}, {st, 1, W}};
	assert_int_equal(one(f, s1, 3, 1), VBLK_S_IOERR);
	struct seg s2[] = {{st, 1, W}};
	assert_int_equal(one(f, s2, 1, 1), VBLK_S_IOERR);
	/* buffers outside guest memory: the hole, past the end, wrapping */
	struct seg s3[] = {{h, 16, 0}, {GAP_GPA, 512, W}, {st, 1, W}};
	assert_int_equal(one(f, s3, 3, 1), VBLK_S_IOERR);
	assert_non_null(
		strstr(f->last_log, "0x1400000, +512) is not in guest"));
	struct seg s4[] = {
		{h, 16, 0}, {R2_GPA + R2_SIZE - 100, 512, W}, {st, 1, W}};
	assert_int_equal(one(f, s4, 3, 1), VBLK_S_IOERR);
	struct seg s5[] = {{h, 16, 0}, {UINT64_MAX - 255, 512, W}, {st, 1, W}};
	assert_int_equal(one(f, s5, 3, 1), VBLK_S_IOERR);
	struct seg s6[] = {{R0_SIZE - 8, 16, 0}, {d, 512, W}, {st, 1, W}};
	assert_int_equal(one(f, s6, 3, 1), VBLK_S_IOERR);
	uint64_t ho = mk_hdr(f, VBLK_T_OUT, 0);
	struct seg s7[] = {{ho, 16, 0}, {GAP_GPA, 512, 0}, {st, 1, W}};
	assert_int_equal(one(f, s7, 3, 1), VBLK_S_IOERR);
	disk_expect_zero(f, 0, 4096);

	/* too many segments: an indirect table of 1000 buffers that each
	 * cross from R1 into R2 (two iovecs apiece) */
	unsigned n = 1000;
	struct seg *big = calloc(n, sizeof(*big));
	big[0] = (struct seg){mk_hdr(f, VBLK_T_OUT, 0), 16, 0};
	for (unsigned i = 1; i < n - 1; i++)
		big[i] = (struct seg){R2_GPA - 256, 512, 0};
	big[n - 1] = (struct seg){st, 1, W};
	uint16_t head = drv_indirect(f, big, n);
	drv_avail(f, head);
	assert_int_equal(run(f), 1);
	expect_used(f, head, 1);
	assert_int_equal(status_at(f, st), VBLK_S_IOERR);
	free(big);

	assert_false(vblk_dev_broken(f->dev));
	assert_int_equal(f->nlog[VBLK_LOG_ERROR], 0);
	/* and the device still works */
	assert_int_equal(blk_write(f, 0, d, 4096), VBLK_S_OK);
	disk_expect(f, 0, g2h(f, d, 4096), 4096);
}

/* ---- broken rings: each must break the device, and nothing else ---- */

enum breaker {
	B_STATUS_IN_HOLE,
	B_STATUS_PARTLY_OUT,
	B_NO_WRITABLE,
	B_LOOP,
	B_SELF_LOOP,
	B_NEXT_OUT_OF_RANGE,
	B_HEAD_OUT_OF_RANGE,
	B_NEXT_PAST_TABLE, /* these two on a 16-entry queue whose entry */
	B_HEAD_PAST_TABLE, /* "16" would be a good descriptor */
	B_AVAIL_JUMP,
	B_READ_AFTER_WRITE,
	B_INDIRECT_NOT_NEGOTIATED,
	B_INDIRECT_NESTED,
	B_INDIRECT_WITH_NEXT,
	B_INDIRECT_ODD_LEN,
	B_INDIRECT_EMPTY,
	B_INDIRECT_TOO_BIG,
	B_INDIRECT_OUTSIDE,
	B_INDIRECT_LOOP,
	B_INDIRECT_NEXT_OUT,
	B_QSIZE_ZERO,
	B_QSIZE_ODD,
	B_DESC_MISALIGNED,
	B_AVAIL_IN_HOLE,
	B_USED_PARTLY_OUT,
	B_COUNT
};

static void make_broken(struct fx *f, enum breaker b)
{
	uint64_t h = mk_hdr(f, VBLK_T_IN, 0), d = galloc(f, 512);
	uint64_t st = mk_status(f);
	uint8_t *t = g2h(f, DESC_GPA, 16 * 256);
	uint16_t head = 0;
	uint64_t tg = galloc(f, 64);
	uint8_t *tt = g2h(f, tg, 64);

	switch (b) {
	case B_STATUS_IN_HOLE: {
		struct seg s[] = {{h, 16, 0}, {d, 512, W}, {GAP_GPA, 1, W}};
		head = drv_chain(f, s, 3);
		break;
	}
	case B_STATUS_PARTLY_OUT: {
		struct seg s[] = {{h, 16, 0}, {R0_SIZE - 10, 20, W}};
		head = drv_chain(f, s, 2);
		break;
	}
	case B_NO_WRITABLE: {
		struct seg s[] = {{h, 16, 0}, {d, 512, 0}};
		head = drv_chain(f, s, 2);
		break;
	}
	case B_LOOP:
		put_desc(t, 10, h, 16, VBLK_DESC_F_NEXT, 11);
		put_desc(t, 11, d, 512, W | VBLK_DESC_F_NEXT, 12);
		put_desc(t, 12, st, 1, W | VBLK_DESC_F_NEXT, 11);
		head = 10;
		break;
	case B_SELF_LOOP:
		put_desc(t, 10, h, 16, VBLK_DESC_F_NEXT, 10);
		head = 10;
		break;
	case B_NEXT_OUT_OF_RANGE:
		put_desc(t, 10, h, 16, VBLK_DESC_F_NEXT, 256);
		head = 10;
		break;
	case B_HEAD_OUT_OF_RANGE:
		head = 256;
		break;
	case B_NEXT_PAST_TABLE:
		put_desc(t, 3, h, 16, VBLK_DESC_F_NEXT, 16);
		put_desc(t, 16, st, 1, W, 0);
		head = 3;
		break;
	case B_HEAD_PAST_TABLE:
		put_desc(t, 16, st, 1, W, 0);
		head = 16;
		break;
	case B_AVAIL_JUMP: {
		struct seg s[] = {{h, 16, 0}, {st, 1, W}};
		head = drv_chain(f, s, 2);
		drv_avail(f, head);
		f->avail_idx += 256; /* 257 "available" on a 256 queue */
		drv_set_avail_idx(f, f->avail_idx);
		return;
	}
	case B_READ_AFTER_WRITE: {
		struct seg s[] = {
			{h, 16, 0}, {d, 512, W}, {d, 16, 0}, {st, 1, W}};
		head = drv_chain(f, s, 4);
		break;
	}
	case B_INDIRECT_NOT_NEGOTIATED: {
		assert_int_equal(
			vblk_dev_set_features(f->dev,
					      FEAT_STD & ~VBLK_F_INDIRECT_DESC),
			0);
		struct seg s[] = {{h, 16, 0}, {st, 1, W}};
		head = drv_indirect(f, s, 2);
		break;
	}
	case B_INDIRECT_NESTED:
		put_desc(tt, 0, h, 16, VBLK_DESC_F_NEXT, 1);
		put_desc(tt, 1, tg, 32, VBLK_DESC_F_INDIRECT, 0);
		put_desc(t, 10, tg, 32, VBLK_DESC_F_INDIRECT, 0);
		head = 10;
		break;
	case B_INDIRECT_WITH_NEXT:
		put_desc(tt, 0, h, 16, VBLK_DESC_F_NEXT, 1);
		put_desc(tt, 1, st, 1, W, 0);
		put_desc(t, 10, tg, 32, VBLK_DESC_F_INDIRECT | VBLK_DESC_F_NEXT,
			 11);
		put_desc(t, 11, st, 1, W, 0);
		head = 10;
		break;
	case B_INDIRECT_ODD_LEN:
		put_desc(tt, 0, h, 16, VBLK_DESC_F_NEXT, 1);
		put_desc(tt, 1, st, 1, W, 0);
		put_desc(t, 10, tg, 24, VBLK_DESC_F_INDIRECT, 0);
		head = 10;
		break;
	case B_INDIRECT_EMPTY:
		put_desc(t, 10, tg, 0, VBLK_DESC_F_INDIRECT, 0);
		head = 10;
		break;
	case B_INDIRECT_TOO_BIG:
		put_desc(t, 10, HEAP_GPA, 16 * (VBLK_MAX_SEGS + 1),
			 VBLK_DESC_F_INDIRECT, 0);
		head = 10;
		break;
	case B_INDIRECT_OUTSIDE:
		put_desc(t, 10, R0_SIZE - 16, 32, VBLK_DESC_F_INDIRECT, 0);
		head = 10;
		break;
	case B_INDIRECT_LOOP:
		put_desc(tt, 0, h, 16, VBLK_DESC_F_NEXT, 1);
		put_desc(tt, 1, d, 512, W | VBLK_DESC_F_NEXT, 2);
		put_desc(tt, 2, st, 1, W | VBLK_DESC_F_NEXT, 0);
		put_desc(t, 10, tg, 48, VBLK_DESC_F_INDIRECT, 0);
		head = 10;
		break;
	case B_INDIRECT_NEXT_OUT:
		put_desc(tt, 0, h, 16, VBLK_DESC_F_NEXT, 1);
		put_desc(tt, 1, st, 1, W | VBLK_DESC_F_NEXT, 2);
		put_desc(t, 10, tg, 32, VBLK_DESC_F_INDIRECT, 0);
		head = 10;
		break;
	case B_QSIZE_ZERO:
		f->q.size = 0;
		return;
	case B_QSIZE_ODD:
		f->q.size = 6;
		return;
	case B_DESC_MISALIGNED:
		f->q.desc_gpa = DESC_GPA + 8;
		return;
	case B_AVAIL_IN_HOLE:
		f->q.avail_gpa = GAP_GPA;
		return;
	case B_USED_PARTLY_OUT:
		f->q.used_gpa = R0_SIZE - 1024; /* needs 2052 bytes */
		return;
	default:
		fail();
	}
	drv_avail(f, head);
}

static void test_broken_rings(void **state)
{
	struct fx *f = *state;
	uint8_t *ram0 = malloc(R0_SIZE);

	for (int b = 0; b < B_COUNT; b++) {
		bool small = b == B_NEXT_PAST_TABLE || b == B_HEAD_PAST_TABLE;
		q_init(f, small ? 16 : 256);
		assert_int_equal(vblk_dev_set_features(f->dev, FEAT_STD), 0);
		unsigned errs = f->nlog[VBLK_LOG_ERROR];
		/* a good request first: it completes before the bad one */
		uint64_t d = mk_data(f, 512, 17);
		assert_int_equal(blk_write(f, 8, d, 512), VBLK_S_OK);
		make_broken(f, b);
		uint16_t used_before = used_idx(f);
		memcpy(ram0, f->reg[0].host, R0_SIZE);
		bool ring_param = b >= B_QSIZE_ZERO;

		assert_int_equal(run(f), -EIO);
		assert_true(vblk_dev_broken(f->dev));
		assert_int_equal(f->nlog[VBLK_LOG_ERROR], errs + 1);
		/* nothing was completed and no guest byte changed */
		assert_int_equal(used_idx(f), used_before);
		if (!ring_param)
			assert_memory_equal(ram0, f->reg[0].host, R0_SIZE);
		check_canaries(f);
		/* broken stays broken, quietly */
		assert_int_equal(run(f), -EIO);
		assert_int_equal(f->nlog[VBLK_LOG_ERROR], errs + 1);
		/* until a reset */
		vblk_dev_reset(f->dev);
		assert_false(vblk_dev_broken(f->dev));
		assert_int_equal(vblk_dev_set_features(f->dev, 0), -EINVAL);
	}
	/* and after one, it works */
	q_init(f, 256);
	assert_int_equal(vblk_dev_set_features(f->dev, FEAT_STD), 0);
	uint64_t d = mk_data(f, 512, 18);
	assert_int_equal(blk_write(f, 8, d, 512), VBLK_S_OK);
	disk_expect_seed(f, 8 * 512, 512, 18);
	free(ram0);
}

/* ---- notifications and wraparound ---- */

static void set_used_event(struct fx *f, uint16_t v)
{
	le16_put(g2h(f, AVAIL_GPA + 4 + 2 * f->q.size, 2), v);
}

static uint16_t avail_event(struct fx *f)
{
	return le16_get(g2h(f, USED_GPA + 4 + 8 * f->q.size, 2));
}

static void submit_flushes(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = mk_hdr(f, VBLK_T_FLUSH, 0), st = mk_status(f);
		struct seg s[] = {{h, 16, 0}, {st, 1, W}};
		drv_avail(f, drv_chain(f, s, 2));
	}
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	assert_false(vblk_need_event(5, 5, 2));
	assert_true(vblk_need_event(5, 6, 2));
	assert_true(vblk_need_event(2, 3, 2));
	assert_false(vblk_need_event(2, 2, 2));
	assert_true(vblk_need_event(65535, 1, 65534)); /* across the wrap */

	assert_int_equal(
		vblk_dev_set_features(f->dev, FEAT_STD | VBLK_F_EVENT_IDX), 0);
	set_used_event(f, 0); /* interrupt after entry 0 */
	submit_flushes(f, 1);
	assert_int_equal(run(f), 1);
	assert_true(f->notify);
	assert_int_equal(avail_event(f), 1);

	set_used_event(f, 5); /* not until entry 5 is used */
	submit_flushes(f, 1);
	assert_int_equal(run(f), 1); /* used 1 -> 2 */
	assert_false(f->notify);
	submit_flushes(f, 3);
	assert_int_equal(run(f), 3); /* 2 -> 5 */
	assert_false(f->notify);
	assert_int_equal(avail_event(f), 5);
	submit_flushes(f, 2);
	assert_int_equal(run(f), 2); /* 5 -> 7: passes 5 */
	assert_true(f->notify);
	assert_int_equal(run(f), 0);
	assert_false(f->notify);
	f->used_seen = used_idx(f);

	/* without EVENT_IDX: avail->flags decide */
	assert_int_equal(vblk_dev_set_features(f->dev, FEAT_STD), 0);
	le16_put(g2h(f, AVAIL_GPA, 2), VBLK_AVAIL_F_NO_INTERRUPT);
	submit_flushes(f, 2);
	assert_int_equal(run(f), 2);
	assert_false(f->notify);
	le16_put(g2h(f, AVAIL_GPA, 2), 0);
	submit_flushes(f, 1);
	assert_int_equal(run(f), 1);
	assert_true(f->notify);
	assert_int_equal(avail_event(f), 7); /* no longer written */
}

static void test_wraparound(void **state)
{
	struct fx *f = *state;
	q_init(f, 8);
	/* both indexes start just short of the 16-bit wrap */
	f->q.last_avail = f->q.used_idx = 65530;
	f->avail_idx = f->used_seen = 65530;
	le16_put(g2h(f, USED_GPA + 2, 2), 65530);
	drv_set_avail_idx(f, 65530);
	assert_int_equal(
		vblk_dev_set_features(f->dev, FEAT_STD | VBLK_F_EVENT_IDX), 0);
	set_used_event(f, 65535);

	unsigned total = 0, irqs = 0;
	for (unsigned round = 0; round < 12; round++) {
		/* 1..8 requests, each one indirect descriptor: a full queue
		 * at most */
		unsigned n = 1 + round % 8;
		uint16_t heads[8];
		uint64_t sts[8];
		uint16_t before = f->q.used_idx;
		for (unsigned i = 0; i < n; i++) {
			uint64_t sector = 8 * ((total + i) % 64);
			uint64_t h = mk_hdr(f, VBLK_T_OUT, sector);
			uint64_t d = mk_data(f, 512, 1000 + total + i);
			sts[i] = mk_status(f);
			struct seg s[] = {
				{h, 16, 0}, {d, 512, 0}, {sts[i], 1, W}};
			heads[i] = drv_indirect(f, s, 3);
			drv_avail(f, heads[i]);
		}
		assert_int_equal(run(f), (int)n);
		assert_int_equal(f->notify,
				 vblk_need_event(65535, f->q.used_idx, before));
		irqs += f->notify;
		for (unsigned i = 0; i < n; i++) {
			expect_used(f, heads[i], 1);
			assert_int_equal(status_at(f, sts[i]), VBLK_S_OK);
			disk_expect_seed(f, 8 * 512 * ((total + i) % 64), 512,
					 1000 + total + i);
		}
		assert_int_equal(avail_event(f), f->avail_idx);
		total += n;
	}
	assert_int_equal(used_idx(f), (uint16_t)(65530 + total));
	assert_true(total > 6);    /* it did wrap */
	assert_int_equal(irqs, 1); /* once, as entry 65535 was used */
	assert_false(vblk_dev_broken(f->dev));
}

/* ---- a driver on another thread: no lost kick, no lost interrupt ----
 *
 * The driver thread keeps a 64-entry queue busy with GET_ID requests and
 * kicks only when the device asked (avail_event, with EVENT_IDX) and
 * sleeps for an interrupt only after asking for one (used_event, or by
 * clearing VRING_AVAIL_F_NO_INTERRUPT).  The device runs only when
 * kicked.  A barrier or an index published in the wrong order loses a
 * kick or an interrupt, and both sides wait forever: the test fails on
 * a deadline instead. */

#define RACE_QSIZE 64u
#define RACE_SLOTS 21u /* 3 descriptors each */
#ifndef RACE_REQS
#define RACE_REQS 200000u
#endif

struct race {
	struct fx *f;
	bool event_idx;
	int kick, irq, stop; /* atomics */
	const char *err;
};

/* Now and then, a short while of doing nothing: interleavings vary. */
static void race_jitter(uint64_t *rs)
{
	uint64_t r = tu_rand64(rs);
	if (r % 4)
		return;
	for (volatile unsigned i = 0; i < (r >> 8) % 3000; i++)
		;
}

static bool race_wait(int *flag, int *stop, time_t deadline)
{
	while (!__atomic_exchange_n(flag, 0, __ATOMIC_ACQ_REL)) {
		if ((stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE)) ||
		    time(NULL) > deadline)
			return false;
		sched_yield();
	}
	return true;
}

static uint16_t race_ld16(struct fx *f, uint64_t gpa)
{
	return le16toh(
		__atomic_load_n((uint16_t *)g2h(f, gpa, 2), __ATOMIC_ACQUIRE));
}

static void race_st16(struct fx *f, uint64_t gpa, uint16_t v)
{
	__atomic_store_n((uint16_t *)g2h(f, gpa, 2), htole16(v),
			 __ATOMIC_RELEASE);
}

static void *race_driver(void *arg)
{
	struct race *rc = arg;
	struct fx *f = rc->f;
	const uint64_t used_event = AVAIL_GPA + 4 + 2 * RACE_QSIZE;
	const uint64_t avail_event = USED_GPA + 4 + 8 * RACE_QSIZE;
	bool free_slot[RACE_SLOTS];
	uint64_t st[RACE_SLOTS];
	uint16_t avail = 0, seen = 0;
	unsigned sent = 0, done = 0;
	uint64_t rs = 99;
	time_t deadline = time(NULL) + 20;

	for (unsigned i = 0; i < RACE_SLOTS; i++) {
		struct seg s[] = {{mk_hdr(f, VBLK_T_GET_ID, 0), 16, 0},
				  {galloc(f, 20), 20, W},
				  {st[i] = mk_status(f), 1, W}};
		f->next_desc = (uint16_t)(3 * i);
		drv_chain(f, s, 3);
		free_slot[i] = true;
	}
	if (!rc->event_idx) /* no interrupts unless asked for */
		race_st16(f, AVAIL_GPA, VBLK_AVAIL_F_NO_INTERRUPT);
	while (done < RACE_REQS) {
		/* reclaim */
		while (seen != race_ld16(f, USED_GPA + 2)) {
			uint8_t *e = g2h(
				f, USED_GPA + 4 + 8 * (seen % RACE_QSIZE), 8);
			uint32_t id = le32_get(e);
			if (id % 3 || id / 3 >= RACE_SLOTS ||
			    free_slot[id / 3] || le32_get(e + 4) != 21 ||
			    status_at(f, st[id / 3]) != VBLK_S_OK) {
				rc->err = "bad used element";
				return NULL;
			}
			free_slot[id / 3] = true;
			seen++;
			done++;
		}
		unsigned slot = RACE_SLOTS;
		for (unsigned i = 0; i < RACE_SLOTS && sent < RACE_REQS; i++)
			if (free_slot[i]) {
				slot = i;
				break;
			}
		if (slot == RACE_SLOTS) {
			if (done == RACE_REQS)
				break;
			/* ask for an interrupt, then look again */
			if (rc->event_idx)
				race_st16(f, used_event, seen);
			else
				race_st16(f, AVAIL_GPA, 0);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if (seen == race_ld16(f, USED_GPA + 2) &&
			    !race_wait(&rc->irq, NULL, deadline)) {
				rc->err = "stalled: no interrupt";
				return NULL;
			}
			if (!rc->event_idx)
				race_st16(f, AVAIL_GPA,
					  VBLK_AVAIL_F_NO_INTERRUPT);
			continue;
		}
		free_slot[slot] = false;
		*g2h(f, st[slot], 1) = 0xee;
		le16_put(g2h(f, AVAIL_GPA + 4 + 2 * (avail % RACE_QSIZE), 2),
			 (uint16_t)(3 * slot));
		avail++;
		sent++;
		race_st16(f, AVAIL_GPA + 2, avail);
		race_jitter(&rs);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!rc->event_idx ||
		    vblk_need_event(race_ld16(f, avail_event), avail,
				    (uint16_t)(avail - 1)))
			__atomic_store_n(&rc->kick, 1, __ATOMIC_RELEASE);
		if (time(NULL) > deadline) {
			rc->err = "too slow";
			return NULL;
		}
	}
	__atomic_store_n(&rc->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void race(struct fx *f, bool event_idx)
{
	struct race rc = {.f = f, .event_idx = event_idx};
	pthread_t t;
	unsigned passes = 0;
	uint64_t rs = 5;
	time_t deadline = time(NULL) + 20;

	q_init(f, RACE_QSIZE);
	assert_int_equal(
		vblk_dev_set_features(
			f->dev, FEAT_STD | (event_idx ? VBLK_F_EVENT_IDX : 0)),
		0);
	assert_int_equal(pthread_create(&t, NULL, race_driver, &rc), 0);
	while (race_wait(&rc.kick, &rc.stop, deadline)) {
		race_jitter(&rs);
		int n = run(f);
		if (n < 0)
			break;
		passes++;
		if (f->notify)
			__atomic_store_n(&rc.irq, 1, __ATOMIC_RELEASE);
	}
	if (!__atomic_load_n(&rc.stop, __ATOMIC_ACQUIRE) && !rc.err)
		rc.err = "lost kick";
	__atomic_store_n(&rc.irq, 1, __ATOMIC_RELEASE); /* unblock */
	pthread_join(t, NULL);
	if (rc.err)
		fail_msg("%s (event_idx %d)", rc.err, event_idx);
	assert_false(vblk_dev_broken(f->dev));
	assert_int_equal(f->q.used_idx, (uint16_t)RACE_REQS);
	print_message("race (event_idx %d): %u requests in %u passes\n",
		      event_idx, RACE_REQS, passes);
}

static void test_notify_race(void **state)
{
	race(*state, true);
	race(*state, false);
}

/* ---- fuzzing: random rings, the process survives ---- */

static void test_fuzz(void **state)
{
	struct fx *f = *state;
	uint64_t rs = 42;
	const uint64_t addrs[] = {HEAP_GPA,
				  R0_SIZE - 7,
				  GAP_GPA,
				  R2_GPA - 100,
				  R2_GPA + R2_SIZE - 3,
				  UINT64_MAX - 7,
				  DESC_GPA,
				  USED_GPA};
	unsigned broke = 0, ok = 0;

	q_init(f, 16);
	assert_int_equal(
		vblk_dev_set_features(f->dev, FEAT_STD | VBLK_F_EVENT_IDX), 0);
	for (unsigned it = 0; it < 3000; it++) {
		uint8_t *t = g2h(f, DESC_GPA, 16 * 16);
		/* a few plausible headers to point at */
		uint64_t hdr = HEAP_GPA;
		uint8_t *hp = g2h(f, hdr, 64);
		le32_put(hp, (uint32_t)(tu_rand64(&rs) % 16));
		le64_put(hp + 8, tu_rand64(&rs) % (CAP + 16));
		le64_put(hp + 16, tu_rand64(&rs) % CAP); /* a dwz segment */
		le32_put(hp + 24, (uint32_t)(tu_rand64(&rs) % 64));
		le32_put(hp + 28, (uint32_t)(tu_rand64(&rs) % 3));
		for (unsigned i = 0; i < 16; i++) {
			uint64_t r = tu_rand64(&rs);
			uint64_t a =
				(r & 1) ? hdr + (r >> 8) % 48
					: addrs[(r >> 1) % 8] + (r >> 20) % 64;
			uint32_t len = (uint32_t)((r >> 32) % 4) == 0
					       ? (uint32_t)(r >> 40) % 8192
					       : (uint32_t)(r >> 40) % 1100;
			uint16_t fl = (uint16_t)((r >> 56) & 7);
			if ((r >> 60) % 4)
				fl &= (uint16_t)~VBLK_DESC_F_INDIRECT;
			put_desc(t, i, a, len, fl, (uint16_t)((r >> 4) % 17));
		}
		unsigned n = 1 + (unsigned)(tu_rand64(&rs) % 4);
		for (unsigned i = 0; i < n; i++) {
			le16_put(g2h(f, AVAIL_GPA + 4 + 2 * (f->avail_idx % 16),
				     2),
				 (uint16_t)(tu_rand64(&rs) % 17));
			f->avail_idx++;
		}
		drv_set_avail_idx(f, f->avail_idx);
		int rc = run(f);
		assert_true(rc == -EIO || (rc >= 0 && rc <= (int)n));
		if (rc == -EIO) {
			broke++;
			vblk_dev_reset(f->dev);
			q_init(f, 16);
			assert_int_equal(
				vblk_dev_set_features(
					f->dev, FEAT_STD | VBLK_F_EVENT_IDX),
				0);
		} else {
			ok += (unsigned)rc;
		}
		if (it % 500 == 0)
			check_canaries(f);
	}
	/* both outcomes were exercised */
	assert_true(broke > 100);
	assert_true(ok > 100);
	print_message("fuzz: %u chains completed, %u breaks\n", ok, broke);
}

/* Well-formed chains of random requests: whatever the header, lengths
 * and buffers say, each completes with a status and a used length no
 * larger than its writable part, and the device never breaks while
 * every status byte is in guest memory. */
static uint64_t pick_addr(uint64_t *rs, uint32_t len)
{
	uint64_t r = tu_rand64(rs);
	switch (r % 16) {
	case 0:
		return GAP_GPA + (r >> 8) % 4096;
	case 1:
		return R2_GPA - (r >> 8) % (len + 1); /* may cross R1|R2 */
	case 2:
		return R2_GPA + R2_SIZE - (r >> 8) % (len + 1);
	case 3:
		return UINT64_MAX - (r >> 8) % (len + 1);
	default:
		return 0; /* the caller allocates on the heap */
	}
}

static void test_fuzz_requests(void **state)
{
	struct fx *f = *state;
	uint64_t rs = 7;
	unsigned counts[3] = {0};
	const uint32_t types[] = {VBLK_T_IN,
				  VBLK_T_OUT,
				  VBLK_T_FLUSH,
				  VBLK_T_GET_ID,
				  VBLK_T_DISCARD,
				  VBLK_T_WRITE_ZEROES,
				  3,
				  99};

	assert_int_equal(
		vblk_dev_set_features(f->dev, FEAT_STD | VBLK_F_EVENT_IDX), 0);
	for (unsigned it = 0; it < 1500; it++) {
		unsigned nreq = 1 + (unsigned)(tu_rand64(&rs) % 3);
		uint16_t heads[3];
		uint64_t sts[3], wlens[3];
		for (unsigned k = 0; k < nreq; k++) {
			struct seg sg[8];
			unsigned n = 0;
			uint32_t type = types[tu_rand64(&rs) % 8];
			uint64_t r = tu_rand64(&rs);
			uint64_t sector =
				(r & 1) ? (r >> 1) % CAP : CAP - (r >> 1) % 64;
			uint64_t h = mk_hdr(f, type, sector);
			if (tu_rand64(&rs) % 4 == 0) { /* split header */
				uint32_t cut = (uint32_t)(tu_rand64(&rs) % 16);
				sg[n++] = (struct seg){h, cut, 0};
				sg[n++] = (struct seg){
					h + cut,
					(uint32_t)(16 - cut) -
						(tu_rand64(&rs) % 8 == 0),
					0};
			} else {
				sg[n++] = (struct seg){h, 16, 0};
			}
			bool wr = type == VBLK_T_IN || type == VBLK_T_GET_ID;
			unsigned nd = (unsigned)(tu_rand64(&rs) % 4);
			wlens[k] = 1;
			for (unsigned i = 0; i < nd; i++) {
				uint64_t rr = tu_rand64(&rs);
				uint32_t len =
					(rr % 4) ? 512 * (uint32_t)(1 + (rr >>
									 8) % 8)
						 : (uint32_t)((rr >> 8) % 600);
				if (type == VBLK_T_DISCARD ||
				    type == VBLK_T_WRITE_ZEROES)
					len = 16 *
					      (uint32_t)(1 + (rr >> 8) % 3);
				uint64_t a = pick_addr(&rs, len);
				if (!a) {
					a = galloc(f, len ? len : 1);
					tu_fill_random(g2h(f, a, len ? len : 1),
						       len ? len : 1, rr);
					for (uint32_t o = 0;
					     o + 16 <= len &&
					     type >= VBLK_T_DISCARD;
					     o += 16) { /* plausible segs */
						uint8_t *p = g2h(f, a + o, 16);
						le64_put(p,
							 (rr >> o % 7) % CAP);
						le32_put(p + 8,
							 (uint32_t)(rr >> 3) %
								 300);
						le32_put(p + 12,
							 (uint32_t)(rr >> 9) %
								 3);
					}
				}
				sg[n++] = (struct seg){a, len, wr ? W : 0};
				if (wr)
					wlens[k] += len;
			}
			sts[k] = mk_status(f);
			sg[n++] = (struct seg){sts[k], 1, W};
			heads[k] = (tu_rand64(&rs) % 3 == 0)
					   ? drv_indirect(f, sg, n)
					   : drv_chain(f, sg, n);
			drv_avail(f, heads[k]);
		}
		assert_int_equal(run(f), (int)nreq);
		for (unsigned k = 0; k < nreq; k++) {
			uint16_t id;
			uint32_t len;
			drv_used(f, &id, &len);
			assert_int_equal(id, heads[k]);
			assert_true(len >= 1 && len <= wlens[k]);
			uint8_t st = status_at(f, sts[k]);
			assert_true(st <= VBLK_S_UNSUPP);
			counts[st]++;
		}
	}
	assert_false(vblk_dev_broken(f->dev));
	check_canaries(f);
	for (int i = 0; i < 3; i++)
		assert_true(counts[i] > 100);
	print_message("fuzz: %u ok, %u ioerr, %u unsupp\n", counts[0],
		      counts[1], counts[2]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mem_translate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_features_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_read, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_multi_descriptor, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_splits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush_and_writethrough,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_write_zeroes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_broken_rings, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stats_hook, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_set_readonly, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wraparound, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_notify_race, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuzz_requests, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
