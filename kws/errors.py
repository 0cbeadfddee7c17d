"""Errors the project raises on bad input. Each message names the file or parameter."""

from __future__ import annotations

from pathlib import Path


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
