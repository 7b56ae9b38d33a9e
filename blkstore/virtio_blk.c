/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio_blk.c - the virtio-blk device model on a bs_disk: feature bits,
 * config space, and each request from its descriptor chain (virtq.c) to
 * the store and back to a status byte (OASIS virtio 1.x, "Block Device").
 *
 * The one idea: a request is checked completely before the store sees
 * it (type, negotiated features, lengths, every range, every discard
 * segment), so a bad one changes nothing and gets IOERR or UNSUPP; only a
 * chain with no status byte to write into breaks the device.
 *
 * Data always moves through the device's own bounce buffer, never
 * between guest memory and the store directly: the guest can rewrite its
 * buffers at any moment, and the chunk store names a block by the
 * SHA-256 of its content, so hashing guest memory and then storing it
 * again from guest memory could file different bytes under a name that
 * other disks dedup against.  One copy buys invariant 1 for every disk.
 *
 * Durability: with FLUSH negotiated a write is acknowledged from the
 * store's memory and FLUSH is bs_disk_flush() (a group commit); without
 * it every write is flushed before it completes (virtio's "stable"
 * writes when FLUSH was offered but not negotiated).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blkstore/vblk.h"
#include "common/endian.h"

#define BOUNCE_SIZE (256u << 10) /* data moved per store call */
#define SECTOR_SHIFT 9

struct vblk_dev {
	bs_disk *disk;
	char serial[VBLK_ID_BYTES];
	uint64_t offered;
	uint64_t features; /* negotiated; atomic (read from vCPU threads) */
	uint64_t capacity; /* sectors told to the driver; atomic */
	bool broken;       /* atomic */
	bool readonly;     /* vblk_dev_set_readonly: refuse writes */
	vblk_log_fn log;
	void *log_arg;
	vblk_stats_fn stats;
	void *stats_arg;
	uint8_t *bounce;
	struct vblk_chain chain;
};

__attribute__((format(printf, 3, 4))) static void
dev_log(const struct vblk_dev *dev, enum vblk_level level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	if (!dev->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dev->log(dev->log_arg, level, msg);
}

static uint64_t features(const struct vblk_dev *dev)
{
	return __atomic_load_n(&dev->features, __ATOMIC_ACQUIRE);
}

/* ---- lifetime, features, config ---- */

int vblk_dev_create(bs_disk *disk, const char *serial, uint64_t mask,
		    struct vblk_dev **out)
{
	struct vblk_dev *dev;
	*out = NULL;
	if (!disk || !(mask & VBLK_F_VERSION_1))
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->bounce = malloc(BOUNCE_SIZE);
	if (!dev->bounce) {
		free(dev);
		return -ENOMEM;
	}
	dev->disk = disk;
	if (serial)
		memcpy(dev->serial, serial, strnlen(serial, VBLK_ID_BYTES));
	dev->offered = mask & VBLK_F_ALL & ~VBLK_F_RO;
	if (bs_disk_readonly(disk))
		dev->offered |= VBLK_F_RO;
	dev->capacity = bs_disk_size(disk) >> SECTOR_SHIFT;
	*out = dev;
	return 0;
}

void vblk_dev_set_readonly(struct vblk_dev *dev)
{
	dev->readonly = true;
	dev->offered |= VBLK_F_RO;
}

static bool readonly(const struct vblk_dev *dev)
{
	return dev->readonly || bs_disk_readonly(dev->disk);
}

void vblk_dev_close(struct vblk_dev *dev)
{
	if (!dev)
		return;
	free(dev->bounce);
	free(dev);
}

void vblk_dev_set_log(struct vblk_dev *dev, vblk_log_fn fn, void *arg)
{
	dev->log = fn;
	dev->log_arg = arg;
}

void vblk_dev_set_stats(struct vblk_dev *dev, vblk_stats_fn fn, void *arg)
{
	dev->stats = fn;
	dev->stats_arg = arg;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t vblk_dev_features(const struct vblk_dev *dev)
{
	return dev->offered;
}

int vblk_dev_set_features(struct vblk_dev *dev, uint64_t f)
{
	if ((f & ~dev->offered) || !(f & VBLK_F_VERSION_1))
		return -EINVAL;
	__atomic_store_n(&dev->features, f, __ATOMIC_RELEASE);
	return 0;
}

void vblk_dev_config(const struct vblk_dev *dev, uint8_t *cfg, size_t len)
{
	uint8_t c[VBLK_CONFIG_SIZE] = {0};
	uint64_t off = dev->offered;

	le64_put(c, __atomic_load_n(&dev->capacity, __ATOMIC_RELAXED));
	if (off & VBLK_F_SEG_MAX)
		le32_put(c + 12, VBLK_SEG_MAX);
	/* Logical blocks stay 512 bytes (what partition tables on imported
	 * images assume); the 4 KiB chunk is the physical block. */
	if (off & VBLK_F_BLK_SIZE)
		le32_put(c + 20, BS_SECTOR);
	if (off & VBLK_F_TOPOLOGY) {
		c[24] = 3; /* physical_block_exp: 2^3 sectors = 4 KiB */
		le16_put(c + 26, BS_BLOCK_SIZE / BS_SECTOR); /* min_io_size */
	}
	c[32] = (features(dev) & VBLK_F_FLUSH) ? 1 : 0; /* writeback */
	le16_put(c + 34, 1);                            /* num_queues */
	if (off & VBLK_F_DISCARD) {
		le32_put(c + 36, VBLK_MAX_DWZ_SECTORS);
		le32_put(c + 40, VBLK_MAX_DWZ_SEGS);
		le32_put(c + 44, BS_BLOCK_SIZE / BS_SECTOR);
	}
	if (off & VBLK_F_WRITE_ZEROES) {
		le32_put(c + 48, VBLK_MAX_DWZ_SECTORS);
		le32_put(c + 52, VBLK_MAX_DWZ_SEGS);
		c[56] = 1; /* write_zeroes_may_unmap: zeros become holes */
	}
	size_t n = len < sizeof(c) ? len : sizeof(c);
	memcpy(cfg, c, n);
	memset(cfg + n, 0, len - n);
}

bool vblk_dev_config_changed(struct vblk_dev *dev)
{
	uint64_t now = bs_disk_size(dev->disk) >> SECTOR_SHIFT;
	uint64_t was =
		__atomic_exchange_n(&dev->capacity, now, __ATOMIC_RELAXED);
	return was != now;
}

bool vblk_dev_broken(const struct vblk_dev *dev)
{
	return __atomic_load_n(&dev->broken, __ATOMIC_ACQUIRE);
}

void vblk_dev_reset(struct vblk_dev *dev)
{
	__atomic_store_n(&dev->features, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&dev->broken, false, __ATOMIC_RELEASE);
}

static void dev_break(struct vblk_dev *dev, const char *why)
{
	__atomic_store_n(&dev->broken, true, __ATOMIC_RELEASE);
	dev_log(dev, VBLK_LOG_ERROR, "virtio-blk: %s; device needs reset", why);
}

/* ---- iovec cursors ---- */

struct cursor {
	const struct iovec *iov;
	unsigned n, i;
	size_t off; /* into iov[i] */
};

static void cursor_init(struct cursor *k, const struct iovec *iov, unsigned n,
			uint64_t skip)
{
	k->iov = iov;
	k->n = n;
	k->i = 0;
	k->off = 0;
	while (k->i < n && skip >= k->iov[k->i].iov_len) {
		skip -= k->iov[k->i].iov_len;
		k->i++;
	}
	k->off = (size_t)skip;
}

/* Copy len bytes between the cursor's buffers and buf (the caller knows
 * they are there). */
static void cursor_copy(struct cursor *k, uint8_t *buf, size_t len, bool out)
{
	while (len && k->i < k->n) {
		uint8_t *p = (uint8_t *)k->iov[k->i].iov_base + k->off;
		size_t take = k->iov[k->i].iov_len - k->off;
		if (take > len)
			take = len;
		if (out)
			memcpy(p, buf, take);
		else
			memcpy(buf, p, take);
		buf += take;
		len -= take;
		k->off += take;
		if (k->off == k->iov[k->i].iov_len) {
			k->i++;
			k->off = 0;
		}
	}
}

/* ---- requests ---- */

struct req {
	struct vblk_chain *c;
	const char *why; /* the ring's words for c->err */
	bool typed;      /* the header was read */
	uint32_t type;
	uint64_t sector;
	uint64_t din;     /* readable bytes after the header */
	uint64_t dout;    /* writable bytes before the status byte */
	uint32_t written; /* data bytes put into the writable buffers */
};

__attribute__((format(printf, 4, 5))) static uint8_t
refuse(struct vblk_dev *dev, const struct req *rq, uint8_t status,
       const char *fmt, ...)
{
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rq->typed)
		dev_log(dev, VBLK_LOG_DEBUG,
			"virtio-blk: request %u (type %u) refused: %s",
			rq->c->head, rq->type, msg);
	else
		dev_log(dev, VBLK_LOG_DEBUG,
			"virtio-blk: request %u refused: %s", rq->c->head, msg);
	return status;
}

static uint8_t store_error(struct vblk_dev *dev, const struct req *rq,
			   const char *what, int rc)
{
	dev_log(dev, VBLK_LOG_WARN, "virtio-blk: %s at sector %llu: %s", what,
		(unsigned long long)rq->sector, bs_strerror(rc));
	return VBLK_S_IOERR;
}

/* Is [sector, sector + n) on the disk (as it is now)? */
static bool in_range(struct vblk_dev *dev, uint64_t sector, uint64_t n)
{
	uint64_t cap = bs_disk_size(dev->disk) >> SECTOR_SHIFT;
	return sector <= cap && n <= cap - sector;
}

/* Writes are stable at completion unless FLUSH was negotiated. */
static uint8_t after_write(struct vblk_dev *dev, struct req *rq)
{
	int rc;
	if (features(dev) & VBLK_F_FLUSH)
		return VBLK_S_OK;
	rc = bs_disk_flush(dev->disk);
	return rc ? store_error(dev, rq, "flush", rc) : VBLK_S_OK;
}

static uint8_t do_rw(struct vblk_dev *dev, struct req *rq, bool write)
{
	struct vblk_chain *c = rq->c;
	uint64_t len = write ? rq->din : rq->dout;
	struct cursor k;
	int rc = 0;

	if (len % BS_SECTOR)
		return refuse(dev, rq, VBLK_S_IOERR,
			      "%llu data bytes, not whole sectors",
			      (unsigned long long)len);
	if (len >= UINT32_MAX) /* the used length must hold it */
		return refuse(dev, rq, VBLK_S_IOERR, "request over 4 GiB");
	if (write && readonly(dev))
		return refuse(dev, rq, VBLK_S_IOERR, "disk is read-only");
	if (!in_range(dev, rq->sector, len >> SECTOR_SHIFT))
		return refuse(dev, rq, VBLK_S_IOERR,
			      "sectors [%llu, +%llu) past the end",
			      (unsigned long long)rq->sector,
			      (unsigned long long)(len >> SECTOR_SHIFT));
	if (write)
		cursor_init(&k, c->iov, c->nr, VBLK_HDR_SIZE);
	else
		cursor_init(&k, c->iov + c->nr, c->nw, 0);
	uint64_t off = rq->sector << SECTOR_SHIFT;
	for (uint64_t done = 0; done < len && !rc;) {
		size_t n = len - done < BOUNCE_SIZE ? (size_t)(len - done)
						    : BOUNCE_SIZE;
		if (write) {
			cursor_copy(&k, dev->bounce, n, false);
			rc = bs_disk_write(dev->disk, dev->bounce, n,
					   off + done);
		} else {
			rc = bs_disk_read(dev->disk, dev->bounce, n,
					  off + done);
			if (!rc) {
				cursor_copy(&k, dev->bounce, n, true);
				rq->written += (uint32_t)n;
			}
		}
		done += n;
	}
	if (rc)
		return store_error(dev, rq, write ? "write" : "read", rc);
	return write ? after_write(dev, rq) : VBLK_S_OK;
}

static uint8_t do_get_id(struct vblk_dev *dev, struct req *rq)
{
	struct vblk_chain *c = rq->c;
	struct cursor k;
	size_t n = rq->dout < VBLK_ID_BYTES ? (size_t)rq->dout : VBLK_ID_BYTES;
	cursor_init(&k, c->iov + c->nr, c->nw, 0);
	cursor_copy(&k, (uint8_t *)dev->serial, n, true);
	rq->written = (uint32_t)n;
	return VBLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: every segment is read once and checked
 * before any is applied. */
static uint8_t do_dwz(struct vblk_dev *dev, struct req *rq)
{
	bool discard = rq->type == VBLK_T_DISCARD;
	uint8_t seg[VBLK_MAX_DWZ_SEGS * VBLK_SEG_SIZE];
	struct cursor k;
	uint64_t nseg;

	if (!(features(dev) & (discard ? VBLK_F_DISCARD : VBLK_F_WRITE_ZEROES)))
		return refuse(dev, rq, VBLK_S_UNSUPP, "not negotiated");
	if (readonly(dev))
		return refuse(dev, rq, VBLK_S_IOERR, "disk is read-only");
	if (!rq->din || rq->din % VBLK_SEG_SIZE)
		return refuse(dev, rq, VBLK_S_IOERR, "%llu bytes of segments",
			      (unsigned long long)rq->din);
	nseg = rq->din / VBLK_SEG_SIZE;
	if (nseg > VBLK_MAX_DWZ_SEGS)
		return refuse(dev, rq, VBLK_S_IOERR, "%llu segments, max %u",
			      (unsigned long long)nseg, VBLK_MAX_DWZ_SEGS);
	cursor_init(&k, rq->c->iov, rq->c->nr, VBLK_HDR_SIZE);
	cursor_copy(&k, seg, (size_t)rq->din, false);
	for (unsigned i = 0; i < nseg; i++) {
		uint32_t flags = le32_get(seg + i * VBLK_SEG_SIZE + 12);
		if ((flags & ~VBLK_DWZ_F_UNMAP) ||
		    (discard && (flags & VBLK_DWZ_F_UNMAP)))
			return refuse(dev, rq, VBLK_S_UNSUPP,
				      "segment %u has flags 0x%x", i, flags);
	}
	for (unsigned i = 0; i < nseg; i++) {
		uint64_t sector = le64_get(seg + i * VBLK_SEG_SIZE);
		uint32_t num = le32_get(seg + i * VBLK_SEG_SIZE + 8);
		if (num > VBLK_MAX_DWZ_SECTORS)
			return refuse(dev, rq, VBLK_S_IOERR,
				      "segment %u: %u sectors, max %u", i, num,
				      VBLK_MAX_DWZ_SECTORS);
		if (!in_range(dev, sector, num))
			return refuse(dev, rq, VBLK_S_IOERR,
				      "segment %u: [%llu, +%u) past the end", i,
				      (unsigned long long)sector, num);
	}
	for (unsigned i = 0; i < nseg; i++) {
		uint64_t off = le64_get(seg + i * VBLK_SEG_SIZE)
			       << SECTOR_SHIFT;
		uint64_t len = (uint64_t)le32_get(seg + i * VBLK_SEG_SIZE + 8)
			       << SECTOR_SHIFT;
		int rc = discard ? bs_disk_discard(dev->disk, len, off)
				 : bs_disk_write_zeroes(dev->disk, len, off);
		if (rc)
			return store_error(dev, rq,
					   discard ? "discard" : "write zeroes",
					   rc);
	}
	return after_write(dev, rq);
}

static uint8_t do_request(struct vblk_dev *dev, struct req *rq)
{
	struct vblk_chain *c = rq->c;
	uint8_t hdr[VBLK_HDR_SIZE];
	struct cursor k;
	int rc;

	if (c->err)
		return refuse(dev, rq, VBLK_S_IOERR, "%s", rq->why);
	if (c->rlen < VBLK_HDR_SIZE)
		return refuse(dev, rq, VBLK_S_IOERR, "header of %llu bytes",
			      (unsigned long long)c->rlen);
	cursor_init(&k, c->iov, c->nr, 0);
	cursor_copy(&k, hdr, sizeof(hdr), false);
	rq->typed = true;
	rq->type = le32_get(hdr);
	rq->sector = le64_get(hdr + 8);
	rq->din = c->rlen - VBLK_HDR_SIZE;
	rq->dout = c->wlen - 1;
	switch (rq->type) {
	case VBLK_T_IN:
		return do_rw(dev, rq, false);
	case VBLK_T_OUT:
		return do_rw(dev, rq, true);
	case VBLK_T_FLUSH:
		rc = bs_disk_flush(dev->disk);
		return rc ? store_error(dev, rq, "flush", rc) : VBLK_S_OK;
	case VBLK_T_GET_ID:
		return do_get_id(dev, rq);
	case VBLK_T_DISCARD:
	case VBLK_T_WRITE_ZEROES:
		return do_dwz(dev, rq);
	default:
		return refuse(dev, rq, VBLK_S_UNSUPP, "unknown type");
	}
}

int vblk_dev_process(struct vblk_dev *dev, const struct vblk_mem *m,
		     struct vblk_vq *q, bool *need_interrupt)
{
	struct vblk_chain *c = &dev->chain;
	struct vblk_ring r;
	int done = 0, rc;

	*need_interrupt = false;
	if (vblk_dev_broken(dev))
		return -EIO;
	rc = vblk_ring_begin(&r, q, m, features(dev));
	if (rc) {
		dev_break(dev, r.why);
		return -EIO;
	}
	for (;;) {
		rc = vblk_ring_pop(&r, c);
		/* Caught up: publish avail_event and look once more.  If
		 * that finds nothing after all, the driver's index went back
		 * and forth; its next kick will do (no guest-driven spin). */
		if (rc == 0 && vblk_ring_rearm(&r))
			rc = vblk_ring_pop(&r, c);
		if (rc <= 0)
			break;
		if (!c->status) {
			/* Nowhere to say how it went: the driver would read
			 * a stale status as success. */
			snprintf(r.why, sizeof(r.why),
				 "chain at head %u has no device-writable "
				 "status byte in guest memory",
				 c->head);
			rc = -EPROTO;
			break;
		}
		struct req rq = {.c = c, .why = r.why};
		uint64_t t0 = dev->stats ? now_ns() : 0;
		uint8_t st = do_request(dev, &rq);
		*c->status = st;
		if (dev->stats)
			dev->stats(dev->stats_arg,
				   rq.typed ? rq.type : VBLK_T_NONE,
				   rq.typed && rq.type == VBLK_T_IN    ? rq.dout
				   : rq.typed && rq.type == VBLK_T_OUT ? rq.din
								       : 0,
				   now_ns() - t0, st);
		vblk_ring_push(&r, c->head, rq.written + 1);
		done++;
	}
	*need_interrupt = vblk_ring_end(&r);
	if (rc < 0) {
		dev_break(dev, r.why);
		return -EIO;
	}
	return done;
}
