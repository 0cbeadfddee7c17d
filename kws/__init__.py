"""kws-pathways: which compression pathway should a keyword-spotting model take?

Importing ``kws`` never imports TensorFlow. Modules that need TensorFlow, tf-keras or
TFMOT import them from :mod:`kws.compat`, which selects Keras 2 first.
"""

__version__ = "0.1.0"
