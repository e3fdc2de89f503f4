"""The `bag` workload of run.py: the tutorial's Dask bag filter over gzipped page-count files.

Data (prepare step): 16 gzipped files of 400,000 lines (quick: 4 x 100,000) written by our
`wiki_filter --generate` under data/pagecounts-F-L, with the expected count of matching lines
taken once from `zcat | awk`. Rows: ours (`wiki_filter --query filter`) on sequential,
threads:2 and processes:2; dask.bag on processes(2) (peers/bench_bag.py, copied unchanged from
the anchors); `zcat | awk` and its 2-way `xargs -P2` form (peers/bench_bag_unix.sh). Time =
the programs' own timing of reading, filtering and counting (interpreter and worker start-up
excluded).
"""
import json
import re
import subprocess


def workload(ns):
    """The Workload, built with run.py's namespace `ns` (Config, Workload, paths, helpers)."""
    Config, Workload = ns["Config"], ns["Workload"]
    EXAMPLES, PEERS, DATA, PY = ns["EXAMPLES"], ns["PEERS"], ns["DATA"], ns["PY"]
    result_json, program_stderr, log = ns["result_json"], ns["program_stderr"], ns["log"]

    def data_dir(size):
        return DATA / f"pagecounts-{size['files']}-{size['lines']}"

    def expected_file(size):
        return data_dir(size) / "expected.json"

    def prepare(size):
        d = data_dir(size)
        if expected_file(size).exists():
            return
        log(f"[bag] generating {size['files']} x {size['lines']} lines under {d}")
        subprocess.run([str(EXAMPLES / "wiki_filter"), "--plan", "threads:2", "--generate", str(d),
                        "--files", str(size["files"]), "--lines", str(size["lines"]),
                        "--seed", "1", "--query", "count"], check=True, capture_output=True)
        out = subprocess.run(["sh", "-c", f"zcat {d}/*.gz | LC_ALL=C awk '$3==\"en\" && $4 ~ /Obama/' | wc -l"],
                             check=True, capture_output=True, text=True).stdout
        expected_file(size).write_text(json.dumps({"matches": int(out.strip())}))

    def expected(size):
        return json.loads(expected_file(size).read_text())["matches"]

    def parse_ours(so, se):
        m = re.search(r"^matches (\d+)$", so, re.M)
        t = re.search(r"wiki_filter: filter on \S+ in ([\d.]+) s", program_stderr(se))
        if not m or not t:
            raise ValueError("no `matches` line or timing line")
        return {"time_s": float(t.group(1)), "answer": int(m.group(1))}

    def parse_peer(so, se):
        r = result_json(so)
        if r is None:
            raise ValueError("no RESULT line")
        r["time_s"] = r["wall_s"]
        return r

    def make(size):
        d = data_dir(size)
        glob = str(d / "*.gz")

        def check(p):
            want = expected(size)
            got = p.get("answer")
            return (got == want, f"matches = {got}" + ("" if got == want else f", expected {want}"))

        cfgs = []
        for plan in ["sequential", "threads:2", "processes:2"]:
            cfgs.append(Config("ours", "wherever", plan,
                               [str(EXAMPLES / "wiki_filter"), "--plan", plan, "--input", glob,
                                "--query", "filter"],
                               parse_ours, check, requires=["bin:wiki_filter"]))
        cfgs.append(Config("peer", "dask.bag", "processes(2)",
                           [PY, "bench_bag.py", glob, "filter", "processes", "2"],
                           parse_peer, check, requires=["py:dask", "py:psutil"], cwd=PEERS))
        for q, label in [("awk", "zcat | awk"), ("awk_p2", "2 x (zcat | awk), xargs -P2")]:
            cfgs.append(Config("peer", "unix", label, ["bash", "bench_bag_unix.sh", str(d), q],
                               parse_peer, check, cwd=PEERS))
        return cfgs

    return Workload(
        "bag", "bag: the tutorial's filter over gzipped page-count files (`wiki_filter`)",
        sizes={"quick": {"files": 4, "lines": 100_000}, "full": {"files": 16, "lines": 400_000}},
        make=make, prepare=prepare,
        describe=lambda s: f"{s['files']} gzipped files x {s['lines']:,} lines; count the lines "
                           "whose language (field 3) is `en` and whose title (field 4) matches "
                           "`Obama`; time = read + decompress + filter + count (start-up excluded)",
        ratio_against=["sequential", "threads:2", "processes:2"],
        time_label="time s",
        check_rule="the count equals `zcat | awk '$3==\"en\" && $4 ~ /Obama/' | wc -l` on the same files")
