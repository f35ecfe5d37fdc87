"""What ``edgeorch top`` shows, from the ops' answers (pure: no I/O, no clock; ``now`` is given).

:func:`snapshot_of` turns the documents of ``status``, ``resources``,
``runs.list``, ``runs.show`` (the runs with a task running or between attempts), ``inputs.list`` and
``monitors.list`` into one :class:`Snapshot` of plain rows. :func:`runs_to_read` picks, from the active runs'
task counts, the runs whose documents those rows need. :func:`selectable` lists what the cursor can
point at: the task rows, then the recent runs.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from ...records import frozen
from ...rundoc import last_start
from ...textui import format_bytes

RETRYING_RUNS_READ = 20
"""At most this many runs with a task between attempts (and none running) are read per refresh (``runs.show``
each), the oldest first: their number has no bound (a backlog of flaky runs), unlike the running tasks', which
``engine.parallelism`` bounds; the runs with a running task are always all read."""


@frozen
class TaskRow:
    """A running or waiting task. ``state``: running, waiting (for resources or a slot) or retry_wait."""

    run_id: int
    pipeline: str
    task: str
    state: str
    attempt: int | None
    since: float | None
    """When the attempt started (running), or when the retry is due (retry_wait); None: unknown."""
    detail: str
    """What a running task holds (cores, GPUs) or why a waiting one waits."""


@frozen
class RunRow:
    """A run as ``edgeorch top`` shows it."""

    run_id: int
    pipeline: str
    state: str
    trigger: str
    created_at: float
    finished_at: float | None
    reason: str | None
    started_at: float | None = None  # its last start (a resume's, when it was retried): what TOOK counts from
    resumed: bool = False


@frozen
class CoreRow:
    """A CPU core and the attempt holding it (None: free)."""

    core: int
    holder: str | None


@frozen
class GpuRow:
    """A GPU as ``edgeorch top`` shows it (None: not read)."""

    uuid: str
    name: str
    memory_total: int
    memory_used: int | None
    utilization: int | None
    temperature: int | None
    holders: tuple[str, ...]
    drained: str | None
    error: str | None


@frozen
class InputRow:
    """A drop-folder input as ``edgeorch top`` shows it."""

    input_id: int
    pipeline: str
    name: str
    state: str
    run_id: int | None
    arrived_at: float


QUIET_RULE_STATES = frozenset({"ok"})
"""Rules in these states are left out of the rules panel: it shows what needs attention."""


@frozen
class RuleRow:
    """A monitoring rule that is not ok: pending, firing, cooling or silenced (``monitors.list``'s ``state``)."""

    name: str
    pipeline: str
    state: str
    condition: str
    last_value: float | None
    last_evaluated_at: float | None
    note: str
    """The silence's reason while silenced, else the last firing's outcome and run; empty when neither."""


@frozen
class Snapshot:
    """One refresh of the view; ``taken_at`` is the caller's clock."""

    taken_at: float
    version: str
    uptime_s: float
    running: int
    """The running task rows (``tasks``): the header counts the rows it shows, never ``status``'s count of
    another moment."""
    waiting: int
    """The waiting task rows (for resources or a slot)."""
    active_runs: int
    parallelism: int
    clients: int
    paused: frozenset[str]
    tasks: tuple[TaskRow, ...]
    runs: tuple[RunRow, ...]
    cores: tuple[CoreRow, ...]
    gpus: tuple[GpuRow, ...]
    gpu_backend: str
    memory_available: int | None
    memory_leased: int
    inputs: tuple[InputRow, ...]
    input_counts: dict[str, int] = field(default_factory=dict)
    pipeline_errors: tuple[str, ...] = ()
    rules: tuple[RuleRow, ...] = ()
    """Rules that are not ok, firing first (see :func:`rules_of`)."""
    retrying: int = 0
    """The retry_wait task rows."""
    retrying_unread: int = 0
    """Tasks between attempts in runs not read this refresh (past :data:`RETRYING_RUNS_READ`): not in ``tasks``."""


@frozen
class Item:
    """What the cursor points at: a task of a run, or a run (``task`` None)."""

    run_id: int
    pipeline: str
    task: str | None = None


def snapshot_of(status: dict[str, Any], resources: dict[str, Any], recent: list[dict[str, Any]],
                active: list[dict[str, Any]], inputs: dict[str, Any], now: float,
                monitors: dict[str, Any] | None = None, retrying_unread: int = 0) -> Snapshot:
    """Build a snapshot from the ops' documents.

    ``recent``: ``runs.list``'s runs (newest first); ``active``: ``runs.show``
    documents of the runs with a task running or between attempts (see :func:`runs_to_read`; the
    other active runs' tasks are pending or in ``resources``' queue);
    ``inputs``: ``inputs.list``'s document; ``monitors``: ``monitors.list``'s
    (None: a daemon without rules); ``retrying_unread``: see :attr:`Snapshot.retrying_unread`. Missing
    optional keys (an older daemon) give empty sections, never an error.

    The task counts are those of the rows (``status``' counts are of another moment: its header said
    "0 running, 0 waiting" above a retry_wait row, and "2 running" above one running row under load).
    """
    tasks = task_rows(resources, active)
    holders: dict[str, list[str]] = {}
    for lease in resources.get("leases") or []:
        for g in lease["gpus"]:
            holders.setdefault(g, []).append(f"{lease['run_id']}/{lease['task']}")
    gpus = tuple(GpuRow(g["uuid"], g["name"], g["memory_total"], g.get("memory_used"), g.get("utilization"),
                        g.get("temperature"), tuple(holders.get(g["uuid"], ())), g.get("drained"), g.get("error"))
                 for g in resources.get("gpus") or [])
    cpus = resources.get("cpus") or {}
    mem = resources.get("memory") or {}
    return Snapshot(
        taken_at=now, version=status.get("version", "?"), uptime_s=status.get("uptime_s", 0.0),
        running=sum(t.state == "running" for t in tasks), waiting=sum(t.state == "waiting" for t in tasks),
        retrying=sum(t.state == "retry_wait" for t in tasks), retrying_unread=retrying_unread,
        active_runs=status.get("runs", {}).get("active", 0), parallelism=status.get("parallelism", 0),
        clients=status.get("clients", 0), paused=frozenset(status.get("paused", ())),
        tasks=tasks,
        runs=tuple(RunRow(r["id"], r["pipeline"], r["state"], r["trigger"], r["created_at"], r.get("finished_at"),
                          r.get("reason"), last_start(r), bool(r.get("resumed_at"))) for r in recent),
        cores=tuple(CoreRow(c["id"], c["held_by"]) for c in cpus.get("cores", [])),
        gpus=gpus, gpu_backend=resources.get("gpu_backend", ""),
        memory_available=mem.get("available_now"), memory_leased=mem.get("leased", 0),
        inputs=tuple(InputRow(i["id"], i["pipeline"], i["source_name"], i["state"], i.get("run_id"), i["arrived_at"])
                     for i in inputs.get("inputs", [])),
        input_counts=dict(inputs.get("counts", {})),
        pipeline_errors=tuple(status.get("pipeline_errors", ())),
        rules=rules_of(monitors or {}),
    )


TASK_ORDER = {"running": 0, "retry_wait": 1, "waiting": 2}


def task_rows(resources: dict[str, Any], active: list[dict[str, Any]]) -> tuple[TaskRow, ...]:
    """The task rows: running ones first (oldest start first: a long training run is the one a backlog hid),
    then those between attempts (soonest retry first), then the waiting ones in the queue's order.

    ``active``: ``runs.show`` documents; ``resources``: its ``leases`` say what a running task holds, its
    ``queue`` which tasks wait and why. A task in both (it started between the two ops) is shown running, once.
    """
    leases = {(lease["run_id"], lease["task"]): lease for lease in resources.get("leases") or []}
    rows: list[TaskRow] = []
    for run in active:
        for t in run.get("tasks", []):
            attempts = t.get("attempt_list") or []
            last = attempts[-1] if attempts else None
            if t["state"] == "running":
                lease = leases.get((run["id"], t["name"]))
                rows.append(TaskRow(run["id"], run["pipeline"], t["name"], "running",
                                    last["number"] if last else None, last["started_at"] if last else None,
                                    describe_lease(lease) if lease else "shares the free cores"))
            elif t["state"] == "retry_wait":
                rows.append(TaskRow(run["id"], run["pipeline"], t["name"], "retry_wait",
                                    last["number"] if last else None, t.get("next_attempt_at"),
                                    t.get("reason") or "waiting to retry"))
    shown = {(r.run_id, r.task) for r in rows}
    for q in resources.get("queue") or []:
        run_id, _, name = str(q["task"]).partition("/")
        if (int(run_id), name) not in shown:
            rows.append(TaskRow(int(run_id), q["pipeline"], name, "waiting", None, None, q["reason"]))
    # sorted() is stable: the queue's order stays among the waiting rows.
    return tuple(sorted(rows, key=lambda r: (TASK_ORDER[r.state], _when(r) if r.state != "waiting" else 0.0,
                                             r.run_id if r.state != "waiting" else 0)))


def _when(row: TaskRow) -> float:
    """A running or retrying row's sort time; unknown last."""
    return row.since if row.since is not None else float("inf")


def runs_to_read(active: list[dict[str, Any]], *, retrying_max: int = RETRYING_RUNS_READ) -> tuple[list[int], int]:
    """Which active runs' documents the task rows need, from ``runs.list``'s runs (any order) with their task
    counts (``tasks``: state -> count): every run with a running task, and the oldest ``retrying_max`` of those
    with a task between attempts only. Also returns the tasks between attempts of the runs left out.

    Reading "the 20 newest active runs" left out the oldest, a long training run, behind a backlog.
    """
    running = sorted(r["id"] for r in active if (r.get("tasks") or {}).get("running"))
    retrying = sorted((r["id"], r["tasks"]["retry_wait"]) for r in active
                      if not (r.get("tasks") or {}).get("running") and (r.get("tasks") or {}).get("retry_wait"))
    unread = sum(n for _, n in retrying[retrying_max:])
    return running + [run_id for run_id, _ in retrying[:retrying_max]], unread


RULE_ORDER = {"firing": 0, "cooling": 1, "pending": 2, "silenced": 3}


def rules_of(monitors: dict[str, Any]) -> tuple[RuleRow, ...]:
    """The rules of ``monitors.list``'s document that are not ok: firing, cooling, pending, silenced, then by name."""
    rows = []
    for r in monitors.get("rules", []):
        if r.get("state", "ok") in QUIET_RULE_STATES:
            continue
        firing = r.get("last_firing") or {}
        if r.get("silence_reason"):
            note = r["silence_reason"]
        elif firing:
            note = firing.get("outcome", "") + (f" -> run {firing['run_id']}" if firing.get("run_id") else "")
        else:
            note = ""
        rows.append(RuleRow(r["name"], r.get("pipeline", ""), r["state"], r.get("condition", ""), r.get("last_value"),
                            r.get("last_evaluated_at"), note))
    return tuple(sorted(rows, key=lambda x: (RULE_ORDER.get(x.state, 9), x.name)))


def describe_lease(lease: dict[str, Any]) -> str:
    """What a lease holds, in a few words: ``cores 2,3; GPU-1111… (whole); pool db``."""
    parts = []
    if lease.get("cores"):
        parts.append("cores " + ",".join(map(str, lease["cores"])))
    if lease.get("memory"):
        parts.append(f"memory {format_bytes(lease['memory'])}")
    for g in lease.get("gpus") or []:
        if lease.get("gpu_exclusive"):
            parts.append(f"{short_uuid(g)} (whole)")
        else:
            parts.append(f"{short_uuid(g)} ({format_bytes(lease.get('gpu_memory'))})")
    if lease.get("pool"):
        parts.append(f"pool {lease['pool']}")
    return "; ".join(parts) or "shares the free cores"


def short_uuid(uuid: str) -> str:
    """``GPU-11111111-2222-…`` -> ``GPU-11111111``: enough to tell a box's GPUs apart."""
    head, sep, rest = uuid.partition("-")
    return f"{head}-{rest.split('-')[0]}" if sep else uuid


def selectable(snap: Snapshot) -> list[Item]:
    """The cursor's stops, top to bottom: every task row, then every recent run."""
    return ([Item(t.run_id, t.pipeline, t.task) for t in snap.tasks]
            + [Item(r.run_id, r.pipeline) for r in snap.runs])
