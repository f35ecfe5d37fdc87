"""Deployment targets: where a model's versions are staged and how its aliases are switched, atomically.

The contract (:class:`Target`) is what :mod:`edgeorch.models.deploy` uses;
two kinds implement it:

``path`` (:class:`PathTarget`), the default, under ``<dir>/<model>/``::

    versions/<V>/<files>      each deployed version, copied in whole (a "slot")
    <alias> -> versions/<V>   one symbolic link per alias (champion, canary, ...)
    current -> versions/<V>   the served alias's version (``serve``, default champion)
    weights.json              during a canary: the traffic split a serving process reads

``triton`` (:class:`TritonTarget`), a Triton model repository entry ``<dir>/<model>/``::

    <V>/<files>               numbered version folders (Triton's layout)
    config.pbtxt              the template plus ``version_policy: { specific: { versions: [...] } }``
                              listing the served version (and the canary's, while one runs)
    aliases.json              alias -> version, the record the policy is written from
    weights.json              as above

Guarantees, for both:

- **Staging** copies a version into its slot through a temporary folder
  (files fsynced) renamed into place: a slot is complete or absent. The
  copy's content is checked against the registered sha256 (or folder
  manifest): a model file changed since its registration is never served.
- **Switching** writes the new pointer beside the old one and renames it
  over it (``rename(2)``: a reader that follows ``current`` sees the old
  version or the new, never a missing or half-written one), then fsyncs the
  folder. Slots are never removed while a pointer may name them.
- Nothing here touches the state file; :mod:`edgeorch.models.deploy`
  records every step before and after calling in.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..durable import fsync_dir, write_atomic
from ..errors import EdgeorchError


log = logging.getLogger(__name__)


class StagingError(EdgeorchError):
    """A version cannot be staged (its files are gone, changed since registration, or cannot be copied)."""

    code = "staging_failed"


class Target(ABC):
    """One model's deployment target. ``root``: the model's folder; ``serve``: the alias ``current`` follows."""

    kind = ""

    def __init__(self, root: Path, serve: str = "champion") -> None:
        self.root = Path(root)
        self.serve = serve

    @abstractmethod
    def slot(self, version: int) -> Path:
        """The folder version ``version`` is staged in (its "idle slot" before a switch)."""

    @abstractmethod
    def alias_path(self, alias: str) -> Path:
        """What a serving process opens for ``alias`` (``EDGEORCH_MODEL_PATH`` of reload and health commands)."""

    @abstractmethod
    def switch(self, alias: str, version: int | None) -> None:
        """Point ``alias`` at ``version``'s slot (None: remove the alias), atomically; ``current`` follows
        the served alias. The slot must be staged. Idempotent."""

    @abstractmethod
    def points_at(self, alias: str) -> int | None:
        """The version ``alias`` points at on disk now, or None."""

    @abstractmethod
    def aliases_on_disk(self) -> dict[str, int]:
        """Every alias the target holds, with its version."""

    def refuse_links(self, path: Path) -> None:
        """Raise :class:`StagingError` when the model's folder, or a folder between it and ``path``, is a symbolic
        link: a deployment never writes through one. A model whose ``deploy.dir`` held ``<model>`` as a link to
        another model's serving folder staged its files over that model's served version, which its owner could
        not stage again (its files were gone)."""
        here = self.root
        parts = path.relative_to(self.root).parts[:-1] if path != self.root and path.is_relative_to(self.root) else ()
        for part in (None, *parts):
            if part is not None:
                here = here / part
            if os.path.islink(here):
                raise StagingError(f"{here} is a symbolic link (to {os.readlink(here)}): a model is never deployed "
                                   "through a link, which could point at another model's or anyone's folder",
                                   hint="remove the link, or set another deploy.dir")

    def agrees(self, alias: str, version: int) -> bool:
        """Whether the target already points ``alias`` (and what follows it) at ``version``."""
        return self.points_at(alias) == version

    def slot_problem(self, version: int, artifact: Mapping[str, Any]) -> str | None:
        """What is wrong with ``version``'s staged copy of the registered ``artifact`` (its content is not the
        registered sha256, a file is missing, the slot is gone), or None when it is intact: the check
        :meth:`stage` makes of a slot staged earlier, for a caller that must know (it says so in its record).
        :class:`StagingError` when the slot is reached through a symbolic link."""
        slot = self.slot(version)
        self.refuse_links(slot)
        if not slot.is_dir():
            return "is gone"
        return _slot_problem(slot, Path(artifact["path"]), artifact)

    def stage(self, version: int, artifact: Mapping[str, Any]) -> Path:
        """Copy the registered ``artifact`` (``kind``, ``path``, ``sha256``) into :meth:`slot`; idempotent.

        Raises :class:`StagingError` when its files are missing, changed since
        registration, or cannot be copied (a full disk).
        """
        slot = self.slot(version)
        self.refuse_links(slot)
        source = Path(artifact["path"])
        damaged = None
        if slot.is_dir():
            damaged = _slot_problem(slot, source, artifact)
            if damaged is None:
                return slot
            log.warning("model slot %s (version %s) %s: staging it again from %s", slot, version, damaged, source)
        if not source.exists():
            if damaged is not None:
                raise StagingError(f"version {version}'s copy in {slot} {damaged}, and its registered files are "
                                   f"gone ({source}): it cannot be served",
                                   hint="deploy another version; register the model again to serve this one")
            raise StagingError(f"version {version}'s files are gone: {source}",
                               hint="its run's outputs were removed; register the model again")
        slot.parent.mkdir(parents=True, exist_ok=True)
        tmp = slot.parent / f".staging-{slot.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            if artifact["kind"] == "folder":
                shutil.copytree(source, tmp, dirs_exist_ok=True, symlinks=False)
            else:
                shutil.copy2(source, tmp / source.name)
            _fsync_tree(tmp)
            digest = content_hash(tmp / source.name if artifact["kind"] != "folder" else tmp, artifact["kind"])
            if digest != artifact["sha256"]:
                raise StagingError(f"version {version}'s files changed since it was registered ({source}: sha256 "
                                   f"{digest[:12]}, registered {artifact['sha256'][:12]})",
                                   hint="a model file must not be rewritten after its task ended")
            if damaged is not None:  # a pointer may name the slot: the new copy replaces it in two renames
                aside = slot.parent / f".staging-damaged-{slot.name}-{os.getpid()}"
                os.rename(slot, aside)
                os.rename(tmp, slot)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(tmp, slot)
            _fsync_dir(slot.parent)
        except OSError as exc:
            raise StagingError(f"cannot stage version {version} in {slot}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return slot

    def clean_stale(self) -> None:
        """Remove staging folders a crash left behind (never a slot)."""
        for folder in (self.root, self.root / "versions"):
            if folder.is_dir():
                for p in folder.glob(".staging-*"):
                    shutil.rmtree(p, ignore_errors=True)
                # A link's temporary (``.<name>.tmp-<pid>``) and a file's (``.tmp-<pid>-<hex>``, write_atomic).
                for p in (*folder.glob(".*.tmp-*"), *folder.glob(".tmp-*")):
                    p.unlink(missing_ok=True)

    def write_weights(self, routes: Sequence[Mapping[str, Any]] | None) -> None:
        """Write ``weights.json`` (``{"model", "routes": [{alias, version, path, weight}]}``) or remove it (None)."""
        path = self.root / "weights.json"
        if routes is None:
            path.unlink(missing_ok=True)
            return
        doc = {"model": self.root.name, "routes": [dict(r) for r in routes]}
        atomic_write(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "serve": self.serve}


class PathTarget(Target):
    """``<dir>/<model>/versions/<V>``, one link per alias and ``current`` (see the module docstring)."""

    kind = "path"

    def slot(self, version: int) -> Path:
        return self.root / "versions" / str(version)

    def alias_path(self, alias: str) -> Path:
        return self.root / alias

    def switch(self, alias: str, version: int | None) -> None:
        self.refuse_links(self.root / alias if version is None else self.slot(version))
        names = [alias, "current"] if alias == self.serve else [alias]
        for name in names:
            if version is None:
                try:
                    os.unlink(self.root / name)
                except FileNotFoundError:
                    pass
            else:
                if not self.slot(version).is_dir():
                    raise StagingError(f"version {version} is not staged in {self.slot(version)}")
                replace_link(self.root / name, f"versions/{version}")
        _fsync_dir(self.root)

    def points_at(self, alias: str) -> int | None:
        try:
            target = os.readlink(self.root / alias)
        except OSError:
            return None
        m = re.fullmatch(r"versions/(\d+)", target)
        return int(m.group(1)) if m else None

    def agrees(self, alias: str, version: int) -> bool:
        return self.points_at(alias) == version and (alias != self.serve or self.points_at("current") == version)

    def aliases_on_disk(self) -> dict[str, int]:
        out = {}
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p.is_symlink() and p.name != "current" and not p.name.startswith("."):
                    v = self.points_at(p.name)
                    if v is not None:
                        out[p.name] = v
        return out


class TritonTarget(Target):
    """A Triton model repository entry (see the module docstring)."""

    kind = "triton"

    def __init__(self, root: Path, serve: str = "champion", template: str | None = None) -> None:
        super().__init__(root, serve)
        self.template = template

    def slot(self, version: int) -> Path:
        return self.root / str(version)

    def alias_path(self, alias: str) -> Path:
        v = self.points_at(alias)
        return self.slot(v) if v is not None else self.root

    def _aliases(self) -> dict[str, int]:
        try:
            data = json.loads((self.root / "aliases.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def switch(self, alias: str, version: int | None) -> None:
        self.refuse_links(self.root / "aliases.json" if version is None else self.slot(version))
        aliases = self._aliases()
        if version is None:
            aliases.pop(alias, None)
        else:
            if not self.slot(version).is_dir():
                raise StagingError(f"version {version} is not staged in {self.slot(version)}")
            aliases[alias] = version
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "aliases.json", json.dumps(aliases, indent=2, sort_keys=True) + "\n")
        atomic_write(self.root / "config.pbtxt", self.config_text(aliases))

    def config_text(self, aliases: Mapping[str, int]) -> str:
        """The template (or a minimal ``name:`` line) plus the version policy the aliases imply: the served
        version and the canary's, so Triton loads exactly those."""
        served = sorted({v for a, v in aliases.items() if a in (self.serve, "canary")})
        base = self._template_text()
        if served:
            policy = f"version_policy: {{ specific: {{ versions: [{', '.join(map(str, served))}] }} }}\n"
        else:
            policy = "version_policy: { specific: { versions: [] } }\n"
        return base + ("" if base.endswith("\n") or not base else "\n") + policy

    def _template_text(self) -> str:
        if self.template:
            text = Path(self.template).read_text()
            if "version_policy" in text:
                raise StagingError(f"the Triton config template {self.template} sets version_policy",
                                   hint="remove it: edgeorch writes the version policy from the aliases")
            return text
        return f'name: "{self.root.name}"\n'

    def points_at(self, alias: str) -> int | None:
        return self._aliases().get(alias)

    def aliases_on_disk(self) -> dict[str, int]:
        return self._aliases()


def make_target(kind: str, *, serving_dir: Path, model: str, serve: str = "champion",
                config: str | None = None) -> Target:
    """The target of ``kind`` for ``model`` under ``serving_dir``."""
    root = Path(serving_dir) / model
    if kind == "triton":
        return TritonTarget(root, serve, config)
    return PathTarget(root, serve)


# -- file primitives ----------------------------------------------------------------------------


def replace_link(link: Path, target: str) -> None:
    """Point the symbolic link ``link`` at ``target`` by renaming a new link over it (atomic for readers)."""
    tmp = link.parent / f".{link.name}.tmp-{os.getpid()}"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.rename(tmp, link)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path``: old or new, never half (:func:`~edgeorch.durable.write_atomic`)."""
    write_atomic(path, text.encode("utf-8"))


def _slot_problem(slot: Path, source: Path, artifact: Mapping[str, Any]) -> str | None:
    """What is wrong with a staged copy (its content is not the registered sha256), or None: a slot is checked
    before it is switched to, so a file changed in it (or removed) is never served."""
    content = slot if artifact["kind"] == "folder" else slot / source.name
    if not content.exists():
        return f"lacks {content.name}"
    try:
        digest = content_hash(content, artifact["kind"])
    except Exception as exc:  # noqa: BLE001 - an unreadable copy (a folder's InputError, an OSError) is damaged
        return f"cannot be read ({exc})"
    if digest != artifact["sha256"]:
        return f"changed since it was staged (sha256 {digest[:12]}, registered {str(artifact['sha256'])[:12]})"
    return None


def content_hash(path: Path, kind: str) -> str:
    """The registered kind of hash of ``path``: a file's sha256, a folder's manifest hash (the lineage rule)."""
    from ..engine.files import sha256_file
    from ..engine.inputs import hash_inputs

    if kind != "folder":
        return sha256_file(path)
    return hash_inputs("model", [(".", str(path))], path).items[0].sha256


def _fsync_dir(folder: Path) -> None:
    """:func:`~edgeorch.durable.fsync_dir`, skipped for a folder that cannot be opened (gone meanwhile);
    an error of the fsync itself is raised."""
    try:
        fsync_dir(folder)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM):
            raise


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))
