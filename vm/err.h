/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/err.h - the per-thread message behind rp_errmsg() (vm/err.c).
 */
#ifndef RINGPAGER_VM_ERR_H
#define RINGPAGER_VM_ERR_H


/* Sets this thread's message for rp_errmsg() and returns err (a negative errno). */
int vm_errf(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vm_errmsg(void);
void vm_errclear(void);

#endif
