/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/rpbench/main.c - rpbench: parse the jobs, run them, print the results.
 * rpbench.h describes the program; docs/rpbench.md lists every option.
 */
#include "bench/rpbench/rpbench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: rpbench [--key=value ...] [jobfile ...]\n"
    "\n"
    "fio's job options, on the command line (--name=NAME starts a job) or in job files\n"
    "([global] and job sections); on the command line they override the job files.\n"
    "  name, description, filename, directory, rw (read, write, randread, randwrite,\n"
    "  randrw, readwrite), rwmixread, rwmixwrite, bs, size, iodepth, numjobs, runtime,\n"
    "  time_based, ramp_time, direct, buffered, ioengine, randrepeat, randseed, stonewall,\n"
    "  wait_for_previous, group_reporting, end_fsync, fadvise_hint, thread, cpus_allowed,\n"
    "  cpus_allowed_policy (shared, split)\n"
    "ioengine: ringpager (default), ringpager-pin, mmap, io_uring, libaio, psync.\n"
    "Every ringpager configuration key is a job option too (ram_size, page_size,\n"
    "hugepages, readahead_max, queue_depth, fault_threads, ...), for the ringpager engines.\n"
    "\n"
    "Program options: --output-format=normal|json|normal,json  --output=FILE\n"
    "  --eta=auto|always|never (the progress line on stderr)  --help  --version\n";

int main(int argc, char **argv)
{
	struct rpb_spec spec;
	struct rpb_report rep;
	char err[RPB_ERR_LEN];
	FILE *out = stdout;
	bool progress;
	int r;

	if (rpb_parse(argc, argv, &spec, err, sizeof(err)) < 0) {
		fprintf(stderr, "rpbench: %s\n", err);
		return 2;
	}
	if (spec.help || spec.version) {
		if (spec.help)
			fputs(usage, stdout);
		else
			printf("rpbench-%s\n", rp_version());
		rpb_spec_free(&spec);
		return 0;
	}
	if (spec.output && !(out = fopen(spec.output, "w"))) {
		fprintf(stderr, "rpbench: --output=%s: %s\n", spec.output, strerror(errno));
		rpb_spec_free(&spec);
		return 2;
	}
	progress = spec.eta == RPB_ETA_ALWAYS || (spec.eta == RPB_ETA_AUTO && isatty(2));
	if (spec.format & RPB_FMT_NORMAL)
		for (unsigned i = 0; i < spec.njobs; i++) {
			const struct rpb_job *j = &spec.jobs[i];

			fprintf(out, "%s: (g=%u): rw=%s, bs=%llu, ioengine=%s, iodepth=%u\n", j->name,
			        j->groupid, rpb_rw_name(j->rw), (unsigned long long)j->bs,
			        rpb_engine_name(j->engine), j->iodepth);
		}
	if (spec.format & RPB_FMT_NORMAL)
		fprintf(out, "rpbench-%s\n", rp_version());
	fflush(out);
	r = rpb_run(&spec, &rep, progress);
	if (spec.format & RPB_FMT_NORMAL)
		rpb_report_normal(out, &rep);
	if (spec.format & RPB_FMT_JSON)
		rpb_report_json(out, &rep);
	for (unsigned i = 0; i < rep.n; i++)
		if (rep.res[i].error && (out != stdout || !(spec.format & RPB_FMT_NORMAL)))
			fprintf(stderr, "rpbench: job %s: %s\n", rep.res[i].job->name, rep.res[i].errmsg);
	rpb_report_free(&rep);
	if (out != stdout)
		fclose(out);
	rpb_spec_free(&spec);
	return r < 0 ? 1 : 0;
}
