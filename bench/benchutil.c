/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/benchutil.c - shared by the benchmarks (bench/benchutil.h).
 */
#include "bench/benchutil.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

static int cmp_double(const void *a, const void *b);

double bu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t bu_proc_kb(const char *path, const char *key)
{
	char line[256];
	uint64_t v = 0;
	const size_t n = strlen(key);
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtoull(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

int bu_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	int shift = 0;

	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	}
	if (end == s || *end || v == 0)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* Creates `path` with `size` pseudo-random bytes (written with O_DIRECT, 1 MiB at a time),
 * unless it exists already with at least that size. */
int bu_ensure_file(const char *prog, const char *path, uint64_t size)
{
	struct stat st;
	uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	size_t chunk = 1 << 20;
	uint64_t *buf;
	int fd;

	if (stat(path, &st) == 0 && (S_ISBLK(st.st_mode) || (uint64_t)st.st_size >= size))
		return 0;
	fprintf(stderr, "%s: writing %" PRIu64 " MiB of random bytes to %s\n", prog, size >> 20,
	        path);
	fd = open(path, O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
	if (fd < 0)
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || posix_memalign((void **)&buf, 4096, chunk)) {
		fprintf(stderr, "%s: cannot create %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	for (uint64_t off = 0; off < size; off += chunk) {
		for (size_t i = 0; i < chunk / 8; i++) {
			x ^= x << 13; /* xorshift64: incompressible enough for a disk */
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = x;
		}
		size_t len = size - off < chunk ? (size_t)(size - off) : chunk;
		if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len) {
			fprintf(stderr, "%s: writing %s: %s\n", prog, path, strerror(errno));
			close(fd);
			free(buf);
			return -1;
		}
	}
	fsync(fd);
	close(fd);
	free(buf);
	return 0;
}

bool bu_have_fio(void)
{
	return system("fio --version >/dev/null 2>&1") == 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One option's value into its destination: 0, or -1 after saying what is wrong. */
static int opt_value(const char *prog, const struct bu_opt *o, const char *arg)
{
	uint64_t v = 0;
	char *end;

	switch (o->kind) {
	case BU_STR:
		*(const char **)o->dst = arg;
		return 0;
	case BU_SIZE:
	case BU_SIZE4K:
		if (bu_parse_size(arg, &v) || (o->kind == BU_SIZE4K && v % 4096)) {
			fprintf(stderr, "%s: --%s %s: %s\n", prog, o->name, arg,
			        o->kind == BU_SIZE4K ? "a size, a multiple of 4k" : "a size");
			return -1;
		}
		*(uint64_t *)o->dst = v;
		return 0;
	case BU_COUNT: {
		const uint64_t max = o->max ? o->max : 10000000;

		if (bu_parse_size(arg, &v) || v > max) {
			fprintf(stderr, "%s: --%s %s: 1..%" PRIu64 "\n", prog, o->name, arg, max);
			return -1;
		}
		*(unsigned *)o->dst = (unsigned)v;
		return 0;
	}
	case BU_UINT:
		errno = 0;
		v = strtoull(arg, &end, 10);
		if (end == arg || *end || errno || v > o->max || arg[0] == '-') {
			fprintf(stderr, "%s: --%s %s: 0..%lu\n", prog, o->name, arg, o->max);
			return -1;
		}
		*(unsigned *)o->dst = (unsigned)v;
		return 0;
	case BU_ROUNDS:
		v = strtoull(arg, &end, 10);
		if (end == arg || *end || v < 1 || v > BU_MAX_ROUNDS) {
			fprintf(stderr, "%s: --%s %s: 1..%d\n", prog, o->name, arg, BU_MAX_ROUNDS);
			return -1;
		}
		*(unsigned *)o->dst = (unsigned)v;
		return 0;
	case BU_SECONDS: {
		double d = strtod(arg, &end);

		if (end == arg || *end || !(d > 0 && d <= 3600)) {
			fprintf(stderr, "%s: --%s %s: seconds, more than 0 and at most 3600\n", prog,
			        o->name, arg);
			return -1;
		}
		*(double *)o->dst = d;
		return 0;
	}
	case BU_SET:
	case BU_CLEAR:
		*(bool *)o->dst = o->kind == BU_SET;
		return 0;
	case BU_FN:
		return o->fn(prog, o->name, arg, o->dst);
	}
	return -1;
}

int bu_parse_opts(const char *prog, int argc, char **argv, const struct bu_opt *opts,
                  size_t n, void (*usage)(FILE *))
{
	struct option *lo = calloc(n + 2, sizeof(*lo));
	int c, r = 0;

	if (!lo) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 2;
	}
	for (size_t i = 0; i < n; i++) {
		const bool flag = opts[i].kind == BU_SET || opts[i].kind == BU_CLEAR;

		lo[i] = (struct option){opts[i].name, flag ? no_argument : required_argument, NULL,
		                        256 + (int)i};
	}
	lo[n] = (struct option){"help", no_argument, NULL, 'h'};
	optind = 1;
	while (!r && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			r = 1;
		} else if (c >= 256 && (size_t)(c - 256) < n) {
			if (opt_value(prog, &opts[c - 256], optarg))
				r = 2;
		} else {
			r = 2; /* getopt said what */
		}
	}
	if (!r && optind < argc) {
		fprintf(stderr, "%s: %s: unexpected argument\n", prog, argv[optind]);
		r = 2;
	}
	if (r == 2)
		usage(stderr);
	free(lo);
	return r;
}

double bu_median(const double *v, unsigned n)
{
	double s[BU_MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

void bu_minmax(const double *v, unsigned n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (unsigned i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

void bu_row(const char *what, const double *v, unsigned n, const char *unit, double ref)
{
	double lo, hi, m = bu_median(v, n);

	bu_minmax(v, n, &lo, &hi);
	printf("  %-44s %10.2f %-7s (%.2f..%.2f)", what, m, unit, lo, hi);
	if (ref > 0)
		printf("  %.2fx", m / ref);
	printf("\n");
}

uint64_t bu_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* fio's terse version 3: field 8 is read IOPS, fields 16 and 18..37 the read completion
 * latency (mean, then "P%=usec" percentiles). */
struct bu_fio bu_run_fio(const char *file, const char *rw, size_t bs, unsigned depth,
                         uint64_t size, double runtime, const char *ioengine)
{
	struct bu_fio r = {0};
	char cmd[2048], line[8192];
	FILE *f;

	snprintf(cmd, sizeof(cmd),
	         "fio --name=rpbench-ref --filename='%s' --ioengine=%s --direct=1 "
	         "--rw=%s --bs=%zu --iodepth=%u --size=%" PRIu64 " --runtime=%g --time_based "
	         "--norandommap --randrepeat=0 --output-format=terse --terse-version=3 "
	         "2>/dev/null",
	         file, ioengine, rw, bs, depth, size, runtime);
	f = popen(cmd, "r");
	if (!f)
		return r;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok = strtok_r(line, ";", &save);
		int field = 1;

		if (!tok || strcmp(tok, "3") != 0)
			continue;
		for (; tok; tok = strtok_r(NULL, ";", &save), field++) {
			if (field == 8)
				r.iops = strtod(tok, NULL);
			if (field == 16)
				r.mean_us = strtod(tok, NULL);
			if (field >= 18 && field <= 37 && strncmp(tok, "50.000000%=", 11) == 0)
				r.p50_us = strtod(tok + 11, NULL);
		}
		r.ok = r.iops > 0;
	}
	if (pclose(f) != 0)
		r.ok = false;
	return r;
}

int bu_rp_open(struct bu_rp *r, const char *prog, const char *file, uint64_t size, uint64_t ram,
               unsigned depth)
{
	rp_config c;
	int err;

	memset(r, 0, sizeof(*r));
	rp_config_init(&c);
	c.ram_size = ram;
	c.hugepages = 2; /* off: these are 4 KiB page measurements */
	if (depth)
		c.queue_depth = depth;
	if ((err = rp_config_load_env(&c)) || (err = rp_engine_open(&c, &r->eng)) ||
	    (err = rp_store_open(r->eng, file, O_RDONLY, &r->st)) ||
	    (err = rp_fileh_open(r->st, &r->fh)) || (err = rp_map(r->fh, 0, size, PROT_READ, &r->m))) {
		fprintf(stderr, "%s: %s: %s\n", prog, rp_strerror(err), rp_errmsg());
		bu_rp_close(r);
		return err;
	}
	return 0;
}

void bu_rp_close(struct bu_rp *r)
{
	rp_engine_close(r->eng); /* rp_engine_close(NULL) does nothing */
	memset(r, 0, sizeof(*r));
}
