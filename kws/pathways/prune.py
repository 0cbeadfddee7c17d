"""Magnitude pruning: constant or polynomial-decay schedules, or m-by-n (2:4) sparsity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kws.pathways.axes import Schedule
from kws.pathways.base import SPARSITY, Stage, StageContext

SCHEDULES = tuple(s.value for s in Schedule)


@dataclass(frozen=True)
class Prune(Stage):
    """``sparsity`` is the final fraction of zero weights. ``polynomial`` ramps from
    ``initial_sparsity`` over ``[begin_fraction, end_fraction]`` of the fine-tuning steps
    (the rest recovers at the final sparsity). ``m_by_n=(2, 4)`` prunes 2 of every 4
    weights along the input channels instead."""

    family: ClassVar[str] = "prune"
    sparsity: float = 0.5
    schedule: Schedule = Schedule.CONSTANT
    initial_sparsity: float = 0.0
    begin_fraction: float = 0.0
    end_fraction: float = 0.6
    frequency: int = 100
    m_by_n: tuple[int, int] | None = None

    def __post_init__(self):
        if not 0 < self.sparsity < 1:
            raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        object.__setattr__(self, "schedule", Schedule(self.schedule))
        if not 0 <= self.initial_sparsity < self.sparsity:
            raise ValueError(f"initial_sparsity must be in [0, sparsity), got {self.initial_sparsity}")
        if not 0 <= self.begin_fraction < self.end_fraction <= 1:
            raise ValueError("need 0 <= begin_fraction < end_fraction <= 1, got "
                             f"{self.begin_fraction}, {self.end_fraction}")
        if self.frequency < 1:
            raise ValueError(f"frequency must be >= 1, got {self.frequency}")
        if self.m_by_n is not None:
            object.__setattr__(self, "m_by_n", tuple(self.m_by_n))
            m, n = self.m_by_n
            if not 0 < m < n:
                raise ValueError(f"m_by_n must be (m, n) with 0 < m < n, got {self.m_by_n}")
            if abs(self.sparsity - (1 - m / n)) > 1e-9:
                raise ValueError(f"m_by_n={self.m_by_n} fixes sparsity at {1 - m / n}, got {self.sparsity}")

    def preserved(self, parent):
        return parent | {SPARSITY}

    def promises(self):
        return {SPARSITY: self.sparsity}

    def pruning_schedule(self, total_steps: int):
        from kws.compat import tfmot

        keras_sparsity = tfmot.sparsity.keras
        frequency = min(self.frequency, max(1, total_steps // 10))
        if self.schedule is Schedule.CONSTANT or self.m_by_n is not None:
            return keras_sparsity.ConstantSparsity(self.sparsity, begin_step=0, frequency=frequency)
        return keras_sparsity.PolynomialDecay(
            initial_sparsity=self.initial_sparsity, final_sparsity=self.sparsity,
            begin_step=int(self.begin_fraction * total_steps),
            end_step=max(1, int(self.end_fraction * total_steps)), frequency=frequency)

    def run(self, model, ctx: StageContext, preserved):
        from kws.compat import tfmot

        keras_sparsity = tfmot.sparsity.keras
        total = ctx.steps_per_epoch * self.finetune.epochs
        kwargs = {"sparsity_m_by_n": self.m_by_n} if self.m_by_n else {}
        wrapped = keras_sparsity.prune_low_magnitude(
            model, pruning_schedule=self.pruning_schedule(total), **kwargs)
        meta = self.train(wrapped, ctx, callbacks=(keras_sparsity.UpdatePruningStep(),))
        return keras_sparsity.strip_pruning(wrapped), meta
