"""The recipes of docs/ARCHITECTURE.md, each done the way the page says and nothing
more: a stage, a metric, an axis and a Vela target added in a test (the tables are
patched for the test only) show up everywhere they should."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import pytest

from kws.cache import ArtifactCache
from kws.export import ExportKind
from kws.matrix.grid import Case, load_grid, slug
from kws.matrix.history import gate
from kws.matrix.report import render
from kws.matrix.session import MatrixSession
from kws.matrix.thresholds import GateLimits, load_thresholds
from kws.metrics import METRICS, Better, GateKind, GateRule, Metric
from kws.models import ModelConfig
from kws.pathways import AXES, PATHWAYS, Axis, Family, Pathway, Point, Stage, make_point
from kws.pathways.base import FineTune
from kws.pathways.prune import Prune
from kws.pipeline import MEASUREMENTS, CasePipeline, Measurement, RunSpec, Settings
from kws.pipeline.measure import Measured
from kws.train import TrainConfig
from kws.vela.targets import TARGETS, Accelerator, MemoryMode, SystemConfig, VelaTarget
from tests.helpers import make_archive

TINY = ModelConfig(alpha=0.25)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny archive, a cache and the spec of 1-epoch runs on them."""
    data = make_archive(tmp_path_factory.mktemp("data") / "a", speakers=16)
    spec = RunSpec(model=TINY, data_dir=data, baseline=TrainConfig(epochs=1, batch_size=32, augmentation_versions=1),
                   finetune=FineTune(epochs=1))
    return spec, ArtifactCache(tmp_path_factory.mktemp("artifacts"))


# ----- a stage: its module + one registry entry ---------------------------------------------------


@dataclass(frozen=True)
class Rewind(Stage):
    """A toy technique: fine-tunes the model as it is (it promises nothing)."""

    family: ClassVar[str] = "rewind"

    def run(self, model, ctx, preserved):
        return model, self.train(model, ctx)


def test_a_new_stage_runs_cached_through_the_pipeline_and_is_checked(tiny, monkeypatch):
    spec, cache = tiny
    monkeypatch.setitem(PATHWAYS, "rw", Pathway("rw", Family.PRUNE, "train -> rewind -> int8", (),
                                                ExportKind.INT8, lambda p: [Rewind()]))
    pipeline = CasePipeline(cache, Settings(latency=False))
    record = pipeline.run("rw", Point(), spec)
    assert [s.family for s in record.stages] == ["rewind"] and record.trained_now == ("rewind",)
    assert set(record.keys) == {"baseline", "0:rewind", "deployed"}
    assert record.stages[0].params["finetune"] == {"epochs": 1, "learning_rate": 1e-4}
    assert 0 <= record.metric("deployed_accuracy") <= 1
    assert pipeline.run("rw", Point(), spec).trained_now == ()  # cached on its parent's key
    from kws.matrix.checks import applicable

    assert applicable(Case("rw", Point(), "smoke", spec)) == ["accuracy", "size", "npu", "vela_latency",
                                                               "vela_weights"]


# ----- a metric: one table entry + its measurement -------------------------------------------------


def test_a_new_metric_reaches_the_record_the_row_the_summary_and_the_gate(tiny, monkeypatch, tmp_path):
    spec, cache = tiny
    monkeypatch.setitem(METRICS, "flatbuffer_kib", Metric(
        "flatbuffer_kib", "count", Better.LOWER, "flatbuffer", "the flatbuffer in whole KiB", label="flatbuffer KiB",
        column="flatbuffer KiB", column_format=".0f", gate=GateRule(GateKind.GROWTH_PCT, "flatbuffer_growth_pct", 3.0)))
    monkeypatch.setitem(MEASUREMENTS, "flatbuffer", Measurement(
        "flatbuffer", ("flatbuffer_kib",), lambda s: True,
        lambda s: Measured({"flatbuffer_kib": s.tflite.stat().st_size // 1024}),
        lambda s: {}))
    record = CasePipeline(cache, Settings(latency=False)).run("ptq_int8", Point(), spec)
    kib = record.metric("flatbuffer_kib")
    assert kib == record.metrics["bytes"] // 1024 and record.measured["flatbuffer"] == "now"
    def how() -> str:
        return CasePipeline(cache, Settings(latency=False)).run("ptq_int8", Point(), spec).measured["flatbuffer"]

    assert how() == "cached"
    # A measurement that changes what it stores bumps its version: no entry of the old layout is reused.
    monkeypatch.setitem(MEASUREMENTS, "flatbuffer", replace(MEASUREMENTS["flatbuffer"], version=2))
    assert how() == "now"

    session = MatrixSession(load_grid(_grid(tmp_path))["smoke"],
                            load_thresholds(_thresholds(tmp_path, "[gate]\nflatbuffer_growth_pct = 10.0\n")),
                            tmp_path / "results", tmp_path)
    case = Case("ptq_int8", Point(), "smoke", spec)
    row = session.row(case, record)
    assert row["metrics"]["flatbuffer_kib"] == kib
    assert "flatbuffer KiB" in render([row])
    bigger = {**row, "metrics": {**row["metrics"], "flatbuffer_kib": kib * 2 + 10}}
    (message,) = gate([bigger], [row], GateLimits())
    assert message.startswith(f"ptq_int8-seed0: flatbuffer KiB {kib * 2 + 10} is ") and "limit 3.0%" in message
    assert session.thresholds.gate.flatbuffer_growth_pct == 10.0  # overridable by its key


def _grid(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text("[tiers.smoke]\nseeds = [0]\nbaseline_epochs = 1\nfinetune_epochs = 1\n")
    return path


def _thresholds(tmp_path, text):
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return path


# ----- an axis: one table entry + the pathways that take it -----------------------------------------


def test_a_new_axis_reaches_validation_ids_the_grid_and_the_cli(monkeypatch, tmp_path, capsys):
    def check(value, model):
        if value < 1:
            raise ValueError(f"frequency must be >= 1, got {value}")

    monkeypatch.setitem(AXES, "frequency", Axis("frequency", int, 100, "pruning-step frequency",
                                                 lambda v: f"f{v}", check))
    monkeypatch.setitem(PATHWAYS, "pf", Pathway(
        "pf", Family.PRUNE, "train -> prune every N steps -> int8", ("sparsity", "frequency"), ExportKind.INT8,
        lambda p: [Prune(sparsity=p.sparsity, frequency=p.frequency)]))
    point = make_point(PATHWAYS["pf"], frequency=50)
    assert slug("pf", point, 1) == "pf-s0.50-f50-seed1"
    assert PATHWAYS["pf"].stages(point)[0].frequency == 50
    with pytest.raises(ValueError, match="frequency must be >= 1"):
        make_point(PATHWAYS["pf"], frequency=0)
    with pytest.raises(ValueError, match="pathway p does not take frequency"):
        make_point(PATHWAYS["p"], frequency=50)

    grid = tmp_path / "grid.toml"
    grid.write_text("[tiers.smoke]\nseeds = [0]\nbaseline_epochs = 1\nfinetune_epochs = 1\npathways = [\"pf\"]\n"
                    "[tiers.smoke.axes]\nfrequency = [10, 20]\n")
    from kws.matrix.grid import generate

    assert [c.slug for c in generate(load_grid(grid)["smoke"])] == ["pf-s0.50-f10-seed0", "pf-s0.50-f20-seed0"]

    from kws.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--frequency FREQUENCY" in capsys.readouterr().out


# ----- a Vela target: one table entry ----------------------------------------------------------------


def test_a_new_vela_target_is_estimated_recorded_and_summarised(tiny, monkeypatch, tmp_path):
    spec, cache = tiny
    monkeypatch.setitem(TARGETS, "ethos-u55-64", VelaTarget(
        "ethos-u55-64", Accelerator.ETHOS_U55_64, SystemConfig.ETHOS_U55_HIGH_END_EMBEDDED, MemoryMode.SHARED_SRAM))
    from kws.vela import parse_targets

    assert [t.name for t in parse_targets("ethos-u55-64,ethos-u55-256")] == ["ethos-u55-64", "ethos-u55-256"]
    record = CasePipeline(cache, Settings(vela_targets=("ethos-u55-64", "ethos-u55-256"), latency=False)).run(
        "ptq_int8", Point(), spec)
    slow, fast = record.metric("vela_us", "ethos-u55-64"), record.metric("vela_us", "ethos-u55-256")
    assert slow > fast > 0, "a quarter of the MACs per cycle takes longer"
    session = MatrixSession(load_grid(_grid(tmp_path))["smoke"], load_thresholds(_thresholds(tmp_path, "")),
                            tmp_path / "results", tmp_path)
    text = render([session.row(Case("ptq_int8", Point(), "smoke", spec), record)])
    assert "Vela us ethos-u55-64" in text and "Vela us ethos-u55-256" in text
