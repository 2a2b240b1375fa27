/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_readahead.c - readahead: the detector fed access sequences (no engine,
 * deterministic), then end to end through mappings: the counters, advice, DONTNEED,
 * windows that fail, a window mapped for the faulting thread before it is all in.
 */
#include "ringpager.h"
#include "common/testutil.h"
#include "vm/testing.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ul

/* ---------------------------------------------------------------- the detector
 *
 * A simulated handle: which pages are present, which carry the marker, which were read
 * ahead and not used. An access does what the fault path does: a miss asks vm_ra_sync
 * (the page itself is present by then, as its load started first), a marker asks
 * vm_ra_async, a page read ahead is used. Windows asked for are recorded. */

#define SIM_MAXWIN 8192

struct sim {
	uint64_t n;
	unsigned char *present, *mark, *ahead;
	struct vm_ra ra;
	struct vm_ra_env e;
	struct vm_ra_win win[SIM_MAXWIN];
	size_t nwin;
	uint64_t misses, used;
};

static bool sim_present(void *arg, uint64_t idx)
{
	return ((struct sim *)arg)->present[idx];
}

static struct sim *sim_new(uint64_t n, uint64_t max)
{
	struct sim *s = calloc(1, sizeof(*s));

	cr_assert(s);
	s->n = n;
	s->present = calloc(n, 1);
	s->mark = calloc(n, 1);
	s->ahead = calloc(n, 1);
	cr_assert(s->present && s->mark && s->ahead);
	vm_ra_init(&s->ra);
	s->e = (struct vm_ra_env){.max = max, .lo = 0, .hi = n, .present = sim_present, .arg = s};
	return s;
}

static void sim_free(struct sim *s)
{
	free(s->present);
	free(s->mark);
	free(s->ahead);
	free(s);
}

/* Reads a window as ra_read does: absent pages only; the marker only on a page read. */
static void sim_read(struct sim *s, const struct vm_ra_win *w)
{
	cr_assert_lt(s->nwin, SIM_MAXWIN);
	cr_assert_leq(w->size, s->e.max, "window of %lu pages, max %lu", (unsigned long)w->size,
	              (unsigned long)s->e.max);
	cr_assert_leq(w->start + w->size, s->e.hi);
	s->win[s->nwin++] = *w;
	for (uint64_t p = w->start; p < w->start + w->size; p++)
		if (!s->present[p]) {
			s->present[p] = s->ahead[p] = 1;
			if (p == w->mark)
				s->mark[p] = 1;
		}
}

static void sim_access(struct sim *s, uint64_t idx, int advice)
{
	struct vm_ra_win w;

	cr_assert_lt(idx, s->n);
	if (!s->present[idx]) {
		s->misses++;
		s->present[idx] = 1;
		if (vm_ra_sync(&s->ra, &s->e, advice, idx, &w))
			sim_read(s, &w);
		return;
	}
	if (s->mark[idx]) {
		s->mark[idx] = 0;
		if (vm_ra_async(&s->ra, &s->e, advice, idx, &w))
			sim_read(s, &w);
	}
	if (s->ahead[idx]) {
		s->ahead[idx] = 0;
		s->used++;
		vm_ra_used(&s->ra, idx, 1);
	}
}

static void expect_win(const struct sim *s, size_t i, uint64_t start, uint64_t size,
                       uint64_t mark)
{
	cr_assert_lt(i, s->nwin, "window %zu was not asked for (%zu were)", i, s->nwin);
	cr_assert(s->win[i].start == start && s->win[i].size == size && s->win[i].mark == mark,
	          "window %zu: [%lu, +%lu) marker %lu; expected [%lu, +%lu) marker %lu", i,
	          (unsigned long)s->win[i].start, (unsigned long)s->win[i].size,
	          (unsigned long)s->win[i].mark, (unsigned long)start, (unsigned long)size,
	          (unsigned long)mark);
}

/* A forward scan from the first page: 4 pages, marker on the second; then each window
 * is all asynchronous (marker on its first page), twice the last, up to the maximum. */
Test(ra_detector, a_forward_scan_ramps_up_to_the_maximum_with_the_markers_in_place)
{
	struct sim *s = sim_new(4096, 64);

	for (uint64_t p = 0; p < 4096; p++)
		sim_access(s, p, RP_ADVICE_NORMAL);
	expect_win(s, 0, 0, 4, 1);
	expect_win(s, 1, 4, 8, 4);
	expect_win(s, 2, 12, 16, 12);
	expect_win(s, 3, 28, 32, 28);
	expect_win(s, 4, 60, 64, 60);
	expect_win(s, 5, 124, 64, 124);
	for (size_t i = 5; i < s->nwin; i++) {
		cr_assert_eq(s->win[i].start, s->win[i - 1].start + s->win[i - 1].size,
		             "window %zu does not follow the last", i);
		cr_assert(s->win[i].size == 64 || s->win[i].start + s->win[i].size == 4096);
	}
	cr_assert_eq(s->misses, 1, "a scan misses once, then reads ahead (%lu misses)",
	             (unsigned long)s->misses);
	cr_assert_eq(s->used, 4095);
	sim_free(s);
}

/* vm_ra_behind: what a stream leaves behind it beyond `keep`, in batches of `min` pages at
 * least, from where the stream started, only at the marker the stream's state expects
 * (an interleaved stream's marker is not its position); a new stream starts counting
 * again. */
static bool behind_at(struct vm_ra *ra, uint64_t idx, uint64_t keep, uint64_t min,
                      uint64_t *first, uint64_t *n)
{
	ra->start = idx; /* the window whose marker (its first page) is idx */
	ra->size = ra->async = 64;
	return vm_ra_behind(ra, idx, keep, min, first, n);
}

Test(ra_detector, a_stream_drops_only_what_is_further_behind_it_than_it_keeps)
{
	struct vm_ra ra;
	struct vm_ra_env e = {64, 0, 100000, NULL, NULL};
	struct vm_ra_win w;
	uint64_t first, n;

	vm_ra_init(&ra);
	cr_assert(vm_ra_sync(&ra, &e, RP_ADVICE_SEQUENTIAL, 1000, &w));
	cr_assert(!behind_at(&ra, 1100, 100, 64, &first, &n), "nothing beyond 100 behind");
	cr_assert(!behind_at(&ra, 1150, 100, 64, &first, &n), "fewer than 64 to drop");
	cr_assert(behind_at(&ra, 1200, 100, 64, &first, &n));
	cr_assert_eq(first, 1000);
	cr_assert_eq(n, 100);
	cr_assert(!behind_at(&ra, 1250, 100, 64, &first, &n));
	/* another stream's marker far ahead: not this stream's position */
	cr_assert(!vm_ra_behind(&ra, 90000, 100, 64, &first, &n));
	cr_assert(behind_at(&ra, 1300, 100, 64, &first, &n));
	cr_assert_eq(first, 1100);
	cr_assert_eq(n, 100);
	cr_assert(!behind_at(&ra, 5000, 0, 64, &first, &n), "keep 0: never");
	/* a stream that starts elsewhere drops nothing of what lies behind its start */
	cr_assert(vm_ra_sync(&ra, &e, RP_ADVICE_SEQUENTIAL, 50000, &w));
	cr_assert(!behind_at(&ra, 50100, 100, 1, &first, &n));
	cr_assert(behind_at(&ra, 50101, 100, 1, &first, &n));
	cr_assert_eq(first, 50000);
	cr_assert_eq(n, 1);
}

Test(ra_detector, a_scan_that_starts_mid_file_is_recognised_at_its_second_page)
{
	struct sim *s = sim_new(100000, 64);

	for (uint64_t p = 30000; p < 34000; p++)
		sim_access(s, p, RP_ADVICE_NORMAL);
	cr_assert_eq(s->misses, 2);
	expect_win(s, 0, 30001, 4, 30002);
	cr_assert_eq(s->win[s->nwin - 1].size, 64);
	sim_free(s);
}

/* Two forward scans interleaved page by page in one mapping: one stream state, so each
 * stream finds its way back through its marker (context readahead and the run of
 * present pages after the marker). Both ramp up; misses stay few. */
Test(ra_detector, two_interleaved_forward_scans_are_both_recognised)
{
	struct sim *s = sim_new(200000, 64);
	uint64_t max_a = 0, max_b = 0;

	for (uint64_t i = 0; i < 8000; i++) {
		sim_access(s, i, RP_ADVICE_NORMAL);
		sim_access(s, 100000 + i, RP_ADVICE_NORMAL);
	}
	for (size_t i = 0; i < s->nwin; i++) {
		uint64_t *m = s->win[i].start < 100000 ? &max_a : &max_b;

		if (s->win[i].size > *m)
			*m = s->win[i].size;
	}
	cr_assert_eq(max_a, 64);
	cr_assert_eq(max_b, 64);
	cr_assert_lt(s->misses, 16, "%lu misses for 16000 pages", (unsigned long)s->misses);
	sim_free(s);
}

/* Random accesses, each with two present pages just before it (as if by chance):
 * context readahead reads ahead for them at first, nothing is used, and past the
 * back-off limit no window is asked for any more. */
Test(ra_detector, a_random_pattern_stops_asking_for_windows_after_the_back_off)
{
	struct sim *s = sim_new(1 << 20, 64);
	uint64_t seed = 5;
	size_t early = 0;

	for (unsigned i = 0; i < 2000; i++) {
		uint64_t p = 2 + tu_rand(&seed) % ((1 << 20) - 2);

		if (s->present[p])
			continue;
		s->present[p - 1] = s->present[p - 2] = 1;
		sim_access(s, p, RP_ADVICE_NORMAL);
		if (i == 200)
			early = s->nwin;
	}
	cr_assert_gt(early, 50, "context readahead never fired (%zu windows)", early);
	cr_assert_eq(s->nwin, early, "%zu windows after the back-off", s->nwin - early);
	sim_free(s);
}

/* Plain random accesses over a large range ask for (almost) nothing. */
Test(ra_detector, plain_random_accesses_ask_for_almost_no_readahead)
{
	struct sim *s = sim_new(1 << 20, 512);
	uint64_t seed = 9, pages = 0;

	for (unsigned i = 0; i < 20000; i++)
		sim_access(s, tu_rand(&seed) % (1 << 20), RP_ADVICE_NORMAL);
	for (size_t i = 0; i < s->nwin; i++)
		pages += s->win[i].size;
	cr_assert_lt(pages, s->misses / 100, "%lu pages asked for on %lu misses",
	             (unsigned long)pages, (unsigned long)s->misses);
	sim_free(s);
}

Test(ra_detector, random_advice_reads_no_window)
{
	struct sim *s = sim_new(4096, 64);

	for (uint64_t p = 0; p < 4096; p++)
		sim_access(s, p, RP_ADVICE_RANDOM);
	cr_assert_eq(s->nwin, 0);
	cr_assert_eq(s->misses, 4096);
	sim_free(s);
}

/* SEQUENTIAL: the first miss, even mid-file, reads a whole maximum window with its
 * marker halfway; the stream then goes on by maximum windows. */
Test(ra_detector, sequential_advice_reads_maximum_windows_from_the_first_miss)
{
	struct sim *s = sim_new(100000, 64);

	for (uint64_t p = 5000; p < 5400; p++)
		sim_access(s, p, RP_ADVICE_SEQUENTIAL);
	expect_win(s, 0, 5000, 64, 5032);
	expect_win(s, 1, 5064, 64, 5064);
	cr_assert_eq(s->misses, 1);
	sim_free(s);
}

Test(ra_detector, windows_stay_inside_the_range_and_a_tiny_maximum_is_off)
{
	struct sim *s = sim_new(1000, 64);

	s->e.lo = 100;
	s->e.hi = 150;
	for (uint64_t p = 100; p < 150; p++)
		sim_access(s, p, RP_ADVICE_NORMAL);
	cr_assert_eq(s->misses, 1);
	for (uint64_t p = 150; p < 1000; p++)
		cr_assert(!s->present[p], "page %lu past the range was read", (unsigned long)p);
	sim_free(s);
	s = sim_new(1000, 1);
	for (uint64_t p = 0; p < 100; p++)
		sim_access(s, p, RP_ADVICE_SEQUENTIAL);
	cr_assert_eq(s->nwin, 0);
	sim_free(s);
}

/* Advice ranges split and replace each other as madvise's do. */
Test(ra_detector, advice_ranges_split_and_replace)
{
	struct vm_advice m = {NULL, 0};

	cr_assert_eq(vm_advise(&m, 100, 100, RP_ADVICE_SEQUENTIAL), 0);
	cr_assert_eq(vm_advise(&m, 150, 10, RP_ADVICE_RANDOM), 0);
	cr_assert_eq(vm_advise(&m, 0, 120, RP_ADVICE_NORMAL), 0);
	cr_assert_eq(vm_advise(&m, 300, 5, RP_ADVICE_RANDOM), 0);
	const int want[][2] = {{0, RP_ADVICE_NORMAL},       {119, RP_ADVICE_NORMAL},
	                       {120, RP_ADVICE_SEQUENTIAL}, {149, RP_ADVICE_SEQUENTIAL},
	                       {150, RP_ADVICE_RANDOM},     {159, RP_ADVICE_RANDOM},
	                       {160, RP_ADVICE_SEQUENTIAL}, {199, RP_ADVICE_SEQUENTIAL},
	                       {200, RP_ADVICE_NORMAL},     {300, RP_ADVICE_RANDOM},
	                       {305, RP_ADVICE_NORMAL}};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert_eq(vm_advice_at(&m, (uint64_t)want[i][0]), want[i][1], "page %d",
		             want[i][0]);
	cr_assert_eq(m.n, 4);
	free(m.r);
}

/* ---------------------------------------------------------------- end to end */

/* An engine (pool of `pool` pages, readahead_max `ra`, dirty_tracking `mode` and
 * readahead_copy `copy` unless NULL) over a scratch file of `pages` pages mapped whole
 * with prot. */
static void fx_open_copy(struct tu_map *f, const char *name, uint64_t pool, const char *ra,
                         uint64_t pages, int prot, const char *mode, const char *copy)
{
	rp_config cfg;
	rp_engine *eng;

	tu_config_init(&cfg);
	cfg.ram_size = pool * PG;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "readahead_max", ra), 0, "%s", rp_errmsg());
	if (copy)
		cr_assert_eq(rp_config_set(&cfg, "readahead_copy", copy), 0, "%s", rp_errmsg());
	if (mode)
		tu_config_dirty(&cfg, mode);
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(f, eng, name, pages * PG, 31, prot);
}

static void fx_open(struct tu_map *f, const char *name, uint64_t pool, const char *ra,
                    uint64_t pages, int prot, const char *mode)
{
	fx_open_copy(f, name, pool, ra, pages, prot, mode, NULL);
}

Test(readahead, a_sequential_pass_issues_far_fewer_reads_than_pages)
{
	struct tu_map f;

	fx_open(&f, "ra_seq", 16384, "1M", 4096, PROT_READ, NULL);
	for (uint64_t p = 0; p < f.pages; p++)
		tu_map_read(&f, p);
	tu_expect_fill(f.a, f.pages * PG, 31, 0);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.pages_loaded, 4096);
	cr_assert_lt(s.loads, 4096 / 64, "%lu reads for 4096 pages", (unsigned long)s.loads);
	cr_assert_lt(s.faults, 4096 / 16, "%lu faults for 4096 pages", (unsigned long)s.faults);
	cr_assert_eq(s.readahead_pages, 4095);
	cr_assert_eq(s.readahead_used, 4095);
	cr_assert_eq(s.readahead_wasted, 0);
	cr_assert_gt(s.readahead_windows, 0);
	cr_assert_eq(s.readahead_window_avg, s.readahead_pages / s.readahead_windows);
	cr_assert_gt(s.readahead_window_avg, 64);
	tu_map_close(&f);
}

/* Pages of [first, first + n) of a that this process has mapped. */
static uint64_t mapped_pages(const char *a, uint64_t first, uint64_t n)
{
	return tu_present_pages(a + first * PG, n * PG);
}

/* Touches f's pages in order until a window started by a marker is in flight (the fourth,
 * of readahead_max), then waits until nothing past the touches loads any more. Returns
 * the first page not touched; *ahead: the pages read ahead past it. */
static uint64_t scan_to_proven_window(struct tu_map *f, uint64_t *ahead)
{
	uint64_t t = 0, end = 0;

	while (tu_stats(f->eng).readahead_windows < 4)
		tu_map_read(f, t++);
	for (int i = 0; i < 5000; i++) {
		bool loading = false;

		for (end = t; end < f->pages && vm_test_page_state(f->fh, end) != PG_EMPTY; end++)
			loading |= vm_test_page_state(f->fh, end) == PG_LOADING;
		if (!loading)
			break;
		usleep(1000);
	}
	*ahead = end - t;
	cr_assert_gt(*ahead, 32, "%lu pages read ahead past the touches", (unsigned long)*ahead);
	return t;
}

/* The rest of f's pass from page t: the bytes, every page read ahead used, few faults. */
static struct rp_stats scan_rest(struct tu_map *f, uint64_t t)
{
	for (uint64_t p = t; p < f->pages; p++)
		tu_map_read(f, p);
	tu_expect_fill(f->a, f->pages * PG, 31, 0);
	struct rp_stats s = tu_stats(f->eng);

	cr_assert_eq(s.readahead_used, f->pages - 1);
	cr_assert_eq(s.readahead_wasted, 0);
	cr_assert_lt(s.faults, f->pages / 64, "%lu faults for %lu pages", (unsigned long)s.faults,
	             (unsigned long)f->pages);
	return s;
}

/* Once a stream has proved itself (its marker was reached), each window it reads is
 * mapped as its runs complete, but for the marker: pages not touched yet are mapped, and
 * the scan faults about once a window rather than once per 256 KiB. */
Test(readahead, a_proven_streams_windows_are_mapped_as_they_complete)
{
	struct tu_map f;
	uint64_t ahead;

	fx_open(&f, "ra_eager", 16384, "1M", 4096, PROT_READ, NULL);
	const uint64_t t = scan_to_proven_window(&f, &ahead);

	/* Mapped though not touched: all but the marker and the chunk the last touch mapped. */
	cr_assert_geq(mapped_pages(f.a, t, ahead), ahead - 1, "%lu of %lu read ahead mapped",
	              (unsigned long)mapped_pages(f.a, t, ahead), (unsigned long)ahead);
	cr_assert_lt(mapped_pages(f.a, t, ahead), ahead + 1);
	scan_rest(&f, t);
	tu_map_close(&f);
}

/* readahead_copy (the default): a proven stream's windows are read into staging buffers
 * and copied into the pool and the mapping. Every page read ahead but the marker is mapped
 * at once, the marker is not (its touch starts the next window), the pages are in the
 * pool (a second mapping reads them without a load), and a copied page is write-protected
 * like any other, so a store to it is seen at the next collection. */
Test(readahead, a_proven_streams_windows_are_copied_into_place_but_for_the_marker)
{
	struct tu_map f;
	uint64_t ahead, marks = 0;

	fx_open_copy(&f, "ra_copy", 16384, "1M", 4096, PROT_READ | PROT_WRITE, NULL, "true");
	cr_assert(strstr(rp_engine_describe(f.eng), "a stream's copied into place"), "%s",
	          rp_engine_describe(f.eng));
	const uint64_t t = scan_to_proven_window(&f, &ahead);

	cr_assert_gt(tu_stats(f.eng).readahead_copied, 0);
	for (uint64_t p = t; p < t + ahead; p++) {
		const bool mapped = mapped_pages(f.a, p, 1) == 1;

		if (vm_test_page_marked(f.fh, p)) {
			marks++;
			cr_assert(!mapped, "the marker on page %lu is mapped", (unsigned long)p);
		} else {
			cr_assert(mapped, "page %lu, read ahead and copied, is not mapped",
			          (unsigned long)p);
		}
	}
	cr_assert_eq(marks, 1, "%lu markers in the pages read ahead", (unsigned long)marks);
	const struct rp_stats s = scan_rest(&f, t);

	cr_assert_gt(s.readahead_copied, f.pages / 2, "%lu of %lu pages copied",
	             (unsigned long)s.readahead_copied, (unsigned long)f.pages);
	cr_assert_leq(s.readahead_copied, s.readahead_used);
	/* In the pool, not only in this mapping: a second one reads them without loading. */
	rp_mapping *m2;

	cr_assert_eq(rp_map(f.fh, 0, f.pages * PG, PROT_READ, &m2), 0, "%s", rp_errmsg());
	tu_expect_fill(rp_mapping_addr(m2), f.pages * PG, 31, 0);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, s.pages_loaded);
	cr_assert_eq(rp_unmap(m2), 0);
	/* Tracked: a store to a copied page makes it dirty. */
	uint64_t dirty = 0;

	f.a[(f.pages - 8) * PG] ^= 1;
	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0, "%s", rp_errmsg());
	cr_assert_eq(dirty, 1, "%lu pages dirty after one store", (unsigned long)dirty);
	f.a[(f.pages - 8) * PG] ^= 1;
	tu_map_close(&f);
}

/* Windows of 16 MiB are more runs than a service thread has staging slots: the runs past
 * them wait for a slot that a run in flight gives back, and the pass is whole. */
Test(readahead, a_stream_whose_windows_outnumber_the_staging_slots_is_read_whole)
{
	struct tu_map f;

	fx_open_copy(&f, "ra_slots", 65536, "16M", 16384, PROT_READ, NULL, "true");
	const struct rp_stats s = scan_rest(&f, 0);

	cr_assert_gt(s.readahead_window_avg, 1024, "windows of %lu pages",
	             (unsigned long)s.readahead_window_avg);
	cr_assert_gt(s.readahead_copied, f.pages / 2, "%lu of %lu pages copied",
	             (unsigned long)s.readahead_copied, (unsigned long)f.pages);
	tu_map_close(&f);
}

/* readahead_copy=false: the windows are read into the pool's pages and mapped from there,
 * nothing is copied, and the pass is the same. A value that is not a boolean is refused
 * by name. */
Test(readahead, with_readahead_copy_off_windows_are_mapped_from_the_pool)
{
	struct tu_map f;
	uint64_t ahead;
	rp_config cfg;

	tu_config_init(&cfg);
	cr_assert_eq(rp_config_set(&cfg, "readahead_copy", "maybe"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "readahead_copy"), "%s", rp_errmsg());
	fx_open_copy(&f, "ra_nocopy", 16384, "1M", 4096, PROT_READ, NULL, "false");
	cr_assert(!strstr(rp_engine_describe(f.eng), "copied"), "%s", rp_engine_describe(f.eng));
	const uint64_t t = scan_to_proven_window(&f, &ahead);

	cr_assert_geq(mapped_pages(f.a, t, ahead), ahead - 1);
	cr_assert_eq(scan_rest(&f, t).readahead_copied, 0);
	tu_map_close(&f);
}

Test(readahead, readahead_max_zero_and_random_advice_read_one_page_a_fault)
{
	struct tu_map f;

	fx_open(&f, "ra_off", 4096, "0", 256, PROT_READ, NULL);
	for (uint64_t p = 0; p < f.pages; p++)
		tu_map_read(&f, p);
	cr_assert_eq(tu_stats(f.eng).loads, 256);
	cr_assert_eq(tu_stats(f.eng).readahead_pages, 0);
	cr_assert(strstr(rp_engine_describe(f.eng), "readahead: off"), "%s",
	          rp_engine_describe(f.eng));
	tu_map_close(&f);

	fx_open(&f, "ra_rand", 4096, "1M", 512, PROT_READ, NULL);
	cr_assert_eq(rp_advise(f.m, 0, 256 * PG, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	for (uint64_t p = 0; p < 256; p++)
		tu_map_read(&f, p);
	cr_assert_eq(tu_stats(f.eng).loads, 256);
	/* The advice covers its range only: the rest reads ahead. */
	for (uint64_t p = 256; p < 512; p++)
		tu_map_read(&f, p);
	cr_assert_lt(tu_stats(f.eng).loads, 256 + 32);
	/* NORMAL over it again: readahead is back. */
	cr_assert_eq(rp_advise(f.m, 0, 256 * PG, RP_ADVICE_NORMAL), 0);
	cr_assert_eq(rp_advise(f.m, 0, 512 * PG, RP_ADVICE_DONTNEED), 0);
	uint64_t loads = tu_stats(f.eng).loads;

	for (uint64_t p = 0; p < 256; p++)
		tu_map_read(&f, p);
	cr_assert_lt(tu_stats(f.eng).loads, loads + 32);
	tu_map_close(&f);
}

Test(readahead, sequential_advice_reads_a_whole_window_at_the_first_miss)
{
	struct tu_map f;

	fx_open(&f, "ra_seqadv", 16384, "512k", 1024, PROT_READ, NULL);
	cr_assert_eq(rp_advise(f.m, 0, f.pages * PG, RP_ADVICE_SEQUENTIAL), 0, "%s", rp_errmsg());
	tu_map_read(&f, 300);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.readahead_windows, 1);
	cr_assert_eq(s.readahead_pages, 127); /* 128 pages from the miss, less its own */
	cr_assert_eq(s.resident_pages, 128);
	tu_expect_fill(f.a + 300 * PG, 128 * PG, 31, 300 * PG);
	tu_map_close(&f);
}

Test(readahead, bad_advice_and_bad_readahead_max_are_refused_by_name)
{
	struct tu_map f;
	rp_config cfg;

	fx_open(&f, "ra_bad", 4096, "1M", 16, PROT_READ, NULL);
	cr_assert_eq(rp_advise(f.m, 0, PG, 9), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "advice 9"), "%s", rp_errmsg());
	cr_assert_eq(rp_advise(f.m, 0, 17 * PG, RP_ADVICE_DONTNEED), -EINVAL);
	cr_assert_eq(rp_advise(f.m, 1, PG, RP_ADVICE_SEQUENTIAL), -EINVAL);
	tu_map_close(&f);
	tu_config_init(&cfg);
	cr_assert_eq(rp_config_set(&cfg, "readahead_max", "12X"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "readahead_max=12X"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "readahead_max", "2G"), -EINVAL);
	cr_assert_eq(rp_config_set(&cfg, "readahead_max", "4M"), 0);
	cr_assert_eq(cfg.readahead_max, 4u << 20);
	char buf[32];

	cr_assert_eq(rp_config_get(&cfg, "readahead_max", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "4194304");
}

/* scan_keep: an engine whose streams keep `keep` behind them, windows of 64 pages. */
static void fx_open_keep(struct tu_map *f, const char *name, uint64_t pool, uint64_t pages,
                         const char *keep)
{
	rp_config cfg;
	rp_engine *eng;

	tu_config_init(&cfg);
	cfg.ram_size = pool * PG;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "readahead_max", "256K"), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "scan_keep", keep), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(f, eng, name, pages * PG, 31, PROT_READ | PROT_WRITE);
}

/* Drops and WILLNEED's loads are service threads' jobs: waits (10 s at most) until the
 * counter of rp_stats at offset `field` reaches `want`; returns the stats seen last. */
static uint64_t stat_at(const struct rp_stats *s, size_t field)
{
	return *(const uint64_t *)(const void *)((const char *)s + field);
}

static struct rp_stats wait_stat(rp_engine *eng, size_t field, uint64_t want)
{
	struct rp_stats s = tu_stats(eng);

	for (int i = 0; i < 10000 && stat_at(&s, field) < want; i++) {
		usleep(1000);
		s = tu_stats(eng);
	}
	return s;
}

/* A stream keeps at most scan_keep behind the page it reads: the clean pages further
 * behind leave the pool as it moves on (without reclaim: the pool is never near full),
 * every byte stays right, a page that went is read again when touched, and a page behind
 * the stream that is dirty or pinned stays. */
Test(readahead, a_long_stream_keeps_only_scan_keep_behind_it)
{
	struct tu_map f;
	const uint64_t keep = 128, win = 64;

	fx_open_keep(&f, "ra_keep", 4096, 2048, "512K");
	cr_assert(strstr(rp_engine_describe(f.eng), "a stream keeps up to 128 pages behind it"),
	          "%s", rp_engine_describe(f.eng));
	cr_assert_eq(rp_pin(f.m, 5 * PG, PG), 0, "%s", rp_errmsg());
	f.a[7 * PG] = 'w';
	for (uint64_t p = 0; p < f.pages; p++)
		tu_map_read(&f, p);
	struct rp_stats s = wait_stat(f.eng, offsetof(struct rp_stats, readahead_dropped),
	                              f.pages - keep - 4 * win);

	cr_assert_geq(s.readahead_dropped, f.pages - keep - 4 * win, "%lu pages dropped",
	              (unsigned long)s.readahead_dropped);
	cr_assert_leq(s.resident_pages, keep + 4 * win + 2, "%lu pages resident",
	              (unsigned long)s.resident_pages);
	cr_assert_eq(s.pages_evicted, 0);
	cr_assert_eq(f.a[7 * PG], 'w');
	tu_map_read(&f, 5);
	tu_map_read(&f, 7);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, s.pages_loaded, "the pinned or the dirty page "
	             "went");
	tu_map_read(&f, 100);
	cr_assert_gt(tu_stats(f.eng).pages_loaded, s.pages_loaded);
	tu_expect_fill(f.a + 8 * PG, (f.pages - 8) * PG, 31, 8 * PG);
	cr_assert_eq(rp_unpin(f.m, 5 * PG, PG), 0, "%s", rp_errmsg());
	tu_map_close(&f);
}

/* A range loaded with WILLNEED and then scanned: the stream finds its pages in, reads
 * nothing ahead, and so drops nothing (docs/tuning.md gives this way to keep a scan). */
Test(readahead, a_scan_of_a_range_loaded_with_willneed_drops_nothing)
{
	struct tu_map f;
	struct rp_stats s;

	fx_open_keep(&f, "ra_keepwn", 4096, 2048, "512K");
	cr_assert_eq(rp_advise(f.m, 0, f.pages * PG, RP_ADVICE_WILLNEED), 0, "%s", rp_errmsg());
	s = wait_stat(f.eng, offsetof(struct rp_stats, resident_pages), f.pages);
	cr_assert_eq(s.resident_pages, f.pages);
	for (uint64_t p = 0; p < f.pages; p++)
		tu_map_read(&f, p);
	s = tu_stats(f.eng);
	cr_assert_eq(s.readahead_dropped, 0);
	cr_assert_eq(s.resident_pages, f.pages);
	tu_expect_fill(f.a, f.pages * PG, 31, 0);
	tu_map_close(&f);
}

/* scan_keep=0: a stream keeps all it read. */
Test(readahead, scan_keep_0_keeps_all_a_stream_read)
{
	struct tu_map f;

	fx_open_keep(&f, "ra_keep0", 4096, 2048, "0");
	cr_assert(strstr(rp_engine_describe(f.eng), "a stream keeps all it read"), "%s",
	          rp_engine_describe(f.eng));
	for (uint64_t p = 0; p < f.pages; p++)
		tu_map_read(&f, p);
	const struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.readahead_dropped, 0);
	cr_assert_eq(s.resident_pages, f.pages);
	tu_expect_fill(f.a, f.pages * PG, 31, 0);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, s.pages_loaded);
	tu_map_close(&f);
}

Test(readahead, scan_keep_takes_bytes_or_a_percentage_and_refuses_others_by_name)
{
	rp_config cfg;
	char buf[32];

	tu_config_init(&cfg);
	cr_assert_eq(rp_config_get(&cfg, "scan_keep", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "25%");
	cr_assert_eq(rp_config_set(&cfg, "scan_keep", "101%"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "scan_keep=101%"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "scan_keep", "12X"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "scan_keep=12X"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "scan_keep", "1G"), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_config_get(&cfg, "scan_keep", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "1073741824");
	cr_assert_eq(rp_config_set(&cfg, "scan_keep", "10%"), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_config_get(&cfg, "scan_keep", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "10%");
	/* dirty_limit, the other key of this form, keeps its own values */
	cr_assert_eq(rp_config_get(&cfg, "dirty_limit", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "50%");
}

/* Pages read ahead and never touched count as wasted when they leave: DONTNEED and
 * invalidate both count them; touched ones count as used. */
Test(readahead, unused_pages_read_ahead_count_as_wasted_when_they_go)
{
	struct tu_map f;

	fx_open(&f, "ra_waste", 16384, "256k", 1024, PROT_READ, NULL);
	cr_assert_eq(rp_advise(f.m, 0, f.pages * PG, RP_ADVICE_SEQUENTIAL), 0);
	/* Page 0 is demanded, 1..63 read ahead with the marker on 32; touching page 1 maps
	 * the pages read ahead from it up to the marker: 1..31 used. */
	tu_map_read(&f, 0);
	tu_map_read(&f, 1);
	tu_map_read(&f, 2);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.readahead_pages, 63);
	cr_assert_eq(s.readahead_used, 31);
	cr_assert_eq(s.readahead_wasted, 0);
	/* 16..31 used, 32..47 not. */
	cr_assert_eq(rp_advise(f.m, 16 * PG, 32 * PG, RP_ADVICE_DONTNEED), 0);
	s = tu_stats(f.eng);
	cr_assert_eq(s.resident_pages, 32);
	cr_assert_eq(s.readahead_wasted, 16);
	/* 48..63 not used either. */
	cr_assert_eq(rp_invalidate(f.fh, 0, f.pages * PG), 0);
	s = tu_stats(f.eng);
	cr_assert_eq(s.resident_pages, 0);
	cr_assert_eq(s.readahead_wasted, 32);
	cr_assert_eq(s.readahead_used, 31);
	tu_map_close(&f);
}

/* DONTNEED drops clean pages (the next touch reads the store again) and keeps a page
 * written through the mapping, with its bytes, whichever way writes are tracked. */
TU_TEST_EACH_WP(readahead, dontneed_drops_clean_pages_and_keeps_written_ones)
{
	struct tu_map f;

	fx_open(&f, "ra_dontneed", 4096, "0", 64, PROT_READ | PROT_WRITE, mode);
	for (uint64_t p = 0; p < 64; p++)
		tu_map_read(&f, p);
	f.a[5 * PG] = 'w';
	cr_assert_eq(tu_stats(f.eng).resident_pages, 64);
	uint64_t loaded = tu_stats(f.eng).pages_loaded;

	cr_assert_eq(rp_advise(f.m, 0, 64 * PG, RP_ADVICE_DONTNEED), 0, "%s", rp_errmsg());
	cr_assert_eq(tu_stats(f.eng).resident_pages, 1);
	cr_assert_eq(f.a[5 * PG], 'w');
	uint64_t dirty = 0;

	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
	cr_assert_eq(dirty, 1);
	tu_map_read(&f, 6);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, loaded + 1);
	tu_map_close(&f);
}

/* A pass over four times the pool with readahead on: the pool holds, every byte is
 * right, and the windows are cut to a quarter of the pool. */
Test(readahead, a_pass_over_four_times_the_pool_stays_within_it)
{
	struct tu_map f;

	fx_open(&f, "ra_pool", 256, "2M", 1024, PROT_READ, NULL);
	cr_assert(strstr(rp_engine_describe(f.eng), "windows up to 64 pages"), "%s",
	          rp_engine_describe(f.eng));
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t p = 0; p < f.pages; p++) {
			tu_map_read(&f, p);
			cr_assert_leq(tu_stats(f.eng).resident_pages, 256);
		}
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_lt(s.loads, 2 * 1024 / 16);
	/* reclaim's evictions, and the drops behind the stream (scan_keep, a quarter) */
	cr_assert_geq(s.pages_evicted + s.readahead_dropped, 2 * 1024 - 256);
	cr_assert_gt(s.readahead_dropped, 0);
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- custom stores */

/* A store whose window loads (more than one page) are held until the test lets them go,
 * or fail; single-page loads complete at once. */
struct hold_store {
	pthread_mutex_t lock;
	rp_load_token *held[64];
	uint64_t held_off[64];
	size_t held_len[64];
	void *held_buf[64];
	unsigned nheld;
	bool fail_windows;
	atomic_int loads, window_loads;
	atomic_bool stop;
};

static int hs_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	struct hold_store *h = ctx;

	atomic_fetch_add(&h->loads, 1);
	if (len == PG) {
		tu_fill(buf, len, 31, off);
		return 0;
	}
	atomic_fetch_add(&h->window_loads, 1);
	if (h->fail_windows)
		return -EIO;
	pthread_mutex_lock(&h->lock);
	cr_assert_lt(h->nheld, 64);
	h->held[h->nheld] = tok;
	h->held_off[h->nheld] = off;
	h->held_len[h->nheld] = len;
	h->held_buf[h->nheld] = buf;
	h->nheld++;
	pthread_mutex_unlock(&h->lock);
	return RP_LOAD_ASYNC;
}

static void hs_release(struct hold_store *h)
{
	pthread_mutex_lock(&h->lock);
	for (unsigned i = 0; i < h->nheld; i++) {
		tu_fill(h->held_buf[i], h->held_len[i], 31, h->held_off[i]);
		rp_load_done(h->held[i], 0);
	}
	h->nheld = 0;
	pthread_mutex_unlock(&h->lock);
}

static void *hs_releaser(void *arg)
{
	struct hold_store *h = arg;

	while (!atomic_load(&h->stop)) {
		hs_release(h);
		usleep(200);
	}
	return NULL;
}

static const rp_store_ops hs_ops = {.load = hs_load};

static void hs_open(struct tu_map *f, struct hold_store *h, uint64_t pages)
{
	rp_config cfg;

	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	cr_assert_eq(rp_engine_open(&cfg, &f->eng), 0, "%s", rp_errmsg());
	pthread_mutex_init(&h->lock, NULL);
	f->path = NULL;
	f->pages = pages;
	f->seed = 31; /* hs_load's bytes */
	cr_assert_eq(rp_store_create(f->eng, &hs_ops, h, pages * PG, &f->st), 0);
	cr_assert_eq(rp_fileh_open(f->st, &f->fh), 0);
	cr_assert_eq(rp_map(f->fh, 0, pages * PG, PROT_READ, &f->m), 0);
	f->a = rp_mapping_addr(f->m);
}

/* The faulting thread runs on once its own page is in: the rest of its window is still
 * held by the store. */
Test(readahead, the_faulting_page_is_mapped_before_its_window_is_all_in)
{
	struct tu_map f;
	struct hold_store h = {0};

	hs_open(&f, &h, 256);
	tu_map_read(&f, 0); /* returns although the window [1, 4) is held */
	/* The window's load is issued after the page's own: wait for it to reach the store
	 * (it cannot complete there until released). */
	for (int i = 0; i < 10000 && atomic_load(&h.window_loads) == 0; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&h.window_loads), 1);
	pthread_mutex_lock(&h.lock);
	cr_assert_eq(h.nheld, 1);
	cr_assert_eq(h.held_off[0], PG);
	cr_assert_eq(h.held_len[0], 3 * PG);
	pthread_mutex_unlock(&h.lock);
	/* The rest of the scan, with a thread that lets the held windows go. */
	pthread_t t;

	atomic_store(&h.stop, false);
	cr_assert_eq(pthread_create(&t, NULL, hs_releaser, &h), 0);
	for (uint64_t p = 1; p < 256; p++)
		tu_map_read(&f, p);
	atomic_store(&h.stop, true);
	pthread_join(t, NULL);
	hs_release(&h);
	cr_assert_gt(atomic_load(&h.window_loads), 3);
	tu_map_close(&f);
}

/* A window whose read fails leaves its pages absent, not poisoned: touching one reads it
 * alone (which works here), and no load error is counted. */
Test(readahead, a_failed_window_is_read_again_by_the_fault_that_wants_it)
{
	struct tu_map f;
	struct hold_store h = {.fail_windows = true};

	hs_open(&f, &h, 64);
	for (uint64_t p = 0; p < 64; p++)
		tu_map_read(&f, p);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_gt(atomic_load(&h.window_loads), 0);
	cr_assert_eq(s.load_errors, 0);
	cr_assert_eq(s.resident_pages, 64);
	tu_map_close(&f);
}
