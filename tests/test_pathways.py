"""The deployment tree on a tiny model: every stage runs for real (TFMOT wrappers, int8
conversion, LiteRT), and what each pathway promises to preserve is asserted on the Keras
model and on the int8 TFLite."""

from __future__ import annotations

import numpy as np
import pytest

from kws.cache import ArtifactCache
from kws.inspect import inspect_keras, inspect_tflite
from kws.models import ModelConfig, filter_groups
from kws.pathways import AXES, PATHWAYS, Point, get_pathway, load_model, make_point
from kws.pathways.axes import SearchDim
from kws.pathways.base import FineTune
from kws.pathways.cluster import Cluster
from kws.pathways.prune import Prune
from kws.pathways.registry import point_from_dims, search_space
from kws.pipeline import CasePipeline, RunSpec, Settings
from kws.record import CaseRecord
from kws.train import TrainConfig
from tests.helpers import make_archive

TINY = ModelConfig(alpha=0.25)  # 16 filters: seconds per stage
BASE = TrainConfig(epochs=1, batch_size=32, augmentation_versions=1)
CLUSTERS = 8
SPARSITY = 0.5


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Runs pathways on demand, sharing one artifact cache across the module."""
    data = make_archive(tmp_path_factory.mktemp("data") / "a", speakers=16)
    cache = ArtifactCache(tmp_path_factory.mktemp("artifacts"))
    pipeline = CasePipeline(cache, Settings(latency=False))
    records: dict = {}

    def run(name: str, seed: int = 0, **given) -> CaseRecord:
        key = (name, seed, tuple(sorted(given.items())))
        if key not in records:
            pathway = get_pathway(name)
            defaults = {"sparsity": SPARSITY, "clusters": CLUSTERS, "alpha": 0.5}
            given = {**{k: v for k, v in defaults.items() if k in pathway.takes}, **given}
            spec = RunSpec(model=TINY, data_dir=data, baseline=BASE, finetune=FineTune(epochs=1), seed=seed)
            records[key] = pipeline.run(pathway, make_point(pathway, TINY, **given), spec)
        return records[key]

    run.cache = cache
    run.data = data
    return run


def _tflite(record, cache):
    art = next(a for a in cache.entries() if a.key == record.keys["deployed"])
    return art.file("model.tflite").read_bytes()


def _stage_model(record, cache, index=-1):
    keys = [v for k, v in record.keys.items() if ":" in k]
    art = next(a for a in cache.entries() if a.key == keys[index])
    return load_model(art)


# ----- validation before any training ------------------------------------------------


@pytest.mark.parametrize("name, given, message", [
    ("p", {"sparsity": 1.0}, "sparsity must be in"),
    ("pcqat", {"clusters": 2}, "pcqat: clustering after pruning preserves sparsity, which needs at least 3"),
    ("p", {"sparsity": 0.0}, "sparsity must be in"),
    ("c", {"clusters": 1}, r"clusters must be in \[2, 16\]"),
    ("c", {"clusters": 17}, r"pw_1 has 16 weights per output channel"),
    ("pcqat", {"alpha": 0.5}, "does not take alpha; it takes sparsity, schedule, clusters"),
    ("qat", {"sparsity": 0.5}, "does not take sparsity; it takes none"),
    ("p", {"schedule": "cosine"}, "schedule must be one of constant, polynomial"),
    ("p", {"bogus": 1}, "unknown parameter"),
    ("lfilter", {"filter_ratios": "0.2,0.3"}, r"needs 5 ratios .* \(conv_1, pw_1, pw_2, pw_3, pw_4\).* got 2: 0.2,0.3"),
    ("lfilter", {"filter_ratios": (0.5, 0, 0, 0, 1.0)}, r"must each be in \[0, 1\) .* got 1 for pw_4"),
    ("lfilterqat", {"filter_ratios": 1.0}, r"must each be in \[0, 1\) .* got 1 for every group"),
    ("lfilter", {"filter_ratios": "0.2,x"}, "filter_ratios must be numbers separated by commas"),
    ("lfilter", {"sparsity": 0.5}, "does not take sparsity; it takes filter_ratios"),
    ("filter", {"filter_ratios": 0.5}, "does not take filter_ratios; it takes sparsity"),
])
def test_bad_hyperparameters_fail_before_training(name, given, message):
    with pytest.raises(ValueError, match=message):
        make_point(get_pathway(name), TINY, **given)


def test_unknown_pathway_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid pathways: ptq_dynamic, ptq_fp16"):
        get_pathway("pq")


@pytest.mark.parametrize("stage, message", [
    (lambda: Prune(begin_fraction=0.6, end_fraction=0.5), "begin_fraction"),
    (lambda: Prune(sparsity=0.75, m_by_n=(2, 4)), "fixes sparsity at 0.5"),
    (lambda: Cluster(clusters=1), "clusters must be >= 2"),
    (lambda: Cluster(init="best"), "init must be one of"),
    (lambda: FineTune(epochs=0), "epochs must be >= 1"),
])
def test_stage_values_are_validated(stage, message):
    with pytest.raises(ValueError, match=message):
        stage()


def test_registry_lists_every_pathway_with_what_it_takes(capsys):
    from kws.cli import main

    assert main(["pathways", "--json"]) == 0
    import json

    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(PATHWAYS) >= {"ptq_dynamic", "ptq_fp16", "ptq_int8", "qat", "p", "c", "pc",
                                            "pqat", "cqat", "pcqat", "p24", "p24qat", "cpc", "cpcqat",
                                            "alpha", "filter", "filterqat", "lfilter", "lfilterqat",
                                            "lfilter24qat"}
    assert listed["pcqat"]["takes"] == ["sparsity", "schedule", "clusters"]
    assert listed["ptq_fp16"]["export"] == "float16"
    assert listed["lfilter24qat"]["takes"] == ["filter_ratios"] and listed["lfilter"]["family"] == "structured"


# ----- the per-group filter ratios axis ----------------------------------------------------


RATIOS = AXES["filter_ratios"]


@pytest.mark.parametrize("raw", ["0.2,0.3,0,0.1,0.25", " 0.2, 0.3,0 ,0.1,0.25", [0.2, 0.3, 0, 0.1, 0.25],
                                 (0.2, 0.3, 0.0, 0.1, 0.25)])
def test_filter_ratios_parse_from_the_command_line_toml_and_json_alike(raw):
    assert RATIOS.validate(raw, TINY) == (0.2, 0.3, 0.0, 0.1, 0.25)


def test_filter_ratios_flag_parses_a_comma_separated_list():
    from kws.cli.args import axis_value

    assert axis_value(RATIOS)("0.2,0.3,0,0.1,0.25") == (0.2, 0.3, 0.0, 0.1, 0.25)
    assert RATIOS.text((0.2, 0.3, 0.0, 0.1, 0.25)) == "0.2,0.3,0,0.1,0.25" and RATIOS.text(RATIOS.default) == "0.5"


def test_filter_ratios_count_follows_the_model_and_one_ratio_fits_every_model():
    large = ModelConfig(name="ds-cnn-l")
    assert RATIOS.validate("0.1,0.2,0.3,0.4,0.5,0.6", large) == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    with pytest.raises(ValueError, match=r"needs 6 ratios for ds-cnn-l, .*conv_1, pw_1, pw_2, pw_3, pw_4, pw_5"):
        RATIOS.validate("0.1,0.2,0.3,0.4,0.5", large)
    for model in (TINY, large, ModelConfig(name="ds-cnn-m")):
        assert RATIOS.validate(RATIOS.default, model) == (0.5,)


@pytest.mark.parametrize("ratios, fragment", [
    ((0.2, 0.3, 0.0, 0.1, 0.25), "r20-30-00-10-25"),
    ((0.5,), "r50"),
    ((0.125, 0.05, 0.0, 0.7, 0.75), "r12.5-05-00-70-75"),
])
def test_filter_ratios_fragment_is_whole_percentages(ratios, fragment):
    from kws.matrix.grid import slug

    assert RATIOS.fragment(ratios) == fragment
    assert slug("lfilterqat", make_point(get_pathway("lfilterqat"), TINY, filter_ratios=ratios), 0) == \
        f"lfilterqat-{fragment}-seed0"


def test_a_point_with_ratios_round_trips_through_json_and_pickle():
    import json
    import pickle

    point = make_point(get_pathway("lfilter"), TINY, filter_ratios="0.2,0.3,0,0.1,0.25")
    plain = point.to_dict()
    assert plain == {"filter_ratios": [0.2, 0.3, 0.0, 0.1, 0.25]}
    back = Point(json.loads(json.dumps(plain)))
    assert back == point and hash(back) == hash(point) and back.filter_ratios == (0.2, 0.3, 0.0, 0.1, 0.25)
    assert pickle.loads(pickle.dumps(point)) == point


def test_per_group_filter_pathways_promise_what_their_last_stages_keep():
    from kws.pathways.base import Preserve
    from kws.pathways.structured import FilterPrune

    point = make_point(get_pathway("lfilter24qat"), TINY, filter_ratios="0.2,0.3,0,0.1,0.25")
    first, prune, _ = get_pathway("lfilter24qat").stages(point)
    assert first == FilterPrune(ratios=(0.2, 0.3, 0.0, 0.1, 0.25), multiple_of=4)
    assert prune == Prune(sparsity=0.5, m_by_n=(2, 4))
    assert get_pathway("lfilter24qat").promises(point) == {Preserve.SPARSITY: 0.5}
    assert get_pathway("lfilterqat").promises(point) == get_pathway("lfilter").promises(point) == {}


# ----- search spaces ---------------------------------------------------------------------------


def _sample(dim: SearchDim, where: str):
    """The low end, the high end or a middle value of one dimension, on its grid."""
    if dim.kind == "categorical":
        return dim.choices[{"low": 0, "high": -1, "middle": len(dim.choices) // 2}[where]]
    steps = round((dim.high - dim.low) / dim.step)
    # Summed as a sampler does, so the float noise from_dims rounds away is there.
    return dim.low + {"low": 0, "high": steps, "middle": steps // 2}[where] * dim.step


def test_every_axis_declares_where_a_search_looks():
    for axis in AXES.values():
        dims = axis.dims(ModelConfig())
        assert dims, f"axis {axis.name} declares no search range"
        sampled = {dim.name: _sample(dim, "low") for dim in dims}
        axis.from_dims(sampled, ModelConfig())


@pytest.mark.parametrize("model", [ModelConfig(), TINY, ModelConfig(name="ds-cnn-l")], ids=lambda m: m.slug)
@pytest.mark.parametrize("name", list(PATHWAYS))
def test_the_ends_and_middle_of_a_search_space_are_valid_distinct_points(name, model):
    from kws.matrix.grid import slug

    pathway = get_pathway(name)
    space = search_space(pathway, model)
    assert [d.name for d in space] == [n for axis in pathway.takes for n in
                                       ([f"filter_ratios.{g}" for g in filter_groups(model)]
                                        if axis == "filter_ratios" else [axis])]
    points = [point_from_dims(pathway, {d.name: _sample(d, where) for d in space}, model)
              for where in ("low", "high", "middle")]
    for point in points:
        assert make_point(pathway, model, **point) == point
    slugs = {slug(name, point, 0) for point in points}
    assert len(slugs) == (3 if space else 1), slugs


def test_clusters_a_model_cannot_hold_are_left_out_of_its_space():
    (dim,) = search_space(get_pathway("c"), TINY)  # 16 filters: at most 16 clusters
    assert dim == SearchDim("clusters", "categorical", choices=(4, 8, 16))
    assert search_space(get_pathway("c"), ModelConfig())[0].choices == (4, 8, 16, 32)
    (schedule,) = [d for d in search_space(get_pathway("p")) if d.name == "schedule"]
    assert schedule.choices == ("constant", "polynomial")


def test_sampled_floats_are_rounded_to_their_step():
    point = point_from_dims(get_pathway("p"), {"sparsity": 0.30000000000000004, "schedule": "polynomial"})
    assert point == Point(sparsity=0.3, schedule="polynomial") and point.sparsity == 0.3
    ratios = {f"filter_ratios.{g}": 0.1 * 3 for g in filter_groups(TINY)}
    assert point_from_dims(get_pathway("lfilter"), ratios, TINY).filter_ratios == (0.3,) * 5


@pytest.mark.parametrize("name, values, message", [
    ("p", {"sparsity": 0.5}, "no value for search dimension"),
    ("p", {"sparsity": 0.5, "schedule": "constant", "clusters": 8}, r"p has no search dimension\(s\) \['clusters'\]"),
    ("pcqat", {"sparsity": 0.5, "schedule": "constant", "clusters": 2}, "needs at least 3"),
    ("lfilter", {"filter_ratios": 0.5}, "filter_ratios.conv_1"),
])
def test_values_outside_a_space_or_the_stage_chain_are_rejected(name, values, message):
    with pytest.raises(ValueError, match=message):
        point_from_dims(get_pathway(name), values, TINY)


# ----- preservation facts -------------------------------------------------------------


def test_pruning_reaches_its_target_on_keras_and_tflite(tree):
    record = tree("p")
    keras_stats = inspect_keras(_stage_model(record, tree.cache))
    tflite_stats = inspect_tflite(_tflite(record, tree.cache))
    assert keras_stats.sparsity() >= SPARSITY - 0.01
    assert tflite_stats.sparsity() >= SPARSITY - 0.01
    assert any(layer.status.startswith("excluded") for layer in keras_stats.layers), "depthwise reported"


def test_polynomial_schedule_reaches_its_final_sparsity(tree):
    record = tree("p", schedule="polynomial", sparsity=0.75)
    assert inspect_tflite(_tflite(record, tree.cache)).sparsity() >= 0.75 - 0.01


def test_sparsity_preserving_clustering_keeps_the_pruned_sparsity(tree):
    pruned = inspect_keras(_stage_model(tree("p"), tree.cache)).sparsity()
    record = tree("pc")
    keras_stats = inspect_keras(_stage_model(record, tree.cache), clusters=CLUSTERS)
    tflite_stats = inspect_tflite(_tflite(record, tree.cache), clusters=CLUSTERS)
    assert keras_stats.sparsity() >= pruned - 1e-6
    assert tflite_stats.sparsity() >= pruned - 0.01
    assert max(layer.unique_tensor for layer in keras_stats.checked()) <= CLUSTERS


@pytest.mark.parametrize("name", ["pqat", "pcqat", "p24qat"])
def test_prune_preserving_qat_keeps_sparsity_in_the_int8_model(tree, name):
    record = tree(name)
    target, m_by_n = ((0.5, (2, 4)) if name == "p24qat" else (SPARSITY, None))
    stats = inspect_tflite(_tflite(record, tree.cache), m_by_n=m_by_n)
    assert stats.sparsity() >= target - 0.01
    assert record.metrics["sparsity"] >= target - 0.01


@pytest.mark.parametrize("name", ["cqat", "pcqat", "cpcqat"])
def test_cluster_preserving_qat_keeps_clusters_per_channel_in_the_int8_model(tree, name):
    stats = inspect_tflite(_tflite(tree(name), tree.cache), clusters=CLUSTERS)
    assert stats.max_unique_per_channel() <= CLUSTERS + 1  # +1: zero, with preserved sparsity


def test_two_four_pattern_holds_in_every_group(tree):
    record = tree("p24")
    keras_stats = inspect_keras(_stage_model(record, tree.cache), m_by_n=(2, 4))
    tflite_stats = inspect_tflite(_tflite(record, tree.cache), m_by_n=(2, 4))
    for stats in (keras_stats, tflite_stats):
        assert stats.checked() and all(layer.m_by_n_ok for layer in stats.checked())
        assert stats.sparsity() >= 0.5 - 0.01
        assert stats.get("conv_1").status.startswith("skipped"), "one input channel: no 2:4 groups"


def test_ptq_variants_deploy_as_their_kind(tree):
    sizes = {name: tree(name).metrics["bytes"] for name in ("ptq_int8", "ptq_fp16", "ptq_dynamic")}
    # On a model this small the dynamic-range file keeps its depthwise and dense weights in
    # float32, so only int8 is sure to be the smallest.
    assert sizes["ptq_int8"] < sizes["ptq_fp16"] and sizes["ptq_int8"] < sizes["ptq_dynamic"]
    for name in sizes:
        record = tree(name)
        assert 0 <= record.metrics["deployed_accuracy"] <= 1 and record.metrics["retrain_s"] == 0


def test_structured_filter_pruning_gives_a_smaller_dense_model(tree):
    record = tree("filter")
    small = _stage_model(record, tree.cache)
    assert small.output_shape == (None, 12)
    assert small.count_params() < load_model(next(
        a for a in tree.cache.entries() if a.key == record.keys["baseline"])).count_params()
    assert record.metrics["bytes"] < tree("ptq_int8").metrics["bytes"]


def test_alpha_retrains_a_narrower_baseline(tree):
    record = tree("alpha", alpha=0.125)  # the full model's width x 0.125: 8 filters
    assert record.model == "ds-cnn-s-a0.125"
    assert record.metrics["bytes"] < tree("ptq_int8").metrics["bytes"]
    assert record.metrics["retrain_s"] == record.times.baseline_train_s > 0


# ----- caching ------------------------------------------------------------------------


def test_a_shared_prefix_trains_once_and_the_baseline_is_unchanged(tree, monkeypatch):
    import kws.train

    baseline_art = next(a for a in tree.cache.entries() if a.key == tree("ptq_int8").keys["baseline"])
    before = [w.copy() for w in load_model(baseline_art).get_weights()]
    fits = []
    real_fit = kws.train.fit
    monkeypatch.setattr(kws.train, "fit", lambda *a, **k: fits.append(k.get("stage")) or real_fit(*a, **k))
    seed = 7  # a fresh branch of the tree: nothing below the baseline is cached yet
    first = tree("pqat", seed=seed)
    assert fits == ["baseline ds-cnn-s-a0.25", "prune", "qat"]
    fits.clear()
    tree("pcqat", seed=seed)
    assert fits == ["cluster", "qat"], "the Prune stage is shared with pqat and must not retrain"
    fits.clear()
    again = tree("pc", seed=seed)
    assert fits == [], "pc's cluster stage is pcqat's: same parent, same parameters"
    assert again.keys["0:prune"] == first.keys["0:prune"]
    after = load_model(baseline_art).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "a stage modified the cached baseline"
    assert tree.cache.get("baseline", baseline_art.manifest["material"]) is not None


def test_records_carry_keys_metrics_and_times_and_round_trip_through_json(tree):
    record = tree("pcqat")
    assert set(record.keys) == {"baseline", "0:prune", "1:cluster", "2:qat", "deployed"}
    assert record.metrics["retrain_s"] == pytest.approx(sum(record.times.stages_s.values()))
    m = record.metrics
    assert m["gzip_bytes"] < m["bytes"] and 0 <= m["deployed_accuracy"] <= 1
    assert record.point == {"sparsity": SPARSITY, "schedule": "constant", "clusters": CLUSTERS}
    assert record.spec["finetune_epochs"] == 1 and record.spec["seed"] == 0
    assert [s.family for s in record.stages] == ["prune", "cluster", "qat"]
    assert CaseRecord.from_json(record.to_json()) == record
    from execnet.gateway_base import dumps

    dumps(record.row())  # what pytest-xdist does to a row travelling from a worker
    assert "inspection" in record.to_dict() and "inspection" not in record.row()


def test_accuracies_carry_intervals_and_the_drop_is_paired_on_the_same_clips(tree):
    from kws.pipeline.measure import load_array

    record, base = tree("pcqat"), tree("ptq_int8")
    m, intervals = record.metrics, record.metrics["intervals"]
    low, high = intervals["deployed_accuracy"]
    assert low < m["deployed_accuracy"] < high or m["deployed_accuracy"] in (0.0, 1.0)
    assert m["baseline_int8_accuracy"] == base.metrics["deployed_accuracy"]
    assert m["accuracy_drop"] == pytest.approx(m["baseline_int8_accuracy"] - m["deployed_accuracy"])
    assert intervals["accuracy_drop"][0] <= m["accuracy_drop"] <= intervals["accuracy_drop"][1]
    assert 0 <= m["accuracy_drop_p"] <= 1
    predictions, labels = load_array(record.files["predictions"]), load_array(record.files["labels"])
    assert len(predictions) == len(labels) == m["n_test"]
    assert np.mean(predictions == labels) == pytest.approx(m["deployed_accuracy"])
    assert base.metrics["accuracy_drop"] == 0 and base.metrics["intervals"]["accuracy_drop"] == [0.0, 0.0]


def test_retrain_time_counts_shared_stages_once_overall(tree):
    from kws.pipeline import retrain_summary

    records = [tree("p"), tree("pqat"), tree("pcqat")]
    summary = retrain_summary(records)
    prune = records[0].times.stages_s["0:prune"]
    assert summary["per_pathway_s"]["pqat"] == pytest.approx(records[1].metrics["retrain_s"])
    assert summary["sum_of_pathways_s"] - summary["overall_s"] == pytest.approx(2 * prune, rel=1e-6)


def test_run_cli_prints_a_table_and_writes_the_record(tree, tmp_path, capsys):
    import json

    from kws.cli import main

    args = ["run", "ptq_int8", "--data-dir", str(tree.data), "--baseline-epochs", "1", "--model", "ds-cnn-s",
            "--record", str(tmp_path / "r.json"), "--vela-targets", "none"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ptq_int8" in out and "accuracy: baseline float / int8" in out and str(tmp_path / "r.json") in out
    record = CaseRecord.from_json((tmp_path / "r.json").read_text())
    assert record.pathway == "ptq_int8" and set(record.keys) == {"baseline", "deployed"}
    assert main(["run", "ptq_int8", "--data-dir", str(tree.data), "--baseline-epochs", "1", "--json",
                 "--record", str(tmp_path / "j.json")]) == 0
    printed = CaseRecord.from_json(capsys.readouterr().out)
    assert printed.metrics["vela"]["ethos-u55-256"]["inference_us"] > 0  # the default Vela target
    assert printed.to_dict() == json.loads((tmp_path / "j.json").read_text())
    assert main(["run", "pcqat", "--alpha", "0.5"]) == 2
    assert "does not take alpha" in capsys.readouterr().err
