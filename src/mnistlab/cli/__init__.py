"""The ``mnistlab`` command line: ``commands`` (the Typer app), ``training`` (the commands that
train), ``options`` (shared options and help), ``runtime`` (the process around a command) and
``views`` (what is printed). Imports point down that list; nothing below imports the cli."""

from mnistlab.cli.commands import app, main

__all__ = ["app", "main"]
