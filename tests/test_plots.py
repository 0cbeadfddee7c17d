"""The plots of ``results/plots/`` on a history whose right answer is known: schema-2 rows
built from case records and written by the history's own writer. Each plot is checked
through its figure (the points, intervals, front and labels on its axes), then as the
PNG file written for it."""

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
    Plot,
    build_figure,
    plots_for,
    plotted,
    png_bytes,
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
