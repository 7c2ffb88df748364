"""The `lmech` command: the typer app (commands.py) and its back-ends (user code loading, fit commands)."""

from lmech.cli.commands import app, main

__all__ = ["app", "main"]
