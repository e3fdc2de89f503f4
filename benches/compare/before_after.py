#!/usr/bin/env python3
"""Our own examples from two builds, run in alternation (A, B, A, B, ...), to check a
change for regressions: `trivial_tasks` (per-task overhead) and `graph_overhead`
(lazy graphs) on sequential, threads:2 and processes:2.

    python3 benches/compare/before_after.py BEFORE_EXAMPLES_DIR AFTER_EXAMPLES_DIR [--reps 7]

Each directory is a `target/release/examples` of one build. Prints one markdown row per
configuration: the median seconds of each build and after/before (> 1: slower after), then
the same for the CPU seconds of the whole run (user + system, the example's process and the
worker processes it waited for, start-up included), which another build or test running on
the machine disturbs far less than the wall clock.
"""
import argparse
import json
import os
import resource
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


def cpu_seconds_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(directory, example, args):
    """The run's own `seconds` (wall clock) and its CPU seconds."""
    cpu_before = cpu_seconds_of_children()
    out = subprocess.run([os.path.join(directory, example), *args], capture_output=True,
                         text=True, check=True, timeout=600)
    cpu = cpu_seconds_of_children() - cpu_before
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"]), cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--reps", type=int, default=7)
    opts = ap.parse_args()
    print(f"1-min load at start: {os.getloadavg()[0]:.1f}")
    print("| example | args | before (median s) | after (median s) | after / before "
          "| CPU before (s) | CPU after (s) | CPU after / before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for example, args in CONFIGS:
        times = {"before": [], "after": []}
        cpu = {"before": [], "after": []}
        for _ in range(opts.reps):
            for side in ("before", "after"):
                seconds, cpu_seconds = run(getattr(opts, side), example, args)
                times[side].append(seconds)
                cpu[side].append(cpu_seconds)
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        cb, ca = statistics.median(cpu["before"]), statistics.median(cpu["after"])
        print(f"| {example} | `{' '.join(args)}` | {b:.4f} | {a:.4f} | {a / b:.3f} "
              f"| {cb:.3f} | {ca:.3f} | {ca / cb:.3f} |", flush=True)


if __name__ == "__main__":
    main()
