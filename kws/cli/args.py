"""Argument parsing shared by the commands: argparse glue, and the names they accept.

Nothing here imports the dataset code at module level: registering a command must not
load numpy or scipy, so what needs them is imported when an argument is used.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kws.errors import KwsError

if TYPE_CHECKING:
    from kws.data.dataset import DataConfig

T = TypeVar("T")

#: The dataset's splits, as ``kws.data.dataset.SPLITS`` (importing that module loads
#: scipy); tests/test_package.py checks that the two agree.
SPLITS = ("training", "validation", "testing")


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


def comma_list(text: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def labels_config(labels_arg: str | None) -> DataConfig:
    """The :class:`DataConfig` for a ``--labels`` option: a permutation of the 12 labels
    (default: Arm's order). Errors name the option and list the valid labels."""
    from kws.data.config import ARM_LABELS, DataConfig

    if labels_arg is None:
        return DataConfig(labels=ARM_LABELS)
    labels = tuple(s.strip() for s in labels_arg.split(",") if s.strip())
    unknown = [name for name in labels if name not in ARM_LABELS]
    if unknown:
        raise KwsError(f"--labels: unknown label(s) {', '.join(unknown)}; valid labels are "
                       f"{', '.join(ARM_LABELS)}")
    try:
        return DataConfig(labels=labels)
    except ValueError as exc:
        raise KwsError(f"--labels: {exc}") from None
