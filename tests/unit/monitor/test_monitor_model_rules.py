"""model_metric rules in process (a real state file, ModelService and bus; no daemon): the champion's realized
metric is evaluated once per observation, hysteresis counts observations, a firing rolls the alias back and blocks
promotions in its transaction, and the resolve lifts the block."""

from __future__ import annotations

import asyncio
import hashlib
import textwrap
from pathlib import Path
from types import SimpleNamespace

from edgeorch.events import Bus, ModelDeployment, ModelObserved
from edgeorch.models.blocks import PromotionBlocked, check
from edgeorch.models.service import ModelService
from edgeorch.monitor.service import Monitors
from edgeorch.monitor.views import monitors_doc
from edgeorch.pipelines import validate_path
from edgeorch.store import Store

RULE = """
name = "serving"
[tasks.noop]
command = ["true"]
[[on]]
name = "champion_degraded"
signal = "model_metric"
model = "house"
metric = "rmse"
threshold = 40
for_evaluations = 2
[[on.do]]
rollback = "house"
[[on.do]]
block_promotions = "house"
"""


def _version(store: Store, tmp: Path, n: int, rmse: float) -> None:
    path = tmp / f"model{n}.bin"
    path.write_text(f"model {n}\n")
    store.models.register("house", artifact={"kind": "file", "path": str(path), "size": path.stat().st_size,
                                             "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                          metrics={"rmse": rmse})


def _served(store: Store, tmp: Path, versions: dict[int, float]) -> tuple[Bus, ModelService, Monitors]:
    """The RULE pipeline loaded, model versions ``{n: rmse}`` registered, champion moved to 1 then 2, and a
    started Monitors on a bus whose model events it hears (call on a running loop)."""
    (tmp / "pipelines").mkdir()
    (tmp / "pipelines" / "serving.toml").write_text(textwrap.dedent(RULE))
    report = validate_path(tmp / "pipelines")
    assert report.ok, [e.render() for e in report.errors]
    bus = Bus()
    models = ModelService(store, serving_dir=tmp / "serving", publish=bus.publish, clock=store.clock)
    for n, rmse in versions.items():
        _version(store, tmp, n, rmse)
    for v in (1, 2):
        store.models.move_alias("house", "champion", v, action="promote", actor="alice", reason="test")
    monitors = Monitors(store=store, requests=None, registry=SimpleNamespace(pipelines=report.pipelines),  # type: ignore[arg-type]
                        loop=asyncio.get_running_loop(), models=models)
    bus.subscribe(monitors.on_model_event, (ModelObserved, ModelDeployment))
    monitors.start()
    return bus, models, monitors


def test_a_realized_metric_drop_rolls_the_champion_back_and_blocks_until_it_resolves(tmp_path: Path) -> None:
    async def main() -> None:
        store = Store(tmp_path / "state.db")
        bus, models, monitors = _served(store, tmp_path, {1: 30.0, 2: 29.0})

        def rule() -> dict:
            return monitors_doc(store, monitors.rules, monitors.problems, store.clock())["rules"][0]

        models.observe("house", {"champion": {"rmse": 52.0}})
        assert rule()["state"] == "pending" and rule()["consecutive"] == 1
        # An alias event with no new observation is no evaluation: hysteresis counts observations.
        bus.publish(ModelDeployment(store.clock(), "house", 0, "canary", "succeeded", None, None, "canary_end"))
        assert rule()["consecutive"] == 1
        models.observe("house", {"champion": {"rmse": 55.0}})
        await monitors.drain()  # the rollback runs after the firing's commit
        await models.drain()
        doc = rule()
        assert doc["state"] == "firing" and doc["last_value"] == 55.0
        assert doc["last_firing"]["state"] == "done"
        assert store.models.aliases("house") == {"champion": 1}
        history = store.models.alias_history("house", "champion", limit=1)[0]
        assert history["actor"] == "rule:champion_degraded" and "realized rmse of house champion > 40" in history["reason"]
        try:
            check(store, "house")
            raise AssertionError("promotions should be blocked")
        except PromotionBlocked as exc:
            assert "rule champion_degraded" in exc.message
        # Version 1 has no observation since it became champion again: no signal, still firing, nothing more done.
        assert rule()["state"] == "firing"
        models.observe("house", {"champion": {"rmse": 31.0}})
        assert rule()["state"] == "ok"
        assert store.models.blocks("house") == []
        kinds = [e["kind"] for e in store.events.recent(limit=50)]
        assert {"rule_pending", "rule_fired", "rule_responded", "model_blocked", "rule_resolve",
                "model_unblocked"} <= set(kinds)
        await models.close()
        await monitors.stop()
        store.close()

    asyncio.run(main())


def test_a_rule_seen_first_does_not_evaluate_older_observations(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "serving.toml").write_text(textwrap.dedent(RULE).replace("for_evaluations = 2", ""))
    report = validate_path(tmp_path / "pipelines")

    async def main() -> None:
        store = Store(tmp_path / "state.db")
        models = ModelService(store, serving_dir=tmp_path / "serving", publish=lambda e: None, clock=store.clock)
        _version(store, tmp_path, 1, 30.0)
        store.models.move_alias("house", "champion", 1, action="promote", actor="alice", reason="test")
        models.observe("house", {"champion": {"rmse": 99.0}})  # before the rule existed
        monitors = Monitors(store=store, requests=None, registry=SimpleNamespace(pipelines=report.pipelines),  # type: ignore[arg-type]
                            loop=asyncio.get_running_loop(), models=models)
        monitors.start()
        assert store.rules.get("champion_degraded")["state"] == "ok" and store.rules.firings("champion_degraded") == []
        await models.close()
        store.close()

    asyncio.run(main())


def test_a_new_champion_as_bad_as_the_one_rolled_back_is_answered_again(tmp_path: Path) -> None:
    """The rule fired for champion 2 and rolled back to 1; before any observation of 1, the block was lifted and
    version 3 promoted, as bad: its observations read "still firing: episode 1 was answered" and nothing guarded
    it. Its first values start a new episode: the rule answers again."""
    async def main() -> None:
        store = Store(tmp_path / "state.db")
        bus, models, monitors = _served(store, tmp_path, {1: 30.0, 2: 29.0, 3: 28.0})

        async def observe(value: float) -> None:
            models.observe("house", {"champion": {"rmse": value}})
            await monitors.drain()
            await models.drain()

        for value in (52.0, 55.0):
            await observe(value)
        assert store.models.aliases("house") == {"champion": 1}
        store.models.lift_blocks(rule="champion_degraded", by="alice", reason="a fix is ready")
        store.models.move_alias("house", "champion", 3, action="promote", actor="alice", reason="the fix")
        for value in (80.0, 81.0):
            await observe(value)
        doc = monitors_doc(store, monitors.rules, monitors.problems, store.clock())["rules"][0]
        assert doc["state"] == "firing" and doc["episode"] == 2, doc
        assert store.models.aliases("house")["champion"] != 3  # rolled back again
        await models.close()
        await monitors.stop()
        store.close()

    asyncio.run(main())


def test_a_rollback_response_redone_after_a_restart_rolls_back_once(tmp_path: Path) -> None:
    """A daemon killed during the rule's rollback: the next start finished that deployment (champion 3 -> 2), then
    redid the firing's pending responses (at least once), and rolled back again, from 2 to 1: two versions back,
    the second never measured. The response records the version it rolls back from; redone, it does nothing when
    the alias serves another version now, and says so."""
    async def main() -> None:
        store = Store(tmp_path / "state.db")
        bus, models, monitors = _served(store, tmp_path, {1: 30.0, 2: 29.0, 3: 28.0})
        store.models.move_alias("house", "champion", 3, action="promote", actor="alice", reason="test")
        for value in (52.0, 55.0):
            models.observe("house", {"champion": {"rmse": value}})
        await monitors.drain()
        await models.drain()
        assert store.models.aliases("house") == {"champion": 2}
        (firing,) = store.rules.firings("champion_degraded")
        rollback = next(p for p in firing["responses"] if p["action"] == "rollback")
        assert rollback["from_version"] == 3 and rollback["result"]["state"] == "succeeded"
        # As a kill -9 left it: the deployment done (by recovery), the firing's response not marked done yet.
        undone = [{k: v for k, v in p.items() if k not in ("done", "result")} for p in firing["responses"]]
        store.rules.set_firing(firing["id"], state="pending", responses=undone)
        await monitors.stop()
        again = Monitors(store=store, requests=None, registry=monitors.registry, loop=asyncio.get_running_loop(),
                         models=models)
        again.start()  # redoes the pending responses, as a daemon's start does
        await again.drain()
        await models.drain()
        assert store.models.aliases("house") == {"champion": 2}  # not rolled back a second time
        (firing,) = store.rules.firings("champion_degraded")
        redone = next(p for p in firing["responses"] if p["action"] == "rollback")
        assert redone["result"]["state"] == "skipped" and firing["state"] == "done"
        await models.close()
        await again.stop()
        store.close()

    asyncio.run(main())


def test_a_value_measured_on_a_version_the_alias_has_left_judges_nothing_it_serves_now(tmp_path: Path) -> None:
    """A scoring job's values of version 3 arrived after the rule had rolled 3 back: taken for version 2's, they
    rolled 2 back too. Said with the version they measured (`--version`), they are recorded for it alone."""
    import pytest

    from edgeorch.errors import UsageError

    async def main() -> None:
        store = Store(tmp_path / "state.db")
        bus, models, monitors = _served(store, tmp_path, {1: 30.0, 2: 29.0, 3: 28.0})
        store.models.move_alias("house", "champion", 3, action="promote", actor="alice", reason="test")
        for value in (52.0, 55.0, 57.0, 58.0):  # the first two fire the rule; the last two arrive after its rollback
            models.observe("house", {"champion": {"rmse": value}}, versions={"champion": 3})
            await monitors.drain()
            await models.drain()
        assert store.models.aliases("house") == {"champion": 2}  # rolled back once, from 3
        assert [o["value"] for o in store.models.observations("house", 3, "rmse")] == [52.0, 55.0, 57.0, 58.0]
        assert store.models.observations("house", 2, "rmse") == []
        with pytest.raises(UsageError, match="never pointed at this version"):
            models.observe("house", {"champion": {"rmse": 1.0}}, versions={"champion": 9})
        await models.close()
        await monitors.stop()
        store.close()

    asyncio.run(main())


def test_a_rollback_whose_alias_moved_before_it_started_is_not_run(tmp_path: Path) -> None:
    """Two rollbacks decided against version 3 (a recovered one and a rule's response asking again): the second,
    run after the first, went from 2 to 1. It starts only while the alias serves the version it was decided
    against."""
    async def main() -> None:
        store = Store(tmp_path / "state.db")
        bus, models, monitors = _served(store, tmp_path, {1: 30.0, 2: 29.0, 3: 28.0})
        store.models.move_alias("house", "champion", 3, action="promote", actor="alice", reason="test")
        target = models._policy("house").to_dict()
        first, second = (store.models.add_deployment("house", alias="champion", to_version=2, action="rollback",
                                                     strategy="direct", target=target, actor="rule:x", reason="t")
                         for _ in range(2))
        assert (await models.deployer.run(first["id"]))["state"] == "succeeded"
        again = await models.deployer.run(second["id"])
        assert again["state"] == "undone" and "serves version 2 now, not version 3" in again["outcome"]
        assert store.models.aliases("house") == {"champion": 2}
        # `models why` offered to try the needless one again ("promote house 2 --alias champion tries again"),
        # version 2 being champion already.
        from edgeorch.models.views import why, why_text

        said = why_text(why(store, "house", 2))
        assert f"Deployment {again['id']} (rollback to champion) undone: not started" in said
        assert "tries again" not in said, said
        await models.close()
        await monitors.stop()
        store.close()

    asyncio.run(main())


def test_a_version_the_alias_never_served_is_refused_naming_the_latest_it_served(tmp_path: Path) -> None:
    """The refusal listed every version the champion ever pointed at: 32 numbers by version 46, and growing."""
    import pytest

    from edgeorch.errors import UsageError

    async def main() -> None:
        store = Store(tmp_path / "state.db")
        _bus, models, monitors = _served(store, tmp_path, {n: 30.0 - n / 10 for n in range(1, 15)})
        for v in range(3, 15):
            store.models.move_alias("house", "champion", v, action="promote", actor="alice", reason="test")
        with pytest.raises(UsageError) as err:
            models.observe("house", {"champion": {"rmse": 1.0}}, versions={"champion": 99})
        assert err.value.expected == "a version champion served: 14 of them, the latest 5, 6, 7, 8, 9, 10, 11, 12, 13, 14"
        await models.close()
        await monitors.stop()
        store.close()

    asyncio.run(main())
