/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/group.c - group writeout (rp_writeoutv): several handles written out as one, with
 * one sync per store.
 *
 * A group runs in phases: one phase of every handle, or, with RP_WRITEOUT_ORDERED, one
 * phase per handle in the order given. A phase starts a writeout of each of its handles
 * (vm/writeout.c, each in its turn behind the handle's earlier writeouts). With SYNC a
 * member whose writes are done does not sync its store: it arrives here (struct
 * vm_wo_group) and waits. When the phase's last member has arrived, each store among
 * them is synced once (an fdatasync job on a service thread's queue, or the custom
 * store's sync callback), and every member then finishes with that result: its pages
 * become clean only if its writes and the sync succeeded, as for a single writeout.
 * When every member has finished, the next phase starts, unless one failed: then the
 * later handles are not written, and the group reports the first error.
 *
 *   start_phase -> members write -> arrive (all) -> syncs -> vm_wo_synced (each)
 *     -> member_done (each) -> start_phase (next) or the group's done
 */
#include "vm/writeout.h"
#include "vm/vm.h"

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct group;

/* One store's sync, a job on a service thread. */
struct gsync {
	struct vm_job job; /* first member */
	struct group *g;
	struct rp_store *st;
};

struct group {
	struct vm_wo_group base; /* first member */
	struct vm *vm;
	int flags;
	size_t n, lo, hi; /* the handles; the phase's are [lo, hi) */
	pthread_mutex_t lock;
	size_t started, arrived, finished; /* this phase's members */
	bool starting;                     /* the phase's members are being started */
	struct vm_wo **waiting;            /* arrived members */
	atomic_uint syncs;                 /* store syncs in flight */
	atomic_int sync_err;
	int err; /* first error of any member or sync */
	rp_done_fn done;
	void *arg;
	char *msg; /* where the first failure is told, or NULL */
	size_t msglen;
	char (*mmsg)[256]; /* each member's own message */
	struct vm_job later; /* start_phase's end, run on a service thread (trigger_ops) */
	bool later_sync;
	struct rp_fileh *fhs[];
};

static void start_phase(struct group *g);
static void group_end(struct group *g);

/* Every member of the phase finished: the next phase, or the group's end. */
static void phase_end(struct group *g)
{
	if (!g->err && g->hi < g->n) {
		g->lo = g->hi;
		g->hi = g->hi + 1;
		start_phase(g);
		return;
	}
	group_end(g);
}

static void group_end(struct group *g)
{
	rp_done_fn done = g->done;
	void *arg = g->arg;
	int err = g->err;

	pthread_mutex_destroy(&g->lock);
	free(g->waiting);
	free(g->mmsg);
	free(g);
	done(arg, err);
}

/* A member's writeout ended (on a service thread). */
static void member_done(void *arg, int result)
{
	struct vm_wo_group *base = arg;
	struct group *g = (struct group *)base;

	pthread_mutex_lock(&g->lock);
	if (result < 0 && !g->err) {
		g->err = result;
		if (g->msg) {
			/* which member: the first one whose message says something */
			for (size_t i = g->lo; i < g->hi; i++)
				if (g->mmsg[i][0]) {
					snprintf(g->msg, g->msglen, "handle %zu of %zu: %s", i + 1, g->n,
					         g->mmsg[i]);
					break;
				}
		}
	}
	const bool last = ++g->finished == g->started && !g->starting;

	pthread_mutex_unlock(&g->lock);
	if (last)
		phase_end(g);
}

/* Every member of the phase that syncs has arrived and the syncs ended: each finishes. */
static void resume(struct group *g)
{
	const int err = atomic_load(&g->sync_err);
	const size_t n = g->arrived;
	struct vm_wo *one, **wos = n == 1 ? &one : malloc(n * sizeof(*wos));

	if (!wos) { /* cannot copy the list: finish them one by one from the end */
		for (size_t i = n; i-- > 1;)
			vm_wo_synced(g->waiting[i], err); /* not the last: g stays */
		vm_wo_synced(g->waiting[0], err);
		return;
	}
	/* The last member's finish may end the group (and free it): work on a copy. */
	memcpy(wos, g->waiting, n * sizeof(*wos));
	for (size_t i = 0; i < n; i++)
		vm_wo_synced(wos[i], err);
	if (wos != &one)
		free(wos);
}

static int gsync_issue(struct vm_job *job, struct vm_service *s)
{
	struct gsync *gs = (struct gsync *)job;
	int r = rpio_fdatasync(vm_service_queue(s), gs->st->dev, job);

	if (r == -EBUSY)
		return r;
	if (r < 0)
		job->ops->complete(job, r);
	return 0;
}

static void gsync_complete(struct vm_job *job, int err)
{
	struct gsync *gs = (struct gsync *)job;
	struct group *g = gs->g;

	if (err < 0) {
		int none = 0;

		(void)atomic_compare_exchange_strong(&g->sync_err, &none, err);
	}
	free(gs);
	if (atomic_fetch_sub(&g->syncs, 1) == 1)
		resume(g);
}

static const struct vm_job_ops gsync_ops = {gsync_issue, gsync_complete};

/* Syncs each store of the arrived members once; resume when the last is done. */
static void sync_stores(struct group *g)
{
	atomic_store(&g->syncs, 1); /* this walk's own reference */
	for (size_t i = 0; i < g->arrived; i++) {
		struct rp_store *st = g->waiting[i]->fh->store;
		bool dup = false;

		for (size_t k = 0; k < i && !dup; k++) /* each store once */
			dup = g->waiting[k]->fh->store == st;
		if (dup)
			continue;
		if (!st->dev) {
			int e = st->ops->sync ? st->ops->sync(st->ctx) : 0;
			int none = 0;

			if (e < 0)
				(void)atomic_compare_exchange_strong(&g->sync_err, &none, e);
			continue;
		}
		struct gsync *gs = calloc(1, sizeof(*gs));

		if (!gs) {
			int none = 0;

			(void)atomic_compare_exchange_strong(&g->sync_err, &none, -ENOMEM);
			continue;
		}
		gs->job.ops = &gsync_ops;
		gs->g = g;
		gs->st = st;
		atomic_fetch_add(&g->syncs, 1);
		vm_service_submit(g->vm, NULL, &gs->job);
	}
	if (atomic_fetch_sub(&g->syncs, 1) == 1)
		resume(g);
}

static void arrive(struct vm_wo_group *base, struct vm_wo *wo)
{
	struct group *g = (struct group *)base;

	pthread_mutex_lock(&g->lock);
	g->waiting[g->arrived++] = wo;
	const bool all = g->arrived == g->started && !g->starting;

	pthread_mutex_unlock(&g->lock);
	if (all)
		sync_stores(g);
}

/* Starts the writeouts of handles [lo, hi). */
static void start_phase(struct group *g)
{
	pthread_mutex_lock(&g->lock);
	g->started = g->arrived = g->finished = 0;
	g->starting = true;
	atomic_store(&g->sync_err, 0);
	pthread_mutex_unlock(&g->lock);
	for (size_t i = g->lo; i < g->hi; i++) {
		g->mmsg[i][0] = 0;
		pthread_mutex_lock(&g->lock);
		g->started++;
		pthread_mutex_unlock(&g->lock);
		int e = vm_writeout_in(g->fhs[i], g->flags & ~RP_WRITEOUT_ORDERED, member_done,
		                       &g->base, g->mmsg[i], sizeof(g->mmsg[i]), &g->base);

		if (e < 0) { /* never started: it neither arrives nor finishes */
			pthread_mutex_lock(&g->lock);
			g->started--;
			if (!g->err) {
				g->err = e;
				if (g->msg)
					snprintf(g->msg, g->msglen, "handle %zu of %zu: %s", i + 1, g->n,
					         vm_errmsg());
			}
			pthread_mutex_unlock(&g->lock);
		}
	}
	pthread_mutex_lock(&g->lock);
	g->starting = false;
	const bool sync = (g->flags & RP_WRITEOUT_SYNC) && g->started &&
	                  g->arrived == g->started;
	const bool done = g->finished == g->started; /* none started, or all done already */

	pthread_mutex_unlock(&g->lock);
	/* What the last member would have done had it come after the start: on a service
	 * thread, where done callbacks run (this may be the application's thread). */
	if (sync || done) {
		g->later_sync = sync;
		vm_service_submit(g->vm, NULL, &g->later);
	}
}

static int later_issue(struct vm_job *job, struct vm_service *s)
{
	struct group *g = (struct group *)((char *)job - offsetof(struct group, later));

	(void)s;
	if (g->later_sync)
		sync_stores(g);
	else /* none started, or the last finished before starting ended */
		phase_end(g);
	return 0;
}

static const struct vm_job_ops later_ops = {later_issue, NULL};

int vm_writeoutv(struct rp_fileh *const *fhs, size_t n, int flags, rp_done_fn done,
                 void *arg, char *msg, size_t msglen)
{
	struct group *g = calloc(1, sizeof(*g) + n * sizeof(g->fhs[0]));

	if (!g || !(g->waiting = calloc(n, sizeof(*g->waiting))) ||
	    !(g->mmsg = calloc(n, sizeof(*g->mmsg)))) {
		if (g)
			free(g->waiting);
		free(g);
		return vm_errf(-ENOMEM, "out of memory");
	}
	g->base.arrive = arrive;
	g->later.ops = &later_ops;
	g->vm = fhs[0]->vm;
	g->flags = flags;
	g->n = n;
	memcpy(g->fhs, fhs, n * sizeof(*fhs));
	g->lo = 0;
	g->hi = flags & RP_WRITEOUT_ORDERED ? 1 : n;
	g->done = done;
	g->arg = arg;
	g->msg = msg;
	g->msglen = msglen;
	pthread_mutex_init(&g->lock, NULL);
	start_phase(g);
	return 0;
}

int vm_writeoutv_wait(struct rp_fileh *const *fhs, size_t n, int flags)
{
	struct vm_wo_waiter w = VM_WO_WAITER_INIT;

	vm_wo_waiter_start(&w, fhs[0]->vm);
	int err = vm_writeoutv(fhs, n, flags, vm_wo_waiter_done, &w, w.msg, sizeof(w.msg));

	return err ? err : vm_wo_waiter_wait(&w, "rp_writeoutv");
}
