"""Dask SSHCluster start-up: constructor to all workers connected, and close, 5 times.

    python benches/compare/sshcluster_startup.py [HOST,HOST,HOST]

The first host also runs the scheduler; one worker (1 thread) per host. Needs
`pip install dask distributed asyncssh` and key login to the hosts (the CI machine's
key is ~/.ssh/id_ed25519_ci; WHEREVER_BENCH_SSH_KEY names another). The wherever side
is benches/src/bin/launch_ssh.rs; both go in BENCHMARKS.md, "Launch start-up".
"""
import logging
import os
import statistics
import sys
import time
from dask.distributed import Client, SSHCluster

logging.disable(logging.WARNING)
KEY = os.environ.get("WHEREVER_BENCH_SSH_KEY", os.path.expanduser("~/.ssh/id_ed25519_ci"))
hosts = sys.argv[1].split(",") if len(sys.argv) > 1 else ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
starts, stops = [], []
for _ in range(5):
    t = time.perf_counter()
    cluster = SSHCluster(
        [hosts[0]] + hosts,  # the first runs the scheduler, then one worker per host
        connect_options={"known_hosts": None, "client_keys": [KEY]},
        worker_options={"nthreads": 1, "n_workers": 1},
        remote_python=sys.executable,
    )
    client = Client(cluster)
    client.wait_for_workers(len(hosts))
    starts.append(time.perf_counter() - t)
    t = time.perf_counter()
    client.close()
    cluster.close()
    stops.append(time.perf_counter() - t)
    print(f"start {starts[-1]:.2f} s, stop {stops[-1]:.2f} s", file=sys.stderr)
for name, times in (("start", starts), ("stop", stops)):
    times.sort()
    print(f"{name}: {statistics.median(times):.2f} s ({times[0]:.2f}-{times[-1]:.2f})")
