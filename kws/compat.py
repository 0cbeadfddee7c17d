"""The one place that decides which Keras and TFMOT the project uses.

TFMOT 0.8 works only with Keras 2, shipped as ``tf_keras``. TensorFlow reads
``TF_USE_LEGACY_KERAS`` when it is first imported, so this module must run before any
``import tensorflow`` elsewhere; every other module imports ``tf``, ``keras`` and
``tfmot`` from here.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Keep TensorFlow's C++ start-up chatter out of progress bars and CI logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras", "tfmot"]
