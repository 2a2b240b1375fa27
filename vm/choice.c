/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/choice.c - the fastest of n ways, by measurement.
 *
 * Which way is faster depends on the machine, and on one machine from day to day (a
 * virtual CPU that halts when idle, where a device's interrupts go), so the ways are
 * timed as they are used:
 *
 *   - the first WARMUP * n turns go round the ways in turn;
 *   - a way not measured yet (its turns failed, or were cut short) is taken next;
 *   - then each turn takes the way whose smoothed latency (an average over about the
 *     last eight turns that went that way, a sample capped at twice that average so that
 *     one stalled turn does not swing it) is lowest, the lowest-numbered on a tie;
 *   - one turn in PROBE takes another way, the others in turn, so that a change of the
 *     machine's behaviour is noticed: that turn costs the difference, 1/PROBE of it on
 *     average. Where every other way is more than a quarter slower, one turn in PROBE_FAR:
 *     the gap that makes a probe dear also takes a large change to close.
 *
 * The counters are updated without a lock: a lost update among racing threads costs one
 * sample.
 */
#include "vm/choice.h"

#define WARMUP 8
#define PROBE 16
#define PROBE_FAR 64

void vm_choice_init(struct vm_choice *c, unsigned n)
{
	c->n = n < 1 ? 1 : n > VM_CHOICE_MAX ? VM_CHOICE_MAX : n;
	atomic_store(&c->turns, 0);
	for (unsigned i = 0; i < VM_CHOICE_MAX; i++)
		atomic_store(&c->avg[i], 0);
}

unsigned vm_choice_pick(struct vm_choice *c)
{
	const unsigned n = c->n;
	const uint64_t t = atomic_fetch_add_explicit(&c->turns, 1, memory_order_relaxed);

	if (n == 1)
		return 0;
	if (t < (uint64_t)WARMUP * n)
		return (unsigned)(t % n);
	unsigned best = 0;
	uint64_t lo = UINT64_MAX, next = UINT64_MAX; /* the lowest average, and the second */

	for (unsigned i = 0; i < n; i++) {
		const uint64_t a = atomic_load_explicit(&c->avg[i], memory_order_relaxed);

		if (!a)
			return i;
		if (a < lo) {
			next = lo;
			lo = a;
			best = i;
		} else if (a < next) {
			next = a;
		}
	}
	const uint64_t every = next > lo + lo / 4 ? PROBE_FAR : PROBE;

	if (t % every)
		return best;
	return (unsigned)((best + 1 + (t / every) % (n - 1)) % n);
}

void vm_choice_record(struct vm_choice *c, unsigned way, uint64_t ns)
{
	if (way >= c->n)
		return;
	uint64_t avg = atomic_load_explicit(&c->avg[way], memory_order_relaxed);

	if (!ns)
		ns = 1;
	if (avg && ns > 2 * avg)
		ns = 2 * avg;
	avg = avg ? avg - avg / 8 + ns / 8 : ns;
	atomic_store_explicit(&c->avg[way], avg ? avg : 1, memory_order_relaxed);
}
