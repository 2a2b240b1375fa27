/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/sigbus.c - fault_mode=sigbus: a fault is served by the thread that raised it.
 *
 * With UFFD_FEATURE_SIGBUS the kernel queues no message for a fault in a registered
 * range: it raises SIGBUS in the faulting thread (si_code BUS_ADRERR, si_addr the address).
 * The handler here finds the engine and the mapping and takes the service threads'
 * decision (vm/fault.c, fault_decide) on this thread: a page in the pool is mapped with
 * UFFDIO_CONTINUE; an absent 4 KiB page of a device is read into the thread's bounce
 * page (rpio_pread: through the thread's own io_uring, polled for up to fault_spin_us),
 * then put into the RAM handle and mapped with UFFDIO_COPY (vm/load.c, load_copy_out); the
 * handler returns and the access is retried. Readahead windows still go
 * to the service threads, asynchronously. No other thread is woken on the fault's path,
 * so no CPU wakes another: on this 2-vCPU VM that wake-up is what a fault served by a
 * service thread pays (docs/benchmarks.md has the figures for both modes).
 *
 * Why it is not the default: the price falls on the application.
 *  - A system call that reads or writes a page that is not resident (write(2) from a
 *    mapping, read(2) into one, an io_uring buffer in one) fails with EFAULT instead of
 *    waiting: the kernel cannot raise a signal inside a system call. rp_pin such a range
 *    first.
 *  - The SIGBUS handler is the process's. ringpager installs it when the first such engine
 *    opens and passes every SIGBUS that is not one of its faults to the handler installed
 *    before it: called with the same arguments, or, for the default action, the action
 *    restored so that the retried access kills the process as it would have. A handler the
 *    application installs later must chain to ringpager's (sigaction's old action) or be
 *    installed before the engine opens.
 *  - Threads that touch mappings must not block SIGBUS (the kernel would kill them).
 * What does not change: a page that failed to load, or found no memory, reaches the
 * application as SIGBUS with si_addr (through the previous handler); rp_pin, WILLNEED,
 * writeout and reclaim work as in uffd mode.
 *
 * Async-signal safety. The handler takes the engine's locks and may wait for memory or for
 * another load. That is sound because this signal only arrives in code that touches a
 * mapping, and ringpager's own code never touches a mapping while it holds a lock; the
 * custom store callbacks and the pressure hook must not touch mappings (they would
 * deadlock in uffd mode too). errno is kept.
 *
 * Waiting. A thread whose page another load is bringing in (a readahead window, another
 * thread's fault, a pin) sleeps on the engine's load_gen, a futex that every load's end
 * bumps (vm_loads_ended, vm/load.c), then retries the access. The generation is read before the
 * page's state, so an end between the two makes the futex wait return at once.
 */
#include "vm/sigbus.h"
#include "vm/fault.h"
#include "vm/load.h"
#include "vm/vm.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define SIGBUS_MAX_ENGINES 64

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER; /* adding and removing */
static pthread_rwlock_t sig_rw = PTHREAD_RWLOCK_INITIALIZER; /* the table; the handler reads */
static struct vm *sig_vms[SIGBUS_MAX_ENGINES];
static unsigned sig_n;
static struct sigaction sig_prev; /* the handler before ringpager's */

static void futex_wait(_Atomic uint32_t *word, uint32_t expect)
{
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0);
}

/* Whether the access that faulted was a write: the page is then loaded dirty and mapped
 * writable at once. Where the architecture does not say, a read: the page is mapped
 * write-protected and the write is recorded by WP_ASYNC without another fault. */
static bool fault_was_write(const void *uc)
{
#if defined(__x86_64__)
	const ucontext_t *u = uc;

	return (u->uc_mcontext.gregs[REG_ERR] & 2) != 0; /* X86_PF_WRITE */
#else
	(void)uc;
	return false;
#endif
}

static enum vm_fault_outcome serve(struct vm *vm, uint64_t addr, bool write)
{
	uint32_t gen = atomic_load(&vm->load_gen);
	enum vm_fault_outcome out = vm_fault_self(vm, addr & ~(uint64_t)(vm->psz - 1), write);

	if (out == VM_FAULT_WAIT) {
		atomic_fetch_add(&vm->load_waiters, 1);
		futex_wait(&vm->load_gen, gen);
		atomic_fetch_sub(&vm->load_waiters, 1);
	}
	return out;
}

/* Hands a SIGBUS that is not a fault ringpager serves to the handler before it. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction prev = sig_prev;

	if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
		prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler != SIG_DFL &&
	    prev.sa_handler != SIG_IGN) {
		prev.sa_handler(sig);
		return;
	}
	/* The default action (an ignored SIGBUS from a fault is fatal as well): restore it.
	 * A fault is retried on return and kills the process with its address; a signal
	 * sent by kill(2) is raised again, and delivered once this handler returns. */
	struct sigaction dfl;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	(void)sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		(void)raise(sig);
}

bool vm_sigbus_serve(const siginfo_t *si, void *uc)
{
	enum vm_fault_outcome out = VM_FAULT_NOT_MINE;

	if (!si || si->si_signo != SIGBUS || si->si_code != BUS_ADRERR)
		return false;
	const uint64_t addr = (uintptr_t)si->si_addr;
	const bool write = uc && fault_was_write(uc);

	pthread_rwlock_rdlock(&sig_rw);
	for (unsigned i = 0; i < sig_n && out == VM_FAULT_NOT_MINE; i++)
		out = serve(sig_vms[i], addr, write);
	pthread_rwlock_unlock(&sig_rw);
	return out == VM_FAULT_RETRY || out == VM_FAULT_WAIT;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	const int saved_errno = errno;

	/* Locks are released before chaining: the previous handler may leave by siglongjmp. */
	if (!vm_sigbus_serve(si, uc))
		chain(sig, si, uc);
	errno = saved_errno;
}

static bool handler_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_sigbus;
}

int vm_sigbus_add(struct vm *vm)
{
	struct sigaction cur;
	int err = 0;

	vm_load_bounce_init();
	rpio_pread_prepare(); /* here, not at the first fault: it may allocate */
	pthread_mutex_lock(&sig_lock);
	if (sig_n == SIGBUS_MAX_ENGINES) {
		err = vm_errf(-EMFILE, "fault_mode=sigbus: at most %d such engines in one process",
		              SIGBUS_MAX_ENGINES);
		goto out;
	}
	if (sigaction(SIGBUS, NULL, &cur) < 0) {
		err = vm_errf(-errno, "sigaction(SIGBUS): %s", strerror(errno));
		goto out;
	}
	if (!handler_is_ours(&cur)) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		pthread_rwlock_wrlock(&sig_rw); /* no handler is reading sig_prev meanwhile */
		sig_prev = cur;
		if (sigaction(SIGBUS, &sa, NULL) < 0)
			err = vm_errf(-errno, "sigaction(SIGBUS): %s", strerror(errno));
		pthread_rwlock_unlock(&sig_rw);
		if (err)
			goto out;
	}
	pthread_rwlock_wrlock(&sig_rw);
	sig_vms[sig_n++] = vm;
	pthread_rwlock_unlock(&sig_rw);
out:
	pthread_mutex_unlock(&sig_lock);
	return err;
}

void vm_sigbus_remove(struct vm *vm)
{
	struct sigaction cur;

	pthread_mutex_lock(&sig_lock);
	pthread_rwlock_wrlock(&sig_rw); /* waits for handlers serving faults right now */
	for (unsigned i = 0; i < sig_n; i++) {
		if (sig_vms[i] != vm)
			continue;
		memmove(&sig_vms[i], &sig_vms[i + 1], (sig_n - i - 1) * sizeof(sig_vms[0]));
		sig_n--;
		break;
	}
	/* The last engine gone: give the signal back, unless another handler replaced ours
	 * since (it may chain to ours, which then passes everything on). */
	if (sig_n == 0 && sigaction(SIGBUS, NULL, &cur) == 0 && handler_is_ours(&cur))
		(void)sigaction(SIGBUS, &sig_prev, NULL);
	pthread_rwlock_unlock(&sig_rw);
	pthread_mutex_unlock(&sig_lock);
}
