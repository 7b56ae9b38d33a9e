/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * parallax.h - block maps: a disk's content as a radix Merkle tree of
 * chunk names (after Parallax, Meyer et al., EuroSys 2008), with
 * reference counts after Rodeh ("B-trees, Shadowing, and Clones").
 *
 * A map gives each 4 KiB block of a disk the cas name of its content.
 * Its nodes are chunks too: a node is CAS_CHUNK_SIZE bytes, exactly
 * PX_NODE_SLOTS names of 32 bytes, stored with CAS_PUT_NODE.  Level-1
 * nodes (leaves) name data chunks; a level-L node names level-(L-1)
 * nodes and covers 128^L blocks.  A map of nblocks blocks has height
 * px_height(nblocks), the smallest h >= 1 with 128^h >= nblocks, and is
 * named by its root: equal content means equal root (Merkle).  CAS_HOLE
 * names an all-zero block and an all-hole subtree at any level, so a new
 * disk of any size is CAS_HOLE; blocks past the end are always holes.
 * docs/parallax.md has the full format and protocol.
 *
 * Reference counts (the whole protocol; every count is a cas count):
 *  - A chunk's count is the number of its holders: each stored node
 *    holds one reference per non-hole slot (once per node chunk, however
 *    many maps share it); the layer above holds one per root it keeps
 *    (a disk's committed root, each snapshot); an open map holds
 *    references for its uncommitted state.
 *  - px_map_open() takes over the caller's one reference on 'root'.  That
 *    reference is the disk's: px_map_commit() moves it to the new root it
 *    returns, px_map_close() hands it back (on the last committed root).
 *  - px_map_update() takes over the caller's reference on the new name
 *    (from cas_put).  A name written since the last commit is dropped as
 *    soon as it is overwritten; a name the committed tree holds is only
 *    dropped at commit (below).
 *  - Until commit an open map never lowers a count that existed when the
 *    session began (the last open or commit): it only adds references it
 *    owns and drops those.  So a snapshot (cas_ref of the committed root)
 *    is safe at any time, and px_map_discard()/px_map_close() restore
 *    every count exactly.
 *  - Commit, top-down: each changed node N, whose parent's slot now holds
 *    its own reference on N, is copied on write: if N's count is 1 the
 *    copy steals N's child references (N drops to 0 without recursing; the
 *    old children of changed slots are released); if it is more than 1,
 *    N is shared and the copy takes one reference per unchanged non-hole
 *    child, then drops its reference on N.  Rewriting a block costs
 *    O(height) count updates; the first write after a snapshot one per
 *    child along the path.
 *  - Commit, bottom-up: each new node is cas_put(CAS_PUT_NODE); on 1 the
 *    stored node keeps the copy's child references, on 0 (it already
 *    existed) they are released.  The put's reference goes to the parent's
 *    slot, or for the root to the caller.
 *  - px_root_release() drops one reference on a root; a node reaching 0
 *    is read and its children released in turn; data chunks never
 *    recurse.  Snapshot and clone are the caller's cas_ref(root): O(1).
 *
 * Threads: everything that changes a map or a count (update, resize,
 * commit, discard, close, px_root_release) runs on the cas writer thread,
 * one call at a time per map.  Lookups only read: any number of threads
 * may look up in one map at once, but not while it is being changed.
 * px_diff only reads.  A px_cache is shared by any number of maps and
 * threads (it locks itself).
 *
 * Errors: 0 (or a count) on success, a negative errno, a CAS_E* code from
 * the store, or PX_EBROKEN.  px_strerror() turns any of them into words.
 */
#ifndef CAVM_PARALLAX_H
#define CAVM_PARALLAX_H

#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"

#define PX_NODE_SLOTS 128u /* CAS_CHUNK_SIZE / CAS_NAME_SIZE */
#define PX_SLOT_BITS 7u
/* Byte offsets stay within 64 bits: 2^52 blocks (16 EiB), height 8.  That
 * is arithmetic, not a format cap: the format has no maximum. */
#define PX_MAX_BLOCKS (1ull << 52)
#define PX_MAX_HEIGHT 8u

/* A commit failed half way (the store refused a put or a count): the map
 * can only be closed, and the count changes it left pending in the store
 * must be given up with cas_rollback(), never committed. */
#define PX_EBROKEN (-30700)

typedef struct px_map px_map;
typedef struct px_cache px_cache;

/* Height of a map of nblocks blocks (1 for 0 or 1..128 blocks). */
unsigned px_height(uint64_t nblocks);

/*
 * Node cache: name -> node content, shared by the maps of one store.
 * Nodes are immutable, so an entry never goes stale.  Bounded to
 * max_nodes entries (4 KiB each), evicted by CLOCK.  Every call that
 * takes a cache also accepts NULL: then every node is read from the store.
 */
struct px_cache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t nodes; /* entries held now */
};
int px_cache_create(size_t max_nodes, px_cache **out);
void px_cache_destroy(px_cache *pc);
void px_cache_stats(px_cache *pc, struct px_cache_stats *st);

/* Counters of one map since open (or px_map_stats_reset). */
struct px_map_stats {
	uint64_t refs_taken;    /* cas_ref calls */
	uint64_t refs_dropped;  /* cas_unref calls */
	uint64_t node_reads;    /* node fetches, from the cache or the store */
	uint64_t nodes_stored;  /* node puts that stored a new node */
	uint64_t nodes_deduped; /* node puts that found the node stored */
	uint64_t cow_steals;    /* copies that took over an exclusive node */
	uint64_t cow_shares;    /* copies of a shared node */
	uint64_t dirty_nodes;   /* nodes changed in memory, not committed */
};

/*
 * Open a map of nblocks blocks on 'root' (CAS_HOLE for a new disk),
 * taking over the caller's reference on it.  The cache may be NULL.
 * -ENOENT if root is not stored, -EFBIG past PX_MAX_BLOCKS.
 */
int px_map_open(cas *c, px_cache *pc, const cas_name *root, uint64_t nblocks,
		px_map **out);

/* Discard uncommitted changes (as px_map_discard) and free the map.  The
 * reference on the last committed root goes back to the caller. */
int px_map_close(px_map *m);

/* Forget every change since the last commit (or open), restoring every
 * count, size and name to what it was then. */
int px_map_discard(px_map *m);

/* The name of one block (CAS_HOLE for a hole); -ERANGE past the end. */
int px_map_lookup(px_map *m, uint64_t block, cas_name *out);

/* The names of 'count' consecutive blocks from 'first' into out[]. */
int px_map_lookup_range(px_map *m, uint64_t first, uint64_t count,
			cas_name *out);

/*
 * Make 'block' name 'name', taking over the caller's reference on it
 * (none for CAS_HOLE).  On error the caller keeps it.  -ERANGE past the
 * end.  Changes live in memory until px_map_commit().
 */
int px_map_update(px_map *m, uint64_t block, const cas_name *name);

/* Grow or shrink to nblocks.  Growing adds levels above the root (the old
 * root becomes child 0); shrinking drops the blocks past the new end and
 * the levels no longer needed.  Uncommitted like any update. */
int px_map_resize(px_map *m, uint64_t nblocks);

/*
 * Write the changed nodes bottom-up and return the new root in *root,
 * holding the disk's one reference (the old root's has been moved or
 * dropped).  Nothing changed: the same root, no store calls.  The map
 * stays open on the new root.  On failure PX_EBROKEN or the store's error;
 * the map is then broken (only close works).
 */
int px_map_commit(px_map *m, cas_name *root);

/* The last committed root and size (not counting uncommitted changes). */
void px_map_root(const px_map *m, cas_name *root, uint64_t *nblocks);
/* The current size, uncommitted resizes included. */
uint64_t px_map_nblocks(const px_map *m);
/* 1 when there are uncommitted changes (updates or resizes). */
int px_map_dirty(const px_map *m);
void px_map_stats(const px_map *m, struct px_map_stats *st);
void px_map_stats_reset(px_map *m);

/*
 * Drop one reference on a root of a map of nblocks blocks; nodes that
 * reach zero are read and their children released in turn.  This is how
 * a disk, a snapshot or a clone is deleted.
 */
int px_root_release(cas *c, px_cache *pc, const cas_name *root,
		    uint64_t nblocks);

/*
 * The blocks whose names differ between two committed roots (a block past
 * a map's end counts as a hole), as maximal ranges in increasing order:
 * fn(arg, first, count).  Equal subtrees are skipped by name, so the cost
 * follows what changed, not the disk's size.  Maps may differ in size and
 * height.  A non-zero return from fn stops the walk and is returned.
 * st (may be NULL) gets the counts.
 */
typedef int (*px_diff_fn)(void *arg, uint64_t first, uint64_t count);
struct px_diff_stats {
	uint64_t node_reads;
	uint64_t ranges;
	uint64_t blocks;
};
int px_diff(cas *c, px_cache *pc, const cas_name *a, uint64_t nblocks_a,
	    const cas_name *b, uint64_t nblocks_b, px_diff_fn fn, void *arg,
	    struct px_diff_stats *st);

const char *px_strerror(int err);

#endif
