/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_faults.c - a failure at every I/O path, and what must hold after it.
 *
 * For each path (a fault's single-page load, a readahead window, a batch of rp_pinv, a
 * run of a writeout, the writeout's sync, a custom store's load, store and sync when
 * they complete asynchronously, and the engine's open without io_uring or huge pages):
 *   - the error is reported where the API says (SIGBUS at the address, -EIO from rp_pin
 *     or the writeout, the done callback's result, rp_engine_open's message);
 *   - no page is lost: dirty pages keep their bytes and stay dirty;
 *   - the engine still serves other pages;
 *   - once the fault is gone, a retry succeeds and the store holds what it must.
 * File stores fail through io/'s injection hook (rpio_dev_inject), custom stores by
 * their own callbacks. The suite runs in both fault modes.
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
#include <unistd.h>

#define PG    4096ul
#define SEED  41
#define PAGES 256

static void open_file(struct tu_map *f, const char *name, int prot, unsigned flags)
{
	rp_config cfg;
	rp_engine *eng;

	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	cfg.internal_flags = flags;
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(f, eng, name, PAGES * PG, SEED, prot);
}

static void inject(struct tu_map *f, unsigned op, uint64_t lo, uint64_t hi, uint64_t nth,
                   uint64_t count)
{
	struct rpio_fault flt = {.ops = 1u << op, .off_lo = lo, .off_hi = hi, .nth = nth,
	                         .count = count, .err = EIO};

	rpio_dev_inject(vm_test_dev(f->st), &flt);
}

static void heal(struct tu_map *f)
{
	rpio_dev_inject(vm_test_dev(f->st), NULL);
}

/* The engine still serves a page it has not loaded yet. */
static void still_serving(struct tu_map *f, uint64_t p)
{
	tu_expect_fill(f->a + p * PG, PG, SEED, p * PG);
}

static uint64_t dirty_pages(rp_fileh *fh)
{
	uint64_t n = 0;

	cr_assert_eq(rp_fileh_dirty(fh, &n), 0);
	return n;
}

/* The file holds want[] over pages [0, n). */
static void expect_file(const char *path, const char *want, uint64_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = malloc(n * PG);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, n * PG, 0), (ssize_t)(n * PG));
	for (uint64_t p = 0; p < n; p++)
		cr_assert(!memcmp(buf + p * PG, want + p * PG, PG), "the file's page %lu differs",
		          (unsigned long)p);
	free(buf);
	close(fd);
}

/* ---------------------------------------------------------------- loads */

Test(faults, a_single_page_load)
{
	struct tu_map f;

	open_file(&f, "flt_load", PROT_READ | PROT_WRITE, 0);
	cr_assert_eq(rp_advise(f.m, 0, PAGES * PG, RP_ADVICE_RANDOM), 0); /* no readahead */
	f.a[7 * PG] = 'd';                                                /* a dirty page */
	inject(&f, IO_OP_READ, 5 * PG, 6 * PG, 0, 0);
	cr_assert(tu_touch_gets_sigbus(f.a + 5 * PG + 17), "a failed load raises SIGBUS there");
	cr_assert_eq(rp_pin(f.m, 5 * PG, PG), -EIO);
	cr_assert(strstr(rp_errmsg(), "failed to load"), "%s", rp_errmsg());
	cr_assert_geq(tu_stats(f.eng).load_errors, 1);
	still_serving(&f, 6);
	cr_assert_eq(f.a[7 * PG], 'd', "the dirty page kept its bytes");
	cr_assert_eq(dirty_pages(f.fh), 1);
	heal(&f);
	cr_assert_eq(rp_invalidate(f.fh, 5 * PG, PG), 0, "%s", rp_errmsg());
	still_serving(&f, 5);
	cr_assert_eq(rp_pin(f.m, 5 * PG, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unpin(f.m, 5 * PG, PG), 0);
	tu_map_close(&f);
}

/* A window that fails is forgotten, not poisoned: each page is read again by the fault
 * that wants it, and nobody sees an error. */
Test(faults, a_readahead_window)
{
	struct tu_map f;

	open_file(&f, "flt_window", PROT_READ, 0);
	cr_assert_eq(rp_advise(f.m, 0, PAGES * PG, RP_ADVICE_SEQUENTIAL), 0);
	inject(&f, IO_OP_READ, PG, PAGES * PG, 0, 1); /* the first read past page 0 */
	for (uint64_t p = 0; p < PAGES; p++)
		cr_assert(!tu_touch_gets_sigbus(f.a + p * PG), "page %lu raised SIGBUS",
		          (unsigned long)p);
	cr_assert_eq(rpio_dev_injected(vm_test_dev(f.st)), 1, "the window's read was the one failed");
	for (uint64_t p = 0; p < PAGES; p++)
		still_serving(&f, p);
	heal(&f);
	tu_map_close(&f);
}

Test(faults, a_batch_of_rp_pinv)
{
	struct tu_map f;
	rp_range r[64];

	open_file(&f, "flt_pinv", PROT_READ, 0);
	for (size_t i = 0; i < 64; i++)
		r[i] = (rp_range){.off = (i * 3 + 1) * PG, .len = PG};
	inject(&f, IO_OP_READ, 0, PAGES * PG, 40, 1); /* one read, in a later batch */
	cr_assert_eq(rp_pinv(f.m, r, 64), -EIO);
	cr_assert_eq(rp_unpin(f.m, r[0].off, PG), -EINVAL, "nothing is pinned after a failure");
	still_serving(&f, 200);
	heal(&f);
	/* The failed page stays poisoned until invalidated; the rest are resident. */
	for (size_t i = 0; i < 64; i++)
		cr_assert_eq(rp_invalidate(f.fh, r[i].off, PG), 0);
	cr_assert_eq(rp_pinv(f.m, r, 64), 0, "%s", rp_errmsg());
	for (size_t i = 0; i < 64; i++)
		tu_expect_fill(f.a + r[i].off, PG, SEED, r[i].off);
	cr_assert_eq(rp_pinv(f.m, r, 64), 0);
	for (size_t i = 0; i < 64; i++) {
		cr_assert_eq(rp_unpin(f.m, r[i].off, PG), 0);
		cr_assert_eq(rp_unpin(f.m, r[i].off, PG), 0);
	}
	tu_map_close(&f);
}

/* Many pins, some of the same range, some overlapping, dropped in a shuffled order: each
 * rp_unpin finds its own, a page stays pinned while any pin covers it, and nothing is
 * pinned after the last (vm/pin.c keeps an index of the pins by range). */
Test(faults, many_pins_dropped_in_any_order)
{
	struct tu_map f;
	enum { N = PAGES + PAGES / 2 };
	rp_range r[N];
	size_t order[2 * N];
	uint64_t seed = 12345;

	open_file(&f, "flt_manypins", PROT_READ, 0);
	for (size_t i = 0; i < PAGES; i++)
		r[i] = (rp_range){.off = i * PG, .len = PG};
	for (size_t i = PAGES; i < N; i++) { /* two pages each, across the single ones */
		const size_t k = i - PAGES;

		r[i] = (rp_range){.off = (2 * k + 1) * PG, .len = 2 * k + 2 < PAGES ? 2 * PG : PG};
	}
	cr_assert_eq(rp_pinv(f.m, r, N), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_pinv(f.m, r, N), 0, "%s", rp_errmsg()); /* each range twice */
	for (size_t i = 0; i < 2 * N; i++)
		order[i] = i % N;
	for (size_t i = 2 * N - 1; i > 0; i--) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		const size_t j = (size_t)(seed >> 33) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (size_t k = 0; k < 2 * N; k++) {
		const rp_range *q = &r[order[k]];

		cr_assert_eq(rp_unpin(f.m, q->off, q->len), 0, "unpin %zu (%lu, %lu): %s", k,
		             (unsigned long)q->off, (unsigned long)q->len, rp_errmsg());
		if (k == N) { /* half dropped: a range still pinned cannot be invalidated */
			const rp_range *left = &r[order[2 * N - 1]];

			cr_assert_eq(rp_invalidate(f.fh, left->off, left->len), -EBUSY);
		}
	}
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(rp_unpin(f.m, r[i].off, r[i].len), -EINVAL, "range %zu pinned still",
		             i);
	cr_assert_eq(rp_invalidate(f.fh, 0, PAGES * PG), 0, "%s", rp_errmsg());
	tu_map_close(&f);
}

/* ---------------------------------------------------------------- writeouts */

/* Writes three runs of dirty pages: [2, 4), [10, 11), [20, 23). */
static void make_dirty(struct tu_map *f, char *want)
{
	static const uint64_t runs[3][2] = {{2, 2}, {10, 1}, {20, 3}};

	for (int r = 0; r < 3; r++)
		for (uint64_t p = runs[r][0]; p < runs[r][0] + runs[r][1]; p++)
			memset(f->a + p * PG, 'a' + (int)p, PG);
	memcpy(want, f->a, 32 * PG);
	cr_assert_eq(dirty_pages(f->fh), 6);
}

static int writeout(struct tu_map *f, int flags, bool async)
{
	struct tu_done d = TU_DONE_INIT;

	if (!async)
		return rp_writeout(f->fh, flags);
	int err = rp_writeout_async(f->fh, flags, tu_done_fn, &d);

	return err ? err : tu_done_wait(&d);
}

/* After a failed writeout: the engine serves, and once healed a retry stores every
 * page and the file holds want[] (32 pages). Frees want and closes f. */
static void after_failed_writeout(struct tu_map *f, char *want, bool async)
{
	still_serving(f, 100);
	heal(f);
	cr_assert_eq(writeout(f, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC,
	                      async),
	             0, "%s", rp_errmsg());
	cr_assert_eq(dirty_pages(f->fh), 0);
	expect_file(f->path, want, 32);
	free(want);
	tu_map_close(f);
}

static void failed_run(bool async)
{
	struct tu_map f;
	char *want = malloc(32 * PG);

	open_file(&f, async ? "flt_run_async" : "flt_run", PROT_READ | PROT_WRITE, 0);
	make_dirty(&f, want);
	inject(&f, IO_OP_WRITE, 0, PAGES * PG, 2, 1); /* the second run: page 10 */
	cr_assert_eq(writeout(&f, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED, async), -EIO);
	cr_assert_eq(dirty_pages(f.fh), 1, "the failed run's page alone stays dirty");
	cr_assert(!memcmp(f.a, want, 32 * PG), "no page lost its bytes");
	after_failed_writeout(&f, want, async);
}

static void failed_sync(bool async)
{
	struct tu_map f;
	char *want = malloc(32 * PG);

	open_file(&f, async ? "flt_sync_async" : "flt_sync", PROT_READ | PROT_WRITE, 0);
	make_dirty(&f, want);
	inject(&f, IO_OP_FDATASYNC, 0, 1, 0, 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(writeout(&f, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
		                              RP_WRITEOUT_SYNC,
		                      async),
		             -EIO);
		cr_assert_eq(dirty_pages(f.fh), 6, "a failed sync keeps every page dirty");
		cr_assert(!memcmp(f.a, want, 32 * PG), "no page lost its bytes");
	}
	after_failed_writeout(&f, want, async);
}

Test(faults, a_run_of_a_writeout)
{
	failed_run(false);
}

Test(faults, a_run_of_an_async_writeout)
{
	failed_run(true);
}

Test(faults, the_sync_of_a_writeout)
{
	failed_sync(false);
}

Test(faults, the_sync_of_an_async_writeout)
{
	failed_sync(true);
}

/* ---------------------------------------------------------------- custom stores, async */

/* Completes every call on a thread of its own, failing while `fail` is set. */
struct astore {
	char *data;
	bool fail_load, fail_store, fail_sync;
};

struct ajob {
	struct astore *as;
	bool load;
	uint64_t off;
	void *buf;
	size_t len;
	void *tok;
};

static void *ajob_main(void *arg)
{
	struct ajob *j = arg;

	usleep(1000);
	if (j->load) {
		if (!j->as->fail_load)
			memcpy(j->buf, j->as->data + j->off, j->len);
		rp_load_done(j->tok, j->as->fail_load ? -EIO : 0);
	} else {
		if (!j->as->fail_store)
			memcpy(j->as->data + j->off, j->buf, j->len);
		rp_store_done(j->tok, j->as->fail_store ? -EIO : 0);
	}
	free(j);
	return NULL;
}

static int astart(struct astore *as, bool load, uint64_t off, void *buf, size_t len, void *tok)
{
	struct ajob *j = malloc(sizeof(*j));
	pthread_t t;

	*j = (struct ajob){as, load, off, buf, len, tok};
	cr_assert_eq(pthread_create(&t, NULL, ajob_main, j), 0);
	pthread_detach(t);
	return 1; /* RP_LOAD_ASYNC, RP_STORE_ASYNC */
}

static int as_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	return astart(ctx, true, off, buf, len, tok);
}

static int as_store(void *ctx, uint64_t off, const void *buf, size_t len, rp_store_token *tok)
{
	return astart(ctx, false, off, (void *)buf, len, tok);
}

static int as_sync(void *ctx)
{
	return ((struct astore *)ctx)->fail_sync ? -EIO : 0;
}

static const rp_store_ops as_ops = {.load = as_load, .store = as_store, .sync = as_sync};

Test(faults, a_custom_stores_asynchronous_load_store_and_sync)
{
	struct astore as = {.data = malloc(PAGES * PG)};
	rp_config cfg;
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	char *want = malloc(4 * PG);

	tu_fill(as.data, PAGES * PG, SEED, 0);
	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	cfg.readahead_max = 0;
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_create(eng, &as_ops, &as, PAGES * PG, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_map(fh, 0, PAGES * PG, PROT_READ | PROT_WRITE, &m), 0, "%s", rp_errmsg());
	char *a = rp_mapping_addr(m);

	/* Loads: SIGBUS and -EIO; the engine serves once the store does again. */
	as.fail_load = true;
	cr_assert(tu_touch_gets_sigbus(a + 3 * PG), "a failed asynchronous load raises SIGBUS");
	cr_assert_eq(rp_pin(m, 9 * PG, PG), -EIO);
	as.fail_load = false;
	tu_expect_fill(a + 30 * PG, PG, SEED, 30 * PG);
	cr_assert_eq(rp_invalidate(fh, 0, 16 * PG), 0);
	tu_expect_fill(a + 3 * PG, PG, SEED, 3 * PG);
	cr_assert_eq(rp_pin(m, 9 * PG, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unpin(m, 9 * PG, PG), 0);

	/* Stores, then syncs: -EIO with every page dirty and whole; the retry stores them. */
	memset(a + 40 * PG, 'x', 2 * PG);
	memset(a + 50 * PG, 'y', 2 * PG);
	memcpy(want, a + 40 * PG, 2 * PG);
	memcpy(want + 2 * PG, a + 50 * PG, 2 * PG);
	for (int which = 0; which < 2; which++) {
		as.fail_store = which == 0;
		as.fail_sync = which == 1;
		cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED |
		                                 RP_WRITEOUT_SYNC),
		             -EIO, "a failing %s", which ? "sync" : "store");
		cr_assert_eq(dirty_pages(fh), 4);
		cr_assert(!memcmp(a + 40 * PG, want, 2 * PG) && !memcmp(a + 50 * PG, want + 2 * PG,
		                                                        2 * PG));
	}
	as.fail_store = as.fail_sync = false;
	cr_assert_eq(rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC),
	             0, "%s", rp_errmsg());
	cr_assert_eq(dirty_pages(fh), 0);
	cr_assert(!memcmp(as.data + 40 * PG, want, 2 * PG) &&
	          !memcmp(as.data + 50 * PG, want + 2 * PG, 2 * PG));
	cr_assert_eq(rp_unmap(m), 0);
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	free(as.data);
	free(want);
}

/* ---------------------------------------------------------------- engine open */

/* An engine opened with cfg serves a file's pages. */
static void serves(const rp_config *cfg)
{
	struct tu_map f;
	rp_engine *eng;

	cr_assert_eq(rp_engine_open(cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(&f, eng, "flt_open", 64 * PG, SEED, PROT_READ);
	still_serving(&f, 33);
	tu_map_close(&f);
}

Test(faults, engine_open_without_io_uring, .fini = tu_sysctl_restore_all)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	tu_sysctl_set_or_skip("/proc/sys/kernel/io_uring_disabled", "2");
	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "io_backend", "io_uring"), 0);
	cr_assert_lt(rp_engine_open(&cfg, &eng), 0, "io_backend=io_uring opened without it");
	cr_assert_null(eng);
	cr_assert(strstr(rp_errmsg(), "io_uring"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "io_backend", "auto"), 0);
	serves(&cfg);
	tu_sysctl_restore_all();
	serves(&cfg); /* and once it is back */
}

Test(faults, engine_open_without_huge_pages, .fini = tu_huge_restore)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	tu_huge_reserve(0);
	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cr_assert_eq(rp_config_set(&cfg, "hugepages", "require"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), -ENOMEM);
	cr_assert_null(eng);
	cr_assert(strstr(rp_errmsg(), "vm.nr_hugepages"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "hugepages", "auto"), 0);
	serves(&cfg);
}

/* Without write-protection for shmem (userfaultfd features missing): writable mappings
 * are refused by name, reading works. */
Test(faults, engine_open_without_userfaultfd_write_protection)
{
	rp_config cfg;
	rp_engine *eng;
	struct tu_map f;
	rp_mapping *m = NULL;

	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	cfg.internal_flags = VM_FORCE_NO_WP;
	cr_assert_eq(rp_config_set(&cfg, "dirty_tracking", "wp_async"), 0);
	cr_assert_lt(rp_engine_open(&cfg, &eng), 0, "wp_async opened without write-protection");
	cr_assert(strstr(rp_errmsg(), "wp_async"), "%s", rp_errmsg());
	cr_assert_eq(rp_config_set(&cfg, "dirty_tracking", "auto"), 0);
	if (cfg.fault_mode == RP_FAULT_MODE_SIGBUS)
		cfg.fault_mode = RP_FAULT_MODE_AUTO; /* sigbus needs wp_async for writes only */
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	tu_map_open(&f, eng, "flt_nowp", 64 * PG, SEED, PROT_READ);
	cr_assert_eq(rp_map(f.fh, 0, PG, PROT_READ | PROT_WRITE, &m), -EOPNOTSUPP);
	cr_assert(strstr(rp_errmsg(), "PROT_WRITE"), "%s", rp_errmsg());
	still_serving(&f, 12);
	tu_map_close(&f);
}
