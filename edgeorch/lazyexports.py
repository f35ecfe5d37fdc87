"""Names a package exports, loaded from their modules on first use (PEP 562).

A package whose ``__init__`` imported every module made each command pay for
all of them (issue 11: a command's start-up); with :func:`lazy_exports` the
package's ``__init__`` imports nothing and ``from edgeorch.X import name``
loads only ``name``'s module.

Edge case: a name equal to one of the package's module names (``substitute``
in ``edgeorch.pipelines.substitute``) would be shadowed by the module once
that module is imported (the import system sets the package attribute); such
a name must be imported eagerly by the package instead.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``exports`` map a name to its module (relative).

    A name is imported from its module on first access and then kept on the package, so later
    accesses cost a dictionary lookup. An unknown name raises ``AttributeError`` as usual.
    Raises ``ValueError`` for a name that is also the name of its module (see the module's docstring).
    """
    clashes = sorted(set(exports) & set(exports.values()))
    if clashes:
        raise ValueError(f"{package}: {', '.join(clashes)} would be shadowed by the module of the same name; "
                         "import it eagerly instead")

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
