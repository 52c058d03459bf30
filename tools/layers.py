#!/usr/bin/env python3
"""layers.py [ROOT] - checks that every source file includes only what its layer may.

The layers, lowest first, and the folders each may include from (its own
included).  The Makefile compiles each folder with exactly these include paths;
this check also catches what -I cannot: another folder's private header
(*_int.h), and a cycle between folders.

Prints one line per violation and "N passed, N failed"; exit 1 on any.
"""
import os
import re
import sys

ALLOWED = {
    "src/base": [],
    "src/store": ["include", "src/base"],
    "src/auth": ["include", "src/base", "src/store"],
    "sync": ["include", "src/base", "src/store"],
    "sync/aws": ["include", "src/base", "sync"],
    "sync/dir": ["include", "src/base", "sync"],
    "src/api": ["include", "src/base", "src/store", "src/auth", "sync"],
    "src/cli": ["include", "src/base", "src/store", "src/auth", "sync", "sync/aws", "sync/dir",
                "src/api"],
}
# What a backend may take from the engine's folder: the interface and the
# digest of the bytes it moves (a leaf that calls nothing of the engine).
ONLY = {("sync/aws", "sync"): {"remote.h", "remote_key.h", "digest.h"},
        ("sync/dir", "sync"): {"remote.h", "remote_key.h", "digest.h"}}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folders(root):
    for f in ALLOWED:
        if not os.path.isdir(os.path.join(root, f)):
            yield f, "missing folder"


def check(root):
    problems = []
    files = 0
    edges = set()
    for folder, allowed in ALLOWED.items():
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            problems.append(f"{folder}: the folder is missing")
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            files += 1
            path = os.path.join(folder, name)
            text = open(os.path.join(root, path), encoding="utf-8").read()
            for inc in INCLUDE.findall(text):
                where = None
                for cand in [folder] + allowed:
                    if os.path.isfile(os.path.join(root, cand, inc)):
                        where = cand
                        break
                if where is None:
                    owner = [f for f in list(ALLOWED) + ["include"]
                             if os.path.isfile(os.path.join(root, f, inc))]
                    why = f"a header of {owner[0]}, which {folder} may not use" if owner \
                        else "no such header"
                    problems.append(f"{path}: includes \"{inc}\": {why}")
                    continue
                if where != folder and inc.endswith("_int.h"):
                    problems.append(f"{path}: includes \"{inc}\", private to {where}")
                if (folder, where) in ONLY and inc not in ONLY[(folder, where)]:
                    problems.append(f"{path}: includes \"{inc}\" of {where}; a backend may "
                                    f"use only {', '.join(sorted(ONLY[(folder, where)]))}")
                if where != folder and where != "include":
                    edges.add((folder, where))
    # No cycle between folders (a table that allowed one would be a bug too).
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in graph.get(n, ()):
            if state.get(m) == 1:
                problems.append("include cycle: " + " -> ".join(stack + [n, m]))
            elif m not in state:
                visit(m, stack + [n])
        state[n] = 2

    for n in list(graph):
        if n not in state:
            visit(n, [])
    return files, problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    files, problems = check(root)
    for p in problems:
        print("layer:", p)
    print(f"layers: {files} files checked")
    return 1 if problems or files == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
