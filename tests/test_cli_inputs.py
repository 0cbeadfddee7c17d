"""Every option of every command rejects a bad value before any work, in one line that
names the option and the value, and no traceback reaches the user.

The commands and their options are read from ``kws.cli.build_parser()``, so a new command
or option is covered without a change here; an option whose validator this file does
not know (or that has none) fails ``test_every_option_that_takes_a_value_has_a_validator``.
Handlers are replaced by a guard while the bad values are tried, so a value that slips
through argparse fails the test instead of starting work.
"""

from __future__ import annotations

import argparse
import errno
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import kws.cli
from kws.cli import args as cli_args
from kws.cli import main
from kws.errors import KwsError

_REAL_BUILD_PARSER = kws.cli.build_parser

#: Values that each kind of option must reject. ``{file}``, ``{folder}``, ``{missing}``:
#: an existing file, an existing folder, a path with nothing there. ``/proc`` takes no new
#: files and a path under a file cannot be created: both hold for root too.
BAD: dict[str, tuple[str, ...]] = {
    "seed": ("-1", "x"),
    "positive_int": ("0", "x"),
    "non_negative_int": ("-1", "x"),
    "positive_number": ("0", "x"),
    "non_negative_number": ("-1", "x"),
    "non_empty_name": ("", " padded"),
    "learning_rates": ("0", "1e-3,x", "1e-3,,1e-4"),
    "open_fraction": ("1.5", "x"),
    "width_multiplier": ("2", "x"),
    "percentage": ("-5", "x"),
    "axis_value": ("x",),
    "frontend_spec": ("bogus", "mlperf-tiny,sample_rate=abc", "mlperf-tiny,frames=3"),
    "model_name": ("ds-cnn-q",),
    "model_source": ("ds-cnn-q", "{missing}.h5", "{folder}", "no.such.module:build"),
    "pathway_name": ("bogus",),
    "case_slug": ("bogus-seed0", "p-s0.50", "p-s0.50-seed0/x", "-seed0"),
    "vela_targets": ("bogus", "{missing}.toml"),
    "vela_targets_or_none": ("bogus", "{missing}.toml"),
    "export_kinds": ("bogus",),
    "label_list": ("bogus",),
    "comma_list": (",",),
    "parse_age": ("x",),
    "choice": ("bogus",),
    "input_file": ("{missing}", "{folder}"),
    "input_folder": ("{missing}", "{file}"),
    "output_file": ("{folder}", "{file}/record.json", "/proc/kws-absent/record.json"),
    "output_folder": ("{file}", "{file}/sub", "/proc/kws-absent"),
    # kws search
    "study_name": ("", "a/b", "x" * 65),
    "goal_spec": ("bogus", "latency:ethos-u99-1", "size:ethos-u55-256"),
    "constraint_spec": ("flash<1", "bogus<=1", "gzip_bytes<=x"),
    "pathway_list": ("bogus", "p,bogus", ","),
    "storage_spec": ("", "{folder}"),
}

#: A value each kind accepts, for the options a command requires and for the parse test.
GOOD: dict[str, str] = {
    "seed": "3", "positive_int": "2", "non_negative_int": "0", "positive_number": "0.001",
    "learning_rates": "2e-3,4e-4,8e-5",
    "open_fraction": "0.5", "width_multiplier": "1", "percentage": "10", "axis_value": "0.5",
    "frontend_spec": "arm,sample_rate=8000", "model_name": "ds-cnn-m-mlperf", "model_source": "ds-cnn-l",
    "pathway_name": "ptq_int8",
    "vela_targets": "ethos-u55-128,ethos-u65-256", "vela_targets_or_none": "none",
    "export_kinds": "int8,float16", "label_list": "go,stop,off,on,right,left,down,up,no,yes,_unknown_,_silence_",
    "comma_list": "yes,no", "parse_age": "7d", "input_file": "{file}", "input_folder": "{folder}",
    "output_file": "{missing}/deeper/record.json", "output_folder": "{missing}",
    "non_negative_number": "0", "non_empty_name": "synth-b1db259d0e4a", "case_slug": "pcqat-s0.50-c16-seed0",
    "study_name": "u55-search", "goal_spec": "latency:ethos-u85-256", "constraint_spec": "gzip_bytes<=30000",
    "pathway_list": "lfilterqat,lfilter24qat", "storage_spec": "{missing}/study.journal",
}
#: Where one option needs another valid value than its kind's.
GOOD_BY_OPTION = {"--clusters": "8"}

def _leaves(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(command words, parser) for every runnable command, nested ones included: a command
    that runs itself and also has subcommands (``kws search``) is one of them."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups or (words and parser.get_default("func") is not None and not groups[0].required):
        yield " ".join(words), parser
    if not groups:
        return
    for name, sub in groups[0].choices.items():
        yield from _leaves(sub, (*words, name))


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0 and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))


def _name(action: argparse.Action) -> str:
    """The option as argparse's messages name it."""
    return "/".join(action.option_strings) or action.metavar or action.dest


def _kind(command: str, action: argparse.Action) -> str | None:
    """The kind of value the option takes (``None``: no shared validator)."""
    if action.choices is not None:
        return "choice"
    declared = getattr(action.type, "__name__", None)
    return declared if declared in BAD else None


def _value_options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if _takes_value(a)]


@dataclass(frozen=True)
class Case:
    command: str
    option: str
    bad: str

    def __str__(self) -> str:
        return f"{self.command} {self.option} {self.bad}"


def _cases() -> list[Case]:
    return [Case(command, _name(action), bad)
            for command, parser in _leaves(_REAL_BUILD_PARSER())
            for action in _value_options(parser)
            for kind in [_kind(command, action)] if kind is not None
            for bad in BAD[kind]]


CASES = _cases()


def _good(command: str, action: argparse.Action) -> str:
    kind = _kind(command, action)
    if kind == "choice":
        return str(action.choices[0])
    return GOOD_BY_OPTION.get(_name(action), GOOD[kind])


def _argv(command: str, parser: argparse.ArgumentParser, paths: dict[str, str], *,
          bad: tuple[str, str] | None = None, every_option: bool = False) -> list[str]:
    """The command with its required arguments valid, ``bad`` = (option, value) given, and
    with ``every_option`` each optional one too."""
    positionals, options = [], []
    for action in _value_options(parser):
        name = _name(action)
        if bad and name == bad[0]:
            value = bad[1]
        elif action.option_strings and not (action.required or every_option):
            continue
        else:
            value = _good(command, action)
        value = value.format(**paths)
        if action.option_strings:
            options.append(f"{action.option_strings[-1]}={value}")  # "=": "-1" stays a value
        else:
            positionals.append(value)
    return [*command.split(), *positionals, *options]


class HandlerRan(BaseException):
    """A command's handler was reached: the bad value passed argparse."""


def _guarded_parser() -> argparse.ArgumentParser:
    parser = _REAL_BUILD_PARSER()
    for _, leaf in _leaves(parser):
        leaf.set_defaults(func=_no_work)
    return parser


def _no_work(namespace: argparse.Namespace) -> int:
    raise HandlerRan(namespace)


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """The validators import their module on first use; importing them once here keeps
    the timing below about the validation, not about loading numpy."""
    import kws.data.config
    import kws.export
    import kws.features.frontend
    import kws.pathways.registry
    import kws.vela  # noqa: F401


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "afile").write_bytes(b"not a model")
    (tmp_path / "adir").mkdir()
    return {"file": str(tmp_path / "afile"), "folder": str(tmp_path / "adir"),
            "missing": str(tmp_path / "absent"), "new": str(tmp_path / "new")}


@pytest.fixture
def guarded(monkeypatch):
    monkeypatch.setattr(kws.cli, "build_parser", _guarded_parser)


def test_the_walk_covers_every_command():
    commands = {command for command, _ in _leaves(_REAL_BUILD_PARSER())}
    assert {"train", "eval", "run", "vela", "model info", "synth", "data info", "cache clear"} <= commands
    assert {case.command for case in CASES} >= commands - {"pathways", "cache ls", "cache du"}


def test_every_option_that_takes_a_value_has_a_validator():
    options = {(command, _name(a)): _kind(command, a)
               for command, parser in _leaves(_REAL_BUILD_PARSER()) for a in _value_options(parser)}
    assert [f"kws {cmd} {name}" for (cmd, name), kind in options.items() if kind is None] == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_bad_value_stops_before_any_work(case: Case, paths, guarded, capsys):
    parser = dict(_leaves(_REAL_BUILD_PARSER()))[case.command]
    argv = _argv(case.command, parser, paths, bad=(case.option, case.bad))
    start = time.perf_counter()
    try:
        with pytest.raises(SystemExit) as excinfo:
            main(argv)
    except HandlerRan:
        pytest.fail(f"kws {' '.join(argv)}: the value passed argparse and the command ran")
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert excinfo.value.code == 2 and out == ""
    assert "Traceback" not in err
    *usage, message = err.strip().splitlines()
    assert all(line.startswith(("usage: ", " ")) for line in usage), err
    assert message.startswith(f"kws {case.command}: error: argument {case.option}: "), message
    assert case.bad.format(**paths) in message
    assert elapsed < 1.0


@pytest.mark.parametrize("command", [c for c, _ in _leaves(_REAL_BUILD_PARSER())])
def test_valid_values_pass_every_validator(command, paths, guarded):
    """Good values of every kind parse, each option given at once; nothing is created."""
    parser = dict(_leaves(_REAL_BUILD_PARSER()))[command]
    argv = _argv(command, parser, paths, every_option=True)
    with pytest.raises(HandlerRan):
        main(argv)
    assert not Path(paths["missing"]).exists()


def test_validators_return_what_the_handlers_use(paths):
    assert cli_args.frontend_spec("mlperf-tiny") == "mlperf-tiny"
    assert cli_args.export_kinds("none") == () and cli_args.export_kinds("int8,float32") == ("int8", "float32")
    assert cli_args.vela_targets_or_none("none") == ()
    assert cli_args.vela_targets_or_none("ethos-u55-128") == ("ethos-u55-128",)
    assert cli_args.input_file(paths["file"]) == Path(paths["file"])
    assert cli_args.labels_config(("yes", "no", "_silence_", "_unknown_", "up", "down", "left", "right",
                                   "on", "off", "stop", "go")).labels[0] == "yes"
    with pytest.raises(KwsError, match="--labels: unknown label"):
        cli_args.labels_config("yes,nope")
    probe = Path(paths["folder"])
    assert cli_args.output_file(str(probe / "r.json")) == probe / "r.json"
    assert list(probe.iterdir()) == []  # the writability probe is removed


def test_an_axis_out_of_range_for_the_pathway_names_the_flag(monkeypatch, capsys):
    """Ranges that depend on the model are checked after parsing, before any work."""
    import kws.pipeline

    monkeypatch.setattr(kws.pipeline, "run_case", _no_work)
    assert main(["run", "p", "--sparsity", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kws run: error: --sparsity: sparsity must be in (0, 1)")
    assert main(["run", "c", "--clusters", "500"]) == 2
    assert "--clusters: clusters must be in [2, " in capsys.readouterr().err
    assert main(["run", "lfilter", "--filter-ratios", "0.2,0.3"]) == 2
    assert capsys.readouterr().err == ("kws run: error: --filter-ratios: filter_ratios needs 5 ratios for ds-cnn-s, "
                                       "one per layer group (conv_1, pw_1, pw_2, pw_3, pw_4), or one for every "
                                       "group; got 2: 0.2,0.3\n")


class _Record:
    """What ``kws run`` needs of a case record to print and write it."""

    def to_json(self, indent: int) -> str:
        return '{"pathway": "ptq_int8"}'


@pytest.mark.parametrize("as_json", [True, False])
def test_run_prints_the_record_when_writing_it_fails_after_the_work(as_json, paths, monkeypatch, capsys):
    import kws._fs
    import kws.cli.pathways
    import kws.pipeline

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kws.pipeline, "run_case", lambda *a, **k: _Record())
    monkeypatch.setattr(kws._fs, "atomic_write_bytes", full_disk)
    monkeypatch.setattr(kws.cli.pathways, "format_record", lambda record: "THE TABLE")
    record = Path(paths["folder"]) / "r.json"
    assert main(["run", "ptq_int8", "--record", str(record), *(["--json"] if as_json else [])]) == 2
    out, err = capsys.readouterr()
    assert '{"pathway": "ptq_int8"}' in out and ("THE TABLE" in out) != as_json
    assert err == (f"kws run: error: --record: cannot write the record to {record}: "
                   "No space left on device; it is printed above\n")


def test_an_os_error_in_a_command_is_one_line_naming_the_path(monkeypatch, capsys):
    import kws.cli.model

    def unwritable(namespace):
        raise PermissionError(errno.EACCES, "Permission denied", "/some/where")

    monkeypatch.setattr(kws.cli.model, "run_info", unwritable)
    assert main(["model", "info", "ds-cnn-s"]) == 2
    assert capsys.readouterr().err == "kws model: error: /some/where: Permission denied\n"


def test_a_reader_that_stops_reading_is_not_an_error():
    """`kws ... | head`: the broken pipe ends the command quietly (exit 0), with no
    traceback and no error line."""
    import subprocess
    import sys

    code = ("import sys, kws.cli, kws.cli.model as m\n"
            "def stopped(ns):\n"
            "    print('first line', flush=True)\n"
            "    raise BrokenPipeError(32, 'Broken pipe')\n"
            "m.run_info = stopped\n"
            "sys.exit(kws.cli.main(['model', 'info', 'ds-cnn-s']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "first line\n"
