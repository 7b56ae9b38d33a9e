/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk_mt.c - disk reads and writes cut in two, so that a server can run
 * the costly half of each on its own threads (blkstore.h, "I/O split
 * across threads").
 *
 * The one idea: what costs is per chunk (a read's pread, decompression
 * and checksum; a write's SHA-256 and compression), and the chunk store
 * lets any thread do exactly that (cas_get, cas_prepare).  What must stay
 * on the store's one thread is cheap: a map lookup per block, a put of a
 * ready record, a map update.  So:
 *
 *   bs_disk_names          store thread   px_map_lookup_range
 *   bs_disk_read_names     any thread     cas_get per block
 *   bs_disk_prepare        any thread     cas_prepare per whole block
 *   bs_disk_write_prepared store thread   cas_put_prepared + set_block,
 *                                         partial blocks as bs_disk_write
 *
 * The any-thread functions read only d->s->c, fixed while d is open.
 * Together they do what bs_disk_read / bs_disk_write do, with the same
 * results, reference counts and dirty bound; import.c's apply() is the
 * model of the write half.
 *
 * Staleness: a name from bs_disk_names is a snapshot of the map.  Until
 * the caller reads it, a write may replace the block and drop the old
 * chunk's last reference, and a gc may then free or move it.  cas_get
 * checks every record against the name asked for (and its checksum), so
 * such a read fails (-ENOENT, -EIO) rather than return another chunk's
 * bytes; the caller looks the names up again.  A chunk that is merely
 * unreferenced stays readable until the next gc.
 *
 * Two helpers of the any-thread halves live here too:
 *  - the chunk cache (bs_chunk_cache): chunk contents by name, so a hot
 *    chunk costs a copy instead of a pread, a checksum and a zstd
 *    decompression (the larger part of a 4 KiB read).  Content-addressed,
 *    it needs no invalidation: a name's content never changes, whatever
 *    happens to the disks, gc or a rollback; an entry is filled only from
 *    a checked cas_get or from the very bytes a name was computed from.
 *  - a compressibility estimate for writes (looks_incompressible): data
 *    that will not compress is stored without trying zstd, which costs
 *    as much failing as succeeding.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "blkstore/bs_int.h"

/* ---- the chunk cache ---- */

#define CC_SHARDS 16u
#define CC_NIL (-1)

struct cc_ent {
	cas_name name;
	int32_t next; /* hash chain */
	uint8_t valid;
	uint8_t used; /* CLOCK's second chance */
};

struct cc_shard {
	pthread_mutex_t mu;
	uint32_t n, hand, mask, held;
	int32_t *bucket;
	struct cc_ent *e;
	uint8_t *data; /* n chunks; pages are touched as entries fill */
	uint64_t hits, misses;
} __attribute__((aligned(64)));

struct bs_chunk_cache {
	struct cc_shard shard[CC_SHARDS];
};

/* Names are SHA-256 values: any of their bytes are uniform. */
static struct cc_shard *cc_shard_of(bs_chunk_cache *cc, const cas_name *n)
{
	return &cc->shard[n->b[0] % CC_SHARDS];
}

static uint32_t cc_bucket(const struct cc_shard *sh, const cas_name *n)
{
	uint32_t h;
	memcpy(&h, n->b + 4, sizeof(h));
	return h & sh->mask;
}

int bs_chunk_cache_create(uint64_t bytes, bs_chunk_cache **out)
{
	uint64_t per = bytes / CAS_CHUNK_SIZE / CC_SHARDS;
	*out = NULL;
	if (per == 0 || per > INT32_MAX / 4)
		return -EINVAL;
	void *mem; /* aligned as its shards ask */
	if (posix_memalign(&mem, 64, sizeof(bs_chunk_cache)))
		return -ENOMEM;
	bs_chunk_cache *cc = memset(mem, 0, sizeof(bs_chunk_cache));
	for (unsigned i = 0; i < CC_SHARDS; i++) {
		struct cc_shard *sh = &cc->shard[i];
		uint32_t nb = 1;
		while (nb < per)
			nb <<= 1;
		sh->n = (uint32_t)per;
		sh->mask = nb - 1;
		pthread_mutex_init(&sh->mu, NULL);
		sh->bucket = malloc(nb * sizeof(*sh->bucket));
		sh->e = calloc(per, sizeof(*sh->e));
		sh->data = malloc(per * CAS_CHUNK_SIZE);
		if (!sh->bucket || !sh->e || !sh->data) {
			bs_chunk_cache_destroy(cc);
			return -ENOMEM;
		}
		for (uint32_t b = 0; b < nb; b++)
			sh->bucket[b] = CC_NIL;
	}
	*out = cc;
	return 0;
}

void bs_chunk_cache_destroy(bs_chunk_cache *cc)
{
	if (!cc)
		return;
	for (unsigned i = 0; i < CC_SHARDS; i++) {
		struct cc_shard *sh = &cc->shard[i];
		if (sh->mask || sh->n)
			pthread_mutex_destroy(&sh->mu);
		free(sh->bucket);
		free(sh->e);
		free(sh->data);
	}
	free(cc);
}

void bs_chunk_cache_stats(bs_chunk_cache *cc, struct bs_chunk_cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; cc && i < CC_SHARDS; i++) {
		struct cc_shard *sh = &cc->shard[i];
		pthread_mutex_lock(&sh->mu);
		st->hits += sh->hits;
		st->misses += sh->misses;
		st->entries += sh->held;
		st->capacity += sh->n;
		pthread_mutex_unlock(&sh->mu);
	}
}

static int32_t cc_find(struct cc_shard *sh, const cas_name *n)
{
	for (int32_t i = sh->bucket[cc_bucket(sh, n)]; i != CC_NIL;
	     i = sh->e[i].next)
		if (!memcmp(sh->e[i].name.b, n->b, CAS_NAME_SIZE))
			return i;
	return CC_NIL;
}

static bool cc_get(bs_chunk_cache *cc, const cas_name *n, uint8_t *out)
{
	struct cc_shard *sh = cc_shard_of(cc, n);
	pthread_mutex_lock(&sh->mu);
	int32_t i = cc_find(sh, n);
	if (i != CC_NIL) {
		memcpy(out, sh->data + (size_t)i * CAS_CHUNK_SIZE,
		       CAS_CHUNK_SIZE);
		sh->e[i].used = 1;
		sh->hits++;
	} else {
		sh->misses++;
	}
	pthread_mutex_unlock(&sh->mu);
	return i != CC_NIL;
}

static void cc_put(bs_chunk_cache *cc, const cas_name *n, const uint8_t *data)
{
	struct cc_shard *sh = cc_shard_of(cc, n);
	pthread_mutex_lock(&sh->mu);
	if (cc_find(sh, n) != CC_NIL) {
		pthread_mutex_unlock(&sh->mu);
		return; /* another thread was quicker */
	}
	while (sh->e[sh->hand].valid && sh->e[sh->hand].used) {
		sh->e[sh->hand].used = 0;
		sh->hand = (sh->hand + 1) % sh->n;
	}
	int32_t v = (int32_t)sh->hand;
	struct cc_ent *e = &sh->e[v];
	sh->hand = (sh->hand + 1) % sh->n;
	if (e->valid) { /* unlink the victim */
		int32_t *p = &sh->bucket[cc_bucket(sh, &e->name)];
		while (*p != v)
			p = &sh->e[*p].next;
		*p = e->next;
	} else {
		sh->held++;
	}
	e->name = *n;
	e->valid = 1;
	e->used = 0;
	memcpy(sh->data + (size_t)v * CAS_CHUNK_SIZE, data, CAS_CHUNK_SIZE);
	uint32_t b = cc_bucket(sh, n);
	e->next = sh->bucket[b];
	sh->bucket[b] = v;
	pthread_mutex_unlock(&sh->mu);
}

/* One chunk, through the cache if there is one. */
static int get_chunk(cas *c, bs_chunk_cache *cc, const cas_name *n,
		     uint8_t *out)
{
	if (cc && cc_get(cc, n, out))
		return 0;
	int rc = cas_get(c, n, out, 0);
	if (!rc && cc)
		cc_put(cc, n, out);
	return rc;
}

/* ---- compressibility ---- */

/*
 * Would zstd save anything worth storing on this block?  The store keeps
 * a compressed record only if it saves 128 bytes (3%), and zstd spends
 * about as long failing on data that will not compress (media, archives,
 * encrypted or random bytes) as it spends succeeding.  The estimate, in
 * the spirit of btrfs's compression heuristic: the collision entropy
 * H2 = -log2(sum p^2) of a sample of 1 KiB (16 bytes of every 64).  H2 is
 * at most the Shannon entropy that bounds what coding bytes one by one
 * can save: above 7.5 bits a byte that is 6%, about a Huffman table and
 * the 3% the store asks for.  Uniform bytes sample at 7.68 (2 standard
 * deviations above 7.5); text and code at 3 to 6.5.  What is missed is a
 * block of high-entropy bytes that repeats itself within 4 KiB: stored
 * uncompressed (space, never data; 0.03% of the bytes of a sample of
 * this machine's files).
 */
#define SAMPLE_RUN 16u
#define SAMPLE_STEP 64u
#define SAMPLES (CAS_CHUNK_SIZE / SAMPLE_STEP * SAMPLE_RUN)
#define H2_LIMIT_POW 181u /* 2^7.5: H2 > 7.5 <=> sum c^2 * 2^7.5 < N^2 */

static bool looks_incompressible(const uint8_t *p)
{
	/* Four counters per byte value: no increment waits on the last. */
	uint16_t h[4][256];
	uint64_t sq = 0;
	memset(h, 0, sizeof(h));
	for (unsigned i = 0; i < CAS_CHUNK_SIZE; i += SAMPLE_STEP)
		for (unsigned j = 0; j < SAMPLE_RUN; j += 4) {
			h[0][p[i + j]]++;
			h[1][p[i + j + 1]]++;
			h[2][p[i + j + 2]]++;
			h[3][p[i + j + 3]]++;
		}
	for (unsigned b = 0; b < 256; b++) {
		uint64_t c = (uint64_t)h[0][b] + h[1][b] + h[2][b] + h[3][b];
		sq += c * c;
	}
	return sq * H2_LIMIT_POW < (uint64_t)SAMPLES * SAMPLES;
}

/* As disk.c's check_range. */
static int check_range(bs_disk *d, uint64_t len, uint64_t off)
{
	if (!d->m)
		return BS_ENODISK; /* its creation was rolled back */
	if (off > d->size || len > d->size - off)
		return BS_ERANGE;
	return 0;
}

int bs_disk_names(bs_disk *d, uint64_t off, uint64_t len, cas_name *names)
{
	int rc = check_range(d, len, off);
	if (rc || len == 0)
		return rc;
	return px_map_lookup_range(d->m, off / BS_BLOCK_SIZE,
				   bs_span_blocks(off, len), names);
}

int bs_disk_read_names(bs_disk *d, const cas_name *names, void *buf,
		       uint64_t len, uint64_t off, bs_chunk_cache *cc)
{
	cas *c = d->s->c;
	uint8_t tmp[BS_BLOCK_SIZE];
	uint8_t *out = buf;
	int rc = 0;
	for (uint64_t i = 0; len && !rc; i++) {
		uint32_t in = (uint32_t)(off % BS_BLOCK_SIZE);
		uint32_t take = BS_BLOCK_SIZE - in;
		if (take > len)
			take = (uint32_t)len;
		if (cas_name_is_hole(&names[i]))
			memset(out, 0, take);
		else if (take == BS_BLOCK_SIZE)
			rc = get_chunk(c, cc, &names[i], out);
		else if (!(rc = get_chunk(c, cc, &names[i], tmp)))
			memcpy(out, tmp + in, take);
		out += take;
		off += take;
		len -= take;
	}
	return rc;
}

int bs_disk_prepare(bs_disk *d, const void *buf, uint64_t len, uint64_t off,
		    struct cas_prepared *p, bs_chunk_cache *cc)
{
	cas *c = d->s->c;
	uint64_t head = (BS_BLOCK_SIZE - off % BS_BLOCK_SIZE) % BS_BLOCK_SIZE;
	uint64_t n = bs_whole_blocks(off, len);
	const uint8_t *data = (const uint8_t *)buf + head;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *b = data + i * BS_BLOCK_SIZE;
		unsigned flags =
			looks_incompressible(b) ? CAS_PUT_NOCOMPRESS : 0;
		int rc = cas_prepare(c, b, flags, &p[i]);
		if (rc)
			return rc;
		/* Its name's content: right in the cache even if the
		 * write never happens. */
		if (cc && !cas_name_is_hole(&p[i].name))
			cc_put(cc, &p[i].name, b);
	}
	return 0;
}

int bs_disk_write_prepared(bs_disk *d, const void *buf, uint64_t len,
			   uint64_t off, const struct cas_prepared *p)
{
	const uint8_t *data = buf;
	uint64_t head = (BS_BLOCK_SIZE - off % BS_BLOCK_SIZE) % BS_BLOCK_SIZE;
	uint64_t n = bs_whole_blocks(off, len);
	uint64_t blk = (off + head) / BS_BLOCK_SIZE;
	int rc = 0;

	if (d->ro)
		return BS_EROFS;
	if ((rc = check_range(d, len, off)))
		return rc;
	if (n == 0) /* within one block, or across one boundary */
		return bs_disk_write(d, buf, len, off);
	if (head)
		rc = bs_disk_write(d, data, head, off);
	for (uint64_t i = 0; i < n && !rc; i++) {
		cas_name name = p[i].name;
		const uint8_t *b = data + head + i * BS_BLOCK_SIZE;
		if (!cas_name_is_hole(&name)) {
			rc = cas_put_prepared(d->s->c, &p[i], b);
			if (rc < 0)
				break;
		}
		rc = bs_disk_set_block(d, blk + i, &name);
	}
	uint64_t done = head + n * BS_BLOCK_SIZE;
	if (!rc && done < len)
		rc = bs_disk_write(d, data + done, len - done, off + done);
	return rc ? rc : bs_disk_bound_dirty(d);
}
