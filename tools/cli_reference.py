"""Write each command's `--help` into its docs page, so the CLI reference cannot drift.

A page under docs/commands/ holds one block per command it documents:

    <!-- cli-help: mnistlab train -->
    ...generated...
    <!-- cli-help: end -->

`python tools/cli_reference.py` rewrites every block from the Typer app; `--check` changes
nothing and exits 1 when a block is stale (tests/test_docs.py runs the same check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import typer

DOCS = Path(__file__).resolve().parents[1] / "docs"
WIDTH = 88
BLOCK = re.compile(r"(<!-- cli-help: (mnistlab[\w ]*) -->\n)(.*?)(<!-- cli-help: end -->)", re.S)


def help_text(command_line: str) -> str:
    """`mnistlab ... --help` as plain text at a fixed width, whatever the terminal."""
    from mnistlab.cli import app

    names = command_line.split()[1:]
    command = typer.main.get_command(app)
    context = click.Context(
        command, info_name="mnistlab", terminal_width=WIDTH, max_content_width=WIDTH
    )
    for name in names:
        command = command.get_command(context, name)
        context = click.Context(
            command, info_name=name, parent=context, terminal_width=WIDTH, max_content_width=WIDTH
        )
    return command.get_help(context).rstrip() + "\n"


def render(page: str) -> str:
    def block(match: re.Match) -> str:
        return f"{match.group(1)}```text\n{help_text(match.group(2))}```\n{match.group(4)}"

    return BLOCK.sub(block, page)


def documented_commands() -> set[str]:
    """Every `mnistlab ...` command line that has a generated help block in the docs."""
    return {m.group(2) for page in DOCS.rglob("*.md") for m in BLOCK.finditer(page.read_text())}


def stale_pages() -> list[Path]:
    return [
        page for page in sorted(DOCS.rglob("*.md")) if render(page.read_text()) != page.read_text()
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_pages()
        for page in stale:
            print(f"{page}: --help changed; run python tools/cli_reference.py", file=sys.stderr)
        return 1 if stale else 0
    for page in stale_pages():
        page.write_text(render(page.read_text()))
        print(f"rewrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
