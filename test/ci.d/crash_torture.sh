#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/ci.d/crash_torture.sh - the power-cut torture (test/crash/, manual
# in docs/crash-testing.md) as a CI hook: exit 0 pass, 77 skip, else fail.
#
# Bounded pass (about a minute on an idle 2-core machine): the
# simulator's self-test, six fixed seeds under the strict (POSIX) model
# (and two more with torn writes only),
# two under the journal model, and one fresh random seed, printed so
# that a failure can be rerun with `torture -s SEED ...` exactly as the
# failing line says.
#
# Environment:
#   TORTURE_LONG=1          hours instead: fresh seeds until
#                           TORTURE_LONG_SECS (default 14400) have passed
#   TORTURE_ALLOW_LEAKS=1   tolerate leaked reference counts after a cut
#                           (default 0: a leak fails the run)
#   TORTURE_EXTRA="..."     torture flags for every run (default
#                           "-x hold,create,rebuild": crashes also during
#                           store creation and index rebuilds)
#   TORTURE=path            a torture binary to use
#
# Without a built test/crash/torture in the build tree the hook compiles
# one from the sources (the library source lists come from Makefile.am).
set -u

top=${abs_top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${abs_top_builddir:-$top/build}
long=${TORTURE_LONG:-0}
allow_leaks=${TORTURE_ALLOW_LEAKS:-0}
extra=${TORTURE_EXTRA:--x hold,create,rebuild}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/crash_torture.XXXXXX") || exit 1
# The images live on tmpfs when there is one (their syncs cost nothing);
# a failing run's work directory is kept there and named in the output.
work=$tmp
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then
	work=$(mktemp -d /dev/shm/crash_torture.XXXXXX) || work=$tmp
fi
trap 'rm -rf "$tmp"; [ "$work" = "$tmp" ] || rmdir "$work" 2>/dev/null' EXIT

skip() { # (stderr: find_or_build's stdout is the binary's path)
	echo "SKIP: $*" >&2
	exit 77
}

# The sources of one library, as Makefile.am lists them.
am_sources() { # VARIABLE
	sed -n "/^$1 *=/,/[^\\\\]\$/p" "$top/Makefile.am" |
		tr ' \t\\' '\n\n\n' | grep '\.c$' | sed "s|^|$top/|"
}

find_or_build() {
	if [ -n "${TORTURE:-}" ]; then
		echo "$TORTURE"
		return
	fi
	if [ -x "$build/test/crash/torture" ]; then
		echo "$build/test/crash/torture"
		return
	fi
	local cc=${CC:-cc} srcs libs h
	command -v "$cc" >/dev/null || skip "no C compiler ($cc) to build the torture"
	for h in lmdb.h zstd.h openssl/evp.h liburing.h libaio.h; do
		echo "#include <$h>" | "$cc" -E -x c - >/dev/null 2>&1 ||
			skip "header $h not installed (see tools/quickstart --deps)"
	done
	libs="-lcrypto -llmdb -lzstd -luring -laio -lpthread -ldl $(pkg-config --libs json-c 2>/dev/null)"
	echo "building the torture with $cc ..." >&2
	# Like make: each layer an archive, so the linker takes only what
	# the torture needs (not the daemon's server files, say).
	local lib var src obj archives=""
	for lib in blkstore parallax cas; do
		var=${lib}_lib${lib}_a_SOURCES
		srcs=$(am_sources "$var")
		[ -n "$srcs" ] || { echo "no $var in Makefile.am" >&2; exit 1; }
		mkdir -p "$tmp/$lib"
		for src in $srcs; do
			obj=$tmp/$lib/$(basename "$src" .c).o
			"$cc" -std=gnu11 -D_GNU_SOURCE= -O2 -g -Wall -Wextra -Werror \
				-I"$top" $(pkg-config --cflags json-c 2>/dev/null) \
				-c -o "$obj" "$src" >&2 ||
				{ echo "FAIL: $src does not build" >&2; exit 1; }
		done
		ar rcs "$tmp/lib$lib.a" "$tmp/$lib"/*.o
		archives="$archives $tmp/lib$lib.a"
	done
	# shellcheck disable=SC2086
	if ! "$cc" -std=gnu11 -D_GNU_SOURCE= -O2 -g -Wall -Wextra -Werror \
		-I"$top" -o "$tmp/torture" "$top"/test/crash/*.c $archives $libs >&2; then
		echo "FAIL: the torture does not build" >&2
		exit 1
	fi
	echo "$tmp/torture"
}

torture=$(find_or_build) || exit $?
flags=""
[ "$allow_leaks" = 1 ] && flags="-a leaks"
flags="$flags $extra"

failed=0 seeds=0 points=0 images=0 leaky=0
run() { # torture arguments...
	local rc line
	echo "+ torture $* $flags"
	# shellcheck disable=SC2086
	TMPDIR=$work "$torture" "$@" $flags 2>&1 | tee "$tmp/out" |
		grep -Ev '^  cut .*: ok$'
	rc=${PIPESTATUS[0]}
	[ "$rc" -ne 0 ] && failed=$((failed + 1))
	line=$(grep -E '^torture: [0-9]+ seeds?, ' "$tmp/out" | tail -n 1)
	if [ -n "$line" ]; then
		# shellcheck disable=SC2086
		set -- $line
		seeds=$((seeds + $2))
		points=$((points + $4))
		images=$((images + $7))
	fi
	line=$(grep -E '^torture: [0-9]+ images leaked' "$tmp/out" | tail -n 1)
	[ -n "$line" ] && leaky=$((leaky + $(echo "$line" | awk '{print $2}')))
	return 0
}

start=$SECONDS
echo "torture: $torture"
"$torture" -T || failed=$((failed + 1))

if [ "$long" = 1 ]; then
	secs=${TORTURE_LONG_SECS:-14400}
	run -n 1000 -c 60 -S 8192 -l $((secs / 2))
	run -n 600 -c 40 -m journal -S 1024 -l $((secs / 2))
else
	# the dirty limit follows (seed >> 7) % 3: 256 and 258 get 5 blocks,
	# 514 gets 64 (disks commit on their own), the others 16384
	for seed in 1 2 3 256 514 4242; do
		run -s $seed -n 300 -c 20
	done
	for seed in 11 258; do
		run -s $seed -n 300 -c 20 -m journal
	done
	# torn writes that keep a catalogue record but lose chunk sectors
	# before it: the raw rebuild must not believe that commit (with its
	# region check disabled these two seeds fail)
	for seed in 41 53; do
		run -s $seed -n 300 -c 20 -p torn
	done
	fresh=$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')
	fresh=$((fresh % 1000000000000))
	echo "fresh seed: $fresh"
	run -s "$fresh" -n 300 -c 24
fi

echo
echo "crash_torture: $seeds seeds, $points crash points, $images crash images checked, $failed failing runs ($((SECONDS - start)) s)"
if [ "$leaky" -gt 0 ]; then
	echo "crash_torture: NOTE: $leaky images had leaked reference counts after the cut (known bug, tolerated by -a leaks; TORTURE_ALLOW_LEAKS=0 to fail on it)"
fi
[ "$failed" -eq 0 ]
