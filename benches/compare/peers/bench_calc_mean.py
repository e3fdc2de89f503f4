"""(Copied from shared/anchors; adapted: also reports every task's mean and sd so
the harness can check them.)

Item 2: the 'calc_mean(i, n)' headline workload: p tasks, each draws n
normals from an RNG seeded with i and returns (mean, std).

usage: python bench_calc_mean.py SYSTEM [p] [n]
SYSTEM in: plain dask_sync dask_threads dask_processes distributed
('plain' = a bare Python for-loop, no Dask.)  Cluster start-up excluded.
"""
import sys, time
import numpy as np
from common import report, TreeRSS


def calc_mean(i, n):
    x = np.random.default_rng(i).normal(size=n)
    return float(x.mean()), float(x.std())


def main():
    system = sys.argv[1]
    p = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000_000
    startup = 0.0
    with TreeRSS() as rss:
        if system == "plain":
            t0 = time.perf_counter()
            res = [calc_mean(i, n) for i in range(p)]
        elif system.startswith("dask_"):
            import dask
            sched = {"dask_sync": "synchronous", "dask_threads": "threads",
                     "dask_processes": "processes"}[system]
            kw = {} if sched == "synchronous" else {"num_workers": 2}
            t0 = time.perf_counter()
            tasks = [dask.delayed(calc_mean)(i, n) for i in range(p)]
            res = dask.compute(*tasks, scheduler=sched, **kw)
        elif system == "distributed":
            import dask
            from dask.distributed import LocalCluster, Client
            ts = time.perf_counter()
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
            client = Client(cluster)
            client.run(lambda: None)
            startup = time.perf_counter() - ts
            t0 = time.perf_counter()
            tasks = [dask.delayed(calc_mean)(i, n) for i in range(p)]
            res = dask.compute(*tasks)
        else:
            raise SystemExit("unknown " + system)
        wall = time.perf_counter() - t0
        if system == "distributed":
            client.close(); cluster.close()
    report(item=2, system=system, p=p, n=n, wall_s=round(wall, 3),
           startup_s=round(startup, 3), first=res[0],
           grand_mean=float(np.mean([r[0] for r in res])),
           means=[float(r[0]) for r in res], sds=[float(r[1]) for r in res],
           tree_peak_rss_mb=round(rss.peak / 2**20, 1))


if __name__ == "__main__":
    main()
