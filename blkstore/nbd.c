/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nbd.c - the NBD server's handshake: fixed newstyle option haggling,
 * up to the moment a client enters transmission on an export.
 *
 * The one idea: every option is read whole (its length is in its header)
 * and answered with an option reply; an option we do not know, or that
 * is malformed, gets an error reply and the haggling goes on, so one
 * mistake never desynchronises the stream.  The connection is dropped
 * only where the spec leaves no other way: a bad magic, unknown client
 * flags, NBD_OPT_EXPORT_NAME of an export we cannot serve, too many
 * options, or a handshake that takes longer than NBD_HANDSHAKE_S.
 *
 * Exports (docs/nbd.md): every disk by name, read-write; every snapshot
 * as DISK@SNAP, read-only.  "" is the default export of --default-export,
 * else unknown.  Metadata context: base:allocation only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkstore/nbd_int.h"

int nbd_buf_reserve(struct nbd_conn *c, size_t len)
{
	if (len <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap : 64u << 10;
	while (cap < len)
		cap *= 2;
	uint8_t *b = realloc(c->buf, cap);
	if (!b)
		return -ENOMEM;
	c->buf = b;
	c->cap = cap;
	return 0;
}

/* ---- option replies ---- */

static int reply(struct nbd_conn *c, uint32_t opt, uint32_t type,
		 const void *data, size_t len)
{
	uint8_t h[20];
	nbd_put64(h, NBD_REP_MAGIC);
	nbd_put32(h + 8, opt);
	nbd_put32(h + 12, type);
	nbd_put32(h + 16, (uint32_t)len);
	struct iovec iov[2] = {{h, sizeof(h)}, {(void *)data, len}};
	return srv_sendv(c->sc, iov, len ? 2 : 1);
}

static int reply_err(struct nbd_conn *c, uint32_t opt, uint32_t type,
		     const char *msg)
{
	srv_clog(c->sc, SRV_DEBUG, "option %u refused: %s", opt, msg);
	return reply(c, opt, type, msg, strlen(msg));
}

static int reply_info(struct nbd_conn *c, uint32_t opt, uint16_t info,
		      const void *data, size_t len)
{
	uint8_t b[2 + BS_SPEC_MAX + 64];
	nbd_put16(b, info);
	memcpy(b + 2, data, len);
	return reply(c, opt, NBD_REP_INFO, b, 2 + len);
}

/* A string of the option's data: no NUL inside, at most the spec's
 * longest; copied out NUL-terminated (for names we can resolve). */
static bool take_string(const uint8_t *p, uint32_t len, char *out,
			size_t outlen)
{
	if (len > NBD_NAME_MAX || memchr(p, 0, len))
		return false;
	size_t n = len < outlen - 1 ? len : outlen - 1;
	memcpy(out, p, n);
	out[n] = 0;
	return true;
}

/* ---- the options ---- */

static int opt_export_name(struct nbd_conn *c, const uint8_t *d, uint32_t len)
{
	char name[NBD_NAME_MAX + 1] = "", spec[BS_SPEC_MAX];
	uint8_t b[8 + 2 + 124] = {0};
	int rc = take_string(d, len, name, sizeof(name))
			 ? nbd_resolve(c->sc->srv, name, spec)
			 : BS_EBADNAME;
	if (!rc)
		rc = nbd_export_open(c->sc->srv, spec, &c->exp);
	if (rc) {
		/* This option cannot answer an error: the spec says drop. */
		srv_clog(c->sc, SRV_WARN, "NBD_OPT_EXPORT_NAME '%.64s': %s",
			 name, bs_strerror(rc));
		return -ENOENT;
	}
	if (c->meta && strcmp(c->meta_export, spec) != 0)
		c->meta = false;
	c->tflags = nbd_export_flags(c);
	nbd_put64(b, c->exp.size);
	nbd_put16(b + 8, c->tflags);
	rc = srv_send(c->sc, b, c->no_zeroes ? 10 : sizeof(b));
	return rc ? rc : 1;
}

static int opt_list(struct nbd_conn *c, uint32_t len)
{
	char *names;
	size_t count;
	if (len)
		return reply_err(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
				 "NBD_OPT_LIST takes no data");
	int rc = nbd_export_list(c->sc->srv, &names, &count);
	if (rc)
		return reply_err(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
				 bs_strerror(rc));
	for (char *n = names; *n && !rc; n += strlen(n) + 1) {
		uint8_t b[4 + BS_SPEC_MAX];
		size_t nl = strlen(n);
		nbd_put32(b, (uint32_t)nl);
		memcpy(b + 4, n, nl);
		rc = reply(c, NBD_OPT_LIST, NBD_REP_SERVER, b, 4 + nl);
	}
	free(names);
	return rc ? rc : reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* The reply to a name that does not resolve to an export. */
static int unknown_export(struct nbd_conn *c, uint32_t opt, const char *name,
			  int err)
{
	char msg[NBD_NAME_MAX + 256];
	const char *def = srv_options(c->sc->srv)->default_export;
	if (!*name && !def)
		snprintf(msg, sizeof(msg),
			 "no default export: name a disk (DISK or DISK@SNAP)");
	else if (!*name)
		snprintf(msg, sizeof(msg), "default export '%s': %s", def,
			 bs_strerror(err));
	else
		snprintf(msg, sizeof(msg), "export '%.200s': %s", name,
			 bs_strerror(err));
	return reply_err(c, opt, NBD_REP_ERR_UNKNOWN, msg);
}

/* NBD_OPT_INFO and NBD_OPT_GO: one format, GO also begins transmission. */
static int opt_info_go(struct nbd_conn *c, uint32_t opt, const uint8_t *d,
		       uint32_t len)
{
	char name[NBD_NAME_MAX + 1], spec[BS_SPEC_MAX];
	bool want_name = false, want_desc = false;
	struct nbd_export e = {0};
	uint8_t b[14];
	int rc;

	uint32_t nl = len >= 6 ? nbd_get32(d) : 0;
	if (len < 6 || nl > len - 6 ||
	    !take_string(d + 4, nl, name, sizeof(name)))
		return reply_err(c, opt, NBD_REP_ERR_INVALID,
				 "malformed export name");
	uint16_t nreq = nbd_get16(d + 4 + nl);
	if (len != 4 + nl + 2 + 2u * nreq)
		return reply_err(c, opt, NBD_REP_ERR_INVALID,
				 "option length does not match its requests");
	for (unsigned i = 0; i < nreq; i++) {
		uint16_t r = nbd_get16(d + 4 + nl + 2 + 2 * i);
		want_name |= r == NBD_INFO_NAME;
		want_desc |= r == NBD_INFO_DESCRIPTION;
	}
	rc = nbd_resolve(c->sc->srv, name, spec);
	if (!rc && opt == NBD_OPT_GO)
		rc = nbd_export_open(c->sc->srv, spec, &e);
	else if (!rc)
		rc = nbd_export_peek(c->sc->srv, spec, &e.size, &e.ro);
	if (rc)
		return unknown_export(c, opt, name, rc);

	/* The flags depend on the export and on what was negotiated. */
	struct nbd_export saved = c->exp;
	c->exp = e;
	uint16_t flags = nbd_export_flags(c);
	c->exp = saved;

	nbd_put64(b, e.size);
	nbd_put16(b + 8, flags);
	rc = reply_info(c, opt, NBD_INFO_EXPORT, b, 10);
	nbd_put32(b, NBD_MIN_BLOCK);
	nbd_put32(b + 4, NBD_PREF_BLOCK);
	nbd_put32(b + 8, NBD_MAX_BLOCK);
	if (!rc)
		rc = reply_info(c, opt, NBD_INFO_BLOCK_SIZE, b, 12);
	if (!rc && want_name)
		rc = reply_info(c, opt, NBD_INFO_NAME, spec, strlen(spec));
	if (!rc && want_desc) {
		const char *desc =
			e.ro ? "cavm snapshot (read-only)" : "cavm disk";
		rc = reply_info(c, opt, NBD_INFO_DESCRIPTION, desc,
				strlen(desc));
	}
	if (!rc)
		rc = reply(c, opt, NBD_REP_ACK, NULL, 0);
	if (opt == NBD_OPT_INFO)
		return rc;
	c->exp = e; /* closed by nbd_conn_main whatever happens now */
	if (c->meta && strcmp(c->meta_export, spec) != 0)
		c->meta = false; /* selected for another export */
	c->tflags = flags;
	return rc ? rc : 1;
}

/*
 * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT:
 *   u32 name length, name, u32 query count, { u32 length, query }...
 * We know one context, base:allocation.  "base:" lists it; only its full
 * name selects it; queries in other namespaces are ignored (spec).
 */
static int opt_meta(struct nbd_conn *c, uint32_t opt, const uint8_t *d,
		    uint32_t len)
{
	const char *ctx = "base:allocation";
	char name[NBD_NAME_MAX + 1], spec[BS_SPEC_MAX];
	bool set = opt == NBD_OPT_SET_META_CONTEXT, match = false;
	uint32_t pos, nq, nl;

	if (set)
		c->meta = false; /* replaced even if this one fails */
	if (!c->structured)
		return reply_err(c, opt, NBD_REP_ERR_INVALID,
				 "negotiate structured replies first");
	nl = len >= 8 ? nbd_get32(d) : 0;
	if (len < 8 || nl > len - 8 ||
	    !take_string(d + 4, nl, name, sizeof(name)))
		return reply_err(c, opt, NBD_REP_ERR_INVALID,
				 "malformed export name");
	pos = 4 + nl;
	nq = nbd_get32(d + pos);
	pos += 4;
	for (uint32_t i = 0; i < nq; i++) {
		if (len - pos < 4 || nbd_get32(d + pos) > len - pos - 4)
			return reply_err(c, opt, NBD_REP_ERR_INVALID,
					 "malformed query");
		uint32_t ql = nbd_get32(d + pos);
		const char *q = (const char *)d + pos + 4;
		pos += 4 + ql;
		if (ql == strlen(ctx) && !memcmp(q, ctx, ql))
			match = true;
		else if (!set && ql == 5 && !memcmp(q, "base:", 5))
			match = true;
	}
	if (pos != len)
		return reply_err(c, opt, NBD_REP_ERR_INVALID,
				 "option length does not match its queries");
	if (!set && nq == 0)
		match = true; /* no query lists everything */
	int rc = nbd_resolve(c->sc->srv, name, spec);
	if (!rc)
		rc = nbd_export_peek(c->sc->srv, spec, NULL, NULL);
	if (rc)
		return unknown_export(c, opt, name, rc);
	if (match) {
		uint8_t b[4 + 16];
		nbd_put32(b, set ? NBD_META_ID : 0);
		memcpy(b + 4, ctx, strlen(ctx));
		rc = reply(c, opt, NBD_REP_META_CONTEXT, b, 4 + strlen(ctx));
		if (rc)
			return rc;
	}
	if (set && match) {
		c->meta = true;
		strcpy(c->meta_export, spec);
	}
	return reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* One option: 0 to go on haggling, 1 when transmission begins, < 0 to
 * drop the connection. */
static int option(struct nbd_conn *c, uint32_t opt, const uint8_t *d,
		  uint32_t len)
{
	char msg[64];
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(c, d, len);
	case NBD_OPT_ABORT:
		reply(c, opt, NBD_REP_ACK, NULL, 0);
		return -ECONNRESET;
	case NBD_OPT_LIST:
		return opt_list(c, len);
	case NBD_OPT_STARTTLS:
		return reply_err(c, opt, NBD_REP_ERR_UNSUP,
				 "TLS is not supported by this server");
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(c, opt, d, len);
	case NBD_OPT_STRUCTURED_REPLY:
		if (len)
			return reply_err(c, opt, NBD_REP_ERR_INVALID,
					 "NBD_OPT_STRUCTURED_REPLY takes no "
					 "data");
		c->structured = true;
		return reply(c, opt, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(c, opt, d, len);
	default:
		snprintf(msg, sizeof(msg), "unknown option %u", opt);
		return reply_err(c, opt, NBD_REP_ERR_UNSUP, msg);
	}
}

int nbd_handshake(struct nbd_conn *c)
{
	struct srv_conn *sc = c->sc;
	uint8_t h[18];
	int rc;

	sc->deadline_ns = srv_now_ns() + NBD_HANDSHAKE_S * 1000000000ull;
	nbd_put64(h, NBD_MAGIC);
	nbd_put64(h + 8, NBD_IHAVEOPT);
	nbd_put16(h + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	if ((rc = srv_send(sc, h, 18)) || (rc = srv_recv(sc, h, 4, true)))
		return rc;
	uint32_t cflags = nbd_get32(h);
	if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		srv_clog(sc, SRV_WARN, "unknown client flags 0x%x: dropped",
			 cflags);
		return -EPROTO;
	}
	c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

	for (unsigned n = 0; n < NBD_MAX_OPTIONS; n++) {
		if ((rc = srv_recv(sc, h, 16, true)))
			return rc;
		if (nbd_get64(h) != NBD_IHAVEOPT) {
			srv_clog(sc, SRV_WARN, "bad option magic: dropped");
			return -EPROTO;
		}
		uint32_t opt = nbd_get32(h + 8), len = nbd_get32(h + 12);
		if (len > NBD_OPT_MAX) {
			if (opt == NBD_OPT_EXPORT_NAME) {
				srv_clog(sc, SRV_WARN,
					 "export name of %u bytes: dropped",
					 len);
				return -EPROTO;
			}
			if ((rc = nbd_buf_reserve(c, NBD_OPT_MAX)) ||
			    (rc = srv_discard(sc, len, c->buf, c->cap)) ||
			    (rc = reply_err(c, opt, NBD_REP_ERR_TOO_BIG,
					    "option data too long")))
				return rc;
			continue;
		}
		if ((rc = nbd_buf_reserve(c, len ? len : 1)) ||
		    (rc = srv_recv(sc, c->buf, len, false)))
			return rc;
		rc = option(c, opt, c->buf, len);
		if (rc) {
			if (rc > 0)
				sc->deadline_ns = 0;
			return rc > 0 ? 0 : rc;
		}
	}
	srv_clog(sc, SRV_WARN, "more than %u options: dropped",
		 NBD_MAX_OPTIONS);
	return -EPROTO;
}

void nbd_conn_main(struct srv_conn *sc)
{
	struct nbd_conn c = {.sc = sc};
	int rc = nbd_handshake(&c);
	if (rc == 0) {
		srv_clog(sc, SRV_INFO, "export %s: %llu bytes, %s%s%s",
			 c.exp.name, (unsigned long long)c.exp.size,
			 c.exp.ro ? "read-only" : "read-write",
			 c.structured ? ", structured replies" : "",
			 c.meta ? ", base:allocation" : "");
		srv_conn_set_export(sc, c.exp.name);
		c.stat = iostats_get(srv_iostats(sc->srv), c.exp.name);
		nbd_transmission(&c);
		srv_clog(sc, SRV_INFO,
			 "done: %llu requests, %llu bytes read, %llu written",
			 (unsigned long long)c.nreq,
			 (unsigned long long)c.rbytes,
			 (unsigned long long)c.wbytes);
	} else if (rc != -ECONNRESET && rc != -ESHUTDOWN) {
		srv_clog(sc, SRV_DEBUG, "handshake ended: %s", strerror(-rc));
	}
	nbd_export_close(sc->srv, &c.exp);
	free(c.buf);
}
