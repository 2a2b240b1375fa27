/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/writeout.c - writing dirty pages back to their store, when the application asks.
 *
 * A writeout of a handle goes through three phases, run by a fault-service thread (the one
 * it is handed to; a device store's requests complete on that thread's queue), or by the
 * thread in rp_writeout (wo_run_here, on a queue lent to it; the paragraph below the
 * phases says when):
 *
 *   start (wo_start, on the thread that asked, or the one that finished the previous
 *       writeout of the handle): collect the writes (vm/dirty.c), then, under the
 *       handle's lock, take every DIRTY page in ascending order, coalescing contiguous
 *       ones into runs of at most VM_WRITE_MAX_BYTES, and make them WRITING. With
 *       MARKSTORED under wp_sync, each run is write-protected again in every mapping
 *       before any write is issued, so a write from now on faults and is seen.
 *   WO_WRITE: one request per run, issued in ascending order (O_DIRECT through io/, held
 *       and started together; or the custom store's callback), queue_depth at a time,
 *       from a copy in the service thread's staging area where the run fits
 *       (wrun_stage), else from the alias mapping.
 *   WO_SYNC (with SYNC, when every write succeeded): fdatasync, or the custom store's
 *       sync callback.
 *   WO_FINISH (wo_finish): with MARKSTORED, collect again over the runs' pages
 *       (wo_collect_runs), so that writes made to them while the requests were in flight
 *       mark them redirtied; then each WRITING page becomes LOADED (clean) if MARKSTORED
 *       was asked, its write succeeded (and the sync, with SYNC), and it was not
 *       redirtied; DIRTY otherwise. Then the next writeout of the handle starts, and
 *       the done callback runs.
 *
 * Who runs it: rp_writeout of a file or device whose handle has no writeout running runs
 * its own, issuing each phase and waiting in the kernel for its requests, with no hand-
 * over and no wake-up between threads (docs/design.md, "Who runs a writeout"). The rest,
 * and every writeout when no queue can be lent, go to the service threads. The phases'
 * code is the same either way: wo_issue on the lent queue, whose completions the caller
 * reaps (vm_service_wait); where a service thread would be handed the next phase, the
 * caller's loop issues it (wo->again).
 *
 * Writeouts of one handle run one at a time, in order (fh->wo_active, fh->wo_pending):
 * two writeouts of the same pages at once could otherwise finish out of order and leave
 * the store holding the older bytes. Writeouts of different handles overlap freely.
 * Invalidate, discard and closing the handle wait for its writeouts: a WRITING page's RAM
 * is being read by the device and must stay.
 *
 * Nothing is lost on failure: a page leaves DIRTY only through a write that succeeded
 * (and was synced, with SYNC), and only for MARKSTORED.
 */
#include "vm/writeout.h"
#include "vm/dirty.h"
#include "vm/load.h"
#include "vm/reclaim.h"
#include "vm/uffd.h"
#include "vm/vm.h"
#include "vm/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void wrun_done(struct vm_wrun *r, int err);
static int wo_issue(struct vm_job *job, struct vm_service *s);

static void wrun_job_complete(struct vm_job *job, int err)
{
	wrun_done((struct vm_wrun *)job, err);
}

/* the writeout's own request is its fdatasync */
static void wo_job_complete(struct vm_job *job, int err)
{
	struct vm_wo *wo = (struct vm_wo *)job;

	if (!err)
		vm_service_wo_synced(vm_now_ns() - wo->sync_ns);
	vm_wo_synced(wo, err);
}

static const struct vm_job_ops wrun_ops = {NULL, wrun_job_complete};
static const struct vm_job_ops wo_ops = {wo_issue, wo_job_complete};

static void fh_set_state(struct rp_fileh *fh, uint64_t first, uint64_t n, unsigned state)
{
	for (uint64_t i = first; i < first + n; i++) {
		uint64_t w = pg_with_state(pagemap_get(&fh->pm, i), state);

		(void)vm_page_set(fh, i, w);
	}
}

static void wo_fail(struct vm_wo *wo, int err)
{
	int zero = 0;

	(void)atomic_compare_exchange_strong(&wo->err, &zero, err);
}

/* Adds page idx (word w) to the runs: extends the last run or opens a new one. */
static int runs_add(struct vm_wo *wo, size_t *cap, uint64_t idx, uint64_t w, uint64_t max)
{
	struct vm_wrun *r = wo->nruns ? &wo->runs[wo->nruns - 1] : NULL;

	if (r && r->first + r->n == idx && r->n < max) {
		r->n++;
		r->alias = r->alias && (w & PG_ALIAS);
		return 0;
	}
	if (wo->nruns == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct vm_wrun *a = realloc(wo->runs, c * sizeof(*a));

		if (!a)
			return -ENOMEM;
		wo->runs = a;
		*cap = c;
	}
	r = &wo->runs[wo->nruns++];
	memset(r, 0, sizeof(*r));
	r->job.ops = &wrun_ops;
	r->wo = wo;
	r->first = idx;
	r->n = 1;
	r->alias = (w & PG_ALIAS) != 0;
	return 0;
}

/* The next span of wo's runs from run *i on: runs at most `gap` pages apart joined into
 * [*lo, *hi); *i moves past them. False when none is left. */
static bool wo_next_span(const struct vm_wo *wo, size_t *i, uint64_t gap, uint64_t *lo,
                         uint64_t *hi)
{
	if (*i >= wo->nruns)
		return false;
	*lo = wo->runs[*i].first;
	*hi = *lo + wo->runs[*i].n;
	while (++*i < wo->nruns && wo->runs[*i].first - *hi <= gap)
		*hi = wo->runs[*i].first + wo->runs[*i].n;
	return true;
}

/* wp_sync: protects the runs again in every mapping, one call for runs at most
 * PROTECT_GAP pages apart. A call cost 29-85 us here, walking a page of a gap 30-50 ns:
 * clean resident pages there are protected already, a hole gets the kernel's write-protect
 * marker (a gap reaches into at most three page tables), and a dirty page this writeout
 * leaves (reclaim's writeback) stays DIRTY in its state and only faults once more. Not so
 * under wp_async, whose record of a write is the page-table entry itself. With a gap of
 * 64, dirty pages in runs of 4-16 spread over a file took one call a run
 * (docs/benchmarks.md, "Protecting a writeout's runs"). */
#define PROTECT_GAP 1024

atomic_ulong vm_wo_protect_calls; /* counted for tests (vm/testing.h) */

static void wo_protect(struct vm_wo *wo)
{
	struct rp_fileh *fh = wo->fh;
	uint64_t lo, hi;

	if (fh->vm->dirty != VM_DIRTY_WP_SYNC)
		return;
	for (struct rp_mapping *m = fh->maps; m; m = m->next)
		for (size_t i = 0; m->track && wo_next_span(wo, &i, PROTECT_GAP, &lo, &hi);) {
			vm_uffd_protect(fh->vm, m, lo, hi - lo, true);
			atomic_fetch_add_explicit(&vm_wo_protect_calls, 1, memory_order_relaxed);
		}
}

/* Collects the writes made to the writeout's pages while it ran (wp_async), walking the
 * page tables over its runs alone; the writes to other pages wait there for the next
 * collection, as any write made since the last one does. Runs less than
 * WO_COLLECT_CALL_PAGES apart are walked as one span; when walking the spans one call
 * each would cost about as much as the whole mappings, one whole collection. A commit of
 * a few pages then walks a few page tables, not every page the handle's mappings hold
 * (docs/benchmarks.md, "A commit's collection"). fh->lock held. */
#define WO_COLLECT_CALL_PAGES 4096

static void wo_collect_runs(struct vm_wo *wo)
{
	struct rp_fileh *fh = wo->fh;
	const uint64_t tracked = vm_dirty_tracked_pages(fh), gap = WO_COLLECT_CALL_PAGES - 1;
	uint64_t cost = 0, lo, hi;

	if (!tracked)
		return;
	for (size_t i = 0; wo_next_span(wo, &i, gap, &lo, &hi);)
		cost += WO_COLLECT_CALL_PAGES + hi - lo;
	if (!cost)
		return;
	if (cost >= tracked) {
		vm_dirty_collect(fh, NULL);
		return;
	}
	for (size_t i = 0; wo_next_span(wo, &i, gap, &lo, &hi);)
		vm_dirty_collect_range(fh, lo, hi);
}

/* Takes the handle's dirty pages for wo (see the top of the file). fh->lock held. */
static void wo_start(struct vm_wo *wo)
{
	struct rp_fileh *fh = wo->fh;
	struct vm *vm = fh->vm;
	uint64_t max = VM_WRITE_MAX_BYTES / vm->psz ? VM_WRITE_MAX_BYTES / vm->psz : 1;
	uint64_t idx, w;
	size_t cap = 0;

	/* The size goes with the pages (STORE); reclaim's writeback leaves it, and the
	 * pages past the store's end that only a change of size may write. */
	const bool cold = (wo->flags & VM_WO_COLD) != 0;
	const uint64_t cold_end = fh->zero_from / vm->psz;

	wo->size = fh->size;
	wo->cut = fh->zero_from < fh->store->size ? fh->zero_from : UINT64_MAX;
	wo->resize = (wo->flags & RP_WRITEOUT_STORE) && !cold &&
	             (wo->size != fh->store->size || wo->cut != UINT64_MAX);
	vm_dirty_collect(fh, NULL);
	for (uint64_t i = 0; vm_next_dirty(fh, i, &idx, &w); i = idx + 1) {
		if (pg_state(w) != PG_DIRTY ||
		    (cold && ((w & PG_REF) || pg_pins(w) || idx >= cold_end)))
			continue;
		if (runs_add(wo, &cap, idx, w, max) < 0) {
			wo_fail(wo, vm_errf(-ENOMEM, "out of memory for the writeout's runs"));
			free(wo->runs);
			wo->runs = NULL;
			wo->nruns = 0;
			wo->phase = WO_FINISH;
			return;
		}
	}
	if (wo->flags & RP_WRITEOUT_MARKSTORED)
		wo_protect(wo);
	if (!(wo->flags & RP_WRITEOUT_STORE)) {
		/* MARKSTORED alone: the application says the store has them. */
		for (size_t i = 0; i < wo->nruns; i++) {
			fh_set_state(fh, wo->runs[i].first, wo->runs[i].n, PG_LOADED);
			vm_dirty_add(fh, -(int64_t)wo->runs[i].n);
		}
		wo->nruns = 0;
		wo->phase = WO_FINISH;
		return;
	}
	for (size_t i = 0; i < wo->nruns; i++)
		fh_set_state(fh, wo->runs[i].first, wo->runs[i].n, PG_WRITING);
	/* A group's member with nothing to write still meets the others at the sync. */
	wo->phase = wo->nruns || wo->resize || (wo->group && (wo->flags & RP_WRITEOUT_SYNC))
	                ? WO_WRITE
	                : WO_FINISH;
	atomic_store(&wo->pending, 1); /* the issuer's reference, dropped after the last run */
}

int vm_writeout(struct rp_fileh *fh, int flags, rp_done_fn done, void *arg, char *msg,
                size_t msglen)
{
	return vm_writeout_in(fh, flags, done, arg, msg, msglen, NULL);
}

/* Starts a writeout: queued behind the handle's running one, or begun (wo_start). With
 * `here` (a queue lent to the caller), one begun at once is left for the caller to run
 * (*out); otherwise it is handed to a service thread. */
static int wo_begin(struct rp_fileh *fh, int flags, rp_done_fn done, void *arg, char *msg,
                    size_t msglen, struct vm_wo_group *group, struct vm_service *here,
                    struct vm_wo **out)
{
	struct vm *vm = fh->vm;
	struct vm_wo *wo = calloc(1, sizeof(*wo));

	*out = NULL;
	if (!wo)
		return vm_errf(-ENOMEM, "out of memory");
	wo->msg = msg;
	wo->msglen = msglen;
	atomic_store(&wo->err_page, UINT64_MAX);
	wo->job.ops = &wo_ops;
	wo->fh = fh;
	wo->flags = flags;
	wo->done = done;
	wo->arg = arg;
	wo->group = group;
	pthread_mutex_lock(&fh->lock);
	/* A write made before this call to a page still being copied into its mapping (vm/
	 * load.c) must be in this writeout: the copy ends first, and the page is dirty. */
	vm_load_wait_copies(fh);
	if (fh->wo_active) {
		if (fh->wo_pending_tail)
			fh->wo_pending_tail->fh_next = wo;
		else
			fh->wo_pending = wo;
		fh->wo_pending_tail = wo;
		pthread_mutex_unlock(&fh->lock);
		return 0;
	}
	fh->wo_active = wo;
	wo_start(wo);
	pthread_mutex_unlock(&fh->lock);
	if (here) {
		wo->here = here;
		*out = wo;
		return 0;
	}
	/* An atomic writeout blocks its thread in the log's write and fdatasync: it goes
	 * where those finish soonest. Others go to the caller's CPU's thread, where the hand-
	 * over and the wake-up at the end stay on one CPU (docs/benchmarks.md, "Where a
	 * commit waits"). */
	if (flags & RP_WRITEOUT_ATOMIC)
		vm_service_hand_wo(vm, &wo->job);
	else
		vm_service_hand(vm, &wo->job, &wo->job);
	return 0;
}

int vm_writeout_in(struct rp_fileh *fh, int flags, rp_done_fn done, void *arg, char *msg,
                   size_t msglen, struct vm_wo_group *group)
{
	struct vm_wo *wo;

	return wo_begin(fh, flags, done, arg, msg, msglen, group, NULL, &wo);
}

/* Runs wo's phases on the calling thread, on its lent queue, until it ends (w->done). The
 * queue holds only wo's requests. */
static void wo_run_here(struct vm_wo *wo, const struct vm_wo_waiter *w)
{
	struct vm_service *l = wo->here;
	bool busy = false;

	wo->again = true;
	while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) {
		if (wo->again || busy) {
			wo->again = false;
			busy = wo_issue(&wo->job, l) == -EBUSY; /* may end and free wo */
			if (!busy)
				continue;
		}
		(void)vm_service_wait(l); /* its writes' completions; the last sets wo->again */
	}
}

void vm_wo_waiter_done(void *arg, int result)
{
	struct vm_wo_waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	w->result = result;
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->lock);
}

void vm_wo_waiter_start(struct vm_wo_waiter *w, struct vm *vm)
{
	w->vm = vm;
	w->t0 = vm_now_ns();
}

int vm_wo_waiter_wait(struct vm_wo_waiter *w, const char *fn)
{
	/* The thread that asked for a synchronous writeout may look for its end rather than
	 * sleep: the service thread that ends it then wakes no one, which on a virtual CPU
	 * halted across CPUs cost 77-86 us against 6 (docs/benchmarks.md, "Where a commit
	 * waits"). It yields the CPU between looks, for the service thread should it share
	 * the CPU, and sleeps after VM_WO_POLL_NS. Whether it pays is timed like a fault's
	 * read (vm/spin.c), over the whole writeout. A writeout its caller ran (wo_run_here)
	 * has ended already: nothing to choose. One a service thread ran is chosen for and
	 * timed even when it ended before this look, as its end is part of what is timed. */
	if (!w->ran_here) {
		const bool poll = vm_spin_pick(&w->vm->wo_spin);

		if (poll)
			for (const uint64_t end = w->t0 + VM_WO_POLL_NS;
			     !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) && vm_now_ns() < end;)
				sched_yield();
		pthread_mutex_lock(&w->lock);
		while (!w->done)
			pthread_cond_wait(&w->cv, &w->lock);
		pthread_mutex_unlock(&w->lock);
		vm_spin_record(&w->vm->wo_spin, poll, vm_now_ns() - w->t0);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cv);
	if (w->result < 0)
		return vm_errf(w->result, "%s: %s", fn, w->msg);
	return 0;
}

int vm_writeout_wait(struct rp_fileh *fh, int flags)
{
	struct vm_wo_waiter w = VM_WO_WAITER_INIT;
	/* A device store's writeout is run by the thread that waits for it, where a queue
	 * can be lent to it: the writes, the sync and the redo log's I/O are then waited for
	 * by the thread that asked, as a database does them itself, with no hand-over and no
	 * wake-up between threads (docs/benchmarks.md, "A writeout run by its caller"). */
	struct vm_service *l = fh->store->dev ? vm_service_lend(fh->vm) : NULL;
	struct vm_wo *wo;

	vm_wo_waiter_start(&w, fh->vm);
	int err = wo_begin(fh, flags, vm_wo_waiter_done, &w, w.msg, sizeof(w.msg), NULL, l, &wo);

	if (wo) {
		wo_run_here(wo, &w);
		w.ran_here = true;
		atomic_fetch_add_explicit(&fh->vm->ctr.writeouts_here, 1, memory_order_relaxed);
	}
	if (l)
		vm_service_give_back(fh->vm, l);
	return err ? err : vm_wo_waiter_wait(&w, "rp_writeout");
}

/* ---------------------------------------------------------------- the phases */

/* The bytes of run r to write: the whole run, except that the last page of a store whose
 * size is not a multiple of the page size is cut at the size rounded up to the device's
 * alignment (a regular file grown past its size by that is cut back in wo_writes_done). */
static size_t run_bytes(const struct vm_wrun *r, const struct rp_store *st, size_t psz)
{
	const uint64_t size = r->wo->resize ? r->wo->size : st->size;
	uint64_t off = r->first * psz, len = r->n * psz;

	if (st->dev && off + len > size) {
		uint64_t a = st->dev->off_align ? st->dev->off_align : 1;
		uint64_t end = (size + a - 1) / a * a;

		len = end - off;
	}
	return (size_t)len;
}

/* Where run r's bytes are written from: a copy in service thread s's staging area, where
 * there is room; the alias (buf) otherwise. A write from the alias maps each page there
 * for the device (the kernel faults it in while it pins the pages), which on a machine
 * where a page-table entry is dear costs more than the copy; a commit's pages fit the
 * area (docs/benchmarks.md, "A commit's writes"). The copy is a memcpy from the alias
 * where a copy (rp_write, rp_read) mapped every page of the run there already (PG_ALIAS),
 * a pread(2) of the RAM handle's memfd otherwise, which maps nothing. */
static void *wrun_stage(struct vm_wrun *r, struct vm_service *s, void *buf, size_t len)
{
	const struct rp_fileh *fh = r->wo->fh;

	if (r->sbuf) /* staged already: for the log, or before its queue was full */
		return r->sbuf;
	if (!fh->store->dev)
		return buf;
	void *p = vm_service_wstage_get(s, len);

	if (!p)
		return buf;
	if (r->alias)
		memcpy(p, fh->ram->alias + r->first * fh->vm->psz, len);
	else if (pread(fh->ram->fd, p, len, (off_t)(r->first * fh->vm->psz)) != (ssize_t)len) {
		vm_service_wstage_put(s);
		return buf;
	}
	r->stage = s;
	r->sbuf = p;
	return p;
}

/* Gives run r's copy back (its write completed, or will never be issued). */
static void wrun_unstage(struct vm_wrun *r)
{
	if (r->stage) {
		vm_service_wstage_put(r->stage);
		r->stage = NULL;
		r->sbuf = NULL;
	}
}

/* RP_WRITEOUT_ATOMIC: the redo log of the writeout's pages and size, durable, before
 * anything is written in place (vm/atomic.c). One atomic writeout of a store at a time.
 * 0 or -errno (the message in wo->msg). Service thread. */
static int wo_log(struct vm_wo *wo, struct vm_service *s)
{
	struct rp_fileh *fh = wo->fh;
	struct rp_store *st = fh->store;
	char m[256];
	int err;

	if (atomic_exchange(&st->log_busy, true)) {
		snprintf(m, sizeof(m), "another atomic writeout of the store runs, or a failed "
		                       "one's redo log waits to be applied (close and reopen the "
		                       "store)");
		err = -EBUSY;
		goto fail;
	}
	wo->logged = true;
	if (st->log_fd < 0) {
		/* O_DIRECT: the log is written in one request from the staged copies
		 * (vm/atomic.c); a filesystem without it gets the page cache */
		st->log_fd = open(st->log_path, O_RDWR | O_CREAT | O_CLOEXEC | O_DIRECT, 0600);
		if (st->log_fd < 0 && errno == EINVAL)
			st->log_fd = open(st->log_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (st->log_fd < 0) {
			err = -errno;
			snprintf(m, sizeof(m), "opening the redo log %s: %s", st->log_path,
			         strerror(errno));
			goto fail;
		}
		/* the store's flushes reach the log: its emptying needs none */
		struct stat ls, ss;

		st->log_local = !st->dev->blockdev && fstat(st->log_fd, &ls) == 0 &&
		                fstat(st->dev->fd, &ss) == 0 && ls.st_dev == ss.st_dev;
	}
	struct vm_log_run *runs = malloc((wo->nruns ? wo->nruns : 1) * sizeof(*runs));

	if (!runs) {
		err = -ENOMEM;
		snprintf(m, sizeof(m), "out of memory");
		goto fail;
	}
	/* The pages go to the log from the copies they will be written in place from (the
	 * same bytes both times), where they fit the staging area. */
	for (size_t i = 0; i < wo->nruns; i++) {
		struct vm_wrun *r = &wo->runs[i];
		const char *src = wrun_stage(r, s, fh->ram->alias + r->first * fh->vm->psz,
		                             r->n * fh->vm->psz);

		runs[i] = (struct vm_log_run){r->first, r->n, src};
	}
	err = vm_log_write(st->log_fd, runs, wo->nruns, fh->vm->psz,
	                   wo->resize ? wo->size : st->size, wo->resize ? wo->cut : UINT64_MAX,
	                   fh->vm->log_max, m, sizeof(m));
	free(runs);
	if (!err)
		return 0;
fail:
	if (wo->msg)
		snprintf(wo->msg, wo->msglen, "%s", m);
	wo->msg = NULL; /* told: wo_finish says nothing more */
	return err;
}

/* The end of an atomic writeout (wo_finish, before the pages' states): succeeded, its
 * log is emptied; failed, the log is applied in place now, so that the store holds all
 * of it (or, the log incomplete, none) before another writeout may write a new log;
 * failing that too, the log stays for the next open, and the store takes no new one. */
static void wo_log_end(struct vm_wo *wo, int err)
{
	struct rp_store *st = wo->fh->store;
	char m[256];

	if (!wo->logged)
		return;
	if (!err) { /* in place and durable: should emptying the log fail, a replay is harmless */
		(void)vm_log_clear(st->log_fd, !st->log_local);
		atomic_store(&st->log_busy, false);
	} else if (st->log_fd >= 0 && vm_log_recover(st->log_fd, st->dev->fd, m, sizeof(m)) >= 0) {
		atomic_store(&st->log_busy, false);
	}
}

/* Makes the store `size` bytes: ftruncate of a file, the custom store's resize. */
static int store_resize(struct rp_store *st, uint64_t size)
{
	if (st->dev)
		return ftruncate(st->dev->fd, (off_t)size) < 0 ? -errno : 0;
	return st->ops->resize ? st->ops->resize(st->ctx, size) : -EOPNOTSUPP;
}

/* Every write completed: truncates what the last write grew, and chooses the next phase,
 * SYNC or FINISH. */
static void wo_writes_done(struct vm_wo *wo)
{
	struct rp_store *st = wo->fh->store;
	const uint64_t size = wo->resize ? wo->size : st->size;
	int err;

	if (wo->resize && !atomic_load(&wo->err)) {
		if ((err = store_resize(st, size)) < 0)
			wo_fail(wo, err);
		else
			__atomic_store_n(&st->size, size, __ATOMIC_RELEASE);
	} else if (st->dev && !st->dev->blockdev && wo->nruns) {
		const struct vm_wrun *last = &wo->runs[wo->nruns - 1];
		uint64_t end = last->first * wo->fh->vm->psz + run_bytes(last, st, wo->fh->vm->psz);

		if (end > size && ftruncate(st->dev->fd, (off_t)size) < 0)
			wo_fail(wo, -errno);
	}
	/* A group's member goes to the group's sync even after a failure: the others wait
	 * for it there (vm/group.c). */
	wo->phase = (wo->flags & RP_WRITEOUT_SYNC) && (wo->group || !atomic_load(&wo->err))
	                ? WO_SYNC
	                : WO_FINISH;
}

static void wrun_done(struct vm_wrun *r, int err)
{
	struct vm_wo *wo = r->wo;
	struct vm *vm = wo->fh->vm;

	wrun_unstage(r);
	if (err < 0) {
		r->err = err;
		wo_fail(wo, err);
		uint64_t none = UINT64_MAX;

		(void)atomic_compare_exchange_strong(&wo->err_page, &none, r->first);
	} else {
		atomic_fetch_add_explicit(&vm->ctr.pages_written, r->n, memory_order_relaxed);
		atomic_fetch_add_explicit(&wo->fh->n_pages_written, r->n, memory_order_relaxed);
		atomic_fetch_add_explicit(&vm->ctr.bytes_written, run_bytes(r, wo->fh->store, vm->psz),
		                          memory_order_relaxed);
	}
	/* The issuer holds a reference until every run is issued, so the count reaches 0 here
	 * only after that: the writeout is in no service thread's backlog then. */
	if (atomic_fetch_sub(&wo->pending, 1) == 1) {
		wo_writes_done(wo);
		if (wo->here)
			wo->again = true; /* wo_run_here issues the next phase */
		else
			vm_service_defer(vm, &wo->job);
	}
}

void rp_store_done(rp_store_token *tok, int err)
{
	struct vm_wrun *r = (struct vm_wrun *)tok;

	/* Exactly once per store (the header says so); see rp_load_done. */
	if (!r || atomic_exchange(&r->done, 1))
		return;
	wrun_done(r, err > 0 ? -err : err);
}

static void wo_finish(struct vm_wo *wo);

void vm_wo_synced(struct vm_wo *wo, int err)
{
	if (err < 0)
		wo_fail(wo, err);
	wo->phase = WO_FINISH;
	wo_finish(wo);
}

/* Issues what the writeout's phase needs on s's queue: 0, or -EBUSY when it is full. */
static int wo_issue(struct vm_job *job, struct vm_service *s)
{
	struct vm_wo *wo = (struct vm_wo *)job;
	struct rpio_queue *q = vm_service_queue(s);
	struct rp_fileh *fh = wo->fh;
	struct rp_store *st = fh->store;
	size_t psz = fh->vm->psz;
	int r;

again:
	switch (wo->phase) {
	case WO_WRITE:
		if ((wo->flags & RP_WRITEOUT_ATOMIC) && !wo->logged && (r = wo_log(wo, s)) < 0) {
			/* Nothing was written in place: the store is as it was. */
			wo_fail(wo, r);
			for (size_t i = 0; i < wo->nruns; i++) {
				wo->runs[i].err = r;
				wrun_unstage(&wo->runs[i]);
			}
			wo->next = wo->nruns;
			wo->cut = UINT64_MAX;
		}
		if (wo->cut != UINT64_MAX && wo->resize) {
			/* What the handle shrank away goes from the store first: the writes may
			 * then grow it again over zeros, never over its old bytes. */
			const uint64_t cut = wo->cut;

			wo->cut = UINT64_MAX;
			if ((r = store_resize(st, cut)) == 0) {
				__atomic_store_n(&st->size, cut, __ATOMIC_RELEASE);
			} else {
				wo_fail(wo, r);
				for (size_t i = 0; i < wo->nruns; i++) {
					wo->runs[i].err = r;
					wrun_unstage(&wo->runs[i]);
				}
				wo->next = wo->nruns; /* none issued: every page stays dirty */
			}
		}
		while (wo->next < wo->nruns) {
			struct vm_wrun *run = &wo->runs[wo->next];
			void *buf = fh->ram->alias + run->first * psz;
			size_t len = run_bytes(run, st, psz);

			buf = wrun_stage(run, s, buf, len);
			/* counted before the call: a custom store may complete it at once */
			atomic_fetch_add(&wo->pending, 1);
			if (st->dev) {
				struct iovec iov = {.iov_base = buf, .iov_len = len};

				/* Held, and started together below: one system call and one
				 * plugged burst for a commit's pages (docs/benchmarks.md, "A
				 * commit's writes"). */
				r = rpio_write(q, st->dev, run->first * psz, &iov, 1, IO_HOLD, &run->job);
				if (r == -EBUSY) { /* issued again later by this thread, from its copy */
					atomic_fetch_sub(&wo->pending, 1);
					(void)rpio_submit(q);
					return r;
				}
			} else {
				r = st->ops->store(st->ctx, run->first * psz, buf, len,
				                   (rp_store_token *)run);
			}
			wo->next++;
			atomic_fetch_add_explicit(&fh->vm->ctr.write_requests, 1, memory_order_relaxed);
			if (r < 0 || (!st->dev && r != RP_STORE_ASYNC))
				wrun_done(run, r > 0 ? -EPROTO : r);
		}
		if (st->dev)
			(void)rpio_submit(q);
		/* Every run issued: drop the issuer's reference; when it was the last, go on
		 * to the next phase here. */
		if (atomic_fetch_sub(&wo->pending, 1) == 1) {
			wo_writes_done(wo);
			goto again;
		}
		return 0;
	case WO_SYNC:
		if (wo->group) { /* one sync per store for the whole group, then vm_wo_synced */
			wo->group->arrive(wo->group, wo);
			return 0;
		}
		if (wo->here) { /* the thread that waits would sleep until the sync ended */
			vm_wo_synced(wo, rpio_dev_fdatasync(st->dev));
			return 0;
		}
		if (st->dev) {
			wo->sync_ns = vm_now_ns();
			r = rpio_fdatasync(q, st->dev, &wo->job);
			if (r == -EBUSY)
				return r;
			if (r < 0)
				vm_wo_synced(wo, r);
			return 0;
		}
		vm_wo_synced(wo, st->ops->sync ? st->ops->sync(st->ctx) : 0);
		return 0;
	case WO_FINISH:
		wo_finish(wo);
		return 0;
	}
	return 0;
}

static void wo_finish(struct vm_wo *wo)
{
	struct rp_fileh *fh = wo->fh;
	struct vm *vm = fh->vm;
	int err = atomic_load(&wo->err);

	wo_log_end(wo, err);
	bool mark = (wo->flags & RP_WRITEOUT_MARKSTORED) &&
	            !(err && (wo->flags & RP_WRITEOUT_SYNC));
	struct vm_wo *next;

	pthread_mutex_lock(&fh->lock);
	if (wo->resize && !err) { /* the store is the handle's size now, and holds nothing past */
		fh->disk_size = wo->size;
		fh->zero_from = wo->size;
	}
	/* Writes made meanwhile to the pages written: they are redirtied. Only MARKSTORED
	 * can make a page clean, so only it needs to know; otherwise every page goes back to
	 * DIRTY and uncollected writes wait in the page tables for the next collection. */
	if (mark)
		wo_collect_runs(wo);
	for (size_t i = 0; i < wo->nruns; i++) {
		const struct vm_wrun *r = &wo->runs[i];

		for (uint64_t p = r->first; p < r->first + r->n; p++) {
			uint64_t w = pagemap_get(&fh->pm, p);
			bool clean = mark && !r->err && !(w & PG_REDIRTY);

			assert(pg_state(w) == PG_WRITING);
			(void)vm_page_set(fh, p, pg_with_state(w, clean ? PG_LOADED : PG_DIRTY));
			if (clean)
				vm_dirty_add(fh, -1);
		}
	}
	/* The next writeout of the handle starts now. */
	next = fh->wo_pending;
	if (next) {
		fh->wo_pending = next->fh_next;
		if (!fh->wo_pending)
			fh->wo_pending_tail = NULL;
		fh->wo_active = next;
		wo_start(next);
	} else {
		fh->wo_active = NULL;
	}
	atomic_fetch_add_explicit(&fh->n_writeouts, 1, memory_order_relaxed);
	pthread_cond_broadcast(&fh->cv); /* discard, invalidate and close wait for this */
	pthread_mutex_unlock(&fh->lock);
	if (mark)
		vm_reclaim_kick(vm); /* clean pages can be evicted: loads waiting for memory */
	if (next)
		vm_service_defer(vm, &next->job);

	atomic_fetch_add_explicit(&vm->ctr.writeouts, 1, memory_order_relaxed);
	if (err)
		atomic_fetch_add_explicit(&vm->ctr.writeout_errors, 1, memory_order_relaxed);
	if (err && wo->msg) {
		uint64_t p = atomic_load(&wo->err_page);

		if (p != UINT64_MAX)
			snprintf(wo->msg, wo->msglen,
			         "writing the pages at store offset %" PRIu64 " failed: %s; %s",
			         p * vm->psz, strerror(-err),
			         (wo->flags & RP_WRITEOUT_SYNC) ? "every page of the writeout stays dirty"
			                                        : "the pages not stored stay dirty");
		else
			snprintf(wo->msg, wo->msglen, "%s%s; the pages stay dirty", strerror(-err),
			         err == -ENOMEM ? "" : " (syncing the store)");
	}
	rp_done_fn done = wo->done;
	void *arg = wo->arg;

	free(wo->runs);
	free(wo);
	if (done)
		done(arg, err);
}

void vm_wo_wait_idle(struct rp_fileh *fh)
{
	while (fh->wo_active || fh->wo_pending)
		pthread_cond_wait(&fh->cv, &fh->lock);
}
