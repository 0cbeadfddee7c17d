"""The plots of ``results/plots/`` on a history whose right answer is known: schema-2 rows
built from case records and written by the history's own writer. Each plot is checked
through its figure (the points, intervals, front and labels on its axes), then as the
PNG file written for it.

The case plots (``kws report --case``) are checked on real models: a tiny DS-CNN put
through the project's own pruning and clustering stages and converted to int8, and Vela's
real per-layer result for that int8 model."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from kws.advisor import pareto_front
from kws.matrix.history import append_history, read_history
from kws.matrix.report import STUDY, STUDY_BASELINE
from kws.plots import (
    PLOTS_DIR,
    STUDY_TARGET,
    Kernels,
    Plot,
    build_figure,
    case_plot_name,
    case_source,
    is_current_case_plot,
    keras_kernels,
    layer_label,
    plots_for,
    plotted,
    png_bytes,
    png_size,
    png_text,
    tflite_kernels,
    vela_layer_bars,
    vela_layers_figure,
    weight_density,
    weight_density_figure,
    write_case_plots,
    write_plots,
)
from kws.record import SCHEMA_VERSION, CaseRecord
from kws.stats import accuracy_interval, mean_interval

TARGET = STUDY_TARGET
OTHER_TARGET = "ethos-u65-256"
#: Test clips behind the crafted accuracies: Wilson half-widths of about 2.2 pp at 85%.
N_TEST = 1000
DATA = "synth-test"
BASELINE_CORRECT = 850


def history_row(case: str, *, family: str, point: dict | None = None, correct: int, gzip: float,
                us: float | None = 115.0, other_us: float | None = None, export: str = "int8",
                tier: str = "smoke", data: str = DATA) -> dict:
    """A history row as the session writes it: a case record's row plus where and when.
    ``us=None``: no Vela estimate (a model that does not deploy as int8); ``other_us``: an
    estimate for :data:`OTHER_TARGET` too. The drop is against :data:`BASELINE_CORRECT`."""
    head, _, seed = case.rpartition("-seed")
    pathway = head.split("-")[0]
    accuracy, baseline = correct / N_TEST, BASELINE_CORRECT / N_TEST
    drop = baseline - accuracy
    metrics = {
        "deployed_accuracy": accuracy, "accuracy_drop": drop, "gzip_bytes": gzip, "retrain_s": 10.0,
        "baseline_int8_accuracy": baseline, "n_test": N_TEST,
        "intervals": {"deployed_accuracy": accuracy_interval(correct, N_TEST).to_list(),
                      "accuracy_drop": [drop - 0.005, drop + 0.005],
                      "baseline_int8_accuracy": accuracy_interval(BASELINE_CORRECT, N_TEST).to_list()}}
    vela = {}
    for target, time in ((TARGET, us), (OTHER_TARGET, other_us)):
        if time is not None:
            vela[target] = {"inference_us": time, "encoded_weight_bytes": gzip * 0.8, "flash_bytes": gzip,
                            "sram_bytes": 22_000, "cycles_npu": int(time * 500), "npu_ops": 12, "cpu_ops": []}
    metrics["vela"] = vela
    record = CaseRecord(pathway=pathway, family=family, point=point or {},
                        spec={"model": "ds-cnn-s", "seed": int(seed)}, model="ds-cnn-s", export=export,
                        metrics=metrics)
    return {**record.row(), "time": "2026-11-30T00:00:00+00:00", "commit": "abc1234567", "dirty": False,
            "tier": tier, "case": case, "config_key": f"key-{case}", "data_id": data, "eval_data": None,
            "machine": {}, "verdicts": {}, "schema": SCHEMA_VERSION}


S50 = {"sparsity": 0.5, "schedule": "constant"}
S75 = {"sparsity": 0.75, "schedule": "constant"}
#: (case, family, point, correct, gzip B, Vela us on TARGET). Three seeds of each pruning
#: point keep their Student-t intervals narrow (about ±0.5 pp).
CASES = [
    ("ptq_int8-seed0", "ptq", {}, 850, 30_000, 115.0),
    ("ptq_fp16-seed0", "ptq", {}, 851, 45_000, None),
    ("qat-seed0", "qat", {}, 895, 30_400, 116.0),
    *((f"p-s0.50-seed{s}", "prune", S50, 800 + 2 * s, 24_000, 112.0) for s in range(3)),
    *((f"p-s0.75-seed{s}", "prune", S75, 700 + 2 * s, 20_000, 100.0) for s in range(3)),
    ("pcqat-s0.50-c16-seed0", "qat", {**S50, "clusters": 16}, 840, 23_000, 110.0),
    ("pcqat-s0.50-c32-seed0", "qat", {**S50, "clusters": 32}, 845, 23_500, 111.0),
    ("cqat-c16-seed0", "qat", {"clusters": 16}, 870, 26_000, 114.0),
]
#: Only these have an estimate for the other target.
OTHER_US = {"ptq_int8-seed0": 60.0, "qat-seed0": 61.0}


def crafted_rows() -> list[dict]:
    return [history_row(case, family=family, point=point, correct=correct, gzip=gzip, us=us,
                        other_us=OTHER_US.get(case), export="float16" if us is None else "int8")
            for case, family, point, correct, gzip, us in CASES]


#: (gzip KB, accuracy %) of every pathway point, seeds folded (the mean).
SIZE_POINTS = {
    "ptq_int8": (30.0, 85.0), "ptq_fp16": (45.0, 85.1), "qat": (30.4, 89.5), "p-s0.50": (24.0, 80.2),
    "p-s0.75": (20.0, 70.2), "pcqat-s0.50-c16": (23.0, 84.0), "pcqat-s0.50-c32": (23.5, 84.5),
    "cqat-c16": (26.0, 87.0)}
#: Worked out by hand, accuracy equal within the dominating point's 95% interval: p-s0.75
#: is the smallest; pcqat-c32 and p-s0.50 are larger than pcqat-c16 and within its
#: interval [81.6, 86.1]; cqat at 87.0% is beyond it; ptq_int8 is larger than cqat and
#: within its interval [84.8, 88.9]; qat at 89.5% is beyond it.
FRONT = ["p-s0.75", "pcqat-s0.50-c16", "cqat-c16", "qat"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    """The crafted rows, through the history's own writer and reader."""
    path = tmp_path_factory.mktemp("history") / "history.jsonl"
    append_history(path, crafted_rows())
    return read_history(path)


def _plot(rows, kind: str, target: str | None = None) -> Plot:
    return next(p for p in plots_for(rows) if p.kind == kind and p.target == target)


def _offsets(ax, prefix: str) -> list[tuple[float, float]]:
    return sorted((round(float(x), 6), round(float(y), 6))
                  for c in ax.collections if str(c.get_gid()).startswith(prefix)
                  for x, y in np.asarray(c.get_offsets()))


def _xy(line) -> list[tuple[float, float]]:
    """A line's points, in drawing order."""
    return [(round(float(x), 6), round(float(y), 6)) for x, y in line.get_xydata()]


def _labels(ax) -> set[str]:
    return {t.get_text() for t in ax.texts if t.get_gid() == "label"}


def _segments(ax, gid: str) -> list[tuple[float, float, float]]:
    """The vertical bars of gid ``gid``: (x, low, high)."""
    return sorted((round(float(s[0][0]), 6), round(float(min(s[0][1], s[1][1])), 6),
                   round(float(max(s[0][1], s[1][1])), 6))
                  for c in ax.collections if c.get_gid() == gid for s in c.get_segments())


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_size_reads_the_header_as_the_tests_do(rows):
    data = png_bytes(build_figure(_plot(rows, "size"), rows))
    assert png_size(data) == _png_size(data) == _plot(rows, "size").size_px


def test_the_crafted_accuracies_sit_where_the_front_needs_them():
    c16, cqat = accuracy_interval(840, N_TEST), accuracy_interval(870, N_TEST)
    assert c16.low < 0.845 <= c16.high < 0.870  # pcqat-c32 within pcqat-c16's noise, cqat beyond it
    assert cqat.low < 0.850 and cqat.high < 0.895  # ptq_int8 within cqat's noise, qat beyond it


def test_each_tier_and_data_has_a_size_plot_a_latency_plot_per_target_and_a_plot_per_swept_axis(rows):
    other = [history_row("ptq_int8-seed0", family="ptq", correct=850, gzip=30_000, tier="nightly")]
    kinds = [(p.tier, p.kind, p.target) for p in plots_for(rows + other)]
    assert kinds == [("smoke", "size", None), ("smoke", "latency", TARGET), ("smoke", "latency", OTHER_TARGET),
                     ("smoke", "sparsity", None), ("smoke", "clusters", None),
                     ("nightly", "size", None), ("nightly", "latency", TARGET)]
    assert _plot(rows, "latency", TARGET).filename == f"smoke-{DATA}-accuracy-vs-latency-{TARGET}.png"
    assert Plot("smoke", "data/with space", "size").filename == "smoke-data_with_space-accuracy-vs-size.png"


def test_the_size_plot_holds_every_point_with_its_interval_label_and_the_front(rows):
    ax = build_figure(_plot(rows, "size"), rows).axes[0]
    assert _offsets(ax, "points:") == sorted(SIZE_POINTS.values())
    assert _offsets(ax, "points:qat") == sorted([SIZE_POINTS[p] for p in ("qat", "pcqat-s0.50-c16",
                                                                          "pcqat-s0.50-c32", "cqat-c16")])
    assert _labels(ax) == set(SIZE_POINTS) | {f"study: {label}" for label, *_ in STUDY} | {"study: baseline (int8)"}
    # One seed: the run's Wilson interval; three seeds: Student-t of the mean.
    low, high = accuracy_interval(895, N_TEST)
    assert (30.4, round(100 * low, 6), round(100 * high, 6)) in _segments(ax, "interval:qat")
    mean, interval = mean_interval([0.800, 0.802, 0.804])
    assert (24.0, round(100 * interval.low, 6), round(100 * interval.high, 6)) in _segments(ax, "interval:prune")
    (front,) = [line for line in ax.lines if line.get_gid() == "front"]
    assert _xy(front) == [SIZE_POINTS[p] for p in FRONT]
    assert ax.get_xlabel() == "gzip size (KB)" and ax.get_ylabel() == "int8 accuracy (%)"
    (baseline,) = [line for line in ax.lines if line.get_gid() == "baseline"]
    assert baseline.get_ydata()[0] == pytest.approx(85.0)


def test_the_baseline_line_is_the_tiers_own_model_and_front_end_or_none_when_variants_are_as_many():
    from kws.plots import baseline_accuracy

    def on(case, model, frontend, correct):
        row = history_row(case, family="ptq", correct=correct, gzip=30_000)
        row["spec"] = {**row["spec"], "model": model, "frontend": frontend}
        row["metrics"]["baseline_int8_accuracy"] = correct / N_TEST
        return row

    own = [on(f"ptq_int8-seed{s}", "ds-cnn-s", "mlperf-tiny", 900) for s in range(3)]
    large = [on("ptq_int8-dsl-seed0", "ds-cnn-l", "mlperf-tiny", 950)]
    assert baseline_accuracy(own + large, "smoke", DATA) == pytest.approx(90.0)  # DS-CNN-L is a variant
    narrow = [on(f"ptq_int8-a30-seed{s}", "ds-cnn-s-a0.3", "mlperf-tiny", 700) for s in range(3)]
    assert baseline_accuracy(own + narrow, "smoke", DATA) is None  # as many of each: no one baseline


def test_search_trials_are_a_group_of_their_own_named_only_on_the_front(rows):
    """Many trials of a search: drawn hollow in their own group; only a trial on the front
    carries its name, so the grid's points stay readable."""
    ratios = {"filter_ratios": [0.2, 0.0, 0.1, 0.3, 0.5]}
    trials = [history_row("search-s-t0000-seed0", family="structured", point=ratios, correct=850, gzip=19_000),
              history_row("search-s-t0001-seed0", family="structured", point=ratios, correct=700, gzip=40_000)]
    ax = build_figure(_plot(rows + trials, "size"), rows + trials).axes[0]
    assert _offsets(ax, "points:search trials") == [(19.0, 85.0), (40.0, 70.0)]
    assert "search-s-t0000" in _labels(ax) and "search-s-t0001" not in _labels(ax)
    (front,) = [line for line in ax.lines if line.get_gid() == "front"]
    assert (19.0, 85.0) in _xy(front)


def test_the_study_points_are_overlaid_on_the_size_and_its_own_targets_latency_plots_only(rows):
    size = build_figure(_plot(rows, "size"), rows).axes[0]
    assert _offsets(size, "study") == sorted([(STUDY_BASELINE["gzip_kb"], STUDY_BASELINE["accuracy"]),
                                              *((kb, acc) for _, _, kb, acc, _ in STUDY)])
    latency = build_figure(_plot(rows, "latency", TARGET), rows).axes[0]
    assert _offsets(latency, "study") == sorted((us, acc) for _, _, _, acc, us in STUDY)
    other = build_figure(_plot(rows, "latency", OTHER_TARGET), rows).axes[0]
    assert _offsets(other, "study") == [] and not any(t.get_text().startswith("study") for t in other.texts)


def test_a_latency_plot_holds_the_points_measured_on_its_target_and_their_front(rows):
    ax = build_figure(_plot(rows, "latency", TARGET), rows).axes[0]
    us = {case.rpartition("-seed")[0]: u for case, _, _, _, _, u in CASES if u is not None}
    assert _offsets(ax, "points:") == sorted((us[p], SIZE_POINTS[p][1]) for p in us)
    assert "ptq_fp16" not in _labels(ax)  # deploys as float16: no Vela estimate
    (front,) = [line for line in ax.lines if line.get_gid() == "front"]
    assert _xy(front) == [(us[p], SIZE_POINTS[p][1]) for p in FRONT]
    assert ax.get_xlabel() == f"Vela {TARGET} latency (us)"
    other = build_figure(_plot(rows, "latency", OTHER_TARGET), rows).axes[0]
    assert _offsets(other, "points:") == [(60.0, 85.0), (61.0, 89.5)]


def test_the_front_drawn_is_the_advisors(rows):
    plot = _plot(rows, "size")
    assert sorted(pareto_front(plotted(rows, plot), ["accuracy", "size"]).points()) == sorted(FRONT)


def test_the_sparsity_plot_has_a_panel_per_pathway_a_line_per_other_axis_value_and_a_band_across_seeds(rows):
    fig = build_figure(_plot(rows, "sparsity"), rows)
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert set(panels) == {"p", "pcqat"}
    (line,) = [ln for ln in panels["p"].lines if ln.get_gid() == "line:p"]
    assert _xy(line) == [(0.5, 80.2), (0.75, 70.2)]
    (band,) = [c for c in panels["p"].collections if c.get_gid() == "band:p"]
    _, at_50 = mean_interval([0.800, 0.802, 0.804])
    _, at_75 = mean_interval([0.700, 0.702, 0.704])
    vertices = band.get_paths()[0].vertices
    for x, interval in ((0.5, at_50), (0.75, at_75)):
        ys = vertices[np.isclose(vertices[:, 0], x), 1]
        assert (ys.min(), ys.max()) == pytest.approx((100 * interval.low, 100 * interval.high))
    lines = sorted(ln.get_gid() for ln in panels["pcqat"].lines if str(ln.get_gid()).startswith("line:"))
    assert lines == ["line:pcqat-c16", "line:pcqat-c32"]
    # One seed, one value each: error bars (the run's Wilson interval), no band.
    low, high = accuracy_interval(845, N_TEST)
    assert _segments(panels["pcqat"], "interval:pcqat-c32") == [(0.5, round(100 * low, 6), round(100 * high, 6))]
    assert not any(str(c.get_gid()).startswith("band:") for c in panels["pcqat"].collections)


def test_the_clusters_plot_sweeps_clusters_on_a_log2_axis(rows):
    fig = build_figure(_plot(rows, "clusters"), rows)
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert set(panels) == {"pcqat", "cqat"}
    (line,) = [ln for ln in panels["pcqat"].lines if ln.get_gid() == "line:pcqat-s0.50"]
    assert _xy(line) == [(16, 84.0), (32, 84.5)]
    assert panels["pcqat"].get_xscale() == "log"
    assert [t.get_text() for t in panels["pcqat"].get_xticklabels()] == ["16", "32"]


def test_labels_are_moved_apart(rows):
    fig = build_figure(_plot(rows, "size"), rows)
    renderer = fig.canvas.get_renderer()
    from kws.plots import _text_box

    boxes = [_text_box(t, renderer) for t in fig.axes[0].texts if t.get_gid() == "label"]
    assert len(boxes) == len(SIZE_POINTS) + len(STUDY) + 1
    overlaps = [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes[:i]) if a.overlaps(b)]
    assert overlaps == []


def test_write_plots_writes_each_plot_as_a_png_of_its_size_and_replaces_the_stale_ones(rows, tmp_path):
    folder = tmp_path / PLOTS_DIR
    folder.mkdir()
    (folder / "smoke-gone-accuracy-vs-size.png").write_bytes(b"stale")
    (folder / "layer-density.png").write_bytes(b"someone else's")
    paths = write_plots(tmp_path, rows)
    assert [p.name for p in paths] == [p.filename for p in plots_for(rows)]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in paths), "layer-density.png"])
    for plot, path in zip(plots_for(rows), paths):
        assert _png_size(path.read_bytes()) == plot.size_px
    first = {p: p.read_bytes() for p in paths}
    assert write_plots(tmp_path, rows) == paths
    assert {p: p.read_bytes() for p in paths} == first  # the same rows give the same bytes
    assert not list(folder.glob(".*.tmp"))


def test_the_png_holds_no_software_version_and_ignores_the_users_style(rows):
    plot = _plot(rows, "size")
    data = png_bytes(build_figure(plot, rows))
    assert b"Software" not in data and matplotlib.__version__.encode() not in data
    with matplotlib.rc_context({"lines.linewidth": 5, "font.size": 20, "figure.facecolor": "black"}):
        assert png_bytes(build_figure(plot, rows)) == data


def test_no_rows_give_no_plots_and_clear_the_old_ones(tmp_path, rows):
    paths = write_plots(tmp_path, rows)
    assert write_plots(tmp_path, []) == []
    assert not any(p.exists() for p in paths)


def test_a_history_of_the_earlier_layout_still_plots(tmp_path):
    """Rows without ``point`` and ``family`` (schema 1): trade-off plots, no sweep."""
    old = [{k: v for k, v in history_row(case, family="x", point=point, correct=c, gzip=g, us=u).items()
            if k not in ("point", "family", "schema")} for case, _, point, c, g, u in CASES[:3]]
    assert [p.kind for p in plots_for(old)] == ["size", "latency"]
    ax = build_figure(plots_for(old)[0], old).axes[0]
    assert _offsets(ax, "points:other") == sorted(SIZE_POINTS[p] for p in ("ptq_int8", "ptq_fp16", "qat"))
    assert all(Path(p).suffix == ".png" for p in write_plots(tmp_path, old))


# ----- one case: its weights through the pathway, Vela per layer ---------------------------------

#: A DS-CNN-S at width 0.25 (16 filters): its stages take seconds.
TINY_ALPHA = 0.25
SPARSITY = 0.5
#: Sparsity-preserving clustering: one of them is the zero centroid.
CLUSTERS = 4
LABELS = 12
DEPTHWISE = ("dw_1", "dw_2", "dw_3", "dw_4")
COMPRESSED = ("conv_1", "pw_1", "pw_2", "pw_3", "pw_4", "logits")


def _random_context(seed: int = 0):
    """Random features and labels: what the stages do to the weights holds whatever the data."""
    from kws.pathways.base import StageContext
    from kws.train import TrainConfig, TrainingData

    rng = np.random.default_rng(seed)

    def split(n: int):
        return rng.standard_normal((n, 49, 10)).astype(np.float32), rng.integers(0, LABELS, n)

    train, train_labels = split(128)
    val, val_labels = split(16)
    recipe = TrainConfig(epochs=1, batch_size=8, augmentation=None, augmentation_versions=1, class_weights=False)
    return StageContext(TrainingData(train[None], train_labels, val, val_labels, fingerprint={}), recipe,
                        tuple(f"label{i}" for i in range(LABELS)))


@pytest.fixture(scope="module")
def pathway(tmp_path_factory) -> dict:
    """A tiny DS-CNN through the pc pathway with the project's own stages, 16 steps each:
    ``Prune(0.5)``, then sparsity-preserving ``Cluster(4)``; the clustered model as int8.
    Holds each model's kernels and ``model.h5`` (both taken before the next stage wraps
    the model: wrappers share its weight variables) and the int8 file."""
    from kws.export import to_tflite
    from kws.models import ModelConfig, build_model, save_model
    from kws.pathways.base import FineTune
    from kws.pathways.cluster import Cluster
    from kws.pathways.prune import Prune
    from kws.train import seed_everything

    seed_everything(0)
    ctx = _random_context()
    finetune = FineTune(epochs=1, learning_rate=1e-3)
    folder = tmp_path_factory.mktemp("case")
    out = {"kernels": {}, "h5": {}}

    def keep(name: str, model) -> None:
        out["kernels"][name], out["h5"][name] = keras_kernels(model), folder / f"{name}.h5"
        save_model(model, out["h5"][name])

    model, preserved = build_model(ModelConfig(alpha=TINY_ALPHA)), frozenset()
    keep("baseline", model)
    for name, stage in (("prune", Prune(sparsity=SPARSITY, finetune=finetune)),
                        ("cluster", Cluster(clusters=CLUSTERS, finetune=finetune))):
        model, _ = stage.run(model, ctx, preserved)
        preserved = stage.preserved(preserved)
        keep(name, model)
    tflite = folder / "model_int8.tflite"
    tflite.write_bytes(to_tflite(model, "int8", ctx.data.train[0]))
    out["tflite"], out["kernels"]["deployed"] = tflite, tflite_kernels(tflite.read_bytes())
    return out


def _panel(fig, label: str):
    return next(ax for ax in fig.axes if ax.get_title(loc="left") == label)


def _histogram(ax, label: str) -> np.ndarray:
    (hist,) = [p for p in ax.patches if p.get_gid() == f"hist:{label}"]
    return np.asarray(hist.get_data().values)


def _zero_spike(ax, label: str) -> float | None:
    spikes = [c for c in ax.collections if c.get_gid() == f"zeros:{label}"]
    if not spikes:
        return None
    ((_, low), (_, high)), = spikes[0].get_segments()
    return max(low, high)


def test_the_kernels_are_those_tfmot_compresses_and_depthwise_ones_are_named_as_excluded(pathway):
    for name, kernels in pathway["kernels"].items():
        assert sorted(kernels.layers) == sorted(COMPRESSED), name
        assert sorted(kernels.excluded) == sorted(DEPTHWISE), name
    # Output channels first, whichever format: 16 filters, 12 logits.
    keras, tflite = pathway["kernels"]["cluster"], pathway["kernels"]["deployed"]
    assert [keras.layers[n].shape[0] for n in COMPRESSED] == [tflite.layers[n].shape[0] for n in COMPRESSED] \
        == [16] * 5 + [LABELS]
    assert tflite.layers["conv_1"].dtype == np.float64  # dequantised, not int8 codes


def test_the_weights_figure_shows_the_zero_spike_of_pruning_and_the_few_values_of_clustering(pathway):
    labels = ["baseline", "pruned", "clustered", "deployed int8"]
    models = list(zip(labels, (pathway["kernels"][k] for k in ("baseline", "prune", "cluster", "deployed"))))
    fig = weight_density_figure(models)
    assert [ax.get_title(loc="left") for ax in fig.axes] == labels
    assert "depthwise kernels (dw_1, dw_2, dw_3, dw_4) excluded" in fig.get_suptitle()
    total = sum(k.size for k in pathway["kernels"]["baseline"].layers.values())

    # The baseline: no exact zero, so no spike; every weight in the histogram.
    baseline = _panel(fig, "baseline")
    assert _zero_spike(baseline, "baseline") is None and _histogram(baseline, "baseline").sum() == total

    # Pruned: half the weights are exact zeros, drawn as one spike taller than any bin.
    pruned = _panel(fig, "pruned")
    zeros = _zero_spike(pruned, "pruned")
    kernels = np.concatenate([k.ravel() for k in pathway["kernels"]["prune"].layers.values()])
    assert zeros == (kernels == 0).sum() and zeros >= (SPARSITY - 0.01) * total
    histogram = _histogram(pruned, "pruned")
    assert histogram.sum() + zeros == total and zeros > 10 * histogram.max()
    density = weight_density("pruned", pathway["kernels"]["prune"])
    assert density.zero_share == pytest.approx(zeros / total) and f"zeros {density.zero_share:.1%}" in density.summary

    # Clustered: each layer holds at most CLUSTERS values (the zero among them); the plotted
    # histogram has no more filled bins than there are non-zero centroids.
    clustered = pathway["kernels"]["cluster"]
    per_layer = {name: len(np.unique(k)) for name, k in clustered.layers.items()}
    assert max(per_layer.values()) <= CLUSTERS, per_layer
    density = weight_density("clustered", clustered)
    assert density.distinct == len(np.unique(np.concatenate([k.ravel() for k in clustered.layers.values()])))
    assert density.distinct <= CLUSTERS * len(COMPRESSED) and density.distinct_per_channel <= CLUSTERS
    filled = np.count_nonzero(_histogram(_panel(fig, "clustered"), "clustered"))
    assert 0 < filled <= (CLUSTERS - 1) * len(COMPRESSED)
    assert _zero_spike(_panel(fig, "clustered"), "clustered") >= (SPARSITY - 0.01) * total  # sparsity kept

    # Deployed int8, dequantised: BatchNorm folded in per channel, so the values differ
    # from the Keras ones, but each output channel keeps at most CLUSTERS and the zeros stay.
    deployed = weight_density("deployed int8", pathway["kernels"]["deployed"])
    assert deployed.distinct_per_channel <= CLUSTERS
    assert deployed.zeros >= (SPARSITY - 0.01) * total
    assert f"at most {deployed.distinct_per_channel} in one output channel" in deployed.summary
    assert _zero_spike(_panel(fig, "deployed int8"), "deployed int8") == deployed.zeros


def test_the_weights_figure_takes_plain_kernels_and_refuses_an_empty_model():
    kernels = {"dense": np.array([[0.0, 0.5], [-0.5, 0.0]])}
    density = weight_density("plain", kernels)
    assert (density.weights, density.zeros, density.distinct, density.distinct_per_channel) == (4, 2, 3, 2)
    assert density.edges[0] == -0.5 and density.edges[-1] == 0.5
    # The bins are symmetric with zero at the centre of the middle one.
    middle = len(density.edges) // 2
    assert density.edges[middle - 1] < 0 < density.edges[middle]
    with pytest.raises(AssertionError, match="empty: no Conv2D or Dense kernel"):
        weight_density("empty", Kernels({}))


@pytest.fixture(scope="module")
def vela_report(pathway, tmp_path_factory):
    """Vela's real estimate, with its per-layer table, of the tiny int8 model."""
    from kws.cache import ArtifactCache
    from kws.vela import estimate

    return estimate(pathway["tflite"], TARGET, cache=ArtifactCache(tmp_path_factory.mktemp("vela-cache")))


def test_the_vela_figure_draws_cycles_and_utilisation_per_layer_in_network_order_and_marks_the_lowest(vela_report):
    fig = vela_layers_figure(vela_report, TARGET, "pc-s0.50-c4-seed0")
    ax, twin = fig.axes
    bars = vela_layer_bars(vela_report.layers)
    # One bar per source operator: a convolution and its fused ReLU are one, their cycles summed.
    assert len(bars) < len(vela_report.layers)
    assert sum(b.cycles for b in bars) == sum(layer.cycles for layer in vela_report.layers)
    names = [layer_label(b.name) for b in bars]
    assert names[:9] == ["conv_1", "dw_1", "pw_1", "dw_2", "pw_2", "dw_3", "pw_3", "dw_4", "pw_4"]
    cycles = [p for p in ax.patches if str(p.get_gid()).startswith("cycles:")]
    assert [p.get_gid() for p in cycles] == [f"cycles:{n}" for n in names]
    assert [p.get_height() for p in cycles] == [b.cycles for b in bars]
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["conv_1 (Conv2D)", "dw_1 (DepthwiseConv2D)"]
    (line,) = [ln for ln in twin.lines if ln.get_gid() == "utilisation"]
    expected = [np.nan if b.mac_utilisation is None else b.mac_utilisation for b in bars]
    np.testing.assert_allclose(line.get_ydata(), expected)
    # The lowest-utilisation layers of Vela's advice: hatched, ranked, their utilisation ringed.
    lowest = [n.name for n in vela_report.low_utilisation]
    assert lowest, "Vela's advice names some layer"
    hatched = [p.get_gid() for p in cycles if p.get_hatch()]
    assert sorted(hatched) == sorted(f"cycles:{layer_label(n)}" for n in lowest)
    ranks = sorted(t.get_text() for t in ax.texts if t.get_gid() == "rank")
    assert ranks == [f"#{i + 1}" for i in range(len(lowest))]
    (ringed,) = [c for c in twin.collections if c.get_gid() == "lowest"]
    util = {b.name: b.mac_utilisation for b in bars}
    assert sorted(np.asarray(ringed.get_offsets())[:, 1]) == pytest.approx(sorted(util[n] for n in lowest))
    assert TARGET in fig.get_suptitle() and "pc-s0.50-c4-seed0" in fig.get_suptitle()


def test_the_vela_figure_takes_per_layer_rows_alone_and_finds_the_lowest_itself(vela_report):
    fig = vela_layers_figure(list(vela_report.layers), TARGET)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches if str(p.get_gid()).startswith("cycles:")] \
        == [b.cycles for b in vela_layer_bars(vela_report.layers)]
    assert any(p.get_hatch() for p in ax.patches)


def test_layer_labels_name_the_keras_layer():
    assert layer_label("ds-cnn-s/pw_1_relu/Relu;ds-cnn-s/pw_1_bn/FusedBatchNormV3;ds-cnn-s/pw_1/Conv2D1") == "pw_1"
    assert layer_label("ds-cnn-s/quant_avg_pool/AvgPool") == "avg_pool"
    assert layer_label("StatefulPartitionedCall:0") == "StatefulPartitionedCall:0"


# ----- write_case_plots --------------------------------------------------------------------------


def _case_row(case: str, keys: dict | None, **given) -> dict:
    row = history_row(case, family="prune", point={"sparsity": 0.5, "schedule": "constant"}, correct=840,
                      gzip=20_000, **given)
    row["spec"] = {"model": "ds-cnn-s", "seed": 0, "finetune_epochs": 4, "learning_rate": 0.0004,
                   "baseline_epochs": 20, "frontend": "mlperf-tiny", "data": "default"}
    row["stages"] = [{"family": "prune", "params": {"sparsity": 0.5}}, {"family": "cluster", "params": {"clusters": 4}}]
    if keys is not None:
        row["keys"] = keys
    return row


def test_a_case_not_in_the_cache_is_a_clear_error_naming_it_and_what_to_run(tmp_path):
    from kws.cache import ArtifactCache
    from kws.errors import KwsError

    keys = {"baseline": "a" * 64, "0:prune": "b" * 64, "deployed": "c" * 64}
    row = _case_row("p-s0.50-seed0", keys)
    with pytest.raises(KwsError) as info:
        write_case_plots(tmp_path, row, ArtifactCache(tmp_path / "empty-cache"))
    message = str(info.value)
    assert message.startswith("case p-s0.50-seed0 is not in this machine's artifact cache")
    assert "missing baseline (baseline aaaaaaaaaaaa), 0:prune (prune bbbbbbbbbbbb), deployed (tflite cccccccccccc)" \
        in message
    assert ("run `kws run p --sparsity 0.5 --schedule constant --seed 0 --model ds-cnn-s --epochs 4 "
            "--learning-rate 0.0004 --baseline-epochs 20` (the recipe of tier smoke)") in message
    assert not (tmp_path / PLOTS_DIR).exists()
    with pytest.raises(KwsError, match="case p-s0.50-seed0: its history row holds no cache keys"):
        write_case_plots(tmp_path, _case_row("p-s0.50-seed0", None), ArtifactCache(tmp_path / "empty-cache"))


def test_write_case_plots_draws_a_case_from_its_models_in_the_cache(pathway, tmp_path):
    """The tiny pathway's models stored under the stages the pipeline uses, and a row whose
    keys name them: the weights plot and one Vela plot per target of the row."""
    from kws.baseline import MODEL_FILE
    from kws.cache import ArtifactCache
    from kws.export import TFLITE_FILE

    cache = ArtifactCache(tmp_path / "cache")

    def stored(stage: str, name: str) -> str:
        def build(folder: Path) -> dict:
            source, file = (pathway["tflite"], TFLITE_FILE) if name == "deployed" else (pathway["h5"][name], MODEL_FILE)
            (folder / file).write_bytes(source.read_bytes())
            return {}
        return cache.get_or_build(stage, {"test": name}, build).key

    keys = {"baseline": stored("baseline", "baseline"), "0:prune": stored("prune", "prune"),
            "1:cluster": stored("cluster", "cluster"), "deployed": stored("tflite", "deployed")}
    row = _case_row("pc-s0.50-c4-seed0", keys, other_us=60.0)
    paths = write_case_plots(tmp_path / "results", row, cache)
    names = [case_plot_name(row["case"], what) for what in ("weights", f"vela-{TARGET}", f"vela-{OTHER_TARGET}")]
    assert [p.name for p in paths] == names == ["case-pc-s0.50-c4-seed0-weights.png",
                                                f"case-pc-s0.50-c4-seed0-vela-{TARGET}.png",
                                                f"case-pc-s0.50-c4-seed0-vela-{OTHER_TARGET}.png"]
    first = [p.read_bytes() for p in paths]
    assert [p.read_bytes() for p in write_case_plots(tmp_path / "results", row, cache)] == first  # the same bytes
    for path in paths:
        data = path.read_bytes()
        assert path.parent == tmp_path / "results" / PLOTS_DIR and data[:8] == b"\x89PNG\r\n\x1a\n"
        assert png_text(data) == {"Source": case_source(row)} and is_current_case_plot(data, row)
        assert not is_current_case_plot(data, {**row, "keys": {**keys, "deployed": "d" * 64}})
    # The accuracy plots' stale-file removal leaves the case plots alone.
    write_plots(tmp_path / "results", [row])
    assert all(p.is_file() for p in paths)
    assert not list((tmp_path / "results" / PLOTS_DIR).glob(".*"))
