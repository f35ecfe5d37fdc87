"""``python -m edgeorch.cli``: the ``edgeorch`` command."""

import sys

from .main import run_command

sys.exit(run_command())
