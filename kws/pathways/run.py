"""Running a pathway: the baseline, each stage through the artifact cache, the final
conversion, evaluation with LiteRT, and inspection of what survived."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from kws.baseline import resolve_data_dir, train_baseline
from kws.data import DataConfig, SpeechCommands
from kws.models import ModelConfig, save_model
from kws.pathways.base import MODEL_FILE, StageContext, load_model
from kws.pathways.registry import PathwayParams, get_pathway, taken
from kws.train import TrainConfig


@dataclass
class _LazyContext:
    """Prepares the training data only when some stage actually has to train."""

    ds: SpeechCommands
    frontend: Any
    base_train: TrainConfig

    @cached_property
    def ctx(self) -> StageContext:
        from kws.train import prepare_data

        data = prepare_data(self.ds, self.frontend, self.base_train)
        return StageContext(data=data, base_train=self.base_train, label_names=self.ds.config.labels)


@dataclass
class StageRecord:
    family: str
    key: str
    params: dict
    train_seconds: float
    test_accuracy: float | None
    built: bool
    metadata: dict = field(repr=False, default_factory=dict)


def _stage_build(stage, parent, lazy: _LazyContext, preserved, frontend):
    def build(folder):
        from kws.evaluate import evaluate_keras
        from kws.train import seed_everything

        seed_everything(lazy.base_train.seed)
        model, meta = stage.run(load_model(parent), lazy.ctx, preserved)
        test, labels = lazy.ds.features("testing", frontend)
        if len(test):
            meta["test"] = evaluate_keras(model, test, labels, lazy.ds.config.labels).to_dict()
        meta["preserved"] = sorted(stage.preserved(preserved))
        save_model(model, folder / MODEL_FILE)
        return meta
    return build


def run_pathway(name: str, params: PathwayParams = PathwayParams(), *, data_dir=None,
                model: ModelConfig = ModelConfig(), base_train: TrainConfig = TrainConfig(),
                frontend="mlperf-tiny", data_config: DataConfig = DataConfig(), cache=None,
                inspect: bool = True) -> dict:
    """Run (or fetch) ``name`` and return its record: pathway, params, cache keys,
    metrics (float and deployed accuracy, sizes, sparsity, clusters per channel), times."""
    from kws.cache import ArtifactCache
    from kws.export import TFLITE_FILE, export_stage
    from kws.features import get_frontend

    pathway = get_pathway(name)
    cache = cache or ArtifactCache()
    frontend = get_frontend(frontend)
    start = time.perf_counter()
    ds = SpeechCommands(resolve_data_dir(data_dir), data_config)
    own_baseline = pathway.model(model, params) != model
    model = pathway.model(model, params)
    base_train = replace(base_train, seed=params.seed)
    baseline = train_baseline(ds, model=model, train=base_train, frontend=frontend, cache=cache)
    baseline_int8 = export_stage(baseline, load_model, "int8", ds, frontend, cache=cache)
    lazy = _LazyContext(ds, frontend, base_train)
    parent, preserved, stages = baseline, frozenset(), []
    # The last stripped Keras model: QAT wrappers hold their weights differently, so a QAT
    # pathway is inspected on Keras before QAT and on the deployed TFLite after it.
    plain = baseline
    for stage in pathway.stages(params):
        misses = cache.misses
        art = cache.get_or_build(stage.family, {"stage": stage.params(), "preserved": sorted(preserved)},
                                 _stage_build(stage, parent, lazy, preserved, frontend), parent=parent)
        stages.append(StageRecord(stage.family, art.key, stage.params(), art.metadata["train_seconds"],
                                  art.metadata.get("test", {}).get("accuracy"), cache.misses > misses,
                                  art.metadata))
        preserved = stage.preserved(preserved)
        parent = art
        if stage.family != "qat":
            plain = art
    deployed = export_stage(parent, load_model, pathway.export, ds, frontend, cache=cache)
    record = {
        "pathway": name,
        "family": pathway.family,
        "params": taken(pathway, params),
        "model": model.slug,
        "export": pathway.export,
        "keys": {"baseline": baseline.key, **{f"{i}:{s.family}": s.key for i, s in enumerate(stages)},
                 "deployed": deployed.key},
        "metrics": _metrics(baseline, baseline_int8, stages, deployed),
        "times": {
            "baseline_train_s": baseline.metadata["train_seconds"],
            "stages_s": {f"{i}:{s.family}": s.train_seconds for i, s in enumerate(stages)},
            # Retraining cost of the pathway: its stages' fine-tuning, each counted once,
            # plus the baseline when the pathway trains its own (the width pathway).
            "retrain_s": sum(s.train_seconds for s in stages)
            + (baseline.metadata["train_seconds"] if own_baseline else 0.0),
            "trained_now": [s.family for s in stages if s.built],
            "wall_s": time.perf_counter() - start,
        },
        "versions": deployed.manifest.get("versions", {}),
        "files": {"deployed": str(deployed.file(TFLITE_FILE))},
    }
    if inspect:
        record["inspection"] = _inspect(pathway, params, stages, plain, deployed.file(TFLITE_FILE))
        record["metrics"].update(_inspection_metrics(record["inspection"]))
    return record


def _metrics(baseline, baseline_int8, stages, deployed) -> dict:
    test = deployed.metadata.get("test", {})
    last_float = stages[-1].test_accuracy if stages else baseline.metadata.get("test", {}).get("accuracy")
    return {
        "baseline_float_accuracy": baseline.metadata.get("test", {}).get("accuracy"),
        "baseline_int8_accuracy": baseline_int8.metadata.get("test", {}).get("accuracy"),
        "baseline_int8_gzip_bytes": baseline_int8.metadata["sizes"]["gzip"],
        "float_accuracy": last_float,
        "deployed_accuracy": test.get("accuracy"),
        "n_test": test.get("n"),
        "bytes": deployed.metadata["sizes"]["raw"],
        "gzip_bytes": deployed.metadata["sizes"]["gzip"],
        "zlib_bytes": deployed.metadata["sizes"]["zlib"],
    }


def _inspect(pathway, params, stages, plain, tflite_path) -> dict:
    from kws.inspect import inspect_keras, inspect_tflite

    clusters = params.clusters if "clusters" in pathway.takes else None
    m_by_n = next((tuple(s.params["m_by_n"]) for s in stages if s.params.get("m_by_n")), None)
    return {
        "keras": inspect_keras(load_model(plain), clusters=clusters, m_by_n=m_by_n).to_dict(),
        "tflite": inspect_tflite(tflite_path.read_bytes(), clusters=clusters, m_by_n=m_by_n).to_dict(),
    }


def _inspection_metrics(inspection: dict) -> dict:
    tfl = inspection["tflite"]
    return {"sparsity": tfl.get("sparsity"), "max_unique_per_channel": tfl.get("max_unique_per_channel")}


def retrain_summary(records: list[dict]) -> dict:
    """Retraining seconds per pathway (its stages, each once) and overall (every distinct
    stage once, however many pathways share it)."""
    per_pathway, distinct = {}, {}
    for record in records:
        per_pathway[record["pathway"]] = record["times"]["retrain_s"]
        for stage, seconds in record["times"]["stages_s"].items():
            distinct[record["keys"][stage]] = seconds
    return {"per_pathway_s": per_pathway, "overall_s": sum(distinct.values()),
            "sum_of_pathways_s": sum(per_pathway.values())}
