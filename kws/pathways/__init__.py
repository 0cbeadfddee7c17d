"""The collaborative-optimisation deployment tree: stages (prune, cluster, QAT, PTQ,
structured) composed into named pathways over the axes of :mod:`kws.pathways.axes`.

Names are loaded on first use, so reading the axes table (the command line does, to
build its flags) does not import the training code.
"""

import importlib

_NAMES = {
    "AXES": "axes", "Axis": "axes", "Point": "axes", "Schedule": "axes",
    "FineTune": "base", "Preserve": "base", "Stage": "base", "StageContext": "base", "load_model": "base",
    "Cluster": "cluster", "CentroidInit": "cluster", "Prune": "prune", "QAT": "qat",
    "PATHWAYS": "registry", "Family": "registry", "Pathway": "registry", "get_pathway": "registry",
    "make_point": "registry",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
