/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * errors.c - px_strerror: parallax's errors in words.
 *
 * The idea: the layer adds one code of its own (PX_EBROKEN) and gives the
 * errno values it returns for its own reasons a message that says what to
 * do; everything else came from the store and cas_strerror knows it.
 */
#include <errno.h>

#include "parallax/internal.h"

const char *px_strerror(int err)
{
	switch (err) {
	case PX_EBROKEN:
		return "block map unusable after a failed commit or resize: "
		       "close it; fsck recounts the store's references";
	case -ERANGE:
		return "block number past the end of the disk";
	case -EFBIG:
		return "disk size above the block map's limit (2^52 blocks)";
	default:
		return cas_strerror(err);
	}
}
