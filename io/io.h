/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/io.h - ringpager's asynchronous block I/O layer: the contract.
 *
 * Every byte that moves between a store and RAM goes through here: page loads, readahead
 * windows, writeout. The layer knows nothing of pages, mappings or pools; it moves bytes
 * between (device, offset) and caller buffers.
 *
 * Objects
 *   struct rpio_dev    an opened file or block device: fd, size, O_DIRECT alignment.
 *                    Shared by any number of queues; immutable after open except for the
 *                    failure-injection hook, which is safe to arm from any thread.
 *   struct rpio_queue  one submission/completion queue over one backend (io_uring, libaio,
 *                    psync). A queue is used by one thread at a time; with
 *                    `single_thread` it must be the thread that opened it (io_uring then
 *                    runs with SINGLE_ISSUER | DEFER_TASKRUN). Queues are cheap: one per
 *                    thread that does I/O.
 *
 * Request life cycle
 *   rpio_read / rpio_write / rpio_fdatasync  stage a request (it takes one of `depth` slots);
 *   rpio_submit                          starts every staged request, in one system call
 *                                      where the backend allows (submit_batch, IO_HOLD
 *                                      and rpio_queue_hold say when staging starts them);
 *   rpio_reap                            returns completions: (udata, res, flags).
 *   A slot is free again once its completion has been returned by rpio_reap.
 *
 * What the layer guarantees on top of every backend (io/queue.c does it once):
 *   - validation: a request whose offset, length or buffer address is not a multiple of
 *     the device's O_DIRECT alignment gets -EINVAL at once, and rpio_queue_error() names
 *     the offending value and the alignment; a write to a read-only device gets -EBADF;
 *     a full queue gets -EBUSY. Nothing is staged when a call fails.
 *   - short reads: a read that reaches the end of the device completes with its full
 *     length; the part past the end is zero-filled and IO_CQE_ZEROFILL is set. A short
 *     read before the end is continued from where it stopped.
 *   - short writes are continued; a write that makes no progress completes with -EIO.
 *   - -EINTR and -EAGAIN completions are retried (bounded, IO_MAX_RETRIES), never shown.
 *   - res is the full requested length, or a negative errno; never a partial count.
 *   - failure injection (rpio_dev_inject): a matching request completes with the chosen
 *     errno without reaching the device, under the same rules as a device's result (an
 *     injected EINTR/EAGAIN is retried, and the retry reaches the device); the queue
 *     goes on serving the others.
 *
 * Buffers must stay valid until the request's completion is reaped. The iovec array
 * itself is copied when the request is staged.
 */
#ifndef RINGPAGER_IO_H
#define RINGPAGER_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/uio.h>

enum rpio_backend {
	IO_BACKEND_AUTO = 0, /* io_uring, else libaio, else psync */
	IO_BACKEND_URING,
	IO_BACKEND_AIO,
	IO_BACKEND_PSYNC,
};

/* "auto", "io_uring", "libaio", "psync". */
const char *rpio_backend_name(enum rpio_backend b);
/* Parses the names above; -EINVAL for anything else. */
int rpio_backend_parse(const char *s, enum rpio_backend *out);

#define IO_MSG_LEN     256
#define IO_MAX_IO_DEFAULT (1ull << 20) /* max_io when sysfs does not tell */
#define IO_MAX_RETRIES 32 /* EINTR/EAGAIN resubmissions of one request before giving up */

/* ---------------------------------------------------------------- devices */

enum rpio_op {
	IO_OP_READ = 0,
	IO_OP_WRITE,
	IO_OP_FDATASYNC,
};

/* Failure injection, for tests: requests on the device that match `ops` (a mask of
 * 1u << IO_OP_*) and [off_lo, off_hi) are counted from 1 after arming; when `nth` is 0
 * every matching request fails, otherwise only the nth. At most `count` requests fail
 * (0: no limit). A failing request does not reach the device; it completes as if the
 * device had returned -err (so EINTR and EAGAIN are retried, the retry reaching it). */
struct rpio_fault {
	unsigned ops;
	uint64_t off_lo, off_hi; /* fdatasync requests have offset 0 */
	uint64_t nth;
	uint64_t count;
	int err; /* positive errno, e.g. EIO */
};

struct rpio_dev {
	int fd;
	uint64_t size;      /* bytes, learnt at open */
	uint32_t lbs;       /* logical block size */
	uint32_t off_align; /* O_DIRECT offset and length alignment (1 when buffered) */
	uint32_t mem_align; /* O_DIRECT buffer address alignment (1 when buffered) */
	uint64_t max_io;    /* bytes the device takes in one request (sysfs max_sectors_kb;
	                       IO_MAX_IO_DEFAULT when unknown): larger reads are split */
	bool blockdev;      /* a block device, not a regular file */
	bool buffered;      /* O_DIRECT was refused: I/O goes through the page cache */
	bool rdonly;        /* opened O_RDONLY */
	bool borrowed;      /* the descriptor is the caller's: rpio_dev_close leaves it open */
	int ring_reads;     /* io/pread.c: 1 an io_uring read is issued at once (the file takes
	                       RWF_NOWAIT), -1 it would go to io_uring's worker threads, 0 not
	                       known yet; accessed atomically */
	uint64_t id;        /* unique per process, for queues' attach tables */
	char *path;
	char warning[IO_MSG_LEN]; /* non-empty when the open degraded (buffered I/O) */

	/* failure injection: `armed` is read without the lock on every request */
	pthread_mutex_t fault_lock;
	int fault_armed;
	struct rpio_fault fault;
	uint64_t fault_seen, fault_fired;
};

/* Opens a regular file or block device for O_DIRECT I/O. `oflags` is O_RDONLY or O_RDWR,
 * optionally with O_CREAT (regular files, mode 0600). Learns size, logical block size and
 * DIO alignment (statx STATX_DIOALIGN, BLKSSZGET, else the filesystem block size). If the
 * filesystem refuses O_DIRECT the device is opened buffered, `buffered` is set and
 * `warning` says so. On failure returns -errno and writes a message naming the path to
 * msg (IO_MSG_LEN bytes is enough). */
int rpio_dev_open(const char *path, int oflags, struct rpio_dev **out, char *msg, size_t msglen);
/* A device over a descriptor that is open already (rpio_dev_open's checks and probes):
 * with `owned` it is closed by rpio_dev_close, else left open (borrowed). Buffered when
 * the descriptor lacks O_DIRECT. name is for messages. -EBADF for a descriptor that is
 * not open, or not for writing when oflags is O_RDWR. */
int rpio_dev_adopt(int fd, const char *name, int oflags, bool owned, struct rpio_dev **out,
                   char *msg, size_t msglen);
/* pread(2) (write false) or pwrite(2) of all of [off, off + len) on a descriptor,
 * continuing short transfers and retrying EINTR: 0, or -errno (-EIO at the end of a
 * file). For plain files beside the devices: a memfd, a redo log. */
int rpio_fd_rw(int fd, void *buf, size_t len, uint64_t off, bool write);
/* fdatasync(2) of the device on the calling thread, under a queue's rules: failure
 * injection applies, EINTR and EAGAIN are retried (IO_MAX_RETRIES). 0 or -errno. For a
 * thread that would otherwise sleep until a queue's sync completed (vm/writeout.c). */
int rpio_dev_fdatasync(struct rpio_dev *d);
/* What kind of file st_mode names, for messages: "a regular file", "a block device", "a
 * directory", "a FIFO", "a character device", "a socket", or "of another kind". */
const char *rpio_file_kind(unsigned mode);
/* Closes the device. Every queue that used it must have reaped its requests on it and
 * called rpio_queue_detach first. */
void rpio_dev_close(struct rpio_dev *d);
/* Arms (f != NULL) or disarms (f == NULL) failure injection on the device. */
void rpio_dev_inject(struct rpio_dev *d, const struct rpio_fault *f);
/* How many requests failure injection has failed since it was last armed. */
uint64_t rpio_dev_injected(struct rpio_dev *d);
/* Whether failure injection fails this request (op, offset): the errno, or 0. Counts it. */
int rpio_fault_check(struct rpio_dev *d, enum rpio_op op, uint64_t off);

/* ---------------------------------------------------------------- queues */

struct rpio_queue_params {
	enum rpio_backend backend;
	unsigned depth; /* max requests staged + in flight (1..32768) */
	bool sqpoll;    /* io_uring: kernel thread polls the SQ (no syscall to submit) */
	unsigned sqpoll_idle_ms;
	bool single_thread;     /* the opening thread is the only user (io_uring fast paths) */
	unsigned psync_threads; /* psync pool size; 0: min(depth, 8) */
	/* Start requests once this many are staged (1: each as soon as it is staged);
	 * 0: only in rpio_submit / rpio_reap. Measured on a virtio disk (docs/design.md,
	 * "The I/O layer"): random 4 KiB reads at depth 32 ran ~15% faster submitted one
	 * by one than in batches, because a batch reaches the device as one plugged burst;
	 * batches save system calls when the CPU, not the device, is the limit. */
	unsigned submit_batch;
	/* With `notify`: an eventfd that the backend signals whenever completions become
	 * available, so a thread can wait in poll(2) for them together with other events
	 * (vm/'s fault service waits on its userfaultfd and its queue at once). Completions
	 * made without the backend (failure injection, validation) do not signal it: reap
	 * with min 0 after staging requests. io_uring then runs without DEFER_TASKRUN,
	 * which would hold completions back until the ring is entered. */
	bool notify;
	int notify_fd;
};

#define IO_CQE_ZEROFILL 1u /* a read ran past the end of the device; the tail is zeros */

struct rpio_cqe {
	void *udata;
	int64_t res; /* full request length, or -errno (0 for a successful fdatasync) */
	unsigned flags;
};

#define IO_DSYNC 1u /* write: the data is durable when the request completes */
#define IO_HOLD 2u  /* write: staged only, whatever submit_batch says; the next rpio_submit
                       (or rpio_reap, or a request staged without it) starts it */

struct rpio_queue;

/* Opens a queue. With IO_BACKEND_AUTO, probes io_uring, then libaio, then psync, and
 * rpio_queue_describe() says which was chosen and why the others were not. On failure
 * returns -errno with a message in msg. */
int rpio_queue_open(const struct rpio_queue_params *p, struct rpio_queue **out, char *msg,
                    size_t msglen);
/* Waits for every request in flight, then frees the queue. */
void rpio_queue_close(struct rpio_queue *q);
enum rpio_backend rpio_queue_backend(const struct rpio_queue *q);
/* One line: backend, options in effect, and for `auto` why earlier choices were skipped. */
const char *rpio_queue_describe(const struct rpio_queue *q);
/* The message for the last failed call on this queue. */
const char *rpio_queue_error(const struct rpio_queue *q);
/* Requests staged or in flight, not yet reaped. */
unsigned rpio_queue_inflight(const struct rpio_queue *q);
/* Drops the queue's registration of the device (io_uring fixed file). Requests on the
 * device must all be reaped. A device is attached again on its next request. */
void rpio_queue_detach(struct rpio_queue *q, struct rpio_dev *d);
/* While held, requests are only staged, whatever submit_batch says (as with IO_HOLD), and
 * the next rpio_submit or rpio_reap starts them together, with one system call where the
 * backend allows. A thread that refills a full queue after a reap holds it meanwhile
 * (vm/service.c). Held or not, nothing staged is lost; not held when opened. */
void rpio_queue_hold(struct rpio_queue *q, bool hold);

int rpio_read(struct rpio_queue *q, struct rpio_dev *d, uint64_t off, const struct iovec *iov,
              int iovcnt, void *udata);
int rpio_write(struct rpio_queue *q, struct rpio_dev *d, uint64_t off, const struct iovec *iov,
               int iovcnt, unsigned flags, void *udata);
int rpio_fdatasync(struct rpio_queue *q, struct rpio_dev *d, void *udata);
/* Starts every staged request. Returns how many were started, or -errno. */
int rpio_submit(struct rpio_queue *q);
/* Moves up to `max` completions to out[], waiting until at least `min` are available
 * (min is clamped to what is in flight, so it cannot wait forever). Submits staged
 * requests first. Returns the count, or -errno. */
int rpio_reap(struct rpio_queue *q, struct rpio_cqe *out, unsigned max, unsigned min);
/* A spin-wait loop's pause: lets the CPU's other hardware thread run (io/pread.c and the
 * service threads' poll for a fault's read). */
static inline void rpio_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* io/pread.c. Reads [off, off+len) into buf on the calling thread, without a queue (the
 * faulting thread's own page in fault_mode=sigbus). The same rules as rpio_read: -EINVAL
 * for an unaligned offset, length or buffer; zeros past the end of the device; short reads
 * continued; EINTR/EAGAIN retried; failure injection applies. With spin_ns > 0 the read
 * goes through the thread's own io_uring and the thread polls for its completion up to
 * spin_ns before it sleeps (io/pread.c says why); 0, or where that ring cannot be made,
 * pread(2). Async-signal-safe where the thread's ring exists or spin_ns is 0. Returns len
 * or -errno. */
int64_t rpio_pread(struct rpio_dev *d, uint64_t off, void *buf, size_t len, uint64_t spin_ns);
/* Registers what rpio_pread's thread rings need (a thread-specific key, a fork handler),
 * which may allocate: call it before rpio_pread runs in a signal handler. rpio_pread does
 * it too, once, if nobody did. */
void rpio_pread_prepare(void);
/* How the calling thread's reads with spin_ns > 0 go: 1 through its io_uring, 0 none made
 * yet, -errno why it could not be made or was dropped (pread(2) then). */
int rpio_pread_ring(void);
/* Tests: threads that make no ring yet make none (they read with pread(2)), as where
 * io_uring is disabled. */
void rpio_pread_ring_forbid(bool forbid);

/* ---------------------------------------------------------------- backends
 *
 * One ops struct per backend, one file each: io/uring.c, io/aio.c, io/psync.c. The
 * generic queue (io/queue.c) owns requests, validation, retries, short transfers and
 * failure injection; a backend only moves staged requests to the kernel and back.
 */

struct rpio_req {
	/* what the backend executes */
	uint8_t op;        /* enum rpio_op */
	uint8_t dsync;     /* write with RWF_DSYNC */
	int fd;            /* plain descriptor */
	int slot;          /* backend's registered-file index, or -1 */
	uint64_t off;      /* current offset (advances on short transfers) */
	struct iovec *iov; /* current vector (advances on short transfers) */
	int iovcnt;

	/* generic-layer bookkeeping; backends do not touch */
	unsigned idx; /* index in the queue's request array */
	void *udata;
	struct rpio_dev *dev;
	uint64_t off0;      /* offset as requested */
	size_t total, done; /* bytes requested, bytes transferred so far */
	unsigned retries;
	int64_t res;        /* final result, when completed without the backend */
	struct iovec *iov0; /* copy of the caller's vector */
	int iovcnt0;
	struct iovec iov_inline[4];
	struct iovec *iov_heap;   /* when iovcnt > 4: holds the copy and the working vector */
	struct iovec iov_work[4]; /* working vector for continued transfers */
	struct rpio_req *next;
};

struct rpio_backend_ops {
	const char *name;
	/* Creates the backend's state in q->be. On failure returns -errno and writes why
	 * (errno name and the cause a user can fix) to why. */
	int (*init)(struct rpio_queue *q, const struct rpio_queue_params *p, char *why, size_t len);
	/* Frees the state. Called with nothing in flight. */
	void (*fini)(struct rpio_queue *q);
	/* Registers fd; returns a slot >= 0 that prep() will find in req->slot, -1 when the
	 * backend uses plain descriptors, or -errno. */
	int (*attach)(struct rpio_queue *q, int fd);
	/* Releases a slot returned by attach. */
	void (*detach)(struct rpio_queue *q, int slot);
	/* Stages one request; it does not start before submit(). Never fails for want of
	 * room: the generic layer keeps at most `depth` requests outstanding. */
	int (*prep)(struct rpio_queue *q, struct rpio_req *r);
	/* Starts every staged request. Returns how many, or -errno. */
	int (*submit)(struct rpio_queue *q);
	/* Returns up to max completed requests in done[] with their raw result in res[]
	 * (bytes or -errno), blocking until at least min are available (min may be 0). */
	int (*reap)(struct rpio_queue *q, struct rpio_req **done, int64_t *res, unsigned max,
	            unsigned min);
	/* Optional: submit() and wait until min completions are available, in one system
	 * call. Returns how many requests were started, or -errno. */
	int (*submit_wait)(struct rpio_queue *q, unsigned min);
};

extern const struct rpio_backend_ops rpio_uring_ops;
extern const struct rpio_backend_ops rpio_aio_ops;
extern const struct rpio_backend_ops rpio_psync_ops;

struct rpio_attach {
	uint64_t dev_id;
	int slot;
};

struct rpio_queue {
	const struct rpio_backend_ops *ops;
	void *be; /* backend state */
	enum rpio_backend backend;
	unsigned depth;
	unsigned submit_batch;
	bool hold; /* rpio_queue_hold */
	unsigned outstanding; /* staged + in flight + completed-not-reaped */
	unsigned staged;      /* prepared, not yet submitted */
	unsigned at_backend;  /* submitted to the backend, not yet returned by it */
	struct rpio_req *reqs;
	struct rpio_req *free;
	struct rpio_req *synth_head, *synth_tail; /* completed without the backend */
	struct rpio_attach *attached;
	unsigned nattached, cattached;
	char describe[2 * IO_MSG_LEN];
	char msg[IO_MSG_LEN];
};

/* Used by backends and the generic layer: writes a message like snprintf, never fails. */
void rpio_msgf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
