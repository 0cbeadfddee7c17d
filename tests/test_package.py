"""Package-level promises: cheap imports, one Keras decision, a working console script,
and argparse only in the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from kws.cli import COMMAND_MODULES, main
from kws.cli.args import SPLITS

KWS = Path(__file__).resolve().parent.parent / "kws"

#: A pytest plugin: its command-line options are argparse types by pytest's design.
ARGPARSE_ALLOWED = ("kws/matrix/plugin.py",)

#: What registering every command must not load: it is what makes ``kws --help`` slow.
HEAVY = ("tensorflow", "tf_keras", "scipy", "ai_edge_litert")


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _loaded_after(code: str, packages: tuple[str, ...]) -> list[str]:
    """The top-level ``packages`` loaded in a fresh interpreter after running ``code``."""
    probe = (f"{code}; import json, sys; "
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r})))")
    result = _run_python(probe)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_kws_does_not_import_tensorflow():
    code = ("import sys, kws, kws.cli, kws.data, kws.synth, kws.features; kws.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')))")
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_registering_the_commands_loads_no_scipy_and_no_tensorflow():
    code = ("import argparse, importlib; sub = argparse.ArgumentParser().add_subparsers(); "
            f"[importlib.import_module(name).register(sub) for name in {list(COMMAND_MODULES)!r}]")
    assert _loaded_after(code, HEAVY) == []


def test_the_moved_commands_load_no_numpy_either():
    """These commands read only plain data when they register."""
    mine = ["kws.cli.synth", "kws.cli.data", "kws.cli.model", "kws.cli.eval", "kws.cli.vela", "kws.cli.pathways",
            "kws.cli.train"]
    assert set(mine) <= set(COMMAND_MODULES)
    code = ("import argparse, importlib; sub = argparse.ArgumentParser().add_subparsers(); "
            f"[importlib.import_module(name).register(sub) for name in {mine!r}]")
    assert _loaded_after(code, (*HEAVY, "numpy")) == []


def test_library_modules_hold_no_command_line_code():
    pattern = re.compile(r"^\s*(import argparse|from argparse import)|\.add_parser\(|\.add_subparsers\(",
                         re.MULTILINE)
    exempt = set(ARGPARSE_ALLOWED)
    offenders = []
    for path in sorted(KWS.rglob("*.py")):
        relative = path.relative_to(KWS.parent).as_posix()
        if relative.startswith("kws/cli/") or relative in exempt:
            continue
        if pattern.search(path.read_text()):
            offenders.append(relative)
    assert offenders == [], "argparse outside kws/cli/"


def test_the_cli_split_names_are_the_datasets():
    from kws.data.dataset import SPLITS as DATASET_SPLITS

    assert SPLITS == DATASET_SPLITS


def test_old_import_paths_still_work():
    from kws.data.cli import labels_config
    from kws.errors import argument_type

    assert labels_config(None).labels[0] == "_silence_"
    assert argument_type(int)("3") == 3


def test_compat_selects_keras_2_before_tensorflow_loads():
    code = ("import kws.compat as c, os; "
            "print(os.environ['TF_USE_LEGACY_KERAS'], c.keras.__version__.split('.')[0], "
            "c.tf.keras.__name__.split('.')[0], hasattr(c.tfmot, 'sparsity'))")
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "2", "tf_keras", "True"]


def test_cli_lists_its_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "synth" in out and "data" in out


def test_parsing_the_arguments_loads_no_tensorflow(tmp_path):
    """The validators check every value when the command line is parsed: front-end specs,
    pathway names and export kinds are read from plain-data modules, so a bad value is
    reported before anything as slow as TensorFlow loads."""
    code = ("from kws.cli import build_parser; p = build_parser(); "
            f"p.parse_args(['run', 'ptq_int8', '--frontend', 'arm', '--record', {str(tmp_path / 'r.json')!r}]); "
            "p.parse_args(['train', '--export', 'int8,float16', '--labels', "
            "'_silence_,_unknown_,yes,no,up,down,left,right,on,off,stop,go']); "
            "p.parse_args(['model', 'info', 'ds-cnn-s']); p.parse_args(['vela', __import__('sys').executable])")
    assert _loaded_after(code, ("tensorflow", "tf_keras", "ai_edge_litert")) == []
