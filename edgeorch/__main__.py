"""``python -m edgeorch``: the ``edgeorch`` command, the same as ``python -m edgeorch.cli``."""

import sys

from .cli import main

sys.exit(main())
