// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * main.c - the test guest's ring-3 entry: read the zero page, find the
 * virtio-blk device, run the scenarios test= names, report, exit.
 *
 * Output protocol (serial, one line each): "ok NAME", "FAIL NAME: why",
 * "flushed" once a FLUSH completed, "bench reqs_per_s=N ...", and last
 * "done passed=P failed=F".  The exit port then gets F (the VMM exits
 * with it; 99 means an exception, see kern.c).  With hold=1 the guest
 * prints "holding" and halts instead of exiting: the crash test kills
 * the VMM then.
 *
 * Command line: test=A,B,... (default info), seed= seed2= rblocks= start=
 * blocks= qd=
 * secs= qsize= bar_base= resize_to= event_idx=0|1 indirect=0|1 hold=1
 * serial=NAME tsc_khz=
 * (docs/test-guest.md).
 */
#include "test/guest/scen.h"

extern uint64_t boot_params_gpa;           /* entry.S: %rsi at entry */
extern uint8_t __bss_start[], __bss_end[]; /* guest.lds */

/* A deliberate page fault (nothing is mapped above 4 GiB): the exception
 * path must report it and exit 99. */
static void scen_fault(struct ctx *c)
{
	(void)c;
	con_printf("fault: reading 0x100000000\n");
	(void)rd32(0x100000000ull);
}

static const struct scenario scenarios[] = {
	{"info", scen_info, "print the device"},
	{"write", scen_write, "range := pattern, read back"},
	{"rewrite", scen_rewrite, "rblocks= blocks := pattern(seed2=)"},
	{"verify", scen_verify, "range reads as pattern"},
	{"zero", scen_zero, "range reads as zeros"},
	{"flush", scen_flush, "FLUSH, print flushed"},
	{"discard", scen_discard, "2nd quarter discarded"},
	{"wzeroes", scen_wzeroes, "3rd quarter and a partial block zeroed"},
	{"getid", scen_getid, "GET_ID equals serial="},
	{"ro", scen_ro, "read-only disk refuses changes"},
	{"qd", scen_qd, "qd= requests in flight"},
	{"indirect", scen_indirect, "indirect descriptor tables"},
	{"bad", scen_bad, "broken chains and rings"},
	{"bench", scen_bench, "QD reads per second"},
	{"msix", scen_msix, "one completion by MSI-X"},
	{"resize", scen_resize, "wait for the host to resize the disk"},
	{"fault", scen_fault, "page fault: exit 99"},
};

void result_ok(struct guest *g, const char *name)
{
	g->passes++;
	con_printf("ok %s\n", name);
}

void result_fail(struct guest *g, const char *name, const char *fmt, ...)
{
	va_list ap;

	g->failures++;
	con_printf("FAIL %s: ", name);
	va_start(ap, fmt);
	con_vprintf(fmt, ap);
	va_end(ap);
	con_printf("\n");
}

static NORETURN void finish(struct guest *g)
{
	con_printf("done passed=%u failed=%u\n", g->passes, g->failures);
	if (g->p.hold) {
		con_printf("holding\n");
		guest_halt();
	}
	guest_exit(g->failures > 255 ? 255 : g->failures);
}

static void run_one(struct ctx *c, const char *name, size_t len)
{
	for (unsigned i = 0; i < ARRAY_SIZE(scenarios); i++) {
		if (strlen(scenarios[i].name) == len &&
		    !strncmp(scenarios[i].name, name, len)) {
			scenarios[i].run(c);
			return;
		}
	}
	c->g->failures++;
	con_printf("FAIL test: unknown scenario \"");
	con_write(name, len);
	con_printf("\"; known:");
	for (unsigned i = 0; i < ARRAY_SIZE(scenarios); i++)
		con_printf(" %s", scenarios[i].name);
	con_printf("\n");
}

NORETURN void user_main(void);

void user_main(void)
{
	static char serial[64], tests[512];
	struct guest g;
	struct gblk b;
	struct ctx c;
	const char *t;
	int ret;

	memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
	memset(&g, 0, sizeof(g));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	con_printf("cavm test guest: ring 3 reached\n");
	ret = boot_read(&g, boot_params_gpa);
	boot_print(&g);
	if (ret) {
		result_fail(&g, "boot",
			    "no free RAM after the image in the "
			    "e820 map");
		finish(&g);
	}
	params_read(&g, serial, sizeof(serial), tests, sizeof(tests));
	time_init(&g);

	c.g = &g;
	c.b = &b;
	c.want = BLK_F_SEG_MAX | BLK_F_RO | BLK_F_BLK_SIZE | BLK_F_FLUSH |
		 BLK_F_TOPOLOGY | BLK_F_DISCARD | BLK_F_WRITE_ZEROES;
	if (g.p.event_idx)
		c.want |= F_EVENT_IDX;
	if (g.p.indirect)
		c.want |= F_INDIRECT_DESC;
	c.sec0 = g.p.start * SPB;
	c.nsec = g.p.blocks * SPB;
	c.buf = galloc(&g, BUF_BYTES, 4096);
	c.model = galloc(&g, c.nsec ? c.nsec : 1, 8);
	if (!c.buf || !c.model) {
		result_fail(&g, "boot", "out of RAM for %lu blocks",
			    (unsigned long)g.p.blocks);
		finish(&g);
	}
	ret = gblk_init(&b, &g, c.want);
	if (ret) {
		result_fail(&g, "probe", "virtio-blk setup failed: %d", ret);
		finish(&g);
	}
	for (t = g.p.tests; *t;) {
		size_t n = 0;

		while (t[n] && t[n] != ',')
			n++;
		if (n)
			run_one(&c, t, n);
		t += n;
		if (*t == ',')
			t++;
	}
	finish(&g);
}
