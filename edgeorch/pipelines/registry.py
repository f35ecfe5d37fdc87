"""The pipelines-folder registry: the daemon's view of the pipelines folder, reloaded when files change.

Contract: a reload is two steps. :meth:`PipelineRegistry.scan` reads and
parses the folder and touches no registry state, so it runs in a worker thread
(a large or slow file never stalls the event loop); a file whose bytes did not
change since the last scan is not parsed again. :meth:`PipelineRegistry.apply`
then installs the outcome on the event loop. A file that became invalid keeps
serving its previous valid pipeline (runs keep starting from it) and its
errors are reported (:meth:`PipelineRegistry.stale` says so for each such pipeline, listings show it); a
daemon started while a file has errors keeps serving the last version stored from it
(:meth:`PipelineRegistry.keep_last_valid`), so a restart does not change what runs; a deleted file's pipeline
goes away. A pipeline's
identity for runs is its content hash, stored with each run, so reloading
never changes what a running run executes. ``ReloadResult.unchanged`` is true
when no file's content changed: the daemon then records no reload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import EdgeorchError, NotFoundError
from ..model import Pipeline
from ..records import frozen
from ..tomlcheck import suggest
from .load import Holders, load_pipeline_bytes, not_loaded_error, pipeline_files, read_pipeline_bytes, settle_names


@dataclass
class ReloadResult:
    """What a reload of the pipelines folder did, by pipeline name."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[EdgeorchError] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Pipelines whose file is now invalid; the previous version is kept."""
    unchanged: bool = False
    """No file was added, removed or changed in content since the previous reload."""

    def summary(self) -> str:
        """``2 added (a, b), 1 removed (c)``: what a reload did, each pipeline named (the first five)."""
        def named(names: Any) -> str:
            shown = sorted(names)
            more = f", and {len(shown) - 5} more" if len(shown) > 5 else ""
            return f" ({', '.join(shown[:5])}{more})"

        parts = [f"{len(v)} {k}{named(v)}" for k, v in (("added", self.added), ("changed", self.changed),
                                                         ("removed", self.removed), ("kept after errors", self.kept))
                 if v]
        if self.unchanged:
            return "unchanged"
        return ", ".join(parts) or "no changes"


@frozen
class FileScan:
    """One file's outcome: the sha256 of its bytes (None: unreadable), its pipeline or its errors."""

    digest: str | None
    pipeline: Pipeline | None
    errors: tuple[EdgeorchError, ...]


@frozen
class FolderScan:
    """A scan of the folder (files in sorted order); ``exists`` is false when the folder is missing."""

    files: dict[Path, FileScan]
    exists: bool


class PipelineRegistry:
    """Valid pipelines by name, from the ``*.toml`` files of one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_file: dict[Path, Pipeline] = {}
        self.errors: list[EdgeorchError] = []
        self._stale: dict[str, EdgeorchError] = {}
        self._scanned: dict[Path, FileScan] = {}
        self._loaded = False
        self.folder_missing = False
        """The last scan found no folder at :attr:`folder` (what was loaded before is kept, each pipeline stale):
        the daemon's path check reloads once a folder is there again, even the same one moved back (its watch
        follows the inode: no event would say it returned)."""
        self.stored_holders: Callable[[], Holders] = dict
        """Which file the state file last loaded each name from (the daemon sets it once its store is open):
        who keeps a name two files declare at the first load (:func:`~.load.settle_names`)."""

    def stale(self, name: str) -> EdgeorchError | None:
        """The first error of the file of pipeline ``name`` when it is served from its last valid version (the
        file has errors now), else None."""
        return self._stale.get(name)

    def keep_last_valid(self, stored: Callable[[Path], Pipeline | None]) -> list[str]:
        """At start: for each file of the folder that has errors and serves nothing, serve ``stored(file)`` (the
        last version the state file holds from it, or None), as a running registry keeps the previous version of
        a file that breaks. Returns the names kept. A name another file already serves is not kept."""
        kept: list[str] = []
        names = {p.name for p in self.by_file.values()}
        for f, fs in self._scanned.items():
            if fs.pipeline is not None or f in self.by_file:
                continue
            pipe = stored(f)
            if pipe is None or pipe.name in names:
                continue
            self.by_file[f] = pipe
            names.add(pipe.name)
            if fs.errors:
                self._stale[pipe.name] = fs.errors[0]
            kept.append(pipe.name)
        return kept

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        return {p.name: p for p in sorted(self.by_file.values(), key=lambda p: p.name)}

    def get(self, name: str) -> Pipeline:
        """The pipeline called ``name``; a broken file that declares it: its error; else NotFoundError with a did-you-mean."""
        for p in self.by_file.values():
            if p.name == name:
                return p
        broken = not_loaded_error(name, self.errors)
        if broken is not None:
            raise broken
        names = sorted(p.name for p in self.by_file.values())
        close = suggest(name, names)
        raise NotFoundError(f"no pipeline named {name!r}", value=name, expected=f"one of {', '.join(names) or '(none)'}",
                            hint=f"did you mean {close!r}?" if close else None)

    def scan(self) -> FolderScan:
        """Read and parse the folder; safe in a worker thread (reads ``_scanned``, writes nothing).

        Each file is read once, bounded (:data:`~edgeorch.pipelines.MAX_PIPELINE_BYTES`);
        a file with the same bytes as last time reuses the previous outcome.
        """
        if not self.folder.is_dir():
            return FolderScan({}, False)
        previous = dict(self._scanned)
        out: dict[Path, FileScan] = {}
        for f in pipeline_files(self.folder):
            try:
                raw = read_pipeline_bytes(f)
            except EdgeorchError as exc:
                out[f] = FileScan(None, None, (exc,))
                continue
            digest = hashlib.sha256(raw).hexdigest()
            old = previous.get(f)
            if old is not None and old.digest == digest:
                out[f] = old
                continue
            pipe, errors = load_pipeline_bytes(raw, f)
            out[f] = FileScan(digest, pipe, tuple(errors))
        return FolderScan(out, True)

    def apply(self, scan: FolderScan) -> ReloadResult:
        """Install a scan (on the event loop): the new pipelines, the errors, and what changed.

        A scan that found no folder (moved away, a mount gone) keeps every pipeline loaded, served from its last
        version with the folder's error, as a broken file keeps its last valid version: a reload meanwhile
        (SIGHUP, ``edgeorch reload``) unloaded them all, and every schedule stopped without a word until the next
        reload by hand (the folder moved back was the one watched: nothing said it was back)."""
        missing = EdgeorchError("the pipelines folder does not exist", file=str(self.folder))
        self.folder_missing = not scan.exists
        if not scan.exists and self.by_file:
            result = ReloadResult(errors=[missing], kept=sorted(p.name for p in self.by_file.values()))
            self.errors = result.errors
            self._stale = {p.name: missing for p in self.by_file.values()}
            return result
        result = ReloadResult()
        stale_files: dict[Path, tuple[str, EdgeorchError]] = {}
        candidates: list[tuple[Path, Pipeline]] = []
        for f, fs in scan.files.items():
            pipe = fs.pipeline
            if pipe is None:
                result.errors.extend(fs.errors)
                old = self.by_file.get(f)
                if old is None:
                    continue
                pipe = old
                result.kept.append(old.name)
                if fs.errors:
                    stale_files[f] = (old.name, fs.errors[0])
            candidates.append((f, pipe))
        # A name stays with the file that serves it now (else the one the state file last loaded it from).
        holders = {**self.stored_holders(), **{p.name: (str(f), p.content_hash) for f, p in self.by_file.items()}}
        broken = [f for f, fs in scan.files.items() if fs.pipeline is None and f not in self.by_file]
        chosen, duplicates = settle_names(candidates, holders, broken)
        result.errors.extend(duplicates)
        names: dict[str, Path] = {name: f for name, (f, _pipe) in chosen.items()}
        new: dict[Path, Pipeline] = {f: pipe for f, pipe in chosen.values()}
        stale = {name: err for f, (name, err) in stale_files.items() if names.get(name) == f}
        old_by_name = {p.name: p for p in self.by_file.values()}
        for name, f in names.items():
            if name not in old_by_name:
                result.added.append(name)
            elif old_by_name[name].content_hash != new[f].content_hash:
                result.changed.append(name)
        result.removed = sorted(set(old_by_name) - set(names))
        if not scan.exists:
            result.errors.append(missing)
        before = {f: s.digest for f, s in self._scanned.items()}
        after = {f: s.digest for f, s in scan.files.items()}
        result.unchanged = self._loaded and before == after and not result.added and not result.removed \
            and not result.changed
        self.by_file = new
        self.errors = result.errors
        self._stale = stale
        self._scanned = dict(scan.files)
        self._loaded = True
        return result

    def reload(self) -> ReloadResult:
        """:meth:`scan` then :meth:`apply`, in the calling thread (start-up, tests, the CLI)."""
        return self.apply(self.scan())
