/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * decompress.c - a bzImage payload decompressed on the host: gzip (zlib),
 * xz (liblzma), zstd (libzstd) or lz4's legacy frame (liblz4), chosen by
 * the payload's magic bytes, as the kernel's own decompressor does.
 *
 * The one idea: the kernel build appends the uncompressed size as 4
 * little-endian bytes after every compressed payload (gzip's trailer has
 * it too), so the output buffer is sized once from that hint; it only
 * grows if the hint was wrong, and never past CAVM_DECOMP_MAX.
 *
 * Invariants: the input is untrusted; every decoder is bounded by the
 * input length and the output capacity; a truncated or corrupt payload is
 * -EINVAL (-E2BIG past the size cap), never a partial success.
 */
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "common/endian.h"
#include "hypervisor/vm.h"

#define CAVM_DECOMP_MAX (1024ull << 20)
#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

struct outbuf {
	uint8_t *p;
	size_t len, cap;
};

static int out_grow(struct outbuf *o, size_t need)
{
	size_t cap = o->cap ? o->cap : 1u << 20;
	uint8_t *p;

	if (need <= o->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > CAVM_DECOMP_MAX) {
		if (need > CAVM_DECOMP_MAX)
			return -E2BIG;
		cap = CAVM_DECOMP_MAX;
	}
	p = realloc(o->p, cap);
	if (!p)
		return -ENOMEM;
	o->p = p;
	o->cap = cap;
	return 0;
}

/* Make room for at least 'more' bytes after len. */
static int out_room(struct outbuf *o, size_t more)
{
	return out_grow(o, o->len + more);
}

static int gunzip(const uint8_t *in, size_t len, struct outbuf *o)
{
	z_stream z;
	int zr, ret = 0;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
	do {
		ret = out_room(o, 1u << 20);
		if (ret < 0)
			break;
		z.next_out = o->p + o->len;
		z.avail_out =
			(uInt)(o->cap - o->len > UINT32_MAX ? UINT32_MAX
							    : o->cap - o->len);
		zr = inflate(&z, Z_NO_FLUSH);
		o->len = (size_t)(z.next_out - o->p);
		if (zr != Z_OK && zr != Z_STREAM_END)
			ret = -EINVAL;
		else if (zr == Z_OK && z.avail_in == 0 && z.avail_out != 0)
			ret = -EINVAL; /* truncated */
		if (zr == Z_STREAM_END)
			break;
	} while (ret == 0);
	inflateEnd(&z);
	return ret;
}

static int unxz(const uint8_t *in, size_t len, struct outbuf *o)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_ret lr;
	int ret = 0;

	if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK)
		return -ENOMEM;
	s.next_in = in;
	s.avail_in = len;
	for (;;) {
		ret = out_room(o, 1u << 20);
		if (ret < 0)
			break;
		s.next_out = o->p + o->len;
		s.avail_out = o->cap - o->len;
		lr = lzma_code(&s, LZMA_FINISH);
		o->len = (size_t)(s.next_out - o->p);
		if (lr == LZMA_STREAM_END)
			break;
		if (lr != LZMA_OK || (s.avail_in == 0 && s.avail_out != 0)) {
			ret = -EINVAL;
			break;
		}
	}
	lzma_end(&s);
	return ret;
}

static int unzstd(const uint8_t *in, size_t len, struct outbuf *o)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	ZSTD_inBuffer ib = {in, len, 0};
	size_t zr;
	int ret = 0;

	if (!d)
		return -ENOMEM;
	ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 31);
	for (;;) {
		ZSTD_outBuffer ob;

		ret = out_room(o, 1u << 20);
		if (ret < 0)
			break;
		ob = (ZSTD_outBuffer){o->p, o->cap, o->len};
		zr = ZSTD_decompressStream(d, &ob, &ib);
		o->len = ob.pos;
		if (ZSTD_isError(zr)) {
			ret = -EINVAL;
			break;
		}
		if (zr == 0)
			break; /* frame complete */
		if (ib.pos == ib.size && ob.pos < ob.size) {
			ret = -EINVAL; /* truncated */
			break;
		}
	}
	ZSTD_freeDCtx(d);
	return ret;
}

/* lz4 -l: magic, then blocks of (le32 compressed size, data), each up to
 * 8 MiB decompressed; a repeated magic starts another stream.  The size
 * the kernel appends ends it (too big for what remains). */
static int unlz4(const uint8_t *in, size_t len, struct outbuf *o)
{
	size_t pos = 4;
	int ret;

	while (len - pos >= 4) {
		uint32_t csz = le32_get(in + pos);
		int n;

		if (csz == LZ4_LEGACY_MAGIC) {
			pos += 4;
			continue;
		}
		if (csz == 0 || csz > len - pos - 4 ||
		    csz > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK)) {
			if (o->len > 0)
				break;
			return -EINVAL;
		}
		pos += 4;
		ret = out_room(o, LZ4_LEGACY_BLOCK);
		if (ret < 0)
			return ret;
		n = LZ4_decompress_safe((const char *)in + pos,
					(char *)o->p + o->len, (int)csz,
					(int)LZ4_LEGACY_BLOCK);
		if (n < 0)
			return -EINVAL;
		o->len += (size_t)n;
		pos += csz;
	}
	return o->len > 0 ? 0 : -EINVAL;
}

int cavm_decompress(const uint8_t *in, size_t len, uint8_t **out,
		    size_t *outlen, const char **format)
{
	static const struct {
		const char *name;
		const char *magic;
		size_t mlen;
		int (*fn)(const uint8_t *, size_t, struct outbuf *);
	} fmts[] = {
		{"gzip", "\x1f\x8b", 2, gunzip},
		{"xz",
		 "\xfd"
		 "7zXZ\0",
		 6, unxz},
		{"zstd", "\x28\xb5\x2f\xfd", 4, unzstd},
		{"lz4", "\x02\x21\x4c\x18", 4, unlz4},
		{"bzip2", "BZh", 3, NULL},
		{"lzma", "\x5d\x00\x00", 3, NULL},
		{"lzo", "\x89LZO", 4, NULL},
	};
	struct outbuf o = {0};
	size_t hint;
	int ret;

	*out = NULL;
	*outlen = 0;
	*format = "unknown";
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		if (len < fmts[i].mlen + 4 ||
		    memcmp(in, fmts[i].magic, fmts[i].mlen) != 0)
			continue;
		*format = fmts[i].name;
		if (!fmts[i].fn)
			return -ENOTSUP; /* Debian builds none of these */
		/* the appended size, as a first guess */
		hint = (size_t)le32_get(in + len - 4) + 1;
		ret = out_grow(&o, hint < CAVM_DECOMP_MAX ? hint : 1u << 20);
		if (ret == 0)
			ret = fmts[i].fn(in, len, &o);
		if (ret < 0) {
			free(o.p);
			return ret;
		}
		*out = o.p;
		*outlen = o.len;
		return 0;
	}
	return -ENOTSUP;
}
