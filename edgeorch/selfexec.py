"""How edgeorch starts Python processes of its own code: this interpreter, this package.

A helper process (the executor's zygote, the numba warm-up, ...) must run the
same edgeorch as the process that starts it. ``python -m`` alone does not
promise that: it puts the working directory first on ``sys.path``, so a
daemon started in a source checkout (the README's ``pip install . &&
edgeorch daemon``) would run its helpers from the checkout while it runs
itself from site-packages, and a folder named ``edgeorch`` in the working
directory would shadow the package. So the argv has ``-P`` (Python 3.11+:
no unsafe path is prepended) and ``PYTHONPATH`` starts with the folder that
holds this package.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
"""The folder that holds the ``edgeorch`` package this process imported."""


def module_argv(module: str, *args: str, site: bool = True) -> list[str]:
    """``[python, -P, -m, module, *args]`` with the running interpreter.

    ``site=False`` adds ``-S``: no ``site`` module, so no site-packages and no
    ``.pth`` processing (tens of milliseconds of start-up in a virtual
    environment with editable installs). Only for a helper that needs the
    standard library and this package alone (found through ``PYTHONPATH``,
    :func:`module_env`), such as the executor's zygote.
    """
    return [sys.executable, *(() if site else ("-S",)), "-P", "-m", module, *args]


def module_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with this package's folder first on ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    rest = env.get("PYTHONPATH")
    env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + rest if rest else "")
    return env
