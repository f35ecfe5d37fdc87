"""The ``edgeorch`` command (the ``edgeorch = "edgeorch.cli.main:run_command"`` script entry; tests call ``main``).

Where each command lives::

  main.py                parser assembly, dispatch, error -> exit code
  parsing.py             the parser class (usage errors raise) and the one walk over its commands
  globalopts.py          the global options (before or after any command) and the exit codes in --help
  failures.py            errors on stderr: a message, or one {"error": ...} JSON line with --json
  exits.py               the exit codes (EXIT_CODES is the list --help prints)
  backend.py             the one daemon/no-daemon choice: connect(cfg, need) -> Backend
  cmdtree.py             the command line as plain data; completion.py and manpage.py are generated from it
  commands/describe.py   completion, man
  commands/validate.py   validate
  commands/runs.py       run, trigger, retry, cancel, runs, show, logs
  commands/pipelines.py  pipelines (list, show, validate, pause, resume)
  commands/inputs.py     inputs, requeue
  commands/events.py     status, events
  commands/daemon.py     daemon, reload
  commands/resources.py  resources
  ../kernels/cli.py      profile, drift, fairness (registered by main.py)
"""

from .exits import EXIT_CODES
from .main import build_parser, main

__all__ = ["EXIT_CODES", "build_parser", "main"]
