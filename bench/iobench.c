/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/iobench.c - the io/ layer against fio, on the same file, in the same run.
 *
 * For each job (4 KiB random reads at depth 1 and 32, 1 MiB sequential reads at depth
 * 16) and each round, it runs fio's io_uring engine (O_DIRECT) and each ringpager
 * backend, one after the other in an order that rotates every round, so that a noisy
 * machine disturbs every side alike. It prints the
 * median of the rounds with min..max, and each backend's ratio to fio.
 *
 * Every measurement reads with O_DIRECT, so no page cache is involved on either side.
 * rpbench (bench/rpbench/, the fio-style benchmark of the whole engine) drives the same
 * backends through fio job options; this program stays for its rotation of backends.
 */
#include "io/io.h"
#include "bench/benchutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define LAT_BUCKETS 100000 /* 1 us each: latencies up to 100 ms */

struct job {
	const char *name;  /* as given in --jobs */
	const char *label; /* as printed */
	bool random;
	size_t bs;
	unsigned depth;
};

static const struct job all_jobs[] = {
    {"randread4k-qd1", "4 KiB random read, depth 1", true, 4096, 1},
    {"randread4k-qd32", "4 KiB random read, depth 32", true, 4096, 32},
    {"seqread1m-qd16", "1 MiB sequential read, depth 16", false, 1 << 20, 16},
};
#define NJOBS (sizeof(all_jobs) / sizeof(all_jobs[0]))

struct result {
	double iops, mbps, p50_us;
	bool ok;
};

struct opts {
	const char *file;
	uint64_t size;
	double runtime;
	unsigned rounds;
	bool fio;
	bool sqpoll;
	bool thp;
	unsigned submit_batch;
	bool jobs[NJOBS];
	bool backends[IO_BACKEND_PSYNC + 1];
};




/* ---------------------------------------------------------------- ringpager side */

static double percentile(const uint32_t *hist, uint64_t n, double pct)
{
	uint64_t want = (uint64_t)((double)n * pct / 100.0), seen = 0;

	for (unsigned i = 0; i < LAT_BUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return (double)i + 0.5;
	}
	return LAT_BUCKETS;
}

/* Stages the next read of job j into slot's buffer: a uniformly random block, or the
 * next block of the sequential stream. */
static int stage_next(struct rpio_queue *q, struct rpio_dev *d, const struct job *j,
                      unsigned char *buf, uintptr_t slot, uint64_t blocks, uint64_t *rng,
                      uint64_t *next_seq)
{
	uint64_t blk;

	if (j->random) {
		uint64_t z = (*rng += 0x9E3779B97F4A7C15ull); /* splitmix64 */

		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		blk = (z ^ (z >> 31)) % blocks;
	} else {
		blk = (*next_seq)++ % blocks;
	}
	struct iovec iov = {buf + slot * j->bs, j->bs};
	if (rpio_read(q, d, blk * j->bs, &iov, 1, (void *)slot)) {
		fprintf(stderr, "iobench: %s\n", rpio_queue_error(q));
		return -1;
	}
	return 0;
}

static struct result run_ringpager(const struct opts *o, const struct job *j, enum rpio_backend b)
{
	struct rpio_queue_params p = {.backend = b,
	                              .depth = j->depth,
	                              .single_thread = true,
	                              .sqpoll = o->sqpoll,
	                              .submit_batch = o->submit_batch};
	struct result r = {0};
	struct rpio_queue *q = NULL;
	struct rpio_dev *d = NULL;
	char msg[IO_MSG_LEN];
	unsigned char *buf = NULL;
	uint32_t *hist = calloc(LAT_BUCKETS, sizeof(*hist));
	double *start = calloc(j->depth, sizeof(*start));
	struct rpio_cqe cqe[64];
	uint64_t rng = (uint64_t)(bu_now() * 1e9), next_seq = 0, ios = 0, blocks;
	double t0, deadline;

	if (rpio_dev_open(o->file, O_RDONLY, &d, msg, sizeof(msg)) ||
	    rpio_queue_open(&p, &q, msg, sizeof(msg))) {
		fprintf(stderr, "iobench: %s\n", msg);
		goto out;
	}
	if (d->buffered)
		fprintf(stderr, "iobench: warning: %s\n", d->warning);
	blocks = d->size / j->bs;
	if (!blocks || posix_memalign((void **)&buf, 2u << 20, j->bs * j->depth) || !hist || !start)
		goto out;
	/* Like fio, fault the buffers in before timing (fio fills them with a pattern).
	 * Whether they are physically contiguous matters: a 1 MiB read into 256 scattered
	 * 4 KiB pages exceeds a virtio disk's 254 segments and is split in two. --thp
	 * backs them with transparent huge pages: the same read is then a few segments. */
	if (o->thp)
		madvise(buf, j->bs * j->depth, MADV_HUGEPAGE);
	memset(buf, 0x5A, j->bs * j->depth);

	t0 = bu_now();
	deadline = t0 + o->runtime;
	for (uintptr_t slot = 0; slot < j->depth; slot++) {
		start[slot] = bu_now();
		if (stage_next(q, d, j, buf, slot, blocks, &rng, &next_seq))
			goto out;
	}
	for (;;) {
		int n = rpio_reap(q, cqe, 64, 1);

		if (n < 0) {
			fprintf(stderr, "iobench: %s\n", rpio_queue_error(q));
			goto out;
		}
		double t = bu_now();
		for (int i = 0; i < n; i++) {
			uintptr_t slot = (uintptr_t)cqe[i].udata;
			double us = (t - start[slot]) * 1e6;

			if (cqe[i].res < 0) {
				fprintf(stderr, "iobench: read failed: %s\n",
				        strerror((int)-cqe[i].res));
				goto out;
			}
			hist[us < LAT_BUCKETS ? (unsigned)us : LAT_BUCKETS - 1]++;
			ios++;
			if (t >= deadline)
				continue;
			start[slot] = t;
			if (stage_next(q, d, j, buf, slot, blocks, &rng, &next_seq))
				goto out;
		}
		/* the next rpio_reap starts the new requests and waits in one call */
		if (rpio_queue_inflight(q) == 0)
			break;
	}
	double secs = bu_now() - t0;
	r.iops = (double)ios / secs;
	r.mbps = r.iops * (double)j->bs / 1e6;
	r.p50_us = percentile(hist, ios, 50);
	r.ok = true;
out:
	rpio_queue_close(q);
	rpio_dev_close(d);
	free(buf);
	free(hist);
	free(start);
	return r;
}

/* ---------------------------------------------------------------- fio side */

static struct result run_fio(const struct opts *o, const struct job *j)
{
	struct bu_fio f = bu_run_fio(o->file, j->random ? "randread" : "read", j->bs, j->depth,
	                             o->size, o->runtime, "io_uring");
	struct result r = {.ok = f.ok, .iops = f.iops, .p50_us = f.p50_us};

	r.mbps = r.iops * (double)j->bs / 1e6;
	return r;
}



/* ---------------------------------------------------------------- report */


struct series {
	double iops[BU_MAX_ROUNDS], p50[BU_MAX_ROUNDS];
	unsigned n;
};


static void fmt_iops(char *buf, size_t len, double v)
{
	if (v >= 1e6)
		snprintf(buf, len, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, len, "%.1fk", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
}

static void print_row(const char *engine, const struct job *j, struct series *s, double ref)
{
	char med[32], lo[32], hi[32], range[80];
	double m, mn = 1e300, mx = 0;

	if (!s->n) {
		printf("  %-22s %s\n", engine, "failed");
		return;
	}
	for (unsigned i = 0; i < s->n; i++) {
		mn = s->iops[i] < mn ? s->iops[i] : mn;
		mx = s->iops[i] > mx ? s->iops[i] : mx;
	}
	m = bu_median(s->iops, s->n);
	fmt_iops(med, sizeof(med), m);
	fmt_iops(lo, sizeof(lo), mn);
	fmt_iops(hi, sizeof(hi), mx);
	snprintf(range, sizeof(range), "(%s..%s)", lo, hi);
	printf("  %-22s %9s %-19s %8.0f MB/s %8.1f us", engine, med, range, m * (double)j->bs / 1e6,
	       bu_median(s->p50, s->n));
	if (ref > 0)
		printf("   %.2fx fio", m / ref);
	printf("\n");
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: iobench [options]\n"
	        "  --file PATH      file or block device to read (default rp-bench.dat);\n"
	        "                   a missing file is created with random bytes\n"
	        "  --size SIZE      size of the file to create and of fio's region (default 1G)\n"
	        "  --jobs LIST      randread4k-qd1,randread4k-qd32,seqread1m-qd16 (default all)\n"
	        "  --backends LIST  io_uring,libaio,psync (default all)\n"
	        "  --runtime SEC    seconds per measurement (default 1)\n"
	        "  --rounds N       alternating rounds; medians are reported (default 3, max %d)\n"
	        "  --no-fio         do not run fio\n"
	        "  --sqpoll         io_uring with a kernel submission thread\n"
	        "  --thp            back ringpager's buffers with transparent huge pages\n"
	        "  --submit-batch N start requests once N are staged; 0: batch until reap\n"
	        "                   (default 1: each as soon as it is ready, as fio does)\n",
	        BU_MAX_ROUNDS);
}

/* A --jobs or --backends list: the names it may hold, and which it holds. */
struct list_arg {
	const char *const *names;
	unsigned n;
	bool *out;
};

static int parse_list(const char *prog, const char *opt, const char *arg, void *dst)
{
	const struct list_arg *l = dst;
	const char *const *names = l->names;
	const unsigned n = l->n;
	bool *out = l->out;
	char *save = NULL, *list = strdup(arg);

	if (!list)
		return -1;
	memset(out, 0, n * sizeof(*out));
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned i;

		for (i = 0; i < n && (!names[i] || strcmp(t, names[i])); i++)
			;
		if (i == n) {
			fprintf(stderr, "%s: --%s: unknown name '%s'\n", prog, opt, t);
			free(list);
			return -1;
		}
		out[i] = true;
	}
	free(list);
	return 0;
}

int main(int argc, char **argv)
{
	const char *job_names[NJOBS], *be_names[IO_BACKEND_PSYNC + 1] = {NULL};
	struct opts o = {.file = "rp-bench.dat",
	                 .size = 1ull << 30,
	                 .runtime = 1,
	                 .rounds = 3,
	                 .fio = true,
	                 .submit_batch = 1};

	for (unsigned i = 0; i < NJOBS; i++) {
		job_names[i] = all_jobs[i].name;
		o.jobs[i] = true;
	}
	for (int b = IO_BACKEND_URING; b <= IO_BACKEND_PSYNC; b++) {
		be_names[b] = rpio_backend_name((enum rpio_backend)b);
		o.backends[b] = true;
	}
	struct list_arg jobs = {job_names, NJOBS, o.jobs},
	                backends = {be_names, IO_BACKEND_PSYNC + 1, o.backends};
	const struct bu_opt opts[] = {
	    BU_OPT("file", BU_STR, &o.file),
	    BU_OPT("size", BU_SIZE, &o.size),
	    BU_OPT_FN("jobs", parse_list, &jobs),
	    BU_OPT_FN("backends", parse_list, &backends),
	    BU_OPT("runtime", BU_SECONDS, &o.runtime),
	    BU_OPT("rounds", BU_ROUNDS, &o.rounds),
	    BU_OPT("no-fio", BU_CLEAR, &o.fio),
	    BU_OPT("sqpoll", BU_SET, &o.sqpoll),
	    BU_OPT("thp", BU_SET, &o.thp),
	    BU_OPT_MAX("submit-batch", BU_UINT, &o.submit_batch, 32768),
	};
	int parsed = bu_parse_opts("iobench", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);

	if (parsed)
		return parsed == 1 ? 0 : 2;
	if (bu_ensure_file("iobench", o.file, o.size))
		return 1;
	if (o.fio && !bu_have_fio()) {
		fprintf(stderr, "iobench: fio not found; measuring ringpager alone\n");
		o.fio = false;
	}
	{
		struct stat st;
		if (stat(o.file, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < o.size)
			o.size = (uint64_t)st.st_size;
	}
	printf("iobench: %s, %" PRIu64 " MiB, %g s per run, %u rounds (medians, min..max)\n",
	       o.file, o.size >> 20, o.runtime, o.rounds);

	for (unsigned ji = 0; ji < NJOBS; ji++) {
		const struct job *j = &all_jobs[ji];
		struct series fio = {0}, be[IO_BACKEND_PSYNC + 1];

		if (!o.jobs[ji])
			continue;
		memset(be, 0, sizeof(be));
		/* Engine 0 is fio, 1..3 the backends. The order rotates each round so that
		 * none always runs first (or right after another read the same blocks,
		 * which a caching host beneath a virtual disk rewards). */
		for (unsigned round = 0; round < o.rounds; round++) {
			for (unsigned k = 0; k <= IO_BACKEND_PSYNC; k++) {
				unsigned e = (k + round) % (IO_BACKEND_PSYNC + 1);
				struct series *s = e == 0 ? &fio : &be[e];
				struct result r;

				if (e == 0 && !o.fio)
					continue;
				if (e != 0 && !o.backends[e])
					continue;
				r = e == 0 ? run_fio(&o, j)
				           : run_ringpager(&o, j, (enum rpio_backend)e);
				if (r.ok) {
					s->iops[s->n] = r.iops;
					s->p50[s->n++] = r.p50_us;
				}
			}
		}
		printf("\n%s\n  %-22s %9s %-19s %13s %11s\n", j->label, "engine", "IOPS",
		       "(min..max)", "bandwidth", "p50 lat");
		double ref = fio.n ? bu_median(fio.iops, fio.n) : 0;
		if (o.fio)
			print_row("fio io_uring", j, &fio, 0);
		for (int b = IO_BACKEND_URING; b <= IO_BACKEND_PSYNC; b++) {
			char name[64];

			if (!o.backends[b])
				continue;
			snprintf(name, sizeof(name), "ringpager %s",
			         rpio_backend_name((enum rpio_backend)b));
			print_row(name, j, &be[b], ref);
		}
		fflush(stdout);
	}
	return 0;
}
