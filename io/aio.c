/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/aio.c - the Linux native AIO backend (libaio).
 *
 * One iocb per request slot, staged in an array and handed to io_submit(2) in one call.
 * RWF_DSYNC rides in aio_rw_flags (4.13). Native AIO is only asynchronous for O_DIRECT;
 * on a buffered device io_submit does the I/O inline, which is still correct.
 */
#include "io/io.h"
#include "compat/kernel.h"

#include <errno.h>
#include <libaio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct aio_q {
	io_context_t ctx;
	struct iocb *iocbs;   /* one per request slot */
	struct iocb **staged; /* prepared, not yet submitted, in order */
	unsigned nstaged;
	struct io_event *events;
	struct rpio_req **failed; /* refused by io_submit: completed by the next reap */
	int64_t *failed_res;
	unsigned nfailed;
	unsigned depth;
	int notify_fd; /* -1: none */
};

static void aio_free(struct aio_q *a)
{
	free(a->iocbs);
	free(a->staged);
	free(a->events);
	free(a->failed);
	free(a->failed_res);
	free(a);
}

static int aio_init(struct rpio_queue *q, const struct rpio_queue_params *p, char *why, size_t len)
{
	struct aio_q *a = calloc(1, sizeof(*a));
	int err;

	if (!a || !(a->iocbs = calloc(p->depth, sizeof(*a->iocbs))) ||
	    !(a->staged = calloc(p->depth, sizeof(*a->staged))) ||
	    !(a->events = calloc(p->depth, sizeof(*a->events))) ||
	    !(a->failed = calloc(p->depth, sizeof(*a->failed))) ||
	    !(a->failed_res = calloc(p->depth, sizeof(*a->failed_res)))) {
		if (a)
			aio_free(a);
		rpio_msgf(why, len, "out of memory");
		return -ENOMEM;
	}
	a->depth = p->depth;
	a->notify_fd = p->notify ? p->notify_fd : -1;
	err = io_setup((int)p->depth, &a->ctx);
	if (err < 0) {
		if (err == -EAGAIN)
			rpio_msgf(why, len,
			          "io_setup: EAGAIN (fs.aio-max-nr is too small for "
			          "depth %u)",
			          p->depth);
		else
			rpio_msgf(why, len, "io_setup: %s", strerror(-err));
		aio_free(a);
		return err;
	}
	q->be = a;
	snprintf(q->describe, sizeof(q->describe), "libaio (depth %u)", p->depth);
	return 0;
}

static void aio_fini(struct rpio_queue *q)
{
	struct aio_q *a = q->be;

	io_destroy(a->ctx);
	aio_free(a);
}

static int aio_attach(struct rpio_queue *q, int fd)
{
	return -1;
}

static void aio_detach(struct rpio_queue *q, int slot)
{
}

static int aio_prep(struct rpio_queue *q, struct rpio_req *r)
{
	struct aio_q *a = q->be;
	struct iocb *cb = &a->iocbs[r->idx];

	switch (r->op) {
	case IO_OP_READ:
		io_prep_preadv(cb, r->fd, r->iov, r->iovcnt, (long long)r->off);
		break;
	case IO_OP_WRITE:
		io_prep_pwritev(cb, r->fd, r->iov, r->iovcnt, (long long)r->off);
		cb->aio_rw_flags = r->dsync ? RWF_DSYNC : 0;
		break;
	case IO_OP_FDATASYNC:
		io_prep_fdsync(cb, r->fd);
		break;
	}
	cb->data = r;
	if (a->notify_fd >= 0)
		io_set_eventfd(cb, a->notify_fd);
	a->staged[a->nstaged++] = cb;
	return 0;
}

static int aio_submit(struct rpio_queue *q)
{
	struct aio_q *a = q->be;
	unsigned done = 0;

	while (done < a->nstaged) {
		int n = io_submit(a->ctx, (long)(a->nstaged - done), a->staged + done);

		if (n == -EINTR)
			continue;
		if (n == -EAGAIN && done > 0)
			break; /* kernel is short of resources: submit the rest later */
		if (n < 0) {
			/* io_submit reports the first iocb's own error (e.g. a descriptor
			 * that cannot do this op): that request completes with it. */
			struct iocb *cb = a->staged[done++];

			a->failed[a->nfailed] = cb->data;
			a->failed_res[a->nfailed++] = n;
			continue;
		}
		done += (unsigned)n;
	}
	memmove(a->staged, a->staged + done, (a->nstaged - done) * sizeof(*a->staged));
	a->nstaged -= done;
	return (int)done;
}

static int aio_reap(struct rpio_queue *q, struct rpio_req **done, int64_t *res, unsigned max,
                    unsigned min)
{
	struct aio_q *a = q->be;
	unsigned n = 0;
	int got;

	while (n < max && a->nfailed) {
		a->nfailed--;
		done[n] = a->failed[a->nfailed];
		res[n++] = a->failed_res[a->nfailed];
	}
	if (n == max)
		return (int)n;
	min = n >= min ? 0 : min - n;
	do {
		struct timespec zero = {0, 0};

		got =
		    io_getevents(a->ctx, (long)min, (long)(max - n), a->events, min ? NULL : &zero);
	} while (got == -EINTR);
	if (got < 0)
		return n ? (int)n : got;
	for (int i = 0; i < got; i++) {
		done[n] = a->events[i].data;
		res[n++] = (int64_t)(long)a->events[i].res;
	}
	return (int)n;
}

const struct rpio_backend_ops rpio_aio_ops = {
    .name = "libaio",
    .init = aio_init,
    .fini = aio_fini,
    .attach = aio_attach,
    .detach = aio_detach,
    .prep = aio_prep,
    .submit = aio_submit,
    .reap = aio_reap,
};
