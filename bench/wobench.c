/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/wobench.c - dirty tracking and writeout measured against their references, in
 * one run (BENCH.md: "65,536 random dirty pages, writeout STORE+MARKSTORED+SYNC" and
 * "first write to a clean page").
 *
 * The dirty set: --pages distinct pages in runs of --run contiguous pages (1: lone pages),
 * each run at a random run-aligned place, the runs in random order.
 * Each round, in an order that rotates from round to round:
 *   ringpager (once per tracking mechanism, wp_async and wp_sync): a new engine maps the
 *       whole data file; the chosen pages are made resident (rp_pinv, then
 *       unpinned), then written once each (timed: the first write to a clean page), then
 *       rp_writeout(STORE | MARKSTORED | SYNC) (timed).
 *   mmap: the kernel's MAP_SHARED mapping of the same file, page cache dropped first,
 *       the same pages read in (WILLNEED), written once each (timed), then
 *       msync(MS_SYNC) over the mapping (timed).
 *   fio: random writes of one run each (io_uring, O_DIRECT, depth 32) of as many pages,
 *       with an fsync at the end, on the same file; its own IOPS figure times the run.
 * The engine runs with its configured queue_depth (default 128; RINGPAGER_QUEUE_DEPTH=32
 * compares at fio's depth).
 * For each: pages written per second, and the write amplification: bytes the device
 * was asked to write during the timed part (the file's block device, from
 * /sys/dev/block/M:m/stat) over the bytes dirtied. Medians with min..max over the rounds.
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
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PG 4096ul

struct opts {
	const char *file;
	uint64_t size;
	unsigned pages;
	unsigned run; /* pages */
	unsigned rounds;
	bool fio;
};

struct result {
	double pages_per_s;
	double amplification;
	double first_write_us; /* 0 where not measured (fio) */
	bool ok;
};

/* n distinct page indexes below npages: n / run distinct run-aligned runs of run pages
 * at random, the runs in random order, each run's pages ascending. */
static uint64_t *pick_pages(uint64_t npages, unsigned n, unsigned run, uint64_t seed)
{
	uint64_t nslots = npages / run;
	uint8_t *taken = calloc((nslots + 7) / 8, 1);
	uint64_t *p = malloc(n * sizeof(*p));

	for (unsigned i = 0; i < n;) {
		uint64_t x = bu_rand(&seed) % nslots;

		if (taken[x / 8] & (1u << (x % 8)))
			continue;
		taken[x / 8] |= (uint8_t)(1u << (x % 8));
		for (unsigned k = 0; k < run; k++)
			p[i++] = x * run + k;
	}
	free(taken);
	return p;
}

/* Sectors (512 bytes) the file's block device has been asked to write so far. */
static char stat_path[128];

static int disk_init(const char *file)
{
	struct stat st;

	if (stat(file, &st) < 0)
		return -1;
	dev_t d = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;

	snprintf(stat_path, sizeof(stat_path), "/sys/dev/block/%u:%u/stat", major(d), minor(d));
	return access(stat_path, R_OK);
}

static uint64_t disk_sectors_written(void)
{
	unsigned long long f[7] = {0};
	FILE *f_ = fopen(stat_path, "r");

	if (!f_)
		return 0;
	if (fscanf(f_, "%llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4],
	           &f[5], &f[6]) != 7)
		f[6] = 0;
	fclose(f_);
	return f[6];
}

static double amplification(uint64_t sectors, unsigned pages)
{
	return (double)sectors * 512.0 / ((double)pages * PG);
}

/* One write per page: the first write to a clean page. Returns seconds. */
static double write_pages(volatile char *a, const uint64_t *p, unsigned n, char v)
{
	double t0 = bu_now();

	for (unsigned i = 0; i < n; i++)
		a[p[i] * PG + (p[i] % 61) * 8] = v;
	return bu_now() - t0;
}

static struct result job_ringpager(const struct opts *o, const uint64_t *p, const char *mode,
                                   char v)
{
	struct result r = {0};
	rp_config c;
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
	rp_range *rg = malloc(o->pages * sizeof(*rg));

	rp_config_init(&c);
	if (rp_config_load_env(&c) || rp_config_set(&c, "dirty_tracking", mode) ||
	    rp_config_set(&c, "ram_size", "1G") || rp_engine_open(&c, &eng)) {
		fprintf(stderr, "wobench: engine (%s): %s\n", mode, rp_errmsg());
		free(rg);
		return r;
	}
	if (rp_store_open(eng, o->file, O_RDWR, &st) || rp_fileh_open(st, &fh) ||
	    rp_map(fh, 0, o->size, PROT_READ | PROT_WRITE, &m)) {
		fprintf(stderr, "wobench: %s: %s\n", o->file, rp_errmsg());
		rp_engine_close(eng);
		free(rg);
		return r;
	}
	for (unsigned i = 0; i < o->pages; i++)
		rg[i] = (rp_range){.off = p[i] * PG, .len = PG};
	if (rp_pinv(m, rg, o->pages)) {
		fprintf(stderr, "wobench: rp_pinv: %s\n", rp_errmsg());
		goto out;
	}
	for (unsigned i = 0; i < o->pages; i++)
		(void)rp_unpin(m, rg[i].off, PG);
	r.first_write_us = write_pages(rp_mapping_addr(m), p, o->pages, v) * 1e6 / o->pages;
	uint64_t s0 = disk_sectors_written();
	double t0 = bu_now();
	int err = rp_writeout(fh, RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC);
	double t = bu_now() - t0;

	if (err) {
		fprintf(stderr, "wobench: rp_writeout: %s\n", rp_errmsg());
		goto out;
	}
	r.amplification = amplification(disk_sectors_written() - s0, o->pages);
	r.pages_per_s = o->pages / t;
	r.ok = true;
out:
	rp_engine_close(eng);
	free(rg);
	return r;
}

static struct result job_mmap(const struct opts *o, const uint64_t *p, char v)
{
	struct result r = {0};
	int fd = open(o->file, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return r;
	(void)fdatasync(fd);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* cold, like a new engine */
	char *a = mmap(NULL, o->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (a == MAP_FAILED) {
		close(fd);
		return r;
	}
	(void)madvise(a, o->size, MADV_RANDOM);
	for (unsigned i = 0; i < o->pages; i++)
		(void)posix_fadvise(fd, (off_t)(p[i] * PG), PG, POSIX_FADV_WILLNEED);
	for (unsigned i = 0; i < o->pages; i++)
		(void)*(volatile char *)(a + p[i] * PG); /* resident and mapped, clean */
	r.first_write_us = write_pages(a, p, o->pages, v) * 1e6 / o->pages;
	uint64_t s0 = disk_sectors_written();
	double t0 = bu_now();
	int err = msync(a, o->size, MS_SYNC);
	double t = bu_now() - t0;

	if (!err) {
		r.amplification = amplification(disk_sectors_written() - s0, o->pages);
		r.pages_per_s = o->pages / t;
		r.ok = true;
	}
	munmap(a, o->size);
	close(fd);
	return r;
}

/* fio: as many pages in random writes of one run each (bs = the run, aligned to it) at
 * depth 32, then fsync. Pages per second is fio's own write IOPS (its JSON "write.iops":
 * the process's start-up, about 0.25 s here, is not counted) times the run; the device
 * statistics span the whole process. */
static struct result job_fio(const struct opts *o)
{
	struct result r = {0};
	char cmd[1024], line[512];
	bool in_write = false;

	snprintf(cmd, sizeof(cmd),
	         "fio --name=wobench-ref --filename='%s' --ioengine=io_uring --direct=1 "
	         "--rw=randwrite --bs=%lu --iodepth=32 --size=%" PRIu64 " --number_ios=%u "
	         "--end_fsync=1 --randrepeat=0 --output-format=json 2>/dev/null",
	         o->file, o->run * PG, o->size, o->pages / o->run);
	uint64_t s0 = disk_sectors_written();
	FILE *f = popen(cmd, "r");

	if (!f)
		return r;
	while (fgets(line, sizeof(line), f)) {
		char *at;

		if (strstr(line, "\"write\" : {"))
			in_write = true;
		else if (in_write && (at = strstr(line, "\"iops\" : "))) {
			r.pages_per_s = strtod(at + 9, NULL) * o->run;
			in_write = false;
		}
	}
	if (pclose(f) == 0 && r.pages_per_s > 0) {
		r.amplification = amplification(disk_sectors_written() - s0, o->pages);
		r.ok = true;
	}
	return r;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: wobench [--file PATH] [--size BYTES] [--pages N] [--run N] [--rounds N] "
	           "[--no-fio]\n"
	           "  --file    data file (created with random bytes if missing; default "
	           "rp-bench.dat)\n"
	           "  --size    bytes of the file used (default 4G)\n"
	           "  --pages   random distinct 4 KiB pages dirtied per run (default 65536)\n"
	           "  --run     in runs of this many contiguous pages (default 1: lone pages; "
	           "divides --pages)\n"
	           "  --rounds  rounds (default 5)\n"
	           "  --no-fio  skip the fio reference\n"
	           "Engine keys come from RINGPAGER_* variables (dirty_tracking and ram_size are "
	           "set by the benchmark).\n");
}

enum { K_ASYNC, K_SYNC, K_MMAP, K_FIO, NK };

int main(int argc, char **argv)
{
	struct opts o = {.file = "rp-bench.dat", .size = 4ull << 30, .pages = 65536, .run = 1,
	                 .rounds = 5, .fio = true};
	const struct bu_opt opts[] = {
	    BU_OPT("file", BU_STR, &o.file),        BU_OPT("size", BU_SIZE4K, &o.size),
	    BU_OPT("pages", BU_COUNT, &o.pages),    BU_OPT("run", BU_COUNT, &o.run),
	    BU_OPT("rounds", BU_ROUNDS, &o.rounds), BU_OPT("no-fio", BU_CLEAR, &o.fio),
	};
	int parsed = bu_parse_opts("wobench", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);

	if (parsed)
		return parsed == 1 ? 0 : 2;
	if (o.pages % o.run) {
		fprintf(stderr, "wobench: --run %u does not divide --pages %u\n", o.run, o.pages);
		return 2;
	}
	if (o.pages > o.size / PG / 2) {
		fprintf(stderr, "wobench: --pages %u: at most half the file's %" PRIu64 " pages\n",
		        o.pages, o.size / PG);
		return 2;
	}
	if (bu_ensure_file("wobench", o.file, o.size))
		return 1;
	if (disk_init(o.file))
		fprintf(stderr, "wobench: no block-device statistics for %s: write amplification "
		                "reads 0\n",
		        o.file);
	if (o.fio && !bu_have_fio()) {
		fprintf(stderr, "wobench: fio not found: the fio reference is skipped\n");
		o.fio = false;
	}
	printf("wobench: %s, %" PRIu64 " MiB, %u random pages dirtied in runs of %u, %u rounds\n",
	       o.file, o.size >> 20, o.pages, o.run, o.rounds);

	double pps[NK][BU_MAX_ROUNDS], amp[NK][BU_MAX_ROUNDS], first[NK][BU_MAX_ROUNDS];
	unsigned n[NK] = {0};

	for (unsigned rd = 0; rd < o.rounds; rd++) {
		uint64_t *p = pick_pages(o.size / PG, o.pages, o.run, 0xC0FFEEull + rd);

		for (unsigned j = 0; j < NK; j++) {
			unsigned k = (j + rd) % NK;
			struct result r;

			if (k == K_FIO && !o.fio)
				continue;
			r = k == K_ASYNC  ? job_ringpager(&o, p, "wp_async", (char)(rd + 1))
			    : k == K_SYNC ? job_ringpager(&o, p, "wp_sync", (char)(rd + 2))
			    : k == K_MMAP ? job_mmap(&o, p, (char)(rd + 3))
			                  : job_fio(&o);
			if (!r.ok)
				continue;
			pps[k][n[k]] = r.pages_per_s;
			amp[k][n[k]] = r.amplification;
			first[k][n[k]] = r.first_write_us;
			n[k]++;
		}
		free(p);
		fprintf(stderr, "wobench: round %u of %u done\n", rd + 1, o.rounds);
	}
	double ref = n[K_MMAP] ? bu_median(pps[K_MMAP], n[K_MMAP]) : 0;
	static const char *names[NK] = {"ringpager wp_async writeout", "ringpager wp_sync writeout",
	                                "kernel mmap + msync(MS_SYNC)", "fio randwrite qd32 + fsync"};

	printf("\n%u random 4 KiB pages dirtied in runs of %u, then written back (medians; ratio "
	       "to msync):\n",
	       o.pages, o.run);
	for (unsigned k = 0; k < NK; k++)
		if (n[k])
			bu_row(names[k], pps[k], n[k], "pages/s", k == K_MMAP ? 0 : ref);
	printf("\nwrite amplification (device bytes written / bytes dirtied):\n");
	for (unsigned k = 0; k < NK; k++)
		if (n[k])
			bu_row(names[k], amp[k], n[k], "x", 0);
	printf("\nfirst write to a clean resident page (us per page):\n");
	for (unsigned k = 0; k < K_FIO; k++)
		if (n[k])
			bu_row(k == K_ASYNC  ? "ringpager wp_async"
			    : k == K_SYNC ? "ringpager wp_sync"
			                  : "kernel mmap (page_mkwrite)",
			    first[k], n[k], "us", 0);
	return 0;
}
