"""The README's speed table, rendered from a results file written by bench_train.py --json.

tests/test_docs.py checks that the README holds exactly this rendering of
bench/results/train.json, so the table cannot drift from a measurement or lose its machine.

    python bench/speed_table.py bench/results/train.json    # prints the Markdown
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train.json"
LABELS = {
    "recreation": "seed re-creation (Keras on TensorFlow)",
    "mnistlab-cold": "`mnistlab train`, first run (empty cache)",
    "mnistlab-warm": "`mnistlab train`, later runs",
    "keras-jax": "Keras on JAX, no TensorFlow installed",
    "torch": "PyTorch eager, fp32",
    "torch-bf16": "PyTorch eager, bf16 autocast",
    "numpy": "NumPy by hand (1 BLAS thread)",
    "floor": "fp32 GEMM floor (XLA)",
}


def _median(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def render(results: dict) -> str:
    """Markdown: one line naming the machine and conditions, then a table of medians."""
    runs = results["runs"]
    base_whole = _median(runs["recreation"], "whole")
    base_cpu = _median(runs["recreation"], "cpu")
    floor = _median(runs["floor"], "fit")
    rounds = len(runs["recreation"])
    one_minute_loads = (results["load_before"][0], results["load_after"][0])
    load = f"{min(one_minute_loads):.1f}–{max(one_minute_loads):.1f}"
    lines = [
        f"Measured on {results['machine']}, {rounds} alternating rounds, medians; load average "
        f"{load} while measuring (shared machine: wall times inflated, CPU seconds less so).",
        "",
        "| seed MLP, 10 epochs | whole (s) | CPU (s) | fit (s) | test acc | peak RSS (MiB) "
        "| whole / re-creation | CPU / re-creation | fit / GEMM floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, label in LABELS.items():
        if kind not in runs:
            continue
        whole, cpu, fit = (_median(runs[kind], key) for key in ("whole", "cpu", "fit"))
        accuracy, rss = _median(runs[kind], "acc"), _median(runs[kind], "rss_kib")
        fit_only = kind == "floor"
        cells = [
            label,
            "" if fit_only else f"{whole:.1f}",
            "" if fit_only else f"{cpu:.1f}",
            f"{fit:.2f}",
            "" if accuracy is None else f"{accuracy:.4f}",
            "" if fit_only else f"{rss / 1024:.0f}",
            "" if fit_only else f"{whole / base_whole:.2f}x",
            "" if fit_only else f"{cpu / base_cpu:.2f}x",
            f"{fit / floor:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(render(json.loads(path.read_text())))
