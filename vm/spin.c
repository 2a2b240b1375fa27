/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/spin.c - poll or sleep for a fault's own read (fault_spin).
 *
 * The thread that waits for a fault's read (the service thread in fault_mode=uffd, the
 * faulting thread in sigbus) can poll its queue for the completion or sleep until it
 * comes. Which is faster depends on the machine, and on one machine from day to day: on a
 * virtual CPU that halts when idle, waking it costs tens of microseconds and polling wins;
 * where io_uring posts a read's completion through task work, a thread polling in user
 * space sees it only when an interrupt brings it into the kernel, and sleeping wins by as
 * much (docs/benchmarks.md, "Poll or sleep"). So auto measures both and uses the faster:
 *
 *   - the first AUTO_WARMUP reads alternate, one way then the other;
 *   - then each read goes the way whose smoothed latency (an average over about the last
 *     eight reads that went that way, a sample capped at twice that average so that one
 *     stalled read does not swing it) is lower, polling only when strictly lower;
 *   - one read in AUTO_PROBE goes the other way, so that a change of the machine's
 *     behaviour is noticed: that read costs the difference, 1/AUTO_PROBE of it on average.
 *     Where one way is more than a quarter slower, one read in AUTO_PROBE_FAR: the gap
 *     that makes a probe dear also takes a large change to close.
 *
 * A read's latency is timed from its issue to its completion as its waiter saw it. The
 * counters are updated without a lock: a lost update among racing threads costs one
 * sample.
 */
#include "vm/spin.h"

#define AUTO_WARMUP 16
#define AUTO_PROBE 16
#define AUTO_PROBE_FAR 64

const char *vm_spin_name(enum vm_spin_mode m)
{
	static const char *const names[] = {"auto", "always", "never"};

	return (unsigned)m < 3 ? names[m] : "?";
}

void vm_spin_init(struct vm_spin *s, enum vm_spin_mode mode)
{
	s->mode = mode;
	atomic_store(&s->reads, 0);
	for (int i = 0; i < 2; i++) {
		atomic_store(&s->avg[i], 0);
		atomic_store(&s->count[i], 0);
	}
}

bool vm_spin_pick(struct vm_spin *s)
{
	if (s->mode != VM_SPIN_AUTO)
		return s->mode == VM_SPIN_ALWAYS;
	const uint64_t n = atomic_fetch_add_explicit(&s->reads, 1, memory_order_relaxed);

	if (n < AUTO_WARMUP)
		return n % 2;
	const uint64_t slept = atomic_load_explicit(&s->avg[0], memory_order_relaxed),
	               polled = atomic_load_explicit(&s->avg[1], memory_order_relaxed);
	/* Polled reads still unmeasured (their reads failed, or were cut short): try. */
	const bool best = !polled || !slept ? !polled : polled < slept;
	const uint64_t lo = best ? polled : slept, hi = best ? slept : polled;
	const uint64_t every = hi > lo + lo / 4 ? AUTO_PROBE_FAR : AUTO_PROBE;

	return n % every == 0 ? !best : best;
}

void vm_spin_record(struct vm_spin *s, bool polled, uint64_t ns)
{
	const int i = polled;

	atomic_fetch_add_explicit(&s->count[i], 1, memory_order_relaxed);
	if (s->mode != VM_SPIN_AUTO)
		return;
	uint64_t avg = atomic_load_explicit(&s->avg[i], memory_order_relaxed);

	if (!ns)
		ns = 1;
	if (avg && ns > 2 * avg)
		ns = 2 * avg;
	avg = avg ? avg - avg / 8 + ns / 8 : ns;
	atomic_store_explicit(&s->avg[i], avg ? avg : 1, memory_order_relaxed);
}
