#!/usr/bin/env python3
"""Our own examples from two builds, run in alternation (A, B, A, B, ...), to check a
change for regressions: `trivial_tasks` (per-task overhead) and `graph_overhead`
(lazy graphs) on sequential, threads:2 and processes:2.

    python3 benches/compare/before_after.py BEFORE_EXAMPLES_DIR AFTER_EXAMPLES_DIR [--reps 7]

Each directory is a `target/release/examples` of one build. Prints one markdown row per
configuration: the median seconds of each build and after/before (> 1: slower after).
"""
import argparse
import json
import os
import statistics
import subprocess

CONFIGS = [
    ("trivial_tasks", ["--plan", "sequential", "--tasks", "200000", "--mode", "submit"]),
    ("trivial_tasks", ["--plan", "threads:2", "--tasks", "200000", "--mode", "submit"]),
    ("trivial_tasks", ["--plan", "threads:2", "--tasks", "1000000", "--mode", "map-auto"]),
    ("trivial_tasks", ["--plan", "processes:2", "--tasks", "20000", "--mode", "submit"]),
    ("trivial_tasks", ["--plan", "processes:2", "--tasks", "20000", "--mode", "map"]),
    ("graph_overhead", ["--plan", "threads:2", "--workload", "tree", "--n", "100000"]),
    ("graph_overhead", ["--plan", "processes:2", "--workload", "tree", "--n", "100000"]),
    ("graph_overhead", ["--plan", "threads:2", "--workload", "mapreduce", "--n", "10000"]),
    ("graph_overhead", ["--plan", "processes:2", "--workload", "mapreduce", "--n", "10000"]),
]


def run(directory, example, args):
    out = subprocess.run([os.path.join(directory, example), *args], capture_output=True,
                         text=True, check=True, timeout=600)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--reps", type=int, default=7)
    opts = ap.parse_args()
    print(f"1-min load at start: {os.getloadavg()[0]:.1f}")
    print("| example | args | before (median s) | after (median s) | after / before |")
    print("|---|---|---:|---:|---:|")
    for example, args in CONFIGS:
        times = {"before": [], "after": []}
        for _ in range(opts.reps):
            for side in ("before", "after"):
                times[side].append(run(getattr(opts, side), example, args))
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"| {example} | `{' '.join(args)}` | {b:.4f} | {a:.4f} | {a / b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
