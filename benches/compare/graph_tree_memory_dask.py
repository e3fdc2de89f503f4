"""Dask's side of `benches/src/bin/graph_tree_memory.rs`: a dask.delayed tree
over 2,000 leaves of 1 MB, each leaf read by two tasks (pair i reads leaves i and
i + 1, wrapping), then the pairs added two by two; computed with the threads
scheduler (dask.compute(..., scheduler="threads", num_workers=N)). Prints the
process's peak resident memory (VmHWM, reset before the run) in MB and the wall
time.

usage: python3 benches/compare/graph_tree_memory_dask.py [THREADS]   # default 2; 1 = sync; LEAVES=... to resize
       python3 benches/compare/graph_tree_memory_dask.py distributed [MEMORY_LIMIT]
           # LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=MEMORY_LIMIT
           # (default "200MB")); prints each worker process's peak (VmHWM over its life)
"""
import os, sys, time
import dask

LEAF = 1 << 20


def make_leaf(i):
    return bytes([i % 251]) * LEAF


def combine(a, b):
    return sum(a[::4096]) + sum(b[::4096])


def add(a, b):
    return a + b


def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def build(leaves_n):
    leaves = [dask.delayed(make_leaf)(i) for i in range(leaves_n)]
    level = [dask.delayed(combine)(leaves[i], leaves[(i + 1) % leaves_n]) for i in range(leaves_n)]
    while len(level) > 1:
        level = [dask.delayed(add)(*level[i:i + 2]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def distributed_main(memory_limit):
    from distributed import Client, LocalCluster
    leaves_n = int(os.environ.get("LEAVES", "2000"))
    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        before = client.run(peak_mb)
        started = time.perf_counter()
        total = client.compute(build(leaves_n)).result()
        elapsed = time.perf_counter() - started
        after = client.run(peak_mb)
        print(f"dask distributed, 2 workers, memory_limit={memory_limit}: {leaves_n} leaves "
              f"of 1 MB, {elapsed:.2f} s (total {total})")
        for address in sorted(after):
            print(f"  worker {address}: peak RSS {after[address]:.0f} MB over its life "
                  f"({before[address]:.0f} MB before the graph)")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "distributed":
        distributed_main(sys.argv[2] if len(sys.argv) > 2 else "200MB")
        return
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    leaves_n = int(os.environ.get("LEAVES", "2000"))
    try:
        open("/proc/self/clear_refs", "w").write("5")
    except OSError:
        pass
    started = time.perf_counter()
    leaves = [dask.delayed(make_leaf)(i) for i in range(leaves_n)]
    level = [dask.delayed(combine)(leaves[i], leaves[(i + 1) % leaves_n]) for i in range(leaves_n)]
    while len(level) > 1:
        level = [dask.delayed(add)(*level[i:i + 2]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    if threads == 1:
        (total,) = dask.compute(level[0], scheduler="sync")
    else:
        (total,) = dask.compute(level[0], scheduler="threads", num_workers=threads)
    print(f"dask {'sync' if threads == 1 else f'threads:{threads}'}: {leaves_n} leaves of 1 MB, "
          f"peak RSS {peak_mb():.0f} MB, {time.perf_counter() - started:.2f} s (total {total})")


if __name__ == "__main__":
    main()
