"""A sweep's search space (pure): the space file's checks, and each trial's Config.

A space file is a JSON object of ``Config`` fields. Each value is fixed, or a search domain
written as a one-key object: ``{"choice": [...]}``, ``{"uniform": [low, high]}``,
``{"loguniform": [low, high]}`` or ``{"randint": [low, high]}`` (both ends included).
``sweep.tune_domain`` puts a domain in Ray Tune's terms.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistlab.config import Config
from mnistlab.errors import ConfigError

DOMAIN_KINDS = ("choice", "uniform", "loguniform", "randint")


@dataclass(frozen=True)
class Domain:
    """One searched field: ``choice`` holds the options, the others ``(low, high)``."""

    kind: str
    values: tuple  # Each must make a valid Config: every option, or both ends of a range.

    def describe(self) -> str:
        return f"{self.kind} {list(self.values)}"


@dataclass(frozen=True)
class SearchSpace:
    """Fixed Config values and searched domains, checked against Config."""

    fixed: dict[str, Any]
    domains: dict[str, Domain]
    max_epochs: int  # The longest a trial can train: ASHA's horizon.

    def trial_config(self, values: dict[str, Any]) -> Config:
        """A trial's Config: the model's own defaults, then the space's values."""
        values = dict(values)
        model = values.pop("model", "seed-mlp")
        config = Config.for_model(model, **values)
        if not config.validation_split:
            raise ConfigError(
                "validation_split 0 leaves no validation accuracy to rank trials by; a sweep"
                " needs a split above 0"
            )
        return config


def parse_space(values: Any, source: str = "space file") -> SearchSpace:
    """Check a space file's JSON and split it into fixed values and search domains.

    Every fixed value, every option of a choice and both ends of a range must make a valid
    Config; otherwise a one-line ConfigError names the field and what was received.
    """
    if not isinstance(values, dict) or not values:
        raise ConfigError(
            f"{source}: expected a JSON object of Config fields; received: {json.dumps(values)[:80]}"
        )
    known = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(known)}"
        )
    fixed, domains = {}, {}
    for name, value in values.items():
        if isinstance(value, dict):
            domains[name] = _parse_domain(name, value, source)
        else:
            fixed[name] = value
    space = SearchSpace(fixed, domains, max_epochs=0)
    # Config checks each field on its own: the fixed values, then each domain's candidates.
    probes = [(None, None)] + [(name, c) for name, d in domains.items() for c in d.values]
    for name, candidate in probes:
        values = dict(fixed) if name is None else {**fixed, name: candidate}
        try:
            space.trial_config(values)
        except (ConfigError, TypeError) as error:
            where = "" if name is None else f" with {name}={candidate!r}"
            raise ConfigError(f"{source}{where}: {error}") from None
    if "epochs" in domains:
        max_epochs = max(domains["epochs"].values)
    else:  # Fixed, or each model's own default.
        models = domains["model"].values if "model" in domains else [fixed.get("model", "seed-mlp")]
        max_epochs = max(space.trial_config({**fixed, "model": m}).epochs for m in models)
    return dataclasses.replace(space, max_epochs=max_epochs)


def read_space(path: str | Path) -> tuple[dict, SearchSpace]:
    """The space file's JSON and its parsed SearchSpace."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"space file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"space file {path} is not readable JSON: {error}") from None
    return values, parse_space(values, source=f"space file {path}")


def _parse_domain(name: str, value: dict, source: str) -> Domain:
    expected = ", ".join(f'{{"{kind}": [...]}}' for kind in DOMAIN_KINDS)
    if len(value) != 1 or next(iter(value)) not in DOMAIN_KINDS:
        raise ConfigError(
            f"{source}: {name} is not a search domain; expected one of {expected};"
            f" received: {json.dumps(value)}"
        )
    kind, arguments = next(iter(value.items()))
    if kind == "choice":
        if not isinstance(arguments, list) or not arguments:
            raise ConfigError(
                f"{source}: {name}: choice needs a non-empty list; received: {json.dumps(arguments)}"
            )
        return Domain(kind, tuple(arguments))
    numeric = (int,) if kind == "randint" else (int, float)
    if (
        not isinstance(arguments, list)
        or len(arguments) != 2
        or not all(isinstance(v, numeric) and not isinstance(v, bool) for v in arguments)
        or not arguments[0] < arguments[1]
    ):
        kind_of = "integers" if kind == "randint" else "numbers"
        raise ConfigError(
            f"{source}: {name}: {kind} needs [low, high], two {kind_of} with low < high;"
            f" received: {json.dumps(arguments)}"
        )
    if kind == "loguniform" and arguments[0] <= 0:
        raise ConfigError(
            f"{source}: {name}: loguniform needs low > 0; received: {json.dumps(arguments)}"
        )
    return Domain(kind, tuple(arguments))
