/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_crash.c - kill -9: what a store holds after the process writing it dies.
 *
 * A child process maps a file and writes it in generations: generation g writes a
 * subset of the pages (chosen from the trial's seed, so the parent knows which), each
 * page self-describing (magic, page index, generation, a checksum of the whole page),
 * then writes them out (rp_writeout or rp_writeout_async, with SYNC or without). It
 * tells the parent through a pipe when it starts writeout g ('S', before the call) and
 * when writeout g has succeeded ('D'). The parent kills it with SIGKILL at a random
 * moment, or just after it announces a writeout, then reads the file back. Every page
 * must be:
 *   - whole: its magic and checksum hold (not torn, not garbage);
 *   - its own: its index is the page's (not another page's bytes);
 *   - no older than the last writeout reported done that wrote the page;
 *   - from a generation that wrote the page, and no newer than the last writeout started
 *     (the engine writes back only when asked).
 *
 * RP_CRASH_TRIALS sets the number of trials (default 24; tests/soak runs hundreds) and
 * RP_CRASH_SEED the first trial's seed (default: from the clock). The seed is printed; a
 * trial replays from it.
 */
#include "ringpager.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG       4096ul
#define NPAGES   512
#define MAX_GEN  100000
#define MAGIC    0x52504b494c4c3921ull /* "RPKILL9!" */

struct page_head {
	uint64_t magic, idx, gen, seed;
};

/* A hash of x (splitmix64's step). */
static uint64_t mix(uint64_t x)
{
	return tu_rand(&x);
}

/* Whether generation g writes page i (generation 0, the file as created, writes all). */
static bool writes(uint64_t seed, uint64_t g, uint64_t i)
{
	if (g == 0)
		return true;
	uint64_t r = mix(seed ^ mix(g * 0x9e3779b97f4a7c15ull + i));
	/* Some generations write every page, some a few: both shapes of a commit. */
	return mix(seed + g) % 4 == 0 ? true : r % 3 == 0;
}

static uint64_t checksum(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void make_page(unsigned char *p, uint64_t seed, uint64_t idx, uint64_t gen)
{
	struct page_head h = {MAGIC, idx, gen, seed};
	uint64_t x = mix(seed ^ idx ^ (gen << 20));

	memcpy(p, &h, sizeof(h));
	for (size_t o = sizeof(h); o < PG - 8; o += 8) {
		x = mix(x + 1);
		memcpy(p + o, &x, 8);
	}
	uint64_t c = checksum(p, PG - 8);

	memcpy(p + PG - 8, &c, 8);
}

/* ---------------------------------------------------------------- the child */

static void tell(int fd, char what, uint64_t gen)
{
	char rec[9];

	rec[0] = what;
	memcpy(rec + 1, &gen, 8);
	if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec))
		_exit(3);
}

/* Never returns. Exit codes: 0 all generations done, 2 setup failed, 3 pipe, 4 writeout
 * failed. */
static void child(const char *path, uint64_t seed, const char *dirty, int out)
{
	rp_config cfg;
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	unsigned char *page = tu_aligned(PG);

	tu_config_init(&cfg);
	cfg.ram_size = 16ul << 20;
	cfg.hugepages = 2;
	if (rp_config_set(&cfg, "dirty_tracking", dirty) ||
	    (!strcmp(dirty, "wp_sync") && rp_config_set(&cfg, "fault_mode", "uffd")) ||
	    rp_engine_open(&cfg, &eng) || rp_store_open(eng, path, O_RDWR, &st) ||
	    rp_fileh_open(st, &fh) || rp_map(fh, 0, NPAGES * PG, PROT_READ | PROT_WRITE, &m))
		_exit(2);
	unsigned char *a = rp_mapping_addr(m);
	struct tu_done w = TU_DONE_INIT;

	for (uint64_t g = 1; g < MAX_GEN; g++) {
		static const int flag_sets[] = {
		    RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC,
		    RP_WRITEOUT_STORE | RP_WRITEOUT_SYNC,
		    RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED,
		};
		const uint64_t r = mix(seed * 31 + g);
		const int flags = flag_sets[r % 3];
		int err;

		for (uint64_t i = 0; i < NPAGES; i++)
			if (writes(seed, g, i)) {
				make_page(page, seed, i, g);
				memcpy(a + i * PG, page, PG);
			}
		tell(out, 'S', g);
		if ((r >> 8) & 1) {
			err = rp_writeout_async(fh, flags, tu_done_fn, &w);
			if (!err)
				err = tu_done_wait(&w);
		} else
			err = rp_writeout(fh, flags);
		if (err)
			_exit(4);
		tell(out, 'D', g);
	}
	_exit(0);
}

/* ---------------------------------------------------------------- the parent */

struct verdict {
	unsigned torn, garbage, foreign, older, never_called;
};

static void check_file(const char *path, uint64_t seed, uint64_t started, uint64_t durable,
                       struct verdict *v)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *p = tu_aligned(PG);

	cr_assert_geq(fd, 0);
	for (uint64_t i = 0; i < NPAGES; i++) {
		struct page_head h;
		uint64_t c, floor = 0, ceiling = 0;

		cr_assert_eq(pread(fd, p, PG, (off_t)(i * PG)), (ssize_t)PG);
		memcpy(&h, p, sizeof(h));
		memcpy(&c, p + PG - 8, 8);
		if (h.magic != MAGIC || h.seed != seed) {
			v->garbage++;
			continue;
		}
		if (c != checksum(p, PG - 8)) {
			v->torn++;
			continue;
		}
		if (h.idx != i) {
			v->foreign++;
			continue;
		}
		for (uint64_t g = 0; g <= started; g++)
			if (writes(seed, g, i)) {
				ceiling = g;
				if (g <= durable)
					floor = g;
			}
		if (h.gen < floor)
			v->older++;
		else if (h.gen > ceiling || !writes(seed, h.gen, i))
			v->never_called++;
	}
	free(p);
	close(fd);
}

/* One trial: a fresh generation 0, a child killed, the file checked into *v. Counts the
 * kills that came just after a writeout started in *mid_writeout. */
static void trial(const char *path, uint64_t seed, struct verdict *v, unsigned *mid_writeout)
{
	unsigned char *p = tu_aligned(PG);
	int fd = open(path, O_WRONLY | O_CLOEXEC), pfd[2];
	const char *dirty = mix(seed) & 1 ? "wp_sync" : "wp_async";
	const uint64_t r = mix(seed ^ 0x5151);
	/* Kill on the k-th writeout's start, or a random time after the first one. */
	const unsigned kill_at_start = r % 2 ? 1 + (unsigned)((r >> 8) % 24) : 0;
	const unsigned delay_us = (unsigned)((r >> 16) % 60000);
	uint64_t started = 0, durable = 0;

	cr_assert_geq(fd, 0);
	for (uint64_t i = 0; i < NPAGES; i++) {
		make_page(p, seed, i, 0);
		cr_assert_eq(pwrite(fd, p, PG, (off_t)(i * PG)), (ssize_t)PG);
	}
	cr_assert_eq(fdatasync(fd), 0);
	close(fd);
	free(p);
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);

	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		close(pfd[0]);
		child(path, seed, dirty, pfd[1]);
	}
	close(pfd[1]);

	struct timespec t0 = {0, 0}, now;
	bool killed = false;
	unsigned starts = 0;
	char rec[9];
	size_t have = 0;

	for (;;) {
		struct pollfd pf = {pfd[0], POLLIN, 0};

		clock_gettime(CLOCK_MONOTONIC, &now);
		long el = (now.tv_sec - t0.tv_sec) * 1000000 + (now.tv_nsec - t0.tv_nsec) / 1000;

		if (!killed && !kill_at_start && started && el >= (long)delay_us) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (poll(&pf, 1, killed ? 1000 : 1) < 0 && errno != EINTR)
			cr_assert_fail("poll: %s", strerror(errno));
		if (!(pf.revents & (POLLIN | POLLHUP)))
			continue;
		ssize_t n = read(pfd[0], rec + have, sizeof(rec) - have);

		if (n <= 0)
			break; /* the child is gone: every record it wrote has been read */
		have += (size_t)n;
		if (have < sizeof(rec))
			continue;
		have = 0;
		uint64_t g;

		memcpy(&g, rec + 1, 8);
		if (rec[0] == 'S') {
			if (!started)
				clock_gettime(CLOCK_MONOTONIC, &t0);
			started = g;
			if (!killed && kill_at_start && ++starts == kill_at_start) {
				kill(pid, SIGKILL);
				killed = true;
				(*mid_writeout)++;
			}
		} else
			durable = g;
	}
	close(pfd[0]);
	int status = 0;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	          "seed %" PRIu64 ": the child ended by itself (status 0x%x: 2 setup, 4 writeout)",
	          seed, status);
	check_file(path, seed, started, durable, v);
	cr_log_info("seed %" PRIu64 " (%s, %s): killed after %" PRIu64 " writeouts started, %" PRIu64
	            " done",
	            seed, dirty, kill_at_start ? "at a writeout's start" : "at a random moment",
	            started, durable);
}

Test(crash, kill_9_leaves_every_page_whole_and_no_older_than_its_last_writeout,
     .timeout = 1800)
{
	const char *e = getenv("RP_CRASH_TRIALS");
	const unsigned trials = e && *e ? (unsigned)strtoul(e, NULL, 10) : 24;
	uint64_t seed0 = (uint64_t)time(NULL) * 1000003u + (uint64_t)getpid();
	char *path = tu_scratch_file("crash", NPAGES * PG, 1);
	struct verdict v = {0};
	unsigned mid = 0;

	if ((e = getenv("RP_CRASH_SEED")) && *e)
		seed0 = strtoull(e, NULL, 0);
	fprintf(stderr, "crash: %u trials from seed %" PRIu64 " (RP_CRASH_SEED replays)\n", trials,
	        seed0);
	for (unsigned t = 0; t < trials; t++) {
		struct verdict one = {0};

		trial(path, seed0 + t, &one, &mid);
		cr_expect(!one.torn && !one.garbage && !one.foreign && !one.older &&
		              !one.never_called,
		          "seed %" PRIu64 ": %u torn, %u garbage, %u foreign, %u older than the last "
		          "durable writeout, %u from a writeout never called",
		          seed0 + t, one.torn, one.garbage, one.foreign, one.older, one.never_called);
		v.torn += one.torn;
		v.garbage += one.garbage;
		v.foreign += one.foreign;
		v.older += one.older;
		v.never_called += one.never_called;
	}
	fprintf(stderr,
	        "crash: %u trials (%u killed just after a writeout started), %u pages checked "
	        "each: %u torn, %u garbage, %u foreign, %u older, %u never called\n",
	        trials, mid, NPAGES, v.torn, v.garbage, v.foreign, v.older, v.never_called);
	tu_unlink(path);
}
