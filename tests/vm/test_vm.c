/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_vm.c - mappings served by the fault service: loads from file and custom
 * stores, sharing between mappings and threads, sparse mappings, load errors, pins,
 * invalidation, and the errors bad arguments get.
 */
#include "ringpager.h"
#include "vm/testing.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PG 4096ul

static rp_engine *open_engine(uint64_t ram, unsigned flags)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	tu_config_init(&cfg);
	cfg.ram_size = ram;
	cfg.hugepages = 2; /* off */
	cfg.internal_flags = flags;
	int err = rp_engine_open(&cfg, &eng);

	cr_assert_eq(err, 0, "rp_engine_open: %s: %s", rp_strerror(err), rp_errmsg());
	return eng;
}

struct fixture {
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	char *path;
};

static void fixture_file(struct fixture *f, const char *name, uint64_t size, uint64_t seed,
                         unsigned flags)
{
	f->eng = open_engine(64ul << 20, flags);
	f->path = tu_scratch_file(name, size, seed);
	cr_assert_eq(rp_store_open(f->eng, f->path, O_RDONLY, &f->st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(f->st, &f->fh), 0, "%s", rp_errmsg());
}

static void fixture_close(struct fixture *f)
{
	if (f->fh)
		cr_assert_eq(rp_fileh_close(f->fh), 0, "%s", rp_errmsg());
	if (f->st)
		cr_assert_eq(rp_store_close(f->st), 0, "%s", rp_errmsg());
	rp_engine_close(f->eng);
	if (f->path)
		tu_unlink(f->path);
}

Test(vm, mapped_page_reads_the_store)
{
	struct fixture f = {0};
	rp_mapping *m;
	struct rp_stats s;

	fixture_file(&f, "vm_read", 1 << 20, 11, 0);
	cr_assert_eq(rp_map(f.fh, 0, 1 << 20, PROT_READ, &m), 0, "%s", rp_errmsg());
	char *a = rp_mapping_addr(m);

	tu_expect_fill(a + 5 * PG, PG, 11, 5 * PG);
	tu_expect_fill(a, 1 << 20, 11, 0);
	rp_stats(f.eng, &s);
	cr_assert_eq(s.pages_loaded, 256);
	cr_assert_eq(s.bytes_read, 1 << 20);
	cr_assert_eq(s.resident_pages, 256);
	cr_assert_eq(s.load_errors, 0);
	/* One fault a page, or fewer: readahead maps pages read ahead in runs. */
	cr_assert_gt(s.faults, 0);
	cr_assert_leq(s.faults, 256);
	cr_assert_eq(rp_unmap(m), 0);
	fixture_close(&f);
}

Test(vm, store_size_not_a_page_multiple_reads_zeros_past_the_end)
{
	struct fixture f = {0};
	rp_mapping *m;
	const uint64_t size = 3 * PG + 100;

	fixture_file(&f, "vm_tail", size, 12, 0);
	cr_assert_eq(rp_store_size(f.st), size);
	cr_assert_eq(rp_map(f.fh, 0, size, PROT_READ, &m), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_mapping_len(m), 4 * PG);
	char *a = rp_mapping_addr(m);

	tu_expect_fill(a + 3 * PG, 100, 12, 3 * PG);
	for (size_t i = 100; i < PG; i++)
		cr_assert_eq(a[3 * PG + i], 0, "byte %zu past the end is not zero", i);
	rp_unmap(m);
	fixture_close(&f);
}

Test(vm, two_mappings_of_a_range_show_the_same_bytes)
{
	struct fixture f = {0};
	rp_mapping *m1, *m2;
	struct rp_stats s;

	fixture_file(&f, "vm_alias", 1 << 20, 13, 0);
	cr_assert_eq(rp_map(f.fh, 0, 1 << 20, PROT_READ | PROT_WRITE, &m1), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(f.fh, 64 * PG, 64 * PG, PROT_READ, &m2), 0, "%s", rp_errmsg());
	char *a1 = rp_mapping_addr(m1), *a2 = rp_mapping_addr(m2);

	tu_expect_fill(a2, 64 * PG, 13, 64 * PG);     /* loaded through m2 */
	tu_expect_fill(a1 + 64 * PG, 64 * PG, 13, 64 * PG); /* the same pages, no new load */
	rp_stats(f.eng, &s);
	cr_assert_eq(s.pages_loaded, 64);
	/* A write through one mapping is seen through the other: one page, two views. */
	a1[70 * PG + 1] = (char)0x5a;
	cr_assert_eq(a2[6 * PG + 1], (char)0x5a);
	rp_unmap(m1);
	rp_unmap(m2);
	fixture_close(&f);
}

Test(vm, resident_page_in_a_new_mapping_is_a_minor_fault)
{
	struct fixture f = {0};
	rp_mapping *m1, *m2;
	struct rp_stats s0, s1;

	fixture_file(&f, "vm_minor", 64 * PG, 14, 0);
	cr_assert_eq(rp_map(f.fh, 0, 64 * PG, PROT_READ, &m1), 0);
	cr_assert_eq(rp_pin(m1, 0, 64 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(f.fh, 0, 64 * PG, PROT_READ, &m2), 0);
	rp_stats(f.eng, &s0);
	tu_expect_fill(rp_mapping_addr(m2), 64 * PG, 14, 0);
	rp_stats(f.eng, &s1);
	cr_assert_eq(s1.pages_loaded, s0.pages_loaded, "no page is loaded twice");
	/* One fault per 64 KiB block: the fault maps the block's other resident pages. */
	cr_assert_eq(s1.minor_faults - s0.minor_faults, 64 / (VM_FAULT_AROUND_BYTES / PG));
	cr_assert_eq(rp_unpin(m1, 0, 64 * PG), 0, "%s", rp_errmsg());
	rp_unmap(m1);
	rp_unmap(m2);
	fixture_close(&f);
}

Test(vm, errno_is_preserved_across_a_page_load)
{
	struct fixture f = {0};
	rp_mapping *m;

	fixture_file(&f, "vm_errno", 4 * PG, 15, 0);
	cr_assert_eq(rp_map(f.fh, 0, 4 * PG, PROT_READ, &m), 0);
	volatile char *a = rp_mapping_addr(m);

	errno = 4242;
	(void)a[PG];
	cr_assert_eq(errno, 4242);
	rp_unmap(m);
	fixture_close(&f);
}

/* ---------------------------------------------------------------- custom stores */

struct counting_store {
	atomic_int loads;
	atomic_int closed;
	bool async;
	int fail_page; /* -1: none */
	useconds_t delay;
};

struct async_job {
	struct counting_store *cs;
	uint64_t off;
	void *buf;
	size_t len;
	rp_load_token *tok;
};

static int cs_fill(struct counting_store *cs, uint64_t off, void *buf, size_t len)
{
	if (cs->fail_page >= 0 && off <= (uint64_t)cs->fail_page * PG &&
	    (uint64_t)cs->fail_page * PG < off + len)
		return -EIO;
	tu_fill(buf, len, 77, off);
	return 0;
}

static void *cs_async_main(void *arg)
{
	struct async_job *j = arg;

	usleep(j->cs->delay);
	rp_load_done(j->tok, cs_fill(j->cs, j->off, j->buf, j->len));
	free(j);
	return NULL;
}

static int cs_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	struct counting_store *cs = ctx;

	atomic_fetch_add(&cs->loads, 1);
	if (!cs->async) {
		if (cs->delay)
			usleep(cs->delay);
		return cs_fill(cs, off, buf, len);
	}
	struct async_job *j = malloc(sizeof(*j));
	pthread_t t;

	*j = (struct async_job){cs, off, buf, len, tok};
	cr_assert_eq(pthread_create(&t, NULL, cs_async_main, j), 0);
	pthread_detach(t);
	return RP_LOAD_ASYNC;
}

static void cs_close(void *ctx)
{
	atomic_fetch_add(&((struct counting_store *)ctx)->closed, 1);
}

static const rp_store_ops cs_ops = {.load = cs_load, .close = cs_close};

struct toucher {
	const char *addr;
	uint64_t off;
	pthread_barrier_t *bar;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	pthread_barrier_wait(t->bar);
	tu_expect_fill(t->addr, PG, 77, t->off);
	return NULL;
}

static void eight_threads(bool async, bool same_page)
{
	rp_engine *eng = open_engine(16ul << 20, 0);
	struct counting_store cs = {.async = async, .fail_page = -1, .delay = 20000};
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	pthread_t th[8];
	struct toucher t[8];
	pthread_barrier_t bar;

	cr_assert_eq(rp_store_create(eng, &cs_ops, &cs, 64 * PG, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_map(fh, 0, 64 * PG, PROT_READ, &m), 0);
	/* One load a page: the count below is exact. */
	cr_assert_eq(rp_advise(m, 0, 64 * PG, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	pthread_barrier_init(&bar, NULL, 8);
	for (int i = 0; i < 8; i++) {
		uint64_t page = same_page ? 3 : (uint64_t)i * 7;

		t[i] = (struct toucher){(char *)rp_mapping_addr(m) + page * PG, page * PG, &bar};
		cr_assert_eq(pthread_create(&th[i], NULL, touch_main, &t[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&cs.loads), same_page ? 1 : 8, "%d loads",
	             atomic_load(&cs.loads));
	rp_unmap(m);
	rp_fileh_close(fh);
	cr_assert_eq(rp_store_close(st), 0);
	cr_assert_eq(atomic_load(&cs.closed), 1);
	rp_engine_close(eng);
	pthread_barrier_destroy(&bar);
}

Test(vm, eight_threads_on_one_page_load_it_once_sync)
{
	eight_threads(false, true);
}

Test(vm, eight_threads_on_one_page_load_it_once_async)
{
	eight_threads(true, true);
}

Test(vm, eight_threads_on_different_pages_all_complete_sync)
{
	eight_threads(false, false);
}

Test(vm, eight_threads_on_different_pages_all_complete_async)
{
	eight_threads(true, false);
}

/* ---------------------------------------------------------------- sparse */

/* Lines of /proc/self/maps (kernel VMAs) in all, and those that overlap [lo, hi). */
static int count_maps(uintptr_t lo, uintptr_t hi, int *inside)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	cr_assert(f);
	*inside = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		n++;
		if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && b > lo)
			(*inside)++;
	}
	fclose(f);
	return n;
}

Test(vm, sparse_64gib_mapping_with_100000_random_pages, .timeout = 300)
{
	const uint64_t size = 64ull << 30, npages = size / PG;
	char *path = malloc(strlen(tu_dir()) + 32);
	rp_engine *eng = open_engine(512ul << 20, 0);
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	char page[PG];
	struct rp_stats s;
	uint64_t rng = 99;

	cr_assert(path);
	sprintf(path, "%s/vm_sparse64g", tu_dir());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	/* A few pages with data among the holes. */
	for (uint64_t i = 0; i < 16; i++) {
		uint64_t p = (i * 1000003) % npages;

		tu_fill(page, PG, 5, p * PG);
		cr_assert_eq(pwrite(fd, page, PG, (off_t)(p * PG)), (ssize_t)PG);
	}
	close(fd);
	cr_assert_eq(rp_store_open(eng, path, O_RDONLY, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fh, 0, size, PROT_READ, &m), 0, "%s", rp_errmsg());
	volatile const char *a = rp_mapping_addr(m);
	uint64_t sum = 0;

	for (int i = 0; i < 100000; i++)
		sum += (unsigned char)a[(tu_rand(&rng) % npages) * PG + 8];
	(void)sum;
	for (uint64_t i = 0; i < 16; i++) {
		uint64_t p = (i * 1000003) % npages;

		tu_expect_fill((const char *)a + p * PG, PG, 5, p * PG);
	}
	int inside, maps = count_maps((uintptr_t)a, (uintptr_t)a + size, &inside);

	rp_stats(eng, &s);
	cr_assert_geq(s.resident_pages, 95000, "%llu resident", (unsigned long long)s.resident_pages);
	cr_assert_eq(inside, 1, "the mapping is %d kernel VMAs", inside);
	cr_assert_lt(maps, 1000, "the process has %d VMAs", maps);
	cr_log_info("100,000 random touches: %llu pages resident, %d VMAs in the process, "
	            "metadata %llu bytes",
	            (unsigned long long)s.resident_pages, maps,
	            (unsigned long long)s.metadata_bytes);
	rp_unmap(m);
	rp_fileh_close(fh);
	rp_store_close(st);
	rp_engine_close(eng);
	unlink(path);
	free(path);
}

/* ---------------------------------------------------------------- load errors */

static void load_error_device(unsigned flags)
{
	struct fixture f = {0};
	rp_mapping *m;
	struct rp_stats s;

	fixture_file(&f, flags ? "vm_eio_remap" : "vm_eio", 64 * PG, 21, flags);
	struct rpio_fault fault = {
	    .ops = 1u << IO_OP_READ, .off_lo = 8 * PG, .off_hi = 12 * PG, .err = EIO};

	rpio_dev_inject(vm_test_dev(f.st), &fault);
	cr_assert_eq(rp_map(f.fh, 0, 64 * PG, PROT_READ, &m), 0);
	volatile char *a = rp_mapping_addr(m);

	cr_assert(tu_touch_gets_sigbus(a + 9 * PG + 123), "a touch of a failed page raises SIGBUS");
	/* Again: the page stays poisoned; another page is served. */
	cr_assert(tu_touch_gets_sigbus(a + 9 * PG + 7));
	tu_expect_fill((const char *)a + 20 * PG, PG, 21, 20 * PG);
	cr_assert_eq(rp_pin(m, 8 * PG, 4 * PG), -EIO, "%s", rp_errmsg());
	cr_assert_eq(rp_pin(m, 9 * PG, PG), -EIO);
	cr_assert(strstr(rp_errmsg(), "failed to load"), "%s", rp_errmsg());
	cr_assert_eq(rp_pin(m, 30 * PG, 4 * PG), 0, "%s", rp_errmsg());
	rp_stats(f.eng, &s);
	cr_assert_geq(s.load_errors, 1);
	/* The device heals; invalidate clears the poison and the page loads. */
	rpio_dev_inject(vm_test_dev(f.st), NULL);
	cr_assert_eq(rp_invalidate(f.fh, 8 * PG, 4 * PG), 0, "%s", rp_errmsg());
	tu_expect_fill((const char *)a + 9 * PG, PG, 21, 9 * PG);
	cr_assert_eq(rp_pin(m, 8 * PG, 4 * PG), 0, "%s", rp_errmsg());
	rp_unmap(m);
	fixture_close(&f);
}

Test(vm, load_error_poisons_with_uffdio_poison)
{
	load_error_device(0);
}

Test(vm, load_error_poisons_by_remapping_when_forced)
{
	load_error_device(VM_FORCE_POISON_REMAP);
}

Test(vm, load_error_from_a_custom_store)
{
	rp_engine *eng = open_engine(16ul << 20, 0);
	struct counting_store cs = {.async = true, .fail_page = 5, .delay = 1000};
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;

	cr_assert_eq(rp_store_create(eng, &cs_ops, &cs, 16 * PG, &st), 0);
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_map(fh, 0, 16 * PG, PROT_READ, &m), 0);
	volatile char *a = rp_mapping_addr(m);

	cr_assert(tu_touch_gets_sigbus(a + 5 * PG + 1));
	tu_expect_fill((const char *)a + 6 * PG, PG, 77, 6 * PG);
	cr_assert_eq(rp_pin(m, 4 * PG, 3 * PG), -EIO);
	cs.fail_page = -1;
	cr_assert_eq(rp_invalidate(fh, 5 * PG, PG), 0);
	cr_assert_eq(rp_pin(m, 4 * PG, 3 * PG), 0, "%s", rp_errmsg());
	tu_expect_fill((const char *)a + 5 * PG, PG, 77, 5 * PG);
	rp_unmap(m);
	rp_fileh_close(fh);
	rp_store_close(st);
	rp_engine_close(eng);
}

/* ---------------------------------------------------------------- pins, advice */

Test(vm, pin_loads_without_touching_and_pinv_takes_random_pages)
{
	struct fixture f = {0};
	rp_mapping *m;
	struct rp_stats s0, s1;
	rp_range r[100];
	uint64_t rng = 5;

	fixture_file(&f, "vm_pin", 4 << 20, 31, 0);
	cr_assert_eq(rp_map(f.fh, 0, 4 << 20, PROT_READ, &m), 0);
	for (int i = 0; i < 100; i++)
		r[i] = (rp_range){(tu_rand(&rng) % 512) * PG, PG}; /* the first 2 MiB */
	struct vm *vm = vm_test_vm(f.fh);
	const uint64_t own = vm_service_own_taken(vm, -1);

	cr_assert_eq(rp_pinv(m, r, 100), 0, "%s", rp_errmsg());
	rp_stats(f.eng, &s0);
	cr_assert_eq(s0.faults, 0, "pinning faults nothing");
	/* Where the service threads are bound to CPUs, a batch of the pin's loads went to a
	 * thread of another CPU than the pinning thread's, for it alone. */
	if (vm_test_nsvc(vm) > 1 && vm_service_cpu(vm, 0) >= 0)
		cr_assert_gt(vm_service_own_taken(vm, -1), own, "no batch went to another CPU's thread");
	/* Pinned pages are mapped: touching them is not even a fault. */
	for (int i = 0; i < 100; i++)
		tu_expect_fill((char *)rp_mapping_addr(m) + r[i].off, PG, 31, r[i].off);
	rp_stats(f.eng, &s1);
	cr_assert_eq(s1.faults, 0);
	cr_assert_eq(s1.pages_loaded, s0.pages_loaded);
	/* A contiguous range of absent pages loads in requests of up to 1 MiB. */
	cr_assert_eq(rp_pin(m, 2 << 20, 2 << 20), 0, "%s", rp_errmsg());
	rp_stats(f.eng, &s1);
	cr_assert_eq(s1.loads - s0.loads, 2, "%llu loads for 512 pages",
	              (unsigned long long)(s1.loads - s0.loads));
	cr_assert_eq(rp_unpin(m, 2 << 20, 2 << 20), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unpin(m, 2 << 20, 2 << 20), -EINVAL, "a second unpin is refused");
	for (int i = 0; i < 100; i++)
		cr_assert_eq(rp_unpin(m, r[i].off, PG), 0, "%s", rp_errmsg());
	rp_unmap(m);
	fixture_close(&f);
}

/* Where the service threads are bound: a pin of one batch goes to this CPU's thread (the
 * shared list), a longer pin's first batch to another CPU's thread and its second to this
 * CPU's, each for it alone (vm/pin.c, PIN_BATCH); the pages arrive whole either way. */
Test(vm, a_long_pins_first_batch_goes_to_another_cpu_and_its_second_to_this_one)
{
	struct fixture f = {0};
	rp_mapping *m;
	rp_range r[48];
	cpu_set_t was, one;

	fixture_file(&f, "vm_pin_hand", 4 << 20, 37, 0);
	cr_assert_eq(rp_map(f.fh, 0, 4 << 20, PROT_READ, &m), 0, "%s", rp_errmsg());
	struct vm *vm = vm_test_vm(f.fh);

	if (vm_test_nsvc(vm) < 2 || vm_service_cpu(vm, 0) < 0) {
		rp_unmap(m);
		fixture_close(&f);
		cr_skip_test("the service threads are not bound to two CPUs or more here");
	}
	cr_assert_eq(sched_getaffinity(0, sizeof(was), &was), 0);
	CPU_ZERO(&one);
	CPU_SET(vm_service_cpu(vm, 0), &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0, "%s", strerror(errno));
	for (int i = 0; i < 48; i++)
		r[i] = (rp_range){(size_t)(3 * i + 1) * PG, PG}; /* lone pages, none next to another */
	const uint64_t here0 = vm_service_own_taken(vm, 0), all0 = vm_service_own_taken(vm, -1);

	cr_assert_eq(rp_pinv(m, r, 16), 0, "%s", rp_errmsg());
	cr_assert_eq(vm_service_own_taken(vm, -1), all0, "a pin of one batch went to a thread alone");
	cr_assert_eq(rp_pinv(m, r + 16, 32), 0, "%s", rp_errmsg());
	cr_assert_eq(vm_service_own_taken(vm, 0), here0 + 1,
	             "this CPU's thread did not take the second batch alone");
	cr_assert_eq(vm_service_own_taken(vm, -1), all0 + 2,
	             "another CPU's thread did not take the first batch alone");
	cr_assert_eq(sched_setaffinity(0, sizeof(was), &was), 0);
	for (int i = 0; i < 48; i++)
		tu_expect_fill((char *)rp_mapping_addr(m) + r[i].off, PG, 37, r[i].off);
	struct rp_stats s;

	rp_stats(f.eng, &s);
	cr_assert_eq(s.faults, 0, "pinned pages are mapped");
	for (int i = 0; i < 48; i++)
		cr_assert_eq(rp_unpin(m, r[i].off, PG), 0, "%s", rp_errmsg());
	rp_unmap(m);
	fixture_close(&f);
}

/* The hook of the test below: at the copy of the armed page, the process's accessed bits
 * cleared (clear_refs), so that what smaps counts afterwards is what the copying thread
 * read after its copy. */
static struct {
	rp_fileh *fh;
	uint64_t page;
	atomic_bool armed;
	atomic_int cleared; /* 1 cleared, -errno */
} touch;

static void touch_hook(struct rp_fileh *fh, uint64_t page)
{
	if (fh != touch.fh || page != touch.page ||
	    !atomic_exchange(&touch.armed, false))
		return;
	const int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	atomic_store(&touch.cleared, fd >= 0 && write(fd, "1", 1) == 1 ? 1 : -errno);
	if (fd >= 0)
		close(fd);
}

/* A pin's lone page is read once through the mapping by the thread that copies it in
 * (vm/load.c, load_touch), so that the pinning thread does not pay each page's first
 * access in turn (dear where the host shadows the page tables): its accessed bit is set
 * again after the copy, before this thread reads it. */
Test(vm, a_pins_page_is_read_where_it_is_copied_in)
{
	struct fixture f = {0};
	rp_mapping *m;

	if (access("/proc/self/clear_refs", W_OK) != 0)
		cr_skip_test("/proc/self/clear_refs: %s (a kernel without "
		             "CONFIG_PROC_PAGE_MONITOR)", strerror(errno));
	fixture_file(&f, "vm_pin_touch", 16 * PG, 41, 0);
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ, &m), 0, "%s", rp_errmsg());
	touch.fh = f.fh;
	touch.page = 5;
	atomic_store(&touch.cleared, 0);
	atomic_store(&touch.armed, true);
	vm_copy_out_hook = touch_hook;
	cr_assert_eq(rp_pin(m, 5 * PG, PG), 0, "%s", rp_errmsg());
	vm_copy_out_hook = NULL;
	cr_assert(!atomic_load(&touch.armed), "the pin's page was not copied into the mapping");
	cr_assert_eq(atomic_load(&touch.cleared), 1, "clear_refs: %s",
	             strerror(-atomic_load(&touch.cleared)));
	long kb = tu_smaps_kb(rp_mapping_addr(m), "Referenced");

	cr_assert_eq(kb, (long)(PG / 1024), "%ld KiB of the mapping read since the copy, not %ld",
	             kb, (long)(PG / 1024));
	tu_expect_fill((char *)rp_mapping_addr(m) + 5 * PG, PG, 41, 5 * PG);
	cr_assert_eq(rp_unpin(m, 5 * PG, PG), 0, "%s", rp_errmsg());
	rp_unmap(m);
	fixture_close(&f);
}

/* A queue of 2 slots and a pin of many lone pages and runs: the loads wait in the service
 * thread's backlog, the slots a reap frees are refilled, their loads started together,
 * before the completions are finished (vm/service.c, reap), and the 4 bounce pages run
 * out now and then, when a page is read into the alias instead. Every page must arrive
 * whole, and pinned pages must be mapped. */
Test(vm, a_pin_far_deeper_than_the_queue_loads_every_page)
{
	struct fixture f = {0};
	rp_config cfg;
	rp_mapping *m;
	rp_range r[600];
	struct rp_stats s;
	uint64_t rng = 9;

	tu_config_init(&cfg);
	cfg.ram_size = 64ul << 20;
	cfg.hugepages = 2;
	cfg.queue_depth = 2;
	cr_assert_eq(rp_engine_open(&cfg, &f.eng), 0, "%s", rp_errmsg());
	f.path = tu_scratch_file("vm_pin_deep", 16 << 20, 37);
	cr_assert_eq(rp_store_open(f.eng, f.path, O_RDONLY, &f.st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(f.st, &f.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(f.fh, 0, 16 << 20, PROT_READ, &m), 0, "%s", rp_errmsg());
	/* Lone pages in the first 12 MiB (odd pages only, so none touch), runs after. */
	for (int i = 0; i < 500; i++)
		r[i] = (rp_range){(2 * (tu_rand(&rng) % 1536) + 1) * PG, PG};
	for (int i = 500; i < 600; i++)
		r[i] = (rp_range){(12ul << 20) + (uint64_t)(i - 500) * 10 * PG, 8 * PG};
	struct vm *vm = vm_test_vm(f.fh);
	const uint64_t refilled = vm_service_refilled(vm);

	cr_assert_eq(rp_pinv(m, r, 600), 0, "%s", rp_errmsg());
	/* The loads that waited for slots were started after reaps, with the queue held */
	cr_assert_gt(vm_service_refilled(vm), refilled, "no load started with the queue held");
	rp_stats(f.eng, &s);
	cr_assert_eq(s.faults, 0, "pinning faults nothing");
	cr_assert_eq(s.load_errors, 0);
	for (int i = 0; i < 600; i++)
		tu_expect_fill((char *)rp_mapping_addr(m) + r[i].off, r[i].len, 37, r[i].off);
	rp_stats(f.eng, &s);
	cr_assert_eq(s.faults, 0, "pinned pages are mapped: %llu faults",
	             (unsigned long long)s.faults);
	rp_unmap(m); /* drops the pins */
	fixture_close(&f);
}

/* The device writes a load's pages through the engine's alias mapping, which leaves them
 * mapped there too; once the loads are done, only the user's mappings may map them (so
 * RSS counts a page once). Batched with process_madvise, and with madvise per range. */
static void loads_leave_the_alias(unsigned flags)
{
	struct fixture f = {0};
	rp_mapping *m;
	rp_range r[100];
	uint64_t rng = 9;

	fixture_file(&f, flags ? "vm_zap_madvise" : "vm_zap", 4 << 20, 32, flags);
	cr_assert_eq(rp_map(f.fh, 0, 4 << 20, PROT_READ, &m), 0);
	for (int i = 0; i < 100; i++)
		r[i] = (rp_range){(tu_rand(&rng) % 512) * PG, PG};
	cr_assert_eq(rp_pinv(m, r, 100), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_pin(m, 2 << 20, 2 << 20), 0, "%s", rp_errmsg());
	const char *user = rp_mapping_addr(m);

	cr_assert_geq(tu_present_pages(user, 4 << 20), 512 + 90, "the pinned pages are mapped");
	cr_assert_eq(tu_present_pages(vm_test_alias(f.fh), 4 << 20), 0, "none stays in the alias");
	for (int i = 0; i < 100; i++)
		cr_assert_eq(rp_unpin(m, r[i].off, PG), 0);
	cr_assert_eq(rp_unpin(m, 2 << 20, 2 << 20), 0);
	rp_unmap(m);
	fixture_close(&f);
}

/* A writeout writes its small runs from its service thread's staging area (copied from
 * the memfd with pread), so the alias maps none of their pages; a run larger than the
 * area (2 MiB here), and every run with VM_NO_BOUNCE, goes from the alias. The store
 * holds the bytes either way, and after an atomic writeout too. */
static void writeout_from_staging_or_alias(unsigned flags)
{
	rp_engine *eng = open_engine(64ul << 20, flags);
	char *path = tu_scratch_file(flags ? "vm_wstage_alias" : "vm_wstage", 8 << 20, 41);
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	uint64_t rng = 3, pages[20];
	char *big = malloc(2 << 20), back[PG];

	cr_assert(big);
	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fh, 0, 8 << 20, PROT_READ | PROT_WRITE, &m), 0, "%s", rp_errmsg());
	char *user = rp_mapping_addr(m);

	for (int i = 0; i < 20; i++) { /* in the first 4 MiB, one page apart at least */
		pages[i] = (uint64_t)i * 51 + tu_rand(&rng) % 50;
		memset(user + pages[i] * PG, 'a' + i, PG);
	}
	const int wo = RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC;

	cr_assert_eq(rp_writeout(fh, wo), 0, "%s", rp_errmsg());
	const unsigned in_alias = tu_present_pages(vm_test_alias(fh), 4 << 20);

	if (flags)
		cr_assert_eq(in_alias, 20, "the writes went from the alias");
	else
		cr_assert_eq(in_alias, 0, "a staged write mapped its pages in the alias");
	tu_fill(big, 2 << 20, 43, 0);
	memcpy(user + (5 << 20), big, 2 << 20);
	cr_assert_eq(rp_writeout(fh, wo), 0, "%s", rp_errmsg());
	cr_assert_eq(tu_present_pages(vm_test_alias(fh) + (5 << 20), 2 << 20), 512,
	             "a run larger than the staging area goes from the alias");
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(pread(fd, back, PG, (off_t)(pages[i] * PG)), (ssize_t)PG);
		cr_assert(back[0] == 'a' + i && back[PG - 1] == 'a' + i, "page %lu",
		          (unsigned long)pages[i]);
	}
	char *got = malloc(2 << 20);

	cr_assert_eq(pread(fd, got, 2 << 20, 5 << 20), 2 << 20);
	cr_assert(memcmp(got, big, 2 << 20) == 0);
	/* An atomic writeout logs the pages from the same copies it writes in place from
	 * (from the alias without staging, and for the 2 MiB run). */
	for (int i = 0; i < 20; i++) {
		memset(back, 'A' + i, PG);
		cr_assert_eq(rp_write(fh, pages[i] * PG, back, PG), (ssize_t)PG, "%s", rp_errmsg());
	}
	tu_fill(big, 2 << 20, 47, 0);
	cr_assert_eq(rp_write(fh, 5 << 20, big, 2 << 20), 2 << 20, "%s", rp_errmsg());
	cr_assert_eq(rp_writeout(fh, wo | RP_WRITEOUT_ATOMIC), 0, "%s", rp_errmsg());
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(pread(fd, back, PG, (off_t)(pages[i] * PG)), (ssize_t)PG);
		cr_assert(back[0] == 'A' + i && back[PG - 1] == 'A' + i, "page %lu",
		          (unsigned long)pages[i]);
	}
	cr_assert_eq(pread(fd, got, 2 << 20, 5 << 20), 2 << 20);
	cr_assert(memcmp(got, big, 2 << 20) == 0);
	close(fd);
	free(got);
	free(big);
	rp_unmap(m);
	cr_assert_eq(rp_fileh_close(fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_close(st), 0, "%s", rp_errmsg());
	rp_engine_close(eng);
	char log[4096];

	snprintf(log, sizeof(log), "%s-rplog", path);
	(void)unlink(log);
	tu_unlink(path);
}

Test(vm, a_writeout_writes_small_runs_from_its_staging_area)
{
	writeout_from_staging_or_alias(0);
}

Test(vm, without_staging_a_writeout_writes_from_the_alias)
{
	writeout_from_staging_or_alias(VM_NO_BOUNCE);
}

/* rp_pin's promise (the pages are mapped) holds when, between its walk and its last pass,
 * the reclaim hand unmaps the page and a fault in another mapping marks it referenced
 * again: that fault maps it there only. vm_pin_hook runs both in between. */
static struct {
	rp_engine *eng;
	char *a, *a2; /* the pin's mapping and another */
	bool unmapped; /* the hand did unmap the page from the pin's mapping */
} pin_race;

#define PIN_RACE_PAGE 60

static void pin_race_hook(struct rp_fileh *fh)
{
	(void)fh;
	/* Every page is referenced: the hand clears each bit, unmapping the page, and takes
	 * the first page it meets again, page 0 (the page pinned comes last). */
	cr_assert_eq(rp_reclaim(pin_race.eng, 1), 1, "%s", rp_errmsg());
	pin_race.unmapped = tu_present_pages(pin_race.a + PIN_RACE_PAGE * PG, PG) == 0;
	volatile char c = pin_race.a2[PIN_RACE_PAGE * PG]; /* mapped in a2 only, referenced */

	(void)c;
}

Test(vm, a_page_unmapped_by_reclaim_while_being_pinned_is_mapped_again)
{
	struct fixture f = {0};
	rp_mapping *m, *m2;

	fixture_file(&f, "vm_pin_race", 1 << 20, 43, 0);
	cr_assert_eq(rp_map(f.fh, 0, 1 << 20, PROT_READ, &m), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(f.fh, 0, 1 << 20, PROT_READ, &m2), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_advise(m, 0, 1 << 20, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_advise(m2, 0, 1 << 20, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	pin_race.eng = f.eng;
	pin_race.a = rp_mapping_addr(m);
	pin_race.a2 = rp_mapping_addr(m2);
	for (int i = 0; i < 50; i++)
		tu_expect_fill(pin_race.a + i * PG, PG, 43, i * PG);
	tu_expect_fill(pin_race.a + PIN_RACE_PAGE * PG, PG, 43, PIN_RACE_PAGE * PG);
	vm_pin_hook = pin_race_hook;
	int r = rp_pin(m, PIN_RACE_PAGE * PG, PG);

	vm_pin_hook = NULL;
	cr_assert_eq(r, 0, "%s", rp_errmsg());
	cr_assert(pin_race.unmapped, "the reclaim hand did not unmap the page: no race to test");
	cr_assert_eq(tu_present_pages(pin_race.a + PIN_RACE_PAGE * PG, PG), 1,
	             "the pinned page is not mapped in the pin's mapping");
	tu_expect_fill(pin_race.a + PIN_RACE_PAGE * PG, PG, 43, PIN_RACE_PAGE * PG);
	cr_assert_eq(rp_unpin(m, PIN_RACE_PAGE * PG, PG), 0, "%s", rp_errmsg());
	rp_unmap(m2);
	rp_unmap(m);
	fixture_close(&f);
}

Test(vm, loads_leave_the_alias_in_one_call)
{
	loads_leave_the_alias(0);
}

Test(vm, loads_leave_the_alias_range_by_range)
{
	loads_leave_the_alias(VM_FORCE_MADVISE);
}

/* A fault's own page is read into a service thread's bounce page and copied into the RAM
 * handle; with none free (VM_NO_BOUNCE: none at all) it is read into the alias. Either
 * way every byte is the store's, each page loads once, another mapping of the range shows
 * the page without loading it, and nothing stays mapped in the alias. */
static void faults_through_bounce_or_alias(unsigned flags)
{
	struct fixture f = {0};
	rp_mapping *m, *m2;
	uint64_t rng = 5, seen[512] = {0}, n = 0;

	fixture_file(&f, flags ? "vm_nobounce" : "vm_bounce", 2 << 20, 44, flags);
	cr_assert_eq(rp_map(f.fh, 0, 2 << 20, PROT_READ, &m), 0);
	cr_assert_eq(rp_map(f.fh, 0, 2 << 20, PROT_READ, &m2), 0);
	cr_assert_eq(rp_advise(m, 0, 2 << 20, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	const char *a = rp_mapping_addr(m), *b = rp_mapping_addr(m2);

	for (int i = 0; i < 60; i++) {
		uint64_t p = tu_rand(&rng) % 512;

		tu_expect_fill(a + p * PG, PG, 44, p * PG);
		n += !seen[p];
		seen[p] = 1;
	}
	cr_assert_eq(tu_stats(f.eng).pages_loaded, n);
	for (uint64_t p = 0; p < 512; p++)
		if (seen[p])
			tu_expect_fill(b + p * PG, PG, 44, p * PG);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, n, "the second mapping loaded nothing");
	/* The last load woke this thread before it finished (the alias is unmapped at its
	 * very end, under the handle's lock): take the lock once to wait for that. */
	uint64_t dirty;

	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
	cr_assert_eq(tu_present_pages(vm_test_alias(f.fh), 2 << 20), 0, "none stays in the alias");
	rp_unmap(m2);
	rp_unmap(m);
	fixture_close(&f);
}

Test(vm, a_faults_page_is_read_through_a_bounce_page)
{
	faults_through_bounce_or_alias(0);
}

Test(vm, a_faults_page_is_read_into_the_alias_without_bounce_pages)
{
	faults_through_bounce_or_alias(VM_NO_BOUNCE);
}

Test(vm, willneed_loads_in_the_background)
{
	struct fixture f = {0};
	rp_mapping *m;
	struct rp_stats s;

	fixture_file(&f, "vm_willneed", 1 << 20, 32, 0);
	cr_assert_eq(rp_map(f.fh, 0, 1 << 20, PROT_READ, &m), 0);
	cr_assert_eq(rp_advise(m, 0, 1 << 20, RP_ADVICE_WILLNEED), 0, "%s", rp_errmsg());
	/* rp_pin waits for the loads WILLNEED started instead of starting its own. */
	cr_assert_eq(rp_pin(m, 0, 1 << 20), 0);
	rp_stats(f.eng, &s);
	cr_assert_eq(s.pages_loaded, 256);
	cr_assert_eq(s.faults, 0);
	tu_expect_fill(rp_mapping_addr(m), 1 << 20, 32, 0);
	cr_assert_eq(rp_advise(m, 0, PG, 77), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "advice 77"), "%s", rp_errmsg());
	rp_unmap(m); /* drops the pins */
	fixture_close(&f);
}

Test(vm, invalidate_reloads_what_the_store_holds_now)
{
	struct fixture f = {0};
	rp_mapping *m;
	char page[PG];

	fixture_file(&f, "vm_inval", 16 * PG, 41, 0);
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ, &m), 0);
	char *a = rp_mapping_addr(m);

	tu_expect_fill(a, 16 * PG, 41, 0);
	/* The store changes from outside. */
	int fd = open(f.path, O_WRONLY);

	tu_fill(page, PG, 42, 0);
	cr_assert_eq(pwrite(fd, page, PG, 3 * PG), (ssize_t)PG);
	fsync(fd);
	close(fd);
	tu_expect_fill(a + 3 * PG, PG, 41, 3 * PG); /* still the cached bytes */
	cr_assert_eq(rp_pin(m, 3 * PG, PG), 0);
	cr_assert_eq(rp_invalidate(f.fh, 0, 16 * PG), -EBUSY, "a pinned page is not dropped");
	cr_assert_eq(rp_unpin(m, 3 * PG, PG), 0);
	cr_assert_eq(rp_invalidate(f.fh, 0, 16 * PG), 0, "%s", rp_errmsg());
	tu_expect_fill(a + 3 * PG, PG, 42, 0);
	tu_expect_fill(a + 4 * PG, PG, 41, 4 * PG);
	rp_unmap(m);
	fixture_close(&f);
}

Test(vm, invalidate_during_a_load_never_shows_the_stale_bytes)
{
	rp_engine *eng = open_engine(16ul << 20, 0);
	struct counting_store cs = {.async = true, .fail_page = -1, .delay = 100000};
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;

	cr_assert_eq(rp_store_create(eng, &cs_ops, &cs, 16 * PG, &st), 0);
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_map(fh, 0, 16 * PG, PROT_READ, &m), 0);
	cr_assert_eq(rp_advise(m, 0, 16 * PG, RP_ADVICE_WILLNEED), 0);
	/* The load is in flight (100 ms): invalidating now discards what it brings. */
	cr_assert_eq(rp_invalidate(fh, 0, 16 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_pin(m, 0, 16 * PG), 0, "%s", rp_errmsg());
	cr_assert_geq(atomic_load(&cs.loads), 2, "the range was loaded again after the invalidate");
	tu_expect_fill(rp_mapping_addr(m), 16 * PG, 77, 0);
	rp_unmap(m);
	rp_fileh_close(fh);
	rp_store_close(st);
	rp_engine_close(eng);
}

/* ---------------------------------------------------------------- lifetimes, engines */

/* An invalidate that comes while a load's completion is on its way in (the store's old
 * bytes read, the page not yet in) discards the load: the old bytes never show. The
 * store's first load completes asynchronously, from this thread, and the hook invalidates
 * just before the completion takes the handle's lock. (vm_load_finish read the stale
 * flag before that lock, and such a page came in with the old bytes: the stress test
 * saw it once in a soak.) */
static struct {
	rp_fileh *fh;
	char *data;
	rp_load_token *tok;
	void *buf;
	uint64_t off;
	size_t len;
	atomic_int pending;
	bool armed;
} lr;

static int lr_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	(void)ctx;
	if (atomic_load(&lr.pending) == 0) { /* the first: completed by the test */
		lr.tok = tok;
		lr.buf = buf;
		lr.off = off;
		lr.len = len;
		atomic_store(&lr.pending, 1);
		return RP_LOAD_ASYNC;
	}
	memcpy(buf, lr.data + off, len);
	return 0;
}

static void lr_hook(struct rp_fileh *fh)
{
	if (!lr.armed || fh != lr.fh)
		return;
	lr.armed = false;
	memset(lr.data + 5 * PG, 'n', PG); /* the store changes behind ringpager's back */
	cr_assert_eq(rp_invalidate(lr.fh, 5 * PG, PG), 0, "%s", rp_errmsg());
}

Test(vm, an_invalidate_while_a_load_completes_discards_the_load)
{
	static const rp_store_ops ops = {.load = lr_load};
	rp_engine *eng = open_engine(16ul << 20, 0);
	rp_store *st;
	rp_mapping *m;

	memset(&lr, 0, sizeof(lr));
	lr.data = malloc(16 * PG);
	memset(lr.data, 'o', 16 * PG);
	cr_assert_eq(rp_store_create(eng, &ops, NULL, 16 * PG, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &lr.fh), 0);
	cr_assert_eq(rp_map(lr.fh, 0, 16 * PG, PROT_READ, &m), 0);
	cr_assert_eq(rp_advise(m, 0, 16 * PG, RP_ADVICE_RANDOM), 0);
	cr_assert_eq(rp_advise(m, 5 * PG, PG, RP_ADVICE_WILLNEED), 0, "%s", rp_errmsg());
	for (int i = 0; i < 10000 && !atomic_load(&lr.pending); i++)
		usleep(1000);
	cr_assert(atomic_load(&lr.pending), "the WILLNEED load never reached the store");
	memcpy(lr.buf, lr.data + lr.off, lr.len); /* the old bytes */
	lr.armed = true;
	vm_load_finish_hook = lr_hook;
	rp_load_done(lr.tok, 0);
	vm_load_finish_hook = NULL;
	cr_assert(!lr.armed, "the hook did not run");
	const char *a = rp_mapping_addr(m);

	cr_assert_eq(a[5 * PG + 7], 'n', "the page shows the store's bytes from before the "
	                                 "invalidate");
	cr_assert_eq(rp_unmap(m), 0);
	cr_assert_eq(rp_fileh_close(lr.fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	free(lr.data);
}

/* A fault's page is copied into its mapping with the handle's lock dropped (vm/load.c,
 * load_copy_out); vm_copy_out_hook runs between the copy and the lock. An invalidate of
 * the page then waits for the load to finish, and a write-protect fault on it makes the
 * page finish writable and dirty. In fault_mode=sigbus the hook runs in the faulting
 * thread's signal handler: it only posts a semaphore and sleeps. */
static struct {
	rp_fileh *fh;
	rp_mapping *m;
	const char *path;
	atomic_bool armed, inval_done;
	bool inval_waited; /* the invalidate had not returned while the copy was held */
	int inval_err;
	sem_t go;
} co;

static void *co_invalidate(void *arg)
{
	(void)arg;
	char buf[PG];
	int fd = open(co.path, O_WRONLY);

	while (sem_wait(&co.go) < 0)
		;
	tu_fill(buf, PG, 62, 3 * PG); /* the store changes behind ringpager's back */
	cr_assert_eq(pwrite(fd, buf, PG, 3 * PG), PG);
	close(fd);
	co.inval_err = rp_invalidate(co.fh, 3 * PG, PG);
	atomic_store(&co.inval_done, true);
	return NULL;
}

/* The hooks' part: at the armed copy of page 3, lets the other thread go, holds the copy
 * 50 ms, and records in *waited whether that thread's call had not returned (*done). */
static void co_hold_copy(struct rp_fileh *fh, uint64_t page, atomic_bool *done, bool *waited)
{
	if (fh != co.fh || page != 3 || !atomic_exchange(&co.armed, false))
		return;
	const struct timespec ts = {0, 50 * 1000 * 1000};

	sem_post(&co.go);
	nanosleep(&ts, NULL);
	*waited = !atomic_load(done);
}

static void co_inval_hook(struct rp_fileh *fh, uint64_t page)
{
	co_hold_copy(fh, page, &co.inval_done, &co.inval_waited);
}

Test(vm, an_invalidate_waits_for_a_page_being_copied_into_its_mapping)
{
	struct fixture f = {0};
	pthread_t t;

	fixture_file(&f, "vm_copyout_inval", 16 * PG, 61, 0);
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ, &co.m), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_advise(co.m, 0, 16 * PG, RP_ADVICE_RANDOM), 0);
	co.fh = f.fh;
	co.path = f.path;
	atomic_store(&co.inval_done, false);
	co.inval_waited = false;
	cr_assert_eq(sem_init(&co.go, 0, 0), 0);
	cr_assert_eq(pthread_create(&t, NULL, co_invalidate, NULL), 0);
	atomic_store(&co.armed, true);
	vm_copy_out_hook = co_inval_hook;
	const char *a = rp_mapping_addr(co.m);
	const char first = a[3 * PG + 9]; /* the old bytes, or the new ones loaded again */

	pthread_join(t, NULL);
	vm_copy_out_hook = NULL;
	cr_assert(!atomic_load(&co.armed), "the page was not copied into the mapping");
	cr_assert(co.inval_waited, "rp_invalidate returned while the page was being copied");
	cr_assert_eq(co.inval_err, 0, "%s", rp_errmsg());
	char old[PG], now[PG];

	tu_fill(old, PG, 61, 3 * PG);
	tu_fill(now, PG, 62, 3 * PG);
	cr_assert(first == old[9] || first == now[9]);
	tu_expect_fill(a + 3 * PG, PG, 62, 3 * PG); /* after the invalidate: the store's */
	sem_destroy(&co.go);
	cr_assert_eq(rp_unmap(co.m), 0);
	fixture_close(&f);
}

static void co_wp_hook(struct rp_fileh *fh, uint64_t page)
{
	if (fh != co.fh || page != 3 || !atomic_exchange(&co.armed, false))
		return;
	vm_test_wp_fault(co.m, 3); /* a write to the page, write-protected by the copy */
}

/* An engine with the dirty tracking asked for and fault_mode=uffd, over a new 16-page
 * file (*path) of pattern `seed`, its handle and a writable mapping of it with RANDOM
 * advice (one page a fault) in co. Skips where the tracking is not available. */
static rp_engine *co_open(const char *tracking, int seed, char **path, rp_store **st)
{
	rp_config cfg;
	rp_engine *eng;

	*path = tu_scratch_file("vm_copyout", 16 * PG, seed);
	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "dirty_tracking", tracking), 0);
	cr_assert_eq(rp_config_set(&cfg, "fault_mode", "uffd"), 0);
	if (rp_engine_open(&cfg, &eng) != 0) {
		tu_unlink(*path);
		cr_skip_test("dirty_tracking=%s: %s", tracking, rp_errmsg());
	}
	cr_assert_eq(rp_store_open(eng, *path, O_RDWR, st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(*st, &co.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(co.fh, 0, 16 * PG, PROT_READ | PROT_WRITE, &co.m), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(rp_advise(co.m, 0, 16 * PG, RP_ADVICE_RANDOM), 0);
	return eng;
}

/* The byte at `off` of the file at path. */
static char file_byte(const char *path, off_t off)
{
	char b = 0;
	const int fd = open(path, O_RDONLY);

	cr_assert_eq(pread(fd, &b, 1, off), 1, "%s: %s", path, strerror(errno));
	close(fd);
	return b;
}

/* The one dirty page written out, everything closed, and the file holds `ch` at `off`. */
static void co_close_expect(rp_engine *eng, rp_store *st, char *path, off_t off, char ch)
{
	uint64_t dirty = 0;

	cr_assert_eq(rp_fileh_dirty(co.fh, &dirty), 0);
	cr_assert_eq(dirty, 1, "%" PRIu64 " pages dirty", dirty);
	cr_assert_eq(rp_writeout(co.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(rp_unmap(co.m), 0);
	cr_assert_eq(rp_fileh_close(co.fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	cr_assert_eq(file_byte(path, off), ch, "the write did not reach the file");
	tu_unlink(path);
}

Test(vm, a_write_to_a_page_being_copied_into_its_mapping_finds_it_writable_and_dirty)
{
	rp_store *st;
	struct rp_stats s0, s1;
	char *path;
	rp_engine *eng = co_open("wp_sync", 63, &path, &st);
	char *a = rp_mapping_addr(co.m);

	atomic_store(&co.armed, true);
	vm_copy_out_hook = co_wp_hook;
	tu_expect_fill(a + 3 * PG, PG, 63, 3 * PG); /* a read fault: copied write-protected */
	vm_copy_out_hook = NULL;
	cr_assert(!atomic_load(&co.armed), "the page was not copied into the mapping");
	cr_assert_eq(rp_stats(eng, &s0), 0);
	a[3 * PG + 5] = 'w';
	cr_assert_eq(rp_stats(eng, &s1), 0);
	cr_assert_eq(s1.wp_faults, s0.wp_faults, "the write took a write-protect fault again");
	co_close_expect(eng, st, path, 3 * PG + 5, 'w');
}

/* Under wp_async a collection protects the pages it finds written again. One that finds
 * a page written while it is being copied (mapped already, still LOADING) must not lose
 * the write: the page is dirty once in. The hook writes the page and collects, as another
 * thread's store and rp_fileh_stats would (rp_fileh_dirty waits for the copy); in
 * fault_mode=uffd, where the hook runs on a service thread (the copy and the collection
 * are the same in sigbus mode). */
static uint64_t co_dirty_during;

static void co_collect_hook(struct rp_fileh *fh, uint64_t page)
{
	struct rp_fileh_stats st;

	if (fh != co.fh || page != 3 || !atomic_exchange(&co.armed, false))
		return;
	((volatile char *)rp_mapping_addr(co.m))[3 * PG + 6] = 'c';
	cr_assert_eq(rp_fileh_stats(co.fh, &st), 0, "%s", rp_errmsg());
	co_dirty_during = st.dirty_pages;
}

Test(vm, a_write_collected_while_its_page_is_being_copied_into_its_mapping_is_kept)
{
	rp_store *st;
	char *path;
	rp_engine *eng = co_open("wp_async", 64, &path, &st);
	const char *a = rp_mapping_addr(co.m);

	atomic_store(&co.armed, true);
	vm_copy_out_hook = co_collect_hook;
	/* The fences keep the fault between the two stores to the hook. */
	atomic_signal_fence(memory_order_seq_cst);
	const char seen = a[3 * PG + 6]; /* a read fault: copied write-protected */

	atomic_signal_fence(memory_order_seq_cst);
	vm_copy_out_hook = NULL;
	cr_assert(!atomic_load(&co.armed), "the page was not copied into the mapping");
	cr_assert_eq(co_dirty_during, 0, "a page not in yet counted dirty");
	cr_assert(seen == 'c', "the read saw %d, not the write made before it returned", seen);
	co_close_expect(eng, st, path, 3 * PG + 6, 'c'); /* lost, it would count 0 pages */
}

/* A write made to a page while it is being copied, then a writeout: the writeout waits for
 * the copy and writes the page (without the wait it found nothing dirty yet). Another
 * thread writes and writes out while the hook holds the copy for 50 ms. */
static struct {
	atomic_bool returned; /* the writeout returned */
	bool waited;          /* ... not before the hook let the copy go */
	int err;
	char in_file;         /* the byte in the file right after the writeout */
} cw;

static void *co_write_out(void *arg)
{
	char *path = arg;

	while (sem_wait(&co.go) < 0)
		;
	((volatile char *)rp_mapping_addr(co.m))[3 * PG + 7] = 'o';
	cw.err = rp_writeout(co.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC);
	atomic_store(&cw.returned, true);
	int fd = open(path, O_RDONLY);

	cr_assert_eq(pread(fd, &cw.in_file, 1, 3 * PG + 7), 1);
	close(fd);
	return NULL;
}

static void co_hold_hook(struct rp_fileh *fh, uint64_t page)
{
	co_hold_copy(fh, page, &cw.returned, &cw.waited);
}

Test(vm, a_writeout_after_a_write_to_a_page_being_copied_writes_it)
{
	rp_store *st;
	char *path;
	rp_engine *eng = co_open("wp_async", 65, &path, &st);
	const char *a = rp_mapping_addr(co.m);
	pthread_t t;

	cr_assert_eq(sem_init(&co.go, 0, 0), 0);
	cr_assert_eq(pthread_create(&t, NULL, co_write_out, path), 0);
	atomic_store(&co.armed, true);
	vm_copy_out_hook = co_hold_hook;
	atomic_signal_fence(memory_order_seq_cst);
	(void)((volatile const char *)a)[3 * PG]; /* a read fault: copied write-protected */
	atomic_signal_fence(memory_order_seq_cst);
	vm_copy_out_hook = NULL;
	pthread_join(t, NULL);
	sem_destroy(&co.go);
	cr_assert(!atomic_load(&co.armed), "the page was not copied into the mapping");
	cr_assert_eq(cw.err, 0, "%s", rp_errmsg());
	cr_assert(cw.waited, "the writeout returned while the page was being copied");
	cr_assert_eq(cw.in_file, 'o', "the writeout did not write the page written before it");
	uint64_t dirty = 1;

	cr_assert_eq(rp_fileh_dirty(co.fh, &dirty), 0);
	cr_assert_eq(dirty, 0, "%" PRIu64 " pages still dirty after MARKSTORED", dirty);
	cr_assert_eq(rp_unmap(co.m), 0);
	cr_assert_eq(rp_fileh_close(co.fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	tu_unlink(path);
}

/* A run of a proven stream's window is copied into its mapping with the handle's lock
 * dropped too (vm/load.c, load_copy_out). The hook holds the first run copied (a page
 * past 0: page 0 is the first fault's own) until another thread has taken the handle's
 * lock (5 s at most), and then writes a page of the run (mapped by the copy, still
 * LOADING) and collects, as a store and rp_fileh_stats of another thread would. The
 * other thread must not wait for the copy, and the write must be in the file after a
 * writeout (the load keeps it: `written`). The other thread asks for the handle's
 * counters, which takes the lock; in fault_mode=sigbus it first faults a page of another
 * mapping in, which it serves itself (in uffd mode the service thread held in the hook
 * may be the one that listens for it). */
static struct {
	rp_fileh *fh;
	rp_mapping *seq;
	const char *other;     /* a page of the other mapping (RANDOM advice) */
	atomic_bool armed, other_done;
	bool served;           /* the other thread got through while the run's copy was held */
	uint64_t page;         /* the run's first page */
	uint64_t dirty_during; /* the handle's dirty pages, counted from the hook */
	sem_t go;
} rc;

static void *rc_fault(void *arg)
{
	struct rp_fileh_stats st;

	(void)arg;
	while (sem_wait(&rc.go) < 0)
		;
	if (rc.other)
		tu_expect_fill(rc.other, PG, 67, 12 * (1 << 20) + 5 * PG);
	cr_assert_eq(rp_fileh_stats(rc.fh, &st), 0, "%s", rp_errmsg()); /* takes fh->lock */
	atomic_store(&rc.other_done, true);
	return NULL;
}

static void rc_hook(struct rp_fileh *fh, uint64_t page)
{
	struct rp_fileh_stats st;

	if (fh != rc.fh || page == 0 || !atomic_exchange(&rc.armed, false))
		return;
	rc.page = page;
	sem_post(&rc.go);
	for (int i = 0; i < 5000 && !atomic_load(&rc.other_done); i++) {
		const struct timespec ms = {0, 1000 * 1000};

		nanosleep(&ms, NULL);
	}
	rc.served = atomic_load(&rc.other_done);
	/* page + 1: the run's first page may be the window's marker, not mapped */
	((volatile char *)rp_mapping_addr(rc.seq))[(page + 1) * PG + 11] = 'r';
	cr_assert_eq(rp_fileh_stats(rc.fh, &st), 0, "%s", rp_errmsg());
	rc.dirty_during = st.dirty_pages;
}

Test(vm, a_window_run_being_copied_holds_up_no_fault_and_keeps_a_write)
{
	rp_config cfg;
	rp_engine *eng;
	rp_store *st;
	rp_mapping *rnd;
	pthread_t t;
	char *path = tu_scratch_file("vm_runcopy", 16 << 20, 67);

	tu_config_init(&cfg);
	cfg.ram_size = 64ul << 20;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "dirty_tracking", "wp_async"), 0);
	if (rp_engine_open(&cfg, &eng) != 0) {
		tu_unlink(path);
		cr_skip_test("dirty_tracking=wp_async: %s", rp_errmsg());
	}
	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &rc.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(rc.fh, 0, 8 << 20, PROT_READ | PROT_WRITE, &rc.seq), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(rp_map(rc.fh, 12 << 20, 4 << 20, PROT_READ, &rnd), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_advise(rnd, 0, 4 << 20, RP_ADVICE_RANDOM), 0);
	char mode[16] = "";

	cr_assert_eq(rp_config_get(&cfg, "fault_mode", mode, sizeof(mode)), 0);
	rc.other = strcmp(mode, "sigbus") == 0 ? (const char *)rp_mapping_addr(rnd) + 5 * PG : NULL;
	atomic_store(&rc.other_done, false);
	rc.served = false;
	cr_assert_eq(sem_init(&rc.go, 0, 0), 0);
	cr_assert_eq(pthread_create(&t, NULL, rc_fault, NULL), 0);
	atomic_store(&rc.armed, true);
	vm_copy_out_hook = rc_hook;
	atomic_signal_fence(memory_order_seq_cst);
	/* In order: the stream proves itself, and its later windows are copied. */
	for (uint64_t off = 0; off < (8 << 20); off += PG)
		(void)((volatile const char *)rp_mapping_addr(rc.seq))[off];
	atomic_signal_fence(memory_order_seq_cst);
	vm_copy_out_hook = NULL;
	const bool copied = !atomic_load(&rc.armed);

	if (!copied) { /* let the other thread go, to fail below rather than hang */
		rc.other = NULL;
		sem_post(&rc.go);
	}
	pthread_join(t, NULL);
	sem_destroy(&rc.go);
	cr_assert(copied, "no run of a window was copied into the mapping");
	cr_assert(rc.served, "the other thread waited for the copy of the run at page %" PRIu64,
	          rc.page);
	cr_assert_eq(rc.dirty_during, 0, "a page not in yet counted dirty");
	cr_assert_eq(rp_writeout(rc.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC), 0, "%s",
	             rp_errmsg());
	cr_assert_eq(rp_unmap(rnd), 0);
	cr_assert_eq(rp_unmap(rc.seq), 0);
	cr_assert_eq(rp_fileh_close(rc.fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	cr_assert_eq(file_byte(path, (off_t)((rc.page + 1) * PG + 11)), 'r',
	             "the write made while its run was copied is not in the file");
	tu_unlink(path);
}

Test(vm, closing_a_handle_with_live_mappings_is_refused)
{
	struct fixture f = {0};
	rp_mapping *m;

	fixture_file(&f, "vm_busy", 16 * PG, 51, 0);
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ, &m), 0);
	cr_assert_eq(rp_fileh_close(f.fh), -EBUSY);
	cr_assert(strstr(rp_errmsg(), "1 mapping"), "%s", rp_errmsg());
	cr_assert_eq(rp_store_close(f.st), -EBUSY);
	cr_assert(strstr(rp_errmsg(), "1 file handle"), "%s", rp_errmsg());
	tu_expect_fill(rp_mapping_addr(m), PG, 51, 0); /* nothing was torn down */
	cr_assert_eq(rp_unmap(m), 0);
	fixture_close(&f);
}

Test(vm, two_engines_in_one_process_work_independently)
{
	struct fixture a = {0}, b = {0};
	rp_mapping *ma, *mb;
	struct rp_stats sa, sb;

	fixture_file(&a, "vm_eng_a", 1 << 20, 61, 0);
	fixture_file(&b, "vm_eng_b", 1 << 20, 62, 0);
	cr_assert_eq(rp_map(a.fh, 0, 1 << 20, PROT_READ, &ma), 0);
	cr_assert_eq(rp_map(b.fh, 0, 1 << 20, PROT_READ, &mb), 0);
	tu_expect_fill(rp_mapping_addr(ma), 1 << 20, 61, 0);
	tu_expect_fill((char *)rp_mapping_addr(mb) + PG, PG, 62, PG);
	rp_stats(a.eng, &sa);
	rp_stats(b.eng, &sb);
	cr_assert_eq(sa.pages_loaded, 256);
	cr_assert_eq(sb.pages_loaded, 1);
	/* Closing one engine leaves the other serving. */
	rp_unmap(ma);
	fixture_close(&a);
	tu_expect_fill(rp_mapping_addr(mb), 1 << 20, 62, 0);
	rp_unmap(mb);
	fixture_close(&b);
}

Test(vm, engine_close_releases_what_was_left_open)
{
	struct fixture f = {0};
	rp_mapping *m;

	fixture_file(&f, "vm_leftopen", 16 * PG, 71, 0);
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ, &m), 0);
	tu_expect_fill(rp_mapping_addr(m), PG, 71, 0);
	rp_engine_close(f.eng); /* mapping, handle and store still open */
	tu_unlink(f.path);
}

/* ---------------------------------------------------------------- bad arguments */

Test(vm, bad_arguments_get_an_errno_and_a_message)
{
	struct fixture f = {0};
	rp_mapping *m = NULL;
	rp_store *st;

	fixture_file(&f, "vm_badargs", 16 * PG + 10, 81, 0);
	cr_assert_eq(rp_map(f.fh, 0, 0, PROT_READ, &m), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "length 0"), "%s", rp_errmsg());
	cr_assert_eq(rp_map(f.fh, 100, PG, PROT_READ, &m), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "offset 100"), "%s", rp_errmsg());
	cr_assert_eq(rp_map(f.fh, (1ull << 50) - PG, 2 * PG, PROT_READ, &m), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "limit"), "%s", rp_errmsg());
	/* past the handle's end: room to grow (tests/vm/test_size.c) */
	cr_assert_eq(rp_map(f.fh, 16 * PG, 2 * PG, PROT_READ, &m), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_unmap(m), 0);
	m = NULL;
	cr_assert_eq(rp_map(f.fh, 0, PG, PROT_EXEC, &m), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "prot"), "%s", rp_errmsg());
	cr_assert_eq(rp_map(NULL, 0, PG, PROT_READ, &m), -EINVAL);
	cr_assert_null(m);
	cr_assert_eq(rp_map(f.fh, 16 * PG, 1, PROT_READ, &m), 0, "the last, partial page maps");
	cr_assert_eq(rp_pin(m, 0, 0), -EINVAL);
	cr_assert_eq(rp_pin(m, 1, PG), -EINVAL);
	cr_assert_eq(rp_pin(m, 0, 2 * PG), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "passes the end of the mapping"), "%s", rp_errmsg());
	cr_assert_eq(rp_unpin(m, 0, PG), -EINVAL);
	cr_assert_eq(rp_invalidate(f.fh, 3, PG), -EINVAL);
	cr_assert_eq(rp_invalidate(f.fh, 0, 0), -EINVAL);
	cr_assert_eq(rp_invalidate(f.fh, 0, 18 * PG), -EINVAL);
	cr_assert_eq(rp_unmap(m), 0);
	cr_assert_eq(rp_store_open(f.eng, "/nonexistent/file", O_RDONLY, &st), -ENOENT);
	cr_assert(strstr(rp_errmsg(), "/nonexistent/file"), "%s", rp_errmsg());
	cr_assert_eq(rp_store_open(f.eng, f.path, O_WRONLY, &st), -EINVAL);
	cr_assert_eq(rp_store_create(f.eng, &cs_ops, NULL, 0, &st), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "size 0"), "%s", rp_errmsg());
	fixture_close(&f);
}

/* A path that is neither a file nor a block device is refused at once, whatever it is:
 * opening a FIFO must not wait for a writer. */
Test(vm, a_store_that_is_not_a_file_is_refused_without_blocking, .timeout = 60)
{
	struct fixture f = {0};
	char fifo[256];
	rp_store *st = NULL;

	f.eng = open_engine(16ul << 20, 0);
	snprintf(fifo, sizeof(fifo), "%s/vm-fifo-%d", tu_dir(), getpid());
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(rp_store_open(f.eng, fifo, O_RDONLY, &st), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "a FIFO"), "%s", rp_errmsg());
	cr_assert_eq(rp_store_open(f.eng, fifo, O_RDWR, &st), -EINVAL);
	unlink(fifo);
	cr_assert_eq(rp_store_open(f.eng, "/dev/zero", O_RDONLY, &st), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "character device"), "%s", rp_errmsg());
	cr_assert_eq(rp_store_open(f.eng, tu_dir(), O_RDONLY, &st), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "a directory"), "%s", rp_errmsg());
	cr_assert_null(st);
	fixture_close(&f);
}

/* Every page pinned: nothing can be evicted (tests/vm/test_reclaim.c has the rest). */
Test(vm, full_pool_gives_enomem_to_pin_and_sigbus_to_a_touch)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	tu_config_init(&cfg);
	cfg.ram_size = 16 * PG;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "reclaim_wait", "100"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	char *path = tu_scratch_file("vm_full", 64 * PG, 91);
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;

	cr_assert_eq(rp_store_open(eng, path, O_RDONLY, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_map(fh, 0, 64 * PG, PROT_READ, &m), 0);
	cr_assert_eq(rp_pin(m, 0, 16 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_pin(m, 16 * PG, PG), -ENOMEM);
	cr_assert(strstr(rp_errmsg(), "RAM pool is full"), "%s", rp_errmsg());
	volatile char *a = rp_mapping_addr(m);

	cr_assert(tu_touch_gets_sigbus(a + 20 * PG + 5), "a touch that finds the pool full");
	tu_expect_fill((const char *)a + 3 * PG, PG, 91, 3 * PG); /* resident pages serve on */
	/* Memory comes back: the same page loads. */
	cr_assert_eq(rp_unpin(m, 0, 16 * PG), 0);
	cr_assert_eq(rp_invalidate(fh, 0, 16 * PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_pin(m, 16 * PG, PG), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_invalidate(fh, 20 * PG, PG), 0);
	tu_expect_fill((const char *)a + 20 * PG, PG, 91, 20 * PG);
	rp_engine_close(eng);
	tu_unlink(path);
}

/* fault_spin_us: the service threads poll for a fault's read before sleeping. Off, or
 * at its longest, random touches from two threads and the main thread read the file's
 * bytes (faults arriving while a service thread spins), a pin beside them completes,
 * and no page is loaded twice. */
struct spin_arg {
	const struct tu_map *f;
	uint64_t seed;
};

static void *spin_toucher(void *p)
{
	struct spin_arg *a = p;
	uint64_t x = a->seed;

	for (int i = 0; i < 400; i++)
		tu_map_read(a->f, tu_rand(&x) % a->f->pages);
	return NULL;
}

static void fault_spin_run(const char *spin)
{
	rp_config c;
	rp_engine *eng;
	struct tu_map f;
	pthread_t th[2];
	struct spin_arg args[2];
	struct rp_stats st;
	char name[32];

	tu_config_init(&c);
	rp_config_set(&c, "ram_size", "64M");
	rp_config_set(&c, "readahead_max", "0");
	cr_assert_eq(rp_config_set(&c, "fault_spin_us", spin), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&c, &eng), 0, "%s", rp_errmsg());
	cr_expect(strstr(rp_engine_describe(eng), "fault_spin_us"), "%s", rp_engine_describe(eng));
	snprintf(name, sizeof(name), "spin%s", spin);
	tu_map_open(&f, eng, name, 8 << 20, 61, PROT_READ);
	for (int i = 0; i < 2; i++) {
		args[i] = (struct spin_arg){&f, 100 + (uint64_t)i};
		cr_assert_eq(pthread_create(&th[i], NULL, spin_toucher, &args[i]), 0);
	}
	cr_expect_eq(rp_pin(f.m, 4 << 20, 1 << 20), 0, "%s", rp_errmsg());
	for (uint64_t p = 1024; p < 1024 + 256; p += 37)
		tu_map_read(&f, p);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_expect_eq(rp_unpin(f.m, 4 << 20, 1 << 20), 0);
	st = tu_stats(eng);
	cr_expect_gt(st.faults, 0);
	cr_expect_eq(st.load_errors, 0);
	cr_expect_leq(st.pages_loaded, f.pages, "a page loaded twice");
	tu_map_close(&f);
}

Test(vm, fault_spin_off_serves_faults)
{
	fault_spin_run("0");
}

Test(vm, fault_spin_long_serves_faults_and_pins)
{
	fault_spin_run("10000");
}

/* Who listens on the userfaultfd (vm/service.c): a thread bound to one CPU is served by
 * that CPU's service thread alone; bound to another since, by the other's; unbound, by
 * the thread of the CPU it faulted on, or by all where that CPU is not read
 * (VM_NO_THREAD_CPU). Each phase's first fault comes from a CPU the set was not chosen
 * for, and is served by the thread that listens. The touches run on a thread of their own
 * that the test waits for with a deadline: a service thread left out of the set while it
 * should listen would leave a fault unserved for ever (a missing kick does that), and the
 * deadline turns the hang into a failure. */
#define LISTEN_PHASES 5

struct listen_run {
	char *a;
	const struct vm *vm;
	int cpu[LISTEN_PHASES]; /* bound to it in each phase, or -1: every CPU allowed */
	cpu_set_t all;
	uint64_t mask[LISTEN_PHASES]; /* listen_mask after each phase's touches ... */
	uint64_t listening[LISTEN_PHASES]; /* ... and the threads that then wait on the uffd */
	int failed_bind;
};

static void *listen_touch(void *arg)
{
	struct listen_run *r = arg;
	uint64_t page = 0;

	for (int ph = 0; ph < LISTEN_PHASES; ph++) {
		cpu_set_t set = r->all;

		if (r->cpu[ph] >= 0) {
			CPU_ZERO(&set);
			CPU_SET(r->cpu[ph], &set);
		}
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
			r->failed_bind = r->cpu[ph];
			return NULL;
		}
		usleep(3000); /* past LISTEN_ASK_NS: the next fault asks the affinity again */
		for (int i = 0; i < 64; i++, page++) {
			volatile char c = r->a[page * PG];

			(void)c;
		}
		r->mask[ph] = vm_test_listen_mask(r->vm);
		/* The threads that left or joined the set were kicked: each sleeps again with
		 * the descriptors the mask says, soon (a second at most, on a loaded machine). */
		for (int t = 0; t < 1000 && (r->listening[ph] = vm_listening(r->vm)) != r->mask[ph]; t++)
			usleep(1000);
	}
	return NULL;
}

static uint64_t service_bit(const struct vm *vm, int cpu)
{
	for (unsigned i = 0; i < vm_test_nsvc(vm); i++)
		if (vm_service_cpu(vm, i) == cpu)
			return 1ull << i;
	return 0;
}

static void listen_phases(unsigned flags)
{
	struct fixture f = {0};
	struct listen_run r = {.failed_bind = -2};
	rp_mapping *m;
	int cpus[2], n = 0;

	cr_assert_eq(sched_getaffinity(0, sizeof(r.all), &r.all), 0);
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &r.all))
			cpus[n++] = c;
	if (n < 2)
		cr_skip_test("needs two CPUs, this process may use one");
	fixture_file(&f, "vm_listen", 4 << 20, 61, flags);
	r.vm = vm_test_vm(f.fh);
	if (!vm_test_listen_chosen(r.vm)) {
		const bool self = vm_test_fault_self(r.vm);

		fixture_close(&f); /* its scratch file too */
		cr_skip_test("every service thread listens here (%s)",
		             self ? "fault_mode=sigbus" : "no UFFD_FEATURE_THREAD_ID");
	}
	const uint64_t all = vm_listen_all(r.vm), b0 = service_bit(r.vm, cpus[0]),
	               b1 = service_bit(r.vm, cpus[1]);

	cr_assert(b0 && b1 && b0 != b1, "one service thread per CPU");
	cr_assert_eq(vm_test_listen_mask(r.vm), all, "all listen before the first fault");
	cr_assert_eq(rp_map(f.fh, 0, 4 << 20, PROT_READ, &m), 0, "%s", rp_errmsg());
	/* RANDOM: each page its own fault, no readahead or fault-around */
	cr_assert_eq(rp_advise(m, 0, 4 << 20, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	r.a = rp_mapping_addr(m);
	const int phase_cpu[LISTEN_PHASES] = {cpus[1], cpus[0], cpus[1], -1, cpus[0]};

	memcpy(r.cpu, phase_cpu, sizeof(r.cpu));
	pthread_t th;
	struct timespec dl;

	cr_assert_eq(pthread_create(&th, NULL, listen_touch, &r), 0);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	int err = pthread_timedjoin_np(th, NULL, &dl);

	cr_assert_eq(err, 0, "faults not served within 20 s: %s", strerror(err));
	cr_assert_eq(r.failed_bind, -2, "cannot bind to CPU %d", r.failed_bind);
	tu_expect_fill(r.a, LISTEN_PHASES * 64 * PG, 61, 0);
	for (int ph = 0; ph < LISTEN_PHASES; ph++)
		cr_expect_eq(r.listening[ph], r.mask[ph],
		             "phase %d: the service threads waiting on the userfaultfd (0x%llx) are "
		             "not those chosen (0x%llx)",
		             ph, (unsigned long long)r.listening[ph], (unsigned long long)r.mask[ph]);
	cr_expect_eq(r.mask[0], b1, "bound to CPU %d: 0x%llx", cpus[1], (unsigned long long)r.mask[0]);
	cr_expect_eq(r.mask[1], b0, "bound to CPU %d since: 0x%llx", cpus[0],
	             (unsigned long long)r.mask[1]);
	cr_expect_eq(r.mask[2], b1, "and back: 0x%llx", (unsigned long long)r.mask[2]);
	if (flags & VM_NO_THREAD_CPU) {
		cr_expect_eq(r.mask[3], all, "unbound, its CPU not read, all listen: 0x%llx",
		             (unsigned long long)r.mask[3]);
		/* All for LISTEN_KEEP_NS after the unbound thread's last fault, then only its
		 * CPU's: which one it is depends on how long the phase took. */
		cr_expect(r.mask[4] == all || r.mask[4] == b0, "bound to CPU %d again: 0x%llx",
		          cpus[0], (unsigned long long)r.mask[4]);
	} else {
		/* the CPU it ran on when last asked: either, but one */
		cr_expect(r.mask[3] == b0 || r.mask[3] == b1,
		          "unbound, the thread of the CPU it faulted on listens: 0x%llx",
		          (unsigned long long)r.mask[3]);
		cr_expect_eq(r.mask[4], b0, "bound to CPU %d again, it alone: 0x%llx", cpus[0],
		             (unsigned long long)r.mask[4]);
	}
	rp_unmap(m);
	fixture_close(&f);
}

Test(vm, a_thread_bound_to_one_cpu_is_served_by_that_cpus_service_thread)
{
	listen_phases(0);
}

Test(vm, a_thread_whose_cpu_is_not_read_is_served_by_every_service_thread)
{
	listen_phases(VM_NO_THREAD_CPU);
}

/* Two unbound threads faulting within LISTEN_KEEP_NS make every service thread listen:
 * each served from the CPU it faulted on alone waits on another's service thread when it
 * moves or shares a CPU (vm/service.c, listener_of). Both fault from the same CPU here (each
 * bound there a moment, then allowed every CPU again), where the CPU of each alone would
 * make only that CPU's thread listen. */
struct unbound_touch {
	char *a;
	uint64_t first;
	int cpu;
	cpu_set_t all;
	int err;
};

static void *unbound_touch(void *arg)
{
	struct unbound_touch *u = arg;
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(u->cpu, &one);
	if ((u->err = pthread_setaffinity_np(pthread_self(), sizeof(one), &one)) ||
	    (u->err = pthread_setaffinity_np(pthread_self(), sizeof(u->all), &u->all)))
		return NULL;
	for (uint64_t p = u->first; p < u->first + 64; p++) {
		volatile char c = u->a[p * PG];

		(void)c;
	}
	return NULL;
}

Test(vm, two_unbound_threads_faulting_make_every_service_thread_listen)
{
	struct fixture f = {0};
	rp_mapping *m;
	cpu_set_t all;
	pthread_t th[2];

	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	if (CPU_COUNT(&all) < 2)
		cr_skip_test("needs two CPUs, this process may use one");
	/* The two threads' faults must fall within it, also on a loaded machine (it failed
	 * now and then with 100 ms while other tests reserved huge pages). */
	vm_listen_keep_ns = 30ull * 1000 * 1000 * 1000;
	fixture_file(&f, "vm_listen2", 4 << 20, 62, 0);
	const struct vm *vm = vm_test_vm(f.fh);

	if (!vm_test_listen_chosen(vm)) {
		fixture_close(&f);
		cr_skip_test("every service thread listens here");
	}
	cr_assert_eq(rp_map(f.fh, 0, 4 << 20, PROT_READ, &m), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_advise(m, 0, 4 << 20, RP_ADVICE_RANDOM), 0, "%s", rp_errmsg());
	int cpu = 0;

	while (!CPU_ISSET(cpu, &all))
		cpu++;
	struct unbound_touch u[2] = {{rp_mapping_addr(m), 0, cpu, all, 0},
	                             {rp_mapping_addr(m), 512, cpu, all, 0}};

	for (int i = 0; i < 2; i++) { /* one after the other: each alone on the CPU */
		cr_assert_eq(pthread_create(&th[i], NULL, unbound_touch, &u[i]), 0);
		pthread_join(th[i], NULL);
		cr_assert_eq(u[i].err, 0, "binding: %s", strerror(u[i].err));
	}
	cr_expect_eq(vm_test_listen_mask(vm), vm_listen_all(vm),
	             "two unbound threads faulted, yet only 0x%llx listen",
	             (unsigned long long)vm_test_listen_mask(vm));
	tu_expect_fill(rp_mapping_addr(m), 64 * PG, 62, 0);
	tu_expect_fill((char *)rp_mapping_addr(m) + 512 * PG, 64 * PG, 62, 512 * PG);
	rp_unmap(m);
	fixture_close(&f);
}

/* What a service thread reaped goes in the order of vm/reaped.h: a fault's own read (its
 * thread blocked on it) before a window's runs reaped with it or before it, and one that
 * completes while the thread finishes runs before the runs still waiting. */
static void expect_take(struct vm_reaped *r, const void *want, const char *what)
{
	struct rpio_cqe c;

	cr_assert(vm_reaped_take(r, &c), "nothing left; expected %s", what);
	cr_expect_eq(c.udata, want, "expected %s next", what);
}

Test(vm, a_faults_read_is_finished_before_the_runs_reaped_with_it)
{
	static struct vm_reaped r;
	int run[4], fault[3];
	struct rpio_cqe c;

	cr_assert_eq(vm_reaped_room(&r), VM_REAPED_MAX);
	cr_assert_not(vm_reaped_take(&r, &c));
	/* one reap: two runs, a fault's read, a run */
	vm_reaped_add(&r, &(struct rpio_cqe){.udata = &run[0]}, false);
	vm_reaped_add(&r, &(struct rpio_cqe){.udata = &run[1]}, false);
	vm_reaped_add(&r, &(struct rpio_cqe){.udata = &fault[0], .res = 4096}, true);
	vm_reaped_add(&r, &(struct rpio_cqe){.udata = &run[2]}, false);
	cr_assert(vm_reaped_take(&r, &c));
	cr_expect_eq(c.udata, &fault[0], "the fault's read, reaped third, is not finished first");
	cr_expect_eq(c.res, 4096);
	expect_take(&r, &run[0], "the oldest run");
	/* the next reap, while runs 1 and 2 wait: two faults' reads and a run */
	vm_reaped_add(&r, &(struct rpio_cqe){.udata = &run[3]}, false);
	vm_reaped_add(&r, &(struct rpio_cqe){.udata = &fault[1]}, true);
	vm_reaped_add(&r, &(struct rpio_cqe){.udata = &fault[2]}, true);
	expect_take(&r, &fault[1], "the first fault's read of the second reap");
	expect_take(&r, &fault[2], "its second");
	expect_take(&r, &run[1], "run 1");
	expect_take(&r, &run[2], "run 2");
	expect_take(&r, &run[3], "run 3");
	cr_expect_not(vm_reaped_take(&r, &c), "a completion left after all were taken");
	for (unsigned i = 0; i < VM_REAPED_MAX; i++)
		vm_reaped_add(&r, &(struct rpio_cqe){.udata = &run[i % 4]}, i == VM_REAPED_MAX - 1);
	cr_expect_eq(vm_reaped_room(&r), 0);
	expect_take(&r, &run[(VM_REAPED_MAX - 1) % 4], "the fault's read added last");
	cr_expect_eq(vm_reaped_room(&r), 1);
}

/* A service thread reads the userfaultfd between the finishes of one reap too
 * (vm/service.c, reap): a fault that comes while it copies pages into place does not wait
 * for the rest of the reap. One service thread and a pin of two lone pages; the hook holds
 * the first page's copy until another thread's fault, on a page of another mapping, waits
 * on the userfaultfd (5 s at most), and 2 ms more, past SVC_LOOK_NS. The service thread
 * must read that message before it leaves the reap, and the page must arrive whole.
 * fault_mode=sigbus has no messages to read: skipped there. */
static struct {
	rp_fileh *fh;
	const char *other; /* the page the other thread touches */
	uint64_t other_off; /* ... its offset in the file */
	int uffd;
	atomic_bool armed;
	bool waiting; /* its fault's message was seen waiting */
	sem_t go;
} fb;

static void *fb_fault(void *arg)
{
	(void)arg;
	while (sem_wait(&fb.go) < 0)
		;
	tu_expect_fill(fb.other, PG, 71, fb.other_off);
	return NULL;
}

static void fb_hook(struct rp_fileh *fh, uint64_t page)
{
	struct pollfd p = {.fd = fb.uffd, .events = POLLIN};
	const struct timespec ms = {0, 1000 * 1000}, two = {0, 2 * 1000 * 1000};

	(void)page;
	if (fh != fb.fh || !atomic_exchange(&fb.armed, false))
		return;
	sem_post(&fb.go);
	for (int i = 0; i < 5000 && !(fb.waiting = poll(&p, 1, 0) == 1); i++)
		nanosleep(&ms, NULL);
	nanosleep(&two, NULL);
}

Test(vm, a_fault_is_read_between_the_finishes_of_a_reap)
{
	rp_config cfg;
	rp_engine *eng;
	rp_store *st;
	rp_mapping *m, *other;
	pthread_t t;
	char *path = tu_scratch_file("vm_between", 4 << 20, 71);

	tu_config_init(&cfg);
	cfg.ram_size = 64ul << 20;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "fault_threads", "1"), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_open(eng, path, O_RDONLY, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fb.fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fb.fh, 0, 2 << 20, PROT_READ, &m), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fb.fh, 2 << 20, 2 << 20, PROT_READ, &other), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_advise(other, 0, 2 << 20, RP_ADVICE_RANDOM), 0);
	struct vm *vm = vm_test_vm(fb.fh);

	if (vm_test_fault_self(vm)) {
		rp_engine_close(eng);
		tu_unlink(path);
		cr_skip_test("fault_mode=sigbus: faults are served by the threads that make them");
	}
	fb.other = (const char *)rp_mapping_addr(other) + 7 * PG;
	fb.other_off = (2 << 20) + 7 * PG;
	fb.uffd = vm_test_uffd(vm);
	fb.waiting = false;
	cr_assert_eq(sem_init(&fb.go, 0, 0), 0);
	cr_assert_eq(pthread_create(&t, NULL, fb_fault, NULL), 0);
	const uint64_t before = vm_service_faults_between(vm);
	const rp_range r[2] = {{3 * PG, PG}, {300 * PG, PG}};

	atomic_store(&fb.armed, true);
	vm_copy_out_hook = fb_hook;
	atomic_signal_fence(memory_order_seq_cst);
	const int pinned = rp_pinv(m, r, 2);

	atomic_signal_fence(memory_order_seq_cst);
	vm_copy_out_hook = NULL;
	const bool copied = !atomic_exchange(&fb.armed, false);

	if (!copied) /* let the other thread go, to fail below rather than hang */
		sem_post(&fb.go);
	pthread_join(t, NULL);
	sem_destroy(&fb.go);
	cr_assert_eq(pinned, 0, "%s", rp_errmsg());
	cr_assert(copied, "no pinned page was copied into its mapping");
	cr_assert(fb.waiting, "the other thread's fault never waited on the userfaultfd");
	cr_assert_gt(vm_service_faults_between(vm), before,
	             "the fault that came while a page was copied was read after the reap");
	for (int i = 0; i < 2; i++) {
		tu_expect_fill((const char *)rp_mapping_addr(m) + r[i].off, PG, 71, r[i].off);
		cr_assert_eq(rp_unpin(m, r[i].off, PG), 0, "%s", rp_errmsg());
	}
	cr_assert_eq(rp_unmap(other), 0);
	cr_assert_eq(rp_unmap(m), 0);
	cr_assert_eq(rp_fileh_close(fb.fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	tu_unlink(path);
}
