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
 */
#include <errno.h>
#include <string.h>

#include "blkstore/bs_int.h"

int bs_disk_names(bs_disk *d, uint64_t off, uint64_t len, cas_name *names)
{
	if (off > d->size || len > d->size - off)
		return BS_ERANGE;
	if (len == 0)
		return 0;
	return px_map_lookup_range(d->m, off / BS_BLOCK_SIZE,
				   bs_span_blocks(off, len), names);
}

int bs_disk_read_names(bs_disk *d, const cas_name *names, void *buf,
		       uint64_t len, uint64_t off)
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
			rc = cas_get(c, &names[i], out, 0);
		else if (!(rc = cas_get(c, &names[i], tmp, 0)))
			memcpy(out, tmp + in, take);
		out += take;
		off += take;
		len -= take;
	}
	return rc;
}

int bs_disk_prepare(bs_disk *d, const void *buf, uint64_t len, uint64_t off,
		    struct cas_prepared *p)
{
	cas *c = d->s->c;
	uint64_t head = (BS_BLOCK_SIZE - off % BS_BLOCK_SIZE) % BS_BLOCK_SIZE;
	uint64_t n = bs_whole_blocks(off, len);
	const uint8_t *data = (const uint8_t *)buf + head;
	for (uint64_t i = 0; i < n; i++) {
		int rc = cas_prepare(c, data + i * BS_BLOCK_SIZE, 0, &p[i]);
		if (rc)
			return rc;
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
	if (off > d->size || len > d->size - off)
		return BS_ERANGE;
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
