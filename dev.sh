#!/usr/bin/env bash
# dev.sh - the two quick-start commands of ringpager (see README.md).
#
#   ./dev.sh bench   install what is missing, build, run the main job: rpbench's default
#                    benchmark of the engine (bench/main.fio) on a 1 GiB scratch file
#   ./dev.sh test    install what is missing, build twice (normal, and with
#                    AddressSanitizer + UndefinedBehaviorSanitizer; both with a SQLite
#                    amalgamation of the installed version, sqlite/amalgamation, for the
#                    VFS's batch atomic tests), run every test in both builds, run each
#                    libFuzzer target (fuzz/) for 30 s in a third build (clang), run
#                    rpbench under ThreadSanitizer in a fourth, and print one line:
#                    N passed, N failed, N skipped
#
# Extra arguments after `bench` go to rpbench and override the job's options
# (`./dev.sh bench --size=4G --output-format=json`; see README, "rpbench").
# Needs root (or sudo) only to install packages; the root-only tests skip otherwise.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential meson ninja-build pkg-config liburing-dev libaio-dev
          libjemalloc-dev libcriterion-dev fio python3 util-linux libsqlite3-dev)
# `test` also builds the libFuzzer targets with clang (libFuzzer is in clang's runtime),
# and makes a SQLite amalgamation (tcl, xz-utils: sqlite/amalgamation).
TEST_PACKAGES=(clang libclang-rt-14-dev tcl xz-utils)

install_missing() { # extra packages...
	local missing=()
	for p in "${PACKAGES[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "dev.sh: installing ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}"
}

# Warnings are errors here and in CI, never in meson's defaults: a packager's build with
# a newer compiler must not fail on a new warning.
build() { # dir, extra meson options...
	local dir=$1; shift
	if [ -f "$dir/build.ninja" ]; then
		# --reconfigure: options added since the tree was set up are known then
		meson setup --reconfigure "$dir" -Dwerror=true "$@" >/dev/null
	else
		meson setup "$dir" -Dwerror=true "$@"
	fi
	ninja -C "$dir"
}

# The tests that provoke backend fallbacks change these system-wide switches and put
# them back themselves; this is the second line of defence if a test dies midway.
SYSCTLS=(/proc/sys/kernel/io_uring_disabled /proc/sys/fs/aio-max-nr /proc/sys/vm/nr_hugepages)
declare -A SAVED=()
save_sysctls() {
	for f in "${SYSCTLS[@]}"; do [ -r "$f" ] && SAVED[$f]=$(cat "$f"); done
	return 0
}
restore_sysctls() {
	for f in "${!SAVED[@]}"; do
		[ "$(cat "$f")" = "${SAVED[$f]}" ] || echo "${SAVED[$f]}" >"$f" 2>/dev/null || true
	done
}

run_tests() { # build dir: runs meson test, tallies the Criterion results it logged
	local dir=$1
	rm -f "$dir"/tests/*.dat
	meson test -C "$dir" --print-errorlogs || true
	python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, re, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    tap = [l for l in t.get("stdout", "").splitlines() if re.match(r"(not )?ok\b", l)]
    if not tap:  # a test program that reported nothing counts as one result
        if t["result"] == "SKIP": skipped += 1
        elif t["result"] in ("OK", "EXPECTEDFAIL"): passed += 1
        else: failed += 1
        continue
    for l in tap:
        if l.startswith("not ok"): failed += 1
        elif re.search(r"#\s*SKIP", l, re.I): skipped += 1
        else: passed += 1
    if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and not any(l.startswith("not ok") for l in tap):
        failed += 1  # crashed or timed out after its last report
print(passed, failed, skipped)
PY
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
bench)
	install_missing
	build build
	exec build/bench/rpbench "$@" bench/main.fio
	;;
test)
	install_missing "${TEST_PACKAGES[@]}"
	# SQLite with batch atomic writes, for the VFS's tests of them (Debian's has none):
	# made from Debian's source package; without it (no network) those tests skip.
	AMALG=$(sqlite/amalgamation) || {
		echo "dev.sh: no SQLite amalgamation; the batch atomic tests will skip" >&2
		AMALG=""
	}
	build build -Dsqlite_amalgamation="$AMALG"
	build build-san -Db_sanitize=address,undefined -Db_lundef=false \
		-Dsqlite_amalgamation="$AMALG"
	# The fuzzers: clang, ASan+UBSan, no Criterion suites (the two builds above run them).
	CC=clang build build-fuzz -Dfuzz=enabled -Dtests=disabled \
		-Db_sanitize=address,undefined -Db_lundef=false
	# ThreadSanitizer: Criterion cannot run under it, so rpbench drives the engine's
	# threads there (bench/tsan.fio, both fault modes; docs/testing.md says why).
	build build-tsan -Dtests=disabled -Db_sanitize=thread
	save_sysctls
	trap restore_sysctls EXIT
	read -r p1 f1 s1 < <(run_tests build | tee /dev/stderr | tail -n 1)
	read -r p2 f2 s2 < <(run_tests build-san | tee /dev/stderr | tail -n 1)
	read -r p3 f3 s3 < <(run_tests build-fuzz | tee /dev/stderr | tail -n 1)
	read -r p4 f4 s4 < <(run_tests build-tsan | tee /dev/stderr | tail -n 1)
	echo "normal build: $p1 passed, $f1 failed, $s1 skipped;" \
		"sanitizer build: $p2 passed, $f2 failed, $s2 skipped;" \
		"fuzzers: $p3 passed, $f3 failed, $s3 skipped;" \
		"thread sanitizer: $p4 passed, $f4 failed, $s4 skipped"
	echo "$((p1 + p2 + p3 + p4)) passed, $((f1 + f2 + f3 + f4)) failed," \
		"$((s1 + s2 + s3 + s4)) skipped"
	[ $((f1 + f2 + f3 + f4)) -eq 0 ] && [ $((p1 + p2)) -gt 0 ]
	;;
*)
	echo "usage: ./dev.sh bench [rpbench options] | ./dev.sh test" >&2
	exit 2
	;;
esac
