"""The search over the deployment tree (``kws search``): objectives and constraints
(:mod:`kws.search.objectives`), storage (:mod:`kws.search.storage`), the study and its
trials (:mod:`kws.search.study`), promotion into the grid (:mod:`kws.search.promote`)."""

from kws.search.objectives import Constraint, Goal, Objective, SearchError
from kws.search.study import Search, SearchSpec

__all__ = ["Constraint", "Goal", "Objective", "Search", "SearchError", "SearchSpec"]
