/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd_io.c - the NBD server's transmission phase: requests in, disk
 * operations through the store thread, simple or structured replies out.
 *
 * The one idea: a request is validated completely before the store sees
 * it (flags per command, read-only, length, range), and its payload is
 * always consumed, even when it is refused, so the stream stays in step.
 * Only a bad request magic (the stream is lost) or a short read (the
 * client is gone) ends the connection.
 *
 * Payloads use one buffer per connection, grown to the largest request
 * and kept; a reply is written with one sendmsg (headers and data as an
 * iovec).  Large requests go to the store thread in slices (NBD_IO_SLICE,
 * NBD_ZERO_SLICE) so one client's 32 MiB write or 4 GiB zeroing never
 * holds the store thread away from the others for long.
 */
#include <errno.h>
#include <string.h>

#include "blkstore/nbd_int.h"

#define HOLE_MIN (64u << 10) /* zero runs worth an OFFSET_HOLE chunk */
#define MAX_CHUNKS 128u      /* content chunks per structured read */

uint16_t nbd_export_flags(const struct nbd_conn *c)
{
	/* CAN_MULTI_CONN: every connection's operations on a disk go
	 * through the one store thread and one shared bs_disk, and a flush
	 * is a store-wide group commit (docs/nbd.md). */
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

/* ---- replies ---- */

static int simple_reply(struct nbd_conn *c, uint64_t handle, uint32_t err,
			const void *data, size_t len)
{
	uint8_t h[16];
	nbd_put32(h, NBD_SIMPLE_REPLY_MAGIC);
	nbd_put32(h + 4, err);
	nbd_put64(h + 8, handle);
	struct iovec iov[2] = {{h, sizeof(h)}, {(void *)data, len}};
	return srv_sendv(c->sc, iov, len ? 2 : 1);
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
static int reply_error(struct nbd_conn *c, uint64_t handle, uint32_t err,
		       const char *msg)
{
	srv_clog(c->sc, SRV_DEBUG, "request refused (error %u): %s", err, msg);
	if (!c->structured)
		return simple_reply(c, handle, err, NULL, 0);
	uint8_t h[20 + 6];
	size_t ml = strlen(msg);
	chunk_header(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, handle,
		     (uint32_t)(6 + ml));
	nbd_put32(h + 20, err);
	nbd_put16(h + 24, (uint16_t)ml);
	struct iovec iov[2] = {{h, sizeof(h)}, {(void *)msg, ml}};
	return srv_sendv(c->sc, iov, ml ? 2 : 1);
}

static bool block_is_zero(const uint8_t *p)
{
	return p[0] == 0 && !memcmp(p, p + 1, BS_BLOCK_SIZE - 1);
}

/*
 * A structured read reply: OFFSET_DATA chunks, and OFFSET_HOLE chunks for
 * runs of zero blocks of at least HOLE_MIN (a zero block is a hole in
 * this store, so this is also what base:allocation says).  With DF, one
 * data chunk.  All chunks go out in one sendmsg; the last has DONE.
 */
static int read_reply(struct nbd_conn *c, uint64_t handle, uint64_t off,
		      uint32_t len, bool df)
{
	uint8_t hdr[MAX_CHUNKS][32];
	struct iovec iov[2 * MAX_CHUNKS];
	unsigned nch = 0, niov = 0;
	uint32_t data_start = 0;

	if (len == 0) {
		chunk_header(hdr[0], NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE,
			     handle, 0);
		return srv_send(c->sc, hdr[0], 20);
	}
#define EMIT_DATA(from, n)                                                    \
	do {                                                                  \
		chunk_header(hdr[nch], 0, NBD_REPLY_TYPE_OFFSET_DATA, handle, \
			     8 + (n));                                        \
		nbd_put64(hdr[nch] + 20, off + (from));                       \
		iov[niov++] = (struct iovec){hdr[nch], 28};                   \
		iov[niov++] = (struct iovec){c->buf + (from), (n)};           \
		nch++;                                                        \
	} while (0)

	uint32_t i = (uint32_t)((BS_BLOCK_SIZE - off % BS_BLOCK_SIZE) %
				BS_BLOCK_SIZE);
	while (!df && i + BS_BLOCK_SIZE <= len && nch + 3 <= MAX_CHUNKS) {
		if (!block_is_zero(c->buf + i)) {
			i += BS_BLOCK_SIZE;
			continue;
		}
		uint32_t j = i + BS_BLOCK_SIZE;
		while (j + BS_BLOCK_SIZE <= len && block_is_zero(c->buf + j))
			j += BS_BLOCK_SIZE;
		if (j - i >= HOLE_MIN) {
			if (i > data_start)
				EMIT_DATA(data_start, i - data_start);
			chunk_header(hdr[nch], 0, NBD_REPLY_TYPE_OFFSET_HOLE,
				     handle, 12);
			nbd_put64(hdr[nch] + 20, off + i);
			nbd_put32(hdr[nch] + 28, j - i);
			iov[niov++] = (struct iovec){hdr[nch], 32};
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
	nbd_put16(hdr[nch - 1] + 4, NBD_REPLY_FLAG_DONE);
	return srv_sendv(c->sc, iov, (int)niov);
}

/* ---- commands ---- */

/* Run op over [off, off+len) in slices; FUA with the last one. */
static int sliced(struct nbd_conn *c, enum nbd_op op, uint8_t *buf,
		  uint64_t off, uint64_t len, bool fua, uint64_t slice)
{
	struct srv *s = c->sc->srv;
	uint64_t done = 0;
	if (len == 0)
		return fua ? nbd_disk_io(s, c->exp.d, NBD_OP_FLUSH, NULL, 0, 0,
					 false)
			   : 0;
	while (done < len) {
		uint64_t n = len - done < slice ? len - done : slice;
		int rc = nbd_disk_io(s, c->exp.d, op, buf ? buf + done : NULL,
				     off + done, n, fua && done + n == len);
		if (rc)
			return rc;
		done += n;
	}
	return 0;
}

static int cmd_block_status(struct nbd_conn *c, uint64_t handle, uint16_t flags,
			    uint64_t off, uint32_t len)
{
	struct nbd_extent ext[NBD_MAX_EXTENTS];
	uint8_t out[20 + 4 + 8 * NBD_MAX_EXTENTS];
	unsigned n;
	unsigned max = (flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS;
	int rc = nbd_disk_extents(c->sc->srv, c->exp.d, off, len, ext, max, &n);
	if (rc || n == 0)
		return reply_error(c, handle,
				   rc ? nbd_errno(rc, false) : NBD_EIO,
				   rc ? bs_strerror(rc) : "no extent found");
	chunk_header(out, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
		     handle, 4 + 8 * n);
	nbd_put32(out + 20, NBD_META_ID);
	for (unsigned i = 0; i < n; i++) {
		nbd_put32(out + 24 + 8 * i, ext[i].len);
		nbd_put32(out + 28 + 8 * i, ext[i].flags);
	}
	return srv_send(c->sc, out, 24 + 8 * n);
}

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

/* One validated request; returns < 0 only if the connection is lost. */
static int execute(struct nbd_conn *c, uint16_t type, uint16_t flags,
		   uint64_t handle, uint64_t off, uint32_t len)
{
	bool fua = flags & NBD_CMD_FLAG_FUA;
	int rc = 0;
	switch (type) {
	case NBD_CMD_READ:
		if (!(rc = nbd_buf_reserve(c, len)))
			rc = sliced(c, NBD_OP_READ, c->buf, off, len, false,
				    NBD_IO_SLICE);
		if (rc)
			break;
		c->rbytes += len;
		if (!c->structured)
			return simple_reply(c, handle, 0, c->buf, len);
		return read_reply(c, handle, off, len, flags & NBD_CMD_FLAG_DF);
	case NBD_CMD_WRITE:
		rc = sliced(c, NBD_OP_WRITE, c->buf, off, len, fua,
			    NBD_IO_SLICE);
		if (!rc)
			c->wbytes += len;
		break;
	case NBD_CMD_TRIM:
		rc = sliced(c, NBD_OP_TRIM, NULL, off, len, fua,
			    NBD_ZERO_SLICE);
		break;
	case NBD_CMD_WRITE_ZEROES:
		/* NO_HOLE cannot be honoured literally: a zero block *is*
		 * the hole name here; FAST_ZERO always holds (no data is
		 * moved).  See docs/nbd.md. */
		rc = sliced(c, NBD_OP_ZERO, NULL, off, len, fua,
			    NBD_ZERO_SLICE);
		break;
	case NBD_CMD_FLUSH:
		rc = nbd_disk_io(c->sc->srv, c->exp.d, NBD_OP_FLUSH, NULL, 0, 0,
				 false);
		break;
	case NBD_CMD_CACHE:
		break; /* a hint; everything is equally near */
	case NBD_CMD_BLOCK_STATUS:
		return cmd_block_status(c, handle, flags, off, len);
	}
	if (rc) {
		bool w = type != NBD_CMD_READ;
		if (rc != BS_ERANGE)
			srv_clog(c->sc, SRV_WARN,
				 "command %u at %llu+%u failed: %s", type,
				 (unsigned long long)off, len, bs_strerror(rc));
		return reply_error(c, handle, nbd_errno(rc, w),
				   bs_strerror(rc));
	}
	return simple_reply(c, handle, 0, NULL, 0);
}

void nbd_transmission(struct nbd_conn *c)
{
	struct srv_conn *sc = c->sc;
	uint8_t h[28];
	for (;;) {
		int rc = srv_recv(sc, h, sizeof(h), true);
		if (rc) {
			if (rc != -ESHUTDOWN)
				srv_clog(sc, SRV_DEBUG, "client went away (%s)",
					 strerror(-rc));
			return;
		}
		if (nbd_get32(h) != NBD_REQUEST_MAGIC) {
			srv_clog(sc, SRV_WARN,
				 "bad request magic 0x%08x: dropped",
				 nbd_get32(h));
			return;
		}
		uint16_t flags = nbd_get16(h + 4), type = nbd_get16(h + 6);
		uint64_t handle = nbd_get64(h + 8), off = nbd_get64(h + 16);
		uint32_t len = nbd_get32(h + 24);
		const char *msg = NULL;
		uint32_t err;
		c->nreq++;

		if (type == NBD_CMD_DISC) {
			srv_clog(sc, SRV_DEBUG, "NBD_CMD_DISC");
			return;
		}
		if (type == NBD_CMD_WRITE) {
			/* The payload comes whatever we think of it. */
			if (len > NBD_MAX_BLOCK) {
				rc = nbd_buf_reserve(c, NBD_IO_SLICE);
				if (!rc)
					rc = srv_discard(sc, len, c->buf,
							 c->cap);
			} else if (!(rc = nbd_buf_reserve(c, len))) {
				rc = srv_recv(sc, c->buf, len, false);
			}
			if (rc == -ENOMEM) {
				srv_clog(sc, SRV_ERROR,
					 "no memory for a %u-byte write", len);
				return;
			}
			if (rc) {
				srv_clog(sc, SRV_DEBUG,
					 "write payload cut short (%s)",
					 strerror(-rc));
				return;
			}
		}
		err = check(c, type, flags, off, len, &msg);
		if (err)
			rc = reply_error(c, handle, err, msg);
		else if (type == NBD_CMD_READ && nbd_buf_reserve(c, len))
			rc = reply_error(c, handle, NBD_ENOMEM,
					 "out of memory");
		else {
			uint64_t t0 = srv_now_ns();
			rc = execute(c, type, flags, handle, off, len);
			static const enum srv_op ops[] = {
				[NBD_CMD_READ] = SRV_OP_READ,
				[NBD_CMD_WRITE] = SRV_OP_WRITE,
				[NBD_CMD_FLUSH] = SRV_OP_FLUSH,
				[NBD_CMD_TRIM] = SRV_OP_TRIM,
				[NBD_CMD_WRITE_ZEROES] = SRV_OP_ZERO};
			enum srv_op op = type < sizeof(ops) / sizeof(ops[0]) &&
						 (type == NBD_CMD_READ || ops[type])
					 ? ops[type] : SRV_OP_OTHER;
			bool data = op == SRV_OP_READ || op == SRV_OP_WRITE;
			iostat_record(c->stat, op, data ? len : 0,
				      srv_now_ns() - t0, false);
		}
		sc->requests++;
		if (rc)
			return;
	}
}
