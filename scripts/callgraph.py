#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The driver's call graph between files: which file calls (or takes the
address of) a function or object that another file defines. Prints the
edges with --print; fails if the files call each other in a cycle (every
file should only call into files below it, see driver/memplug.h).

  scripts/callgraph.py [--print] [driver/]
"""
import os
import re
import sys


def strip(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


def graph(top):
    files = sorted(f for f in os.listdir(top) if f.endswith(".c"))
    code = {f: strip(open(os.path.join(top, f)).read()) for f in files}
    defs = {}
    for f, text in code.items():
        # non-static definitions at the start of a line: functions, objects
        for m in re.finditer(r"^(?!static\b)(?:const\s+)?(?:struct\s+)?[a-z_][\w\s\*]*?\b(mp_\w+)\s*(\(|=|\[)",
                             text, re.M):
            defs.setdefault(m.group(1), f)
    edges = {}
    for f, text in code.items():
        for name, home in defs.items():
            # a use, not the enum or struct type of the same name
            if home != f and re.search(r"(?<!enum )(?<!struct )\b%s\b" % name, text):
                edges.setdefault((f, home), set()).add(name)
    return files, edges


def cycles(files, edges):
    succ = {f: sorted(b for (a, b) in edges if a == f) for f in files}
    found, state, stack = [], {}, []

    def visit(f):
        state[f] = 1
        stack.append(f)
        for g in succ[f]:
            if state.get(g) == 1:
                found.append(stack[stack.index(g):] + [g])
            elif not state.get(g):
                visit(g)
        stack.pop()
        state[f] = 2

    for f in files:
        if not state.get(f):
            visit(f)
    return found


def main():
    args = [a for a in sys.argv[1:] if a != "--print"]
    top = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "driver")
    files, edges = graph(top)
    if "--print" in sys.argv:
        for (a, b), names in sorted(edges.items()):
            print("%-14s -> %-14s %s" % (a, b, " ".join(sorted(names))))
    found = cycles(files, edges)
    for c in found:
        print("call cycle: " + " -> ".join(c))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
