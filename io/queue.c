/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/queue.c - the generic half of every io queue: request slots, argument checks,
 * failure injection, and the completion rules of io/io.h (short reads zero-filled at the
 * end of the device, short writes continued, EINTR/EAGAIN retried). Backends see only
 * whole, valid requests.
 */
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IO_MAX_DEPTH 32768u /* io_uring's largest submission queue */

/* ---------------------------------------------------------------- backend choice */

static const struct rpio_backend_ops *rpio_backend_ops_of(enum rpio_backend b)
{
	switch (b) {
	case IO_BACKEND_URING:
		return &rpio_uring_ops;
	case IO_BACKEND_AIO:
		return &rpio_aio_ops;
	case IO_BACKEND_PSYNC:
		return &rpio_psync_ops;
	default:
		return NULL;
	}
}

/* Initialises q->ops/q->be for the requested backend, or for the first that works when
 * `auto`: io_uring, then libaio, then psync, keeping the reason each earlier one was
 * refused. io_uring is often disabled (kernel.io_uring_disabled, Docker's default seccomp
 * profile); libaio can run out of fs.aio-max-nr; psync always works. Writes what was
 * chosen and why to q->describe. */
static int rpio_backend_init(struct rpio_queue *q, const struct rpio_queue_params *p, char *msg,
                             size_t msglen)
{
	static const enum rpio_backend order[] = {IO_BACKEND_URING, IO_BACKEND_AIO,
	                                          IO_BACKEND_PSYNC};
	char skipped[IO_MSG_LEN * 2] = "";
	char why[IO_MSG_LEN];
	int err = -EINVAL;

	for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		enum rpio_backend b = order[i];

		if (p->backend != IO_BACKEND_AUTO && p->backend != b)
			continue;
		q->ops = rpio_backend_ops_of(b);
		q->backend = b;
		why[0] = 0;
		err = q->ops->init(q, p, why, sizeof(why));
		if (err == 0) {
			size_t n = strlen(q->describe);

			if (p->backend == IO_BACKEND_AUTO)
				rpio_msgf(q->describe + n, sizeof(q->describe) - n,
				          "; chosen by auto%s%s", skipped[0] ? ", skipped: " : "",
				          skipped);
			return 0;
		}
		if (p->backend != IO_BACKEND_AUTO) {
			rpio_msgf(msg, msglen, "rpio_backend=%s: %s", q->ops->name, why);
			return err;
		}
		size_t n = strlen(skipped);
		rpio_msgf(skipped + n, sizeof(skipped) - n, "%s%s (%s)", n ? ", " : "",
		          q->ops->name, why);
	}
	rpio_msgf(msg, msglen, "no I/O backend works: %s", skipped);
	return err;
}

/* ---------------------------------------------------------------- queue */

int rpio_queue_open(const struct rpio_queue_params *p, struct rpio_queue **out, char *msg,
                    size_t msglen)
{
	struct rpio_queue *q;
	int err;

	*out = NULL;
	if (p->depth < 1 || p->depth > IO_MAX_DEPTH) {
		rpio_msgf(msg, msglen, "queue_depth=%u: must be between 1 and %u", p->depth,
		          IO_MAX_DEPTH);
		return -EINVAL;
	}
	if ((unsigned)p->backend > IO_BACKEND_PSYNC) {
		rpio_msgf(msg, msglen, "rpio_backend=%d: unknown backend", (int)p->backend);
		return -EINVAL;
	}
	q = calloc(1, sizeof(*q));
	if (!q || !(q->reqs = calloc(p->depth, sizeof(*q->reqs)))) {
		free(q);
		rpio_msgf(msg, msglen, "out of memory for a queue of depth %u", p->depth);
		return -ENOMEM;
	}
	q->depth = p->depth;
	q->submit_batch = p->submit_batch;
	for (unsigned i = p->depth; i-- > 0;) {
		q->reqs[i].idx = i;
		q->reqs[i].next = q->free;
		q->free = &q->reqs[i];
	}
	err = rpio_backend_init(q, p, msg, msglen);
	if (err) {
		free(q->reqs);
		free(q);
		return err;
	}
	*out = q;
	return 0;
}

static void rpio_req_release(struct rpio_queue *q, struct rpio_req *r)
{
	free(r->iov_heap);
	r->iov_heap = NULL;
	r->next = q->free;
	q->free = r;
	q->outstanding--;
}

void rpio_queue_close(struct rpio_queue *q)
{
	struct rpio_cqe cqe;

	if (!q)
		return;
	while (q->outstanding > 0 && rpio_reap(q, &cqe, 1, 1) > 0)
		;
	for (unsigned i = 0; i < q->nattached; i++)
		if (q->attached[i].slot >= 0)
			q->ops->detach(q, q->attached[i].slot);
	q->ops->fini(q);
	for (unsigned i = 0; i < q->depth; i++)
		free(q->reqs[i].iov_heap);
	free(q->attached);
	free(q->reqs);
	free(q);
}

enum rpio_backend rpio_queue_backend(const struct rpio_queue *q)
{
	return q->backend;
}

const char *rpio_queue_describe(const struct rpio_queue *q)
{
	return q->describe;
}

const char *rpio_queue_error(const struct rpio_queue *q)
{
	return q->msg;
}

unsigned rpio_queue_inflight(const struct rpio_queue *q)
{
	return q->outstanding;
}

/* Returns the backend slot for d, registering it on first use. */
static int rpio_queue_slot(struct rpio_queue *q, struct rpio_dev *d)
{
	int slot;

	for (unsigned i = 0; i < q->nattached; i++)
		if (q->attached[i].dev_id == d->id)
			return q->attached[i].slot;
	if (q->nattached == q->cattached) {
		unsigned n = q->cattached ? 2 * q->cattached : 8;
		struct rpio_attach *a = realloc(q->attached, n * sizeof(*a));

		if (!a)
			return -ENOMEM;
		q->attached = a;
		q->cattached = n;
	}
	slot = q->ops->attach(q, d->fd);
	if (slot < -1)
		slot = -1; /* no room in the registered table: plain descriptors work too */
	q->attached[q->nattached].dev_id = d->id;
	q->attached[q->nattached].slot = slot;
	q->nattached++;
	return slot;
}

void rpio_queue_detach(struct rpio_queue *q, struct rpio_dev *d)
{
	for (unsigned i = 0; i < q->nattached; i++) {
		if (q->attached[i].dev_id != d->id)
			continue;
		if (q->attached[i].slot >= 0)
			q->ops->detach(q, q->attached[i].slot);
		q->attached[i] = q->attached[--q->nattached];
		return;
	}
}

/* ---------------------------------------------------------------- staging */

int rpio_fault_check(struct rpio_dev *d, enum rpio_op op, uint64_t off)
{
	int err = 0;

	if (!__atomic_load_n(&d->fault_armed, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&d->fault_lock);
	const struct rpio_fault *f = &d->fault;
	if ((f->ops & (1u << op)) && off >= f->off_lo && off < f->off_hi &&
	    (!f->count || d->fault_fired < f->count)) {
		d->fault_seen++;
		if (!f->nth || d->fault_seen == f->nth) {
			d->fault_fired++;
			err = f->err;
		}
	}
	pthread_mutex_unlock(&d->fault_lock);
	return err;
}

static int rpio_check_iov(struct rpio_queue *q, struct rpio_dev *d, uint64_t off,
                          const struct iovec *iov, int iovcnt, size_t *total)
{
	size_t sum = 0;

	if (!iov || iovcnt < 1 || iovcnt > IOV_MAX) {
		rpio_msgf(q->msg, sizeof(q->msg), "%s: %d iovecs at offset %llu (1..%d allowed)",
		          d->path, iovcnt, (unsigned long long)off, IOV_MAX);
		return -EINVAL;
	}
	if (off % d->off_align) {
		rpio_msgf(q->msg, sizeof(q->msg),
		          "%s: offset %llu is not a multiple of the device's O_DIRECT alignment %u",
		          d->path, (unsigned long long)off, d->off_align);
		return -EINVAL;
	}
	for (int i = 0; i < iovcnt; i++) {
		if ((uintptr_t)iov[i].iov_base % d->mem_align) {
			rpio_msgf(q->msg, sizeof(q->msg),
			          "%s: buffer %p (iovec %d, offset %llu) is not aligned to the "
			          "device's O_DIRECT memory alignment %u",
			          d->path, iov[i].iov_base, i, (unsigned long long)off,
			          d->mem_align);
			return -EINVAL;
		}
		if (iov[i].iov_len % d->off_align) {
			rpio_msgf(q->msg, sizeof(q->msg),
			          "%s: length %zu (iovec %d, offset %llu) is not a multiple of the "
			          "device's O_DIRECT alignment %u",
			          d->path, iov[i].iov_len, i, (unsigned long long)off,
			          d->off_align);
			return -EINVAL;
		}
		sum += iov[i].iov_len;
	}
	if (sum == 0) {
		rpio_msgf(q->msg, sizeof(q->msg), "%s: zero-length request at offset %llu", d->path,
		          (unsigned long long)off);
		return -EINVAL;
	}
	*total = sum;
	return 0;
}

static void rpio_synth_complete(struct rpio_queue *q, struct rpio_req *r, int64_t res)
{
	r->res = res;
	r->next = NULL;
	if (q->synth_tail)
		q->synth_tail->next = r;
	else
		q->synth_head = r;
	q->synth_tail = r;
}

/* Points r->iov at the part of the caller's vector not yet transferred. */
static void rpio_req_set_window(struct rpio_req *r)
{
	struct iovec *work = r->iov_heap ? r->iov_heap + r->iovcnt0 : r->iov_work;
	size_t skip = r->done;
	int n = 0;

	for (int i = 0; i < r->iovcnt0; i++) {
		if (skip >= r->iov0[i].iov_len) {
			skip -= r->iov0[i].iov_len;
			continue;
		}
		work[n].iov_base = (char *)r->iov0[i].iov_base + skip;
		work[n].iov_len = r->iov0[i].iov_len - skip;
		skip = 0;
		n++;
	}
	r->iov = work;
	r->iovcnt = n;
	r->off = r->off0 + r->done;
}

static int rpio_stage(struct rpio_queue *q, struct rpio_dev *d, enum rpio_op op, uint64_t off,
                      const struct iovec *iov, int iovcnt, unsigned flags, void *udata)
{
	struct rpio_req *r;
	size_t total = 0;
	int slot, err, inj;

	if (!d) {
		rpio_msgf(q->msg, sizeof(q->msg), "no device");
		return -EINVAL;
	}
	if (op != IO_OP_READ && d->rdonly) {
		rpio_msgf(q->msg, sizeof(q->msg), "%s is open read-only: cannot %s at offset %llu",
		          d->path, op == IO_OP_WRITE ? "write" : "sync", (unsigned long long)off);
		return -EBADF;
	}
	if (op != IO_OP_FDATASYNC) {
		err = rpio_check_iov(q, d, off, iov, iovcnt, &total);
		if (err)
			return err;
	}
	if (flags & ~(IO_DSYNC | IO_HOLD)) {
		rpio_msgf(q->msg, sizeof(q->msg), "unknown request flags 0x%x", flags);
		return -EINVAL;
	}
	if (!q->free) {
		rpio_msgf(q->msg, sizeof(q->msg), "queue full: %u requests outstanding (depth %u)",
		          q->outstanding, q->depth);
		return -EBUSY;
	}
	slot = rpio_queue_slot(q, d);
	if (slot < -1) {
		rpio_msgf(q->msg, sizeof(q->msg), "out of memory attaching %s", d->path);
		return slot;
	}

	r = q->free;
	if (iovcnt > (int)(sizeof(r->iov_inline) / sizeof(r->iov_inline[0]))) {
		r->iov_heap = malloc(2 * (size_t)iovcnt * sizeof(struct iovec));
		if (!r->iov_heap) {
			rpio_msgf(q->msg, sizeof(q->msg), "out of memory for %d iovecs", iovcnt);
			return -ENOMEM;
		}
	}
	q->free = r->next;
	q->outstanding++;
	r->next = NULL;
	r->op = (uint8_t)op;
	r->dsync = (flags & IO_DSYNC) != 0;
	r->fd = d->fd;
	r->slot = slot;
	r->udata = udata;
	r->dev = d;
	r->off0 = op == IO_OP_FDATASYNC ? 0 : off;
	r->total = total;
	r->done = 0;
	r->retries = 0;
	r->res = 0;
	r->iovcnt0 = op == IO_OP_FDATASYNC ? 0 : iovcnt;
	r->iov0 = r->iov_heap ? r->iov_heap : r->iov_inline;
	if (r->iovcnt0)
		memcpy(r->iov0, iov, (size_t)iovcnt * sizeof(*iov));
	rpio_req_set_window(r);

	inj = rpio_fault_check(d, op, r->off0);
	if (inj) {
		rpio_synth_complete(q, r, -inj);
		return 0;
	}
	q->ops->prep(q, r);
	q->staged++;
	/* A failed early start is not this request's failure: it stays staged and the next
	 * rpio_submit/rpio_reap retries and reports. */
	if (q->submit_batch && q->staged >= q->submit_batch && !(flags & IO_HOLD) && !q->hold)
		rpio_submit(q);
	return 0;
}

int rpio_read(struct rpio_queue *q, struct rpio_dev *d, uint64_t off, const struct iovec *iov,
              int iovcnt, void *udata)
{
	return rpio_stage(q, d, IO_OP_READ, off, iov, iovcnt, 0, udata);
}

int rpio_write(struct rpio_queue *q, struct rpio_dev *d, uint64_t off, const struct iovec *iov,
               int iovcnt, unsigned flags, void *udata)
{
	return rpio_stage(q, d, IO_OP_WRITE, off, iov, iovcnt, flags, udata);
}

int rpio_fdatasync(struct rpio_queue *q, struct rpio_dev *d, void *udata)
{
	return rpio_stage(q, d, IO_OP_FDATASYNC, 0, NULL, 0, 0, udata);
}

void rpio_queue_hold(struct rpio_queue *q, bool hold)
{
	q->hold = hold;
}

int rpio_submit(struct rpio_queue *q)
{
	int n;

	if (!q->staged)
		return 0;
	n = q->ops->submit(q);
	if (n < 0) {
		rpio_msgf(q->msg, sizeof(q->msg), "%s: submit failed: %s", q->ops->name,
		          strerror(-n));
		return n;
	}
	q->staged -= (unsigned)n;
	q->at_backend += (unsigned)n;
	return n;
}

/* ---------------------------------------------------------------- completion */

static void rpio_zero_tail(struct rpio_req *r)
{
	for (int i = 0; i < r->iovcnt; i++)
		memset(r->iov[i].iov_base, 0, r->iov[i].iov_len);
}

/* Applies the completion rules to one raw backend result. Returns true when the request
 * is finished (its result in r->res, its flags in *flags); false when it was staged
 * again to continue or retry. */
static bool rpio_req_finish(struct rpio_queue *q, struct rpio_req *r, int64_t res, unsigned *flags)
{
	*flags = 0;
	if (res == -EINTR || res == -EAGAIN) {
		if (++r->retries > IO_MAX_RETRIES) {
			r->res = res;
			return true;
		}
		goto again;
	}
	if (res < 0 || r->op == IO_OP_FDATASYNC) {
		r->res = res < 0 ? res : 0;
		return true;
	}
	r->done += (size_t)res;
	if (r->done >= r->total) {
		r->res = (int64_t)r->total;
		return true;
	}
	/* A short transfer. */
	rpio_req_set_window(r);
	if (r->op == IO_OP_READ) {
		/* At (or past) the end of the device, or stopped at an offset O_DIRECT cannot
		 * continue from: the rest lies past the end and reads as zeros. */
		if (res == 0 || r->off >= r->dev->size || r->off % r->dev->off_align) {
			rpio_zero_tail(r);
			r->res = (int64_t)r->total;
			*flags = IO_CQE_ZEROFILL;
			return true;
		}
	} else if (res == 0) {
		r->res = -EIO; /* the device accepted nothing: no space past its end */
		return true;
	}
again:
	q->ops->prep(q, r);
	q->staged++;
	return false;
}

int rpio_reap(struct rpio_queue *q, struct rpio_cqe *out, unsigned max, unsigned min)
{
	struct rpio_req *done[64];
	int64_t res[64];
	unsigned n = 0;
	int err;

	if (min > max)
		min = max;
	for (;;) {
		while (n < max && q->synth_head) {
			struct rpio_req *r = q->synth_head;
			unsigned fl;

			q->synth_head = r->next;
			if (!q->synth_head)
				q->synth_tail = NULL;
			/* The same rules as a device's result: an injected EINTR or EAGAIN is
			 * retried, and the retry goes to the device. */
			if (!rpio_req_finish(q, r, r->res, &fl))
				continue;
			out[n++] = (struct rpio_cqe){.udata = r->udata, .res = r->res, .flags = fl};
			rpio_req_release(q, r);
		}
		/* Never wait for more than the backend will have: what it holds and what is
		 * staged (synthetic completions were all taken above, or out[] is full). */
		unsigned need = n >= min ? 0 : min - n;
		if (need > q->at_backend + q->staged)
			need = q->at_backend + q->staged;
		unsigned want = max - n < 64 ? max - n : 64;
		if (need > want)
			need = want;
		if (need && q->staged && q->ops->submit_wait) {
			/* Start the staged requests and wait, in one system call. */
			err = q->ops->submit_wait(q, need);
			if (err < 0) {
				rpio_msgf(q->msg, sizeof(q->msg), "%s: submit failed: %s",
				          q->ops->name, strerror(-err));
				return n ? (int)n : err;
			}
			q->staged -= (unsigned)err;
			q->at_backend += (unsigned)err;
			need = 0; /* what was waited for is ready: reap it without blocking */
		}
		err = rpio_submit(q);
		if (err < 0)
			return n ? (int)n : err;
		if (n >= max || (need == 0 && q->at_backend == 0))
			break;
		int got = q->ops->reap(q, done, res, want, need);
		if (got < 0) {
			rpio_msgf(q->msg, sizeof(q->msg), "%s: reaping completions failed: %s",
			          q->ops->name, strerror(-got));
			return n ? (int)n : got;
		}
		q->at_backend -= (unsigned)got;
		for (int i = 0; i < got; i++) {
			unsigned fl;

			if (!rpio_req_finish(q, done[i], res[i], &fl))
				continue;
			out[n++] = (struct rpio_cqe){
			    .udata = done[i]->udata, .res = done[i]->res, .flags = fl};
			rpio_req_release(q, done[i]);
		}
		/* Enough: return rather than poll again (with DEFER_TASKRUN every poll is a
		 * system call). Continued transfers staged above start now. */
		if (n >= min || (got == 0 && need == 0)) {
			err = rpio_submit(q);
			if (err < 0 && !n)
				return err;
			break;
		}
	}
	return (int)n;
}
