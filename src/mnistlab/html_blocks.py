"""The building blocks of mnistlab's self-contained HTML pages: one short stylesheet, escaping,
numbers that keep their exact value for checking, PNG images inlined as data URIs (so a page
opens offline), tables, and the page around a body.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

# Short, plain CSS: readable on a laptop and a phone, no external fonts or scripts.
STYLE = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6575; --line: #d9dee6; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #f6f7f9; }
main { max-width: 980px; margin: 0 auto; padding: 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          padding: 16px; margin: 16px 0; overflow-x: auto; }
h1 { font-size: 1.6rem; margin: 8px 0; }
h2 { font-size: 1.25rem; margin: 0 0 12px; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
table { border-collapse: collapse; font-size: 0.92rem; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.headline { display: flex; flex-wrap: wrap; gap: 24px; margin: 8px 0 16px; }
.headline div { min-width: 180px; }
.big { font-size: 2.6rem; font-weight: 700; color: var(--accent); line-height: 1.1; }
.label { color: var(--muted); font-size: 0.9rem; }
code { font-size: 0.85rem; word-break: break-all; }
.model-input td { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }
.sheet { display: flex; flex-wrap: wrap; gap: 6px; margin: 8px 0 16px; }
.sheet figure { margin: 0; width: 76px; text-align: center; font-size: 0.72rem; line-height: 1.25; }
.sheet img { width: 56px; margin: 0 auto 2px; image-rendering: pixelated;
             border: 1px solid var(--line); }
.sheet .published { color: crimson; font-weight: 700; }
.sheet .published img { border: 2px solid crimson; }
"""


def escape(value: Any) -> str:
    return html.escape(str(value))


def number(value: float | int | None, key: str, digits: int = 4) -> str:
    """A number shown rounded, with its exact value kept in data attributes for checking."""
    if value is None:
        return '<span class="na">n/a</span>'
    shown = f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"
    return f'<span data-metric="{escape(key)}" data-value="{value!r}">{shown}</span>'


def image(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def setting(value: Any) -> str:
    """A config value; an unset option (null in config.json) reads as a dash, not None."""
    return "—" if value is None else f"<code>{escape(value)}</code>"
