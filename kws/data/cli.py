"""The ``kws data`` commands live in :mod:`kws.cli.data` and the ``--labels`` parsing in
:mod:`kws.cli.args`; ``labels_config`` stays importable from here for the modules that
still import it from this path."""

from kws.cli.args import labels_config

__all__ = ["labels_config"]
