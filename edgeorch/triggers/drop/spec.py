"""``[[watch]]`` tables: :class:`WatchSpec`, their validation, and the checks across all watches.

Pure apart from :func:`check_same_filesystem` (one ``stat``). A spec remembers the file it came
from (``source``), so an error about it is reported against that file.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from ...datasets.names import DatasetDecl, check_decl
from ...errors import ConfigError, EdgeorchError, PipelineError
from ...pipelines.params import watch_param_problem
from ...records import frozen
from ...tomlcheck import TableReader, suggest

WATCH_KEYS = ("folder", "patterns", "pipeline", "mode", "batch_size", "batch_window", "settle", "max_size",
              "param", "env", "skip_duplicates", "dataset", "allow_sparse")
MODES = ("per_file", "batch")
DEFAULT_PARAM = "input"
DEFAULT_ENV = "EDGEORCH_INPUT"

_IDENT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@frozen
class WatchSpec:
    """A validated ``[[watch]]`` table.

    ``folder`` is absolute. ``settle``/``batch_window`` are seconds;
    ``max_size`` bytes (None: no limit). The claimed file's path reaches the
    task as the pipeline param ``param`` and the environment variable ``env``
    (in batch mode: a JSON array of paths in the param, and the env var names a
    file listing the paths one per line; see ``DropFolders._start_batch``).
    """

    folder: Path
    pipeline: str
    patterns: tuple[str, ...] = ("*",)
    mode: str = "per_file"
    batch_size: int = 100
    batch_window: float = 10.0
    settle: float = 1.0
    max_size: int | None = None
    param: str = DEFAULT_PARAM
    env: str = DEFAULT_ENV
    skip_duplicates: bool = True
    dataset: DatasetDecl | None = None
    """Each claimed file becomes the next version of this dataset (docs/datasets.md), in the transaction
    that records its claim."""
    allow_sparse: bool = False
    """Claim sparse files too (mostly holes: ``inspection.sparse_problem``); refused by default, since hashing
    one reads its whole size."""
    source: str = field(default="", compare=False)
    """The file the table came from (config.toml or a pipeline file): errors about it name that file.
    Provenance only: two specs that watch alike are equal wherever they were declared."""


def check_watch(table: Any, file: str, prefix: str = "watch", *, base: Path | None = None,
                pipeline: str | None = None,
                error_cls: type[EdgeorchError] = ConfigError) -> tuple[WatchSpec | None, list[EdgeorchError]]:
    """Validate one ``[[watch]]`` table; collect every problem.

    ``base`` resolves a relative ``folder`` (the folder of the file the table
    came from). ``pipeline`` is the owning pipeline when the table sits in a
    pipeline file: then ``pipeline`` in the table is optional and must match.
    Errors are ``error_cls`` (ConfigError for config.toml, PipelineError for
    pipelines) naming file, field (``watch[0].mode``), value and expectation;
    unknown keys get a did-you-mean.
    """
    errors: list[EdgeorchError] = []
    r = TableReader(table, file=file, prefix=prefix, errors=errors, error_cls=error_cls)
    folder_s = r.str("folder", None, required=True)
    target = r.str("pipeline", None, required=pipeline is None)
    if pipeline is not None and target is not None and target != pipeline:
        r.fail("pipeline", "names another pipeline than the one this file declares", value=target,
               expected=f"{pipeline!r} or no pipeline key")
    target = target or pipeline
    patterns = r.str_list("patterns", ["*"])
    mode = r.choice("mode", MODES, "per_file")
    batch_size = r.int("batch_size", 100, minimum=1, maximum=1_000_000)
    batch_window = r.duration("batch_window", 10.0)
    settle = r.duration("settle", 1.0)
    max_size = r.size("max_size", None)
    param = r.str("param", DEFAULT_PARAM)
    env = r.str("env", DEFAULT_ENV)
    skip_dup = r.bool("skip_duplicates", True)
    allow_sparse = r.bool("allow_sparse", False)
    dataset = check_decl(r, "dataset", with_path=False)
    r.finish(list(WATCH_KEYS))

    if patterns is not None:
        if not patterns:
            r.fail("patterns", "must not be empty", value=patterns, expected="at least one glob such as '*.csv'")
        for pat in patterns:
            if not pat or "/" in pat:
                r.fail("patterns", "is not a file-name glob", value=pat,
                       expected="a glob matched against the file name, without '/', e.g. '*.csv'")
    if mode != "batch":
        for key in ("batch_size", "batch_window"):
            if key in r.data:
                r.fail(key, "applies to mode = \"batch\" only", value=r.data[key], expected="mode = \"batch\"")
    if param is not None and not _is_ident(param):
        r.fail("param", "is not a valid param name", value=param, expected="letters, digits and '_'")
    if env is not None and not (_is_ident(env) and not env[0].isdigit()):
        r.fail("env", "is not a valid environment variable name", value=env,
               expected="letters, digits and '_', not starting with a digit")
    if settle is not None and settle > 3600:
        r.fail("settle", "is out of range", value=r.data.get("settle"), expected="at most 1h")
    folder: Path | None = None
    if folder_s is not None:
        folder = Path(os.path.expanduser(folder_s))
        if not folder.is_absolute():
            folder = (base or Path.cwd()) / folder
        folder = Path(os.path.normpath(folder))
    if errors or folder is None or target is None:
        return None, errors
    return WatchSpec(
        folder=folder, pipeline=target, patterns=tuple(patterns), mode=mode, batch_size=batch_size,
        batch_window=batch_window, settle=settle, max_size=max_size, param=param, env=env,
        skip_duplicates=skip_dup, dataset=dataset, allow_sparse=bool(allow_sparse), source=file,
    ), errors


def check_watches(tables: Iterable[Any], file: str, *, base: Path | None = None,
                  error_cls: type[EdgeorchError] = ConfigError) -> tuple[list[WatchSpec], list[EdgeorchError]]:
    """Validate ``Config.watches`` (``[[watch]]`` in config.toml): fields ``watch[i].<key>``."""
    specs: list[WatchSpec] = []
    errors: list[EdgeorchError] = []
    for i, table in enumerate(tables):
        spec, errs = check_watch(table, file, f"watch[{i}]", base=base, error_cls=error_cls)
        errors.extend(errs)
        if spec is not None:
            specs.append(spec)
    return specs, errors


def check_watch_set(specs: list[WatchSpec], *, inbox_dir: Path | None = None, state_dir: Path | None = None,
                    pipelines: Iterable[str] | None = None, file: str = "",
                    not_loaded: Callable[[str], EdgeorchError | None] | None = None,
                    params: Mapping[str, Mapping[str, Any]] | None = None) -> list[EdgeorchError]:
    """Cross-checks over watches: known pipelines, one watch per folder, folders outside edgeorch's own, and
    (``params``: pipeline name -> its params) a param that can receive the claimed path
    (:func:`~edgeorch.pipelines.params.watch_param_problem`).

    A watch of a pipeline that is not loaded because its file is broken says so, naming that file and its first
    problem (``not_loaded(name)``: that error, or None; the registry's ``not_loaded_error``), not "unknown pipeline".

    Each error names the file the offending table came from (``spec.source``): a
    :class:`PipelineError` for a pipeline file, a :class:`ConfigError` for ``file``
    (config.toml) or a spec with no source. ``inbox_dir``/``state_dir``/``pipelines`` None:
    that check is skipped (``edgeorch validate`` of one pipeline file knows no daemon config).
    No I/O: :func:`check_same_filesystem` and :func:`folder_problem` are left to the caller.
    """
    errors: list[EdgeorchError] = []
    known = set(pipelines) if pipelines is not None else None
    seen: dict[Path, str] = {}
    for spec in specs:
        def fail(message: str, field: str, value: str, expected: str, spec: WatchSpec = spec,
                 hint: str | None = None) -> None:
            errors.append(watch_error(spec, message, field=field, value=value, expected=expected, config_file=file,
                                      hint=hint))

        if known is not None and spec.pipeline not in known:
            broken = not_loaded(spec.pipeline) if not_loaded is not None else None
            if broken is not None:
                fail(f"names pipeline {spec.pipeline!r}, which is not loaded: its file {broken.file} has an error "
                     f"({broken.field + ': ' if broken.field else ''}{broken.message})", "watch.pipeline",
                     spec.pipeline, "a pipeline that loads", hint="fix that file (`edgeorch validate` lists its "
                     "problems); the watch starts at the next reload")
            else:
                close = suggest(spec.pipeline, sorted(known))
                fail("names an unknown pipeline", "watch.pipeline", spec.pipeline,
                     f"one of {', '.join(sorted(known)) or '(none)'}",
                     hint=f"did you mean {close!r}?" if close else None)
        elif params is not None and spec.pipeline in params:
            problem = watch_param_problem(spec.param, params[spec.pipeline], spec.pipeline)
            if problem is not None:
                errors.append(watch_error(spec, config_file=file, **problem))
        if spec.folder in seen:
            fail("is watched twice", "watch.folder", str(spec.folder),
                 f"one [[watch]] per folder (also used by pipeline {seen[spec.folder]})")
            errors[-1].watch = None  # type: ignore[attr-defined]  # the first of the two still starts
        seen[spec.folder] = spec.pipeline
        for inner in (inbox_dir, state_dir):
            if inner is not None and (_within(spec.folder, inner) or _within(inner, spec.folder)):
                fail("overlaps edgeorch's own folders", "watch.folder", str(spec.folder), f"a folder outside {inner}")
    return errors


def watch_error(spec: WatchSpec, message: str, *, config_file: str = "", **fields: Any) -> EdgeorchError:
    """An error about ``spec``, reported against the file its table came from.

    A table from a pipeline file gives a :class:`PipelineError` naming that file and pipeline;
    one from ``config_file`` (config.toml), or with no recorded source, a :class:`ConfigError`.
    """
    source = spec.source or config_file
    if spec.source and spec.source != config_file:
        error: EdgeorchError = PipelineError(message, file=source, pipeline=spec.pipeline, **fields)
    else:
        error = ConfigError(message, file=source, **fields)
    error.watch = (spec.folder, spec.pipeline)  # type: ignore[attr-defined]  # which watch it keeps from starting
    return error


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be watched now, or None. One ``stat``.

    A folder that does not exist (yet) is not a problem: the daemon watches it as soon as it
    appears. A path that exists and is not a folder (a file, a link) is.
    """
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot look at the watched folder: {exc.strerror}"
    if not stat_mod.S_ISDIR(st.st_mode):
        return "the watched path is not a folder"
    return None


def check_same_filesystem(folder: Path, inbox_dir: Path) -> None:
    """Raise :class:`ConfigError` naming both paths unless a rename between them is atomic.

    ``inbox_dir`` may not exist yet: its nearest existing parent is checked.
    """
    def dev(p: Path) -> int:
        p = Path(os.path.abspath(p))
        while not p.exists() and p != p.parent:
            p = p.parent
        return os.stat(p).st_dev

    if dev(folder) != dev(inbox_dir):
        raise ConfigError(
            "the drop folder and the inbox are on different filesystems, so files cannot be claimed by an "
            "atomic rename", field="watch.folder", value=str(folder),
            expected=f"a folder on the same filesystem as the inbox {inbox_dir}",
            hint="move [inbox] dir (or [state] dir) onto the drop folder's filesystem, or watch a folder there",
        )


def _is_ident(text: str) -> bool:
    return bool(text) and all(c in _IDENT_CHARS for c in text)


def _within(inner: Path, outer: Path) -> bool:
    a, b = os.path.abspath(inner), os.path.abspath(outer)
    return a == b or a.startswith(b.rstrip("/") + "/")

