"""bench/results/audit.json, where bench_audit.py and audit_rankings.py keep their rows and from
which bench/tables.py renders the Audit tables of docs/performance.md. Standard library only."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "audit.json"


def save_rows(section: str, rows: list[dict], key: tuple[str, ...]) -> None:
    """Put ``rows`` into ``section`` of audit.json in place of the rows with the same ``key``
    values (a rerun replaces its own measurement), atomically."""
    results = json.loads(RESULTS.read_text())
    new = {tuple(row[name] for name in key) for row in rows}
    kept = [row for row in results[section] if tuple(row.get(name) for name in key) not in new]
    results[section] = sorted(kept + rows, key=lambda row: tuple(row[name] for name in key))
    with tempfile.NamedTemporaryFile("w", dir=RESULTS.parent, suffix=".tmp", delete=False) as out:
        out.write(json.dumps(results, indent=2) + "\n")
    os.chmod(out.name, 0o644)
    os.replace(out.name, RESULTS)
    print(f"wrote {len(rows)} row(s) to {RESULTS}")
