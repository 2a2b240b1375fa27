/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_reclaim.c - reclaim: CLOCK eviction, watermarks, dirty pages under
 * pressure, the dirty limit and its hook, the all-dirty case, writeback.
 *
 * Tests that involve writes run once per dirty-tracking mechanism (suites
 * reclaim_wp_async and reclaim_wp_sync): the eviction path treats the two differently.
 */
#include "ringpager.h"
#include "common/testutil.h"
#include "vm/testing.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096ul

#define RECLAIM_TEST(name) TU_TEST_EACH_WP(reclaim, name)

/* An engine with a pool of `pool` 4 KiB pages; extra: "key=value" pairs, NULL-ended. */
static unsigned internal_flags; /* for the next open_engine */

static rp_engine *open_engine(uint64_t pool, const char *mode, const char *const *extra)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	tu_config_init(&cfg);
	cfg.ram_size = pool * PG;
	cfg.hugepages = 2;
	cfg.internal_flags = internal_flags;
	internal_flags = 0;
	/* These tests count pages exactly: no readahead (tests/vm/test_readahead.c has
	 * reclaim with it). */
	cfg.readahead_max = 0;
	if (mode)
		tu_config_dirty(&cfg, mode);
	for (; extra && *extra; extra += 2)
		cr_assert_eq(rp_config_set(&cfg, extra[0], extra[1]), 0, "%s", rp_errmsg());
	int err = rp_engine_open(&cfg, &eng);

	cr_assert_eq(err, 0, "rp_engine_open: %s", rp_errmsg());
	return eng;
}

static void fix_open(struct tu_map *f, const char *name, uint64_t pool, uint64_t pages,
                     const char *mode, int prot, const char *const *extra)
{
	tu_map_open(f, open_engine(pool, mode, extra), name, pages * PG, 77, prot);
}

/* ---------------------------------------------------------------- eviction */

Test(reclaim, a_sequential_pass_over_four_times_the_pool_stays_within_it)
{
	struct tu_map f;
	const uint64_t pool = 256;
	uint64_t peak = 0;

	fix_open(&f, "rc_seq", pool, 4 * pool, NULL, PROT_READ, NULL);
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t p = 0; p < f.pages; p++) {
			tu_map_read(&f, p);
			struct rp_stats s = tu_stats(f.eng);

			cr_assert_leq(s.resident_pages, pool, "page %lu: %lu resident", (unsigned long)p,
			              (unsigned long)s.resident_pages);
			if (s.resident_pages > peak)
				peak = s.resident_pages;
		}
	/* Every page of the whole file, read twice, with the pool holding a quarter. */
	tu_expect_fill(f.a + (f.pages - 8) * PG, 8 * PG, 77, (f.pages - 8) * PG);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_geq(s.pages_evicted, 2 * f.pages - pool, "%lu evicted",
	              (unsigned long)s.pages_evicted);
	cr_assert_geq(s.reclaim_passes, 1);
	cr_assert_gt(peak, pool / 2, "the pool was used: peak %lu", (unsigned long)peak);
	tu_map_close(&f);
}

Test(reclaim, a_hot_set_that_fits_the_pool_stays_resident)
{
	struct tu_map f;
	const uint64_t pool = 256, hot = 32, cold = 4096;
	uint64_t rng = 12345, hot_loads = 0, hot_touches = 0;

	/* Pages [0, hot) are hot, [hot, hot + cold) cold; half of the touches each. */
	fix_open(&f, "rc_hot", pool, hot + cold, NULL, PROT_READ, NULL);
	for (int i = 0; i < 20000; i++) {
		bool is_hot = tu_rand(&rng) & 1;
		uint64_t p = is_hot ? tu_rand(&rng) % hot : hot + tu_rand(&rng) % cold;
		uint64_t before = tu_stats(f.eng).pages_loaded;

		tu_map_read(&f, p);
		if (is_hot && i >= 5000) { /* warmed up */
			hot_touches++;
			hot_loads += tu_stats(f.eng).pages_loaded - before;
		}
	}
	double hit = 1.0 - (double)hot_loads / (double)hot_touches;
	struct rp_stats s = tu_stats(f.eng);

	/* A hot page is touched every 64 touches on average; the pool (kept between 243 and
	 * 250 pages by background reclaim) fills with cold pages every ~500. FIFO, blind to
	 * use, would evict each hot page once per fill: about 1 hot touch in 7 would miss.
	 * CLOCK keeps them. */
	cr_assert_geq(hit, 0.95, "hot pages hit %.3f (%lu loads for %lu touches)", hit,
	              (unsigned long)hot_loads, (unsigned long)hot_touches);
	cr_assert_gt(s.reference_hits, 0);
	cr_assert_gt(s.pages_evicted, 0);
	cr_log_info("hot hit ratio %.4f, %lu evicted, %lu reference hits, %lu passes", hit,
	            (unsigned long)s.pages_evicted, (unsigned long)s.reference_hits,
	            (unsigned long)s.reclaim_passes);
	tu_map_close(&f);
}

/* The hand clears a page's bit (and unmaps it) on its first pass and evicts the page on
 * the second unless it was touched in between. */
Test(reclaim, rp_reclaim_gives_a_touched_page_its_second_chance)
{
	struct tu_map f;

	fix_open(&f, "rc_clock", 64, 16, NULL, PROT_READ, NULL);
	/* RANDOM: no fault-around, so a touch references its own page only (the next test
	 * has the neighbours). */
	cr_assert_eq(rp_advise(f.m, 0, 16 * PG, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	for (uint64_t p = 0; p < 8; p++)
		tu_map_read(&f, p);
	cr_assert_eq(tu_stats(f.eng).resident_pages, 8);
	/* First revolution clears the bits of 0..7, the second takes 0..3. */
	cr_assert_eq(rp_reclaim(f.eng, 4), 4);
	cr_assert_eq(tu_stats(f.eng).resident_pages, 4);
	uint64_t hits = tu_stats(f.eng).reference_hits;

	tu_map_read(&f, 4); /* touched since the hand passed: a minor fault sets the bit */
	cr_assert_eq(tu_stats(f.eng).reference_hits, hits + 1);
	cr_assert_eq(rp_reclaim(f.eng, 1), 1);
	uint64_t loads = tu_stats(f.eng).pages_loaded;

	tu_map_read(&f, 4); /* kept */
	cr_assert_eq(tu_stats(f.eng).pages_loaded, loads, "the touched page was evicted");
	tu_map_read(&f, 5); /* the hand took it instead */
	cr_assert_eq(tu_stats(f.eng).pages_loaded, loads + 1);
	cr_assert_eq(rp_reclaim(f.eng, 0), -EINVAL);
	cr_assert_eq(rp_reclaim(NULL, 1), -EINVAL);
	tu_map_close(&f);
}

/* Fault-around: a minor fault maps and references the resident pages of its 64 KiB
 * block, so the hand keeps them for a revolution; with RANDOM advice it does not. */
static void neighbours_referenced(bool random)
{
	struct tu_map f;

	fix_open(&f, random ? "rc_around_rand" : "rc_around", 64, 16, NULL, PROT_READ, NULL);
	if (random)
		cr_assert_eq(rp_advise(f.m, 0, 16 * PG, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	for (uint64_t p = 0; p < 8; p++)
		tu_map_read(&f, p);
	/* The first revolution clears the bits of 0..7 (and unmaps them), the second takes
	 * 0..3; 4..7 are resident, unmapped, their bits clear. */
	cr_assert_eq(rp_reclaim(f.eng, 4), 4);
	uint64_t minor = tu_stats(f.eng).minor_faults;

	tu_map_read(&f, 4);
	cr_assert_eq(tu_stats(f.eng).minor_faults, minor + 1);
	tu_map_read(&f, 6); /* mapped by the fault on 4 unless RANDOM */
	cr_assert_eq(tu_stats(f.eng).minor_faults, minor + (random ? 2 : 1));
	cr_assert_eq(rp_reclaim(f.eng, 1), 1);
	uint64_t loads = tu_stats(f.eng).pages_loaded;

	/* 4..7 all referenced: the hand clears them and takes the first again, 4. RANDOM:
	 * 5 and 7 were not touched, and the hand takes 5. */
	tu_map_read(&f, 5);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, loads + (random ? 1 : 0), "%s",
	             random ? "5 was not evicted" : "5, a neighbour, was evicted");
	tu_map_close(&f);
}

Test(reclaim, a_minor_fault_references_its_blocks_resident_pages)
{
	neighbours_referenced(false);
}

Test(reclaim, with_random_advice_a_minor_fault_references_its_own_page_only)
{
	neighbours_referenced(true);
}

Test(reclaim, pinned_pages_are_never_evicted)
{
	struct tu_map f;

	fix_open(&f, "rc_pin", 64, 256, NULL, PROT_READ, NULL);
	cr_assert_eq(rp_pin(f.m, 0, 16 * PG), 0, "%s", rp_errmsg());
	for (uint64_t p = 16; p < 256; p++)
		tu_map_read(&f, p);
	uint64_t loads = tu_stats(f.eng).pages_loaded;

	tu_expect_fill(f.a, 16 * PG, 77, 0);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, loads);
	cr_assert_eq(rp_unpin(f.m, 0, 16 * PG), 0);
	/* More than the pool can never be pinned at once. */
	cr_assert_eq(rp_pin(f.m, 0, 65 * PG), -ENOMEM);
	cr_assert(strstr(rp_errmsg(), "more than the RAM pool"), "%s", rp_errmsg());
	tu_map_close(&f);
}

/* A pool filled by WILLNEED holds nothing but clean pages once its loads complete: a
 * fault or a pin that came while they were in flight must take memory from them, not
 * wait out reclaim_wait (an hour here: a stall is this test's timeout) and fail. Each
 * round touches, then pins, a page far from the window while it loads. */
/* WILLNEED does not wait for memory: with the last round's loads still in flight it may
 * find no room and say so. */
static void willneed(struct tu_map *f, uint64_t first, uint64_t n)
{
	int e = rp_advise(f->m, first * PG, n * PG, RP_ADVICE_WILLNEED);

	cr_assert(e == 0 || e == -ENOMEM, "%d: %s", e, rp_errmsg());
}

Test(reclaim, a_pool_filled_by_willneed_makes_room_for_the_next_load, .timeout = 120)
{
	struct tu_map f;
	const uint64_t pool = 2048, pages = 8 * pool;
	const char *const extra[] = {"reclaim_wait", "3600000", NULL};

	fix_open(&f, "rc_willneed", pool, pages, NULL, PROT_READ, extra);
	for (uint64_t round = 0; round < 5; round++) {
		const uint64_t win = (round % 4) * pool, far = (win + 5 * pool / 2) % pages;

		cr_assert_eq(rp_advise(f.m, 0, pages * PG, RP_ADVICE_DONTNEED), 0, "%s", rp_errmsg());
		willneed(&f, win, pool);
		tu_map_read(&f, far + round);
		willneed(&f, win, pool);
		cr_assert_eq(rp_pin(f.m, (far + 8 + round) * PG, PG), 0, "round %lu: %s",
		             (unsigned long)round, rp_errmsg());
		tu_expect_fill(f.a + (far + 8 + round) * PG, PG, 77, (far + 8 + round) * PG);
		cr_assert_eq(rp_unpin(f.m, (far + 8 + round) * PG, PG), 0);
	}
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.memory_failures, 0, "%lu loads gave up waiting for memory",
	             (unsigned long)s.memory_failures);
	cr_assert_leq(s.resident_pages, pool);
	tu_map_close(&f);
}

Test(reclaim, background_reclaim_brings_the_pool_down_to_the_low_watermark)
{
	struct tu_map f;
	const char *const extra[] = {"reclaim_high", "50%", "reclaim_low", "25", NULL};

	fix_open(&f, "rc_bg", 256, 512, NULL, PROT_READ, extra);
	cr_assert(strstr(rp_engine_describe(f.eng), "from 50% (128 pages) down to 25% (64"), "%s",
	          rp_engine_describe(f.eng));
	for (uint64_t p = 0; p < 200; p++)
		tu_map_read(&f, p);
	/* Never reaching the full pool: the reclaim thread keeps it between the marks. Wait
	 * for it (bounded: a failure here is a hang, not a timing judgement). */
	for (int i = 0; i < 2000 && tu_stats(f.eng).resident_pages > 128; i++)
		usleep(1000);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_leq(s.resident_pages, 128, "%lu resident", (unsigned long)s.resident_pages);
	cr_assert_gt(s.pages_evicted, 0);
	cr_assert_eq(s.memory_waits, 0);
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- dirty pages */

RECLAIM_TEST(dirty_pages_survive_reclaim_with_their_data)
{
	struct tu_map f;
	const uint64_t pool = 64;

	fix_open(&f, "rc_dirty", pool, 4 * pool, mode, PROT_READ | PROT_WRITE, NULL);
	/* Pages 0..15 are written after a read (clean first: the write-protect path), 16..23
	 * written without a read first. */
	for (uint64_t p = 0; p < 16; p++) {
		tu_map_read(&f, p);
		memset(f.a + p * PG, (int)(0x40 + p), PG);
	}
	for (uint64_t p = 16; p < 24; p++)
		memset(f.a + p * PG, (int)(0x40 + p), PG);
	/* Three passes over everything else: each page is evicted many times over. */
	for (int pass = 0; pass < 3; pass++)
		for (uint64_t p = 24; p < f.pages; p++)
			tu_map_read(&f, p);
	struct rp_stats s = tu_stats(f.eng);

	/* (background reclaim may take some of them first) */
	long got = rp_reclaim(f.eng, (long)pool);

	cr_assert(got >= 0 && got <= (long)s.resident_pages - 24, "rp_reclaim: %ld", got);
	s = tu_stats(f.eng);
	cr_assert_eq(s.resident_pages, 24, "every clean page goes, no dirty one: %lu left",
	             (unsigned long)s.resident_pages);

	cr_assert_geq(s.pages_evicted, 3 * (f.pages - 24) - pool);
	cr_assert_eq(s.dirty_pages, 24, "%lu dirty", (unsigned long)s.dirty_pages);
	cr_assert_eq(s.dirty_bytes, 24 * PG);
	for (uint64_t p = 0; p < 24; p++)
		for (size_t i = 0; i < PG; i += 511)
			cr_assert_eq((unsigned char)f.a[p * PG + i], 0x40 + p, "page %lu byte %zu",
			             (unsigned long)p, i);
	/* And they still reach the store. */
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(tu_stats(f.eng).pages_written, 24);
	tu_map_close(&f);
}

struct writer {
	char *a;
	uint64_t pages, value;
	atomic_bool done;
};

/* Writes `value` once into every page, a few microseconds apart. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (uint64_t p = 0; p < w->pages; p++) {
		struct timespec t0, t;

		((volatile uint64_t *)(void *)(w->a + p * PG))[1] = w->value;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		do
			clock_gettime(CLOCK_MONOTONIC, &t);
		while ((t.tv_sec - t0.tv_sec) * 1000000000l + t.tv_nsec - t0.tv_nsec < 20000);
	}
	atomic_store(&w->done, true);
	return NULL;
}

/* A thread writes clean pages while the hand sweeps them: not one write may be lost,
 * whatever instant the hand passes (the race between collecting the writes of a page and
 * zapping its mappings; the engine is told to pause between the two, which makes it
 * likely). Each page is written once per round, so a lost write is never repaired by a
 * later one, and eviction afterwards would show the store's older value. */
RECLAIM_TEST(writes_racing_the_clock_hand_are_never_lost)
{
	struct tu_map f;
	struct writer w = {.pages = 32};

	internal_flags = VM_SLOW_ZAP;
	fix_open(&f, "rc_race", 64, 256, mode, PROT_READ | PROT_WRITE, NULL);
	w.a = f.a;
	for (uint64_t round = 1; round <= 20; round++) {
		pthread_t t;

		for (uint64_t p = 0; p < w.pages; p++)
			tu_map_read(&f, p); /* resident, mapped, referenced */
		/* clean and stored: the next writes must be seen anew */
		cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
		             rp_errmsg());
		w.value = round;
		atomic_store(&w.done, false);
		cr_assert_eq(pthread_create(&t, NULL, writer_main, &w), 0);
		while (!atomic_load(&w.done))
			(void)rp_reclaim(f.eng, 64);
		pthread_join(t, NULL);
		(void)rp_reclaim(f.eng, 256); /* every page the engine thinks clean goes */
		(void)rp_reclaim(f.eng, 256);
		for (uint64_t p = 0; p < w.pages; p++) {
			uint64_t v = ((volatile uint64_t *)(void *)(f.a + p * PG))[1];

			cr_assert_eq(v, round, "round %lu: page %lu holds %lu: a write was lost",
			             (unsigned long)round, (unsigned long)p, (unsigned long)v);
		}
	}
	tu_map_close(&f);
}

/* A write racing rp_unmap: the writer gets SIGSEGV once the mapping goes, and every
 * write it made before is kept (collected, dirty, never evicted). rp_unmap makes the
 * mapping read-only before it collects, so no write can land between its collection and
 * the munmap (where nobody would remember it, and eviction would drop it). The writer's
 * first store comes 0..117 us after rp_unmap starts (it takes 40-120 us here). That
 * window is narrow: 120 rounds without the read-only step lost no write, so this test
 * guards the contract rather than reproducing the old loss. */
static __thread sigjmp_buf segv_jmp;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

struct unmap_writer {
	volatile uint64_t *p;
	uint64_t base;         /* values written: base + 1, base + 2, ... */
	unsigned delay_ns;     /* after `go`: lands the first write anywhere in rp_unmap */
	atomic_bool ready, go;
	uint64_t last;         /* the last value whose store completed, or 0 */
};

static void spin_ns(unsigned ns)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000l + t.tv_nsec - t0.tv_nsec < (long)ns);
}

static void *unmap_writer_main(void *arg)
{
	struct unmap_writer *w = arg;
	volatile uint64_t n = 0;

	if (sigsetjmp(segv_jmp, 1) == 0) {
		atomic_store(&w->ready, true);
		while (!atomic_load(&w->go))
			;
		spin_ns(w->delay_ns);
		for (;;) {
			*w->p = w->base + n + 1;
			n = n + 1;
		}
	}
	w->last = n ? w->base + n : 0;
	return NULL;
}

RECLAIM_TEST(a_write_racing_rp_unmap_is_kept_or_faults)
{
	struct tu_map f;
	struct sigaction sa = {.sa_handler = on_segv}, old;
	uint64_t expect;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	fix_open(&f, "rc_unmap", 64, 64, mode, PROT_READ | PROT_WRITE, NULL);
	expect = *(volatile uint64_t *)(void *)(f.a + 3 * PG); /* the file's bytes */
	for (unsigned round = 0; round < 40; round++) {
		struct unmap_writer w = {.base = (round + 1) * 1000000000ull,
		                         .delay_ns = round * 3000};
		pthread_t t;

		/* the page clean and stored: the writer's first store must be seen anew */
		cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
		             rp_errmsg());
		w.p = (volatile uint64_t *)(void *)(f.a + 3 * PG);
		(void)*w.p; /* mapped (write-protected) in this mapping: a write takes no fault */
		cr_assert_eq(pthread_create(&t, NULL, unmap_writer_main, &w), 0);
		while (!atomic_load(&w.ready))
			;
		atomic_store(&w.go, true);
		cr_assert_eq(rp_unmap(f.m), 0);
		pthread_join(t, NULL);
		if (w.last)
			expect = w.last;
		(void)rp_reclaim(f.eng, 64); /* clean pages go; a dirty one stays */
		(void)rp_reclaim(f.eng, 64);
		cr_assert_eq(rp_map(f.fh, 0, f.pages * PG, PROT_READ | PROT_WRITE, &f.m), 0, "%s",
		             rp_errmsg());
		f.a = rp_mapping_addr(f.m);
		uint64_t got = *(volatile uint64_t *)(void *)(f.a + 3 * PG);

		cr_assert_eq(got, expect, "round %u: the page holds %lu, the writer's last store was %lu",
		             round, (unsigned long)got, (unsigned long)expect);
	}
	sigaction(SIGSEGV, &old, NULL);
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- the hook */

struct hook_rec {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int calls[3];
	uint64_t bytes;
	rp_fileh *fh; /* when set, the hook writes out (MARKSTORED) on POOL_FULL */
	int wo_result;
};

static void on_pressure(void *arg, rp_engine *eng, int why, uint64_t dirty_bytes)
{
	struct hook_rec *h = arg;

	(void)eng;
	cr_assert(why == RP_PRESSURE_DIRTY_LIMIT || why == RP_PRESSURE_POOL_FULL);
	if (why == RP_PRESSURE_POOL_FULL && h->fh)
		h->wo_result = rp_writeout(h->fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED);
	pthread_mutex_lock(&h->lock);
	h->calls[why]++;
	h->bytes = dirty_bytes;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
}

/* Waits (bounded: a failure is a missing call, not slowness) for `n` calls of `why`. */
static bool wait_calls(struct hook_rec *h, int why, int n)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&h->lock);
	while (h->calls[why] < n)
		if (pthread_cond_timedwait(&h->cv, &h->lock, &ts))
			break;
	ok = h->calls[why] >= n;
	pthread_mutex_unlock(&h->lock);
	return ok;
}

RECLAIM_TEST(crossing_the_dirty_limit_calls_the_hook_once_per_crossing)
{
	struct tu_map f;
	struct hook_rec h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, NULL, 0};
	const char *const extra[] = {"dirty_limit", "64k", NULL};

	fix_open(&f, "rc_limit", 256, 256, mode, PROT_READ | PROT_WRITE, extra);
	cr_assert_eq(rp_set_pressure_hook(f.eng, on_pressure, &h), 0);
	for (uint64_t p = 0; p < 8; p++) { /* below the limit (16 pages) */
		tu_map_read(&f, p);
		f.a[p * PG] = 1;
	}
	for (uint64_t p = 100; p < 108; p++) /* written without a read: dirty at the fault */
		f.a[p * PG] = 1;
	for (uint64_t p = 8; p < 12; p++) { /* clean first, then written: 20 pages */
		tu_map_read(&f, p);
		f.a[p * PG] = 1;
	}
	cr_assert(wait_calls(&h, RP_PRESSURE_DIRTY_LIMIT, 1), "the hook was not called");
	cr_assert_geq(h.bytes, 16 * PG);
	/* Once per crossing: more writes above the limit do not call it again ... */
	for (uint64_t p = 20; p < 30; p++)
		f.a[p * PG] = 1;
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_MARKSTORED), 0); /* ... falling below re-arms */
	for (int i = 0; i < 100 && vm_test_over_limit(vm_test_vm(f.fh)); i++)
		usleep(10000);
	for (uint64_t p = 40; p < 60; p++)
		f.a[p * PG] = 1;
	cr_assert(wait_calls(&h, RP_PRESSURE_DIRTY_LIMIT, 2), "no call at the second crossing");
	cr_assert_eq(h.calls[RP_PRESSURE_DIRTY_LIMIT], 2);
	cr_assert_eq(tu_stats(f.eng).hook_calls, 2);
	cr_assert_eq(rp_set_pressure_hook(f.eng, NULL, NULL), 0);
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- nothing to free */

RECLAIM_TEST(a_pool_full_of_dirty_pages_gives_sigbus_and_enomem_after_the_wait)
{
	struct tu_map f;
	struct hook_rec h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, NULL, 0};
	const char *const extra[] = {"reclaim_wait", "200", "dirty_limit", "0", NULL};
	const uint64_t pool = 32;

	fix_open(&f, "rc_full", pool, 4 * pool, mode, PROT_READ | PROT_WRITE, extra);
	cr_assert_eq(rp_set_pressure_hook(f.eng, on_pressure, &h), 0);
	for (uint64_t p = 0; p < pool; p++)
		f.a[p * PG + 1] = 'd';
	cr_assert_eq(tu_stats(f.eng).dirty_pages, pool);
	/* Nothing can go: the touch waits 200 ms, then SIGBUS at the address. */
	cr_assert(tu_touch_gets_sigbus(f.a + 40 * PG + 8), "a touch with the pool all dirty");
	cr_assert_eq(rp_pin(f.m, 50 * PG, PG), -ENOMEM, "%s", rp_errmsg());
	cr_assert(strstr(rp_errmsg(), "dirty"), "%s", rp_errmsg());
	cr_assert(wait_calls(&h, RP_PRESSURE_POOL_FULL, 1), "the hook was not told");
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_geq(s.memory_waits, 2);
	cr_assert_geq(s.memory_failures, 2);
	cr_assert_eq(s.dirty_pages, pool, "nothing dirty was lost");
	/* The engine serves on: resident pages read, and once the application writes out,
	 * memory comes back (the failed page loads through rp_pin, which also clears its
	 * SIGBUS marker). */
	cr_assert_eq(f.a[3 * PG + 1], 'd');
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(rp_pin(f.m, 40 * PG, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unpin(f.m, 40 * PG, PG), 0);
	tu_map_read(&f, 40);
	tu_map_read(&f, 100);
	cr_assert_eq(f.a[3 * PG + 1], 'd');
	tu_map_close(&f);
}

struct toucher {
	volatile char *addr;
	char seen;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	t->seen = *t->addr;
	return NULL;
}

/* A fault that waits for memory completes once the hook writes out. */
/* The same with a page that was mapped write-protected once and evicted since: under
 * wp_sync the eviction leaves a write-protect marker where the page was, and a fault
 * there that finds no memory must still end in SIGBUS after the wait. (Poisoning a slot
 * that holds such a marker used to fail with EEXIST: the thread was woken instead, faulted
 * again and waited anew, for ever.) */
RECLAIM_TEST(a_page_evicted_from_a_tracked_mapping_gets_sigbus_when_no_memory_comes)
{
	struct tu_map f;
	const char *const extra[] = {"reclaim_wait", "200", "dirty_limit", "0", NULL};
	const uint64_t pool = 32;

	fix_open(&f, "rc_marker", pool, 4 * pool, mode, PROT_READ | PROT_WRITE, extra);
	tu_map_read(&f, 40); /* mapped, write-protected */
	cr_assert_geq(rp_reclaim(f.eng, pool), 1); /* the hand's two revolutions evict it */
	cr_assert_eq(tu_stats(f.eng).resident_pages, 0);
	for (uint64_t p = 0; p < pool; p++)
		f.a[p * PG + 1] = 'd';
	cr_assert(tu_touch_gets_sigbus(f.a + 40 * PG + 8), "a touch with the pool all dirty");
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(rp_pin(f.m, 40 * PG, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unpin(f.m, 40 * PG, PG), 0);
	tu_map_read(&f, 40);
	tu_map_close(&f);
}

RECLAIM_TEST(a_waiting_fault_completes_when_the_hook_writes_out)
{
	struct tu_map f;
	struct hook_rec h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, NULL, 0};
	const char *const extra[] = {"reclaim_wait", "60000", "dirty_limit", "0", NULL};
	const uint64_t pool = 32;
	pthread_t t;

	fix_open(&f, "rc_wait", pool, 4 * pool, mode, PROT_READ | PROT_WRITE, extra);
	h.fh = f.fh;
	cr_assert_eq(rp_set_pressure_hook(f.eng, on_pressure, &h), 0);
	for (uint64_t p = 0; p < pool; p++)
		f.a[p * PG + 1] = 'd';
	struct toucher to = {f.a + 70 * PG + 17, 0};
	unsigned char want;

	tu_fill(&want, 1, 77, 70 * PG + 17);
	cr_assert_eq(pthread_create(&t, NULL, toucher_main, &to), 0);
	pthread_join(t, NULL);
	cr_assert_eq((unsigned char)to.seen, want);
	/* The hook's writeout freed the memory the fault waited for, so the fault may end
	 * before the hook has returned and counted its call (at once with fault_mode=sigbus,
	 * where the faulting thread itself waits on the memory). */
	cr_assert(wait_calls(&h, RP_PRESSURE_POOL_FULL, 1), "the hook was told the pool is full");
	cr_assert_eq(h.wo_result, 0);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_geq(s.memory_waits, 1);
	cr_assert_eq(s.memory_failures, 0);
	cr_assert_eq(rp_set_pressure_hook(f.eng, NULL, NULL), 0);
	tu_map_close(&f);
}

/* dirty_policy=writeback: the engine writes cold dirty pages back and evicts them. */
RECLAIM_TEST(writeback_policy_writes_victims_back_and_the_store_holds_them)
{
	struct tu_map f;
	const char *const extra[] = {"dirty_policy", "writeback", "reclaim_wait", "30000", NULL};
	const uint64_t pool = 32;

	fix_open(&f, "rc_wb", pool, 8 * pool, mode, PROT_READ | PROT_WRITE, extra);
	for (uint64_t p = 0; p < f.pages; p++)
		memset(f.a + p * PG, (int)(p & 0xff) ^ 0x5a, 64);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_gt(s.writebacks, 0);
	cr_assert_geq(s.pages_written, f.pages - pool, "%lu written",
	              (unsigned long)s.pages_written);
	cr_assert_eq(s.memory_failures, 0);
	cr_assert_leq(s.resident_pages, pool);
	/* Every page reads back what was written: from RAM, or reloaded from the store. */
	for (uint64_t p = 0; p < f.pages; p++)
		cr_assert_eq((unsigned char)f.a[p * PG + 63], (unsigned char)((p & 0xff) ^ 0x5a),
		             "page %lu", (unsigned long)p);
	/* The store itself holds the early pages (written back and evicted long ago). */
	int fd = open(f.path, O_RDONLY);
	unsigned char buf[64];

	cr_assert_geq(fd, 0);
	for (uint64_t p = 0; p < 64; p++) {
		cr_assert_eq(pread(fd, buf, 64, (off_t)(p * PG)), 64);
		for (int i = 0; i < 64; i++)
			cr_assert_eq(buf[i], (unsigned char)((p & 0xff) ^ 0x5a), "store page %lu",
			             (unsigned long)p);
	}
	close(fd);
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- configuration */

Test(reclaim, watermarks_and_limits_are_checked)
{
	rp_config cfg;
	rp_engine *eng = NULL;
	char buf[32];

	tu_config_init(&cfg);
	cr_assert_eq(rp_config_get(&cfg, "reclaim_high", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "98%");
	cr_assert_eq(rp_config_get(&cfg, "dirty_limit", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "50%");
	cr_assert_eq(rp_config_get(&cfg, "dirty_policy", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "keep");
	cr_assert_eq(rp_config_set(&cfg, "reclaim_high", "101"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "reclaim_high=101"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "reclaim_low", "x%"), -EINVAL);
	cr_assert_eq(rp_config_set(&cfg, "dirty_limit", "120%"), -EINVAL);
	cr_assert_eq(rp_config_set(&cfg, "dirty_limit", "12X"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "dirty_limit=12X"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "dirty_policy", "flush"), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "keep or writeback"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "dirty_limit", "256M"), 0);
	cr_assert_eq(rp_config_get(&cfg, "dirty_limit", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "268435456");
	cr_assert_eq(rp_config_set(&cfg, "reclaim_wait", "0"), 0);
	/* low must be below high */
	cfg.ram_size = 2 << 20;
	cr_assert_eq(rp_config_set(&cfg, "reclaim_high", "60"), 0);
	cr_assert_eq(rp_config_set(&cfg, "reclaim_low", "60"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "reclaim_low=60%"), "%s", rp_errmsg());
	cr_assert_null(eng);
}
