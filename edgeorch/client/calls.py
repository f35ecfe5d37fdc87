"""What the Python clients send and how they read the answers, shared by :class:`Client` and :class:`AsyncClient`.

Each method of the two clients is one :class:`Call` built here (the
argument checks, the op, its args, how an answer becomes records) run over
that client's transport: the two differ only in their I/O. Waiting is a
loop over the ``events`` stream in each client, and every decision in it is
:func:`wait_step`'s. Nothing here touches a socket; :func:`submit` reads an
ad-hoc pipeline file (bounded, 1 MiB).

The daemon owns the rules about values (a run id exists, a limit is in
range, a param has the right type) and names the argument in its error;
the client checks only what it must to build the request: that a run is a
run id or a run record, and that every value can be sent as JSON.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Literal, TypeVar

from ..control import protocol as P
from ..errors import EdgeorchError, UsageError
from ..model import RunState
from ..records import frozen
from .records import Queued, Run, RunSummary

T = TypeVar("T")

DEFAULT_LABEL = "python"
"""What a run started from Python records as its ``trigger`` unless the caller says otherwise."""


@frozen
class Call(Generic[T]):
    """One request: ``op`` with ``args``; ``read(result, client)`` turns the answer (or each item of a
    stream) into what the method returns. ``bounded``: a stream's items are each awaited at most the
    client's timeout (a stream that waits for the future, such as ``events`` or a followed log, is not)."""

    op: str
    args: dict[str, Any]
    read: Callable[[Any, Any], T]
    bounded: bool = True


class WaitTimeout(EdgeorchError, TimeoutError):
    """A run did not finish within the time a caller was ready to wait (the run goes on)."""

    code = "wait_timeout"
    exit_code = 75  # EX_TEMPFAIL: try again later

    def __init__(self, run_id: int, timeout: float | None, last_state: str | None = None) -> None:
        self.run_id = run_id
        self.timeout = timeout or 0.0
        self.last_state = last_state
        seen = f" (last seen {last_state})" if last_state else ""
        super().__init__(f"run {run_id} did not finish within {self.timeout:g}s{seen}",
                         hint="it goes on: wait again, or cancel it")


# -- values ---------------------------------------------------------------------------------------

def plain(value: Any, field: str) -> Any:
    """``value`` as JSON the daemon can read: paths become strings, tuples lists; a mapping's keys must
    be strings. Raises :class:`UsageError` naming ``field`` (``params.when``) for anything else
    (a datetime, NaN, an object), instead of a bare ``TypeError`` from the JSON encoder."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError("is not a finite number", field=field, value=value, expected="a finite number")
        return value
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError("has a key that is not a string", field=field, value=key, expected="string keys")
            out[key] = plain(item, f"{field}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [plain(item, f"{field}[{i}]") for i, item in enumerate(value)]
    raise UsageError("cannot be sent to the daemon", field=field, value=type(value).__name__,
                     expected="a string, number, boolean, path, list or mapping")


def run_id_of(run: Any, field: str = "run") -> int:
    """The id of ``run``: an integer id, a :class:`RunSummary`/:class:`Run`, or a :class:`Queued` receipt."""
    if isinstance(run, RunSummary):
        return run.id
    if isinstance(run, Queued):
        return run.run_id
    if isinstance(run, int) and not isinstance(run, bool):
        return run
    raise UsageError("is not a run", field=field, value=run, expected="a run id (an integer) or a Run")


def _args(**values: Any) -> dict[str, Any]:
    """Request args without the unset (None) ones, each made plain JSON."""
    return {k: plain(v, k) for k, v in values.items() if v is not None}


# -- calls ----------------------------------------------------------------------------------------

def submit(pipeline: str | os.PathLike[str], params: Mapping[str, Any] | None, label: str,
           no_cache: bool = False) -> Call[Queued]:
    """Queue a run of ``pipeline``: a loaded pipeline's name, or a pipeline file (a path object, or a string
    that :func:`edgeorch.pipelines.names_a_file` calls a file), whose content is sent and run as an ad-hoc
    pipeline recorded with its content hash, as ``edgeorch run FILE`` does."""
    if params is not None and not isinstance(params, Mapping):
        raise UsageError("is not a mapping of param names to values", field="params", value=type(params).__name__,
                         expected='a dict such as {"epochs": 3}')
    from ..model import label_problem

    problem = label_problem(label)
    if problem is not None:  # the daemon's own rule, said before anything is sent
        raise UsageError(problem, field="label", value=label, expected="a label of your own, such as 'backfill'")
    args: dict[str, Any] = {"params": plain(dict(params or {}), "params"), "trigger": label}
    if no_cache:  # sent only when asked: a daemon of an older edgeorch knows no such argument
        args["no_cache"] = True
    if isinstance(pipeline, os.PathLike) or (isinstance(pipeline, str) and _names_a_file(pipeline)):
        from pathlib import Path

        from ..pipelines.load import read_pipeline_bytes

        # An ad-hoc file is run by the daemon: it gets the content (recorded with its hash), not a path.
        path = Path(os.fsdecode(pipeline)).absolute()
        args |= {"source": read_pipeline_bytes(path).decode("utf-8", errors="surrogateescape"), "file": str(path)}
    elif isinstance(pipeline, str) and pipeline:
        args["pipeline"] = pipeline
    else:
        raise UsageError("is not a pipeline", field="pipeline", value=pipeline,
                         expected="a pipeline name or the path of a pipeline .toml file")
    return Call("trigger", args, lambda result, client: Queued.from_dict(result))


def _names_a_file(ref: str) -> bool:
    from ..pipelines.load import names_a_file  # the rule `edgeorch run REF` follows

    return names_a_file(ref)


def get_run(run: Any) -> Call[Run]:
    return Call("runs.show", {"run_id": run_id_of(run)}, Run.adopt)  # a decoded answer: no copy


def runs(pipeline: str | None, state: RunState | str | None, limit: int) -> Call[list[RunSummary]]:
    return Call("runs.list", _args(limit=limit, pipeline=pipeline, state=state),
                lambda result, client: [RunSummary.adopt(r, client) for r in result["runs"]])


def cancel(run: Any, reason: str | None) -> Call[dict[str, Any]]:
    return Call("cancel", {"run_id": run_id_of(run)} | _args(reason=reason), lambda result, client: result)


def retry(run: Any, current: bool = False) -> Call[list[str]]:
    return Call("retry", {"run_id": run_id_of(run), **({"current": True} if current else {})},
                lambda result, client: list(result["tasks"]))


def status() -> Call[dict[str, Any]]:
    return Call("status", {}, lambda result, client: result)


def pipelines() -> Call[list[dict[str, Any]]]:
    return Call("pipelines.list", {}, lambda result, client: result["pipelines"])


class LogNote(str):
    """A chunk of a followed log that is edgeorch's, not the task's (``==> attempt 2 of train (run 7) <==``, a task
    not started yet): a ``str`` like the others, told apart by its type (``edgeorch logs -f`` writes it to stderr
    when stdout takes the task's bytes)."""


def logs(run: Any, task: str, attempt: int | None, follow: bool) -> Call[str]:
    args = {"run_id": run_id_of(run)} | _args(task=task, attempt=attempt, follow=follow)
    return Call("logs", args, lambda item, client: LogNote(item["data"]) if item.get("note") else item["data"],
                bounded=not follow)


def events(run: Any | None, kinds: Iterable[str] | None = None) -> Call[dict[str, Any]]:
    args: dict[str, Any] = {} if run is None else {"run_id": run_id_of(run)}
    if kinds is not None:
        args["kinds"] = sorted(set(kinds))
    return Call("events", args, lambda item, client: item, bounded=False)


def follow(run: Any | None, on_event: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """The ``events`` stream's args for a caller waiting for ``run`` (None: one it is about to queue) to finish.

    Without ``on_event`` nothing but the run's own items is looked at (:class:`Follower` needs its end, and the
    overflow notice every stream gets), so only ``run`` items are asked for: a run of many short tasks then costs
    the daemon and the waiter no item per task. With ``on_event`` every item is sent, as it is shown.
    """
    return events(run, None if on_event is not None else ("run",)).args


# -- waiting --------------------------------------------------------------------------------------

Step = Literal["finished", "recheck"] | None


def wait_step(item: Any, run_id: int) -> Step:
    """What an ``events`` item means to a caller waiting for ``run_id`` to finish.

    ``"finished"``: the run ended (fetch it); ``"recheck"``: the daemon
    dropped events for this slow reader (``overflow``), so the end may have
    been among them: fetch the run and stop if it is over; None: go on.
    """
    if not isinstance(item, dict):
        return None
    if item.get("kind") == "overflow":
        return "recheck"
    if item.get("kind") == "run" and item.get("run_id") == run_id and run_state_finished(item.get("state")):
        return "finished"
    return None


def concerns(item: Any, run_id: int) -> bool:
    """Whether an item of an unfiltered ``events`` stream is one a stream for ``run_id`` would carry: that run's,
    and those of no run except pauses (docs/protocol.md, ``events``). :meth:`edgeorch.Client.run` subscribes before
    the run exists (so none of its events is missed) and filters with this."""
    if not isinstance(item, dict):
        return False
    return item.get("run_id", None) in (None, run_id) and item.get("kind") != "pipeline"


def past(deadline: float | None, item: Any = None) -> bool:
    """Whether a waiter with ``deadline`` (a :func:`time.monotonic` value; None: none) must give up now,
    having just read ``item``. Never right after the ``subscribed`` item: the daemon sends the end of a run
    that is already over just behind it, and a short wait for such a run must not fail."""
    if deadline is None or (isinstance(item, dict) and item.get("kind") == "subscribed"):
        return False
    return time.monotonic() >= deadline


def run_state_finished(state: Any) -> bool:
    try:
        return RunState(state).finished
    except ValueError:
        return False


class Follower:
    """What a caller waiting for ``run_id`` makes of each ``events`` item: the one rule of
    :meth:`edgeorch.Client.wait` and :meth:`edgeorch.AsyncClient.wait` (and their ``run``), without the I/O.

    :meth:`take` returns ``"skip"`` (another run's item on an ``unfiltered`` stream: not shown),
    ``"finished"``, ``"recheck"`` (fetch the run, stop if it is over) or None (go on); it calls
    ``on_event`` with each item it does not skip and raises :class:`WaitTimeout` once ``deadline`` has
    passed. :meth:`timed_out` and :meth:`ended_early` are the errors for a stream that timed out or ended.
    """

    def __init__(self, run_id: int, timeout: float | None, deadline: float | None,
                 on_event: Callable[[dict[str, Any]], None] | None, *, unfiltered: bool = False) -> None:
        self.run_id, self.timeout, self.deadline = run_id, timeout, deadline
        self.on_event, self.unfiltered = on_event, unfiltered
        self.last: str | None = None  # the run's latest state seen, for the timeout's message

    def take(self, item: Any) -> Literal["skip", "finished", "recheck"] | None:
        if self.unfiltered and not concerns(item, self.run_id):
            return "skip"
        if self.on_event is not None:
            self.on_event(item)
        self.last = seen_state(item, self.run_id, self.last)
        step = wait_step(item, self.run_id)
        if step is None and past(self.deadline, item):
            raise WaitTimeout(self.run_id, self.timeout, self.last)
        return step

    def timed_out(self, exc: BaseException) -> BaseException:
        """The error to raise for the stream's ``Timeout`` ``exc``: a :class:`WaitTimeout` once past the deadline."""
        return WaitTimeout(self.run_id, self.timeout, self.last) if past(self.deadline) else exc

    def ended_early(self) -> BaseException:
        return self.lost(P.ConnectionClosed(f"the daemon ended the events stream before run {self.run_id} finished"))

    def lost(self, exc: P.ConnectionClosed) -> P.ConnectionClosed:
        """``exc`` (the daemon went away during the wait) with the run's id as ``run_id`` and what to do as its
        hint: a notebook's ``client.run(...)`` raised it with no id, and a multi-hour run was started again."""
        exc.run_id = self.run_id  # type: ignore[attr-defined]
        exc.hint = exc.hint or (f"run {self.run_id} goes on when the daemon is back (its tasks keep running "
                                f"meanwhile): wait for it again (client.wait({self.run_id})), do not start it anew")
        return exc


def seen_state(item: Any, run_id: int, last: str | None) -> str | None:
    """The run's latest state a waiter has seen, after ``item`` (for the :class:`WaitTimeout` message)."""
    if isinstance(item, dict) and item.get("kind") == "run" and item.get("run_id") == run_id:
        return str(item.get("state"))
    return last
