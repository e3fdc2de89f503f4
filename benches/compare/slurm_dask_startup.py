"""Dask's in-allocation launch, for BENCHMARKS.md's "Launch start-up: Slurm and MPI":
the time from starting a `dask scheduler` to all `srun dask worker` workers
connected (the tutorial's `srun dask-worker` pattern), and the time to shut them
down. Run inside an allocation, beside `benches/src/bin/launch_slurm.rs`:

    sbatch -n 4 --wait -o dask.txt --wrap "python3 benches/compare/slurm_dask_startup.py 5"

Prints one markdown table row (median of the starts, with the range).
"""

import os
import subprocess
import sys
import tempfile
import time

from distributed import Client


def start_once(workers):
    """Start-up and stop seconds of one scheduler with `workers` srun workers."""
    directory = tempfile.mkdtemp()
    scheduler_file = os.path.join(directory, "scheduler.json")
    started = time.perf_counter()
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler",
         "--scheduler-file", scheduler_file, "--dashboard-address", ":0", "--port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(scheduler_file):
        time.sleep(0.01)
    srun = subprocess.Popen(
        ["srun", f"--ntasks={workers}", "--kill-on-bad-exit=0",
         sys.executable, "-m", "distributed.cli.dask_worker",
         "--scheduler-file", scheduler_file, "--nthreads", "1", "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = Client(scheduler_file=scheduler_file)
    client.wait_for_workers(workers, timeout=120)
    start_up = time.perf_counter() - started
    stopping = time.perf_counter()
    client.shutdown()
    client.close()
    srun.wait(timeout=120)
    scheduler.wait(timeout=120)
    stop = time.perf_counter() - stopping
    return start_up, stop


def summary(times):
    times = sorted(times)
    return f"{times[len(times) // 2]:.2f} s ({times[0]:.2f}-{times[-1]:.2f})"


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    workers = int(os.environ["SLURM_NTASKS"])
    runs = [start_once(workers) for _ in range(repeats)]
    print(f"| dask `srun dask worker` (distributed "
          f"{__import__('distributed').__version__}) | {workers} | "
          f"{summary([r[0] for r in runs])} | {summary([r[1] for r in runs])} |")


if __name__ == "__main__":
    main()
