/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine/error.c - error text and version.
 */
#include "ringpager.h"

#include <stdio.h>
#include <string.h>

#define RP_STR_(x) #x
#define RP_STR(x)  RP_STR_(x)

const char *rp_version(void)
{
	return RP_STR(RINGPAGER_VERSION_MAJOR) "." RP_STR(RINGPAGER_VERSION_MINOR) "." RP_STR(
	    RINGPAGER_VERSION_PATCH);
}

const char *rp_strerror(int err)
{
	static __thread char buf[64];

	if (err < 0)
		err = -err;
	if (err == 0)
		return "success";
	/* strerror_r (GNU) returns "Unknown error N" for codes it does not know. */
	return strerror_r(err, buf, sizeof(buf));
}
