"""Errors the project raises on bad input. Each message names the file or parameter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class KwsError(Exception):
    """Base class: the CLI prints these as one line instead of a traceback."""


class BadAudioError(KwsError, ValueError):
    """A WAV file that cannot be used: corrupt, truncated, not audio, or silent."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(KwsError, ValueError):
    """A dataset folder that cannot be used as it is (missing or empty label folders, ...)."""


def argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """:func:`kws.cli.args.argument_type`, for the modules that still import it from here.
    argparse glue belongs to the command line; importing it only when called keeps
    argparse out of every module that imports these errors."""
    from kws.cli.args import argument_type as from_cli

    return from_cli(parse)
