"""A container task's image resolved to its digest, before the attempt starts (in the engine's hashing worker).

:func:`resolve` asks the runtime's CLI (``image inspect``; ``pull`` as the
task's ``pull`` policy says) for the image's id: the sha256 of its
configuration, which changes whenever its content does. That digest is what
the attempt runs (``run sha256:<digest>``, so a tag moved meanwhile cannot
change what starts), what lineage records and what the cache key holds.

For a task that asks for GPUs, the CDI specs are read too: each leased GPU
is handed to the container as ``nvidia.com/gpu=<UUID>``, so a spec must
exist and name devices by UUID (:func:`cdi_gpu_names`).

Every failure is a :class:`ContainerError` naming the task's field, the
value and what to do; it fails the task before any attempt (like a missing
declared input). Blocking calls (subprocesses, file reads): never on the loop.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.inputs import ConsumedItem, InputError, InputsSnapshot
from ..records import frozen

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ContainersConfig
    from .spec import ContainerSpec

INSPECT_TIMEOUT_S = 60.0
"""The longest an ``image inspect`` may take (the runtime's storage lock can be held by a build)."""
PULL_TIMEOUT_S = 1800.0
"""The longest a ``pull`` may take (a CUDA image is gigabytes)."""
GPU_KIND = "nvidia.com/gpu"
"""The CDI device kind of NVIDIA GPUs (``nvidia-ctk cdi generate``)."""
CDI_HINT = ("generate one with: nvidia-ctk cdi generate --device-name-strategy=uuid "
            "--output=/etc/cdi/nvidia.yaml")

_MISSING = re.compile(r"image not known|no such image|no such object", re.IGNORECASE)


class ContainerError(InputError):
    """A container task cannot start: the message names the task's field, the value and what to do."""


@frozen
class ResolvedImage:
    """What an attempt runs: ``reference`` (as substituted) resolved to ``digest`` (64 hex) by ``runtime``.

    ``gpu_names``: the ``nvidia.com/gpu`` device names the CDI specs declare
    (None when the task asks for no GPU, so they were not read).
    """

    reference: str
    digest: str
    size: int
    runtime: str
    gpu_names: frozenset[str] | None = None

    @property
    def run_ref(self) -> str:
        """The reference ``run`` takes: the digest itself."""
        return f"sha256:{self.digest}"

    def item(self, written: str) -> ConsumedItem:
        """The image as a consumed item (lineage, the cache key): kind ``image``, path = the reference."""
        return ConsumedItem("image", self.reference, self.digest, self.size, spec=written)


def with_image(snapshot: InputsSnapshot, image: ResolvedImage, written: str) -> InputsSnapshot:
    """``snapshot`` with the image added as its last item (so it is recorded and keyed like an input)."""
    return replace(snapshot, items=(*snapshot.items, image.item(written)), image=image)


def snapshot_with_image(inputs: Callable[[], InputsSnapshot], task: str, spec: ContainerSpec, image: str,
                        config: ContainersConfig, *, gpus: bool) -> InputsSnapshot:
    """A container task's inputs: its image resolved (``image``: the reference substituted), then ``inputs()``.

    Runs in the engine's hashing worker. ``gpus``: the task asks for GPUs
    (then the CDI specs are read too). Raises :class:`ContainerError` (or the
    inputs' :class:`InputError`).
    """
    runtime = spec.runtime or config.runtime
    resolved = resolve(config.command(runtime), runtime, image, spec.pull, where=f"tasks.{task}.container",
                       cdi_dirs=config.cdi_spec_dirs if gpus else None)
    return with_image(inputs(), resolved, spec.image)


def resolve(command: Sequence[str], runtime: str, reference: str, pull: str, *, where: str,
            cdi_dirs: Sequence[str] | None = None) -> ResolvedImage:
    """Resolve ``reference`` with the runtime CLI ``command`` (argv prefix) under pull policy ``pull``.

    ``where`` names the field in errors (``tasks.train.container``).
    ``cdi_dirs``: given for a task that asks for GPUs; then a CDI spec for
    ``nvidia.com/gpu`` must exist there (checked first: it needs no runtime).
    Raises :class:`ContainerError`.
    """
    from .spec import IMAGE_EXPECTED, is_image_reference

    if not is_image_reference(reference):  # a param substituted into the key: checked as the key is
        raise ContainerError(f"{where}.image = {reference!r}: is not an image reference once its placeholders are "
                             f"filled in; expected {IMAGE_EXPECTED}")
    names = None
    if cdi_dirs is not None:
        names = cdi_gpu_names(cdi_dirs)
        if not names:
            raise ContainerError(
                f"{where}: the task asks for GPUs but no CDI spec for {GPU_KIND} is in {', '.join(cdi_dirs)} "
                f"({runtime} hands GPUs to containers through CDI); {CDI_HINT}")
    found = None if pull == "always" else _inspect(command, runtime, reference, where)
    if found is None:
        if pull == "never":
            raise ContainerError(
                f"{where}.image = {reference!r}: not in {runtime}'s local storage and {where}.pull = \"never\"; "
                f"build or load it first ({runtime} build, {runtime} load or {runtime} import), "
                f"or allow a pull with pull = \"missing\"")
        _pull(command, runtime, reference, where)
        found = _inspect(command, runtime, reference, where)
        if found is None:
            raise ContainerError(f"{where}.image = {reference!r}: {runtime} pulled it but cannot find it afterwards")
    digest, size = found
    return ResolvedImage(reference, digest, size, runtime, names)


def _run(command: Sequence[str], args: list[str], runtime: str, where: str,
         timeout: float) -> subprocess.CompletedProcess[str]:
    argv = [*command, *args]
    try:
        return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ContainerError(
            f"{where}: the container runtime {runtime} is not installed: {command[0]!r} was not found "
            f"(install {runtime}, or set [containers] {runtime}_command to its path)") from None
    except PermissionError:
        raise ContainerError(f"{where}: the container runtime {runtime} cannot be run: {command[0]!r} is not "
                             f"executable by this user") from None
    except subprocess.TimeoutExpired:
        raise ContainerError(f"{where}: {' '.join(argv)} did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise ContainerError(f"{where}: cannot run {command[0]!r}: {exc.strerror or exc}") from None


def _inspect(command: Sequence[str], runtime: str, reference: str, where: str) -> tuple[str, int] | None:
    """(digest, size) of a local image, or None when the runtime does not have it."""
    done = _run(command, ["image", "inspect", "--format", "{{.Id}} {{.Size}}", reference], runtime, where,
                INSPECT_TIMEOUT_S)
    if done.returncode != 0:
        message = _last_line(done.stderr)
        if _MISSING.search(message):
            return None
        raise ContainerError(f"{where}: the container runtime {runtime} failed to inspect {reference!r}: {message}")
    try:
        first = done.stdout.strip().splitlines()[0]
        ident, size = first.split()
        digest = ident.removeprefix("sha256:")  # docker says sha256:<hex>, podman <hex>
        nbytes = int(size)
    except (IndexError, ValueError):
        raise ContainerError(f"{where}: {runtime} image inspect {reference!r} gave an unexpected answer: "
                             f"{done.stdout.strip()[:200]!r}") from None
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ContainerError(f"{where}: {runtime} gave {digest!r} as the id of {reference!r}, not a sha256 digest")
    return digest, nbytes


def _pull(command: Sequence[str], runtime: str, reference: str, where: str) -> None:
    done = _run(command, ["pull", "--quiet", reference] if runtime == "podman" else ["pull", reference], runtime,
                where, PULL_TIMEOUT_S)
    if done.returncode != 0:
        raise ContainerError(
            f"{where}.image = {reference!r}: {runtime} cannot pull it: {_last_line(done.stderr)} (no network? build "
            f"or load the image on this machine and set pull = \"never\")")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


_NAME_RE = re.compile(r"""(?<![A-Za-z_])["']?name["']?\s*:\s*["']?([^"',\s}]+)""")
_KIND_RE = re.compile(r"""["']?kind["']?\s*:\s*["']?([^"',\s}]+)""")


def cdi_gpu_names(dirs: Sequence[str]) -> frozenset[str]:
    """The device names of every CDI spec of kind ``nvidia.com/gpu`` in ``dirs`` (YAML or JSON files).

    Read with a light pattern (no YAML parser): a spec's ``kind`` and its
    devices' ``name`` fields. Unreadable files and folders count as absent.
    """
    names: set[str] = set()
    for folder in dirs:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith((".yaml", ".yml", ".json")):
                continue
            try:
                text = Path(entry.path).read_text(errors="replace")
            except OSError:
                continue
            kinds = _KIND_RE.findall(text)
            if GPU_KIND in kinds:
                names.update(_NAME_RE.findall(text))
    return frozenset(names)


__all__ = [
    "CDI_HINT",
    "GPU_KIND",
    "ContainerError",
    "ResolvedImage",
    "cdi_gpu_names",
    "resolve",
    "snapshot_with_image",
    "with_image",
]
