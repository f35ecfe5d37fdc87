"""tests/rayhead_plugin.py in a real pytest process: the Ray tests run first, and the head is taken at the
first of them and let go right after the last (not at the end of the session).

A small project of tests is run by ``python -m pytest`` in a subprocess with the plugin; its conftest
stands in for the head (``rayhead.acquire``/``release`` record what they are asked) and for the ``ray``
package (a stub module), so no cluster is started and Ray need not be installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]

CONFTEST = '''
import sys, types
import pytest
import rayhead

ray = types.ModuleType("ray")
ray.is_initialized = lambda: True
ray.shutdown = lambda: EVENTS.append("shutdown")
sys.modules["ray"] = ray
EVENTS = []
rayhead.acquire = lambda shared: EVENTS.append("acquire") or rayhead.RayHead("127.0.0.1:1")
rayhead.release = lambda head: EVENTS.append("release")


@pytest.fixture(autouse=True)
def record(request):
    EVENTS.append(request.node.name)


def pytest_sessionfinish(session):
    with open(session.config.rootpath / "events.txt", "w") as out:
        out.write("\\n".join(EVENTS))
'''

TESTS_A = '''
import pytest

def test_local_one():
    pass

def test_on_ray(ray_head):
    assert ray_head.address == "127.0.0.1:1"

def test_local_two():
    pass
'''

TESTS_B = '''
import pytest

@pytest.fixture(params=[pytest.param("local", id="local"), pytest.param("ray", id="ray", marks=pytest.mark.ray_head)])
def impl(request):
    if request.param == "ray":
        request.getfixturevalue("ray_head")
    return request.param

def test_contract(impl):
    pass
'''


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_a.py").write_text(textwrap.dedent(TESTS_A))
    (tmp_path / "test_b.py").write_text(textwrap.dedent(TESTS_B))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "rayhead_plugin", "-p", "no:cacheprovider", "-n", "0", "-q",
         "-o", "addopts=", f"--rootdir={tmp_path}", *args, str(tmp_path)],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TESTS)}, capture_output=True, text=True, check=False,
        timeout=120)


def test_ray_tests_run_first_and_the_head_is_let_go_right_after_the_last(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    events = (tmp_path / "events.txt").read_text().split("\n")
    assert events == ["test_on_ray", "acquire", "test_contract[ray]", "shutdown", "release",
                      "test_local_one", "test_local_two", "test_contract[local]"], events


def test_collection_order_puts_tests_that_need_the_head_first_in_their_order(tmp_path):
    done = _run(tmp_path, "--collect-only")
    assert done.returncode == 0, done.stdout + done.stderr
    names = [line.split("::")[-1] for line in done.stdout.splitlines() if "::" in line]
    assert names == ["test_on_ray", "test_contract[ray]", "test_local_one", "test_local_two",
                     "test_contract[local]"], names
