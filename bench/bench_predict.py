"""How fast and how well `mnistlab predict` reads people's images.

Prints, for a run (default: the model shipped with mnistlab):

1. Cold start: whole-process seconds of `mnistlab predict RUN one.png` (a canvas drawing),
   several times, with ONNX Runtime (the run's model.onnx) and, as the baseline measured in the
   same run, with Keras (a copy of the run without model.onnx). Target: ONNX median <= 0.5 s.
   Also `mnistlab --help` (target: median <= 0.3 s). ``--python`` runs these in another
   interpreter (a core-only venv: then ``--cold-only``, it has no Keras); ``--against REV``
   times the same commands with git revision REV's source, alternating with this checkout's.
2. Throughput in images/s: end to end on a folder (decode + normalise + classify) and
   model-only on the 10,000 MNIST test digits.
3. Accuracy on MNIST test digits rendered as phone photos, mouse and canvas drawings and scans (see
   make_user_digits.py) against the same model's accuracy on those very digits as MNIST gives
   them, and on digits typed in system fonts. Target: within 1.5 points of MNIST accuracy.

    .venv/bin/python bench/bench_predict.py --data-dir /work/shared/data [--model RUN] [--count 300]
    .venv/bin/python bench/bench_predict.py --data-dir DIR --cold-only --repeats 7 \
        --python CORE_VENV/bin/python --against REV
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mnistlab.data import load_dataset
from mnistlab.predict import Predictor, predict_files, pretrained_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("make_user_digits", HERE / "make_user_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cold_seconds(arguments: list[str], repeats: int, python: str = sys.executable) -> list[float]:
    """Whole-process seconds of ``mnistlab ARGUMENTS``, each run a fresh process (after one
    untimed run, which compiles the bytecode and fills the disk cache)."""
    cold_run(arguments, python, ROOT / "src")
    return [cold_run(arguments, python, ROOT / "src")[0] for _ in range(repeats)]


def cold_run(arguments: list[str], python: str, source: Path) -> tuple[float, str]:
    """One fresh ``mnistlab ARGUMENTS`` with mnistlab imported from ``source`` (a ``src``
    folder, whatever the interpreter has installed): whole-process seconds and its output."""
    command = [python, "-c", "from mnistlab.cli import main; main()", *arguments]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(source)}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"mnistlab {arguments[0]} failed: {result.stderr.strip()}")
    return seconds, result.stdout


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The ``src`` folder of git ``revision``, in a temporary worktree removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="mnistlab-bench-predict-rev-") as folder:
        tree = Path(folder) / "tree"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", "--quiet", str(tree), revision], check=True)
        try:
            yield tree / "src"
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=True)


def against(revision: str, arguments: list[str], repeats: int, python: str) -> None:
    """Cold starts of this checkout and of ``revision``, alternating; their answers must agree."""
    with checkout(revision) as baseline:
        times: dict[str, list[float]] = {"this checkout": [], revision: []}
        outputs: dict[str, set[str]] = {"this checkout": set(), revision: set()}
        for source in (ROOT / "src", baseline):  # Untimed: bytecode and disk cache.
            cold_run(arguments, python, source)
        for _ in range(repeats):
            for name, source in (("this checkout", ROOT / "src"), (revision, baseline)):
                seconds, output = cold_run(arguments, python, source)
                times[name].append(seconds)
                outputs[name].add(output)
    here, there = (statistics.median(values) for values in times.values())
    print(
        f"  mnistlab {arguments[0]}: this checkout median {here:.3f}  min"
        f" {min(times['this checkout']):.3f};  {revision} median {there:.3f}  min"
        f" {min(times[revision]):.3f};  ratio {here / there:.2f}x"
        + ("" if outputs["this checkout"] == outputs[revision] else "  OUTPUTS DIFFER")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument(
        "--model", type=Path, default=None, help="Run directory (default: shipped)."
    )
    parser.add_argument("--count", type=int, default=300, help="Images of each kind (default 300).")
    parser.add_argument("--repeats", type=int, default=5, help="Cold-start runs each (default 5).")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="Interpreter for the cold starts (default: this one).",
    )
    parser.add_argument(
        "--cold-only",
        action="store_true",
        help="Only the cold starts of the ONNX model and --help.",
    )
    parser.add_argument(
        "--against", metavar="REV", help="Also time the cold starts with git revision REV's source."
    )
    args = parser.parse_args()
    run_dir = args.model or pretrained_dir()
    dataset = load_dataset("mnist", args.data_dir)
    print(
        f"model: {run_dir}  cpus: {os.cpu_count()}  load avg: {os.getloadavg()[0]:.2f}"
        f"  cold starts in: {args.python}"
    )

    with tempfile.TemporaryDirectory(prefix="mnistlab-bench-predict-") as work:
        work = Path(work)
        rows = load_generator().generate(
            dataset.test_images,
            dataset.test_labels,
            work / "images",
            args.count,
            0,
            ["photo", "mouse", "scan", "font", "drawing"],
        )
        # A canvas drawing, as the page and most people's drawings are: a PNG.
        one_image = work / "images" / next(r["path"] for r in rows if r["kind"] == "mouse")

        # 1. Cold start, ONNX Runtime against Keras on the same model.
        predict = ["predict", "--model", str(run_dir), str(one_image)]
        onnx_times = cold_seconds(predict, args.repeats, args.python)
        help_times = cold_seconds(["--help"], args.repeats, args.python)
        onnx_median = statistics.median(onnx_times)
        print(f"\ncold start, one PNG (whole process, seconds), {args.repeats} runs")
        print(
            f"  onnxruntime  median {onnx_median:.3f}  min {min(onnx_times):.3f}"
            f"   target <= 0.5 s: {'PASS' if onnx_median <= 0.5 else 'MISS'}"
        )
        if not args.cold_only:
            keras_copy = work / "keras-only"
            shutil.copytree(run_dir, keras_copy, ignore=shutil.ignore_patterns("model.onnx"))
            keras_predict = ["predict", "--model", str(keras_copy), str(one_image)]
            keras_median = statistics.median(cold_seconds(keras_predict, args.repeats, args.python))
            print(
                f"  keras        median {keras_median:.3f}  (baseline)"
                f"   ratio onnx/keras {onnx_median / keras_median:.2f}x"
            )
        help_median = statistics.median(help_times)
        print(
            f"  mnistlab --help median {help_median:.3f}  min {min(help_times):.3f}   target <= 0.3 s: "
            f"{'PASS' if help_median <= 0.3 else 'MISS'}"
        )
        if args.against:
            print(f"against {args.against}, alternating, {args.repeats} runs each")
            against(args.against, predict, args.repeats, args.python)
            against(args.against, ["--help"], args.repeats, args.python)
        if args.cold_only:
            return 0

        # 2. Throughput.
        predictor = Predictor.from_run(run_dir)
        started = time.perf_counter()
        results = list(predict_files([work / "images"], predictor))
        end_to_end = len(results) / (time.perf_counter() - started)
        predictor.probabilities(dataset.test_images[:256])  # warm up
        started = time.perf_counter()
        probabilities = predictor.probabilities(dataset.test_images)
        model_only = len(dataset.test_images) / (time.perf_counter() - started)
        print("\nthroughput (images/s)")
        print(
            f"  end to end (decode, normalise, classify), {len(results)} files: {end_to_end:,.0f}"
        )
        print(f"  model only, 10,000 MNIST test digits ({predictor.engine}): {model_only:,.0f}")

        # 3. Accuracy by kind, against the same digits straight from MNIST.
        mnist_correct = probabilities.argmax(axis=1) == dataset.test_labels
        by_file = {Path(r.file).relative_to(work / "images").as_posix(): r for r in results}
        with open(work / "images" / "labels.csv") as file:
            labelled = list(csv.DictReader(file))
        print("\naccuracy on people-style images")
        print(
            f"  {'kind':8} {'images':>6} {'accuracy':>9} {'MNIST, same digits':>19} {'gap (points)':>13} {'rejected':>9}"
        )
        for kind in ("photo", "mouse", "drawing", "scan", "font"):
            mine = [row for row in labelled if row["kind"] == kind]
            predictions = [by_file[row["path"]] for row in mine]
            correct = [p.label == int(row["label"]) for p, row in zip(predictions, mine)]
            rejected = sum(p.rejected is not None for p in predictions)
            accuracy = float(np.mean(correct))
            if kind == "font":
                print(
                    f"  {kind:8} {len(mine):6d} {accuracy:9.4f} {'n/a':>19} {'n/a':>13} {rejected:9d}"
                )
                continue
            indices = [int(row["source"].rsplit("-", 1)[1]) for row in mine]
            reference = float(mnist_correct[indices].mean())
            gap = 100 * (reference - accuracy)
            verdict = "PASS" if gap <= 1.5 else "MISS"
            print(
                f"  {kind:8} {len(mine):6d} {accuracy:9.4f} {reference:19.4f} {gap:13.2f} {rejected:9d}  {verdict}"
            )
        print(f"  MNIST test accuracy, all 10,000: {mnist_correct.mean():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
