"""The ``run`` command line of one container attempt, its cleanup, and its exit read as a host task's (pure).

The attempt's leader is the runtime's CLI running the container in the
foreground (``podman run --rm ...``), supervised by the shim like any task:
its output is the container's (the per-attempt log), its exit status is the
container's. A stop sends its SIGTERM to the container's own processes, not
to the runtime's (``SpawnRequest.forwards_stop``; the client, with
``--sig-proxy=true``, forwards it when the container has none yet), and
its SIGKILL after the grace to every process below the shim (conmon and the
container's processes are re-parented to the shim, a child subreaper). What
the runtime keeps about a container whose client and monitor were killed
(a stop that had to SIGKILL, a vanished supervisor) is removed by the
attempt's cleanup command (``rm --force``), which the supervisor runs.

Folders (docs/containers.md, "Folders"): every folder the task is told about
is mounted **at the same path** inside, so ``$EDGEORCH_OUTPUT_DIR``,
``{output_dir}``, upstream paths and declared inputs mean the same thing in
and out; the output and checkpoint folders are also at ``/edgeorch/output``
and ``/edgeorch/checkpoints`` for images that want fixed paths.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..pipelines.substitute import substitute
from ..records import frozen
from ..resources.oom import explain as oom_reason
from .spec import EDGEORCH_ROOT, ContainerSpec, Mount

OUTPUT_ALIAS = f"{EDGEORCH_ROOT}/output"
CHECKPOINT_ALIAS = f"{EDGEORCH_ROOT}/checkpoints"

HOST_ONLY_VARS = frozenset({"EDGEORCH_STATE_FILE", "EDGEORCH_RESULT_FILE", "NUMBA_CACHE_DIR", "PYTHONPATH"})
"""Task variables naming host files that are not mounted: not passed into a container."""
CLIENT_VARS = frozenset({"PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                         "REGISTRY_AUTH_FILE", "CONTAINER_HOST", "CONTAINER_CONNECTION", "STORAGE_DRIVER",
                         "STORAGE_OPTS", "BUILDAH_ISOLATION", "NOTIFY_SOCKET"})
CLIENT_PREFIXES = ("LD_", "CONTAINERS_", "DOCKER_", "PODMAN_")


def client_reads(name: str) -> bool:
    """Whether the runtime's client on the host (podman and its conmon, docker) reads the variable ``name`` itself.

    A task's value for one is handed to the container as ``--env NAME=VALUE`` and its client keeps the daemon's
    own: passed by name, the task's ``env = { PATH = "/opt/venv/bin:..." }`` (an image's PATH) made podman miss
    iptables, ``TMPDIR`` or ``CONTAINERS_CONF`` broke it, and an ``LD_PRELOAD`` meant for the image was loaded into
    the root runtime on the host."""
    return name in CLIENT_VARS or name.startswith(CLIENT_PREFIXES)


LEASE_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
              "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")


@frozen
class BindMount:
    """``source`` (host) at ``target`` (inside); ``read_only`` unless the task writes there."""

    source: str
    target: str
    read_only: bool = True

    def option(self) -> str:
        """The ``--mount`` value (both runtimes take it; unlike ``-v`` it never creates a missing source)."""
        return f"type=bind,source={self.source},target={self.target}" + (",readonly" if self.read_only else "")


@frozen
class AttemptPlan:
    """One attempt of a container task, substituted and leased: everything :func:`run_argv` needs."""

    runtime_command: tuple[str, ...]
    runtime: str
    spec: ContainerSpec
    """The task's container key with placeholders substituted."""
    image_ref: str
    """What ``run`` starts: the resolved digest (``sha256:...``)."""
    name: str
    cidfile: str
    command: tuple[str, ...]
    env_names: tuple[str, ...]
    """Variables passed by name (``--env NAME``: the value from the client's environment, never in ``ps``)."""
    mounts: tuple[BindMount, ...]
    workdir: str
    cpus: tuple[int, ...] | None = None
    memory: int = 0
    gpus: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    env_values: tuple[tuple[str, str], ...] = ()
    """Variables passed with their value (``--env NAME=VALUE``): those the client reads itself (:func:`client_reads`)."""


def substitute_container(spec: ContainerSpec, values: dict[str, Any]) -> ContainerSpec:
    """``spec`` with its placeholders (checked at parse time) replaced by an attempt's ``values``."""
    return replace(spec, image=substitute(spec.image, values),
                   mounts=tuple(Mount(substitute(m.source, values), substitute(m.target, values), m.read_only)
                                for m in spec.mounts),
                   workdir=substitute(spec.workdir, values) if spec.workdir else None,
                   args=tuple(substitute(a, values) for a in spec.args))


def container_name(run_id: int, task: str, number: int, attempt_dir: str) -> str:
    """A name unique to the attempt (its folder is: several state folders may share one runtime).

    ``edgeorch-<run>-<task>.<attempt>-<hash of the attempt folder>``; readable in ``podman ps``.
    """
    digest = hashlib.sha256(os.fsencode(attempt_dir)).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", task)
    return f"edgeorch-{run_id}-{safe}.{number}-{digest}"


def run_argv(plan: AttemptPlan) -> list[str]:
    """The command line that runs the attempt's container in the foreground and removes it when it ends.

    Options edgeorch owns come first (the task's ``args`` cannot set them:
    ``spec.RESERVED_ARGS``); the task's ``args`` come just before the image.
    Variables are passed by name (``--env NAME``): values come from the
    client's environment, so they never show in ``ps``; but for those the
    client reads itself (:func:`client_reads`: ``PATH``, ``LD_PRELOAD``...),
    passed with their value.
    """
    spec = plan.spec
    argv = [*plan.runtime_command, "run", "--rm", "--name", plan.name, "--cidfile", plan.cidfile,
            "--sig-proxy=true", "--workdir", plan.workdir]
    if plan.runtime == "podman":
        argv.append("--replace")  # a container of a state folder deleted meanwhile must not block this one
    for key, value in plan.labels:
        argv += ["--label", f"{key}={value}"]
    if plan.cpus:
        argv += ["--cpuset-cpus", ",".join(str(c) for c in plan.cpus)]
    if plan.memory:
        # Swap at the same bound: over its memory the task is OOM-killed, as under a host cgroup.
        argv += ["--memory", str(plan.memory), "--memory-swap", str(plan.memory)]
    for uuid in plan.gpus:
        argv += ["--device", f"nvidia.com/gpu={uuid}"]
    if spec.user:
        argv += ["--user", spec.user]
    for m in plan.mounts:
        argv += ["--mount", m.option()]
    for name in plan.env_names:
        argv += ["--env", name]
    for name, value in plan.env_values:
        argv += ["--env", f"{name}={value}"]
    argv += list(spec.args)
    argv.append(plan.image_ref)
    argv += list(plan.command)
    return argv


def cleanup_argv(runtime_command: Sequence[str], name: str) -> list[str]:
    """Remove the attempt's container, whatever state its runtime thinks it is in (no error when gone)."""
    return [*runtime_command, "rm", "--force", "--ignore", name] if runtime_command else []


def docker_cleanup_argv(runtime_command: Sequence[str], name: str) -> list[str]:
    """Docker's ``rm`` has no ``--ignore``: a missing container is an error it prints, harmlessly."""
    return [*runtime_command, "rm", "--force", name]


def cleanup_for(runtime: str, runtime_command: Sequence[str], name: str) -> list[str]:
    """The cleanup command of ``runtime``."""
    return docker_cleanup_argv(runtime_command, name) if runtime == "docker" else cleanup_argv(runtime_command, name)


def env_names(task_vars: Iterable[str], lease_vars: Iterable[str]) -> tuple[str, ...]:
    """The variables a container gets: the task's own (edgeorch's, params, upstream, the run's, ``env``) and
    the lease's, less those naming host files that are not mounted. Nothing else of the daemon's environment
    (``PATH``, ``HOME``, ... come from the image)."""
    names = [n for n in task_vars if n not in HOST_ONLY_VARS]
    names += [n for n in lease_vars if n not in names]
    return tuple(names)


def mounts_for(*, output_dir: str, checkpoint_dir: str, run_dir: str, pipeline_dir: str,
               read: Iterable[str], asked: Iterable[tuple[str, str, bool]]) -> tuple[BindMount, ...]:
    """The attempt's bind mounts: the task's own ``asked`` ones (source, target, read_only: absolute), then its
    output and checkpoint folders (writable, at their paths and at the ``/edgeorch`` aliases), the run and
    pipeline folders and every path in ``read`` (read-only, at their paths).

    One mount per target (runtimes refuse two): the first wins, so a task's own
    mount overrides edgeorch's at the same path; a path inside a folder already
    mounted is not mounted again (it is visible through its folder), except the
    writable folders, mounted over a read-only parent.
    """
    out: list[BindMount] = []
    targets: set[str] = set()

    def add(source: str, target: str, read_only: bool) -> None:
        target = os.path.normpath(target)
        if target in targets or target == "/":
            return  # one mount per target; never over the image's root (a glob at the top of the tree)
        if read_only and any(_inside(target, m.target) for m in out):
            return  # visible through a folder already mounted
        targets.add(target)
        out.append(BindMount(os.path.normpath(source), target, read_only))

    for source, target, ro in asked:
        add(source, target, ro)
    for folder in (output_dir, checkpoint_dir):
        add(folder, folder, False)
    add(output_dir, OUTPUT_ALIAS, False)
    add(checkpoint_dir, CHECKPOINT_ALIAS, False)
    for path in (run_dir, pipeline_dir, *read):
        add(path, path, True)
    return tuple(out)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


SIGNAL_BASE = 128
"""A container runtime reports a main process killed by signal N as exit code 128 + N."""

OOM_MARKER = "oom"
"""The empty file podman's monitor (conmon 2.1) creates in its working folder when the container's memory
cgroup reports an OOM kill. The runtime's client, and so conmon, runs in the attempt folder (the engine
spawns it there), so the marker lands in ``<attempt folder>/oom``: the record :func:`exit_as_host` reads.
(Podman's own ``State.OOMKilled`` misses it then, and a ``--rm`` container cannot be inspected after
its end anyway.)"""


def oom_recorded(attempt_dir: str | os.PathLike[str]) -> bool | None:
    """Whether the attempt's container left an OOM record (True), or None: no record (nothing says either way).

    A stat of one file, cheap enough for the loop.
    """
    return True if os.path.exists(os.path.join(attempt_dir, OOM_MARKER)) else None


_RUNTIME_CODES = {125: "a container it could not run", 126: "a command it could not invoke in the image",
                  127: "a command not found in the image"}
"""What the runtime means by 125-127 (``podman run``, ``docker run``); a command inside may exit with them too."""


def exit_as_host(exit_code: int | None, signal: int | None, *, memory: int = 0, oom: bool | None = None,
                 stopped: bool = False, last_line: str | None = None,
                 created: bool | None = None) -> tuple[int | None, int | None, str | None]:
    """A container attempt's ``(exit_code, signal)`` read as a host task's, with a reason where one helps.

    ``128 + N`` (N ≤ 64) becomes "killed by signal N" (the runtime's way to
    say it). 125-127 are the runtime's codes for its own failures, and a command inside may exit with them too:
    the reason quotes the log's ``last_line`` (the runtime's message, or the command's own last words) and names
    both readings; a 125 before the container was ``created`` (no ``container.id``: a bad option, an image it
    could not use) is the runtime's alone. ``memory`` (the bound, bytes), ``oom`` (the container's OOM record:
    :func:`oom_recorded`) and ``stopped`` (edgeorch stopped it) go to the one rule of OOM reasons,
    :func:`edgeorch.resources.oom.explain`: an OOM kill reads ``killed: out of memory (memory bound N)``.
    """
    if signal is None and exit_code is not None and SIGNAL_BASE < exit_code <= SIGNAL_BASE + 64:
        signal = exit_code - SIGNAL_BASE  # two statements: mypy checks a tuple assignment item by item
        exit_code = None
    why = oom_reason(exit_code, signal, memory=memory, killed=oom, stopped=stopped)
    if why is not None or signal is not None or exit_code is None:
        return exit_code, signal, why
    if exit_code not in _RUNTIME_CODES:
        return exit_code, None, None
    said = f": {last_line}" if last_line else " (see the log)"
    if exit_code == 125 and created is False:
        return 125, None, f"the container runtime could not create the container (exit code 125){said}"
    return exit_code, None, (f"exited with code {exit_code}{said} (the container runtime's code for "
                             f"{_RUNTIME_CODES[exit_code]}, or the command's own)")


def labels_of(run_id: int, task: str, number: int, pipeline: str, state_dir: str) -> tuple[tuple[str, str], ...]:
    """Labels on the container, for people and scripts looking at the runtime (``podman ps --filter label=``)."""
    return (("edgeorch.run", str(run_id)), ("edgeorch.task", task), ("edgeorch.attempt", str(number)),
            ("edgeorch.pipeline", pipeline), ("edgeorch.state_dir", state_dir))


def lease_names(env: Mapping[str, str]) -> list[str]:
    """The lease variables present in ``env`` (what :func:`env_names` takes as ``lease_vars``)."""
    return [n for n in LEASE_VARS if n in env]


__all__ = [
    "CHECKPOINT_ALIAS",
    "HOST_ONLY_VARS",
    "LEASE_VARS",
    "OOM_MARKER",
    "OUTPUT_ALIAS",
    "AttemptPlan",
    "BindMount",
    "cleanup_for",
    "container_name",
    "env_names",
    "exit_as_host",
    "labels_of",
    "lease_names",
    "mounts_for",
    "oom_recorded",
    "run_argv",
    "substitute_container",
]
