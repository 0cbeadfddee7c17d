"""Errors the project raises on bad input. Each message names the file or parameter."""

from __future__ import annotations

import argparse
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
    """An argparse ``type=`` from a parser that raises ``ValueError``: argparse then
    prints the parser's own message as a usage error, not a traceback."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert
