"""Weight clustering: k centroids per tensor or per output channel; sparsity-preserving
when the parent was pruned (PC, PCQAT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kws.pathways.base import CLUSTERS, SPARSITY, Stage, StageContext

INITS = ("kmeans++", "linear", "density", "random")


@dataclass(frozen=True)
class Cluster(Stage):
    family: ClassVar[str] = "cluster"
    clusters: int = 16
    init: str = "kmeans++"
    per_channel: bool = False

    def __post_init__(self):
        if self.clusters < 2:
            raise ValueError(f"clusters must be >= 2, got {self.clusters}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")

    def preserved(self, parent):
        return parent | {CLUSTERS}

    def centroid_init(self):
        from kws.compat import tfmot

        ci = tfmot.clustering.keras.CentroidInitialization
        return {"kmeans++": ci.KMEANS_PLUS_PLUS, "linear": ci.LINEAR,
                "density": ci.DENSITY_BASED, "random": ci.RANDOM}[self.init]

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
