"""A task's declared ``inputs``: what each entry names, checked at parse time.

An entry is text (placeholders allowed, substituted at run time like the
command's):

- a **file** path: ``"data/train.csv"``;
- a **folder** path: ``"data/images"`` (every file below it);
- a **glob**: ``"data/*.parquet"``, ``"logs/**/*.json"`` (any of ``*?[``;
  ``**`` crosses folders).

Relative paths are relative to the task's working directory (``workdir``, by
default the pipeline file's folder), where the task itself reads them.
Whether a path is a file or a folder is known only when the attempt is about
to start (the engine hashes it then: :mod:`edgeorch.engine.inputs`), so
existence is a run-time check, never a parse error: a pipeline validates
before its data exists.

``NAME:...`` entries with a name in :data:`RESERVED_SCHEMES` (datasets and
model versions) are reserved for the kinds of input edgeorch will resolve
itself; today they are refused with a clear message. Upstream outputs need
no entry: the outputs of every task in ``needs`` are recorded as consumed.
"""

from __future__ import annotations

import re

RESERVED_SCHEMES: dict[str, str] = {
    "dataset": "datasets (dataset:NAME@VERSION) are not supported as task inputs yet",
    "model": "model versions (model:NAME@VERSION) are not supported as task inputs yet",
    "upstream": "upstream outputs need no entry: the outputs of every task in needs are recorded as consumed",
}
"""Scheme -> why an ``inputs`` entry starting with ``<scheme>:`` is refused (for now)."""

INPUT_EXPECTED = "a file, folder or glob path (relative to the task's working directory), placeholders allowed"


def input_problem(text: str) -> tuple[str, str] | None:
    """``(message, expected)`` when ``text`` cannot be an ``inputs`` entry, else None (placeholders checked elsewhere)."""
    if not text.strip():
        return "is empty", INPUT_EXPECTED
    scheme, sep, _rest = text.partition(":")
    if sep and scheme in RESERVED_SCHEMES:
        return RESERVED_SCHEMES[scheme], INPUT_EXPECTED
    if "\0" in text:
        return "contains a NUL character", INPUT_EXPECTED
    return None


def glob_base(pattern: str) -> str:
    """The folder a glob's file names are relative to: its leading components without a wildcard.

    ``"/data/2024-*/part-*.csv"`` -> ``"/data"``; ``"/data/*.csv"`` -> ``"/data"``;
    a pattern whose first component has a wildcard -> ``""`` (relative) or ``"/"``.
    """
    parts = pattern.split("/")
    keep: list[str] = []
    for part in parts[:-1]:
        if is_glob(part):
            break
        keep.append(part)
    base = "/".join(keep)
    return base or ("/" if pattern.startswith("/") else "")


def is_glob(text: str) -> bool:
    """Whether a (substituted) entry is a glob pattern rather than one path."""
    return _MAGIC.search(text) is not None


_MAGIC = re.compile(r"[*?\[]")  # what the glob module treats as a pattern
