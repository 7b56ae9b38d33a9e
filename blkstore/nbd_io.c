/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd_io.c - the NBD server's transmission phase: requests in, disk
 * operations, simple or structured replies out, with many requests of one
 * connection in flight at once.
 *
 * The one idea: a connection has a few worker threads (one more than the
 * CPUs, at most NBD_WORKERS_MAX) that take turns at the socket.  The one
 * holding the stream (rx_busy) reads a batch: every complete request that
 * has arrived (up to BATCH_MAX, BATCH_BYTES), waiting only for the first.
 * A small batch it keeps the stream for: the next batch gathers in the
 * socket while this one runs, one thread, no hand-off.  A batch worth
 * sharing (much data, writes to hash and compress, more requests already
 * waiting) it hands the stream on first, so the next worker reads and
 * works in parallel.  So a client's queue depth becomes batches, and
 * parallel work where there is enough of it, without a hand-off per
 * request; and the costly part of each request runs on the workers, not
 * on the store thread:
 *
 *   READ   one store-thread call resolves the block names of every read
 *          of the batch (bs_disk_names); the worker then copies each chunk
 *          from the server's chunk cache, or reads, checks and
 *          decompresses it itself (bs_disk_read_names, cas_get).
 *   WRITE  the worker hashes and compresses whole blocks (bs_disk_prepare,
 *          cas_prepare; they enter the chunk cache too); one store-thread
 *          call applies every write of the batch (bs_disk_write_prepared).
 *   others (flush, trim, zeroes, block status) run whole on the store
 *          thread, as before.
 *
 * Replies may leave in another order than the requests came (NBD allows
 * it: the handle says which is which); each reply goes out whole, in one
 * sendmsg under tx_mu, and the replies of a batch are gathered into as
 * few sendmsg calls as fit.  Within a batch requests run in order.
 *
 * What stays true (docs/nbd.md): every change of a map and every flush
 * still runs on the one store thread, and a write is acknowledged only
 * after the store thread has applied it, so a FLUSH on any connection
 * covers every write acknowledged before it (multi-conn).  A read's names
 * are looked up on the store thread after every write acknowledged before
 * the read arrived; only the chunk fetch happens later, and a chunk freed
 * in between by a concurrent overwrite and a gc makes cas_get fail (it
 * checks the record's name and checksum: never another chunk's bytes),
 * upon which the names are looked up once more.  A read racing a write to
 * the same block gets the old or the new data, as NBD allows.
 *
 * As before, a request is validated completely before the store sees it
 * (flags per command, read-only, length, range), and a WRITE's payload is
 * always consumed, even when refused, so the stream stays in step.  Only
 * a bad request magic (the stream is lost) or a short read (the client is
 * gone) ends the connection, after the requests already read are done.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blkstore/nbd_int.h"

#define HOLE_MIN (64u << 10) /* zero runs worth an OFFSET_HOLE chunk */
#define MAX_CHUNKS 128u      /* content chunks per structured read */

#define NBD_WORKERS_MAX 8      /* threads per connection: CPUs + 1 */
#define BATCH_MAX 64u          /* requests per batch */
#define BATCH_BYTES (4u << 20) /* payload bytes per batch (soft) */
#define RX_CAP (256u << 10)    /* the stream buffer */
#define HDR_LEN 28u            /* a request header */
#define SHARE_COST 64u         /* batches worth a second worker */
#define WRITE_COST 8u          /* a block written vs a block read */
#define SLICE_BLOCKS (NBD_IO_SLICE / BS_BLOCK_SIZE)
#define GROUP_NAMES (2 * (SLICE_BLOCKS + 1)) /* names per store call */
#define GROUP_PREP SLICE_BLOCKS              /* prepared blocks per call */
#define GROUP_SPANS 128u
#define TX_IOV 512u        /* iovecs per sendmsg */
#define TX_HDR (32u << 10) /* reply header bytes per sendmsg */

uint16_t nbd_export_flags(const struct nbd_conn *c)
{
	/* CAN_MULTI_CONN: every connection's changes to a disk go through
	 * the one store thread and one shared bs_disk, and a flush is a
	 * store-wide group commit (docs/nbd.md). */
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		     NBD_FLAG_CAN_MULTI_CONN;
	if (c->exp.ro)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
		     NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
	if (c->structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

/* One request of a batch. */
struct req {
	uint16_t type, flags;
	uint32_t len;
	uint64_t handle, off;
	uint32_t err;    /* refused before the store saw it: NBD error */
	const char *msg; /* ... in words */
	int rc;          /* the store's error */
	size_t data;     /* payload or read buffer: offset in w->data */
	uint64_t t0;
};

enum group_kind {
	G_NONE,
	G_READ,
	G_WRITE
};

struct worker {
	struct nbd_conn *c;
	pthread_t tid;
	bool started;
	/* the batch */
	struct req req[BATCH_MAX];
	unsigned n;
	uint64_t cost; /* of the batch's reads and writes, in SHARE_COST */
	uint64_t now;  /* when requests finished, for statistics (0: unread) */
	uint8_t *data; /* payloads and read buffers */
	size_t cap, used;
	/* the group: reads or writes for one store-thread call */
	enum group_kind gk;
	struct nbd_span span[GROUP_SPANS];
	unsigned nspan, nnames, nprep;
	cas_name names[GROUP_NAMES];
	struct cas_prepared *prep; /* GROUP_PREP */
	/* replies not yet sent */
	struct iovec iov[TX_IOV];
	unsigned niov;
	size_t hused;
	uint8_t hdr[TX_HDR];
};

/* ---- replies: gathered per worker, each sent whole ---- */

static void tx_flush(struct worker *w)
{
	struct nbd_conn *c = w->c;
	if (w->niov && !atomic_load(&c->dead)) {
		pthread_mutex_lock(&c->tx_mu);
		int rc = srv_sendv(c->sc, w->iov, (int)w->niov);
		pthread_mutex_unlock(&c->tx_mu);
		if (rc) {
			srv_clog(c->sc, SRV_DEBUG, "sending replies: %s",
				 strerror(-rc));
			/* Wake whoever is receiving: the connection is over. */
			atomic_store(&c->dead, true);
			shutdown(c->sc->fd, SHUT_RDWR);
		}
	}
	w->niov = 0;
	w->hused = 0;
}

/* Room for one reply of up to niov iovecs and hbytes of headers: what
 * is queued goes first if it would not fit, so a reply is never split
 * between two sendmsg calls (another worker's reply could come between). */
static void tx_reserve(struct worker *w, unsigned niov, size_t hbytes)
{
	if (w->niov + niov > TX_IOV || w->hused + hbytes > TX_HDR)
		tx_flush(w);
}

static uint8_t *tx_hdr(struct worker *w, size_t len)
{
	uint8_t *h = w->hdr + w->hused;
	w->hused += len;
	w->iov[w->niov++] = (struct iovec){h, len};
	return h;
}

static void tx_data(struct worker *w, const void *p, size_t len)
{
	if (len)
		w->iov[w->niov++] = (struct iovec){(void *)p, len};
}

static void simple_reply(struct worker *w, uint64_t handle, uint32_t err,
			 const void *data, size_t len)
{
	tx_reserve(w, 2, 16);
	uint8_t *h = tx_hdr(w, 16);
	nbd_put32(h, NBD_SIMPLE_REPLY_MAGIC);
	nbd_put32(h + 4, err);
	nbd_put64(h + 8, handle);
	tx_data(w, data, len);
}

static void chunk_header(uint8_t *h, uint16_t flags, uint16_t type,
			 uint64_t handle, uint32_t len)
{
	nbd_put32(h, NBD_STRUCTURED_REPLY_MAGIC);
	nbd_put16(h + 4, flags);
	nbd_put16(h + 6, type);
	nbd_put64(h + 8, handle);
	nbd_put32(h + 16, len);
}

/* An error, structured (with words for a human) when negotiated. */
static void reply_error(struct worker *w, uint64_t handle, uint32_t err,
			const char *msg)
{
	srv_clog(w->c->sc, SRV_DEBUG, "request refused (error %u): %s", err,
		 msg);
	if (!w->c->structured) {
		simple_reply(w, handle, err, NULL, 0);
		return;
	}
	size_t ml = strlen(msg);
	if (ml > 4096)
		ml = 4096;
	tx_reserve(w, 1, 26 + ml);
	uint8_t *h = tx_hdr(w, 26 + ml);
	chunk_header(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, handle,
		     (uint32_t)(6 + ml));
	nbd_put32(h + 20, err);
	nbd_put16(h + 24, (uint16_t)ml);
	memcpy(h + 26, msg, ml);
}

static bool block_is_zero(const uint8_t *p)
{
	return p[0] == 0 && !memcmp(p, p + 1, BS_BLOCK_SIZE - 1);
}

/*
 * A structured read reply: OFFSET_DATA chunks, and OFFSET_HOLE chunks for
 * runs of zero blocks of at least HOLE_MIN (a zero block is a hole in
 * this store, so this is also what base:allocation says).  With DF, one
 * data chunk.  The last chunk has DONE.
 */
static void read_reply(struct worker *w, uint64_t handle, uint64_t off,
		       const uint8_t *buf, uint32_t len, bool df)
{
	uint8_t *last = NULL;
	uint32_t data_start = 0;

	/* At most one chunk per HOLE_MIN on either side of each hole. */
	unsigned most = df ? 1 : 2 * (len / HOLE_MIN) + 1;
	if (most > MAX_CHUNKS)
		most = MAX_CHUNKS;
	tx_reserve(w, 2 * most, 32 * most);
	if (len == 0) {
		chunk_header(tx_hdr(w, 20), NBD_REPLY_FLAG_DONE,
			     NBD_REPLY_TYPE_NONE, handle, 0);
		return;
	}
#define EMIT_DATA(from, n)                                                \
	do {                                                              \
		last = tx_hdr(w, 28);                                     \
		chunk_header(last, 0, NBD_REPLY_TYPE_OFFSET_DATA, handle, \
			     8 + (n));                                    \
		nbd_put64(last + 20, off + (from));                       \
		tx_data(w, buf + (from), (n));                            \
		nch++;                                                    \
	} while (0)

	unsigned nch = 0;
	uint32_t i = (uint32_t)((BS_BLOCK_SIZE - off % BS_BLOCK_SIZE) %
				BS_BLOCK_SIZE);
	while (!df && i + BS_BLOCK_SIZE <= len && nch + 3 <= MAX_CHUNKS) {
		if (!block_is_zero(buf + i)) {
			i += BS_BLOCK_SIZE;
			continue;
		}
		uint32_t j = i + BS_BLOCK_SIZE;
		while (j + BS_BLOCK_SIZE <= len && block_is_zero(buf + j))
			j += BS_BLOCK_SIZE;
		if (j - i >= HOLE_MIN) {
			if (i > data_start)
				EMIT_DATA(data_start, i - data_start);
			last = tx_hdr(w, 32);
			chunk_header(last, 0, NBD_REPLY_TYPE_OFFSET_HOLE,
				     handle, 12);
			nbd_put64(last + 20, off + i);
			nbd_put32(last + 28, j - i);
			nch++;
			data_start = j;
		}
		i = j;
	}
	if (data_start < len)
		EMIT_DATA(data_start, len - data_start);
#undef EMIT_DATA
	/* Everything is read already: no error can follow, so the last
	 * content chunk may carry DONE. */
	nbd_put16(last + 4, NBD_REPLY_FLAG_DONE);
}

/* ---- finishing a request ---- */

static void record(struct worker *w, const struct req *r)
{
	static const enum srv_op ops[] = {[NBD_CMD_READ] = SRV_OP_READ,
					  [NBD_CMD_WRITE] = SRV_OP_WRITE,
					  [NBD_CMD_FLUSH] = SRV_OP_FLUSH,
					  [NBD_CMD_TRIM] = SRV_OP_TRIM,
					  [NBD_CMD_WRITE_ZEROES] = SRV_OP_ZERO};
	enum srv_op op =
		r->type < sizeof(ops) / sizeof(ops[0]) &&
				(r->type == NBD_CMD_READ || ops[r->type])
			? ops[r->type]
			: SRV_OP_OTHER;
	bool data = op == SRV_OP_READ || op == SRV_OP_WRITE;
	if (!w->now)
		w->now = srv_now_ns();
	iostat_record(w->c->stat, op, data ? r->len : 0, w->now - r->t0, false);
}

/* The reply of a request the store has run (r->rc its result). */
static void finish(struct worker *w, struct req *r)
{
	struct nbd_conn *c = w->c;
	if (r->rc) {
		bool wr = r->type != NBD_CMD_READ;
		if (r->rc != BS_ERANGE)
			srv_clog(c->sc, SRV_WARN,
				 "command %u at %llu+%u failed: %s", r->type,
				 (unsigned long long)r->off, r->len,
				 bs_strerror(r->rc));
		reply_error(w, r->handle, nbd_errno(r->rc, wr),
			    bs_strerror(r->rc));
	} else if (r->type == NBD_CMD_READ) {
		atomic_fetch_add(&c->rbytes, r->len);
		if (c->structured)
			read_reply(w, r->handle, r->off, w->data + r->data,
				   r->len, r->flags & NBD_CMD_FLAG_DF);
		else
			simple_reply(w, r->handle, 0, w->data + r->data,
				     r->len);
	} else {
		if (r->type == NBD_CMD_WRITE)
			atomic_fetch_add(&c->wbytes, r->len);
		simple_reply(w, r->handle, 0, NULL, 0);
	}
	record(w, r);
}

/* ---- groups: reads or writes for one store-thread call ---- */

static void run_reads(struct worker *w)
{
	struct nbd_conn *c = w->c;
	struct srv *s = c->sc->srv;
	bs_chunk_cache *cc = srv_chunk_cache(s);
	nbd_disk_names(s, c->exp.d, w->span, w->nspan);
	for (unsigned k = 0; k < w->nspan; k++) {
		struct nbd_span *v = &w->span[k];
		struct req *r = &w->req[v->req];
		int rc = v->rc;
		if (!rc && !r->rc) {
			rc = bs_disk_read_names(c->exp.d, v->names, v->buf,
						v->len, v->off, cc);
			if (rc == -ENOENT || rc == -EIO) {
				/* A chunk freed or moved since the lookup
				 * (an overwrite and a gc): look again. */
				srv_clog(c->sc, SRV_DEBUG,
					 "read at %llu+%llu: %s; looking the "
					 "names up again",
					 (unsigned long long)v->off,
					 (unsigned long long)v->len,
					 bs_strerror(rc));
				v->rc = 0;
				nbd_disk_names(s, c->exp.d, v, 1);
				rc = v->rc ? v->rc
					   : bs_disk_read_names(
						     c->exp.d, v->names, v->buf,
						     v->len, v->off, cc);
			}
		}
		if (rc && !r->rc)
			r->rc = rc;
		if (k + 1 == w->nspan || w->span[k + 1].req != v->req) {
			/* The request's last span so far: is it done? */
			if (v->off + v->len == r->off + r->len)
				finish(w, r);
		}
	}
}

static void run_writes(struct worker *w)
{
	struct nbd_conn *c = w->c;
	for (unsigned k = 0; k < w->nspan; k++) {
		struct nbd_span *v = &w->span[k];
		const struct req *r = &w->req[v->req];
		if (r->rc) /* failed in a slice before */
			v->rc = r->rc;
		else if (v->len)
			v->rc = bs_disk_prepare(c->exp.d, v->buf, v->len,
						v->off,
						(struct cas_prepared *)v->p,
						srv_chunk_cache(c->sc->srv));
	}
	nbd_disk_write_prepared(c->sc->srv, c->exp.d, w->span, w->nspan);
	for (unsigned k = 0; k < w->nspan; k++) {
		struct nbd_span *v = &w->span[k];
		struct req *r = &w->req[v->req];
		if (v->rc && !r->rc)
			r->rc = v->rc;
		if (v->off + v->len == r->off + r->len &&
		    (k + 1 == w->nspan || w->span[k + 1].req != v->req))
			finish(w, r);
	}
}

static void group_run(struct worker *w)
{
	w->now = 0; /* one clock reading for the group's requests */
	if (w->nspan) {
		if (w->gk == G_READ)
			run_reads(w);
		else
			run_writes(w);
	}
	w->nspan = w->nnames = w->nprep = 0;
	w->gk = G_NONE;
}

/* Queue request r (READ or WRITE) into groups, slice by slice. */
static void group_add(struct worker *w, struct req *r)
{
	enum group_kind gk = r->type == NBD_CMD_READ ? G_READ : G_WRITE;
	uint64_t done = 0;
	if (w->gk != gk)
		group_run(w);
	w->gk = gk;
	do {
		uint64_t n = r->len - done;
		if (n > NBD_IO_SLICE)
			n = NBD_IO_SLICE;
		uint64_t off = r->off + done;
		uint64_t nn = gk == G_READ ? bs_span_blocks(off, n) : 0;
		uint64_t np = gk == G_WRITE ? bs_whole_blocks(off, n) : 0;
		if (w->nspan == GROUP_SPANS || w->nnames + nn > GROUP_NAMES ||
		    w->nprep + np > GROUP_PREP) {
			group_run(w);
			w->gk = gk;
		}
		struct nbd_span *v = &w->span[w->nspan++];
		*v = (struct nbd_span){
			.off = off,
			.len = n,
			.buf = w->data + r->data + done,
			.names = w->names + w->nnames,
			.p = w->prep + w->nprep,
			.req = (uint32_t)(r - w->req),
			.fua = gk == G_WRITE && (r->flags & NBD_CMD_FLAG_FUA) &&
			       done + n == r->len,
		};
		w->nnames += (unsigned)nn;
		w->nprep += (unsigned)np;
		done += n;
	} while (done < r->len);
}

/* ---- everything else: whole on the store thread ---- */

/* Run op over [off, off+len) in slices; FUA with the last one. */
static int sliced(struct nbd_conn *c, enum nbd_op op, uint64_t off,
		  uint64_t len, bool fua, uint64_t slice)
{
	struct srv *s = c->sc->srv;
	uint64_t done = 0;
	if (len == 0)
		return fua ? nbd_disk_io(s, c->exp.d, NBD_OP_FLUSH, NULL, 0, 0,
					 false)
			   : 0;
	while (done < len) {
		uint64_t n = len - done < slice ? len - done : slice;
		int rc = nbd_disk_io(s, c->exp.d, op, NULL, off + done, n,
				     fua && done + n == len);
		if (rc)
			return rc;
		done += n;
	}
	return 0;
}

static void cmd_block_status(struct worker *w, struct req *r)
{
	struct nbd_extent ext[NBD_MAX_EXTENTS];
	unsigned n;
	unsigned max = (r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS;
	int rc = nbd_disk_extents(w->c->sc->srv, w->c->exp.d, r->off, r->len,
				  ext, max, &n);
	if (rc || n == 0) {
		reply_error(w, r->handle, rc ? nbd_errno(rc, false) : NBD_EIO,
			    rc ? bs_strerror(rc) : "no extent found");
		return;
	}
	tx_reserve(w, 1, 24 + 8 * n);
	uint8_t *out = tx_hdr(w, 24 + 8 * n);
	chunk_header(out, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
		     r->handle, 4 + 8 * n);
	nbd_put32(out + 20, NBD_META_ID);
	for (unsigned i = 0; i < n; i++) {
		nbd_put32(out + 24 + 8 * i, ext[i].len);
		nbd_put32(out + 28 + 8 * i, ext[i].flags);
	}
}

static void run_other(struct worker *w, struct req *r)
{
	struct nbd_conn *c = w->c;
	w->now = 0;
	bool fua = r->flags & NBD_CMD_FLAG_FUA;
	switch (r->type) {
	case NBD_CMD_TRIM:
		r->rc = sliced(c, NBD_OP_TRIM, r->off, r->len, fua,
			       NBD_ZERO_SLICE);
		break;
	case NBD_CMD_WRITE_ZEROES:
		/* NO_HOLE cannot be honoured literally: a zero block *is*
		 * the hole name here; FAST_ZERO always holds (no data is
		 * moved).  See docs/nbd.md. */
		r->rc = sliced(c, NBD_OP_ZERO, r->off, r->len, fua,
			       NBD_ZERO_SLICE);
		break;
	case NBD_CMD_FLUSH:
		r->rc = nbd_disk_io(c->sc->srv, c->exp.d, NBD_OP_FLUSH, NULL, 0,
				    0, false);
		break;
	case NBD_CMD_CACHE:
		break; /* a hint; everything is equally near */
	case NBD_CMD_BLOCK_STATUS:
		cmd_block_status(w, r);
		record(w, r);
		return;
	}
	finish(w, r);
}

static void run_batch(struct worker *w)
{
	for (unsigned i = 0; i < w->n; i++) {
		struct req *r = &w->req[i];
		if (r->err) {
			group_run(w);
			reply_error(w, r->handle, r->err, r->msg);
		} else if (r->type == NBD_CMD_READ ||
			   r->type == NBD_CMD_WRITE) {
			group_add(w, r);
		} else {
			group_run(w);
			run_other(w, r);
		}
		w->c->sc->requests++;
	}
	group_run(w);
	tx_flush(w);
}

/* ---- requests in ---- */

/* The flags each command accepts.  FUA is accepted on every command (the
 * spec lets clients send it anywhere once SEND_FUA is advertised). */
static uint16_t valid_flags(const struct nbd_conn *c, uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:
		return NBD_CMD_FLAG_FUA | (c->structured ? NBD_CMD_FLAG_DF : 0);
	case NBD_CMD_WRITE_ZEROES:
		return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
		       NBD_CMD_FLAG_FAST_ZERO;
	case NBD_CMD_BLOCK_STATUS:
		return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
	default:
		return NBD_CMD_FLAG_FUA;
	}
}

/* Everything that can be wrong with a request before the store sees it:
 * the NBD error, with *msg in words; 0 if it may go ahead. */
static uint32_t check(const struct nbd_conn *c, uint16_t type, uint16_t flags,
		      uint64_t off, uint32_t len, const char **msg)
{
#define REFUSE(err, words)      \
	do {                    \
		*msg = (words); \
		return (err);   \
	} while (0)
	bool writes = type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
		      type == NBD_CMD_WRITE_ZEROES;
	bool payload = type == NBD_CMD_READ || type == NBD_CMD_WRITE;
	uint64_t size = c->exp.size;

	if (type > NBD_CMD_BLOCK_STATUS)
		REFUSE(NBD_EINVAL, "unknown command");
	if (flags & ~valid_flags(c, type))
		REFUSE(NBD_EINVAL, "flag not valid for this command");
	if (writes && c->exp.ro)
		REFUSE(NBD_EPERM, "export is read-only");
	if (payload && len > NBD_MAX_BLOCK)
		REFUSE(NBD_EINVAL,
		       "request larger than the maximum block size");
	if (type == NBD_CMD_FLUSH && (off || len))
		REFUSE(NBD_EINVAL, "flush offset and length must be zero");
	if (type != NBD_CMD_FLUSH && (off > size || len > size - off))
		REFUSE(type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES
			       ? NBD_ENOSPC
			       : NBD_EINVAL,
		       "request past the end of the export");
	if (type == NBD_CMD_BLOCK_STATUS && !c->meta)
		REFUSE(NBD_EINVAL, "no metadata context was negotiated");
	if (type == NBD_CMD_BLOCK_STATUS && len == 0)
		REFUSE(NBD_EINVAL, "zero-length block status");
	return 0;
#undef REFUSE
}

/* Grow w->data to hold 'need' more bytes. */
static int data_reserve(struct worker *w, size_t need)
{
	if (w->used + need <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 1u << 20;
	while (cap < w->used + need)
		cap *= 2;
	uint8_t *p = realloc(w->data, cap);
	if (!p)
		return -ENOMEM;
	w->data = p;
	w->cap = cap;
	return 0;
}

/* Receive more of the stream into c->rx; with 'wait' at least a byte. */
static ssize_t rx_fill(struct nbd_conn *c, bool wait)
{
	size_t have = c->rx_end - c->rx_pos;
	if (c->rx_pos && (have == 0 || RX_CAP - c->rx_end < HDR_LEN)) {
		memmove(c->rx, c->rx + c->rx_pos, have);
		c->rx_pos = 0;
		c->rx_end = have;
	}
	ssize_t n = srv_recv_some(c->sc, c->rx + c->rx_end, RX_CAP - c->rx_end,
				  have == 0, wait);
	if (n > 0)
		c->rx_end += (size_t)n;
	return n;
}

/* Take len bytes of the stream (what is buffered, then the socket) into
 * dst, or throw them away (dst NULL). */
static int rx_take(struct nbd_conn *c, uint8_t *dst, uint64_t len)
{
	size_t have = c->rx_end - c->rx_pos;
	size_t n = len < have ? (size_t)len : have;
	if (dst)
		memcpy(dst, c->rx + c->rx_pos, n);
	c->rx_pos += n;
	len -= n;
	if (!len)
		return 0;
	/* The buffer is empty now: the rest comes straight from the socket
	 * (and the buffer serves as scratch to throw bytes away). */
	c->rx_pos = c->rx_end = 0;
	if (dst)
		return srv_recv(c->sc, dst + n, (size_t)len, false);
	return srv_discard(c->sc, len, c->rx, RX_CAP);
}

/*
 * Read a batch into w: at least one request (waiting for it), then every
 * further complete one already here.  Called by the worker holding the
 * stream (rx_busy).  Returns true when no more requests will come.
 */
static bool rx_batch(struct worker *w)
{
	struct nbd_conn *c = w->c;
	struct srv_conn *sc = c->sc;
	uint64_t t0 = 0; /* when the batch's first request was here */
	w->n = 0;
	w->used = 0;
	w->cost = 0;
	while (w->n < BATCH_MAX) {
		if (c->rx_end - c->rx_pos < HDR_LEN) {
			ssize_t got = rx_fill(c, w->n == 0);
			if (got == 0)
				break; /* nothing more yet: go with what we have */
			if (got < 0) {
				if (got != -ESHUTDOWN)
					srv_clog(sc, SRV_DEBUG,
						 "client went away (%s)",
						 strerror((int)-got));
				return true;
			}
			continue;
		}
		const uint8_t *h = c->rx + c->rx_pos;
		if (!t0)
			t0 = srv_now_ns();
		if (nbd_get32(h) != NBD_REQUEST_MAGIC) {
			srv_clog(sc, SRV_WARN,
				 "bad request magic 0x%08x: dropped",
				 nbd_get32(h));
			return true;
		}
		uint16_t flags = nbd_get16(h + 4), type = nbd_get16(h + 6);
		uint64_t handle = nbd_get64(h + 8), off = nbd_get64(h + 16);
		uint32_t len = nbd_get32(h + 24);
		const char *msg = NULL;
		uint32_t err = check(c, type, flags, off, len, &msg);
		size_t need = 0;
		if (type == NBD_CMD_WRITE && len <= NBD_MAX_BLOCK)
			need = len;
		else if (type == NBD_CMD_READ && !err)
			need = len;
		if (w->n && w->used + need > BATCH_BYTES)
			break; /* the next batch's */
		c->rx_pos += HDR_LEN;
		c->nreq++;
		if (type == NBD_CMD_DISC) {
			srv_clog(sc, SRV_DEBUG, "NBD_CMD_DISC");
			return true;
		}
		int rc = data_reserve(w, need);
		if (rc && type == NBD_CMD_WRITE) {
			srv_clog(sc, SRV_ERROR, "no memory for a %u-byte write",
				 len);
			return true;
		}
		if (rc) { /* a read: refuse it, the stream goes on */
			err = NBD_ENOMEM;
			msg = "out of memory";
			need = 0;
		}
		if (type == NBD_CMD_WRITE) {
			/* The payload comes whatever we think of it. */
			rc = rx_take(c, need ? w->data + w->used : NULL, len);
			if (rc) {
				srv_clog(sc, SRV_DEBUG,
					 "write payload cut short (%s)",
					 strerror(-rc));
				return true;
			}
		}
		w->req[w->n++] = (struct req){
			.type = type,
			.flags = flags,
			.len = len,
			.handle = handle,
			.off = off,
			.err = err,
			.msg = msg,
			.data = w->used,
			.t0 = t0,
		};
		w->used += need;
		if (type == NBD_CMD_READ)
			w->cost += bs_span_blocks(off, need);
		else if (type == NBD_CMD_WRITE)
			w->cost += WRITE_COST * bs_span_blocks(off, need);
	}
	return false;
}

/* Is w's batch worth letting another worker read the next one while w
 * works on it?  Not for a few small reads: the next batch then gathers
 * while this one runs, and small requests cost less in batches than in
 * hand-offs between threads.  Yes for much work (a block read costs 1, a
 * block written, hashed and compressed WRITE_COST), or when more
 * requests are waiting already. */
static bool worth_sharing(const struct worker *w)
{
	const struct nbd_conn *c = w->c;
	return w->cost >= SHARE_COST || w->n == BATCH_MAX ||
	       c->rx_end - c->rx_pos >= HDR_LEN;
}

/*
 * A worker: take the stream when nobody holds it (rx_busy), read a
 * batch, and either keep the stream while working on the batch (small
 * batches) or hand it to the next worker first (worth_sharing).
 */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nbd_conn *c = w->c;
	bool mine = false; /* holding the stream */
	pthread_mutex_lock(&c->rx_mu);
	for (;;) {
		while (!mine && c->rx_busy && !c->rx_done)
			pthread_cond_wait(&c->rx_cv, &c->rx_mu);
		if (c->rx_done || atomic_load(&c->dead)) {
			if (mine) {
				c->rx_busy = false;
				pthread_cond_broadcast(&c->rx_cv);
			}
			break;
		}
		c->rx_busy = mine = true;
		pthread_mutex_unlock(&c->rx_mu);
		bool done = rx_batch(w);
		bool share = done || worth_sharing(w);
		pthread_mutex_lock(&c->rx_mu);
		if (done)
			c->rx_done = true;
		if (share) {
			c->rx_busy = mine = false;
			pthread_cond_broadcast(&c->rx_cv);
		}
		if (!w->n)
			continue;
		pthread_mutex_unlock(&c->rx_mu);
		run_batch(w);
		pthread_mutex_lock(&c->rx_mu);
	}
	pthread_mutex_unlock(&c->rx_mu);
	return NULL;
}

static void worker_free(struct worker *w)
{
	if (!w)
		return;
	free(w->data);
	free(w->prep);
	free(w);
}

void nbd_transmission(struct nbd_conn *c)
{
	struct worker *w[NBD_WORKERS_MAX] = {0};
	int nw = 0;
	pthread_attr_t attr;

	c->rx = malloc(RX_CAP);
	c->rx_pos = c->rx_end = 0;
	c->rx_done = c->rx_busy = false;
	atomic_store(&c->dead, false);
	pthread_mutex_init(&c->rx_mu, NULL);
	pthread_cond_init(&c->rx_cv, NULL);
	pthread_mutex_init(&c->tx_mu, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int want = ncpu < 1 ? 2 : (int)ncpu + 1;
	if (want > NBD_WORKERS_MAX)
		want = NBD_WORKERS_MAX;
	for (int i = 0; c->rx && i < want; i++) {
		struct worker *x = calloc(1, sizeof(*x));
		if (x)
			x->prep = malloc(GROUP_PREP * sizeof(*x->prep));
		if (!x || !x->prep) {
			worker_free(x);
			break;
		}
		x->c = c;
		w[nw++] = x;
		/* Worker 0 is this thread; the others get their own. */
		if (i && pthread_create(&x->tid, &attr, worker_main, x) == 0)
			x->started = true;
	}
	pthread_attr_destroy(&attr);
	if (nw)
		worker_main(w[0]);
	else
		srv_clog(c->sc, SRV_ERROR, "no memory for the connection");
	for (int i = 1; i < nw; i++)
		if (w[i]->started)
			pthread_join(w[i]->tid, NULL);
	for (int i = 0; i < nw; i++)
		worker_free(w[i]);
	pthread_mutex_destroy(&c->rx_mu);
	pthread_cond_destroy(&c->rx_cv);
	pthread_mutex_destroy(&c->tx_mu);
	free(c->rx);
	c->rx = NULL;
}
