"""Benchmark `mnistlab audit` against a default `mnistlab train` (the baseline), and score the
audit's review queue against the published MNIST test-set label errors.

All run as fresh subprocesses: train, audit, train again, so the baseline sees the same load
as the audit (the dev machine's 2 cores are shared); the ratio uses the mean of the two trains.
Per command it records the whole-process wall time, the child's CPU seconds (user + system,
from os.wait4: less sensitive to other load than wall time) and its peak RSS; for the audit
also its own phase timings from summary.json. It prints how many of the 15 published errors
are in candidates.csv's test top 100 and the audit / train ratio, each with PASS/MISS against
the targets (at least 13, at most 10x), and saves its row in bench/results/audit.json (in place
of the row of the same kind, model and epochs; `--no-save` only prints) for bench/tables.py.
Standard library only.

    .venv/bin/python bench/bench_audit.py --data-dir /work/shared/data [--model cnn-fast]

`--interrupt-after-fold N` stops the audit after fold N (SIGINT) and then resumes it with
`--resume`, timing both parts: the per-fold resume path.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audit_results import save_rows
from measured import where

# MNIST test indices confirmed mislabelled (src/mnistlab/audit.py, MNIST_TEST_LABEL_ERRORS); kept
# here as a copy so the benchmark stays standard-library only.
PUBLISHED = (
    947, 1621, 1901, 2130, 2462, 2597, 2654, 3520, 3558, 5937, 6651, 6783, 8527, 9679, 9729,
)  # fmt: skip
TARGET_IN_TOP_100 = 13
TARGET_RATIO = 10.0


def run(argv: list[str], env: dict, stop_after_fold: int | None = None) -> dict:
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
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
    parser.add_argument(
        "--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR", "/work/shared/data")
    )
    parser.add_argument("--model", default=None, help="the audit's model [default: its own]")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fold")
    parser.add_argument("--interrupt-after-fold", type=int, default=None)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--no-save", action="store_true", help="print only; leave audit.json")
    args = parser.parse_args()

    mnistlab = str(Path(sys.executable).parent / "mnistlab")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    loads = [os.getloadavg()[0]]
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        train = [mnistlab, "train", "--data-dir", args.data_dir]
        if not args.skip_baseline:
            results["train (before)"] = run([*train, "--out", f"{scratch}/run-1"], env)
        audit_dir = f"{scratch}/audit"
        command = [mnistlab, "audit", "--data-dir", args.data_dir]
        command += ["--model", args.model] if args.model else []
        command += ["--epochs", str(args.epochs)] if args.epochs else []
        if args.interrupt_after_fold:
            results["audit (until interrupted)"] = run(
                [*command, "--out", audit_dir], env, stop_after_fold=args.interrupt_after_fold
            )
            results["audit (resumed)"] = run([mnistlab, "audit", "--resume", audit_dir], env)
        else:
            results["audit"] = run([*command, "--out", audit_dir], env)
        if not args.skip_baseline:
            results["train (after)"] = run([*train, "--out", f"{scratch}/run-2"], env)
        summary_path = Path(audit_dir) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        config_path = Path(audit_dir) / "config.json"
        epochs = json.loads(config_path.read_text())["epochs"] if config_path.exists() else None
        queue_path = Path(audit_dir) / "candidates.csv"
        queue = list(csv.DictReader(queue_path.open())) if queue_path.exists() else []
    loads.append(os.getloadavg()[0])
    print(f"load average after:  {os.getloadavg()}")
    print(f"{'command':28} {'wall s':>8} {'cpu s':>8} {'rss MiB':>8} exit")
    for name, result in results.items():
        print(f"{name:28} {result['wall_seconds']:8.1f} {result['cpu_seconds']:8.1f}"
              f" {result['peak_rss_mib']:8.0f} {result['exit_code']}")  # fmt: skip
    audit_wall = sum(r["wall_seconds"] for n, r in results.items() if n.startswith("audit"))
    audit_cpu = sum(r["cpu_seconds"] for n, r in results.items() if n.startswith("audit"))
    trains = [r for n, r in results.items() if n.startswith("train")]
    ratio = audit_wall / (sum(r["wall_seconds"] for r in trains) / len(trains)) if trains else None
    cpu_ratio = (
        audit_cpu / (sum(r["cpu_seconds"] for r in trains) / len(trains)) if trains else None
    )
    if summary:
        print("audit phases (s):", {k: round(v, 1) for k, v in summary["timings"].items()})
        print("label issues:", summary["label_issues"], " outliers:", summary["outliers"]["total"],
              " duplicate pairs:", summary["duplicates"]["pairs"])  # fmt: skip
        print("published overlap:", summary.get("published_label_errors"))
    # Read from candidates.csv itself: the file a person reviews.
    test_queue = [row for row in queue if row["split"] == "test"]
    top_100 = {int(row["index"]) for row in test_queue if int(row["rank"]) <= 100}
    found = sorted(top_100 & set(PUBLISHED))
    print(f"{'PASS' if len(found) >= TARGET_IN_TOP_100 else 'MISS'}: {len(found)} of"
          f" {len(PUBLISHED)} published errors in the test top 100 of candidates.csv"
          f" (target {TARGET_IN_TOP_100}); missed: {sorted(set(PUBLISHED) - top_100)}")  # fmt: skip
    if ratio is not None:
        print(f"{'PASS' if ratio <= TARGET_RATIO else 'MISS'}: audit {audit_wall:.1f} s ="
              f" {ratio:.2f}x the mean default train (target {TARGET_RATIO:.0f}x)")  # fmt: skip
    print("BENCH " + json.dumps({"model": summary.get("model"), "audit_wall_seconds": audit_wall,
                                 "ratio": ratio, "published_in_top_100": len(found),
                                 "results": {k: {kk: vv for kk, vv in v.items() if kk != "tail"} for k, v in results.items()}}))  # fmt: skip
    if summary and not args.no_save:
        save_rows("runs", [table_row(args, summary, epochs, loads, audit_wall, ratio, cpu_ratio,
                                     len(found))], key=("what", "model", "epochs"))  # fmt: skip


def table_row(args, summary, epochs, loads, audit_wall, ratio, cpu_ratio, found) -> dict:
    """This run as a row of bench/results/audit.json's "runs" (docs/performance.md's table)."""
    if args.interrupt_after_fold:
        what = f"audit stopped after fold {args.interrupt_after_fold} and resumed"
    else:
        what = "audit"
    if not args.skip_baseline:
        what = f"train, {what}, train in one run"
    published = summary.get("published_label_errors") or {}
    return {
        "what": what,
        "model": summary["model"],
        "epochs": epochs,
        "test_time_shifts": summary["probabilities"]["test_time_augmentation"],
        "load_average": [round(min(loads), 1), round(max(loads), 1)],
        "audit_wall_s": round(audit_wall),
        "wall_vs_train": None if ratio is None else round(ratio, 1),
        "cpu_vs_train": None if cpu_ratio is None else round(cpu_ratio, 1),
        "test_flagged": summary["label_issues"]["test"],
        "published": len(PUBLISHED),
        "published_flagged": published.get("flagged"),
        "published_in_test_top_100": found,
        **where(),
    }


if __name__ == "__main__":
    main()
