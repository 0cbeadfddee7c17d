"""The collaborative-optimisation deployment tree: stages (prune, cluster, QAT, PTQ,
structured) composed into named pathways, each stage cached on its parent's key."""

from kws.pathways.base import FineTune, Stage, StageContext, load_model
from kws.pathways.cluster import Cluster
from kws.pathways.prune import Prune
from kws.pathways.qat import QAT
from kws.pathways.registry import PATHWAYS, Pathway, PathwayParams, get_pathway, make_params

__all__ = ["PATHWAYS", "QAT", "Cluster", "FineTune", "Pathway", "PathwayParams", "Prune", "Stage",
           "StageContext", "get_pathway", "load_model", "make_params"]
