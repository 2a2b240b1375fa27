#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/vm/layers.py SRC - vm/ calls only down: the layers drawn in vm/README.md hold.

Reads the layer diagram (the first ``` block of vm/README.md: a row starts at column 0,
its files are the words ending in .c, on that line or the indented ones under it),
finds each vm/*.c's exported functions (definitions at column 0 that are not static),
and counts a file as using another when it names one of that file's functions (a call
or a function pointer). TAP on stdout, one test per check:
  - every vm/*.c is in exactly one row, and every file in the diagram exists;
  - each file uses only files in rows below its own;
  - no vm/ header includes one that includes it back (no include circle).
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
VM = os.path.join(SRC, "vm")
results = []


def check(ok, name, why=""):
    results.append((ok, name, why))


def strip(text):
    """Source without comments, strings and character literals."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    return re.sub(r"'(\\.|[^'\\\n])'", "''", text)


def layers():
    text = open(os.path.join(VM, "README.md")).read()
    block = text.split("```", 2)[1]
    rows = []
    for line in block.splitlines()[1:]:
        names = re.findall(r"\b\w+\.c\b", line)
        if re.match(r"^ \S", line):  # a row's first line: " name  files  what"
            rows.append(names)
        elif rows:                   # its indented continuation lines
            rows[-1].extend(names)
    return rows  # top first


def exported(text):
    """Names of the functions a file defines and does not make static."""
    names = set()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not re.match(r"[A-Za-z_]", line) or line.startswith(("static", "typedef", "#")):
            continue
        m = re.search(r"\b([A-Za-z_]\w*)\s*\(", line)
        if not m or line.rstrip().endswith(";"):
            continue
        # a definition: the parameter list ends, and the next line opens the body
        j = i
        while j < len(lines) and not lines[j].rstrip().endswith(")"):
            if lines[j].rstrip().endswith(";"):
                break
            j += 1
        if j + 1 < len(lines) and lines[j].rstrip().endswith(")") and lines[j + 1] == "{":
            names.add(m.group(1))
    return names


def main():
    files = sorted(f for f in os.listdir(VM) if f.endswith(".c"))
    rows = layers()
    row_of = {}
    for r, names in enumerate(rows):
        for f in names:
            check(f not in row_of, "%s is in one row of the diagram" % f,
                  "in rows %s and %d" % (row_of.get(f), r))
            row_of[f] = r
    for f in files:
        check(f in row_of, "%s is in the diagram" % f)
    for f in row_of:
        check(f in files, "%s in the diagram exists" % f)

    src = {f: strip(open(os.path.join(VM, f)).read()) for f in files}
    owner = {}
    for f in files:
        for name in exported(src[f]):
            owner[name] = f
    check(len(owner) > 50, "the exported functions were found", "%d" % len(owner))
    for f in files:
        used = set()
        for ident in set(re.findall(r"\b[A-Za-z_]\w*\b", src[f])):
            g = owner.get(ident)
            if g and g != f:
                used.add((g, ident))
        bad = sorted("%s (%s, row %s)" % (ident, g, row_of.get(g)) for g, ident in used
                     if f in row_of and g in row_of and row_of[g] <= row_of[f])
        check(not bad, "%s (row %s) uses only rows below it" % (f, row_of.get(f)),
              "uses " + "; ".join(bad))

    inc = {}
    for f in os.listdir(VM):
        if f.endswith((".c", ".h")):
            text = open(os.path.join(VM, f)).read()
            inc[f] = [m for m in re.findall(r'#include "vm/([\w.]+)"', text) if m != f]
    state, cycle = {}, []

    def dfs(v, path):
        state[v] = 1
        for w in inc.get(v, []):
            if state.get(w) == 1 and not cycle:
                cycle.extend(path + [w])
            elif not state.get(w):
                dfs(w, path + [w])
        state[v] = 2

    for v in sorted(inc):
        if not state.get(v):
            dfs(v, [v])
    check(not cycle, "no include circle among vm/ files", " -> ".join(cycle))

    print("1..%d" % len(results))
    for i, (ok, name, why) in enumerate(results, 1):
        print("%s %d - %s%s" % ("ok" if ok else "not ok", i, name,
                                "" if ok or not why else ": " + why))
    return 0 if all(r[0] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
