"""Baselines: named, versioned data profiles, and the references a drift task may name (docs/monitoring.md).

- :func:`snapshot_file` turns a data file (profiled) or a saved profile JSON into a :class:`Snapshot`;
  :func:`profile_path_of_run` finds the profile a run's task saved. Both read files and may run the
  profiling kernel: callers run them off the event loop (a worker thread in the daemon, the CLI's own
  process). ``store.baselines`` records the result (:mod:`edgeorch.store.baselines`).
- :func:`parse_reference` recognises a drift task's ``reference = "baseline:NAME[@VERSION]"`` or
  ``"model:NAME[@ALIAS]"``; :func:`resolve_reference` turns one into what the drift kernel compares with,
  reading the state file read-only from the task's process (``EDGEORCH_STATE_FILE``):

  * ``baseline:NAME`` (newest version) or ``baseline:NAME@3``: the stored profile (numeric columns by its
    histogram or quantile sketch, categorical ones by their counts: ``drift_from_profile``);
  * ``model:NAME`` (alias ``champion``) or ``model:NAME@ALIAS``: the data the version that alias points at
    now was trained on: the one data file (CSV, Parquet, ...) its run recorded as consumed (a task's
    ``inputs``), compared exactly; its sha256 must still be the recorded one. Promoting a new version moves
    the reference with it. A version whose run recorded no data file, or several, or whose file changed, is
    an error that says so (declare the training data in ``inputs``, or set a named baseline).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import DataError, NotFoundError, UsageError
from ..records import frozen

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
REFERENCE_PREFIXES = ("baseline:", "model:")
STATE_FILE_ENV = "EDGEORCH_STATE_FILE"
"""Set by the engine for every task: the state file a task may read (read-only) to resolve a reference."""
DATA_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".npy", ".npz", ".jsonl")
PROFILE_MARK = b'"format": "edgeorch.profile/'


def check_name(name: str, field: str = "NAME") -> str:
    """``name`` if it can name a baseline, else :class:`UsageError` naming the field and what is expected."""
    if not NAME_RE.match(name):
        raise UsageError("is not a valid baseline name", field=field, value=name,
                         expected="letters, digits, '_', '-' or '.', starting with a letter or '_', at most 64")
    return name


@frozen
class Snapshot:
    """A profile ready to be stored: its JSON text and hash, its columns and rows, and where it came from."""

    profile: str
    sha256: str
    columns: tuple[str, ...]
    rows: int
    source: dict[str, Any]


def is_profile_file(path: str | Path) -> bool:
    """Whether ``path`` is a saved edgeorch profile (a ``.json`` whose head names the profile format)."""
    if not str(path).endswith(".json"):
        return False
    try:
        with open(path, "rb") as fh:
            return PROFILE_MARK in fh.read(200)
    except OSError:
        return False


def snapshot_file(path: str | Path, *, source: dict[str, Any] | None = None) -> Snapshot:
    """A saved profile JSON as it is, or a data file profiled (the kernel: seconds for a large file).

    Raises :class:`~edgeorch.errors.DataError` (or its not-found form) naming the file.
    """
    from ..kernels.profiling import Profile, profile

    p = Path(path).resolve()
    if not p.exists():
        from ..errors import DataNotFoundError

        raise DataNotFoundError("no such file", file=str(p), expected="a data file (CSV, Parquet, ...) or a saved "
                                "profile (.json)")
    if is_profile_file(p):
        prof = Profile.load(p)
    else:
        prof = profile(str(p))
    text = prof.to_json()
    src = dict(source or {})
    src.setdefault("kind", "file")
    src.setdefault("path", str(p))
    src.setdefault("file_sha256", _sha256_file(p))
    return Snapshot(text, hashlib.sha256(text.encode()).hexdigest(), tuple(prof.columns), int(prof.rows), src)


def profile_path_of_run(store: Any, run_id: int, task: str) -> Path:
    """The profile ``task`` of run ``run_id`` saved: a declared output, else a file in its output folder, that is a
    saved profile. :class:`NotFoundError` naming the run and task when there is none."""
    run = store.runs.get(run_id)  # NotFoundError names the run
    names = [t["name"] for t in store.runs.tasks_of(run_id)]
    if task not in names:
        raise NotFoundError(f"run {run_id} has no task {task!r}", field="--task", value=task,
                            expected=f"one of {', '.join(names)}")
    candidates = [Path(a["path"]) for a in store.outputs.latest_artifacts(run_id, task)]
    out_dir = Path(run["run_dir"]) / "outputs" / task if run.get("run_dir") else None
    if out_dir is not None and out_dir.is_dir():
        candidates += sorted(out_dir.glob("*.json"))
    for c in candidates:
        if is_profile_file(c):
            return c
    raise NotFoundError(f"task {task} of run {run_id} saved no profile", field="--task", value=task,
                        expected="a profile task with save = \"NAME.json\" (its output), or give a data file instead")


def parse_reference(text: Any) -> tuple[str, str, str | None] | None:
    """``("baseline", NAME, VERSION-or-None)`` or ``("model", NAME, ALIAS-or-None)`` for a reference text, None
    for anything else (a path). A malformed one is a :class:`DataError` naming it."""
    if not isinstance(text, str) or not text.startswith(REFERENCE_PREFIXES):
        return None
    kind, _, rest = text.partition(":")
    name, _, qual = rest.partition("@")
    if not NAME_RE.match(name) or (qual == "" and "@" in rest) or (
            kind == "baseline" and qual and not qual.isdigit()):
        raise DataError("is not a valid reference", field="reference", value=text,
                        expected='"baseline:NAME", "baseline:NAME@VERSION", "model:NAME" or "model:NAME@ALIAS"')
    return kind, name, qual or None


def reference_version(store: Any, text: Any) -> str | None:
    """What a ``baseline:``/``model:`` reference resolves to in ``store`` now, as text for a task's cache key:
    ``baseline:NAME@3``, ``model:NAME@champion=5``, or the reference with ``=missing`` when it resolves to
    nothing (the task will fail saying why). None for anything that is not such a reference (a path, whose
    contents the task reads itself) or a malformed one (refused when the pipeline is checked).

    A drift task against ``baseline:NAME`` must miss the cache once a newer version is set (or the alias
    moves): its text alone does not say which version it compared with.
    """
    try:
        parsed = parse_reference(text)
    except DataError:
        return None
    if parsed is None:
        return None
    kind, name, qual = parsed
    if kind == "baseline":
        try:
            row = store.baselines.get(name, int(qual) if qual else None)
        except NotFoundError:
            return f"{text}=missing"
        return f"baseline:{name}@{row['version']}"
    alias = qual or "champion"
    holder = store.models.holder(name, alias) if store.models.model(name) is not None else None
    return f"model:{name}@{alias}={holder['version'] if holder else 'missing'}"


@frozen
class Reference:
    """What a drift task compares with: a ``profile`` (Profile) or a data file ``path``; ``describe`` in words."""

    describe: str
    profile: Any = None
    path: str | None = None


def resolve_reference(text: str, *, state_file: str | None = None) -> Reference:
    """Resolve a ``baseline:``/``model:`` reference (see the module docstring) from the state file (read-only).

    Raises :class:`DataError` / :class:`NotFoundError` naming what is missing; the task fails with it.
    """
    parsed = parse_reference(text)
    assert parsed is not None
    kind, name, qual = parsed
    path = state_file or os.environ.get(STATE_FILE_ENV)
    if not path:
        raise DataError(f"{text} needs the state file, and this process was not told where it is",
                        field="reference", value=text, expected=f"a task run by edgeorch (it sets {STATE_FILE_ENV})")
    from ..store import Store

    store = Store(Path(path), readonly=True)
    try:
        if kind == "baseline":
            from ..kernels.profiling import Profile

            row = store.baselines.get(name, int(qual) if qual else None, profile=True)
            prof = Profile.from_json(row["profile"], file=f"baseline {name}@{row['version']}")
            return Reference(f"baseline {name} version {row['version']}", profile=prof)
        return _training_data(store, name, qual or "champion")
    finally:
        store.close()


def _training_data(store: Any, model: str, alias: str) -> Reference:
    holder = store.models.holder(model, alias) if store.models.model(model) is not None else None
    if holder is None:
        store.models.require(model)  # an unknown model: NotFoundError naming the known ones
        raise NotFoundError(f"model {model} has no version with alias {alias}", field="reference",
                            value=f"model:{model}@{alias}", expected="an alias that points at a version")
    where = f"model {model} {alias} (version {holder['version']})"
    files = _data_files(store, holder)
    if len(files) != 1:
        raise DataError(f"{where}: its run recorded {'no' if not files else len(files)} training data file(s)"
                        + (f" ({', '.join(f['path'] for f in files)})" if files else ""), field="reference",
                        value=f"model:{model}", expected="one data file (CSV, Parquet, ...) among the inputs its run "
                        "consumed: declare it in the training task's inputs = [...], or set a named baseline "
                        "(reference = \"baseline:NAME\")")
    f = files[0]
    if not Path(f["path"]).exists():
        raise DataError(f"{where}: its training data is gone", file=f["path"], expected="the file the version was "
                        "trained on (or set a named baseline from it while you still have it)")
    now = _sha256_file(Path(f["path"]))
    if now != f["sha256"]:
        raise DataError(f"{where}: its training data changed since it was trained (sha256 {now[:12]}, recorded "
                        f"{f['sha256'][:12]})", file=f["path"],
                        expected="the file as it was (restore it, or set a named baseline)")
    return Reference(f"the training data of {where}: {f['path']}", path=f["path"])


def _data_files(store: Any, version: dict[str, Any]) -> list[dict[str, Any]]:
    """The data files the version's run consumed (every task's recorded inputs; the version's own first)."""
    seen: dict[str, dict[str, Any]] = {}
    rows = list(version.get("inputs") or [])
    run_id = version.get("run_id")
    if run_id is not None:
        for task in store.lineage.task_names(run_id):
            rows += store.lineage.consumed_by(run_id, task)
    for r in rows:
        p = str(r.get("path") or "")
        if r.get("kind", "file") == "file" and p.endswith(DATA_SUFFIXES) and r.get("sha256"):
            seen.setdefault(p, {"path": p, "sha256": r["sha256"]})
    return list(seen.values())


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def show_doc(store: Any, name: str, version: int | None = None) -> dict[str, Any]:
    """``edgeorch baseline show NAME [--version V]``: the version (newest by default) with its columns' summary
    (kind, count, nulls, mean, min, max... as the profile reports them) and every version of the name."""
    from ..kernels.profiling import Profile

    row = store.baselines.get(name, version, profile=True)
    prof = Profile.from_json(row.pop("profile"), file=f"baseline {name}@{row['version']}")
    return {**row, "summary": json.loads(json.dumps(prof.summary(), default=str)),
            "versions": store.baselines.versions(name)}
