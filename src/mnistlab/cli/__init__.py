"""The ``mnistlab`` command line: ``commands`` (the Typer app), ``training`` (``train`` and
``ensemble``, which write a run directory), ``experiments`` (``audit`` and ``sweep``, which
train many models), ``options`` (shared options and help), ``runtime`` (the process around a
command) and ``views`` (what is printed). Imports point down that list; nothing below imports
the cli."""

from mnistlab.cli.commands import app, main

__all__ = ["app", "main"]
