"""Dataset names, ``NAME[@VERSION]`` references, and the ``dataset`` key of pipelines and watches.

Pure: no I/O. The one place these rules live; the CLI, the daemon's ops, the
pipeline parser and the drop-folder spec all call them.
"""

from __future__ import annotations

import re

from ..errors import UsageError
from ..records import frozen
from ..tomlcheck import TableReader

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_EXPECTED = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
REF_EXPECTED = "NAME, NAME@VERSION (a version number) or NAME@latest"


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a dataset, or None."""
    if not isinstance(name, str):
        return "is not a string"
    if not NAME_RE.match(name):
        return "is not a valid dataset name"
    return None


def check_name(name: object, *, field: str = "NAME") -> str:
    """``name`` when it is a valid dataset name; else :class:`UsageError` naming ``field`` and the rule."""
    problem = name_problem(name)
    if problem:
        raise UsageError(problem, field=field, value=name, expected=NAME_EXPECTED)
    return name  # type: ignore[return-value]


def parse_ref(ref: object, *, field: str = "NAME[@VERSION]") -> tuple[str, int | None]:
    """``"train@3"`` -> ``("train", 3)``; ``"train"`` and ``"train@latest"`` -> ``("train", None)`` (the latest).

    Raises :class:`UsageError` for a bad name or a version that is not a
    positive integer.
    """
    if not isinstance(ref, str):
        raise UsageError("is not a string", field=field, value=ref, expected=REF_EXPECTED)
    name, at, version = ref.partition("@")
    check_name(name, field=field)
    if not at or version == "latest":
        return name, None
    # ASCII digits only (``"²".isdigit()`` holds, and int() refuses it), and a number SQLite holds: a version of
    # 99999999999999999999999 stopped the daemon at the query (OverflowError), and every start after it.
    if not (version.isascii() and version.isdigit()) or not 1 <= int(version) <= VERSION_MAX:
        raise UsageError("has a bad version", field=field, value=ref, expected=REF_EXPECTED)
    return name, int(version)


VERSION_MAX = 2**63 - 1
"""The largest version number (SQLite's INTEGER); a larger one names no version."""


def format_ref(name: str, version: int) -> str:
    return f"{name}@{version}"


@frozen
class DatasetDecl:
    """A ``dataset`` key: which dataset a task's output or a drop folder's input becomes a version of.

    ``path``: for a task, the file or folder under the task's output folder
    (placeholders allowed; ``""``: the whole output folder); always ``""`` for a
    watch (the claimed file). ``compress``: store new chunks zstd-compressed.
    """

    name: str
    path: str = ""
    compress: bool = False


DECL_EXPECTED_TASK = 'a dataset name, or a table {name = "...", path = "file or folder under the outputs", compress = true}'
DECL_EXPECTED_WATCH = 'a dataset name, or a table {name = "...", compress = true}'


def check_decl(reader: TableReader, key: str = "dataset", *, with_path: bool) -> DatasetDecl | None:
    """Read ``reader``'s ``key`` as a :class:`DatasetDecl` (None when absent); problems go to the reader's errors.

    ``with_path``: a task's form, whose ``path`` must be relative without
    ``..`` (it lands under the task's output folder); a watch's form has no
    ``path``.
    """
    before = len(reader.errors)
    sub = reader.name_or_table(key, DECL_EXPECTED_TASK if with_path else DECL_EXPECTED_WATCH)
    if sub is None:
        return None
    name = sub.str("name", None, required=True)
    path = sub.output_path("path") if with_path else ""
    compress = sub.bool("compress", False)
    sub.finish(["name", "path", "compress"] if with_path else ["name", "compress"])
    if name is not None and name_problem(name):
        sub.fail("name", "is not a valid dataset name", value=name, expected=NAME_EXPECTED)
    if len(reader.errors) > before or name is None:
        return None
    return DatasetDecl(name, path or "", bool(compress))
