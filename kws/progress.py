"""Progress bars that show on a terminal and stay quiet in CI logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    """Bars are drawn only on an interactive terminal outside CI; ``KWS_PROGRESS=1``/``0``
    forces them on or off."""
    forced = os.environ.get("KWS_PROGRESS")
    if forced is not None:
        return forced not in ("", "0", "false", "no")
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable[T] | None = None, **kwargs) -> tqdm:
    """``tqdm`` with the project's on/off rule (``disable`` may still be passed)."""
    kwargs.setdefault("disable", not enabled())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
