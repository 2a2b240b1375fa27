/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/vmbench.c - the fault path measured against its references, in one run.
 *
 *   cold   one thread touches random 4 KiB pages of a cold mapping of the data file
 *          (a new engine each round), against fio psync 4 KiB random reads at depth 1
 *          (O_DIRECT) on the same file: operations per second and median latency.
 *   minor  the cost of touching pages that are resident in the pool but not yet mapped:
 *          pages are pinned through one mapping, then touched through a second, per
 *          touch; against the kernel's own minor faults on a memfd mapping, measured the
 *          same way. Both map a faulting page's resident neighbours with it (fault-around,
 *          64 KiB), so this is the cost per touch over a dense range, not per fault.
 *   lone   one fault per page: resident pages touched in random order through a mapping
 *          under RANDOM advice (no fault-around), the thread bound to the CPU it runs on
 *          (as docs/tuning.md asks of threads that fault), then not; against the mechanisms
 *          under it, measured the same way in the same round: a userfaultfd MINOR fault
 *          served by a thread on the same CPU (poll, read, UFFDIO_CONTINUE: the floor of
 *          fault_mode=uffd), one raising SIGBUS and served in the handler (the floor of
 *          fault_mode=sigbus), SIGSEGV + mmap(MAP_FIXED) of the memfd page (Wendelin
 *          virtmem's mechanism), and Wendelin's whole read fault by the system calls it
 *          makes (kp_on_sigsegv_read).
 *   pin    rp_pinv of random pages at queue depth 32, against fio io_uring 4 KiB random
 *          reads at depth 32.
 *   meta   the engine's metadata per resident page after the pin job (sparse pages) and
 *          after the minor job (a dense run).
 *   hot    with --hot SIZE, only this: random reads of SIZE bytes all resident and mapped,
 *          through ringpager with 4 KiB and with 2 MiB pages, the kernel's mmap of 4 KiB
 *          pages, and anonymous memory with 4 KiB and 2 MiB pages (the machine's floor for
 *          what the page size gains).
 * With --floors, only the machine's mechanism costs, which every figure of ringpager's
 * should be read beside (docs/benchmarks.md): a userfaultfd MINOR fault served on the
 * same CPU and on another, one raising SIGBUS and served in the handler, a kernel minor
 * fault of a memfd page (one per page: no fault-around), mapping a resident run into a
 * registered range with UFFDIO_CONTINUE and unmapping it with MADV_DONTNEED (1 page and
 * 64 pages, no fault), the first read of pages so mapped, new pages (made by fallocate;
 * filled by UFFDIO_COPY in 1 MiB runs, and one at a time spread over --size, as a cold
 * random fault's page) and their first reads, a 4 KiB memcpy, the longest stall of a
 * thread spinning on a CPU (with one CPU busy, and with every CPU busy), and fio psync
 * 4 KiB random reads (IOPS, p50);
 * with --json, their medians and ranges by key too (bench/compare reads them).
 * With --pager KIND, only the simplest pager of one mechanism reading --file for --runtime
 * seconds (run_pager): what the mechanism allows a pager here, measured whole
 * (bench/compare runs each beside ringpager in the same round).
 * The kinds alternate in each round (the order flips each round); medians are reported
 * with min..max and the ratio to the reference.
 */
#include "ringpager.h"
#include "bench/benchutil.h"
#include "compat/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096ul
#define LONE_MAX 32768u /* --lone at most */

struct opts {
	const char *file;
	uint64_t size;
	unsigned rounds;
	unsigned touches;
	unsigned pins;
	unsigned lone;
	uint64_t minor_bytes;
	double runtime;
	bool fio;
	bool floors;
	const char *json; /* --floors: its medians also written here, by key */
	uint64_t hot; /* --hot: bytes read at random once resident; 0: not this job */
	unsigned reads;
	unsigned hot_bs; /* bytes a read copies, from the start of a random 4 KiB page */
	bool hot_chase;  /* each read's address waits for the read before it */
	const char *pager; /* --pager KIND: only that simplest pager */
};

/* ---------------------------------------------------------------- jobs */

struct sample {
	double ops;  /* per second */
	double p50;  /* us */
	double meta; /* bytes per resident page */
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static struct sample job_cold(const struct opts *o, uint64_t seed)
{
	struct sample s = {0};
	struct bu_rp r;
	uint64_t npages = o->size / PG, sum = 0;
	uint32_t *lat = calloc(o->touches, sizeof(*lat));

	if (!lat || bu_rp_open(&r, "vmbench", o->file, o->size, 1ull << 30, 32))
		exit(1);
	volatile const char *a = rp_mapping_addr(r.m);
	double t0 = bu_now();

	for (unsigned i = 0; i < o->touches; i++) {
		double t = bu_now();

		sum += (unsigned char)a[(bu_rand(&seed) % npages) * PG + 64];
		lat[i] = (uint32_t)((bu_now() - t) * 1e9);
	}
	double secs = bu_now() - t0;

	(void)sum;
	qsort(lat, o->touches, sizeof(*lat), cmp_u32);
	s.ops = o->touches / secs;
	s.p50 = lat[o->touches / 2] / 1e3;
	bu_rp_close(&r);
	free(lat);
	return s;
}

/* Puts v[0..n) in a random order (Fisher-Yates). */
static void shuffle(uint64_t *v, uint64_t n, uint64_t *seed)
{
	for (uint64_t i = n; i > 1; i--) {
		const uint64_t j = bu_rand(seed) % i, t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* Touches every page of [a, a + len) in the order of a random permutation (random) or
 * ascending; returns microseconds per page. */
static double touch_pages(volatile const char *a, uint64_t npages, bool random, uint64_t seed)
{
	uint64_t *order = malloc(npages * sizeof(*order)), sum = 0;

	for (uint64_t i = 0; i < npages; i++)
		order[i] = i;
	if (random)
		shuffle(order, npages, &seed);
	double t0 = bu_now();

	for (uint64_t i = 0; i < npages; i++)
		sum += (unsigned char)a[order[i] * PG];
	double us = (bu_now() - t0) * 1e6 / (double)npages;

	(void)sum;
	free(order);
	return us;
}

struct minor_sample {
	double rp_seq, rp_rand, kernel_seq, kernel_rand, meta;
};

static struct minor_sample job_minor(const struct opts *o, uint64_t seed)
{
	struct minor_sample s = {0};
	uint64_t len = o->minor_bytes, npages = len / PG;
	struct bu_rp r;
	rp_mapping *m2, *m3;
	struct rp_stats st;

	if (bu_rp_open(&r, "vmbench", o->file, o->size, len + (64ull << 20), 32))
		exit(1);
	if (rp_pin(r.m, 0, len) || rp_map(r.fh, 0, len, PROT_READ, &m2) ||
	    rp_map(r.fh, 0, len, PROT_READ, &m3)) {
		fprintf(stderr, "vmbench: minor: %s\n", rp_errmsg());
		exit(1);
	}
	s.rp_seq = touch_pages(rp_mapping_addr(m2), npages, false, seed);
	s.rp_rand = touch_pages(rp_mapping_addr(m3), npages, true, seed);
	rp_stats(r.eng, &st);
	s.meta = (double)st.metadata_bytes / (double)st.resident_pages;
	bu_rp_close(&r);

	/* The kernel's own minor fault: a memfd whose pages exist, mapped afresh. */
	int fd = memfd_create("vmbench", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)len) ||
	    fallocate(fd, 0, 0, (off_t)len)) {
		perror("vmbench: memfd");
		exit(1);
	}
	for (int pass = 0; pass < 2; pass++) {
		char *k = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

		if (k == MAP_FAILED) {
			perror("vmbench: mmap");
			exit(1);
		}
		double us = touch_pages(k, npages, pass == 1, seed);

		if (pass == 0)
			s.kernel_seq = us;
		else
			s.kernel_rand = us;
		munmap(k, len);
	}
	close(fd);
	return s;
}

/* ---------------------------------------------------------------- lone: a fault per page */

struct lone_sample {
	double rp, rp_unbound, uffd, sigbus, segv, wendelin;
};

/* The kernel mechanisms' shared state: one job at a time, on one thread (plus the uffd
 * handler thread). */
static struct {
	int uffd, stop, memfd;
	char *base;
	int cpu;
} kp;

static int bind_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void die(const char *what)
{
	fprintf(stderr, "vmbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A userfaultfd over kp.base's len bytes for MINOR faults; with SIGBUS, faults raise it. */
static void kp_uffd_mode(size_t len, bool sigbus, uint64_t mode)
{
	const int flags = O_CLOEXEC | O_NONBLOCK;

	/* User-mode faults only: what an unprivileged process may ask for (a kernel without
	 * the flag refuses it: then the full kind, which ringpager itself needs anyway). */
	kp.uffd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
	if (kp.uffd < 0)
		kp.uffd = (int)syscall(SYS_userfaultfd, flags);
	if (kp.uffd < 0)
		die("userfaultfd");
	struct uffdio_api api = {.api = UFFD_API,
	                         .features = UFFD_FEATURE_MINOR_SHMEM |
	                                     (sigbus ? UFFD_FEATURE_SIGBUS : 0)};
	struct uffdio_register reg = {.range = {(uintptr_t)kp.base, len},
	                              .mode = mode};

	if (ioctl(kp.uffd, UFFDIO_API, &api) || ioctl(kp.uffd, UFFDIO_REGISTER, &reg))
		die("userfaultfd registration");
}

static void kp_uffd(size_t len, bool sigbus)
{
	kp_uffd_mode(len, sigbus, UFFDIO_REGISTER_MODE_MINOR);
}

static void kp_continue(uint64_t addr)
{
	struct uffdio_continue c = {.range = {addr & ~(PG - 1), PG}};

	while (ioctl(kp.uffd, UFFDIO_CONTINUE, &c) && errno == EAGAIN)
		;
}

/* The uffd handler thread: poll, read, UFFDIO_CONTINUE, as ringpager's service threads. */
static void *kp_handler(void *arg)
{
	(void)bind_cpu(kp.cpu);
	for (;;) {
		struct pollfd p[2] = {{.fd = kp.uffd, .events = POLLIN}, {.fd = kp.stop, .events = POLLIN}};
		struct uffd_msg msg;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (read(kp.uffd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg) &&
		    msg.event == UFFD_EVENT_PAGEFAULT)
			kp_continue(msg.arg.pagefault.address);
	}
	return arg;
}

static void kp_on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	kp_continue((uintptr_t)si->si_addr);
}

/* Wendelin virtmem's first read fault, by the system calls its source makes (read, not
 * copied: bigfile/pagefault.c, virtmem.c, ram_shmfs.c), with a no-op load as in its own
 * BenchmarkPagefaultC: the RAM page allocated (fallocate), mapped somewhere to be loaded
 * and unmapped, then mapped read-only in place (mmap MAP_FIXED). Its bookkeeping (one
 * global lock, a list walk, a malloc) is left out, so this is a floor for it. */
static void kp_on_sigsegv_read(int sig, siginfo_t *si, void *uc)
{
	const uintptr_t a = (uintptr_t)si->si_addr & ~(PG - 1);
	const off_t off = (off_t)(a - (uintptr_t)kp.base);
	void *tmp;

	(void)sig;
	(void)uc;
	if (fallocate(kp.memfd, 0, off, PG) ||
	    (tmp = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, kp.memfd, off)) == MAP_FAILED ||
	    munmap(tmp, PG) ||
	    mmap((void *)a, PG, PROT_READ, MAP_SHARED | MAP_FIXED, kp.memfd, off) == MAP_FAILED)
		abort();
}

static void kp_on_sigsegv(int sig, siginfo_t *si, void *uc)
{
	const uintptr_t a = (uintptr_t)si->si_addr & ~(PG - 1);

	(void)sig;
	(void)uc;
	if (mmap((void *)a, PG, PROT_READ, MAP_SHARED | MAP_FIXED, kp.memfd,
	         (off_t)(a - (uintptr_t)kp.base)) == MAP_FAILED)
		abort();
}

/* One kernel mechanism: 0 uffd with a handler thread, 1 uffd SIGBUS, 2 SIGSEGV + mmap,
 * 3 Wendelin's whole read fault (kp_on_sigsegv_read: its pages are not allocated yet),
 * 4 the kernel's own minor fault of a memfd page (MADV_RANDOM: no fault-around). */
static double job_kernel_lone(int how, uint64_t npages, uint64_t seed)
{
	const size_t len = npages * PG;
	struct sigaction sa = {.sa_flags = SA_SIGINFO}, old;
	const int sig = how == 1 ? SIGBUS : SIGSEGV;
	void *warm = NULL;
	pthread_t th;
	double us;

	kp.memfd = memfd_create("vmbench-lone", MFD_CLOEXEC);
	if (kp.memfd < 0 || ftruncate(kp.memfd, (off_t)len) ||
	    (how != 3 && fallocate(kp.memfd, 0, 0, (off_t)len)))
		die("memfd");
	/* The pages mapped once elsewhere as well, as ringpager's are (pinned through another
	 * mapping): a page's first mapping costs more than a later one. */
	if (how != 3 && (warm = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, kp.memfd, 0)) ==
	                    MAP_FAILED)
		die("mmap");
	/* Wendelin's mapping is a reservation that the handler maps page by page. */
	kp.base = how == 2 || how == 3
	              ? mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
	              : mmap(NULL, len, PROT_READ, MAP_SHARED, kp.memfd, 0);
	if (kp.base == MAP_FAILED || (how == 4 && madvise(kp.base, len, MADV_RANDOM)))
		die("mmap");
	if (how < 2)
		kp_uffd(len, how == 1);
	if (how == 4) {
		/* no handler: the kernel maps the page itself */
	} else if (how == 0) {
		kp.stop = eventfd(0, EFD_CLOEXEC);
		if (kp.stop < 0 || (errno = pthread_create(&th, NULL, kp_handler, NULL)))
			die("handler thread");
	} else {
		sa.sa_sigaction = how == 1 ? kp_on_sigbus : how == 2 ? kp_on_sigsegv : kp_on_sigsegv_read;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, &old))
			die("sigaction");
	}
	us = touch_pages(kp.base, npages, true, seed);
	if (how == 0) {
		(void)eventfd_write(kp.stop, 1);
		pthread_join(th, NULL);
		close(kp.stop);
	} else if (how != 4) {
		(void)sigaction(sig, &old, NULL);
	}
	if (how < 2)
		close(kp.uffd);
	munmap(kp.base, len);
	if (warm)
		munmap(warm, len);
	close(kp.memfd);
	return us;
}

static struct lone_sample job_lone(const struct opts *o, uint64_t seed)
{
	struct lone_sample s = {0};
	const uint64_t npages = o->lone, len = npages * PG;
	cpu_set_t was;
	struct bu_rp r;
	rp_mapping *m2, *m3;

	if (bu_rp_open(&r, "vmbench", o->file, len, len + (64ull << 20), 32))
		exit(1);
	if (rp_pin(r.m, 0, len) || rp_map(r.fh, 0, len, PROT_READ, &m2) ||
	    rp_map(r.fh, 0, len, PROT_READ, &m3) || rp_advise(m2, 0, len, RP_ADVICE_RANDOM) ||
	    rp_advise(m3, 0, len, RP_ADVICE_RANDOM)) {
		fprintf(stderr, "vmbench: lone: %s\n", rp_errmsg());
		exit(1);
	}
	/* Bound to the CPU it is on, then not bound, as the process came (in that order: an
	 * unbound thread's faults keep every service thread listening for 100 ms after,
	 * vm/service.c), then bound again for the references; put back after. */
	kp.cpu = sched_getcpu();
	if (kp.cpu < 0 || pthread_getaffinity_np(pthread_self(), sizeof(was), &was) ||
	    bind_cpu(kp.cpu))
		die("binding to a CPU");
	s.rp = touch_pages(rp_mapping_addr(m2), npages, true, seed);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
	s.rp_unbound = touch_pages(rp_mapping_addr(m3), npages, true, seed);
	bu_rp_close(&r);
	if (bind_cpu(kp.cpu))
		die("binding to a CPU");
	s.uffd = job_kernel_lone(0, npages, seed);
	s.sigbus = job_kernel_lone(1, npages, seed);
	s.segv = job_kernel_lone(2, npages, seed);
	s.wendelin = job_kernel_lone(3, npages, seed);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
	return s;
}

/* ---------------------------------------------------------------- floors */

#define NFLOORS 20 /* the figures of --floors, fio's aside */

struct floors {
	double uffd_same, uffd_other, sigbus, kernel_minor; /* us per fault */
	double map1, unmap1, map64, unmap64;                 /* us per call */
	double touch1;                                       /* us per page */
	double spread_map, spread_touch, spread_kernel;      /* us per page, over --size */
	double copy_spread, copy_spread_read;                /* us per page, over --size */
	double make;                                         /* us per page */
	double copy_run, copy_read;                          /* us per page */
	double memcpy4k;                                     /* us */
	double stall_one, stall_all;                         /* us, the longest */
};

/* UFFDIO_CONTINUE of runs of `run` resident pages into a registered range (no fault
 * waits), a first read of each page so mapped, then MADV_DONTNEED of each, the runs in a
 * random order: microseconds per call of each, and per page read (*touch_us). A first
 * touch is where a machine with shadow page tables pays for an entry the kernel set
 * outside a fault. */
static void floor_map(uint64_t npages, uint64_t run, uint64_t seed, double *map_us,
                      double *unmap_us, double *touch_us)
{
	const size_t len = npages * PG;
	void *warm;

	kp.memfd = memfd_create("vmbench-floors", MFD_CLOEXEC);
	if (kp.memfd < 0 || ftruncate(kp.memfd, (off_t)len) || fallocate(kp.memfd, 0, 0, (off_t)len) ||
	    (warm = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, kp.memfd, 0)) == MAP_FAILED ||
	    (kp.base = mmap(NULL, len, PROT_READ, MAP_SHARED, kp.memfd, 0)) == MAP_FAILED)
		die("floors: memfd");
	kp_uffd(len, false);
	const uint64_t calls = npages / run;
	uint64_t *order = malloc(calls * sizeof(*order));

	if (!order)
		die("floors: out of memory");
	for (uint64_t i = 0; i < calls; i++)
		order[i] = i;
	shuffle(order, calls, &seed);
	double t0 = bu_now();

	for (uint64_t i = 0; i < calls; i++) {
		struct uffdio_continue c = {.range = {(uintptr_t)kp.base + order[i] * run * PG,
		                                      run * PG}};

		if (ioctl(kp.uffd, UFFDIO_CONTINUE, &c))
			die("floors: UFFDIO_CONTINUE");
	}
	double t1 = bu_now();
	unsigned sum = 0;

	for (uint64_t i = 0; i < calls; i++)
		for (uint64_t k = 0; k < run; k++)
			sum += ((volatile const unsigned char *)kp.base)[(order[i] * run + k) * PG];
	double t2 = bu_now();

	for (uint64_t i = 0; i < calls; i++)
		if (madvise(kp.base + order[i] * run * PG, run * PG, MADV_DONTNEED))
			die("floors: MADV_DONTNEED");
	double t3 = bu_now();

	(void)sum;
	free(order);
	*map_us = (t1 - t0) * 1e6 / (double)calls;
	*touch_us = (t2 - t1) * 1e6 / (double)(calls * run);
	*unmap_us = (t3 - t2) * 1e6 / (double)calls;
	close(kp.uffd);
	munmap(kp.base, len);
	munmap(warm, len);
	close(kp.memfd);
}

/* npages page numbers, one at random in each of npages equal parts of a span of `span`
 * pages (as a database's random reads land), in a random order. Freed by the caller. */
static uint64_t *spread_pages(uint64_t span, uint64_t npages, uint64_t *seed)
{
	const uint64_t part = span / npages;
	uint64_t *pg = malloc(npages * sizeof(*pg));

	if (!pg || !part)
		die("floors: out of memory");
	for (uint64_t i = 0; i < npages; i++)
		pg[i] = i * part + bu_rand(seed) % part;
	shuffle(pg, npages, seed);
	return pg;
}

/* npages resident pages spread over `span` pages (spread_pages), mapped one by one:
 * UFFDIO_CONTINUE then a first read of each (us per page each), and the kernel's own
 * minor fault of the same pages in the same order through an unregistered mapping (us per
 * page, the read included). Where page tables are shadowed, a wide span costs more. */
static void floor_spread(uint64_t span, uint64_t npages, uint64_t seed, double *map_us,
                         double *touch_us, double *kernel_us)
{
	const size_t len = span * PG;
	uint64_t *pg = spread_pages(span, npages, &seed);
	char *plain;

	kp.memfd = memfd_create("vmbench-spread", MFD_CLOEXEC);
	if (kp.memfd < 0 || ftruncate(kp.memfd, (off_t)len))
		die("floors: memfd");
	for (uint64_t i = 0; i < npages; i++)
		if (fallocate(kp.memfd, 0, (off_t)(pg[i] * PG), PG))
			die("floors: fallocate");
	if ((kp.base = mmap(NULL, len, PROT_READ, MAP_SHARED, kp.memfd, 0)) == MAP_FAILED ||
	    (plain = mmap(NULL, len, PROT_READ, MAP_SHARED, kp.memfd, 0)) == MAP_FAILED ||
	    madvise(plain, len, MADV_RANDOM))
		die("floors: mmap");
	kp_uffd(len, false);
	unsigned sum = 0;
	double t0 = bu_now();

	for (uint64_t i = 0; i < npages; i++) {
		struct uffdio_continue c = {.range = {(uintptr_t)kp.base + pg[i] * PG, PG}};

		if (ioctl(kp.uffd, UFFDIO_CONTINUE, &c))
			die("floors: UFFDIO_CONTINUE");
	}
	double t1 = bu_now();

	for (uint64_t i = 0; i < npages; i++)
		sum += ((volatile const unsigned char *)kp.base)[pg[i] * PG];
	double t2 = bu_now();

	for (uint64_t i = 0; i < npages; i++)
		sum += ((volatile const unsigned char *)plain)[pg[i] * PG];
	double t3 = bu_now();

	(void)sum;
	*map_us = (t1 - t0) * 1e6 / (double)npages;
	*touch_us = (t2 - t1) * 1e6 / (double)npages;
	*kernel_us = (t3 - t2) * 1e6 / (double)npages;
	close(kp.uffd);
	munmap(kp.base, len);
	munmap(plain, len);
	close(kp.memfd);
	free(pg);
}

/* What a cold random fault's page costs beyond a minor fault's: npages new pages spread
 * over `span` pages of an empty memfd (spread_pages), each filled and mapped by its own
 * UFFDIO_COPY from a hot 4 KiB buffer, then read for the first time, one page after the
 * other as faults come (a read makes the page-table page it walks dear to change later
 * where page tables are shadowed): us per page for the copy and for the read. */
static void floor_copy_spread(uint64_t span, uint64_t npages, uint64_t seed, double *copy_us,
                              double *read_us)
{
	const size_t len = span * PG;
	uint64_t *pg = spread_pages(span, npages, &seed);
	static char src[PG];
	double copy = 0, read = 0;
	unsigned sum = 0;

	memset(src, 7, sizeof(src));
	kp.memfd = memfd_create("vmbench-copy-spread", MFD_CLOEXEC);
	if (kp.memfd < 0 || ftruncate(kp.memfd, (off_t)len) ||
	    (kp.base = mmap(NULL, len, PROT_READ, MAP_SHARED, kp.memfd, 0)) == MAP_FAILED)
		die("floors: memfd");
	kp_uffd_mode(len, false, UFFDIO_REGISTER_MODE_MISSING);
	for (uint64_t i = 0; i < npages; i++) {
		struct uffdio_copy c = {.dst = (uintptr_t)kp.base + pg[i] * PG, .src = (uintptr_t)src,
		                        .len = PG, .mode = UFFDIO_COPY_MODE_DONTWAKE};
		const double t0 = bu_now();

		if (ioctl(kp.uffd, UFFDIO_COPY, &c))
			die("floors: UFFDIO_COPY");
		const double t1 = bu_now();

		sum += ((volatile const unsigned char *)kp.base)[pg[i] * PG];
		copy += t1 - t0;
		read += bu_now() - t1;
	}
	(void)sum;
	*copy_us = copy * 1e6 / (double)npages;
	*read_us = read * 1e6 / (double)npages;
	close(kp.uffd);
	munmap(kp.base, len);
	close(kp.memfd);
	free(pg);
}

/* New pages, as a file grows through a mapping: runs of 64 pages of an empty memfd made
 * (fallocate: zeroed), mapped (UFFDIO_CONTINUE) and written once each, in ascending
 * order: microseconds per page, all three. */
static double floor_make(uint64_t npages)
{
	const uint64_t run = 64, n = npages / run * run;
	const size_t len = n * PG;

	kp.memfd = memfd_create("vmbench-make", MFD_CLOEXEC);
	if (kp.memfd < 0 || ftruncate(kp.memfd, (off_t)len) ||
	    (kp.base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, kp.memfd, 0)) ==
	        MAP_FAILED)
		die("floors: memfd");
	kp_uffd(len, false);
	double t0 = bu_now();

	for (uint64_t i = 0; i < n; i += run) {
		struct uffdio_continue c = {.range = {(uintptr_t)kp.base + i * PG, run * PG}};

		if (fallocate(kp.memfd, 0, (off_t)(i * PG), (off_t)(run * PG)) ||
		    ioctl(kp.uffd, UFFDIO_CONTINUE, &c))
			die("floors: fallocate and UFFDIO_CONTINUE");
		for (uint64_t k = 0; k < run; k++)
			((volatile char *)kp.base)[(i + k) * PG] = 1;
	}
	const double us = (bu_now() - t0) * 1e6 / (double)n;

	close(kp.uffd);
	munmap(kp.base, len);
	close(kp.memfd);
	return us;
}

/* The new memory floor_copy_run fills for a span of `size` bytes: as much as a scan of
 * it makes, since on a machine that gives freed memory back to its host the price of new
 * memory grows with the amount (docs/benchmarks.md, "A scan's new pages"); at most a
 * quarter of the RAM, at least one run (1 MiB). */
static uint64_t copy_floor_bytes(uint64_t size)
{
	const uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * PG / 4;

	size = size < ram ? size : ram;
	return size > (1u << 20) ? size : (1u << 20);
}

/* What a 4 KiB pager's scan pays per page beyond the disk: runs of 256 pages (1 MiB, a
 * readahead run) of an empty memfd filled and mapped by one UFFDIO_COPY each from a reused
 * buffer, in ascending order (*copy_us, us per page), then a first read of each page in
 * order (*read_us, us per page). The memfd is new, as a pool that has just grown. */
static void floor_copy_run(uint64_t npages, double *copy_us, double *read_us)
{
	const uint64_t run = 256, n = npages > run ? npages / run * run : run;
	const size_t len = n * PG;
	char *src = mmap(NULL, run * PG, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (src == MAP_FAILED)
		die("floors: copy buffer");
	memset(src, 7, run * PG);
	kp.memfd = memfd_create("vmbench-copy", MFD_CLOEXEC);
	if (kp.memfd < 0 || ftruncate(kp.memfd, (off_t)len) ||
	    (kp.base = mmap(NULL, len, PROT_READ, MAP_SHARED, kp.memfd, 0)) == MAP_FAILED)
		die("floors: memfd");
	kp_uffd_mode(len, false, UFFDIO_REGISTER_MODE_MISSING);
	double t0 = bu_now();

	for (uint64_t i = 0; i < n; i += run) {
		struct uffdio_copy c = {.dst = (uintptr_t)kp.base + i * PG, .src = (uintptr_t)src,
		                        .len = run * PG, .mode = UFFDIO_COPY_MODE_DONTWAKE};

		if (ioctl(kp.uffd, UFFDIO_COPY, &c))
			die("floors: UFFDIO_COPY");
	}
	double t1 = bu_now();
	unsigned sum = 0;

	for (uint64_t i = 0; i < n; i++)
		sum += ((volatile const unsigned char *)kp.base)[i * PG];
	double t2 = bu_now();

	(void)sum;
	*copy_us = (t1 - t0) * 1e6 / (double)n;
	*read_us = (t2 - t1) * 1e6 / (double)n;
	close(kp.uffd);
	munmap(kp.base, len);
	close(kp.memfd);
	munmap(src, run * PG);
}

/* A 4 KiB copy between two hot buffers, microseconds (the mean of many). */
static double floor_memcpy(void)
{
	static char a[PG], b[PG];
	const unsigned n = 200000;
	double t0 = bu_now();

	for (unsigned i = 0; i < n; i++) {
		memcpy(i & 1 ? a : b, i & 1 ? b : a, PG);
		__asm__ volatile("" ::: "memory");
	}
	return (bu_now() - t0) * 1e6 / n;
}

#define STALL_S 1.0 /* seconds each stall floor spins */

struct stall {
	pthread_t thread;
	int cpu;
	pthread_barrier_t *go;
	double longest; /* us */
};

static void *stall_spin(void *arg)
{
	struct stall *st = arg;

	if (bind_cpu(st->cpu))
		die("binding to a CPU");
	pthread_barrier_wait(st->go);
	double t0 = bu_now(), last = t0, longest = 0;

	while (last - t0 < STALL_S) {
		const double t = bu_now();

		if (t - last > longest)
			longest = t - last;
		last = t;
	}
	st->longest = longest * 1e6;
	return NULL;
}

/* The longest the clock jumped for a thread that only reads it, in STALL_S seconds, us:
 * the time its CPU was taken from it (an interrupt, another task, or on a virtual machine
 * the host running something else on the physical CPU behind it). One thread on CPU
 * `self`, or one on each CPU of `cpus` at once, the longest of them: work spread over
 * every CPU, as a pin's or two faulting threads', waits for the slowest part
 * (docs/benchmarks.md, "The host's stalls"). */
static double floor_stall(int self, const cpu_set_t *cpus)
{
	struct stall st[256]; /* CPUs measured at most */
	pthread_barrier_t go;
	unsigned n = 0;
	double longest = 0;

	for (int c = 0; c < CPU_SETSIZE && n < sizeof(st) / sizeof(st[0]); c++)
		if (cpus ? CPU_ISSET(c, cpus) : c == self)
			st[n++].cpu = c;
	if (!n || pthread_barrier_init(&go, NULL, n))
		die("floors: stall threads");
	for (unsigned i = 0; i < n; i++) {
		st[i].go = &go;
		if (pthread_create(&st[i].thread, NULL, stall_spin, &st[i]))
			die("floors: stall threads");
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(st[i].thread, NULL);
		if (st[i].longest > longest)
			longest = st[i].longest;
	}
	pthread_barrier_destroy(&go);
	return longest;
}

/* ---------------------------------------------------------------- the simplest pagers */

/* What each mechanism allows a pager here, measured whole rather than summed from its
 * parts: the simplest pager of that mechanism, with nothing of ringpager's (no pool, no
 * eviction, no lock, no counters), on the same file. Cold random 4 KiB touches through a
 * memfd mapping of --size registered for MISSING faults, each page read with a pread of
 * the file (O_DIRECT) and put in place by UFFDIO_COPY:
 *   PAGER_UFFD1   (uffd) by one handler thread, not bound;
 *   PAGER_UFFD_N  (uffd-cpus) by a handler bound to each CPU, all polling the userfaultfd;
 *   PAGER_SIGBUS  (sigbus) in the SIGBUS handler of the faulting thread;
 * and PAGER_PIN (pin): batches of 32 random pages read with io_uring at once, each copied in as
 * its read completes, then each read once (what rpbench's ringpager-pin does at depth 32).
 * Each page is drawn once, and read as rpbench reads a 4 KiB block: copied out whole.
 * The thread that touches is not bound, as rpbench's jobs are not, and the process has
 * one thread more that wakes every 100 ms, as rpbench's main thread does: this kind of
 * VM sets a page-table entry more cheaply in a process that has run on one CPU only
 * (docs/benchmarks.md, "The simplest pager"). Each touch (a batch for PAGER_PIN) is timed.
 */
enum pager_kind { PAGER_UFFD1, PAGER_UFFD_N, PAGER_SIGBUS, PAGER_PIN };

static const char *const pager_names[] = {"uffd", "uffd-cpus", "sigbus", "pin"};
#define PAGER_BATCH 32  /* pages a PAGER_PIN batch */
#define PAGER_TICK_US 100000

static struct {
	int fd, uffd;
	char *base;
	uint64_t span, drawn; /* pages mapped, pages drawn so far */
	uint64_t *order;      /* every page, in a random order (shuffle) */
	double secs;          /* how long it runs */
	uint32_t *lat;        /* ns a touch, or a PAGER_PIN batch */
	uint64_t nlat;
	_Atomic bool stop;
	char *sigbuf; /* PAGER_SIGBUS: the faulting thread's read buffer */
} sp;

/* The next page of a random order of them all: each touch a cold fault, as rpbench's
 * random order reads each block once; the caller stops before they run out. */
static uint64_t pager_draw(void)
{
	return sp.order[sp.drawn++];
}

/* The page in buf put in place at a (waking a thread that waits on it); false if it
 * could not be. EEXIST, a page in place already, counts as done. */
static bool pager_copy(uint64_t a, const char *buf)
{
	struct uffdio_copy c = {.dst = a, .src = (uintptr_t)buf, .len = PG};
	int r;

	while ((r = ioctl(sp.uffd, UFFDIO_COPY, &c)) && errno == EAGAIN)
		;
	return !r || errno == EEXIST;
}

/* The page at addr read from the file into buf and put in place: false if it failed. */
static bool pager_load(uint64_t addr, char *buf)
{
	const uint64_t a = addr & ~(PG - 1);

	return pread(sp.fd, buf, PG, (off_t)(a - (uintptr_t)sp.base)) == (ssize_t)PG &&
	       pager_copy(a, buf);
}

static void pager_on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (!pager_load((uintptr_t)si->si_addr, sp.sigbuf))
		abort(); /* the fault would come back at once: nothing else to do here */
}

/* A handler thread: arg is the CPU to bind to, or -1. */
static void *pager_handler(void *arg)
{
	const int cpu = (int)(intptr_t)arg;
	char *buf = aligned_alloc(PG, PG);

	if (!buf || (cpu >= 0 && bind_cpu(cpu)))
		die("pager: handler");
	while (!atomic_load(&sp.stop)) {
		struct pollfd p = {.fd = sp.uffd, .events = POLLIN};
		struct uffd_msg msg;

		if (poll(&p, 1, 50) > 0 && read(sp.uffd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg) &&
		    msg.event == UFFD_EVENT_PAGEFAULT && !pager_load(msg.arg.pagefault.address, buf))
			die("pager: read or copy");
	}
	free(buf);
	return NULL;
}

static void *pager_ticker(void *arg)
{
	while (!atomic_load(&sp.stop))
		usleep(PAGER_TICK_US);
	return arg;
}

/* A page read as rpbench reads a 4 KiB block of a mapping: copied out whole. */
static void pager_copy_out(const char *page)
{
	static char out[PG];

	memcpy(out, page, PG);
	__asm__ volatile("" : : "r"(out) : "memory"); /* the copy is used */
}

/* PAGER_PIN's batches until sp.secs have passed or the pages run out: pages loaded. */
static uint64_t pager_pins(void)
{
	struct io_uring ring;
	char *bufs = aligned_alloc(PG, PAGER_BATCH * PG);
	uint64_t pg[PAGER_BATCH], n = 0;
	const double t0 = bu_now();

	if (!bufs || io_uring_queue_init(2 * PAGER_BATCH, &ring, 0))
		die("pager: io_uring");
	while (bu_now() - t0 < sp.secs && sp.drawn + PAGER_BATCH <= sp.span) {
		const double tb = bu_now();

		for (unsigned i = 0; i < PAGER_BATCH; i++) {
			struct io_uring_sqe *e = io_uring_get_sqe(&ring);

			pg[i] = pager_draw();
			io_uring_prep_read(e, sp.fd, bufs + i * PG, PG, pg[i] * PG);
			e->user_data = i;
		}
		if (io_uring_submit(&ring) != PAGER_BATCH)
			die("pager: io_uring_submit");
		for (unsigned k = 0; k < PAGER_BATCH; k++) {
			struct io_uring_cqe *cqe;

			if (io_uring_wait_cqe(&ring, &cqe) || cqe->res != (int)PG)
				die("pager: read");
			const unsigned i = (unsigned)cqe->user_data;

			io_uring_cqe_seen(&ring, cqe);
			if (!pager_copy((uintptr_t)sp.base + pg[i] * PG, bufs + i * PG))
				die("pager: copy");
		}
		for (unsigned i = 0; i < PAGER_BATCH; i++)
			pager_copy_out(sp.base + pg[i] * PG);
		sp.lat[sp.nlat++] = (uint32_t)((bu_now() - tb) * 1e9);
		n += PAGER_BATCH;
	}
	io_uring_queue_exit(&ring);
	free(bufs);
	return n;
}

struct pager_run {
	double iops;                  /* pages a second */
	double p50_us, p99_us, max_ms; /* of a touch, or a PAGER_PIN batch */
};

/* One simplest pager over the first span pages of file for secs seconds, its handlers
 * (PAGER_UFFD_N) on the CPUs of cpus. */
static struct pager_run run_pager(const char *file, uint64_t span, enum pager_kind kind,
                                  const cpu_set_t *cpus, double secs, uint64_t seed)
{
	struct pager_run r = {0};
	const size_t len = span * PG;
	struct sigaction sa = {.sa_sigaction = pager_on_sigbus, .sa_flags = SA_SIGINFO}, old;
	pthread_t th[64], ticker;
	unsigned nth = 0;
	uint64_t n = 0;
	int memfd;

	sp.fd = open(file, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (sp.fd < 0 && errno == EINVAL) /* a file system without O_DIRECT: as ringpager does */
		sp.fd = open(file, O_RDONLY | O_CLOEXEC);
	memfd = memfd_create("vmbench-pager", MFD_CLOEXEC);
	sp.span = span;
	sp.drawn = sp.nlat = 0;
	sp.secs = secs;
	sp.order = malloc(span * sizeof(*sp.order));
	sp.lat = calloc(span, sizeof(uint32_t));
	if (sp.fd < 0 || memfd < 0 || !sp.order || !sp.lat || ftruncate(memfd, (off_t)len))
		die("pager: file");
	for (uint64_t i = 0; i < span; i++)
		sp.order[i] = i;
	shuffle(sp.order, span, &seed);
	sp.base = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_NORESERVE, memfd, 0);
	if (sp.base == MAP_FAILED)
		die("pager: mmap");
	kp.base = sp.base;
	kp_uffd_mode(len, kind == PAGER_SIGBUS, UFFDIO_REGISTER_MODE_MISSING);
	sp.uffd = kp.uffd;
	atomic_store(&sp.stop, false);
	if (pthread_create(&ticker, NULL, pager_ticker, NULL))
		die("pager: threads");
	if (kind == PAGER_SIGBUS) {
		sp.sigbuf = aligned_alloc(PG, PG);
		sigemptyset(&sa.sa_mask);
		if (!sp.sigbuf || sigaction(SIGBUS, &sa, &old))
			die("pager: SIGBUS handler");
	} else if (kind == PAGER_UFFD1) {
		if (pthread_create(&th[nth++], NULL, pager_handler, (void *)(intptr_t)-1))
			die("pager: threads");
	} else if (kind == PAGER_UFFD_N) {
		for (int c = 0; c < CPU_SETSIZE && nth < sizeof(th) / sizeof(th[0]); c++)
			if (CPU_ISSET(c, cpus) &&
			    pthread_create(&th[nth++], NULL, pager_handler, (void *)(intptr_t)c))
				die("pager: threads");
	}
	const double t0 = bu_now();

	if (kind == PAGER_PIN) {
		n = pager_pins();
	} else {
		for (double t = t0; t - t0 < secs && sp.drawn < span; n++) {
			pager_copy_out(sp.base + pager_draw() * PG);
			const double t1 = bu_now();

			sp.lat[sp.nlat++] = (uint32_t)((t1 - t) * 1e9);
			t = t1;
		}
	}
	const double elapsed = bu_now() - t0;

	atomic_store(&sp.stop, true);
	for (unsigned i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_join(ticker, NULL);
	if (kind == PAGER_SIGBUS) {
		(void)sigaction(SIGBUS, &old, NULL);
		free(sp.sigbuf);
	}
	close(sp.uffd);
	munmap(sp.base, len);
	close(memfd);
	close(sp.fd);
	free(sp.order);
	r.iops = elapsed > 0 ? (double)n / elapsed : 0;
	if (sp.nlat) {
		qsort(sp.lat, sp.nlat, sizeof(*sp.lat), cmp_u32);
		r.p50_us = sp.lat[sp.nlat / 2] / 1e3;
		r.p99_us = sp.lat[sp.nlat * 99 / 100] / 1e3;
		r.max_ms = sp.lat[sp.nlat - 1] / 1e6;
	}
	free(sp.lat);
	return r;
}

/* A --pager name's kind, or -1 (said on stderr). */
static int pager_kind_of(const char *name)
{
	for (int k = 0; k < (int)(sizeof(pager_names) / sizeof(pager_names[0])); k++)
		if (!strcmp(name, pager_names[k]))
			return k;
	fprintf(stderr, "vmbench: --pager %s: expected uffd, uffd-cpus, sigbus or pin\n", name);
	return -1;
}

/* --pager KIND: one simplest pager, --runtime seconds over --size of --file, not bound;
 * with --json, its figures for bench/compare. */
static int pager_cmd(const struct opts *o)
{
	const int kind = pager_kind_of(o->pager);
	cpu_set_t cpus;

	if (kind < 0)
		return 2;
	if (pthread_getaffinity_np(pthread_self(), sizeof(cpus), &cpus))
		die("pager: the process's CPUs");
	const struct pager_run r = run_pager(o->file, o->size / PG, (enum pager_kind)kind, &cpus,
	                                     o->runtime, (uint64_t)(bu_now() * 1e9));

	printf("vmbench --pager %s: %.0f pages/s, %s p50 %.1f us, p99 %.1f us, max %.2f ms\n",
	       o->pager, r.iops, kind == PAGER_PIN ? "a batch of 32:" : "a touch:", r.p50_us,
	       r.p99_us, r.max_ms);
	if (!o->json)
		return 0;
	FILE *f = fopen(o->json, "w");

	if (!f || fprintf(f, "{\"pager\": \"%s\", \"iops\": %.2f, \"p50_us\": %.3f, "
	                     "\"p99_us\": %.3f, \"max_ms\": %.4f}\n",
	                  o->pager, r.iops, r.p50_us, r.p99_us, r.max_ms) < 0 ||
	    fclose(f)) {
		fprintf(stderr, "vmbench: --json %s: %s\n", o->json, strerror(errno));
		return 1;
	}
	return 0;
}

static struct floors job_floors(uint64_t npages, uint64_t span, uint64_t seed)
{
	struct floors f = {0};
	cpu_set_t was;
	const int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	kp.cpu = sched_getcpu();
	if (kp.cpu < 0 || pthread_getaffinity_np(pthread_self(), sizeof(was), &was) ||
	    bind_cpu(kp.cpu))
		die("binding to a CPU");
	/* First: what the others leave behind (memory to free) would take CPU from them. */
	f.stall_one = floor_stall(kp.cpu, NULL);
	f.stall_all = floor_stall(kp.cpu, &was);
	f.uffd_same = job_kernel_lone(0, npages, seed);
	f.sigbus = job_kernel_lone(1, npages, seed);
	f.kernel_minor = job_kernel_lone(4, npages, seed);
	const int self = kp.cpu;

	if (ncpu > 1) {
		kp.cpu = (self + 1) % ncpu; /* the handler's */
		f.uffd_other = job_kernel_lone(0, npages, seed);
		kp.cpu = self;
	}
	double touch64;

	floor_map(npages, 1, seed, &f.map1, &f.unmap1, &f.touch1);
	floor_map(npages / 64 * 64, 64, seed, &f.map64, &f.unmap64, &touch64);
	floor_spread(span, npages, seed, &f.spread_map, &f.spread_touch, &f.spread_kernel);
	floor_copy_spread(span, npages, seed, &f.copy_spread, &f.copy_spread_read);
	f.make = floor_make(npages);
	floor_copy_run(copy_floor_bytes(span * PG) / PG, &f.copy_run, &f.copy_read);
	f.memcpy4k = floor_memcpy();
	(void)pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
	return f;
}

static void json_row(FILE *f, const char *key, const char *what, const double *v, unsigned n,
                     const char *unit, bool last)
{
	double lo, hi;

	bu_minmax(v, n, &lo, &hi);
	fprintf(f, "  \"%s\": {\"what\": \"%s\", \"unit\": \"%s\", \"median\": %.4f, "
	        "\"min\": %.4f, \"max\": %.4f}%s\n", key, what, unit, bu_median(v, n), lo, hi,
	        last ? "" : ",");
}

/* --floors --json PATH: the medians by key, for programs (bench/compare). A floor not
 * measured (another CPU on a one-CPU machine) is left out. */
static int floors_json(const struct opts *o, const char *const keys[NFLOORS],
                       const char *const names[NFLOORS], double us[NFLOORS][BU_MAX_ROUNDS],
                       const double *fio_ops, const double *fio_p50)
{
	FILE *f = fopen(o->json, "w");

	if (!f) {
		fprintf(stderr, "vmbench: --json %s: %s\n", o->json, strerror(errno));
		return 1;
	}
	fprintf(f, "{\n");
	for (int k = 0; k < NFLOORS; k++)
		if (k != 1 || us[1][0] > 0)
			json_row(f, keys[k], names[k], us[k], o->rounds, "us", k == NFLOORS - 1 && !fio_ops);
	if (fio_ops) {
		json_row(f, "fio_psync_iops", "fio psync randread 4k depth 1", fio_ops, o->rounds,
		         "IOPS", false);
		json_row(f, "fio_psync_p50", "fio psync p50 latency", fio_p50, o->rounds, "us", true);
	}
	fprintf(f, "}\n");
	if (fclose(f)) {
		fprintf(stderr, "vmbench: --json %s: %s\n", o->json, strerror(errno));
		return 1;
	}
	return 0;
}

static int run_floors(const struct opts *o)
{
	double us[NFLOORS][BU_MAX_ROUNDS], fio_ops[BU_MAX_ROUNDS], fio_p50[BU_MAX_ROUNDS];
	const unsigned n = o->rounds;
	uint64_t seed = (uint64_t)(bu_now() * 1e9);

	printf("vmbench --floors: %u rounds, %u pages a fault job (medians, min..max)\n", n, o->lone);
	for (unsigned r = 0; r < n; r++) {
		const struct floors f = job_floors(o->lone, o->size / PG, seed + r);
		const double v[NFLOORS] = {
		    f.uffd_same,  f.uffd_other, f.sigbus,       f.kernel_minor,  f.map1,
		    f.touch1,     f.unmap1,     f.map64,        f.unmap64,       f.spread_map,
		    f.spread_touch, f.spread_kernel, f.copy_spread, f.copy_spread_read, f.make,
		    f.copy_run,   f.copy_read,  f.memcpy4k,     f.stall_one,     f.stall_all};

		for (int k = 0; k < NFLOORS; k++)
			us[k][r] = v[k];
		if (o->fio) {
			const struct bu_fio b = bu_run_fio(o->file, "randread", PG, 1, o->size, o->runtime,
			                                   "psync");

			fio_ops[r] = b.iops;
			fio_p50[r] = b.p50_us;
		}
	}
	char spread[5][64];

	snprintf(spread[0], sizeof(spread[0]), "the same, 1 page a call, spread over %" PRIu64 "M",
	         o->size >> 20);
	snprintf(spread[1], sizeof(spread[1]), "first read of such a page");
	snprintf(spread[2], sizeof(spread[2]), "kernel minor fault of such a page");
	snprintf(spread[3], sizeof(spread[3]), "UFFDIO_COPY of a new page, so spread");
	snprintf(spread[4], sizeof(spread[4]), "first read of such a page, after its copy");
	char copied[64];

	snprintf(copied, sizeof(copied), "UFFDIO_COPY of 1M runs over %" PRIu64 "M, a page",
	         copy_floor_bytes(o->size) >> 20);
	/* Keys for --json, in the order of names[] */
	static const char *const keys[NFLOORS] = {
	    "uffd_same_cpu", "uffd_other_cpu", "sigbus",       "kernel_minor",
	    "continue_1",    "first_read",     "dontneed_1",   "continue_64",
	    "dontneed_64",   "continue_spread", "first_read_spread", "kernel_minor_spread",
	    "copy_spread",   "copy_spread_read", "new_page",   "copy_run",
	    "copy_run_read", "memcpy_4k",      "stall_one_cpu",   "stall_all_cpus",
	};
	const char *const names[NFLOORS] = {
	    "userfaultfd fault served on the same CPU",
	    "userfaultfd fault served on another CPU",
	    "userfaultfd SIGBUS, served in the handler",
	    "kernel memfd minor fault, one a page",
	    "UFFDIO_CONTINUE of 1 page (no fault)",
	    "first read of a page so mapped",
	    "MADV_DONTNEED of 1 page",
	    "UFFDIO_CONTINUE of 64 pages (no fault)",
	    "MADV_DONTNEED of 64 pages",
	    spread[0],
	    spread[1],
	    spread[2],
	    spread[3],
	    spread[4],
	    "a new page: fallocate, CONTINUE, write (64 a run)",
	    copied,
	    "first read of such a page, in order",
	    "memcpy of 4 KiB",
	    "longest stall of a thread spinning, one CPU busy",
	    "the same, every CPU busy at once",
	};
	for (int k = 0; k < NFLOORS; k++)
		if (k != 1 || us[1][0] > 0)
			bu_row(names[k], us[k], n, "us", 0);
	if (o->fio) {
		bu_row("fio psync randread 4k depth 1", fio_ops, n, "IOPS", 0);
		bu_row("fio psync p50 latency", fio_p50, n, "us", 0);
	}
	return o->json ? floors_json(o, keys, names, us, o->fio ? fio_ops : NULL, fio_p50) : 0;
}

static struct sample job_pin(const struct opts *o, uint64_t seed)
{
	struct sample s = {0};
	uint64_t npages = o->size / PG;
	rp_range *rg = malloc(o->pins * sizeof(*rg));
	struct bu_rp r;
	struct rp_stats st;

	if (!rg || bu_rp_open(&r, "vmbench", o->file, o->size, 1ull << 30, 32))
		exit(1);
	for (unsigned i = 0; i < o->pins; i++)
		rg[i] = (rp_range){(bu_rand(&seed) % npages) * PG, PG};
	double t0 = bu_now();
	int err = rp_pinv(r.m, rg, o->pins);
	double secs = bu_now() - t0;

	if (err) {
		fprintf(stderr, "vmbench: rp_pinv: %s\n", rp_errmsg());
		exit(1);
	}
	rp_stats(r.eng, &st);
	s.ops = (double)st.pages_loaded / secs;
	s.meta = (double)st.metadata_bytes / (double)st.resident_pages;
	bu_rp_close(&r);
	free(rg);
	return s;
}

/* ---------------------------------------------------------------- hot reads */

/* `reads` random reads of bs bytes (copies) at the start of a 4 KiB page of [a, a + len),
 * all resident and mapped: reads per second. With chase, each read's address depends on
 * the bytes the read before it copied (as a B-tree's descent, where the next page is
 * named in the one just read), so the CPU cannot overlap their misses, TLB misses
 * included; the addresses stay as random (the dependence is an AND with a zero the
 * compiler cannot see). */
static double hot_reads(const char *a, uint64_t len, unsigned reads, unsigned bs, bool chase,
                        uint64_t seed)
{
	static char buf[PG];
	const uint64_t npages = len / PG;
	volatile uint64_t zero_v = 0;
	const uint64_t zero = chase ? zero_v : 0;
	uint64_t dep = 0;
	double t0 = bu_now();

	for (unsigned i = 0; i < reads; i++) {
		memcpy(buf, a + ((bu_rand(&seed) + dep) % npages) * PG, bs);
		__asm__ volatile("" ::"r"(buf) : "memory");
		if (chase) {
			uint64_t w;

			memcpy(&w, buf, sizeof(w));
			dep = w & zero;
		}
	}
	return reads / (bu_now() - t0);
}

/* The hot job's kinds, in the order of their rows. The last two are the machine's floor
 * for the page size: anonymous memory with 4 KiB and with 2 MiB (transparent huge) pages,
 * no pager and no file, so that what a 2 MiB pool gains is read beside what 2 MiB pages
 * gain here at all. Under a hypervisor that keeps its own 4 KiB tables of the guest's
 * (shadow paging), a guest's 2 MiB page need not widen what the TLB covers. */
enum { HOT_RP_4K, HOT_RP_2M, HOT_KERNEL, HOT_ANON_4K, HOT_ANON_2M, HOT_KINDS };

/* Random reads of the first o->hot bytes once all of them are resident, mapped and read
 * once, through one kind (HOT_*): ringpager's mapping (the 2 MiB pool's range pinned
 * first), the kernel's mmap of the file (MADV_RANDOM), or anonymous memory written once.
 * Reads per second; 0 when the kind cannot be had here (*why: no huge pages reserved,
 * transparent huge pages off). */
static double job_hot(const struct opts *o, int how, uint64_t seed, char *why, size_t whylen)
{
	const uint64_t len = o->hot;
	double ops = 0;

	if (how == HOT_KERNEL) {
		int fd = open(o->file, O_RDONLY);
		char *a = fd < 0 ? MAP_FAILED : mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

		if (a == MAP_FAILED)
			die("hot: mmap of the file");
		/* 4 KiB entries whatever the page cache holds: on Linux 6.x a file read ahead
		 * into 2 MiB folios (ext4, xfs) is mapped with 2 MiB entries by any later mmap,
		 * MADV_RANDOM or not, unless the range says NOHUGEPAGE. */
		(void)madvise(a, len, MADV_NOHUGEPAGE);
		(void)madvise(a, len, MADV_RANDOM);
		(void)touch_pages(a, len / PG, false, seed);
		ops = hot_reads(a, len, o->reads, o->hot_bs, o->hot_chase, seed);
		const uint64_t pmd_kb = bu_proc_kb("/proc/self/smaps_rollup", "FilePmdMapped");

		if (pmd_kb > 0)
			fprintf(stderr, "vmbench: the kernel's mmap mapped %" PRIu64 " kB with 2 MiB "
			                "entries despite MADV_NOHUGEPAGE\n", pmd_kb);
		munmap(a, len);
		close(fd);
		return ops;
	}
	if (how == HOT_ANON_4K || how == HOT_ANON_2M) {
		const uint64_t huge = 2ull << 20;
		char *raw = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		                 -1, 0);

		if (raw == MAP_FAILED)
			die("hot: mmap of anonymous memory");
		char *a = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));

		(void)madvise(a, len, how == HOT_ANON_2M ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		for (uint64_t off = 0; off < len; off += PG)
			memset(a + off, (int)(off >> 12), 64);
		const uint64_t huge_kb = bu_proc_kb("/proc/self/smaps_rollup", "AnonHugePages");

		if (how == HOT_ANON_2M && huge_kb < len >> 11) { /* under half of it */
			snprintf(why, whylen, "%" PRIu64 " of %" PRIu64 " kB in transparent huge "
			         "pages (/sys/kernel/mm/transparent_hugepage/enabled)", huge_kb,
			         len >> 10);
			munmap(raw, len + huge);
			return 0;
		}
		ops = hot_reads(a, len, o->reads, o->hot_bs, o->hot_chase, seed);
		munmap(raw, len + huge);
		return ops;
	}
	rp_config c;
	rp_engine *eng = NULL;
	rp_store *st = NULL;
	rp_fileh *fh = NULL;
	rp_mapping *m = NULL;
	int err;

	rp_config_init(&c);
	/* Room above reclaim_high's 98%: the range stays whole. */
	c.ram_size = (len + len / 16 + (4ull << 20)) / (2ull << 20) * (2ull << 20);
	c.hugepages = how == HOT_RP_2M ? 1 : 2; /* require : off */
	if ((err = rp_config_load_env(&c)) || (err = rp_engine_open(&c, &eng)) ||
	    (err = rp_store_open(eng, o->file, O_RDONLY, &st)) || (err = rp_fileh_open(st, &fh)) ||
	    (err = rp_map(fh, 0, len, PROT_READ, &m)) || (err = rp_pin(m, 0, len))) {
		snprintf(why, whylen, "%s", rp_errmsg());
		rp_engine_close(eng);
		return 0;
	}
	(void)touch_pages(rp_mapping_addr(m), len / PG, false, seed); /* as the kernel's were */
	ops = hot_reads(rp_mapping_addr(m), len, o->reads, o->hot_bs, o->hot_chase, seed);
	rp_engine_close(eng);
	return ops;
}

/* Seconds between --hot jobs. A job that ends frees a gigabyte or more, and a virtual
 * machine that reports freed memory to its host (virtio-balloon free page reporting)
 * spends the next seconds handing it back: the kernel's mmap read at about half its speed
 * in four runs of six right after an engine closed (docs/benchmarks.md, "Hot reads
 * against the kernel's 4 KiB mmap"). */
#define HOT_SETTLE_S 5

static int run_hot(const struct opts *o)
{
	static const char *const names[HOT_KINDS] = {
	    "ringpager, 4 KiB pages", "ringpager, 2 MiB pages", "kernel mmap, 4 KiB pages",
	    "anonymous memory, 4 KiB pages", "anonymous memory, 2 MiB pages"};
	double ops[HOT_KINDS][BU_MAX_ROUNDS];
	char why[HOT_KINDS][256] = {""};
	bool have[HOT_KINDS];
	uint64_t seed = (uint64_t)(bu_now() * 1e9);

	for (int k = 0; k < HOT_KINDS; k++)
		have[k] = true;
	printf("vmbench --hot: %u random reads of %u bytes (at a 4 KiB page's start%s) of the "
	       "first %" PRIu64 " MiB of %s, all resident and mapped, %u rounds, %d s apart "
	       "(medians, min..max)\n",
	       o->reads, o->hot_bs, o->hot_chase ? ", each address after the read before" : "",
	       o->hot >> 20, o->file, o->rounds, HOT_SETTLE_S);
	for (unsigned r = 0; r < o->rounds; r++)
		for (int k = 0; k < HOT_KINDS; k++) {
			const int how = (k + (int)r) % HOT_KINDS;

			ops[how][r] = 0;
			if (!have[how])
				continue;
			if (r || k)
				sleep(HOT_SETTLE_S);
			ops[how][r] = job_hot(o, how, seed + r, why[how], sizeof(why[how]));
			if (ops[how][r] == 0)
				have[how] = false; /* the machine cannot: skip it from now on */
		}
	double med[HOT_KINDS];

	for (int k = 0; k < HOT_KINDS; k++) {
		med[k] = 0;
		if (!have[k]) {
			printf("  %-44s skipped: %s\n", names[k], why[k]);
			continue;
		}
		bu_row(names[k], ops[k], o->rounds, "reads/s", 0);
		med[k] = bu_median(ops[k], o->rounds);
	}
	const double kernel = med[HOT_KERNEL];

	printf("  ratio to the kernel's mmap:");
	if (have[HOT_RP_4K])
		printf(" 4 KiB pages %.2fx", med[HOT_RP_4K] / kernel);
	if (have[HOT_RP_2M])
		printf("%s 2 MiB pages %.2fx", have[HOT_RP_4K] ? "," : "", med[HOT_RP_2M] / kernel);
	printf("\n");
	if (have[HOT_ANON_2M] && have[HOT_ANON_4K]) {
		const double gain = med[HOT_ANON_2M] / med[HOT_ANON_4K];

		printf("  what 2 MiB pages gain on this machine (anonymous memory, 2 MiB / 4 KiB): "
		       "%.2fx", gain);
		if (have[HOT_RP_2M])
			printf("; ringpager's 2 MiB pool against the kernel's 4 KiB mmap, %.2f of it",
			       med[HOT_RP_2M] / kernel / gain);
		printf("\n");
	}
	return 0;
}

/* ---------------------------------------------------------------- report */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: vmbench [options]\n"
	        "  --file PATH      data file (default rp-bench.dat; created with random bytes)\n"
	        "  --size SIZE      bytes of it to map (default 4G)\n"
	        "  --rounds N       rounds, alternating ringpager and the reference (default 5)\n"
	        "  --touches N      cold random touches per round (default 20000)\n"
	        "  --pins N         random pages per rp_pinv (default 32768)\n"
	        "  --minor SIZE     resident range touched for the minor-fault cost (default 256M)\n"
	        "  --lone N         pages faulted one by one for the lone-fault cost (default 16384,\n"
	        "                   at most 32768)\n"
	        "  --runtime S      seconds per fio run (default 3)\n"
	        "  --no-fio         skip the fio references\n"
	        "  --floors         only the machine's mechanism costs (userfaultfd, SIGBUS and\n"
	        "                   kernel faults, mapping and unmapping, new pages over --size\n"
	        "                   (at most a quarter of the RAM), memcpy, a busy CPU's longest\n"
	        "                   stall, fio psync)\n"
	        "  --json PATH      with --floors: also write their medians to PATH, by key;\n"
	        "                   with --pager, its figures\n"
	        "  --pager KIND     only the simplest pager of a mechanism for --runtime seconds:\n"
	        "                   uffd (one handler thread), uffd-cpus (one per CPU), sigbus,\n"
	        "                   pin (batches of 32 read with io_uring); cold random 4 KiB\n"
	        "                   pages of --file, pages a second and the latency of each\n"
	        "  --hot SIZE       only random 4 KiB reads of the first SIZE bytes once resident:\n"
	        "                   ringpager with 4 KiB and 2 MiB pages (needs huge pages\n"
	        "                   reserved), the kernel's mmap of 4 KiB pages, and anonymous\n"
	        "                   memory with 4 KiB and 2 MiB pages (what huge pages gain here)\n"
	        "  --reads N        reads per --hot run (default 2000000)\n"
	        "  --hot-bs N       bytes per --hot read, 1..4096 (default 4096)\n"
	        "  --hot-chase      each --hot read's address waits for the read before it\n"
	        "                   (a B-tree's descent: no two misses overlap)\n"
	        "Engine keys come from RINGPAGER_* variables (RINGPAGER_FAULT_THREADS=1, ...).\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.file = "rp-bench.dat", .size = 4ull << 30, .rounds = 5, .touches = 20000,
	                 .pins = 32768, .lone = 16384, .minor_bytes = 256ull << 20, .runtime = 3,
	                 .fio = true, .reads = 2000000, .hot_bs = 4096};
	/* --lone: Wendelin's mechanism maps each page on its own (one VMA each in random
	 * order), against vm.max_map_count (65530 by default). */
	const struct bu_opt opts[] = {
	    BU_OPT("file", BU_STR, &o.file),         BU_OPT("size", BU_SIZE4K, &o.size),
	    BU_OPT("rounds", BU_ROUNDS, &o.rounds),  BU_OPT("touches", BU_COUNT, &o.touches),
	    BU_OPT("pins", BU_COUNT, &o.pins),       BU_OPT("minor", BU_SIZE4K, &o.minor_bytes),
	    BU_OPT("runtime", BU_SECONDS, &o.runtime), BU_OPT("no-fio", BU_CLEAR, &o.fio),
	    BU_OPT_MAX("lone", BU_COUNT, &o.lone, LONE_MAX),
	    BU_OPT("floors", BU_SET, &o.floors),     BU_OPT("json", BU_STR, &o.json),
	    BU_OPT("hot", BU_SIZE4K, &o.hot),        BU_OPT("reads", BU_COUNT, &o.reads),
	    BU_OPT_MAX("hot-bs", BU_COUNT, &o.hot_bs, 4096),
	    BU_OPT("hot-chase", BU_SET, &o.hot_chase),
	    BU_OPT("pager", BU_STR, &o.pager),
	};
	char describe[2048] = "";
	int parsed = bu_parse_opts("vmbench", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);

	if (parsed)
		return parsed == 1 ? 0 : 2;
	if (o.pager && pager_kind_of(o.pager) < 0)
		return 2;
	if (bu_ensure_file("vmbench", o.file, o.size))
		return 1;
	if (o.minor_bytes > o.size)
		o.minor_bytes = o.size;
	if (o.lone > o.size / PG)
		o.lone = (unsigned)(o.size / PG);
	if (o.fio && !bu_have_fio()) {
		fprintf(stderr, "vmbench: fio not found: references skipped (--no-fio to silence)\n");
		o.fio = false;
	}
	if (o.json && !o.floors && !o.pager) {
		fprintf(stderr, "vmbench: --json goes with --floors or --pager\n");
		return 2;
	}
	if (o.pager)
		return pager_cmd(&o);
	if (o.floors)
		return run_floors(&o);
	if (o.hot) {
		o.hot = o.hot / (2ull << 20) * (2ull << 20);
		if (!o.hot || o.hot > o.size) {
			fprintf(stderr, "vmbench: --hot must be at least 2M and at most --size\n");
			return 2;
		}
		return run_hot(&o);
	}
	{
		/* The engine the jobs open: the defaults with the RINGPAGER_* variables. */
		rp_config cfg;
		rp_engine *e;

		rp_config_init(&cfg);
		if (rp_config_load_env(&cfg) == 0 && rp_engine_open(&cfg, &e) == 0) {
			snprintf(describe, sizeof(describe), "%s", rp_engine_describe(e));
			printf("vmbench: engine: %s\n", describe);
			rp_engine_close(e);
		}
	}
	printf("vmbench: %s, %" PRIu64 " MiB mapped, %u rounds (medians, min..max, ratio to the "
	       "reference)\n",
	       o.file, o.size >> 20, o.rounds);

	double cold_ops[BU_MAX_ROUNDS], cold_p50[BU_MAX_ROUNDS], fio1_ops[BU_MAX_ROUNDS],
	    fio1_p50[BU_MAX_ROUNDS], pin_ops[BU_MAX_ROUNDS], fio32_ops[BU_MAX_ROUNDS],
	    meta_sparse[BU_MAX_ROUNDS], meta_dense[BU_MAX_ROUNDS], mn_seq[BU_MAX_ROUNDS],
	    mn_rand[BU_MAX_ROUNDS], k_seq[BU_MAX_ROUNDS], k_rand[BU_MAX_ROUNDS],
	    lone_rp[BU_MAX_ROUNDS], lone_uffd[BU_MAX_ROUNDS], lone_sigbus[BU_MAX_ROUNDS],
	    lone_segv[BU_MAX_ROUNDS], lone_wendelin[BU_MAX_ROUNDS], lone_rp_unbound[BU_MAX_ROUNDS];
	uint64_t seed = (uint64_t)(bu_now() * 1e9);

	for (unsigned r = 0; r < o.rounds; r++) {
		for (int k = 0; k < 2; k++) {
			bool ref = (k == 0) == (r % 2 == 0);

			if (!ref) {
				struct sample s = job_cold(&o, seed + r);

				cold_ops[r] = s.ops;
				cold_p50[r] = s.p50;
				s = job_pin(&o, seed + 1000 + r);
				pin_ops[r] = s.ops;
				meta_sparse[r] = s.meta;
			} else if (o.fio) {
				struct bu_fio f = bu_run_fio(o.file, "randread", PG, 1, o.size, o.runtime,
				                             "psync");

				fio1_ops[r] = f.iops;
				fio1_p50[r] = f.p50_us;
				f = bu_run_fio(o.file, "randread", PG, 32, o.size, o.runtime, "io_uring");
				fio32_ops[r] = f.iops;
			}
		}
		struct minor_sample m = job_minor(&o, seed + 2000 + r);

		mn_seq[r] = m.rp_seq;
		mn_rand[r] = m.rp_rand;
		k_seq[r] = m.kernel_seq;
		k_rand[r] = m.kernel_rand;
		meta_dense[r] = m.meta;
		struct lone_sample l = job_lone(&o, seed + 3000 + r);

		lone_rp[r] = l.rp;
		lone_rp_unbound[r] = l.rp_unbound;
		lone_uffd[r] = l.uffd;
		lone_sigbus[r] = l.sigbus;
		lone_segv[r] = l.segv;
		lone_wendelin[r] = l.wendelin;
		fprintf(stderr, "vmbench: round %u of %u done\n", r + 1, o.rounds);
	}
	unsigned n = o.rounds;

	printf("cold random 4 KiB touches, one thread:\n");
	if (o.fio)
		bu_row("fio psync randread 4k depth 1", fio1_ops, n, "IOPS", 0);
	bu_row("ringpager touches", cold_ops, n, "/s", o.fio ? bu_median(fio1_ops, n) : 0);
	if (o.fio)
		bu_row("fio psync p50 latency", fio1_p50, n, "us", 0);
	bu_row("ringpager p50 latency", cold_p50, n, "us", o.fio ? bu_median(fio1_p50, n) : 0);
	printf("minor fault (page resident in the pool, not mapped):\n");
	bu_row("kernel memfd minor fault, ascending", k_seq, n, "us", 0);
	bu_row("ringpager, ascending", mn_seq, n, "us", bu_median(k_seq, n));
	bu_row("kernel memfd minor fault, random order", k_rand, n, "us", 0);
	bu_row("ringpager, random order", mn_rand, n, "us", bu_median(k_rand, n));
	printf("minor fault, one per page (%u resident pages in random order, RANDOM advice; the "
	       "thread bound to its CPU unless said):\n", o.lone);
	const bool sigbus_mode = strstr(describe, "fault_mode=sigbus") != NULL;

	bu_row("userfaultfd, served on the same CPU", lone_uffd, n, "us", 0);
	bu_row("userfaultfd SIGBUS, served in the handler", lone_sigbus, n, "us", 0);
	bu_row("SIGSEGV + mmap(MAP_FIXED) (Wendelin's)", lone_segv, n, "us", 0);
	bu_row("Wendelin's read fault, its system calls", lone_wendelin, n, "us", 0);
	bu_row(sigbus_mode ? "ringpager (to the SIGBUS floor)" : "ringpager (to the userfaultfd floor)",
	       lone_rp, n, "us", bu_median(sigbus_mode ? lone_sigbus : lone_uffd, n));
	bu_row("ringpager, the thread not bound", lone_rp_unbound, n, "us",
	       bu_median(sigbus_mode ? lone_sigbus : lone_uffd, n));
	printf("  ringpager / Wendelin's read fault (its system calls, no-op load): %.2fx the "
	       "time bound, %.2fx not bound\n", bu_median(lone_rp, n) / bu_median(lone_wendelin, n),
	       bu_median(lone_rp_unbound, n) / bu_median(lone_wendelin, n));
	printf("rp_pinv of %u random pages, queue depth 32:\n", o.pins);
	if (o.fio)
		bu_row("fio io_uring randread 4k depth 32", fio32_ops, n, "IOPS", 0);
	bu_row("ringpager rp_pinv", pin_ops, n, "pages/s", o.fio ? bu_median(fio32_ops, n) : 0);
	printf("metadata per resident 4 KiB page:\n");
	bu_row("after rp_pinv (sparse random pages)", meta_sparse, n, "bytes", 0);
	bu_row("after the minor job (dense run)", meta_dense, n, "bytes", 0);
	return 0;
}
