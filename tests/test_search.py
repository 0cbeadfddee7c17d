"""``kws search``: objectives and constraints, storage, resuming, the front, promotion into
the grid, and small real searches (two processes on one journal file; a real PostgreSQL
server when ``$KWS_TEST_POSTGRES_URL`` names one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kws.cli import main
from kws.search.objectives import (
    SearchError,
    drop_constraint,
    parse_constraint,
    parse_goal,
    parse_objectives,
)
from tests.helpers import TINY_SEARCH_GRID

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "bench" / "grid.toml"
POSTGRES_ENV = "KWS_TEST_POSTGRES_URL"
U55, U85 = "ethos-u55-256", "ethos-u85-256"


# ----- objectives and constraints ---------------------------------------------------------


def test_objectives_read_figures_metrics_and_targets():
    objectives = parse_objectives(["accuracy"], ["latency:ethos-u85-256", "vela_latency", "gzip_bytes"],
                                  targets=[U55])
    assert [(o.goal.metric, o.goal.target, o.maximise) for o in objectives] == [
        ("deployed_accuracy", None, True), ("vela_us", U85, False), ("vela_us", U55, False),
        ("gzip_bytes", None, False)]
    metrics = {"deployed_accuracy": 0.9, "gzip_bytes": 100, "vela": {U85: {"inference_us": 40.0}}}
    assert [o.goal.value(metrics) for o in objectives] == [0.9, 40.0, None, 100.0]


@pytest.mark.parametrize("maximise, minimise, message", [
    (["acuracy"], [], "--maximise 'acuracy': unknown objective or metric 'acuracy'; valid: "),
    ([], ["latency:ethos-u99-1"], "--minimise 'latency:ethos-u99-1': "),
    ([], ["size:ethos-u55-256"], "size is not measured per Vela target; drop ':ethos-u55-256'"),
    (["latency"], [], "--maximise 'latency': latency is better lower; use --minimise"),
    ([], ["accuracy"], "accuracy is better higher; use --maximise"),
    ([], ["eval_accuracy"], "eval_accuracy is measured only on some runs"),
    ([], [], "no objective: give --maximise and/or --minimise"),
    (["accuracy", "deployed_accuracy"], [], "objective deployed_accuracy is accuracy again"),
])
def test_a_bad_objective_names_the_value(maximise, minimise, message):
    with pytest.raises(SearchError) as err:
        parse_objectives(maximise, minimise, targets=[U55])
    assert message in str(err.value)


def test_the_accuracy_constraint_is_judged_on_the_evidence():
    limit = drop_constraint(1.0)
    # Drop 0.5 pp, but its interval reaches 1.2 pp: not met with 95% confidence.
    metrics = {"accuracy_drop": 0.005, "intervals": {"accuracy_drop": [0.001, 0.012]}}
    assert limit.violation(metrics) == pytest.approx(0.002)
    metrics["intervals"]["accuracy_drop"] = [0.001, 0.009]
    assert limit.violation(metrics) < 0
    assert limit.violation({}) == float("inf")  # not measured: never feasible
    flash = parse_constraint("flash:ethos-u85-256<=60000", targets=[U55])
    assert flash.goal.target == U85 and flash.violation({"vela": {U85: {"flash_bytes": 61_000}}}) == 1000
    floor = parse_constraint("deployed_accuracy>=0.9", targets=[U55])
    assert floor.violation({"deployed_accuracy": 0.95}) == pytest.approx(-0.05)


@pytest.mark.parametrize("text, message", [
    ("flash<60000", "expected NAME[:TARGET]<=VALUE or >=VALUE"),
    ("gzip_bytes:ethos-u55-256<=1000", "gzip_bytes is not measured per Vela target"),
    ("bogus<=3", "unknown objective or metric 'bogus'"),
])
def test_a_bad_constraint_names_the_value(text, message):
    with pytest.raises(SearchError, match="--constraint") as err:
        parse_constraint(text, targets=[U55])
    assert message in str(err.value)


def test_a_per_target_goal_without_target_takes_the_first_one():
    assert parse_goal("latency", option="--minimise", targets=[U85, U55]).target == U85


# ----- bad input stops before any training ------------------------------------------------


def _search_args(tmp_path, *extra) -> list[str]:
    return ["search", "--study", "s1", "--results", str(tmp_path / "results"), "--tier", "smoke", *extra]


@pytest.mark.parametrize("extra, message", [
    (["--maximise", "accuracy", "--pathways", "qat"],
     "empty search space: pathway qat takes no axis, so there is nothing to search"),
    (["--maximise", "accuracy", "--minimise", "latency:ethos-u55-256", "--pathways", "p,ptq_fp16"],
     "pathway(s) ptq_fp16 deploy as float and have no Vela estimate for ethos-u55-256"),
    (["--maximise", "accuracy", "--pathways", "p", "--family", "prune"], "give --pathways or --family, not both"),
    (["--pathways", "p"], "no objective"),
    (["--maximise", "accuracy", "--minimise", "accuracy", "--pathways", "p"], "accuracy is better higher"),
    (["--maximise", "accuracy", "--model", "tests.zoo:relu6_cnn", "--pathways", "p"],
     "--pathways: not applicable to relu6-cnn: p needs prune: TFMOT pruning cannot wrap layer(s) tf.nn.relu6"),
    (["--maximise", "accuracy", "--model", "tests.zoo:relu6_cnn", "--family", "prune"],
     "no pathway to search applies to relu6-cnn"),
    (["--maximise", "accuracy", "--pathways", "p", "--storage", "postgresql://kws@127.0.0.1:9/none"],
     "--storage postgresql://kws@127.0.0.1:9/none: cannot open the study storage ("),
])
def test_bad_search_input_is_one_line_before_any_training(tmp_path, capsys, extra, message):
    assert main(_search_args(tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "tensorflow" not in sys.modules or not list((tmp_path / "results").glob("history.jsonl"))


def test_a_password_in_a_storage_url_is_never_printed(tmp_path, capsys):
    assert main(_search_args(tmp_path, "--maximise", "accuracy", "--pathways", "p",
                             "--storage", "postgresql://kws:hunter2@127.0.0.1:9/none")) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "postgresql://kws:***@127.0.0.1:9/none" in err


def _spec(tmp_path, **changes):
    from kws.matrix.grid import load_grid
    from kws.search import SearchSpec

    values = dict(study="s1", pathways=("p",), objectives=tuple(parse_objectives(["accuracy"], [], targets=[U55])),
                  constraints=(), tier=load_grid(GRID)["smoke"], trials=4, results_dir=tmp_path / "results")
    return SearchSpec(**{**values, **changes})


def test_a_study_that_exists_with_other_objectives_is_refused(tmp_path):
    from kws.search.study import open_study

    open_study(_spec(tmp_path))
    open_study(_spec(tmp_path))  # the same settings: reopened
    other = _spec(tmp_path, objectives=tuple(parse_objectives(["accuracy"], ["size"], targets=[U55])))
    with pytest.raises(SearchError) as err:
        open_study(other)
    text = str(err.value)
    assert "study 's1' in " in text and "exists with other settings" in text
    assert "objectives: stored ['maximise accuracy'], given ['maximise accuracy', 'minimise size']" in text


def test_the_default_storage_is_a_journal_file_under_results(tmp_path):
    from kws.search.study import open_study

    open_study(_spec(tmp_path))
    assert (tmp_path / "results" / "search" / "s1.journal").is_file()


# ----- trials: resuming, counting, the front ----------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_a_trial_left_running_by_a_dead_process_is_queued_again(tmp_path):
    import platform

    import optuna

    from kws.search.study import counted, open_study, recover

    study = open_study(_spec(tmp_path))
    trial = study.ask()
    trial.suggest_float("sparsity", 0.3, 0.9, step=0.05)
    trial.set_user_attr("host", platform.node())
    trial.set_user_attr("pid", _dead_pid())
    alive = study.ask()  # this process's own trial: still running
    alive.set_user_attr("host", platform.node())
    alive.set_user_attr("pid", os.getpid())

    assert recover(study) == [trial.number]
    frozen = study.get_trials(deepcopy=False)
    assert frozen[trial.number].state is optuna.trial.TrialState.FAIL
    assert frozen[alive.number].state is optuna.trial.TrialState.RUNNING
    assert [t.number for t in counted(frozen)] == [alive.number]  # the interrupted one does not count
    again = study.ask()
    assert again.params == {} and again.user_attrs["retry_of"] == trial.number
    assert again.suggest_float("sparsity", 0.3, 0.9, step=0.05) == trial.params["sparsity"]


def test_the_front_keeps_feasible_undominated_trials_best_first(tmp_path):
    import optuna

    from kws.search.study import front, hypervolume

    study = optuna.create_study(directions=["maximize", "minimize"])
    cases = [((0.93, 100.0), [-0.1]), ((0.92, 80.0), [-0.1]), ((0.91, 90.0), [-0.1]),  # dominated by t1
             ((0.95, 60.0), [0.2]),  # infeasible
             ((0.90, 70.0), [-0.1])]
    for values, constraints in cases:
        study.add_trial(optuna.trial.create_trial(values=list(values), user_attrs={"constraints": constraints}))
    assert [t.number for t in front(study)] == [0, 1, 4]
    # (0.93, 100), (0.92, 80), (0.90, 70) against reference (0.88, 110): 2-D staircase area.
    area = (0.93 - 0.88) * (110 - 100) + (0.92 - 0.88) * (100 - 80) + (0.90 - 0.88) * (80 - 70)
    points = [t.values for t in front(study)]
    assert hypervolume(points, [True, False], [0.88, 110.0]) == pytest.approx(area)
    assert hypervolume([[0.87, 50.0]], [True, False], [0.88, 110.0]) == 0.0  # beyond the reference


# ----- promotion into the grid ------------------------------------------------------------


def _promotable_study(tmp_path, points):
    import optuna

    from kws.search.study import SPEC_ATTR, open_study

    study = open_study(_spec(tmp_path, study="u55", pathways=("p", "pqat"),
                             objectives=tuple(parse_objectives(["accuracy"], ["size"], targets=[U55]))))
    for pathway, point, values in points:
        study.add_trial(optuna.trial.create_trial(
            values=list(values), user_attrs={"pathway": pathway, "point": point, "constraints": [-1.0]}))
    assert SPEC_ATTR in study.user_attrs
    return study


def test_promote_writes_the_best_trials_as_named_points_and_keeps_the_file_as_it_was(tmp_path):
    from kws.matrix.grid import generate, load_grid
    from kws.search.promote import promote

    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.read_text())
    study = _promotable_study(tmp_path, [
        ("pqat", {"sparsity": 0.35, "schedule": "constant"}, (0.93, 30_000)),
        ("p", {"sparsity": 0.5, "schedule": "constant"}, (0.92, 29_000)),  # already a smoke case
        ("p", {"sparsity": 0.65, "schedule": "polynomial"}, (0.91, 20_000)),
        ("p", {"sparsity": 0.4, "schedule": "constant"}, (0.90, 40_000)),  # dominated
    ])
    promoted, notes = promote(study, grid, top=2, tier="smoke")
    assert [p.slug for p in promoted] == ["pqat-s0.35-seed0", "p-s0.65-poly-seed0"]
    assert notes == ["trial 1 (p-s0.50) is already a case of tier smoke"]
    text = grid.read_text()
    assert text.startswith(GRID.read_text().split("[tiers.smoke]")[0])  # comments and layout kept
    slugs = [c.slug for c in generate(load_grid(grid)["smoke"])]
    assert "pqat-s0.35-seed0" in slugs and "p-s0.65-poly-seed0" in slugs
    # Promoting the same study again replaces its points instead of adding more; --by
    # ranks the front by another objective (here the smallest first).
    promote(study, grid, top=1, tier="smoke", by="size")
    points = load_grid(grid)["smoke"].points
    assert [(name, pathway) for name, pathway, _ in points] == [("u55-t0002", "p")]
    with pytest.raises(SearchError, match="--by 'latency': study 'u55' has the objectives accuracy, size"):
        promote(study, grid, top=1, by="latency")


def test_promote_refuses_a_study_without_a_feasible_trial(tmp_path):
    import optuna

    from kws.search.promote import promote

    study = _promotable_study(tmp_path, [])
    study.add_trial(optuna.trial.create_trial(values=[0.9, 1.0], user_attrs={
        "pathway": "p", "point": {"sparsity": 0.5}, "constraints": [0.5]}))
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.read_text())
    with pytest.raises(SearchError, match="has no completed trial that meets its constraints"):
        promote(study, grid, top=1)
    assert grid.read_text() == GRID.read_text()


# ----- real searches ------------------------------------------------------------------------

TINY_GRID = TINY_SEARCH_GRID


def _kws(*argv, env=None, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kws.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd)


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    return out, err


@pytest.fixture(scope="module")
def tiny_search_env(tmp_path_factory):
    from tests.helpers import make_archive

    root = tmp_path_factory.mktemp("search")
    data = make_archive(root / "data", speakers=16)
    grid = root / "bench" / "grid.toml"
    grid.parent.mkdir()
    grid.write_text(TINY_GRID)
    (root / "bench" / "thresholds.toml").write_text((ROOT / "bench" / "thresholds.toml").read_text())
    env = {**os.environ, "KWS_CACHE_DIR": str(root / "cache"), "KWS_PROGRESS": "0", "CI": "true"}
    return root, data, grid, env


def _storage_cases():
    url = os.environ.get(POSTGRES_ENV)
    return [pytest.param(None, id="journal"),
            pytest.param(url, id="postgresql", marks=pytest.mark.skipif(
                not url, reason=f"${POSTGRES_ENV} names no PostgreSQL server (.ci/run starts one)"))]


@pytest.mark.slow
@pytest.mark.parametrize("storage", _storage_cases())
def test_two_processes_share_one_study_and_each_trial_is_a_recorded_case(tiny_search_env, storage, tmp_path):
    """Two `kws search` processes on one study (a journal file, or PostgreSQL): the study
    ends with the trials asked for, no trial lost or run twice, each completed trial a
    history row with its own case id; running the search again finds it done."""
    import optuna

    from kws.matrix.history import read_history
    from kws.search.storage import open_storage
    from kws.search.study import load_existing

    root, data, grid, env = tiny_search_env
    # A server keeps studies between runs: each run has its own name, and removes it.
    study = f"two-{os.getpid()}-{time.time_ns() % 10**9}"
    results = tmp_path / "results"
    argv = ["search", "--study", study, "--tier", "smoke", "--grid", str(grid), "--data-dir", str(data),
            "--results", str(results), "--pathways", "p,c", "--maximise", "accuracy",
            "--minimise", "latency:ethos-u55-256", "--max-drop", "99", "--trials", "4",
            *(["--storage", storage] if storage else [])]
    first, second = _kws(*argv, "--worker", "0", env=env), _kws(*argv, "--worker", "1", env=env)
    (out, _), _ = _finish(first), _finish(second)

    trials = load_existing(study, storage, results).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and 4 <= len(trials) <= 5  # at most one extra: both asked at 3/4
    complete = [t for t in trials if t.state is optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(trials), [t.user_attrs.get("failure") for t in trials]
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    rows = [r for r in read_history(results / "history.jsonl") if (r.get("search") or {}).get("study") == study]
    assert sorted(r["case"] for r in rows) == sorted(f"search-{study}-t{n:04d}-seed0" for n in numbers)
    assert all(r["tier"] == "smoke" and r["grid_case"].startswith(("p-", "c-")) for r in rows)
    assert "on the feasible front" in out and "| point " in out
    # The trials are in the summary (naming the point each ran), the plots and the report.
    summary = (results / "summary.md").read_text()
    assert all(f"| search-{study}-t{n:04d} = " in summary for n in numbers)
    assert (results / "report.html").is_file() and list((results / "plots").glob("*.png"))

    again = _kws(*argv, env=env)
    out, err = _finish(again)
    assert f"{len(trials)}/4 trials done" in err or "4/4 trials done" in err
    assert len(load_existing(study, storage, results).get_trials()) == len(trials)  # nothing run again

    shown = subprocess.run([sys.executable, "-m", "kws.cli", "search", "show", study, "--results", str(results),
                            "--json", *(["--storage", storage] if storage else [])],
                           capture_output=True, text=True, env=env, check=True)
    assert json.loads(shown.stdout) and all("point" in t for t in json.loads(shown.stdout))
    if storage:
        optuna.delete_study(study_name=study, storage=open_storage(storage, results, study))


def test_optuna_dashboard_reads_the_journal_of_a_study(tmp_path):
    """The command the search prints (`optuna-dashboard results/search/STUDY.journal`)
    serves the study."""
    import socket
    import urllib.request

    from kws.search.study import open_study

    open_study(_spec(tmp_path))
    journal = tmp_path / "results" / "search" / "s1.journal"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    server = subprocess.Popen([str(dashboard), str(journal), "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.load(response)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"optuna-dashboard did not serve: {server.stderr.read()}") from None
                time.sleep(0.5)
        assert [(s["study_name"], s["directions"]) for s in studies["study_summaries"]] == [("s1", ["maximize"])]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_trial_whose_training_diverges_fails_with_its_reason_and_the_search_goes_on(tiny_search_env, tmp_path):
    import optuna

    from kws.search.study import load_existing

    root, data, _, env = tiny_search_env
    grid = tmp_path / "bench" / "grid.toml"
    grid.parent.mkdir()
    # A fine-tuning rate that overflows float32 weights in one Adam step: every loss goes NaN.
    grid.write_text(TINY_GRID.replace("finetune_epochs = 1", "finetune_epochs = 1\nfinetune_learning_rate = 1e38"))
    (grid.parent / "thresholds.toml").write_text((ROOT / "bench" / "thresholds.toml").read_text())
    results = tmp_path / "results"
    out, err = _finish(_kws("search", "--study", "nan", "--tier", "smoke", "--grid", str(grid), "--data-dir", str(data),
                            "--results", str(results), "--pathways", "p", "--maximise", "accuracy",
                            "--trials", "2", env=env))
    trials = load_existing("nan", None, results).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    assert all("TrainingDivergedError" in t.user_attrs["failure"] for t in trials)
    assert "kws search: trial 0 failed: TrainingDivergedError" in err
    assert "2/2 trials (2 failed), 0 on the feasible front" in out


@pytest.mark.slow
def test_a_search_on_a_users_model_samples_that_models_layers(tiny_search_env, tmp_path):
    """``--model``: the trials run on the factory's model, and the per-layer filter ratios
    are one per Conv2D of that model (two), not DS-CNN's five."""
    from kws.matrix.history import read_history
    from kws.search.study import load_existing

    root, data, grid, env = tiny_search_env
    results = tmp_path / "results"
    _finish(_kws("search", "--study", "mine", "--tier", "smoke", "--grid", str(grid), "--data-dir", str(data),
                 "--results", str(results), "--model", "tests.zoo:plain_cnn", "--pathways", "lfilter",
                 "--maximise", "accuracy", "--minimise", "size", "--trials", "1",
                 env={**env, "PYTHONPATH": str(ROOT)}))
    (trial,) = load_existing("mine", None, results).get_trials()
    assert sorted(trial.params) == ["filter_ratios.conv_a", "filter_ratios.conv_b"]
    (row,) = read_history(results / "history.jsonl")
    assert row["model"] == "plain-cnn" and row["spec"]["model_source"]["factory"] == "tests.zoo:plain_cnn"


def test_compare_finds_the_fastest_trial_within_the_limit_and_the_hypervolume_ratio(tmp_path):
    import optuna

    from kws.search.compare import Reference, check_comparable, compare
    from kws.search.study import open_study

    def study(name, sampler, trials):
        s = open_study(_spec(tmp_path, study=name, sampler=sampler, pathways=("p", "pqat"),
                             objectives=tuple(parse_objectives(["accuracy"], ["latency"], targets=[U55]))))
        for accuracy, us, drop_high in trials:
            figures = {"accuracy": accuracy, "drop": 0.94 - accuracy, "drop_interval": [0.0, drop_high],
                       "vela_us": {U55: us}}
            s.add_trial(optuna.trial.create_trial(values=[accuracy, us], user_attrs={
                "pathway": "p", "point": {"sparsity": 0.5}, "constraints": [drop_high - 0.01], "figures": figures}))
        return s

    tpe = study("a", "tpe", [(0.935, 100.0, 0.009), (0.93, 90.0, 0.012), (0.92, 80.0, 0.03)])
    rnd = study("b", "random", [(0.93, 110.0, 0.012), (0.92, 95.0, 0.03)])
    check_comparable({"a": tpe, "b": rnd})
    refs = {U55: Reference(U55, qat_us=115.0, baseline_accuracy=0.94)}
    result = compare({"a": tpe, "b": rnd}, refs, max_drop_pp=1.0)
    fastest = result["studies"]["a"]["targets"][U55]["fastest"]
    assert (fastest["trial"], fastest["latency_us"]) == (0, 100.0)  # t1 is faster but beyond 1 pp
    assert result["studies"]["b"]["targets"][U55]["fastest"] is None
    assert result["studies"]["a"]["sampler"] == "tpe" and result["studies"]["a"]["targets"][U55]["feasible_trials"] == 1
    assert result["hypervolume_ratio"][U55] > 1 and result["hypervolume_feasible_ratio"][U55] is None
    other = open_study(_spec(tmp_path, study="c", pathways=("p",),
                             objectives=tuple(parse_objectives(["accuracy"], ["latency"], targets=[U55]))))
    with pytest.raises(SearchError, match="studies a and c differ in pathways"):
        check_comparable({"a": tpe, "c": other})
