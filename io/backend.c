/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/backend.c - backend names, as config values and messages spell them.
 * The `auto` choice itself is made in io/queue.c (rpio_backend_init).
 */
#include "io/io.h"

#include <errno.h>
#include <string.h>

static const char *const rpio_backend_names[] = {
    [IO_BACKEND_AUTO] = "auto",
    [IO_BACKEND_URING] = "io_uring",
    [IO_BACKEND_AIO] = "libaio",
    [IO_BACKEND_PSYNC] = "psync",
};

const char *rpio_backend_name(enum rpio_backend b)
{
	if ((unsigned)b >= sizeof(rpio_backend_names) / sizeof(rpio_backend_names[0]))
		return "unknown";
	return rpio_backend_names[b];
}

int rpio_backend_parse(const char *s, enum rpio_backend *out)
{
	for (unsigned i = 0; i < sizeof(rpio_backend_names) / sizeof(rpio_backend_names[0]); i++) {
		if (s && strcmp(s, rpio_backend_names[i]) == 0) {
			*out = (enum rpio_backend)i;
			return 0;
		}
	}
	return -EINVAL;
}
