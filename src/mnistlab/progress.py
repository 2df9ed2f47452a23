"""Rich progress displays for the CLI: downloads and training epochs."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class DownloadBars:
    """A ``downloads.DownloadProgress`` callable that shows one bar per file."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __call__(self, filename: str, received: int, total: int | None) -> None:
        if filename not in self.tasks:
            if not self.tasks:
                self.progress.start()
            self.tasks[filename] = self.progress.add_task(f"downloading {filename}", total=total)
        self.progress.update(self.tasks[filename], completed=received, total=total)

    def close(self) -> None:
        if self.tasks:
            self.progress.stop()


def training_progress(console: Console, epochs: int):
    """A Keras callback showing training progress: a live bar on a terminal, else one plain
    line per epoch (for logs and CI).

    Built on demand: Keras takes seconds to import and only training needs it.
    """
    import keras

    def describe(logs) -> str:
        shown = ("loss", "accuracy", "val_loss", "val_accuracy")
        return "  ".join(f"{name} {logs[name]:.4f}" for name in shown if name in (logs or {}))

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            console.print(
                f"epoch {epoch + 1}/{epochs}  {describe(logs)}  ({seconds:.1f} s)",
                highlight=False,
                soft_wrap=True,
            )

    class EpochBar(keras.callbacks.Callback):
        def __init__(self, console: Console, epochs: int):
            super().__init__()
            self.epochs = epochs
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = None
            self.steps_per_epoch = 0
            self.epoch = 0

        def on_train_begin(self, logs=None):
            self.steps_per_epoch = int(self.params.get("steps") or 0)
            self.progress.start()
            self.task = self.progress.add_task(
                "fit",
                total=self.steps_per_epoch * self.epochs or None,
                epoch=1,
                epochs=self.epochs,
                metrics="",
            )

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.progress.update(self.task, epoch=epoch + 1)

        def on_train_batch_end(self, batch, logs=None):
            self.progress.update(self.task, completed=self.epoch * self.steps_per_epoch + batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            self.progress.update(
                self.task, completed=(epoch + 1) * self.steps_per_epoch, metrics=describe(logs)
            )

        def on_train_end(self, logs=None):
            self.progress.stop()

    return EpochBar(console, epochs) if console.is_terminal else EpochLines()
