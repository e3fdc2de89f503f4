"""(Copied unchanged from shared/anchors.)

Item 1: per-task scheduling overhead with N trivial tasks inc(i) -> i+1.

usage: python bench_overhead.py SYSTEM N
SYSTEM in: dask_{sync,threads,processes}[_noopt|_raw] bag_{sync,threads,processes}
           dist_map dist_delayed ray
Cluster/runtime start-up (distributed, ray) is timed separately ('startup_s')
and excluded from 'total_s'. For dask.delayed variants 'total_s' = graph
construction ('build_s') + compute ('compute_s').
"""
import sys, time
from common import report, TreeRSS


def inc(i):
    return i + 1


def main():
    system, N = sys.argv[1], int(sys.argv[2])
    expected = sum(range(N)) + N
    startup = 0.0
    with TreeRSS() as rss:
        if system.startswith("dask_"):
            # dask_<sched>        : dask.compute(*[delayed(inc)(i) ...])  (default, graph optimisation on)
            # dask_<sched>_noopt  : same with optimize_graph=False (skips the per-layer cull)
            # dask_<sched>_raw    : hand-written dict graph {("inc", i): (inc, i)} passed straight
            #                       to the scheduler's get(); isolates pure scheduler cost
            import dask
            from dask import delayed
            base, _, variant = system.partition("_")[2].partition("_")
            sched = {"sync": "synchronous", "threads": "threads",
                     "processes": "processes"}[base]
            kw = {} if sched == "synchronous" else {"num_workers": 2}
            t0 = time.perf_counter()
            if variant == "raw":
                import dask.local, dask.threaded, dask.multiprocessing
                dsk = {("inc", i): (inc, i) for i in range(N)}
                keys = [("inc", i) for i in range(N)]
                t1 = time.perf_counter()
                get = {"synchronous": dask.local.get_sync, "threads": dask.threaded.get,
                       "processes": dask.multiprocessing.get}[sched]
                res = get(dsk, keys, **kw)
            else:
                tasks = [delayed(inc)(i) for i in range(N)]
                t1 = time.perf_counter()
                res = dask.compute(*tasks, scheduler=sched,
                                   optimize_graph=(variant != "noopt"), **kw)
            t2 = time.perf_counter()
        elif system.startswith("bag_"):
            # chunked map, the analogue of future_lapply's default chunking:
            # db.from_sequence(range(N), npartitions=2).map(inc)
            import dask.bag as db
            sched = {"bag_sync": "synchronous", "bag_threads": "threads",
                     "bag_processes": "processes"}[system]
            kw = {} if sched == "synchronous" else {"num_workers": 2}
            t0 = time.perf_counter()
            b = db.from_sequence(range(N), npartitions=2).map(inc)
            t1 = time.perf_counter()
            res = b.compute(scheduler=sched, **kw)
            t2 = time.perf_counter()
        elif system.startswith("dist_"):
            import dask
            from dask import delayed
            from dask.distributed import LocalCluster, Client
            ts = time.perf_counter()
            cluster = LocalCluster(n_workers=2, threads_per_worker=1,
                                   dashboard_address=None)
            client = Client(cluster)
            client.gather(client.map(inc, range(100), key=[f"warm-{i}" for i in range(100)]))
            startup = time.perf_counter() - ts
            if system == "dist_map":
                t0 = time.perf_counter()
                t1 = t0
                futs = client.map(inc, range(N))
                res = client.gather(futs)
                t2 = time.perf_counter()
            else:
                t0 = time.perf_counter()
                tasks = [delayed(inc)(i) for i in range(N)]
                t1 = time.perf_counter()
                res = dask.compute(*tasks)  # uses the active Client
                t2 = time.perf_counter()
            client.close(); cluster.close()
        elif system == "ray":
            import ray
            ts = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            rinc = ray.remote(inc)
            ray.get([rinc.remote(i) for i in range(100)])  # warm the worker pool
            startup = time.perf_counter() - ts
            t0 = time.perf_counter()
            t1 = t0
            refs = [rinc.remote(i) for i in range(N)]
            res = ray.get(refs)
            t2 = time.perf_counter()
            ray.shutdown()
        else:
            raise SystemExit("unknown system " + system)
    ok = sum(res) == expected and len(res) == N
    total = t2 - t0
    report(item=1, system=system, N=N, startup_s=round(startup, 3),
           build_s=round(t1 - t0, 4), compute_s=round(t2 - t1, 4),
           total_s=round(total, 4), tasks_per_s=round(N / total, 1),
           us_per_task=round(total / N * 1e6, 2), correct=ok,
           tree_peak_rss_mb=round(rss.peak / 2**20, 1))


if __name__ == "__main__":
    main()
