"""What compression really left in each layer's weights: sparsity, unique values and
m-by-n structure, read from a stripped Keras model or straight from a TFLite flatbuffer.

Which layers a preservation check applies to follows what TFMOT 0.8 actually does:

* ``DepthwiseConv2D`` is never pruned, clustered or m-by-n pruned, so depthwise layers
  are reported but marked ``excluded (depthwise)``.
* ``cluster_weights`` leaves a ``Conv2D`` unwrapped (with a warning) when the number of
  weights it would cluster is ``<=`` the number of clusters: the weights per output
  channel with ``cluster_per_channel=True``, the whole kernel otherwise. Such layers are
  ``skipped (too few weights)`` when a cluster count is given. Dense layers are never
  skipped by TFMOT.
* int8 conversion folds BatchNorm into the convolution weights and quantises each output
  channel with its own scale, so a clustered model keeps a few values per output channel
  while the whole tensor holds many: count clusters per output channel on TFLite models.

``m_by_n`` follows TFMOT's ``sparsity_m_by_n``: ``(m, n)`` means at least ``m`` zeros in
every ``n`` consecutive weights along the input-channel axis (so at most ``n - m``
non-zeros; for 2:4 both readings agree). Like TFMOT's own check, a last group shorter than
``n`` (input channels not a multiple of ``n``) must still hold at most ``n - m`` non-zeros.

Neither TensorFlow nor TFMOT is imported at module level. :mod:`~kws.inspect.stats` holds
the statistics and the rules, :mod:`~kws.inspect.keras` and :mod:`~kws.inspect.tflite`
read the weights.
"""

from kws.inspect.keras import inspect_keras
from kws.inspect.stats import (
    CHECKED,
    EXCLUDED,
    KINDS,
    SKIPPED,
    SKIPPED_M_BY_N,
    Kind,
    LayerStats,
    ModelStats,
    Status,
    format_stats,
)
from kws.inspect.tflite import inspect_tflite

__all__ = [
    "CHECKED",
    "EXCLUDED",
    "KINDS",
    "SKIPPED",
    "SKIPPED_M_BY_N",
    "Kind",
    "LayerStats",
    "ModelStats",
    "Status",
    "format_stats",
    "inspect_keras",
    "inspect_tflite",
]
