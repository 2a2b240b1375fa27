/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/benchutil.h - what the benchmarks share: clocks, sizes, the data file, medians,
 * and running fio on the same file for the reference figures.
 */
#ifndef RINGPAGER_BENCHUTIL_H
#define RINGPAGER_BENCHUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BU_MAX_ROUNDS 32

/* Seconds on the monotonic clock. */
double bu_now(void);
/* "4096", "4k", "64M", "4G", "1T" (powers of 1024); -EINVAL for anything else or 0. */
int bu_parse_size(const char *s, uint64_t *out);
/* Creates `path` with `size` pseudo-random bytes unless it exists that large already (or
 * is a block device). prog names the caller in messages. 0 or -1. */
int bu_ensure_file(const char *prog, const char *path, uint64_t size);
/* The median of n <= BU_MAX_ROUNDS values. */
double bu_median(const double *v, unsigned n);
/* The smallest and largest of n values. */
void bu_minmax(const double *v, unsigned n, double *lo, double *hi);
/* Prints one result line: what, the median of v with its unit, min..max, and the ratio
 * of the median to ref when ref > 0. */
void bu_row(const char *what, const double *v, unsigned n, const char *unit, double ref);
/* splitmix64: the benchmarks' random numbers, seedable. */
uint64_t bu_rand(uint64_t *state);

struct bu_fio {
	bool ok;
	double iops;
	double p50_us; /* completion latency, median */
	double mean_us;
};

bool bu_have_fio(void);
/* Runs fio on `file` with O_DIRECT: rw "read" or "randread", block size bs, depth,
 * over the first `size` bytes for `runtime` seconds, with `ioengine` (io_uring, psync,
 * libaio). Parses fio's terse (version 3) output. */
struct bu_fio bu_run_fio(const char *file, const char *rw, size_t bs, unsigned depth,
                         uint64_t size, double runtime, const char *ioengine);

#endif
