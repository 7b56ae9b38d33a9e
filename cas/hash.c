/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hash.c - chunk names (SHA-256 through OpenSSL EVP) and record checksums
 * (CRC32C).
 *
 * The one idea: a name is a pure function of content, computed with one
 * EVP context per thread that is reset, never reallocated, per chunk (an
 * EVP_MD fetch per call costs more than hashing 4 KiB with SHA-NI).
 * Map nodes hash in their own domain (a 0x01 byte first) so that no data
 * block can ever carry a node's name.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>

#include "cas/cas_int.h"

const cas_name CAS_HOLE = {{0}};

static pthread_once_t hash_once = PTHREAD_ONCE_INIT;
static pthread_key_t hash_key;
static EVP_MD *sha256_md; /* fetched once, immutable afterwards */

static void hash_ctx_free(void *p)
{
	EVP_MD_CTX_free(p);
}

static void hash_init_once(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256_md)
		abort(); /* OpenSSL without SHA-256: nothing can work */
	pthread_key_create(&hash_key, hash_ctx_free);
}

static EVP_MD_CTX *hash_ctx(void)
{
	pthread_once(&hash_once, hash_init_once);
	EVP_MD_CTX *ctx = pthread_getspecific(hash_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		if (!ctx || !EVP_DigestInit_ex2(ctx, sha256_md, NULL))
			abort();
		pthread_setspecific(hash_key, ctx);
	}
	return ctx;
}

/* Zero iff the first word is zero and every byte equals the one 8 bytes
 * before it: memcmp is vectorised and stops at the first difference, so
 * a data block (non-zero early) costs a few nanoseconds. */
bool cas_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t w;
	if (len < 8) {
		for (size_t i = 0; i < len; i++)
			if (p[i])
				return false;
		return true;
	}
	memcpy(&w, p, 8);
	return w == 0 && memcmp(p, p + 8, len - 8) == 0;
}

static void hash_domain(const void *data, const uint8_t *prefix, size_t plen,
			cas_name *out)
{
	EVP_MD_CTX *ctx = hash_ctx();
	unsigned int len = 0;

	if (cas_is_zero(data, CAS_CHUNK_SIZE)) {
		*out = CAS_HOLE;
		return;
	}
	if (!EVP_DigestInit_ex2(ctx, NULL, NULL) ||
	    (plen && !EVP_DigestUpdate(ctx, prefix, plen)) ||
	    !EVP_DigestUpdate(ctx, data, CAS_CHUNK_SIZE) ||
	    !EVP_DigestFinal_ex(ctx, out->b, &len) || len != CAS_NAME_SIZE)
		abort();
}

void cas_hash(const void *data, cas_name *out)
{
	hash_domain(data, NULL, 0, out);
}

void cas_hash_node(const void *data, cas_name *out)
{
	static const uint8_t node_domain = 0x01;
	hash_domain(data, &node_domain, 1, out);
}

void cas_name_format(const cas_name *n, char out[2 * CAS_NAME_SIZE + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < CAS_NAME_SIZE; i++) {
		out[2 * i] = hex[n->b[i] >> 4];
		out[2 * i + 1] = hex[n->b[i] & 15];
	}
	out[2 * CAS_NAME_SIZE] = 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int cas_name_parse(const char *s, cas_name *out)
{
	cas_name n;
	if (!s)
		return -EINVAL;
	for (unsigned i = 0; i < CAS_NAME_SIZE; i++) {
		int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		n.b[i] = (uint8_t)(hi << 4 | lo);
	}
	if (s[2 * CAS_NAME_SIZE] != 0)
		return -EINVAL;
	*out = n;
	return 0;
}

/*
 * CRC32C (Castagnoli).  None of our libraries exports it, and it is the
 * checksum every storage format uses because x86 computes it in hardware
 * (SSE4.2); the table version covers other CPUs.
 */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init_once(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc_table[i] = c;
	}
#if defined(__x86_64__)
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw_run(uint32_t crc,
							      const uint8_t *p,
							      size_t len)
{
	uint64_t c = crc;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

uint32_t cas_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	pthread_once(&crc_once, crc_init_once);
	crc = ~crc;
#if defined(__x86_64__)
	if (crc_hw)
		return ~crc_hw_run(crc, p, len);
#endif
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
