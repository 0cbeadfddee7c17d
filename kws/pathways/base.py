"""What every stage of the deployment tree shares: fine-tuning settings, the stage
interface, model storage, and running a chain of stages through the artifact cache.

A stage takes a fresh Keras model (its parent's output, loaded from the cache), returns
the model to store (pruning and clustering wrappers already stripped, so the next stage
can wrap it again) and its metadata. Its cache key is its parent's key plus its own
parameters, so a shared prefix (one ``Prune(0.5)`` feeding ``p``, ``pc``, ``pqat`` and
``pcqat``) is trained once, across processes and sessions.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

# Every stage stores its model as the baseline does, and loads it the same way.
from kws.baseline import MODEL_FILE, load_model  # noqa: F401
from kws.train import TrainConfig, TrainingData


class Preserve(enum.StrEnum):
    """What a stage's output keeps for later stages to preserve, and what it promises the
    deployed model shows (the checks read the promise, not the pathway's name)."""

    SPARSITY = "sparsity"
    CLUSTERS = "clusters"


SPARSITY = Preserve.SPARSITY
CLUSTERS = Preserve.CLUSTERS


@dataclass(frozen=True)
class FineTune:
    """Re-training of one stage (the study re-trained 15 epochs per technique)."""

    epochs: int = 15
    learning_rate: float = 1e-4

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"fine-tuning epochs must be >= 1, got {self.epochs}")
        if not self.learning_rate > 0:
            raise ValueError(f"fine-tuning learning_rate must be > 0, got {self.learning_rate}")

    def train_config(self, base: TrainConfig) -> TrainConfig:
        """The baseline's recipe (batch, augmentation, seed) at this stage's length and a
        constant learning rate; no early stopping, since weight restores would undo
        pruning masks mid-schedule."""
        return TrainConfig(epochs=self.epochs, batch_size=base.batch_size,
                           learning_rates=(self.learning_rate,), early_stopping_patience=None,
                           class_weights=base.class_weights, augmentation=base.augmentation,
                           augmentation_versions=base.augmentation_versions, seed=base.seed)


@dataclass
class StageContext:
    """What a stage needs to train: the prepared data and the baseline's recipe."""

    data: TrainingData
    base_train: TrainConfig
    label_names: tuple[str, ...]

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.data.train_labels)
        return -(-n // self.base_train.batch_size)


@dataclass(frozen=True)
class Stage:
    """Base class of the stages: frozen, validated dataclasses."""

    family: ClassVar[str] = "stage"
    finetune: FineTune = field(default_factory=FineTune)

    def params(self) -> dict:
        return asdict(self)

    def with_finetune(self, finetune: FineTune) -> Stage:
        return replace(self, finetune=finetune)


    def preserved(self, parent: frozenset[str]) -> frozenset[str]:
        """What the output model keeps for later stages to preserve."""
        return parent

    def promises(self) -> dict[Preserve, Any]:
        """What this stage guarantees of its output: ``{SPARSITY: 0.5}`` (the fraction of
        zeros in the prunable layers), ``{CLUSTERS: 16}`` (values per tensor or channel)."""
        return {}

    def check_parent(self, preserved: frozenset[str]) -> None:
        """Raise ``ValueError`` when this stage cannot follow a parent that preserved
        ``preserved`` (checked before any training)."""


    def run(self, model, ctx: StageContext, preserved: frozenset[str]):
        """Fine-tune ``model`` (fresh; the stage may wrap it); return (model, metadata)."""
        raise NotImplementedError

    def train(self, model, ctx: StageContext, *, callbacks=()) -> dict:
        from kws.train import fit

        config = self.finetune.train_config(ctx.base_train)
        return fit(model, ctx.data, config, stage=self.family, callbacks=callbacks)
