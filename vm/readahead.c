/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/readahead.c - sequential detection and batched prefetch (readahead).
 *
 * The algorithm is Linux's on-demand readahead (mm/readahead.c), moved from the page
 * cache onto the pagemap. Each mapping holds one stream state, as each open file does in
 * Linux: the last window read, pages [start, start + size), of which the last `async`
 * pages were read ahead of need; the first of those carries the marker bit (PG_RA_MARK).
 *
 *   sync miss   (a fault on an absent page idx; vm_ra_sync)
 *     - idx is the first page of the mapping, or the page after the previous touch, or
 *       the page the current window expected next: a stream. A new one starts with an
 *       initial window (ra_init_size: 4 pages for a 1-page miss when readahead_max is
 *       large), a known one moves on by its next window (ra_next_size: x4 while small,
 *       then x2, up to readahead_max).
 *     - otherwise context readahead: count the present pages just before idx. More than
 *       one means a stream whose state was lost (another stream moved the mapping's
 *       state, or the state is new): a window as large as that history (twice as large
 *       when the history reaches back to the mapping's first page), marker on its last
 *       page. None or one: a random access, idx is read alone.
 *   marker hit  (a fault on a page that carries the marker, resident or still loading;
 *                vm_ra_async)
 *     - the window the state expected: the next window, all of it asynchronous, so its
 *       marker is its first page: reaching the window read ahead starts the one after.
 *     - a marker the state does not expect (interleaved streams in one mapping): the run
 *       of present pages after idx is what that stream read ahead; its length, ramped
 *       up, is the size of the window that follows it.
 *   A window whose marker would be the faulting page itself (a stream's first window
 *   when all of it is asynchronous) is merged with the next one at once, as Linux does.
 *
 * Back-off: a random pattern can fool context readahead (two pages before a miss may be
 * present by chance). Each sync miss counts one against the stream, each page read ahead
 * and used counts one for it; past RA_MISS_MAX the stream stops guessing from context
 * (Linux's mmap_miss does the same with its read-around). A strictly sequential miss
 * still starts a window, so a scan after random traffic is found again at its second
 * page. Advice: RANDOM turns readahead off; SEQUENTIAL reads readahead_max-sized windows
 * from the first miss, marker halfway (Linux's MADV_SEQUENTIAL).
 *
 * Reading a window (ra_miss, ra_touch in vm/fault.c): its absent pages, in runs that are each one
 * O_DIRECT read into the contiguous alias range, split only at the device's largest
 * request (sysfs max_sectors_kb). A sync miss loads its own page as a load of its own,
 * issued first, so the faulting thread runs again when that page is in, not when the
 * whole window is. Pages read ahead are left unmapped (PG_RA): the first touch of one
 * maps it with the pages read ahead after it, up to VM_RA_CHUNK_BYTES (as the kernel's
 * fault-around does). That fault is how the engine knows a page read ahead was used
 * (readahead_used, and the back-off's credit); one that leaves the pool still unmapped is
 * wasted (evicted, invalidated, dropped). The windows a marker starts (the stream has
 * proved itself) are mapped whole instead, a run as it completes (vm_load_finish), and
 * counted used then: one fault a window, not one per chunk. The marker page is never
 * mapped ahead of its touch, so that its touch is seen. Pages read ahead get the
 * reference bit like every new page, so the CLOCK gives them one pass before they may go.
 * A window's read that fails leaves its pages absent, not poisoned: the fault that wants
 * one reads it again and reports the error then.
 *
 * Windows are read within the mapping's range (a database maps the region it scans) and
 * never larger than a quarter of the pool (vm->ra_max).
 *
 * Behind a stream (vm_ra_behind): keep_from is the stream's first page not yet dropped,
 * set where a stream starts. At each marker the caller drops the stream's pages further
 * behind than scan_keep (vm/fault.c, drop_behind).
 *
 * A window is read straight into the pool's pages, through the alias, until its stream
 * has proved itself. The windows of a proven stream (readahead_copy, the default) are read
 * into a service thread's staging slots instead, 1 MiB a run, and each run goes into the
 * pool and the stream's mapping with one UFFDIO_COPY (vm/load.c, load_copy): a new pool
 * page is then filled by the copy, not zeroed by the kernel first, and is neither mapped
 * in the alias nor unmapped from it (docs/benchmarks.md, "Copied windows").
 */
#include "vm/readahead.h"
#include "vm/err.h"
#include "ringpager.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RA_NONE     UINT64_MAX
#define RA_MISS_MAX 100  /* Linux's MMAP_LOTSAMISS */
#define RA_MISS_CAP 1000 /* the count saturates here, so a long random phase is forgiven */

/* ---------------------------------------------------------------- the detector */

static uint64_t pow2_up(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

/* The first window of a stream whose miss asked for req pages. */
static uint64_t ra_init_size(uint64_t req, uint64_t max)
{
	uint64_t n = pow2_up(req);

	if (n <= max / 32)
		n *= 4;
	else if (n <= max / 4)
		n *= 2;
	else
		n = max;
	return n;
}

/* The window after one of cur pages. */
static uint64_t ra_next_size(uint64_t cur, uint64_t max)
{
	if (cur < max / 16)
		return 4 * cur;
	if (cur <= max / 2)
		return 2 * cur;
	return max;
}

void vm_ra_init(struct vm_ra *ra)
{
	memset(ra, 0, sizeof(*ra));
	ra->prev = RA_NONE;
}

/* idx is where the stream's state expects the next window to be asked for. */
static bool ra_expected(const struct vm_ra *ra, uint64_t idx)
{
	return ra->size &&
	       (idx == ra->start + ra->size - ra->async || idx == ra->start + ra->size);
}

static void ra_forward(struct vm_ra *ra, uint64_t max)
{
	ra->start += ra->size;
	ra->size = ra_next_size(ra->size, max);
	ra->async = ra->size;
}

/* The state holds the window decided for a touch of idx: merges the next window in when
 * this one's marker would be idx itself, and clips it to the stream's range. */
static bool ra_window(struct vm_ra *ra, const struct vm_ra_env *e, uint64_t idx,
                      struct vm_ra_win *w)
{
	if (idx == ra->start && ra->size == ra->async) {
		uint64_t add = ra_next_size(ra->size, e->max);

		if (ra->size + add <= e->max) {
			ra->async = add;
			ra->size += add;
		} else {
			ra->size = e->max;
			ra->async = e->max / 2;
		}
	}
	ra->prev = idx;
	if (ra->start >= e->hi)
		return false;
	w->start = ra->start;
	w->size = ra->size < e->hi - ra->start ? ra->size : e->hi - ra->start;
	w->mark = ra->async ? ra->start + ra->size - ra->async : RA_NONE;
	if (w->mark != RA_NONE && w->mark >= w->start + w->size)
		w->mark = RA_NONE;
	return w->size > 0;
}

/* Context readahead: the present pages just before idx as the sign of a stream. */
static bool ra_context(struct vm_ra *ra, const struct vm_ra_env *e, uint64_t idx, uint64_t req)
{
	uint64_t h = 0;

	while (h < e->max && idx - h > e->lo && e->present(e->arg, idx - h - 1))
		h++;
	if (h <= req)
		return false; /* nothing, or one page: as likely random */
	if (h >= idx - e->lo)
		h *= 2; /* it reaches back to the first page: a whole-range read, likely long */
	ra->start = idx;
	ra->size = h + req < e->max ? h + req : e->max;
	ra->async = 1;
	ra->keep_from = idx - h; /* the history is the stream's too */
	return true;
}

bool vm_ra_sync(struct vm_ra *ra, const struct vm_ra_env *e, int advice, uint64_t idx,
                struct vm_ra_win *w)
{
	uint64_t req = 1;

	if (advice == RP_ADVICE_RANDOM || e->max <= 1) {
		ra->prev = idx;
		return false;
	}
	if (advice == RP_ADVICE_SEQUENTIAL)
		goto initial_seq;
	if (ra->miss < RA_MISS_CAP)
		ra->miss++;
	if (idx == e->lo)
		goto initial;
	if (ra_expected(ra, idx)) {
		ra_forward(ra, e->max);
		return ra_window(ra, e, idx, w);
	}
	if (ra->prev != RA_NONE && idx >= ra->prev && idx - ra->prev <= 1)
		goto initial;
	if (ra->miss > RA_MISS_MAX || !ra_context(ra, e, idx, req)) {
		ra->prev = idx; /* a random access: idx alone, the state kept */
		return false;
	}
	return ra_window(ra, e, idx, w);
initial_seq:
	req = e->max;
initial:
	ra->start = idx;
	ra->keep_from = idx;
	ra->size = ra_init_size(req, e->max);
	ra->async = ra->size > req ? ra->size - req : ra->size;
	return ra_window(ra, e, idx, w);
}

bool vm_ra_async(struct vm_ra *ra, const struct vm_ra_env *e, int advice, uint64_t idx,
                 struct vm_ra_win *w)
{
	uint64_t start;

	if (advice == RP_ADVICE_RANDOM || e->max <= 1)
		return false;
	if (ra_expected(ra, idx)) {
		ra_forward(ra, e->max);
		return ra_window(ra, e, idx, w);
	}
	/* Another stream's marker: the present run after it is that stream's window. */
	for (start = idx + 1; start < e->hi && start - idx <= e->max; start++)
		if (!e->present(e->arg, start))
			break;
	if (start >= e->hi || start - idx > e->max)
		return false;
	ra->start = start;
	ra->keep_from = idx; /* what is behind it may be another stream's */
	ra->size = ra_next_size(start - idx + 1, e->max);
	ra->async = ra->size;
	return ra_window(ra, e, idx, w);
}

bool vm_ra_behind(struct vm_ra *ra, uint64_t idx, uint64_t keep, uint64_t min, uint64_t *first,
                  uint64_t *n)
{
	/* Only this stream's own marker: another stream's (interleaved in the mapping) is
	 * not this one's position, and what lies behind it may be this one's window. */
	if (!keep || !ra_expected(ra, idx) || idx < ra->keep_from || idx - ra->keep_from < keep ||
	    idx - ra->keep_from - keep < (min ? min : 1))
		return false;
	*first = ra->keep_from;
	*n = idx - keep - ra->keep_from;
	ra->keep_from = idx - keep;
	return true;
}

void vm_ra_used(struct vm_ra *ra, uint64_t last, uint64_t n)
{
	ra->miss = ra->miss > n ? ra->miss - (unsigned)n : 0;
	ra->prev = last;
}

/* ---------------------------------------------------------------- advice */

int vm_advice_at(const struct vm_advice *a, uint64_t idx)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (a->r[mid].end <= idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < a->n && a->r[lo].first <= idx ? a->r[lo].advice : RP_ADVICE_NORMAL;
}

int vm_advise(struct vm_advice *av, uint64_t first, uint64_t n, int advice)
{
	uint64_t end = first + n;
	/* Each call splits at most one range in two and adds one. */
	struct vm_adv *a = malloc((av->n + 2) * sizeof(*a));
	size_t k = 0;
	bool placed = advice == RP_ADVICE_NORMAL;

	if (!a)
		return vm_errf(-ENOMEM, "out of memory");
	for (size_t i = 0; i < av->n; i++) {
		struct vm_adv r = av->r[i];

		if (!placed && r.first >= first) {
			a[k++] = (struct vm_adv){first, end, advice};
			placed = true;
		}
		if (r.end <= first || r.first >= end) {
			a[k++] = r;
			continue;
		}
		if (r.first < first)
			a[k++] = (struct vm_adv){r.first, first, r.advice};
		if (!placed) {
			a[k++] = (struct vm_adv){first, end, advice};
			placed = true;
		}
		if (r.end > end)
			a[k++] = (struct vm_adv){end, r.end, r.advice};
	}
	if (!placed)
		a[k++] = (struct vm_adv){first, end, advice};
	free(av->r);
	av->r = a;
	av->n = k;
	return 0;
}

/* ---------------------------------------------------------------- the fault path */
