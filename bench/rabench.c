/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rabench.c - readahead measured against its references, in one run.
 *
 *   scan   one thread touches every 4 KiB page of a cold mapping of the data file in
 *          ascending order (a new engine each round, default advice), against the
 *          kernel's mmap of the same file (page cache dropped first with
 *          POSIX_FADV_DONTNEED) with MADV_SEQUENTIAL and with default advice, and fio
 *          io_uring sequential O_DIRECT reads, 128 KiB at depth 16 and 1 MiB at depth 8.
 *   rand   one thread touches random 4 KiB pages of a cold mapping (default advice),
 *          against fio psync 4 KiB random reads at depth 1; and how much of what
 *          readahead read was never used (read ahead, not touched by the end of the run).
 *   mixed  one thread scans the first half of a cold mapping in order while another
 *          touches random pages of its second half until the scan ends (a database's
 *          scan beside its point reads, on one file): the random touches' latency and
 *          rate, and the scan's, against the kernel's mmap doing the same.
 * The kinds alternate in each round (the order flips each round); medians are reported
 * with min..max and the ratio to the reference.
 */
#include "ringpager.h"
#include "bench/benchutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ul

struct opts {
	const char *file;
	uint64_t size, ram;
	unsigned rounds, touches;
	double runtime;
	bool fio;
};

/* Touches one byte of every page of [a, a + len), ascending: GB/s. */
static double scan(volatile const char *a, uint64_t len)
{
	uint64_t sum = 0;
	double t0 = bu_now();

	for (uint64_t o = 0; o < len; o += PG)
		sum += (unsigned char)a[o];
	double secs = bu_now() - t0;

	(void)sum;
	return (double)len / secs / 1e9;
}

struct rp_scan {
	double gbs;
	struct rp_stats st;
};

static struct rp_scan job_rp_scan(const struct opts *o)
{
	struct rp_scan r;
	struct bu_rp e;

	if (bu_rp_open(&e, "rabench", o->file, o->size, o->ram, 0))
		exit(1);
	r.gbs = scan(rp_mapping_addr(e.m), o->size);
	rp_stats(e.eng, &r.st);
	bu_rp_close(&e);
	return r;
}

/* The kernel's mmap of the file's first o->size bytes, cold: the file's pages out of the
 * page cache first (it is not mapped now), and said on stderr when some stayed. *fd is the
 * file's, for kernel_unmap. */
static void *kernel_map_cold(const struct opts *o, int *fd)
{
	*fd = open(o->file, O_RDONLY);
	if (*fd < 0) {
		perror("rabench: open");
		exit(1);
	}
	(void)fdatasync(*fd);
	(void)posix_fadvise(*fd, 0, 0, POSIX_FADV_DONTNEED);
	void *a = mmap(NULL, o->size, PROT_READ, MAP_SHARED, *fd, 0);

	if (a == MAP_FAILED) {
		perror("rabench: mmap");
		exit(1);
	}
	/* Say so when the page cache kept some of the file: the figure would not be cold. */
	unsigned char *vec = malloc(o->size / PG);
	uint64_t cached = 0;

	if (vec && mincore(a, o->size, vec) == 0)
		for (uint64_t i = 0; i < o->size / PG; i++)
			cached += vec[i] & 1;
	free(vec);
	if (cached)
		fprintf(stderr, "rabench: %" PRIu64 " pages of %s were still cached\n", cached,
		        o->file);
	return a;
}

/* Unmaps what kernel_map_cold mapped, and drops the file's pages from the cache again. */
static void kernel_unmap(const struct opts *o, void *a, int fd)
{
	munmap(a, o->size);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

static double job_kernel_scan(const struct opts *o, int advice)
{
	int fd;
	void *a = kernel_map_cold(o, &fd);

	(void)madvise(a, o->size, advice);
	const double gbs = scan(a, o->size);

	kernel_unmap(o, a, fd);
	return gbs;
}

struct rp_rand {
	double ops;
	double unused; /* pages read ahead and never touched, per page read */
	struct rp_stats st;
};

static struct rp_rand job_rp_rand(const struct opts *o, uint64_t seed)
{
	struct rp_rand r;
	struct bu_rp e;
	uint64_t npages = o->size / PG, sum = 0;

	if (bu_rp_open(&e, "rabench", o->file, o->size, o->ram, 0))
		exit(1);
	volatile const char *a = rp_mapping_addr(e.m);
	double t0 = bu_now();

	for (unsigned i = 0; i < o->touches; i++)
		sum += (unsigned char)a[(bu_rand(&seed) % npages) * PG + 64];
	r.ops = o->touches / (bu_now() - t0);
	(void)sum;
	rp_stats(e.eng, &r.st);
	r.unused = r.st.pages_loaded
	               ? (double)(r.st.readahead_pages - r.st.readahead_used) /
	                     (double)r.st.pages_loaded
	               : 0;
	bu_rp_close(&e);
	return r;
}

/* mixed: the scan's rate and the random touches' (in the other half, until the scan ends). */
struct mixed {
	double scan_gbs, ops, p50, p90, p99; /* us */
};

#define MIXED_MAX 1000000 /* random touches recorded */

struct mixed_rand {
	volatile const char *a; /* the second half */
	uint64_t npages, seed;
	atomic_bool stop;
	double *lat;
	unsigned n;
};

static void *mixed_rand_main(void *arg)
{
	struct mixed_rand *m = arg;
	uint64_t sum = 0;

	while (!atomic_load(&m->stop) && m->n < MIXED_MAX) {
		const uint64_t off = (bu_rand(&m->seed) % m->npages) * PG + 64;
		const double t0 = bu_now();

		sum += (unsigned char)m->a[off];
		m->lat[m->n++] = (bu_now() - t0) * 1e6;
	}
	return (void *)(uintptr_t)(sum & 1);
}

static int cmp_double(const void *x, const void *y)
{
	const double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* Runs the two threads over mapping a of o->size bytes. */
static struct mixed mixed_run(volatile const char *a, const struct opts *o, uint64_t seed)
{
	struct mixed r = {0};
	struct mixed_rand m = {.a = a + o->size / 2, .npages = o->size / 2 / PG, .seed = seed};
	pthread_t t;

	m.lat = malloc(MIXED_MAX * sizeof(double));
	if (!m.lat || pthread_create(&t, NULL, mixed_rand_main, &m) != 0) {
		fprintf(stderr, "rabench: no memory or thread for the mixed job\n");
		exit(1);
	}
	const double t0 = bu_now();

	r.scan_gbs = scan(a, o->size / 2);
	atomic_store(&m.stop, true);
	pthread_join(t, NULL);
	r.ops = m.n / (bu_now() - t0);
	if (m.n) {
		qsort(m.lat, m.n, sizeof(double), cmp_double);
		r.p50 = m.lat[m.n / 2];
		r.p90 = m.lat[(uint64_t)m.n * 9 / 10];
		r.p99 = m.lat[(uint64_t)m.n * 99 / 100];
	}
	free(m.lat);
	return r;
}

static struct mixed job_rp_mixed(const struct opts *o, uint64_t seed)
{
	struct bu_rp e;

	if (bu_rp_open(&e, "rabench", o->file, o->size, o->ram, 0))
		exit(1);
	const struct mixed r = mixed_run(rp_mapping_addr(e.m), o, seed);

	bu_rp_close(&e);
	return r;
}

static struct mixed job_kernel_mixed(const struct opts *o, uint64_t seed)
{
	int fd;
	void *a = kernel_map_cold(o, &fd);
	const struct mixed r = mixed_run(a, o, seed);

	kernel_unmap(o, a, fd);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: rabench [options]\n"
	        "  --file PATH      data file (default rp-bench.dat; created with random bytes)\n"
	        "  --size SIZE      bytes of it to map and scan (default 4G)\n"
	        "  --ram SIZE       the engine's pool (default: --size plus 64M, so that a scan\n"
	        "                   fits as it does in the kernel's page cache)\n"
	        "  --rounds N       rounds, alternating ringpager and the references (default 5)\n"
	        "  --touches N      cold random touches per round (default 20000)\n"
	        "  --runtime S      seconds per fio run (default 3)\n"
	        "  --no-fio         skip the fio references\n"
	        "Engine keys come from RINGPAGER_* variables (RINGPAGER_READAHEAD_MAX=4M, ...).\n");
}

static void print_stats(const char *what, const struct rp_stats *s)
{
	printf("  %s (last round): %" PRIu64 " faults, %" PRIu64 " loads, %" PRIu64
	       " pages read ahead in %" PRIu64 " windows (average %" PRIu64 " pages), %" PRIu64
	       " used, %" PRIu64 " wasted\n",
	       what, s->faults, s->loads, s->readahead_pages, s->readahead_windows,
	       s->readahead_window_avg, s->readahead_used, s->readahead_wasted);
}

int main(int argc, char **argv)
{
	struct opts o = {.file = "rp-bench.dat", .size = 4ull << 30, .rounds = 5, .touches = 20000,
	                 .runtime = 3, .fio = true};
	const struct bu_opt opts[] = {
	    BU_OPT("file", BU_STR, &o.file),          BU_OPT("size", BU_SIZE4K, &o.size),
	    BU_OPT("ram", BU_SIZE4K, &o.ram),         BU_OPT("rounds", BU_ROUNDS, &o.rounds),
	    BU_OPT("touches", BU_COUNT, &o.touches),  BU_OPT("runtime", BU_SECONDS, &o.runtime),
	    BU_OPT("no-fio", BU_CLEAR, &o.fio),
	};
	int parsed = bu_parse_opts("rabench", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);

	if (parsed)
		return parsed == 1 ? 0 : 2;
	if (!o.ram)
		o.ram = o.size + (64ull << 20);
	if (bu_ensure_file("rabench", o.file, o.size))
		return 1;
	if (o.fio && !bu_have_fio()) {
		fprintf(stderr, "rabench: fio not found: references skipped (--no-fio to silence)\n");
		o.fio = false;
	}
	{
		struct bu_rp e;

		if (bu_rp_open(&e, "rabench", o.file, o.size, o.ram, 0))
			return 1;
		printf("rabench: engine: %s\n", rp_engine_describe(e.eng));
		bu_rp_close(&e);
	}
	printf("rabench: %s, %" PRIu64 " MiB, pool %" PRIu64 " MiB, %u rounds (medians, min..max, "
	       "ratio to the reference)\n",
	       o.file, o.size >> 20, o.ram >> 20, o.rounds);

	double rp_gbs[BU_MAX_ROUNDS], k_seq[BU_MAX_ROUNDS], k_def[BU_MAX_ROUNDS],
	    fio128[BU_MAX_ROUNDS], fio1m[BU_MAX_ROUNDS], rnd_ops[BU_MAX_ROUNDS],
	    rnd_unused[BU_MAX_ROUNDS], fio1[BU_MAX_ROUNDS];
	struct mixed mx_rp[BU_MAX_ROUNDS], mx_k[BU_MAX_ROUNDS];
	struct rp_stats scan_st = {0}, rand_st = {0};
	uint64_t seed = (uint64_t)(bu_now() * 1e9);

	for (unsigned r = 0; r < o.rounds; r++) {
		for (int k = 0; k < 2; k++) {
			bool ref = (k == 0) == (r % 2 == 0);

			if (!ref) {
				struct rp_scan s = job_rp_scan(&o);
				struct rp_rand q = job_rp_rand(&o, seed + r);

				rp_gbs[r] = s.gbs;
				scan_st = s.st;
				rnd_ops[r] = q.ops;
				rnd_unused[r] = q.unused * 100;
				rand_st = q.st;
				mx_rp[r] = job_rp_mixed(&o, seed + r);
				continue;
			}
			mx_k[r] = job_kernel_mixed(&o, seed + r);
			k_seq[r] = job_kernel_scan(&o, MADV_SEQUENTIAL);
			k_def[r] = job_kernel_scan(&o, MADV_NORMAL);
			if (!o.fio)
				continue;
			struct bu_fio f = bu_run_fio(o.file, "read", 128 << 10, 16, o.size, o.runtime,
			                             "io_uring");

			fio128[r] = f.iops * (128 << 10) / 1e9;
			f = bu_run_fio(o.file, "read", 1 << 20, 8, o.size, o.runtime, "io_uring");
			fio1m[r] = f.iops * (1 << 20) / 1e9;
			f = bu_run_fio(o.file, "randread", PG, 1, o.size, o.runtime, "psync");
			fio1[r] = f.iops;
		}
		fprintf(stderr, "rabench: round %u of %u done\n", r + 1, o.rounds);
	}
	unsigned n = o.rounds;
	double best_fio = 0;

	if (o.fio)
		best_fio = bu_median(fio128, n) > bu_median(fio1m, n) ? bu_median(fio128, n)
		                                                      : bu_median(fio1m, n);
	printf("cold sequential scan, every 4 KiB page touched once, one thread:\n");
	bu_row("kernel mmap, MADV_SEQUENTIAL", k_seq, n, "GB/s", 0);
	bu_row("kernel mmap, default advice", k_def, n, "GB/s", 0);
	if (o.fio) {
		bu_row("fio io_uring read 128k depth 16", fio128, n, "GB/s", 0);
		bu_row("fio io_uring read 1m depth 8", fio1m, n, "GB/s", 0);
	}
	bu_row("ringpager, default advice", rp_gbs, n, "GB/s", bu_median(k_seq, n));
	if (o.fio)
		bu_row("  ... against fio's best", rp_gbs, n, "GB/s", best_fio);
	print_stats("ringpager scan", &scan_st);
	printf("cold random 4 KiB touches, one thread, default advice:\n");
	if (o.fio)
		bu_row("fio psync randread 4k depth 1", fio1, n, "IOPS", 0);
	bu_row("ringpager touches", rnd_ops, n, "/s", o.fio ? bu_median(fio1, n) : 0);
	bu_row("read ahead, never used, % of pages read", rnd_unused, n, "%", 0);
	print_stats("ringpager random", &rand_st);
	printf("mixed: a scan of the first half in order, one thread, and random 4 KiB touches\n"
	       "of the second half by another until the scan ends, default advice:\n");
	const struct {
		const char *what, *unit;
		size_t off;
	} mx_rows[] = {
	    {"scan", "GB/s", offsetof(struct mixed, scan_gbs)},
	    {"random touches", "/s", offsetof(struct mixed, ops)},
	    {"random touch p50", "us", offsetof(struct mixed, p50)},
	    {"random touch p90", "us", offsetof(struct mixed, p90)},
	    {"random touch p99", "us", offsetof(struct mixed, p99)},
	};
	for (size_t i = 0; i < sizeof(mx_rows) / sizeof(mx_rows[0]); i++) {
		double k[BU_MAX_ROUNDS], rp[BU_MAX_ROUNDS];
		char label[64];

		for (unsigned r = 0; r < n; r++) {
			k[r] = *(const double *)((const char *)&mx_k[r] + mx_rows[i].off);
			rp[r] = *(const double *)((const char *)&mx_rp[r] + mx_rows[i].off);
		}
		snprintf(label, sizeof(label), "kernel mmap, %s", mx_rows[i].what);
		bu_row(label, k, n, mx_rows[i].unit, 0);
		snprintf(label, sizeof(label), "ringpager, %s", mx_rows[i].what);
		bu_row(label, rp, n, mx_rows[i].unit, bu_median(k, n));
	}
	return 0;
}
