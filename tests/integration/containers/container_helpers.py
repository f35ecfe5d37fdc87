"""Helpers of the container tests: the test image, podman as this machine runs it, an in-process engine."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import tarfile
import textwrap
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeorch.engine.engine import Engine
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store

APPLETS = ("sh", "cat", "echo", "sleep", "grep", "touch", "ls", "test", "[", "env", "pwd", "head", "true", "false",
           "mkdir", "cp", "kill", "id", "wc", "tr")


@dataclass
class Podman:
    """The runtime as this machine runs it: ``command`` (argv prefix) and a test image (per worker)."""

    command: list[str]
    image: str
    tmp: Path

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, *args], capture_output=True, text=True, check=check, timeout=timeout)

    def digest(self, ref: str) -> str:
        return self.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip().removeprefix("sha256:")

    def build(self, tag: str, marker: str = "") -> str:
        """Import a busybox root filesystem as ``tag`` (``marker`` written into it changes the content)."""
        tar = self.tmp / f"rootfs-{uuid.uuid4().hex}.tar"
        _rootfs_tar(tar, marker)
        try:
            self.run("import", "--quiet", str(tar), tag)
        finally:
            tar.unlink()
        return self.digest(tag)

    def containers(self, state_dir: Path) -> list[str]:
        """Names of the containers (any state) an engine on ``state_dir`` started."""
        out = self.run("ps", "-a", "--filter", f"label=edgeorch.state_dir={state_dir}", "--format", "{{.Names}}")
        return [n for n in out.stdout.split() if n]

    def config(self) -> str:
        """The ``[containers]`` table of a workspace's config."""
        argv = ", ".join(f'"{a}"' for a in self.command)
        return f"[containers]\npodman_command = [{argv}]\n"


def _rootfs_tar(path: Path, marker: str) -> None:
    busybox = Path(shutil.which("busybox") or "/bin/busybox").resolve()
    with tarfile.open(path, "w") as tar:
        def folder(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)

        for name in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            folder(name)
        tar.add(busybox, "bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        data = f"image {marker}\n".encode()
        info = tarfile.TarInfo("etc/edgeorch-test")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def is_static(path: str) -> bool:
    """No ELF interpreter: runs in an empty root filesystem."""
    try:
        with open(path, "rb") as f:
            return b"ld-linux" not in f.read(1 << 16)
    except OSError:
        return False


def run_pipeline(ws, name: str, *, during: Callable[[Engine, int], Awaitable[Any]] | None = None,
                 events: list[dict[str, Any]] | None = None, timeout: float = 60) -> tuple[int, RunState]:
    """Run ``name`` on an engine in this process; ``during(engine, run_id)`` may act meanwhile."""
    cfg = ws.config()
    report = validate_path(cfg.pipelines_dir)
    assert report.ok, [e.render() for e in report.errors]
    pipeline = report.pipelines[name]

    async def main() -> tuple[int, RunState]:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        if events is not None:
            engine.bus.subscribe(lambda event: events.append(event.to_wire()))
        await engine.start()
        try:
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            if during is not None:
                await during(engine, run_id)
            state = await asyncio.wait_for(engine.wait_run(run_id), timeout)
        finally:
            await engine.close()
            store.close()
        return run_id, state

    return asyncio.run(main())


async def until(cond: Callable[[], Any], timeout: float = 30, what: str = "condition") -> None:
    """Await ``cond()`` (polled on the loop; never a fixed sleep standing in for an event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


TRAPS_TERM = "trap 'echo got TERM; exit 3' TERM; echo started; while true; do sleep 0.1; done"
"""A container's PID 1 that says when it started, and ends with code 3 on SIGTERM after saying so."""


def cancel_once_started(ws, task: str) -> Callable[[Engine, int], Awaitable[None]]:
    """A ``during`` for :func:`run_pipeline`: cancel the run once ``task``'s first attempt has logged ``started``."""

    async def during(engine: Engine, run_id: int) -> None:
        log = ws.state / "runs" / str(run_id) / "attempts" / f"{task}.1" / "output.log"
        await until(lambda: log.exists() and "started" in log.read_text(), what=f"{task} to start")
        engine.cancel(run_id)

    return during


def pipeline_text(text: str) -> str:
    return textwrap.dedent(text)
