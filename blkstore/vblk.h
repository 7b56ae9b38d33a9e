/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vblk.h - virtio-blk request handling: descriptor chains in guest memory
 * to disk operations on a bs_disk.  One implementation, shared by cavm's
 * in-process virtio-pci device and (to come) blkstored's vhost-user-blk export
 * (ARCHITECTURE.md, Layers); the transports own registers, sockets,
 * eventfds and interrupts, this owns everything a guest can write.
 *
 * Three pieces, bottom up:
 *   guest memory   a table of regions (guest physical address, size, host
 *                  address) and the one bounds-checked translation
 *                  (vblk_mem_map) everything else goes through;
 *   split rings    virtq.c: the virtio 1.x split virtqueue, walked as a
 *                  device (avail in, used out, indirect tables, EVENT_IDX);
 *   the block dev  virtio_blk.c: request header, IN/OUT/FLUSH/GET_ID/
 *                  DISCARD/WRITE_ZEROES, status byte, config space.
 *
 * Invariant (ARCHITECTURE.md 6): no guest input makes this code touch
 * host memory outside the regions, or a disk other than its own.  A bad
 * request completes with VBLK_S_IOERR (or _UNSUPP) when its status byte
 * can be found and written; a ring it cannot trust marks the device
 * broken (the transport sets DEVICE_NEEDS_RESET) and nothing more is
 * processed until vblk_dev_reset().  docs/virtio-blk.md has the rules.
 *
 * Threads: vblk_dev_process() and vblk_dev_config_changed() call the
 * store, so they run on the store's thread (blkstore.h: one thread at a
 * time); vblk_dev_config(), vblk_dev_features(), vblk_dev_set_features()
 * and vblk_dev_broken() may be called from any thread (vCPU threads
 * reading config space).
 *
 * Errors: negative errno.  Only little-endian (modern, VERSION_1) virtio.
 */
#ifndef CAVM_BLKSTORE_VBLK_H
#define CAVM_BLKSTORE_VBLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blkstore/blkstore.h"

/* ---- guest memory ---- */

struct vblk_mem_region {
	uint64_t gpa;  /* guest physical address of the first byte */
	uint64_t size; /* bytes, > 0 */
	void *host;    /* where those bytes are mapped in this process */
};

struct vblk_mem {
	const struct vblk_mem_region *regions;
	unsigned nregions;
};

/* Is the table sane: every region non-empty, not wrapping past 2^64,
 * host mapped, and no two overlapping in guest physical space?  0 or
 * -EINVAL.  Tables from outside (vhost-user SET_MEM_TABLE) go through
 * this once, before any other call sees them. */
int vblk_mem_check(const struct vblk_mem *m);
/* The translation.  Returns the host address of gpa and sets *run to the
 * number of bytes, at most len, from gpa on that lie in the same region;
 * NULL if gpa is in no region or len is 0.  Never computes gpa + len. */
void *vblk_mem_map(const struct vblk_mem *m, uint64_t gpa, uint64_t len,
		   uint64_t *run);
/* [gpa, gpa+len) as one host pointer: NULL unless len > 0 and the whole
 * range lies inside one region. */
void *vblk_mem_ptr(const struct vblk_mem *m, uint64_t gpa, uint64_t len);
/* [gpa, gpa+len) as iovecs, split where it crosses from one region into an
 * adjacent one.  Returns how many iovecs (0 for len 0), -EFAULT if a byte
 * is outside guest memory or the range wraps past 2^64, -E2BIG if it
 * needs more than max. */
int vblk_mem_iov(const struct vblk_mem *m, uint64_t gpa, uint64_t len,
		 struct iovec *iov, unsigned max);

/* ---- virtio numbers (virtio 1.x; our prefix, the spec's names in
 * comments, so a transport may include <linux/virtio_*.h> too) ---- */

/* feature bits, as masks */
#define VBLK_F_SEG_MAX (1ull << 2)        /* VIRTIO_BLK_F_SEG_MAX */
#define VBLK_F_RO (1ull << 5)             /* VIRTIO_BLK_F_RO */
#define VBLK_F_BLK_SIZE (1ull << 6)       /* VIRTIO_BLK_F_BLK_SIZE */
#define VBLK_F_FLUSH (1ull << 9)          /* VIRTIO_BLK_F_FLUSH */
#define VBLK_F_TOPOLOGY (1ull << 10)      /* VIRTIO_BLK_F_TOPOLOGY */
#define VBLK_F_DISCARD (1ull << 13)       /* VIRTIO_BLK_F_DISCARD */
#define VBLK_F_WRITE_ZEROES (1ull << 14)  /* VIRTIO_BLK_F_WRITE_ZEROES */
#define VBLK_F_INDIRECT_DESC (1ull << 28) /* VIRTIO_F_INDIRECT_DESC */
#define VBLK_F_EVENT_IDX (1ull << 29)     /* VIRTIO_F_EVENT_IDX */
#define VBLK_F_VERSION_1 (1ull << 32)     /* VIRTIO_F_VERSION_1 */
/* Everything this implementation can offer (RO only on read-only disks,
 * where it is always offered). */
#define VBLK_F_ALL                                                     \
	(VBLK_F_SEG_MAX | VBLK_F_RO | VBLK_F_BLK_SIZE | VBLK_F_FLUSH | \
	 VBLK_F_TOPOLOGY | VBLK_F_DISCARD | VBLK_F_WRITE_ZEROES |      \
	 VBLK_F_INDIRECT_DESC | VBLK_F_EVENT_IDX | VBLK_F_VERSION_1)

/* request types and status */
#define VBLK_T_IN 0u            /* VIRTIO_BLK_T_IN */
#define VBLK_T_OUT 1u           /* VIRTIO_BLK_T_OUT */
#define VBLK_T_FLUSH 4u         /* VIRTIO_BLK_T_FLUSH */
#define VBLK_T_GET_ID 8u        /* VIRTIO_BLK_T_GET_ID */
#define VBLK_T_DISCARD 11u      /* VIRTIO_BLK_T_DISCARD */
#define VBLK_T_WRITE_ZEROES 13u /* VIRTIO_BLK_T_WRITE_ZEROES */
#define VBLK_S_OK 0u
#define VBLK_S_IOERR 1u
#define VBLK_S_UNSUPP 2u
#define VBLK_DWZ_F_UNMAP 1u /* virtio_blk_discard_write_zeroes.flags */

#define VBLK_HDR_SIZE 16u /* type, reserved, sector */
#define VBLK_SEG_SIZE 16u /* sector, num_sectors, flags */
#define VBLK_ID_BYTES 20u /* GET_ID: NUL-padded, no NUL if 20 long */

/* split ring layout */
#define VBLK_DESC_F_NEXT 1u     /* VIRTQ_DESC_F_NEXT */
#define VBLK_DESC_F_WRITE 2u    /* VIRTQ_DESC_F_WRITE */
#define VBLK_DESC_F_INDIRECT 4u /* VIRTQ_DESC_F_INDIRECT */
#define VBLK_AVAIL_F_NO_INTERRUPT 1u
#define VBLK_DESC_SIZE 16u
#define VBLK_QUEUE_MAX 32768u /* largest split queue */

/* Limits of one request.  VBLK_MAX_SEGS bounds the iovecs a chain maps
 * to (a buffer crossing from one region into the next takes two) and the
 * entries of an indirect table; the config space offers VBLK_SEG_MAX data
 * segments, which leaves room for the header and the status byte in a
 * 256-entry queue even without indirect descriptors. */
#define VBLK_MAX_SEGS 1024u
#define VBLK_SEG_MAX 254u
#define VBLK_MAX_DWZ_SEGS 64u           /* discard / write zeroes segments */
#define VBLK_MAX_DWZ_SECTORS (1u << 21) /* per segment: 1 GiB */

/* config space (struct virtio_blk_config) up to write_zeroes_may_unmap
 * and its padding; bytes past it read as zero */
#define VBLK_CONFIG_SIZE 60u

/* ---- split virtqueues (virtq.c) ---- */

/* A queue as the transport knows it.  The driver's choices (size, ring
 * addresses) are not checked here but on every vblk_dev_process(): a bad
 * one breaks the device, as any other guest input would.  At a queue
 * reset last_avail and used_idx are 0; a vhost-user backend takes
 * last_avail from SET_VRING_BASE and used_idx from the used ring. */
struct vblk_vq {
	uint16_t size;       /* entries: a power of two, 1..32768 */
	uint64_t desc_gpa;   /* descriptor table, 16-byte aligned */
	uint64_t avail_gpa;  /* driver area, 2-byte aligned */
	uint64_t used_gpa;   /* device area, 4-byte aligned */
	uint16_t last_avail; /* next available entry the device takes */
	uint16_t used_idx;   /* the device's copy of used->idx */
};

/* One descriptor chain, mapped: iov[0..nr) are the device-readable
 * buffers in order, iov[nr..nr+nw) the device-writable ones. */
struct vblk_chain {
	uint16_t head; /* what goes back in the used ring */
	unsigned nr, nw;
	uint64_t rlen, wlen; /* bytes in the readable / writable iovecs */
	/* 0, or why the buffers cannot be used although the chain itself is
	 * sound: -EFAULT (a buffer outside guest memory), -E2BIG (more than
	 * VBLK_MAX_SEGS iovecs).  The request then fails with IOERR. */
	int err;
	/* The last byte of the last non-empty device-writable descriptor,
	 * mapped (the block status byte); NULL if there is none or it is
	 * outside guest memory. */
	uint8_t *status;
	struct iovec iov[VBLK_MAX_SEGS];
};

/* One pass over a queue: rings mapped, chains popped, used entries
 * pushed, then the notification decision. */
struct vblk_ring {
	struct vblk_vq *q;
	const struct vblk_mem *mem;
	uint8_t *desc, *avail, *used; /* host addresses, valid for the pass */
	bool indirect, event_idx;     /* negotiated */
	uint16_t avail_idx;           /* driver's index, last read */
	uint16_t used_start;          /* used_idx when the pass began */
	char why[128];                /* the reason after an error */
};

/* Map q's rings for a pass with 'features' negotiated.  0, or -EPROTO
 * with r->why set (bad size, misaligned, outside guest memory). */
int vblk_ring_begin(struct vblk_ring *r, struct vblk_vq *q,
		    const struct vblk_mem *m, uint64_t features);
/* Take the next available chain into c: 1, 0 if none is available, or
 * -EPROTO (r->why set) when the ring or the chain's structure cannot be
 * trusted (bad head or next index, a loop, a misused indirect table,
 * readable after writable); the chain is then not consumed. */
int vblk_ring_pop(struct vblk_ring *r, struct vblk_chain *c);
/* Return a chain: used element, release barrier, used->idx. */
void vblk_ring_push(struct vblk_ring *r, uint16_t head, uint32_t len);
/* With EVENT_IDX, publish avail_event and look again: true if the driver
 * made more chains available meanwhile (pop again before ending). */
bool vblk_ring_rearm(struct vblk_ring *r);
/* End the pass: does the driver want an interrupt for what was pushed?
 * (used_event with EVENT_IDX, else VRING_AVAIL_F_NO_INTERRUPT). */
bool vblk_ring_end(struct vblk_ring *r);
/* vring_need_event(): has the used index just moved past event_idx? */
static inline bool vblk_need_event(uint16_t event_idx, uint16_t new_idx,
				   uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) <
	       (uint16_t)(new_idx - old_idx);
}

/* ---- the block device (virtio_blk.c) ---- */

struct vblk_dev;

enum vblk_level {
	VBLK_LOG_ERROR, /* the device broke: needs a reset */
	VBLK_LOG_WARN,  /* the store failed a request */
	VBLK_LOG_DEBUG  /* a request was refused (guest-triggerable: keep
			   it out of default logs) */
};
typedef void (*vblk_log_fn)(void *arg, enum vblk_level level, const char *msg);

/* A device on an open disk (which the caller keeps open and closes after
 * vblk_dev_close).  'serial' is GET_ID's answer, cut to 20 bytes;
 * 'features' is the transport's mask of what it may offer (VBLK_F_ALL for
 * everything; it must include VBLK_F_VERSION_1).  0 or -EINVAL/-ENOMEM. */
int vblk_dev_create(bs_disk *disk, const char *serial, uint64_t features,
		    struct vblk_dev **out);
void vblk_dev_close(struct vblk_dev *dev);
/* Make the device read-only although its disk is writable (cavm's
 * "--disk STORE:DISK,ro"): VIRTIO_BLK_F_RO is offered and every OUT,
 * DISCARD and WRITE_ZEROES fails with IOERR, as on a snapshot.  Call it
 * before the driver reads the features. */
void vblk_dev_set_readonly(struct vblk_dev *dev);
void vblk_dev_set_log(struct vblk_dev *dev, vblk_log_fn fn, void *arg);
/* Statistics: fn runs on the processing thread after every request with
 * its type (VBLK_T_*, or VBLK_T_NONE when the header could not be read),
 * the data bytes it moved (IN, OUT; 0 for others), how long it took and
 * its status byte. */
#define VBLK_T_NONE 0xffffffffu
typedef void (*vblk_stats_fn)(void *arg, uint32_t type, uint64_t bytes,
			      uint64_t ns, uint8_t status);
void vblk_dev_set_stats(struct vblk_dev *dev, vblk_stats_fn fn, void *arg);

/* The device feature bits to offer. */
uint64_t vblk_dev_features(const struct vblk_dev *dev);
/* The driver's choice: -EINVAL (refuse FEATURES_OK) if it holds bits
 * not offered or lacks VERSION_1. */
int vblk_dev_set_features(struct vblk_dev *dev, uint64_t features);
/* Fill cfg[0..len) with struct virtio_blk_config, little-endian; bytes
 * past VBLK_CONFIG_SIZE are zero.  The transport reads its window out of
 * it.  The device has no writable config fields. */
void vblk_dev_config(const struct vblk_dev *dev, uint8_t *cfg, size_t len);
/* After a resize: true (and the config's capacity follows the disk) if
 * the capacity changed since the last call; the transport then bumps
 * config_generation and raises a configuration change interrupt. */
bool vblk_dev_config_changed(struct vblk_dev *dev);

/* Process every chain available on q (m: a table vblk_mem_check()
 * accepted, the same for the whole call).  Returns how many completed,
 * or -EIO if the device is (or just became) broken.  *need_interrupt
 * says whether the driver wants to hear about the used entries pushed
 * (also when -EIO is returned after some were).  Store thread only. */
int vblk_dev_process(struct vblk_dev *dev, const struct vblk_mem *m,
		     struct vblk_vq *q, bool *need_interrupt);
/* Has a guest error broken the device (virtio DEVICE_NEEDS_RESET)? */
bool vblk_dev_broken(const struct vblk_dev *dev);
/* Device reset by the driver: features and the broken flag cleared (the
 * transport resets its queues). */
void vblk_dev_reset(struct vblk_dev *dev);

#endif
