"""The daemon's view of the pipelines folder, reloaded when files change.

Contract: :meth:`PipelineRegistry.reload` re-validates every file. A file that
became invalid keeps serving its previous valid pipeline (runs keep starting
from it) and its errors are reported; a deleted file's pipeline goes away. A
pipeline's identity for runs is its content hash, stored with each run, so
reloading never changes what a running run executes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import EdgeorchError, NotFoundError
from .model import Pipeline
from .pipelines import load_pipeline_file, pipeline_files
from .tomlcheck import suggest


@dataclass
class ReloadResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[EdgeorchError] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Pipelines whose file is now invalid; the previous version is kept."""

    def summary(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in (("added", self.added), ("changed", self.changed),
                                               ("removed", self.removed), ("kept after errors", self.kept)) if v]
        return ", ".join(parts) or "no changes"


class PipelineRegistry:
    """Valid pipelines by name, from the ``*.toml`` files of one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_file: dict[Path, Pipeline] = {}
        self.errors: list[EdgeorchError] = []

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        return {p.name: p for p in sorted(self.by_file.values(), key=lambda p: p.name)}

    def get(self, name: str) -> Pipeline:
        """The pipeline called ``name``; NotFoundError with a did-you-mean otherwise."""
        for p in self.by_file.values():
            if p.name == name:
                return p
        names = sorted(p.name for p in self.by_file.values())
        close = suggest(name, names)
        raise NotFoundError(f"no pipeline named {name!r}", value=name, expected=f"one of {', '.join(names) or '(none)'}",
                            hint=f"did you mean {close!r}?" if close else None)

    def reload(self) -> ReloadResult:
        result = ReloadResult()
        files = pipeline_files(self.folder) if self.folder.is_dir() else []
        new: dict[Path, Pipeline] = {}
        names: dict[str, Path] = {}
        for f in files:
            pipe, errors = load_pipeline_file(f)
            if pipe is None:
                result.errors.extend(errors)
                old = self.by_file.get(f)
                if old is not None:
                    pipe = old
                    result.kept.append(old.name)
                else:
                    continue
            if pipe.name in names:
                result.errors.append(EdgeorchError("duplicate pipeline name", file=str(f), field="name", value=pipe.name,
                                                   expected=f"a name not already used by {names[pipe.name]}"))
                continue
            names[pipe.name] = f
            new[f] = pipe
        old_by_name = {p.name: p for p in self.by_file.values()}
        for name, f in names.items():
            if name not in old_by_name:
                result.added.append(name)
            elif old_by_name[name].content_hash != new[f].content_hash:
                result.changed.append(name)
        result.removed = sorted(set(old_by_name) - set(names))
        if not self.folder.is_dir():
            result.errors.append(EdgeorchError("the pipelines folder does not exist", file=str(self.folder)))
        self.by_file = new
        self.errors = result.errors
        return result
