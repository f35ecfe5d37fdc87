"""What ``edgeorch lineage THING`` names: parsing the text (pure) and finding it in the state file.

THING forms (a prefix forces the kind; without one, the form decides):

=========================  ==================================================
``5`` / ``run:5``          a run
``5/train`` / ``task:5/train``  a task of a run
``sha256:HEX`` / ``HEX``   every recorded file with this content (64 hex digits)
``input:3``                a drop-folder input (``edgeorch inputs`` lists them)
``file:PATH`` / ``PATH``   a file: the version recorded last under that path
                           (an output, something consumed, a dropped file), or
                           with ``--sha256`` one version; a drop folder's or the
                           inbox's path names that drop-folder input
``dataset:NAME@V``         a data version (``dataset:NAME``: the newest)
``model:NAME@V``           a model version (``model:NAME``: the newest)
=========================  ==================================================

A new kind plugs in as one entry of :data:`RESERVED` moving to :data:`KINDS`
with a resolver in :func:`resolve`; until then it is refused with a usage
error that says so. :func:`parse_thing` never touches the state
file; :func:`resolve` reads it (through ``store.lineage``) and raises
:class:`~edgeorch.errors.NotFoundError` (exit 3) naming what it looked for.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from ..errors import NotFoundError, UsageError
from ..records import frozen

if TYPE_CHECKING:  # pragma: no cover
    from ..store.lineage import Lineage

KINDS = ("run", "task", "sha256", "input", "file", "dataset", "model")
"""The kinds of THING resolved today."""

RESERVED: dict[str, str] = {}
"""Kinds a THING may name in the future, with the message given today."""

THING_EXPECTED = ("a run (5), a task (5/train), a file path, sha256:HEX, input:ID "
                  "(a drop-folder input), dataset:NAME@V or model:NAME@V")

_SHA = re.compile(r"^[0-9a-f]{64}$")
_TASK = re.compile(r"^(\d+)/([A-Za-z_][A-Za-z0-9_-]{0,63})$")
_VERSIONED = re.compile(r"^([^@\s]+)(?:@(\d+|latest))?$")


@frozen
class Thing:
    """A parsed THING: ``kind`` (one of :data:`KINDS`) and its value (a run id, ``(run, task)``, a path, ...)."""

    kind: str
    run_id: int | None = None
    task: str | None = None
    sha256: str | None = None
    input_id: int | None = None
    path: str | None = None
    name: str | None = None
    version: int | None = None  # a dataset's or model's; None: the newest


ID_MAX = 2**63 - 1
"""The largest id or version a state file holds (SQLite's INTEGER): a larger one ended `lineage` with "internal
error" (OverflowError at the query)."""


def parse_thing(text: str, *, cwd: str | None = None) -> Thing:
    """Parse a THING (see the module docstring); a relative path is made absolute against ``cwd``.

    Raises :class:`UsageError` (exit 2) naming the value and the expected forms, and for an id or version
    beyond :data:`ID_MAX` (nothing has it).
    """
    thing = _parse_thing(text, cwd=cwd)
    for n in (thing.run_id, thing.input_id, thing.version):
        if n is not None and n > ID_MAX:
            raise UsageError("is out of range", field="THING", value=text, expected=f"an id or version up to {ID_MAX}")
    return thing


def _parse_thing(text: str, *, cwd: str | None = None) -> Thing:
    raw = text.strip()
    if not raw:
        raise UsageError("is empty", field="THING", value=text, expected=THING_EXPECTED)
    scheme, sep, rest = raw.partition(":")
    if sep and scheme in RESERVED:
        if not _VERSIONED.match(rest):
            raise UsageError(f"is not a {scheme} version", field="THING", value=text,
                             expected=f"{scheme}:NAME@VERSION")
        raise UsageError(RESERVED[scheme], field="THING", value=text, expected=THING_EXPECTED)
    if sep and scheme in ("dataset", "model"):
        m = _VERSIONED.match(rest)
        if not m:
            raise UsageError(f"is not a {scheme} version", field="THING", value=text,
                             expected=f"{scheme}:NAME@VERSION (a number, or latest)")
        version = None if m.group(2) in (None, "latest") else int(m.group(2))
        return Thing(scheme, name=m.group(1), version=version)
    if sep and scheme in KINDS:
        return _parse_kind(scheme, rest, text, cwd)
    if _SHA.match(raw.lower()):  # before the run id: 64 digits are a hash, not a run
        return Thing("sha256", sha256=raw.lower())
    if raw.isascii() and raw.isdigit():
        return Thing("run", run_id=int(raw))
    if _TASK.match(raw):
        return _parse_kind("task", raw, text, cwd)
    return _parse_kind("file", raw, text, cwd)


def _parse_kind(kind: str, rest: str, text: str, cwd: str | None) -> Thing:
    if kind == "run":
        if not (rest.isascii() and rest.isdigit()):
            raise UsageError("is not a run id", field="THING", value=text, expected="run:ID, e.g. run:5")
        return Thing("run", run_id=int(rest))
    if kind == "task":
        m = _TASK.match(rest)
        if not m:
            raise UsageError("is not a task of a run", field="THING", value=text, expected="RUN/TASK, e.g. 5/train")
        return Thing("task", run_id=int(m.group(1)), task=m.group(2))
    if kind == "sha256":
        if not _SHA.match(rest.lower()):
            raise UsageError("is not a sha256", field="THING", value=text, expected="sha256: and 64 hex digits")
        return Thing("sha256", sha256=rest.lower())
    if kind == "input":
        if not (rest.isascii() and rest.isdigit()):
            raise UsageError("is not a drop-folder input id", field="THING", value=text,
                             expected="input:ID (`edgeorch inputs` lists them)")
        return Thing("input", input_id=int(rest))
    if not rest:
        raise UsageError("names no path", field="THING", value=text, expected="file:PATH")
    path = rest if os.path.isabs(rest) else os.path.join(cwd or os.getcwd(), rest)
    return Thing("file", path=os.path.normpath(path))


def resolve(lineage: "Lineage", thing: Thing, *, sha256: str | None = None) -> tuple[str, dict[str, object]]:
    """The root node of a lineage query: ``(node id, node fields)``.

    A ``file`` THING takes the version recorded last under its path, or the
    one with ``sha256`` (the CLI passes the content of the file on disk when
    it exists); a path that is only a drop-folder input's (the file moved to
    the inbox) resolves to that input; a file whose content is recorded only
    under other paths (a copy) resolves to that content (``sha256:``).
    Raises :class:`NotFoundError`.
    """
    from .graph import (dataset_node, file_id, input_node, member_path, model_node,  # the node shapes live with
                        run_node, task_node)  # the walk

    if thing.kind in ("dataset", "model"):
        assert thing.name is not None
        return (dataset_node if thing.kind == "dataset" else model_node)(lineage, thing.name, thing.version)

    if thing.kind == "run":
        assert thing.run_id is not None
        return run_node(lineage, thing.run_id)
    if thing.kind == "task":
        assert thing.run_id is not None and thing.task is not None
        return task_node(lineage, thing.run_id, thing.task)
    if thing.kind == "input":
        assert thing.input_id is not None
        return input_node(lineage, thing.input_id)
    if thing.kind == "sha256":
        assert thing.sha256 is not None
        paths = lineage.paths_of_sha256(thing.sha256)
        if not paths:
            raise NotFoundError("no recorded file has this content", value=f"sha256:{thing.sha256}",
                                hint="outputs, consumed inputs and drop-folder inputs are recorded with their sha256")
        return f"sha256:{thing.sha256}", {"kind": "content", "sha256": thing.sha256, "paths": paths}
    assert thing.path is not None
    path = thing.path
    versions = lineage.versions_of_path(path)
    if sha256 is not None:
        chosen = next((v for v in versions if v["sha256"] == sha256), None)
        if chosen is None:
            inputs = [r for r in lineage.inputs_at(path) if r["sha256"] == sha256]
            if inputs:
                return input_node(lineage, int(inputs[0]["id"]))
            if any(member_path(r["kind"], r["path"], r["member"]) == path for r in lineage.manifests_with(sha256)):
                return file_id(path, sha256), {"kind": "file", "path": path, "sha256": sha256}  # in a folder input
            elsewhere = lineage.paths_of_sha256(sha256)
            if elsewhere:  # a copy (cp of a dropped file, an output moved): its content is what was recorded
                return f"sha256:{sha256}", {"kind": "content", "sha256": sha256, "paths": elsewhere}
            known = ", ".join(v["sha256"][:12] for v in versions[:5]) or "none"
            raise NotFoundError(f"no recorded version of {path} has sha256 {sha256}", value=path,
                                hint=f"recorded versions (newest first): {known}")
    elif versions:
        chosen = versions[0]
    else:
        chosen = None
    inputs = lineage.inputs_at(path)
    if chosen is None or (inputs and inputs[0]["source_path"] == path and chosen["source"] == "input"):
        if inputs:  # a dropped file: its lineage is its input's (the file itself went to the inbox)
            return input_node(lineage, int(inputs[0]["id"]))
        raise NotFoundError("nothing recorded about this file", value=path,
                            hint="lineage knows task outputs, declared inputs and drop-folder files")
    return file_id(path, chosen["sha256"]), {"kind": "file", "path": path, "sha256": chosen["sha256"]}
