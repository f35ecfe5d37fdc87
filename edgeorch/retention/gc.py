"""One garbage collection of old runs: plan, commit, then the folders (``edgeorch gc``, the ``[retention]`` sweep).

Two steps, split so that the daemon can run the first on its loop (no
``await`` between its plan and its commit: nothing can change the state file
in between, the one-writer rule) and the second in a worker thread, page
after page of candidates (:func:`collect`; the daemon's ``RunRetention.collect``):

1. :func:`prepare`, reads: the runs past the bound (``store.retention.older_than``,
   a page of :data:`PAGE_RUNS` at a time, newest first, so a run is decided before
   the older runs its cache hits point into),
   the holds of every registered rule (:mod:`edgeorch.retention.holds`), and the
   pure decision (:func:`edgeorch.retention.plan.decide`);
   **apply only**: one transaction removes every row of the planned runs
   (``store.retention.remove``, with a ``runs_removed`` event row);
2. :func:`finish`, files: with apply, the removed runs' folders and the strays
   (trash left by an interrupted removal, run folders no row names, older than
   the bound) are removed; for a dry run their sizes are measured. Returns the
   report (:func:`finish`'s docstring has its keys).

A crash between the commit and the folders leaves folders without rows: the
next gc removes them as strays (``edgeorch/retention/folders.py``). A folder
outside the runs folder (``runs.run_dir`` edited, or a state dir moved) is
never removed; its rows are, and the report says the folder was left.

**A full disk.** SQLite cannot write the rows' transaction on a full disk,
and freeing that disk is what an operator runs gc for. When the commit fails
for lack of space (:class:`~edgeorch.store.db.StateFullError`), the folders of
exactly the runs the plan removes, and still finished at that moment, are
removed first (:func:`_folders_first`), then the commit is tried once more.
A crash, or a disk still too full, between the two leaves rows naming
missing folders: the next gc removes those rows (their folders count 0
bytes). In the daemon this happens on the loop, with no ``await`` from the
plan to the commit, so nothing can queue one of these runs again meanwhile.

Deleting a run that a newer run's cache hit points into would leave that run's
artifacts naming deleted files; the ``cache`` hold keeps such a source as long
as the run using it stays. A cache hit being verified while its source is
removed is refused by the engine (the source attempt must still be recorded
when the hit is applied), so it becomes a plain miss.
"""

from __future__ import annotations

import logging
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import parse_keep
from ..errors import UsageError
from ..records import frozen
from ..store.db import StateFullError
from ..textui import format_bytes
from . import folders
from .holds import HoldQuery, collect_holds
from .plan import Candidate, Plan, decide

if TYPE_CHECKING:  # pragma: no cover
    from ..config import RetentionConfig
    from ..store import Store

log = logging.getLogger("edgeorch.retention")

OLDER_THAN_EXPECTED = 'a duration of at least 1s ("90d", "12h", "30m")'


@frozen
class GcRequest:
    """One gc: remove runs finished more than ``older_than`` seconds ago (of ``pipeline`` only, when set).

    ``keep_last``: the latest this many runs of each pipeline stay (0: none);
    ``apply``: False is a dry run (nothing changes); ``actor``: recorded with the removal.
    """

    older_than: float
    pipeline: str | None = None
    keep_last: int = 0
    apply: bool = False
    actor: str | None = None


def parse_older_than(value: object, *, field: str) -> float:
    """Seconds for an ``--older-than`` value (``field`` names it in the error): :func:`~edgeorch.config.parse_keep`'s
    rule without ``"forever"`` (a gc that removes nothing is a mistake, not a request)."""
    try:
        seconds = parse_keep(value)
    except ValueError as exc:
        raise UsageError(str(exc), field=field, value=value, expected=OLDER_THAN_EXPECTED) from None
    if seconds is None:
        raise UsageError("is not a bound", field=field, value=value, expected=OLDER_THAN_EXPECTED)
    return seconds


def request_for(retention: "RetentionConfig", *, older_than: float | None, pipeline: str | None,
                keep_last: int | None, apply: bool, actor: str | None, config_file: str | None,
                fields: tuple[str, str] = ("--older-than", "--keep-last")) -> GcRequest:
    """A :class:`GcRequest` with what was not given taken from ``[retention]`` (``config_file`` names it).

    ``fields`` name the bound and ``keep_last`` in errors (the CLI's options, or an op's arguments).
    Raises :class:`UsageError` when no bound is given and ``[retention] runs`` is unset (``"forever"``),
    or ``keep_last`` is negative.
    """
    if older_than is None:
        if retention.runs is None:
            raise UsageError("no age bound given, and [retention] runs is not set (runs are kept forever)",
                             file=config_file, field=fields[0],
                             hint='give one (edgeorch gc --older-than 90d), or set [retention] runs = "90d"')
        older_than = retention.runs
    if keep_last is not None and keep_last < 0:
        raise UsageError("is negative", field=fields[1], value=keep_last, expected="an integer >= 0")
    return GcRequest(older_than=older_than, pipeline=pipeline,
                     keep_last=retention.keep_last if keep_last is None else keep_last, apply=apply, actor=actor)


@frozen
class Prepared:
    """What :func:`prepare` decided (and, with apply, committed), for :func:`finish`."""

    request: GcRequest
    now: float
    cutoff: float
    runs_root: Path
    plan: Plan
    removed: frozenset[int]
    """Apply: the runs whose rows were removed; dry run: the runs that would be."""
    rows: dict[str, int]
    folders: dict[int, str | None]
    """Run id -> its folder's name in ``runs_root`` (None: not a folder of the runs folder; left in place)."""
    known: frozenset[str]
    """Names of the folders the state file still names (after the commit, with apply)."""
    last_id: int | None = None
    """The lowest candidate id of this page (where the next page starts below); None when there was none."""
    complete: bool = True
    """No candidate is left below this page."""
    made: dict[int, list[str]] = field(default_factory=dict)
    """Run id -> the model versions it made (``"NAME VERSION"``): their records stay, their files and lineage go."""
    read: dict[int, list[str]] = field(default_factory=dict)
    """Run id -> the data versions it read (``"NAME@V"``): each keeps a record that this run read it and was
    removed (``dataset_readers_gone``, written with the removal), which lineage shows."""
    freed_first: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    """Run id -> what happened to its folder (the report's ``folder``, bytes) when it was removed before the rows,
    the disk being full (:func:`_folders_first`); :func:`finish` does not touch these again."""


def prepare(store: "Store", runs_dir: Path, request: GcRequest, *, before: int | None = None,
            limit: int | None = None, gone: frozenset[int] = frozenset()) -> Prepared:
    """Step 1 (see the module docstring): plan; with ``request.apply``, remove the rows in one transaction.

    ``before``/``limit``: one page of the candidates (ids below ``before``, newest first, at
    most ``limit``; see :func:`pages`). ``gone``: the runs the earlier pages removed (or, in a
    dry run, would remove): a hold while one of them stays holds nothing, so a dry run plans
    what ``--apply`` does (whose earlier pages' rows are gone from the state file). Raises what a hold rule or the store raises
    (``StateError`` on a full disk): nothing is then removed.
    """
    now = store.clock()
    cutoff = now - request.older_than
    page = store.retention.older_than(cutoff, pipeline=request.pipeline, before=before, limit=limit)
    candidates = [Candidate(r["id"], r["pipeline"], r["state"], r["created_at"], r["finished_at"], r["run_dir"])
                  for r in reversed(page)]
    holds = collect_holds(HoldQuery(store, frozenset(c.run_id for c in candidates), now, request.keep_last))
    plan = decide(candidates, holds, gone)
    planned = [c.run_id for c in plan.remove]
    made = store.models.made_by_runs(planned)  # read before the rows go (model_versions keeps run_id, not the run)
    read = store.lineage.dataset_reads_of_runs(planned)  # likewise: their consumed rows go with them
    runs_root = Path(runs_dir).resolve()
    names = {c.run_id: folders.folder_name(runs_root, c.run_dir) for c in plan.remove}
    freed_first: dict[int, tuple[str, int | None]] = {}
    if not request.apply:
        removed, rows = planned, store.retention.count_rows(planned)
    elif planned:
        removed, rows, freed_first = _remove_rows(store, request, plan, runs_root, names)
    else:
        removed, rows = [], {}
    return Prepared(request=request, now=now, cutoff=cutoff, runs_root=runs_root, plan=plan,
                    removed=frozenset(removed), rows=rows, folders=names,
                    known=frozenset(Path(d).name for d in store.retention.run_dirs()),
                    made=made, read=read, freed_first=freed_first,
                    last_id=page[-1]["id"] if page else None, complete=limit is None or len(page) < limit)


def _remove_rows(store: "Store", request: GcRequest, plan: Plan, runs_root: Path, names: dict[int, str | None]
                 ) -> tuple[list[int], dict[str, int], dict[int, tuple[str, int | None]]]:
    """The rows of the planned runs removed (``store.retention.remove``): the ids removed, the rows per table, and
    the folders removed ahead of them (empty unless the disk was full, see the module docstring).

    Raises :class:`StateFullError` when even the folders freed no room for the commit (those folders are gone
    then: the error says so, and the next gc removes the rows); any other error as the store raises it.
    """
    def remove() -> tuple[list[int], dict[str, int]]:
        return store.retention.remove(
            [c.run_id for c in plan.remove], actor=request.actor, message=_event_message(request),
            data={"older_than": request.older_than, "pipeline": request.pipeline, "keep_last": request.keep_last,
                  "held": len(plan.held)})

    try:
        return (*remove(), {})
    except StateFullError:
        early = _folders_first(store, plan, runs_root, names)
    freed = sum(size or 0 for _state, size in early.values())
    log.warning("gc: the state file's disk is full: removed the folders of %d run(s) (%s) before their rows, so "
                "that their removal can be recorded", len(early), format_bytes(freed))
    try:
        return (*remove(), early)
    except StateFullError as exc:
        raise StateFullError(
            f"{exc.message}; the folders of {len(early)} old run(s) were removed first ({format_bytes(freed)}), "
            "which left too little room to record their removal", file=exc.file,
            hint="free more space on that file system (files outside the state folder, or a gc with a shorter "
                 "--older-than, which removes more runs' folders first); the next `edgeorch gc --apply` removes "
                 "these runs' rows (their folders are gone)") from None


def _folders_first(store: "Store", plan: Plan, runs_root: Path, names: dict[int, str | None]
                   ) -> dict[int, tuple[str, int | None]]:
    """Remove the folders of the runs ``plan`` removes that are finished now, before their rows (the disk is full);
    run id -> (the report's ``folder``, bytes freed or None). Blocking file work, on the daemon's loop on
    purpose (see the module docstring); only on a full disk.

    Only those runs: a held run, one queued again since the plan (a ``retry``) and a folder outside the runs
    folder are never touched. A folder that cannot be removed is reported as an error (the next gc tries again).
    """
    out: dict[int, tuple[str, int | None]] = {}
    for run_id in store.retention.finished(c.run_id for c in plan.remove):
        name = names.get(run_id)
        if name is None:
            continue  # not in the runs folder: never removed (finish reports it left in place)
        try:
            out[run_id] = ("removed (before its rows: the disk was full)", folders.remove(runs_root, name))
        except (OSError, ValueError) as exc:
            log.warning("gc: cannot remove %s: %s (tried again by the next gc)", runs_root / name, exc)
            out[run_id] = (f"error: {exc}", None)
    return out


def finish(prepared: Prepared, *, strays: bool = True) -> dict[str, Any]:
    """Step 2 (blocking file work; the daemon runs it in a worker thread): folders removed or measured; the report.

    The report (the ``gc`` ops' result and ``edgeorch gc --json``): ``apply``, ``older_than``,
    ``cutoff``, ``pipeline``, ``keep_last``; ``runs`` (removed, or to be removed: ``run_id``,
    ``pipeline``, ``state``, ``finished_at``, ``run_dir``, ``folder`` — what happened to it —
    ``bytes``, ``models``, the model versions it made: their registry records stay, their files and
    lineage go, and ``datasets_read``, the data versions it read, ``NAME@V``: each keeps a record that this
    run read it and was removed); ``held`` (``run_id``, ``pipeline``, ``state``, ``finished_at``, ``holds``:
    ``rule``, ``reason``, ``while_kept``); ``strays`` (``path``, ``kind``, ``folder``, ``bytes``);
    ``rows`` (per table); ``bytes`` (total freed, or that would be); ``errors`` (folders that
    could not be removed: the next gc tries again). ``strays=False`` leaves the strays for a
    later page's call.
    """
    p, req = prepared, prepared.request
    root = p.runs_root
    errors: list[str] = []
    total = 0
    done: set[str] = set()
    shared: dict[tuple[int, int], list[int]] = {}  # a dry run: files several of these folders hold (cache hits)

    def handle(name: str) -> tuple[str, int | None]:
        nonlocal total
        done.add(name)
        if not req.apply:
            size = folders.measure(root / name, shared)
            total += size
            return ("would be removed" if _exists(root / name) else "missing"), size
        try:
            size = folders.remove(root, name)
        except (OSError, ValueError) as exc:
            errors.append(f"{root / name}: {exc}")
            log.warning("gc: cannot remove %s: %s (tried again by the next gc)", root / name, exc)
            return f"error: {exc}", None
        total += size
        return "removed", size

    def early(run_id: int, name: str) -> tuple[str, int | None]:
        """A folder removed before the rows (:func:`_folders_first`): counted and said, not handled again."""
        nonlocal total
        done.add(name)
        state, size = p.freed_first[run_id]
        if size is None:
            errors.append(f"{root / name}: {state.removeprefix('error: ')}")
        total += size or 0
        return state, size

    runs = []
    for c in p.plan.remove:
        if c.run_id not in p.removed:
            continue  # apply: queued again before the commit (left out by store.retention.remove)
        name = p.folders[c.run_id]
        if name is None:
            state, size = "left in place: not in the runs folder", None
        elif c.run_id in p.freed_first:
            state, size = early(c.run_id, name)
        else:
            state, size = handle(name)
        runs.append({"run_id": c.run_id, "pipeline": c.pipeline, "state": c.state, "finished_at": c.finished_at,
                     "run_dir": c.run_dir, "folder": state, "bytes": size, "models": p.made.get(c.run_id, []),
                     "datasets_read": p.read.get(c.run_id, [])})
    stray_items = []
    for s in folders.strays(root, p.known, p.cutoff) if strays else ():
        if s.name in done or (s.kind == "orphan" and req.pipeline is not None):
            continue  # a run folder of no run has no pipeline: only a gc of every pipeline removes it
        state, size = handle(s.name)
        stray_items.append({"path": str(root / s.name), "kind": s.kind, "folder": state, "bytes": size})
    if not req.apply:  # a file every link of which is in these folders goes too: counted once in the total
        total += folders.freed_together(shared)
    if req.apply and (runs or stray_items):
        log.info("gc by %s: removed %d run(s) and %d stray folder(s), %d bytes freed; %d run(s) held",
                 req.actor, len(runs), len(stray_items), total, len(p.plan.held))
    return {
        "apply": req.apply, "older_than": req.older_than, "cutoff": p.cutoff, "pipeline": req.pipeline,
        "keep_last": req.keep_last, "runs": runs,
        "held": [{"run_id": c.run_id, "pipeline": c.pipeline, "state": c.state, "finished_at": c.finished_at,
                  "holds": [h.to_dict() for h in hs]} for c, hs in p.plan.held],
        "strays": stray_items, "rows": p.rows, "bytes": total, "errors": errors,
    }


PAGE_RUNS = 500
"""Candidates planned and removed per transaction: a sweep of a long backlog never holds the daemon's loop
(or the state file's write lock) for long; the daemon serves other work between two pages."""


def collect(store: "Store", runs_dir: Path, request: GcRequest) -> dict[str, Any]:
    """Every page, both steps, in this thread (``edgeorch gc`` without a daemon, under the state lock)."""
    reports = []
    before: int | None = None
    gone: frozenset[int] = frozenset()
    while True:
        prepared = prepare(store, runs_dir, request, before=before, limit=PAGE_RUNS, gone=gone)
        reports.append(finish(prepared, strays=prepared.complete))
        if prepared.complete:
            return merge(reports)
        before, gone = prepared.last_id, gone | prepared.removed


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report of a gc done page by page: the last page's settings and strays, lists joined (by run id),
    rows and bytes added."""
    out = dict(reports[-1])
    out["runs"] = sorted((r for rep in reports for r in rep["runs"]), key=lambda r: r["run_id"])
    out["held"] = sorted((r for rep in reports for r in rep["held"]), key=lambda r: r["run_id"])
    rows: dict[str, int] = {}
    for rep in reports:
        for table, n in rep["rows"].items():
            rows[table] = rows.get(table, 0) + n
    out["rows"] = rows
    out["bytes"] = sum(rep["bytes"] for rep in reports)
    out["errors"] = [e for rep in reports for e in rep["errors"]]
    return out


def _event_message(request: GcRequest) -> str:
    """The ``runs_removed`` row's message (the count and ids are in its data)."""
    scope = f" of {request.pipeline}" if request.pipeline else ""
    return f"runs{scope} finished more than {human_duration(request.older_than)} ago removed by {request.actor or 'gc'}"


def human_duration(seconds: float) -> str:
    """``90d``, ``12h``, ``1.5d``, ``45s``: ``seconds`` in the largest unit it reaches."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True
