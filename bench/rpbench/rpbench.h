/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rpbench/rpbench.h - rpbench, the fio-style benchmark of ringpager.
 *
 * rpbench speaks fio's language so that a database engineer reads its results next to
 * fio's without translation: fio job options on the command line and in job files, and
 * results with fio's figures (normal text, or JSON under fio's field names).
 *
 * Three parts, one file each:
 *   job.c     the job model and its parser: command line and job files, every value
 *             checked, an unknown key refused by name (nothing is silently ignored);
 *   run.c     the engines and the threads that drive them: each job's clones run the
 *             workload, time it per I/O and count it (rpb_run);
 *   report.c  latency histograms, and the results as fio prints them: normal or JSON.
 * main.c is the program: parse, run, report.
 *
 * Departures from fio, each for a reason docs/rpbench.md gives:
 *   - options on the command line override the job files' values (in fio a job file's
 *     value wins), so a job file written for another machine runs unchanged with
 *     `--ioengine=ringpager --size=1G --runtime=10`;
 *   - the default ioengine is `ringpager`;
 *   - what an option cannot mean for an engine (iodepth for the synchronous mapping
 *     engines, direct=0 where every read is O_DIRECT) is accepted and said in the
 *     job's notes, in both outputs.
 */
#ifndef RINGPAGER_RPBENCH_H
#define RINGPAGER_RPBENCH_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringpager.h"

#define RPB_ERR_LEN 512

enum rpb_rw {
	RPB_READ = 0,
	RPB_WRITE,
	RPB_RANDREAD,
	RPB_RANDWRITE,
	RPB_RANDRW,
	RPB_READWRITE, /* sequential, mixed (fio's rw=readwrite, rw=rw) */
};

enum rpb_engine {
	RPB_ENG_RINGPAGER = 0, /* each I/O is an access through a ringpager mapping */
	RPB_ENG_PIN,           /* rp_pinv of iodepth blocks, then the access */
	RPB_ENG_MMAP,          /* the kernel's mmap of the same file */
	RPB_ENG_URING,         /* the raw io/ backends: O_DIRECT reads and writes */
	RPB_ENG_AIO,
	RPB_ENG_PSYNC,
};

/* One key=value as given (value "" for a bare boolean key). */
struct rpb_kv {
	char *key, *val;
};

struct rpb_kvlist {
	struct rpb_kv *v;
	unsigned n, cap;
};

/* fadvise_hint: 0 none, 1 the job's pattern (random or sequential), or one advice.
 * Unset, it is 1 for the mmap engine (fio's default) and 0 for the ringpager engines,
 * whose readahead is meant to find the pattern by itself. */
enum { RPB_HINT_UNSET = -1, RPB_HINT_NONE = 0, RPB_HINT_PATTERN, RPB_HINT_NORMAL,
       RPB_HINT_RANDOM, RPB_HINT_SEQUENTIAL };

/* One job section (or command-line job). Its numjobs clones run it side by side. */
struct rpb_job {
	char *name;
	char *description;
	char *filename;  /* NULL: each clone has its own file, <name>.<clone>.0 (as fio) */
	char *directory; /* prefix of filename */
	enum rpb_rw rw;
	unsigned rwmixread; /* percent of reads in randrw / readwrite */
	uint64_t bs;
	uint64_t size;      /* bytes each clone does (and the region it covers); 0: the file's */
	unsigned iodepth;
	unsigned numjobs;
	uint64_t runtime_ns; /* 0: until size is done */
	uint64_t ramp_ns;    /* run this long before measuring */
	bool time_based;     /* loop over the region until runtime */
	bool direct;
	enum rpb_engine engine;
	bool randrepeat;     /* the same offsets every run */
	uint64_t randseed;
	bool stonewall;      /* wait for the jobs before it; starts a new group */
	bool group_reporting;
	bool end_fsync;      /* make the writes durable at the end, timed */
	int fadvise_hint;    /* RPB_HINT_*: the access-pattern advice given to the mapping */
	cpu_set_t cpus;      /* cpus_allowed: the CPUs the job's threads may run on */
	unsigned ncpus;      /* how many CPUs it names; 0: cpus_allowed not given */
	bool cpus_split;     /* cpus_allowed_policy=split: clone i on the set's i-th CPU */
	unsigned groupid;    /* set by the parser: jobs of a group run together */

	/* ringpager engine configuration: defaults, RINGPAGER_* variables, then the
	 * engine keys given as options (ram_size, readahead_max, ...) */
	rp_config cfg;
	struct rpb_kvlist engine_keys; /* the engine keys given, in order */
	bool iodepth_given, direct_given;

	struct rpb_kvlist opts; /* the job's own options as given: JSON "job options" */
};

enum { RPB_FMT_NORMAL = 1, RPB_FMT_JSON = 2 };
enum { RPB_ETA_AUTO = 0, RPB_ETA_ALWAYS, RPB_ETA_NEVER };

/* What the command line and the job files ask for. */
struct rpb_spec {
	struct rpb_job *jobs;
	unsigned njobs;
	struct rpb_kvlist global; /* [global] and command-line options: JSON "global options" */
	unsigned format;          /* RPB_FMT_* mask */
	char *output;             /* NULL: stdout */
	int eta;
	bool help, version;
};

/* Parses rpbench's arguments: program options (--output-format, --output, --eta,
 * --help, --version), job options as --key=value (a bare --key for booleans), and job
 * files. Without job files, options before the first --name apply to every job and each
 * --name starts one (as fio); with no --name at all there is one job, "rpbench". With
 * job files, the command-line job options override the files' values in every job.
 * Returns 0, or -EINVAL (-errno when a file cannot be read) with a message in err that
 * names the option, the value or the file and line. *s is empty on failure. */
int rpb_parse(int argc, char *const argv[], struct rpb_spec *s, char *err, size_t errlen);
/* Frees what rpb_parse allocated. */
void rpb_spec_free(struct rpb_spec *s);
/* The name of an rw or ioengine value, as fio writes it. */
const char *rpb_rw_name(enum rpb_rw rw);
const char *rpb_engine_name(enum rpb_engine e);
/* fio's value forms, exposed for the tests: a size with an optional suffix (k, M, G,
 * T, P in powers of 1024, an optional "i" and "B": 4k, 4KiB, 1g, 4096); a time with an
 * optional unit (us, ms, s, m, h, d; seconds when none). -EINVAL when malformed. */
int rpb_parse_size(const char *s, uint64_t *out);
int rpb_parse_time(const char *s, uint64_t *ns);

/* ---------------------------------------------------------------- results */

#define RPB_HIST_SUB_BITS 7
#define RPB_HIST_BUCKETS ((1u << RPB_HIST_SUB_BITS) + 35u * (1u << (RPB_HIST_SUB_BITS - 1)))

/* Latencies in nanoseconds: exact min, max, mean and deviation; percentiles from a
 * log-linear histogram (values below 128 ns exact, then 64 buckets per power of two:
 * within 1.6%). */
struct rpb_lat {
	uint64_t n, min, max;
	double sum, sumsq;
	uint64_t hist[RPB_HIST_BUCKETS];
};

void rpb_lat_add(struct rpb_lat *l, uint64_t ns);
void rpb_lat_merge(struct rpb_lat *into, const struct rpb_lat *from);
/* The latency below which pct percent of the samples fall (0 when there are none). */
uint64_t rpb_lat_percentile(const struct rpb_lat *l, double pct);
double rpb_lat_mean(const struct rpb_lat *l);
double rpb_lat_stddev(const struct rpb_lat *l);

/* Bandwidth samples (KiB/s) and IOPS samples, one per bw_avg_time (500 ms) of a clone. */
struct rpb_samples {
	double *bw, *iops;
	unsigned n, cap;
};

struct rpb_dir {
	uint64_t ios, bytes;
	struct rpb_lat lat;
	struct rpb_samples samples;
};

#define RPB_NOTES_LEN 1024
#define RPB_DESC_LEN 2048

/* One entry of the report: a clone, or a job's clones together (group_reporting). */
struct rpb_result {
	const struct rpb_job *job;
	unsigned clones;      /* threads summed in this entry */
	int error;            /* positive errno, 0 */
	char errmsg[RPB_ERR_LEN];
	struct rpb_dir dir[2]; /* [0] read, [1] write */
	struct rpb_lat sync;   /* end_fsync / writeout at the end, when timed */
	uint64_t runtime_ns;   /* measured time (the longest clone's) */
	uint64_t elapsed_ns;   /* with ramp_time and setup */
	double usr_cpu, sys_cpu; /* percent of runtime */
	uint64_t ctx, majf, minf;
	bool have_rp;          /* the ringpager engines: rp and describe are set */
	struct rp_stats rp;    /* engine counters over the measured time */
	char describe[RPB_DESC_LEN]; /* rp_engine_describe: what the engine chose, by line */
	char notes[RPB_NOTES_LEN]; /* what an option did not do for this engine, ... */
};

struct rpb_report {
	struct rpb_result *res;
	unsigned n;
	const struct rpb_spec *spec;
	int64_t timestamp_ms; /* when the run ended, epoch ms */
};

/* Prints fio's normal output for every entry and each group's "Run status" line. */
void rpb_report_normal(FILE *f, const struct rpb_report *r);
/* Prints fio's JSON: "fio version" (rpbench-<rp_version()>), "timestamp", "global options",
 * "jobs": [{"jobname", "groupid", "error", "job options", "read", "write", "trim",
 * "sync", "job_runtime", "usr_cpu", "sys_cpu", "ctx", "majf", "minf", "latency_ns",
 * "latency_us", "latency_ms", plus "ringpager" (engine counters) and "notes"}]. */
void rpb_report_json(FILE *f, const struct rpb_report *r);
void rpb_report_free(struct rpb_report *r);

/* ---------------------------------------------------------------- running */

/* Runs the spec's jobs: groups one after the other, the jobs of a group and their
 * clones side by side. Fills *out (one entry per clone, or per job with
 * group_reporting). Errors of a job (a file that cannot be opened, a failed I/O) are
 * in its entries' error and errmsg; the return value is 0 when every job ran without
 * error, else -1. `progress` prints a progress line on stderr once a second. */
int rpb_run(const struct rpb_spec *s, struct rpb_report *out, bool progress);

#endif
