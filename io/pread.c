/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/pread.c - synchronous reads on the calling thread, without a queue (rpio_pread): the
 * faulting thread's own page in fault_mode=sigbus.
 *
 * Polling for the completion. A thread that sleeps in pread(2) for a 4 KiB O_DIRECT read
 * idles its CPU, and an idle virtual CPU halts: the device's completion must then wake
 * it, a sizable part of a 4 KiB read on a virtual machine (docs/benchmarks.md, "Design
 * choices"). So with
 * spin_ns > 0 the read goes through a small io_uring of the thread's own and the thread
 * polls its completion queue for up to spin_ns before it sleeps in io_uring_enter(2):
 * the CPU stays awake and the completion is seen when it is posted. The price is that CPU
 * time, taken from other threads that want the CPU; the faulting thread could do nothing
 * else meanwhile. The same trade as the service threads' fault_spin_us (vm/service.c).
 *
 * The ring: 4 entries, one read in flight at most, made at the thread's first such read
 * and closed when the thread ends (a thread-specific key's destructor); in the child of a
 * fork the forking thread's copy is dropped at once (a fork handler) and a new ring made
 * at its first read, so that parent and child never share one. The ring costs the thread
 * a file descriptor. Where it cannot be made (io_uring missing or disabled, no descriptor
 * left), or a submission fails, the thread reads with pread(2) from then on:
 * rpio_pread_ring says which, and why.
 *
 * rpio_pread runs in a signal handler (vm/sigbus.c): after rpio_pread_prepare, which
 * registers the key and the fork handler (either may allocate) and which vm/sigbus.c
 * calls when an engine opens, it makes only system calls and mmaps (liburing's setup and
 * teardown) and stores the thread's key.
 */
#include "io/io.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PREAD_RING_ENTRIES 4

static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static pthread_key_t ring_key;
static int ring_key_err; /* pthread_key_create's error: no destructor, so no ring */
static _Thread_local struct io_uring ring;
static _Thread_local int ring_state; /* 0 not tried, 1 ready, -errno: pread(2) */
static _Atomic int ring_forbidden;   /* rpio_pread_ring_forbid (tests) */

static void ring_free(void *p)
{
	io_uring_queue_exit(p);
}

/* In the child of a fork, the forking thread's ring is the parent's too: drop this
 * process's copy of it (munmap, close), the parent's stays. */
static void ring_atfork_child(void)
{
	if (ring_state == 1)
		io_uring_queue_exit(&ring);
	ring_state = 0;
}

static void ring_key_init(void)
{
	ring_key_err = pthread_key_create(&ring_key, ring_free);
	if (!ring_key_err)
		ring_key_err = pthread_atfork(NULL, NULL, ring_atfork_child);
}

void rpio_pread_prepare(void)
{
	(void)pthread_once(&ring_once, ring_key_init);
}

static struct io_uring *thread_ring(void)
{
	if (ring_state == 1)
		return &ring;
	if (ring_state < 0)
		return NULL;
	rpio_pread_prepare();
	if (ring_key_err) {
		ring_state = -ring_key_err;
		return NULL;
	}
	if (atomic_load(&ring_forbidden)) {
		ring_state = -EPERM;
		return NULL;
	}
	int err = io_uring_queue_init(PREAD_RING_ENTRIES, &ring, 0);

	if (err < 0) {
		ring_state = err;
		return NULL;
	}
	err = pthread_setspecific(ring_key, &ring);
	if (err) {
		io_uring_queue_exit(&ring);
		ring_state = -err;
		return NULL;
	}
	ring_state = 1;
	return &ring;
}

/* A submission that failed may have left its entry in the ring, where a later one would
 * start it: the ring is not used again. */
static void ring_drop(int err)
{
	(void)pthread_setspecific(ring_key, NULL);
	io_uring_queue_exit(&ring);
	ring_state = err < 0 ? err : -EIO;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One read through the thread's ring, polled for up to spin_ns: bytes read or -errno;
 * -ECANCELED when it could not be submitted (the caller reads with pread then). */
static ssize_t ring_read(struct io_uring *r, int fd, void *buf, size_t len, uint64_t off,
                         uint64_t spin_ns)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	struct io_uring_cqe *cqe = NULL;
	int err;

	if (!sqe) { /* cannot be: one read at a time */
		ring_drop(-EBUSY);
		return -ECANCELED;
	}
	io_uring_prep_read(sqe, fd, buf, (unsigned)len, off);
	err = io_uring_submit(r);
	if (err != 1) {
		ring_drop(err);
		return -ECANCELED;
	}
	const uint64_t t0 = now_ns();

	for (unsigned i = 1; io_uring_peek_cqe(r, &cqe) != 0; i++) {
		if (i % 16 == 0 && now_ns() - t0 >= spin_ns) {
			/* The read is in flight into buf: wait for it whatever the wait says
			 * (EINTR: a signal handled meanwhile). */
			while (io_uring_wait_cqe(r, &cqe) != 0)
				;
			break;
		}
		rpio_cpu_relax();
	}
	ssize_t res = cqe->res;

	io_uring_cqe_seen(r, cqe);
	return res;
}

/* Whether d's reads through a ring are issued at once, on this thread. A file whose
 * read would block in its submission (no RWF_NOWAIT: tmpfs, many network and FUSE
 * filesystems; any buffered file whose pages are not cached) is handed by io_uring to a
 * worker thread, whose wake-up costs more than the polling saves. One probe per device: a read of its first block with
 * RWF_NOWAIT, which such a file refuses (EOPNOTSUPP) before any I/O. */
static bool ring_reads(struct rpio_dev *d, void *buf)
{
	int v = __atomic_load_n(&d->ring_reads, __ATOMIC_RELAXED);

	if (!v) {
		struct iovec iov = {.iov_base = buf, .iov_len = d->off_align};
		ssize_t n = d->buffered || d->size < d->off_align
		                ? -1
		                : preadv2(d->fd, &iov, 1, 0, RWF_NOWAIT);

		v = n >= 0 || errno == EAGAIN ? 1 : -1;
		__atomic_store_n(&d->ring_reads, v, __ATOMIC_RELAXED);
	}
	return v > 0;
}

int64_t rpio_pread(struct rpio_dev *d, uint64_t off, void *buf, size_t len, uint64_t spin_ns)
{
	size_t done = 0;
	unsigned retries = 0;
	int inj;

	if (!len || off % d->off_align || len % d->off_align || (uintptr_t)buf % d->mem_align)
		return -EINVAL;
	struct io_uring *r =
	    spin_ns && len <= UINT32_MAX && ring_reads(d, buf) ? thread_ring() : NULL;

	/* One request, as rpio_read's: failure injection sees it once; an injected EINTR or
	 * EAGAIN is retried like a device's, and the retry reaches the device. */
	inj = rpio_fault_check(d, IO_OP_READ, off);
	while (done < len) {
		ssize_t n = -ECANCELED;

		if (inj) {
			n = -inj;
			inj = 0;
		} else if (r) {
			n = ring_read(r, d->fd, (char *)buf + done, len - done, off + done,
			              spin_ns);
			if (n == -ECANCELED)
				r = NULL;
		}
		if (n == -ECANCELED) {
			n = pread(d->fd, (char *)buf + done, len - done, (off_t)(off + done));
			if (n < 0)
				n = -errno;
		}
		if (n < 0) {
			if ((n == -EINTR || n == -EAGAIN) && ++retries <= IO_MAX_RETRIES)
				continue;
			return n;
		}
		done += (size_t)n;
		/* Past the end, or stopped where O_DIRECT cannot continue: zeros, as rpio_read. */
		if (done < len &&
		    (n == 0 || off + done >= d->size || (off + done) % d->off_align)) {
			memset((char *)buf + done, 0, len - done);
			break;
		}
	}
	return (int64_t)len;
}

int rpio_pread_ring(void)
{
	return ring_state;
}

void rpio_pread_ring_forbid(bool forbid)
{
	atomic_store(&ring_forbidden, forbid);
}
