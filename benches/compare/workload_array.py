"""The `array` workload of run.py: row means of a large array of standard normal draws.

Ours: `row_means` (crates/wherever-array/examples/row_means), generated chunk by chunk and
folded row by row. Peer: `dask.array` (peers/bench_array.py, copied from the anchors):
`da.random.normal(0, 1, size=(S, S), chunks=(C, C)).mean(axis=1).compute()` on threads, with
the module-level API (numpy's legacy RandomState, the script's default) and with
`default_rng` (numpy's Generator, PCG64 + ziggurat).

run.py registers it with `WORKLOADS["array"] = workload_array.workload(run_module)`: the
module is given run.py's namespace (Config, Workload, EXAMPLES, PY, PEERS, ...) so that it
needs no import of run.py.
"""
import math
import re


def workload(run):
    """The `array` Workload, built from run.py's classes and paths."""

    def parse_ours(so, se):
        firsts = re.search(r"^first row means: (.+)$", so, re.M)
        mean = re.search(r"^mean of row means: (\S+)$", so, re.M)
        peak = re.search(r"^peak memory: ([\d.]+) MB$", so + "\n" + se, re.M)
        timing = re.search(r"row_means: (\d+) x (\d+) in chunks of (\d+) x (\d+) on (\S+) in ([\d.]+) s",
                           run.program_stderr(se))
        if not (firsts and mean and timing):
            raise ValueError("no row means or timing line")
        return {"time_s": float(timing.group(6)), "rows": int(timing.group(1)),
                "cols": int(timing.group(2)), "plan_reported": timing.group(5),
                "first_row_means": [float(v) for v in firsts.group(1).split()],
                "mean_of_means": float(mean.group(1)),
                "own_vmhwm_mb": float(peak.group(1)) if peak else None}

    def parse_peer(so, se):
        r = run.result_json(so)
        if r is None:
            raise ValueError("no RESULT line")
        r["time_s"] = r["wall_s"]
        return r

    def check(S):
        # The mean of S*S standard normals has sd 1/S; the row means have sd 1/sqrt(S).
        def chk(p):
            m = p.get("mean_of_means")
            if m is None or not abs(m) < 6.0 / S:
                return False, f"mean of row means {m} is not within 6/S of 0"
            firsts = p.get("first_row_means", [])
            if any(abs(v) > 6.0 / math.sqrt(S) for v in firsts):
                return False, f"a first row mean is beyond 6/sqrt(S): {firsts}"
            sd = p.get("std_of_row_means")
            if sd is not None and abs(sd * math.sqrt(S) - 1) > 0.05:
                return False, f"sd of row means {sd} is not 1/sqrt(S) within 5%"
            return True, "mean of row means within 6/S of 0 (sd of row means within 5% of 1/sqrt(S) for Dask)"
        return chk

    def make(size):
        S, C = size["S"], size["C"]
        cfgs = []
        for plan in size["plans"]:
            cfgs.append(run.Config("ours", "wherever", plan,
                                   [str(run.EXAMPLES / "row_means"), "--plan", plan,
                                    "--rows", str(S), "--cols", str(S), "--chunk-rows", str(C),
                                    "--chunk-cols", str(C), "--seed", "1"],
                                   parse_ours, check(S), requires=["bin:row_means"], timeout=600))
        for api, label in [("legacy", "threads(2), da.random.normal (legacy RandomState)"),
                           ("generator", "threads(2), da.random.default_rng(0).normal")]:
            cfgs.append(run.Config("peer", "dask.array", label,
                                   [run.PY, "bench_array.py", str(S), str(C), "threads", "2", api],
                                   parse_peer, check(S), requires=["py:dask", "py:numpy", "py:psutil"],
                                   cwd=run.PEERS, timeout=600))
        return cfgs

    return run.Workload(
        "array", "array: row means of an S x S array of standard normals in C x C chunks",
        sizes={"quick": {"S": 10_000, "C": 2_500, "plans": ["threads:2"]},
               "full": {"S": 40_000, "C": 5_000,
                        "plans": ["threads:2", "sequential", "processes:2"]}},
        make=make,
        describe=lambda s: f"S = {s['S']:,}, C = {s['C']:,} ({(s['S'] // s['C']) ** 2} chunks, "
                           f"{s['S'] ** 2 * 8 / 1e9:.1f} GB of float64 generated, never held); "
                           "time = in-program time (interpreter and worker start-up excluded); "
                           "peak RSS of the whole process tree (for processes:2, workers "
                           "included)",
        time_label="time s",
        ratio_against=["threads:2"],
        check_rule="the mean of the row means within 6/S of 0, the first row means within "
                   "6/sqrt(S) of 0; for Dask also the sd of the row means within 5% of "
                   "1/sqrt(S) (the generators differ, so the check is statistical)")
