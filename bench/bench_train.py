"""Benchmark `mnistlab train` (seed config) against the seed-notebook re-creation.

Runs bench/seed_notebook.py and `mnistlab train --out <tmp> --data-dir DIR` alternately
(re-creation, mnistlab, re-creation, mnistlab, ...), --repeats times each, every run a fresh
subprocess. Per run it records:

* whole  - wall seconds of the whole child process (start to exit, imports included)
* fit    - seconds around model.fit (re-creation: its `BENCH {json}` line;
           mnistlab: metrics.json timings.fit_seconds)
* acc    - test accuracy (same two sources)
* rss    - the child's peak RSS, ru_maxrss from os.wait4 on that child's pid (KiB on Linux)

and prints a per-run table, the medians, the ratios mnistlab / re-creation of the medians, and
the issue's targets with PASS/MISS. Standard library only.

    .venv/bin/python bench/bench_train.py --data-dir /work/shared/data [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RECREATION = BENCH_DIR / "seed_notebook.py"

# The targets.
TARGET_WHOLE_RATIO = 0.5  # mnistlab whole-process median <= 0.5x the re-creation's
TARGET_FIT_RATIO = 0.6  # mnistlab fit median <= 0.6x the re-creation's
TARGET_ACCURACY = 0.975  # every mnistlab run
TARGET_PEAK_RSS_BYTES = 1.5e9  # every mnistlab run; 1.5 GB = 1.5e9 bytes (~1430.5 MiB)

LABELS = {"recreation": "re-creation", "mnistlab": "mnistlab"}


def default_data_dir() -> str:
    return os.environ.get("MNISTLAB_DATA_DIR") or str(REPO.parent / "shared" / "data")


def find_mnistlab() -> str:
    beside = Path(sys.executable).parent / "mnistlab"
    if beside.is_file():
        return str(beside)
    found = shutil.which("mnistlab")
    if not found:
        sys.exit("error: `mnistlab` not found beside this Python nor on PATH")
    return found


def run_child(argv: list[str], log_path: Path, env: dict) -> tuple[int, float, int]:
    """Run argv to completion; return (exit code, wall seconds, peak RSS in KiB).

    stdout and stderr go to a file (no pipe to drain), and the child is reaped with os.wait4
    so that the rusage is that child's own (plus any children it waited for), not the sum
    over every child this driver ever had.
    """
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here; tell Popen so it does not wait again
    return code, wall, usage.ru_maxrss


def tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])


def run_recreation(data_dir: str, work: Path, index: int, env: dict) -> dict:
    figures = work / f"recreation-{index}"
    log = work / f"recreation-{index}.log"
    argv = [sys.executable, str(RECREATION), "--data-dir", data_dir, "--out", str(figures)]
    code, wall, rss = run_child(argv, log, env)
    bench = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("BENCH "):
            bench = json.loads(line[len("BENCH "):])
    if code != 0 or bench is None:
        sys.exit(f"error: re-creation run {index} failed (exit {code}); log {log}:\n{tail(log)}")
    return {"whole": wall, "fit": bench["fit_seconds"], "acc": bench["test_accuracy"],
            "rss_kib": rss}


def run_mnistlab(exe: str, data_dir: str, work: Path, index: int, env: dict) -> dict:
    out = work / f"mnistlab-{index}"
    log = work / f"mnistlab-{index}.log"
    argv = [exe, "train", "--out", str(out), "--data-dir", data_dir]
    code, wall, rss = run_child(argv, log, env)
    metrics_path = out / "metrics.json"
    if code != 0 or not metrics_path.is_file():
        sys.exit(f"error: mnistlab run {index} failed (exit {code}); log {log}:\n{tail(log)}")
    metrics = json.loads(metrics_path.read_text())
    return {"whole": wall, "fit": metrics["timings"]["fit_seconds"],
            "acc": metrics["test"]["accuracy"], "rss_kib": rss}


def mib(kib: float) -> float:
    return kib / 1024


def print_table(results: dict[str, list[dict]]) -> None:
    header = f"{'run':<20}{'whole (s)':>11}{'fit (s)':>10}{'test acc':>10}{'peak RSS (MiB)':>16}"
    print(header)
    print("-" * len(header))
    for kind in ("recreation", "mnistlab"):
        for i, r in enumerate(results[kind], 1):
            print(f"{LABELS[kind] + ' #' + str(i):<20}{r['whole']:>11.2f}{r['fit']:>10.2f}"
                  f"{r['acc']:>10.4f}{mib(r['rss_kib']):>16.0f}")
    print("-" * len(header))
    for kind in ("recreation", "mnistlab"):
        rs = results[kind]
        print(f"{LABELS[kind] + ' median':<20}"
              f"{statistics.median(r['whole'] for r in rs):>11.2f}"
              f"{statistics.median(r['fit'] for r in rs):>10.2f}"
              f"{statistics.median(r['acc'] for r in rs):>10.4f}"
              f"{mib(statistics.median(r['rss_kib'] for r in rs)):>16.0f}")


def print_targets(results: dict[str, list[dict]]) -> bool:
    base, new = results["recreation"], results["mnistlab"]

    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    whole_ratio = med(new, "whole") / med(base, "whole")
    fit_ratio = med(new, "fit") / med(base, "fit")
    min_acc = min(r["acc"] for r in new)
    max_rss_bytes = max(r["rss_kib"] for r in new) * 1024

    rows = [
        ("whole-process, median ratio mnistlab/re-creation", f"{whole_ratio:.3f}x",
         f"<= {TARGET_WHOLE_RATIO}x", whole_ratio <= TARGET_WHOLE_RATIO),
        ("fit, median ratio mnistlab/re-creation", f"{fit_ratio:.3f}x",
         f"<= {TARGET_FIT_RATIO}x", fit_ratio <= TARGET_FIT_RATIO),
        ("mnistlab test accuracy, lowest run", f"{min_acc:.4f}",
         f">= {TARGET_ACCURACY}", min_acc >= TARGET_ACCURACY),
        ("mnistlab peak RSS, highest run", f"{max_rss_bytes / 1e9:.2f} GB",
         f"<= {TARGET_PEAK_RSS_BYTES / 1e9} GB", max_rss_bytes <= TARGET_PEAK_RSS_BYTES),
    ]
    print()
    print(f"{'target':<52}{'measured':>12}{'goal':>12}  result")
    for name, measured, goal, ok in rows:
        print(f"{name:<52}{measured:>12}{goal:>12}  {'PASS' if ok else 'MISS'}")
    return all(ok for *_, ok in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=default_data_dir(),
                        help="Folder holding mnist/ with the four IDX .gz files. "
                        "Default: $MNISTLAB_DATA_DIR, else ../shared/data beside the repo.")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Runs of each program, alternating (default 3).")
    parser.add_argument("--keep", action="store_true",
                        help="Keep the run folders and logs (printed at the end).")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    data_dir = str(Path(args.data_dir).resolve())

    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    exe = find_mnistlab()

    work = Path(tempfile.mkdtemp(prefix="mnistlab-bench-"))
    load_before = os.getloadavg()
    print(f"host: {platform.node()}  cpus: {os.cpu_count()}  python: {platform.python_version()}  "
          f"load avg before: {' '.join(f'{x:.2f}' for x in load_before)}")
    print(f"data: {data_dir}  repeats: {args.repeats} each, alternating  work: {work}")
    print(flush=True)

    results: dict[str, list[dict]] = {"recreation": [], "mnistlab": []}
    try:
        for i in range(1, args.repeats + 1):
            r = run_recreation(data_dir, work, i, env)
            results["recreation"].append(r)
            print(f"  re-creation #{i}: whole {r['whole']:.2f}s  fit {r['fit']:.2f}s  "
                  f"acc {r['acc']:.4f}  rss {mib(r['rss_kib']):.0f} MiB", flush=True)
            r = run_mnistlab(exe, data_dir, work, i, env)
            results["mnistlab"].append(r)
            print(f"  mnistlab    #{i}: whole {r['whole']:.2f}s  fit {r['fit']:.2f}s  "
                  f"acc {r['acc']:.4f}  rss {mib(r['rss_kib']):.0f} MiB", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print_table(results)
    all_pass = print_targets(results)
    load_after = os.getloadavg()
    print()
    print(f"load avg after: {' '.join(f'{x:.2f}' for x in load_after)}  "
          f"(wall times depend on other load on this machine)")
    if args.keep:
        print(f"run folders and logs kept in {work}")
    print("all targets PASS" if all_pass else "some targets MISS")


if __name__ == "__main__":
    main()
