"""(Copied unchanged from shared/anchors.)

Shared helpers for the anchor benchmarks.

Every benchmark script prints exactly one line starting with 'RESULT ' followed by
JSON.  A background thread samples the summed RSS of this process and all its
descendants (psutil), which matters for multi-process schedulers because
/usr/bin/time -v only reports the max RSS of the single largest process.
"""
import json, os, threading, time
import psutil


class TreeRSS:
    def __init__(self, interval=0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        try:
            me = psutil.Process(os.getpid())
            procs = [me] + me.children(recursive=True)
        except psutil.Error:
            return
        tot = 0
        for p in procs:
            try:
                tot += p.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, tot)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._sample()
        self._stop.set()
        self._t.join()


def report(**kw):
    print("RESULT " + json.dumps(kw, default=str), flush=True)
