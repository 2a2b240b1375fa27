/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rpbench/job.c - rpbench's jobs: fio's options, from the command line and from
 * job files (rpbench.h says how the two combine).
 *
 * A job is built by applying, in order: rpbench's defaults, the RINGPAGER_* variables
 * (to the engine configuration), the [global] options before the job's section (or the
 * command-line options before its --name), the job's own options, and with job files the
 * command-line overrides. Every key goes through job_set, which checks the value; an
 * unknown key or a malformed value stops the parse with a message naming it. Engine
 * keys (ram_size, readahead_max, ... : everything rp_config_set knows) are checked by
 * the library itself, so rpbench cannot drift from it.
 */
#include "bench/rpbench/rpbench.h"
#include "engine/textin.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const rw_names[] = {"read", "write", "randread", "randwrite", "randrw",
                                       "readwrite"};
static const char *const engine_names[] = {"ringpager", "ringpager-pin", "mmap",
                                           "io_uring",  "libaio",        "psync"};

const char *rpb_rw_name(enum rpb_rw rw)
{
	return rw_names[rw];
}

const char *rpb_engine_name(enum rpb_engine e)
{
	return engine_names[e];
}

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		abort(); /* the benchmark, not the library: out of memory for a string is fatal */
	return d;
}

static void kv_add(struct rpb_kvlist *l, const char *key, const char *val)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			abort();
	}
	l->v[l->n].key = xstrdup(key);
	l->v[l->n].val = xstrdup(val ? val : "");
	l->n++;
}

static void kv_free(struct rpb_kvlist *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].val);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* ---------------------------------------------------------------- values */

/* The decimal number s starts with (no sign, no space); *end after it. */
static int leading_number(const char *s, unsigned long long *v, char **end)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno ? -EINVAL : 0;
}

/* fio's size forms, wider than the library's (engine/config.c takes k/M/G/T only): the
 * two grammars are kept apart because rpbench must read what fio's job files say. */
int rpb_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "kmgtp";
	char *end;
	unsigned long long v;
	int shift = 0;

	if (leading_number(s, &v, &end) < 0)
		return -EINVAL;
	if (*end) {
		const char *u = strchr(units, tolower((unsigned char)*end));

		if (u && *u) {
			shift = 10 * (int)(u - units + 1);
			end++;
			if (*end == 'i' || *end == 'I')
				end++;
		}
		if (*end == 'b' || *end == 'B')
			end++;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int rpb_parse_time(const char *s, uint64_t *ns)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = {{"", 1000000000ull},   {"s", 1000000000ull},     {"sec", 1000000000ull},
	             {"us", 1000ull},       {"usec", 1000ull},        {"ms", 1000000ull},
	             {"msec", 1000000ull},  {"m", 60000000000ull},    {"min", 60000000000ull},
	             {"h", 3600000000000ull}, {"d", 86400000000000ull}};
	char *end;
	unsigned long long v;

	if (leading_number(s, &v, &end) < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].unit) == 0) {
			if (v > UINT64_MAX / units[i].ns)
				return -EINVAL;
			*ns = v * units[i].ns;
			return 0;
		}
	return -EINVAL;
}

/* fio's booleans: a bare key is true; 0/1 (and true/false, yes/no, on/off). */
static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"", "1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	return -EINVAL;
}

static int parse_uint(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (leading_number(v, &x, &end) < 0 || *end || x < lo || x > hi)
		return -EINVAL;
	*out = x;
	return 0;
}

/* fio's CPU list: numbers and ranges, comma separated ("0-3,6"). */
static int parse_cpus(const char *v, cpu_set_t *set, unsigned *n)
{
	CPU_ZERO(set);
	*n = 0;
	while (*v) {
		char *end;
		unsigned long long lo, hi;

		if (leading_number(v, &lo, &end) < 0)
			return -EINVAL;
		hi = lo;
		if (*end == '-' && leading_number(end + 1, &hi, &end) < 0)
			return -EINVAL;
		if (lo > hi || hi >= CPU_SETSIZE || (*end && *end != ','))
			return -EINVAL;
		for (unsigned long long c = lo; c <= hi; c++)
			if (!CPU_ISSET(c, set)) {
				CPU_SET(c, set);
				(*n)++;
			}
		v = *end ? end + 1 : end;
		if (*end && !*v)
			return -EINVAL; /* a trailing comma */
	}
	return *n ? 0 : -EINVAL;
}

static int parse_name(const char *v, const char *const *names, size_t n, int *out)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0)
			return *out = (int)i, 0;
	return -EINVAL;
}

static void list_names(char *buf, size_t len, const char *const *names, size_t n)
{
	size_t used = 0;

	buf[0] = 0;
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
}

/* ---------------------------------------------------------------- one key */

static void job_defaults(struct rpb_job *j, const char *name)
{
	memset(j, 0, sizeof(*j));
	j->name = xstrdup(name);
	j->rw = RPB_READ;
	j->rwmixread = 50;
	j->bs = 4096;
	j->iodepth = 1;
	j->numjobs = 1;
	j->direct = true; /* ringpager reads O_DIRECT: the engines compare alike by default */
	j->engine = RPB_ENG_RINGPAGER;
	j->randrepeat = true;
	j->randseed = 0x89ABCDEFull; /* fixed: the same offsets every run (randrepeat) */
	j->fadvise_hint = RPB_HINT_UNSET;
	rp_config_init(&j->cfg);
}

static void job_free(struct rpb_job *j)
{
	free(j->name);
	free(j->description);
	free(j->filename);
	free(j->directory);
	kv_free(&j->engine_keys);
	kv_free(&j->opts);
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = xstrdup(v);
}

/* Applies key=val to the job. val is "" for a bare key. */
static int job_set(struct rpb_job *j, const char *key, const char *val, char *err, size_t len)
{
	uint64_t u;
	bool b;
	int e;
	char names[256];

#define BAD(...) return errf(err, len, __VA_ARGS__), -EINVAL
	if (strcmp(key, "name") == 0) {
		if (!*val)
			BAD("name: needs a value");
		set_str(&j->name, val);
	} else if (strcmp(key, "description") == 0) {
		set_str(&j->description, val);
	} else if (strcmp(key, "filename") == 0) {
		if (!*val)
			BAD("filename: needs a path");
		if (strchr(val, ':'))
			BAD("filename=%s: several files per job (':') are not supported", val);
		set_str(&j->filename, val);
	} else if (strcmp(key, "directory") == 0) {
		if (!*val)
			BAD("directory: needs a path");
		set_str(&j->directory, val);
	} else if (strcmp(key, "rw") == 0 || strcmp(key, "readwrite") == 0) {
		const char *v = strcmp(val, "rw") == 0 ? "readwrite" : val;

		if (strchr(v, ':'))
			BAD("%s=%s: fio's '<pattern>:<offset>' form (a hole or stride after each "
			    "I/O) is not supported; give the pattern alone",
			    key, val);
		if (parse_name(v, rw_names, 6, &e) < 0) {
			list_names(names, sizeof(names), rw_names, 6);
			BAD("%s=%s: expected one of %s", key, val, names);
		}
		j->rw = (enum rpb_rw)e;
	} else if (strcmp(key, "rwmixread") == 0 || strcmp(key, "rwmixwrite") == 0) {
		if (parse_uint(val, 0, 100, &u) < 0)
			BAD("%s=%s: expected a percentage, 0 to 100", key, val);
		j->rwmixread = key[5] == 'r' ? (unsigned)u : 100 - (unsigned)u;
	} else if (strcmp(key, "bs") == 0 || strcmp(key, "blocksize") == 0) {
		if (strchr(val, ','))
			BAD("%s=%s: separate read and write block sizes are not supported", key, val);
		if (rpb_parse_size(val, &u) < 0 || u == 0 || u > (1ull << 30))
			BAD("%s=%s: expected a block size from 1 byte to 1G (4k, 128KiB, 1m)", key, val);
		j->bs = u;
	} else if (strcmp(key, "size") == 0) {
		if (strchr(val, '%'))
			BAD("size=%s: a percentage of the file is not supported; give bytes (4G)", val);
		if (rpb_parse_size(val, &u) < 0 || u == 0)
			BAD("size=%s: expected a size in bytes with an optional suffix (1G, 512m)", val);
		j->size = u;
	} else if (strcmp(key, "iodepth") == 0) {
		if (parse_uint(val, 1, 4096, &u) < 0)
			BAD("iodepth=%s: expected 1 to 4096", val);
		j->iodepth = (unsigned)u;
		j->iodepth_given = true;
	} else if (strcmp(key, "numjobs") == 0) {
		if (parse_uint(val, 1, 256, &u) < 0)
			BAD("numjobs=%s: expected 1 to 256", val);
		j->numjobs = (unsigned)u;
	} else if (strcmp(key, "runtime") == 0 || strcmp(key, "ramp_time") == 0) {
		if (rpb_parse_time(val, &u) < 0)
			BAD("%s=%s: expected a time (10, 10s, 500ms, 2m, 1h)", key, val);
		*(key[1] == 'u' ? &j->runtime_ns : &j->ramp_ns) = u;
	} else if (strcmp(key, "time_based") == 0 || strcmp(key, "randrepeat") == 0 ||
	           strcmp(key, "stonewall") == 0 || strcmp(key, "wait_for_previous") == 0 ||
	           strcmp(key, "group_reporting") == 0 || strcmp(key, "end_fsync") == 0 ||
	           strcmp(key, "direct") == 0 || strcmp(key, "buffered") == 0 ||
	           strcmp(key, "thread") == 0) {
		if (parse_bool(val, &b) < 0)
			BAD("%s=%s: expected 0 or 1", key, val);
		if (strcmp(key, "time_based") == 0)
			j->time_based = b;
		else if (strcmp(key, "randrepeat") == 0)
			j->randrepeat = b;
		else if (strcmp(key, "stonewall") == 0 || strcmp(key, "wait_for_previous") == 0)
			j->stonewall = b;
		else if (strcmp(key, "group_reporting") == 0)
			j->group_reporting = b;
		else if (strcmp(key, "end_fsync") == 0)
			j->end_fsync = b;
		else if (strcmp(key, "direct") == 0 || strcmp(key, "buffered") == 0) {
			j->direct = key[0] == 'd' ? b : !b;
			j->direct_given = true;
		}
		/* thread: rpbench's clones are always threads; nothing else to do */
	} else if (strcmp(key, "fadvise_hint") == 0) {
		static const char *const hints[] = {"0", "1", "normal", "random", "sequential"};

		if (parse_name(val, hints, 5, &e) < 0)
			BAD("fadvise_hint=%s: expected 0, 1, normal, random or sequential", val);
		j->fadvise_hint = e;
	} else if (strcmp(key, "cpus_allowed") == 0) {
		if (parse_cpus(val, &j->cpus, &j->ncpus) < 0)
			BAD("cpus_allowed=%s: expected CPU numbers and ranges below %d (0-3,6)", val,
			    CPU_SETSIZE);
	} else if (strcmp(key, "cpus_allowed_policy") == 0) {
		static const char *const pol[] = {"shared", "split"};

		if (parse_name(val, pol, 2, &e) < 0)
			BAD("cpus_allowed_policy=%s: expected shared or split", val);
		j->cpus_split = e == 1;
	} else if (strcmp(key, "randseed") == 0) {
		if (parse_uint(val, 0, UINT64_MAX, &u) < 0)
			BAD("randseed=%s: expected a number", val);
		j->randseed = u;
	} else if (strcmp(key, "ioengine") == 0) {
		if (parse_name(val, engine_names, 6, &e) < 0) {
			list_names(names, sizeof(names), engine_names, 6);
			BAD("ioengine=%s: rpbench has the engines %s", val, names);
		}
		j->engine = (enum rpb_engine)e;
	} else {
		char tmp[8];

		/* an engine key? rp_config_get knows exactly the library's keys */
		if (rp_config_get(&j->cfg, key, tmp, sizeof(tmp)) == -EINVAL)
			BAD("unknown option '%s' (rpbench --help lists what is supported)", key);
		if (rp_config_set(&j->cfg, key, val) < 0)
			BAD("%s", rp_errmsg());
		kv_add(&j->engine_keys, key, val);
	}
#undef BAD
	return 0;
}

/* The job from its layers of options, checked as a whole. */
static int job_build(struct rpb_job *j, const char *name, const struct rpb_kvlist *const *layers,
                     unsigned nlayers, unsigned own, char *err, size_t len)
{
	job_defaults(j, name);
	kv_add(&j->opts, "name", name);
	if (rp_config_load_env(&j->cfg) < 0) {
		errf(err, len, "%s", rp_errmsg());
		return -EINVAL;
	}
	for (unsigned l = 0; l < nlayers; l++) {
		if (!layers[l])
			continue;
		for (unsigned i = 0; i < layers[l]->n; i++) {
			const struct rpb_kv *kv = &layers[l]->v[i];

			if (job_set(j, kv->key, kv->val, err, len) < 0)
				return -EINVAL;
			if (l >= own)
				kv_add(&j->opts, kv->key, kv->val);
		}
	}
	if (j->time_based && j->runtime_ns == 0) {
		errf(err, len, "job %s: time_based needs a runtime", j->name);
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- job files */

struct section {
	char *name;
	struct rpb_kvlist global; /* the [global] options in force at this section */
	struct rpb_kvlist own;
};

struct sections {
	struct section *v;
	unsigned n, cap;
};

static void sections_free(struct sections *ss)
{
	for (unsigned i = 0; i < ss->n; i++) {
		free(ss->v[i].name);
		kv_free(&ss->v[i].global);
		kv_free(&ss->v[i].own);
	}
	free(ss->v);
	memset(ss, 0, sizeof(*ss));
}

/* Reads a job file's sections. [global] sections accumulate and apply to the job
 * sections after them, as in fio. */
/* Job files are a few hundred lines; their reader refuses what cannot be one. */
#define JOBFILE_MAX_BYTES (1u << 20)
#define JOBFILE_MAX_LINE  4096

static int read_jobfile(const char *path, struct sections *ss, char *err, size_t len)
{
	struct rpb_kvlist global = {0};
	struct rpb_kvlist *cur = NULL;
	char *text, *pos, *line, msg[RPB_ERR_LEN];
	unsigned lineno = 0;
	int ret = textin_read(path, JOBFILE_MAX_BYTES, &text, msg, sizeof(msg));

	if (ret) {
		errf(err, len, "cannot read the job file %s", msg);
		return ret;
	}
	pos = text;
	while ((line = textin_line(&pos))) {
		char *s, *eq;

		lineno++;
		if (strlen(line) > JOBFILE_MAX_LINE) {
			errf(err, len, "%s:%u: line longer than %u bytes", path, lineno,
			     JOBFILE_MAX_LINE);
			ret = -EINVAL;
			break;
		}
		s = textin_trim(line);
		if (!*s || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');

			if (!close || close == s + 1 || *textin_trim(close + 1)) {
				errf(err, len, "%s:%u: malformed section header '%s'", path, lineno, s);
				ret = -EINVAL;
				break;
			}
			*close = 0;
			if (strcmp(s + 1, "global") == 0) {
				cur = &global;
				continue;
			}
			if (ss->n == ss->cap) {
				ss->cap = ss->cap ? 2 * ss->cap : 8;
				ss->v = realloc(ss->v, ss->cap * sizeof(*ss->v));
				if (!ss->v)
					abort();
			}
			memset(&ss->v[ss->n], 0, sizeof(ss->v[0]));
			ss->v[ss->n].name = xstrdup(s + 1);
			for (unsigned i = 0; i < global.n; i++)
				kv_add(&ss->v[ss->n].global, global.v[i].key, global.v[i].val);
			cur = &ss->v[ss->n++].own;
			continue;
		}
		if (!cur) {
			errf(err, len, "%s:%u: '%s' comes before any [section]", path, lineno, s);
			ret = -EINVAL;
			break;
		}
		eq = strchr(s, '=');
		if (eq) {
			*eq = 0;
			kv_add(cur, textin_trim(s), textin_trim(eq + 1));
		} else {
			kv_add(cur, s, "");
		}
	}
	free(text);
	kv_free(&global);
	return ret;
}

/* ---------------------------------------------------------------- the command line */

static int add_job(struct rpb_spec *s, const char *name, const struct rpb_kvlist *const *layers,
                   unsigned nlayers, unsigned own, const char *where, char *err, size_t len)
{
	struct rpb_job *j;
	char msg[RPB_ERR_LEN];

	s->jobs = realloc(s->jobs, (s->njobs + 1) * sizeof(*s->jobs));
	if (!s->jobs)
		abort();
	j = &s->jobs[s->njobs];
	if (job_build(j, name, layers, nlayers, own, msg, sizeof(msg)) < 0) {
		job_free(j);
		errf(err, len, "%s%s", where, msg);
		return -EINVAL;
	}
	if (s->njobs && j->stonewall)
		j->groupid = s->jobs[s->njobs - 1].groupid + 1;
	else if (s->njobs)
		j->groupid = s->jobs[s->njobs - 1].groupid;
	s->njobs++;
	return 0;
}

/* rpbench's own options; 1 when arg was one, 0 when not, -EINVAL when bad. */
static int program_option(struct rpb_spec *s, const char *key, const char *val, bool has_val,
                          char *err, size_t len)
{
	if (strcmp(key, "help") == 0 || strcmp(key, "version") == 0) {
		*(key[0] == 'h' ? &s->help : &s->version) = true;
		return 1;
	}
	if (strcmp(key, "output-format") == 0) {
		char *copy = xstrdup(val), *save = NULL;

		s->format = 0;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (strcmp(t, "normal") == 0)
				s->format |= RPB_FMT_NORMAL;
			else if (strcmp(t, "json") == 0)
				s->format |= RPB_FMT_JSON;
			else {
				errf(err, len, "--output-format=%s: '%s' is not normal or json", val, t);
				free(copy);
				return -EINVAL;
			}
		}
		free(copy);
		if (!s->format) {
			errf(err, len, "--output-format: needs normal, json, or normal,json");
			return -EINVAL;
		}
		return 1;
	}
	if (strcmp(key, "output") == 0) {
		if (!has_val || !*val) {
			errf(err, len, "--output: needs a file name (--output=result.json)");
			return -EINVAL;
		}
		set_str(&s->output, val);
		return 1;
	}
	if (strcmp(key, "eta") == 0) {
		static const char *const etas[] = {"auto", "always", "never"};

		if (parse_name(val, etas, 3, &s->eta) < 0) {
			errf(err, len, "--eta=%s: expected auto, always or never", val);
			return -EINVAL;
		}
		return 1;
	}
	return 0;
}

int rpb_parse(int argc, char *const argv[], struct rpb_spec *s, char *err, size_t errlen)
{
	struct rpb_kvlist cli_global = {0}, *cli_jobs = NULL;
	char **cli_names = NULL, *files[64];
	unsigned ncli = 0, nfiles = 0;
	int ret = 0;

	memset(s, 0, sizeof(*s));
	s->format = RPB_FMT_NORMAL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *key, *eq;
		int r;

		if (a[0] != '-' || a[1] != '-') {
			if (a[0] == '-') {
				errf(err, errlen, "%s: options are written --key=value", a);
				ret = -EINVAL;
				goto out;
			}
			if (nfiles == sizeof(files) / sizeof(files[0])) {
				errf(err, errlen, "%s: at most 64 job files", a);
				ret = -EINVAL;
				goto out;
			}
			files[nfiles++] = (char *)a;
			continue;
		}
		key = xstrdup(a + 2);
		eq = strchr(key, '=');
		if (eq)
			*eq++ = 0;
		r = program_option(s, key, eq ? eq : "", eq != NULL, err, errlen);
		if (r == 0 && strcmp(key, "name") == 0) {
			cli_jobs = realloc(cli_jobs, (ncli + 1) * sizeof(*cli_jobs));
			cli_names = realloc(cli_names, (ncli + 1) * sizeof(*cli_names));
			if (!cli_jobs || !cli_names)
				abort();
			memset(&cli_jobs[ncli], 0, sizeof(cli_jobs[0]));
			cli_names[ncli++] = xstrdup(eq ? eq : "");
			if (!eq || !*eq) {
				errf(err, errlen, "--name: needs a value (--name=seqread)");
				r = -EINVAL;
			}
		} else if (r == 0) {
			if (!*key) {
				errf(err, errlen, "'--': expected --key=value");
				r = -EINVAL;
			} else {
				/* checked now against a scratch job, so the message points at the
				 * command line rather than at some job it ends up in */
				struct rpb_job scratch;
				char msg[RPB_ERR_LEN];

				job_defaults(&scratch, "check");
				if (job_set(&scratch, key, eq ? eq : "", msg, sizeof(msg)) < 0) {
					errf(err, errlen, "--%s", msg);
					r = -EINVAL;
				}
				job_free(&scratch);
				if (r == 0)
					kv_add(ncli ? &cli_jobs[ncli - 1] : &cli_global, key, eq ? eq : "");
			}
		}
		free(key);
		if (r < 0) {
			ret = r;
			goto out;
		}
	}
	if (s->help || s->version)
		goto out;

	if (nfiles && ncli) {
		errf(err, errlen, "--name=%s with a job file: give jobs either on the command line "
		     "or in job files", cli_names[0]);
		ret = -EINVAL;
		goto out;
	}
	if (nfiles) {
		for (unsigned f = 0; f < nfiles && ret == 0; f++) {
			struct sections ss = {0};
			char where[RPB_ERR_LEN];

			ret = read_jobfile(files[f], &ss, err, errlen);
			for (unsigned i = 0; ret == 0 && i < ss.n; i++) {
				const struct rpb_kvlist *layers[] = {&ss.v[i].global, &ss.v[i].own,
				                                     &cli_global};

				snprintf(where, sizeof(where), "%s, job %s: ", files[f], ss.v[i].name);
				ret = add_job(s, ss.v[i].name, layers, 3, 1, where, err, errlen);
				if (i == 0 && f == 0)
					for (unsigned k = 0; k < ss.v[i].global.n; k++)
						kv_add(&s->global, ss.v[i].global.v[k].key,
						       ss.v[i].global.v[k].val);
			}
			if (ret == 0 && ss.n == 0) {
				errf(err, errlen, "%s: no job section in the file", files[f]);
				ret = -EINVAL;
			}
			sections_free(&ss);
		}
	} else if (ncli) {
		for (unsigned i = 0; i < ncli && ret == 0; i++) {
			const struct rpb_kvlist *layers[] = {&cli_global, &cli_jobs[i]};
			char where[RPB_ERR_LEN];

			snprintf(where, sizeof(where), "job %s: ", cli_names[i]);
			ret = add_job(s, cli_names[i], layers, 2, 1, where, err, errlen);
		}
	} else {
		const struct rpb_kvlist *layers[] = {&cli_global};

		ret = add_job(s, "rpbench", layers, 1, 0, "", err, errlen);
	}
	for (unsigned k = 0; k < cli_global.n; k++)
		kv_add(&s->global, cli_global.v[k].key, cli_global.v[k].val);
out:
	kv_free(&cli_global);
	for (unsigned i = 0; i < ncli; i++) {
		kv_free(&cli_jobs[i]);
		free(cli_names[i]);
	}
	free(cli_jobs);
	free(cli_names);
	if (ret < 0)
		rpb_spec_free(s);
	return ret;
}

void rpb_spec_free(struct rpb_spec *s)
{
	for (unsigned i = 0; i < s->njobs; i++)
		job_free(&s->jobs[i]);
	free(s->jobs);
	kv_free(&s->global);
	free(s->output);
	memset(s, 0, sizeof(*s));
}
