"""Lazy task graphs with dask: a tree reduction (sum of pairs) and a map-then-reduce graph.

(Written for benches/compare, following bench_overhead.py's conventions: one 'RESULT {json}'
line, cluster start-up timed separately as 'startup_s' and excluded from 'total_s'.)

usage: python bench_graph.py SYSTEM WORKLOAD N
SYSTEM in:
  delayed_sync     dask.delayed graph, dask.compute(result, scheduler="synchronous")
  delayed_threads  dask.delayed graph, dask.compute(result, scheduler="threads", num_workers=2)
  raw_threads      hand-built dict graph, dask.threaded.get(dsk, key, num_workers=2)
                   (no delayed objects, no optimisation: the scheduler's floor)
  raw_sync         hand-built dict graph, dask.local.get_sync
  dist_delayed     dask.delayed graph on distributed LocalCluster(n_workers=2,
                   threads_per_worker=1), client.compute(result).result()
WORKLOAD in:
  tree       N leaves leaf(i) = i, added pairwise level by level until one is left (an odd
             one out is added to 0); tasks = N + N/2 + N/4 + ... (about 2N);
             result = N(N-1)/2
  mapreduce  N tasks inc(i) = i + 1, then one total(list); tasks = N + 1; result = N(N+1)/2
'total_s' = build_s (building the delayed objects or the dict) + compute_s.
"""
import sys, time
from common import report, TreeRSS


def leaf(i):
    return i


def inc(i):
    return i + 1


def add(x, y):
    return x + y


def total(values):
    return sum(values)


def build_delayed(workload, N):
    from dask import delayed  # imported (and warmed) before the clock starts, see main()
    if workload == "tree":
        level = [delayed(leaf)(i) for i in range(N)]
        tasks = len(level)
        while len(level) > 1:
            nxt = []
            for j in range(0, len(level), 2):
                pair = level[j:j + 2]
                nxt.append(delayed(add)(pair[0], pair[1] if len(pair) == 2 else 0))
            level = nxt
            tasks += len(level)
        return level[0], tasks
    mapped = [delayed(inc)(i) for i in range(N)]
    return delayed(total)(mapped), N + 1


def build_raw(workload, N):
    """dict graph {key: (func, args...)}; returns (dsk, output key, tasks)."""
    if workload == "tree":
        dsk = {("leaf", i): (leaf, i) for i in range(N)}
        level = [("leaf", i) for i in range(N)]
        depth = 0
        while len(level) > 1:
            depth += 1
            nxt = []
            for j in range(0, len(level), 2):
                k = ("add", depth, j // 2)
                dsk[k] = (add, level[j], level[j + 1] if j + 1 < len(level) else 0)
                nxt.append(k)
            level = nxt
        return dsk, level[0], len(dsk)
    dsk = {("inc", i): (inc, i) for i in range(N)}
    dsk["total"] = (total, [("inc", i) for i in range(N)])
    return dsk, "total", len(dsk)


def main():
    system, workload, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if workload not in ("tree", "mapreduce"):
        raise SystemExit("unknown workload " + workload)
    expected = N * (N - 1) // 2 if workload == "tree" else N * (N + 1) // 2
    startup = 0.0
    with TreeRSS() as rss:
        if system in ("delayed_sync", "delayed_threads"):
            import dask
            from dask import delayed
            delayed(inc)(0)  # first call imports more of dask; keep it out of the timing
            kw = ({"scheduler": "synchronous"} if system == "delayed_sync"
                  else {"scheduler": "threads", "num_workers": 2})
            t0 = time.perf_counter()
            result, tasks = build_delayed(workload, N)
            t1 = time.perf_counter()
            (res,) = dask.compute(result, **kw)
            t2 = time.perf_counter()
        elif system in ("raw_threads", "raw_sync"):
            import dask.local, dask.threaded
            t0 = time.perf_counter()
            dsk, key, tasks = build_raw(workload, N)
            t1 = time.perf_counter()
            if system == "raw_threads":
                res = dask.threaded.get(dsk, key, num_workers=2)
            else:
                res = dask.local.get_sync(dsk, key)
            t2 = time.perf_counter()
        elif system == "dist_delayed":
            from dask import delayed
            from dask.distributed import LocalCluster, Client
            delayed(inc)(0)
            ts = time.perf_counter()
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
            client = Client(cluster)
            client.gather(client.map(inc, range(100), key=[f"warm-{i}" for i in range(100)]))
            startup = time.perf_counter() - ts
            t0 = time.perf_counter()
            result, tasks = build_delayed(workload, N)
            t1 = time.perf_counter()
            res = client.compute(result).result()
            t2 = time.perf_counter()
            client.close(); cluster.close()
        else:
            raise SystemExit("unknown system " + system)
    total_s = t2 - t0
    report(item="graph", system=system, workload=workload, N=N, tasks=tasks,
           result=res, expected=expected, correct=(res == expected),
           startup_s=round(startup, 3), build_s=round(t1 - t0, 4),
           compute_s=round(t2 - t1, 4), total_s=round(total_s, 4),
           us_per_task=round(total_s / tasks * 1e6, 2),
           tree_peak_rss_mb=round(rss.peak / 2**20, 1))


if __name__ == "__main__":
    main()
