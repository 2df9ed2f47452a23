"""Options and arguments that several commands share, the help texts' defaults (printed from
``config``, never restated), and a help format that shows metavars instead of Python types."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from mnistlab.cli.views import error_console
from mnistlab.config import AUDIT_EPOCHS, DATASETS, MODEL_DEFAULTS, MODEL_NAMES, Config
from mnistlab.errors import ConfigError

FIELD_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Config)}
DEFAULT_MODEL = FIELD_DEFAULTS["model"]
DEFAULT_DATASET = FIELD_DEFAULTS["dataset"]


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return format(value, "g") if isinstance(value, float) else str(value)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def per_model_default(field: str, overrides: dict[str, object] | None = None) -> str:
    """``[default: 10; 8 for cnn; 40 for cnn-best]``: the default model's value, then every other
    value and the models that train with it, from MODEL_DEFAULTS (``overrides``: per model,
    in their place)."""
    overrides = overrides or {}
    values = {
        model: overrides.get(model, MODEL_DEFAULTS[model].get(field, FIELD_DEFAULTS[field]))
        for model in MODEL_NAMES
    }
    base = values[DEFAULT_MODEL]
    groups: dict[object, list[str]] = {}
    for model, value in values.items():
        if value != base:
            groups.setdefault(value, []).append(model)
    parts = [_shown(base)]
    for value, models in groups.items():
        if value == "auto":  # Config.for_model resolves it from the CPU.
            parts.append(f"on for {_and(models)} where the CPU has bfloat16 instructions")
        else:
            parts.append(f"{_shown(value)} for {_and(models)}")
    return f"[default: {'; '.join(parts)}]"


def audit_epochs_default() -> str:
    """The audit's epochs per model, from AUDIT_EPOCHS, as ``[default: N for MODELS; the
    model's own otherwise]``. Not per_model_default: its first value is the default model's
    for `train`, which the audit does not use."""
    groups: dict[int, list[str]] = {}
    for model, epochs in AUDIT_EPOCHS.items():
        groups.setdefault(epochs, []).append(model)
    parts = [f"{epochs} for {_and(models)}" for epochs, models in groups.items()]
    return f"[default: {'; '.join(parts)}; the model's own otherwise]"


def choice(allowed: tuple[str, ...]):
    """A Typer callback that accepts only ``allowed`` values (or None: not given)."""

    def check(value: Optional[str]) -> Optional[str]:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


def option(*names: str, help: str, metavar: Optional[str] = None, **settings):
    """An option whose help text states its default itself (or has none)."""
    return typer.Option(*names, help=help, metavar=metavar, show_default=False, **settings)


def usage_error(error: ConfigError, flags: dict[str, object]) -> typer.BadParameter:
    """A config value out of range, given as a flag: a usage error naming the flag when the
    message starts with its field (as config's checks do)."""
    field = str(error).split(" ", 1)[0]
    hint = f"'--{field.replace('_', '-')}'" if flags.get(field) is not None else None
    return typer.BadParameter(str(error), param_hint=hint)


def renamed(new: Optional[Path], old: Optional[Path], old_flag: str, new_flag: str):
    """The value of ``new_flag``, or of its old spelling (with a one-line note on stderr)."""
    if old is None:
        return new
    if new is not None:
        raise typer.BadParameter(f"give {new_flag} only", param_hint=f"'{old_flag}'")
    error_console.print(
        f"warning: {old_flag} RUN_DIR is deprecated here; use {new_flag} RUN_DIR"
        f" ({old_flag} names an architecture)",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    return old


def existing_data_dir(value: Optional[Path]) -> Optional[Path]:
    """A usage error for a data folder, given or in $MNISTLAB_DATA_DIR, that does not exist:
    a typo must not quietly fall back to the cache or a download."""
    import os

    if value is not None:
        folder, hint = value.expanduser(), "'--data-dir'"
    elif os.environ.get("MNISTLAB_DATA_DIR"):
        folder, hint = Path(os.environ["MNISTLAB_DATA_DIR"]).expanduser(), "MNISTLAB_DATA_DIR"
    else:
        return value
    if not folder.is_dir():
        from mnistlab.data import missing_data_dir_message

        raise typer.BadParameter(missing_data_dir_message(folder), param_hint=hint)
    return value


DataDirOption = Annotated[
    Optional[Path],
    option(
        "--data-dir",
        metavar="DIR",
        help="Folder holding DATASET/ with the four IDX files (.gz or not). "
        "Default: $MNISTLAB_DATA_DIR, then the cache, then download.",
        callback=existing_data_dir,
    ),
]
DatasetOption = Annotated[
    Optional[str],
    option(
        metavar="NAME",
        help=f"Dataset: {', '.join(DATASETS)}. [default: {DEFAULT_DATASET}]",
        callback=choice(DATASETS),
    ),
]
ModelOption = Annotated[
    Optional[str],
    option(
        metavar="NAME",
        help=f"Architecture: {', '.join(MODEL_NAMES)}. [default: {DEFAULT_MODEL}]",
        callback=choice(MODEL_NAMES),
    ),
]
SeedOption = Annotated[
    Optional[int],
    option(min=0, metavar="N", help=f"Random seed. [default: {FIELD_DEFAULTS['seed']}]"),
]
TrainLimitOption = Annotated[
    Optional[int], option(min=1, metavar="N", help="Use only the first N training images.")
]
TestLimitOption = Annotated[
    Optional[int], option(min=1, metavar="N", help="Use only the first N test images.")
]
RunOption = Annotated[
    Optional[Path],
    option(
        "--run",
        metavar="RUN_DIR",
        help="Run directory whose model answers. [default: the model shipped with mnistlab]",
    ),
]
# The old spelling of --run, kept working for one release.
OldRunOption = Annotated[Optional[Path], option("--model", hidden=True, help="Old --run.")]
MinConfidenceOption = Annotated[
    float,
    typer.Option(
        min=0.0, max=1.0, metavar="P", help="Flag predictions less sure than this as uncertain."
    ),
]
RunDirArgument = Annotated[
    Path,
    typer.Argument(
        metavar="RUN_DIR",
        help="A run directory written by `mnistlab train` or `mnistlab ensemble`.",
        show_default=False,
    ),
]
RunDirsArgument = Annotated[
    list[Path],
    typer.Argument(metavar="RUN_DIR...", help="Two or more run directories.", show_default=False),
]


def _argument_name(param) -> str:
    name = param.metavar or param.name.upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


class PlainHelpCommand(TyperCommand):
    """Help that names arguments by their metavars (``RUN_DIR...``), as options already are,
    instead of Typer's ``{run_dirs}...`` and ``<list[Path]>``."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx, formatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            else:
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)
