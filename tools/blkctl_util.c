/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkctl_util.c - blkctl's small helpers: error lines, size arguments,
 * human sizes and times, JSON output, the progress bar.
 *
 * Errors are one line each on stderr, "blkctl: <what failed>: <why>",
 * so that a script can show them as they are and a test can count them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "tools/blkctl.h"

static _Thread_local const struct bc_io *cur_io;

const struct bc_io *bc_io(void)
{
	static _Thread_local struct bc_io std;
	if (cur_io)
		return cur_io;
	if (!std.out) {
		std = (struct bc_io){stdout, stderr, STDIN_FILENO,
				     STDOUT_FILENO, isatty(STDERR_FILENO) == 1};
	}
	return &std;
}

void bc_io_set(const struct bc_io *io)
{
	cur_io = io;
}

static void vline(const char *fmt, va_list ap, const char *tail)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One line, whatever a name or a library message holds. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(BC_ERR, "blkctl: %s%s\n", msg, tail);
}

int bc_fail(int err, const char *fmt, ...)
{
	char tail[512];
	va_list ap;
	snprintf(tail, sizeof(tail), ": %s", bs_strerror(err));
	va_start(ap, fmt);
	vline(fmt, ap, tail);
	va_end(ap);
	return BC_EXIT_FAIL;
}

int bc_fail_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline(fmt, ap, "");
	va_end(ap);
	return BC_EXIT_FAIL;
}

int bc_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline(fmt, ap, " (try 'blkctl --help')");
	va_end(ap);
	return BC_EXIT_USAGE;
}

/* ---- sizes ---- */

int bc_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	uint64_t v = 0;
	const char *p = s;
	unsigned shift = 0;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL; /* empty, sign, space, or not a number */
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (*p) {
		const char *u = strchr(units, *p & ~0x20); /* upper case */
		if (!u || !*u)
			return -EINVAL;
		shift = 10u * (unsigned)(u - units + 1);
		p++;
		if (!strcasecmp(p, "iB"))
			p += 2;
		if (*p)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

int bc_size_arg(const char *cmd, const char *what, const char *s, uint64_t *out)
{
	int rc = bc_parse_size(s, out);
	if (rc == -ERANGE)
		return bc_usage_error("%s: invalid %s '%s': too large", cmd,
				      what, s);
	if (rc)
		return bc_usage_error(
			"%s: invalid %s '%s': expected bytes or a "
			"number with K, M, G or T (powers of 1024)",
			cmd, what, s);
	return 0;
}

const char *bc_human_size(uint64_t bytes, char buf[BC_HSIZE_MAX])
{
	static const char *const unit[] = {"KiB", "MiB", "GiB",
					   "TiB", "PiB", "EiB"};
	if (bytes < 1024) {
		snprintf(buf, BC_HSIZE_MAX, "%llu B",
			 (unsigned long long)bytes);
		return buf;
	}
	double v = (double)bytes / 1024;
	unsigned i = 0;
	/* Round as %.1f will, so 1023.97 KiB prints as "1.0 MiB". */
	while (v >= 1023.95 && i + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		i++;
	}
	snprintf(buf, BC_HSIZE_MAX, "%.1f %s", v, unit[i]);
	return buf;
}

const char *bc_iso_time(uint64_t t, char buf[BC_TIME_MAX])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) ||
	    !strftime(buf, BC_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, BC_TIME_MAX, "@%llu", (unsigned long long)t);
	return buf;
}

void bc_info_spec(const struct bs_info *i, char out[BS_SPEC_MAX])
{
	if (i->snap[0])
		snprintf(out, BS_SPEC_MAX, "%s@%s", i->disk, i->snap);
	else
		snprintf(out, BS_SPEC_MAX, "%s", i->disk);
}

/* ---- JSON ---- */

void bc_json_print(json_object *o)
{
	fprintf(BC_OUT, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

void bc_json_add_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

void bc_json_add_str(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

/* ---- progress ---- */

#define BAR_WIDTH 30

void bc_progress_init(struct bc_progress *p, const char *verb, const char *name)
{
	memset(p, 0, sizeof(*p));
	p->verb = verb;
	p->name = name;
	p->tty = bc_io()->err_tty;
	p->last_permille = -1;
}

void bc_progress_cb(void *arg, uint64_t done, uint64_t total)
{
	struct bc_progress *p = arg;
	char a[BC_HSIZE_MAX], b[BC_HSIZE_MAX];
	if (!p->tty)
		return;
	if (!total) { /* a stream: only what has arrived */
		if (p->drawn && done - p->last_bytes < (16u << 20))
			return;
		p->last_bytes = done;
		fprintf(BC_ERR, "\r%s %s: %s\033[K", p->verb, p->name,
			bc_human_size(done, a));
		p->drawn = true;
		return;
	}
	int pm = (int)(done >= total ? 1000 : done * 1000 / total);
	if (pm == p->last_permille)
		return;
	p->last_permille = pm;
	int fill = pm * BAR_WIDTH / 1000;
	fprintf(BC_ERR, "\r%s %s: [%.*s%*s] %3d%% %s / %s\033[K", p->verb,
		p->name, fill, "##############################",
		BAR_WIDTH - fill, "", pm / 10, bc_human_size(done, a),
		bc_human_size(total, b));
	p->drawn = true;
}

void bc_progress_end(struct bc_progress *p)
{
	if (p->tty && p->drawn)
		fputs("\r\033[K", BC_ERR); /* leave the line clean */
	p->drawn = false;
}
