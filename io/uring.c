/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/uring.c - the io_uring backend (liburing).
 *
 * Ring set-up tries the fastest flags first and falls back, so one binary runs from 5.1
 * kernels to today's:
 *   sqpoll:        SQPOLL | SINGLE_ISSUER, then SQPOLL
 *   single_thread: SINGLE_ISSUER | DEFER_TASKRUN (6.1), then COOP_TASKRUN | TASKRUN_FLAG
 *                  (5.19), then none
 *   otherwise:     COOP_TASKRUN | TASKRUN_FLAG, then none
 * DEFER_TASKRUN runs completion work only when the submitting thread asks for events, so
 * it is only chosen when the caller promises to use the queue from the opening thread.
 * Files are registered in a sparse fixed-file table (5.19) when the kernel has one;
 * otherwise plain descriptors are used.
 */
#include "io/io.h"
#include "compat/kernel.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URING_FIXED_FILES 64

struct uring_q {
	struct io_uring ring;
	unsigned setup_flags;
	bool fixed;
	bool defer;
	bool slot_used[URING_FIXED_FILES];
};

static const struct {
	unsigned flag;
	const char *name;
} uring_flag_names[] = {
    {IORING_SETUP_SQPOLL, "SQPOLL"},
    {IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"},
    {IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN"},
    {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
    {IORING_SETUP_TASKRUN_FLAG, "TASKRUN_FLAG"},
};

/* Why io_uring_setup failed, in words a user can act on. */
static void uring_explain(int err, char *why, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	int disabled = -1;

	if (f) {
		if (fscanf(f, "%d", &disabled) != 1)
			disabled = -1;
		fclose(f);
	}
	if (err == -ENOSYS)
		rpio_msgf(why, len,
		          "io_uring_setup: ENOSYS (kernel without io_uring, or blocked by "
		          "a seccomp profile)");
	else if (err == -EPERM && disabled > 0)
		rpio_msgf(why, len, "io_uring_setup: EPERM (kernel.io_uring_disabled=%d)",
		          disabled);
	else
		rpio_msgf(why, len, "io_uring_setup: %s", strerror(-err));
}

static int uring_init(struct rpio_queue *q, const struct rpio_queue_params *p, char *why,
                      size_t len)
{
	const unsigned sqpoll_try[] = {IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER,
	                               IORING_SETUP_SQPOLL};
	const unsigned single_try[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	                               IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0};
	const unsigned shared_try[] = {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0};
	const unsigned *tries;
	unsigned ntries, entries = p->depth;
	struct uring_q *u = calloc(1, sizeof(*u));
	int err = -EINVAL;

	if (!u) {
		rpio_msgf(why, len, "out of memory");
		return -ENOMEM;
	}
	if (p->sqpoll) {
		tries = sqpoll_try;
		ntries = 2;
	} else if (p->single_thread && !p->notify) {
		tries = single_try;
		ntries = 3;
	} else {
		tries = shared_try;
		ntries = 2;
	}
	for (unsigned i = 0; i < ntries; i++) {
		struct io_uring_params prm;

		memset(&prm, 0, sizeof(prm));
		prm.flags = tries[i];
		if (prm.flags & IORING_SETUP_SQPOLL)
			prm.sq_thread_idle = p->sqpoll_idle_ms ? p->sqpoll_idle_ms : 50;
		err = io_uring_queue_init_params(entries, &u->ring, &prm);
		if (err == 0) {
			u->setup_flags = tries[i];
			break;
		}
		if (err != -EINVAL) /* EINVAL: flags unknown to this kernel, try fewer */
			break;
	}
	if (err) {
		uring_explain(err, why, len);
		free(u);
		return err;
	}
	u->defer = (u->setup_flags & IORING_SETUP_DEFER_TASKRUN) != 0;
	u->fixed = io_uring_register_files_sparse(&u->ring, URING_FIXED_FILES) == 0;
	if (p->notify && (err = io_uring_register_eventfd(&u->ring, p->notify_fd)) < 0) {
		rpio_msgf(why, len, "io_uring_register_eventfd: %s", strerror(-err));
		io_uring_queue_exit(&u->ring);
		free(u);
		return err;
	}
	q->be = u;

	size_t n = 0;
	n += (size_t)snprintf(q->describe, sizeof(q->describe), "io_uring (depth %u", p->depth);
	for (unsigned i = 0; i < sizeof(uring_flag_names) / sizeof(uring_flag_names[0]); i++)
		if (u->setup_flags & uring_flag_names[i].flag && n < sizeof(q->describe))
			n += (size_t)snprintf(q->describe + n, sizeof(q->describe) - n, ", %s",
			                      uring_flag_names[i].name);
	if (n < sizeof(q->describe))
		snprintf(q->describe + n, sizeof(q->describe) - n, ", %s)",
		         u->fixed ? "registered files" : "plain descriptors");
	return 0;
}

static void uring_fini(struct rpio_queue *q)
{
	struct uring_q *u = q->be;

	io_uring_queue_exit(&u->ring);
	free(u);
}

static int uring_attach(struct rpio_queue *q, int fd)
{
	struct uring_q *u = q->be;

	if (!u->fixed)
		return -1;
	for (int s = 0; s < URING_FIXED_FILES; s++) {
		if (u->slot_used[s])
			continue;
		if (io_uring_register_files_update(&u->ring, (unsigned)s, &fd, 1) != 1)
			return -1;
		u->slot_used[s] = true;
		return s;
	}
	return -1;
}

static void uring_detach(struct rpio_queue *q, int slot)
{
	struct uring_q *u = q->be;
	int none = -1;

	io_uring_register_files_update(&u->ring, (unsigned)slot, &none, 1);
	u->slot_used[slot] = false;
}

static int uring_prep(struct rpio_queue *q, struct rpio_req *r)
{
	struct uring_q *u = q->be;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	int fd = r->slot >= 0 ? r->slot : r->fd;

	/* The generic layer keeps at most depth requests outstanding and the SQ has at
	 * least depth entries, so there is always room. */
	switch (r->op) {
	case IO_OP_READ:
		if (r->iovcnt == 1)
			io_uring_prep_read(sqe, fd, r->iov[0].iov_base, (unsigned)r->iov[0].iov_len,
			                   r->off);
		else
			io_uring_prep_readv(sqe, fd, r->iov, (unsigned)r->iovcnt, r->off);
		break;
	case IO_OP_WRITE:
		if (r->iovcnt == 1)
			io_uring_prep_write(sqe, fd, r->iov[0].iov_base,
			                    (unsigned)r->iov[0].iov_len, r->off);
		else
			io_uring_prep_writev(sqe, fd, r->iov, (unsigned)r->iovcnt, r->off);
		if (r->dsync)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case IO_OP_FDATASYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	}
	if (r->slot >= 0)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, r);
	return 0;
}

static int uring_submit(struct rpio_queue *q)
{
	struct uring_q *u = q->be;
	int n;

	do
		n = io_uring_submit(&u->ring);
	while (n == -EINTR);
	return n;
}

static int uring_submit_wait(struct rpio_queue *q, unsigned min)
{
	struct uring_q *u = q->be;
	int n;

	do
		n = io_uring_submit_and_wait(&u->ring, min);
	while (n == -EINTR);
	return n;
}

static int uring_reap(struct rpio_queue *q, struct rpio_req **done, int64_t *res, unsigned max,
                      unsigned min)
{
	struct uring_q *u = q->be;
	struct io_uring_cqe *cqes[64];
	unsigned n;

	if (max > 64)
		max = 64;
	if (min) {
		struct io_uring_cqe *cqe;
		int err;

		do
			err = io_uring_wait_cqe_nr(&u->ring, &cqe, min);
		while (err == -EINTR);
		if (err < 0)
			return err;
	} else if (u->defer && !io_uring_cq_ready(&u->ring)) {
		/* With DEFER_TASKRUN completions are posted only when we ask. */
		io_uring_get_events(&u->ring);
	}
	n = io_uring_peek_batch_cqe(&u->ring, cqes, max);
	for (unsigned i = 0; i < n; i++) {
		done[i] = io_uring_cqe_get_data(cqes[i]);
		res[i] = cqes[i]->res;
	}
	io_uring_cq_advance(&u->ring, n);
	return (int)n;
}

const struct rpio_backend_ops rpio_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .fini = uring_fini,
    .attach = uring_attach,
    .detach = uring_detach,
    .prep = uring_prep,
    .submit = uring_submit,
    .reap = uring_reap,
    .submit_wait = uring_submit_wait,
};
