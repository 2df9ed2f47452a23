"""Benchmark `mnistlab audit` against one `mnistlab train` of the same model (the baseline).

Both run as fresh subprocesses, one after the other. Per command it records the whole-process
wall time, the child's CPU seconds (user + system, from os.wait4: less sensitive to other load
than wall time) and its peak RSS; for the audit also its own phase timings from summary.json.
It prints the ratio audit / train, the issue's targets (default audit under 120 s, --model cnn
under 1200 s) with PASS/MISS, and the load average before and after, since the dev machine
(2 cores) is shared. Standard library only.

    .venv/bin/python bench/bench_audit.py --data-dir /work/shared/data [--model seed-mlp]

`--interrupt-after-fold N` stops the audit after fold N (SIGINT) and then resumes it with
`--resume`, timing both parts: the per-fold resume path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = {"seed-mlp": 120.0, "cnn": 1200.0}


def run(argv: list[str], env: dict, stop_after_fold: int | None = None) -> dict:
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in child.stdout:
        lines.append(line)
        finished = re.match(r"fold (\d+)/\d+ done", line.strip())
        if stop_after_fold is not None and finished and int(finished.group(1)) == stop_after_fold:
            child.send_signal(signal.SIGINT)  # Ctrl-C, as a user would press it
    _, status, usage = os.wait4(child.pid, 0)
    return {
        "wall_seconds": time.perf_counter() - started,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "exit_code": os.waitstatus_to_exitcode(status),
        "tail": "".join(lines[-3:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR", "/work/shared/data"))
    parser.add_argument("--model", default="seed-mlp", choices=sorted(TARGET_SECONDS))
    parser.add_argument("--interrupt-after-fold", type=int, default=None)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    mnistlab = str(Path(sys.executable).parent / "mnistlab")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        if not args.skip_baseline:
            results["train"] = run(
                [mnistlab, "train", "--model", args.model, "--data-dir", args.data_dir,
                 "--out", f"{scratch}/run"], env)  # fmt: skip
        audit_dir = f"{scratch}/audit"
        command = [mnistlab, "audit", "--model", args.model, "--data-dir", args.data_dir]
        if args.interrupt_after_fold:
            results["audit (until interrupted)"] = run(
                [*command, "--out", audit_dir], env, stop_after_fold=args.interrupt_after_fold
            )
            results["audit (resumed)"] = run([mnistlab, "audit", "--resume", audit_dir], env)
        else:
            results["audit"] = run([*command, "--out", audit_dir], env)
        summary_path = Path(audit_dir) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    print(f"load average after:  {os.getloadavg()}")
    print(f"{'command':28} {'wall s':>8} {'cpu s':>8} {'rss MiB':>8} exit")
    for name, result in results.items():
        print(f"{name:28} {result['wall_seconds']:8.1f} {result['cpu_seconds']:8.1f}"
              f" {result['peak_rss_mib']:8.0f} {result['exit_code']}")  # fmt: skip
    audit_wall = sum(r["wall_seconds"] for n, r in results.items() if n.startswith("audit"))
    if "train" in results:
        print(f"ratio audit / train (wall): {audit_wall / results['train']['wall_seconds']:.2f}x")
    if summary:
        print("audit phases (s):", {k: round(v, 1) for k, v in summary["timings"].items()})
        print("label issues:", summary["label_issues"], " outliers:", summary["outliers"]["total"],
              " duplicate pairs:", summary["duplicates"]["pairs"])  # fmt: skip
        print("published overlap:", summary.get("published_label_errors"))
    target = TARGET_SECONDS[args.model]
    verdict = "PASS" if audit_wall <= target else "MISS"
    print(f"{verdict}: audit --model {args.model} took {audit_wall:.1f} s (target {target:.0f} s)")
    print("BENCH " + json.dumps({"model": args.model, "audit_wall_seconds": audit_wall,
                                 "results": {k: {kk: vv for kk, vv in v.items() if kk != "tail"} for k, v in results.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
