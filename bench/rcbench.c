/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rcbench.c - reclaim measured: a pool far smaller than the data.
 *
 *   scan   one thread reads one byte of every 4 KiB page of the whole data file through a
 *          cold ringpager mapping whose pool is --scan-pool (default 256 MiB): bandwidth,
 *          the process's peak RSS (VmHWM) and its peak resident shared memory against
 *          the pool, the engine's metadata, and the memory cgroup's peak charge.
 *   rand   one thread reads 8 bytes at random 4 KiB pages of the file: first --warm reads
 *          to reach the steady state, then --reads measured ones. ringpager with a pool of
 *          --rand-pool against the kernel's mmap of the same file (MADV_RANDOM, page cache
 *          dropped first), both inside one memory cgroup limited to --limit (default
 *          1 GiB; the pool is the limit less 32 MiB for page tables and the process's own
 *          memory): reads
 *          per second and hit ratio (ringpager: pages loaded; kernel: major faults).
 *          Two distributions: "uniform" over the file, and "hot" (90% of the reads in
 *          the first --hot bytes (default 7/8 of the limit), 10% anywhere).
 * Each measurement runs in a child process of its own (a cold start, and its own peak
 * RSS); engines alternate within each round. Medians with min..max and ratios.
 * The cgroup is a v1 memory cgroup (/sys/fs/cgroup/memory) or a v2 one
 * (/sys/fs/cgroup with the memory controller); without either, or without root, the
 * kernel's mmap runs without a limit and the output says so.
 */
#include "ringpager.h"
#include "bench/benchutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG  4096ul
#define MIB (1ul << 20)

struct opts {
	const char *file;
	uint64_t size;
	uint64_t scan_pool, rand_pool, limit, hot;
	unsigned rounds;
	uint64_t warm, reads;
	bool scan, rand;
};

/* ---------------------------------------------------------------- memory cgroup */

struct cg {
	char dir[128];
	bool v2, ok;
	char why[320];
};

static int write_str(const char *dir, const char *file, const char *val)
{
	char path[256];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write(fd, val, strlen(val)) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static uint64_t read_u64(const char *dir, const char *file)
{
	char path[256], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoull(buf, NULL, 10);
}

static unsigned cg_seq;

/* A new cgroup for each child: page cache a child leaves behind stays charged to its
 * cgroup, and must not count against the next one. */
static void cg_open(struct cg *c, uint64_t limit)
{
	char v[32];
	int e;

	snprintf(v, sizeof(v), "%" PRIu64, limit);
	c->ok = false;
	if (geteuid() != 0) {
		snprintf(c->why, sizeof(c->why), "not root: no memory cgroup");
		return;
	}
	if (access("/sys/fs/cgroup/memory/cgroup.procs", F_OK) == 0) {
		snprintf(c->dir, sizeof(c->dir), "/sys/fs/cgroup/memory/rcbench-%d-%u", (int)getpid(),
		         cg_seq++);
		c->v2 = false;
	} else {
		snprintf(c->dir, sizeof(c->dir), "/sys/fs/cgroup/rcbench-%d-%u", (int)getpid(),
		         cg_seq++);
		c->v2 = true;
	}
	if (mkdir(c->dir, 0755) < 0 && errno != EEXIST) {
		snprintf(c->why, sizeof(c->why), "mkdir %s: %s", c->dir, strerror(errno));
		return;
	}
	e = write_str(c->dir, c->v2 ? "memory.max" : "memory.limit_in_bytes", v);
	if (!e && !c->v2)
		(void)write_str(c->dir, "memory.swappiness", "0");
	if (e) {
		snprintf(c->why, sizeof(c->why), "setting the limit in %s: %s", c->dir, strerror(-e));
		rmdir(c->dir);
		return;
	}
	c->ok = true;
	snprintf(c->why, sizeof(c->why), "memory cgroup %s (%s), limit %" PRIu64 " MiB", c->dir,
	         c->v2 ? "v2" : "v1", limit / MIB);
}

static void cg_enter(struct cg *c, pid_t pid)
{
	char v[32];

	if (!c->ok)
		return;
	if (!c->v2)
		(void)write_str(c->dir, "memory.max_usage_in_bytes", "0");
	snprintf(v, sizeof(v), "%d", (int)pid);
	(void)write_str(c->dir, "cgroup.procs", v);
}

/* Peak charge since cg_enter (v1: max_usage; v2: memory.peak where the kernel has it). */
static uint64_t cg_peak(struct cg *c)
{
	return !c->ok ? 0 : read_u64(c->dir, c->v2 ? "memory.peak" : "memory.max_usage_in_bytes");
}

static void cg_close(struct cg *c)
{
	if (c->ok)
		rmdir(c->dir);
}

/* ---------------------------------------------------------------- children */

struct result {
	double seconds, rate, hit;
	uint64_t hwm, meta, evicted, loads, peak_resident, cg_peak;
	int err;
};

static void child_scan(const struct opts *o, struct result *r)
{
	struct bu_rp rp;
	volatile char sink = 0;
	struct rp_stats s;
	uint64_t peak_res = 0;

	if ((r->err = bu_rp_open(&rp, "rcbench", o->file, o->size, o->scan_pool, 0)))
		return;
	rp_engine *eng = rp.eng;
	const char *a = rp_mapping_addr(rp.m);
	double t0 = bu_now();

	for (uint64_t off = 0; off < o->size; off += PG) {
		sink += a[off];
		if ((off & ((64 * MIB) - 1)) == 0) {
			rp_stats(eng, &s);
			if (s.resident_pages > peak_res)
				peak_res = s.resident_pages;
		}
	}
	r->seconds = bu_now() - t0;
	r->rate = (double)o->size / r->seconds / 1e9;
	rp_stats(eng, &s);
	r->meta = s.metadata_bytes;
	r->evicted = s.pages_evicted;
	r->loads = s.pages_loaded;
	r->peak_resident = peak_res * PG;
	r->hwm = bu_proc_kb("/proc/self/status", "VmHWM") * 1024;
	bu_rp_close(&rp);
	(void)sink;
}

/* The n-th page to read: uniform over the file, or 90% in the hot prefix. */
static uint64_t next_page(const struct opts *o, bool hot, uint64_t *rng)
{
	uint64_t pages = o->size / PG, hot_pages = o->hot / PG;

	if (hot && bu_rand(rng) % 10 != 0)
		return bu_rand(rng) % hot_pages;
	return bu_rand(rng) % pages;
}

static uint64_t majflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_majflt;
}

static void child_rand(const struct opts *o, bool kernel, bool hot, unsigned round,
                       struct result *r)
{
	struct bu_rp rp = {0};
	const char *a;
	volatile uint64_t sink = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (round + 1), before = 0;
	struct rp_stats s;
	int fd = -1;

	r->err = 0;
	if (kernel) {
		int e;

		fd = open(o->file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r->err = -errno;
			fprintf(stderr, "rcbench: %s: %s\n", o->file, strerror(errno));
			return;
		}
		/* cold: the file's pages leave the page cache first */
		if ((e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))) {
			r->err = -e;
			fprintf(stderr, "rcbench: posix_fadvise: %s\n", strerror(e));
			return;
		}
		a = mmap(NULL, o->size, PROT_READ, MAP_SHARED, fd, 0);
		if (a == MAP_FAILED || madvise((void *)a, o->size, MADV_RANDOM)) {
			r->err = -errno;
			fprintf(stderr, "rcbench: mmap: %s\n", strerror(errno));
			return;
		}
	} else if ((r->err = bu_rp_open(&rp, "rcbench", o->file, o->size, o->rand_pool, 0)))
		return;
	else
		a = rp_mapping_addr(rp.m);
	rp_engine *eng = rp.eng; /* NULL for the kernel's mmap */

	for (uint64_t i = 0; i < o->warm; i++)
		sink += *(const volatile uint64_t *)(const void *)(a + next_page(o, hot, &rng) * PG);
	if (kernel)
		before = majflt();
	else {
		rp_stats(eng, &s);
		before = s.pages_loaded;
	}
	double t0 = bu_now();

	for (uint64_t i = 0; i < o->reads; i++)
		sink += *(const volatile uint64_t *)(const void *)(a + next_page(o, hot, &rng) * PG);
	r->seconds = bu_now() - t0;
	r->rate = (double)o->reads / r->seconds;
	if (kernel)
		r->loads = majflt() - before;
	else {
		rp_stats(eng, &s);
		r->loads = s.pages_loaded - before;
		r->evicted = s.pages_evicted;
	}
	r->hit = 1.0 - (double)r->loads / (double)o->reads;
	r->hwm = bu_proc_kb("/proc/self/status", "VmHWM") * 1024;
	if (eng)
		bu_rp_close(&rp);
	else
		munmap((void *)a, o->size);
	if (fd >= 0)
		close(fd);
	(void)sink;
}

/* Runs job in a child inside the cgroup (when there is one); the result comes back
 * through a pipe. */
static struct result run_child(const struct opts *o, int job, bool kernel, bool hot,
                               unsigned round)
{
	struct result r = {.err = -ECHILD};
	struct cg cgs, *cg = &cgs;
	int go[2], back[2];
	char c;

	if (pipe(go) || pipe(back))
		return r;
	cg_open(cg, o->limit);
	pid_t pid = fork();

	if (pid == 0) {
		close(go[1]);
		close(back[0]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		if (job == 0)
			child_scan(o, &r);
		else
			child_rand(o, kernel, hot, round, &r);
		_exit(write(back[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(go[0]);
	close(back[1]);
	if (pid > 0) {
		cg_enter(cg, pid);
		(void)!write(go[1], "x", 1);
		if (read(back[0], &r, sizeof(r)) != sizeof(r))
			r.err = -EPIPE;
		int st;

		waitpid(pid, &st, 0);
		if (WIFSIGNALED(st)) {
			fprintf(stderr, "rcbench: the child was killed by signal %d%s\n", WTERMSIG(st),
			        WTERMSIG(st) == SIGKILL ? " (the cgroup's OOM killer?)" : "");
			r.err = -EINTR;
		}
		r.cg_peak = cg_peak(cg);
	}
	close(go[1]);
	close(back[0]);
	cg_close(cg);
	return r;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f, "usage: rcbench [--file PATH] [--size BYTES] [--rounds N] [--scan-pool BYTES]\n"
	           "               [--rand-pool BYTES] [--limit BYTES] [--hot BYTES] [--warm N]\n"
	           "               [--reads N] [--only scan|rand]\n");
}

/* --only scan or rand. */
static int parse_only(const char *prog, const char *opt, const char *arg, void *dst)
{
	struct opts *o = dst;

	o->scan = !strcmp(arg, "scan");
	o->rand = !strcmp(arg, "rand");
	if (!o->scan && !o->rand) {
		fprintf(stderr, "%s: --%s %s: expected scan or rand\n", prog, opt, arg);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
	    .file = "build/rp-bench.dat",
	    .size = 4ull << 30,
	    .scan_pool = 256 * MIB,
	    .limit = 1ull << 30,
	    .hot = 0, /* 7/8 of the limit */
	    .rounds = 3,
	    .warm = 600000,
	    .reads = 200000,
	    .scan = true,
	    .rand = true,
	};
	const struct bu_opt opts[] = {
	    BU_OPT("file", BU_STR, &o.file),          BU_OPT("size", BU_SIZE4K, &o.size),
	    BU_OPT("rounds", BU_ROUNDS, &o.rounds),   BU_OPT("scan-pool", BU_SIZE4K, &o.scan_pool),
	    BU_OPT("rand-pool", BU_SIZE4K, &o.rand_pool), BU_OPT("limit", BU_SIZE4K, &o.limit),
	    BU_OPT("hot", BU_SIZE4K, &o.hot),         BU_OPT("warm", BU_SIZE, &o.warm),
	    BU_OPT("reads", BU_SIZE, &o.reads),       BU_OPT_FN("only", parse_only, &o),
	};
	int parsed = bu_parse_opts("rcbench", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);

	if (parsed)
		return parsed == 1 ? 0 : 2;
	/* The cgroup charges the process's page tables too: the alias and the user mapping
	 * of a file touched at random need one page-table page per 2 MiB each (16 MiB for
	 * 4 GiB), and the process's own memory is about 10 MiB. A pool of the limit less
	 * 8 MiB got the child killed by the cgroup's OOM killer. */
	if (!o.rand_pool)
		o.rand_pool = o.limit - 32 * MIB;
	if (!o.hot) /* a hot set that nearly fills the memory: eviction choices matter */
		o.hot = o.limit / 8 * 7;
	if (o.hot > o.size)
		o.hot = o.size;
	if (bu_ensure_file("rcbench", o.file, o.size))
		return 1;
	struct cg cg;

	cg_open(&cg, o.limit); /* to say what there is */
	cg_close(&cg);
	printf("rcbench: %s, %" PRIu64 " MiB; %u rounds; hot prefix %" PRIu64 " MiB; %s\n",
	       o.file, o.size / MIB, o.rounds, o.hot / MIB, cg.why);

	if (o.scan) {
		double gbs[BU_MAX_ROUNDS], hwm[BU_MAX_ROUNDS], res[BU_MAX_ROUNDS], cgp[BU_MAX_ROUNDS];
		double meta = 0;

		for (unsigned i = 0; i < o.rounds; i++) {
			struct result r = run_child(&o, 0, false, false, i);

			if (r.err) {
				fprintf(stderr, "rcbench: the scan child failed: %s\n", strerror(-r.err));
				return 1;
			}
			gbs[i] = r.rate;
			hwm[i] = (double)r.hwm / MIB;
			res[i] = (double)r.peak_resident / MIB;
			cgp[i] = (double)r.cg_peak / MIB;
			meta = (double)r.meta / MIB;
			fprintf(stderr, "  scan round %u: %.2f GB/s, VmHWM %.0f MiB, %" PRIu64
			                " evicted\n",
			        i + 1, r.rate, hwm[i], r.evicted);
		}
		printf("\ncold sequential scan of %" PRIu64 " MiB, pool %" PRIu64
		       " MiB (ratios to the pool)\n",
		       o.size / MIB, o.scan_pool / MIB);
		bu_row("  bandwidth", gbs, o.rounds, "GB/s", 0);
		bu_row("  pool pages resident, peak", res, o.rounds, "MiB", (double)o.scan_pool / MIB);
		bu_row("  process peak RSS (VmHWM)", hwm, o.rounds, "MiB", (double)o.scan_pool / MIB);
		if (cg.ok)
			bu_row("  cgroup peak charge", cgp, o.rounds, "MiB", (double)o.scan_pool / MIB);
		printf("  engine metadata at the end: %.2f MiB; target: RSS <= pool + 5%% + metadata "
		       "= %.0f MiB\n",
		       meta, (double)o.scan_pool / MIB * 1.05 + meta);
	}
	if (o.rand) {
		for (int hot = 0; hot < 2; hot++) {
			double rate[2][BU_MAX_ROUNDS], hit[2][BU_MAX_ROUNDS], cgp[2][BU_MAX_ROUNDS];

			for (unsigned i = 0; i < o.rounds; i++)
				for (int k = 0; k < 2; k++) {
					bool kernel = (k + i) % 2 == 1; /* the order flips each round */
					struct result r = run_child(&o, 1, kernel, hot, i);

					if (r.err) {
						fprintf(stderr, "rcbench: the %s child failed: %s\n",
						        kernel ? "mmap" : "ringpager", strerror(-r.err));
						return 1;
					}
					rate[kernel][i] = r.rate;
					hit[kernel][i] = r.hit * 100;
					cgp[kernel][i] = (double)r.cg_peak / MIB;
					fprintf(stderr, "  %s %s round %u: %.0f reads/s, hit %.1f%%\n",
					        hot ? "hot" : "uniform", kernel ? "mmap" : "ringpager", i + 1,
					        r.rate, r.hit * 100);
				}
			printf("\nrandom 4 KiB reads, %s, %" PRIu64 " measured after %" PRIu64
			       " warm-up; ringpager pool %" PRIu64 " MiB\n",
			       hot ? "90% in the hot prefix" : "uniform", o.reads, o.warm,
			       o.rand_pool / MIB);
			bu_row("  kernel mmap (MADV_RANDOM)", rate[1], o.rounds, "reads/s", 0);
			bu_row("  ringpager", rate[0], o.rounds, "reads/s", bu_median(rate[1], o.rounds));
			bu_row("  kernel hit ratio", hit[1], o.rounds, "%", 0);
			bu_row("  ringpager hit ratio", hit[0], o.rounds, "%", 0);
			if (cg.ok) {
				bu_row("  kernel cgroup peak", cgp[1], o.rounds, "MiB", 0);
				bu_row("  ringpager cgroup peak", cgp[0], o.rounds, "MiB", 0);
			}
		}
	}
	return 0;
}
