"""Real podman for container tasks: an image built here with ``podman import`` (no network), the runtime flags
this machine needs found by trying, and an engine to run pipelines in-process.

Skipped, with the reason, where podman or a static busybox is missing, or no OCI runtime can start a
container (``.ci/run`` installs ``podman runc busybox-static``). What podman needs here is set by the fixture
itself: a ``containers.conf`` without default rlimits (runc in a sandbox may not raise them) in
``CONTAINERS_CONF``, and the first of crun/runc that works as the workspace's ``[containers] podman_command``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from container_helpers import Podman, is_static


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("podman is not installed (apt-get install podman runc busybox-static)")
    busybox = shutil.which("busybox")
    if busybox is None or not is_static(os.path.realpath(busybox)):
        pytest.skip("a static busybox is needed for the test image (apt-get install busybox-static)")
    tmp = tmp_path_factory.mktemp("podman")
    conf = tmp / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    saved = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)  # inherited by the engines, daemons and podman the tests start
    tag = f"localhost/edgeorch-test-busybox:{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
    try:
        try:
            Podman([exe], tag, tmp).build(tag)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"podman import failed: {exc.stderr.strip()[-300:]}")
        tried, found = [], None
        for flags in ([], ["--runtime", "runc"], ["--runtime", "crun"]):
            p = Podman([exe, *flags], tag, tmp)
            done = p.run("run", "--rm", "--network", "none", tag, "true", check=False)
            if done.returncode == 0:
                found = p
                break
            tried.append(f"{' '.join(flags) or 'default runtime'}: {done.stderr.strip()[-200:]}")
        if found is None:
            pytest.skip("podman cannot start a container here: " + "; ".join(tried))
        yield found
    finally:
        subprocess.run([exe, "rmi", "--force", tag], check=False, capture_output=True)
        if saved is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = saved


@pytest.fixture
def container_ws(workspace, podman):
    """A workspace whose config reaches podman as this machine needs; its containers removed after the test."""
    workspace.write_config(extra=podman.config(), kill_grace="1s")
    yield workspace
    for name in podman.containers(workspace.state):
        podman.run("rm", "--force", name, check=False)
