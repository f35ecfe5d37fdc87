"""Reading pipeline files: each read once and bounded, a file or a folder validated, why a name is not loaded.

Validation collects every problem in every file and never raises for bad
input: :func:`validate_path` returns a :class:`ValidationReport`. Each error
names the file, the field (``tasks.train.retries``), the value and what was
expected. Parsing itself is :mod:`edgeorch.pipelines.parse`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import EdgeorchError, PipelineError
from ..model import Pipeline
from ..records import frozen

log = logging.getLogger("edgeorch.pipelines")


@frozen
class ValidationReport:
    """Outcome of validating files: the valid pipelines and every problem found."""

    pipelines: dict[str, Pipeline]
    errors: list[EdgeorchError]
    files: list[Path]

    @property
    def ok(self) -> bool:
        return not self.errors


def pipeline_files(path: Path) -> list[Path]:
    """The ``*.toml`` entries of a folder (:func:`toml_entries`), or ``[path]`` for a file."""
    if path.is_dir():
        return toml_entries(path)
    return [path]


def toml_entries(folder: Path) -> list[Path]:
    """A folder's ``*.toml`` entries, sorted, hidden ones left out: the pipelines folder's and the rules folder's.

    Every entry, whatever it is: one that is not a regular file it can read (a dangling symlink left by a
    deployment, a FIFO, a folder) is an error of :func:`read_pipeline_bytes` naming it, never skipped in
    silence (its pipeline or rules would vanish with no word of why; the daemon keeps the last valid
    version of a pipeline meanwhile).
    """
    return sorted(p for p in folder.glob("*.toml") if not p.name.startswith("."))


Holders = Mapping[str, tuple[str, "str | None"]]
"""Pipeline name -> (the file that holds it, the content hash it was loaded with, when known)."""


def settle_names(candidates: Iterable[tuple[Path, Pipeline]], holders: Holders | None = None,
                 broken: Iterable[Path] = (),
                 ) -> tuple[dict[str, tuple[Path, Pipeline]], list[EdgeorchError]]:
    """One file per pipeline name, in file order: ``(by name: (file, pipeline)), errors``. Pure.

    When several files declare one name, the file that holds it keeps it (``holders``: the file a running daemon
    serves it from, else the one the state file last loaded it from): that file, else a file with the content it
    was loaded with (the holder renamed: ``mv nightly.toml zz_nightly.toml``), else the file named after it
    (``<name>.toml``), else the first in file order. Each other file declaring it is an error naming the one
    that keeps it. When the holder's file is among ``broken`` (there, with errors), no other file takes the name:
    each one declaring it is such an error (a daemon serves the holder's last valid version; the name is not
    loaded elsewhere until the file is fixed). The first in file order alone let a new ``aa_copy.toml`` left
    with its original's name take that pipeline over: its schedule gone, its runs the copy's command.
    """
    by_name: dict[str, list[tuple[Path, Pipeline]]] = {}
    for f, pipe in candidates:
        by_name.setdefault(pipe.name, []).append((f, pipe))
    broken_files = {str(b) for b in broken}
    chosen: dict[str, tuple[Path, Pipeline]] = {}
    errors: list[EdgeorchError] = []
    for name, entries in by_name.items():
        held, held_hash = (holders or {}).get(name, (None, None))
        if held is not None and held in broken_files and all(str(f) != held for f, _ in entries):
            keeper, why = Path(held), "it serves it; its file has errors now: fix it"
            winner = None
        else:
            winner = next((e for e in entries if str(e[0]) == held), None) \
                or next((e for e in entries if held_hash is not None and e[1].content_hash == held_hash), None) \
                or next((e for e in entries if e[0].name == f"{name}.toml"), None) or entries[0]
            keeper, why = winner[0], _why_held(winner, name, held, held_hash)
            chosen[name] = winner
        for f, _pipe in entries:
            if winner is None or f != winner[0]:
                errors.append(PipelineError(
                    "duplicate pipeline name", file=str(f), field="name", value=name,
                    expected=f"a name not already used by {keeper}",
                    hint=f"{keeper} keeps pipeline {name!r} ({why}); give this file another `name`"))
    return chosen, errors


def _why_held(entry: tuple[Path, Pipeline], name: str, held: str | None, held_hash: str | None) -> str:
    file, pipe = entry
    if str(file) == held:
        return "it serves it already"
    if held_hash is not None and pipe.content_hash == held_hash:
        return f"the file that served it, moved from {held}"
    if file.name == f"{name}.toml":
        return "the file named after it"
    return "the first file in name order that declares it"


def validate_path(path: Path, holders: Holders | None = None) -> ValidationReport:
    """Validate a pipeline file or every ``*.toml`` in a folder.

    Duplicate pipeline names across files are an error of each file but the one that keeps the name
    (:func:`settle_names`; ``holders``: which file served each name last, from the state file).
    A missing path is reported as an error, not raised.
    """
    errors: list[EdgeorchError] = []
    if not os.path.exists(path):  # False for any OSError (a name too long, too), where Path.exists raises
        errors.append(PipelineError("no such file or folder", file=str(path), expected="a pipeline .toml file or a folder of them"))
        return ValidationReport({}, errors, [])
    files = pipeline_files(path)
    candidates: list[tuple[Path, Pipeline]] = []
    broken: list[Path] = []
    for file in files:
        pipe, errs = load_pipeline_file(file)
        errors.extend(errs)
        if pipe is not None:
            candidates.append((file, pipe))
        else:
            broken.append(file)
    chosen, duplicates = settle_names(candidates, holders, broken)
    errors.extend(duplicates)
    return ValidationReport({name: pipe for name, (_f, pipe) in chosen.items()}, errors, files)


def load_named(folder: Path, name: str) -> Pipeline | None:
    """Pipeline ``name`` of ``folder`` read from its own file alone, when that is sure to be what
    :func:`validate_path` of the whole folder gives for it; None otherwise (the caller then validates them all).

    ``edgeorch run NAME`` without a daemon parsed and validated every file of the folder to run one (40
    scheduled pipelines: +75 ms, half of a one-task run). Sure means: ``<folder>/<name>.toml`` loads without
    an error and is named ``name`` (its stem, the default), and no other entry could also declare that name
    (which would make the first in file order win): none holds the text ``name``, nor a way TOML has to
    spell it otherwise (a unicode escape ``\\u``/``\\U``, a line-ending backslash that joins the lines of
    a multi-line string). Reading the others' bytes costs far less than parsing them; one that cannot be read
    (a FIFO, a dangling link) leaves the decision to the whole folder's validation, as does a ``name`` that
    is not a plain file name (``../x`` names no pipeline of the folder).
    """
    import re

    if not name or "/" in name or "\0" in name or name.startswith("."):
        return None
    own = folder / f"{name}.toml"
    if not os.path.isfile(own):  # False for any OSError (a name too long), where Path.is_file raises
        return None
    needle = name.encode("utf-8", "surrogateescape")
    spelled_otherwise = re.compile(rb"\\[uU]|\\[ \t]*\r?\n")
    for file in toml_entries(folder):
        if file == own:
            continue
        try:
            raw = read_pipeline_bytes(file)
        except EdgeorchError:
            return None
        if needle in raw or spelled_otherwise.search(raw):
            return None
    pipe, errors = load_pipeline_file(own)
    return pipe if pipe is not None and not errors and pipe.name == name else None


def names_a_file(ref: str) -> bool:
    """Whether a pipeline reference (``edgeorch run REF``, ``Client.trigger(REF)``) is a pipeline file, not a name:
    it ends in ``.toml``, has a ``/`` (no pipeline name has one: a path, whose error then says what is there, not
    "no pipeline named '/srv/x'"), or names an existing file."""
    return ref.endswith(".toml") or "/" in ref or os.path.isfile(ref)  # False for any OSError (a name too long)


MAX_PIPELINE_BYTES = 1 << 20
"""A pipeline file larger than this (1 MiB) is refused before it is read: a pipeline is a
description, and reading an unbounded file would stall whoever parses it (the daemon's reload)."""


def read_pipeline_bytes(file: Path) -> bytes:
    """The content of one pipeline file, read once; PipelineError when unreadable, not a regular file, or too big."""
    import errno
    import os
    import stat

    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(file):
            raise PipelineError("is a symlink to a file that does not exist", file=str(file),
                                value=os.readlink(file), expected="a pipeline .toml file") from None
        raise PipelineError(f"cannot read file: {exc.strerror}", file=str(file)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PipelineError("is not a regular file", file=str(file), value=_file_kind(st.st_mode),
                                expected="a pipeline .toml file")
        if st.st_size > MAX_PIPELINE_BYTES:
            raise PipelineError("the pipeline file is too large", file=str(file), value=f"{st.st_size} bytes",
                                expected=f"at most {MAX_PIPELINE_BYTES} bytes (1 MiB)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_PIPELINE_BYTES + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise PipelineError(f"cannot read file: {exc.strerror}", file=str(file)) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_PIPELINE_BYTES:
        raise PipelineError("the pipeline file is too large", file=str(file), value=f"more than {MAX_PIPELINE_BYTES} bytes",
                            expected=f"at most {MAX_PIPELINE_BYTES} bytes (1 MiB)")
    return raw


def _file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words (for an error)."""
    from ..filekinds import file_kind

    return file_kind(mode) or "a regular file"


def not_loaded_error(name: str, errors: Iterable[EdgeorchError]) -> EdgeorchError | None:
    """Why pipeline ``name`` is not loaded, when a broken file probably declares it, else None.

    A file declares ``name`` when its errors were found in pipeline ``name``
    (the parse got that far) or, for a file too broken to say (a TOML syntax
    error), when its stem is ``name`` (the default name). The error names that
    file and its first problem, so ``edgeorch run NAME`` points at what to fix.
    """
    mine = [e for e in errors if e.file and (e.pipeline == name or (e.pipeline is None and Path(e.file).stem == name))]
    if not mine:
        return None
    first = mine[0]
    more = f"; {len(mine)} problems: `edgeorch validate {first.file}` lists them" if len(mine) > 1 else ""
    hint = (f"{first.hint}; " if first.hint else "") + f"pipeline {name!r} is not loaded until this file is fixed{more}"
    return PipelineError(first.message, file=first.file, line=first.line, column=first.column, field=first.field,
                         value=first.value, expected=first.expected, hint=hint, pipeline=first.pipeline)


def load_again(file: str | None, name: str, run_id: int, *, own_folder: Path | None = None,
               requester: int | None = None) -> Pipeline:
    """Pipeline ``name`` as its own file ``file`` declares it now, for ``edgeorch retry RUN --current``: the file the
    run was made from (its recorded ``source_file``), read again here and now, never a pipeline of the same name
    found elsewhere (an ad-hoc run's file, a folder where another file took the name) nor a daemon's copy loaded
    before the last edit. Raises :class:`~edgeorch.errors.ConflictError` naming the file when the run has none (sent
    by content), it cannot be read or has errors, or it declares another pipeline now.

    A file outside ``own_folder`` (the pipelines folder, read at every reload anyway: an ad-hoc run's file) is read
    only when this process's user, the ``requester`` (the uid of who asks) or root owns it and its folder and not
    every user may write them (:func:`~edgeorch.trust.command_file_problem`): else ConflictError saying why."""
    from ..errors import ConflictError
    from ..trust import command_file_problem

    if not file:
        raise ConflictError(f"run {run_id} was sent by content, not read from a file: there is no file to read again",
                            hint="start a new run from the edited file (`edgeorch run FILE`)")
    path = Path(file)
    if own_folder is None or not path.resolve().is_relative_to(own_folder.resolve()):
        problem = command_file_problem(path, (os.getuid(), os.getuid() if requester is None else requester))
        if problem is not None:
            raise ConflictError(f"run {run_id}'s pipeline file {file} is not read again to run its commands: "
                                f"{problem}", hint=f"copy it somewhere only you may write, and run that copy "
                                                   f"(`edgeorch run COPY`); or retry without --current")
    pipeline, errors = load_pipeline_file(Path(file))
    if errors or pipeline is None:
        first = errors[0] if errors else None
        raise ConflictError(f"run {run_id}'s pipeline file {file} cannot be used now: "
                            f"{first.one_line() if first is not None else 'it declares no pipeline'}",
                            hint=f"fix it (`edgeorch validate {file}`), then retry again")
    if pipeline.name != name:
        raise ConflictError(f"run {run_id}'s pipeline file {file} declares pipeline {pipeline.name!r} now, not "
                            f"{name!r}", hint=f"start a new run from it (`edgeorch run {file}`)")
    return pipeline


def load_pipeline_file(file: Path) -> tuple[Pipeline | None, list[EdgeorchError]]:
    """Parse and validate one file, read once (the hash is of what was parsed); ``(pipeline, [])`` or ``(None, errors)``."""
    try:
        raw = read_pipeline_bytes(file)
    except EdgeorchError as exc:
        return None, [exc]
    return load_pipeline_bytes(raw, file)


def load_pipeline_bytes(raw: bytes, file: Path) -> tuple[Pipeline | None, list[EdgeorchError]]:
    """Parse and validate a pipeline file's content ``raw`` (``file`` names it and gives the default name)."""
    # Here, not at the top: `names_a_file` and `read_pipeline_bytes` are on a daemon-backed `edgeorch run`'s
    # path, which must not pay for the parser (issue 11: a command's start-up).
    from ..tomlcheck import parse_toml_bytes
    from .parse import parse_pipeline

    if len(raw) > MAX_PIPELINE_BYTES:
        return None, [PipelineError("the pipeline file is too large", file=str(file), value=f"{len(raw)} bytes",
                                    expected=f"at most {MAX_PIPELINE_BYTES} bytes (1 MiB)")]
    try:
        data = parse_toml_bytes(raw, file, PipelineError)
        return parse_pipeline(data, file=file, text=raw.decode("utf-8"))
    except EdgeorchError as exc:
        return None, [exc]
    except Exception as exc:  # noqa: BLE001 - a bug met by one file: that file's error, never a daemon that cannot start
        log.exception("internal error reading pipeline file %s", file)
        return None, [PipelineError(f"internal error reading this file ({type(exc).__name__}: {exc}): a bug, please "
                                    "report it; the other pipeline files are served", file=str(file))]
