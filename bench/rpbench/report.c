/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rpbench/report.c - latency histograms, and rpbench's results as fio prints them.
 *
 * The normal output follows fio's layout line for line where rpbench measures the same
 * thing (IOPS and bandwidth, clat min/max/avg/stdev, clat percentiles, bandwidth and
 * IOPS samples, the latency distribution, cpu, the group's "Run status"), and adds a
 * "ringpager" line with the engine's counters and a "notes" line.
 *
 * The JSON keeps fio's field names and types (integers where fio writes integers), so a
 * script written for fio's --output-format=json reads rpbench's. What rpbench does not
 * measure is written as fio writes an idle figure (slat_ns all zero: rpbench times an
 * I/O from its issue to its completion, so lat_ns and clat_ns are the same figures).
 */
#include "bench/rpbench/rpbench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- histograms */

#define SUB (1u << RPB_HIST_SUB_BITS)
#define HALF (SUB / 2)

static unsigned bucket_of(uint64_t v)
{
	unsigned msb, g, idx;

	if (v < SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	g = msb - RPB_HIST_SUB_BITS + 1; /* >= 1: the group, and the shift within it */
	idx = SUB + (g - 1) * HALF + (unsigned)((v >> g) - HALF);
	return idx < RPB_HIST_BUCKETS ? idx : RPB_HIST_BUCKETS - 1;
}

/* The middle of a bucket's range of values. */
static uint64_t bucket_value(unsigned idx)
{
	unsigned g, m;

	if (idx < SUB)
		return idx;
	g = (idx - SUB) / HALF + 1;
	m = HALF + (idx - SUB) % HALF;
	return ((uint64_t)m << g) + ((1ull << g) >> 1);
}

void rpb_lat_add(struct rpb_lat *l, uint64_t ns)
{
	if (l->n == 0 || ns < l->min)
		l->min = ns;
	if (ns > l->max)
		l->max = ns;
	l->n++;
	l->sum += (double)ns;
	l->sumsq += (double)ns * (double)ns;
	l->hist[bucket_of(ns)]++;
}

void rpb_lat_merge(struct rpb_lat *into, const struct rpb_lat *from)
{
	if (from->n == 0)
		return;
	if (into->n == 0 || from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
	into->n += from->n;
	into->sum += from->sum;
	into->sumsq += from->sumsq;
	for (unsigned i = 0; i < RPB_HIST_BUCKETS; i++)
		into->hist[i] += from->hist[i];
}

uint64_t rpb_lat_percentile(const struct rpb_lat *l, double pct)
{
	uint64_t rank, seen = 0;

	if (l->n == 0)
		return 0;
	rank = (uint64_t)ceil(pct / 100.0 * (double)l->n);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < RPB_HIST_BUCKETS; i++) {
		seen += l->hist[i];
		if (seen >= rank) {
			uint64_t v = bucket_value(i);

			return v < l->min ? l->min : v > l->max ? l->max : v;
		}
	}
	return l->max;
}

double rpb_lat_mean(const struct rpb_lat *l)
{
	return l->n ? l->sum / (double)l->n : 0;
}

double rpb_lat_stddev(const struct rpb_lat *l)
{
	double m, var;

	if (l->n < 2)
		return 0;
	m = l->sum / (double)l->n;
	var = (l->sumsq - (double)l->n * m * m) / (double)(l->n - 1);
	return var > 0 ? sqrt(var) : 0;
}

static const double pcts[] = {1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9,
                              99.95, 99.99};
#define NPCTS (sizeof(pcts) / sizeof(pcts[0]))

/* fio's latency distribution: percent of I/Os at or below each bound, above the last */
static const uint64_t dist_bounds[] = {2, 4, 10, 20, 50, 100, 250, 500, 750, 1000};
#define NDIST (sizeof(dist_bounds) / sizeof(dist_bounds[0]))

/* Percent of the I/Os of both directions in (lo, hi] nanoseconds (hi 0: no bound). */
static double dist_share(const struct rpb_result *r, uint64_t lo, uint64_t hi)
{
	uint64_t in = 0, n = r->dir[0].lat.n + r->dir[1].lat.n;

	if (n == 0)
		return 0;
	for (int d = 0; d < 2; d++)
		for (unsigned i = 0; i < RPB_HIST_BUCKETS; i++) {
			uint64_t v = bucket_value(i);

			if (r->dir[d].lat.hist[i] && v > lo && (hi == 0 || v <= hi))
				in += r->dir[d].lat.hist[i];
		}
	return 100.0 * (double)in / (double)n;
}

static void samples_stats(const double *v, unsigned n, double *min, double *max, double *mean,
                          double *dev)
{
	double s = 0, ss = 0;

	*min = *max = *mean = *dev = 0;
	if (n == 0)
		return;
	*min = *max = v[0];
	for (unsigned i = 0; i < n; i++) {
		*min = v[i] < *min ? v[i] : *min;
		*max = v[i] > *max ? v[i] : *max;
		s += v[i];
		ss += v[i] * v[i];
	}
	*mean = s / n;
	if (n > 1) {
		double var = (ss - n * *mean * *mean) / (n - 1);

		*dev = var > 0 ? sqrt(var) : 0;
	}
}

static double runtime_s(const struct rpb_result *r)
{
	return r->runtime_ns ? (double)r->runtime_ns / 1e9 : 0;
}

static double dir_iops(const struct rpb_result *r, int d)
{
	double t = runtime_s(r);

	return t > 0 ? (double)r->dir[d].ios / t : 0;
}

static double dir_bw(const struct rpb_result *r, int d) /* bytes per second */
{
	double t = runtime_s(r);

	return t > 0 ? (double)r->dir[d].bytes / t : 0;
}

/* The bandwidth of every entry of r's group in direction d (for bw_agg and "per="). */
static double group_bw(const struct rpb_report *rep, const struct rpb_result *r, int d)
{
	double s = 0;

	for (unsigned i = 0; i < rep->n; i++)
		if (rep->res[i].job->groupid == r->job->groupid)
			s += dir_bw(&rep->res[i], d);
	return s;
}

/* ---------------------------------------------------------------- normal output */

/* fio's short numbers: three significant digits and a unit prefix (16.5k, 64.6Mi). */
static const char *num(char *buf, size_t len, double v, bool binary)
{
	static const char *const dec[] = {"", "k", "M", "G", "T", "P"};
	static const char *const bin[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
	double base = binary ? 1024 : 1000;
	unsigned u = 0;

	while (v >= (binary ? 1024 : 1000) - 0.5 && u < 5) {
		v /= base;
		u++;
	}
	if (u == 0 || v >= 100)
		snprintf(buf, len, "%.0f%s", v, (binary ? bin : dec)[u]);
	else if (v >= 10)
		snprintf(buf, len, "%.1f%s", v, (binary ? bin : dec)[u]);
	else
		snprintf(buf, len, "%.2f%s", v, (binary ? bin : dec)[u]);
	return buf;
}

/* nsec, usec or msec, and the divisor, for a latency of this mean */
static const char *lat_unit(double mean_ns, double *div)
{
	if (mean_ns < 10e3)
		return *div = 1, "nsec";
	if (mean_ns < 10e6)
		return *div = 1e3, "usec";
	return *div = 1e6, "msec";
}

static void normal_dir(FILE *f, const struct rpb_report *rep, const struct rpb_result *r, int d)
{
	const struct rpb_dir *dir = &r->dir[d];
	const struct rpb_lat *l = &dir->lat;
	char a[32], b[32], c[32], e[32];
	double div, mn, mx, mean, dev, gbw = group_bw(rep, r, d);
	const char *unit;

	fprintf(f, "  %s: IOPS=%s, BW=%sB/s (%sB/s)(%sB/%llumsec)\n", d ? "write" : "read",
	        num(a, sizeof(a), dir_iops(r, d), false), num(b, sizeof(b), dir_bw(r, d), true),
	        num(c, sizeof(c), dir_bw(r, d), false), num(e, sizeof(e), (double)dir->bytes, true),
	        (unsigned long long)(r->runtime_ns / 1000000));
	unit = lat_unit(rpb_lat_mean(l), &div);
	fprintf(f, "    clat (%s): min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f\n", unit,
	        (double)l->min / div, (double)l->max / div, rpb_lat_mean(l) / div,
	        rpb_lat_stddev(l) / div);
	fprintf(f, "     lat (%s): min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f\n", unit,
	        (double)l->min / div, (double)l->max / div, rpb_lat_mean(l) / div,
	        rpb_lat_stddev(l) / div);
	fprintf(f, "    clat percentiles (%s):", unit);
	for (unsigned i = 0; i < NPCTS; i++)
		fprintf(f, "%s%5.2fth=[%5.0f]%s", i % 4 == 0 ? "\n     | " : " ", pcts[i],
		        (double)rpb_lat_percentile(l, pcts[i]) / div, i + 1 < NPCTS ? "," : "\n");
	samples_stats(dir->samples.bw, dir->samples.n, &mn, &mx, &mean, &dev);
	fprintf(f, "   bw (  KiB/s): min=%.0f, max=%.0f, per=%.2f%%, avg=%.2f, stdev=%.2f, samples=%u\n",
	        mn, mx, gbw > 0 ? 100.0 * dir_bw(r, d) / gbw : 0, mean, dev, dir->samples.n);
	samples_stats(dir->samples.iops, dir->samples.n, &mn, &mx, &mean, &dev);
	fprintf(f, "   iops        : min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f, samples=%u\n", mn,
	        mx, mean, dev, dir->samples.n);
}

/* fio's "lat (usec)   : 50=32.23%, 100=65.08%" lines; shares under 0.01% left out */
static void normal_dist(FILE *f, const struct rpb_result *r)
{
	static const char *const units[] = {"nsec", "usec", "msec"};
	uint64_t prev = 0;

	for (unsigned u = 0; u < 3; u++) {
		uint64_t mul = u == 0 ? 1 : u == 1 ? 1000 : 1000000;
		char line[256];
		size_t used = 0;

		for (unsigned i = 0; i < NDIST + (u == 2); i++) {
			uint64_t hi = i < NDIST ? dist_bounds[i] * mul : 2000 * mul;
			double p = dist_share(r, prev, hi);

			prev = hi;
			if (p >= 0.01 && used < sizeof(line))
				used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%llu=%.2f%%",
				                         used ? ", " : "", (unsigned long long)(hi / mul), p);
		}
		if (used)
			fprintf(f, "  lat (%s)   : %s\n", units[u], line);
	}
	if (dist_share(r, prev, 0) >= 0.01)
		fprintf(f, "  lat (msec)   : >=2000=%.2f%%\n", dist_share(r, prev, 0));
}

static void normal_entry(FILE *f, const struct rpb_report *rep, const struct rpb_result *r)
{
	time_t now = (time_t)(rep->timestamp_ms / 1000);
	char when[64];

	strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", localtime(&now));
	fprintf(f, "%s: (groupid=%u, jobs=%u): err=%2d: pid=%d: %s\n", r->job->name,
	        r->job->groupid, r->clones, r->error, (int)getpid(), when);
	if (r->job->description)
		fprintf(f, "  Description  : [%s]\n", r->job->description);
	if (r->error)
		fprintf(f, "  error        : %s\n", r->errmsg);
	for (int d = 0; d < 2; d++)
		if (r->dir[d].ios)
			normal_dir(f, rep, r, d);
	normal_dist(f, r);
	if (r->sync.n) {
		double div;
		const char *unit = lat_unit(rpb_lat_mean(&r->sync), &div);

		fprintf(f, "  sync (%s): min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f, N=%llu\n", unit,
		        (double)r->sync.min / div, (double)r->sync.max / div,
		        rpb_lat_mean(&r->sync) / div, rpb_lat_stddev(&r->sync) / div,
		        (unsigned long long)r->sync.n);
	}
	fprintf(f, "  cpu          : usr=%.2f%%, sys=%.2f%%, ctx=%llu, majf=%llu, minf=%llu\n",
	        r->usr_cpu, r->sys_cpu, (unsigned long long)r->ctx, (unsigned long long)r->majf,
	        (unsigned long long)r->minf);
	if (r->have_rp) {
		const struct rp_stats *s = &r->rp;

		fprintf(f, "  ringpager    : faults=%llu, minor=%llu, loads=%llu, pages loaded=%llu, "
		        "readahead=%llu (used=%llu, wasted=%llu, windows=%llu, copied=%llu, "
		        "dropped=%llu), "
		        "evicted=%llu, written=%llu pages, resident=%llu pages\n",
		        (unsigned long long)s->faults, (unsigned long long)s->minor_faults,
		        (unsigned long long)s->loads, (unsigned long long)s->pages_loaded,
		        (unsigned long long)s->readahead_pages, (unsigned long long)s->readahead_used,
		        (unsigned long long)s->readahead_wasted,
		        (unsigned long long)s->readahead_windows,
		        (unsigned long long)s->readahead_copied,
		        (unsigned long long)s->readahead_dropped,
		        (unsigned long long)s->pages_evicted,
		        (unsigned long long)s->pages_written, (unsigned long long)s->resident_pages);
	}
	for (const char *l = r->describe, *e; *l; l = *e ? e + 1 : e) {
		e = strchr(l, '\n');
		e = e ? e : l + strlen(l);
		fprintf(f, "  %-13s: %.*s\n", l == r->describe ? "engine" : "", (int)(e - l), l);
	}
	if (r->notes[0])
		fprintf(f, "  notes        : %s\n", r->notes);
}

void rpb_report_normal(FILE *f, const struct rpb_report *rep)
{
	unsigned ngroups = 0;

	for (unsigned i = 0; i < rep->n; i++) {
		normal_entry(f, rep, &rep->res[i]);
		if (rep->res[i].job->groupid + 1 > ngroups)
			ngroups = rep->res[i].job->groupid + 1;
		fprintf(f, "\n");
	}
	for (unsigned g = 0; g < ngroups; g++) {
		fprintf(f, "Run status group %u (all jobs):\n", g);
		for (int d = 0; d < 2; d++) {
			double bw = 0, lo = -1, hi = 0, io = 0;
			uint64_t tlo = UINT64_MAX, thi = 0;
			char a[6][32];

			for (unsigned i = 0; i < rep->n; i++) {
				const struct rpb_result *r = &rep->res[i];
				double b = dir_bw(r, d);

				if (r->job->groupid != g || !r->dir[d].ios)
					continue;
				bw += b;
				lo = lo < 0 || b < lo ? b : lo;
				hi = b > hi ? b : hi;
				io += (double)r->dir[d].bytes;
				tlo = r->runtime_ns < tlo ? r->runtime_ns : tlo;
				thi = r->runtime_ns > thi ? r->runtime_ns : thi;
			}
			if (io == 0)
				continue;
			fprintf(f, "  %s: bw=%sB/s (%sB/s), %sB/s-%sB/s, io=%sB (%sB), run=%llu-%llumsec\n",
			        d ? "WRITE" : " READ", num(a[0], 32, bw, true), num(a[1], 32, bw, false),
			        num(a[2], 32, lo, true), num(a[3], 32, hi, true), num(a[4], 32, io, true),
			        num(a[5], 32, io, false), (unsigned long long)(tlo / 1000000),
			        (unsigned long long)(thi / 1000000));
		}
	}
}

/* ---------------------------------------------------------------- JSON */

/* A small JSON writer: it tracks whether a comma is due at each depth. */
struct jw {
	FILE *f;
	int depth;
	bool more[16];
};

static void jw_sep(struct jw *w)
{
	if (w->more[w->depth])
		fputc(',', w->f);
	fputc('\n', w->f);
	for (int i = 0; i < w->depth; i++)
		fputs("  ", w->f);
	w->more[w->depth] = true;
}

static void jw_str_raw(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void jw_key(struct jw *w, const char *k)
{
	jw_sep(w);
	if (k) {
		jw_str_raw(w->f, k);
		fputs(" : ", w->f);
	}
}

static void jw_open(struct jw *w, const char *k, char brace)
{
	jw_key(w, k);
	fputc(brace, w->f);
	w->more[++w->depth] = false;
}

static void jw_close(struct jw *w, char brace)
{
	w->depth--;
	fputc('\n', w->f);
	for (int i = 0; i < w->depth; i++)
		fputs("  ", w->f);
	fputc(brace, w->f);
}

static void jw_u64(struct jw *w, const char *k, uint64_t v)
{
	jw_key(w, k);
	fprintf(w->f, "%llu", (unsigned long long)v);
}

static void jw_dbl(struct jw *w, const char *k, double v)
{
	jw_key(w, k);
	fprintf(w->f, "%.6f", isfinite(v) ? v : 0.0);
}

static void jw_str(struct jw *w, const char *k, const char *v)
{
	jw_key(w, k);
	jw_str_raw(w->f, v);
}

static void jw_kvs(struct jw *w, const char *k, const struct rpb_kvlist *l)
{
	jw_open(w, k, '{');
	for (unsigned i = 0; i < l->n; i++)
		jw_str(w, l->v[i].key, l->v[i].val);
	jw_close(w, '}');
}

static void json_lat(struct jw *w, const char *k, const struct rpb_lat *l, bool pct)
{
	jw_open(w, k, '{');
	jw_u64(w, "min", l->min);
	jw_u64(w, "max", l->max);
	jw_dbl(w, "mean", rpb_lat_mean(l));
	jw_dbl(w, "stddev", rpb_lat_stddev(l));
	jw_u64(w, "N", l->n);
	if (pct && l->n) {
		char key[32];

		jw_open(w, "percentile", '{');
		for (unsigned i = 0; i < NPCTS; i++) {
			snprintf(key, sizeof(key), "%f", pcts[i]);
			jw_u64(w, key, rpb_lat_percentile(l, pcts[i]));
		}
		jw_close(w, '}');
	}
	jw_close(w, '}');
}

static void json_dir(struct jw *w, const struct rpb_report *rep, const struct rpb_result *r,
                     int d)
{
	static const struct rpb_lat zero;
	const struct rpb_dir *dir = d >= 0 ? &r->dir[d] : NULL;
	double mn, mx, mean, dev, gbw;

	jw_open(w, d == 0 ? "read" : d == 1 ? "write" : "trim", '{');
	jw_u64(w, "io_bytes", dir ? dir->bytes : 0);
	jw_u64(w, "io_kbytes", dir ? dir->bytes / 1024 : 0);
	jw_u64(w, "bw_bytes", dir ? (uint64_t)dir_bw(r, d) : 0);
	jw_u64(w, "bw", dir ? (uint64_t)(dir_bw(r, d) / 1024) : 0);
	jw_dbl(w, "iops", dir ? dir_iops(r, d) : 0);
	jw_u64(w, "runtime", dir && dir->ios ? r->runtime_ns / 1000000 : 0);
	jw_u64(w, "total_ios", dir ? dir->ios : 0);
	jw_u64(w, "short_ios", 0);
	jw_u64(w, "drop_ios", 0);
	json_lat(w, "slat_ns", &zero, false);
	json_lat(w, "clat_ns", dir ? &dir->lat : &zero, true);
	json_lat(w, "lat_ns", dir ? &dir->lat : &zero, false);
	samples_stats(dir ? dir->samples.bw : NULL, dir ? dir->samples.n : 0, &mn, &mx, &mean, &dev);
	gbw = dir ? group_bw(rep, r, d) : 0;
	jw_u64(w, "bw_min", (uint64_t)mn);
	jw_u64(w, "bw_max", (uint64_t)mx);
	jw_dbl(w, "bw_agg", gbw > 0 ? 100.0 * dir_bw(r, d) / gbw : 0);
	jw_dbl(w, "bw_mean", mean);
	jw_dbl(w, "bw_dev", dev);
	jw_u64(w, "bw_samples", dir ? dir->samples.n : 0);
	samples_stats(dir ? dir->samples.iops : NULL, dir ? dir->samples.n : 0, &mn, &mx, &mean,
	              &dev);
	jw_u64(w, "iops_min", (uint64_t)mn);
	jw_u64(w, "iops_max", (uint64_t)mx);
	jw_dbl(w, "iops_mean", mean);
	jw_dbl(w, "iops_stddev", dev);
	jw_u64(w, "iops_samples", dir ? dir->samples.n : 0);
	jw_close(w, '}');
}

static void json_rp(struct jw *w, const struct rp_stats *s)
{
	static const struct {
		const char *key;
		size_t off;
	} f[] = {
#define F(x) {#x, offsetof(struct rp_stats, x)}
	    F(faults),          F(minor_faults),      F(pages_loaded),      F(bytes_read),
	    F(loads),           F(load_errors),       F(resident_pages),    F(pool_pages),
	    F(metadata_bytes),  F(dirty_pages),       F(wp_faults),         F(writeouts),
	    F(writeout_errors), F(write_requests),    F(pages_written),     F(bytes_written),
	    F(pages_evicted),   F(reclaim_passes),    F(reference_hits),    F(memory_waits),
	    F(memory_failures), F(writebacks),        F(readahead_pages),   F(readahead_used),
	    F(readahead_wasted), F(readahead_windows), F(readahead_window_avg), F(readahead_copied),
	    F(readahead_dropped),
#undef F
	};

	jw_open(w, "ringpager", '{');
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		jw_u64(w, f[i].key, *(const uint64_t *)((const char *)s + f[i].off));
	jw_close(w, '}');
}

static void json_entry(struct jw *w, const struct rpb_report *rep, const struct rpb_result *r)
{
	static const char *const unit_keys[] = {"latency_ns", "latency_us", "latency_ms"};
	uint64_t prev = 0;

	jw_open(w, NULL, '{');
	jw_str(w, "jobname", r->job->name);
	jw_u64(w, "groupid", r->job->groupid);
	jw_u64(w, "error", (uint64_t)r->error);
	if (r->error)
		jw_str(w, "error_message", r->errmsg);
	jw_u64(w, "eta", 0);
	jw_u64(w, "elapsed", (r->elapsed_ns + 500000000) / 1000000000);
	jw_kvs(w, "job options", &r->job->opts);
	json_dir(w, rep, r, 0);
	json_dir(w, rep, r, 1);
	json_dir(w, rep, r, -1);
	jw_open(w, "sync", '{');
	jw_u64(w, "total_ios", r->sync.n);
	json_lat(w, "lat_ns", &r->sync, true);
	jw_close(w, '}');
	jw_u64(w, "job_runtime", r->runtime_ns / 1000000);
	jw_dbl(w, "usr_cpu", r->usr_cpu);
	jw_dbl(w, "sys_cpu", r->sys_cpu);
	jw_u64(w, "ctx", r->ctx);
	jw_u64(w, "majf", r->majf);
	jw_u64(w, "minf", r->minf);
	for (unsigned u = 0; u < 3; u++) {
		uint64_t mul = u == 0 ? 1 : u == 1 ? 1000 : 1000000;
		char key[16];

		jw_open(w, unit_keys[u], '{');
		for (unsigned i = 0; i < NDIST; i++) {
			snprintf(key, sizeof(key), "%llu", (unsigned long long)dist_bounds[i]);
			jw_dbl(w, key, dist_share(r, prev, dist_bounds[i] * mul));
			prev = dist_bounds[i] * mul;
		}
		if (u == 2) {
			jw_dbl(w, "2000", dist_share(r, prev, 2000 * mul));
			jw_dbl(w, ">=2000", dist_share(r, 2000 * mul, 0));
		}
		jw_close(w, '}');
	}
	jw_str(w, "ioengine", rpb_engine_name(r->job->engine));
	if (r->have_rp)
		json_rp(w, &r->rp);
	if (r->describe[0])
		jw_str(w, "engine_describe", r->describe);
	jw_str(w, "notes", r->notes);
	jw_close(w, '}');
}

void rpb_report_json(FILE *f, const struct rpb_report *rep)
{
	struct jw w = {.f = f};
	time_t now = (time_t)(rep->timestamp_ms / 1000);
	char when[64], version[64];

	strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", localtime(&now));
	snprintf(version, sizeof(version), "rpbench-%s", rp_version());
	fputc('{', f);
	w.depth = 1;
	jw_str(&w, "fio version", version);
	jw_u64(&w, "timestamp", (uint64_t)(rep->timestamp_ms / 1000));
	jw_u64(&w, "timestamp_ms", (uint64_t)rep->timestamp_ms);
	jw_str(&w, "time", when);
	if (rep->spec)
		jw_kvs(&w, "global options", &rep->spec->global);
	jw_open(&w, "jobs", '[');
	for (unsigned i = 0; i < rep->n; i++)
		json_entry(&w, rep, &rep->res[i]);
	jw_close(&w, ']');
	jw_open(&w, "disk_util", '[');
	jw_close(&w, ']');
	fputs("\n}\n", f);
}

void rpb_report_free(struct rpb_report *r)
{
	for (unsigned i = 0; i < r->n; i++)
		for (int d = 0; d < 2; d++) {
			free(r->res[i].dir[d].samples.bw);
			free(r->res[i].dir[d].samples.iops);
		}
	free(r->res);
	memset(r, 0, sizeof(*r));
}
