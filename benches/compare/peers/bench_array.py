"""(Copied unchanged from shared/anchors.)

Item 3: dask array out-of-core-ish reduction.
x = da.random.normal(0, 1, size=(S, S), chunks=(C, C)); x.mean(axis=1).compute()
usage: python bench_array.py S [C] [scheduler] [workers] [api]
api: legacy    -> da.random.normal(...)  (module-level API = legacy numpy RandomState; default)
     generator -> da.random.default_rng(0).normal(...)  (numpy Generator / PCG64)
"""
import sys, time
import numpy as np
from common import report, TreeRSS


def main():
    S = int(sys.argv[1])
    C = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    sched = sys.argv[3] if len(sys.argv) > 3 else "threads"
    nw = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    api = sys.argv[5] if len(sys.argv) > 5 else "legacy"
    import dask, dask.array as da
    with TreeRSS() as rss:
        t0 = time.perf_counter()
        if api == "generator":
            x = da.random.default_rng(0).normal(0, 1, size=(S, S), chunks=(C, C))
        else:
            x = da.random.normal(0, 1, size=(S, S), chunks=(C, C))
        m = x.mean(axis=1).compute(scheduler=sched, num_workers=nw)
        wall = time.perf_counter() - t0
    report(item=3, system="dask.array", S=S, chunks=C, scheduler=sched, workers=nw, api=api,
           wall_s=round(wall, 2), n_chunks=(S // C) ** 2,
           gb_generated=round(S * S * 8 / 1e9, 1),
           mean_of_means=float(m.mean()), std_of_row_means=float(m.std()),
           tree_peak_rss_mb=round(rss.peak / 2**20, 1))


if __name__ == "__main__":
    main()
