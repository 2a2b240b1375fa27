/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_dirty.c - dirty tracking and writeout, run once with each tracking
 * mechanism (suites dirty_wp_async and dirty_wp_sync): Wendelin.core's virtmem checks
 * (BENCH.md), writeout ordering, durability, failures and retries, writes during a
 * writeout, and private modifications across handles.
 */
#include "ringpager.h"
#include "vm/testing.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul

/* Defines the test body once and registers it in both suites. */
#define DIRTY_TEST(name) TU_TEST_EACH_WP(dirty, name)

static rp_engine *open_engine(const char *mode, unsigned flags)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	tu_config_init(&cfg);
	cfg.ram_size = 64ul << 20;
	cfg.hugepages = 2;
	cfg.internal_flags = flags;
	tu_config_dirty(&cfg, mode);
	int err = rp_engine_open(&cfg, &eng);

	cr_assert_eq(err, 0, "rp_engine_open(dirty_tracking=%s): %s", mode, rp_errmsg());
	if (strcmp(mode, "auto"))
		cr_assert(strstr(rp_engine_describe(eng), mode), "%s", rp_engine_describe(eng));
	return eng;
}

/* The page's state after collecting writes (wp_async states lag the page tables). */
static unsigned page_state(rp_fileh *fh, uint64_t page)
{
	return vm_test_page_state(fh, page);
}

static uint64_t ndirty(rp_fileh *fh)
{
	uint64_t n = ~0ull;

	cr_assert_eq(rp_fileh_dirty(fh, &n), 0);
	return n;
}

/* ---------------------------------------------------------------- a recording store
 *
 * Serves loads from a buffer and records every store call (offset, length, in order).
 * Stores can fail (the next `fail` calls get -EIO) or be held: asynchronous, completed
 * only when the test releases them. */
struct mem_store {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	uint8_t *data;
	uint64_t size;
	uint64_t calls[64][2];
	unsigned ncalls, syncs, fail;
	bool hold;
	uint64_t bad_page; /* loads of this page fail with EIO (0: none) */
	rp_store_token *held[64];
	unsigned nheld;
};

static int ms_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	struct mem_store *ms = ctx;

	(void)tok;
	if (ms->bad_page && off <= ms->bad_page * PG && ms->bad_page * PG < off + len)
		return -EIO;
	memset(buf, 0, len);
	pthread_mutex_lock(&ms->lock);
	if (off < ms->size)
		memcpy(buf, ms->data + off, len < ms->size - off ? len : ms->size - off);
	pthread_mutex_unlock(&ms->lock);
	return 0;
}

static int ms_store(void *ctx, uint64_t off, const void *buf, size_t len, rp_store_token *tok)
{
	struct mem_store *ms = ctx;
	int r = 0;

	pthread_mutex_lock(&ms->lock);
	if (ms->ncalls < 64) {
		ms->calls[ms->ncalls][0] = off;
		ms->calls[ms->ncalls][1] = len;
	}
	ms->ncalls++;
	if (ms->fail) {
		ms->fail--;
		r = -EIO;
	} else {
		memcpy(ms->data + off, buf, len < ms->size - off ? len : ms->size - off);
		if (ms->hold) {
			ms->held[ms->nheld++] = tok;
			r = RP_STORE_ASYNC;
		}
	}
	pthread_cond_broadcast(&ms->cv);
	pthread_mutex_unlock(&ms->lock);
	return r;
}

static int ms_sync(void *ctx)
{
	struct mem_store *ms = ctx;

	pthread_mutex_lock(&ms->lock);
	ms->syncs++;
	pthread_mutex_unlock(&ms->lock);
	return 0;
}

static const rp_store_ops ms_ops = {.load = ms_load, .store = ms_store, .sync = ms_sync};

static struct mem_store *ms_new(uint64_t size, uint64_t seed)
{
	struct mem_store *ms = calloc(1, sizeof(*ms));

	pthread_mutex_init(&ms->lock, NULL);
	pthread_cond_init(&ms->cv, NULL);
	ms->size = size;
	ms->data = malloc(size);
	tu_fill(ms->data, size, seed, 0);
	return ms;
}

static void ms_free(struct mem_store *ms)
{
	free(ms->data);
	pthread_mutex_destroy(&ms->lock);
	pthread_cond_destroy(&ms->cv);
	free(ms);
}

/* Waits until n stores are held (ms->hold). */
static void ms_wait_held(struct mem_store *ms, unsigned n)
{
	pthread_mutex_lock(&ms->lock);
	while (ms->nheld < n)
		pthread_cond_wait(&ms->cv, &ms->lock);
	pthread_mutex_unlock(&ms->lock);
}

static void expect_calls(struct mem_store *ms, const uint64_t (*want)[2], unsigned n)
{
	pthread_mutex_lock(&ms->lock);
	cr_assert_eq(ms->ncalls, n, "%u store calls, expected %u", ms->ncalls, n);
	for (unsigned i = 0; i < n; i++)
		cr_assert(ms->calls[i][0] == want[i][0] * PG && ms->calls[i][1] == want[i][1] * PG,
		          "store call %u: offset %lu length %lu, expected page %lu, %lu pages", i,
		          (unsigned long)ms->calls[i][0], (unsigned long)ms->calls[i][1],
		          (unsigned long)want[i][0], (unsigned long)want[i][1]);
	ms->ncalls = 0;
	pthread_mutex_unlock(&ms->lock);
}

struct fix {
	rp_engine *eng;
	struct mem_store *ms;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	char *a;
};

static void fix_open_flags(struct fix *f, const char *mode, uint64_t pages, unsigned flags)
{
	f->eng = open_engine(mode, flags);
	f->ms = ms_new(pages * PG, 77);
	cr_assert_eq(rp_store_create(f->eng, &ms_ops, f->ms, pages * PG, &f->st), 0);
	cr_assert_eq(rp_fileh_open(f->st, &f->fh), 0);
	cr_assert_eq(rp_map(f->fh, 0, pages * PG, PROT_READ | PROT_WRITE, &f->m), 0, "%s",
	             rp_errmsg());
	f->a = rp_mapping_addr(f->m);
}

static void fix_open(struct fix *f, const char *mode, uint64_t pages)
{
	fix_open_flags(f, mode, pages, 0);
}

static void fix_close(struct fix *f)
{
	if (f->m)
		cr_assert_eq(rp_unmap(f->m), 0);
	cr_assert_eq(rp_fileh_close(f->fh), 0);
	cr_assert_eq(rp_store_close(f->st), 0);
	rp_engine_close(f->eng);
	ms_free(f->ms);
}

/* ---------------------------------------------------------------- Wendelin's checks */

DIRTY_TEST(fresh_mapping_has_nothing_resident_nor_dirty)
{
	struct fix f = {0};
	struct rp_stats s;

	fix_open(&f, mode, 16);
	rp_stats(f.eng, &s);
	cr_assert_eq(s.resident_pages, 0);
	cr_assert_eq(ndirty(f.fh), 0);
	for (uint64_t p = 0; p < 16; p++)
		cr_assert_eq(page_state(f.fh, p), PG_EMPTY);
	fix_close(&f);
}

DIRTY_TEST(read_loads_clean_and_write_makes_the_page_dirty)
{
	struct fix f = {0};
	struct rp_stats s0, s1;

	fix_open(&f, mode, 16);
	tu_expect_fill(f.a + 2 * PG, PG, 77, 2 * PG);
	cr_assert_eq(page_state(f.fh, 2), PG_LOADED);
	cr_assert_eq(ndirty(f.fh), 0);
	rp_stats(f.eng, &s0);
	f.a[2 * PG + 5] = 'x';
	cr_assert_eq(page_state(f.fh, 2), PG_DIRTY);
	cr_assert_eq(ndirty(f.fh), 1);
	rp_stats(f.eng, &s1);
	/* wp_sync sees the write as a fault; wp_async takes none in userspace */
	cr_assert_eq(s1.wp_faults - s0.wp_faults, strcmp(mode, "wp_sync") ? 0 : 1);
	cr_assert_eq(s1.faults, s0.faults);
	cr_assert_eq(f.a[2 * PG + 5], 'x');
	fix_close(&f);
}

/* Fault-around maps a block's resident pages into a second mapping write-protected: a
 * write to one of them there is seen, and only that page is dirty. */
DIRTY_TEST(pages_mapped_around_a_fault_are_write_tracked)
{
	struct fix f = {0};
	rp_mapping *m2;

	fix_open(&f, mode, 16);
	cr_assert_eq(rp_pin(f.m, 0, 16 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ | PROT_WRITE, &m2), 0, "%s", rp_errmsg());
	char *b = rp_mapping_addr(m2);
	uint64_t minor = tu_stats(f.eng).minor_faults;

	tu_expect_fill(b + 3 * PG, PG, 77, 3 * PG); /* maps 0..15 in m2 */
	tu_expect_fill(b + 9 * PG, PG, 77, 9 * PG);
	cr_assert_eq(tu_stats(f.eng).minor_faults, minor + 1, "one fault for the block");
	b[9 * PG + 1] = 'y';
	cr_assert_eq(page_state(f.fh, 9), PG_DIRTY);
	cr_assert_eq(ndirty(f.fh), 1);
	cr_assert_eq(f.a[9 * PG + 1], 'y');
	cr_assert_eq(rp_unmap(m2), 0);
	cr_assert_eq(rp_unpin(f.m, 0, 16 * PG), 0);
	fix_close(&f);
}

DIRTY_TEST(write_to_a_page_never_loaded_loads_and_dirties_it_in_one_fault)
{
	struct fix f = {0};
	struct rp_stats s0, s1;

	fix_open(&f, mode, 16);
	rp_stats(f.eng, &s0);
	f.a[7 * PG + 9] = 'w';
	rp_stats(f.eng, &s1);
	cr_assert_eq(s1.faults - s0.faults, 1);
	cr_assert_eq(s1.wp_faults, s0.wp_faults);
	cr_assert_eq(page_state(f.fh, 7), PG_DIRTY);
	/* the rest of the page is the store's */
	tu_expect_fill(f.a + 7 * PG, 9, 77, 7 * PG);
	tu_expect_fill(f.a + 7 * PG + 10, PG - 10, 77, 7 * PG + 10);
	fix_close(&f);
}

DIRTY_TEST(store_writes_dirty_pages_in_ascending_order_mapped_or_not)
{
	struct fix f = {0};
	rp_mapping *m2;
	static const uint64_t want[][2] = {{3, 2}, {7, 1}, {12, 1}};

	fix_open(&f, mode, 16);
	cr_assert_eq(rp_map(f.fh, 8 * PG, 8 * PG, PROT_READ | PROT_WRITE, &m2), 0);
	char *b = rp_mapping_addr(m2);

	b[4 * PG] = 'c';         /* page 12, through the second mapping */
	f.a[7 * PG] = 'b';
	f.a[4 * PG] = 'a';
	f.a[3 * PG + 100] = 'z'; /* pages 3 and 4: one run */
	cr_assert_eq(rp_unmap(m2), 0); /* page 12 is no longer mapped */
	cr_assert_eq(ndirty(f.fh), 4);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE), 0, "%s", rp_errmsg());
	expect_calls(f.ms, want, 3);
	cr_assert_eq(f.ms->data[12 * PG], 'c');
	cr_assert_eq(f.ms->data[3 * PG + 100], 'z');
	cr_assert_eq(f.ms->data[4 * PG], 'a');
	/* STORE alone leaves them dirty */
	cr_assert_eq(ndirty(f.fh), 4);
	cr_assert_eq(page_state(f.fh, 12), PG_DIRTY);
	cr_assert_eq(f.ms->syncs, 0);
	fix_close(&f);
}

DIRTY_TEST(markstored_alone_stores_nothing_and_makes_pages_clean_and_tracked)
{
	struct fix f = {0};
	static const uint64_t want[][2] = {{5, 1}};

	fix_open(&f, mode, 16);
	f.a[1 * PG] = 1;
	f.a[5 * PG] = 5;
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_MARKSTORED), 0, "%s", rp_errmsg());
	expect_calls(f.ms, NULL, 0);
	cr_assert_eq(ndirty(f.fh), 0);
	cr_assert_eq(page_state(f.fh, 1), PG_LOADED);
	cr_assert_eq(f.a[5 * PG], 5); /* the RAM keeps the bytes */
	/* write-tracked again: a new write makes it dirty, and only it is stored */
	f.a[5 * PG] = 6;
	cr_assert_eq(page_state(f.fh, 5), PG_DIRTY);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, want, 1);
	cr_assert_eq(f.ms->data[5 * PG], 6);
	cr_assert_eq(ndirty(f.fh), 0);
	fix_close(&f);
}

DIRTY_TEST(store_markstored_sync_stores_cleans_and_syncs)
{
	struct fix f = {0};
	static const uint64_t want[][2] = {{0, 3}, {15, 1}};

	fix_open(&f, mode, 16);
	memset(f.a, 'q', 3 * PG);
	f.a[15 * PG + PG - 1] = 'e';
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                   RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	expect_calls(f.ms, want, 2);
	cr_assert_eq(f.ms->syncs, 1);
	cr_assert_eq(ndirty(f.fh), 0);
	for (uint64_t p = 0; p < 3; p++)
		cr_assert_eq(page_state(f.fh, p), PG_LOADED);
	cr_assert_eq(f.ms->data[2 * PG + 17], 'q');
	/* nothing dirty: another writeout stores nothing */
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, NULL, 0);
	fix_close(&f);
}

DIRTY_TEST(discard_forgets_every_change_and_the_next_read_reloads)
{
	struct fix f = {0};
	struct rp_stats s0, s1;

	fix_open(&f, mode, 16);
	/* The count of pages loaded below must be exact: no readahead window (the writes to
	 * pages 2 and 3 look sequential) may still be loading when s0 is taken. */
	cr_assert_eq(rp_advise(f.m, 0, 16 * PG, RP_ADVICE_RANDOM), 0);
	tu_expect_fill(f.a + 9 * PG, PG, 77, 9 * PG); /* a clean page stays */
	memset(f.a + 2 * PG, 0xee, 2 * PG);
	f.a[11 * PG] = 0;
	cr_assert_eq(ndirty(f.fh), 3);
	rp_stats(f.eng, &s0);
	cr_assert_eq(rp_discard(f.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(ndirty(f.fh), 0);
	cr_assert_eq(page_state(f.fh, 2), PG_EMPTY);
	cr_assert_eq(page_state(f.fh, 9), PG_LOADED);
	tu_expect_fill(f.a + 2 * PG, 2 * PG, 77, 2 * PG);
	tu_expect_fill(f.a + 11 * PG, PG, 77, 11 * PG);
	rp_stats(f.eng, &s1);
	cr_assert_eq(s1.pages_loaded - s0.pages_loaded, 3);
	cr_assert_eq(s1.dirty_pages, 0);
	expect_calls(f.ms, NULL, 0);
	fix_close(&f);
}

DIRTY_TEST(invalidate_missing_loaded_dirty_mapped_and_dirty_unmapped_pages_then_reload)
{
	struct fix f = {0};
	rp_mapping *m2;

	fix_open(&f, mode, 16);
	cr_assert_eq(rp_map(f.fh, 12 * PG, 4 * PG, PROT_READ | PROT_WRITE, &m2), 0);
	(void)*(volatile char *)(f.a + 1 * PG);  /* page 1: loaded */
	f.a[2 * PG] = 'd';                        /* page 2: dirty, mapped */
	((char *)rp_mapping_addr(m2))[PG] = 'u'; /* page 13: dirty, then unmapped */
	cr_assert_eq(rp_unmap(m2), 0);
	/* the store changes from outside */
	tu_fill(f.ms->data, 16 * PG, 99, 0);
	for (uint64_t p = 0; p < 4; p++) {
		static const uint64_t pages[] = {0, 1, 2, 13}; /* missing, loaded, dirty x2 */

		cr_assert_eq(rp_invalidate(f.fh, pages[p] * PG, PG), 0, "%s", rp_errmsg());
		cr_assert_eq(page_state(f.fh, pages[p]), PG_EMPTY);
	}
	cr_assert_eq(ndirty(f.fh), 0);
	tu_expect_fill(f.a, 3 * PG, 99, 0);
	tu_expect_fill(f.a + 13 * PG, PG, 99, 13 * PG);
	fix_close(&f);
}

DIRTY_TEST(a_write_through_one_of_two_mappings_of_a_range_makes_one_dirty_page)
{
	struct fix f = {0};
	rp_mapping *m2;
	static const uint64_t want[][2] = {{6, 1}};

	fix_open(&f, mode, 16);
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ | PROT_WRITE, &m2), 0);
	char *b = rp_mapping_addr(m2);

	tu_expect_fill(b + 6 * PG, PG, 77, 6 * PG); /* mapped in both */
	tu_expect_fill(f.a + 6 * PG, PG, 77, 6 * PG);
	b[6 * PG + 1] = '!';
	cr_assert_eq(f.a[6 * PG + 1], '!');
	f.a[6 * PG + 2] = '?';
	cr_assert_eq(b[6 * PG + 2], '?');
	cr_assert_eq(ndirty(f.fh), 1);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, want, 1);
	/* clean in both: a write through either is seen again */
	b[6 * PG + 3] = '#';
	cr_assert_eq(ndirty(f.fh), 1);
	cr_assert_eq(rp_unmap(m2), 0);
	fix_close(&f);
}

DIRTY_TEST(unmapping_keeps_dirty_pages_and_mapping_again_shows_them)
{
	struct fix f = {0};

	fix_open(&f, mode, 16);
	memset(f.a + 4 * PG, 'k', PG);
	cr_assert_eq(rp_unmap(f.m), 0);
	cr_assert_eq(ndirty(f.fh), 1);
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ, &f.m), 0);
	f.a = rp_mapping_addr(f.m);
	cr_assert_eq(f.a[4 * PG + 77], 'k');
	cr_assert_eq(page_state(f.fh, 4), PG_DIRTY);
	fix_close(&f);
}

DIRTY_TEST(closing_a_handle_with_dirty_pages_releases_everything)
{
	struct fix f = {0};
	struct rp_stats s;

	fix_open(&f, mode, 16);
	memset(f.a, 1, 16 * PG);
	cr_assert_eq(ndirty(f.fh), 16);
	cr_assert_eq(rp_unmap(f.m), 0);
	f.m = NULL;
	cr_assert_eq(rp_fileh_close(f.fh), 0);
	rp_stats(f.eng, &s);
	cr_assert_eq(s.resident_pages, 0);
	cr_assert_eq(s.dirty_pages, 0);
	expect_calls(f.ms, NULL, 0);
	cr_assert_eq(rp_fileh_open(f.st, &f.fh), 0);
	fix_close(&f);
}

/* A load error in a writable mapping, shown both ways (UFFDIO_POISON, and the range
 * remapped to an empty memfd, which splits the mapping): tracking is unaffected. */
static void poisoned_page_in_a_tracked_mapping(const char *mode, unsigned flags)
{
	struct fix f = {0};

	fix_open_flags(&f, mode, 16, flags);
	f.ms->bad_page = 6;
	tu_expect_fill(f.a, 6 * PG, 77, 0);
	cr_assert_eq(rp_pin(f.m, 6 * PG, PG), -EIO);
	f.a[2 * PG] = 1;
	cr_assert_eq(ndirty(f.fh), 1, "one page was written");
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(ndirty(f.fh), 0);
	f.ms->bad_page = 0;
	cr_assert_eq(rp_invalidate(f.fh, 6 * PG, PG), 0);
	f.a[6 * PG] = 6; /* loads, then dirties */
	cr_assert_eq(ndirty(f.fh), 1);
	fix_close(&f);
}

DIRTY_TEST(a_poisoned_page_in_a_writable_mapping_leaves_tracking_exact)
{
	poisoned_page_in_a_tracked_mapping(mode, 0);
	poisoned_page_in_a_tracked_mapping(mode, VM_FORCE_POISON_REMAP);
}

/* ---------------------------------------------------------------- async, errors */

struct done_rec {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int calls, result;
	rp_fileh *fh;
	int nested; /* result of rp_writeout called from inside done */
};

/* A done callback: records the call and its result. */
static void on_done_only(void *arg, int result)
{
	struct done_rec *d = arg;

	pthread_mutex_lock(&d->lock);
	d->calls++;
	d->result = result;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->lock);
}

/* As on_done_only, after trying a writeout of its own from the callback (d->nested). */
static void on_done(void *arg, int result)
{
	struct done_rec *d = arg;

	d->nested = rp_writeout(d->fh, RP_WRITEOUT_STORE);
	on_done_only(arg, result);
}

static void wait_done(struct done_rec *d, int calls)
{
	pthread_mutex_lock(&d->lock);
	while (d->calls < calls)
		pthread_cond_wait(&d->cv, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

DIRTY_TEST(async_writeout_calls_done_exactly_once_with_the_result)
{
	struct fix f = {0};
	struct done_rec d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 1, NULL, 0};

	fix_open(&f, mode, 16);
	d.fh = f.fh;
	f.a[3 * PG] = 3;
	cr_assert_eq(rp_writeout_async(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED, on_done,
	                               &d),
	             0, "%s", rp_errmsg());
	wait_done(&d, 1);
	cr_assert_eq(d.result, 0);
	cr_assert_eq(d.nested, -EDEADLK, "rp_writeout inside done: %d", d.nested);
	cr_assert_eq(f.ms->data[3 * PG], 3);
	/* a failing one reports the error, once */
	f.a[4 * PG] = 4;
	f.ms->fail = 1;
	cr_assert_eq(rp_writeout_async(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED, on_done,
	                               &d),
	             0);
	wait_done(&d, 2);
	cr_assert_eq(d.result, -EIO);
	usleep(20000); /* a second call would come now */
	cr_assert_eq(d.calls, 2);
	cr_assert_eq(ndirty(f.fh), 1);
	fix_close(&f);
}

DIRTY_TEST(a_store_error_keeps_pages_dirty_and_a_retry_stores_them)
{
	struct fix f = {0};
	static const uint64_t want[][2] = {{1, 1}, {8, 2}};
	struct rp_stats s;

	fix_open(&f, mode, 16);
	f.a[1 * PG] = 'A';
	memset(f.a + 8 * PG, 'B', 2 * PG);
	for (int round = 0; round < 2; round++) { /* raised twice */
		f.ms->fail = 1;
		cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), -EIO);
		cr_assert(strstr(rp_errmsg(), "offset 4096"), "%s", rp_errmsg());
		expect_calls(f.ms, want, 2);
		/* the failed run (page 1) stays dirty with its data; the stored one is clean */
		cr_assert_eq(page_state(f.fh, 1), PG_DIRTY);
		cr_assert_eq(f.a[1 * PG], 'A');
		cr_assert_eq(page_state(f.fh, 8), PG_LOADED);
		f.a[8 * PG] = 'B'; /* the same bytes: dirty again, for the next round */
		f.a[9 * PG] = 'B';
	}
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                   RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	expect_calls(f.ms, want, 2);
	cr_assert_eq(f.ms->data[1 * PG], 'A');
	cr_assert_eq(f.ms->data[9 * PG + 5], 'B');
	cr_assert_eq(ndirty(f.fh), 0);
	rp_stats(f.eng, &s);
	cr_assert_eq(s.writeout_errors, 2);
	/* the engine goes on working */
	tu_expect_fill(f.a + 12 * PG, PG, 77, 12 * PG);
	fix_close(&f);
}

DIRTY_TEST(a_write_during_an_inflight_writeout_keeps_the_page_dirty)
{
	struct fix f = {0};
	struct done_rec d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 1, NULL, 0};
	static const uint64_t want[][2] = {{2, 1}, {5, 1}};

	fix_open(&f, mode, 16);
	d.fh = f.fh;
	f.a[2 * PG] = 'o';
	f.a[5 * PG] = 'p';
	f.ms->hold = true;
	cr_assert_eq(rp_writeout_async(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED, on_done,
	                               &d),
	             0);
	ms_wait_held(f.ms, 2);
	expect_calls(f.ms, want, 2);
	f.a[2 * PG] = 'n'; /* page 2 changes while its write is in flight */
	f.ms->hold = false;
	for (unsigned i = 0; i < 2; i++)
		rp_store_done(f.ms->held[i], 0);
	wait_done(&d, 1);
	cr_assert_eq(d.result, 0);
	cr_assert_eq(page_state(f.fh, 5), PG_LOADED);
	cr_assert_eq(page_state(f.fh, 2), PG_DIRTY, "a page written during its writeout "
	                                              "was reported clean");
	cr_assert_eq(f.ms->data[2 * PG], 'o');
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, want, 1);
	cr_assert_eq(f.ms->data[2 * PG], 'n');
	cr_assert_eq(ndirty(f.fh), 0);
	fix_close(&f);
}

/* After its writes a writeout looks again only at the pages it wrote (wp_async): a page
 * written meanwhile among them stays dirty at once; a write meanwhile to another page
 * waits in the page tables, and the next collection finds it. */
DIRTY_TEST(writes_during_a_writeout_to_its_pages_and_to_others_are_kept)
{
	struct fix f = {0};
	struct done_rec d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 1, NULL, 0};
	static const uint64_t want[][2] = {{2, 1}}, again[][2] = {{2, 1}, {2000, 1}};
	const bool sync = strcmp(mode, "wp_sync") == 0;

	fix_open(&f, mode, 8192); /* large enough that the runs alone are looked at again */
	d.fh = f.fh;
	tu_expect_fill(f.a + 2000 * PG, PG, 77, 2000 * PG); /* loaded and mapped, clean */
	f.a[2 * PG] = 'o';
	f.ms->hold = true;
	cr_assert_eq(rp_writeout_async(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED,
	                               on_done_only, &d),
	             0);
	ms_wait_held(f.ms, 1);
	expect_calls(f.ms, want, 1);
	f.a[2 * PG] = 'n'; /* the page in flight */
	f.a[2000 * PG] = 'q'; /* a page the writeout did not take */
	f.ms->hold = false;
	rp_store_done(f.ms->held[0], 0);
	wait_done(&d, 1);
	cr_assert_eq(d.result, 0);
	/* known without a collection: page 2 (wp_sync: page 2000 too, from its fault) */
	cr_assert_eq(tu_stats(f.eng).dirty_pages, sync ? 2 : 1);
	cr_assert_eq(ndirty(f.fh), 2, "a write made during a writeout was lost");
	cr_assert_eq(page_state(f.fh, 2000), PG_DIRTY);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, again, 2);
	cr_assert_eq(f.ms->data[2 * PG], 'n');
	cr_assert_eq(f.ms->data[2000 * PG], 'q');
	cr_assert_eq(ndirty(f.fh), 0);
	fix_close(&f);
}

/* A collection over a large range first asks the kernel which pages may have been
 * written, and a page not mapped in the mapping counts as one to it; the exact walk then
 * covers the spans it found (vm/dirty.c). vm_collect_call_pages is lowered so that
 * these mappings count as large. Resident pages that a second mapping never touched,
 * pages mapped clean and pages written there, each come out as they are. */
DIRTY_TEST(resident_pages_a_writable_mapping_never_touched_stay_clean)
{
	struct fix f = {0};
	static const uint64_t want[][2] = {{7, 1}, {1000, 1}, {3000, 2}};
	const uint64_t n = 4096;
	rp_mapping *m2;

	vm_collect_call_pages = 64;
	fix_open(&f, mode, n);
	for (uint64_t p = 0; p < n; p++) /* all resident, mapped in f.m */
		tu_expect_fill(f.a + p * PG, PG, 77, p * PG);
	cr_assert_eq(rp_map(f.fh, 0, n * PG, PROT_READ | PROT_WRITE, &m2), 0, "%s", rp_errmsg());
	char *b = rp_mapping_addr(m2);

	for (uint64_t p = 0; p < n; p++) /* mapped in m2 too, but for a hole */
		if (p < 2048 || p >= 2112)
			tu_expect_fill(b + p * PG, PG, 77, p * PG);
	cr_assert_eq(ndirty(f.fh), 0);
	b[7 * PG] = 'a';
	b[1000 * PG] = 'b';
	b[3000 * PG] = 'c';
	b[3001 * PG] = 'd';
	cr_assert_eq(ndirty(f.fh), 4);
	cr_assert_eq(page_state(f.fh, 2050), PG_LOADED);
	cr_assert_eq(page_state(f.fh, 2000), PG_LOADED);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, want, 3);
	cr_assert_eq(ndirty(f.fh), 0);
	b[1000 * PG] = 'e';
	b[2060 * PG] = 'f'; /* in the hole: loaded already, mapped and made dirty by the write */
	cr_assert_eq(ndirty(f.fh), 2);
	cr_assert_eq(rp_unmap(m2), 0);
	fix_close(&f);
}

/* Every other page mapped: more regions than the looking walk goes through
 * (COLLECT_REGIONS), so the exact walk takes the whole range. Writes before and after
 * where it gave up, and into the holes, are each found, and nothing else. */
DIRTY_TEST(writes_among_pages_mapped_one_in_two_are_each_found)
{
	struct fix f = {0};
	const uint64_t n = 8192;
	static const uint64_t want[][2] = {{2, 1}, {4000, 1}, {8190, 2}};

	vm_collect_call_pages = 64;
	fix_open(&f, mode, n);
	cr_assert_eq(rp_advise(f.m, 0, n * PG, RP_ADVICE_RANDOM), 0);
	for (uint64_t p = 0; p < n; p += 2)
		tu_expect_fill(f.a + p * PG, PG, 77, p * PG);
	cr_assert_eq(page_state(f.fh, 1), PG_EMPTY, "a neighbour was read: no holes to walk");
	cr_assert_eq(ndirty(f.fh), 0);
	f.a[2 * PG] = 'a';
	f.a[4000 * PG] = 'b';
	f.a[8190 * PG] = 'c';
	f.a[8191 * PG] = 'd'; /* a hole: loaded and made dirty by its write */
	cr_assert_eq(ndirty(f.fh), 4);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, want, 3);
	cr_assert_eq(ndirty(f.fh), 0);
	for (uint64_t p = 0; p < n; p += 1000)
		f.a[p * PG + 1] = 'x';
	cr_assert_eq(ndirty(f.fh), 9);
	fix_close(&f);
}

/* wp_sync protects a writeout's runs again before it writes them, runs at most
 * PROTECT_GAP (1,024) pages apart in one call (vm/writeout.c, wo_protect): the pages
 * between them, resident and clean or never loaded, and the runs' own pages, keep being
 * tracked after it. wp_async protects in its collection and makes no such call. */
DIRTY_TEST(a_writeouts_runs_far_apart_are_protected_in_one_call_and_later_writes_seen)
{
	struct fix f = {0};
	const uint64_t n = 2048;
	static const uint64_t want[][2] = {{10, 1}, {510, 2}, {1400, 1}};
	const unsigned long want_calls = strcmp(mode, "wp_sync") ? 0 : 1;

	fix_open(&f, mode, n);
	cr_assert_eq(rp_advise(f.m, 0, n * PG, RP_ADVICE_RANDOM), 0);
	for (uint64_t p = 0; p < n; p += 100) /* resident and clean; the others never loaded */
		tu_expect_fill(f.a + p * PG, PG, 77, p * PG);
	f.a[10 * PG] = 'a';
	f.a[510 * PG] = 'b';
	f.a[511 * PG] = 'c';
	f.a[1400 * PG] = 'd';
	cr_assert_eq(ndirty(f.fh), 4);
	unsigned long calls = atomic_load(&vm_wo_protect_calls);

	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, want, 3);
	calls = atomic_load(&vm_wo_protect_calls) - calls;
	cr_assert_eq(calls, want_calls, "%lu calls protected the runs again, expected %lu",
	             calls, want_calls);
	cr_assert_eq(ndirty(f.fh), 0);
	f.a[10 * PG + 1] = 'e';   /* written out */
	f.a[200 * PG + 1] = 'f';  /* resident and clean, between two runs */
	f.a[333 * PG + 1] = 'g';  /* never loaded, between two runs */
	f.a[511 * PG + 1] = 'h';  /* written out */
	f.a[1399 * PG + 1] = 'i'; /* never loaded, beside a run */
	cr_assert_eq(ndirty(f.fh), 5, "a write after the writeout was not seen");
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	cr_assert_eq(ndirty(f.fh), 0);
	cr_assert(memcmp(f.ms->data, f.a, n * PG) == 0, "the store lacks a write");
	fix_close(&f);
}

/* A collection protects the pages it found written again: one call a region where there
 * are few, a walk that protects where there are many (vm/dirty.c, collect_exact). A page
 * left unprotected would count as written at every later collection. */
DIRTY_TEST(written_pages_are_protected_again_few_regions_or_many)
{
	struct fix f = {0};
	const uint64_t n = 8192;
	static const uint64_t want[][2] = {{5, 3}, {600, 1}, {1500, 2}, {4000, 1}};

	fix_open(&f, mode, n);
	for (uint64_t p = 0; p < n; p++)
		tu_expect_fill(f.a + p * PG, PG, 77, p * PG);
	for (unsigned i = 0; i < 4; i++)
		for (uint64_t p = want[i][0]; p < want[i][0] + want[i][1]; p++)
			f.a[p * PG + 9] = 'f';
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	expect_calls(f.ms, want, 4);
	cr_assert_eq(ndirty(f.fh), 0, "a page written before the writeout is still written");
	for (uint64_t p = 0; p < 600; p += 3) /* 200 regions */
		f.a[p * PG + 10] = 'm';
	cr_assert_eq(ndirty(f.fh), 200);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	cr_assert_eq(ndirty(f.fh), 0, "a page written before the writeout is still written");
	cr_assert(memcmp(f.ms->data, f.a, n * PG) == 0, "the store lacks a write");
	for (unsigned i = 0; i < 4; i++)
		f.a[want[i][0] * PG + 11] = 'g';
	for (uint64_t p = 1; p < 600; p += 3)
		f.a[p * PG + 11] = 'g';
	cr_assert_eq(ndirty(f.fh), 204, "writes after the writeouts are each seen");
	fix_close(&f);
}

/* ---------------------------------------------------------------- file stores */

static void ffix_open(struct tu_map *f, const char *mode, const char *name, uint64_t size)
{
	tu_map_open(f, open_engine(mode, 0), name, size, 5, PROT_READ | PROT_WRITE);
}

/* In a child process: reads the file with O_DIRECT and compares with want. */
static void expect_file_odirect(const char *path, const void *want, size_t len)
{
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int fd = open(path, O_RDONLY | O_DIRECT);
		void *buf = tu_aligned(len);

		_exit(fd < 0 || pread(fd, buf, len, 0) != (ssize_t)len ? 2
		      : memcmp(buf, want, len)                         ? 1
		                                                       : 0);
	}
	int st = 0;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "the child reading %s with O_DIRECT saw other bytes (status %d)", path, st);
}

DIRTY_TEST(after_store_markstored_sync_a_new_process_reads_the_new_bytes)
{
	struct tu_map f = {0};
	const size_t len = 64 * PG;
	char *want = malloc(len);

	ffix_open(&f, mode, "dirty_sync", len);
	for (int i = 0; i < 20; i++)
		f.a[((size_t)i * 7919 * 3) % len] = (char)(i + 1);
	memcpy(want, f.a, len);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                   RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	expect_file_odirect(f.path, want, len);
	cr_assert_eq(ndirty(f.fh), 0);
	free(want);
	tu_map_close(&f);
}

DIRTY_TEST(an_injected_write_error_keeps_pages_dirty_and_a_retry_stores_them)
{
	struct tu_map f = {0};
	const size_t len = 32 * PG;
	char *want = malloc(len);
	struct rpio_fault flt = {.ops = 1u << IO_OP_WRITE, .off_lo = 0, .off_hi = len, .err = EIO};

	ffix_open(&f, mode, "dirty_eio", len);
	memset(f.a + 3 * PG, 'x', 2 * PG);
	f.a[20 * PG] = 'y';
	memcpy(want, f.a, len);
	rpio_dev_inject(vm_test_dev(f.st), &flt);
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
		                                   RP_WRITEOUT_SYNC),
		             -EIO);
		cr_assert_eq(ndirty(f.fh), 3);
		cr_assert_eq(memcmp(f.a, want, len), 0, "the pages lost their data");
	}
	rpio_dev_inject(vm_test_dev(f.st), NULL);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                   RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	cr_assert_eq(ndirty(f.fh), 0);
	expect_file_odirect(f.path, want, len);
	free(want);
	tu_map_close(&f);
}

#define WO_SYNC (RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC)

/* Asserts that nothing is dirty and the file holds the first len bytes of the mapping,
 * then closes it all and removes the file and its redo log. */
static void expect_stored_and_close(struct tu_map *f, size_t len)
{
	char *want = malloc(len);
	char log[4200];

	cr_assert_eq(ndirty(f->fh), 0);
	memcpy(want, f->a, len);
	expect_file_odirect(f->path, want, len);
	free(want);
	snprintf(log, sizeof(log), "%s-rplog", f->path);
	tu_map_close(f);
	unlink(log);
}

/* rp_writeout of a file runs on the thread that asks (vm/writeout.c, wo_run_here), plain
 * and atomic; an asynchronous writeout goes to a service thread. */
DIRTY_TEST(a_synchronous_writeout_is_run_by_its_caller_and_an_async_one_is_not)
{
	struct tu_map f = {0};
	const size_t len = 64 * PG;
	struct tu_done d = TU_DONE_INIT;

	ffix_open(&f, mode, "dirty_here", len);
	const uint64_t before = tu_stats(f.eng).writeouts_by_caller;

	f.a[3 * PG] = 'a';
	cr_assert_eq(rp_writeout(f.fh, WO_SYNC), 0, "%s", rp_errmsg());
	cr_assert_eq(tu_stats(f.eng).writeouts_by_caller, before + 1);
	memset(f.a + 10 * PG, 'b', 3 * PG);
	cr_assert_eq(rp_writeout(f.fh, WO_SYNC | RP_WRITEOUT_ATOMIC), 0, "%s", rp_errmsg());
	cr_assert_eq(tu_stats(f.eng).writeouts_by_caller, before + 2);
	f.a[40 * PG] = 'c';
	cr_assert_eq(rp_writeout_async(f.fh, WO_SYNC, tu_done_fn, &d), 0, "%s", rp_errmsg());
	cr_assert_eq(tu_done_wait(&d), 0);
	cr_assert_eq(tu_stats(f.eng).writeouts_by_caller, before + 2, "the async one was not");
	expect_stored_and_close(&f, len);
}

/* The same failures give the same results whether the caller runs the writeout or a
 * service thread does: a failed write or sync keeps every page dirty and its bytes, and
 * the retry stores them. */
DIRTY_TEST(a_failed_write_or_sync_is_the_same_run_by_the_caller_or_a_service_thread)
{
	for (int here = 1; here >= 0; here--) {
		struct tu_map f = {0};
		const size_t len = 32 * PG;
		char *want = malloc(len);
		const struct rpio_fault wr = {.ops = 1u << IO_OP_WRITE, .off_hi = len, .err = EIO};
		const struct rpio_fault sy = {
		    .ops = 1u << IO_OP_FDATASYNC, .off_hi = 1, .err = EIO};

		ffix_open(&f, mode, "dirty_here_eio", len);
		vm_test_lend(vm_test_vm(f.fh), here);
		const uint64_t before = tu_stats(f.eng).writeouts_by_caller;

		memset(f.a + 5 * PG, 'x', 2 * PG);
		f.a[30 * PG] = 'y';
		memcpy(want, f.a, len);
		for (int k = 0; k < 2; k++) {
			rpio_dev_inject(vm_test_dev(f.st), k ? &sy : &wr);
			cr_assert_eq(rp_writeout(f.fh, WO_SYNC), -EIO, "here=%d k=%d", here, k);
			cr_assert(strstr(rp_errmsg(), k ? "syncing" : "failed"), "%s", rp_errmsg());
			cr_assert_eq(ndirty(f.fh), 3, "here=%d k=%d", here, k);
			cr_assert_eq(memcmp(f.a, want, len), 0, "the pages lost their data");
		}
		rpio_dev_inject(vm_test_dev(f.st), NULL);
		cr_assert_eq(rp_writeout(f.fh, WO_SYNC), 0, "%s", rp_errmsg());
		cr_assert_eq(ndirty(f.fh), 0);
		cr_assert_eq(tu_stats(f.eng).writeouts_by_caller - before, here ? 3u : 0u);
		expect_file_odirect(f.path, want, len);
		free(want);
		tu_map_close(&f);
	}
}

struct wo_racer {
	struct tu_map *f;
	unsigned k;
	int err;
};

static void *wo_racer_main(void *arg)
{
	struct wo_racer *r = arg;

	for (unsigned i = 1; i <= 40 && !r->err; i++) {
		memset(r->f->a + (r->k * 3 + i % 3) * PG, (int)(r->k * 40 + i), 100);
		r->err = rp_writeout(r->f->fh, WO_SYNC | (i % 4 ? 0 : RP_WRITEOUT_ATOMIC));
	}
	return NULL;
}

/* Threads writing out one handle at once: one runs its writeout, the others' queue behind
 * it and go to the service threads; every write reaches the file. */
DIRTY_TEST(threads_writing_out_one_handle_at_once_lose_nothing)
{
	struct tu_map f = {0};
	enum { T = 4 };
	const size_t len = 3 * T * PG;
	struct wo_racer r[T];
	pthread_t th[T];

	ffix_open(&f, mode, "dirty_here_race", len);
	for (unsigned k = 0; k < T; k++) {
		r[k] = (struct wo_racer){&f, k, 0};
		cr_assert_eq(pthread_create(&th[k], NULL, wo_racer_main, &r[k]), 0);
	}
	for (unsigned k = 0; k < T; k++) {
		pthread_join(th[k], NULL);
		cr_assert_eq(r[k].err, 0, "thread %u: %d", k, r[k].err);
	}
	cr_assert_eq(rp_writeout(f.fh, WO_SYNC), 0, "%s", rp_errmsg());
	for (unsigned k = 0; k < T; k++)
		cr_assert_eq(f.a[(k * 3 + 40 % 3) * PG], (char)(k * 40 + 40));
	expect_stored_and_close(&f, len);
}

DIRTY_TEST(a_store_whose_size_is_not_a_page_multiple_keeps_its_size)
{
	struct tu_map f = {0};
	const size_t size = 5 * PG + 1000;
	struct stat sb;

	ffix_open(&f, mode, "dirty_tail", size);
	f.a[5 * PG + 999] = 'T';
	f.a[5 * PG + 1500] = 'X'; /* past the end: in the page, never in the file */
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(stat(f.path, &sb), 0);
	cr_assert_eq((size_t)sb.st_size, size);
	int fd = open(f.path, O_RDONLY);
	char c = 0;

	cr_assert_eq(pread(fd, &c, 1, 5 * PG + 999), 1);
	cr_assert_eq(c, 'T');
	close(fd);
	tu_map_close(&f);
}

DIRTY_TEST(each_handle_of_a_store_keeps_private_modifications)
{
	struct tu_map f = {0};
	rp_fileh *fh2;
	rp_mapping *m2;

	ffix_open(&f, mode, "dirty_private", 16 * PG);
	cr_assert_eq(rp_fileh_open(f.st, &fh2), 0);
	cr_assert_eq(rp_map(fh2, 0, 16 * PG, PROT_READ | PROT_WRITE, &m2), 0);
	char *b = rp_mapping_addr(m2);

	tu_expect_fill(b + 4 * PG, PG, 5, 4 * PG); /* fh2 has page 4 resident */
	memset(f.a + 4 * PG, 'P', PG);             /* fh1 changes it */
	b[9 * PG] = 'Q';                           /* fh2 changes another */
	tu_expect_fill(b + 4 * PG, PG, 5, 4 * PG); /* fh2 does not see fh1's write */
	cr_assert_neq(f.a[9 * PG], 'Q');
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	tu_expect_fill(b + 4 * PG, PG, 5, 4 * PG); /* written out, but fh2 keeps its copy */
	cr_assert_eq(rp_invalidate(fh2, 4 * PG, PG), 0);
	cr_assert_eq(b[4 * PG + 10], 'P'); /* now it loads the stored bytes */
	cr_assert_eq(b[9 * PG], 'Q');      /* its own modification is untouched */
	cr_assert_eq(ndirty(fh2), 1);
	cr_assert_eq(rp_unmap(m2), 0);
	cr_assert_eq(rp_fileh_close(fh2), 0);
	tu_map_close(&f);
}

static void *writeout_main(void *arg)
{
	return (void *)(intptr_t)rp_writeout(arg, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
	                                              RP_WRITEOUT_SYNC);
}

DIRTY_TEST(writeouts_of_two_handles_run_at_once_and_both_complete)
{
	struct tu_map f = {0}, g = {0};
	pthread_t t1, t2;
	void *r1, *r2;

	ffix_open(&f, mode, "dirty_two_a", 256 * PG);
	g.eng = f.eng;
	g.path = tu_scratch_file("dirty_two_b", 256 * PG, 6);
	cr_assert_eq(rp_store_open(g.eng, g.path, O_RDWR, &g.st), 0);
	cr_assert_eq(rp_fileh_open(g.st, &g.fh), 0);
	cr_assert_eq(rp_map(g.fh, 0, 256 * PG, PROT_READ | PROT_WRITE, &g.m), 0);
	g.a = rp_mapping_addr(g.m);
	for (size_t p = 0; p < 256; p += 2) {
		f.a[p * PG] = 'f';
		g.a[p * PG] = 'g';
	}
	pthread_create(&t1, NULL, writeout_main, f.fh);
	pthread_create(&t2, NULL, writeout_main, g.fh);
	pthread_join(t1, &r1);
	pthread_join(t2, &r2);
	cr_assert_eq((intptr_t)r1, 0);
	cr_assert_eq((intptr_t)r2, 0);
	cr_assert_eq(ndirty(f.fh) + ndirty(g.fh), 0);
	int fd = open(g.path, O_RDONLY);
	char c = 0;

	cr_assert_eq(pread(fd, &c, 1, 254 * PG), 1);
	cr_assert_eq(c, 'g');
	close(fd);
	cr_assert_eq(rp_unmap(g.m), 0);
	cr_assert_eq(rp_fileh_close(g.fh), 0);
	cr_assert_eq(rp_store_close(g.st), 0);
	tu_unlink(g.path);
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- bad arguments */

Test(dirty, bad_writeout_arguments_get_an_errno_and_a_message)
{
	rp_engine *eng = open_engine("auto", 0);
	char *path = tu_scratch_file("dirty_args", 16 * PG, 1);
	rp_store *ro, *cs;
	rp_fileh *fh, *cfh;
	static const rp_store_ops load_only = {.load = ms_load};
	struct mem_store *ms = ms_new(16 * PG, 1);

	cr_assert_eq(rp_store_open(eng, path, O_RDONLY, &ro), 0);
	cr_assert_eq(rp_fileh_open(ro, &fh), 0);
	cr_assert_eq(rp_writeout(fh, 0), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "neither"), "%s", rp_errmsg());
	cr_assert_eq(rp_writeout(fh, 0x100 | RP_WRITEOUT_STORE), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "0x100"), "%s", rp_errmsg());
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_SYNC | RP_WRITEOUT_MARKSTORED), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "SYNC"), "%s", rp_errmsg());
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE), -EBADF);
	cr_assert(strstr(rp_errmsg(), "O_RDONLY"), "%s", rp_errmsg());
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_MARKSTORED), 0); /* nothing to store */
	cr_assert_eq(rp_writeout_async(fh, RP_WRITEOUT_MARKSTORED, NULL, NULL), -EINVAL);
	cr_assert_eq(rp_writeout(NULL, RP_WRITEOUT_STORE), -EINVAL);
	cr_assert_eq(rp_discard(NULL), -EINVAL);
	cr_assert_eq(rp_fileh_dirty(fh, NULL), -EINVAL);
	cr_assert_eq(rp_store_create(eng, &load_only, ms, 16 * PG, &cs), 0);
	cr_assert_eq(rp_fileh_open(cs, &cfh), 0);
	cr_assert_eq(rp_writeout(cfh, RP_WRITEOUT_STORE), -EOPNOTSUPP);
	cr_assert(strstr(rp_errmsg(), "store callback"), "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_close(cfh), 0);
	cr_assert_eq(rp_store_close(cs), 0);
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(ro), 0);
	rp_engine_close(eng);
	ms_free(ms);
	tu_unlink(path);
}

Test(dirty, without_write_protect_writable_mappings_are_refused_and_reading_works)
{
	rp_config cfg;
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	char *path = tu_scratch_file("dirty_none", 16 * PG, 4);

	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	cfg.internal_flags = VM_FORCE_NO_WP;
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	cr_assert(strstr(rp_engine_describe(eng), "dirty tracking none"), "%s",
	          rp_engine_describe(eng));
	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0);
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_map(fh, 0, 16 * PG, PROT_READ | PROT_WRITE, &m), -EOPNOTSUPP);
	cr_assert(strstr(rp_errmsg(), "PROT_WRITE"), "%s", rp_errmsg());
	cr_assert_eq(rp_map(fh, 0, 16 * PG, PROT_READ, &m), 0, "%s", rp_errmsg());
	tu_expect_fill(rp_mapping_addr(m), 16 * PG, 4, 0);
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0);
	rp_engine_close(eng);
	/* asking for a mechanism the kernel lacks fails at open, naming it */
	cr_assert_eq(rp_config_set(&cfg, "dirty_tracking", "wp_sync"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), -EOPNOTSUPP);
	cr_assert(strstr(rp_errmsg(), "dirty_tracking=wp_sync"), "%s", rp_errmsg());
	tu_unlink(path);
}
