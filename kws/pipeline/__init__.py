"""One case pipeline: baseline -> technique stages -> export -> measurements, every step
cached the same way, one :class:`~kws.record.CaseRecord` out.

    from kws.pipeline import RunSpec, run_case
    from kws.pathways import PATHWAYS, make_point

    record = run_case("pcqat", make_point(PATHWAYS["pcqat"], sparsity=0.5, clusters=32), RunSpec(seed=0))
"""

from kws.pipeline.measure import MEASUREMENTS, Measurement, Settings
from kws.pipeline.runner import CasePipeline, retrain_summary, run_case
from kws.pipeline.spec import RunSpec
from kws.pipeline.steps import Step

__all__ = ["MEASUREMENTS", "CasePipeline", "Measurement", "RunSpec", "Settings", "Step", "retrain_summary",
           "run_case"]
