/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/err.c - the message of the last failed call, per thread (rp_errmsg).
 *
 * Thread-local, not per engine: a message belongs to the call that failed, and two
 * engines used from one thread cannot interleave within one call.
 */
#include "vm/err.h"

#include <stdarg.h>
#include <stdio.h>

static __thread char vm_msg[512];

int vm_errf(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vm_msg, sizeof(vm_msg), fmt, ap);
	va_end(ap);
	return err;
}

const char *vm_errmsg(void)
{
	return vm_msg;
}

void vm_errclear(void)
{
	vm_msg[0] = '\0';
}
