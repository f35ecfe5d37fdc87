"""The daemon's monitor: rules evaluated when runs end and on timers, firings recorded durably.

Runs on the daemon's event loop (the one-writer rule). :class:`Monitors`:

- ``sync`` reads the rules of the loaded pipelines (``[[on]]``) and of the rules
  folder (:mod:`.rulesdir`); a name used twice keeps the first (pipelines by
  name, then the folder's files) and reports the other. A rule
  seen for the first time starts its cursor at the newest run of the pipeline
  it reads: history before the rule existed is not evaluated.
- Run-based rules (result signals, ``failure_rate``) evaluate every finished run
  of their pipeline after their ``cursor``, in order, on ``RunFinished`` and at
  start (catch-up); a run that ends before an earlier one waits for it
  (``store.rules.runs_to_evaluate``), so none is skipped. Freshness rules evaluate every ``check_every`` seconds.
  Model rules (``model_metric``) evaluate on ``ModelObserved`` and
  ``ModelDeployment`` and at start, once per new fact (an observation or an
  alias move; its id is their cursor).
- An evaluation that fires records, in ONE transaction: the rule's new state and
  cursor, the firing row, a ``rule_fired`` event (and so an audit record, actor
  ``rule:<name>``), a pause or a promotion block, and the run of a trigger response (created
  by the front door, whose ``within`` carries the rest). A crash before that
  commit leaves the run unevaluated: the next start evaluates it again and fires
  once; after it, the cursor has moved: nothing fires twice.
- Responses that cannot be part of a transaction (a notify command, a model
  rollback, moving the input into quarantine) run after the commit; the firing is
  ``pending`` until they finish and is redone at start (at least once).
- A rule that resolves lifts the promotion blocks it set, in the resolve's
  transaction.
- ``dry_run``: the decision and its state are recorded as if real, each
  response as ``would``; nothing is done.

Time comes from the injected ``clock`` (Unix seconds).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..commandmarks import marked_value, stop_marked
from ..commandrun import run_command
from ..errors import EdgeorchError, NotFoundError
from ..tasksets import drain as drain_tasks
from ..textui import printable
from .rules import DAY, History, RuleState, evaluate
from .rulesdir import collect_rules, folder_digest
from .signals import model_signal, read, template_values
from .spec import RuleSpec, fill, lacking_input
from .views import value_text

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.requests import RunRequests
    from ..pipelines import PipelineRegistry
    from ..store.store import Store

log = logging.getLogger("edgeorch.monitor")

FAULT_ENV = "EDGEORCH_FAULT_RULE_FIRE"
"""Tests only: ``before_commit`` or ``after_commit`` kills the daemon (SIGKILL) at that point of a firing."""


class Monitors:
    """The rules of one daemon (see the module docstring)."""

    def __init__(self, *, store: Store, requests: RunRequests, registry: PipelineRegistry,
                 loop: asyncio.AbstractEventLoop,
                 quarantine_inputs: Callable[[int, str, dict[str, Any]], list[str]] | None = None,
                 models: Any = None,
                 rules_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 publish: Callable[[Any], None] | None = None) -> None:
        """``quarantine_inputs(run_id, reason, details)``: the drop folders' way to set a run's inputs aside
        (quarantine responses; None: no drop folders here); ``models``: the
        :class:`~edgeorch.models.service.ModelService` (rollback responses); ``rules_dir``: the rules folder
        (``[monitor] rules_dir``; None: none); ``clock``: Unix seconds; ``publish``: the bus's (each ``rule_*``
        event row, once committed, as a :class:`~edgeorch.events.RuleEvent` on the ``events`` stream)."""
        self.store = store
        self.requests = requests
        self.registry = registry
        self.loop = loop
        self.quarantine_inputs = quarantine_inputs
        self.models = models
        self.rules_dir = rules_dir
        self.clock = clock
        self.publish = publish
        self.started_at = clock()
        self.rules: dict[str, RuleSpec] = {}
        self.problems: list[str] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False  # stop() began: no new evaluation (the next start catches up)
        self._synced = False  # the first sync (the start) is done: a rule that appears later is new
        self._fault = os.environ.get(FAULT_ENV)
        self._folder_digest = ""

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Sync the rules, redo unfinished responses, evaluate what ended while the daemon was away, arm timers."""
        self.sync()
        for firing in self.store.rules.pending():
            spec = self.rules.get(firing["rule"])
            left = stop_marked(NOTIFY_MARK, self._mark(firing["id"]))
            if left:  # a notify of the killed daemon ran on: it would run beside the one redone now
                log.warning("rule %s: stopped %d process(es) of its notify command left running when edgeorch "
                            "stopped (pids %s)", firing["rule"], len(left), ", ".join(map(str, left)))
            self._after_commit(firing["id"], spec, firing["signal"], firing["responses"])
        self.catch_up()

    def _mark(self, firing_id: int) -> str:
        """The mark of firing ``firing_id``'s notify commands (:data:`NOTIFY_MARK`)."""
        return marked_value(firing_id, self.store.db.path)

    async def stop(self) -> None:
        """Evaluate nothing more, then wait for the responses under way (a notify, a rollback) and record them.

        A clean stop cancelled the task that records a response while the notify's thread ran on to its end (the
        loop's executor waits for it): the firing stayed ``pending`` and the next start ran the notify again, a
        second page after every `systemctl restart`. Responses are bounded by their timeouts; a stop that takes
        longer than the service manager allows ends as a kill does (the firing is redone once, as documented)."""
        self._stopping = True
        self._cancel_timers()
        await self.drain()

    def _cancel_timers(self) -> None:
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()

    def reload(self) -> None:
        self.sync()
        self.catch_up()

    def rules_folder_changed(self) -> bool:
        """Whether a file of the rules folder was added, removed or changed in content since the last sync."""
        return folder_digest(self.rules_dir) != self._folder_digest

    def sync(self) -> None:
        """Read the rules of the loaded pipelines and of the rules folder; (re)arm the freshness timers. A bad
        rules file is a problem (shown by ``edgeorch monitors``, logged) and its bad rules are skipped."""
        self._folder_digest = folder_digest(self.rules_dir)
        rules, problems = collect_rules(self.registry.pipelines, self.rules_dir)
        for p in problems:
            log.warning("%s", p)
        for name, spec in rules.items():
            # Back while this daemon runs (its file was removed, then put back): as a new rule. Its old cursor made
            # it evaluate every run since it went, in one burst (ten pages at once, each about a batch long gone).
            back = self._synced and name not in self.rules
            if (back or self.store.rules.get(name) is None) and not spec.timed:
                # History before the rule existed is not evaluated: the cursor starts at the newest run (or, for
                # a model's metric, at the newest observation or alias move).
                cursor = (model_signal(self.store, spec)["mark"] if spec.on_model
                          else self.store.rules.newest_run_id(spec.watched))
                self.store.rules.save(name, spec.pipeline, asdict(RuleState()), cursor=cursor)
        self.rules, self.problems = rules, problems
        self._synced = True
        self._cancel_timers()
        for spec in rules.values():
            if spec.timed:
                self._arm(spec)

    def on_run_finished(self, event: Any) -> None:
        """Bus subscriber (``RunFinished``): evaluate the run-based rules of that run's pipeline (not while
        stopping: the next start evaluates the runs after each rule's cursor)."""
        if self._stopping:
            return
        pipeline = getattr(event, "pipeline", None)
        if any(s.on_runs and s.watched == pipeline for s in self.rules.values()):
            self.catch_up(pipeline)

    def on_model_event(self, event: Any) -> None:
        """Bus subscriber (``ModelObserved``, ``ModelDeployment``): evaluate the model_metric rules of that model."""
        if self._stopping:
            return
        self.catch_up_models(getattr(event, "model", None))

    def catch_up(self, pipeline: str | None = None) -> None:
        """Evaluate every finished run after each run-based rule's cursor, oldest first (and, for every pipeline,
        each model rule's newest fact after its cursor)."""
        for spec in list(self.rules.values()):
            if not spec.on_runs or (pipeline is not None and spec.watched != pipeline):
                continue
            row = self.store.rules.get(spec.name)
            for run in self.store.rules.runs_to_evaluate(spec.watched, row["cursor"] if row else 0):
                self.evaluate(spec, run)
        if pipeline is None:
            self.catch_up_models()

    def catch_up_models(self, model: str | None = None) -> None:
        """Evaluate each model_metric rule (of ``model``) whose signal has a fact newer than its cursor: a new
        observation (realized) or alias move (registered); the same fact is never evaluated twice."""
        for spec in list(self.rules.values()):
            if not spec.on_model or (model is not None and spec.model != model):
                continue
            row = self.store.rules.get(spec.name)
            mark = model_signal(self.store, spec)["mark"]
            if mark is not None and mark > (row["cursor"] if row else 0):
                self.evaluate(spec)

    # -- evaluation --------------------------------------------------------------------------------

    def evaluate(self, spec: RuleSpec, run: dict[str, Any] | None = None) -> str:
        """One evaluation (of ``run`` for a run-based rule); records what changed; returns the action."""
        store, now = self.store, self.clock()
        row = store.rules.get(spec.name)
        old = RuleState.from_row(row)
        doc = read(store, spec, run=run, now=now, since=self.started_at)
        values = template_values(doc)
        key = fill(spec.dedupe, values) if spec.dedupe else None
        fired, keys = store.rules.history(spec.name, now - DAY, dry_run=spec.dry_run)
        last = store.rules.firings(spec.name, limit=1) if old.state == "firing" else []
        this = last[0] if last and last[0].get("episode") == old.episode else None
        episode_dry = bool(this["dry_run"]) if this is not None else None
        failed = _failure_of(this) if this is not None and this.get("state") == "failed" else None
        moved = doc.get("moved_at") if spec.on_model else None  # a new version at the alias: a new episode
        d = evaluate(spec, old, doc.get("value"), now, key=key, history=History(fired, keys, episode_dry, failed),
                     subject_since=moved,
                     subject=f"{spec.model}@{spec.alias} (now version {doc.get('version')})")
        # The cursor: the newest run (run-based) or model fact (observation, alias move) evaluated.
        cursor = run["id"] if run is not None else doc.get("mark") if spec.on_model else None
        source_run = doc.get("run_id")  # the run the signal came from (a model's: the observed batch's, if any)
        actor = f"rule:{spec.name}"
        if lacking := lacking_input(spec, values):
            # Its responses need the dropped file this run had none of (a manual run of the watched pipeline):
            # whatever the run says, nothing is done and the rule's state (its episode, its cooldown) stays as it
            # was; the event says why. Only a fire was kept from it: a clean run by hand resolved the episode that
            # held retraining back, and a drifted one spent the cooldown.
            if d.action == "none":
                store.rules.save(spec.name, spec.pipeline, asdict(old), signal=doc, cursor=cursor)
                return "none"
            would = "fire" if d.action == "fire" else f"{d.action} ({d.reason})"
            said = (f"rule {spec.name}: skipped: its responses use {', '.join('{' + n + '}' for n in lacking)}, and "
                    f"run {source_run} was not started by a dropped file (value {value_text(doc.get('value'))}, "
                    f"{spec.describe()}); it would {would}: nothing is done, its state and cooldown stay as they were")
            with store.transaction():
                store.rules.save(spec.name, spec.pipeline, asdict(old), signal=doc, cursor=cursor)
                store.events.add("rule_skipped", said, run_id=source_run, actor=actor, ts=now,
                                 data={"rule": spec.name, "pipeline": spec.pipeline, "action": "skipped",
                                       "reason": said, "value": doc.get("value"), "source_run": source_run})
            self._announce(spec.name, "skipped", said, spec.pipeline, doc.get("value"), source_run)
            log.info("%s", said)
            return "skipped"
        if d.action == "fire":
            self._fire(spec, d.state, doc, values, key, cursor, d.reason)
            return d.action
        data = {"rule": spec.name, "pipeline": spec.pipeline, "action": d.action, "state": d.state.state,
                "reason": d.reason, "value": doc.get("value"), "threshold": doc.get("threshold"),
                "episode": d.state.episode, "source_run": source_run}
        with store.transaction():
            store.rules.save(spec.name, spec.pipeline, asdict(d.state), signal=doc, cursor=cursor)
            if d.action == "resolve" and any(r.action == "block_promotions" for r in spec.responses):
                # The episode is over: the promotions it blocked may move again (same transaction as the resolve).
                store.models.lift_blocks(rule=spec.name, by=actor, reason=f"rule {spec.name} resolved: {d.reason} "
                                         f"(value {value_text(doc.get('value'))})")
            # Run- and model-based: every evaluation that says something is recorded with the run it read (why a
            # second drifted batch started nothing); timed: only changes (a freshness check every minute stays quiet).
            if d.changed or ((run is not None or spec.on_model) and d.action not in ("none",)):
                said = (f"rule {spec.name}: {d.action}: {d.reason} (value {value_text(doc.get('value'))}, "
                        f"{spec.describe()})")
                store.events.add(f"rule_{d.action}", said, run_id=source_run, actor=actor, data=data, ts=now)
                self._announce(spec.name, d.action, said, spec.pipeline, doc.get("value"), source_run)
            if d.action == "deduped" or (d.action == "held" and d.changed):
                store.rules.add_firing(rule=spec.name, pipeline=spec.pipeline, episode=d.state.episode, fired_at=now,
                                       outcome=d.action, dry_run=spec.dry_run, dedupe_key=key, value=doc.get("value"),
                                       threshold=doc.get("threshold"), signal=doc, run_id=None, state="done",
                                       responses=[{"action": r.action, "skipped": d.reason} for r in spec.responses])
        if d.changed:
            log.info("rule %s: %s (%s)", spec.name, d.action, d.reason)
        return d.action

    def _fire(self, spec: RuleSpec, new: RuleState, doc: dict[str, Any], values: dict[str, Any], key: str | None,
              cursor: int | None, why: str) -> None:
        store, now, actor = self.store, self.clock(), f"rule:{spec.name}"
        planned = [self._plan(spec, r, values) for r in spec.responses]
        later = [p for p in planned if p["action"] in ("notify", "rollback", "quarantine") and not spec.dry_run]
        trigger = next((p for p in planned if p["action"] == "trigger"), None)
        holder: dict[str, int] = {}

        def record(run_id: int | None) -> None:  # inside the transaction that creates the run (or its own)
            if trigger is not None and run_id is not None:
                trigger["run_id"] = run_id
            for p in planned:
                if p["action"] == "pause" and not spec.dry_run:
                    if p["target"] not in self.registry.pipelines:
                        # Refused as a trigger of an unknown pipeline is: "paused" was said done, and a pause
                        # recorded for a name no pipeline had caught a pipeline of that name added weeks later.
                        p["refused"] = f"no pipeline named {p['target']!r} is loaded: nothing paused"
                        continue
                    store.pipelines.set_paused(p["target"], True, reason=f"rule {spec.name}: {why}", actor=actor)
                    p["done"] = True
                elif p["action"] == "block_promotions" and not spec.dry_run:
                    block = store.models.block(
                        p["target"], rule=spec.name, actor=actor,
                        reason=f"{spec.describe()}, value {value_text(doc.get('value'))}",
                        until=None if p.get("until") is None else now + p["until"])
                    p.update(done=True, block=block["id"])
            store.rules.save(spec.name, spec.pipeline, asdict(new), signal=doc, cursor=cursor)
            holder["id"] = store.rules.add_firing(
                rule=spec.name, pipeline=spec.pipeline, episode=new.episode, fired_at=now, outcome="fire",
                dry_run=spec.dry_run, dedupe_key=key, value=doc.get("value"), threshold=doc.get("threshold"),
                signal=doc, responses=planned, run_id=run_id,
                # A refused trigger (an unknown or paused pipeline) or pause is a response that failed, said as one.
                state="pending" if later else "failed" if any(p.get("refused") for p in planned) else "done")
            what = ", ".join(_describe(p) for p in planned)
            said = (f"rule {spec.name} fired{' (dry run)' if spec.dry_run else ''}: {spec.describe()}, value "
                    f"{value_text(doc.get('value'))}; {what}")
            self._announce(spec.name, "fire", said, spec.pipeline, doc.get("value"), run_id)
            store.events.add("rule_fired", said,
                             run_id=run_id, actor=actor, ts=now,
                             data={"rule": spec.name, "pipeline": spec.pipeline, "value": doc.get("value"),
                                   "threshold": doc.get("threshold"), "episode": new.episode,
                                   "source_run": doc.get("run_id"),
                                   "dry_run": spec.dry_run, "firing": holder["id"], "responses": planned})
            if self._fault == "before_commit":
                os.kill(os.getpid(), signal.SIGKILL)  # tests: the decision is made, nothing is committed

        if trigger is not None and not spec.dry_run:
            from ..engine.requests import RunRequest  # at call time: the engine package imports the pipelines

            try:
                self.requests.start(RunRequest(trigger["target"], trigger["params"], trigger="rule", actor=actor,
                                               source=f"rule {spec.name}", within=record))
            except EdgeorchError as exc:  # refused (paused, unknown pipeline, bad params): recorded, never retried
                trigger["refused"] = exc.one_line()  # a record, a table cell and a log line: no line break
                with store.transaction():
                    record(None)
        else:
            with store.transaction():
                record(None)
        if self._fault == "after_commit":
            os.kill(os.getpid(), signal.SIGKILL)
        log.info("rule %s fired: %s", spec.name, ", ".join(_describe(p) for p in planned))
        if later:
            self._after_commit(holder["id"], spec, doc, planned)

    def _plan(self, spec: RuleSpec, r: Any, values: dict[str, Any]) -> dict[str, Any]:
        p: dict[str, Any] = r.to_dict()
        if r.action == "trigger":
            p["params"] = {k: fill(v, values) for k, v in r.params}
        elif r.action == "notify":
            p["argv"] = [fill(a, values) for a in r.argv]
        elif r.action == "rollback" and self.store.models.model(r.target) is not None:
            # What it rolls back from, recorded with the firing: redone after a restart (responses run at least
            # once), it must not roll back again from the version the first rollback left (two versions back).
            p["from_version"] = self.store.models.aliases(r.target).get(r.alias)
        if spec.dry_run:
            p["dry_run"] = True
        return p

    # -- after the commit --------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until every response started here has finished, those they started included."""
        await drain_tasks(self._tasks)

    def _after_commit(self, firing_id: int, spec: RuleSpec | None, doc: dict[str, Any],
                      planned: list[dict[str, Any]]) -> None:
        task = self.loop.create_task(self._respond(firing_id, spec, doc, planned))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, firing_id: int, spec: RuleSpec | None, doc: dict[str, Any],
                       planned: list[dict[str, Any]]) -> None:
        name = doc.get("rule", "?")
        ok = not any(p.get("refused") for p in planned)  # a trigger refused at the firing failed already
        for p in planned:
            if p["action"] not in ("notify", "rollback", "quarantine") or p.get("done") or p.get("dry_run"):
                continue
            try:
                if p["action"] == "notify":
                    p.update(await asyncio.to_thread(_notify, p["argv"], doc, p.get("timeout", 30.0),
                                                     {NOTIFY_MARK: self._mark(firing_id)}))
                    ok = ok and p["exit_code"] == 0
                    if p["exit_code"] != 0:  # in the journal, where a pager failing for weeks is looked for
                        last = (p.get("output") or "").strip().splitlines()[-1:]
                        log.warning("rule %s: notify %s failed: %s", name, printable(" ".join(p["argv"]))[:120],
                                    p.get("error") or f"exited with code {p['exit_code']}"
                                    + (f": {printable(last[0])[:200]}" if last else ""))
                elif p["action"] == "rollback":
                    if self.models is None:
                        raise NotFoundError("no model service in this process")
                    row = await self.models.auto_rollback(p["target"], alias=p.get("alias", "champion"), rule=name,
                                                          reason=f"rule {name}: {doc.get('condition')}, value "
                                                                 f"{value_text(doc.get('value'))}",
                                                          from_version=p.get("from_version"))
                    p["result"] = ({k: row.get(k) for k in ("id", "state", "version", "reason") if row.get(k) is not None}
                                   if isinstance(row, dict) else None)
                else:
                    p.update(self._quarantine(doc, name))
                p["done"] = True
            except (EdgeorchError, OSError) as exc:
                ok = False
                p["error"] = exc.one_line() if isinstance(exc, EdgeorchError) else str(exc)
                log.warning("rule %s: %s response failed: %s", name, p["action"], p["error"])
        self.store.rules.set_firing(firing_id, state="done" if ok else "failed", responses=planned)
        said = f"rule {name}: responses {'done' if ok else 'failed'}: " + ", ".join(_describe(p) for p in planned)
        self.store.events.add("rule_responded", said, actor=f"rule:{name}",
                              data={"rule": name, "firing": firing_id, "responses": planned, "ok": ok})
        self._announce(name, "responded", said, spec.pipeline if spec is not None else None, doc.get("value"),
                       doc.get("run_id"))

    def _announce(self, rule: str, action: str, message: str, pipeline: str | None, value: Any,
                  run_id: Any) -> None:
        """Publish a ``rule_<action>`` row on the bus (``edgeorch events --kind rule``) once its transaction has
        committed (at once outside one; never if it rolls back)."""
        if self.publish is None:
            return
        from ..events import RuleEvent

        event = RuleEvent(self.clock(), rule, action, message, pipeline,
                          float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
                          run_id if isinstance(run_id, int) else None)
        self.store.after_commit(functools.partial(self.publish, event))

    def _quarantine(self, doc: dict[str, Any], name: str) -> dict[str, Any]:
        """Set the signal run's drop-folder inputs aside: moved into quarantine with a reason file, their
        rows ``quarantined`` (``edgeorch inputs``; ``requeue`` and ``retry`` work on them as on any other)."""
        run_id = doc.get("run_id")
        if not doc.get("input_path") or not isinstance(run_id, int):
            return {"skipped": "the signal's run was not started by a drop-folder file"}
        if self.quarantine_inputs is None:
            return {"skipped": "no drop folders are watched in this process"}
        moved = self.quarantine_inputs(run_id, f"rule {name}: {doc.get('condition')}",
                                       {"rule": name, "value": doc.get("value")})
        if not moved:
            return {"skipped": f"run {run_id}'s input is not there any more (already quarantined or removed)"}
        return {"quarantined": moved[0] if len(moved) == 1 else moved}

    # -- timers ------------------------------------------------------------------------------------

    def _arm(self, spec: RuleSpec) -> None:
        assert spec.check_every is not None
        self._timers[spec.name] = self.loop.call_later(spec.check_every, self._tick, spec.name)

    def _tick(self, name: str) -> None:
        spec = self.rules.get(name)
        if spec is None:
            return
        try:
            self.evaluate(spec)
        except EdgeorchError as exc:
            log.warning("rule %s: evaluation failed: %s", name, exc.one_line())
        self._arm(spec)

    # -- operator requests -------------------------------------------------------------------------

    def silence(self, rule: str, until: float | None, *, reason: str | None, actor: str | None) -> dict[str, Any]:
        """Silence a loaded rule until ``until`` (None: lift it); recorded with its event and audit record.

        A model rule held back while silenced (``cooling``) is evaluated at once when the silence is lifted: its
        condition still holding, it is answered now, not at the next observation (a degraded champion stayed
        served, unblocked, until another value came in)."""
        spec = self.rules.get(rule)
        if spec is None:
            raise NotFoundError("no such rule", value=rule, hint="`edgeorch monitors` lists the rules")
        before = self.store.rules.get(rule) or {}
        was_silenced = before.get("silenced_until") is not None and before["silenced_until"] > self.clock()
        if until is None and not was_silenced:  # nothing to lift: said so, and no event or audit record of a no-op
            return {**before, "was_silenced": False}
        self.store.rules.silence(rule, spec.pipeline, until, reason=reason, actor=actor)
        row = self.store.rules.get(rule) or {}
        if until is None and spec.on_model and row.get("state") == "cooling":
            try:
                self.evaluate(spec)
            except EdgeorchError as exc:
                log.warning("rule %s: evaluation after its silence was lifted failed: %s", rule, exc.one_line())
            row = self.store.rules.get(rule) or {}
        return {**row, "was_silenced": was_silenced}


NOTIFY_MARK = "EDGEORCH_RULE_FIRING"
"""The variable marking a notify command (``<firing id>@<state file>``): what a killed daemon's notify left
running is stopped before the response is redone (:mod:`edgeorch.commandmarks`)."""


NOTIFY_OUTPUT = 2000
"""The characters of a notify command's output kept in the firing's record (its last ones)."""
NOTIFY_DRAIN_S = 0.5
"""How long a notify command's output is read after its end and the kill of what it left."""


def _notify(argv: list[str], doc: dict[str, Any], timeout: float, env: dict[str, str]) -> dict[str, Any]:
    """Run a notify command (own session; the signal as JSON on stdin; ``env`` added to the daemon's, its mark
    included). In a worker thread: it runs its own event loop there (:func:`asyncio.run`).

    The runner is :func:`edgeorch.commandrun.run_command`, a deployment's commands' too: its verdict is its exit
    status within ``timeout``, not the end of its output (a child it left holding the pipe, ``(setsid pager &)``,
    kept the response waiting for the child's lifetime); at its exit (or timeout) what it left running is killed
    (its group, every process carrying its mark :data:`NOTIFY_MARK`); its output is read through a buffer of its
    last bytes (a chatty command does not grow the daemon), for at most :data:`NOTIFY_DRAIN_S` after that. A
    command that does not read its stdin, or exits before it has, is not an error.

    The record: ``{"exit_code", "output"}`` (its last :data:`NOTIFY_OUTPUT` characters) when it exited in time;
    ``{"exit_code": None, "error": ...}`` when it could not be started or timed out."""
    data = json.dumps(doc, sort_keys=True, default=str).encode()
    result = asyncio.run(run_command(argv, timeout=timeout, env=env, stdin=data, mark_variable=NOTIFY_MARK,
                                     output_chars=NOTIFY_OUTPUT, drain_s=NOTIFY_DRAIN_S))
    if result.start_error is not None:
        return {"exit_code": None, "error": f"cannot run {argv[0]}: {result.start_error}"}
    if result.timed_out:
        return {"exit_code": None, "error": f"timed out after {timeout:g}s (its process group was killed)"}
    return {"exit_code": result.exit_code, "output": result.output}


def _failure_of(firing: dict[str, Any]) -> str:
    """The first failed response of a failed firing, as its description says it (a refused trigger, a notify's
    exit), cut to one line."""
    failed = [p for p in firing.get("responses") or [] if p.get("refused") or p.get("error")
              or (p.get("action") == "notify" and p.get("exit_code") not in (0, None))]
    said = _describe(failed[0]) if failed else "see `edgeorch monitors`"
    if failed and failed[0].get("action") == "notify" and failed[0].get("exit_code") not in (0, None):
        said = f"{said} exited with code {failed[0]['exit_code']}"
    return said.splitlines()[0][:200]


def _describe(p: dict[str, Any]) -> str:
    a = p["action"]
    what = {"trigger": f"trigger {p.get('target')}" + (f" (run {p['run_id']})" if p.get("run_id") else ""),
            "pause": f"pause {p.get('target')}", "rollback": f"roll back {p.get('target')} {p.get('alias')}",
            "block_promotions": f"block promotions of {p.get('target')}",
            "notify": f"notify {' '.join(p.get('argv', []))[:60]}", "quarantine": "quarantine the input"}[a]
    if p.get("dry_run"):
        return f"would {what}"
    if p.get("refused"):
        return f"{what} refused: {p['refused']}"
    if p.get("error"):
        return f"{what} failed: {p['error']}"
    if (p.get("result") or {}).get("state") == "skipped":
        return f"{what}: not needed, {p['result'].get('reason')}"
    return what



