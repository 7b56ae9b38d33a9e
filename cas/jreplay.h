/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * jreplay.h - between rebuild.c and jreplay.c: what the segment scan
 * records about catalogue records and damaged bytes, and the replay that
 * turns it into side tables.  Not a public header.
 */
#ifndef CAVM_CAS_JREPLAY_H
#define CAVM_CAS_JREPLAY_H

#include "cas/cas_int.h"

#define JR_MAX_TABLE_NAME 40 /* "kv." + 32 + NUL, rounded */

struct jr_span {
	uint64_t a, b; /* [a, b): bytes that hold no good record */
};

struct jr_seg {
	uint32_t id;
	uint64_t size;
	bool hdr_ok;
	uint8_t hdr_id[JR_ID_SIZE];
	struct jr_span *bad;
	size_t nbad, capbad;
};

struct jr_item {
	struct jr_rec r; /* points into copy */
	uint8_t *copy;
	uint32_t seg, off;
};

struct jr_scan {
	struct jr_seg *segs;
	size_t nsegs, capsegs;
	struct jr_item *items;
	size_t nitems, capitems;
};

/* A new segment's scan starts (buf holds the whole file). */
int jr_scan_seg(struct jr_scan *js, uint32_t id, const uint8_t *buf,
		uint64_t size);
/* Bytes [a, b) of the current segment hold no good record. */
int jr_scan_bad(struct jr_scan *js, uint64_t a, uint64_t b);
/* A catalogue record at off?  Kept, and *padded set (0 if none). */
int jr_scan_record(struct jr_scan *js, const uint8_t *rec, size_t avail,
		   uint64_t off, uint32_t *padded);
/* Write the replayed side tables into txn.  old_id / old_last: what
 * the old index (if it opened) says was committed, up to which commits
 * are believed whatever their regions hold now (damage after the fact,
 * not a crash).  *have_id / id_out: the
 * store id the segments carry; *kvseq / *kvlast: the journal's numbers
 * for the new index.  info->catalogue is set to CAS_CAT_JOURNAL when
 * there was a catalogue record of this store. */
int jr_replay(struct jr_scan *js, MDB_txn *txn, struct cas_rebuild_info *info,
	      const uint8_t *old_id, uint64_t old_last, uint8_t *id_out,
	      bool *have_id, uint64_t *kvseq, uint64_t *kvlast);
void jr_scan_free(struct jr_scan *js);

#endif
