#!/usr/bin/env python3
"""bench/sqlite/report.py OUTDIR ROUNDS CONFIG...: the table of bench/sqlite/speedtest.

Reads OUTDIR/CONFIG.ROUND.txt (speedtest1's output, then "check INTEGRITY HASH" and
maybe "commits N MEDIAN_US P90_US"), prints per-test medians over the rounds with each
configuration's ratio to the first (unix when present), the totals, whether every
database checked ok with one checksum, and the commit latencies. Exits 1 when a check
failed or the checksums differ.
"""
import re
import statistics
import sys

out, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
TEST = re.compile(r"^\s*(\d+) - (.*?)\.{2,}\s+([\d.]+)s\s*$")
TOTAL = re.compile(r"^\s*TOTAL\.+\s+([\d.]+)s\s*$")

times = {c: {} for c in configs}  # config -> test id -> [s]
names = {}
totals = {c: [] for c in configs}
checks = {}
commits = {c: [] for c in configs}
for c in configs:
    for r in range(rounds):
        for line in open(f"{out}/{c}.{r}.txt"):
            if m := TEST.match(line):
                tid = int(m.group(1))
                names[tid] = m.group(2).strip()
                times[c].setdefault(tid, []).append(float(m.group(3)))
            elif m := TOTAL.match(line):
                totals[c].append(float(m.group(1)))
            elif line.startswith("check "):
                checks[(c, r)] = line.split()[1:3]
            elif line.startswith("commits "):
                commits[c].append((float(line.split()[2]), float(line.split()[3])))

base = configs[0]
med = lambda v: statistics.median(v) if v else float("nan")
w = 9
print(f"\nper-test medians of {rounds} rounds, seconds (ratio to {base})")
print(f"{'test':<52}" + "".join(f"{c:>{w + 8}}" for c in configs))
worst = {c: (0.0, None) for c in configs}
for tid in sorted(names):
    row = f"{tid:>4} {names[tid][:47]:<47}"
    b = med(times[base].get(tid, []))
    for c in configs:
        v = med(times[c].get(tid, []))
        ratio = v / b if b > 0 else float("nan")
        row += f"{v:>{w}.3f}" + (f" ({ratio:4.2f})" if c != base else " " * 7)
        if c != base and b >= 0.005 and ratio > worst[c][0]:
            worst[c] = (ratio, tid)
    print(row)
row = f"{'TOTAL':<52}"
bt = med(totals[base])
for c in configs:
    v = med(totals[c])
    row += f"{v:>{w}.3f}" + (f" ({v / bt:4.2f})" if c != base else " " * 7)
print(row)
print("totals, every round: " + "; ".join(
    f"{c} " + " ".join(f"{t:.3f}" for t in totals[c]) for c in configs))
for c in configs[1:]:
    if worst[c][1] is not None:
        print(f"slowest test against {base} (of tests taking 5 ms or more there): {c}: "
              f"test {worst[c][1]} at {worst[c][0]:.2f}x")

hashes = {h for (_, h) in checks.values()}
bad = [k for k, (i, _) in checks.items() if i != "ok"]
print(f"\nchecks: {len(checks)} databases, integrity_check "
      f"{'ok in all' if not bad else 'FAILED in ' + str(bad)}; "
      f"{len(hashes)} distinct checksum(s): {' '.join(sorted(hashes))}")

if any(commits.values()):
    print("\none-row commits (journal_mode=DELETE, synchronous=FULL): median of the rounds' "
          "median / p90, us")
    cb = med([m for m, _ in commits[base]]) if commits[base] else None
    for c in configs:
        if commits[c]:
            m = med([m for m, _ in commits[c]])
            p = med([p for _, p in commits[c]])
            print(f"  {c:<10} {m:9.1f} / {p:9.1f}" +
                  (f"   ({m / cb:.2f}x {base})" if cb and c != base else ""))
sys.exit(1 if bad or len(hashes) > 1 else 0)
