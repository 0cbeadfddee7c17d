"""One benchmark session: the tier's cases, each case's result (run or fetched through the
artifact cache, then estimated with Vela and timed with LiteRT), the history rows it
produces, and the reports written when it ends.

The pytest plugin (:mod:`kws.matrix.plugin`) only wires this to options, fixtures and
hooks.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from kws.matrix.checks import CHECKS, applicable
from kws.matrix.grid import Case, Tier, generate
from kws.matrix.history import (
    HISTORY_FILE,
    append_history,
    gate,
    git_commit,
    machine,
    now,
    read_history,
)
from kws.matrix.report import write_summary
from kws.matrix.thresholds import Thresholds
from kws.vela import DEFAULT_TARGET

SUMMARY_FILE = "summary.md"
LITERT_RUNS = 200


@dataclass
class MatrixSession:
    tier: Tier
    thresholds: Thresholds
    results_dir: Path
    project_root: Path
    data_dir: Path | None = None
    # A second Speech Commands folder every deployed model is also scored on (its test
    # split; all of it for the test-set layout): real speech for models trained on the
    # synthetic default data.
    eval_dir: Path | None = None
    vela_targets: tuple[str, ...] = (DEFAULT_TARGET,)
    seeds: tuple[int, ...] | None = None
    gate_enabled: bool = False
    rows: list[dict] = field(default_factory=list)
    gate_messages: list[str] = field(default_factory=list)
    _results: dict = field(default_factory=dict, repr=False)
    _eval_features: dict = field(default_factory=dict, repr=False)

    # ----- cases ----------------------------------------------------------------------
    @cached_property
    def cases(self) -> list[Case]:
        tier = replace(self.tier, seeds=self.seeds) if self.seeds else self.tier
        return generate(tier)

    def cases_for(self, check: str | None) -> list[Case]:
        """The cases a test applies to: all of them for the run itself, or those a check
        applies to."""
        return self.cases if check is None else [c for c in self.cases if check in applicable(c)]

    def reference(self, case: Case, pathway: str) -> Case:
        """The case of ``pathway`` (one that takes no hyperparameters: ``ptq_int8``,
        ``qat``) with the same seed, tier, model and recipe: a check's yardstick."""
        from kws.pathways.registry import PATHWAYS, make_params

        params = make_params(PATHWAYS[pathway], epochs=case.params.epochs, seed=case.params.seed,
                             learning_rate=case.params.learning_rate)
        return Case(pathway, params, case.tier, case.baseline_epochs, case.model, case.frontend)

    # ----- data -----------------------------------------------------------------------
    @cached_property
    def resolved_data_dir(self) -> Path:
        from kws.baseline import resolve_data_dir

        return resolve_data_dir(self.data_dir)

    @cached_property
    def data_id(self) -> str:
        """What the history calls the data: the synthetic set's folder name (it names its
        recipe), or a hash of every clip's relative path and size (not mtimes, so the same
        copy of Speech Commands on two machines is the same data)."""
        root = self.resolved_data_dir
        if self.data_dir is None:
            return root.name
        from kws.data import SpeechCommands

        ds = SpeechCommands(root)
        h = hashlib.sha256()
        for split in ("training", "validation", "testing"):
            for clip in ds.clips(split):
                if clip.path is None:  # generated silence
                    h.update(f"{split}\0{clip.label}\n".encode())
                else:
                    h.update(f"{split}\0{clip.path.relative_to(root)}\0{clip.path.stat().st_size}\n".encode())
        return f"{root.name}-{h.hexdigest()[:12]}"

    # ----- results --------------------------------------------------------------------
    def result(self, case: Case) -> dict:
        """The case's record: pathway metrics, Vela estimates per target, LiteRT latency.
        Built once per process; the artifact cache makes it once across processes."""
        if case.slug not in self._results:
            try:
                self._results[case.slug] = self._run(case)
            except Exception as exc:
                # A case that failed (diverged, Vela refused it) fails its checks with the
                # same error instead of being trained again by each of them.
                self._results[case.slug] = exc
                raise
        result = self._results[case.slug]
        if isinstance(result, Exception):
            raise result
        return result

    def _run(self, case: Case) -> dict:
        from kws.models import parse_model
        from kws.pathways.run import run_pathway
        from kws.train import TrainConfig

        start = time.perf_counter()
        record = run_pathway(case.pathway, case.params, data_dir=self.resolved_data_dir,
                             model=parse_model(case.model), base_train=TrainConfig(epochs=case.baseline_epochs),
                             frontend=case.frontend)
        tflite = Path(record["files"]["deployed"])
        if case.export == "int8":
            from kws.vela import estimate

            record["vela"] = {t: estimate(tflite, t).to_dict() for t in self.vela_targets}
        if self.eval_dir is not None:
            record["metrics"]["eval_accuracy"] = self._eval_accuracy(tflite, case.frontend)
        record["metrics"]["litert_us"] = litert_latency_us(tflite)
        record["times"]["case_wall_s"] = time.perf_counter() - start
        return record

    def _eval_accuracy(self, tflite: Path, frontend: str) -> float:
        from kws.data import SpeechCommands
        from kws.errors import KwsError
        from kws.evaluate import TFLiteRunner, evaluate

        if frontend not in self._eval_features:
            ds = SpeechCommands(self.eval_dir)
            features, labels = ds.features("testing", frontend)
            if not len(labels):
                raise KwsError(f"--kws-eval-dir {self.eval_dir}: no test clips to score the models on")
            self._eval_features[frontend] = features, labels, ds.config.labels
        features, labels, names = self._eval_features[frontend]
        return evaluate(TFLiteRunner(tflite).predict, features, labels, names).accuracy

    def row(self, case: Case, record: dict) -> dict:
        """The history line of a case's run (compact: no per-layer data)."""
        metrics = {k: record["metrics"].get(k) for k in (
            "deployed_accuracy", "float_accuracy", "baseline_int8_accuracy", "baseline_float_accuracy",
            "gzip_bytes", "bytes", "baseline_int8_gzip_bytes", "sparsity", "max_unique_per_channel", "litert_us", "eval_accuracy")}
        metrics["retrain_s"] = record["times"]["retrain_s"]
        metrics["vela"] = {t: {k: v.get(k) for k in VELA_FIELDS} for t, v in record.get("vela", {}).items()}
        return {"time": now(), **self.commit, "tier": case.tier, "case": case.slug,
                "config_key": case.config_key(self.data_id), "data_id": self.data_id,
                "eval_data": self.eval_dir.name if self.eval_dir else None,
                "pathway": case.pathway, "params": record["params"], "seed": case.params.seed,
                "model": record["model"], "trained_now": record["times"]["trained_now"],
                "metrics": metrics, "machine": machine(), "versions": record.get("versions", {})}

    @cached_property
    def commit(self) -> dict:
        return git_commit(self.project_root)

    def check(self, name: str, case: Case) -> None:
        check = CHECKS[name]
        limits = self.thresholds.limits(case.tier, case.pathway)
        reference = self.result(self.reference(case, check.reference)) if check.reference else None
        check.run(case, self.result(case), limits, reference=reference, targets=self.vela_targets)

    # ----- the end of the session -----------------------------------------------------
    def finish(self) -> list[Path]:
        """Append this session's rows to the history, run the gate against the earlier
        rows, rewrite the summary. Returns the files written."""
        if not self.rows:
            return []
        history = self.results_dir / HISTORY_FILE
        earlier = read_history(history)
        if self.gate_enabled:
            self.gate_messages = gate(self.rows, earlier, self.thresholds.gate)
        append_history(history, self.rows)
        summary = self.results_dir / SUMMARY_FILE
        write_summary(summary, earlier + self.rows)
        return [history, summary]


VELA_FIELDS = ("inference_us", "cycles_npu", "cycles_total", "encoded_weight_bytes", "original_weight_bytes",
               "sram_bytes", "flash_bytes", "npu_ops", "cpu_ops")


def litert_latency_us(tflite: Path, runs: int = LITERT_RUNS) -> float:
    """Median host latency of one batch-1 inference under LiteRT on one thread."""
    import statistics

    feed = litert_invoker(tflite)
    for _ in range(20):
        feed()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        feed()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def litert_invoker(tflite: Path):
    """A function that sets one batch-1 input, invokes and reads the output."""
    import numpy as np

    from kws.evaluate import TFLiteRunner

    runner = TFLiteRunner(Path(tflite), batch_size=1, num_threads=1)
    interp = runner.interpreter
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    clip = runner.input_quant.quantize(np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32))

    def feed():
        interp.set_tensor(inp["index"], clip)
        interp.invoke()
        return interp.get_tensor(out["index"])
    return feed
