/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blk.h - the test guest's virtio-blk driver ("Block Device" in the
 * virtio 1.x spec) over vpci.h and vq.h, polling the used ring.
 */
#ifndef CAVM_TEST_GUEST_BLK_H
#define CAVM_TEST_GUEST_BLK_H

#include "test/guest/vpci.h"
#include "test/guest/vq.h"

#define VIRTIO_ID_BLOCK_PCI 0x1042 /* 0x1040 + device type 2 */

#define BLK_F_SEG_MAX (1ull << 2)
#define BLK_F_RO (1ull << 5)
#define BLK_F_BLK_SIZE (1ull << 6)
#define BLK_F_FLUSH (1ull << 9)
#define BLK_F_TOPOLOGY (1ull << 10)
#define BLK_F_DISCARD (1ull << 13)
#define BLK_F_WRITE_ZEROES (1ull << 14)
#define F_INDIRECT_DESC (1ull << 28)
#define F_EVENT_IDX (1ull << 29)
#define F_VERSION_1 (1ull << 32)

#define BLK_T_IN 0u
#define BLK_T_OUT 1u
#define BLK_T_FLUSH 4u
#define BLK_T_GET_ID 8u
#define BLK_T_DISCARD 11u
#define BLK_T_WRITE_ZEROES 13u
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define BLK_DWZ_UNMAP 1u

#define BLK_MAX_BUFS 32 /* data buffers per request */
#define BLK_TIMEOUT_MS 10000

/* One request's header and status byte, in guest memory the device
 * reads and writes; the rest is the driver's. */
struct gblk_req {
	uint8_t hdr[16]; /* type, reserved, sector (little-endian) */
	uint8_t status;
	uint8_t pad[15];
	uint8_t seg[16]; /* one discard/write-zeroes segment */
	uint64_t table;  /* this request's indirect table (64 entries) */
	bool busy, done;
	uint32_t len;  /* used length the device reported */
	uint64_t user; /* the scenario's tag */
};

struct gblk {
	struct guest *g;
	struct vpci vp;
	struct gvq q;
	uint64_t offered, features;
	uint64_t capacity; /* 512-byte sectors */
	uint32_t seg_max;
	struct gblk_req *reqs;
	unsigned nreqs;
	unsigned outstanding;
	uint64_t mmio_next;
	bool probed;
	uint64_t desc_override; /* next setup only: this descriptor table
				   address instead of the real one */
	unsigned long completions;
};

/* Probe (first call), reset, negotiate VERSION_1 plus the 'want' bits the
 * device offers, set up queue 0 with 'qsize' entries (capped at the
 * device's maximum), DRIVER_OK.  0 or negative errno, with a message. */
int gblk_init(struct gblk *b, struct guest *g, uint64_t want);
/* Reset and re-run the initialisation with the same choices. */
int gblk_reinit(struct gblk *b);
bool gblk_needs_reset(const struct gblk *b);
/* capacity from the device configuration, read consistently (config
 * generation unchanged across the two 32-bit halves) */
uint64_t gblk_capacity(const struct gblk *b);
/* A free request slot, or NULL. */
struct gblk_req *gblk_req_get(struct gblk *b);
/* Queue a request: data bufs follow the header, readable for OUT, the
 * discard/write-zeroes segment, writable for IN and GET_ID.  Returns 0 or
 * negative errno; vq_kick(&b->q) makes it (and others) visible. */
int gblk_submit(struct gblk *b, struct gblk_req *r, uint32_t type,
		uint64_t sector, const struct vq_buf *data, unsigned n,
		bool indirect);
/* Consume one completion: the request (done, status, len set), or NULL.
 * *err set to -G_EIO if the device returned garbage. */
struct gblk_req *gblk_poll(struct gblk *b, int *err);
/* Poll until r completes: its status (0..255), -G_ETIMEDOUT, or -G_EIO
 * when the device set DEVICE_NEEDS_RESET or returned garbage. */
int gblk_wait(struct gblk *b, struct gblk_req *r, uint64_t timeout_ms);
void gblk_req_put(struct gblk *b, struct gblk_req *r);
/* One request, start to end, on a buffer of len bytes (0: none). */
int gblk_io(struct gblk *b, uint32_t type, uint64_t sector, void *buf,
	    uint32_t len);
/* DISCARD / WRITE_ZEROES of one segment. */
int gblk_dwz(struct gblk *b, uint32_t type, uint64_t sector, uint32_t n,
	     uint32_t flags);

#endif
