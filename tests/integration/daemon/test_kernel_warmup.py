"""The daemon warms the numba cache in the background (issue 11): a real daemon with an empty cache starts a
low-priority warm-up after READY and a stop kills it at once; a warm cache or ``[kernels] warm_up = false``
starts none; staged numba files installed into a cache are loaded by a fresh process (no compile).

The full compile (about 20-30 s of idle CPU) is the one ``slow`` test; the others stop the warm-up early or
stand a short command in for it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeorch.kernels import warmup
from edgeorch.kernels.warmer import Warmer

WARMING = re.compile(r"warming the numba cache (\S+) in the background \(pid (\d+)")


def _wait_for(predicate, timeout: float, what: str):
    """Poll a condition on files and processes another process changes (no event to await across processes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purpose only once reaped; the daemon reaps its child.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


# -- a real daemon -------------------------------------------------------------------------------------------------


def test_a_daemon_with_an_empty_cache_warms_it_at_idle_priority_and_a_stop_kills_the_warm_up(
        daemon, workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "empty-numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    daemon.start()
    found = _wait_for(lambda: WARMING.search(daemon.output()), 30, "the warm-up start in the daemon's log")
    assert Path(found.group(1)) == cache
    pid = int(found.group(2))
    staging = warmup.staging_dir(cache, daemon.proc.pid)
    # The process runs at idle priority, its threads too (SCHED_IDLE is policy 5).
    _wait_for(lambda: staging.exists(), 30, "the staging folder")
    policy = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[38])
    assert policy == 5 or os.getpriority(os.PRIO_PROCESS, pid) == 19
    t0 = time.monotonic()
    assert daemon.stop(timeout=30) == 0
    assert time.monotonic() - t0 < 5, "the stop waited for the compile"
    assert _gone(pid)
    assert not staging.exists()
    assert not warmup.is_warm(cache)


def test_a_daemon_killed_with_sigkill_takes_its_warm_up_with_it(daemon, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "empty-numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    daemon.start()
    pid = int(_wait_for(lambda: WARMING.search(daemon.output()), 30, "the warm-up start").group(2))
    daemon.kill9()
    _wait_for(lambda: _gone(pid), 10, "the warm-up's death with its parent (PR_SET_PDEATHSIG)")
    # The next daemon removes the dead one's staging folder and warms again.
    dead_staging = warmup.staging_dir(cache, daemon.proc.pid)
    daemon.start()
    _wait_for(lambda: len(WARMING.findall(daemon.output())) == 2, 30, "the second warm-up")
    assert not dead_staging.exists()
    assert daemon.stop() == 0


def test_a_warm_cache_starts_no_warm_up(daemon, workspace) -> None:
    """The suite's cache (NUMBA_CACHE_DIR from tests/conftest.py) is warm: it carries the warm-up's marker."""
    assert warmup.is_warm(Path(os.environ["NUMBA_CACHE_DIR"]))
    workspace.write_config(extra="[daemon]\nlog_level = \"debug\"\n")
    daemon.start()
    _wait_for(lambda: "is warm already: no warm-up" in daemon.output(), 30, "the skip in the log")
    assert not WARMING.search(daemon.output())
    assert daemon.stop() == 0


def test_warm_up_false_starts_none(daemon, workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "empty-numba-cache"))
    workspace.write_config(extra="[kernels]\nwarm_up = false\n")
    daemon.start()
    assert daemon.call("ping") is not None
    assert daemon.stop() == 0
    assert "numba" not in daemon.output()
    assert not (tmp_path / "empty-numba-cache").exists()


def test_a_bad_warm_up_value_is_refused_naming_the_key(workspace) -> None:
    workspace.write_config(extra="[kernels]\nwarm_up = \"yes\"\n")
    result = workspace.invoke("daemon")
    assert result.returncode == 2, result.stderr
    assert "kernels.warm_up" in result.stderr and "expected true or false" in result.stderr


@pytest.mark.slow
def test_a_daemon_with_an_empty_cache_ends_up_with_a_warm_cache(daemon, workspace, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "empty-numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    daemon.start()
    _wait_for(lambda: "numba cache warm-up finished" in daemon.output(), 300, "the warm-up's end")
    assert warmup.is_warm(cache)
    assert any(cache.glob("kernels_*/_jit.block_moments-*.nbi"))
    assert not any(cache.glob(warmup.STAGING_PREFIX + "*"))
    # A kernel command using this cache compiles nothing: it loads every function it runs.
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(500)))
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""\
        from edgeorch import kernels as K
        from edgeorch.kernels import _jit
        K.profile(K.read_table({str(data)!r}))
        misses = {{n: f.stats.cache_misses for n, f in vars(_jit).items() if hasattr(f, "stats")}}
        print(sum(sum(m.values()) for m in misses.values()))
        """)], env={**os.environ, "NUMBA_CACHE_DIR": str(cache)}, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "0"
    assert daemon.stop() == 0


# -- the Warmer, with a stand-in process ----------------------------------------------------------------------------


def test_close_kills_a_running_warm_up_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A stop is not a failure: the journal of a daemon stopped during its warm-up says nothing alarming.
    async def scenario() -> tuple[str, int, float]:
        w = Warmer(tmp_path / "cache", command=[sys.executable, "-c", "import time; time.sleep(600)"])
        w.start()
        while w.pid is None:
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        await w.close()
        return w.state, w.pid, time.monotonic() - t0

    with caplog.at_level("INFO", logger="edgeorch.kernels.warmup"):
        state, pid, took = asyncio.run(scenario())
    assert state == "stopped" and took < 2 and _gone(pid)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_failed_warm_up_is_reported_with_its_output(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> str:
        w = Warmer(tmp_path / "cache", command=[sys.executable, "-c", "import sys; sys.exit('no compiler here')"])
        w.start()
        state = await w.wait()
        await w.close()
        return state

    with caplog.at_level("WARNING", logger="edgeorch.kernels.warmup"):
        assert asyncio.run(scenario()) == "failed"
    assert "exit 1" in caplog.text and "no compiler here" in caplog.text


def test_a_warmer_that_is_off_starts_nothing(tmp_path: Path) -> None:
    async def scenario() -> str:
        w = Warmer(tmp_path / "cache", enabled=False, command=["false"])
        w.start()
        state = await w.wait()
        await w.close()
        return state

    assert asyncio.run(scenario()) == "off"
    assert not (tmp_path / "cache").exists()


def test_close_before_start_and_twice_is_harmless(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = Warmer(tmp_path / "cache", command=["true"])
        await w.close()
        w.start()
        await w.wait()
        await w.close()
        await w.close()

    asyncio.run(scenario())


# -- staged numba files, installed, loaded by a fresh process ------------------------------------------------------


STUB = '''
import numba

@numba.njit(cache=True)
def twice(x):
    return x * 2
'''

PROBE = '''
import sys
sys.path.insert(0, sys.argv[1])
import stubkern
print(stubkern.twice(21), stubkern.twice(1.5), sum(stubkern.twice.stats.cache_hits.values()),
      sum(stubkern.twice.stats.cache_misses.values()))
'''

INSTALL = '''
import sys
from pathlib import Path
import numba  # the index's overloads unpickle to numba types
from edgeorch.kernels.warmup import install
print(install(Path(sys.argv[1]), Path(sys.argv[2])))
'''


def test_staged_files_installed_into_a_cache_are_loaded_without_compiling(tmp_path: Path) -> None:
    """The real numba file layout: compile in a staging folder, install, then a fresh process only loads."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "stubkern.py").write_text(STUB)
    cache = tmp_path / "cache"
    staging = warmup.staging_dir(cache, 1)

    def run(code: str, *args: str, cache_dir: Path) -> str:
        proc = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert run(PROBE, str(src), cache_dir=staging) == "42 3.0 0 2"  # compiled: two signatures, two misses
    assert run(INSTALL, str(staging), str(cache), cache_dir=cache) == "Installed(installed=1, kept=0)"
    assert run(PROBE, str(src), cache_dir=cache) == "42 3.0 2 0"  # both loaded from the installed files
    # A second install of the same staged build keeps what is there (current index).
    assert run(PROBE, str(src), cache_dir=staging) == "42 3.0 2 0"
    assert run(INSTALL, str(staging), str(cache), cache_dir=cache) == "Installed(installed=0, kept=1)"
