"""``python -m edgeorch.cli``: the ``edgeorch`` command."""

import sys

from .main import main

sys.exit(main())
