/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/reaped.c - the order a service thread finishes its reaped completions in
 * (vm/reaped.h). At most VM_REAPED_MAX wait, so a take is a short scan and a move.
 */
#include "vm/reaped.h"

#include <assert.h>
#include <string.h>

void vm_reaped_add(struct vm_reaped *r, const struct rpio_cqe *c, bool urgent)
{
	assert(r->n < VM_REAPED_MAX);
	r->c[r->n] = *c;
	r->urgent[r->n] = urgent;
	r->n++;
}

bool vm_reaped_take(struct vm_reaped *r, struct rpio_cqe *out)
{
	unsigned i = 0;

	if (!r->n)
		return false;
	while (i < r->n && !r->urgent[i])
		i++;
	if (i == r->n)
		i = 0;
	*out = r->c[i];
	r->n--;
	memmove(r->c + i, r->c + i + 1, (r->n - i) * sizeof(r->c[0]));
	memmove(r->urgent + i, r->urgent + i + 1, (r->n - i) * sizeof(r->urgent[0]));
	return true;
}
