/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/reaped.h - the completions a service thread has reaped and not yet finished, and the
 * order it finishes them in: those a thread is blocked on (a fault's own read, a window's
 * run a fault waits for) first, oldest first within each kind. vm/service.c (reap) says
 * why.
 */
#ifndef RP_VM_REAPED_H
#define RP_VM_REAPED_H

#include "io/io.h"

#include <stdbool.h>

#define VM_REAPED_MAX 128

struct vm_reaped {
	struct rpio_cqe c[VM_REAPED_MAX];
	bool urgent[VM_REAPED_MAX];
	unsigned n;
};

/* How many more completions r can take. */
static inline unsigned vm_reaped_room(const struct vm_reaped *r)
{
	return VM_REAPED_MAX - r->n;
}

/* Adds completion c (r has room); `urgent`: a thread is blocked on it. */
void vm_reaped_add(struct vm_reaped *r, const struct rpio_cqe *c, bool urgent);
/* Takes the next completion to finish into *out: the oldest urgent one, else the oldest.
 * false when r is empty. */
bool vm_reaped_take(struct vm_reaped *r, struct rpio_cqe *out);

#endif
