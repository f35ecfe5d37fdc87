"""ModelService: promotions, rollbacks and canaries, wired to the store and the bus (the daemon's and an
in-process ``edgeorch run``'s).

- A registered version whose gates passed comes with a queued deployment
  (:mod:`.register`); :meth:`ModelService.on_event` runs it when the
  ``ModelRegistered`` event arrives (after the commit).
- :meth:`promote` and :meth:`rollback` are what ``edgeorch models promote``
  and ``rollback`` (and their socket ops) call: they record the intent, run
  it (one deployment of a model at a time) and return its final row.
- :meth:`auto_rollback` is the entry point of automatic responses: the
  monitoring rules (issue 13) call it with their rule's name, the
  deployment's own failed checks use the same path.
- Canaries: :meth:`observe` records what a scoring task or a serving process
  measured for each alias; when a canary's window is over (its batches, or
  its duration on a timer) :meth:`decide_canaries` compares the two and
  promotes the challenger or rolls it back, the comparison recorded as a
  decision. The decision, the canary's state and the follow-up deployment are
  one transaction, so a crash leaves either the window still open (decided
  again) or the deployment queued (run by recovery).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import ConflictError, UsageError
from ..tasksets import drain as drain_tasks
from ..tomlcheck import suggest
from ..events import Event, ModelObserved, ModelRegistered
from .canary import WON
from .deploy import Deployer, StepHook
from .rollback import rollback_targets_of
from .spec import ModelPolicy, alias_problem

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

log = logging.getLogger("edgeorch.models")

CANARY_TICK_S = 5.0
"""How often open canaries with a time window are looked at."""


class ModelService:
    """See the module docstring. ``serving_dir``: the default target folder (``<state dir>/serving``)."""

    def __init__(self, store: "Store", *, serving_dir: Path, publish: Callable[[Event], None],
                 clock: Callable[[], float], step_hook: StepHook | None = None) -> None:
        self.store = store
        self.clock = clock
        self.publish = publish
        self.deployer = Deployer(store, serving_dir=serving_dir, publish=publish, clock=clock, step_hook=step_hook)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> list[dict[str, Any]]:
        """Recovery: finish or undo interrupted deployments, repair the targets, run what is queued, decide
        canaries whose window ended while edgeorch was away; then the canary timer."""
        done = await self.deployer.settle()
        await self.decide_canaries()
        self._arm()
        return done

    def on_event(self, event: Event) -> None:
        """Bus subscriber: run the deployment a registration queued (after its commit)."""
        if isinstance(event, ModelRegistered) and event.deployment_id is not None and not self._closed:
            self._spawn(self.deployer.run(event.deployment_id))

    def start_in_background(self) -> None:
        """:meth:`start` as a task of this service (a daemon's start): its health checks and reloads, up to a
        deployment's window each, do not hold the daemon's READY (a window of minutes would pass systemd's start
        timeout: a restart loop); :meth:`close` cancels it where it is, and the next start goes on from there.
        Deployments asked for meanwhile wait for it (one at a time per model)."""
        self._spawn(self.start())

    async def drain(self) -> None:
        """Wait until every deployment started here has finished (an in-process run waits before it exits)."""
        await drain_tasks(self._tasks)

    async def close(self) -> None:
        """Stop: running deployments are cancelled where they are (their step is recorded; the next start
        finishes or undoes them)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("models: a deployment failed unexpectedly", exc_info=task.exception())

    # -- promote and roll back ------------------------------------------------------------------------

    async def promote(self, name: str, version: int, *, alias: str | None = None, actor: str | None,
                      reason: str | None = None, again: bool = False) -> dict[str, Any]:
        """Move ``alias`` (default: the model's promotion alias) to ``version`` through a deployment; returns its
        final row (``state``: succeeded, undone, rolled_back or failed, ``outcome`` says why). Refused before
        anything is recorded: a version that failed its gates (:class:`ConflictError`), promotions blocked by a rule
        (:class:`~edgeorch.models.blocks.PromotionBlocked`, a ConflictError naming the rule), an unknown alias.

        ``again``: deploy the version ``alias`` serves already anew (its slot checked against the registered
        sha256 and staged again when damaged, the switch, the reload and health commands): what a served file
        corrupted on disk, or a serving process restarted by hand, needs. Without it that is refused (nothing to
        do).

        Checked and recorded under the model's deployment lock, against the alias as it stands once the lock is
        taken: a promotion asked while another deployment of the model runs (two people, or scripts, promoting the
        same version at once) was checked against the alias before that one moved it, and redeployed the version
        the alias had reached meanwhile, recording a move from it to itself."""
        async with self.deployer.lock(name):
            dep = self._promotion(name, version, alias=alias, actor=actor, reason=reason, again=again)
            done = await self.deployer.run_locked(dep["id"])
        return await self._after_move(done)

    def _promotion(self, name: str, version: int, *, alias: str | None, actor: str | None, reason: str | None,
                   again: bool) -> dict[str, Any]:
        """:meth:`promote`'s checks and its recorded intent (``pending``); the caller holds the model's lock."""
        policy = self._policy(name)
        v = self.store.models.version(name, version)
        alias = policy.alias if alias is None else alias  # an empty one is refused, not taken for the default
        self._check_alias(alias, policy)
        held = self.store.models.aliases(name)
        if again and alias == "canary":
            raise UsageError("--again deploys anew what an alias serves; a canary is started or ended, not deployed "
                             "again", field="again", value=alias,
                             hint=f"`edgeorch models rollback {name} --alias canary` ends it")
        if held.get(alias) == version and not again:  # nothing to move: no deployment, no reload, no history
            raise ConflictError(f"{alias} of {name} is version {version} already", value=version,
                                hint=f"nothing to do; `edgeorch models promote {name} {version} --again` deploys it "
                                     "anew (its files checked and staged again, the reload and health commands)")
        if alias == "canary" and version in held.values():
            served = next(a for a, v_ in held.items() if v_ == version)
            raise ConflictError(f"{name} version {version} is {served} already: a canary of it would be compared "
                                "with itself", value=version, hint="a canary is a newer version than the one served")
        if alias == "canary" and policy.canary is None:  # the alias moved, and nothing ever judged or ended it
            raise ConflictError(f"{name} declares no canary: the canary alias would point at version {version} with "
                                "no traffic split, no window and nothing to decide it", field="alias", value=alias,
                                hint=f"declare [models.{name}.canary] (strategy = \"canary\") in its pipeline "
                                     f"file, or promote to {policy.alias}")
        from .blocks import check

        check(self.store, name, action="canary_start" if alias == "canary" else "promote")  # a rule's block
        if v["gate_verdict"] == "failed":
            decision = next((d for d in reversed(self.store.models.decisions(v["id"])) if d["kind"] == "gates"), None)
            raise ConflictError(f"{name} version {version} failed its gates and never moves an alias"
                                + (f": {decision['summary']}" if decision else ""), value=version,
                                hint=f"see edgeorch models why {name} {version}")
        strategy = policy.strategy if policy.strategy != "canary" or alias == "canary" else (
            "blue_green" if policy.deploy.health else "direct")
        if again and held.get(alias) == version:
            reason = reason or "deployed again (--again)"
        return self.store.models.add_deployment(
            name, alias=alias, to_version=version, action="canary_start" if alias == "canary" else "promote",
            strategy=strategy, target=policy.to_dict(), actor=actor, reason=reason)

    async def rollback(self, name: str, *, alias: str | None = None, to: int | None = None, actor: str | None,
                       reason: str | None = None) -> dict[str, Any]:
        """Move ``alias`` (default: the model's promotion alias, as :meth:`promote`'s) back: to ``to``, or to the
        previous version it pointed at that passed its gates and never failed a check. On ``canary``: abort the
        canary (the alias is removed). Returns the final row."""
        policy = self._policy(name)
        alias = policy.alias if alias is None else alias
        self._check_alias(alias, policy)
        current = self.store.models.aliases(name).get(alias)
        if alias == "canary" and to is None:
            return await self._end_canary(name, policy, actor=actor, reason=reason or "canary aborted",
                                          verdict=None)
        if to is None:
            to = self.previous(name, alias)
        else:
            v = self.store.models.version(name, to)
            if v["gate_verdict"] == "failed":
                raise ConflictError(f"{name} version {to} failed its gates and never moves an alias", value=to,
                                    hint=f"see edgeorch models why {name} {to}")
        if to == current:
            raise ConflictError(f"{alias} of {name} is version {to} already", value=to)
        dep = self.store.models.add_deployment(name, alias=alias, to_version=to, action="rollback", strategy="direct",
                                               target=policy.to_dict(), actor=actor, reason=reason)
        return await self._after_move(await self.deployer.run(dep["id"]))

    async def auto_rollback(self, name: str, *, alias: str = "champion", rule: str, reason: str,
                            from_version: int | None = None) -> dict[str, Any]:
        """The automatic rollback a response calls (a monitoring rule firing): recorded with actor ``rule:<rule>``.

        Returns the deployment's final row; raises like :meth:`rollback` (a
        model with nothing earlier to return to is a :class:`ConflictError`).
        ``from_version``: the version ``alias`` served when the rule fired. When it serves another one now (the
        response is redone after a restart and its first rollback was finished by recovery; or someone moved it
        meanwhile), nothing is rolled back: ``{"state": "skipped", "version": now, "reason": ...}``.
        """
        now = self.store.models.aliases(name).get(alias)
        if from_version is not None and now != from_version:
            return {"state": "skipped", "version": now,
                    "reason": f"{alias} of {name} serves version {now} now, not version {from_version} the rule fired "
                              "on: rolled back already (a restart redid this response), or moved meanwhile"}
        return await self.rollback(name, alias=alias, actor=f"rule:{rule}", reason=reason)

    def unblock(self, name: str, *, rule: str | None = None, actor: str | None,
                reason: str | None = None) -> list[dict[str, Any]]:
        """Lift the promotion blocks of ``name`` (only ``rule``'s when given), recorded with ``actor`` and
        ``reason``; returns the lifted blocks (empty: none was in force, nothing recorded). :class:`NotFoundError`
        for a model that does not exist (it said "nosuch: no promotion block in force", exit 0)."""
        self.store.models.require(name)
        return self.store.models.lift_blocks(name, rule=rule, by=actor, reason=reason or "unblocked by hand")

    async def _after_move(self, done: dict[str, Any]) -> dict[str, Any]:
        """After deployment ``done`` (a promotion or rollback, its final row; the model's lock released): an open
        canary whose champion it moved is ended at once (:meth:`decide_canaries`): its abort was seen at the next
        tick, seconds later, with ``weights.json`` still routing to the old champion meanwhile. Returns ``done``."""
        if done["state"] == "succeeded" and done["alias"] != "canary" and self.store.models.canary(done["model"]):
            await self.decide_canaries(done["model"])
        return done

    def previous(self, name: str, alias: str) -> int:
        """The version ``alias`` pointed at before its current one, newest first, that passed its gates, never
        failed a health check or a canary, and was never rolled back from (by hand, a rule or a failed check):
        two rollbacks walk back two versions, never back and forth between two. :class:`ConflictError` when there
        is none (``--to VERSION`` still names any version that passed its gates)."""
        found = rollback_targets_of(self.store, name, alias)
        if found:
            return found[0]
        raise ConflictError(f"{alias} of {name} has no earlier version that passed its gates to return to",
                            hint="name one: --to VERSION")

    def _policy(self, name: str) -> ModelPolicy:
        m = self.store.models.require(name)
        return ModelPolicy.from_dict(m["policy"]) if m.get("policy") else ModelPolicy(name=name)

    def _check_alias(self, alias: str, policy: ModelPolicy) -> None:
        problem = alias_problem(alias)
        if problem or alias not in policy.aliases:
            close = suggest(alias, list(policy.aliases))
            raise UsageError(problem or "is not an alias of this model", field="alias", value=alias,
                             expected=f"one of {', '.join(policy.aliases)}",
                             hint=f"did you mean {close!r}?" if close else "declare more in [models.NAME] aliases = [...]")

    # -- canaries -------------------------------------------------------------------------------------

    def observe(self, name: str, by_alias: Mapping[str, Mapping[str, float]], *, run_id: int | None = None,
                task: str | None = None, versions: Mapping[str, int] | None = None) -> int:
        """Record metrics observed for the versions the aliases point at now (``{"champion": {"rmse": 31}, ...}``),
        publish :class:`~edgeorch.events.ModelObserved` (monitoring rules over realized metrics), then decide a
        canary whose window is over. Returns how many values were recorded.

        ``versions``: the version each alias's values were measured on (``{"champion": 18}``). A scoring job's
        value that arrives after the alias moved (a rollback, a promotion) is then recorded for the version it
        measured, and judges nothing the alias serves now (no floor, no rule, no canary window): without it, a
        value of version 18 arriving after a floor rolled 18 back was taken for version 17's, and rolled 17 back
        too. A version the alias never pointed at is refused (a typo)."""
        import math

        from ..tomlcheck import suggest

        self.store.models.require(name)
        aliases = dict(self.store.models.aliases(name))
        stale: set[str] = set()
        for alias, version in (versions or {}).items():
            if alias not in by_alias:
                raise UsageError("names a version for an alias with no values", field=f"versions.{alias}",
                                 value=version, expected=f"one of the aliases observed: {', '.join(by_alias)}")
            if aliases.get(alias) != version:
                served = {h["to_version"] for h in self.store.models.alias_history(name, alias, limit=10_000)}
                if version not in served:
                    seen = sorted(x for x in served if x)
                    shown = ", ".join(str(v) for v in seen[-10:]) or "(none)"  # the latest: the list only grows
                    raise UsageError(f"{alias} of {name} never pointed at this version", field=f"versions.{alias}",
                                     value=version, expected=f"a version {alias} served: "
                                     + (f"{len(seen)} of them, the latest {shown}" if len(seen) > 10 else shown))
                aliases[alias] = version
                stale.add(alias)
        declared = self._policy(name).metrics  # none declared: any name (nothing reads them by a declared name)
        rows = []
        for alias, metrics in by_alias.items():
            if alias not in aliases:
                raise UsageError("no version has this alias", field="alias", value=alias,
                                 expected=f"one of {', '.join(sorted(aliases)) or '(none)'}")
            for metric, value in metrics.items():
                if declared and metric not in declared:  # a typo would be stored and silently read by nothing
                    close = suggest(metric, list(declared))
                    raise UsageError(f"is not a metric of model {name}", field=f"{alias}.{metric}", value=metric,
                                     expected=f"one of {', '.join(declared)} (its [models.{name}] metrics)",
                                     hint=f"did you mean {close!r}?" if close else None)
                number = None
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    try:
                        number = float(value)
                    except OverflowError:  # an integer no float holds
                        pass
                if number is None or not math.isfinite(number):  # NaN or infinity: no JSON, no comparison
                    raise UsageError("is not a finite number", field=f"{alias}.{metric}",
                                     value=value if isinstance(value, str) else repr(value), expected="a finite number")
                rows.append((aliases[alias], alias, metric, number))
        n = self.store.models.observe(name, rows, run_id=run_id, task=task)
        current = {a: dict(m) for a, m in by_alias.items() if a not in stale}
        if current:  # values of versions an alias has left judge nothing it serves now
            self.publish(ModelObserved(self.clock(), name, current, run_id=run_id))
        if not self._closed and current:
            self._spawn(self.decide_canaries(name))
            policy = self._policy(name)
            serve = policy.deploy.serve
            if policy.floors and serve in current:
                self._check_floors(name, policy, aliases[serve], current[serve])
        return n

    def _check_floors(self, name: str, policy: ModelPolicy, version: int, observed: Mapping[str, float]) -> None:
        """The floors over what was just observed for the served version; one failing is recorded as a ``floor``
        decision and rolls the served alias back (conditions naming a metric not in this observation wait)."""
        from .gates import GateInputs, evaluate_condition, parse_gate

        outcomes = [evaluate_condition(c, GateInputs(metrics=dict(observed)))
                    for floor in policy.floors for c in parse_gate(floor)
                    if all(r.name in observed for r in c.refs())]
        failed = [o for o in outcomes if o.verdict == "failed"]
        if not failed:
            return
        alias = policy.deploy.serve
        summary = f"{name} version {version} ({alias}) fell below its floor after deployment: {failed[0].why}"
        v = self.store.models.version(name, version)
        self.store.models.record_decision(v["id"], kind="floor", verdict="failed",
                                          conditions=[o.to_dict() for o in outcomes], summary=summary, alias=alias,
                                          actor="edgeorch")

        async def roll_back() -> None:
            try:
                await self.rollback(name, alias=alias, actor="edgeorch", reason=summary)
            except ConflictError as exc:  # nothing earlier to return to: recorded above, said here
                log.error("model %s: %s; cannot roll back: %s", name, summary, exc.message)

        self._spawn(roll_back())

    async def decide_canaries(self, only: str | None = None) -> list[dict[str, Any]]:
        """Decide every open canary whose window is over (``only``: of that model); returns the deployments run."""
        out = []
        for canary in self.store.models.open_canaries():
            if only is not None and canary["model"] != only:
                continue
            async with self.deployer.lock(canary["model"]):
                fresh = self.store.models.canary(canary["model"])
                if fresh is None or fresh["id"] != canary["id"]:
                    continue
                moved = self._against_moved(fresh)
                verdict = self._window_verdict(fresh) if moved is None else None
                if moved is None and verdict is None:
                    continue
            if moved is not None:
                out.append(await self._end_canary(fresh["model"], self._policy(fresh["model"]), actor="edgeorch",
                                                  reason=moved, verdict=None))
            else:
                assert verdict is not None
                out.append(await self._decide(fresh, *verdict))
        return out

    def _against_moved(self, c: dict[str, Any]) -> str | None:
        """Why canary ``c`` cannot be judged any more, or None: the alias it must beat (``champion``) serves another
        version than the one it was started against (a rollback or a promotion by hand meanwhile). Its
        evidence would be compared with a version no longer served: a better challenger lost to an old
        champion's missing values. Aborted at once, saying so."""
        alias = c["spec"].get("alias", "champion")
        now = self.store.models.aliases(c["model"]).get(alias)
        if c["against_version"] is None or now == c["against_version"]:
            return None
        served = f"version {now}" if now is not None else "no version"
        return (f"the canary of {c['model']} version {c['version']} was aborted: {alias} moved from version "
                f"{c['against_version']} to {served} while it ran, so its evidence would be compared with a "
                f"version no longer served (start it again: `edgeorch models promote {c['model']} {c['version']} "
                "--alias canary`)")

    def _window_verdict(self, c: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str] | None:
        """``(passed|failed, conditions, summary)`` when the window is over, else None. Pure over the rows."""
        from .canary import judge

        name, spec = c["model"], c["spec"]
        batches = self.store.models.observed_batches(name, c["version"], since=c["started_at"])
        elapsed = self.clock() - c["started_at"]
        over = ((c["window_batches"] is not None and batches >= c["window_batches"]) or
                (c["window_seconds"] is not None and elapsed >= c["window_seconds"]))
        if not over:
            return None
        mine = [o["value"] for o in self.store.models.observations(name, c["version"], spec["metric"],
                                                                   since=c["started_at"])]
        theirs = ([o["value"] for o in self.store.models.observations(name, c["against_version"], spec["metric"],
                                                                      since=c["started_at"])]
                  if c["against_version"] is not None else [])
        return judge(name, c["version"], c["against_version"], spec["metric"], spec["better"], spec["tolerance"],
                     mine, theirs, batches=batches, elapsed=elapsed)

    async def _decide(self, c: dict[str, Any], verdict: str, conditions: list[dict[str, Any]],
                      summary: str) -> dict[str, Any]:
        name = c["model"]
        policy = self._policy(name)
        v = self.store.models.version(name, c["version"])
        with self.store.transaction():
            self.store.models.record_decision(v["id"], kind="canary", verdict=verdict, conditions=conditions,
                                              summary=summary, alias=c["spec"].get("alias", "champion"),
                                              against=c["against_version"], actor="edgeorch")
            # Both follow-ups are queued here, durably: a crash after this commit finds them pending.
            deps = []
            if verdict == "passed":
                self.store.models.set_canary(c["id"], state="promoted", outcome=summary, actor="edgeorch")
                deps.append(self.store.models.add_deployment(
                    name, alias=c["spec"].get("alias", "champion"), to_version=c["version"], action="canary_promote",
                    strategy="blue_green" if policy.deploy.health else "direct", target=policy.to_dict(),
                    actor="edgeorch", reason=summary))
            else:
                self.store.models.set_canary(c["id"], state="rolled_back", outcome=summary, actor="edgeorch")
            deps.append(self.store.models.add_deployment(
                name, alias="canary", to_version=None, action="canary_end", strategy="direct",
                target=policy.to_dict(), actor="edgeorch",
                reason=WON if verdict == "passed" else summary))  # what became of the promotion: at the move
        results = [await self.deployer.run(d["id"]) for d in deps]
        return results[0]

    async def _end_canary(self, name: str, policy: ModelPolicy, *, actor: str | None, reason: str,
                          verdict: str | None) -> dict[str, Any]:
        with self.store.transaction():
            c = self.store.models.canary(name)
            if c is not None:
                self.store.models.set_canary(c["id"], state="aborted", outcome=reason, actor=actor)
            if "canary" not in self.store.models.aliases(name):
                raise ConflictError(f"{name} has no canary")
            dep = self.store.models.add_deployment(name, alias="canary", to_version=None, action="canary_end",
                                                   strategy="direct", target=policy.to_dict(), actor=actor,
                                                   reason=reason)
        return await self.deployer.run(dep["id"])

    def _arm(self) -> None:
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(CANARY_TICK_S, self._tick)

    def _tick(self) -> None:
        # Every open canary: one whose window counts batches is decided here too when its champion moved.
        if self.store.models.open_canaries():
            self._spawn(self.decide_canaries())
        self._arm()
