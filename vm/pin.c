/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/pin.c - rp_pin, rp_unpin and WILLNEED: loads of whole ranges at queue depth, and
 * pin counts in the page words (vm/page.h).
 *
 * A pin walks its ranges once starting a load for every run of absent pages (handed to
 * the service threads in batches), waits for the last of its loads, then walks again to
 * take the pins with every page resident; a page that went meanwhile (evicted,
 * invalidated) makes it walk again. WILLNEED is the first walk alone.
 */
#include "vm/pin.h"
#include "vm/load.h"
#include "vm/uffd.h"
#include "vm/vm.h"
#include "vm/testing.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Maps resident page p (word w) into m for a pin: referenced, and used if read ahead.
 * fh->lock held. */
static void pin_map(struct rp_fileh *fh, struct rp_mapping *m, uint64_t p, uint64_t w)
{
	if (w & PG_RA) {
		w &= ~PG_RA;
		(void)vm_page_set(fh, p, w);
		atomic_fetch_add_explicit(&fh->vm->ctr.ra_used, 1, memory_order_relaxed);
	}
	vm_page_referenced(fh, p, w);
	vm_uffd_continue(fh->vm, m, p, 1, false);
}

struct pin_cursor {
	const uint64_t (*r)[2];
	size_t n, ri;
	uint64_t idx; /* page index within range ri */
	struct vm_load_batch batch; /* loads started and not yet handed over */
	unsigned nbatch;
	struct rp_mapping *map; /* pins: map resident pages into it */
	bool wait;              /* the caller waits (rp_pin): a load may wait for memory */
	unsigned *left;         /* ... for this many loads it started, counted by each finish */
	unsigned nflush;        /* batches handed over */
	bool first_here;        /* the first batch stayed on this CPU */
	bool self;              /* a copy: a lone load is read on this thread, no hand-off */
	struct pin_copy *copy; /* rp_read, rp_write: what the copy is; else NULL */
};

/* A copy's pin (rp_read, rp_write of [off, off + len)). For rp_write, `fill` is the bytes
 * it is about to write: a new page (past what the store holds) that they cover whole is
 * made of them rather than of zeros they would overwrite at once (one pwrite(2) of the
 * page instead of two), dirty from the start so that reclaim cannot drop it before the
 * write's pin holds it; `filled` counts those in place (vm_load_finish). `loaded` tells
 * the copy that the pin started a load: its pages are cold (vm_rw). */
struct pin_copy {
	const char *fill; /* rp_write's bytes; NULL for rp_read */
	uint64_t off, len;
	uint64_t filled;
	bool loaded;
};

/* Loads are handed to the service threads in batches: one wake-up per batch rather than
 * per page, yet the first requests start before a long walk ends. A pin of one batch goes
 * to the service thread of this CPU (no interrupt to another CPU for a short pin). A longer
 * pin's first batch goes to a thread of another CPU, for it alone, which starts on it while
 * this thread walks on (this CPU's thread runs only once this thread waits); its second to
 * this CPU's thread, for it alone; so a pin of 32 lone pages has both CPUs copying pages
 * into the mapping (the copies run with the handle's lock dropped: vm/load.c,
 * load_copy_out). The rest go to the threads in turn, which spreads a long pin's copying
 * and mapping over the CPUs (docs/benchmarks.md, "Design choices", "Copies outside the
 * lock" and "A pin's first batch to the other CPU"). */
#define PIN_BATCH 16

/* Hands the batch over; `more`: it is not the walk's last. fh->lock held; dropped and
 * retaken. */
static void pin_flush(struct rp_fileh *fh, struct pin_cursor *c, bool more)
{
	if (!c->nbatch)
		return;
	pthread_mutex_unlock(&fh->lock);
	if (c->self && c->nflush == 0 && c->nbatch == 1) {
		/* rp_read or rp_write of one absent run: read here, as fault_mode=sigbus does,
		 * rather than wake a service thread and wait to be woken. */
		struct vm_load *ld = c->batch.head;

		c->batch.head = c->batch.tail = NULL;
		c->nflush++;
		c->first_here = true;
		vm_load_waited(ld);
		(void)vm_load_issue(ld, NULL);
	} else if (c->nflush == 0 && !more) {
		/* A short pin's only batch, or the one before a wait for memory */
		c->nflush++;
		c->first_here = true;
		vm_load_batch_submit(fh->vm, NULL, &c->batch);
	} else if (c->nflush++ < 2) {
		if (c->nflush == 1 || c->first_here) /* the other CPU's thread has none yet */
			vm_service_hand_other(fh->vm, &c->batch.head->job, &c->batch.tail->job);
		else
			vm_service_hand_this(fh->vm, &c->batch.head->job, &c->batch.tail->job);
		c->batch.head = c->batch.tail = NULL;
	} else {
		vm_service_hand_spread(fh->vm, &c->batch.head->job, &c->batch.tail->job);
		c->batch.head = c->batch.tail = NULL;
	}
	pthread_mutex_lock(&fh->lock);
	c->nbatch = 0;
}

static bool cursor_valid(const struct pin_cursor *c)
{
	return c->ri < c->n;
}

static uint64_t cursor_page(const struct pin_cursor *c)
{
	return c->r[c->ri][0] + c->idx;
}

static void cursor_skip(struct pin_cursor *c, uint64_t k)
{
	c->idx += k;
	while (c->ri < c->n && c->idx >= c->r[c->ri][1]) {
		c->idx -= c->r[c->ri][1];
		c->ri++;
	}
}

/* Starts a load for the run of EMPTY pages at the cursor (within its range, at most
 * VM_LOAD_MAX_BYTES) and adds it to the cursor's batch, handing the batch over when it is
 * full. fh->lock held (dropped and retaken then). Returns pages covered, or -errno. */
static int64_t pin_start_run(struct rp_fileh *fh, struct pin_cursor *c)
{
	struct vm *vm = fh->vm;
	uint64_t first = cursor_page(c);
	uint64_t left = c->r[c->ri][1] - c->idx;
	uint64_t max = VM_LOAD_MAX_BYTES / vm->psz ? VM_LOAD_MAX_BYTES / vm->psz : 1;
	uint64_t n = 1;
	int err = 0;

	while (n < left && n < max && first + n < fh->npages && pagemap_get(&fh->pm, first + n) == 0)
		n++;
	/* A lone 4 KiB page goes through a service thread's bounce page, as a fault's does:
	 * no fallocate here, no fault of the page into the alias in the submission, no
	 * unmapping after. A run is read in one request into the alias. */
	const unsigned stage = vm_load_stage_flag(fh, n);
	/* Loads started and not handed over yet hold memory that a wait for memory could
	 * never see freed: hand them over first, then look at the page again. */
	const unsigned how = (c->wait && !c->nbatch ? VM_LOAD_MAY_WAIT : 0) | stage;
	struct vm_load *ld = vm_load_start(fh, first, n, how, &err);

	if (!ld && err == -ENOMEM && c->wait && c->nbatch) {
		pin_flush(fh, c, false);
		return 0;
	}
	if (!ld)
		return err;
	if (stage && c->map) {
		ld->dst = c->map;
		ld->touch = true;
	}
	if (c->copy)
		c->copy->loaded = true;
	if (stage && ld->zero && c->copy && c->copy->fill) {
		struct pin_copy *f = c->copy;
		const uint64_t off = first * vm->psz;

		if (off >= f->off && off + vm->psz <= f->off + f->len) {
			ld->src = (void *)(f->fill + (off - f->off)); /* only read */
			ld->filled = true;
			ld->fill_count = &f->filled;
		}
	}
	if (c->left) {
		ld->pin_left = c->left;
		(*c->left)++;
	}
	vm_load_batch_add(&c->batch, ld);
	if (++c->nbatch >= PIN_BATCH)
		pin_flush(fh, c, c->idx + n < c->r[c->ri][1] || c->ri + 1 < c->n);
	return (int64_t)n;
}

/* Walks from the cursor while pages are resident. Starts loads of EMPTY runs when
 * `start`. Stops at the first page that is LOADING (returns 1), at the end (0), or at a
 * failure (-errno: -EIO for a poisoned page). Every load it started is handed over. */
static int pin_walk(struct rp_fileh *fh, struct pin_cursor *c, bool start, bool stop_at_loading)
{
	while (cursor_valid(c)) {
		if (cursor_page(c) >= fh->npages) /* the handle shrank while the pin waited */
			return vm_errf(-EINVAL, "the handle shrank to %" PRIu64 " bytes as the pages loaded",
			               fh->size);
		uint64_t w = pagemap_get(&fh->pm, cursor_page(c));

		switch (pg_state(w)) {
		case PG_EMPTY:
			if (!start)
				return 1;
			int64_t k = pin_start_run(fh, c);

			if (k < 0)
				return (int)k;
			if (stop_at_loading)
				return 1;
			cursor_skip(c, (uint64_t)k);
			continue;
		case PG_LOADING:
			if (stop_at_loading)
				return 1;
			break;
		case PG_POISONED:
			return vm_errf(-EIO, "the page at store offset %" PRIu64 " failed to load: %s",
			               cursor_page(c) * fh->vm->psz, strerror(-pg_poison_err(w)));
		default:
			/* Resident before this walk: map it into the pin's mapping. Pages that
			 * loads bring in are mapped into every mapping by vm_load_finish. */
			if (c->map && start && !stop_at_loading)
				pin_map(fh, c->map, cursor_page(c), w);
			break;
		}
		cursor_skip(c, 1);
	}
	return 0;
}

static int pin_scan(struct rp_fileh *fh, struct pin_cursor *c, bool start, bool stop_at_loading)
{
	int r = pin_walk(fh, c, start, stop_at_loading);

	pin_flush(fh, c, false);
	return r;
}

/* ---------------------------------------------------------------- a mapping's pins
 *
 * rp_unpin names a pin by its range, and a database may hold thousands and drop them in
 * any order: they are found through an index by range (open addressing, linear probing)
 * beside the array that holds them, not by a scan, which made unpinning 32,768 pages one
 * by one in the order pinned quadratic (105 ms; docs/benchmarks.md). fh->lock held. */

static size_t pin_hash(uint64_t first, uint64_t n, size_t mask)
{
	const uint64_t h = first * 0x9e3779b97f4a7c15ull ^ n * 0xc2b2ae3d27d4eb4full;

	return (size_t)(h ^ h >> 31) & mask;
}

/* Puts pin i into the index. */
static void pins_index(struct rp_mapping *m, size_t i)
{
	const size_t mask = m->npin_slots - 1;
	size_t s = pin_hash(m->pins[i][0], m->pins[i][1], mask);

	while (m->pin_slots[s])
		s = (s + 1) & mask;
	m->pin_slots[s] = (uint32_t)(i + 1);
}

/* The slot of a pin of exactly n pages from first, or SIZE_MAX. */
static size_t pins_find(const struct rp_mapping *m, uint64_t first, uint64_t n)
{
	const size_t mask = m->npin_slots - 1;

	if (!m->npin_slots)
		return SIZE_MAX;
	for (size_t s = pin_hash(first, n, mask); m->pin_slots[s]; s = (s + 1) & mask) {
		const size_t i = m->pin_slots[s] - 1;

		if (m->pins[i][0] == first && m->pins[i][1] == n)
			return s;
	}
	return SIZE_MAX;
}

/* Empties slot s, moving the later entries of its probe run back where they may go. */
static void pins_unslot(struct rp_mapping *m, size_t s)
{
	const size_t mask = m->npin_slots - 1;
	size_t hole = s;

	for (size_t t = (s + 1) & mask; m->pin_slots[t]; t = (t + 1) & mask) {
		const size_t i = m->pin_slots[t] - 1;
		const size_t home = pin_hash(m->pins[i][0], m->pins[i][1], mask);

		if (((t - home) & mask) >= ((t - hole) & mask)) { /* home not in (hole, t] */
			m->pin_slots[hole] = m->pin_slots[t];
			hole = t;
		}
	}
	m->pin_slots[hole] = 0;
}

/* Room for n more pins in m, the index at most half full: 0 or -ENOMEM. */
static int pins_reserve(struct rp_mapping *m, size_t n)
{
	if (m->npins + n > m->cpins) {
		size_t c = m->cpins ? m->cpins : 8;

		while (c < m->npins + n)
			c *= 2;
		uint64_t(*a)[2] = realloc(m->pins, c * sizeof(*a));

		if (!a)
			return vm_errf(-ENOMEM, "out of memory");
		m->pins = a;
		m->cpins = c;
	}
	if (m->npin_slots >= 2 * m->cpins)
		return 0;
	if (m->cpins >= UINT32_MAX / 2)
		return vm_errf(-ENOMEM, "rp_pin: %zu pins through one mapping", m->cpins);
	size_t ns = 16;

	while (ns < 2 * m->cpins)
		ns *= 2;
	uint32_t *slots = calloc(ns, sizeof(*slots));

	if (!slots)
		return vm_errf(-ENOMEM, "out of memory");
	free(m->pin_slots);
	m->pin_slots = slots;
	m->npin_slots = ns;
	for (size_t i = 0; i < m->npins; i++)
		pins_index(m, i);
	return 0;
}

/* Records the pins of a successful vm_pin in m (room reserved). */
static void pins_add(struct rp_mapping *m, const uint64_t (*r)[2], size_t n)
{
	memcpy(m->pins + m->npins, r, n * sizeof(*r));
	for (size_t i = 0; i < n; i++)
		pins_index(m, m->npins + i);
	m->npins += n;
}

/* Drops the pin in slot s from m's records (not its pages' counts). */
static void pins_remove(struct rp_mapping *m, size_t s)
{
	const size_t i = m->pin_slots[s] - 1, last = m->npins - 1;

	pins_unslot(m, s);
	if (i != last) { /* the last pin takes its place in the array */
		const size_t mask = m->npin_slots - 1;
		size_t t = pin_hash(m->pins[last][0], m->pins[last][1], mask);

		while (m->pin_slots[t] != last + 1)
			t = (t + 1) & mask;
		m->pins[i][0] = m->pins[last][0];
		m->pins[i][1] = m->pins[last][1];
		m->pin_slots[t] = (uint32_t)(i + 1);
	}
	m->npins--;
}

/* Pins every page of the ranges if all are resident. fh->lock held. Returns 0, 1 when a
 * page is not resident (nothing pinned), or -EOVERFLOW. */
static int pin_take(struct rp_fileh *fh, const uint64_t (*r)[2], size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (uint64_t p = r[i][0]; p < r[i][0] + r[i][1]; p++) {
			uint64_t w = pagemap_get(&fh->pm, p);

			if (!pg_resident(w))
				return 1;
			if (pg_pins(w) == PG_PIN_MAX)
				return vm_errf(-EOVERFLOW,
				               "the page at store offset %" PRIu64
				               " is pinned %llu times already (the most)",
				               p * fh->vm->psz, PG_PIN_MAX);
		}
	for (size_t i = 0; i < n; i++)
		for (uint64_t p = r[i][0]; p < r[i][0] + r[i][1]; p++) {
			uint64_t w = pagemap_get(&fh->pm, p);

			(void)vm_page_set(fh, p, pg_with_pins(w, pg_pins(w) + 1));
		}
	return 0;
}

/* vm_pin, for a mapping m, or with m NULL for a copy (vm_rw): the pins are taken and
 * neither recorded nor mapped anywhere; the caller drops them (pins_drop). fn names the
 * call in messages. */
static int pin_pages(struct rp_fileh *fh, struct rp_mapping *m, const uint64_t (*ranges)[2],
                     size_t n, bool pin, bool wait, const char *fn, struct pin_copy *copy)
{
	unsigned left = 0;
	struct pin_cursor c = {.r = ranges,
	                       .n = n,
	                       .map = pin ? m : NULL,
	                       .wait = wait,
	                       .left = wait ? &left : NULL,
	                       .self = m == NULL,
	                       .copy = copy};
	uint64_t total = 0;
	int r;

	for (size_t i = 0; i < n; i++)
		total += ranges[i][1];
	if (pin && total > fh->vm->pool->capacity)
		return vm_errf(-ENOMEM,
		               "%" PRIu64 " pages to pin are more than the RAM pool holds (%" PRIu64
		               " pages)",
		               total, fh->vm->pool->capacity);
	pthread_mutex_lock(&fh->lock);
	uint64_t clip[1][2];

	for (size_t i = 0; i < n; i++) {
		if (ranges[i][0] + ranges[i][1] <= fh->npages)
			continue;
		if (wait || n != 1) {
			const uint64_t end = fh->size;

			pthread_mutex_unlock(&fh->lock);
			return vm_errf(-EINVAL,
			               "%s: the range at store offset %" PRIu64 " passes the end of "
			               "the handle (%" PRIu64 " bytes)",
			               fn, ranges[i][0] * fh->vm->psz, end);
		}
		/* WILLNEED: what of the range the handle has */
		if (ranges[0][0] >= fh->npages) {
			pthread_mutex_unlock(&fh->lock);
			return 0;
		}
		clip[0][0] = ranges[0][0];
		clip[0][1] = fh->npages - ranges[0][0];
		ranges = (const uint64_t(*)[2])clip;
		c.r = ranges;
	}
	const uint64_t unmaps = fh->unmaps;

	/* First pass: start every load, so that they all run at once. Then wait for the
	 * last of them: one wake-up, where waiting on each in turn woke this thread (and
	 * took the handle's lock from the service thread) once per completion. */
	r = pin_scan(fh, &c, true, false);
	while (left) /* also after a failure: the loads count on this frame */
		pthread_cond_wait(&fh->cv, &fh->lock);
	if (r < 0 || !wait)
		goto out;
	if (vm_pin_hook) {
		pthread_mutex_unlock(&fh->lock);
		vm_pin_hook(fh);
		pthread_mutex_lock(&fh->lock);
	}
	for (;;) {
		/* Wait pass: the cursor only moves forward over resident pages, so the whole
		 * wait costs one walk of the ranges plus one look per completion. */
		c = (struct pin_cursor){.r = ranges, .n = n, .wait = true};
		for (;;) {
			r = pin_scan(fh, &c, true, true);
			if (r <= 0)
				break;
			uint64_t w = pagemap_get(&fh->pm, cursor_page(&c));

			if (pg_state(w) == PG_LOADING) {
				pg_load(w)->waited = true;
				pthread_cond_wait(&fh->cv, &fh->lock);
			}
		}
		if (r < 0 || !pin)
			break;
		if (!m) {
			if ((r = pin_take(fh, ranges, n)) <= 0)
				break;
			continue;
		}
		if ((r = pins_reserve(m, n)) < 0) /* room first: pin_take cannot undo */
			break;
		r = pin_take(fh, ranges, n);
		if (r == 0) {
			pins_add(m, ranges, n);
			/* Mapped, as promised: reclaim may have unmapped a page since the first
			 * pass (pinned now, it stays). A referenced page was mapped here by that
			 * pass or by its load, and stays so unless the reclaim hand unmapped
			 * pages since: its bit may then be a fault's in another mapping, which
			 * maps the page there only. So with no unmap since, only the pages not
			 * referenced (or read ahead) are mapped again; after one, all are. */
			const bool trust_ref = fh->unmaps == unmaps;

			for (size_t i = 0; i < n; i++)
				for (uint64_t p = ranges[i][0]; p < ranges[i][0] + ranges[i][1]; p++) {
					uint64_t w = pagemap_get(&fh->pm, p);

					if (trust_ref && (w & PG_REF) && !(w & PG_RA))
						continue;
					pin_map(fh, m, p, w);
				}
		}
		if (r <= 0)
			break;
		/* A page went away (invalidated or evicted) between the walk and the pin: walk
		 * again. */
	}
out:
	pthread_mutex_unlock(&fh->lock);
	return r;
}

int vm_pin(struct rp_mapping *m, const uint64_t (*ranges)[2], size_t n, bool pin, bool wait)
{
	return pin_pages(m->fh, m, ranges, n, pin, wait, "rp_pin", NULL);
}

static void pins_drop(struct rp_fileh *fh, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++) {
		uint64_t w = pagemap_get(&fh->pm, p);

		assert(pg_pins(w) > 0);
		(void)vm_page_set(fh, p, pg_with_pins(w, pg_pins(w) - 1));
	}
}

int vm_unpin(struct rp_mapping *m, uint64_t first, uint64_t n)
{
	struct rp_fileh *fh = m->fh;

	pthread_mutex_lock(&fh->lock);
	const size_t s = pins_find(m, first, n);

	if (s != SIZE_MAX) {
		pins_drop(fh, first, n);
		pins_remove(m, s);
		pthread_mutex_unlock(&fh->lock);
		return 0;
	}
	pthread_mutex_unlock(&fh->lock);
	return vm_errf(-EINVAL,
	               "rp_unpin: no pin of this mapping covers exactly offset %" PRIu64
	               ", length %" PRIu64 " (relative to the mapping)",
	               (first - m->first) * fh->vm->psz, n * fh->vm->psz);
}

void vm_unpin_all(struct rp_mapping *m)
{
	for (size_t i = 0; i < m->npins; i++)
		pins_drop(m->fh, m->pins[i][0], m->pins[i][1]);
	m->npins = 0;
	if (m->pin_slots)
		memset(m->pin_slots, 0, m->npin_slots * sizeof(*m->pin_slots));
}


/* ---------------------------------------------------------------- copies (rp_read, rp_write) */

/* Pages pinned by one step of a copy: their loads go at queue depth together, and the
 * pool need only hold this many for the copy. */
#define RW_BATCH 256

/* Copies between buf and [pos, pos + len) of the handle's RAM, with the pages pinned.
 * Pages already resident are copied through the alias: a page's first copy maps it there
 * (a minor fault), and every later one is a memcpy with no system call. Pages this copy
 * had to load (cold) are copied with pread/pwrite on the memfd, which maps nothing: a
 * cold page's one copy through the alias would pay the minor fault and the new page-table
 * entry, dear on a VM (docs/benchmarks.md, "Copies through the alias"). The alias's
 * mapping of a page goes with the page when it is evicted. hugetlbfs takes no write(2):
 * always the alias there. vm_rw decides which (`alias`). Returns 0 or -errno. */
static int copy(struct rp_fileh *fh, uint64_t pos, char *buf, size_t len, bool write,
                bool alias)
{
	if (!alias)
		return rpio_fd_rw(fh->ram->fd, buf, len, pos, write);
	if (write)
		memcpy(fh->ram->alias + pos, buf, len);
	else
		memcpy(buf, fh->ram->alias + pos, len);
	return 0;
}

int64_t vm_rw(struct rp_fileh *fh, uint64_t off, void *buf, size_t len, bool write)
{
	const size_t psz = fh->vm->psz;
	const char *fn = write ? "rp_write" : "rp_read";
	uint64_t done = 0;

	vm_load_bounce_init(); /* a lone page is read through this thread's bounce page */
	pthread_mutex_lock(&fh->lock);
	const uint64_t size = fh->size;

	pthread_mutex_unlock(&fh->lock);
	if (off >= size)
		return 0;
	if (len > size - off)
		len = size - off; /* short at the end, as pread and pwrite of a file */
	while (done < len) {
		const uint64_t pos = off + done, first = pos / psz;
		uint64_t cnt = len - done;

		if (cnt > RW_BATCH * psz - pos % psz)
			cnt = RW_BATCH * psz - pos % psz;
		const uint64_t n = (pos % psz + cnt + psz - 1) / psz, r[1][2] = {{first, n}};
		struct pin_copy cp = {write ? (const char *)buf + done : NULL, pos, cnt, 0, false};
		int err = pin_pages(fh, NULL, r, 1, true, true, fn, &cp);

		if (err < 0)
			return done ? (int64_t)done : err;
		pthread_mutex_lock(&fh->lock);
		fh->copies++; /* the alias stays where it is (rp_fileh_resize waits) */
		pthread_mutex_unlock(&fh->lock);
		/* One new page, made of the bytes (struct pin_copy): written already. */
		const bool alias = !cp.loaded || psz != RAM_PAGE_4K;

		if (n != 1 || cp.filled != 1)
			err = copy(fh, pos, (char *)buf + done, cnt, write, alias);
		pthread_mutex_lock(&fh->lock);
		/* After the copy: a writeout that took a page meanwhile sees it written again.
		 * Pages copied through the alias are mapped there now (PG_ALIAS). */
		const uint64_t last = (pos + cnt - 1) / psz;

		for (uint64_t p = first; !err && (write || alias) && p <= last; p++) {
			if (write)
				(void)vm_dirty_mark(fh, p);
			if (!alias)
				continue;
			const uint64_t w = pagemap_get(&fh->pm, p);

			if (!(w & PG_ALIAS))
				(void)vm_page_set(fh, p, w | PG_ALIAS);
		}
		pins_drop(fh, first, n);
		if (--fh->copies == 0)
			pthread_cond_broadcast(&fh->cv);
		pthread_mutex_unlock(&fh->lock);
		if (err)
			return done ? (int64_t)done
			            : vm_errf(err, "%s: copying at offset %" PRIu64 ": %s", fn, pos,
			                      strerror(-err));
		done += cnt;
	}
	return (int64_t)done;
}
