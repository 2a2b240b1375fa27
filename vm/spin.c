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
 * much (docs/benchmarks.md, "Poll or sleep"). So auto measures both and uses the faster,
 * as vm/choice.c chooses (way 0 sleeps, way 1 polls: on a tie it sleeps). A read's latency
 * is timed from its issue to its completion as its waiter saw it.
 */
#include "vm/spin.h"

const char *vm_spin_name(enum vm_spin_mode m)
{
	static const char *const names[] = {"auto", "always", "never"};

	return (unsigned)m < 3 ? names[m] : "?";
}

void vm_spin_init(struct vm_spin *s, enum vm_spin_mode mode)
{
	s->mode = mode;
	vm_choice_init(&s->ways, 2);
	for (int i = 0; i < 2; i++)
		atomic_store(&s->count[i], 0);
}

bool vm_spin_pick(struct vm_spin *s)
{
	if (s->mode != VM_SPIN_AUTO)
		return s->mode == VM_SPIN_ALWAYS;
	return vm_choice_pick(&s->ways) == 1;
}

void vm_spin_record(struct vm_spin *s, bool polled, uint64_t ns)
{
	atomic_fetch_add_explicit(&s->count[polled], 1, memory_order_relaxed);
	if (s->mode == VM_SPIN_AUTO)
		vm_choice_record(&s->ways, polled, ns);
}
