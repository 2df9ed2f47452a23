"""What the commands print: the consoles, one-line notes and errors, and the Rich summaries."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

console = Console()
error_console = Console(stderr=True)


def notice(message: str) -> None:
    """A progress note on stderr, never wrapped (paths stay whole) and never read as markup."""
    error_console.print(message, style="dim", markup=False, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """One line on stderr, however long: a user error is never a wall of text."""
    line = " ".join(message.split())
    error_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)


def print_line(text: object) -> None:
    """One line on stdout, printed as is: paths and JSON are never wrapped or coloured."""
    console.print(str(text), markup=False, highlight=False, soft_wrap=True)


def _cell(value, float_format: str) -> str:
    if value is None:
        return ""
    return format(value, float_format) if isinstance(value, float) else str(value)


def run_summary(run_dir: Path, metrics: dict) -> None:
    test = metrics["test"]
    timings = metrics["timings"]
    table = Table(title=f"{metrics['model']} on {metrics['dataset']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("test accuracy", f"{test['accuracy']:.4f}")
    table.add_row("test loss", f"{test['loss']:.4f}")
    table.add_row("parameters", f"{metrics['parameters']:,}")
    names = ("data_load_seconds", "fit_seconds", "evaluate_seconds", "total_seconds")
    # After `mnistlab evaluate`, the training's timings, then this evaluation's own.
    for prefix, values in (("", timings), ("this evaluation: ", timings.get("evaluation", {}))):
        for name in names:
            if values.get(name) is not None:
                label = prefix + name.replace("_seconds", " (s)").replace("_", " ")
                table.add_row(label, f"{values[name]:.2f}")
    if metrics.get("trained_at"):
        table.add_row("trained at", metrics["trained_at"])
    table.add_row("run directory", str(run_dir))
    console.print(table)
    print_line(f"report: {Path(run_dir) / 'report.html'}")


def ensemble_members(members: list[dict]) -> None:
    for member in members:
        print_line(f"member {member['run_dir']}: test accuracy {member['test_accuracy']:.4f}")


def audit_summary(audit_dir: Path, summary: dict, report: Path, candidates: Path) -> None:
    """The audit's counts; then the review queue (``candidates``) and how many of the published
    label errors it holds, where a published list is known; then where the files are."""
    title = f"audit of {summary['dataset']} ({summary['model']}, {summary['folds']} folds)"
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    issues, duplicates = summary["label_issues"], summary["duplicates"]
    outliers, accuracy = summary["outliers"], summary["test_accuracy"]
    table.add_row(
        "likely label errors",
        f"{issues['total']:,} (train {issues['train']:,}, test {issues['test']:,})",
    )
    table.add_row(
        "duplicate pairs", f"{duplicates['pairs']:,} ({duplicates['exact_pairs']:,} exact)"
    )
    twins = duplicates["test_images_with_train_twin"]
    table.add_row("test images with a train twin", f"{twins:,}")
    table.add_row(
        "outliers",
        f"{outliers['total']:,} (train {outliers['train']:,}, test {outliers['test']:,})",
    )
    table.add_row(
        "test accuracy",
        f"{accuracy['all']:.4f} all, {accuracy['without_flagged']:.4f} without flagged",
    )
    queue = summary.get("review_queue")
    if queue:
        table.add_row(
            "review queue",
            f"{candidates.name}: each split's {queue['per_split']:,} lowest label qualities",
        )
    published = summary.get("published_label_errors")
    if published and published["published"]:
        table.add_row(
            "published label errors found",
            f"{published['top_50']} in top 50, {published['top_100']} in top 100,"
            f" {published['flagged']} flagged (of {published['published']})",
        )
        if "in_queue" in published:  # summaries written before the queue lack it
            table.add_row(
                "published errors in the queue",
                f"{len(published['in_queue'])} of {published['published']} in"
                f" {candidates.name}'s test rows",
            )
    elif published:
        table.add_row("published label errors found", "none among the audited test images")
    table.add_row("total (s)", f"{summary['timings']['total_seconds']:.1f}")
    table.add_row("audit directory", str(audit_dir))
    console.print(table)
    print_line(f"review queue: {candidates}")
    print_line(f"report: {report}")


def comparison(headers: list[str], rows: list[list]) -> None:
    """The runs, numbered, each path on a line of its own; then one row per field and one
    column per run, so no header or cell is cut however many fields differ."""
    for number, row in enumerate(rows, start=1):
        print_line(f"run {number}: {row[0]}")
    table = Table(title="runs")
    table.add_column("", style="bold", overflow="fold")
    for number in range(1, len(rows) + 1):
        table.add_column(f"run {number}", justify="right", overflow="fold")
    # Config values as given (a rate of 3e-05 must not read 0.0000); scores to 4 places.
    formats = {"test accuracy": ".4f", "test loss": ".4f", "fit (s)": ".1f"}
    for index, header in enumerate(headers[1:], start=1):
        shown = formats.get(header, "g")
        cells = ("—" if row[index] is None else _cell(row[index], shown) for row in rows)
        table.add_row(header, *cells)
    console.print(table)


def sweep_summary(result, headers: list[str], rows: list[list], best_config: Path, page: Path):
    """The ranked trials of a finished (or interrupted) sweep, then where its results are."""
    table = Table(title=f"sweep: {len(rows)} trials, best validation accuracy first")
    # Run directories are long: sweep.html and results.json have them.
    for header in headers[:-1]:
        left = header in ("trial", "status", "node")
        table.add_column(header, justify="left" if left else "right")
    for row in rows:
        table.add_row(*(_cell(value, ".4g") for value in row[:-1]))
    # In a log (not a terminal), a wide table beats squeezed columns.
    (console if console.is_terminal else Console(file=console.file, width=200)).print(table)
    summary = result.summary
    if summary["fit_seconds_saved_by_early_stopping"]:
        print_line(
            f"early stopping skipped {summary['epochs_skipped_by_early_stopping']} epochs"
            f" (~{summary['fit_seconds_saved_by_early_stopping']:.0f} s of training)"
        )
    print_line(f"wall time: {summary['wall_seconds']:.1f} s")
    if result.best_config is not None:
        best = result.outcomes[0]
        print_line(
            f"best: {best.trial_id} (validation accuracy {best.val_accuracy:.4f},"
            f" test {best.test_accuracy:.4f})"
        )
        print_line(f"best run: {best.run_dir}")
        print_line(f"best config: {best_config}")
    print_line(f"table: {page}")


def dataset_files(loaded) -> None:
    for filename, source in loaded.sources.items():
        console.print(f"[green]ok[/green] {filename}  {source}", highlight=False, soft_wrap=True)


def dataset_info(loaded) -> None:
    """Each file's source and SHA-256 whole, on lines of their own (a table cut them), then
    the shapes and the class balance of train and test."""
    import numpy as np

    print_line(loaded.name)
    for filename, source in loaded.sources.items():
        print_line(f"  {filename}")
        print_line(f"    source  {source}")
        print_line(f"    sha256  {loaded.sha256[filename]}  (of the decompressed file)")
    for split, images in (("train", loaded.train_images), ("test", loaded.test_images)):
        side = "x".join(map(str, images.shape[1:]))
        print_line(f"{split}: {len(images):,} images of {side} pixels")
    # Plain counts and a light box: the eleven columns fit 80 columns whole.
    table = Table(title="images per class", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("", overflow="fold")
    for digit in range(10):
        table.add_column(str(digit), justify="right", overflow="fold")
    for split, labels in (("train", loaded.train_labels), ("test", loaded.test_labels)):
        table.add_row(split, *map(str, np.bincount(labels, minlength=10)))
    console.print(table)


def prediction(item, json_lines: bool) -> None:
    """One image's answer: a JSON object, or `file: label (p=...)`, or why it was rejected."""
    if json_lines:
        import json

        print_line(json.dumps(item.to_dict()))
    elif item.rejected:
        print_line(f"{item.file}: rejected ({item.rejected})")
    elif item.uncertain:
        print_line(f"{item.file}: {item.label}? (p={item.confidence:.3f}, not sure)")
    else:
        print_line(f"{item.file}: {item.label} (p={item.confidence:.3f})")
