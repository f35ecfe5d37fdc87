"""Running a deployment: the durable intent, step by step, and what recovery does with a half-done one.

A deployment (a ``model_deployments`` row, written ``pending`` before anything
on disk changes) moves one alias of one model to a version (or removes it).
:class:`Deployer` runs it; every step is recorded (one transaction and an
audit record) before the next begins:

====================  ==============================================================================
step                  what has happened
====================  ==============================================================================
``intent``            nothing yet (``pending``)
``staging``           ``running``: the version is being copied into its slot
``staged``            the slot is complete (a blue-green check may run against it)
``checked``           blue-green: the health command passed against the slot, within the window
``switched``          the alias moved in the state file (same transaction as this step)
``linked``            the target's pointer was switched on disk (not recorded: the next step is)
``reloaded``          the reload command passed (recorded only when there is one)
``verified``          the health command passed (recorded only when there is one); then ``succeeded``
``rolling_back``      a check after the switch failed: the alias moved back in the state file
====================  ==============================================================================

Failures: before the switch (staging, or the blue-green check) the
deployment is ``undone`` (nothing was switched; the decision is recorded);
after it (reload or health) it is rolled back: the alias returns to the
version it pointed at before (the previous one, which passed its gates to
get there), the target is switched back and the serving process reloaded:
``rolled_back``. A rollback's own failure is ``failed`` (there is nothing
further back to go to automatically).

**Recovery** (:meth:`Deployer.settle`, at daemon start and after every
in-process run): a ``running`` deployment stopped before ``switched`` is
undone; one at ``switched`` or later is finished (the reload and the health
check it has not recorded as passed; rolled back if they fail); one at
``rolling_back`` finishes its rollback.
Then every target's pointers are made to agree with the state file's
aliases (the state file is the truth: the only window where they differ is
between the ``switched`` commit and the rename), and ``pending`` ones run in
order. So a kill -9 at any step leaves, after recovery, the alias and the
target consistent, and the switch finished or undone.

A forward move (promote, canary start or promotion) of a model whose
promotions are blocked (:mod:`.blocks`) is undone before its first step.

Deployments of one model run one at a time (an asyncio lock per model here,
a unique index in the state file); different models' run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConflictError
from ..events import Event, ModelDeployment
from .canary import WON, end_reason
from .commands import MARK_VARIABLE, CommandResult, command_mark, health_within, run_command, stop_left_commands
from .spec import ModelPolicy
from .targets import StagingError, Target, make_target

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

log = logging.getLogger("edgeorch.models")

BEFORE_SWITCH = ("intent", "staging", "staged", "checked")
SUPERSEDED = "this rollback was decided against"
"""How the outcome of a rollback that another deployment made needless ends (its alias had moved already): no
retry is offered for it (`models why` said "promote ... tries again")."""
STOPPED = "edgeorch stopped"
"""Why :meth:`Deployer._recover` recovers a deployment at a start (the other reason: a step that failed)."""


def decided_by_edgeorch(dep: dict[str, Any]) -> bool:
    """Whether edgeorch itself asked for deployment ``dep`` (a canary's verdict, a floor, a monitoring rule, a
    version that passed its gates), not a person: no one would ask again for one undone by a restart."""
    actor = str(dep.get("actor") or "")
    return actor == "edgeorch" or actor.startswith(("rule:", "pipeline:"))
StepHook = Callable[[int, str], None]
"""Called as ``hook(deployment_id, step)`` after each step is recorded (and ``linked`` after the rename):
tests kill the process there."""


class Deployer:
    """Runs deployments against ``store`` (the loop's, one writer); ``serving_dir`` is the default target folder."""

    def __init__(self, store: "Store", *, serving_dir: Path, publish: Callable[[Event], None],
                 clock: Callable[[], float], step_hook: StepHook | None = None) -> None:
        self.store = store
        self.serving_dir = Path(serving_dir)
        self.publish = publish
        self.clock = clock
        self.step_hook = step_hook
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, model: str) -> asyncio.Lock:
        return self._locks.setdefault(model, asyncio.Lock())

    def target(self, model: str, policy: ModelPolicy | None = None) -> Target:
        """The model's target as its (latest, or given) policy declares it."""
        if policy is None:
            stored = (self.store.models.model(model) or {}).get("policy")
            policy = ModelPolicy.from_dict(stored) if stored else ModelPolicy(name=model)
        dep = policy.deploy
        return make_target(dep.kind, serving_dir=Path(dep.dir) if dep.dir else self.serving_dir, model=model,
                           serve=dep.serve, config=dep.config)

    # -- running ------------------------------------------------------------------------------------

    async def run(self, deployment_id: int) -> dict[str, Any]:
        """Run (or finish) one deployment; returns its final row. Serialised per model."""
        dep = self.store.models.deployment(deployment_id)
        async with self.lock(dep["model"]):
            return await self.run_locked(deployment_id)

    async def run_locked(self, deployment_id: int) -> dict[str, Any]:
        """:meth:`run` for a caller that holds the model's :meth:`lock` (a promotion checks the alias and records its
        intent under it: :meth:`.service.ModelService.promote`)."""
        dep = self.store.models.deployment(deployment_id)
        if dep["state"] == "running":
            return await self._recover(dep)
        if dep["state"] != "pending":
            return dep
        serves = self.store.models.aliases(dep["model"]).get(dep["alias"])
        if dep["action"] == "rollback" and serves != dep["from_version"]:
            # Decided against the version the alias served then; it serves another now (an earlier deployment
            # moved it: a rollback redone after a restart, then a rule's response asking again). Rolled back
            # a second time, it went two versions back.
            return self._finish(dep, "undone", f"not started: {dep['alias']} serves {_v(serves)} now, not "
                                f"{_v(dep['from_version'])} {SUPERSEDED}")
        refused = self._blocked(dep) or self._canary_open(dep)
        if refused is not None:
            return refused
        self._hook(deployment_id, "intent")
        try:
            return await self._run(dep)
        except Exception as exc:
            now = self.store.models.deployment(deployment_id)
            if now["state"] == "pending" and isinstance(exc, ConflictError):
                # Another deployment of the model holds the state file's "one running" index (not one of
                # this process's: they hold the model's lock). Said to the caller, and recorded as not started:
                # a refused request must not stay queued to run at the next start.
                self._finish(now, "undone", f"not started: {exc.message}; {dep['alias']} stays on "
                             f"{_v(now['from_version'])}")
                raise
            if now["state"] != "running":
                raise
            # A step that failed unexpectedly (a bug, or a rule it broke) must not leave the deployment
            # ``running``: that refuses every later deployment of the model, automatic rollbacks included,
            # until a restart. What a restart would do is done now: undone before the switch, finished or
            # rolled back after it.
            log.exception("model %s: deployment %s failed unexpectedly; recovering it now", dep["model"],
                          deployment_id)
            return await self._recover(now, why="a step failed unexpectedly: the daemon's log has the error")

    def _blocked(self, dep: dict[str, Any]) -> dict[str, Any] | None:
        """A forward move of a model whose promotions are blocked (:mod:`.blocks`): the deployment is undone before
        it starts, the version gets a ``block`` decision; None when it may go on."""
        from .blocks import PromotionBlocked, check

        try:
            check(self.store, dep["model"], action=dep["action"])
        except PromotionBlocked as exc:
            why = exc.message
            if dep["to_version"] is not None:
                v = self.store.models.version(dep["model"], dep["to_version"])
                self.store.models.record_decision(
                    v["id"], kind="block", verdict="blocked", alias=dep["alias"], against=dep["from_version"],
                    conditions=[{"condition": "no promotion block in force", "block": b["id"], "rule": b["rule"],
                                 "verdict": "failed", "why": b["reason"]} for b in exc.blocks],
                    summary=f"{dep['model']} version {dep['to_version']} was not promoted to {dep['alias']}: {why}",
                    deployment_id=dep["id"], actor="edgeorch")
            return self._finish(dep, "undone", f"not started: {why}; {dep['alias']} stays on "
                                f"{_v(dep['from_version'])}")
        return None

    def _canary_open(self, dep: dict[str, Any]) -> dict[str, Any] | None:
        """A canary start while another version's canary is still open: the deployment is undone before it starts
        (one canary at a time; the open one's decision comes first), the version gets a ``canary`` decision
        ``not_started`` that says how to start it later; None when it may go on."""
        if dep["action"] != "canary_start" or dep["to_version"] is None:
            return None
        open_ = self.store.models.canary(dep["model"])
        if open_ is None or open_["version"] == dep["to_version"]:
            return None
        why = (f"the canary of version {open_['version']} is still open (its decision comes first: one canary at a "
               f"time)")
        hint = f"`edgeorch models promote {dep['model']} {dep['to_version']} --alias canary` once it is decided"
        v = self.store.models.version(dep["model"], dep["to_version"])
        self.store.models.record_decision(
            v["id"], kind="canary", verdict="not_started", alias=dep["alias"], against=open_["version"],
            conditions=[{"condition": "no other canary open", "canary": open_["id"], "verdict": "failed",
                         "why": why}],
            summary=f"{dep['model']} version {dep['to_version']} passed its gates but its canary did not start: "
                    f"{why}; {hint}", deployment_id=dep["id"], actor="edgeorch")
        return self._finish(dep, "undone", f"not started: {why}; {hint}")

    async def settle(self) -> list[dict[str, Any]]:
        """Recover running deployments, make every target agree with the aliases, then run the pending ones."""
        done = []
        for dep in self.store.models.deployments(open_only=True, limit=10_000):
            if dep["state"] == "running":
                done.append(await self.run(dep["id"]))
        for name in self.store.models.names():
            async with self.lock(name):
                await self.reconcile(name)
        while True:
            pending = [d for d in self.store.models.deployments(open_only=True, limit=10_000)
                       if d["id"] not in {x["id"] for x in done}]
            if not pending:
                return done
            done.append(await self.run(pending[0]["id"]))

    async def reconcile(self, name: str) -> list[str]:
        """Make the model's target point every alias where the state file says (the caller holds the lock).

        Returns what was repaired (empty: they agreed)."""
        stored = (self.store.models.model(name) or {}).get("policy")
        policy = ModelPolicy.from_dict(stored) if stored else ModelPolicy(name=name)
        target = self.target(name, policy)
        target.clean_stale()
        want = self.store.models.aliases(name)
        have = target.aliases_on_disk()
        repaired = []
        for alias, version in want.items():
            if not target.agrees(alias, version):
                try:
                    await asyncio.to_thread(target.stage, version, self.store.models.version(name, version))
                    target.switch(alias, version)
                    repaired.append(f"{alias} -> {version}")
                except (StagingError, OSError) as exc:
                    log.error("model %s: cannot point %s at version %s: %s", name, alias, version, exc)
        for alias in set(have) - set(want):
            target.switch(alias, None)
            repaired.append(f"{alias} removed")
        canary = self.store.models.canary(name)
        if canary is None and (target.root / "weights.json").exists():
            target.write_weights(None)
        if repaired:
            log.warning("model %s: the serving folder did not match the aliases; repaired: %s", name,
                        ", ".join(repaired))
            served = [a for a in (target.serve, "canary") if a in want or a in have]
            if policy.deploy.reload and any(r.split(" ")[0] in served for r in repaired):
                # The serving process may hold what the folder had: tell it (best effort, logged).
                dep = {"model": name, "to_version": want.get(target.serve), "alias": target.serve,
                       "from_version": have.get(target.serve)}
                result = await run_command(policy.deploy.reload, timeout=policy.deploy.reload_timeout,
                                           env=self._env(dep, target, target.alias_path(target.serve)))
                (log.info if result.ok else log.error)("model %s: reload after the repair: %s", name,
                                                       result.describe())
        return repaired

    async def _run(self, dep: dict[str, Any]) -> dict[str, Any]:
        name, alias, to = dep["model"], dep["alias"], dep["to_version"]
        policy = ModelPolicy.from_dict(dep["target"])
        target = self.target(name, policy)
        dep = self._step(dep, state="running", step="staging")
        frm = dep["from_version"]
        self._announce(dep, "running")
        slot: Path | None = None
        note = ""  # what the outcome adds: a slot staged again before the switch
        if to is not None:
            try:
                slot = await asyncio.to_thread(target.stage, to, self.store.models.version(name, to))
            except StagingError as exc:
                return self._finish(dep, "failed", f"not deployed: {exc.message}")
        dep = self._step(dep, step="staged")
        if dep["strategy"] == "blue_green" and policy.deploy.health and slot is not None and self._served(alias, target):
            result = await health_within(policy.deploy.health, timeout=policy.deploy.health_timeout,
                                         window=policy.deploy.window, env=self._env(dep, target, slot))
            if not result.ok:
                self._health_decision(dep, result, "before the switch")
                return self._finish(dep, "undone", f"the health check of version {to} in its slot failed before "
                                    f"the switch, so nothing was switched: {result.describe()}; {alias} stays on "
                                    f"{_v(frm)}")
            dep = self._step(dep, step="checked")
            try:
                note = await self._recheck_slot(dep, target)
            except StagingError as exc:
                return self._finish(dep, "failed", f"not deployed: {exc.message}; nothing was switched, {alias} "
                                    f"stays on {_v(frm)}")
        with self.store.transaction():
            self.store.models.move_alias(name, alias, to, action=dep["action"], actor=dep["actor"],
                                         reason=self._move_reason(dep), deployment_id=dep["id"])
            self._on_switched(dep, policy)
            dep = self._step(dep, step="switched", hook=False)
        self._hook(dep["id"], "switched")
        target.switch(alias, to)
        self._hook(dep["id"], "linked")
        return await self._after_switch(dep, policy, target, note=note)

    async def _recheck_slot(self, dep: dict[str, Any], target: Target) -> str:
        """The staged slot checked again against the registered sha256 right before the switch to it (after a
        blue-green check: anything may have written it during the window, and it was served as it stood). A copy
        changed since is staged again from the registered files (:meth:`Target.stage`); returns a note for the
        outcome then ('' when it was intact). :class:`StagingError` when it changed and its registered files are
        gone too: the switch is refused."""
        to = dep["to_version"]
        artifact = self.store.models.version(dep["model"], to)
        problem = await asyncio.to_thread(target.slot_problem, to, artifact)
        if problem is None:
            return ""
        log.warning("model %s: deployment %s: version %s's slot %s during its health check", dep["model"],
                    dep["id"], to, problem)
        await asyncio.to_thread(target.stage, to, artifact)
        return (f"; its slot {problem} during the health check, so it was staged again from the registered files "
                "before the switch")

    def _move_reason(self, dep: dict[str, Any]) -> str | None:
        """The reason the alias move records: the deployment's, except for the end of a canary that won, which
        says what became of its promotion (:func:`.canary.end_reason`), decided as it stands at the move (also
        when recovery runs it after a restart)."""
        if dep["action"] != "canary_end" or dep["reason"] != WON:
            return dep["reason"]
        promotion = next((d for d in self.store.models.deployments(dep["model"], limit=20)
                          if d["action"] == "canary_promote" and d["id"] < dep["id"]), None)
        return end_reason(promotion)

    def _on_switched(self, dep: dict[str, Any], policy: ModelPolicy) -> None:
        """What a switch records besides the alias (in its transaction): a canary's row opens with its alias."""
        if dep["action"] == "canary_start" and policy.canary is not None and dep["to_version"] is not None:
            holder = self.store.models.holder(dep["model"], policy.alias)
            c = policy.canary
            self.store.models.open_canary(dep["model"], version=dep["to_version"],
                                          against=holder["version"] if holder else None, mode=c.mode,
                                          share=c.share if c.mode == "weights" else None, window_batches=c.batches,
                                          window_seconds=c.window, spec={"metric": c.metric, "better": c.better,
                                                                         "tolerance": c.tolerance,
                                                                         "alias": policy.alias},
                                          actor=dep["actor"])

    async def _after_switch(self, dep: dict[str, Any], policy: ModelPolicy, target: Target, *,
                            note: str = "") -> dict[str, Any]:
        """Weights, reload and health after the switch; a failure rolls back (see the module docstring). A
        deployment recovered at ``reloaded`` (or ``verified``) does not run what it recorded as passed again: its
        reload command ran twice after a kill -9 in its health check, where the steps' table says ``reloaded``
        goes on with the health check."""
        self.write_weights(dep["model"], target)
        served = self._served(dep["alias"], target)
        env = self._env(dep, target, target.alias_path(dep["alias"]))
        passed = {"reloaded": ("reloaded",), "verified": ("reloaded", "verified")}.get(dep["step"], ())
        # A step is recorded only when its command ran: without commands a switch is three commits, not five.
        if served and policy.deploy.reload and "reloaded" not in passed:
            result = await run_command(policy.deploy.reload, timeout=policy.deploy.reload_timeout, env=env)
            if not result.ok:
                return await self._roll_back(dep, policy, target, f"the reload failed: {result.describe()}", result,
                                             check="reload command")
            dep = self._step(dep, step="reloaded")
        if served and policy.deploy.health and dep["to_version"] is not None and "verified" not in passed:
            if dep["strategy"] == "blue_green":  # the served process may still be loading it: its window
                result = await health_within(policy.deploy.health, timeout=policy.deploy.health_timeout,
                                             window=policy.deploy.window, env=env)
            else:
                result = await run_command(policy.deploy.health, timeout=policy.deploy.health_timeout, env=env)
            if not result.ok:
                return await self._roll_back(dep, policy, target, f"the health check failed after the switch: "
                                             f"{result.describe()}", result)
            dep = self._step(dep, step="verified")
        what = (f"{dep['alias']} removed" if dep["to_version"] is None else
                f"{dep['alias']} -> version {dep['to_version']}")
        return self._finish(dep, "succeeded", f"{what} (was {_v(dep['from_version'])}){note}")

    async def _roll_back(self, dep: dict[str, Any], policy: ModelPolicy, target: Target, why: str,
                         result: CommandResult | None, *, check: str = "health check") -> dict[str, Any]:
        """A check after the switch failed (``check``: the health check, or the reload command): the alias back to
        where it was, the target switched back, reloaded."""
        name, alias, frm, to = dep["model"], dep["alias"], dep["from_version"], dep["to_version"]
        if result is not None:
            self._health_decision(dep, result, "after the switch", check=check)
        if dep["action"] == "rollback":  # a rollback that fails its own checks: nothing further back to go to
            return self._finish(dep, "failed", f"{why}; this was a rollback, so {alias} stays on {_v(to)}")
        with self.store.transaction():
            self.store.models.move_alias(name, alias, frm, action="auto_rollback", actor="edgeorch",
                                         reason=why, deployment_id=dep["id"])
            dep = self._step(dep, step="rolling_back", outcome=why, hook=False)
        self._hook(dep["id"], "rolling_back")
        return await self._finish_rollback(dep, policy, target, why)

    async def _finish_rollback(self, dep: dict[str, Any], policy: ModelPolicy, target: Target,
                               why: str) -> dict[str, Any]:
        frm, alias = dep["from_version"], dep["alias"]
        note = ""
        try:
            if frm is not None:
                await asyncio.to_thread(target.stage, frm, self.store.models.version(dep["model"], frm))
            target.switch(alias, frm)
            self.write_weights(dep["model"], target)
        except (StagingError, OSError) as exc:
            note = f"; switching the target back failed: {exc}"
        if self._served(alias, target) and policy.deploy.reload:
            # What is served now is the version rolled back to, and the one it replaces is the failed one: the
            # reload said v=<the failed version> prev=<the version back in place> (a serving process trusting
            # EDGEORCH_MODEL_VERSION reported the wrong model).
            back = {**dep, "to_version": frm, "from_version": dep["to_version"]}
            env = self._env(back, target, target.alias_path(alias))
            result = await run_command(policy.deploy.reload, timeout=policy.deploy.reload_timeout, env=env)
            note += "" if result.ok else f"; the reload after the rollback failed too: {result.describe()}"
        return self._finish(dep, "rolled_back", f"{why}; rolled back: {alias} -> {_v(frm)}{note}")

    async def _recover(self, dep: dict[str, Any], why: str = STOPPED) -> dict[str, Any]:
        """Finish or undo a deployment a stop interrupted, or one whose step failed unexpectedly (``why``: what
        happened, said in its outcome; see the module docstring). One that edgeorch decided itself
        (:func:`decided_by_edgeorch`) and a stop interrupted before the switch is run again from its start instead
        of undone: a canary that won, killed during its promotion's health check, lost its promotion for good (its
        decision stayed "passed", the canary alias was removed, the champion stayed)."""
        policy = ModelPolicy.from_dict(dep["target"])
        target = self.target(dep["model"], policy)
        step = dep["step"]
        left = await asyncio.to_thread(stop_left_commands, self._mark(dep))
        if left:  # a health check or reload of the killed daemon ran on beside the one recovery runs now
            log.warning("model %s: deployment %s: stopped %d process(es) its command left running when edgeorch "
                        "stopped (pids %s)", dep["model"], dep["id"], len(left), ", ".join(map(str, left)))
        again = step in BEFORE_SWITCH and why == STOPPED and decided_by_edgeorch(dep)
        log.warning("model %s: deployment %s was interrupted at step %s (%s); %s", dep["model"], dep["id"], step,
                    why, "starting it again (edgeorch decided it: nobody else would ask again)" if again
                    else "undoing it" if step in BEFORE_SWITCH else "finishing it")
        if step in BEFORE_SWITCH:
            await self.reconcile(dep["model"])
            if again:  # a canary's won promotion, a floor's or a rule's rollback, a passing version's promotion
                return await self._run(dep)
            return self._finish(dep, "undone", f"interrupted at step {step}, before the switch ({why}); "
                                f"undone: {dep['alias']} stays on {_v(dep['from_version'])}")
        if step == "rolling_back":
            return await self._finish_rollback(dep, policy, target, dep.get("outcome") or "interrupted rollback")
        try:
            to = dep["to_version"]
            if to is not None:
                await asyncio.to_thread(target.stage, to, self.store.models.version(dep["model"], to))
            target.switch(dep["alias"], to)
        except (StagingError, OSError) as exc:
            return await self._roll_back(dep, policy, target, f"cannot finish the switch: {exc}", None)
        return await self._after_switch(dep, policy, target)

    # -- helpers --------------------------------------------------------------------------------------

    def write_weights(self, name: str, target: Target) -> None:
        """``weights.json`` from the open canary (weights mode), else removed."""
        canary = self.store.models.canary(name)
        if canary is None or canary["mode"] != "weights" or not canary["share"]:
            target.write_weights(None)
            return
        aliases = self.store.models.aliases(name)
        serve = canary["spec"].get("alias", target.serve)
        routes = []
        if serve in aliases:
            routes.append({"alias": serve, "version": aliases[serve], "path": str(target.alias_path(serve)),
                           "weight": round(1 - canary["share"], 6)})
        if "canary" in aliases:
            routes.append({"alias": "canary", "version": aliases["canary"], "path": str(target.alias_path("canary")),
                           "weight": canary["share"] if routes else 1.0})
        target.write_weights(routes or None)

    def _served(self, alias: str, target: Target) -> bool:
        """Whether a serving process reads ``alias`` (then reload and health apply): the served one, or canary."""
        return alias in (target.serve, "canary")

    def _env(self, dep: dict[str, Any], target: Target, path: Path) -> dict[str, str]:
        return {"EDGEORCH_MODEL": dep["model"], "EDGEORCH_MODEL_VERSION": str(dep["to_version"] or ""),
                "EDGEORCH_MODEL_ALIAS": dep["alias"], "EDGEORCH_MODEL_PATH": str(path),
                "EDGEORCH_MODEL_DIR": str(target.root), "EDGEORCH_MODEL_PREVIOUS": str(dep["from_version"] or ""),
                MARK_VARIABLE: self._mark(dep)}

    def _mark(self, dep: dict[str, Any]) -> str:
        """The mark of this deployment's commands (:func:`~.commands.command_mark`)."""
        # A start's repair of the serving folder reloads outside any deployment: marked as the model's repair.
        return command_mark(dep.get("id", f"repair:{dep['model']}"), self.store.db.path)

    def _health_decision(self, dep: dict[str, Any], result: CommandResult, when: str, *,
                         check: str = "health check") -> None:
        """A deployment check that failed, recorded with the version (kind ``health``: the checks a deployment
        runs; ``check`` says which: the health check, or the reload command, which a failure was labelled as a
        health check)."""
        if dep["to_version"] is None:
            return
        v = self.store.models.version(dep["model"], dep["to_version"])
        self.store.models.record_decision(
            v["id"], kind="health", verdict="failed", alias=dep["alias"], against=dep["from_version"],
            conditions=[{"condition": f"{check.split()[0]} {when}", "value": result.exit_code, "threshold": 0,
                         "verdict": "failed", "why": result.describe(), "command": result.to_dict()}],
            summary=f"{dep['model']} version {dep['to_version']} failed its {check} {when}: {result.describe()}",
            deployment_id=dep["id"], actor="edgeorch")

    def _step(self, dep: dict[str, Any], *, step: str | None = None, state: str | None = None,
              outcome: str | None = None, hook: bool = True) -> dict[str, Any]:
        row = self.store.models.set_deployment(dep["id"], step=step, state=state, outcome=outcome)
        if step is not None and hook:
            self._hook(dep["id"], step)
        return row

    def _finish(self, dep: dict[str, Any], state: str, outcome: str) -> dict[str, Any]:
        row = self.store.models.set_deployment(dep["id"], state=state, step="done", outcome=outcome)
        (log.info if state == "succeeded" else log.warning)("model %s: deployment %s %s: %s", dep["model"],
                                                            dep["id"], state, outcome)
        self._announce(row, state)
        return row

    def _announce(self, dep: dict[str, Any], state: str) -> None:
        self.publish(ModelDeployment(self.clock(), dep["model"], dep["id"], dep["alias"], state, dep["from_version"],
                                     dep["to_version"], dep["action"], dep.get("outcome"), dep.get("actor")))

    def _hook(self, deployment_id: int, step: str) -> None:
        if self.step_hook is not None:
            self.step_hook(deployment_id, step)


def _v(version: int | None) -> str:
    return "no version" if version is None else f"version {version}"
