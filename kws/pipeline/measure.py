"""What is measured on a deployed model, registered in one place.

A :class:`Measurement` names the metrics it produces (declared in :mod:`kws.metrics`),
when it applies (Vela only for full-int8 models, the eval score only with an eval
folder) and how it measures. One whose result is a property of the model alone gives a
``material`` and is cached as a step under the deployed model's key; timings of this
machine (LiteRT latency) are measured every run. A new measurement is one entry in
:data:`MEASUREMENTS`; the runner and the matrix need no change.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kws.export import ExportKind

#: Timed batch-1 inferences for the LiteRT latency (after 20 warm-up runs).
LITERT_RUNS = 200
#: Timed runs of the front-end, and of the front-end plus one inference, on one clip,
#: alternated (after 5 warm-up runs of each; a run costs a fraction of a millisecond).
END_TO_END_RUNS = 50


@dataclass(frozen=True)
class Settings:
    """Which measurements a run makes: Vela targets (none: no Vela), a second data
    folder to score every deployed model on, and whether to time LiteRT."""

    vela_targets: tuple[str, ...] = ()
    eval_dir: Path | None = None
    latency: bool = True


@dataclass
class Subject:
    """A deployed model and what it was made from, as measurements see it."""

    pathway: Any  # Pathway
    point: Any  # Point
    stages: list  # the technique stages, fine-tuning applied
    deployed: Any  # the export's Artifact
    plain: Any  # the last stripped Keras model's Artifact (before QAT wraps weights)
    data: Any  # CaseData
    cache: Any
    settings: Settings
    eval_ds: Any = field(repr=False, default=None)  # the eval folder, opened once per pipeline

    @property
    def tflite(self) -> Path:
        from kws.export import TFLITE_FILE

        return self.deployed.file(TFLITE_FILE)

    @property
    def export(self) -> ExportKind:
        return ExportKind(self.deployed.metadata["kind"])


@dataclass(frozen=True)
class Measured:
    """What a measurement returns: values by metric name (Vela's under ``"vela"``, 95%
    intervals under ``"intervals"``), optional detail kept in the record only, and
    optional arrays stored with a cached measurement (per-clip predictions)."""

    metrics: dict
    detail: dict | None = None
    arrays: dict | None = None


@dataclass(frozen=True)
class Measurement:
    """``measure(subject)`` returns a :class:`Measured`."""

    name: str
    metrics: tuple[str, ...]
    applies: Callable[[Subject], bool]
    measure: Callable[[Subject], Measured]
    material: Callable[[Subject], dict] | None = None
    # Part of a cached measurement's key: bump it when what the measurement stores changes,
    # so that no entry of the older layout is taken for one of the new.
    version: int = 1


# ----- the measurements ---------------------------------------------------------------------------


def scored(predict, features, labels, names) -> Measured:
    """Top-1 accuracy with its Wilson interval, and the per-clip predictions and labels
    (paired comparisons between models read them)."""
    from kws.evaluate import evaluate
    from kws.stats import accuracy_interval

    predicted = []

    def keep(x):
        scores = predict(x)
        predicted.append(scores.argmax(axis=1))
        return scores

    result = evaluate(keep, features, labels, names)
    correct = round(result.accuracy * result.n)
    return Measured({"accuracy": result.accuracy, "n": result.n,
                     "interval": accuracy_interval(correct, result.n).to_list()},
                    {"test": result.to_dict()},
                    {"predictions": np.concatenate(predicted).astype(np.int16), "labels": np.asarray(labels, np.int16)})


def _accuracy(s: Subject) -> Measured:
    from kws.evaluate import TFLiteRunner

    test, labels = s.data.features("testing")
    if not len(test):
        return Measured({"deployed_accuracy": None, "n_test": 0})
    m = scored(TFLiteRunner(s.tflite).predict, test, labels, s.data.labels)
    return Measured({"deployed_accuracy": m.metrics["accuracy"], "n_test": m.metrics["n"],
                     "intervals": {"deployed_accuracy": m.metrics["interval"]}}, m.detail, m.arrays)


def _accuracy_material(s: Subject) -> dict:
    return {"test": s.data.ds.fingerprint("testing"), "frontend": s.data.frontend.feature_params(),
            "labels": s.data.labels}


def _clusters_and_pattern(stages) -> tuple[int | None, tuple | None]:
    clusters = next((st.clusters for st in reversed(stages) if st.family == "cluster"), None)
    m_by_n = next((tuple(st.m_by_n) for st in stages if getattr(st, "m_by_n", None)), None)
    return clusters, m_by_n


def _inspect(s: Subject):
    from kws.inspect import inspect_keras, inspect_tflite
    from kws.pipeline.steps import load_model

    clusters, m_by_n = _clusters_and_pattern(s.stages)
    detail = {
        "keras": inspect_keras(load_model(s.plain), clusters=clusters, m_by_n=m_by_n).to_dict(),
        "tflite": inspect_tflite(s.tflite.read_bytes(), clusters=clusters, m_by_n=m_by_n).to_dict(),
    }
    tfl = detail["tflite"]
    return Measured({"sparsity": tfl.get("sparsity"), "max_unique_per_channel": tfl.get("max_unique_per_channel")},
                    detail)


def _inspect_material(s: Subject) -> dict:
    clusters, m_by_n = _clusters_and_pattern(s.stages)
    return {"plain": s.plain.key, "clusters": clusters, "m_by_n": m_by_n}


def _vela(s: Subject):
    from kws.metrics import vela_fields
    from kws.vela import estimate

    fields = vela_fields()
    reports = {t: estimate(s.tflite, t, cache=s.cache).to_dict() for t in s.settings.vela_targets}
    return Measured({"vela": {t: {k: r.get(k) for k in fields} for t, r in reports.items()}})


def _eval(s: Subject) -> Measured:
    from kws.errors import KwsError
    from kws.evaluate import TFLiteRunner

    features, labels = s.eval_ds.features("testing", s.data.frontend, cache=s.cache)
    if not len(labels):
        raise KwsError(f"--kws-eval-dir {s.settings.eval_dir}: no test clips to score the models on")
    m = scored(TFLiteRunner(s.tflite).predict, features, labels, s.eval_ds.config.labels)
    return Measured({"eval_accuracy": m.metrics["accuracy"], "intervals": {"eval_accuracy": m.metrics["interval"]}},
                    arrays={"eval_predictions": m.arrays["predictions"], "eval_labels": m.arrays["labels"]})


def _eval_material(s: Subject) -> dict:
    return {"eval": s.eval_ds.fingerprint("testing"), "frontend": s.data.frontend.feature_params(),
            "labels": s.eval_ds.config.labels}


def _latency(s: Subject) -> Measured:
    runner = batch1_runner(s.tflite)  # one interpreter for both timings
    frontend_us, e2e_us = end_to_end_us(s.tflite, s.data.frontend, runner=runner)
    return Measured({"litert_us": litert_latency_us(s.tflite, runner=runner), "frontend_us": frontend_us,
                     "e2e_us": e2e_us})


MEASUREMENTS: dict[str, Measurement] = {m.name: m for m in (
    Measurement("accuracy", ("deployed_accuracy", "n_test"), lambda s: True, _accuracy, _accuracy_material,
                version=2),
    Measurement("inspect", ("sparsity", "max_unique_per_channel"), lambda s: True, _inspect, _inspect_material),
    Measurement("vela", ("vela_us",), lambda s: s.export is ExportKind.INT8 and bool(s.settings.vela_targets),
                _vela, version=2),
    Measurement("eval", ("eval_accuracy",), lambda s: s.settings.eval_dir is not None, _eval, _eval_material,
                version=2),
    Measurement("latency", ("litert_us", "frontend_us", "e2e_us"), lambda s: s.settings.latency, _latency),
)}


def run_measurement(m: Measurement, subject: Subject) -> tuple[Measured, dict[str, Path], str]:
    """``(measured, files, how)``: ``files`` are the stored arrays' paths (a cached
    measurement only), ``how`` is ``"cached"`` or ``"now"``."""
    if m.material is None:
        measured = m.measure(subject)
        if measured.arrays:
            raise ValueError(f"measurement {m.name}: arrays are stored only by a cached measurement")
        return measured, {}, "now"
    from kws.pipeline.steps import Step

    built = []

    def build(folder: Path) -> dict:
        measured = m.measure(subject)
        for name, array in (measured.arrays or {}).items():
            np.save(folder / f"{name}.npy", array, allow_pickle=False)
        built.append(True)
        return {"metrics": measured.metrics, "detail": measured.detail, "arrays": sorted(measured.arrays or {})}

    material = {**m.material(subject), "version": m.version}
    art = Step(f"measure-{m.name}", material, build, subject.deployed).run(subject.cache)
    files = {name: art.file(f"{name}.npy") for name in art.metadata.get("arrays", [])}
    return Measured(art.metadata["metrics"], art.metadata.get("detail")), files, "now" if built else "cached"


def load_array(path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


# ----- LiteRT timing ------------------------------------------------------------------------------


def litert_latency_us(tflite: Path, runs: int = LITERT_RUNS, *, runner=None) -> float:
    """Median host latency of one batch-1 inference under LiteRT on one thread."""
    return _median_us(litert_invoker(tflite, runner=runner), runs, 20)


def _median_us(run, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def end_to_end_us(tflite: Path, frontend, runs: int = END_TO_END_RUNS, *, runner=None) -> tuple[float, float]:
    """``(front-end, total)``: the median host time of the front-end (``kws.features``'
    traced graph) on one 1 s, 16 kHz clip, and of that front-end plus quantising its
    features and one batch-1 LiteRT inference on them, on one thread: the total latency
    of a keyword spotter. The two are timed in turn, run by run. ``runner``: a
    :func:`batch1_runner` of ``tflite`` to reuse."""
    from kws.features import extract

    runner = runner or batch1_runner(tflite)
    interp = runner.interpreter
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    clip = (np.random.default_rng(0).standard_normal((1, 16_000)) * 3000).astype(np.int16)
    shape = tuple(int(d) for d in inp["shape"])
    if int(np.prod(shape)) != int(np.prod(frontend.output_shape)):
        raise ValueError(f"{tflite}: model input {shape} does not take front-end {frontend.name}'s "
                         f"features {frontend.output_shape}")

    def features():
        return extract(clip, frontend, batch_size=1)

    def total():
        interp.set_tensor(inp["index"], runner.input_quant.quantize(features().reshape(shape)))
        interp.invoke()
        return interp.get_tensor(out["index"])

    # Alternated, so that both medians see the same load on a noisy machine.
    for _ in range(5):
        features(), total()
    times: dict = {features: [], total: []}
    for _ in range(runs):
        for run in (features, total):
            start = time.perf_counter()
            run()
            times[run].append(time.perf_counter() - start)
    return 1e6 * statistics.median(times[features]), 1e6 * statistics.median(times[total])


def batch1_runner(tflite: Path):
    """A batch-1, one-thread LiteRT runner of ``tflite``: what the latencies are timed on."""
    from kws.evaluate import TFLiteRunner

    return TFLiteRunner(Path(tflite), batch_size=1, num_threads=1)


def litert_invoker(tflite: Path, *, runner=None):
    """A function that sets one batch-1 input, invokes and reads the output (on
    ``runner``, a :func:`batch1_runner` of ``tflite``, where given)."""
    runner = runner or batch1_runner(tflite)
    interp = runner.interpreter
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    clip = runner.input_quant.quantize(np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32))

    def feed():
        interp.set_tensor(inp["index"], clip)
        interp.invoke()
        return interp.get_tensor(out["index"])
    return feed
