/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd_int.h - what the files of the NBD server share: the protocol's
 * numbers (NetworkBlockDevice/nbd doc/proto.md), one connection's state,
 * and the closures the store thread runs for it (nbd_store.c).
 *
 *   nbd.c        handshake: fixed newstyle option haggling
 *   nbd_io.c     transmission: commands and (structured) replies, with
 *                several requests in flight per connection
 *   nbd_store.c  the disk operations, run on the store thread
 */
#ifndef CAVM_BLKSTORE_NBD_INT_H
#define CAVM_BLKSTORE_NBD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blkstore/blkstore.h"
#include "blkstore/server.h"

/* magics */
#define NBD_MAGIC 0x4e42444d41474943ull    /* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454F5054ull /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x3e889045565a9ull
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* handshake flags (server) and client flags */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)

/* transmission flags */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)

/* options */
#define NBD_OPT_EXPORT_NAME 1u
#define NBD_OPT_ABORT 2u
#define NBD_OPT_LIST 3u
#define NBD_OPT_STARTTLS 5u
#define NBD_OPT_INFO 6u
#define NBD_OPT_GO 7u
#define NBD_OPT_STRUCTURED_REPLY 8u
#define NBD_OPT_LIST_META_CONTEXT 9u
#define NBD_OPT_SET_META_CONTEXT 10u

/* option replies */
#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_META_CONTEXT 4u
#define NBD_REP_ERR(n) ((1u << 31) + (n))
#define NBD_REP_ERR_UNSUP NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID NBD_REP_ERR(3)
#define NBD_REP_ERR_UNKNOWN NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7)
#define NBD_REP_ERR_TOO_BIG NBD_REP_ERR(9)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT 0u
#define NBD_INFO_NAME 1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE 3u

/* commands and their flags */
#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_DISC 2u
#define NBD_CMD_FLUSH 3u
#define NBD_CMD_TRIM 4u
#define NBD_CMD_CACHE 5u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_BLOCK_STATUS 7u
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* structured replies */
#define NBD_REPLY_FLAG_DONE (1u << 0)
#define NBD_REPLY_TYPE_NONE 0u
#define NBD_REPLY_TYPE_OFFSET_DATA 1u
#define NBD_REPLY_TYPE_OFFSET_HOLE 2u
#define NBD_REPLY_TYPE_BLOCK_STATUS 5u
#define NBD_REPLY_TYPE_ERROR 32769u

/* base:allocation */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* errors on the wire */
#define NBD_EPERM 1u
#define NBD_EIO 5u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP 95u
#define NBD_ESHUTDOWN 108u

/* Our limits (docs/nbd.md). */
#define NBD_MIN_BLOCK 1u
#define NBD_PREF_BLOCK 4096u
#define NBD_MAX_BLOCK (32u << 20)  /* READ and WRITE payloads */
#define NBD_NAME_MAX 4096u         /* the spec's longest string */
#define NBD_OPT_MAX (64u << 10)    /* option data we read whole */
#define NBD_MAX_OPTIONS 1024u      /* options per connection */
#define NBD_HANDSHAKE_S 60u        /* to reach transmission */
#define NBD_META_ID 1u             /* our one context, base:allocation */
#define NBD_MAX_EXTENTS 1024u      /* per BLOCK_STATUS reply */
#define NBD_IO_SLICE (1u << 20)    /* data per store-thread call */
#define NBD_ZERO_SLICE (64u << 20) /* trim/zero per store-thread call */

/* The export a connection has chosen. */
struct nbd_export {
	char name[BS_SPEC_MAX]; /* canonical: DISK or DISK@SNAP */
	bs_disk *d;
	uint64_t size;
	bool ro;
};

struct nbd_conn {
	struct srv_conn *sc;
	bool no_zeroes;  /* client set NBD_FLAG_C_NO_ZEROES */
	bool structured; /* NBD_OPT_STRUCTURED_REPLY acknowledged */
	bool meta;       /* base:allocation selected ... */
	char meta_export[BS_SPEC_MAX]; /* ... for this export */
	struct nbd_export exp;
	uint16_t tflags; /* transmission flags sent */
	uint8_t *buf;    /* handshake: option data; grows to the largest */
	size_t cap;
	/* counters for the closing log line */
	uint64_t nreq;
	_Atomic uint64_t rbytes, wbytes;
	struct iostat *stat; /* the export's entry in the server's stats */

	/* Transmission (nbd_io.c): the request stream belongs to one
	 * worker at a time (rx_busy, under rx_mu); replies are sent whole,
	 * one at a time (tx_mu). */
	pthread_mutex_t rx_mu, tx_mu;
	pthread_cond_t rx_cv; /* rx_busy cleared, or rx_done set */
	bool rx_busy;
	bool rx_done; /* no more requests: DISC, error, lost stream */
	/* The stream holder's: received, not yet parsed, rx[rx_pos, rx_end) */
	uint8_t *rx;
	size_t rx_pos, rx_end;
	atomic_bool dead; /* a send failed: stop */
};

/* Grow c->buf to at least len bytes (kept for the connection's life). */
int nbd_buf_reserve(struct nbd_conn *c, size_t len);

/* nbd.c: the handshake.  Returns 0 when transmission begins (c->exp is
 * open), or < 0: the connection is over. */
int nbd_handshake(struct nbd_conn *c);
/* nbd_io.c: transmission until the client leaves or the server stops. */
void nbd_transmission(struct nbd_conn *c);
uint16_t nbd_export_flags(const struct nbd_conn *c);

/* ---- nbd_store.c: run on the store thread through srv_call ---- */
/* Resolve an export name ("" is the default export, if configured). */
int nbd_resolve(struct srv *s, const char *name, char out[BS_SPEC_MAX]);
/* Open / look at / close an export by canonical name. */
int nbd_export_open(struct srv *s, const char *spec, struct nbd_export *e);
int nbd_export_peek(struct srv *s, const char *spec, uint64_t *size, bool *ro);
void nbd_export_close(struct srv *s, struct nbd_export *e);
/* Every export name, NUL-separated, ending in an empty name (malloc'ed);
 * *count gets how many. */
int nbd_export_list(struct srv *s, char **names, size_t *count);

enum nbd_op {
	NBD_OP_READ,
	NBD_OP_WRITE,
	NBD_OP_TRIM,
	NBD_OP_ZERO,
	NBD_OP_FLUSH
};
/* One disk operation; 'fua' flushes after it.  buf for READ/WRITE. */
int nbd_disk_io(struct srv *s, bs_disk *d, enum nbd_op op, void *buf,
		uint64_t off, uint64_t len, bool fua);
/*
 * Batches for the pipelined data path (nbd_io.c): one store-thread call
 * for many spans of one or more requests.  Spans of one request are
 * consecutive, in order, each at most NBD_IO_SLICE bytes.
 *  - nbd_disk_names: names[] of each span's blocks (bs_disk_names); the
 *    chunks are then read on the caller's thread (bs_disk_read_names).
 *  - nbd_disk_write_prepared: each span written from buf and the
 *    records prepared on the caller's thread (bs_disk_prepare), then a
 *    flush after a span with 'fua'.  A span whose rc is set on entry, or
 *    whose request failed in an earlier span, is skipped.
 * Results go to each span's rc.
 */
struct nbd_span {
	uint64_t off, len;
	uint8_t *buf;                 /* the data written, or read */
	cas_name *names;              /* read: bs_span_blocks() of them */
	const struct cas_prepared *p; /* write: bs_whole_blocks() of them */
	uint32_t req;                 /* which request (its spans follow
					 each other) */
	bool fua;
	int rc;
};
void nbd_disk_names(struct srv *s, bs_disk *d, struct nbd_span *v, unsigned n);
void nbd_disk_write_prepared(struct srv *s, bs_disk *d, struct nbd_span *v,
			     unsigned n);
/* Extents from off: up to 'max' of them covering at most len bytes. */
struct nbd_extent {
	uint32_t len;
	uint32_t flags;
};
int nbd_disk_extents(struct srv *s, bs_disk *d, uint64_t off, uint64_t len,
		     struct nbd_extent *ext, unsigned max, unsigned *n);

/* Big-endian (network order) fields. */
static inline void nbd_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void nbd_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline void nbd_put64(uint8_t *p, uint64_t v)
{
	nbd_put32(p, (uint32_t)(v >> 32));
	nbd_put32(p + 4, (uint32_t)v);
}
static inline uint16_t nbd_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t nbd_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline uint64_t nbd_get64(const uint8_t *p)
{
	return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

/* A blkstore error in NBD's words. */
uint32_t nbd_errno(int err, bool writing);

#endif
