"""What a case is run with besides its grid point: the model, the front-end, the data,
the baseline and fine-tuning recipes and the seed. Parsed and validated once, here."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kws.data import DataConfig
from kws.models import ModelConfig, ModelSpec
from kws.pathways.base import FineTune
from kws.train import TrainConfig


def _frontend(spec):
    from kws.features import get_frontend

    return get_frontend(spec)


@dataclass(frozen=True)
class RunSpec:
    """``model``: any :class:`~kws.models.ModelSpec` (a DS-CNN, a model file, a factory).
    ``frontend``: a preset name, ``"preset,key=value"`` or a parsed front-end (parsed
    here, once); the model's input shape is set from its features. ``baseline``: the
    baseline's recipe; its seed is this spec's ``seed``, which also seeds every
    fine-tuning stage (the seed is set in one place)."""

    model: ModelSpec = ModelConfig()
    frontend: Any = "mlperf-tiny"
    data_dir: Path | None = None
    data_config: DataConfig = DataConfig()
    baseline: TrainConfig = TrainConfig()
    finetune: FineTune = field(default_factory=FineTune)
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "frontend", _frontend(self.frontend))
        # The model's input follows the front-end's features (frames x coefficients x 1).
        shape = (*self.frontend.output_shape, 1)
        if self.model.input_shape is None or tuple(self.model.input_shape) != shape:
            object.__setattr__(self, "model", self.model.with_input_shape(shape))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def baseline_train(self) -> TrainConfig:
        return replace(self.baseline, seed=self.seed)

    @property
    def frontend_name(self) -> str:
        return self.frontend.name

    def to_dict(self) -> dict:
        """What the record says the case ran with."""
        source = {"model_source": self.model.params()} if getattr(self.model, "source", None) else {}
        return {"model": self.model.slug, **source, "frontend": self.frontend_name,
                "data": str(self.data_dir) if self.data_dir else "default",
                "baseline_epochs": self.baseline.epochs, "finetune_epochs": self.finetune.epochs,
                "learning_rate": self.finetune.learning_rate, "seed": self.seed}
