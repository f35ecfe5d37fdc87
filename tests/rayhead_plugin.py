"""The pytest side of the run's local Ray head (tests/rayhead.py): the ``ray_head`` fixture, and a head that
is up only while Ray tests run.

A test *needs the head* when it uses the ``ray_head`` fixture or carries the ``ray_head`` marker (a
parametrised test whose Ray case takes the fixture at run time, like the executor contract suite's).

- **Ray tests first**: collection puts them at the front, in their order (the other tests keep theirs).
  pytest-xdist's ``worksteal`` hands each worker a contiguous slice of the collection and steals from the
  *end* of a worker's queue, so all of them land on the one worker whose slice starts the run (unless a
  run has fewer tests than about 4 times the Ray tests: then they may spread, and each worker shares the
  head as below). Only that process imports Ray and connects to it.
- **Up only while needed**: the first Ray test of a worker takes the head (``rayhead.acquire``: started
  if none runs); right after its last one (the next test does not need it, or there is none) the worker
  disconnects and lets go (``rayhead.release``: the last user stops it). So its processes run for the
  first minute of the suite, not beside all of it. A worker that gets another Ray test later (xdist moved
  one) takes a head again.

Skipped, saying why, where the ``ray`` package is not installed.
"""

from __future__ import annotations

import os
import sys

import pytest
import rayhead

MARK = "ray_head"
SKIP_REASON = "ray is not installed (pip install 'edgeorch[ray]'; the test extra has it too)"


def needs_head(item: pytest.Item) -> bool:
    """Whether ``item`` uses the run's Ray head (the one rule for ordering, taking and letting go)."""
    return "ray_head" in getattr(item, "fixturenames", ()) or item.get_closest_marker(MARK) is not None


class _Held:
    """This process's hold on the head: None while it holds none."""

    head: rayhead.RayHead | None = None


_held = _Held()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: the test takes the ray_head fixture at run time "
                                       "(tests/rayhead_plugin.py orders it with the Ray tests)")


@pytest.hookimpl(trylast=True)  # after any other reordering, so the Ray tests stay together
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = sorted(items, key=lambda item: not needs_head(item))  # stable: each group keeps its order


@pytest.fixture
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> rayhead.RayHead:
    """The run's real local Ray head (127.0.0.1, 2 CPUs, a fake GPU), shared by all xdist workers."""
    pytest.importorskip("ray", reason=SKIP_REASON)
    if _held.head is None:
        base = tmp_path_factory.getbasetemp()
        # Under xdist each worker has a base of its own below the run's: the head is the run's.
        _held.head = rayhead.acquire(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)
    return _held.head


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not needs_head(item):
        _let_go()  # the worker's queue changed under its last Ray test (xdist took the next one away)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    yield  # the test's own fixtures (a daemon on the head, its executors) are gone first
    if nextitem is None or not needs_head(nextitem):
        _let_go()


def pytest_sessionfinish() -> None:
    _let_go()


def _let_go() -> None:
    """Disconnect this process from the head, then let go of it (the last user stops it); a no-op if not held."""
    head, _held.head = _held.head, None
    if head is None:
        return
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()  # before the head may stop: a driver that loses its head ends its process
    rayhead.release(head)
