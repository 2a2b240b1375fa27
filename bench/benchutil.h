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
#include <stdio.h>

#include "ringpager.h"

#define BU_MAX_ROUNDS 32

/* Seconds on the monotonic clock. */
double bu_now(void);
/* kB from the "key:   123 kB" line of a /proc file (/proc/self/status, smaps_rollup);
 * 0 where the file or the line is missing. */
uint64_t bu_proc_kb(const char *path, const char *key);
/* "4096", "4k", "64M", "4G", "1T" (powers of 1024); -EINVAL for anything else or 0. */
int bu_parse_size(const char *s, uint64_t *out);
/* Creates `path` with `size` pseudo-random bytes unless it exists that large already (or
 * is a block device). prog names the caller in messages. 0 or -1. */
int bu_ensure_file(const char *prog, const char *path, uint64_t size);
/* The benchmarks' command lines: a table of long options, parsed by bu_parse_opts.
 * Each kind checks its value and says what is wrong on stderr (prog: --name value: what
 * is expected). */
enum bu_opt_kind {
	BU_STR,     /* const char *: the argument */
	BU_SIZE,    /* uint64_t: a size (bu_parse_size) */
	BU_SIZE4K,  /* uint64_t: a size that is a multiple of 4 KiB */
	BU_COUNT,   /* unsigned: a count (bu_parse_size) from 1 to 10,000,000, at most max if set */
	BU_UINT,    /* unsigned: a decimal number from 0 to max */
	BU_ROUNDS,  /* unsigned: 1..BU_MAX_ROUNDS */
	BU_SECONDS, /* double: 0 < seconds <= 3600 */
	BU_SET,     /* bool: no argument; set true */
	BU_CLEAR,   /* bool: no argument; set false (--no-fio) */
	BU_FN,      /* fn(prog, name, arg, dst): 0, or -1 after saying what is wrong */
};
struct bu_opt {
	const char *name;
	enum bu_opt_kind kind;
	void *dst;
	unsigned long max;
	int (*fn)(const char *prog, const char *name, const char *arg, void *dst);
};
#define BU_OPT(name, kind, dst) {(name), (kind), (dst), 0, NULL}
#define BU_OPT_MAX(name, kind, dst, max) {(name), (kind), (dst), (max), NULL}
#define BU_OPT_FN(name, fn, dst) {(name), BU_FN, (dst), 0, (fn)}
/* Parses argv against opts (n of them) and --help. Returns 0; 1 after --help printed the
 * usage to stdout (exit 0); 2 after a message and the usage on stderr (exit 2). */
int bu_parse_opts(const char *prog, int argc, char **argv, const struct bu_opt *opts,
                  size_t n, void (*usage)(FILE *));
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

/* A ringpager engine with a read-only mapping of a file, for the benchmarks. */
struct bu_rp {
	rp_engine *eng;
	rp_store *st;
	rp_fileh *fh;
	rp_mapping *m;
};

/* Opens an engine of 4 KiB pages with a pool of `ram` bytes and, when depth is not 0,
 * that queue_depth; RINGPAGER_* variables override both (fault_threads, io_backend, ...).
 * Then maps the first `size` bytes of `file` read-only. 0, or -errno after saying why on
 * stderr, prefixed by prog (nothing stays open then). */
int bu_rp_open(struct bu_rp *r, const char *prog, const char *file, uint64_t size, uint64_t ram,
               unsigned depth);
/* Closes the engine, and the mapping, handle and store with it. */
void bu_rp_close(struct bu_rp *r);
#endif
