"""Dask's side of `benches/src/bin/spill_map.rs`: a map whose results total 1 GB
under a 200 MB memory limit per worker, LocalCluster(n_workers=2,
threads_per_worker=1, memory_limit="200MB"): 100 results of 10 MB kept alive as
futures, then checked on the workers (as task inputs) and gathered on the client
one by one. Prints the wall time, each worker's peak resident memory (VmHWM of its
process, over its whole life), what it had spilled at the end of the map, and
whether a worker was restarted. Cluster start-up excluded.

usage: python3 benches/compare/spill_map_dask.py [MEMORY_LIMIT]   # default 200MB
"""
import os, signal, sys, time
from dask.distributed import Client, LocalCluster

VALUE = 10_000_000
COUNT = 100
BLOCK = 1 << 20


def blocks():
    for start in range(0, VALUE, BLOCK):
        yield start // BLOCK, start, min(start + BLOCK, VALUE)


def make(i):
    return b"".join(bytes([(i * 31 + b) % 251]) * (e - s) for b, s, e in blocks())


def is_result(value, i):
    return len(value) == VALUE and all(
        value[s:e] == bytes([(i * 31 + b) % 251]) * (e - s) for b, s, e in blocks()
    )


def check(value, i):
    return is_result(value, i)


def peak_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None


def spilled(dask_worker):
    try:
        return dask_worker.data.spilled_total.disk / 1e6
    except AttributeError:
        return None


def main():
    limit = sys.argv[1] if len(sys.argv) > 1 else "200MB"
    signal.alarm(900)  # a hang guard
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=limit,
                           dashboard_address=None)
    client = Client(cluster)
    pids = client.run(os.getpid)
    start = time.perf_counter()
    futures = [client.submit(make, i, pure=False) for i in range(COUNT)]
    for f in futures:
        f.result()
    made = time.perf_counter() - start
    spilled_mb = client.run(spilled)
    checks = [client.submit(check, f, i, pure=False) for i, f in zip(range(COUNT), futures)]
    for c in checks:
        assert c.result() is True
    for i, f in enumerate(futures):
        assert is_result(f.result(), i)
    wall = time.perf_counter() - start
    now = client.run(os.getpid)
    peaks = [peak_mb(pid) for pid in pids.values()]
    restarted = sorted(pids.values()) != sorted(now.values())
    peaks_now = [peak_mb(pid) for pid in now.values()] if restarted else peaks
    print(
        f"dask distributed LocalCluster(n_workers=2, threads_per_worker=1, memory_limit={limit!r}): "
        f"{COUNT} x {VALUE // 1_000_000} MB, made in {made:.2f} s, all checked in {wall:.2f} s; "
        f"worker peak RSS (MB): {', '.join(f'{p:.0f}' if p else '?' for p in peaks_now)}; "
        f"spilled at the end of the map (MB): "
        f"{', '.join(f'{s:.0f}' if s is not None else '?' for s in spilled_mb.values())}; "
        f"workers restarted: {restarted}"
    )
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
