"""Package-level promises: cheap imports, one Keras decision, a working console script."""

from __future__ import annotations

import subprocess
import sys

from kws.cli import main


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_kws_does_not_import_tensorflow():
    code = ("import sys, kws, kws.cli, kws.data, kws.synth, kws.features; kws.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')))")
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


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
