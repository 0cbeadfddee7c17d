"""The case runner: one pathway at one grid point with one :class:`RunSpec`, from the
baseline through its technique stages and the export to the measurements, every step
through the artifact cache; the result is a :class:`~kws.record.CaseRecord`.

``kws run`` and the benchmark matrix both call :meth:`CasePipeline.run`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from kws.export import ExportKind
from kws.pathways.axes import Point
from kws.pathways.registry import Pathway, check_applies, get_pathway
from kws.pipeline.measure import MEASUREMENTS, Settings, Subject, run_measurement
from kws.pipeline.spec import RunSpec
from kws.pipeline.steps import CaseData, baseline_step, export_step, technique_step
from kws.record import CaseRecord, StageRecord, Times


def _plain(value):
    """JSON values only (enums as strings, tuples as lists), so records round-trip."""
    return json.loads(json.dumps(value, default=str))


class CasePipeline:
    """Runs cases against one artifact cache with one set of measurements. Datasets are
    opened (and fingerprinted) once per pipeline, however many cases use them."""

    def __init__(self, cache=None, settings: Settings = Settings()):
        from kws.cache import ArtifactCache

        self.cache = cache if cache is not None else ArtifactCache()
        self.settings = settings
        self._datasets: dict = {}

    def dataset(self, data_dir: Path | None, config):
        from kws.baseline import resolve_data_dir
        from kws.data import SpeechCommands

        root = resolve_data_dir(data_dir)
        if (root, config) not in self._datasets:
            self._datasets[root, config] = SpeechCommands(root, config)
        return self._datasets[root, config]

    def run(self, pathway: str | Pathway, point: Point = Point(), spec: RunSpec = RunSpec()) -> CaseRecord:
        pathway = get_pathway(pathway) if isinstance(pathway, str) else pathway
        cache, start = self.cache, time.perf_counter()
        check_applies(pathway, spec.model)
        data = self.case_data(spec)
        model = pathway.model(spec.model, point)
        baseline = self.baseline(data, model)
        # The yardstick is the full-width baseline deployed as int8, also for the width
        # pathway (which trains a narrower baseline of its own).
        full = baseline if model == spec.model else self.baseline(data, spec.model)
        baseline_int8, reference, reference_files = self.scored_export(full, ExportKind.INT8, data)

        parent, preserved, plain, stages, records = baseline, frozenset(), baseline, [], []
        for stage in pathway.stages(point):
            stage = stage.with_finetune(spec.finetune)
            misses = cache.misses
            art = technique_step(stage, parent, preserved, data).run(cache)
            records.append(StageRecord(stage.family, art.key, _plain(stage.params()), art.metadata["train_seconds"],
                                       art.metadata.get("test", {}).get("accuracy"), cache.misses > misses))
            stages.append(stage)
            preserved, parent = stage.preserved(preserved), art
            # QAT wrappers hold their weights differently: a QAT pathway is inspected on
            # Keras before QAT and on the deployed TFLite after it.
            if stage.family != "qat":
                plain = art
        deployed = export_step(parent, pathway.export, data).run(cache)

        own_baseline = model != spec.model
        metrics = {
            "baseline_float_accuracy": full.metadata.get("test", {}).get("accuracy"),
            "baseline_int8_accuracy": reference.metrics["deployed_accuracy"],
            "intervals": {"baseline_int8_accuracy": reference.metrics.get("intervals", {}).get("deployed_accuracy")},
            "baseline_int8_gzip_bytes": baseline_int8.metadata["sizes"]["gzip"],
            "float_accuracy": records[-1].test_accuracy if records
            else baseline.metadata.get("test", {}).get("accuracy"),
            "bytes": deployed.metadata["sizes"]["raw"],
            "gzip_bytes": deployed.metadata["sizes"]["gzip"],
            "zlib_bytes": deployed.metadata["sizes"]["zlib"],
            # The pathway's retraining cost: its stages, each once, plus the baseline when
            # the pathway trains its own (the width pathway).
            "retrain_s": sum(r.train_seconds for r in records)
            + (baseline.metadata["train_seconds"] if own_baseline else 0.0),
        }
        subject = self.subject(pathway, point, stages, deployed, plain, data)
        measured, inspection, files = {}, None, {"deployed": str(subject.tflite)}
        for m in MEASUREMENTS.values():
            if not m.applies(subject):
                measured[m.name] = "n/a"
                continue
            result, stored, measured[m.name] = run_measurement(m, subject)
            _merge(metrics, result.metrics)
            files.update({name: str(path) for name, path in stored.items()})
            if m.name == "inspect":
                inspection = result.detail
        if "predictions" in files and "predictions" in reference_files:
            metrics.update(_paired_drop(reference_files, files, metrics["intervals"]))
        return CaseRecord(
            pathway=pathway.name, family=pathway.family.value, point=point.to_dict(), spec=spec.to_dict(),
            model=model.slug, export=pathway.export.value,
            keys={"baseline": baseline.key, **{f"{i}:{r.family}": r.key for i, r in enumerate(records)},
                  "deployed": deployed.key},
            metrics=_plain(metrics), stages=tuple(records),
            times=Times(baseline_train_s=baseline.metadata["train_seconds"],
                        stages_s={f"{i}:{r.family}": r.train_seconds for i, r in enumerate(records)},
                        wall_s=time.perf_counter() - start),
            trained_now=tuple(r.family for r in records if r.built),
            versions=deployed.manifest.get("versions", {}), measured=measured,
            files=files, inspection=inspection)

    def case_data(self, spec: RunSpec) -> CaseData:
        """The spec's dataset (opened once per pipeline) with its front-end and recipe."""
        ds = self.dataset(spec.data_dir, spec.data_config)
        return CaseData(ds, spec.frontend, spec.baseline_train, self.cache)

    def baseline(self, data: CaseData, model):
        """The trained baseline's artifact for ``model``, from the cache or trained now."""
        return baseline_step(data.ds, data.frontend, model, data.train, self.cache).run(self.cache)

    def scored_export(self, parent, kind: str, data: CaseData):
        """``parent`` converted as ``kind`` and scored on the test split with LiteRT:
        ``(export artifact, Measured, stored files)``."""
        deployed = export_step(parent, kind, data).run(self.cache)
        measured, files, _ = run_measurement(MEASUREMENTS["accuracy"],
                                             self.subject(None, None, [], deployed, parent, data))
        return deployed, measured, files

    def subject(self, pathway, point, stages, deployed, plain, data) -> Subject:
        from kws.data import DataConfig

        eval_ds = None if self.settings.eval_dir is None else self.dataset(self.settings.eval_dir, DataConfig())
        return Subject(pathway, point, stages, deployed, plain, data, self.cache, self.settings, eval_ds)


def _merge(metrics: dict, values: dict) -> None:
    """Add a measurement's values; the per-target and interval tables are merged."""
    for name, value in values.items():
        if isinstance(value, dict) and isinstance(metrics.get(name), dict):
            metrics[name].update(value)
        else:
            metrics[name] = value


def _paired_drop(reference_files: dict, files: dict, intervals: dict) -> dict:
    """The accuracy drop against the baseline's int8 on the same clips, with its paired
    interval and exact McNemar p-value."""
    from kws.pipeline.measure import load_array
    from kws.stats import paired_drop

    labels = load_array(reference_files["labels"])
    if not np.array_equal(labels, load_array(files["labels"])):
        raise ValueError("the deployed model and the baseline were scored on different clips")
    drop = paired_drop(load_array(reference_files["predictions"]) == labels,
                       load_array(files["predictions"]) == labels)
    intervals["accuracy_drop"] = drop.interval.to_list()
    return {"accuracy_drop": drop.drop, "accuracy_drop_p": drop.p_value}


def run_case(pathway: str | Pathway, point: Point = Point(), spec: RunSpec = RunSpec(), *, cache=None,
             settings: Settings = Settings()) -> CaseRecord:
    """One case through a fresh :class:`CasePipeline`."""
    return CasePipeline(cache, settings).run(pathway, point, spec)


def retrain_summary(records: list[CaseRecord]) -> dict:
    """Retraining seconds per pathway (its stages, each once) and overall (every distinct
    stage once, however many pathways share it)."""
    per_pathway, distinct = {}, {}
    for record in records:
        per_pathway[record.pathway] = record.metrics["retrain_s"]
        for stage in record.stages:
            distinct[stage.key] = stage.train_seconds
    return {"per_pathway_s": per_pathway, "overall_s": sum(distinct.values()),
            "sum_of_pathways_s": sum(per_pathway.values())}
