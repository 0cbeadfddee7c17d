"""The benchmark matrix itself: case ids, the grid and thresholds files, the checks'
messages, the history and gate, the summary, and the pytest plugin through ``pytester``
(``--help``, ``--collect-only`` ids per tier, a real end-to-end session with the gate)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from kws.matrix.checks import (
    CHECKS,
    CheckFailed,
    applicable,
    check_accuracy,
    check_clusters,
    check_size,
)
from kws.matrix.grid import Case, GridError, generate, load_grid, slug
from kws.matrix.history import append_history, gate, read_history
from kws.matrix.report import point_of, render
from kws.matrix.thresholds import GateLimits, Limits, ThresholdsError, load_thresholds
from kws.pathways.axes import Point
from kws.pathways.registry import PATHWAYS
from kws.pipeline import RunSpec
from kws.record import CaseRecord
from tests.helpers import make_archive

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "bench" / "grid.toml"
THRESHOLDS = ROOT / "bench" / "thresholds.toml"
MATRIX_TESTS = ROOT / "bench" / "test_matrix.py"


# ----- case ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("pathway, point, seed, expected", [
    ("pcqat", Point(sparsity=0.5, clusters=16), 0, "pcqat-s0.50-c16-seed0"),
    ("pcqat", Point(sparsity=0.875, clusters=32, schedule="polynomial"), 2, "pcqat-s0.875-poly-c32-seed2"),
    ("p", Point(sparsity=0.75), 0, "p-s0.75-seed0"),
    ("p24qat", Point(), 1, "p24qat-seed1"),
    ("ptq_int8", Point(), 0, "ptq_int8-seed0"),
    ("alpha", Point(alpha=0.5), 0, "alpha-a0.50-seed0"),
    ("cqat", Point(clusters=8, sparsity=0.9), 0, "cqat-c8-seed0"),  # sparsity not taken
    ("filter", Point(sparsity=0.5), 0, "filter-s0.50-seed0"),
])
def test_slug_names_the_pathway_its_hyperparameters_and_the_seed(pathway, point, seed, expected):
    assert slug(pathway, point, seed) == expected


def test_the_smoke_ids_are_stable():
    """Slugs are the keys of results/: changing one orphans its history."""
    smoke = [c.slug for c in generate(load_grid(GRID)["smoke"])]
    assert smoke == [
        "ptq_dynamic-seed0", "ptq_fp16-seed0", "ptq_int8-seed0", "qat-seed0", "p-s0.50-seed0",
        "c-c16-seed0", "pc-s0.50-c16-seed0", "pqat-s0.50-seed0", "cqat-c16-seed0",
        "pcqat-s0.50-c32-seed0", "p24-seed0", "p24qat-seed0", "cpc-c16-seed0", "cpcqat-c16-seed0",
        "alpha-a0.50-seed0", "filter-s0.50-seed0", "filterqat-s0.50-seed0"]


def test_the_nightly_grid_takes_only_the_axes_each_pathway_uses():
    cases = generate(load_grid(GRID)["nightly"])
    own = [c for c in cases if not c.model_label]  # DS-CNN-S, the tier's own model
    per_seed = {
        name: sum(1 for c in own if c.pathway == name and c.seed == 0) for name in PATHWAYS}
    # sparsity 3 x schedule 2 x clusters 3; no axis for qat, ptq, 2:4.
    assert per_seed["pcqat"] == per_seed["pc"] == 18
    assert per_seed["p"] == per_seed["pqat"] == 6
    assert per_seed["c"] == per_seed["cqat"] == per_seed["cpc"] == 3
    assert per_seed["qat"] == per_seed["p24qat"] == per_seed["ptq_int8"] == 1
    assert per_seed["alpha"] == 2 and per_seed["filter"] == 3
    # The points `kws search promote` added to the tier, beside the product of its axes.
    assert per_seed["lfilterqat"] == 3 and per_seed["lfilter"] == per_seed["lfilter24qat"] == 0
    assert len(own) == 3 * sum(per_seed.values()) == 231
    # DS-CNN-M and -L at the study's QAT-family points, seed 0: ptq_int8, qat, pqat 50%,
    # cqat 16, pcqat 50% with 8 and 32 clusters.
    assert sorted(c.slug for c in cases if c.model_label == "dsl") == [
        "cqat-c16-dsl-seed0", "pcqat-s0.50-c32-dsl-seed0", "pcqat-s0.50-c8-dsl-seed0", "pqat-s0.50-dsl-seed0",
        "ptq_int8-dsl-seed0", "qat-dsl-seed0"]
    assert len(cases) == 231 + 2 * 6
    assert len({c.slug for c in cases}) == len(cases)


def test_what_marks_and_rows_carry_is_plain_data_that_crosses_xdist():
    from execnet.gateway_base import dumps

    cases = generate(load_grid(GRID)["nightly"])
    assert all(type(c.family) is str and type(c.export) is str and type(c.group) is str for c in cases)
    dumps(_result(deployed_accuracy=0.5, vela={"ethos-u55-256": {"inference_us": 1.0}}).row())


def test_a_row_keeps_vela_advice_short_and_leaves_the_traffic_detail_to_the_record():
    fused = "ds-cnn-s/quant_pw_1_relu/Relu;ds-cnn-s/quant_pw_1_bn/FusedBatchNormV3;ds-cnn-s/quant_pw_1/Conv2D1"
    estimate = {"inference_us": 96.0, "sram_traffic_bytes": 110360,
                "traffic": [{"memory": "sram", "total_bytes": 110360, "weight_read_bytes": 13600}],
                "low_utilisation": [{"name": fused, "op": "Conv2D", "cycles": 2936,
                                     "cycles_share": 0.0911206976816362, "mac_utilisation": 4.789679836512262}],
                "cpu_ops": []}
    record = _result(vela={"ethos-u55-256": estimate})
    row = record.row()["metrics"]["vela"]["ethos-u55-256"]
    assert "traffic" not in row and row["sram_traffic_bytes"] == 110360 and row["inference_us"] == 96.0
    assert row["low_utilisation"] == [{"name": "pw_1", "op": "Conv2D", "cycles": 2936, "cycles_share": 0.091,
                                       "mac_utilisation": 4.8}]
    assert record.to_dict()["metrics"]["vela"]["ethos-u55-256"] == estimate  # the record keeps it whole


def test_cases_sharing_a_tree_prefix_share_an_xdist_group():
    cases = {c.slug: c for c in generate(load_grid(GRID)["nightly"])}
    prune = cases["p-s0.50-seed0"].group
    assert cases["pc-s0.50-c8-seed0"].group == cases["pqat-s0.50-seed0"].group == prune
    assert cases["pcqat-s0.50-c32-seed0"].group == prune
    assert cases["p-s0.75-seed0"].group != prune  # another prune stage
    assert cases["p-s0.50-seed1"].group != prune  # another seed: another baseline
    assert cases["cqat-c16-seed0"].group == cases["c-c16-seed0"].group != cases["c-c8-seed0"].group


# ----- the grid and thresholds files --------------------------------------------------------


F8K = "mlperf-tiny,sample_rate=8000,num_mel_bins=16"


def test_a_front_end_variant_runs_every_case_again_with_its_own_id_input_and_baseline(tmp_path):
    """The front-end axis: each front-end of a tier is a variant with its id fragment; the
    model's input follows its features, so its cases train and cache their own baseline."""
    variant = f"pathways = [\"ptq_int8\", \"qat\"]\n[tiers.smoke.frontends]\nf8k = \"{F8K}\"\n[tiers.smoke.axes]"
    path = _write(tmp_path / "grid.toml", GOOD_TIER.replace("[tiers.smoke.axes]", variant))
    cases = generate(load_grid(path)["smoke"])
    assert [c.slug for c in cases] == ["ptq_int8-seed0", "qat-seed0", "ptq_int8-fef8k-seed0", "qat-fef8k-seed0"]
    default, f8k = cases[0], cases[2]
    assert default.spec.model.input_shape == (49, 10, 1) and f8k.spec.model.input_shape == (24, 10, 1)
    assert default.config_key("d") != f8k.config_key("d") and default.group != f8k.group
    assert point_of(f8k.slug) == "ptq_int8-fef8k"
    # A check's yardstick is the variant's own qat case.
    session = _session_for(path)
    assert session.reference(cases[3], "ptq_int8").slug == "ptq_int8-fef8k-seed0"


def _session_for(grid: Path):
    from kws.matrix.session import MatrixSession

    return MatrixSession(tier=load_grid(grid)["smoke"], thresholds=load_thresholds(THRESHOLDS),
                         results_dir=grid.parent, project_root=ROOT)


@pytest.mark.slow
def test_each_front_end_trains_its_own_baseline_and_deploys_on_its_own_features(tmp_path):
    from kws.pipeline import Settings, run_case
    from kws.train import TrainConfig

    data = make_archive(tmp_path / "data", speakers=16)
    records = {fe: run_case("ptq_int8", spec=RunSpec(frontend=fe, data_dir=data, baseline=TrainConfig(epochs=1)),
                            settings=Settings(latency=True))
               for fe in ("mlperf-tiny", F8K)}
    default, f8k = records.values()
    assert default.keys["baseline"] != f8k.keys["baseline"] and default.trained_now == f8k.trained_now == ()
    assert f8k.spec["frontend"] == F8K and f8k.metrics["e2e_us"] > 0
    assert f8k.metrics["n_test"] == default.metrics["n_test"] > 0


def test_the_model_input_follows_the_front_end():
    assert RunSpec().model.input_shape == (49, 10, 1)
    assert RunSpec(frontend=F8K).model.input_shape == (24, 10, 1)
    spec = RunSpec(frontend="mlperf-tiny,sample_rate=8000,num_mel_bins=16,frame_length=320,frame_step=160")
    assert spec.model.input_shape == (49, 10, 1)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD_TIER = """
[tiers.smoke]
seeds = [0]
baseline_epochs = 1
finetune_epochs = 1
[tiers.smoke.axes]
sparsity = [0.5]
clusters = [8]
schedule = ["constant"]
alpha = [0.5]
"""


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("seeds = [0]", "seeds = [0]\npathways = [\"pqrs\"]"), r"unknown pathway\(s\) \['pqrs'\]"),
    (lambda t: t.replace("clusters = [8]", "clusters = [64]"), r"clusters must be in \[2, 40\]"),
    (lambda t: t.replace("sparsity = [0.5]", "sparsity = [1.5]"), "sparsity must be in"),
    (lambda t: t.replace("alpha = [0.5]", "alpha = [0.5]\nwidth = [1]"), r"unknown axis \['width'\]"),
    (lambda t: t.replace('schedule = ["constant"]', 'schedule = ["cubic"]'),
     "schedule must be one of constant, polynomial"),
    (lambda t: t.replace("finetune_epochs = 1", "finetune_epochs = 0"), "finetune_epochs must be an integer >= 1"),
    (lambda t: t.replace("seeds = [0]", "seeds = [0]\nepochs = 3"), r"unknown key\(s\) \['epochs'\]"),
    (lambda t: t.replace("[tiers.smoke.axes]", "[tiers.smoke.frontends]\n\"8 kHz\" = \"mlperf-tiny\"\n"
                                               "[tiers.smoke.axes]"), "label '8 kHz' must be 1-16 lower-case"),
    (lambda t: t.replace("[tiers.smoke.axes]", "[tiers.smoke.frontends]\nf8k = \"mlperf-tiny,sample_rate=7\"\n"
                                               "[tiers.smoke.axes]"), r"\[tiers.smoke\].frontends.f8k: .*sample_rate"),
    (lambda t: t.replace("[tiers.smoke.axes]", "[tiers.smoke.frontends]\nsame = \"mlperf-tiny\"\n"
                                               "[tiers.smoke.axes]"), "same: computes the same features as the tier's"),
    (lambda t: t.replace("[tiers.smoke.axes]", "[tiers.smoke.axes"), "not valid TOML"),
])
def test_a_bad_grid_names_the_file_and_the_entry(tmp_path, edit, message):
    path = _write(tmp_path / "grid.toml", edit(GOOD_TIER))
    with pytest.raises(GridError, match=message) as err:
        load_grid(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("[default]\naccuracy_drop = 1.0\n", r"\[default\]: unknown key\(s\) \['accuracy_drop'\]"),
    ("[default]\ngzip_ratio = \"big\"\n", "gzip_ratio: must be a float"),
    ("[pathway.pq]\ngzip_ratio = 1.0\n", r"\[pathway.pq\]: unknown pathway"),
    ("[tier.weekly]\ngzip_ratio = 1.0\n", r"\[tier.weekly\]: unknown tier"),
    ("[[known_failures]]\ncase = \"p-*\"\ncheck = \"speed\"\nreason = \"x\"\n", "unknown check 'speed'"),
    ("[[known_failures]]\ncase = \"p-*\"\ncheck = \"accuracy\"\n", r"missing \['reason'\]"),
])
def test_a_bad_thresholds_file_names_the_file_and_the_entry(tmp_path, text, message):
    path = _write(tmp_path / "thresholds.toml", text)
    with pytest.raises(ThresholdsError, match=message) as err:
        load_thresholds(path)
    assert str(path) in str(err.value)


def test_thresholds_resolve_default_then_tier_then_pathway_then_both():
    t = load_thresholds(THRESHOLDS)
    assert t.limits("nightly", "qat").accuracy_drop_pp == t.default.accuracy_drop_pp == 1.0
    assert t.limits("paper", "qat").accuracy_drop_pp == 0.5
    assert t.limits("nightly", "p").gzip_ratio == 0.9
    assert t.limits("smoke", "p").accuracy_drop_pp == 1.0
    assert t.limits("smoke", "p").gzip_ratio == 0.9
    assert t.known_failure("alpha-a0.50-seed0", "accuracy", "smoke") is not None
    assert t.known_failure("c-c16-seed0", "accuracy", "nightly") is not None
    assert t.known_failure("c-c16-seed0", "accuracy", "smoke") is None  # nightly only
    assert t.known_failure("p-s0.50-seed0", "accuracy", "smoke") is None
    assert t.known_failure("pcqat-s0.875-c16-seed1", "accuracy", "nightly") is not None
    assert t.known_failure("pcqat-s0.875-c16-seed1", "size", "nightly") is None
    assert t.known_failure("filter-s0.50-seed0", "accuracy", "nightly") is not None


def test_accuracy_limits_come_from_the_sources_not_from_measurements():
    """1 pp for smoke and nightly, 0.5 pp for paper (the study's): a pathway that our recipe
    cannot hold within it is a known failure with its figure, never a looser limit."""
    t = load_thresholds(THRESHOLDS)
    source = {"smoke": 1.0, "nightly": 1.0, "paper": 0.5}
    for tier, limit in source.items():
        for pathway in PATHWAYS:
            assert t.limits(tier, pathway).accuracy_drop_pp <= limit, (tier, pathway)
    for known in t.known_failures:
        if known.check == "accuracy":
            assert " pp" in known.reason or "%" in known.reason, f"{known.case}: a known failure states its figure"


# ----- the checks ---------------------------------------------------------------------------


def _case(pathway: str, seed: int = 0, **axes) -> Case:
    return Case(pathway, Point(axes), "smoke", RunSpec(seed=seed))


def _result(**metrics) -> CaseRecord:
    return CaseRecord(pathway="x", metrics=metrics)


def test_checks_apply_only_where_they_mean_something():
    assert applicable(_case("p")) == ["accuracy", "sparsity", "size", "npu", "vela_latency", "vela_weights"]
    assert applicable(_case("cqat")) == ["accuracy", "clusters", "size", "npu", "vela_latency", "vela_weights"]
    assert applicable(_case("qat")) == ["accuracy", "size", "npu"]
    assert applicable(_case("ptq_fp16")) == ["accuracy", "size"]  # no NPU: float weights
    assert applicable(_case("ptq_int8")) == ["npu", "vela_latency", "vela_weights"]
    assert "sparsity" in applicable(_case("p24qat")) and "sparsity" not in applicable(_case("filter"))


def test_checks_read_the_stages_promises_not_pathway_names():
    assert _case("p24qat").promises == {"sparsity": 0.5}  # the 2:4 stage promises half zeros
    assert _case("pcqat", sparsity=0.75, clusters=8).promises == {"sparsity": 0.75, "clusters": 8}
    assert _case("filterqat", sparsity=0.5).promises == {}  # filter pruning keeps no zeros
    assert _case("cpcqat", clusters=16).promises == {"clusters": 16}
    # every check names its metric and its limits, which the thresholds file knows by name
    assert {k for c in CHECKS.values() for k in c.limits} == set(Limits())
    assert all(c.metric for c in CHECKS.values())


def _accuracy(deployed: float, baseline: float, low: float, high: float) -> CaseRecord:
    return _result(deployed_accuracy=deployed, baseline_int8_accuracy=baseline, accuracy_drop=baseline - deployed,
                   intervals={"accuracy_drop": [low, high]})


def test_a_failed_check_names_the_metric_the_value_the_limit_and_the_case():
    case = _case("p", sparsity=0.5)
    with pytest.raises(CheckFailed) as err:
        check_accuracy(case, _accuracy(0.8112, 0.8537, 0.0255, 0.0595), Limits(accuracy_drop_pp=1.0),
                       reference=_result(deployed_accuracy=0.8537))
    assert str(err.value) == ("p-s0.50-seed0: int8 accuracy drop = 4.25 pp [2.55, 5.95] (81.12% vs baseline int8 "
                              "85.37%; paired 95% interval), limit 1.00 pp (beyond it with 95% confidence)")
    with pytest.raises(CheckFailed, match=r"c-c8-seed0: unique int8 values per output channel = 10, "
                                          r"limit <= 9 \(8 clusters \+ 1\)"):
        check_clusters(_case("c", clusters=8), _result(max_unique_per_channel=10), Limits())
    with pytest.raises(CheckFailed, match=r"gzip size = 30,000 B \(1.000 x baseline int8 30,000 B\), "
                                          r"limit <= 27,000 B \(0.9 x\)"):
        check_size(_case("p"), _result(gzip_bytes=30_000), Limits(gzip_ratio=0.9),
                   reference=_result(gzip_bytes=30_000))


@pytest.mark.parametrize("low, high, outcome", [
    (0.001, 0.008, "pass"), (0.004, 0.016, "inconclusive"), (0.012, 0.03, "fail")])
def test_the_accuracy_check_decides_on_the_evidence(low, high, outcome, tmp_path, recwarn):
    from kws.matrix.checks import CheckInconclusive

    record, reference = _accuracy(0.84, 0.85, low, high), _result(deployed_accuracy=0.85)
    run = lambda: check_accuracy(_case("p"), record, Limits(), reference=reference)  # noqa: E731
    if outcome == "pass":
        run()
    else:
        with pytest.raises(CheckFailed if outcome == "fail" else CheckInconclusive, match="1.00 pp"):
            run()


def test_an_inconclusive_check_warns_and_fails_under_strict(tmp_path, monkeypatch):
    from kws.matrix.checks import InconclusiveWarning
    from kws.matrix.session import MatrixSession

    tier = load_grid(_write(tmp_path / "grid.toml", GOOD_TIER))["smoke"]
    case = next(c for c in generate(tier) if c.pathway == "p")
    results = {case.slug: _accuracy(0.84, 0.85, 0.004, 0.016),
               "ptq_int8-seed0": _result(deployed_accuracy=0.85)}
    for strict in (False, True):
        session = MatrixSession(tier, load_thresholds(THRESHOLDS.parent / "thresholds.toml"), tmp_path / "r", ROOT,
                                strict=strict)
        monkeypatch.setattr(session, "result", lambda c, results=results: results[c.slug])
        monkeypatch.setattr(session, "thresholds", load_thresholds(_write(tmp_path / "t.toml", "")))
        if strict:
            with pytest.raises(CheckFailed, match="inconclusive fails under --kws-strict"):
                session.check("accuracy", case)
        else:
            with pytest.warns(InconclusiveWarning, match="the interval straddles the limit"):
                session.check("accuracy", case)


def test_a_vela_check_names_the_target_the_values_and_the_yardstick():
    def vela(us):
        return _result(vela={"ethos-u55-256": {"inference_us": us, "npu_ops": 12, "cpu_ops": []}})

    with pytest.raises(CheckFailed) as err:
        CHECKS["vela_latency"].run(_case("p"), vela(120.0), Limits(), reference=vela(115.0),
                                   targets=("ethos-u55-256",))
    assert str(err.value) == ("p-seed0: Vela ethos-u55-256 latency = 120.00 us (1.043 x qat's 115.00 us), "
                              "limit <= 1.02 x qat's")


def test_a_check_with_nothing_to_check_fails_instead_of_passing():
    with pytest.raises(CheckFailed, match="metric sparsity is missing"):
        CHECKS["sparsity"].run(_case("p"), _result(sparsity=None), Limits())
    with pytest.raises(CheckFailed, match="no Vela estimate for target ethos-u55-256"):
        CHECKS["npu"].run(_case("p"), _result(vela={}), Limits(), targets=("ethos-u55-256",))


# ----- history, gate, summary ------------------------------------------------------------------


def _row(case="p-s0.50-seed0", key="k1", acc=0.85, gzip=25_000, us=113.0, tier="smoke", data="synth-x"):
    return {"time": "2026-11-22T00:00:00+00:00", "commit": "abc", "tier": tier, "case": case,
            "config_key": key, "data_id": data,
            "metrics": {"deployed_accuracy": acc, "gzip_bytes": gzip, "retrain_s": 10.0,
                        "vela": {"ethos-u55-256": {"inference_us": us}}}}


def test_the_gate_flags_each_kind_of_regression_against_the_median():
    earlier = [_row(acc=0.85), _row(acc=0.86), _row(acc=0.10)]  # median 0.85, robust to the outlier
    limits = GateLimits(accuracy_drop_pp=1.0, size_growth_pct=2.0, latency_growth_pct=5.0)
    assert gate([_row(acc=0.845)], earlier, limits) == []
    messages = sorted(gate([_row(acc=0.83, gzip=26_000, us=120.0)], earlier, limits))
    assert len(messages) == 3
    assert messages[2] == ("p-s0.50-seed0: int8 accuracy 83.00% is 2.00 pp below the median of 3 earlier run(s) "
                           "(85.00%), limit 1.0 pp")
    assert "gzip size 26,000 B is 4.0% above" in messages[1]
    assert "Vela ethos-u55-256 latency 120.00 us is 6.2% above" in messages[0]
    # Another configuration's history is not this one's yardstick.
    assert gate([_row(acc=0.5, key="k2")], earlier, limits) == []


def test_the_gate_flags_an_accuracy_drop_beyond_noise_and_not_one_within_it():
    from kws.stats import accuracy_interval

    def measured(acc):
        row = _row(acc=acc)
        row["metrics"]["intervals"] = {"deployed_accuracy": accuracy_interval(round(acc * 588), 588).to_list()}
        return row

    earlier = [measured(0.85), measured(0.85)]
    limits = GateLimits()
    assert gate([measured(0.83)], earlier, limits) == []  # 2 pp on 588 clips: inside the noise
    (message,) = gate([measured(0.75)], earlier, limits)
    assert message.startswith("p-s0.50-seed0: int8 accuracy 75.00% is 10.00 pp [")
    assert message.endswith("below the median of 2 earlier run(s) (85.00%), limit 1.0 pp: "
                            "beyond it with 95% confidence")


def test_history_appends_whole_lines_and_skips_a_damaged_one(tmp_path, caplog):
    path = tmp_path / "history.jsonl"
    append_history(path, [_row()])
    with path.open("a") as f:
        f.write('{"case": "half-writ')  # a crash in an older writer
    append_history(path, [_row(acc=0.9)])
    rows = read_history(path)
    assert [r["metrics"]["deployed_accuracy"] for r in rows] == [0.85, 0.9]
    assert "history.jsonl:2: unreadable history line skipped" in caplog.text


def test_the_history_keeps_the_newest_runs_of_each_configuration_and_archives_the_rest(tmp_path):
    import gzip

    from kws.matrix.history import ARCHIVE_FILE, KEEP_RUNS

    path = tmp_path / "history.jsonl"
    runs = [_row(acc=round(0.80 + i / 100, 2)) for i in range(KEEP_RUNS + 2)]
    append_history(path, runs[:KEEP_RUNS])
    append_history(path, [_row(key="k2", acc=0.5)])
    assert not (tmp_path / ARCHIVE_FILE).exists()  # nothing beyond the newest runs yet
    append_history(path, runs[KEEP_RUNS:KEEP_RUNS + 1])
    append_history(path, runs[KEEP_RUNS + 1:])
    kept = [(r["config_key"], r["metrics"]["deployed_accuracy"]) for r in read_history(path)]
    assert kept == [("k1", 0.82), ("k1", 0.83), ("k1", 0.84), ("k2", 0.5), ("k1", 0.85), ("k1", 0.86)]
    # The archive is one gzip member per rotation, read back as one file, oldest first.
    with gzip.open(tmp_path / ARCHIVE_FILE, "rt") as f:
        assert [json.loads(line)["metrics"]["deployed_accuracy"] for line in f] == [0.80, 0.81]
    # The same configuration on other data is another configuration.
    append_history(path, [_row(data="other")] * 2)
    assert sum(r["data_id"] == "other" for r in read_history(path)) == 2


def test_a_line_that_is_not_a_row_is_reported_with_its_number_and_the_rest_is_read(tmp_path):
    path = tmp_path / "history.jsonl"
    lines = [_row(), {"case": "x", "metrics": "oops"}, [1, 2], {**_row(), "schema": 99}, _row(acc=0.9)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    problems = []
    rows = read_history(path, problems)
    assert [r["metrics"]["deployed_accuracy"] for r in rows] == [0.85, 0.9]
    assert [p.split(": ", 2)[0] for p in problems] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "'tier' missing" in problems[0] and "schema 99" in problems[2]
    assert "## Tier `smoke`" in render(rows)  # the report is still written from the good rows


def test_the_summary_averages_seeds_marks_the_best_and_sits_beside_the_study():
    pqat = _row("pqat-s0.50-seed0", acc=0.82, gzip=24_950, us=113.7)
    pqat["metrics"].update(accuracy_drop=0.03, intervals={"deployed_accuracy": [0.79, 0.85],
                                                          "accuracy_drop": [0.01, 0.05]})
    pqat["verdicts"] = {"accuracy": "fail"}
    rows = [_row("qat-seed0", acc=0.86, gzip=30_880, us=115.4), _row("qat-seed1", acc=0.88, gzip=30_900, us=115.6),
            pqat, _row("ptq_int8-seed0", acc=0.85, gzip=30_730, us=114.9)]
    text = " ".join(render(rows).split())
    assert "## Tier `smoke` on `synth-x`" in text
    # Accuracy over 2 seeds: the mean and its Student-t interval; one run: its Wilson interval.
    assert "| qat | 2 | 30.89 ± 0.01 | **87.00 [74.29, 99.71]** | - | 115.50 ± 0.14 |" in text
    assert "| pqat-s0.50 | 1 | **24.95** | 82.00 [79.00, 85.00] | 3.00 [1.00, 5.00] ‡ | **113.70** |" in text
    assert "| PQAT (50%) | 25.18 | 24.95 | 94.51 | 82.00 | 113.42 | 113.70 |" in text
    assert point_of("pcqat-s0.50-c32-seed12") == "pcqat-s0.50-c32"


# ----- the plugin through pytester ---------------------------------------------------------------


def _options(*extra):
    # Inner sessions run inside an xdist worker under `make test`; pytest-benchmark would
    # warn there that it is disabled, which says nothing about the session under test.
    return ["-p", "kws.matrix.plugin", "-p", "no:cacheprovider",
            "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning", *extra]


def test_help_shows_the_kws_options(pytester):
    result = pytester.runpytest(*_options("--help"))
    result.stdout.fnmatch_lines(["*kws-pathways benchmark matrix*", "*--kws-tier=*", "*--kws-data-dir=DIR*",
                                 "*--kws-seeds=0,1,2*", "*--kws-vela-targets=T1,T2*", "*--kws-gate*",
                                 "*--kws-grid=TOML*", "*--kws-thresholds=TOML*", "*--kws-results=DIR*"])


def _collect(pytester, *extra):
    pytester.makepyfile(test_matrix=MATRIX_TESTS.read_text())
    return pytester.runpytest(*_options("--kws-grid", str(GRID), "--kws-thresholds", str(THRESHOLDS),
                                        "--collect-only", "-q", *extra))


def _ids(result, test="test_run") -> set[str]:
    prefix = f"test_matrix.py::{test}["
    return {line[len(prefix):-1] for line in result.outlines if line.startswith(prefix)}


def test_collect_only_lists_the_ids_of_each_tier(pytester, tmp_path):
    smoke = _collect(pytester)
    assert {"ptq_int8-seed0", "p24qat-seed0", "pcqat-s0.50-c32-seed0"} <= _ids(smoke)
    assert len(_ids(smoke)) == 17
    clusters = {i.removesuffix("-clusters") for i in _ids(smoke, "test_check") if i.endswith("-clusters")}
    assert clusters == {"c-c16-seed0", "pc-s0.50-c16-seed0", "cqat-c16-seed0", "pcqat-s0.50-c32-seed0",
                        "cpc-c16-seed0", "cpcqat-c16-seed0"}
    nightly = _collect(pytester, "--kws-tier", "nightly")
    assert nightly.ret == 0 and len(_ids(nightly)) == 243
    assert {"p-s0.875-poly-seed2", "pcqat-s0.50-c16-seed1", "alpha-a0.75-seed0",
            "lfilterqat-r20-00-25-35-60-seed2", "pcqat-s0.50-c8-dsl-seed0"} <= _ids(nightly)
    seeds = _collect(pytester, "--kws-tier", "nightly", "--kws-seeds", "5")
    assert len(_ids(seeds)) == 77 and "pcqat-s0.50-c16-seed5" in _ids(seeds)
    paper = _collect(pytester, "--kws-tier", "paper", "--kws-data-dir", str(tmp_path))
    assert "pcqat-s0.50-c32-seed0" in _ids(paper)
    assert not any(i.startswith("pcqat-s0.75") for i in _ids(paper))
    assert not any(i.startswith("p24") for i in _ids(paper))


def test_marks_select_a_family(pytester):
    assert _ids(_collect(pytester, "-m", "prune")) == {"p-s0.50-seed0", "p24-seed0"}
    assert _ids(_collect(pytester, "-k", "cqat")) == {"cqat-c16-seed0", "pcqat-s0.50-c32-seed0", "cpcqat-c16-seed0"}
    one = _collect(pytester, "-k", "pcqat and accuracy")
    assert _ids(one, "test_check") == {"pcqat-s0.50-c32-seed0-accuracy", "cpcqat-c16-seed0-accuracy"}
    assert not _ids(one)
    assert {i.rpartition("-")[2] for i in _ids(_collect(pytester, "-k", "sparsity"), "test_check")} == {"sparsity"}


@pytest.mark.parametrize("args, message", [
    (("--kws-tier", "paper"), "--kws-tier paper runs on real Speech Commands: give --kws-data-dir"),
    (("--kws-tier", "weekly"), "argument --kws-tier: invalid choice: 'weekly'"),
    (("--kws-seeds", "0,x"), "'0,x': comma-separated integers expected"),
    (("--kws-vela-targets", "ethos-u99"), "ethos-u99"),
    (("--kws-data-dir", "/no/such/folder"), "/no/such/folder is not a folder"),
    (("--kws-model", "weights.npz"), "argument --kws-model: 'weights.npz' is not a DS-CNN name"),
    (("--kws-model", "/no/such/model.h5"), "argument --kws-model: model file /no/such/model.h5 does not exist"),
    (("--kws-labels", "yes,no"), "argument --kws-labels: 'yes,no': labels ['yes', 'no'] must list each of"),
])
def test_bad_options_are_usage_errors(pytester, args, message):
    result = _collect(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_bad_grid_file_is_a_usage_error(pytester):
    grid = pytester.makefile(".toml", grid=GOOD_TIER.replace("clusters = [8]", "clusters = [1]"))
    pytester.makepyfile(test_matrix=MATRIX_TESTS.read_text())
    result = pytester.runpytest(*_options("--kws-grid", str(grid), "--collect-only"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{grid}: [tiers.smoke]: clusters must be in [2, 40]" in result.stderr.str()


E2E_GRID = """
[tiers.smoke]
seeds = [0]
baseline_epochs = 1
finetune_epochs = 1
pathways = ["ptq_dynamic", "ptq_int8"]
[tiers.smoke.axes]
sparsity = [0.5]
clusters = [8]
schedule = ["constant"]
alpha = [0.5]
"""


@pytest.mark.slow
def test_a_session_records_the_history_and_the_gate_catches_an_injected_regression(pytester, tmp_path,
                                                                                      monkeypatch):
    """Real cases (a 1-epoch baseline on a tiny archive, int8 and dynamic-range models,
    LiteRT, Vela): the history and summary are written, a known failure is an xfail, the
    gate passes against an identical history and fails once the history is made better."""
    # Each session runs in its own process: an in-process run drops the modules it
    # imported when it ends, and TensorFlow and Vela's native modules cannot be imported
    # twice in one process.
    data = make_archive(tmp_path / "data", speakers=16)
    pytester.makepyfile(test_matrix=MATRIX_TESTS.read_text())
    grid = pytester.makefile(".toml", grid=E2E_GRID)
    thresholds = pytester.makefile(".toml", thresholds=(THRESHOLDS.read_text() + """
[[known_failures]]
case = "ptq_dynamic-*"
check = "size"
reason = "a tiny dynamic-range model is bigger than the int8 one by more than the limit"

# A 1-epoch model on tones: a handful of test clips, so one clip is several points.
[pathway.ptq_int8]
vela_latency_ratio = 2.0
vela_weights_ratio = 2.0
""").replace("[pathway.ptq_dynamic]\ngzip_ratio = 1.30",
            "[pathway.ptq_dynamic]\ngzip_ratio = 0.50\naccuracy_drop_pp = 100.0"))
    results = tmp_path / "results"
    args = _options("--kws-grid", str(grid), "--kws-thresholds", str(thresholds), "--kws-results", str(results),
                    "--kws-data-dir", str(data), "--benchmark-disable", "-q")

    monkeypatch.setenv("KWS_PROGRESS", "1")  # the matrix position, as on a terminal
    first = pytester.runpytest_subprocess(*args)
    first.stdout.fnmatch_lines(["[[]kws[]] case 1/2 ptq_dynamic-seed0 done, elapsed *, ETA *",
                                "[[]kws[]] case 2/2 ptq_int8-seed0 done, elapsed *, ETA 0m00s"])
    # run x2, latency x2, checks: accuracy, npu, vela x2; size xfail (no sparsity or cluster promise)
    first.assert_outcomes(passed=8, xfailed=1)
    history = read_history(results / "history.jsonl")
    assert [r["case"] for r in history] == ["ptq_dynamic-seed0", "ptq_int8-seed0"]
    assert all(r["config_key"] and r["commit"] for r in history)
    assert history[1]["metrics"]["vela"]["ethos-u55-256"]["inference_us"] > 0
    # Host latency: the model alone, and the front-end on one clip plus the model.
    assert all(history[1]["metrics"][m] > 0 for m in ("litert_us", "frontend_us", "e2e_us"))
    assert "| ptq_int8 | 1 |" in " ".join((results / "summary.md").read_text().split())
    assert "host e2e us" in (results / "summary.md").read_text()
    # The run ends with the answer: the table of what ran, then the advisor's choice.
    out = first.stdout.str()
    answer = out[out.index("kws: tier smoke on "):]
    assert "| ptq_dynamic " in answer and "| ptq_int8 " in answer
    first.stdout.fnmatch_lines(["kws recommend (minimise Vela ethos-u55-256 latency*, drop <= 1 pp with 95% "
                                "confidence): *", "  all candidates, with why each was ruled out: kws recommend*",
                                "kws report: */report.html (* plots in */plots)"])
    assert (results / "report.html").is_file() and list((results / "plots").glob("*.png"))
    assert "passed" in out.rstrip().splitlines()[-1]  # nothing but pytest's count after the answer

    monkeypatch.setenv("KWS_PROGRESS", "0")
    same = pytester.runpytest_subprocess(*args, "--kws-gate")
    same.stdout.no_fnmatch_line("[[]kws[]] case *")
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["*kws gate: 2 case(s) compared with their history, no regression*"])

    better = [replace_metrics(r) for r in read_history(results / "history.jsonl")]
    # A line of the wrong shape is reported once, with its number, and left out.
    lines = [json.dumps(r) + "\n" for r in better] + ['{"case": "x", "metrics": "oops"}\n']
    (results / "history.jsonl").write_text("".join(lines))
    regressed = pytester.runpytest_subprocess(*args, "--kws-gate")
    assert regressed.ret == pytest.ExitCode.TESTS_FAILED
    regressed.stdout.fnmatch_lines([f"kws: {results / 'history.jsonl'}:{len(lines)}: not a history row, skipped *",
                                    "*kws gate: * regression(s)*",
                                    "ptq_int8-seed0: gzip size * B is *% above the median of 2 earlier run(s)*"])
    assert len(read_history(results / "history.jsonl")) == len(better) + 2  # the report is still written
    assert "| ptq_int8 | 1 |" in " ".join((results / "summary.md").read_text().split())

    # A results folder that cannot be written is refused before any training ...
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    refused = pytester.runpytest_subprocess(*[a if a != str(results) else str(blocked / "results") for a in args])
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--kws-results {blocked / 'results'}: cannot write the history there" in refused.stderr.str()
    # ... and a file that cannot be written at the end is named, after pytest's own summary.
    (results / "summary.md").unlink()
    (results / "summary.md").mkdir()
    unsaved = pytester.runpytest_subprocess(*args)
    assert unsaved.ret == pytest.ExitCode.TESTS_FAILED
    unsaved.stdout.fnmatch_lines([f"kws: {results / 'summary.md'} was not written (*); 2 case(s) of this session "
                                  "are not in it", "*passed*"])


def replace_metrics(row: dict) -> dict:
    """An earlier run that was 20% smaller than anything this code produces."""
    metrics = dict(row["metrics"], gzip_bytes=int(row["metrics"]["gzip_bytes"] * 0.8))
    return dict(row, metrics=metrics)


def test_a_case_that_failed_fails_its_checks_with_the_same_error_without_running_again(tmp_path):
    from kws.errors import KwsError
    from kws.matrix.session import MatrixSession

    tier = load_grid(_write(tmp_path / "grid.toml", GOOD_TIER))["smoke"]
    (tmp_path / "empty").mkdir()
    session = MatrixSession(tier, load_thresholds(THRESHOLDS), tmp_path / "results", ROOT,
                            data_dir=tmp_path / "empty")
    case = next(c for c in session.cases if c.pathway == "p")
    with pytest.raises(KwsError, match="empty") as first:
        session.result(case)
    with pytest.raises(KwsError) as again:
        session.check("sparsity", case)
    assert again.value is first.value


def test_case_configuration_keys_ignore_the_seedless_fields_of_other_pathways():
    a = _case("qat", sparsity=0.5)
    b = replace(a, point=Point(sparsity=0.9))
    assert a.config_key("d") == b.config_key("d")  # qat takes no sparsity
    assert a.config_key("d") != a.config_key("other-data")


def test_each_session_records_its_wall_time_and_the_summary_shows_the_newest_cold_and_warm(tmp_path, monkeypatch):
    from kws.matrix.session import SESSIONS_FILE, SUMMARY_FILE, MatrixSession

    tier = load_grid(_write(tmp_path / "grid.toml", GOOD_TIER))["smoke"]
    results = tmp_path / "results"
    for trained, wall in (("prune", 300.0), (None, 40.0)):
        session = MatrixSession(tier, load_thresholds(THRESHOLDS), results, ROOT, workers=2)
        monkeypatch.setattr(MatrixSession, "data_id", "synth-x")
        monkeypatch.setattr(MatrixSession, "commit", {"commit": "abc", "dirty": False})
        session.started -= wall
        session.rows = {"p-s0.50-seed0": dict(_row(), pathway="p", point={"sparsity": 0.5},
                                              trained_now=[trained] if trained else [])}
        assert SESSIONS_FILE in {p.name for p in session.finish()}
    lines = [json.loads(line) for line in (results / SESSIONS_FILE).read_text().splitlines()]
    assert [(s["warm"], s["cases"], s["cases_trained_now"], s["workers"]) for s in lines] == [
        (False, 1, 1, 2), (True, 1, 0, 2)]
    assert lines[0]["wall_s"] >= 300.0 and 40.0 <= lines[1]["wall_s"] < 300.0
    summary = (results / SUMMARY_FILE).read_text()
    assert "Wall time of the newest session: cold (stages trained) 5 min 00 s (1 cases, 2 workers" in summary
    assert "; warm (all from the cache) 40 s (1 cases, 2 workers" in summary


def test_cases_run_in_a_child_process_replaced_after_a_number_of_cases(monkeypatch):
    import pickle

    from kws.errors import KwsError
    from kws.matrix.session import CASES_PER_PROCESS_ENV, DEFAULT_CASES_PER_PROCESS, cases_per_process

    monkeypatch.delenv(CASES_PER_PROCESS_ENV, raising=False)
    assert cases_per_process() == DEFAULT_CASES_PER_PROCESS
    monkeypatch.setenv(CASES_PER_PROCESS_ENV, "0")
    assert cases_per_process() == 0  # in the test process itself
    for bad in ("-1", "many"):
        monkeypatch.setenv(CASES_PER_PROCESS_ENV, bad)
        with pytest.raises(KwsError, match=f"{CASES_PER_PROCESS_ENV}='{bad}': must be an integer >= 0"):
            cases_per_process()
    # What crosses to the child and back pickles.
    case = _case("pcqat", sparsity=0.5, clusters=32)
    assert pickle.loads(pickle.dumps(case)) == case
    record = _result(deployed_accuracy=0.9)
    assert pickle.loads(pickle.dumps(record)) == record
