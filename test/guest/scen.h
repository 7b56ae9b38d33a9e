/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * scen.h - what the test scenarios share: the device, a data buffer, and
 * a model of the scenario range (what each of its sectors must read as).
 *
 * The range is blocks= 4 KiB blocks from start= (parameters on the
 * command line).  test/integration/guest_pattern.py knows the same
 * scenarios' effects on it, to build the image `blkctl export` must equal.
 */
#ifndef CAVM_TEST_GUEST_SCEN_H
#define CAVM_TEST_GUEST_SCEN_H

#include "test/guest/blk.h"

#define SECTOR 512u
#define BLOCK 4096u
#define SPB 8u /* sectors per block */

enum model_state {
	M_UNKNOWN = 0,
	M_PATTERN,
	M_ZERO,
	M_PATTERN2
};

struct ctx {
	struct guest *g;
	struct gblk *b;
	uint8_t *buf;        /* scratch for data, BUF_BYTES */
	uint8_t *model;      /* per sector of the range */
	uint64_t sec0, nsec; /* the range, in sectors */
	uint64_t want;       /* features the guest asks for */
	bool flushed;        /* a FLUSH completed since the last write */
};

#define BUF_BYTES (1024u * 1024u)

struct scenario {
	const char *name;
	void (*run)(struct ctx *c);
	const char *what;
};

/* scen_io.c */
void scen_info(struct ctx *c);
void scen_write(struct ctx *c);
void scen_verify(struct ctx *c);
void scen_zero(struct ctx *c);
void scen_flush(struct ctx *c);
void scen_discard(struct ctx *c);
void scen_wzeroes(struct ctx *c);
void scen_getid(struct ctx *c);
void scen_ro(struct ctx *c);
void scen_rewrite(struct ctx *c);
/* scen_queue.c */
void scen_qd(struct ctx *c);
void scen_indirect(struct ctx *c);
void scen_bench(struct ctx *c);
void scen_msix(struct ctx *c);
/* scen_cfg.c */
void scen_resize(struct ctx *c);
/* scen_bad.c */
void scen_bad(struct ctx *c);

/* Shared by the scenarios (scen_io.c) */
/* Is the range set up and inside the disk?  Reports the failure itself. */
bool range_ok(struct ctx *c, const char *name);
/* Read [sec, sec+n) and check it against the model: -1, or the first bad
 * sector (absolute), with *why set; -2 for an I/O error. */
int64_t range_check(struct ctx *c, uint64_t sec, uint64_t n, int *status);
void model_set(struct ctx *c, uint64_t sec, uint64_t n, enum model_state s);
/* scen_queue.c: interrupts counted by the MSI-X entry (entry.S), and a
 * wait for the count to pass 'before': microseconds waited, or -1 after
 * ms milliseconds. */
extern volatile uint64_t irq_count;
int64_t irq_wait(struct ctx *c, uint64_t before, uint64_t ms);

#endif
