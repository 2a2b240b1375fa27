/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_sigbus.c - fault_mode=sigbus (vm/sigbus.c): faults served on the faulting
 * thread, the process's SIGBUS handler and what it passes on, and the documented costs
 * (EFAULT from system calls, where uffd mode waits; wp_sync refused). The vm, dirty,
 * reclaim and readahead suites also run whole in this mode (tests/meson.build).
 */
#include "vm/testing.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ul

static rp_engine *open_spin(const char *mode, const char *spin_us, unsigned flags)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	rp_config_init(&cfg);
	cfg.internal_flags = flags;
	if (spin_us) /* polled, for as long as that says (fault_spin auto would also sleep) */
		cr_assert(rp_config_set(&cfg, "fault_spin_us", spin_us) == 0 &&
		              rp_config_set(&cfg, "fault_spin", "always") == 0,
		          "%s", rp_errmsg());
	cfg.ram_size = 32ul << 20;
	cfg.hugepages = 2;      /* off */
	cfg.readahead_max = 0; /* a load per fault, counted exactly */
	cr_assert_eq(rp_config_set(&cfg, "fault_mode", mode), 0, "%s", rp_errmsg());
	int err = rp_engine_open(&cfg, &eng);

	cr_assert_eq(err, 0, "rp_engine_open(fault_mode=%s): %s", mode, rp_errmsg());
	return eng;
}

static rp_engine *open_mode(const char *mode)
{
	return open_spin(mode, NULL, 0);
}

Test(sigbus, describe_names_who_serves_faults)
{
	rp_engine *a = open_mode("auto"), *s = open_mode("sigbus");

	cr_assert(strstr(rp_engine_describe(a), "served by service threads (fault_mode=uffd)"),
	          "%s", rp_engine_describe(a));
	cr_assert(strstr(rp_engine_describe(s), "served by the faulting thread (fault_mode=sigbus)"),
	          "%s", rp_engine_describe(s));
	rp_engine_close(s);
	rp_engine_close(a);
}

/* A custom store that remembers which thread called its load. */
struct who_store {
	pthread_t loader;
	_Atomic int loads;
};

static int who_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	struct who_store *w = ctx;

	(void)tok;
	w->loader = pthread_self();
	atomic_fetch_add(&w->loads, 1);
	tu_fill(buf, len, 5, off);
	return 0;
}

static const rp_store_ops who_ops = {.load = who_load};

static bool loaded_on_this_thread(const char *mode)
{
	rp_engine *eng = open_mode(mode);
	struct who_store w = {0};
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;

	cr_assert_eq(rp_store_create(eng, &who_ops, &w, 16 * PG, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(fh, 0, 16 * PG, PROT_READ, &m), 0, "%s", rp_errmsg());
	tu_expect_fill((const char *)rp_mapping_addr(m) + 3 * PG, PG, 5, 3 * PG);
	cr_assert_eq(atomic_load(&w.loads), 1);
	bool here = pthread_equal(w.loader, pthread_self());

	rp_unmap(m);
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	return here;
}

Test(sigbus, the_faulting_thread_loads_its_own_page)
{
	cr_assert(loaded_on_this_thread("sigbus"), "fault_mode=sigbus: loaded on the toucher");
	cr_assert(!loaded_on_this_thread("uffd"), "fault_mode=uffd: loaded by a service thread");
}

/* ---------------------------------------------------------------- the handler before */

static sigjmp_buf app_jmp;
static void *volatile app_addr;
static volatile int app_calls;

static void app_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	app_calls++;
	app_addr = si->si_addr;
	siglongjmp(app_jmp, 1);
}

static bool app_touch(volatile const char *p)
{
	app_addr = NULL;
	if (sigsetjmp(app_jmp, 1) == 0) {
		(void)*p;
		return false;
	}
	return true;
}

Test(sigbus, other_sigbus_reach_the_handler_installed_before)
{
	struct sigaction app = {.sa_sigaction = app_handler, .sa_flags = SA_SIGINFO}, orig, now;

	sigemptyset(&app.sa_mask);
	cr_assert_eq(sigaction(SIGBUS, &app, &orig), 0);
	app_calls = 0;

	rp_engine *eng = open_mode("sigbus");
	struct tu_map f;

	sigaction(SIGBUS, NULL, &now);
	cr_assert(now.sa_sigaction != app_handler, "ringpager's handler is installed");
	tu_map_open(&f, eng, "sigbus_chain", 64 * PG, 33, PROT_READ);

	/* Its own faults never reach the application. */
	tu_expect_fill(f.a + 40 * PG, PG, 33, 40 * PG);
	cr_assert_eq(app_calls, 0);

	/* A SIGBUS that is not ringpager's: a file mapping past the file's end. */
	char *path = tu_scratch_file("sigbus_short", 0, 1);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	char *beyond = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(beyond, MAP_FAILED);
	cr_assert(app_touch(beyond + 10), "the touch past the end raised SIGBUS");
	cr_assert_eq(app_addr, beyond + 10);
	cr_assert_eq(app_calls, 1);
	munmap(beyond, PG);
	close(fd);
	tu_unlink(path);

	/* A page that fails to load: the application's case, with the address. */
	struct rpio_fault fault = {
	    .ops = 1u << IO_OP_READ, .off_lo = 8 * PG, .off_hi = 9 * PG, .err = EIO};

	rpio_dev_inject(vm_test_dev(f.st), &fault);
	cr_assert(app_touch(f.a + 8 * PG + 99), "a failed page raises SIGBUS");
	cr_assert_eq(app_addr, f.a + 8 * PG + 99);
	cr_assert(app_touch(f.a + 8 * PG), "and again");
	cr_assert_eq(app_calls, 3);
	rpio_dev_inject(vm_test_dev(f.st), NULL);
	tu_expect_fill(f.a + 9 * PG, PG, 33, 9 * PG); /* its neighbour is served */
	cr_assert_eq(app_calls, 3);

	tu_map_close(&f); /* closes the engine: the application's handler is back */
	sigaction(SIGBUS, NULL, &now);
	cr_assert(now.sa_sigaction == app_handler, "the handler before is restored");
	sigaction(SIGBUS, &orig, NULL);
}

Test(sigbus, the_handler_stays_while_any_engine_needs_it)
{
	struct sigaction before, now;

	sigaction(SIGBUS, NULL, &before);
	rp_engine *a = open_mode("sigbus"), *b = open_mode("sigbus");
	struct tu_map f;

	rp_engine_close(a);
	tu_map_open(&f, b, "sigbus_two", 16 * PG, 4, PROT_READ);
	tu_expect_fill(f.a + 5 * PG, PG, 4, 5 * PG); /* b still served after a closed */
	tu_map_close(&f);
	sigaction(SIGBUS, NULL, &now);
	/* (sa_flags may gain SA_RESTORER, which the C library adds to every action it sets) */
	cr_assert(now.sa_handler == before.sa_handler &&
	              (now.sa_flags & SA_SIGINFO) == (before.sa_flags & SA_SIGINFO),
	          "the last engine gives the signal back as it found it");
}

/* ---------------------------------------------------------------- what it costs */

/* A write(2) of the page at a into the pipe p succeeds (what: why it should), and the bytes
 * that come out are the store's at pos (filled from seed). */
static void expect_write_carries(const int p[2], const char *a, char *back, uint64_t seed,
                                 uint64_t pos, const char *what)
{
	cr_assert_eq(write(p[1], a, PG), (ssize_t)PG, "%s", what);
	cr_assert_eq(read(p[0], back, PG), (ssize_t)PG);
	tu_expect_fill(back, PG, seed, pos);
}

Test(sigbus, system_calls_on_pages_not_resident_get_efault_until_pinned)
{
	struct tu_map f;
	int p[2];
	char *back = tu_aligned(PG);

	tu_map_open(&f, open_mode("sigbus"), "sigbus_efault", 32 * PG, 12, PROT_READ);
	cr_assert_eq(pipe(p), 0);
	errno = 0;
	cr_assert_eq(write(p[1], f.a + 5 * PG, PG), -1, "the kernel cannot raise SIGBUS inside "
	                                                "a system call");
	cr_assert_eq(errno, EFAULT);
	cr_assert_eq(rp_pin(f.m, 5 * PG, PG), 0, "%s", rp_errmsg());
	expect_write_carries(p, f.a + 5 * PG, back, 12, 5 * PG, "pinned");
	cr_assert_eq(rp_unpin(f.m, 5 * PG, PG), 0);
	close(p[0]);
	close(p[1]);
	free(back);
	tu_map_close(&f);
}

/* What decides is whether the page is mapped where the system call reads it, not whether
 * it is in the pool: a page loaded through one mapping is not yet mapped in a second one. */
Test(sigbus, system_calls_on_resident_pages_not_mapped_there_get_efault_until_touched)
{
	struct tu_map f;
	rp_mapping *b;
	int p[2];
	char *back = tu_aligned(PG);

	tu_map_open(&f, open_mode("sigbus"), "sigbus_efault_two", 32 * PG, 13, PROT_READ);
	tu_map_read(&f, 5); /* loaded, and mapped in f.m */
	cr_assert_eq(rp_map(f.fh, 0, 32 * PG, PROT_READ, &b), 0, "%s", rp_errmsg());
	char *bb = rp_mapping_addr(b);

	cr_assert_eq(pipe(p), 0);
	expect_write_carries(p, f.a + 5 * PG, back, 13, 5 * PG, "mapped in the first mapping");
	errno = 0;
	cr_assert_eq(write(p[1], bb + 5 * PG, PG), -1, "resident, but not mapped in the second");
	cr_assert_eq(errno, EFAULT);
	cr_assert_eq(tu_stats(f.eng).loads, 1, "no load was started for it");
	(void)*(volatile char *)(bb + 5 * PG); /* a touch maps it, with no load */
	expect_write_carries(p, bb + 5 * PG, back, 13, 5 * PG, "mapped by the touch");
	cr_assert_eq(tu_stats(f.eng).loads, 1);
	cr_assert_eq(rp_unmap(b), 0);
	close(p[0]);
	close(p[1]);
	free(back);
	tu_map_close(&f);
}

/* The reason uffd is the default: there the kernel waits for the service threads inside
 * the system call, as it waits for a disk read under the kernel's own mmap. */
Test(sigbus, in_uffd_mode_system_calls_on_pages_not_mapped_wait_for_them)
{
	struct tu_map f;
	rp_mapping *b;
	int p[2];
	char *back = tu_aligned(PG);

	tu_map_open(&f, open_mode("uffd"), "uffd_syscalls", 32 * PG, 14, PROT_READ);
	cr_assert_eq(rp_map(f.fh, 0, 32 * PG, PROT_READ, &b), 0, "%s", rp_errmsg());
	cr_assert_eq(pipe(p), 0);
	expect_write_carries(p, f.a + 7 * PG, back, 14, 7 * PG, "absent: loaded in the call");
	expect_write_carries(p, (char *)rp_mapping_addr(b) + 7 * PG, back, 14, 7 * PG,
	                     "resident, mapped in the call");
	cr_assert_eq(tu_stats(f.eng).loads, 1);
	cr_assert_eq(rp_unmap(b), 0);
	close(p[0]);
	close(p[1]);
	free(back);
	tu_map_close(&f);
}

Test(sigbus, wp_sync_is_refused_with_a_reason)
{
	rp_config cfg;
	rp_engine *eng = NULL;

	rp_config_init(&cfg);
	cfg.ram_size = 8ul << 20;
	cfg.hugepages = 2;
	cr_assert_eq(rp_config_set(&cfg, "fault_mode", "sigbus"), 0);
	cr_assert_eq(rp_config_set(&cfg, "dirty_tracking", "wp_sync"), 0);
	cr_assert_eq(rp_engine_open(&cfg, &eng), -EOPNOTSUPP);
	cr_assert_null(eng);
	cr_assert(strstr(rp_errmsg(), "fault_mode=sigbus needs dirty_tracking=wp_async, not "
	                              "wp_sync"),
	          "%s", rp_errmsg());
	cfg.fault_mode = 7;
	cr_assert_eq(rp_engine_open(&cfg, &eng), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "fault_mode=7"), "%s", rp_errmsg());
}

Test(sigbus, a_write_to_an_absent_page_loads_it_dirty)
{
	struct tu_map f;

	tu_map_open(&f, open_mode("sigbus"), "sigbus_write", 16 * PG, 8, PROT_READ | PROT_WRITE);
	f.a[6 * PG + 1] = 'w';
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.faults, 1);
#if defined(__x86_64__) /* where the handler learns that the access was a write */
	cr_assert_eq(s.dirty_pages, 1, "the write fault made the page dirty at once");
#endif
	tu_expect_fill(f.a + 6 * PG, 1, 8, 6 * PG);
	tu_expect_fill(f.a + 6 * PG + 2, PG - 2, 8, 6 * PG + 2);
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED), 0, "%s",
	             rp_errmsg());
	char *back = tu_aligned(PG);
	int fd = open(f.path, O_RDONLY);

	cr_assert_eq(pread(fd, back, PG, 6 * PG), (ssize_t)PG);
	cr_assert_eq(back[1], 'w');
	close(fd);
	free(back);
	tu_map_close(&f);
}

/* The faulting thread's own read (io/pread.c): through its io_uring, polled, where
 * fault_spin_us > 0 (with fault_spin always); with pread(2) where it is 0 or no ring can
 * be made. The same bytes every way. */
static void own_read_way(const char *spin_us, bool forbid, int want_ring)
{
	struct tu_map f;

	rpio_pread_ring_forbid(forbid);
	tu_map_open(&f, open_spin("sigbus", spin_us, 0), "sigbus_ring", 64 * PG, 13, PROT_READ);
	for (uint64_t p = 0; p < 64; p += 7)
		tu_map_read(&f, p);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, 10);
	const int probed = vm_test_dev(f.st)->ring_reads;

	tu_map_close(&f);
	rpio_pread_ring_forbid(false);
	if (want_ring != 0 && probed < 0)
		cr_skip_test("the scratch directory's filesystem refuses RWF_NOWAIT: no ring");
	cr_assert_eq(rpio_pread_ring(), want_ring);
}

Test(sigbus, the_faulting_thread_polls_its_read_through_its_own_ring)
{
	own_read_way("200", false, 1); /* fault_spin_us's default */
}

Test(sigbus, with_fault_spin_us_0_the_faulting_thread_reads_with_pread)
{
	own_read_way("0", false, 0);
}

Test(sigbus, where_no_ring_can_be_made_the_faulting_thread_reads_with_pread)
{
	own_read_way("200", true, -EPERM);
}

/* A page the faulting thread read is mapped for it at once (UFFDIO_COPY; with
 * VM_FORCE_PWRITE, pwrite(2) and UFFDIO_CONTINUE): write-protected in a tracked mapping, so
 * that a later write is seen; the same page in the RAM handle, so that another mapping of
 * the range shows it. */
static void read_page_is_tracked_and_shared(unsigned flags)
{
	struct tu_map f;
	rp_mapping *m2;

	tu_map_open(&f, open_spin("sigbus", NULL, flags), "sigbus_place", 16 * PG, 17,
	            PROT_READ | PROT_WRITE);
	tu_map_read(&f, 3);
	tu_map_read(&f, 4);
	struct rp_stats s = tu_stats(f.eng);

	cr_assert_eq(s.pages_loaded, 2);
	cr_assert_eq(s.dirty_pages, 0);
	f.a[3 * PG + 9] = 'x';
	uint64_t dirty;

	cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0, "%s", rp_errmsg());
	cr_assert_eq(dirty, 1, "the write after the read fault was seen");
	cr_assert_eq(rp_map(f.fh, 0, 16 * PG, PROT_READ, &m2), 0, "%s", rp_errmsg());
	const char *b = rp_mapping_addr(m2);

	cr_assert_eq(b[3 * PG + 9], 'x', "the second mapping shows the same page");
	tu_expect_fill(b + 4 * PG, PG, 17, 4 * PG);
	cr_assert_eq(tu_stats(f.eng).pages_loaded, 2, "and loads nothing");
	cr_assert_eq(rp_unmap(m2), 0);
	tu_map_close(&f);
}

Test(sigbus, a_page_read_is_mapped_write_tracked_and_shared)
{
	read_page_is_tracked_and_shared(0);
}

Test(sigbus, a_page_read_is_mapped_write_tracked_and_shared_through_pwrite)
{
	read_page_is_tracked_and_shared(VM_FORCE_PWRITE);
}
