/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * record.c - the bytes of a segment: its header and its chunk records, and
 * the packed location the index keeps for each record.
 *
 * The one idea: every record describes itself (magic, version, flags,
 * stored length, name, raw length, CRC32C over header and payload), so the
 * index can always be rebuilt from segments alone and a damaged record is
 * always detected before its bytes reach a caller.  Layout in
 * docs/cas-format.md.
 *
 * zstd contexts are per thread (created on first use, freed at thread exit).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <zstd.h>

#include "cas/cas_int.h"

#define REC_MIN_SAVING 128u

uint64_t loc_pack(const struct cas_loc *l)
{
	return (uint64_t)(l->len - 1u) | (uint64_t)(l->flags & 3u) << 12 |
	       (uint64_t)(l->off >> 4) << 14 | (uint64_t)l->seg << 36;
}

void loc_unpack(uint64_t v, struct cas_loc *l)
{
	l->len = (uint16_t)((v & 0xfff) + 1);
	l->flags = (uint8_t)((v >> 12) & 3);
	l->off = (uint32_t)(((v >> 14) & 0x3fffff) << 4);
	l->seg = (uint32_t)((v >> 36) & CAS_SEG_MAX_ID);
}

void seg_hdr_encode(uint8_t *hdr, uint32_t seg_id, const uint8_t *store_id)
{
	memset(hdr, 0, SEG_HDR_SIZE);
	memcpy(hdr, SEG_MAGIC, 8);
	le32_put(hdr + 8, SEG_VERSION);
	le32_put(hdr + 12, seg_id);
	le32_put(hdr + 16, CAS_CHUNK_SIZE);
	memcpy(hdr + SEG_ID_OFF, store_id, JR_ID_SIZE);
	le32_put(hdr + 60, cas_crc32c(0, hdr, 60));
}

int seg_hdr_check(const uint8_t *hdr, uint32_t seg_id)
{
	if (memcmp(hdr, SEG_MAGIC, 8) != 0 ||
	    le32_get(hdr + 60) != cas_crc32c(0, hdr, 60))
		return -EIO;
	if (le32_get(hdr + 8) != SEG_VERSION ||
	    le32_get(hdr + 16) != CAS_CHUNK_SIZE)
		return CAS_EVERSION;
	if (le32_get(hdr + 12) != seg_id)
		return -EIO;
	return 0;
}

/* ---- per-thread zstd contexts ---- */
static pthread_once_t z_once = PTHREAD_ONCE_INIT;
static pthread_key_t zc_key, zd_key;

static void zc_free(void *p)
{
	ZSTD_freeCCtx(p);
}
static void zd_free(void *p)
{
	ZSTD_freeDCtx(p);
}
static void z_init_once(void)
{
	pthread_key_create(&zc_key, zc_free);
	pthread_key_create(&zd_key, zd_free);
}

static ZSTD_CCtx *zcctx(void)
{
	pthread_once(&z_once, z_init_once);
	ZSTD_CCtx *z = pthread_getspecific(zc_key);
	if (!z) {
		z = ZSTD_createCCtx();
		pthread_setspecific(zc_key, z);
	}
	return z;
}

static ZSTD_DCtx *zdctx(void)
{
	pthread_once(&z_once, z_init_once);
	ZSTD_DCtx *z = pthread_getspecific(zd_key);
	if (!z) {
		z = ZSTD_createDCtx();
		pthread_setspecific(zd_key, z);
	}
	return z;
}

uint32_t rec_build(uint8_t *rec, const cas_name *name, const void *data,
		   int level, unsigned rec_flags, struct cas_loc *loc)
{
	uint8_t *payload = rec + REC_HDR_SIZE;
	uint32_t stored = CAS_CHUNK_SIZE;
	unsigned flags = rec_flags & REC_F_NODE;

	if (level != 0) {
		/* Keep the compressed form only if it saves at least
		 * REC_MIN_SAVING bytes (less is not worth a decompression on
		 * every read); the short capacity also makes zstd give up
		 * early on incompressible data. */
		ZSTD_CCtx *z = zcctx();
		size_t n = z ? ZSTD_compressCCtx(z, payload,
						 CAS_CHUNK_SIZE - REC_MIN_SAVING, data,
						 CAS_CHUNK_SIZE, level)
			     : 0;
		if (z && !ZSTD_isError(n) && n > 0) {
			stored = (uint32_t)n;
			flags |= REC_F_ZSTD;
		}
	}
	if (!(flags & REC_F_ZSTD))
		memcpy(payload, data, CAS_CHUNK_SIZE);

	le32_put(rec, REC_MAGIC);
	rec[4] = REC_VERSION;
	rec[5] = (uint8_t)flags;
	le16_put(rec + 6, (uint16_t)(stored == CAS_CHUNK_SIZE ? 0 : stored));
	memcpy(rec + 8, name->b, CAS_NAME_SIZE);
	le32_put(rec + 40, CAS_CHUNK_SIZE);
	uint32_t crc = cas_crc32c(0, rec, 44);
	crc = cas_crc32c(crc, payload, stored);
	le32_put(rec + 44, crc);

	uint32_t padded = rec_padded(stored);
	memset(rec + REC_HDR_SIZE + stored, 0, padded - REC_HDR_SIZE - stored);
	loc->len = (uint16_t)stored;
	loc->flags = (uint8_t)flags;
	return padded;
}

/* The stored length field is 16 bits: 0 encodes a full 4096-byte payload. */
static uint32_t rec_stored_len(const uint8_t *rec)
{
	uint16_t v = le16_get(rec + 6);
	return v ? v : CAS_CHUNK_SIZE;
}

uint32_t rec_probe(const uint8_t *rec, size_t avail, cas_name *name,
		   unsigned *flags, uint32_t *stored_len)
{
	if (avail < REC_HDR_SIZE || le32_get(rec) != REC_MAGIC ||
	    rec[4] != REC_VERSION || (rec[5] & ~3u) ||
	    le32_get(rec + 40) != CAS_CHUNK_SIZE)
		return 0;
	uint32_t stored = rec_stored_len(rec);
	if (stored > CAS_CHUNK_SIZE || REC_HDR_SIZE + stored > avail)
		return 0;
	if (!(rec[5] & REC_F_ZSTD) && stored != CAS_CHUNK_SIZE)
		return 0;
	uint32_t crc = cas_crc32c(0, rec, 44);
	crc = cas_crc32c(crc, rec + REC_HDR_SIZE, stored);
	if (crc != le32_get(rec + 44))
		return 0;
	if (name)
		memcpy(name->b, rec + 8, CAS_NAME_SIZE);
	if (flags)
		*flags = rec[5];
	if (stored_len)
		*stored_len = stored;
	return rec_padded(stored);
}

int rec_decode(const uint8_t *rec, size_t avail, const cas_name *expect,
	       uint8_t *out)
{
	cas_name name;
	unsigned flags;
	uint32_t stored;

	if (!rec_probe(rec, avail, &name, &flags, &stored) ||
	    memcmp(name.b, expect->b, CAS_NAME_SIZE) != 0)
		goto bad;
	if (flags & REC_F_ZSTD) {
		ZSTD_DCtx *z = zdctx();
		size_t n = z ? ZSTD_decompressDCtx(z, out, CAS_CHUNK_SIZE,
						   rec + REC_HDR_SIZE, stored)
			     : 0;
		if (!z || ZSTD_isError(n) || n != CAS_CHUNK_SIZE)
			goto bad;
	} else {
		memcpy(out, rec + REC_HDR_SIZE, CAS_CHUNK_SIZE);
	}
	return 0;
bad:
	memset(out, 0, CAS_CHUNK_SIZE);
	return -EIO;
}
