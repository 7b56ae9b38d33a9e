/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * main.c - the cavm program: `cavm run ...` options, then the VM built
 * in a fixed order (KVM and RAM, the kernel, core devices, PCI and disks,
 * control socket, MP table, ACPI) and run until something stops it.
 *
 *   cavm run --kernel FILE [--initrd FILE] [--cmdline S] [--mem SIZE]
 *            [--cpus N] [--disk STORE:DISK[,ro]]... [--serial stdio|FILE]
 *            [--control PATH] [--hugepages] [-v]
 *
 * The one idea: every argument is checked before anything is created, and
 * every setup failure stops with one line naming what failed (the kernel
 * is loaded first, so a bad one changes no file); once the
 * guest runs, cavm's exit status is the guest's (exit port, reset) or
 * 128+signal, or 1 when the VM failed.  Exit status 2 means bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypervisor/vm.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif
#define MAX_DISKS 16
#define MEM_DEFAULT (512ull << 20)
#define MEM_MIN (16ull << 20)
#define MEM_MAX (1ull << 40)

struct opts {
	const char *kernel, *initrd, *cmdline, *serial, *control;
	const char *disks[MAX_DISKS];
	unsigned ndisks;
	struct cavm_config cfg;
};

static void usage(FILE *f)
{
	fputs("usage: cavm run --kernel FILE [OPTIONS]\n"
	      "       cavm --help | --version\n"
	      "\n"
	      "Run a virtual machine on KVM whose disks live in a cavm "
	      "store.\n"
	      "\n"
	      "  -k, --kernel FILE       bzImage or ELF vmlinux to boot "
	      "(required)\n"
	      "  -i, --initrd FILE       initial ramdisk\n"
	      "  -c, --cmdline S         kernel command line\n"
	      "  -m, --mem SIZE          guest RAM: N[K|M|G|T], no suffix "
	      "means MiB\n"
	      "                          (default 512M, at least 16M)\n"
	      "  -n, --cpus N            vCPUs (default 1)\n"
	      "  -d, --disk STORE:DISK[,ro]\n"
	      "                          a virtio-blk disk from a store "
	      "(repeatable)\n"
	      "  -s, --serial stdio|FILE the console: stdin/stdout "
	      "(default) or a file\n"
	      "      --control PATH      control socket (JSON; see "
	      "docs/control.md)\n"
	      "      --hugepages         back guest RAM with huge pages\n"
	      "  -v, --verbose           log debug messages too\n"
	      "  -h, --help, --version\n"
	      "\n"
	      "cavm exits with the guest's status: the value written to "
	      "port 0xf4,\n0 after a guest reset, 128+N after signal N "
	      "(SIGINT, SIGTERM, SIGHUP\nstop the VM and flush its disks), "
	      "1 when the VM failed, 2 for bad usage.\nSee cavm(1) and "
	      "docs/hypervisor.md.\n",
	      f);
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "cavm: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'cavm --help'.\n");
	return 2;
}

/* "512", "512M", "2G": bytes, or 0 if malformed. */
static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;
	unsigned shift = 20;

	if (!s || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	case '\0':
		break;
	default:
		return 0;
	}
	if ((*end == 'i' || *end == 'B') && shift != 0)
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end != '\0' || v == 0 || v > (MEM_MAX >> shift))
		return 0;
	return (uint64_t)v << shift;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum {
		OPT_CONTROL = 256,
		OPT_HUGE,
		OPT_VERSION
	};
	static const struct option lo[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'},
		{"mem", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'n'},
		{"disk", required_argument, NULL, 'd'},
		{"serial", required_argument, NULL, 's'},
		{"control", required_argument, NULL, OPT_CONTROL},
		{"hugepages", no_argument, NULL, OPT_HUGE},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	int c;

	o->cfg.mem_bytes = MEM_DEFAULT;
	o->cfg.ncpus = 1;
	o->cfg.log_level = CAVM_LOG_INFO;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:i:c:m:n:d:s:vh", lo, NULL)) !=
	       -1) {
		char *end;
		unsigned long n;

		switch (c) {
		case 'k':
			o->kernel = optarg;
			break;
		case 'i':
			o->initrd = optarg;
			break;
		case 'c':
			o->cmdline = optarg;
			break;
		case 's':
			o->serial = optarg;
			break;
		case OPT_CONTROL:
			o->control = optarg;
			break;
		case OPT_HUGE:
			o->cfg.hugepages = true;
			break;
		case 'v':
			o->cfg.log_level = CAVM_LOG_DEBUG;
			break;
		case 'm':
			o->cfg.mem_bytes = parse_size(optarg);
			if (o->cfg.mem_bytes < MEM_MIN ||
			    (o->cfg.mem_bytes & 0xfff))
				return bad("--mem '%s': want a size of at "
					   "least 16M, in whole pages (e.g. "
					   "512M, 2G)",
					   optarg);
			break;
		case 'n':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || n == 0 ||
			    n > CAVM_MAX_CPUS)
				return bad("--cpus '%s': want 1 to 255",
					   optarg);
			o->cfg.ncpus = (unsigned)n;
			break;
		case 'd':
			if (o->ndisks == MAX_DISKS)
				return bad("--disk '%s': at most 16 disks",
					   optarg);
			if (!strchr(optarg, ':'))
				return bad("--disk '%s': want STORE:DISK[,ro]",
					   optarg);
			o->disks[o->ndisks++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("cavm %s\n", PACKAGE_VERSION);
			exit(0);
		case ':':
			return bad("option '%s' needs an argument",
				   argv[optind - 1]);
		default:
			return bad("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	if (!o->kernel)
		return bad("%s", "run: --kernel FILE is required");
	if (o->cfg.hugepages && (o->cfg.mem_bytes & ((2u << 20) - 1)))
		return bad("%s", "--hugepages: --mem must be a multiple of 2M");
	if (o->serial && strcmp(o->serial, "stdio") == 0)
		o->serial = NULL;
	return 0;
}

static int setup(struct cavm *vm, struct opts *o)
{
	struct cavm_serial_opts so = {.out_path = o->serial};
	struct cavm_boot b = {
		.kernel = o->kernel,
		.initrd = o->initrd,
		.cmdline = o->cmdline,
	};
	int ret;

	/* The kernel first: a bad one stops cavm before any device opens a
	 * file (the serial log, a store). */
	ret = cavm_boot_load(vm, &b);
	if (ret == 0)
		ret = cavm_serial_init(vm, &so);
	if (ret == 0)
		ret = cavm_i8042_init(vm);
	if (ret == 0)
		ret = cavm_exitport_init(vm);
	if (ret == 0)
		ret = cavm_pci_init(vm);
	for (unsigned i = 0; ret == 0 && i < o->ndisks; i++)
		ret = cavm_blk_add(vm, o->disks[i]);
	if (ret == 0)
		ret = cavm_control_start(vm, o->control);
	if (ret == 0)
		ret = cavm_mptable_write(vm);
	if (ret == 0)
		ret = cavm_acpi_init(vm);
	return ret;
}

int main(int argc, char **argv)
{
	uint64_t t0 = cavm_now_ns();
	struct opts o = {0};
	struct cavm *vm = NULL;
	sigset_t set;
	int ret;

	if (argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("cavm %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "run") != 0) {
		usage(stderr);
		return 2;
	}
	ret = parse_args(argc - 1, argv + 1, &o);
	if (ret)
		return ret;

	/* Before any thread exists: these arrive on cavm_run's signalfd. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	ret = cavm_create(&o.cfg, &vm);
	if (ret == 0) {
		vm->t_start_ns = t0;
		ret = setup(vm, &o);
	}
	if (ret < 0) {
		cavm_log(vm, CAVM_LOG_ERROR, "cannot start the VM: %s",
			 strerror(-ret));
		cavm_destroy(vm);
		return 1;
	}
	cavm_log(vm, CAVM_LOG_DEBUG, "setup took %.3f ms",
		 (double)(cavm_now_ns() - t0) / 1e6);
	ret = cavm_run(vm);
	cavm_destroy(vm);
	return ret;
}
