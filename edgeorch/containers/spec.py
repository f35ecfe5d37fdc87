"""The task key ``container``: a task's command run inside an image (pure: no I/O).

::

    [tasks.train]
    command = ["python", "train.py", "--out", "{output_dir}"]
    container = { image = "localhost/trainer:3", mounts = ["/srv/data:/data:ro"] }

Keys (docs/containers.md): ``image`` (required; placeholders allowed),
``runtime`` (``podman`` or ``docker``; default ``[containers] runtime``),
``mounts`` (``"SOURCE:TARGET[:ro|rw]"``), ``user``, ``workdir`` (inside the
container), ``args`` (extra ``run`` options) and ``pull`` (``never``,
``missing``, ``always``).

:func:`check_task_container` is the one rule of the key; the pipeline parser
calls it. Errors go to the reader's list, naming ``tasks.T.container.KEY``,
the value and what was expected.
"""

from __future__ import annotations

import re

from ..records import frozen
from ..tomlcheck import TableReader
from . import RUNTIMES  # Container CLIs edgeorch drives (the same ``run`` options; ``[containers]`` says how)

PULL_POLICIES = ("never", "missing", "always")
"""When an image is pulled before an attempt: never (must be in local storage), if missing, every time."""
CONTAINER_KEYS = ["image", "runtime", "mounts", "user", "workdir", "args", "pull"]

EDGEORCH_ROOT = "/edgeorch"
"""Inside a container, edgeorch's own mount points live under this folder (reserved for it)."""

RESERVED_ARGS = ("-d", "--detach", "--name", "--rm", "--cidfile", "--replace", "--cpuset-cpus", "--cpus", "-m",
                 "--memory", "--memory-swap", "--gpus", "-t", "--tty", "-i", "--interactive", "-a", "--attach",
                 "--pull", "-w", "--workdir", "-u", "--user", "--sig-proxy")
"""``run`` options edgeorch sets itself (supervision, leases, the keys above): refused in ``args``."""

_SHORT_WITH_VALUE = frozenset("acehlmpuvw")
"""``run``'s one-letter options that take a value (``-e NAME``, ``-u 1000``): in a cluster, what follows one of them
is its value, not more options (``-edata`` sets ``data``; ``-dt`` is ``-d -t``)."""


def reserved_option(arg: str) -> str | None:
    """The :data:`RESERVED_ARGS` option ``arg`` sets, or None: ``--name=x`` as ``--name``, and a cluster of short
    options read as the runtime's parser reads it (``-dt`` sets ``-d``; ``-u0``, ``-w/etc``, ``-m1g`` set ``-u``,
    ``-w``, ``-m`` with a value). Only ``--name=`` was looked at: ``args = ["-dt"]`` detached the container, and the
    task was recorded a success when its command had not finished."""
    if arg.startswith("--"):
        flag = arg.split("=", 1)[0]
        return flag if flag in RESERVED_ARGS else None
    if not arg.startswith("-") or arg == "-":
        return None
    for letter in arg[1:]:
        if f"-{letter}" in RESERVED_ARGS:
            return f"-{letter}"
        if letter in _SHORT_WITH_VALUE or not letter.isalpha():
            return None  # the rest is this option's value
    return None


MOUNT_EXPECTED = ('"SOURCE:TARGET" or "SOURCE:TARGET:ro" (TARGET an absolute path inside the container, '
                  'not under /edgeorch; SOURCE relative to the pipeline file\'s folder when not absolute)')
_IMAGE_RE = re.compile(r"^[^\s\-][^\s]*$")
IMAGE_EXPECTED = ('a reference like "localhost/trainer:3", "docker.io/library/python:3.11" or '
                  '"name@sha256:<digest>" (no spaces, not starting with "-")')


def is_image_reference(text: str) -> bool:
    """Whether ``text`` may be handed to the runtime as an image reference: the key as written (placeholders in
    it), and what they were substituted into before the runtime sees it (``-p img=--help`` ran ``podman image
    inspect --help``)."""
    return bool(_IMAGE_RE.match(text))
_USER_RE = re.compile(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")


@frozen
class Mount:
    """One bind mount asked for by the task: ``source`` (a host path, placeholders allowed) at ``target``."""

    source: str
    target: str
    read_only: bool = False


@frozen
class ContainerSpec:
    """A task's ``container`` key, as written (placeholders not yet substituted).

    ``runtime`` None means the configured default (``[containers] runtime``);
    it and ``pull`` change how the image is found, not what runs, so they are
    left out of the task's definition hash (:func:`definition_part`).
    """

    image: str
    runtime: str | None = None
    mounts: tuple[Mount, ...] = ()
    user: str | None = None
    workdir: str | None = None
    args: tuple[str, ...] = ()
    pull: str = "missing"

    def texts(self) -> list[tuple[str, str]]:
        """``(key, string)`` of every string the engine substitutes placeholders in."""
        out = [("image", self.image)]
        out += [(f"mounts[{i}]", f"{m.source}:{m.target}") for i, m in enumerate(self.mounts)]
        if self.workdir:
            out.append(("workdir", self.workdir))
        out += [(f"args[{i}]", a) for i, a in enumerate(self.args)]
        return out


def definition_part(spec: ContainerSpec) -> dict[str, object]:
    """What of ``spec`` is part of the task's definition hash: everything that changes what runs.

    The image counts as written here; what it resolves to (its digest) is part
    of the cache key's inputs instead (``edgeorch.engine.inputs``), so a
    rebuilt tag misses the cache without changing the definition.
    """
    return {"image": spec.image, "mounts": [[m.source, m.target, m.read_only] for m in spec.mounts],
            "user": spec.user, "workdir": spec.workdir, "args": list(spec.args)}


def check_task_container(reader: TableReader, key: str = "container") -> ContainerSpec | None:
    """Read a task's ``container`` key (None when absent or wrong); problems go to the reader's errors."""
    if not reader.has(key):
        return None
    before = len(reader.errors)
    sub = reader.sub(key)
    if not isinstance(reader.data.get(key), dict):
        return None  # sub() reported "must be a table"
    image = sub.str("image", None, required=True)
    if image is not None and not is_image_reference(image):
        sub.fail("image", "is not an image reference", value=image, expected=IMAGE_EXPECTED)
    runtime = sub.choice("runtime", RUNTIMES, None)
    pull = sub.choice("pull", PULL_POLICIES, "missing")
    user = sub.str("user", None)
    if user is not None and not _USER_RE.match(user):
        sub.fail("user", "is not a user", value=user, expected='"NAME", "UID" or "UID:GID"')
    workdir = sub.str("workdir", None)
    if workdir is not None and not (workdir.startswith("/") or workdir.startswith("{")):
        sub.fail("workdir", "must be an absolute path inside the container", value=workdir,
                 expected='an absolute path such as "/work" (placeholders allowed)')
    mounts = []
    for i, text in enumerate(sub.str_list("mounts", [])):
        mount, problem = parse_mount(text)
        if problem:
            sub.fail(f"mounts[{i}]", problem, value=text, expected=MOUNT_EXPECTED)
        elif mount is not None:
            mounts.append(mount)
    targets = [m.target.rstrip("/") or "/" for m in mounts]  # `/x` and `/x/` are one target (the first won, unsaid)
    for t in targets:
        if targets.count(t) > 1:
            sub.fail("mounts", "mounts two folders at the same target", value=t, expected="each target once")
            break
    args = sub.str_list("args", [])
    for i, arg in enumerate(args):
        flag = reserved_option(arg)
        if flag is not None:
            sub.fail(f"args[{i}]", f"is an option edgeorch sets itself ({flag})", value=arg,
                     expected=f"other run options (edgeorch sets {', '.join(RESERVED_ARGS)} from the task's "
                              "command, leases and container keys)")
    sub.finish(CONTAINER_KEYS)
    if len(reader.errors) > before or image is None:
        return None
    return ContainerSpec(image=image, runtime=runtime, mounts=tuple(mounts), user=user, workdir=workdir,
                         args=tuple(args), pull=pull)


def parse_mount(text: str) -> tuple[Mount | None, str | None]:
    """``"SOURCE:TARGET[:ro|rw]"`` → (mount, None), or (None, what is wrong)."""
    parts = text.split(":")
    if len(parts) == 3:
        if parts[2] not in ("ro", "rw"):
            return None, f"has an unknown mount option {parts[2]!r} (ro or rw)"
    elif len(parts) != 2:
        return None, "is not SOURCE:TARGET[:ro|rw]"
    source, target = parts[0], parts[1]
    if not source or not target:
        return None, "has an empty source or target"
    if not target.startswith("/"):
        return None, "has a relative target"
    if target.rstrip("/") == EDGEORCH_ROOT or target.startswith(EDGEORCH_ROOT + "/"):
        return None, f"mounts under {EDGEORCH_ROOT}, which edgeorch reserves for its own folders"
    return Mount(source, target, read_only=len(parts) == 3 and parts[2] == "ro"), None


__all__ = [
    "CONTAINER_KEYS",
    "EDGEORCH_ROOT",
    "PULL_POLICIES",
    "RESERVED_ARGS",
    "RUNTIMES",
    "ContainerSpec",
    "Mount",
    "check_task_container",
    "definition_part",
    "parse_mount",
]
