"""Weight clustering: k centroids per tensor or per output channel; sparsity-preserving
when the parent was pruned (PC, PCQAT)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from kws.pathways.base import CLUSTERS, SPARSITY, Stage, StageContext


class CentroidInit(enum.StrEnum):
    """TFMOT's ``CentroidInitialization`` choices, by the names cache keys hold."""

    KMEANS_PLUS_PLUS = "kmeans++"
    LINEAR = "linear"
    DENSITY = "density"
    RANDOM = "random"


INITS = tuple(i.value for i in CentroidInit)


@dataclass(frozen=True)
class Cluster(Stage):
    family: ClassVar[str] = "cluster"
    clusters: int = 16
    init: CentroidInit = CentroidInit.KMEANS_PLUS_PLUS
    per_channel: bool = False

    def __post_init__(self):
        if self.clusters < 2:
            raise ValueError(f"clusters must be >= 2, got {self.clusters}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        object.__setattr__(self, "init", CentroidInit(self.init))

    def preserved(self, parent):
        return parent | {CLUSTERS}

    def promises(self):
        return {CLUSTERS: self.clusters}

    def check_parent(self, preserved):
        if SPARSITY in preserved and self.clusters < 3:
            # Sparsity-preserving clustering spends one centroid on the zeros; TFMOT refuses 2.
            raise ValueError(f"clustering after pruning preserves sparsity, which needs at least 3 clusters "
                             f"(one is the zero centroid); got {self.clusters}")

    def centroid_init(self):
        from kws.compat import tfmot

        ci = tfmot.clustering.keras.CentroidInitialization
        return {CentroidInit.KMEANS_PLUS_PLUS: ci.KMEANS_PLUS_PLUS, CentroidInit.LINEAR: ci.LINEAR,
                CentroidInit.DENSITY: ci.DENSITY_BASED, CentroidInit.RANDOM: ci.RANDOM}[self.init]

    def run(self, model, ctx: StageContext, preserved):
        from tensorflow_model_optimization.python.core.clustering.keras.experimental import cluster

        from kws.compat import tfmot

        # The experimental entry point takes preserve_sparsity explicitly.
        wrapped = cluster.cluster_weights(
            model, number_of_clusters=self.clusters, cluster_centroids_init=self.centroid_init(),
            preserve_sparsity=SPARSITY in preserved, cluster_per_channel=self.per_channel)
        meta = self.train(wrapped, ctx)
        meta["preserve_sparsity"] = SPARSITY in preserved
        return tfmot.clustering.keras.strip_clustering(wrapped), meta
