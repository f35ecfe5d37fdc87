"""A task's declared ``inputs``: what each entry names, checked at parse time.

An entry is text (placeholders allowed, substituted at run time like the
command's):

- a **file** path: ``"data/train.csv"``;
- a **folder** path: ``"data/images"`` (every file below it);
- a **glob**: ``"data/*.parquet"``, ``"logs/**/*.json"`` (any of ``*?[``
  in the entry's own text; ``**`` crosses folders). A placeholder's value is
  always a name: ``"{data}"`` filled with ``in[1].csv`` is that one path, and
  in ``"{folder}/*.csv"`` the folder's name is matched as it is
  (:func:`substitute_input`).

Relative paths are relative to the task's working directory (``workdir``, by
default the pipeline file's folder), where the task itself reads them.
Whether a path is a file or a folder is known only when the attempt is about
to start (the engine hashes it then: :mod:`edgeorch.engine.inputs`), so
existence is a run-time check, never a parse error: a pipeline validates
before its data exists.

- a **data version**: ``"dataset:NAME@VERSION"``, ``"dataset:NAME"`` or
  ``"dataset:NAME@latest"`` (the newest version when the task becomes ready;
  one run reads one version of a dataset). The engine puts the version's
  files in ``{run_dir}/datasets/NAME`` before the attempt starts
  (:mod:`edgeorch.datasets.checkout`).

``NAME:...`` entries with a name in :data:`RESERVED_SCHEMES` (model versions)
are reserved for the kinds of input edgeorch will resolve itself; today they
are refused with a clear message. Upstream outputs need no entry: the
outputs of every task in ``needs`` are recorded as consumed.
"""

from __future__ import annotations

import glob
import re
import string
from collections.abc import Mapping
from typing import Any

from .substitute import format_value, substitute

RESERVED_SCHEMES: dict[str, str] = {
    "model": "model versions (model:NAME@VERSION) are not supported as task inputs yet",
    "upstream": "upstream outputs need no entry: the outputs of every task in needs are recorded as consumed",
}
"""Scheme -> why an ``inputs`` entry starting with ``<scheme>:`` is refused (for now)."""

INPUT_EXPECTED = "a file, folder or glob path (relative to the task's working directory), placeholders allowed"


DATASET_SCHEME = "dataset:"
DATASET_EXPECTED = "dataset:NAME, dataset:NAME@VERSION (a version number) or dataset:NAME@latest"


def input_problem(text: str) -> tuple[str, str] | None:
    """``(message, expected)`` when ``text`` cannot be an ``inputs`` entry, else None (placeholders checked elsewhere)."""
    if not text.strip():
        return "is empty", INPUT_EXPECTED
    scheme, sep, _rest = text.partition(":")
    if sep and scheme in RESERVED_SCHEMES:
        return RESERVED_SCHEMES[scheme], INPUT_EXPECTED
    if text.startswith(DATASET_SCHEME) and "{" not in text:  # with a placeholder: checked once substituted
        problem = dataset_ref_problem(text)
        if problem is not None:
            return problem
    if "\0" in text:
        return "contains a NUL character", INPUT_EXPECTED
    return None


def is_dataset(text: str) -> bool:
    """Whether an entry (as written or substituted) names a data version rather than a path."""
    return text.startswith(DATASET_SCHEME)


def parse_dataset_input(text: str) -> tuple[str, int | None]:
    """``"dataset:sales@3"`` -> ``("sales", 3)``; ``"dataset:sales"`` and ``"dataset:sales@latest"`` ->
    ``("sales", None)``. Raises :class:`~edgeorch.errors.UsageError` naming the rule for anything else."""
    from ..datasets.names import parse_ref

    return parse_ref(text[len(DATASET_SCHEME):], field="inputs")


def dataset_ref_problem(text: str) -> tuple[str, str] | None:
    """``(message, expected)`` when a ``dataset:`` entry names no data version (a bad name or version), or None."""
    from ..datasets.names import NAME_EXPECTED
    from ..errors import UsageError

    try:
        parse_dataset_input(text)
    except UsageError as exc:
        bad_name = "name" in exc.message
        return exc.message, DATASET_EXPECTED + (f"; NAME: {NAME_EXPECTED}" if bad_name else "")
    return None


def dataset_conflicts(entries: list[tuple[str, str]]) -> tuple[str, str] | None:
    """``(field, why)`` when ``dataset:`` entries of one pipeline, ``(field, text)`` each, name two versions of one
    dataset (a run reads one, in ``{run_dir}/datasets/NAME``), or None. Entries with placeholders are left to the
    run (checked when their task becomes ready)."""
    seen: dict[str, str] = {}
    for field, text in entries:
        if not is_dataset(text) or "{" in text or dataset_ref_problem(text) is not None:
            continue
        name, version = parse_dataset_input(text)
        key = f"@{version}" if version is not None else "@latest"
        if seen.setdefault(name, key) != key:
            return field, (f"names another version of dataset {name} ({name}{key}) than an entry before it "
                           f"({name}{seen[name]}); one run reads one version of a dataset, in "
                           f"{{run_dir}}/datasets/{name}")
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
    """Whether a text has a wildcard (``*``, ``?``, ``[``) the glob module would treat as a pattern."""
    return _MAGIC.search(text) is not None


def template_is_glob(written: str) -> bool:
    """Whether an entry as written is a glob: a wildcard in its own text, outside its placeholders. ``"{data}"``
    filled with ``in[1].csv`` is one path: it was a pattern matching ``in1.csv``, whose hash keyed the cache (a
    changed ``in[1].csv`` then reused the old result)."""
    try:
        literal = "".join(text for text, _field, _spec, _conv in string.Formatter().parse(written))
    except ValueError:  # not a valid template (validated before: an entry from elsewhere, taken as written)
        literal = written
    return is_glob(literal)


def substitute_input(written: str, values: Mapping[str, Any]) -> str:
    """An ``inputs`` entry with its placeholders filled in. In a glob (:func:`template_is_glob`) each value is
    escaped (:func:`glob.escape`): a value is a name, matching itself only, never a pattern of its own."""
    if not template_is_glob(written):
        return substitute(written, values)
    return substitute(written, {k: glob.escape(format_value(v)) for k, v in values.items()})


_MAGIC = re.compile(r"[*?\[]")  # what the glob module treats as a pattern
