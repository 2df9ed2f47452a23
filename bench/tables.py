"""The performance tables, rendered from the results files under bench/results/.

Every table in docs/performance.md (and the models table in README.md) sits between
`<!-- table: NAME ... -->` and `<!-- table: end -->` and is written by this script from the JSON
the benchmarks leave in bench/results/; each row names its date, commit and machine. Never edit
a table by hand: rerun the benchmark, then this script.

    python bench/tables.py            # rewrite the tables in docs/performance.md and README.md
    python bench/tables.py --check    # exit 1 if any table differs from its results file
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAGES = [ROOT / "docs" / "performance.md", ROOT / "README.md"]
BLOCK = re.compile(r"(<!-- table: (\S+)[^\n]*-->\n)(.*?)(<!-- table: end -->)", re.S)
SEED_LABELS = {
    "recreation": "seed re-creation (Keras on TensorFlow)",
    "mnistlab-cold": "`mnistlab train`, first run (empty cache)",
    "mnistlab-warm": "`mnistlab train`, later runs",
    "keras-jax": "Keras on JAX, no TensorFlow installed",
    "torch": "PyTorch eager, fp32",
    "torch-bf16": "PyTorch eager, bf16 autocast",
    "numpy": "NumPy by hand (1 BLAS thread)",
    "floor": "fp32 GEMM floor (XLA)",
}


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _median(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _where(result: dict) -> str:
    return f"{result['date']}, `{result['commit']}`, {result['machine']}"


def seed_table(results: dict) -> str:
    """The seed model against its peers (bench_train.py --json): medians of alternating rounds."""
    runs = results["runs"]
    base_whole, base_cpu = _median(runs["recreation"], "whole"), _median(runs["recreation"], "cpu")
    floor = _median(runs["floor"], "fit")
    loads = (results["load_before"][0], results["load_after"][0])
    lines = [
        f"Measured {_where(results)}; {len(runs['recreation'])} alternating rounds, medians; load "
        f"average {min(loads):.1f}–{max(loads):.1f} while measuring (shared machine: wall times "
        "inflated, CPU seconds less so).",
        "",
        "| seed MLP, 10 epochs | whole (s) | CPU (s) | fit (s) | test acc | peak RSS (MiB) "
        "| whole / re-creation | CPU / re-creation | fit / GEMM floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, label in SEED_LABELS.items():
        if kind not in runs:
            continue
        whole, cpu, fit = (_median(runs[kind], key) for key in ("whole", "cpu", "fit"))
        accuracy, rss = _median(runs[kind], "acc"), _median(runs[kind], "rss_kib")
        fit_only = kind == "floor"
        lines.append(
            _row(
                [
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
            )
        )
    return "\n".join(lines)


def _model_rows() -> list[dict]:
    """models.json's rows, the seed model's filled in from train.json."""
    rows = load("models.json")["rows"]
    for row in rows:
        if row.get("source") == "train.json":
            train = load("train.json")
            warm = train["runs"]["mnistlab-warm"]
            row.update(
                accuracy=[_median(warm, "acc")],
                whole_s=[_median(warm, "whole")],
                date=train["date"],
                commit=train["commit"],
                machine=train["machine"],
            )
    return rows


def _span(values: list[float] | None, span: list[float] | None, digits: int) -> str:
    low, high = (min(values), max(values)) if values else span
    return f"{low:.{digits}f}" if low == high else f"{low:.{digits}f}–{high:.{digits}f}"


def _accuracy(row: dict) -> str:
    return _span(row.get("accuracy"), row.get("accuracy_range"), 4)


def _seconds(row: dict) -> str:
    values = row.get("whole_s") or row.get("whole_s_range")
    return _span(row.get("whole_s"), row.get("whole_s_range"), 2 if max(values) < 1 else 1)


def models_table() -> str:
    lines = [
        "| model | recipe | seeds | test accuracy | whole process (s) | date | commit | machine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in _model_rows():
        seeds = row["seeds"]
        contiguous = len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1))
        seeds = f"{seeds[0]}–{seeds[-1]}" if contiguous else ", ".join(str(seed) for seed in seeds)
        lines.append(
            _row(
                [
                    f"`{row['model']}`"
                    if row["model"][0].islower() and " " not in row["model"]
                    else row["model"],
                    row["recipe"],
                    seeds,
                    _accuracy(row),
                    _seconds(row),
                    row["date"],
                    f"`{row['commit']}`",
                    row["machine"],
                ]
            )
        )
    return "\n".join(lines)


def readme_models_table() -> str:
    """One accuracy and one time per model (its defaults), all on one machine."""
    rows = [row for row in _model_rows() if row["default"]]
    machines = {row["machine"] for row in rows}
    assert len(machines) == 1, f"the README's models table mixes machines: {machines}"
    lines = [
        f"Test accuracy (the seeds measured) and whole-process time, defaults, on {rows[-1]['machine']}:",
        "",
        "| model | test accuracy | time (s) | measured |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            _row(
                [
                    f"`{row['model']}`",
                    _accuracy(row),
                    _seconds(row),
                    f"{row['date']}, `{row['commit']}`",
                ]
            )
        )
    return "\n".join(lines)


def serve_table() -> str:
    """bench_serve.py --save: the canvas against in-process, the soak and overload, and the
    targets each was held to."""
    result = load("serve.json")

    def answers(statuses: dict) -> str:
        return ", ".join(f"{status}: {count:,}" for status, count in statuses.items())

    lines = [
        f"Photo: {result['photo']}. {result['load_generator']}",
        "",
        "| part | server | input | clients | requests | answers | p50 (ms) | p99 (ms) | note "
        "| date | commit | machine |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lines.append(
            _row(
                [
                    row["what"],
                    row["server"],
                    row["input"],
                    row["clients"],
                    f"{row['requests']:,}",
                    answers(row["statuses"]),
                    f"{row['p50_ms']:g}",
                    f"{row['p99_ms']:g}",
                    row.get("note", ""),
                    row["date"],
                    f"`{row['commit']}`",
                    row["machine"],
                ]
            )
        )
    lines.append("")
    for target in result["targets"]:
        lines.append(f"- {'PASS' if target['passed'] else 'MISS'} {target['target']}")
    return "\n".join(lines)


def workflows_table() -> str:
    lines = [
        "| what | result | whole process (s) | command | date | commit | machine |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
    ]
    for row in load("workflows.json")["rows"]:
        lines.append(
            _row(
                [
                    row["what"],
                    row["result"],
                    _seconds(row),
                    f"`{row['command']}`",
                    row["date"],
                    f"`{row['commit']}`",
                    row["machine"],
                ]
            )
        )
    return "\n".join(lines)


def notdigit_table() -> str:
    """bench_notdigit.py: non-digits refused and digit points lost around the shipped threshold."""
    result = load("notdigit/results.json")
    shipped = result["shipped_threshold"]
    kinds = [name.split(" ", 1)[1] for name in result["curve"][0] if name.startswith("refused ")]
    lines = [
        "| threshold | "
        + " | ".join(f"{kind} refused" for kind in kinds)
        + " | worst digit kind: points lost | date | commit | machine |",
        "| ---: | " + " | ".join("---:" for _ in kinds) + " | --- | --- | --- | --- |",
    ]
    for row in result["curve"]:
        near_shipped = abs(row["threshold"] - shipped) < 0.005 and row["threshold"] != shipped
        if not 0.5 <= row["threshold"] <= 0.9 or near_shipped:
            continue
        lost = {
            name.split(" ", 1)[1]: value for name, value in row.items() if name.startswith("lost ")
        }
        worst = max(lost, key=lost.get)
        mark = " (shipped)" if row["threshold"] == shipped else ""
        lines.append(
            _row(
                [f"{row['threshold']:.3f}{mark}"]
                + [f"{row['refused ' + kind]:.0%}" for kind in kinds]
                + [
                    f"{lost[worst]:.2f} ({worst})",
                    result["date"],
                    f"`{result['commit']}`",
                    result["machine"],
                ]
            )
        )
    return "\n".join(lines)


def _published(rows: list[dict]) -> int:
    """How many published errors the rows were scored against: one list for a whole table."""
    counts = {row["published"] for row in rows}
    assert len(counts) == 1, f"audit.json's rows use different published lists: {counts}"
    return counts.pop()


def audit_table() -> str:
    """bench_audit.py: the audit against the default train, and the published errors it finds."""
    rows = load("audit.json")["runs"]
    published = _published(rows)
    lines = [
        f"| `mnistlab audit` | wall | vs default `train` | test flagged | of the {published} flagged "
        f"| of the {published} in test top 100 | date | commit | machine |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for row in rows:
        shifts = ", shifts" if row["test_time_shifts"] else ""
        low, high = row["load_average"]
        load_average = f"{low:g}" if low == high else f"{low:g}–{high:g}"
        what = f"{row['model']}, {row['epochs']} epochs per fold{shifts}: {row['what']} (load {load_average})"
        ratio = (
            ""
            if row["wall_vs_train"] is None
            else f"{row['wall_vs_train']:g}x wall, {row['cpu_vs_train']:g}x CPU"
        )
        flagged = "" if row["published_flagged"] is None else row["published_flagged"]
        lines.append(
            _row(
                [
                    what,
                    f"{row['audit_wall_s']:g} s",
                    ratio,
                    row["test_flagged"],
                    flagged,
                    row["published_in_test_top_100"],
                    row["date"],
                    f"`{row['commit']}`",
                    row["machine"],
                ]
            )
        )
    return "\n".join(lines)


def audit_rankings_table() -> str:
    """audit_rankings.py: each label-quality ranking, plain probabilities / with shifts."""
    rows = load("audit.json")["rankings"]
    published = _published(rows)
    lines = [
        f"| `bench/audit_rankings.py` (plain / shifts) | ranking | of the {published} in test top 100 "
        "| planted flips in train top 600 | date | commit | machine |",
        "| --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    for row in rows:
        found, flips = row["published_in_test_top_100"], row["flips_in_train_top_600"]
        lines.append(
            _row(
                [
                    f"{row['model']}, {row['epochs']} epochs per fold",
                    row["method"].replace("_", " "),
                    f"{found['plain']} / {found['shifts']}",
                    f"{flips['plain']:.3f} / {flips['shifts']:.3f}",
                    row["date"],
                    f"`{row['commit']}`",
                    row["machine"],
                ]
            )
        )
    return "\n".join(lines)


READ_TARGETS = {"separated": 0.98, "touching": 0.95, "overlapping": 0.90}
READ_SPEED_TARGET = 3.0


def read_table() -> str:
    """bench_read.py --save: string and digit accuracy per layout and kind, and the time to
    read a 6-digit string against one digit's predict."""
    result = load("read.json")
    where = _where(result)
    lines = [
        f"`{result['accuracy_command']}`: {result['accuracy'][0]['strings']} strings of 3-8 test"
        f" digits per row ({result['split']} split), 95% Wilson intervals; times:"
        f" `{result['timing_command']}`, load average {result['load'][0]:.1f}; measured {where}.",
        "",
        "| layout | kind | string accuracy | 95% interval | digit accuracy | 95% interval "
        "| rejected | misreads flagged | right, flagged | target (strings) |",
        "| --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for row in result["accuracy"]:
        target = READ_TARGETS[row["layout"].removesuffix("-leaning")]
        low, high = row["string_interval"]
        dlow, dhigh = row["digit_interval"]
        lines.append(
            _row(
                [
                    row["layout"],
                    row["kind"],
                    f"{row['string_accuracy']:.3f}",
                    f"{low:.3f}–{high:.3f}",
                    f"{row['digit_accuracy']:.4f}",
                    f"{dlow:.4f}–{dhigh:.4f}",
                    row["rejected"],
                    f"{row['misreads_flagged']} of {row['misreads']}",
                    row["right_flagged"],
                    f"{'PASS' if row['string_accuracy'] >= target else 'MISS'} {target:.2f}",
                ]
            )
        )
    lines += [
        "",
        "| kind | read a 6-digit string (ms, median) | predict one digit (ms, median) | ratio "
        "| target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in result["timing"]:
        ratio = row["read_ms"] / row["predict_ms"]
        passed = "PASS" if ratio <= READ_SPEED_TARGET else "MISS"
        lines.append(
            _row(
                [
                    row["kind"],
                    f"{row['read_ms']:.1f}",
                    f"{row['predict_ms']:.1f}",
                    f"{ratio:.1f}x",
                    f"{passed} {READ_SPEED_TARGET:g}x",
                ]
            )
        )
    return "\n".join(lines)


TABLES = {
    "audit": audit_table,
    "audit-rankings": audit_rankings_table,
    "notdigit": notdigit_table,
    "seed": lambda: seed_table(load("train.json")),
    "models": models_table,
    "models-readme": readme_models_table,
    "read": read_table,
    "serve": serve_table,
    "workflows": workflows_table,
}


def render(page: str) -> str:
    def block(match: re.Match) -> str:
        return f"{match.group(1)}{TABLES[match.group(2)]()}\n{match.group(4)}"

    return BLOCK.sub(block, page)


def main(argv: list[str]) -> int:
    stale = [
        page for page in PAGES if page.exists() and render(page.read_text()) != page.read_text()
    ]
    if "--check" in argv:
        for page in stale:
            print(
                f"{page}: a table differs from bench/results; run python bench/tables.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for page in stale:
        page.write_text(render(page.read_text()))
        print(f"rewrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
