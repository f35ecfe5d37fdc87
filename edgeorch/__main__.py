"""``python -m edgeorch``: the ``edgeorch`` command, the same as ``python -m edgeorch.cli``."""

import sys

from .cli.main import run_command

sys.exit(run_command())
