/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/vm/test_atomic.c - RP_WRITEOUT_ATOMIC: the redo log, its refusals and failures,
 * and a process killed with SIGKILL at random moments of its atomic writeouts
 * (RP_ATOMIC_TRIALS, default 200), after which the store holds one writeout's state or
 * the one before, pages and size, never a mix.
 */
#include "ringpager.h"
#include "common/testutil.h"
#include "vm/testing.h"
#include "vm/atomic.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096ull
#define ATOMIC (RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC | RP_WRITEOUT_ATOMIC)

static rp_engine *engine(const char *log_dir, const char *log_max)
{
	rp_config cfg;
	rp_engine *eng;

	tu_config_init(&cfg);
	cfg.ram_size = 32ull << 20;
	if (log_dir)
		cr_assert_eq(rp_config_set(&cfg, "atomic_log_dir", log_dir), 0, "%s", rp_errmsg());
	if (log_max)
		cr_assert_eq(rp_config_set(&cfg, "atomic_log_max", log_max), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_engine_open(&cfg, &eng), 0, "%s", rp_errmsg());
	return eng;
}

static uint64_t fsize(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : UINT64_MAX;
}

static char *slurp(const char *path, uint64_t *n)
{
	*n = fsize(path);
	char *b = malloc(*n + 1);
	int fd = open(path, O_RDONLY);

	cr_assert(b && fd >= 0);
	cr_assert_eq(pread(fd, b, *n, 0), (ssize_t)*n);
	close(fd);
	return b;
}

/* Whether the log holds no writeout: absent, empty, or its head zeroed. */
static bool log_empty(const char *log)
{
	char magic[8] = {0}, zero[8] = {0};
	int fd = open(log, O_RDONLY);

	if (fd < 0)
		return true;
	ssize_t n = pread(fd, magic, 8, 0);

	close(fd);
	return n <= 0 || !memcmp(magic, zero, 8);
}

static char *log_of(const char *path)
{
	char *l = malloc(strlen(path) + 8);

	sprintf(l, "%s-rplog", path);
	return l;
}

/* A store, handle and writable mapping of `map` bytes over path, on eng; fx_close
 * closes the three and leaves the engine and the file (tu_map_close takes both). */
static void fx_open(struct tu_map *f, rp_engine *eng, const char *path, uint64_t map)
{
	memset(f, 0, sizeof(*f));
	f->eng = eng;
	f->path = (char *)path;
	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &f->st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(f->st, &f->fh), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_map(f->fh, 0, map, PROT_READ | PROT_WRITE, &f->m), 0, "%s", rp_errmsg());
	f->a = rp_mapping_addr(f->m);
}

static void fx_close(struct tu_map *f)
{
	cr_assert_eq(rp_unmap(f->m), 0);
	cr_assert_eq(rp_fileh_close(f->fh), 0);
	cr_assert_eq(rp_store_close(f->st), 0);
}

/* An atomic writeout reaches the file, size included, and empties its log. */
Test(atomic, writes_through_a_log_it_empties)
{
	char *path = tu_scratch_file("at_basic", 16 * PG, 1), *log = log_of(path);
	struct tu_map f;
	uint64_t n;

	fx_open(&f, engine(NULL, NULL), path, 64 * PG);
	cr_assert_eq(rp_fileh_resize(f.fh, 20 * PG + 100), 0, "%s", rp_errmsg());
	tu_fill(f.a + 3 * PG, PG, 2, 3 * PG);
	tu_fill(f.a + 18 * PG, PG, 2, 18 * PG);
	cr_assert_eq(rp_writeout(f.fh, ATOMIC), 0, "%s", rp_errmsg());
	cr_assert(log_empty(log), "the log is emptied");
	char *b = slurp(path, &n);

	cr_assert_eq(n, 20 * PG + 100);
	tu_expect_fill(b, 3 * PG, 1, 0);
	tu_expect_fill(b + 3 * PG, PG, 2, 3 * PG);
	tu_expect_fill(b + 18 * PG, PG, 2, 18 * PG);
	free(b);
	/* refusals */
	cr_assert_eq(rp_writeout(f.fh, RP_WRITEOUT_STORE | RP_WRITEOUT_ATOMIC), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "SYNC"), "%s", rp_errmsg());
	rp_fileh *one[1] = {f.fh};

	cr_assert_eq(rp_writeoutv(one, 1, ATOMIC), -EINVAL);
	fx_close(&f);
	/* an emptied log does not keep the store from opening read-only */
	rp_store *ro;

	cr_assert_eq(rp_store_open(f.eng, path, O_RDONLY, &ro), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_size(ro), 20 * PG + 100);
	cr_assert_eq(rp_store_close(ro), 0);
	rp_engine_close(f.eng);
	tu_unlink(path);
	unlink(log);
	free(log);
}

/* A write O_DIRECT refuses (a source not aligned for it) goes through the page cache, and
 * the log it leaves is complete and applies. */
Test(atomic, a_log_that_o_direct_refuses_is_written_through_the_page_cache)
{
	char *path = tu_scratch_file("at_buffered", 8 * PG, 11), *log = log_of(path);
	int lfd = open(log, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600),
	    sfd = open(path, O_RDWR | O_CLOEXEC);
	char *pages = NULL, msg[256];

	cr_assert(lfd >= 0 && sfd >= 0 && !posix_memalign((void **)&pages, PG, 3 * PG),
	          "%s", strerror(errno));
	/* 8 bytes past a page: aligned for the checksum's words, not for O_DIRECT (EINVAL) */
	tu_fill(pages + 8, 2 * PG, 12, 2 * PG);
	const struct vm_log_run run = {2, 2, pages + 8};

	cr_assert_eq(vm_log_write(lfd, &run, 1, PG, 8 * PG, UINT64_MAX, 1ull << 30, msg,
	                          sizeof(msg)),
	             0, "%s", msg);
	cr_assert_eq(fcntl(lfd, F_GETFL) & O_DIRECT, 0, "the descriptor left O_DIRECT");
	cr_assert_eq(vm_log_pending(lfd), 1, "the log is complete");
	cr_assert_eq(vm_log_recover(lfd, sfd, msg, sizeof(msg)), 1, "%s", msg);
	cr_assert(log_empty(log));
	uint64_t n;
	char *b = slurp(path, &n);

	cr_assert_eq(n, 8 * PG);
	tu_expect_fill(b, 2 * PG, 11, 0);
	tu_expect_fill(b + 2 * PG, 2 * PG, 12, 2 * PG);
	tu_expect_fill(b + 4 * PG, 4 * PG, 11, 4 * PG);
	free(b);
	free(pages);
	close(lfd);
	close(sfd);
	tu_unlink(path);
	unlink(log);
	free(log);
}

/* A log in the format before (RPLOG01: the pages right after the index, a bare tail),
 * left by a crash under an older ringpager, is applied at the store's open. */
Test(atomic, a_log_of_the_format_before_is_applied_at_open)
{
	char *path = tu_scratch_file("at_v1", 8 * PG, 21), *log = log_of(path);
	struct {
		char magic[8];
		uint64_t psz, size, cut, n, sum;
	} h = {.magic = "RPLOG01", .psz = PG, .size = 6 * PG, .cut = UINT64_MAX, .n = 2};
	struct {
		uint64_t sum;
		char end[8];
	} t = {.end = {'R', 'P', 'L', 'O', 'G', 'E', 'N', 'D'}};
	const uint64_t index[2] = {1, 5};
	char *pages = malloc(2 * PG);

	cr_assert(pages);
	tu_fill(pages, PG, 22, PG);
	tu_fill(pages + PG, PG, 22, 5 * PG);
	h.sum = vm_log_sum(vm_log_sum(VM_LOG_SUM_SEED, index, sizeof(index)), pages, 2 * PG);
	t.sum = h.sum;
	int fd = open(log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	cr_assert_eq(pwrite(fd, index, sizeof(index), sizeof(h)), (ssize_t)sizeof(index));
	cr_assert_eq(pwrite(fd, pages, 2 * PG, sizeof(h) + sizeof(index)), (ssize_t)(2 * PG));
	cr_assert_eq(pwrite(fd, &t, sizeof(t), sizeof(h) + sizeof(index) + 2 * PG),
	             (ssize_t)sizeof(t));
	close(fd);
	rp_engine *eng = engine(NULL, NULL);
	rp_store *st;

	cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_store_size(st), 6 * PG, "the log's size");
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	cr_assert(log_empty(log), "applied, then emptied");
	uint64_t n;
	char *b = slurp(path, &n);

	cr_assert_eq(n, 6 * PG);
	tu_expect_fill(b, PG, 21, 0);
	tu_expect_fill(b + PG, PG, 22, PG);
	tu_expect_fill(b + 2 * PG, 3 * PG, 21, 2 * PG);
	tu_expect_fill(b + 5 * PG, PG, 22, 5 * PG);
	free(b);
	free(pages);
	tu_unlink(path);
	unlink(log);
	free(log);
}

/* A log that cannot be written (its directory is missing; too large for atomic_log_max):
 * the writeout fails, the store is as it was, the pages stay dirty. */
Test(atomic, a_failed_log_leaves_the_store_unchanged)
{
	char *path = tu_scratch_file("at_nolog", 16 * PG, 3);
	const char *dirs[2] = {"/nonexistent-ringpager-dir", NULL};
	const char *maxes[2] = {NULL, "64k"};
	const int want[2] = {-ENOENT, -EFBIG};

	for (int i = 0; i < 2; i++) {
		struct tu_map f;
		uint64_t n, dirty;

		fx_open(&f, engine(dirs[i], maxes[i]), path, 16 * PG);
		for (uint64_t p = 0; p < 16; p++)
			tu_fill(f.a + p * PG, PG, 4, p * PG);
		if (i == 0) /* a size to change too; 16 dirty pages need a log over 64k */
			cr_assert_eq(rp_fileh_resize(f.fh, 10 * PG), 0);
		cr_assert_eq(rp_writeout(f.fh, ATOMIC), want[i], "%s", rp_errmsg());
		cr_assert(strstr(rp_errmsg(), i ? "atomic_log_max" : "redo log"), "%s", rp_errmsg());
		char *b = slurp(path, &n);

		cr_assert_eq(n, 16 * PG, "the size is as it was");
		tu_expect_fill(b, n, 3, 0);
		free(b);
		cr_assert_eq(rp_fileh_dirty(f.fh, &dirty), 0);
		cr_assert_eq(dirty, i == 0 ? 10 : 16);
		cr_assert_eq(rp_discard(f.fh), 0);
		fx_close(&f);
		rp_engine_close(f.eng);
	}
	char *log = log_of(path);

	unlink(log);
	free(log);
	tu_unlink(path);
}

/* A write in place that fails after the log is durable: the log is applied at once, and
 * the store holds all of the writeout. */
Test(atomic, a_failure_after_the_log_rolls_forward)
{
	char *path = tu_scratch_file("at_fwd", 32 * PG, 5), *log = log_of(path);
	struct tu_map f;
	uint64_t n;

	fx_open(&f, engine(NULL, NULL), path, 32 * PG);
	for (uint64_t p = 0; p < 32; p += 3)
		tu_fill(f.a + p * PG, PG, 6, p * PG);
	struct rpio_fault fault = {
	    .ops = 1u << IO_OP_WRITE, .off_lo = 9 * PG, .off_hi = 10 * PG, .err = EIO};

	rpio_dev_inject(vm_test_dev(f.st), &fault);
	cr_assert_eq(rp_writeout(f.fh, ATOMIC), -EIO, "%s", rp_errmsg());
	rpio_dev_inject(vm_test_dev(f.st), NULL);
	cr_assert(log_empty(log), "applied and emptied");
	char *b = slurp(path, &n);

	for (uint64_t p = 0; p < 32; p++)
		if (p % 3 == 0)
			tu_expect_fill(b + p * PG, PG, 6, p * PG);
		else
			tu_expect_fill(b + p * PG, PG, 5, p * PG);
	free(b);
	fx_close(&f);
	rp_engine_close(f.eng);
	unlink(log);
	free(log);
	tu_unlink(path);
}

/* Custom stores keep no log; a block device needs atomic_log_dir. */
static int nul_load(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok)
{
	(void)ctx, (void)off, (void)tok;
	memset(buf, 0, len);
	return 0;
}

static int nul_store(void *ctx, uint64_t off, const void *buf, size_t len, rp_store_token *tok)
{
	(void)ctx, (void)off, (void)buf, (void)len, (void)tok;
	return 0;
}

Test(atomic, refused_where_no_log_can_be)
{
	rp_engine *eng = engine(NULL, NULL);
	const rp_store_ops ops = {.load = nul_load, .store = nul_store};
	rp_store *st;
	rp_fileh *fh;

	cr_assert_eq(rp_store_create(eng, &ops, NULL, 8 * PG, &st), 0);
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_writeout(fh, ATOMIC), -EOPNOTSUPP);
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);

	char dev[64], *path;
	int loopfd = tu_loop_scratch("at_loop", 64 * PG, 3, 4096, &path, dev, sizeof(dev));

	eng = engine(NULL, NULL);
	cr_assert_eq(rp_store_open(eng, dev, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_writeout(fh, ATOMIC), -EINVAL);
	cr_assert(strstr(rp_errmsg(), "atomic_log_dir"), "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	/* with a directory for its logs, a block device's writeout is atomic too */
	eng = engine(tu_dir(), NULL);
	cr_assert_eq(rp_store_open(eng, dev, O_RDWR, &st), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_open(st, &fh), 0);
	cr_assert_eq(rp_write(fh, 5 * PG, "atomic", 6), 6);
	cr_assert_eq(rp_writeout(fh, ATOMIC), 0, "%s", rp_errmsg());
	cr_assert_eq(rp_fileh_close(fh), 0);
	cr_assert_eq(rp_store_close(st), 0);
	rp_engine_close(eng);
	/* its log is in that directory, named by the device node's DEV-INO */
	struct stat sb;
	char log[4200];

	cr_assert_eq(stat(dev, &sb), 0);
	snprintf(log, sizeof(log), "%s/%" PRIu64 "-%" PRIu64 ".rplog", tu_dir(), (uint64_t)sb.st_dev,
	         (uint64_t)sb.st_ino);
	cr_assert_eq(unlink(log), 0, "the block device's log %s: %s", log, strerror(errno));
	cr_assert(tu_loop_detach(loopfd, dev));
	tu_unlink(path);
}

/* ---------------------------------------------------------------- kill -9 */

#define KPAGES 48 /* pages of the file at most */

/* The store's state after version v: each page's version (0: the file's first bytes,
 * -1: zeros: cut away and grown again), and the size in pages. Version v > 0 sets the
 * size to 24..47 pages, then writes 6 random pages below it. */
struct kstate {
	int ver[KPAGES];
	unsigned pages;
};

static void k_apply(struct kstate *s, unsigned v)
{
	uint64_t r = 0x9e3779b97f4a7c15ull * v;
	const unsigned pages = 24 + (unsigned)(tu_rand(&r) % 24);

	for (unsigned p = pages; p < KPAGES; p++)
		s->ver[p] = -1;
	s->pages = pages;
	for (int k = 0; k < 6; k++)
		s->ver[tu_rand(&r) % pages] = (int)v;
}

static void k_state(struct kstate *s, unsigned v)
{
	for (unsigned p = 0; p < KPAGES; p++)
		s->ver[p] = p < 32 ? 0 : -1; /* the file's 32 pages, then nothing */
	s->pages = 32;
	for (unsigned i = 1; i <= v; i++)
		k_apply(s, i);
}

static void k_page(char *buf, int ver, unsigned p, uint64_t seed)
{
	if (ver < 0)
		memset(buf, 0, PG);
	else
		tu_fill(buf, PG, ver ? 1000 + (uint64_t)ver : seed, p * PG);
}

static bool k_matches(const char *b, uint64_t n, unsigned v, uint64_t seed)
{
	struct kstate s;
	char page[PG];

	k_state(&s, v);
	if (n != s.pages * PG)
		return false;
	for (unsigned p = 0; p < s.pages; p++) {
		k_page(page, s.ver[p], p, seed);
		if (memcmp(b + p * PG, page, PG))
			return false;
	}
	return true;
}

/* The child: version after version, each one atomic, each reported once durable. */
static void k_child(const char *path, int out)
{
	rp_engine *eng = engine(NULL, NULL);
	struct tu_map f;

	fx_open(&f, eng, path, KPAGES * PG);
	for (unsigned v = 1;; v++) {
		struct kstate s;

		k_state(&s, v - 1);
		struct kstate t = s;

		k_apply(&t, v);
		if (rp_fileh_resize(f.fh, t.pages * PG))
			_exit(3);
		for (unsigned p = 0; p < t.pages; p++)
			if (t.ver[p] == (int)v)
				k_page(f.a + p * PG, (int)v, p, 0);
		if (rp_writeout(f.fh, ATOMIC))
			_exit(4);
		if (write(out, &v, sizeof(v)) != sizeof(v))
			_exit(5);
	}
}

Test(atomic, sigkill_leaves_one_writeout_or_the_one_before, .timeout = 600)
{
	const char *env = getenv("RP_ATOMIC_TRIALS");
	const unsigned trials = env ? (unsigned)atoi(env) : 200;
	uint64_t rng = (uint64_t)time(NULL);
	unsigned replayed = 0, max_v = 0;

	for (unsigned t = 0; t < trials; t++) {
		const uint64_t seed = 7 + t;
		char *path = tu_scratch_file("at_kill", 32 * PG, seed), *log = log_of(path);
		int pfd[2];

		cr_assert_eq(pipe(pfd), 0);
		pid_t pid = fork();

		cr_assert_geq(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			k_child(path, pfd[1]);
		}
		close(pfd[1]);
		/* the engine's start takes a few ms; then writeouts of a few ms each */
		usleep((useconds_t)(2000 + tu_rand(&rng) % 40000));
		kill(pid, SIGKILL);
		int status;

		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status), "trial %u: the child ended by itself (%d)", t,
		          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		unsigned v = 0, got;

		while (read(pfd[0], &got, sizeof(got)) == sizeof(got))
			v = got;
		close(pfd[0]);
		if (!log_empty(log))
			replayed++;
		/* the next open applies what the crash left */
		rp_engine *eng = engine(NULL, NULL);
		rp_store *st;

		cr_assert_eq(rp_store_open(eng, path, O_RDWR, &st), 0, "%s", rp_errmsg());
		cr_assert_eq(rp_store_close(st), 0);
		rp_engine_close(eng);
		uint64_t n;
		char *b = slurp(path, &n);

		cr_assert(k_matches(b, n, v, seed) || k_matches(b, n, v + 1, seed),
		          "trial %u: the file (%llu bytes) is neither version %u nor %u", t,
		          (unsigned long long)n, v, v + 1);
		free(b);
		max_v = v > max_v ? v : max_v;
		tu_unlink(path);
		unlink(log);
		free(log);
	}
	cr_log_info("%u trials, %u with a log left to apply, up to %u writeouts before a kill",
	            trials, replayed, max_v);
}
