"""Benchmark `mnistlab train` (seed config) against the seed-notebook re-creation and peers.

In every round, each contender runs once, in a fresh subprocess, in this order:

* re-creation    - bench/seed_notebook.py (Keras on TensorFlow, the notebook's code path)
* mnistlab cold  - `mnistlab train`, empty cache directory (JAX compiles from scratch)
* mnistlab warm  - `mnistlab train`, a cache directory that has seen one earlier run
* keras-jax      - the re-creation on Keras + JAX in a venv without TensorFlow (--peer-python)
* torch eager    - bench/torch_mlp.py, the same MLP in PyTorch eager mode, fp32 (--torch-python)
* torch bf16     - the same under CPU autocast to bfloat16 (--torch-python)
* numpy          - bench/numpy_mlp.py, the same MLP trained by hand in NumPy
* floor          - bench/gemm_floor.py, the fp32 GEMMs of those 10 epochs in XLA (fit only)

Per run: whole (wall seconds of the child process, imports and exit included), cpu (its user +
system seconds, less sensitive to other load), fit (seconds around the fit), test accuracy and
peak RSS (the larger of ru_maxrss from os.wait4 on that child and the summed resident memory of
the child and its descendants, sampled every 0.2 s: mnistlab's figure worker is a second process,
whose memory ru_maxrss would not add). Prints every run, the medians, the ratios of
medians against the re-creation and the floor, and the issue's targets with PASS/MISS.
Standard library only; the data comes from --data-dir (nothing is downloaded).

    .venv/bin/python bench/bench_train.py --data-dir /work/shared/data [--repeats 3]
        [--peer-python /path/to/venv-without-tf/bin/python]
        [--torch-python /path/to/venv-with-torch/bin/python] [--json results.json]
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
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RECREATION = BENCH_DIR / "seed_notebook.py"

NUMPY_PEER = BENCH_DIR / "numpy_mlp.py"
TORCH_PEER = BENCH_DIR / "torch_mlp.py"
GEMM_FLOOR = BENCH_DIR / "gemm_floor.py"

# The targets, as ratios to the re-creation and the GEMM floor.
TARGET_WARM_WHOLE_RATIO = 0.40  # mnistlab warm whole-process median / re-creation's
TARGET_COLD_WHOLE_RATIO = 0.55  # mnistlab on a machine's very first run
TARGET_FIT_FLOOR_RATIO = 2.0  # mnistlab fit median / fp32 GEMM floor
TARGET_RSS_RATIO = 0.6  # mnistlab peak RSS / re-creation's
TARGET_ACCURACY = 0.975  # every mnistlab run

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4

LABELS = {
    "recreation": "re-creation",
    "mnistlab-cold": "mnistlab cold",
    "mnistlab-warm": "mnistlab warm",
    "keras-jax": "keras-jax no TF",
    "torch": "torch eager",
    "torch-bf16": "torch bf16",
    "numpy": "numpy",
    "floor": "GEMM floor",
}


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


def run_child(argv: list[str], log_path: Path, env: dict) -> tuple[int, float, int, float]:
    """Run argv to completion; return (exit code, wall seconds, peak RSS in KiB, CPU seconds).

    stdout and stderr go to a file (no pipe to drain), and the child is reaped with os.wait4
    so that the rusage is that child's own (plus any children it waited for), not the sum
    over every child this driver ever had. For a child with children of its own, ru_maxrss is
    the largest one's peak, so the summed memory of the tree is also sampled, and the larger
    of the two is returned (pages a fork shares are counted once per process: an upper bound).
    """
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=REPO
        )
        sampled = [0]
        finished = threading.Event()

        def sample() -> None:
            while not finished.wait(0.2):
                sampled[0] = max(sampled[0], tree_rss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        finished.set()
        sampler.join()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here; tell Popen so it does not wait again
    return code, wall, max(usage.ru_maxrss, sampled[0]), usage.ru_utime + usage.ru_stime


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants now, in KiB (0 where /proc is missing)."""
    parents = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    # The parent's id is the second field after the parenthesised command name.
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {pid}, True
    while grew:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    total = 0
    for member in tree:
        try:
            with open(f"/proc/{member}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            pass
    return total


def tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])


def run_bench_script(name: str, argv: list[str], work: Path, index: int, env: dict) -> dict:
    """A child that prints a `BENCH {json}` line (re-creation, peers, floor)."""
    log = work / f"{name}-{index}.log"
    code, wall, rss, cpu = run_child(argv, log, env)
    bench = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("BENCH "):
            bench = json.loads(line[len("BENCH ") :])
    if code != 0 or bench is None:
        sys.exit(f"error: {name} run {index} failed (exit {code}); log {log}:\n{tail(log)}")
    return {
        "whole": wall,
        "cpu": cpu,
        "fit": bench["fit_seconds"],
        "acc": bench.get("test_accuracy"),
        "rss_kib": rss,
    }


def run_mnistlab(exe: str, data_dir: str, work: Path, name: str, index: int, env: dict) -> dict:
    out = work / f"{name}-{index}"
    log = work / f"{name}-{index}.log"
    argv = [exe, "train", "--out", str(out), "--data-dir", data_dir]
    code, wall, rss, cpu = run_child(argv, log, env)
    metrics_path = out / "metrics.json"
    if code != 0 or not metrics_path.is_file():
        sys.exit(f"error: mnistlab run {index} failed (exit {code}); log {log}:\n{tail(log)}")
    metrics = json.loads(metrics_path.read_text())
    return {
        "whole": wall,
        "cpu": cpu,
        "fit": metrics["timings"]["fit_seconds"],
        "acc": metrics["test"]["accuracy"],
        "rss_kib": rss,
    }


def mib(kib: float) -> float:
    return kib / 1024


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def cell(value, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def print_table(results: dict[str, list[dict]]) -> None:
    header = (
        f"{'run':<22}{'whole (s)':>10}{'cpu (s)':>9}{'fit (s)':>9}{'test acc':>10}{'RSS (MiB)':>11}"
    )
    print(header)
    print("-" * len(header))
    for kind, rs in results.items():
        for i, r in enumerate(rs, 1):
            print(
                f"{LABELS[kind] + ' #' + str(i):<22}{cell(r['whole'], 10, 2)}{cell(r['cpu'], 9, 2)}"
                f"{cell(r['fit'], 9, 2)}{cell(r['acc'], 10, 4)}{cell(mib(r['rss_kib']), 11, 0)}"
            )
    print("-" * len(header))
    for kind, rs in results.items():
        print(
            f"{LABELS[kind] + ' median':<22}{cell(median(rs, 'whole'), 10, 2)}"
            f"{cell(median(rs, 'cpu'), 9, 2)}{cell(median(rs, 'fit'), 9, 2)}"
            f"{cell(median(rs, 'acc'), 10, 4)}{cell(mib(median(rs, 'rss_kib')), 11, 0)}"
        )


def ratio_rows(results: dict[str, list[dict]]) -> list[tuple[str, str, str, str, str]]:
    """(contender, whole vs re-creation, cpu vs re-creation, fit vs re-creation, fit vs floor)."""
    base = results["recreation"]
    floor = median(results["floor"], "fit") if results.get("floor") else None
    rows = []
    for kind, rs in results.items():
        if kind == "floor":
            continue

        def ratio(key, reference):
            value = median(rs, key)
            return "-" if value is None or not reference else f"{value / reference:.2f}x"

        rows.append(
            (
                LABELS[kind],
                ratio("whole", median(base, "whole")),
                ratio("cpu", median(base, "cpu")),
                ratio("fit", median(base, "fit")),
                ratio("fit", floor),
            )
        )
    return rows


def print_targets(results: dict[str, list[dict]]) -> bool:
    base = results["recreation"]
    cold, warm = results["mnistlab-cold"], results["mnistlab-warm"]
    floor = median(results["floor"], "fit")
    mnistlab_runs = cold + warm
    warm_ratio = median(warm, "whole") / median(base, "whole")
    cold_ratio = median(cold, "whole") / median(base, "whole")
    fit_floor_ratio = median(warm, "fit") / floor
    rss_ratio = max(r["rss_kib"] for r in mnistlab_runs) / median(base, "rss_kib")
    min_acc = min(r["acc"] for r in mnistlab_runs)

    print()
    print(
        f"{'contender':<22}{'whole/re-cr.':>13}{'cpu/re-cr.':>12}{'fit/re-cr.':>12}{'fit/floor':>11}"
    )
    for row in ratio_rows(results):
        print(f"{row[0]:<22}{row[1]:>13}{row[2]:>12}{row[3]:>12}{row[4]:>11}")
    rows = [
        (
            "mnistlab warm whole / re-creation (medians)",
            f"{warm_ratio:.3f}x",
            f"<= {TARGET_WARM_WHOLE_RATIO}x",
            warm_ratio <= TARGET_WARM_WHOLE_RATIO,
        ),
        (
            "mnistlab cold whole / re-creation (medians)",
            f"{cold_ratio:.3f}x",
            f"<= {TARGET_COLD_WHOLE_RATIO}x",
            cold_ratio <= TARGET_COLD_WHOLE_RATIO,
        ),
        (
            "mnistlab warm fit / fp32 GEMM floor (medians)",
            f"{fit_floor_ratio:.2f}x",
            f"<= {TARGET_FIT_FLOOR_RATIO}x",
            fit_floor_ratio <= TARGET_FIT_FLOOR_RATIO,
        ),
        (
            "mnistlab peak RSS (highest) / re-creation",
            f"{rss_ratio:.2f}x",
            f"<= {TARGET_RSS_RATIO}x",
            rss_ratio <= TARGET_RSS_RATIO,
        ),
        (
            "mnistlab test accuracy, lowest run",
            f"{min_acc:.4f}",
            f">= {TARGET_ACCURACY}",
            min_acc >= TARGET_ACCURACY,
        ),
    ]
    print()
    print(f"{'target':<48}{'measured':>10}{'goal':>10}  result")
    for name, measured, goal, ok in rows:
        print(f"{name:<48}{measured:>10}{goal:>10}  {'PASS' if ok else 'MISS'}")
    return all(ok for *_, ok in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="Folder holding mnist/ with the four IDX .gz files. "
        "Default: $MNISTLAB_DATA_DIR, else ../shared/data beside the repo.",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="Runs of each program, alternating (default 3)."
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the run folders and logs (printed at the end)."
    )
    parser.add_argument(
        "--peer-python",
        default=None,
        help="Python of a venv with Keras + JAX and no TensorFlow: runs the "
        "re-creation there on JAX. Left out: that peer is skipped.",
    )
    parser.add_argument(
        "--torch-python",
        default=None,
        help="Python of a venv with PyTorch and NumPy: runs bench/torch_mlp.py "
        "there, fp32 and bf16 autocast. Left out: those peers are skipped.",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="Also write every run and the machine's description here.",
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    data_dir = str(Path(args.data_dir).resolve())

    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.pop("KERAS_BACKEND", None)
    exe = find_mnistlab()

    work = Path(tempfile.mkdtemp(prefix="mnistlab-bench-"))
    warm_env = {**env, "XDG_CACHE_HOME": str(work / "warm-cache")}
    jax_env = {**env, "KERAS_BACKEND": "jax"}
    machine = machine_description()
    load_before = os.getloadavg()
    print(
        f"machine: {machine}  python: {platform.python_version()}  "
        f"load avg before: {' '.join(f'{x:.2f}' for x in load_before)}"
    )
    print(f"data: {data_dir}  repeats: {args.repeats} rounds, alternating  work: {work}")
    print(flush=True)

    contenders = {
        "recreation": lambda i: run_bench_script(
            "recreation",
            [
                sys.executable,
                str(RECREATION),
                "--data-dir",
                data_dir,
                "--out",
                str(work / f"recreation-{i}"),
            ],
            work,
            i,
            env,
        ),
        "mnistlab-cold": lambda i: run_mnistlab(
            exe,
            data_dir,
            work,
            "mnistlab-cold",
            i,
            {**env, "XDG_CACHE_HOME": str(work / f"cold-cache-{i}")},
        ),
        "mnistlab-warm": lambda i: run_mnistlab(exe, data_dir, work, "mnistlab-warm", i, warm_env),
    }
    if args.peer_python:
        contenders["keras-jax"] = lambda i: run_bench_script(
            "keras-jax",
            [
                args.peer_python,
                str(RECREATION),
                "--data-dir",
                data_dir,
                "--out",
                str(work / f"keras-jax-{i}"),
            ],
            work,
            i,
            jax_env,
        )
    if args.torch_python:
        # torch's default threads (both cores), but sleeping rather than spinning at OpenMP
        # barriers: spinning threads made each step ~30x slower while other jobs held the cores.
        torch_env = {**env, "OMP_WAIT_POLICY": "PASSIVE"}
        contenders["torch"] = lambda i: run_bench_script(
            "torch",
            [args.torch_python, str(TORCH_PEER), "--data-dir", data_dir],
            work,
            i,
            torch_env,
        )
        contenders["torch-bf16"] = lambda i: run_bench_script(
            "torch-bf16",
            [args.torch_python, str(TORCH_PEER), "--data-dir", data_dir, "--bf16"],
            work,
            i,
            torch_env,
        )
    contenders["numpy"] = lambda i: run_bench_script(
        "numpy",
        [sys.executable, str(NUMPY_PEER), "--data-dir", data_dir],
        work,
        i,
        # One BLAS thread: OpenBLAS's spinning threads collapse on a shared, loaded machine.
        {**env, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    contenders["floor"] = lambda i: run_bench_script(
        "floor", [sys.executable, str(GEMM_FLOOR)], work, i, env
    )

    results: dict[str, list[dict]] = {kind: [] for kind in contenders}
    try:
        run_mnistlab(exe, data_dir, work, "warm-up", 0, warm_env)  # fills the warm cache
        for i in range(1, args.repeats + 1):
            for kind, run in contenders.items():
                r = run(i)
                results[kind].append(r)
                acc = "-" if r["acc"] is None else f"{r['acc']:.4f}"
                print(
                    f"  {LABELS[kind]:<16} #{i}: whole {r['whole']:.2f}s  cpu {r['cpu']:.2f}s  "
                    f"fit {r['fit']:.2f}s  acc {acc}  rss {mib(r['rss_kib']):.0f} MiB",
                    flush=True,
                )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print_table(results)
    all_pass = print_targets(results)
    load_after = os.getloadavg()
    print()
    print(
        f"load avg after: {' '.join(f'{x:.2f}' for x in load_after)}  "
        f"(wall times depend on other load on this machine; cpu times less so)"
    )
    if args.json:
        # Date, commit and machine: bench/tables.py names all three under every table.
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True
        ).stdout.strip()
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "date": time.strftime("%Y-%m-%d", time.gmtime()),
                    "commit": commit,
                    "load_before": load_before,
                    "load_after": load_after,
                    "runs": results,
                },
                indent=2,
            )
            + "\n"
        )
    if args.keep:
        print(f"run folders and logs kept in {work}")
    print("all targets PASS" if all_pass else "some targets MISS")


def machine_description() -> str:
    """CPU model and core count, so every number is read with the machine it came from."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores ({platform.node()})"


if __name__ == "__main__":
    main()
