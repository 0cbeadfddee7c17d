"""Quantisation-aware training. The scheme follows from what the parent preserved:
plain QAT, prune-preserving (PQAT), cluster-preserving (CQAT) or both (PCQAT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kws.pathways.base import CLUSTERS, SPARSITY, Stage, StageContext


def scheme_name(preserved: frozenset[str]) -> str:
    if CLUSTERS in preserved:
        return "pcqat" if SPARSITY in preserved else "cqat"
    return "pqat" if SPARSITY in preserved else "qat"


@dataclass(frozen=True)
class QAT(Stage):
    family: ClassVar[str] = "qat"

    @staticmethod
    def scheme(preserved: frozenset[str]):
        from kws.compat import tfmot

        combine = tfmot.experimental.combine
        name = scheme_name(preserved)
        if name == "qat":
            return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
        if name == "pqat":
            return combine.Default8BitPrunePreserveQuantizeScheme()
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=name == "pcqat")

    def run(self, model, ctx: StageContext, preserved):
        from kws.compat import tfmot

        qkeras = tfmot.quantization.keras
        qat = qkeras.quantize_apply(qkeras.quantize_annotate_model(model), self.scheme(preserved))
        meta = self.train(qat, ctx)
        meta["scheme"] = scheme_name(preserved)
        if CLUSTERS in preserved:
            # CQAT adds centroid and association variables; strip them to export.
            qat = tfmot.experimental.combine.strip_clustering_cqat(qat)
        return qat, meta
