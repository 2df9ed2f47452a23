"""Where a measurement was made, as every results file and table row names it."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    """The CPU model and core count."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = lscpu.split("Model name:")[1].splitlines()[0].strip()
    except (OSError, IndexError):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def where() -> dict:
    """Today's date, the checked-out commit and the machine."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                            capture_output=True).stdout.strip()  # fmt: skip
    return {"date": datetime.date.today().isoformat(), "commit": commit, "machine": machine()}
