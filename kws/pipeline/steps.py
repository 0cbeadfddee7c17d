"""The cached steps of a case, all of one shape: a :class:`Step` names its cache stage,
the material that determines its output, its parent and how to build it, and
:meth:`Step.run` fetches it from the artifact cache or builds it there.

baseline -> technique stages -> export -> measurements; each step's key is its parent's
key plus its own material, so a shared prefix is built once across cases, processes
and sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from kws.data import SpeechCommands
from kws.models import ModelSpec
from kws.train import TrainConfig


@dataclass(frozen=True)
class Step:
    stage: str
    material: Mapping[str, Any]
    build: Callable[[Path], dict]
    parent: Any = None  # an Artifact

    def run(self, cache):
        """The step's artifact, from the cache or built now."""
        return cache.get_or_build(self.stage, self.material, self.build, parent=self.parent)


class CaseData:
    """One dataset opened for a run, with the training data prepared only when some step
    actually has to train (a warm run reads no audio)."""

    def __init__(self, ds: SpeechCommands, frontend, train: TrainConfig, cache):
        self.ds, self.frontend, self.train, self.cache = ds, frontend, train, cache

    @cached_property
    def training(self):
        from kws.train import prepare_data

        return prepare_data(self.ds, self.frontend, self.train, cache=self.cache)

    def features(self, split: str):
        return self.ds.features(split, self.frontend, cache=self.cache)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.ds.config.labels


def load_model(artifact):
    """A fresh Keras model from a stored artifact (never a shared instance)."""
    from kws.baseline import load_model as load

    return load(artifact)


# ----- the steps ------------------------------------------------------------------------------


def baseline_step(ds: SpeechCommands, frontend, model: ModelSpec, train: TrainConfig, cache) -> Step:
    from kws import baseline

    model = baseline.fit_model(model, ds)
    return Step(baseline.STAGE, baseline.material(ds, frontend, model, train),
                lambda folder: baseline.build(folder, ds, frontend, model, train, cache=cache))


def technique_step(stage, parent, preserved: frozenset, data: CaseData) -> Step:
    """A technique stage (prune, cluster, QAT, filter pruning) fine-tuning its parent's
    model; metadata adds the float test accuracy and what the output preserves."""

    def build(folder: Path) -> dict:
        from kws.baseline import MODEL_FILE
        from kws.evaluate import evaluate_keras
        from kws.models import save_model
        from kws.pathways.base import StageContext
        from kws.train import seed_everything

        seed_everything(data.train.seed)
        # The parent is loaded before the training data is prepared, as it always was:
        # building a model draws from the seeded generators, and the order fixes the draws.
        model = load_model(parent)
        ctx = StageContext(data=data.training, base_train=data.train, label_names=data.labels)
        model, meta = stage.run(model, ctx, preserved)
        test, labels = data.features("testing")
        if len(test):
            meta["test"] = evaluate_keras(model, test, labels, data.labels).to_dict()
        meta["preserved"] = sorted(stage.preserved(preserved))
        save_model(model, folder / MODEL_FILE)
        return meta

    return Step(stage.family, {"stage": stage.params(), "preserved": sorted(preserved)}, build, parent)


def export_step(parent, kind: str, data: CaseData) -> Step:
    from kws import export

    def build(folder: Path) -> dict:
        return export.build_export(folder, load_model(parent), kind, lambda: data.features("training")[0])

    return Step(export.STAGE, export.export_material(kind, data.ds, data.frontend), build, parent)
