#!/bin/sh
# fuzz/run_fuzzer.sh FUZZER WORKDIR SECONDS SEED_DIR... - runs one libFuzzer target for
# SECONDS over its seeds (read, never written) and a working corpus in WORKDIR (new
# inputs go there). A crash leaves its input in WORKDIR/crashes: copy it to
# fuzz/corpus/<name>/ as a regression once fixed. Exit status: libFuzzer's (0: no crash).
set -eu
fuzzer=$1 work=$2 seconds=$3
shift 3
mkdir -p "$work/corpus" "$work/crashes"
# Only the seed directories that exist (a missing ../shared is not an error); files in
# them that are not job files are just more inputs.
dirs=""
for d in "$@"; do [ -d "$d" ] && dirs="$dirs $d"; done
# -max_len: a job or INI file is a few KiB; -timeout: one input taking longer is a hang.
# shellcheck disable=SC2086
exec "$fuzzer" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$work/crashes/" "$work/corpus" $dirs
