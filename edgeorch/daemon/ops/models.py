"""``models.*``: the model registry (docs/models.md): list, show, versions, diff, why, promote, rollback, unblock,
observe.

Reads answer from ``store.models`` (:mod:`edgeorch.models.views`, the same
documents the CLI builds without a daemon). ``promote`` and ``rollback``
record their intent and run the deployment through the ModelService (one at
a time per model; a second request for the same model waits its turn), then
answer with the deployment's final row (``state``: succeeded, undone,
rolled_back or failed; ``outcome`` in words: the CLI exits 1 unless it
succeeded). A version that failed its gates is refused (``conflict``). The actor recorded is the peer (``alice (uid 1000)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...models import views
from ...models.spec import NAME_EXPECTED, name_problem
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...models.service import ModelService
    from ...store import Store


class ModelOps:
    """The registry over ``store`` (reads) and ``service`` (promotions, rollbacks, observations)."""

    OPS = (
        OpSpec("models.list", "models_list", "read", "every model: versions, latest, aliases"),
        OpSpec("models.show", "models_show", "read",
               "a model: its gates and target, aliases, alias history, deployments, canary; with a version, that "
               "version: metrics, checks, explanations", args=("name", "version")),
        OpSpec("models.versions", "models_versions", "read", "a model's versions with metrics and gate verdicts",
               args=("name",)),
        OpSpec("models.diff", "models_diff", "read", "two versions side by side: metrics, content, params, inputs",
               args=("name", "a", "b")),
        OpSpec("models.why", "models_why", "read",
               "every decision about a version (each gate condition, health, canary), in plain words too",
               args=("name", "version")),
        OpSpec("models.promote", "models_promote", "act",
               "move an alias (default: the model's promotion alias) to a version, through a deployment",
               args=("name", "version", "alias", "reason", "again")),
        OpSpec("models.rollback", "models_rollback", "act",
               "move an alias back to the previous version that passed its gates (or to a given one)",
               args=("name", "alias", "to", "reason")),
        OpSpec("models.unblock", "models_unblock", "act",
               "lift the blocks on a model's promotions (all, or one rule's) that monitoring rules set",
               args=("name", "rule", "reason")),
        OpSpec("models.observe", "models_observe", "act",
               "record metrics observed for the versions aliases point at (a canary's evidence)",
               args=("name", "metrics", "versions", "run_id")),
    )

    def __init__(self, *, store: "Store", service: "ModelService", pipelines: Any = None) -> None:
        self.store = store
        self.service = service
        self.pipelines = pipelines  # () -> the loaded pipelines by name: what [models.NAME] declares now

    async def models_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return views.listing(self.store)

    async def models_show(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        if args.get("version") is not None:  # one version: its metrics, checks and explanations
            return views.show_version(self.store, _name(args), _version(args, "version"))
        name = _name(args)
        declared = views.declared_policy(self.store, self.pipelines(), name) if self.pipelines is not None else None
        return views.show(self.store, name, declared=declared)

    async def models_versions(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return views.versions(self.store, _name(args))

    async def models_diff(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return views.diff(self.store, _name(args), _version(args, "a"), _version(args, "b"))

    async def models_why(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return views.why(self.store, _name(args), _version(args, "version"))

    async def models_promote(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        dep = await self.service.promote(_name(args), _version(args, "version"),
                                         alias=arg(args, "alias", str, required=False), actor=actor_of(peer),
                                         reason=arg(args, "reason", str, required=False),
                                         again=arg(args, "again", bool, required=False, default=False))
        return {"deployment": dep}

    async def models_rollback(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        to = arg(args, "to", int, required=False)
        if to is not None and to < 1:
            raise UsageError("is not a version number", field="args.to", value=to, expected="an integer >= 1")
        dep = await self.service.rollback(_name(args), alias=arg(args, "alias", str, required=False),
                                          to=to, actor=actor_of(peer), reason=arg(args, "reason", str, required=False))
        return {"deployment": dep}

    async def models_unblock(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        lifted = self.service.unblock(_name(args), rule=arg(args, "rule", str, required=False), actor=actor_of(peer),
                                      reason=arg(args, "reason", str, required=False))
        return {"model": args["name"], "lifted": lifted}

    async def models_observe(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        metrics = arg(args, "metrics", dict)
        if not all(isinstance(v, dict) for v in metrics.values()):
            raise UsageError("has the wrong shape", field="args.metrics", value=metrics,
                             expected='{"ALIAS": {"METRIC": number, ...}, ...}')
        versions = arg(args, "versions", dict, required=False)
        if versions is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in versions.values()):
            raise UsageError("has the wrong shape", field="args.versions", value=versions,
                             expected='{"ALIAS": VERSION, ...}: the version each alias\'s values were measured on')
        n = self.service.observe(_name(args), metrics, run_id=arg(args, "run_id", int, required=False),
                                 versions=versions)
        return {"recorded": n}


def _name(args: dict[str, Any]) -> str:
    name = arg(args, "name", str)
    if name_problem(name):
        raise UsageError(name_problem(name) or "", field="args.name", value=name, expected=NAME_EXPECTED)
    return name


def _version(args: dict[str, Any], key: str) -> int:
    v = arg(args, key, int)
    if v < 1:
        raise UsageError("is not a version number", field=f"args.{key}", value=v, expected="an integer >= 1")
    return v
