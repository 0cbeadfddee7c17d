"""Argument parsing shared by the commands: argparse glue, and one validator per kind of
argument.

Every command declares its options with these validators as argparse ``type=``, so a bad
value stops the command before any work, as ``kws CMD: error: argument --x: <message>``
(exit 2), with the same wording whichever command takes the option. A validator returns
what the handler used before (a string, a number, a path), so valid input behaves as it
did.

Nothing here imports the dataset, feature or model code at module level: registering a
command must not load numpy or scipy, so each validator imports what it needs when an
argument is parsed.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from kws.errors import KwsError

if TYPE_CHECKING:
    from kws.data.dataset import DataConfig
    from kws.pathways.axes import Axis
    from kws.vela import VelaTarget

T = TypeVar("T")

#: The dataset's splits, as ``kws.data.dataset.SPLITS`` (importing that module loads
#: scipy); tests/test_package.py checks that the two agree.
SPLITS = ("training", "validation", "testing")


def _reject(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


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
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


# ----- numbers -------------------------------------------------------------------------


def _integer(text: str, wanted: str) -> int:
    try:
        return int(text)
    except ValueError:
        _reject(f"must be {wanted}, got {text!r}")


def _number(text: str, wanted: str) -> float:
    """A finite float: ``nan`` and ``inf`` would pass a range check and fail later."""
    try:
        value = float(text)
    except ValueError:
        _reject(f"must be {wanted}, got {text!r}")
    if not math.isfinite(value):
        _reject(f"must be {wanted}, got {text!r}")
    return value


def _bounded(name: str, parse, wanted: str, ok, doc: str):
    """A validator named ``name`` (the walking test of the command line keys on it) that
    parses with ``parse`` and accepts what ``ok`` says is in range."""
    def validate(text: str):
        value = parse(text, wanted)
        if not ok(value):
            _reject(f"must be {wanted}, got {text!r}")
        return value

    validate.__name__ = validate.__qualname__ = name
    validate.__doc__ = doc
    return validate


seed = _bounded("seed", _integer, "an integer >= 0", lambda v: v >= 0,
                "A random seed: an integer >= 0 (negative seeds fail deep inside numpy).")
positive_int = _bounded("positive_int", _integer, "an integer >= 1", lambda v: v >= 1,
                        "A count that must be at least one: epochs, batch size, clips, clusters.")
non_negative_int = _bounded("non_negative_int", _integer, "an integer >= 0", lambda v: v >= 0,
                            "A count that may be zero (clips of each unknown word).")
positive_number = _bounded("positive_number", _number, "a number > 0", lambda v: v > 0,
                           "A rate or a scale that must be above zero (a learning rate).")
non_negative_number = _bounded("non_negative_number", _number, "a number >= 0", lambda v: v >= 0,
                               "A limit that may be zero (at most 0 s of retraining).")


def non_empty_name(text: str) -> str:
    """A name matched as given against recorded ones (a data id of the history): not
    empty, without surrounding blanks (which no recorded name has)."""
    if not text.strip() or text != text.strip():
        _reject(f"must be a non-empty name without surrounding blanks, got {text!r}")
    return text


def learning_rates(text: str) -> tuple[float, ...]:
    """A piecewise learning-rate schedule: comma-separated numbers > 0 (``2e-3,4e-4,8e-5``
    steps at thirds of the epochs)."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            _reject(f"must be comma-separated numbers > 0, got {text!r}")
        values.append(value)
    return tuple(values)


def open_fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (a sparsity)."""
    wanted = "a number in (0, 1)"
    value = _number(text, wanted)
    if not 0 < value < 1:
        _reject(f"must be {wanted}, got {text!r}")
    return value


def width_multiplier(text: str) -> float:
    """A model's width multiplier alpha: in (0, 1], 1 being the full model."""
    wanted = "a number in (0, 1]"
    value = _number(text, wanted)
    if not 0 < value <= 1:
        _reject(f"must be {wanted}, got {text!r}")
    return value


def percentage(text: str) -> float:
    """A share of a split, in percent: [0, 100]."""
    wanted = "a number in [0, 100]"
    value = _number(text, wanted)
    if not 0 <= value <= 100:
        _reject(f"must be {wanted}, got {text!r}")
    return value


def axis_value(axis: Axis) -> Callable[[str], Any]:
    """The ``type=`` of a numeric axis flag of ``kws run``: the axis's own parser, so the
    flag and the grid file agree. Ranges that depend on the model (clusters) are checked
    once the model is known, by :func:`kws.pathways.registry.make_point`."""
    convert = argument_type(axis.parse)
    convert.__name__ = "axis_value"
    return convert


# ----- paths ---------------------------------------------------------------------------


def _kind(path: Path) -> str | None:
    """``"folder"``, ``"file"``, ``"other"`` or None when nothing is there (a missing
    parent, or a parent that is a file). Other errors (no permission) are reported."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        _reject(f"cannot read {path}: {exc.strerror or exc}")
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "other"


def input_file(text: str) -> Path:
    """A file to read; says which when the path is a folder or is missing."""
    path = Path(text)
    kind = _kind(path)
    if kind is None:
        _reject(f"{text} does not exist")
    if kind == "folder":
        _reject(f"{text} is a folder, not a file")
    return path


def input_folder(text: str) -> Path:
    """A folder to read; says which when the path is a file or is missing."""
    path = Path(text)
    kind = _kind(path)
    if kind is None:
        _reject(f"{text} does not exist")
    if kind != "folder":
        _reject(f"{text} is a file, not a folder")
    return path


def _check_writable(target: Path, text: str) -> None:
    """``target`` is a folder that exists or can be created, and the user may write in
    it. Checked by creating and removing a file in its nearest existing folder, which is
    the only test that holds for root, read-only mounts and pseudo file systems alike."""
    existing = target
    while _kind(existing) is None and existing != existing.parent:
        existing = existing.parent
    if _kind(existing) != "folder":
        _reject(f"cannot create {text}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".kws-write-check-")
    except OSError as exc:
        _reject(f"cannot write {text}: {existing} is not writable ({exc.strerror or exc})")
    os.close(fd)
    os.unlink(probe)


def output_file(text: str) -> Path:
    """A file to write (created or replaced): not a folder, in a folder that exists or
    can be created and is writable, checked before the work that produces the file."""
    path = Path(text)
    if _kind(path) == "folder":
        _reject(f"{text} is a folder, not a file")
    _check_writable(path.parent, text)
    return path


def output_folder(text: str) -> Path:
    """A folder to write into (created if missing): not an existing file, and writable."""
    path = Path(text)
    kind = _kind(path)
    if kind not in (None, "folder"):
        _reject(f"{text} is a file, not a folder")
    _check_writable(path, text)
    return path


# ----- names ---------------------------------------------------------------------------


def frontend_spec(text: str) -> str:
    """A front-end preset or ``preset,key=value,...``: parsed now, returned as given (the
    pipeline parses it again where it is used)."""
    from kws.features.frontend import get_frontend

    try:
        get_frontend(text)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        _reject(message if repr(text) in message else f"{text!r}: {message}")
    return text


def _accepted_by(check, text: str) -> str:
    """``text`` as given, once ``check`` (a library parser) accepts it."""
    try:
        check(text)
    except ValueError as exc:
        _reject(str(exc))
    return text


def model_name(text: str) -> str:
    """``ds-cnn-s|m|l``, optionally ``-mlperf``; returned as given."""
    from kws.models import parse_model

    return _accepted_by(parse_model, text)


def model_source(text: str) -> str:
    """A DS-CNN name (``ds-cnn-s|m|l``, optionally ``-mlperf``), a Keras model file
    (``.keras``, ``.h5``), a SavedModel folder, or ``package.module:factory``; returned
    as given. Whether TFMOT can wrap it is found when the model is first built."""
    from kws.models import ARCHITECTURES

    if text.removesuffix("-mlperf") in ARCHITECTURES:
        return text
    from kws.usermodel import check_source

    return _accepted_by(check_source, text)


def pathway_name(text: str) -> str:
    """A pathway of the registry (``kws pathways`` lists them)."""
    from kws.pathways.registry import get_pathway

    return _accepted_by(get_pathway, text)


def case_slug(text: str) -> str:
    """A case id of the benchmark matrix, the key of ``results/``
    (``pcqat-s0.50-c16-seed0``): a pathway of the registry, its axis fragments and
    ``-seed<N>``; returned as given (whether the history holds it is the handler's to say)."""
    import re

    from kws.pathways.registry import get_pathway

    if not re.fullmatch(r"[A-Za-z0-9_]+(-[A-Za-z0-9._]+)*-seed[0-9]+", text):
        _reject(f"must be a case id such as pcqat-s0.50-c16-seed0 (a pathway, its axis values, -seed<N>), "
                f"got {text!r}")
    try:
        get_pathway(text.split("-")[0])
    except ValueError as exc:
        _reject(f"{text!r}: {exc}")
    return text


def vela_targets(text: str) -> list[VelaTarget]:
    """``NAME[,NAME...]``, ``all``, and target files ``T.toml``: the Vela targets, in order,
    without repeats (:func:`kws.vela.parse_targets`, which the matrix's option uses too). A
    bad target file is named with its bad key."""
    from kws.vela import parse_targets

    try:
        return parse_targets(text)
    except ValueError as exc:
        _reject(str(exc))


def vela_targets_or_none(text: str) -> tuple[str, ...]:
    """As :func:`vela_targets`, or ``none`` for no estimate; the targets' names."""
    if text.strip() == "none":
        return ()
    return tuple(t.name for t in vela_targets(text))


def export_kinds(text: str) -> tuple[str, ...]:
    """Comma-separated TFLite kinds, or ``none``."""
    from kws.export import KINDS

    if text.strip() == "none":
        return ()
    kinds = tuple(s.strip() for s in text.split(","))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        _reject(f"unknown kind(s) {', '.join(map(repr, bad))}; choose from {', '.join(KINDS)} or none")
    return kinds


def label_list(text: str) -> tuple[str, ...]:
    """A permutation of the 12 labels, or ``arm`` / ``mlperf`` for the two orders of the
    sources; unknown names are listed with the valid ones."""
    from kws.data.config import ARM_LABELS, MLPERF_LABELS, DataConfig

    named = {"arm": ARM_LABELS, "mlperf": MLPERF_LABELS}
    if text.strip().lower() in named:
        return named[text.strip().lower()]
    labels = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [name for name in labels if name not in ARM_LABELS]
    if unknown:
        _reject(f"unknown label(s) {', '.join(unknown)}; valid labels are "
                f"{', '.join(ARM_LABELS)}")
    try:
        DataConfig(labels=labels)
    except ValueError as exc:
        _reject(f"{text!r}: {exc}")
    return labels


def labels_config(labels: str | tuple[str, ...] | None) -> DataConfig:
    """The :class:`DataConfig` for a ``--labels`` value (default: Arm's order). Takes the
    parsed tuple, or the raw text for callers outside argparse (errors name the option)."""
    from kws.data.config import ARM_LABELS, DataConfig

    if labels is None:
        return DataConfig(labels=ARM_LABELS)
    if isinstance(labels, str):
        try:
            labels = label_list(labels)
        except argparse.ArgumentTypeError as exc:
            raise KwsError(f"--labels: {exc}") from None
    return DataConfig(labels=labels)
