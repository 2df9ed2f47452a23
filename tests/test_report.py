"""The HTML report and the run comparison, checked with a real HTML parser."""

import base64
import io
import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from mnistlab import figures, fileio, pipeline, report, run_tables, runs
from mnistlab.config import Config
from mnistlab.data import Dataset
from mnistlab.evaluate import evaluate_probabilities


class ReportParser(HTMLParser):
    """Collects section ids, image sources, every attribute value and the tagged numbers."""

    def __init__(self):
        super().__init__()
        self.sections, self.images, self.attribute_values = [], [], []
        self.numbers = []  # (data-metric, data-value, shown text)
        self._open_number = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attribute_values += [v for v in attrs.values() if v]
        if tag == "section" and "id" in attrs:
            self.sections.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "span" and "data-metric" in attrs:
            self._open_number = [attrs["data-metric"], attrs["data-value"], ""]

    def handle_data(self, data):
        if self._open_number is not None:
            self._open_number[2] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open_number is not None:
            self.numbers.append(tuple(self._open_number))
            self._open_number = None


def make_run(tmp_path, digit_images):
    """A complete run directory from synthetic data, without training anything."""
    images, labels = digit_images
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10) * 0.3, size=len(labels))
    probabilities[:12, labels[:12]] += 2  # mostly right, with some confident mistakes
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    dataset = Dataset(
        "mnist", images, labels, images, labels, sha256={"t10k-images-idx3-ubyte": "ab" * 32}
    )
    evaluation = evaluate_probabilities(probabilities, labels, top_errors=5)
    history = {
        "loss": [0.9, 0.4],
        "accuracy": [0.7, 0.9],
        "val_loss": [0.8, 0.5],
        "val_accuracy": [0.75, 0.85],
    }
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    fileio.write_json(run_dir / "config.json", Config(epochs=2).to_dict())
    fileio.write_json(run_dir / "history.json", history)
    metrics = {
        "model": "seed-mlp",
        "dataset": "mnist",
        "parameters": 118282,
        "test": json.loads(json.dumps(evaluation.to_dict())),
        "final_epoch": {k: v[-1] for k, v in history.items()},
        "sample_prediction": {
            "index": 0,
            "true_label": int(labels[0]),
            "predicted_label": int(probabilities[0].argmax()),
            "confidence": float(probabilities[0].max()),
        },
        "timings": {
            "data_load_seconds": 0.5,
            "fit_seconds": 3.25,
            "evaluate_seconds": 0.1,
            "total_seconds": 4.0,
        },
        "versions": {"python": "3.11", "keras": "3"},
        "data": {"sha256": dataset.sha256},
    }
    fileio.write_json(run_dir / "metrics.json", metrics)
    for name, png in figures.render_figures(dataset, history, evaluation, probabilities).items():
        fileio.write_png(run_dir / runs.FIGURE_FILES[name], png)
    return run_dir, metrics


def lookup(metrics, key):
    """'test.per_class.3.recall'-style paths into metrics.json; a few report keys live in test."""
    value = {"history": None, **metrics}
    parts = key.split(".")
    if parts[0] in ("per_class", "top_errors", "calibration_bins", "most_confused"):
        parts = ["test", *parts]
    for part in parts:
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_report_is_complete_self_contained_and_true_to_metrics(tmp_path, digit_images):
    run_dir, metrics = make_run(tmp_path, digit_images)
    html = pipeline.write_report(run_dir).read_text()
    parser = ReportParser()
    parser.feed(html)

    assert parser.sections == [section_id for section_id, _ in report.SECTIONS]
    assert len(parser.images) == len(runs.FIGURE_FILES)
    for source in parser.images:
        assert source.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).verify()
    assert "http://" not in html and "https://" not in html
    assert not [v for v in parser.attribute_values if v.startswith(("//", "http"))]

    checked = set()
    for key, exact, shown in parser.numbers:
        if key.startswith(("history.", "most_confused.")):
            continue
        expected = lookup(metrics, key)
        assert float(exact) == pytest.approx(expected, rel=0, abs=0), key
        if isinstance(expected, float):
            digits = 2 if key.startswith("timings.") else 4
            assert shown == f"{expected:.{digits}f}", key
        checked.add(key.split(".")[0])
    assert {
        "test",
        "per_class",
        "top_errors",
        "timings",
        "calibration_bins",
        "sample_prediction",
    } <= checked
    shown = {key: text for key, _, text in parser.numbers}
    assert shown["test.accuracy"] == f"{metrics['test']['accuracy']:.4f}"
    assert (
        shown["test.expected_calibration_error"]
        == f"{metrics['test']['expected_calibration_error']:.4f}"
    )
    # Every confident mistake is listed with its top-3 probabilities.
    for error in metrics["test"]["top_errors"]:
        assert ", ".join(f"{label}: {p:.4f}" for label, p in error["top3"]) in html


def test_report_escapes_text(tmp_path, digit_images):
    run_dir, metrics = make_run(tmp_path, digit_images)
    metrics["versions"]["keras"] = "<script>alert(1)</script>"
    fileio.write_json(run_dir / "metrics.json", metrics)
    html = pipeline.write_report(run_dir).read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_report_without_figures_says_how_to_fix(tmp_path, digit_images):
    run_dir, _ = make_run(tmp_path, digit_images)
    (run_dir / "reliability.png").unlink()
    with pytest.raises(Exception, match="mnistlab evaluate"):
        pipeline.write_report(run_dir)
    assert not (run_dir / "report.html").exists()


def test_comparison_shows_only_differing_config(tmp_path, digit_images):
    first, _ = make_run(tmp_path / "a", digit_images)
    second, metrics = make_run(tmp_path / "b", digit_images)
    fileio.write_json(second / "config.json", Config(epochs=2, seed=5, batch_size=64).to_dict())
    headers, rows = pipeline.compare_runs([first, second])
    assert headers == [
        "run",
        "model",
        "batch_size",
        "seed",
        "test accuracy",
        "test loss",
        "fit (s)",
    ]
    assert rows[1][2:4] == [64, 5]
    assert rows[1][4] == metrics["test"]["accuracy"] and rows[1][6] == 3.25
    page = run_tables.render_comparison(headers, rows)
    parser = ReportParser()
    parser.feed(page)
    assert "https://" not in page and str(second) in page


def test_cli_report_and_compare(tmp_path, digit_images, capsys):
    from tests.helpers import run_cli

    run_dir, metrics = make_run(tmp_path, digit_images)
    code, out, _ = run_cli(capsys, "report", run_dir)
    assert code == 0 and "report.html" in out
    copy = shutil.copytree(run_dir, tmp_path / "copy")  # compare refuses one run given twice
    code, out, _ = run_cli(capsys, "compare", run_dir, copy, "--html", tmp_path / "cmp.html")
    assert code == 0 and f"{metrics['test']['accuracy']:.4f}" in out
    assert (tmp_path / "cmp.html").read_text().startswith("<!DOCTYPE html>")
    code, _, err = run_cli(capsys, "report", tmp_path / "missing")
    assert code == 1 and err.startswith("error: ")


def test_report_shows_when_and_leaves_out_what_does_not_apply(tmp_path, digit_images):
    run_dir, metrics = make_run(tmp_path, digit_images)
    metrics["trained_at"] = "2026-11-23T15:12:00+00:00"
    fileio.write_json(run_dir / "metrics.json", metrics)
    html = pipeline.write_report(run_dir).read_text()
    assert 'Trained <time datetime="2026-11-23T15:12:00+00:00">2026-11-23 15:12 UTC</time>' in html
    # Unset options read as a dash; the audit-only folds is no setting of a training run.
    assert "None" not in html
    assert "<td>test_limit</td><td>—</td>" in html
    assert "<td>folds</td>" not in html


def test_report_shows_empty_calibration_bins_as_dashes(tmp_path, digit_images):
    run_dir, metrics = make_run(tmp_path, digit_images)
    bins = metrics["test"]["calibration_bins"]
    empty = [index for index, b in enumerate(bins) if b["count"] == 0]
    assert empty  # twenty examples leave some of the ten bins empty
    html = pipeline.write_report(run_dir).read_text()
    rows = html.split('class="calibration"')[1].split("<tr>")[2:]
    for index in empty:
        assert "<td>—</td><td>—</td>" in rows[index] and "0.0000" not in rows[index]


def test_report_keeps_training_timings_beside_a_later_evaluations(tmp_path, digit_images):
    run_dir, metrics = make_run(tmp_path, digit_images)
    metrics["timings"]["evaluation"] = {"data_load_seconds": 0.25, "total_seconds": 0.91}
    fileio.write_json(run_dir / "metrics.json", metrics)
    parser = ReportParser()
    parser.feed(pipeline.write_report(run_dir).read_text())
    shown = {key: text for key, _, text in parser.numbers}
    assert shown["timings.total_seconds"] == "4.00" and shown["timings.fit_seconds"] == "3.25"
    assert shown["timings.evaluation.total_seconds"] == "0.91"


def test_comparison_leaves_out_audit_only_fields_and_names_each_column_once(tmp_path, digit_images):
    first, _ = make_run(tmp_path / "a", digit_images)
    second, _ = make_run(tmp_path / "b", digit_images)
    fileio.write_json(second / "config.json", Config(model="cnn", epochs=2, folds=3).to_dict())
    headers, rows = pipeline.compare_runs([first, second])
    assert headers == ["run", "model", "test accuracy", "test loss", "fit (s)"]


def test_cli_compare_shows_every_header_and_cell_whole(tmp_path, digit_images, capsys):
    from tests.helpers import run_cli

    long = tmp_path / ("a-run-directory-with-a-rather-long-name-" * 2 + "seed-mlp")
    first, _ = make_run(long, digit_images)
    second, _ = make_run(tmp_path / "b", digit_images)
    source = "/home/someone/projects/digits/runs/20261120-101010-cnn-fine-tuned-on-drawings"
    changed = Config(epochs=2, learning_rate=3e-05, warmup_epochs=0.5, init_from=source, folds=3)
    fileio.write_json(second / "config.json", changed.to_dict())
    code, out, _ = run_cli(capsys, "compare", first, second)
    assert code == 0 and "…" not in out
    assert f"run 1: {first}" in out.splitlines() and f"run 2: {second}" in out.splitlines()
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert {"learning_rate", "warmup_epochs", "init_from", "model"} <= set(rows)
    assert "3e-05" in rows["learning_rate"] and "folds" not in out
    # The init_from path may wrap within its column, but every character is there.
    cells = "".join(line.split("│")[-2].strip() for line in out.splitlines() if "│" in line)
    assert source in cells
