"""Deployment safety found by a tester (real engines, processes and files): a slot written during a blue-green
check, health/reload commands that leave children or print a lot, promotions racing on one version, and what the
end of a won canary says when its promotion is rolled back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import tracemalloc

import pytest

from edgeorch.errors import ConflictError
from edgeorch.models.commands import MARK_VARIABLE, command_mark, run_command, stop_left_commands


def _serving(ws):
    return ws.root / "serving" / "house"


def _until(condition, what: str, timeout: float = 10.0) -> None:
    """Until ``condition()`` holds (polled: a process's death has no event to wait on here)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` is gone, or a zombie (killed, awaiting its reaper)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


# -- 1: the slot is checked again right before the switch ------------------------------------------------------


def _slot_writer(ws, *, remove_source: bool = False) -> str:
    """A health command that, run against version 2's slot (a blue-green check), rewrites its model file (and, with
    ``remove_source``, removes the registered files named in ``source.txt``): what a stray process or a hostile
    local user may do during the window. Passes every time."""
    script = ws.root / "health_writer.sh"
    script.write_text(
        "#!/bin/sh\n"
        'case "$EDGEORCH_MODEL_PATH" in */versions/2)\n'
        '  echo EVIL > "$EDGEORCH_MODEL_PATH/model.bin"\n'
        + (f'  rm -f "$(cat {ws.root / "source.txt"})"\n' if remove_source else "")
        + ";; esac\nexit 0\n")
    script.chmod(0o755)
    return f'health = ["{script}"]\nhealth_timeout = "10s"\nwindow = "5s"'


def test_a_slot_written_during_the_blue_green_check_is_staged_again_before_the_switch(
        workspace, harness, model_pipeline) -> None:
    """It was switched to and served as it stood ("EVIL"), against its registered sha256."""
    model_pipeline(workspace, extra='strategy = "blue_green"', deploy=_slot_writer(workspace))
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    root = _serving(workspace)
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 2}
        registered = store.models.version("house", 2)["sha256"]
        dep = store.models.deployments("house")[0]
    finally:
        store.close()
    served = (root / "current" / "model.bin").read_bytes()
    assert served == b"model with rmse 29.0\n" and hashlib.sha256(served).hexdigest() == registered
    assert dep["state"] == "succeeded" and "staged again from the registered files before the switch" in dep["outcome"]


def test_a_slot_written_during_the_check_whose_registered_files_are_gone_is_never_switched_to(
        workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace, extra='strategy = "blue_green"\npromote = "manual"',
                   deploy=_slot_writer(workspace, remove_source=True))
    harness.run("trainer")
    harness.models(lambda s: s.promote("house", 1, actor="test"))
    harness.run("trainer", {"rmse": 29.0})
    store = harness.store()
    try:
        (workspace.root / "source.txt").write_text(store.models.version("house", 2)["path"])
    finally:
        store.close()
    dep = harness.models(lambda s: s.promote("house", 2, actor="test"))
    assert dep["state"] == "failed" and "its registered files are gone" in dep["outcome"]
    assert "nothing was switched" in dep["outcome"]
    root = _serving(workspace)
    assert os.readlink(root / "current") == "versions/1"
    assert (root / "current" / "model.bin").read_text() == "model with rmse 30.0\n"
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 1}
    finally:
        store.close()


# -- 2: a command's verdict is its exit within its timeout; nothing it left stays ---------------------------------


def test_a_check_that_exits_at_once_leaving_a_child_in_another_session_passes_at_once_and_the_child_is_killed(
        tmp_path) -> None:
    """The child holds the output pipe: edgeorch waited for its end (the child's lifetime), past the timeout, and
    then said a check that exited 0 at once had timed out."""
    pidfile = tmp_path / "child.pid"
    mark = command_mark(41, tmp_path / "edgeorch.db")
    argv = ["sh", "-c", f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 8' & "
                        f"while [ ! -s {pidfile} ]; do sleep 0.01; done; echo checked; exit 0"]
    started = time.monotonic()
    r = asyncio.run(run_command(argv, timeout=5, env={MARK_VARIABLE: mark}))
    assert r.ok and not r.timed_out and r.exit_code == 0 and r.output == "checked\n"
    assert time.monotonic() - started < 3
    child = int(pidfile.read_text())
    _until(lambda: _gone(child), "the child the check left in another session survived it")
    assert stop_left_commands(mark) == []


def test_a_check_past_its_timeout_is_cut_at_the_timeout_said_with_the_configured_one_and_leaves_nothing(
        tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    mark = command_mark(42, tmp_path / "edgeorch.db")
    argv = ["sh", "-c", f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 8' & sleep 8"]
    started = time.monotonic()
    r = asyncio.run(run_command(argv, timeout=0.5, env={MARK_VARIABLE: mark}))
    assert r.timed_out and not r.ok and time.monotonic() - started < 3
    assert "did not finish within its timeout (0.5s)" in r.describe()
    _until(lambda: pidfile.exists() and _gone(int(pidfile.read_text())), "the detached child survived the timeout")


def test_a_deployment_whose_health_check_leaves_a_detached_child_succeeds_within_its_timeout(
        workspace, harness, model_pipeline) -> None:
    """It stayed `running` for the child's lifetime (blocking every other deployment of the model), then was
    rolled back as a timeout."""
    pidfile = workspace.root / "child.pid"
    check = workspace.root / "health.sh"
    check.write_text(f"#!/bin/sh\nsetsid sh -c 'echo $$ > {pidfile}; exec sleep 8' &\n"
                     f"while [ ! -s {pidfile} ]; do sleep 0.01; done\nexit 0\n")
    check.chmod(0o755)
    model_pipeline(workspace, deploy=f'health = ["{check}"]\nhealth_timeout = "5s"')
    harness.run("trainer")
    pidfile.unlink()
    started = time.monotonic()
    harness.run("trainer", {"rmse": 29.0})
    assert time.monotonic() - started < 7
    store = harness.store()
    try:
        dep = store.models.deployments("house")[0]
        assert (dep["to_version"], dep["state"]) == (2, "succeeded"), dep["outcome"]
        assert store.models.aliases("house") == {"champion": 2}
    finally:
        store.close()
    _until(lambda: _gone(int(pidfile.read_text())), "the health check's detached child outlived the deployment")


# -- 3: the output is read through a bounded buffer ------------------------------------------------------------


def test_a_commands_output_is_kept_through_a_bounded_buffer_whatever_its_size() -> None:
    """100 MB of health output grew the daemon by 200 MB though 2,000 characters are kept."""
    argv = ["sh", "-c", "head -c 30000000 /dev/zero | tr '\\0' x; printf 'é\\nlast line\\n'; exit 0"]
    tracemalloc.start()
    try:
        r = asyncio.run(run_command(argv, timeout=60, env={}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.ok and len(r.output) == 2000 and r.output.endswith("xé\nlast line\n")
    assert peak < 4_000_000, f"{peak} bytes at the peak for 30 MB of output"


# -- 5: a promotion is checked against the alias as it stands once the model's lock is taken -------------------


def test_two_promotions_of_one_version_at_once_move_the_alias_once_and_refuse_the_second(
        workspace, harness, model_pipeline) -> None:
    """The second ran a whole deployment and recorded a move 1 -> 1, exit 0."""
    model_pipeline(workspace)
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    store = harness.store()
    before = len(store.models.deployments("house"))
    store.close()

    async def both(service):
        return await asyncio.gather(service.promote("house", 1, actor="alice (uid 1000)"),
                                    service.promote("house", 1, actor="bob (uid 1001)"), return_exceptions=True)

    first, second = harness.models(both)
    assert isinstance(first, dict) and first["state"] == "succeeded", first
    assert isinstance(second, ConflictError) and second.message == "champion of house is version 1 already"
    store = harness.store()
    try:
        moves = [(h["from_version"], h["to_version"]) for h in store.models.alias_history("house", "champion")]
        assert moves == [(2, 1), (1, 2), (None, 1)]
        assert len(store.models.deployments("house")) == before + 1  # nothing recorded for the second
    finally:
        store.close()


# -- 7: the end of a won canary says what became of its promotion ----------------------------------------------


def test_the_end_of_a_won_canary_whose_promotion_was_rolled_back_says_so(workspace, harness, model_pipeline) -> None:
    check = workspace.root / "health.sh"  # version 2 fails only once it is champion's served link (not in a slot)
    check.write_text('#!/bin/sh\ncase "$EDGEORCH_MODEL_VERSION:$EDGEORCH_MODEL_ALIAS:$EDGEORCH_MODEL_PATH" in\n'
                     '  2:champion:*/versions/*) exit 0;; 2:champion:*) echo broken; exit 9;; esac\nexit 0\n')
    check.chmod(0o755)
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nbatches = 1\nmetric = "rmse"',
                   deploy=f'health = ["{check}"]\nhealth_timeout = "5s"\nwindow = "1s"')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})

    async def observe(service):
        service.observe("house", {"champion": {"rmse": 30.0}, "canary": {"rmse": 29.0}})  # the canary wins
        await service.drain()

    harness.models(observe)
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 1}
        history = store.models.alias_history("house")
        end = next(h for h in history if h["action"] == "canary_end")
        assert end["reason"] == ("the canary won; its promotion was rolled back (the health check failed after the "
                                 "switch)")
        assert any(h["action"] == "auto_rollback" for h in history)
    finally:
        store.close()


def test_the_end_of_a_won_canary_whose_promotion_succeeded_still_says_it_was_promoted(
        workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nbatches = 1\nmetric = "rmse"')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})

    async def observe(service):
        service.observe("house", {"champion": {"rmse": 30.0}, "canary": {"rmse": 29.0}})
        await service.drain()

    harness.models(observe)
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 2}
        end = next(h for h in store.models.alias_history("house") if h["action"] == "canary_end")
        assert end["reason"] == "the canary was promoted"
    finally:
        store.close()


@pytest.mark.parametrize("state, outcome, said", [
    ("succeeded", "champion -> version 2 (was version 1)", "the canary was promoted"),
    ("undone", "the health check of version 2 in its slot failed before the switch, so nothing was switched: x",
     "the canary won; its promotion was undone (the health check of version 2 in its slot failed before the switch, "
     "so nothing was switched)"),
    ("failed", "not deployed: version 2's files are gone: /x", "the canary won; its promotion failed (not deployed)"),
])
def test_what_the_end_of_a_won_canary_says_for_each_end_of_its_promotion(state, outcome, said) -> None:
    from edgeorch.models.canary import end_reason

    assert end_reason({"state": state, "outcome": outcome}) == said
    assert end_reason(None) == "the canary was promoted"
