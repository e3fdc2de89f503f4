"""Runs a command as a child subreaper and prints the wall time and the user and
system CPU time of all its descendants, workers included (a client that kills its
workers at exit without waiting for them leaves them out of `/usr/bin/time`).

usage: python3 benches/tools/subreaper_time.py COMMAND [ARGS...]
prints on stderr: TIME <wall s> <user s> <sys s>

The CPU times are those of COMMAND's process tree only: what this process's own
children used before it ran COMMAND is subtracted (`python3` started through a pyenv
shim inherits the shim's children's CPU time, about 0.05 s, across its `exec`).
"""
import ctypes, os, resource, subprocess, sys, time

PR_SET_CHILD_SUBREAPER = 36


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    child = subprocess.Popen(sys.argv[1:])
    child.wait()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = usage.ru_utime - before.ru_utime
    system = usage.ru_stime - before.ru_stime
    print(f"TIME {time.time() - start:.3f} {user:.3f} {system:.3f}", file=sys.stderr)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
