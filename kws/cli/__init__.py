"""The ``kws`` command line. Each command lives in its own module, which adds its
subparser through ``register(subparsers)``; this module only dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys

from kws.errors import KwsError

# Modules that provide commands. Registering them must not import TensorFlow or scipy (nor
# numpy, where a command needs only plain data to register): tests/test_package.py checks.
COMMAND_MODULES = (
    "kws.cli.synth",
    "kws.cli.data",
    "kws.cli.model",
    "kws.cli.train",
    "kws.cli.eval",
    "kws.cli.cache",
    "kws.cli.pathways",
    "kws.cli.vela",
    "kws.cli.recommend",
    "kws.cli.report",
    "kws.cli.results",
    "kws.cli.search",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kws", description="Keyword-spotting compression pathways benchmark."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad option values stop in argparse (exit 2, before any work);
    what fails later is a :class:`KwsError`, or an ``OSError`` on a path the user named
    (a full disk, a folder that vanished): either is one line naming the path, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KwsError as exc:
        print(f"kws {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped reading (`kws ... | head`): not an error of the command. Point
        # stdout at nothing so that the interpreter's final flush does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kws {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kws {args.command}: interrupted", file=sys.stderr)
        return 130

