"""(Copied unchanged from shared/anchors.)

Item 4: dask.bag text processing over gzipped pagecount files.
usage: python bench_bag.py GLOB QUERY SCHEDULER [workers]
QUERY in: count | filter   SCHEDULER in: processes | threads | synchronous
"""
import re, sys, time
from common import report, TreeRSS


def find(line, regex="Obama", language="en"):
    fields = line.split(" ")
    return fields[2] == language and re.search(regex, fields[3]) is not None


def main():
    glob, q, sched = sys.argv[1], sys.argv[2], sys.argv[3]
    nw = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    import dask.bag as db
    kw = {} if sched == "synchronous" else {"num_workers": nw}
    with TreeRSS() as rss:
        t0 = time.perf_counter()
        b = db.read_text(glob)
        if q == "filter":
            b = b.filter(find)
        n = b.count().compute(scheduler=sched, **kw)
        wall = time.perf_counter() - t0
    report(item=4, system="dask.bag", query=q, scheduler=sched, workers=nw,
           wall_s=round(wall, 3), answer=n, npartitions=b.npartitions,
           tree_peak_rss_mb=round(rss.peak / 2**20, 1))


if __name__ == "__main__":
    main()
