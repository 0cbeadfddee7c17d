"""MFCC front-ends for keyword spotting, computed in batches, with an on-disk cache.

- :mod:`kws.features.frontend`: :class:`FrontEnd`, the ``mlperf-tiny`` and ``arm``
  presets and :func:`get_frontend`'s ``"preset,key=value,..."`` specs.
- :mod:`kws.features.extraction`: :func:`extract`, the two reference recipes as traced
  TensorFlow graphs.
- :mod:`kws.features.cache`: :class:`FeatureCache`, features stored in the shared cache
  store, and :func:`feature_cache`, which turns whatever cache a caller was handed
  (an artifact cache, a feature cache, None) into the feature cache to use.

Importing this package does not import TensorFlow.
"""

from kws.features.cache import FEATURE_FORMAT_VERSION, FEATURES_FILE, FeatureCache, feature_cache
from kws.features.extraction import DEFAULT_BATCH_SIZE, extract
from kws.features.frontend import (
    CLIP_SAMPLES,
    INPUT_SAMPLE_RATE,
    INT16_SCALE,
    NORMALIZATIONS,
    PRESETS,
    RECIPES,
    SAMPLE_RATES,
    FrontEnd,
    get_frontend,
)

__all__ = [
    "CLIP_SAMPLES",
    "DEFAULT_BATCH_SIZE",
    "FEATURES_FILE",
    "FEATURE_FORMAT_VERSION",
    "INPUT_SAMPLE_RATE",
    "INT16_SCALE",
    "NORMALIZATIONS",
    "PRESETS",
    "RECIPES",
    "SAMPLE_RATES",
    "FeatureCache",
    "FrontEnd",
    "extract",
    "feature_cache",
    "get_frontend",
]
