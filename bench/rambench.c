/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rambench.c - hot random 8-byte reads over a resident region held in a ringpager
 * RAM handle: 4 KiB pages (shmem) against 2 MiB pages (hugetlbfs), in the same run.
 *
 * Each round builds a pool and a handle of --size bytes for each page size, allocates and
 * fills every page, maps it once more (as a user mapping would be), and times --reads
 * random 8-byte loads through that mapping. The kinds alternate, and the medians of the
 * rounds are printed with the ratio of times. With 4 KiB pages nearly every random load
 * misses the TLB and walks four page-table levels; with 2 MiB pages the walk is shorter
 * and the TLB covers 512 times more memory.
 *
 * 2 MiB pages need vm.nr_hugepages: --reserve (as root) raises it for the run and puts the
 * old value back at the end.
 */
#include "ram/ram.h"
#include "bench/benchutil.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static char saved_nr[32];
static bool reserved;

static int write_file(const char *path, const char *value)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	int r = fputs(value, f) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && !r)
		r = -errno;
	return r;
}

static void restore_hugepages(void)
{
	if (reserved)
		write_file(NR_HUGEPAGES, saved_nr);
	reserved = false;
}

static void on_signal(int sig)
{
	restore_hugepages();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Raises vm.nr_hugepages by `pages` (plus what is in use already). */
static int reserve_hugepages(uint64_t pages)
{
	FILE *f = fopen(NR_HUGEPAGES, "re");
	char want[32];
	long cur;

	if (!f || !fgets(saved_nr, sizeof(saved_nr), f)) {
		if (f)
			fclose(f);
		return -EIO;
	}
	fclose(f);
	cur = strtol(saved_nr, NULL, 10);
	snprintf(want, sizeof(want), "%" PRIu64, (uint64_t)cur + pages);
	if (write_file(NR_HUGEPAGES, want))
		return -EPERM;
	reserved = true;
	atexit(restore_hugepages);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	return 0;
}

/* Builds a resident region with pages of `ps` bytes and times `reads` random loads.
 * Returns nanoseconds per read, or a negative value with a message printed. */
static double run(size_t ps, uint64_t size, uint64_t reads, uint64_t *sink)
{
	struct ram_pool_params p = {.ram_size = size,
	                            .hugepages = ps == RAM_PAGE_2M ? RAM_HUGEPAGES_REQUIRE
	                                                           : RAM_HUGEPAGES_OFF};
	struct ram_pool *pool;
	struct ram_handle *h;
	char msg[RAM_MSG_LEN];
	uint64_t *view, words = size / 8, rng = (uint64_t)(bu_now() * 1e9), sum = 0;
	double t0, ns;

	if (ram_pool_open(&p, &pool, msg, sizeof(msg))) {
		fprintf(stderr, "rambench: %s\n", msg);
		return -1;
	}
	if (ram_handle_open(pool, size, &h, msg, sizeof(msg))) {
		fprintf(stderr, "rambench: %s\n", msg);
		ram_pool_close(pool);
		return -1;
	}
	if (ram_alloc(h, 0, size, 0) || ram_map(h, 0, size, PROT_READ, NULL, (void **)&view)) {
		fprintf(stderr, "rambench: cannot allocate and map %" PRIu64 " MiB\n", size >> 20);
		ram_handle_close(h);
		ram_pool_close(pool);
		return -1;
	}
	for (uint64_t i = 0; i < words; i++)
		((uint64_t *)h->alias)[i] = i;
	/* the view's page tables are filled by a first pass, as a hot mapping would be */
	for (uint64_t off = 0; off < size; off += ps)
		sum += view[off / 8];

	t0 = bu_now();
	for (uint64_t i = 0; i < reads; i++) {
		uint64_t z = (rng += 0x9E3779B97F4A7C15ull); /* splitmix64 */

		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		sum += view[(z ^ (z >> 31)) % words];
	}
	ns = (bu_now() - t0) * 1e9 / (double)reads;
	*sink += sum;
	munmap(view, size);
	ram_handle_close(h);
	ram_pool_close(pool);
	return ns;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rambench [--size MiB (4096)] [--reads N (50000000)] [--rounds N (5)] "
	           "[--reserve]\n"
	           "  --reserve  raise vm.nr_hugepages for the run (root), restored after\n");
}

/* --size: MiB, a multiple of 2 (whole huge pages). */
static int parse_mib(const char *prog, const char *opt, const char *arg, void *dst)
{
	char *end;
	uint64_t mib = strtoull(arg, &end, 10);

	if (end == arg || *end || mib < 2 || mib % 2 || mib > (1ull << 30)) {
		fprintf(stderr, "%s: --%s %s: MiB, a multiple of 2\n", prog, opt, arg);
		return -1;
	}
	*(uint64_t *)dst = mib << 20;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t size = 4ull << 30, reads = 50000000, sink = 0;
	unsigned rounds = 5;
	bool reserve = false;
	double t4k[BU_MAX_ROUNDS], t2m[BU_MAX_ROUNDS];
	unsigned n4k = 0, n2m = 0;
	const struct bu_opt opts[] = {
	    BU_OPT_FN("size", parse_mib, &size), BU_OPT("reads", BU_SIZE, &reads),
	    BU_OPT("rounds", BU_ROUNDS, &rounds), BU_OPT("reserve", BU_SET, &reserve),
	};
	int parsed = bu_parse_opts("rambench", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);

	if (parsed)
		return parsed == 1 ? 0 : 2;
	if (reserve && reserve_hugepages(size / RAM_PAGE_2M)) {
		fprintf(stderr, "rambench: cannot raise vm.nr_hugepages (not root?)\n");
		return 1;
	}
	printf("rambench: %" PRIu64 " MiB resident, %" PRIu64
	       " random 8-byte reads per run, %u rounds\n",
	       size >> 20, reads, rounds);
	for (unsigned r = 0; r < rounds; r++) {
		/* alternate which kind goes first */
		for (int k = 0; k < 2; k++) {
			bool huge = (k + r) % 2;
			double ns = run(huge ? RAM_PAGE_2M : RAM_PAGE_4K, size, reads, &sink);

			if (ns < 0)
				continue;
			if (huge)
				t2m[n2m++] = ns;
			else
				t4k[n4k++] = ns;
		}
	}
	if (n4k) {
		double m = bu_median(t4k, n4k);
		printf("  4 KiB pages (shmem):    %6.1f ns/read (%.1f..%.1f)\n", m, t4k[0],
		       t4k[n4k - 1]);
	}
	if (n2m) {
		double m = bu_median(t2m, n2m);
		printf("  2 MiB pages (hugetlbfs): %6.1f ns/read (%.1f..%.1f)\n", m, t2m[0],
		       t2m[n2m - 1]);
	}
	if (n4k && n2m)
		printf("  2 MiB / 4 KiB time: %.2fx\n", bu_median(t2m, n2m) / bu_median(t4k, n4k));
	else if (!n2m)
		printf("  2 MiB pages: not measured (reserve huge pages, or pass --reserve as "
		       "root)\n");
	fprintf(stderr, "(checksum %" PRIu64 ")\n", sink);
	restore_hugepages();
	return n4k ? 0 : 1;
}
