"""``python -m kws.cli``: the same as the ``kws`` command."""

import sys

from kws.cli import main

sys.exit(main())
