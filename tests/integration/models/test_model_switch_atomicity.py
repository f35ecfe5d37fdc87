"""A reader following ``current`` never sees a missing or partial model while promotions and rollbacks switch it,
and promotions of one model are serialised."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

from edgeorch.models.targets import PathTarget

READER = textwrap.dedent('''\
    import os, sys
    path, stop, good = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    reads = bad = 0
    while not os.path.exists(stop):
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            print(f"missing: {exc}", flush=True)
            bad += 1
            continue
        reads += 1
        if text not in good:
            print(f"partial: {text!r}", flush=True)
            bad += 1
    print(f"reads={reads} bad={bad}", flush=True)
    ''')

def _reader(workspace, root, good):
    reader = workspace.root / "reader.py"
    reader.write_text(READER)
    stop = workspace.root / "stop"
    proc = subprocess.Popen([sys.executable, str(reader), str(root / "current" / "model.bin"), str(stop), *good],
                            stdout=subprocess.PIPE, text=True)
    return proc, stop


def _reads(proc, stop) -> int:
    stop.write_text("")
    out, _ = proc.communicate(timeout=60)
    assert out.strip().splitlines()[-1].endswith("bad=0"), out[-2000:]
    return int(out.strip().splitlines()[-1].split()[0].split("=")[1])


def test_a_reader_of_current_sees_a_whole_model_through_1000_switches_of_the_target(tmp_path) -> None:
    """The rename the deployer switches with, 1,000 times, against a reader in another process."""
    target = PathTarget(tmp_path / "serving" / "m")
    good = []
    for v in (1, 2):
        (tmp_path / f"run{v}").mkdir()
        src = tmp_path / f"run{v}" / "model.bin"
        src.write_text(f"version {v} " + "x" * 100_000)  # large enough that a torn read would show
        good.append(src.read_text())
        from edgeorch.engine.files import sha256_file

        target.stage(v, {"kind": "file", "path": str(src), "sha256": sha256_file(src)})
    target.switch("champion", 1)

    class Ws:
        root = tmp_path

    proc, stop = _reader(Ws, target.root, good)
    try:
        for i in range(1000):
            target.switch("champion", 2 if i % 2 == 0 else 1)
            if i % 100 == 0:
                os.sched_yield()
    finally:
        reads = _reads(proc, stop)
    assert reads > 100 and os.readlink(target.root / "current") == "versions/1"


SWITCHES = 100


def test_a_reader_of_current_sees_a_whole_model_through_promote_and_rollback_switches(workspace, harness, model_pipeline) -> None:
    _promote_rollback_race(workspace, harness, model_pipeline, SWITCHES)


@pytest.mark.slow
def test_a_reader_of_current_sees_a_whole_model_through_1000_promote_and_rollback_switches(workspace, harness, model_pipeline) -> None:
    _promote_rollback_race(workspace, harness, model_pipeline, 1000)


def _promote_rollback_race(workspace, harness, model_pipeline, switches: int) -> None:
    model_pipeline(workspace, extra='promote = "manual"')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    root = workspace.root / "serving" / "house"
    good = ["model with rmse 30.0\n", "model with rmse 29.0\n"]
    harness.models(lambda s: s.promote("house", 1, actor="test"))
    proc, stop = _reader(workspace, root, good)

    async def switch(service):
        started = time.monotonic()
        for i in range(switches // 2):
            a = await service.promote("house", 2, actor="test", reason=f"round {i}")
            b = await service.rollback("house", actor="test", reason=f"round {i}")
            assert (a["state"], b["state"]) == ("succeeded", "succeeded")
        return time.monotonic() - started

    try:
        took = harness.models(switch)
    finally:
        reads = _reads(proc, stop)
    assert reads > switches, (reads, took)  # the reader really raced the switches
    store = harness.store()
    try:
        assert len(store.models.alias_history("house", "champion", limit=5000)) == switches + 1
    finally:
        store.close()


def test_concurrent_promotions_of_one_model_are_serialised(workspace, harness, model_pipeline) -> None:
    log = workspace.root / "health.log"
    check = workspace.root / "health.py"
    # Each health check notes its start and end; overlapping checks would interleave the lines.
    check.write_text(textwrap.dedent(f'''\
        import os, time
        v = os.environ["EDGEORCH_MODEL_VERSION"]
        with open({str(log)!r}, "a") as f:
            f.write(f"start {{v}}\\n"); f.flush(); time.sleep(0.3); f.write(f"end {{v}}\\n")
        '''))
    model_pipeline(workspace, extra='promote = "manual"', deploy=f'health = ["python", "{check}"]')
    for rmse in (30.0, 29.0, 28.0):
        harness.run("trainer", {"rmse": rmse})

    async def race(service):
        return await asyncio.gather(*(service.promote("house", v, actor=f"user{v}") for v in (1, 2, 3)))

    results = harness.models(race)
    assert [r["state"] for r in results] == ["succeeded"] * 3
    lines = log.read_text().split()
    pairs = list(zip(lines[0::4], lines[1::4], lines[2::4], lines[3::4], strict=True))
    assert all(p[0] == "start" and p[2] == "end" and p[1] == p[3] for p in pairs), lines  # never two at once
    store = harness.store()
    try:
        history = list(reversed(store.models.alias_history("house", "champion")))
        assert [(h["from_version"], h["to_version"]) for h in history] == [(None, 1), (1, 2), (2, 3)]
        assert store.models.aliases("house") == {"champion": 3}
    finally:
        store.close()
