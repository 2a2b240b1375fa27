/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/bench/test_rpbench.c - rpbench: the option and job-file parser, the JSON output
 * (parsed back, fio's keys with fio's types), and a short run of every engine.
 */
#include "bench/benchutil.h"
#include "bench/rpbench/rpbench.h"
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <sched.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- helpers */

static char err[RPB_ERR_LEN];

#define MAX_ARGS 64

/* argv from a NULL-terminated list of arguments, argv[0] "rpbench"; returns argc. */
static int args(char **argv, va_list ap)
{
	int argc = 1;

	argv[0] = "rpbench";
	for (char *a; (a = va_arg(ap, char *)) && argc < MAX_ARGS - 1;)
		argv[argc++] = a;
	argv[argc] = NULL;
	err[0] = 0;
	return argc;
}

/* rpb_parse over a NULL-terminated list of arguments. */
static int parse(struct rpb_spec *s, ...)
{
	char *argv[MAX_ARGS];
	int argc;
	va_list ap;

	va_start(ap, s);
	argc = args(argv, ap);
	va_end(ap);
	return rpb_parse(argc, argv, s, err, sizeof(err));
}

/* Writes a job file in the test directory; returns its malloc'ed path. */
static char *jobfile(const char *name, const char *text)
{
	char *path;
	FILE *f;

	cr_assert(asprintf(&path, "%s/%s-%d.fio", tu_dir(), name, getpid()) > 0);
	f = fopen(path, "w");
	cr_assert(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
	return path;
}

static void expect_refused(const char *what, const char *needle, ...)
{
	char *argv[MAX_ARGS];
	int argc;
	struct rpb_spec s;
	va_list ap;

	va_start(ap, needle);
	argc = args(argv, ap);
	va_end(ap);
	cr_expect_eq(rpb_parse(argc, argv, &s, err, sizeof(err)), -EINVAL, "%s was accepted", what);
	cr_expect(strstr(err, needle), "%s: the message '%s' does not name '%s'", what, err, needle);
}

/* ---------------------------------------------------------------- values */

struct value {
	const char *s;
	uint64_t v;
};

/* Each of ok[] reads as its value; each of bad[] is refused. */
static void check_values(const char *what, int (*fn)(const char *, uint64_t *),
                         const struct value *ok, size_t nok, const char *const *bad, size_t nbad)
{
	uint64_t v;

	for (size_t i = 0; i < nok; i++) {
		cr_expect_eq(fn(ok[i].s, &v), 0, "%s %s refused", what, ok[i].s);
		cr_expect_eq(v, ok[i].v, "%s %s read as %llu", what, ok[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < nbad; i++)
		cr_expect_eq(fn(bad[i], &v), -EINVAL, "%s '%s' accepted", what, bad[i]);
}

Test(rpbench_parse, sizes_with_suffixes)
{
	static const struct value ok[] = {
	    {"4096", 4096},     {"4k", 4096},       {"4K", 4096},          {"4KiB", 4096},
	    {"4kb", 4096},      {"128KiB", 131072}, {"1m", 1 << 20},       {"8M", 8 << 20},
	    {"1g", 1ull << 30}, {"4G", 4ull << 30}, {"2t", 2ull << 40},    {"1p", 1ull << 50},
	    {"512B", 512}};
	static const char *const bad[] = {"", "k", "4x", "4.5k", "-1", "4kk", "4 k",
	                                  "99999999999999999999", "20000000p"};

	check_values("size", rpb_parse_size, ok, sizeof(ok) / sizeof(ok[0]), bad,
	             sizeof(bad) / sizeof(bad[0]));
}

Test(rpbench_parse, times_with_units)
{
	static const struct value ok[] = {
	    {"10", 10000000000ull},  {"10s", 10000000000ull}, {"500ms", 500000000ull},
	    {"100us", 100000ull},    {"2m", 120000000000ull}, {"1h", 3600000000000ull},
	    {"1d", 86400000000000ull}};
	static const char *const bad[] = {"", "s", "10x", "1.5", "-3", "10 s"};

	check_values("time", rpb_parse_time, ok, sizeof(ok) / sizeof(ok[0]), bad,
	             sizeof(bad) / sizeof(bad[0]));
}

/* ---------------------------------------------------------------- the command line */

Test(rpbench_parse, every_key_on_the_command_line)
{
	struct rpb_spec s;
	const struct rpb_job *j;

	cr_assert_eq(parse(&s, "--name=all", "--description=every key", "--filename=data.bin",
	                   "--directory=/tmp", "--rw=randrw", "--rwmixread=70", "--bs=16k",
	                   "--size=1G", "--iodepth=32", "--numjobs=3", "--runtime=2m",
	                   "--time_based", "--ramp_time=500ms", "--direct=0", "--ioengine=libaio",
	                   "--randrepeat=0", "--randseed=42", "--stonewall", "--group_reporting",
	                   "--end_fsync=1", "--thread", "--fadvise_hint=random",
	                   "--cpus_allowed=0-2,5,4-4", "--cpus_allowed_policy=split",
	                   "--output-format=json",
	                   "--output=out.json", "--eta=never", NULL),
	             0, "%s", err);
	cr_assert_eq(s.njobs, 1);
	j = &s.jobs[0];
	cr_expect_str_eq(j->name, "all");
	cr_expect_str_eq(j->description, "every key");
	cr_expect_str_eq(j->filename, "data.bin");
	cr_expect_str_eq(j->directory, "/tmp");
	cr_expect_eq(j->rw, RPB_RANDRW);
	cr_expect_eq(j->rwmixread, 70);
	cr_expect_eq(j->bs, 16384);
	cr_expect_eq(j->size, 1ull << 30);
	cr_expect_eq(j->iodepth, 32);
	cr_expect_eq(j->numjobs, 3);
	cr_expect_eq(j->runtime_ns, 120000000000ull);
	cr_expect(j->time_based);
	cr_expect_eq(j->ramp_ns, 500000000ull);
	cr_expect(!j->direct && j->direct_given);
	cr_expect_eq(j->engine, RPB_ENG_AIO);
	cr_expect(!j->randrepeat);
	cr_expect_eq(j->randseed, 42);
	cr_expect(j->stonewall && j->group_reporting && j->end_fsync);
	cr_expect_eq(s.format, RPB_FMT_JSON);
	cr_expect_str_eq(s.output, "out.json");
	cr_expect_eq(s.eta, RPB_ETA_NEVER);
	/* the options as given, for JSON's "job options" */
	cr_expect_eq(j->fadvise_hint, RPB_HINT_RANDOM);
	cr_expect_eq(j->ncpus, 5);
	for (int c = 0; c < 8; c++)
		cr_expect_eq(CPU_ISSET(c, &j->cpus) != 0, c <= 2 || c == 4 || c == 5, "CPU %d", c);
	cr_expect(j->cpus_split);
	cr_expect_eq(j->opts.n, 24, "%u options recorded", j->opts.n);
	rpb_spec_free(&s);

	/* the aliases and the other spellings */
	cr_assert_eq(parse(&s, "--readwrite=rw", "--rwmixwrite=30", "--blocksize=1m",
	                   "--buffered=1", "--wait_for_previous", "--output-format=normal,json",
	                   NULL), 0, "%s", err);
	j = &s.jobs[0];
	cr_expect_eq(j->rw, RPB_READWRITE);
	cr_expect_eq(j->rwmixread, 70);
	cr_expect_eq(j->bs, 1 << 20);
	cr_expect(!j->direct);
	cr_expect(j->stonewall);
	cr_expect_eq(s.format, RPB_FMT_NORMAL | RPB_FMT_JSON);
	rpb_spec_free(&s);
}

Test(rpbench_parse, defaults)
{
	struct rpb_spec s;
	const struct rpb_job *j;

	cr_assert_eq(parse(&s, NULL), 0, "%s", err);
	cr_assert_eq(s.njobs, 1);
	j = &s.jobs[0];
	cr_expect_str_eq(j->name, "rpbench");
	cr_expect_eq(j->rw, RPB_READ);
	cr_expect_eq(j->bs, 4096);
	cr_expect_eq(j->iodepth, 1);
	cr_expect_eq(j->numjobs, 1);
	cr_expect_eq(j->engine, RPB_ENG_RINGPAGER);
	cr_expect(j->randrepeat && j->direct && !j->time_based);
	cr_expect_eq(j->fadvise_hint, RPB_HINT_UNSET);
	cr_expect_eq(s.format, RPB_FMT_NORMAL);
	rpb_spec_free(&s);
}

Test(rpbench_parse, jobs_on_the_command_line)
{
	struct rpb_spec s;

	cr_assert_eq(parse(&s, "--rw=randread", "--size=64m", "--name=a", "--bs=8k", "--name=b",
	                   "--rw=write", "--stonewall", NULL), 0, "%s", err);
	cr_assert_eq(s.njobs, 2);
	cr_expect_str_eq(s.jobs[0].name, "a");
	cr_expect_eq(s.jobs[0].rw, RPB_RANDREAD, "an option before --name applies to every job");
	cr_expect_eq(s.jobs[0].bs, 8192);
	cr_expect_eq(s.jobs[0].size, 64ull << 20);
	cr_expect_str_eq(s.jobs[1].name, "b");
	cr_expect_eq(s.jobs[1].bs, 4096, "an option after --name=a is a's only");
	cr_expect_eq(s.jobs[1].rw, RPB_WRITE);
	cr_expect_eq(s.jobs[0].groupid, 0);
	cr_expect_eq(s.jobs[1].groupid, 1, "stonewall starts a new group");
	cr_expect_eq(s.global.n, 2);
	rpb_spec_free(&s);
}

Test(rpbench_parse, engine_keys_pass_through)
{
	struct rpb_spec s;
	char v[32];

	cr_assert_eq(parse(&s, "--ram_size=64M", "--readahead_max=1M", "--page_size=4k",
	                   "--hugepages=off", "--queue_depth=64", "--fault_threads=1", NULL),
	             0, "%s", err);
	cr_expect_eq(s.jobs[0].cfg.ram_size, 64ull << 20);
	cr_expect_eq(s.jobs[0].cfg.readahead_max, 1ull << 20);
	cr_expect_eq(s.jobs[0].cfg.queue_depth, 64);
	cr_expect_eq(rp_config_get(&s.jobs[0].cfg, "hugepages", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "off");
	cr_expect_eq(s.jobs[0].engine_keys.n, 6);
	rpb_spec_free(&s);
}

Test(rpbench_parse, unknown_and_malformed_refused_by_name)
{
	expect_refused("an unknown key", "'bogus'", "--bogus=1", NULL);
	expect_refused("an unknown bare key", "'zonemode'", "--zonemode", NULL);
	expect_refused("rw=sideways", "sideways", "--rw=sideways", NULL);
	expect_refused("rw with an offset modifier", "randread:8", "--rw=randread:8", NULL);
	expect_refused("bs=4x", "bs=4x", "--bs=4x", NULL);
	expect_refused("bs=0", "bs=0", "--bs=0", NULL);
	expect_refused("bs=4k,8k", "4k,8k", "--bs=4k,8k", NULL);
	expect_refused("size=50%", "size=50%", "--size=50%", NULL);
	expect_refused("size=abc", "size=abc", "--size=abc", NULL);
	expect_refused("iodepth=0", "iodepth=0", "--iodepth=0", NULL);
	expect_refused("iodepth=lots", "iodepth=lots", "--iodepth=lots", NULL);
	expect_refused("numjobs=-1", "numjobs=-1", "--numjobs=-1", NULL);
	expect_refused("rwmixread=101", "rwmixread=101", "--rwmixread=101", NULL);
	expect_refused("runtime=fast", "runtime=fast", "--runtime=fast", NULL);
	expect_refused("ramp_time=1.5", "ramp_time=1.5", "--ramp_time=1.5", NULL);
	expect_refused("time_based=maybe", "time_based=maybe", "--time_based=maybe", NULL);
	expect_refused("fadvise_hint=maybe", "fadvise_hint=maybe", "--fadvise_hint=maybe", NULL);
	expect_refused("ioengine=sync", "ioengine=sync", "--ioengine=sync", NULL);
	expect_refused("cpus_allowed=3-1", "cpus_allowed=3-1", "--cpus_allowed=3-1", NULL);
	expect_refused("cpus_allowed=x", "cpus_allowed=x", "--cpus_allowed=x", NULL);
	expect_refused("cpus_allowed=1,", "cpus_allowed=1,", "--cpus_allowed=1,", NULL);
	expect_refused("cpus_allowed=5000", "cpus_allowed=5000", "--cpus_allowed=5000", NULL);
	expect_refused("cpus_allowed empty", "cpus_allowed=", "--cpus_allowed=", NULL);
	expect_refused("cpus_allowed_policy=mine", "cpus_allowed_policy=mine",
	               "--cpus_allowed_policy=mine", NULL);
	expect_refused("ram_size=12X", "12X", "--ram_size=12X", NULL);
	expect_refused("readahead_max=lots", "readahead_max", "--readahead_max=lots", NULL);
	expect_refused("filename with ':'", "a:b", "--filename=a:b", NULL);
	expect_refused("time_based without runtime", "runtime", "--time_based", NULL);
	expect_refused("--output-format=xml", "xml", "--output-format=xml", NULL);
	expect_refused("--output without a file", "--output", "--output", NULL);
	expect_refused("--eta=sometimes", "sometimes", "--eta=sometimes", NULL);
	expect_refused("a single dash", "-x", "-x", NULL);
	expect_refused("--name without a value", "--name", "--name", NULL);
}

/* ---------------------------------------------------------------- job files */

Test(rpbench_parse, job_file_sections_and_overrides)
{
	char *path = jobfile("sections",
	                     "; a comment\n"
	                     "# another\n"
	                     "[global]\n"
	                     "rw = randread\n"
	                     "bs=4K\n"
	                     "time_based\n"
	                     "runtime=900\n"
	                     "ioengine=libaio\n"
	                     "\n"
	                     "[first]\n"
	                     "size=10G\n"
	                     "iodepth=16\n"
	                     "[global]\n"
	                     "bs=64k\n"
	                     "[second]\n"
	                     "stonewall\n"
	                     "rw=write\n");
	struct rpb_spec s;

	cr_assert_eq(parse(&s, path, NULL), 0, "%s", err);
	cr_assert_eq(s.njobs, 2);
	cr_expect_str_eq(s.jobs[0].name, "first");
	cr_expect_eq(s.jobs[0].rw, RPB_RANDREAD);
	cr_expect_eq(s.jobs[0].bs, 4096, "a later [global] does not reach an earlier job");
	cr_expect_eq(s.jobs[0].size, 10ull << 30);
	cr_expect_eq(s.jobs[0].iodepth, 16);
	cr_expect(s.jobs[0].time_based);
	cr_expect_eq(s.jobs[0].engine, RPB_ENG_AIO);
	cr_expect_eq(s.jobs[1].bs, 65536);
	cr_expect_eq(s.jobs[1].rw, RPB_WRITE);
	cr_expect_eq(s.jobs[1].groupid, 1);
	cr_expect_eq(s.jobs[0].opts.n, 3, "job options are the name and the section's own");
	rpb_spec_free(&s);

	/* the command line overrides the file, in every job */
	cr_assert_eq(parse(&s, "--ioengine=ringpager", "--size=1G", "--runtime=10", path, NULL), 0,
	             "%s", err);
	for (unsigned i = 0; i < 2; i++) {
		cr_expect_eq(s.jobs[i].engine, RPB_ENG_RINGPAGER);
		cr_expect_eq(s.jobs[i].size, 1ull << 30);
		cr_expect_eq(s.jobs[i].runtime_ns, 10000000000ull);
	}
	cr_expect_eq(s.jobs[0].iodepth, 16, "what the command line does not set stays");
	rpb_spec_free(&s);

	expect_refused("--name with a job file", "--name=x", "--name=x", path, NULL);
	tu_unlink(path);
}

Test(rpbench_parse, job_file_errors_name_the_key_and_the_file)
{
	char *unknown = jobfile("unknown", "[j]\nrw=read\nfrobnicate=3\n");
	char *badval = jobfile("badval", "[global]\nbs=4k\n[j]\niodepth=many\n");
	char *before = jobfile("before", "rw=read\n[j]\n");
	char *header = jobfile("header", "[j\nrw=read\n");
	char *empty = jobfile("empty", "[global]\nrw=read\n");
	char missing[256];

	expect_refused("an unknown key in a file", "'frobnicate'", unknown, NULL);
	cr_expect(strstr(err, unknown), "the message '%s' does not name the file", err);
	expect_refused("a bad value in a file", "iodepth=many", badval, NULL);
	cr_expect(strstr(err, "job j"), "the message '%s' does not name the job", err);
	expect_refused("an option before any section", ":1:", before, NULL);
	expect_refused("a broken section header", ":1:", header, NULL);
	expect_refused("a file without jobs", "no job section", empty, NULL);
	snprintf(missing, sizeof(missing), "%s/no-such-file.fio", tu_dir());
	{
		struct rpb_spec s;

		cr_expect_eq(parse(&s, missing, NULL), -ENOENT);
		cr_expect(strstr(err, "no-such-file.fio"), "'%s'", err);
	}
	tu_unlink(unknown);
	tu_unlink(badval);
	tu_unlink(before);
	tu_unlink(header);
	tu_unlink(empty);
}

/* Whatever a path names, the job reader neither blocks nor grows without bound: a
 * device, a FIFO, a directory, a file without newlines or one too large are refused by
 * name; an unsupported fio form is refused as unsupported, by name. */
Test(rpbench_parse, job_input_that_is_not_a_job_file_is_refused_at_once, .timeout = 60)
{
	char fifo[256], *huge, *longline, *nul;
	struct rpb_spec s;
	FILE *f;

	expect_refused("/dev/zero as a job file", "a character device", "/dev/zero", NULL);
	snprintf(fifo, sizeof(fifo), "%s/rpb-fifo-%d", tu_dir(), getpid());
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	expect_refused("a FIFO as a job file", "a FIFO", fifo, NULL);
	unlink(fifo);
	cr_expect_eq(parse(&s, tu_dir(), NULL), -EISDIR);
	cr_expect(strstr(err, "directory"), "'%s'", err);

	/* 2 MiB without a newline, then one line of 8 KiB. */
	cr_assert(asprintf(&huge, "%s/rpb-huge-%d.fio", tu_dir(), getpid()) > 0);
	cr_assert((f = fopen(huge, "w")));
	for (int i = 0; i < 2 << 20; i++)
		fputc('x', f);
	fclose(f);
	cr_expect_eq(parse(&s, huge, NULL), -EFBIG);
	cr_expect(strstr(err, "1048576"), "the limit is named: '%s'", err);
	tu_unlink(huge);
	cr_assert(asprintf(&longline, "%s/rpb-long-%d.fio", tu_dir(), getpid()) > 0);
	cr_assert((f = fopen(longline, "w")));
	fputs("[j]\nfilename=", f);
	for (int i = 0; i < 8192; i++)
		fputc('x', f);
	fputs("\n", f);
	fclose(f);
	expect_refused("a line of 8 KiB", ":2: line longer than 4096", longline, NULL);
	tu_unlink(longline);
	nul = jobfile("nul", "[j]\nrw=read\n");
	cr_assert((f = fopen(nul, "a")));
	fputc(0, f);
	fclose(f);
	expect_refused("a job file with a NUL byte", "NUL", nul, NULL);
	tu_unlink(nul);

	expect_refused("fio's stride form", "not supported", "--rw=read:-8k", NULL);
	cr_expect(strstr(err, "read:-8k"), "the value is named: '%s'", err);
}

/* ---------------------------------------------------------------- a JSON reader */

/* Just enough JSON to check rpbench's output: a tree of values, numbers told apart as
 * integers (no '.', 'e') or not. */
enum jt { J_NULL, J_BOOL, J_INT, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jt t;
	double num;
	char *str;
	struct jv *kids; /* array elements or object values */
	char **keys;     /* object keys */
	size_t n;
};

static void jv_free(struct jv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jv_free(&v->kids[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->kids);
	free(v->keys);
	free(v->str);
}

static void ws(const char **p)
{
	while (isspace((unsigned char)**p))
		(*p)++;
}

static char *jstr(const char **p)
{
	size_t cap = 16, n = 0;
	char *s = malloc(cap);

	(*p)++; /* the opening quote */
	while (**p && **p != '"') {
		char c = *(*p)++;

		if (c == '\\') {
			c = *(*p)++;
			if (c == 'u') {
				c = (char)strtol((char[]){(*p)[0], (*p)[1], (*p)[2], (*p)[3], 0}, NULL, 16);
				*p += 4;
			} else if (c == 'n') {
				c = '\n';
			}
		}
		if (n + 2 > cap)
			s = realloc(s, cap *= 2);
		s[n++] = c;
	}
	if (**p != '"') {
		free(s);
		return NULL;
	}
	(*p)++;
	s[n] = 0;
	return s;
}

static bool jparse(const char **p, struct jv *v)
{
	memset(v, 0, sizeof(*v));
	ws(p);
	if (**p == '{' || **p == '[') {
		bool obj = **p == '{';

		v->t = obj ? J_OBJ : J_ARR;
		(*p)++;
		ws(p);
		if (**p == (obj ? '}' : ']'))
			return (*p)++, true;
		for (;;) {
			v->kids = realloc(v->kids, (v->n + 1) * sizeof(*v->kids));
			if (obj) {
				v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
				ws(p);
				if (**p != '"' || !(v->keys[v->n] = jstr(p)))
					return false;
				ws(p);
				if (*(*p)++ != ':') {
					free(v->keys[v->n]);
					return false;
				}
			}
			if (!jparse(p, &v->kids[v->n])) {
				if (obj)
					free(v->keys[v->n]);
				return false;
			}
			v->n++;
			ws(p);
			if (**p == ',') {
				(*p)++;
				continue;
			}
			if (**p == (obj ? '}' : ']'))
				return (*p)++, true;
			return false;
		}
	}
	if (**p == '"')
		return v->t = J_STR, (v->str = jstr(p)) != NULL;
	if (strncmp(*p, "true", 4) == 0 || strncmp(*p, "false", 5) == 0)
		return v->t = J_BOOL, *p += **p == 't' ? 4 : 5, true;
	if (strncmp(*p, "null", 4) == 0)
		return *p += 4, true;
	if (**p == '-' || isdigit((unsigned char)**p)) {
		char *end;

		v->num = strtod(*p, &end);
		v->t = J_INT;
		for (const char *c = *p; c < end; c++)
			if (*c == '.' || *c == 'e' || *c == 'E')
				v->t = J_NUM;
		*p = end;
		return true;
	}
	return false;
}

/* The value at a path of object keys ("read", "clat_ns", "N"); NULL when absent. */
static const struct jv *jget(const struct jv *v, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, "/", &save); k && v; k = strtok_r(NULL, "/", &save)) {
		const struct jv *next = NULL;

		for (size_t i = 0; v->t == J_OBJ && i < v->n; i++)
			if (strcmp(v->keys[i], k) == 0)
				next = &v->kids[i];
		v = next;
	}
	return v;
}

static void expect_type(const struct jv *root, const char *path, enum jt t)
{
	const struct jv *v = jget(root, path);

	cr_expect(v, "JSON has no %s", path);
	if (v)
		cr_expect(v->t == t || (t == J_NUM && v->t == J_INT), "%s has type %d, not %d", path,
		          v->t, t);
}

/* ---------------------------------------------------------------- runs */

struct run {
	struct rpb_spec spec;
	struct rpb_report rep;
	int ret;
};

/* Parses the arguments and runs them, asserting the parse. Unless they choose the page
 * size, the run takes 4 KiB pages (hugepages=off ahead of them all): with `auto` an
 * engine would take the huge pages that a test running beside it reserved for itself
 * (a_file_under_one_huge_page_is_read_and_written), and its loads would then wait for
 * them until reclaim_wait ran out. */
static void run(struct run *r, ...)
{
	char *argv[MAX_ARGS];
	int argc;
	bool chosen = false;
	va_list ap;

	va_start(ap, r);
	argc = args(argv, ap);
	va_end(ap);
	for (int i = 1; i < argc; i++)
		chosen = chosen || !strncmp(argv[i], "--hugepages", 11);
	if (!chosen && argc < MAX_ARGS - 1) {
		memmove(argv + 2, argv + 1, (size_t)argc * sizeof(argv[0])); /* with the NULL */
		argv[1] = "--hugepages=off";
		argc++;
	}
	cr_assert_eq(rpb_parse(argc, argv, &r->spec, err, sizeof(err)), 0, "%s", err);
	r->ret = rpb_run(&r->spec, &r->rep, false);
}

static void run_free(struct run *r)
{
	rpb_report_free(&r->rep);
	rpb_spec_free(&r->spec);
}

static char *report_text(const struct rpb_report *rep, bool json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert(f);
	if (json)
		rpb_report_json(f, rep);
	else
		rpb_report_normal(f, rep);
	fclose(f);
	return buf;
}

static char *fname(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "--filename=%s", path);
	return buf;
}

Test(rpbench_json, fio_keys_with_fio_types)
{
	char *path = tu_scratch_file("rpb_json", 1 << 20, 1), farg[512];
	struct run r;
	const struct jv *job;
	struct jv root;
	const char *p;
	char *text;
	static const char *const ints[] = {
	    "jobname", "groupid", "error", "elapsed", "job_runtime", "ctx", "majf", "minf",
	    "read/io_bytes", "read/io_kbytes", "read/bw_bytes", "read/bw", "read/runtime",
	    "read/total_ios", "read/short_ios", "read/drop_ios", "read/clat_ns/min",
	    "read/clat_ns/max", "read/clat_ns/N", "read/lat_ns/N", "read/slat_ns/N", "read/bw_min",
	    "read/bw_max", "read/bw_samples", "read/iops_min", "read/iops_max",
	    "read/iops_samples", "write/total_ios", "write/clat_ns/N", "trim/io_bytes",
	    "sync/total_ios"};
	static const char *const nums[] = {"read/iops", "read/clat_ns/mean", "read/clat_ns/stddev",
	                                   "read/lat_ns/mean", "read/bw_agg", "read/bw_mean",
	                                   "read/bw_dev", "read/iops_mean", "read/iops_stddev",
	                                   "usr_cpu", "sys_cpu", "write/iops", "latency_us/250",
	                                   "latency_ms/>=2000", "latency_ns/1000"};

	run(&r, "--name=json", fname(farg, sizeof(farg), path), "--rw=randread", "--size=1m",
	    "--ioengine=psync", "--iodepth=4", "--output-format=json", NULL);
	cr_assert_eq(r.ret, 0, "the run failed: %s", r.rep.n ? r.rep.res[0].errmsg : "");
	text = report_text(&r.rep, true);
	p = text;
	cr_assert(jparse(&p, &root), "rpbench's JSON does not parse:\n%s", text);
	ws(&p);
	cr_expect_eq(*p, 0, "text after the JSON value");
	expect_type(&root, "fio version", J_STR);
	expect_type(&root, "timestamp", J_INT);
	expect_type(&root, "timestamp_ms", J_INT);
	expect_type(&root, "time", J_STR);
	expect_type(&root, "global options", J_OBJ);
	expect_type(&root, "jobs", J_ARR);
	expect_type(&root, "disk_util", J_ARR);
	cr_assert_eq(jget(&root, "jobs")->n, 1);
	job = &jget(&root, "jobs")->kids[0];
	expect_type(job, "jobname", J_STR);
	for (size_t i = 1; i < sizeof(ints) / sizeof(ints[0]); i++)
		expect_type(job, ints[i], J_INT);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		expect_type(job, nums[i], J_NUM);
	expect_type(job, "job options", J_OBJ);
	expect_type(job, "job options/rw", J_STR);
	cr_expect_str_eq(jget(job, "job options/rw")->str, "randread");
	cr_expect_str_eq(jget(job, "jobname")->str, "json");
	/* the figures: 256 blocks read once each (a random permutation without time_based) */
	cr_expect_eq(jget(job, "read/total_ios")->num, 256);
	cr_expect_eq(jget(job, "read/io_bytes")->num, 1 << 20);
	cr_expect_gt(jget(job, "read/iops")->num, 0);
	cr_expect_eq(jget(job, "write/total_ios")->num, 0);
	cr_expect_eq(jget(job, "read/clat_ns/N")->num, 256);
	cr_expect_geq(jget(job, "read/clat_ns/max")->num, jget(job, "read/clat_ns/min")->num);
	{
		static const char *const pk[] = {"1.000000",  "5.000000",  "10.000000", "20.000000",
		                                 "30.000000", "40.000000", "50.000000", "60.000000",
		                                 "70.000000", "80.000000", "90.000000", "95.000000",
		                                 "99.000000", "99.500000", "99.900000", "99.950000",
		                                 "99.990000"};
		const struct jv *pct = jget(job, "read/clat_ns/percentile");
		double prev = 0;

		cr_assert(pct && pct->t == J_OBJ, "no read/clat_ns/percentile object");
		cr_expect_eq(pct->n, 17);
		for (size_t i = 0; i < 17 && i < pct->n; i++) {
			cr_expect_str_eq(pct->keys[i], pk[i]);
			cr_expect_eq(pct->kids[i].t, J_INT, "percentile %s is not an integer", pk[i]);
			cr_expect_geq(pct->kids[i].num, prev, "percentiles go down at %s", pk[i]);
			prev = pct->kids[i].num;
		}
	}
	cr_expect_eq(jget(job, "ringpager"), NULL, "engine counters for a raw io/ engine");
	jv_free(&root);
	free(text);

	/* the normal output has fio's lines */
	text = report_text(&r.rep, false);
	cr_expect(strstr(text, "json: (groupid=0, jobs=1): err= 0"), "%s", text);
	cr_expect(strstr(text, "  read: IOPS="), "%s", text);
	cr_expect(strstr(text, "clat percentiles (") && strstr(text, "99.99th=["), "%s", text);
	cr_expect(strstr(text, "Run status group 0 (all jobs):"), "%s", text);
	free(text);
	run_free(&r);
	tu_unlink(path);
}

Test(rpbench_json, ringpager_counters_in_both_outputs)
{
	char *path = tu_scratch_file("rpb_rpjson", 1 << 20, 2), farg[512];
	struct run r;
	struct jv root;
	const struct jv *job;
	const char *p;
	char *text;

	run(&r, "--name=rp", fname(farg, sizeof(farg), path), "--rw=read", "--size=1m",
	    "--ram_size=16M", "--iodepth=4", "--hugepages=off", NULL); /* counts 4 KiB pages */
	cr_assert_eq(r.ret, 0, "%s", r.rep.n ? r.rep.res[0].errmsg : "");
	text = report_text(&r.rep, true);
	p = text;
	cr_assert(jparse(&p, &root), "%s", text);
	cr_assert(jget(&root, "jobs") && jget(&root, "jobs")->n == 1);
	job = &jget(&root, "jobs")->kids[0];
	expect_type(job, "ringpager/faults", J_INT);
	expect_type(job, "ringpager/pages_loaded", J_INT);
	expect_type(job, "ringpager/readahead_pages", J_INT);
	expect_type(job, "ringpager/pages_evicted", J_INT);
	cr_expect_eq(jget(job, "ringpager/pages_loaded")->num, 256);
	expect_type(job, "notes", J_STR);
	cr_expect(strstr(jget(job, "notes")->str, "iodepth=4"),
	          "iodepth on a synchronous engine is not said: %s",
	          jget(job, "notes")->str);
	jv_free(&root);
	free(text);
	text = report_text(&r.rep, false);
	cr_expect(strstr(text, "ringpager    : faults="), "%s", text);
	cr_expect(strstr(text, "notes        : iodepth=4"), "%s", text);
	free(text);
	run_free(&r);
	tu_unlink(path);
}

/* Every engine: a read job and a write job complete with IOPS; the writes reach the file
 * (each block of it then holds the clone's write buffer). */
static void engine_round_trip(const char *engine, const char *extra)
{
	uint64_t size = 2 << 20;
	char *path = tu_scratch_file(engine, size, 3), farg[512], earg[64];
	char *buf = malloc(size), *orig = malloc(size);
	struct run r;
	int fd;

	snprintf(earg, sizeof(earg), "--ioengine=%s", engine);
	cr_assert(buf && orig);
	tu_fill(orig, size, 3, 0);
	run(&r, "--name=rd", fname(farg, sizeof(farg), path), earg, "--rw=randread", "--size=2m",
	    "--iodepth=8", "--ram_size=16M", extra, NULL);
	cr_expect_eq(r.ret, 0, "%s: %s", engine, r.rep.n ? r.rep.res[0].errmsg : "");
	cr_expect_eq(r.rep.res[0].dir[0].ios, size / 4096, "%s: every block read once", engine);
	cr_expect_gt(r.rep.res[0].runtime_ns, 0);
	cr_expect_eq(r.rep.res[0].have_rp, strncmp(engine, "ringpager", 9) == 0);
	run_free(&r);

	run(&r, "--name=wr", fname(farg, sizeof(farg), path), earg, "--rw=randwrite",
	    "--size=2m", "--bs=8k", "--iodepth=8", "--ram_size=16M", "--end_fsync=1", extra, NULL);
	cr_expect_eq(r.ret, 0, "%s: %s", engine, r.rep.n ? r.rep.res[0].errmsg : "");
	cr_expect_eq(r.rep.res[0].dir[1].ios, size / 8192, "%s: every block written once", engine);
	cr_expect_eq(r.rep.res[0].sync.n, 1, "%s: end_fsync timed once", engine);
	run_free(&r);

	fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	cr_expect(memcmp(buf, orig, 8192) != 0, "%s: the first block was not written", engine);
	for (uint64_t off = 8192; off < size; off += 8192)
		if (memcmp(buf, buf + off, 8192) != 0) {
			cr_expect_fail("%s: block at %llu differs from the first: a write was lost",
			               engine, (unsigned long long)off);
			break;
		}
	free(buf);
	free(orig);
	tu_unlink(path);
}

Test(rpbench_engines, ringpager)
{
	engine_round_trip("ringpager", "--readahead_max=256k");
}

Test(rpbench_engines, ringpager_pin)
{
	engine_round_trip("ringpager-pin", "--readahead_max=256k");
}

Test(rpbench_engines, mmap)
{
	engine_round_trip("mmap", "--thread");
}

Test(rpbench_engines, io_uring)
{
	engine_round_trip("io_uring", "--thread");
}

Test(rpbench_engines, libaio)
{
	engine_round_trip("libaio", "--thread");
}

Test(rpbench_engines, psync)
{
	engine_round_trip("psync", "--thread");
}

/* cpus_allowed binds the job's threads: a CPU the process may use runs the job; one it may
 * not fails the job by name, having done nothing. */
Test(rpbench_engines, cpus_allowed_binds_the_threads)
{
	char *path = tu_scratch_file("rpb_cpus", 1 << 20, 6), farg[512], carg[64];
	cpu_set_t mine;
	int have = -1, lack = -1;
	struct run r;

	cr_assert_eq(sched_getaffinity(0, sizeof(mine), &mine), 0);
	for (int c = 0; c < 1024 && (have < 0 || lack < 0); c++) {
		if (CPU_ISSET(c, &mine) && have < 0)
			have = c;
		if (!CPU_ISSET(c, &mine) && lack < 0)
			lack = c;
	}
	snprintf(carg, sizeof(carg), "--cpus_allowed=%d", have);
	run(&r, "--name=bound", fname(farg, sizeof(farg), path), "--rw=randread", "--size=1m",
	    "--ram_size=16M", "--numjobs=2", "--cpus_allowed_policy=split", carg, NULL);
	cr_expect_eq(r.ret, 0, "%s", r.rep.n ? r.rep.res[0].errmsg : "");
	cr_expect_eq(r.rep.res[0].dir[0].ios, 256, "every block read");
	run_free(&r);
	snprintf(carg, sizeof(carg), "--cpus_allowed=%d", lack);
	run(&r, "--name=nowhere", fname(farg, sizeof(farg), path), "--rw=randread", "--size=1m",
	    "--ram_size=16M", carg, NULL);
	cr_expect_neq(r.ret, 0, "a CPU the process may not use was accepted");
	cr_expect(strstr(r.rep.res[0].errmsg, "cpus_allowed"), "%s", r.rep.res[0].errmsg);
	cr_expect_eq(r.rep.res[0].dir[0].ios, 0);
	run_free(&r);
	tu_unlink(path);
}

/* Every 4 KiB block of the first `size` bytes of the file at path holds what its first
 * block holds: rpbench writes the same bytes to every block. */
static void expect_every_block_written(const char *path, uint64_t size)
{
	char *buf = malloc(size);
	int fd = open(path, O_RDONLY);

	cr_assert(buf && fd >= 0);
	cr_assert_eq(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	for (uint64_t off = 4096; off < size; off += 4096)
		cr_expect(memcmp(buf, buf + off, 4096) == 0, "block at %llu not written",
		          (unsigned long long)off);
	free(buf);
}

Test(rpbench_engines, ringpager_writes_without_end_fsync_are_written_out)
{
	uint64_t size = 1 << 20;
	char *path = tu_scratch_file("rpb_wo", size, 4), farg[512];
	struct run r;

	run(&r, "--name=w", fname(farg, sizeof(farg), path), "--rw=write", "--size=1m",
	    "--ram_size=16M", "--hugepages=off", NULL); /* counts 4 KiB pages */
	cr_expect_eq(r.ret, 0, "%s", r.rep.n ? r.rep.res[0].errmsg : "");
	cr_expect_eq(r.rep.res[0].sync.n, 0, "the writeout is not timed without end_fsync");
	cr_expect_eq(r.rep.res[0].rp.pages_written, 256);
	cr_expect(strstr(r.rep.res[0].notes, "untimed"), "%s", r.rep.res[0].notes);
	cr_expect(strstr(r.rep.res[0].notes, "dirty_policy=writeback"), "%s", r.rep.res[0].notes);
	run_free(&r);
	expect_every_block_written(path, size);
	tu_unlink(path);
}

/* With 2 MiB pages a file under 2 MiB is one page that passes the file's end: the job
 * reads it and writes it, and the file keeps its size. As root it reserves the huge pages
 * and puts the old value back. */
Test(rpbench_engines, a_file_under_one_huge_page_is_read_and_written, .fini = tu_huge_restore)
{
	uint64_t size = 1 << 20;
	char *path = tu_scratch_file("rpb_huge", size, 5), farg[512];
	struct stat st;
	struct run r;

	tu_huge_reserve(8);
	run(&r, "--name=w", fname(farg, sizeof(farg), path), "--rw=write", "--size=1m",
	    "--ram_size=16M", "--hugepages=require", "--end_fsync=1", NULL);
	cr_expect_eq(r.ret, 0, "%s", r.rep.n ? r.rep.res[0].errmsg : "");
	cr_expect_eq(r.rep.res[0].rp.pages_written, 1, "one 2 MiB page");
	run_free(&r);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq((uint64_t)st.st_size, size, "the file grew to %lld bytes",
	             (long long)st.st_size);
	expect_every_block_written(path, size);
	run(&r, "--name=r", fname(farg, sizeof(farg), path), "--rw=randread", "--size=1m",
	    "--ram_size=16M", "--hugepages=require", NULL);
	cr_expect_eq(r.ret, 0, "%s", r.rep.n ? r.rep.res[0].errmsg : "");
	cr_expect_eq(r.rep.res[0].dir[0].ios, 256, "every 4 KiB block read once");
	run_free(&r);
	tu_unlink(path);
}

Test(rpbench_engines, time_based_loops_and_mixes)
{
	char *path = tu_scratch_file("rpb_tb", 256 << 10, 5), farg[512];
	struct run r;

	run(&r, "--name=mix", fname(farg, sizeof(farg), path), "--rw=randrw", "--rwmixread=50",
	    "--size=256k", "--ioengine=psync", "--time_based", "--runtime=300ms",
	    "--ramp_time=100ms", NULL);
	cr_expect_eq(r.ret, 0, "%s", r.rep.n ? r.rep.res[0].errmsg : "");
	cr_expect_gt(r.rep.res[0].dir[0].ios + r.rep.res[0].dir[1].ios, 64,
	             "time_based does not go round the 64 blocks again");
	cr_expect_gt(r.rep.res[0].dir[0].ios, 0);
	cr_expect_gt(r.rep.res[0].dir[1].ios, 0);
	cr_expect_geq(r.rep.res[0].runtime_ns, 300000000ull, "measured less than the runtime");
	run_free(&r);
	tu_unlink(path);
}

Test(rpbench_engines, clones_groups_and_reporting)
{
	char *path = tu_scratch_file("rpb_cl", 256 << 10, 6), farg[512];
	struct run r;

	run(&r, fname(farg, sizeof(farg), path), "--size=256k", "--ioengine=io_uring",
	    "--name=a", "--numjobs=2", "--name=b", "--numjobs=2", "--group_reporting",
	    "--stonewall", NULL);
	cr_expect_eq(r.ret, 0, "%s", r.rep.n ? r.rep.res[0].errmsg : "");
	cr_assert_eq(r.rep.n, 3, "two clones of a, and b's clones together");
	cr_expect_eq(r.rep.res[0].clones, 1);
	cr_expect_eq(r.rep.res[0].dir[0].ios, 64);
	cr_expect_eq(r.rep.res[2].clones, 2);
	cr_expect_eq(r.rep.res[2].dir[0].ios, 128);
	cr_expect_eq(r.rep.res[2].job->groupid, 1);
	run_free(&r);
	tu_unlink(path);
}

Test(rpbench_engines, errors_are_reported_not_fatal)
{
	char farg[600], path[512];
	struct run r;
	char *file = tu_scratch_file("rpb_err", 64 << 10, 7);

	snprintf(path, sizeof(path), "%s/rpb-no-such-file", tu_dir());
	run(&r, "--name=missing", fname(farg, sizeof(farg), path), NULL);
	cr_expect_eq(r.ret, -1);
	cr_assert_eq(r.rep.n, 1);
	cr_expect(strstr(r.rep.res[0].errmsg, "rpb-no-such-file") &&
	          strstr(r.rep.res[0].errmsg, "size is not set"), "%s", r.rep.res[0].errmsg);
	run_free(&r);

	run(&r, "--name=align", fname(farg, sizeof(farg), file), "--ioengine=io_uring",
	    "--bs=1000", NULL);
	cr_expect_eq(r.ret, -1);
	cr_expect(strstr(r.rep.res[0].errmsg, "bs=1000") && strstr(r.rep.res[0].errmsg, "alignment"),
	          "%s", r.rep.res[0].errmsg);
	run_free(&r);

	run(&r, "--name=small", fname(farg, sizeof(farg), file), "--bs=1m", NULL);
	cr_expect_eq(r.ret, -1);
	cr_expect(strstr(r.rep.res[0].errmsg, "bs=1048576"), "%s", r.rep.res[0].errmsg);
	run_free(&r);
	tu_unlink(file);
}

/* ---------------------------------------------------------------- the benchmarks' options */

static void no_usage(FILE *f)
{
	(void)f;
}

static int parse_one(const char *prog, const char *opt, const char *arg, void *dst)
{
	(void)prog;
	(void)opt;
	*(int *)dst = (int)strlen(arg);
	return strcmp(arg, "bad") ? 0 : -1;
}

/* bu_parse_opts, the parser every per-layer benchmark uses: each kind's values, and each
 * kind's refusals. */
Test(bench_opts, each_kind_parses_and_refuses)
{
	const char *file = NULL;
	uint64_t size = 0, size4k = 0;
	unsigned count = 0, small = 0, depth = 0, rounds = 0;
	double secs = 0;
	bool on = false, fio = true;
	int fnv = 0;
	const struct bu_opt opts[] = {
	    BU_OPT("file", BU_STR, &file),          BU_OPT("size", BU_SIZE, &size),
	    BU_OPT("pool", BU_SIZE4K, &size4k),     BU_OPT("count", BU_COUNT, &count),
	    BU_OPT_MAX("small", BU_COUNT, &small, 8), BU_OPT_MAX("depth", BU_UINT, &depth, 64),
	    BU_OPT("rounds", BU_ROUNDS, &rounds),   BU_OPT("runtime", BU_SECONDS, &secs),
	    BU_OPT("on", BU_SET, &on),              BU_OPT("no-fio", BU_CLEAR, &fio),
	    BU_OPT_FN("fn", parse_one, &fnv),
	};
	const size_t n = sizeof(opts) / sizeof(opts[0]);
	char *good[] = {"b",        "--file", "x.dat",  "--size=3k",  "--pool", "8k",
	                "--count",  "1M",     "--small", "8",         "--depth", "0",
	                "--rounds", "32",     "--runtime", "0.5",     "--on",    "--no-fio",
	                "--fn",     "abcd"};

	cr_assert_eq(bu_parse_opts("b", 20, good, opts, n, no_usage), 0);
	cr_assert_str_eq(file, "x.dat");
	cr_assert_eq(size, 3072);
	cr_assert_eq(size4k, 8192);
	cr_assert_eq(count, 1048576);
	cr_assert_eq(small, 8);
	cr_assert_eq(depth, 0);
	cr_assert_eq(rounds, 32);
	cr_assert_float_eq(secs, 0.5, 1e-9);
	cr_assert(on && !fio);
	cr_assert_eq(fnv, 4);

	const char *bad[][2] = {{"--size", "3q"},    {"--pool", "6k"},   {"--count", "20M"},
	                        {"--small", "9"},    {"--depth", "65"},  {"--depth", "-1"},
	                        {"--rounds", "0"},   {"--rounds", "33"}, {"--runtime", "0"},
	                        {"--runtime", "1x"}, {"--fn", "bad"},    {"--nope", "1"}};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {"b", (char *)bad[i][0], (char *)bad[i][1]};

		cr_assert_eq(bu_parse_opts("b", 3, argv, opts, n, no_usage), 2, "%s %s", bad[i][0],
		             bad[i][1]);
	}
	char *help[] = {"b", "--help"}, *extra[] = {"b", "stray"};

	cr_assert_eq(bu_parse_opts("b", 2, help, opts, n, no_usage), 1);
	cr_assert_eq(bu_parse_opts("b", 2, extra, opts, n, no_usage), 2);
}
