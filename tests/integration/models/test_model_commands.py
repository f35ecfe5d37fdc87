"""Reload and health commands: an argv with the deployment's environment, a timeout that kills the whole group."""

from __future__ import annotations

import asyncio
import os
import time

from edgeorch.models.commands import health_within, run_command


def test_a_command_gets_the_deployment_environment_and_its_output_is_kept() -> None:
    r = asyncio.run(run_command(["sh", "-c", "echo v=$EDGEORCH_MODEL_VERSION; exit 3"], timeout=10,
                                env={"EDGEORCH_MODEL_VERSION": "7"}))
    assert (r.ok, r.exit_code, r.timed_out) == (False, 3, False)
    assert r.output == "v=7\n" and r.describe() == "'sh -c echo v=$EDGEORCH_MODEL_VERSION; exit 3' exited with code 3: v=7"


def test_a_timeout_kills_the_command_and_what_it_started(tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    r = asyncio.run(run_command(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5, env={}))
    assert r.timed_out and not r.ok and time.monotonic() - started < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the grandchild survived the timeout")
    assert "did not finish within its timeout" in r.describe()


def test_a_missing_program_is_a_failed_check_not_an_exception() -> None:
    r = asyncio.run(run_command(["/nonexistent/health"], timeout=5, env={}))
    assert not r.ok and r.exit_code is None and "could not be started" in r.describe()


def test_health_within_a_window_waits_for_a_service_that_is_still_starting(tmp_path) -> None:
    ready = tmp_path / "ready"
    counter = tmp_path / "tries"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ $n -ge 1 ]"
    r = asyncio.run(health_within(["sh", "-c", script], timeout=5, window=10, env={}))
    assert r.ok and int(counter.read_text()) == 2
    assert not ready.exists()
