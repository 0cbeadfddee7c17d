"""Pareto fronts and ``kws recommend`` on histories whose right answer is known: rows in
the current (schema 2) layout, built from real case records and written by the history's
own writer; then the command on the committed ``results/history.jsonl``."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from kws.advisor import (
    FIGURES,
    OBJECTIVES,
    Constraints,
    Domination,
    HistoryError,
    UnknownObjectiveError,
    UnknownTargetError,
    candidates,
    default_data,
    dominates,
    load_history,
    pareto_front,
    recommend,
)
from kws.cli import main
from kws.matrix.history import append_history, read_history
from kws.record import SCHEMA_VERSION, CaseRecord
from kws.stats import accuracy_interval, mean_interval

ROOT = Path(__file__).resolve().parent.parent
TARGET = "ethos-u55-256"
#: Test clips behind the crafted accuracies: Wilson half-widths of about 2.2 pp at 85%.
N_TEST = 1000
DATA = "synth-test"


def _row(case: str, *, correct: int, gzip: float, us: float | None = 115.0, weights: float = 24_000,
         flash: float = 30_000, sram: float = 22_000, retrain: float = 10.0, drop: float = 0.0,
         drop_half: float = 0.01, tier: str = "smoke", data: str = DATA, export: str = "int8",
         time: str = "2026-11-30T00:00:00+00:00") -> dict:
    """A history row as the session writes it: a case record's row plus where and when.
    ``us=None``: no Vela estimate (a model that does not deploy as int8)."""
    pathway, _, seed = case.rpartition("-seed")
    pathway = pathway.split("-")[0]
    accuracy = correct / N_TEST
    metrics = {
        "deployed_accuracy": accuracy, "accuracy_drop": drop, "gzip_bytes": gzip, "retrain_s": retrain,
        "n_test": N_TEST, "intervals": {"deployed_accuracy": accuracy_interval(correct, N_TEST).to_list(),
                                        "accuracy_drop": [drop - drop_half, drop + drop_half]}}
    if us is not None:
        metrics["vela"] = {TARGET: {"inference_us": us, "encoded_weight_bytes": weights, "flash_bytes": flash,
                                    "sram_bytes": sram, "cycles_npu": int(us * 500), "npu_ops": 12, "cpu_ops": []}}
    record = CaseRecord(pathway=pathway, family="test", point={}, spec={"model": "ds-cnn-s", "seed": int(seed)},
                        model="ds-cnn-s", export=export, metrics=metrics)
    return {**record.row(), "schema": SCHEMA_VERSION, "time": time, "commit": "abc", "dirty": False, "tier": tier,
            "case": case, "config_key": f"key-{case}", "data_id": data, "eval_data": None, "machine": {},
            "verdicts": {}}


def _history(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "results" / "history.jsonl"
    append_history(path, rows)
    return path


def _pool(rows: list[dict], target: str | None = TARGET):
    return {c.point: c for c in candidates(rows, tier="smoke", data_id=DATA, target=target)}


#: ptq_int8 at 85.0% has the Wilson interval [82.7, 87.0]: cqat at 86.5% lies inside it,
#: qat at 88.0% beyond it. Both are larger than ptq_int8 and retrain longer; between
#: the two, qat is smaller and cqat retrains faster.
FRONT_ROWS = [
    _row("ptq_int8-seed0", correct=850, gzip=30_000, retrain=0.0),
    _row("cqat-c16-seed0", correct=865, gzip=30_500, retrain=12.0),
    _row("qat-seed0", correct=880, gzip=30_400, retrain=15.0),
    _row("p-s0.50-seed0", correct=800, gzip=24_000, weights=16_000, flash=22_000, us=113.0, sram=20_600,
         retrain=7.0, drop=0.05),
    _row("ptq_fp16-seed0", correct=851, gzip=45_000, us=None, retrain=0.0, export="float16"),
]


def test_the_crafted_accuracies_sit_where_the_front_tests_need_them():
    low, high = accuracy_interval(850, N_TEST)
    assert low < 0.865 <= high < 0.880


def test_a_more_accurate_case_within_the_dominators_noise_is_dominated_and_one_beyond_it_is_not():
    pool = _pool(FRONT_ROWS)
    assert dominates(pool["ptq_int8"], pool["cqat-c16"])
    assert not dominates(pool["ptq_int8"], pool["qat"])
    assert not dominates(pool["qat"], pool["cqat-c16"]) and not dominates(pool["cqat-c16"], pool["qat"])
    front = pareto_front([c for c in pool.values() if c.unavailable is None])
    assert front.points() == ["ptq_int8", "qat", "p-s0.50"]
    assert front.dominated == {"cqat-c16": Domination("ptq_int8", ("size", "retrain"))}


def test_accuracy_beyond_noise_is_a_strict_gain_and_within_noise_is_none():
    better = _pool([_row("qat-seed0", correct=900, gzip=30_000), _row("ptq_int8-seed0", correct=850, gzip=30_000)])
    assert dominates(better["qat"], better["ptq_int8"])  # equal elsewhere, 90% [88.0, 91.7] beats 85%
    tied = _pool([_row("qat-seed0", correct=855, gzip=30_000), _row("ptq_int8-seed0", correct=850, gzip=30_000)])
    assert not dominates(tied["qat"], tied["ptq_int8"]) and not dominates(tied["ptq_int8"], tied["qat"])
    assert pareto_front(list(tied.values())).points() == ["qat", "ptq_int8"]


def test_a_front_over_the_size_objective_alone_is_the_smallest():
    pool = [c for c in _pool(FRONT_ROWS).values() if c.unavailable is None]
    assert pareto_front(pool, ["size"]).points() == ["p-s0.50"]
    with pytest.raises(UnknownObjectiveError, match="unknown objective 'speed'; valid: accuracy, size"):
        pareto_front(pool, ["speed"])


def test_a_case_without_a_vela_estimate_is_no_candidate_for_the_target_and_says_why():
    rec = recommend(FRONT_ROWS, target=TARGET)
    fp16 = rec.assessment("ptq_fp16")
    assert not fp16.eligible and fp16.rank is None
    assert fp16.ruled_out == "no Vela estimate for ethos-u55-256 (deploys as float16)"
    assert fp16.candidate.value("latency") is None and "ptq_fp16" not in rec.front.points()
    assert rec.assessments[-1] is fp16
    # Without a target it is a candidate, ranked on size, and the Vela figures are left out.
    free = recommend(FRONT_ROWS, target=None, constraints=Constraints(max_drop_pp=None))
    assert free.objective.name == "size" and free.assessment("ptq_fp16").eligible
    assert free.assessment("ptq_int8").candidate.value("flash") is None
    assert set(free.front.objectives) == {"accuracy", "size", "retrain"}


def test_seeds_fold_into_one_candidate_from_each_cases_newest_row(tmp_path):
    old = _row("pqat-s0.50-seed0", correct=500, gzip=99_000, time="2026-11-29T00:00:00+00:00")
    seeds = [_row(f"pqat-s0.50-seed{s}", correct=c, gzip=g, us=u, retrain=r)
             for s, c, g, u, r in ((0, 800, 24_000, 113.0, 10.0), (1, 820, 24_100, 113.2, 12.0),
                                   (2, 840, 24_200, 113.4, 14.0))]
    rows, _ = load_history(_history(tmp_path, [old, *seeds, _row("ptq_int8-seed0", correct=850, gzip=30_000)]))
    pool = _pool(rows)
    assert list(pool) == ["pqat-s0.50", "ptq_int8"]
    pqat = pool["pqat-s0.50"]
    assert pqat.cases == ("pqat-s0.50-seed0", "pqat-s0.50-seed1", "pqat-s0.50-seed2") and pqat.seeds == 3
    mean, interval = mean_interval([0.80, 0.82, 0.84])
    assert pqat.value("accuracy") == pytest.approx(0.82) == pytest.approx(mean)
    assert pqat.interval("accuracy") == pytest.approx((interval.low, interval.high))
    assert pqat.interval("accuracy")[1] - pqat.interval("accuracy")[0] > 0.04  # across seeds, not one run's
    assert pqat.value("size") == pytest.approx(24_100) and pqat.value("latency") == pytest.approx(113.2)
    assert pqat.value("retrain") == pytest.approx(12.0) and pqat.value("flash") == 30_000


def test_the_choice_is_the_fastest_within_the_limits_ties_to_accuracy_then_size():
    rows = [_row("c-c16-seed0", correct=840, gzip=26_000, us=114.0),
            _row("cqat-c16-seed0", correct=860, gzip=26_500, us=114.0),
            _row("cpcqat-c16-seed0", correct=860, gzip=26_400, us=114.0),
            _row("p-s0.50-seed0", correct=800, gzip=24_000, us=113.0, drop=0.05),
            _row("ptq_int8-seed0", correct=850, gzip=30_000, us=115.0)]
    rec = recommend(rows)
    assert rec.objective.name == "latency" and rec.constraints.max_drop_pp == 1.0
    assert (rec.choice.point, rec.runner_up.point) == ("cpcqat-c16", "cqat-c16")
    assert [a.candidate.point for a in rec.assessments] == ["cpcqat-c16", "cqat-c16", "c-c16", "ptq_int8", "p-s0.50"]
    assert rec.assessment("p-s0.50").ruled_out == ("int8 accuracy drop upper end 6.00 pp > 1.00 pp")
    assert rec.binding is None and rec.closest == ()
    assert recommend(rows, objective="size").choice.point == "c-c16"
    assert recommend(rows, objective="accuracy").choice.point == "cpcqat-c16"
    assert recommend(rows, objective="retrain", constraints=Constraints(max_retrain_s=5)).choice is None


def test_the_drop_is_judged_on_its_upper_end_unless_lenient():
    rows = [_row("qat-seed0", correct=860, gzip=30_000, drop=0.005, drop_half=0.01),
            _row("ptq_int8-seed0", correct=850, gzip=30_000, us=116.0, drop=0.0, drop_half=0.0)]
    strict = recommend(rows)
    assert strict.choice.point == "ptq_int8"
    assert strict.assessment("qat").ruled_out == "int8 accuracy drop upper end 1.50 pp > 1.00 pp"
    assert recommend(rows, constraints=Constraints(lenient=True)).choice.point == "qat"
    # The accuracy floor is judged on the lower end: 86.0% [83.7, 88.0] is not surely 85%.
    floor = Constraints(max_drop_pp=None, min_accuracy_pct=85.0)
    assert recommend(rows, constraints=floor).choice is None
    assert recommend(rows, constraints=Constraints(max_drop_pp=None, min_accuracy_pct=85.0, lenient=True)
                     ).choice.point == "qat"


def test_when_nothing_fits_the_limit_whose_removal_admits_most_is_named():
    rows = [_row("p-s0.50-seed0", correct=800, gzip=24_000, us=113.0, drop=0.05),
            _row("pc-s0.50-c16-seed0", correct=790, gzip=23_000, us=112.9, drop=0.06),
            _row("pcqat-s0.50-c32-seed0", correct=780, gzip=24_500, us=113.1, drop=0.07),
            _row("ptq_int8-seed0", correct=850, gzip=30_000, us=115.0),
            _row("qat-seed0", correct=855, gzip=30_800, us=115.4)]
    rec = recommend(rows, constraints=Constraints(max_drop_pp=1.0, max_size_kb=25.0))
    assert rec.choice is None and rec.runner_up is None
    # Lifting the drop limit admits three, lifting the size limit two.
    assert rec.binding.limit == "max_drop_pp" and rec.binding.bound == 1.0
    assert rec.binding.admits == ("p-s0.50", "pc-s0.50-c16", "pcqat-s0.50-c32")
    # Closest first: one limit missed by 20% (ptq_int8: 30 KB for 25) before 23% (qat).
    assert [a.candidate.point for a in rec.closest] == ["ptq_int8", "qat", "p-s0.50"]
    assert rec.closest[0].ruled_out == "gzip size 30.00 KB > 25.00 KB"


def test_when_every_candidate_misses_two_limits_the_closest_ones_worst_miss_binds():
    rows = [_row("p-s0.50-seed0", correct=800, gzip=24_000, us=113.0, retrain=3.0, drop=0.05),
            _row("ptq_int8-seed0", correct=850, gzip=30_000, us=115.0, retrain=20.0, drop=0.05)]
    rec = recommend(rows, constraints=Constraints(max_drop_pp=1.0, max_size_kb=20.0, max_retrain_s=5.0))
    assert rec.choice is None and rec.binding.admits == ()
    # p-s0.50 misses two limits (drop, size), ptq_int8 three: p-s0.50 is closest, and
    # misses the drop (6 pp against 1 pp) by far more than the size (24 KB against 20 KB).
    assert [a.candidate.point for a in rec.closest] == ["p-s0.50", "ptq_int8"]
    assert rec.binding.limit == "max_drop_pp"


def test_an_empty_history_is_an_error(tmp_path):
    with pytest.raises(HistoryError, match="the history is empty"):
        recommend([])
    (tmp_path / "history.jsonl").write_text("")
    with pytest.raises(HistoryError, match=r"history\.jsonl is empty: no benchmark case has been recorded"):
        load_history(tmp_path / "history.jsonl")
    with pytest.raises(HistoryError, match="no history at .*absent.jsonl"):
        load_history(tmp_path / "absent.jsonl")


@pytest.mark.parametrize("content", [
    json.dumps({"name": "ds-cnn-s", "metrics": {"accuracy": 0.9}}) + "\n",  # one JSON object, not a row
    json.dumps({"rows": [1, 2]}, indent=2),  # a pretty-printed JSON file
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",  # not text at all
], ids=["json-object", "json-file", "binary"])
def test_a_foreign_file_is_not_taken_for_a_history(tmp_path, content):
    path = tmp_path / "other.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(HistoryError, match=r"other\.json is not a benchmark history"):
        load_history(path)


def test_an_unknown_target_names_the_targets_the_history_has():
    with pytest.raises(UnknownTargetError, match=r"target 'ethos-u65-256' .* it has ethos-u55-256$"):
        recommend(FRONT_ROWS, target="ethos-u65-256")
    floats = [r for r in FRONT_ROWS if r["pathway"] == "ptq_fp16"]
    with pytest.raises(UnknownTargetError, match="it has no Vela estimates at all"):
        recommend(floats)


def test_unknown_objectives_tiers_and_data_are_errors_that_name_the_valid_ones():
    with pytest.raises(UnknownObjectiveError, match="unknown objective 'speed'; valid: accuracy, size, weights"):
        recommend(FRONT_ROWS, objective="speed")
    with pytest.raises(HistoryError, match="no rows of tier 'paper'; it has smoke"):
        recommend(FRONT_ROWS, tier="paper")
    with pytest.raises(HistoryError, match=f"no rows of tier 'smoke' on data 'other'; it has data {DATA}"):
        recommend(FRONT_ROWS, data_id="other")
    with pytest.raises(ValueError, match="objective 'flash' is a Vela figure: it needs a target"):
        recommend(FRONT_ROWS, target=None, objective="flash")


def test_the_default_data_is_the_tiers_newest():
    rows = [_row("qat-seed0", correct=850, gzip=1, data="old", time="2026-11-01T00:00:00+00:00"),
            _row("qat-seed0", correct=850, gzip=1, data="new", time="2026-11-02T00:00:00+00:00"),
            _row("qat-seed0", correct=850, gzip=1, data="nightly-data", tier="nightly",
                 time="2026-11-03T00:00:00+00:00")]
    assert default_data(rows, "smoke") == "new" and default_data(rows, "nightly") == "nightly-data"
    assert recommend(rows).data_id == "new"


def test_constraints_reject_values_that_cannot_be_limits():
    with pytest.raises(ValueError, match="min_accuracy_pct must be in \\[0, 100\\], got 120"):
        Constraints(min_accuracy_pct=120)
    with pytest.raises(ValueError, match="max_size_kb must be >= 0, got -1"):
        Constraints(max_size_kb=-1)
    with pytest.raises(ValueError, match="max_latency_us must be a finite number or None, got nan"):
        Constraints(max_latency_us=float("nan"))


# ----- the command ---------------------------------------------------------------------------


def test_the_command_prints_the_choice_the_runner_up_and_every_candidate(tmp_path, capsys):
    path = _history(tmp_path, FRONT_ROWS)
    assert main(["recommend", "--results", str(path.parent), "--minimise", "size", "--max-drop", "10"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1] == "For target ethos-u55-256: minimise size (gzip size)"
    assert lines[3] == "  --max-drop: int8 accuracy drop <= 10.00 pp, judged on the upper end of its 95% interval"
    assert lines[5].startswith("Choice:    p-s0.50 (p, 1 seed): size 24.00 KB, accuracy 80.00% [")
    assert lines[7].startswith("Runner-up: ptq_int8 (1 seed): size 30.00 KB, accuracy 85.00% [82.65, 87.08], ")
    assert "Retraining cost of the choice: 7.0 s of fine-tuning" in out
    table = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert "dominated by ptq_int8 (better on size, retrain)" in table["cqat-c16"]
    assert "no Vela estimate for ethos-u55-256 (deploys as float16)" in table["ptq_fp16"]
    assert table["p-s0.50"].rstrip(" |").endswith("CHOICE")


def test_the_command_exits_1_naming_the_binding_limit_when_nothing_fits(tmp_path, capsys):
    path = _history(tmp_path, FRONT_ROWS)
    assert main(["recommend", "--history", str(path), "--max-size-kb", "20"]) == 1
    out = capsys.readouterr().out
    assert "No pathway point meets the limits." in out
    assert "Binding limit: --max-size-kb 20: without it alone, 3 would qualify (ptq_int8, qat, cqat-c16)." in out


@pytest.mark.parametrize("argv, message", [
    (["--minimise", "size", "--maximise", "accuracy"], "give --minimise or --maximise, not both"),
    (["--target", "none", "--max-flash-kb", "30"], "--max-flash-kb is a Vela figure: it needs a --target"),
    (["--target", "none", "--minimise", "latency"], "--minimise latency is a Vela figure: it needs a --target"),
])
def test_conflicting_options_are_one_line_errors(tmp_path, capsys, argv, message):
    path = _history(tmp_path, FRONT_ROWS)
    assert main(["recommend", "--history", str(path), *argv]) == 2
    assert capsys.readouterr().err == f"kws recommend: error: {message}\n"


def test_the_command_names_a_foreign_file_and_a_missing_default_history(tmp_path, capsys, monkeypatch):
    (tmp_path / "model.json").write_text(json.dumps({"pathway": "qat"}))
    assert main(["recommend", "--history", str(tmp_path / "model.json")]) == 2
    assert "model.json is not a benchmark history: none of its 1 line(s) is a history row" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["recommend"]) == 2
    assert capsys.readouterr().err == ("kws recommend: error: no history at results/history.jsonl: run the "
                                       "benchmark, or name the file\n")


def test_the_commands_tiers_and_objectives_are_the_librarys():
    from kws.cli import build_parser
    from kws.cli.recommend import TIERS
    from kws.matrix.grid import TIERS as GRID_TIERS

    assert TIERS == GRID_TIERS
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["recommend"]
    choices = {a.dest: list(a.choices) for a in sub._actions if a.choices}
    assert choices["minimise"] + choices["maximise"] == sorted(OBJECTIVES, key=lambda n: OBJECTIVES[n].maximise)
    assert choices["maximise"] == ["accuracy"]


def test_recommend_on_the_committed_history_chooses_a_real_pathway_with_its_rows_figures(tmp_path, capsys):
    """The committed history is copied first: a benchmark running meanwhile may append to it."""
    from kws.pathways.registry import PATHWAYS

    history = tmp_path / "history.jsonl"
    shutil.copyfile(ROOT / "results" / "history.jsonl", history)
    assert main(["recommend", "--history", str(history), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    choice = out["choice"]
    assert choice["pathway"] in PATHWAYS and out["target"] == TARGET and out["tier"] == "smoke"
    newest = {}
    for row in read_history(history):
        if row["tier"] == "smoke" and row.get("data_id") == out["data_id"]:
            newest[row["case"]] = row
    rows = [newest[case] for case in choice["cases"]]
    assert rows and all(r["pathway"] == choice["pathway"] for r in rows)
    checked = 0
    for name, figure in FIGURES.items():
        values = [figure.spec.value(r["metrics"], TARGET) for r in rows]
        assert choice["figures"][name] == pytest.approx(statistics.fmean(values), rel=1e-12), name
        checked += 1
    assert checked == len(FIGURES) and choice["figures"]["latency"] > 0
    # It meets the default limit on the evidence, and nothing eligible is faster.
    assert 100 * choice["intervals"]["drop"][1] <= 1.0
    eligible = [c for c in out["candidates"] if c["eligible"]]
    assert eligible[0]["point"] == choice["point"]
    assert all(c["figures"]["latency"] >= choice["figures"]["latency"] for c in eligible)
    assert out["runner_up"] is None or out["runner_up"]["point"] == eligible[1]["point"]
