/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/psync.c - the portable backend: a small pool of threads doing preadv2/pwritev2.
 *
 * It needs nothing but the basic syscalls, so it is what `auto` ends on when io_uring and
 * libaio are both unavailable (seccomp, sysctl, old kernels). Requests are handed to the
 * pool at submit() and come back through a completion list; the thread count bounds the
 * real concurrency (psync_threads, default min(depth, 8)).
 */
#include "io/io.h"
#include "compat/kernel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

struct psync_q {
	pthread_mutex_t lock;
	pthread_cond_t work_cv;                     /* todo list not empty, or stop */
	pthread_cond_t done_cv;                     /* done list grew */
	struct rpio_req *staged_head, *staged_tail; /* submitter's own: no lock */
	unsigned nstaged;
	struct rpio_req *todo_head, *todo_tail;
	struct rpio_req *done_head, *done_tail; /* result in req->res */
	unsigned ndone;
	bool stop;
	unsigned nthreads;
	pthread_t *threads;
	int notify_fd; /* -1: none */
};

static void psync_push(struct rpio_req **head, struct rpio_req **tail, struct rpio_req *r)
{
	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

static int64_t psync_execute(struct rpio_req *r)
{
	ssize_t n = 0;

	switch (r->op) {
	case IO_OP_READ:
		n = preadv2(r->fd, r->iov, r->iovcnt, (off_t)r->off, 0);
		break;
	case IO_OP_WRITE:
		n = pwritev2(r->fd, r->iov, r->iovcnt, (off_t)r->off, r->dsync ? RWF_DSYNC : 0);
		break;
	case IO_OP_FDATASYNC:
		n = fdatasync(r->fd);
		break;
	}
	return n < 0 ? -errno : n;
}

static void *psync_worker(void *arg)
{
	struct psync_q *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stop && !s->todo_head)
			pthread_cond_wait(&s->work_cv, &s->lock);
		if (!s->todo_head)
			break; /* stop, and nothing left to do */
		struct rpio_req *r = s->todo_head;
		s->todo_head = r->next;
		if (!s->todo_head)
			s->todo_tail = NULL;
		pthread_mutex_unlock(&s->lock);

		int64_t res = psync_execute(r);

		pthread_mutex_lock(&s->lock);
		r->res = res;
		psync_push(&s->done_head, &s->done_tail, r);
		s->ndone++;
		pthread_cond_signal(&s->done_cv);
		if (s->notify_fd >= 0)
			(void)eventfd_write(s->notify_fd, 1);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void psync_stop(struct psync_q *s, unsigned started)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(s->threads[i], NULL);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	free(s->threads);
	free(s);
}

static int psync_init(struct rpio_queue *q, const struct rpio_queue_params *p, char *why,
                      size_t len)
{
	struct psync_q *s = calloc(1, sizeof(*s));
	unsigned n = p->psync_threads ? p->psync_threads : (p->depth < 8 ? p->depth : 8);

	if (n > p->depth)
		n = p->depth;
	if (!s || !(s->threads = calloc(n, sizeof(*s->threads)))) {
		free(s);
		rpio_msgf(why, len, "out of memory");
		return -ENOMEM;
	}
	s->notify_fd = p->notify ? p->notify_fd : -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	for (unsigned i = 0; i < n; i++) {
		int err = pthread_create(&s->threads[i], NULL, psync_worker, s);

		if (err) {
			rpio_msgf(why, len, "cannot start I/O thread %u of %u: %s", i + 1, n,
			          strerror(err));
			psync_stop(s, i);
			return -err;
		}
	}
	s->nthreads = n;
	q->be = s;
	snprintf(q->describe, sizeof(q->describe), "psync (depth %u, %u threads)", p->depth, n);
	return 0;
}

static void psync_fini(struct rpio_queue *q)
{
	struct psync_q *s = q->be;

	psync_stop(s, s->nthreads);
}

static int psync_attach(struct rpio_queue *q, int fd)
{
	return -1;
}

static void psync_detach(struct rpio_queue *q, int slot)
{
}

static int psync_prep(struct rpio_queue *q, struct rpio_req *r)
{
	struct psync_q *s = q->be;

	psync_push(&s->staged_head, &s->staged_tail, r);
	s->nstaged++;
	return 0;
}

static int psync_submit(struct rpio_queue *q)
{
	struct psync_q *s = q->be;
	unsigned n = s->nstaged;

	if (!n)
		return 0;
	pthread_mutex_lock(&s->lock);
	if (s->todo_tail)
		s->todo_tail->next = s->staged_head;
	else
		s->todo_head = s->staged_head;
	s->todo_tail = s->staged_tail;
	if (n == 1)
		pthread_cond_signal(&s->work_cv);
	else
		pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->lock);
	s->staged_head = s->staged_tail = NULL;
	s->nstaged = 0;
	return (int)n;
}

static int psync_reap(struct rpio_queue *q, struct rpio_req **done, int64_t *res, unsigned max,
                      unsigned min)
{
	struct psync_q *s = q->be;
	unsigned n = 0;

	pthread_mutex_lock(&s->lock);
	while (s->ndone < min)
		pthread_cond_wait(&s->done_cv, &s->lock);
	while (n < max && s->done_head) {
		struct rpio_req *r = s->done_head;

		s->done_head = r->next;
		if (!s->done_head)
			s->done_tail = NULL;
		s->ndone--;
		done[n] = r;
		res[n++] = r->res;
	}
	pthread_mutex_unlock(&s->lock);
	return (int)n;
}

const struct rpio_backend_ops rpio_psync_ops = {
    .name = "psync",
    .init = psync_init,
    .fini = psync_fini,
    .attach = psync_attach,
    .detach = psync_detach,
    .prep = psync_prep,
    .submit = psync_submit,
    .reap = psync_reap,
};
