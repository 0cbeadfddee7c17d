"""Weight statistics of a model's layers, whichever format they were read from: sparsity,
unique values per output channel, the m-by-n pattern, and whether a preservation check
applies to the layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

import numpy as np


class Status(StrEnum):
    """Whether the preservation checks apply to a layer and, if not, why."""

    CHECKED = "checked"
    EXCLUDED = "excluded (depthwise)"
    SKIPPED = "skipped (too few weights)"
    # TFMOT groups m-by-n along the input channels; a layer with fewer input channels than n
    # (DS-CNN's first conv has one) keeps its weights dense.
    SKIPPED_M_BY_N = "skipped (fewer input channels than n)"


CHECKED = Status.CHECKED
EXCLUDED = Status.EXCLUDED
SKIPPED = Status.SKIPPED
SKIPPED_M_BY_N = Status.SKIPPED_M_BY_N


class Kind(StrEnum):
    """The weight layers inspected, by what TFMOT does to them."""

    CONV = "conv"
    DEPTHWISE = "depthwise"
    DENSE = "dense"


KINDS = tuple(kind.value for kind in Kind)


@dataclass(frozen=True)
class LayerStats:
    name: str
    kind: Kind
    status: Status
    total: int
    nonzero: int
    sparsity: float
    unique_tensor: int
    unique_per_channel_max: int
    unique_per_channel_mean: float
    m_by_n_ok: bool | None  # None when no (m, n) was asked for, or for depthwise layers
    shape: tuple

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelStats:
    source: str  # "keras" | "tflite"
    layers: tuple[LayerStats, ...]

    def checked(self) -> list[LayerStats]:
        """The layers that preservation checks apply to."""
        return [layer for layer in self.layers if layer.status == CHECKED]

    def sparsity(self) -> float:
        """Zeros over weights, summed over the checked layers."""
        layers = self._checked_or_raise("sparsity")
        total = sum(layer.total for layer in layers)
        return (total - sum(layer.nonzero for layer in layers)) / total

    def max_unique_per_channel(self) -> int:
        return max(layer.unique_per_channel_max
                   for layer in self._checked_or_raise("max_unique_per_channel"))

    def m_by_n_ok(self) -> bool:
        """Whether every checked layer holds the m-by-n pattern asked for."""
        layers = self._checked_or_raise("m_by_n_ok")
        if any(layer.m_by_n_ok is None for layer in layers):
            raise ValueError(f"{self.source} model stats were taken without m_by_n")
        return all(layer.m_by_n_ok for layer in layers)

    def get(self, name: str) -> LayerStats:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in the {self.source} model; "
                       f"layers: {[layer.name for layer in self.layers]}")

    def to_dict(self) -> dict:
        checked = self.checked()
        return {
            "source": self.source,
            "layers": [layer.to_dict() for layer in self.layers],
            "checked": len(checked),
            "sparsity": self.sparsity() if checked else None,
            "max_unique_per_channel": self.max_unique_per_channel() if checked else None,
        }

    def _checked_or_raise(self, what: str) -> list[LayerStats]:
        # A check over no layers would pass vacuously; refuse it instead.
        layers = self.checked()
        if not layers:
            statuses = {layer.name: layer.status for layer in self.layers} or "no weight layers"
            raise ValueError(
                f"{what}: no layer of the {self.source} model was checked ({statuses})"
            )
        return layers


# ---------------------------------------------------------------------------------------
# Statistics of one weight tensor
# ---------------------------------------------------------------------------------------


def _validate_m_by_n(m_by_n) -> tuple[int, int] | None:
    if m_by_n is None:
        return None
    m, n = (int(v) for v in m_by_n)
    if not 0 < m < n:
        raise ValueError(f"m_by_n={m_by_n!r}: need 0 < m < n (m zeros in every n weights)")
    return m, n


def _unique_per_channel(weights: np.ndarray, out_axis: int) -> list[int]:
    rows = np.moveaxis(weights, out_axis, 0).reshape(weights.shape[out_axis], -1)
    return [len(np.unique(row)) for row in rows]


def _m_by_n_holds(nonzero: np.ndarray, in_axis: int, m_by_n: tuple[int, int]) -> bool:
    m, n = m_by_n
    rows = np.moveaxis(nonzero, in_axis, -1)
    rows = rows.reshape(-1, rows.shape[-1])
    # Pad with zeros so a short last group is judged like a full one, as TFMOT does.
    pad = -rows.shape[1] % n
    rows = np.pad(rows, ((0, 0), (0, pad)))
    per_group = rows.reshape(rows.shape[0], -1, n).sum(axis=-1)
    return bool((per_group <= n - m).all())


def _layer_stats(name: str, kind: Kind, status: Status, weights: np.ndarray, *, out_axis: int,
                 in_axis: int, zero=0, m_by_n: tuple[int, int] | None = None) -> LayerStats:
    """``zero`` is what a pruned weight holds: 0, or the zero point(s) of an integer tensor
    shaped to broadcast against ``weights``."""
    if weights.size == 0:
        raise ValueError(f"layer {name!r} has an empty weight tensor {weights.shape}")
    nonzero_mask = weights != zero
    per_channel = _unique_per_channel(weights, out_axis)
    check_pattern = m_by_n is not None and kind != Kind.DEPTHWISE
    nonzero = int(nonzero_mask.sum())
    return LayerStats(
        name=name,
        kind=kind,
        status=status,
        total=int(weights.size),
        nonzero=nonzero,
        sparsity=1.0 - nonzero / weights.size,
        unique_tensor=int(len(np.unique(weights))),
        unique_per_channel_max=int(max(per_channel)),
        unique_per_channel_mean=float(np.mean(per_channel)),
        m_by_n_ok=_m_by_n_holds(nonzero_mask, in_axis, m_by_n) if check_pattern else None,
        shape=tuple(int(d) for d in weights.shape),
    )


def _status(kind: Kind, *, size: int, clustered_count: int, clusters: int | None,
            min_weights: int, in_channels: int = 0, m_by_n: tuple[int, int] | None = None) -> Status:
    """``clustered_count`` is how many weights TFMOT would cluster together."""
    if kind == Kind.DEPTHWISE:
        return EXCLUDED
    if size < min_weights:
        return SKIPPED
    if m_by_n is not None and in_channels < m_by_n[1]:
        return SKIPPED_M_BY_N
    # TFMOT applies its weight-count rule to Conv2D only; Dense is always clustered.
    if clusters is not None and kind == Kind.CONV and clustered_count <= clusters:
        return SKIPPED
    return CHECKED


def format_stats(stats: ModelStats) -> str:
    """A table of every layer, and the totals over the checked ones."""
    from tabulate import tabulate

    rows = [
        [layer.name, layer.kind, layer.status, "x".join(map(str, layer.shape)), layer.total,
         layer.nonzero, f"{layer.sparsity:.3f}", layer.unique_tensor,
         layer.unique_per_channel_max, f"{layer.unique_per_channel_mean:.1f}",
         "" if layer.m_by_n_ok is None else ("yes" if layer.m_by_n_ok else "no")]
        for layer in stats.layers
    ]
    table = tabulate(rows, headers=["layer", "kind", "status", "shape", "weights", "non-zero",
                                    "sparsity", "unique", "unique/ch max", "unique/ch mean",
                                    "m:n"])
    checked = stats.checked()
    if not checked:
        return f"{table}\n\n{stats.source}: no layer checked"
    return (f"{table}\n\n{stats.source}: {len(checked)} layers checked, sparsity "
            f"{stats.sparsity():.3f}, max unique per channel {stats.max_unique_per_channel()}")
