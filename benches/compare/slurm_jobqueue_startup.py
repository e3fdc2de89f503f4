"""dask-jobqueue's SLURMCluster beside `slurm:jobs=4`: the time from
`cluster.scale(jobs=4)` to `client.wait_for_workers(4)`, and from `cluster.close()`
until squeue lists none of its jobs. One worker per job, one thread, as the
wherever plan. Usage: python3 benches/compare/slurm_jobqueue_startup.py REPEATS

Prints one markdown table row like benches/src/bin/launch_slurm_jobs.rs.
"""

import statistics
import subprocess
import sys
import time

from dask.distributed import Client
from dask_jobqueue import SLURMCluster


def queued(name):
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"],
                         capture_output=True, text=True).stdout
    return [line for line in out.split() if line]


def once(name):
    cluster = SLURMCluster(cores=1, processes=1, memory="1GB", walltime="00:10:00",
                           job_name=name, queue="debug",
                           scheduler_options={"dashboard_address": None})
    client = Client(cluster)
    started = time.perf_counter()
    cluster.scale(jobs=4)
    client.wait_for_workers(4)
    start = time.perf_counter() - started
    stopping = time.perf_counter()
    client.close()
    cluster.close()
    while queued(name):
        time.sleep(0.02)
    return start, time.perf_counter() - stopping


def summary(times):
    times = sorted(times)
    return f"{statistics.median(times):.2f} s ({times[0]:.2f}-{times[-1]:.2f})"


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    name = f"dask-jq-{int(time.time())}"
    runs = [once(name) for _ in range(repeats)]
    print(f"| dask-jobqueue `SLURMCluster` + `scale(jobs=4)` | 4 | "
          f"{summary([r[0] for r in runs])} | {summary([r[1] for r in runs])} |")


if __name__ == "__main__":
    main()
