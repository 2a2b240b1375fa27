/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/service.c - the fault-service threads.
 *
 * Each thread owns one io/ queue and waits in poll(2) on three descriptors:
 *   - the engine's userfaultfd (shared by all service threads; reads are non-blocking,
 *     so each fault message goes to exactly one thread);
 *   - its queue's completion eventfd (rpio_queue_params.notify);
 *   - its kick eventfd: loads handed over by application threads (rp_pin, WILLNEED), or
 *     the stop request.
 * A fault on an absent page is read and its load submitted by the same thread, with no
 * hand-off; the completion comes back on that thread's queue. When the queue is full,
 * loads wait in the thread's backlog and are issued as completions free slots (those a
 * reap frees are started together), so a rp_pin of thousands of pages keeps exactly
 * queue_depth requests in flight. A thread finishing a long reap (a window's runs take
 * milliseconds to copy into place) reads the userfaultfd between finishes too (reap), so
 * a fault does not wait for the whole reap.
 *
 * Where the threads run (docs/design.md, "Fault service"): with fault_threads=auto there
 * is one thread per CPU the process may use, each bound to its CPU. The fault message
 * wakes every service thread that listens on the userfaultfd, and the one on the faulting
 * thread's CPU runs at once when that thread blocks: the fault is served and its
 * completion comes back without waking another CPU: on a virtual machine a cross-CPU
 * wake-up costs tens of microseconds. fault_threads=N gives N unbound threads.
 *
 * Who listens (listen_mask). Waking a service thread on another, idle CPU is an
 * inter-processor interrupt that the faulting thread sends before it blocks, for a
 * thread that then finds nothing to read. So each fault message names its thread
 * (UFFD_FEATURE_THREAD_ID), and at most once per LISTEN_ASK_NS for the same thread a
 * service thread asks, after serving the fault, where that thread faults:
 *   - bound to one CPU (sched_getaffinity), that CPU, for certain;
 *   - otherwise the CPU it last ran on (/proc/self/task/TID/stat), the one it faulted on.
 *     Its next fault mostly comes from there too: a thread that waits for a disk read in
 *     a fault sleeps through it, and that CPU has gone idle when the thread is woken.
 * That CPU's service thread then listens, for LISTEN_KEEP_NS after the thread's last
 * fault; a thread seen on another CPU since has left its old one at once. A thread whose
 * CPU cannot be told (no service thread there, /proc unreadable, VM_NO_THREAD_CPU) makes
 * all listen, and so do two unbound threads faulting within LISTEN_KEEP_NS of each other:
 * each served from its own CPU alone, one that moves or shares a CPU waits on the other's
 * service thread, which measured slower. A thread that moved meanwhile wakes the old
 * CPU's thread, which serves it from there (the interrupt it saved, paid once) until the
 * next ask. The set is never empty; a service thread whose bit changes is kicked, since
 * a thread asleep in poll(2) keeps the descriptors it went to sleep with.
 * docs/benchmarks.md ("Who listens for an unbound thread", and "Who listens" in its
 * design choices) has the figures and what was tried.
 *
 * Where atomic writeouts go (vm_service_hand_wo). Their thread blocks in the redo log's
 * write and fdatasync and sleeps until the writes in place and their fdatasync complete,
 * and a bound thread is woken where it is bound: from the CPU that takes the device's
 * interrupts that is a cross-CPU wake-up each time, and on a virtual machine with one
 * device queue an atomic commit ran at half the speed on the other CPU's thread
 * (docs/benchmarks.md, "Where a commit waits"). Which CPU that is is not known in
 * general, so with bound threads each writeout's fdatasync is timed on the thread that
 * waited for it, and atomic writeouts go to the thread whose syncs finish soonest
 * (vm/choice.c: every thread is tried, and tried again now and then). Other writeouts
 * stay on the caller's CPU's thread: for them the cross-CPU hand-over and wake-up cost
 * what the faster completions saved.
 *
 * Why poll and an eventfd rather than the ring as the only event loop: the same loop
 * then serves all three io/ backends, and io_uring's completions still arrive without a
 * system call of their own (the eventfd read is the one extra call per wake-up, against a
 * device round trip of tens of microseconds). A fault on a resident page costs one poll,
 * one read of the userfaultfd and one UFFDIO_CONTINUE on this thread.
 *
 * Spinning for a fault's read (fault_spin, fault_spin_us): while a thread waits on a
 * fault's own read that vm/spin.c chose to poll for (job->spin), and the thread has
 * nothing else to do, it polls its queue for up to fault_spin_us before it sleeps in
 * poll(2). The faulting thread is blocked, so the CPU would idle; a virtual CPU that idles
 * halts, and waking it for the completion can cost tens of microseconds (vm/spin.c says
 * why that is not always the faster way). The price: up to fault_spin_us of CPU per cold
 * fault on the faulting CPU, taken from the application's other threads if they want
 * that CPU. The spin still looks at the userfaultfd and the kick eventfd every few
 * iterations, so a new fault or job does not wait for it. Readahead windows, pins and
 * writeouts never spin: their reads are long, or a thread asked for them at queue depth.
 */
#include "vm/service.h"
#include "vm/reaped.h"
#include "vm/testing.h"
#include "vm/vm.h"
#include "compat/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define SVC_MSGS 64 /* fault messages read at once */
#define SVC_BOUNCE_MAX 256 /* bounce pages per thread at most (1 MiB), whatever the depth */
#define SVC_WSTAGE_BYTES (1ul << 20) /* write staging area per thread */
#define SVC_RSTAGE_SLOTS 8 /* read staging slots per thread (VM_RSTAGE_BYTES each) */
#define SVC_CQES 64
#define VM_LEND_MAX 16 /* queues lent to application threads at most */
#define LISTEN_ASK_NS (1000000ull)         /* where a thread faults, asked at most this often */
#define LISTEN_KEEP_NS (100 * 1000000ull)  /* a CPU (or all) listens this long after ... */
#define SVC_ASKED 8 /* faulting threads whose last ask each service thread remembers */
#define SVC_LOOK_NS (50 * 1000ull) /* a finishing thread reads faults at most this often */

struct vm_service {
	struct vm *vm;
	unsigned id;
	int cpu; /* the CPU it is bound to, or -1 */
	pthread_t thread;
	bool started;
	int kick_fd;
	int io_fd;
	struct rpio_queue *q;
	struct rpio_queue_params qp;
	struct vm_job *backlog_head, *backlog_tail;
	unsigned fault_reads; /* reads issued here to be polled for (job->spin), not completed */
	/* Bounce pages for staged loads (a lone 4 KiB page of a fault or a pin, read here
	 * and put into the RAM handle by vm_load_finish): two per request the queue takes
	 * (at most SVC_BOUNCE_MAX), and a stack of the free ones. */
	char *bounce;
	size_t nbounce_max;
	void **bounce_free;
	unsigned nbounce;
	/* Read staging slots for a stream's windows (vm/fault.c, ra_read): made at the first
	 * ask, SVC_RSTAGE_SLOTS of VM_RSTAGE_BYTES, pre-faulted, and a stack of the free ones */
	char *rstage;
	bool rstage_tried;
	void *rstage_free[SVC_RSTAGE_SLOTS];
	unsigned nrstage;
	/* The write staging area (vm/writeout.c, wrun_stage): SVC_WSTAGE_BYTES, or NULL;
	 * handed out from its start, reused from there when no write holds a part of it. */
	char *wstage;
	size_t wstage_used;      /* bytes handed out since it was last empty */
	unsigned wstage_holders; /* writes holding a part of it */
	struct rpio_dev *detach; /* a store closes: drop the queue's registration; jobs_lock */
	struct vm_job *own_head, *own_tail; /* jobs for this thread alone; jobs_lock */
	uint64_t own_taken; /* ... chains of them it took (a test reads it); jobs_lock */
	_Atomic uint64_t faults_between; /* fault messages it read between finishes (reap) */
	_Atomic uint64_t refilled; /* requests started together after a reap, held (reap) */
	/* Lent to application threads (vm_service_lend): no thread of its own; the next idle
	 * one, the next made */
	bool lent;
	struct vm_service *lnext, *lall;
	/* Who listens (the comment at the top) */
	_Atomic uint64_t seen_ns;  /* ... a thread that faults on this CPU was seen last, ... */
	_Atomic uint32_t seen_tid; /* ... this one */
	_Atomic bool polls_uffd;   /* it went to sleep in poll(2) with the userfaultfd */
	/* The faulting threads this thread asked about last, and when (oldest replaced) */
	struct {
		uint32_t tid;
		uint64_t ns;
	} asked[SVC_ASKED];
	/* start-up handshake */
	pthread_mutex_t ready_lock;
	pthread_cond_t ready_cv;
	int ready; /* 0 starting, 1 running, <0 failed with this errno */
	char msg[IO_MSG_LEN];
};

/* The service thread this thread is, or NULL on the application's threads. */
static _Thread_local struct vm_service *svc_self;

bool vm_on_service_thread(void)
{
	return svc_self != NULL;
}

/* Appends the chain first..last (linked by qnext) to the list *head..*tail. */
static void chain_append(struct vm_job **head, struct vm_job **tail, struct vm_job *first,
                         struct vm_job *last)
{
	last->qnext = NULL;
	if (*tail)
		(*tail)->qnext = first;
	else
		*head = first;
	*tail = last;
}

static void backlog_push(struct vm_service *s, struct vm_job *job)
{
	chain_append(&s->backlog_head, &s->backlog_tail, job, job);
}

void *vm_service_bounce_get(struct vm_service *s)
{
	assert(svc_self == s);
	return s->nbounce ? s->bounce_free[--s->nbounce] : NULL;
}

void vm_service_bounce_put(struct vm_service *s, void *page)
{
	assert(svc_self == s && s->nbounce < s->nbounce_max);
	s->bounce_free[s->nbounce++] = page;
}

void *vm_service_rstage_get(struct vm_service *s)
{
	assert(svc_self == s);
	if (!s->rstage_tried) {
		const size_t len = SVC_RSTAGE_SLOTS * VM_RSTAGE_BYTES;

		s->rstage_tried = true;
		s->rstage = s->vm->no_bounce ? MAP_FAILED
		                             : mmap(NULL, len, PROT_READ | PROT_WRITE,
		                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (s->rstage == MAP_FAILED) {
			s->rstage = NULL;
		} else {
			/* Huge pages where the system gives them: a run is then a few segments
			 * for the device, not one per 4 KiB page. */
			(void)madvise(s->rstage, len, MADV_HUGEPAGE);
			memset(s->rstage, 0, len);
			for (unsigned i = 0; i < SVC_RSTAGE_SLOTS; i++)
				s->rstage_free[s->nrstage++] = s->rstage + i * VM_RSTAGE_BYTES;
		}
	}
	return s->nrstage ? s->rstage_free[--s->nrstage] : NULL;
}

bool vm_service_rstage_held(const struct vm_service *s)
{
	return s->rstage && !s->nrstage;
}

void vm_service_rstage_put(struct vm_service *s, void *slot)
{
	assert(svc_self == s && s->nrstage < SVC_RSTAGE_SLOTS);
	s->rstage_free[s->nrstage++] = slot;
}

void *vm_service_wstage_get(struct vm_service *s, size_t len)
{
	const size_t need = (len + RAM_PAGE_4K - 1) & ~(RAM_PAGE_4K - 1);

	assert(svc_self == s || s->lent);
	if (!s->wstage || need > SVC_WSTAGE_BYTES - s->wstage_used)
		return NULL;
	void *p = s->wstage + s->wstage_used;

	s->wstage_used += need;
	s->wstage_holders++;
	return p;
}

void vm_service_wstage_put(struct vm_service *s)
{
	assert((svc_self == s || s->lent) && s->wstage_holders > 0);
	if (--s->wstage_holders == 0)
		s->wstage_used = 0;
}

struct rpio_queue *vm_service_queue(struct vm_service *s)
{
	return s->q;
}

/* Starts what a job asks for on s's queue: 0 when done with it (issued, or finished),
 * -EBUSY when the queue is full (try again after completions), or -EAGAIN when the job
 * waits for something of this thread's that a completion gives back (a staging slot):
 * the jobs behind it may go first. */
static int job_issue(struct vm_service *s, struct vm_job *job)
{
	assert(job->ops->issue); /* a write run is never queued on its own */
	return job->ops->issue(job, s);
}

static void backlog_issue(struct vm_service *s)
{
	struct vm_job *wait_head = NULL, *wait_tail = NULL; /* -EAGAIN, in their order */

	while (s->backlog_head) {
		/* Unlinked before it is issued: issuing may free it, or queue more work. */
		struct vm_job *job = s->backlog_head;

		s->backlog_head = job->qnext;
		if (!s->backlog_head)
			s->backlog_tail = NULL;
		const int r = job_issue(s, job);

		if (r == -EBUSY) {
			job->qnext = s->backlog_head;
			s->backlog_head = job;
			if (!s->backlog_tail)
				s->backlog_tail = job;
			break;
		}
		if (r == -EAGAIN)
			chain_append(&wait_head, &wait_tail, job, job);
	}
	if (wait_head) { /* back in front, as they were */
		wait_tail->qnext = s->backlog_head;
		s->backlog_head = wait_head;
		if (!s->backlog_tail)
			s->backlog_tail = wait_tail;
	}
}

static void take_jobs(struct vm_service *s)
{
	struct vm *vm = s->vm;
	struct vm_job *job;

	pthread_mutex_lock(&vm->jobs_lock);
	job = vm->jobs_head;
	vm->jobs_head = vm->jobs_tail = NULL;
	if (s->own_head) { /* its own first: they were handed to it for its CPU */
		s->own_tail->qnext = job;
		job = s->own_head;
		s->own_head = s->own_tail = NULL;
		s->own_taken++;
	}
	if (s->detach) {
		rpio_queue_detach(s->q, s->detach);
		s->detach = NULL;
		pthread_cond_broadcast(&vm->jobs_cv);
	}
	pthread_mutex_unlock(&vm->jobs_lock);
	while (job) {
		struct vm_job *next = job->qnext;

		backlog_push(s, job);
		job = next;
	}
}

/* Completes a reaped request through its job's ops (a fault's read counted off). */
static void finish_cqe(struct vm_service *s, const struct rpio_cqe *c)
{
	struct vm_job *job = c->udata;

	if (job->spin && s->fault_reads)
		s->fault_reads--;
	job->ops->complete(job, c->res < 0 ? (int)c->res : 0);
}

/* Completes every finished request; returns how many. One at a time, looking for new
 * completions after each, and those a thread is blocked on (job->urgent: a fault's own
 * read, or a window's run a fault waits for) before the others: a stream's window
 * finishes in 1 MiB runs, each copied into its mapping in 0.2-3 ms, and a fault's read
 * that completed with them or meanwhile waited for all of them (docs/benchmarks.md, "A
 * fault's read before a window's runs"). A listening thread also reads the userfaultfd
 * between finishes, at most every SVC_LOOK_NS: a fault that came meanwhile would
 * otherwise wait for the whole reap, and a fault on a page that a finish has just put in
 * place sleeps until its message is read (docs/benchmarks.md, "Faults read between
 * finishes"). */
static unsigned read_faults(struct vm_service *s);

static int reap(struct vm_service *s)
{
	struct vm *vm = s->vm;
	struct vm_reaped r; /* 3 KiB: only its count is set */
	struct rpio_cqe got[SVC_CQES], c;
	int total = 0;
	uint64_t looked = 0; /* when the userfaultfd was last read here; 0: nothing finished */

	r.n = 0;
	for (;;) {
		const int n = vm_reaped_room(&r) >= SVC_CQES ? rpio_reap(s->q, got, SVC_CQES, 0) : 0;

		if (n > 0) {
			/* The slots are free again: start what waits for them first, together
			 * (the queue held while they are staged: one system call, and one
			 * notification of the device, for the lot), then finish the completions
			 * (a page copied in, mapped, waiters woken), so that the device does not
			 * wait for that work. A queue that is not full starts each request as it
			 * is staged instead (submit_batch 1): docs/design.md, "The I/O layer". */
			if (s->backlog_head) {
				rpio_queue_hold(s->q, true);
				backlog_issue(s);
				rpio_queue_hold(s->q, false);
				const int k = rpio_submit(s->q);

				if (k > 0)
					atomic_fetch_add_explicit(&s->refilled, (uint64_t)k,
					                          memory_order_relaxed);
			}
			for (int i = 0; i < n; i++)
				vm_reaped_add(&r, &got[i],
				              atomic_load_explicit(&((struct vm_job *)got[i].udata)->urgent,
				                                   memory_order_relaxed));
			total += n;
		}
		if (!vm_reaped_take(&r, &c))
			break;
		const bool listens =
		    !vm->fault_self && (atomic_load(&vm->listen_mask) & (1ull << s->id));

		if (listens && !looked)
			looked = vm_now_ns(); /* the clock is read only once there is a finish */
		finish_cqe(s, &c);
		backlog_issue(s);
		if (!listens)
			continue;
		const uint64_t now = vm_now_ns();

		if (now - looked >= SVC_LOOK_NS) {
			const unsigned k = read_faults(s);

			looked = now;
			if (k)
				atomic_fetch_add_explicit(&s->faults_between, k, memory_order_relaxed);
		}
	}
	return total;
}

/* The service threads started so far: read by running threads while later ones start. */
static unsigned svc_count(const struct vm *vm)
{
	return __atomic_load_n(&vm->nsvc, __ATOMIC_ACQUIRE);
}

/* The CPU that thread tid of this process last ran on (field 39 of its stat), or -1. */
static int thread_cpu(uint32_t tid)
{
	char path[64], buf[1024];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%" PRIu32 "/stat", tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The name (field 2) is in parentheses and may hold any byte: count from its end. */
	const char *p = strrchr(buf, ')');

	for (int field = 2; p && field < 39; field++)
		p = strchr(p + 1, ' ');
	if (!p || p[1] < '0' || p[1] > '9')
		return -1;
	return atoi(p + 1);
}

uint64_t vm_listen_keep_ns = LISTEN_KEEP_NS; /* a test may lengthen it (vm/testing.h) */

/* The service thread that should listen for thread tid (the comment at the top): that of
 * the one CPU it is bound to, else that of the CPU it last ran on; -1 when there is none,
 * the thread is gone, its CPU cannot be told, or another unbound thread faulted within
 * LISTEN_KEEP_NS. */
static int listener_of(struct vm *vm, uint32_t tid, uint64_t now)
{
	cpu_set_t set;

	if (sched_getaffinity((pid_t)tid, sizeof(set), &set) < 0)
		return -1;
	if (CPU_COUNT(&set) != 1) {
		/* another unbound thread faulted lately: all listen (the comment at the top) */
		const uint32_t other = atomic_exchange(&vm->unbound_tid, tid);
		const uint64_t when = atomic_exchange(&vm->unbound_ns, now);

		if (other != tid && other && now - when < vm_listen_keep_ns)
			return -1;
		const int cpu = vm->no_thread_cpu ? -1 : thread_cpu(tid);

		if (cpu < 0 || cpu >= CPU_SETSIZE)
			return -1;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	}
	for (unsigned i = 0; i < svc_count(vm); i++)
		if (vm->svc[i].cpu >= 0 && CPU_ISSET(vm->svc[i].cpu, &set))
			return (int)i;
	return -1;
}

/* A fault from thread tid: sets who listens, at most once per LISTEN_ASK_NS for the same
 * thread, and kicks the service threads whose bit changed. Concurrent calls each leave
 * a mask that holds what their thread asked for. */
static void listen_for(struct vm_service *s, uint32_t tid)
{
	struct vm *vm = s->vm;
	uint64_t now = vm_now_ns(), mask = 0;
	unsigned slot = 0;

	for (unsigned i = 0; i < SVC_ASKED; i++) {
		if (s->asked[i].tid == tid) {
			if (now - s->asked[i].ns < LISTEN_ASK_NS)
				return;
			slot = i;
			break;
		}
		if (s->asked[i].ns < s->asked[slot].ns)
			slot = i;
	}
	s->asked[slot].tid = tid;
	s->asked[slot].ns = now;
	int at = listener_of(vm, tid, now);

	if (at < 0)
		atomic_store_explicit(&vm->listen_all_ns, now, memory_order_relaxed);
	if (now - atomic_load_explicit(&vm->listen_all_ns, memory_order_relaxed) < vm_listen_keep_ns)
		mask = vm_listen_all(vm);
	for (unsigned i = 0; i < svc_count(vm); i++) {
		struct vm_service *o = &vm->svc[i];

		if ((int)i == at) {
			atomic_store_explicit(&o->seen_ns, now, memory_order_relaxed);
			atomic_store_explicit(&o->seen_tid, tid, memory_order_relaxed);
		} else if (atomic_load_explicit(&o->seen_tid, memory_order_relaxed) == tid) {
			atomic_store_explicit(&o->seen_ns, 0, memory_order_relaxed); /* bound elsewhere */
		}
		if (now - atomic_load_explicit(&o->seen_ns, memory_order_relaxed) < vm_listen_keep_ns)
			mask |= 1ull << i;
	}
	if (!mask) /* all it asked for lapsed meanwhile: never nobody */
		mask = vm_listen_all(vm);
	if (atomic_load(&vm->listen_mask) == mask)
		return;
	uint64_t old = atomic_exchange(&vm->listen_mask, mask);

	for (unsigned i = 0; i < svc_count(vm); i++)
		if ((mask ^ old) & (1ull << i))
			(void)eventfd_write(vm->svc[i].kick_fd, 1);
}

/* Serves the fault messages waiting on the userfaultfd; returns how many it read. */
static unsigned read_faults(struct vm_service *s)
{
	struct vm *vm = s->vm;
	struct uffd_msg msg[SVC_MSGS];
	unsigned total = 0;

	for (;;) {
		ssize_t n = read(vm->uffd, msg, sizeof(msg));

		if (n <= 0)
			return total; /* EAGAIN: another thread took them, or none left */
		const size_t got = (size_t)n / sizeof(msg[0]);

		total += (unsigned)got;
		for (size_t i = 0; i < got; i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = msg[i].arg.pagefault.address & ~(uint64_t)(vm->psz - 1);
			uint64_t flags = msg[i].arg.pagefault.flags;

			if (flags & UFFD_PAGEFAULT_FLAG_WP)
				vm->fault_ops->wp_fault(vm, addr);
			else
				vm->fault_ops->fault(vm, s, addr, (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0,
				                     0);
			/* After the fault: a cold one's read is in flight meanwhile, and a minor
			 * one's thread is awake again, on the CPU its next fault will come from. */
			if (vm->listen_chosen)
				listen_for(s, msg[i].arg.pagefault.feat.ptid);
		}
		if ((size_t)n < sizeof(msg))
			return total;
	}
}

/* Polls the queue for completions for up to fault_spin_us while a fault's read is in
 * flight (the comment at the top says why). Returns true when it reaped some; false
 * after the time, or at once when a fault message or a job is waiting. */
static bool spin(struct vm_service *s)
{
	struct vm *vm = s->vm;
	struct pollfd pfd[2] = {{.fd = vm->uffd, .events = POLLIN},
	                        {.fd = s->kick_fd, .events = POLLIN}};
	uint64_t t0 = vm_now_ns();

	for (unsigned i = 1;; i++) {
		if (reap(s) > 0)
			return true;
		if (i % 16 == 0 && (poll(pfd, 2, 0) > 0 || vm_now_ns() - t0 >= vm->spin_ns))
			return false;
		rpio_cpu_relax();
	}
}

/* The write staging area, pre-faulted; none without bounce pages (VM_NO_BOUNCE). */
static void wstage_make(struct vm_service *s)
{
	s->wstage = s->vm->no_bounce ? MAP_FAILED
	                             : mmap(NULL, SVC_WSTAGE_BYTES, PROT_READ | PROT_WRITE,
	                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (s->wstage == MAP_FAILED)
		s->wstage = NULL;
}

static void wstage_free(struct vm_service *s)
{
	if (s->wstage)
		munmap(s->wstage, SVC_WSTAGE_BYTES);
	s->wstage = NULL;
}

static void set_ready(struct vm_service *s, int v)
{
	pthread_mutex_lock(&s->ready_lock);
	s->ready = v;
	pthread_cond_broadcast(&s->ready_cv);
	pthread_mutex_unlock(&s->ready_lock);
}

static void *service_main(void *arg)
{
	struct vm_service *s = arg;
	struct vm *vm = s->vm;
	int err;

	if (s->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(s->cpu, &set);
		(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	svc_self = s;
	/* The queue is opened on this thread: it is its only user (io_uring SINGLE_ISSUER). */
	err = rpio_queue_open(&s->qp, &s->q, s->msg, sizeof(s->msg));
	set_ready(s, err < 0 ? err : 1);
	if (err < 0)
		return NULL;
	/* Two per slot: a slot's next load is issued before the finish that gives its
	 * bounce page back (reap). Without them (no memory), loads read into the alias. */
	s->nbounce_max = 2 * (size_t)s->qp.depth < SVC_BOUNCE_MAX ? 2 * (size_t)s->qp.depth
	                                                           : SVC_BOUNCE_MAX;
	s->bounce_free = vm->no_bounce ? NULL : calloc(s->nbounce_max, sizeof(void *));
	s->bounce = s->bounce_free ? mmap(NULL, s->nbounce_max * RAM_PAGE_4K, PROT_READ | PROT_WRITE,
	                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
	                           : MAP_FAILED;
	if (s->bounce == MAP_FAILED)
		s->bounce = NULL;
	for (size_t i = 0; s->bounce && i < s->nbounce_max; i++)
		s->bounce_free[s->nbounce++] = s->bounce + i * RAM_PAGE_4K;
	wstage_make(s);
	for (;;) {
		/* Issue first, then reap: a request failed by failure injection or validation
		 * completes at once without signalling the queue's eventfd, so it must be
		 * reaped before the thread sleeps in poll (reap issues the backlog again). */
		backlog_issue(s);
		reap(s);
		if (atomic_load(&vm->stopping) && !s->backlog_head && !rpio_queue_inflight(s->q))
			break;
		if (!rpio_queue_inflight(s->q))
			s->fault_reads = 0; /* a custom store's loads complete elsewhere */
		else if (s->fault_reads && vm->spin_ns && !s->backlog_head && spin(s))
			continue;
		/* Not a listener: poll ignores the entry (fd -1), and a fault does not wake this
		 * thread (the comment at the top). A kick brings it back. */
		const bool listen = atomic_load(&vm->listen_mask) & (1ull << s->id);

		atomic_store_explicit(&s->polls_uffd, listen, memory_order_relaxed);
		struct pollfd pfd[3] = {
		    {.fd = listen ? vm->uffd : -1, .events = POLLIN},
		    {.fd = s->kick_fd, .events = POLLIN},
		    {.fd = s->io_fd, .events = POLLIN},
		};

		if (poll(pfd, 3, -1) < 0)
			continue; /* EINTR */
		eventfd_t v;

		if (pfd[2].revents)
			(void)eventfd_read(s->io_fd, &v);
		if (pfd[1].revents) {
			(void)eventfd_read(s->kick_fd, &v);
			take_jobs(s);
		}
		if (pfd[0].revents)
			(void)read_faults(s);
	}
	rpio_queue_close(s->q);
	s->q = NULL;
	if (s->bounce)
		munmap(s->bounce, s->nbounce_max * RAM_PAGE_4K);
	wstage_free(s);
	if (s->rstage)
		munmap(s->rstage, SVC_RSTAGE_SLOTS * VM_RSTAGE_BYTES);
	free(s->bounce_free);
	return NULL;
}

void vm_service_submit(struct vm *vm, struct vm_service *svc, struct vm_job *job)
{
	if (svc) {
		if (job->spin)
			svc->fault_reads++;
		if (svc->backlog_head || job_issue(svc, job) < 0) /* -EBUSY, -EAGAIN */
			backlog_push(svc, job);
		return;
	}
	vm_service_hand(vm, job, job);
}

void vm_service_defer(struct vm *vm, struct vm_job *job)
{
	if (svc_self && svc_self->vm == vm) {
		backlog_push(svc_self, job); /* issued when this thread next looks at it */
		return;
	}
	vm_service_hand(vm, job, job);
}

#define HAND_LOCAL (-1)  /* the thread of the caller's CPU, else the next in turn */
#define HAND_SPREAD (-2) /* the next in turn */
/* Queues a chain of jobs for any service thread and kicks one: thread `to`, or with
 * HAND_LOCAL the thread of the caller's CPU when there is one. The caller mostly waits
 * for the work (rp_pin, a synchronous writeout), and that thread then runs as soon as it
 * sleeps and wakes it from the same CPU, with no interrupt to another, idle one. With
 * HAND_SPREAD the threads in turn, which spreads a long pin's copying and mapping over
 * the CPUs. Any thread takes any job: this is only where the kick goes. */
static void hand(struct vm *vm, struct vm_job *head, struct vm_job *tail, int to)
{
	pthread_mutex_lock(&vm->jobs_lock);
	chain_append(&vm->jobs_head, &vm->jobs_tail, head, tail);
	unsigned k = to >= 0 ? (unsigned)to : vm->next_kick++ % svc_count(vm);

	if (to == HAND_LOCAL && vm->bound) {
		const int cpu = sched_getcpu();

		for (unsigned i = 0; i < svc_count(vm); i++)
			if (vm->svc[i].cpu == cpu)
				k = i;
	}
	pthread_mutex_unlock(&vm->jobs_lock);
	(void)eventfd_write(vm->svc[k].kick_fd, 1);
}

void vm_service_hand_wo(struct vm *vm, struct vm_job *job)
{
	hand(vm, job, job,
	     vm->bound && svc_count(vm) > 1 ? (int)(vm_choice_pick(&vm->wo_ways) % svc_count(vm))
	                                    : HAND_LOCAL);
}

void vm_service_wo_synced(uint64_t ns)
{
	if (svc_self && svc_self->vm->bound)
		vm_choice_record(&svc_self->vm->wo_ways, svc_self->id, ns);
}

void vm_service_hand(struct vm *vm, struct vm_job *head, struct vm_job *tail)
{
	hand(vm, head, tail, HAND_LOCAL);
}

void vm_service_hand_spread(struct vm *vm, struct vm_job *head, struct vm_job *tail)
{
	hand(vm, head, tail, HAND_SPREAD);
}

/* To one thread's own list: another CPU's (the others in turn) or this CPU's. */
static void hand_own(struct vm *vm, struct vm_job *head, struct vm_job *tail, bool other)
{
	const int cpu = sched_getcpu();
	const unsigned n = svc_count(vm);
	unsigned local = 0;

	if (!vm->bound || n < 2) {
		hand(vm, head, tail, other ? HAND_SPREAD : HAND_LOCAL);
		return;
	}
	while (local < n - 1 && vm->svc[local].cpu != cpu) /* this CPU's thread, else the last */
		local++;
	pthread_mutex_lock(&vm->jobs_lock);
	/* the other threads in turn, where there are more than two */
	struct vm_service *s =
	    &vm->svc[other ? (local + 1 + vm->next_kick++ % (n - 1)) % n : local];

	chain_append(&s->own_head, &s->own_tail, head, tail);
	pthread_mutex_unlock(&vm->jobs_lock);
	(void)eventfd_write(s->kick_fd, 1);
}

void vm_service_hand_other(struct vm *vm, struct vm_job *head, struct vm_job *tail)
{
	hand_own(vm, head, tail, true);
}

void vm_service_hand_this(struct vm *vm, struct vm_job *head, struct vm_job *tail)
{
	hand_own(vm, head, tail, false);
}

void vm_service_detach(struct vm *vm, struct rpio_dev *dev)
{
	/* The queues are single-issuer: each thread must drop its registration itself. */
	pthread_mutex_lock(&vm->jobs_lock);
	for (unsigned i = 0; i < svc_count(vm); i++) {
		vm->svc[i].detach = dev;
		(void)eventfd_write(vm->svc[i].kick_fd, 1);
	}
	for (unsigned i = 0; i < svc_count(vm); i++)
		while (vm->svc[i].detach)
			pthread_cond_wait(&vm->jobs_cv, &vm->jobs_lock);
	/* A lent queue is used by the thread it is lent to: it drops the registration once
	 * given back. A writeout lent one finishes in its caller without a store closing. */
	while (vm->nlend_out)
		pthread_cond_wait(&vm->jobs_cv, &vm->jobs_lock);
	for (struct vm_service *l = vm->lend_all; l; l = l->lall)
		rpio_queue_detach(l->q, dev);
	pthread_mutex_unlock(&vm->jobs_lock);
}

struct vm_service *vm_service_lend(struct vm *vm)
{
	struct vm_service *l;

	pthread_mutex_lock(&vm->jobs_lock);
	if (vm->no_lend) {
		pthread_mutex_unlock(&vm->jobs_lock);
		return NULL;
	}
	if ((l = vm->lend_free)) {
		vm->lend_free = l->lnext;
		vm->nlend_out++;
		pthread_mutex_unlock(&vm->jobs_lock);
		return l;
	}
	if (vm->lend_failed || vm->nlend >= VM_LEND_MAX || atomic_load(&vm->stopping)) {
		pthread_mutex_unlock(&vm->jobs_lock);
		return NULL;
	}
	vm->nlend_out++; /* one being made: vm_service_detach waits for it too */
	pthread_mutex_unlock(&vm->jobs_lock);
	l = calloc(1, sizeof(*l));
	int err = l ? rpio_queue_open(&vm->lend_qp, &l->q, l->msg, sizeof(l->msg)) : -ENOMEM;

	pthread_mutex_lock(&vm->jobs_lock);
	if (err < 0) {
		free(l);
		l = NULL;
		vm->lend_failed = true; /* the writeouts go to the service threads */
		vm->nlend_out--;
		pthread_cond_broadcast(&vm->jobs_cv);
	} else {
		l->vm = vm;
		l->lent = true;
		l->cpu = -1;
		l->kick_fd = l->io_fd = -1;
		wstage_make(l);
		l->lall = vm->lend_all;
		vm->lend_all = l;
		vm->nlend++;
	}
	pthread_mutex_unlock(&vm->jobs_lock);
	return l;
}

void vm_service_give_back(struct vm *vm, struct vm_service *l)
{
	assert(l->lent && !rpio_queue_inflight(l->q) && !l->wstage_holders);
	pthread_mutex_lock(&vm->jobs_lock);
	l->lnext = vm->lend_free;
	vm->lend_free = l;
	vm->nlend_out--;
	pthread_cond_broadcast(&vm->jobs_cv);
	pthread_mutex_unlock(&vm->jobs_lock);
}

int vm_service_wait(struct vm_service *l)
{
	struct rpio_cqe cqe[SVC_CQES];
	int n = rpio_reap(l->q, cqe, SVC_CQES, 1);

	for (int i = 0; i < n; i++)
		finish_cqe(l, &cqe[i]);
	return n;
}

/* Frees the lent queues and staging areas; none is lent out (vm_close). */
static void lend_free_all(struct vm *vm)
{
	while (vm->lend_all) {
		struct vm_service *l = vm->lend_all;

		vm->lend_all = l->lall;
		rpio_queue_close(l->q);
		wstage_free(l);
		free(l);
	}
	vm->lend_free = NULL;
	vm->nlend = 0;
}

/* The bits of n service threads (at most VM_MAX_FAULT_THREADS, 64). */
static uint64_t all_bits(unsigned n)
{
	return n >= 64 ? ~0ull : (1ull << n) - 1;
}

static void service_free(struct vm_service *s)
{
	if (s->kick_fd >= 0)
		close(s->kick_fd);
	if (s->io_fd >= 0)
		close(s->io_fd);
	pthread_mutex_destroy(&s->ready_lock);
	pthread_cond_destroy(&s->ready_cv);
}

int vm_service_start(struct vm *vm, const struct vm_params *p)
{
	int cpus[VM_MAX_FAULT_THREADS];
	unsigned n = p->fault_threads;
	int err = 0;

	if (n == 0) { /* one per CPU the process may use, each bound to it */
		cpu_set_t set;

		if (sched_getaffinity(0, sizeof(set), &set) < 0)
			CPU_ZERO(&set);
		for (int c = 0; c < CPU_SETSIZE && n < VM_MAX_FAULT_THREADS; c++)
			if (CPU_ISSET(c, &set))
				cpus[n++] = c;
		if (n == 0)
			cpus[n++] = -1;
		vm->bound = cpus[0] >= 0;
	} else {
		for (unsigned i = 0; i < n; i++)
			cpus[i] = -1;
	}

	vm->svc = calloc(n, sizeof(*vm->svc));
	if (!vm->svc)
		return vm_errf(-ENOMEM, "out of memory");
	/* All listen until a fault says which may not; only bound service threads of a
	 * userfaultfd whose messages name the faulting thread narrow it. */
	vm->listen_chosen = vm->bound && n > 1 && !vm->fault_self &&
	                    (vm->uffd_features & UFFD_FEATURE_THREAD_ID);
	atomic_store(&vm->listen_mask, all_bits(n)); /* vm->nsvc counts them as they start */
	vm_choice_init(&vm->wo_ways, vm->bound ? n : 1);
	/* A lent queue serves whichever thread it is lent to, one at a time, which submits a
	 * phase's requests with one call and then waits: no kernel thread polls it. */
	vm->lend_qp = p->queue;
	vm->lend_qp.single_thread = false;
	vm->lend_qp.notify = false;
	vm->lend_qp.sqpoll = false;
	for (unsigned i = 0; i < n; i++) {
		struct vm_service *s = &vm->svc[i];

		s->vm = vm;
		s->id = i;
		s->cpu = cpus[i];
		s->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		s->io_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		pthread_mutex_init(&s->ready_lock, NULL);
		pthread_cond_init(&s->ready_cv, NULL);
		/* Published after the thread's fields it covers: running service threads
		 * read it while the next ones start. */
		__atomic_store_n(&vm->nsvc, i + 1, __ATOMIC_RELEASE);
		if (s->kick_fd < 0 || s->io_fd < 0) {
			err = vm_errf(-errno, "eventfd: %s", strerror(errno));
			break;
		}
		s->qp = p->queue;
		s->qp.single_thread = true;
		s->qp.notify = true;
		s->qp.notify_fd = s->io_fd;
		err = -pthread_create(&s->thread, NULL, service_main, s);
		if (err) {
			vm_errf(err, "cannot start fault-service thread %u: %s", i, strerror(-err));
			break;
		}
		s->started = true;
		pthread_mutex_lock(&s->ready_lock);
		while (!s->ready)
			pthread_cond_wait(&s->ready_cv, &s->ready_lock);
		pthread_mutex_unlock(&s->ready_lock);
		if (s->ready < 0) {
			err = vm_errf(s->ready, "io queue: %s", s->msg);
			break;
		}
	}
	if (err) {
		vm_service_stop(vm);
		return err;
	}
	return 0;
}

int vm_service_cpu(const struct vm *vm, unsigned i)
{
	return i < svc_count(vm) ? vm->svc[i].cpu : -1;
}

uint64_t vm_service_own_taken(struct vm *vm, int which)
{
	uint64_t n = 0;

	pthread_mutex_lock(&vm->jobs_lock);
	for (unsigned i = 0; i < svc_count(vm); i++)
		if (which < 0 || (unsigned)which == i)
			n += vm->svc[i].own_taken;
	pthread_mutex_unlock(&vm->jobs_lock);
	return n;
}

/* The sum over the service threads of the counter at offset `off` of struct vm_service. */
static uint64_t svc_sum(struct vm *vm, size_t off)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < svc_count(vm); i++)
		n += atomic_load_explicit((_Atomic uint64_t *)((char *)&vm->svc[i] + off),
		                          memory_order_relaxed);
	return n;
}

uint64_t vm_service_faults_between(struct vm *vm)
{
	return svc_sum(vm, offsetof(struct vm_service, faults_between));
}

uint64_t vm_service_refilled(struct vm *vm)
{
	return svc_sum(vm, offsetof(struct vm_service, refilled));
}

uint64_t vm_listening(const struct vm *vm)
{
	uint64_t mask = 0;

	for (unsigned i = 0; i < svc_count(vm); i++)
		if (atomic_load_explicit(&vm->svc[i].polls_uffd, memory_order_relaxed))
			mask |= 1ull << i;
	return mask;
}

uint64_t vm_listen_all(const struct vm *vm)
{
	return all_bits(svc_count(vm));
}

/* The io backend's description, from the first thread's queue. */
const char *vm_service_describe(const struct vm *vm)
{
	return svc_count(vm) && vm->svc[0].q ? rpio_queue_describe(vm->svc[0].q) : "";
}

void vm_service_stop(struct vm *vm)
{
	atomic_store(&vm->stopping, true);
	for (unsigned i = 0; i < svc_count(vm); i++)
		if (vm->svc[i].kick_fd >= 0)
			(void)eventfd_write(vm->svc[i].kick_fd, 1);
	for (unsigned i = 0; i < svc_count(vm); i++) {
		if (vm->svc[i].started)
			pthread_join(vm->svc[i].thread, NULL);
		service_free(&vm->svc[i]);
	}
	free(vm->svc);
	vm->svc = NULL;
	__atomic_store_n(&vm->nsvc, 0, __ATOMIC_RELEASE);
	lend_free_all(vm);
}
