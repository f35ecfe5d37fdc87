"""The environment variable each task and param name gives its tasks, and the names two of them would share.

A task's upstream outputs reach its dependents as ``$EDGEORCH_UPSTREAM_<NAME>`` and a param as
``$EDGEORCH_PARAM_<NAME>``, ``<NAME>`` being the name upper-cased with every other character than a letter or
a digit as ``_`` (:func:`env_name`). Two names that differ only there (``a-b`` and ``a_b``, ``Train`` and
``train``) would share one variable, the later one's value silently hiding the other's; a task named
``outputs`` would replace ``$EDGEORCH_UPSTREAM_OUTPUTS``, the JSON map of every upstream's outputs. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

RESERVED_UPSTREAM = "OUTPUTS"
"""``$EDGEORCH_UPSTREAM_OUTPUTS`` is the JSON map of every upstream's outputs, not a task's."""


def env_name(name: str) -> str:
    """The ``<NAME>`` of a task's or param's variable: upper case, every character but a letter or digit ``_``."""
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def env_collisions(names: Iterable[str], prefix: str,
                   reserved: Iterable[str] = ()) -> list[tuple[str, str, str]]:
    """``(name, other, variable)`` for each name whose variable (``prefix`` + :func:`env_name`) an earlier name
    in ``names`` already gives (``other`` is that name), or a ``reserved`` one (``other`` is ``""``)."""
    taken: dict[str, str] = {env_name(r): "" for r in reserved}
    found = []
    for name in names:
        key = env_name(name)
        if key in taken:
            found.append((name, taken[key], prefix + key))
        else:
            taken[key] = name
    return found
