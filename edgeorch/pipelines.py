"""Load and validate pipeline TOML files.

A pipeline file declares one pipeline::

    name = "train"                 # defaults to the file's stem
    description = "..."
    priority = 0                   # higher runs first when tasks compete
    [params]
    epochs = 5                     # short form: the type comes from the default
    data = { type = "path", default = "data/train.csv", help = "input CSV" }
    [tasks.prepare]
    command = ["python", "prep.py", "--in", "{data}"]
    outputs = ["features.npz"]
    [tasks.train]
    call = "mypkg.train:main"      # run in a child Python with params as kwargs
    needs = ["prepare"]
    retries = 2

Validation collects every problem in every file and never raises for bad
input: :func:`validate_path` returns ``(pipelines, errors)``. Each error names
the file, the field (``tasks.train.retries``), the value and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from .errors import EdgeorchError, PipelineError, UsageError
from .model import PARAM_TYPES, Param, Pipeline, TaskSpec
from .tomlcheck import TableReader, a_or_an, parse_toml_bytes, suggest, type_name

PIPELINE_KEYS = ["name", "description", "priority", "max_parallel", "params", "tasks",
                 "schedule", "every", "timezone", "jitter", "catchup", "catchup_max", "max_active_runs", "on_max_active", "watch"]
"""Top-level keys. Trigger keys (schedule, every, ...) are checked by the triggers module."""

TASK_KEYS = ["command", "shell", "call", "kind", "options", "needs", "retries", "retry_delay", "retry_backoff",
             "retry_max_delay", "retry_jitter", "timeout", "env", "workdir", "outputs", "cache", "cpus",
             "memory", "gpus", "gpu_memory", "gpu_model", "pool", "description"]

BUILTIN_PLACEHOLDERS = ("run_id", "task", "attempt", "output_dir", "checkpoint_dir", "run_dir", "pipeline_dir")
"""Names usable as ``{name}`` besides the params."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_CALL_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating files: the valid pipelines and every problem found."""

    pipelines: dict[str, Pipeline]
    errors: list[EdgeorchError]
    files: list[Path]

    @property
    def ok(self) -> bool:
        return not self.errors


def pipeline_files(path: Path) -> list[Path]:
    """The ``*.toml`` files of a folder (sorted), or ``[path]`` for a file."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.toml") if p.is_file() and not p.name.startswith("."))
    return [path]


def validate_path(path: Path) -> ValidationReport:
    """Validate a pipeline file or every ``*.toml`` in a folder.

    Duplicate pipeline names across files are an error (the second is dropped).
    A missing path is reported as an error, not raised.
    """
    errors: list[EdgeorchError] = []
    pipelines: dict[str, Pipeline] = {}
    if not path.exists():
        errors.append(PipelineError("no such file or folder", file=str(path), expected="a pipeline .toml file or a folder of them"))
        return ValidationReport({}, errors, [])
    files = pipeline_files(path)
    for file in files:
        pipe, errs = load_pipeline_file(file)
        errors.extend(errs)
        if pipe is None:
            continue
        if pipe.name in pipelines:
            errors.append(PipelineError(
                "duplicate pipeline name", file=str(file), field="name", value=pipe.name,
                expected=f"a name not already used by {pipelines[pipe.name].source_file}",
            ))
            continue
        pipelines[pipe.name] = pipe
    return ValidationReport(pipelines, errors, files)


MAX_PIPELINE_BYTES = 1 << 20
"""A pipeline file larger than this (1 MiB) is refused before it is read: a pipeline is a
description, and reading an unbounded file would stall whoever parses it (the daemon's reload)."""


def read_pipeline_bytes(file: Path) -> bytes:
    """The content of one pipeline file, read once; PipelineError when unreadable, not a regular file, or too big."""
    import os
    import stat

    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PipelineError(f"cannot read file: {exc.strerror}", file=str(file)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PipelineError("is not a regular file", file=str(file), expected="a pipeline .toml file")
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


def load_pipeline_file(file: Path) -> tuple[Pipeline | None, list[EdgeorchError]]:
    """Parse and validate one file, read once (the hash is of what was parsed); ``(pipeline, [])`` or ``(None, errors)``."""
    try:
        raw = read_pipeline_bytes(file)
    except EdgeorchError as exc:
        return None, [exc]
    return load_pipeline_bytes(raw, file)


def load_pipeline_bytes(raw: bytes, file: Path) -> tuple[Pipeline | None, list[EdgeorchError]]:
    """Parse and validate a pipeline file's content ``raw`` (``file`` names it and gives the default name)."""
    if len(raw) > MAX_PIPELINE_BYTES:
        return None, [PipelineError("the pipeline file is too large", file=str(file), value=f"{len(raw)} bytes",
                                    expected=f"at most {MAX_PIPELINE_BYTES} bytes (1 MiB)")]
    try:
        data = parse_toml_bytes(raw, file, PipelineError)
    except EdgeorchError as exc:
        return None, [exc]
    return parse_pipeline(data, file=file, text=raw.decode("utf-8"))


def parse_pipeline(data: dict[str, Any], *, file: Path, text: str) -> tuple[Pipeline | None, list[EdgeorchError]]:
    """Build a :class:`Pipeline` from parsed TOML, collecting every problem."""
    errors: list[EdgeorchError] = []
    fname = str(file)
    top = TableReader(data, file=fname, prefix="", errors=errors, error_cls=PipelineError)
    name = top.str("name", file.stem)
    if name is not None and not _NAME_RE.match(name):
        top.fail("name", "is not a valid pipeline name", value=name,
                 expected="letters, digits, '_' or '-', starting with a letter or '_', at most 64 characters")
    description = top.str("description", "", nonempty=False)
    priority = top.int("priority", 0, minimum=-1000, maximum=1000)
    max_parallel = top.int("max_parallel", None, minimum=1)
    for key in PIPELINE_KEYS:
        top.seen.add(key)

    params = _parse_params(top.sub("params"), errors)
    tasks_table = top.table("tasks", None)
    if tasks_table is None:
        if "tasks" not in data:
            top.fail("tasks", "the pipeline has no tasks", expected="at least one [tasks.NAME] table")
        tasks_table = {}
    elif not tasks_table:
        top.fail("tasks", "the pipeline has no tasks", expected="at least one [tasks.NAME] table")
    tasks: dict[str, TaskSpec] = {}
    for tname, tdata in tasks_table.items():
        spec = _parse_task(tname, tdata, fname, errors, params)
        if spec is not None:
            tasks[tname] = spec
    top.finish()
    if name is not None:
        from .triggers.checks import check_pipeline_triggers

        _sched, watches, trig_errors = check_pipeline_triggers(data, fname, pipeline=name)
        errors.extend(trig_errors)
        for w in watches:
            p = params.get(w.param)
            if p is None:
                errors.append(PipelineError("names no param of this pipeline", file=fname, field="watch.param",
                                            value=w.param, expected=f"one of {', '.join(params) or '(none)'}",
                                            hint=f"declare it: [params] {w.param} = {{ type = \"path\" }}"))
            elif p.type not in ("path", "str"):
                errors.append(PipelineError("must be a path or str param to receive the claimed file", file=fname,
                                            field=f"params.{w.param}", value=p.type, expected="type = \"path\" or \"str\""))

    order: tuple[str, ...] = ()
    # Every task's needs are checked, also when another task failed to parse: every problem is collected.
    for tname, needs_of in _declared_needs(tasks_table, tasks).items():
        for up in needs_of:
            if up not in tasks_table:
                close = suggest(up, list(tasks_table))
                errors.append(PipelineError(
                    "needs an unknown task", file=fname, field=f"tasks.{tname}.needs", value=up,
                    expected=f"one of {', '.join(tasks_table)}", hint=f"did you mean {close!r}?" if close else None,
                ))
            elif up == tname:
                errors.append(PipelineError("a task cannot need itself", file=fname,
                                            field=f"tasks.{tname}.needs", value=up))
    if tasks and len(tasks) == len(tasks_table):
        if not errors:
            cycle = find_cycle({n: list(s.needs) for n, s in tasks.items()})
            if cycle:
                errors.append(PipelineError(
                    f"dependency cycle: {' -> '.join(cycle)}", file=fname, field="tasks",
                    expected="a DAG (no task may depend on itself through its needs)",
                ))
            else:
                order = tuple(topological_order({n: list(s.needs) for n, s in tasks.items()}))

    if errors or name is None:
        return None, [e.in_pipeline(name) for e in errors]
    content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Pipeline(
        name=name, description=description, params=params, tasks=tasks, order=order,
        source_file=str(file.resolve()), content_hash=content_hash, source_text=text,
        priority=priority, max_parallel=max_parallel,
    ), []


def _declared_needs(tasks_table: dict[str, Any], parsed: dict[str, TaskSpec]) -> dict[str, list[str]]:
    """Each task's ``needs``: from its spec when it parsed, else its raw list when that is a list of strings."""
    out: dict[str, list[str]] = {}
    for tname, tdata in tasks_table.items():
        if tname in parsed:
            out[tname] = list(parsed[tname].needs)
        elif isinstance(tdata, dict) and isinstance(tdata.get("needs"), list):
            out[tname] = [n for n in tdata["needs"] if isinstance(n, str)]
    return out


def pipeline_triggers(pipeline: Pipeline) -> tuple[Any, list[Any]]:
    """``(ScheduleSpec | None, [WatchSpec])`` of a valid pipeline (validated with it; cached by content)."""
    key = (pipeline.source_file, pipeline.content_hash)
    hit = _TRIGGERS.get(key)
    if hit is None:
        import tomllib

        from .triggers.checks import check_pipeline_triggers

        sched, watches, _ = check_pipeline_triggers(tomllib.loads(pipeline.source_text), pipeline.source_file,
                                                    pipeline=pipeline.name)
        hit = _TRIGGERS[key] = (sched, watches)
    return hit


_TRIGGERS: dict[tuple[str, str], tuple[Any, list[Any]]] = {}


def _parse_params(reader: TableReader, errors: list[EdgeorchError]) -> dict[str, Param]:
    params: dict[str, Param] = {}
    for pname, pval in reader.data.items():
        reader.seen.add(pname)
        field = f"params.{pname}"
        if not _NAME_RE.match(pname) or pname in BUILTIN_PLACEHOLDERS:
            reader.fail(pname, "is not a valid parameter name", value=pname,
                        expected=f"an identifier, not one of {', '.join(BUILTIN_PLACEHOLDERS)}")
            continue
        if isinstance(pval, dict):
            sub = TableReader(pval, file=reader.file, prefix=field, errors=errors, error_cls=PipelineError)
            default = sub.raw("default")
            ptype = sub.choice("type", PARAM_TYPES, None)
            help_text = sub.str("help", "", nonempty=False)
            sub.finish(["default", "type", "help"])
            if ptype is None:
                ptype = _infer_type(default)
                if ptype is None:
                    sub.fail("type", "cannot infer the type", value=default, expected=f"type = one of {', '.join(PARAM_TYPES)}")
                    continue
            if default is not None:
                try:
                    default = coerce_param(ptype, default)
                except ValueError as exc:
                    sub.fail("default", str(exc), value=default, expected=a_or_an(ptype))
                    continue
            params[pname] = Param(pname, ptype, default, help_text)
        else:
            ptype = _infer_type(pval)
            if ptype is None:
                reader.fail(pname, "has an unsupported type", value=pval,
                            expected="a string, integer, float, boolean or a table {type, default, help}")
                continue
            params[pname] = Param(pname, ptype, pval, "")
    return params


def _infer_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


def coerce_param(ptype: str, value: Any) -> Any:
    """Convert ``value`` (TOML value or a command-line string) to ``ptype``.

    Raises ``ValueError`` with a short reason. ``bool`` accepts true/false,
    yes/no, 1/0 (case-insensitive) from strings.
    """
    if ptype in ("str", "path"):
        if isinstance(value, str):
            return value
        raise ValueError(f"is {a_or_an(type_name(value))}, not a string")
    if ptype == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError("is not a boolean")
    if ptype == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError("is not an integer")
    if ptype == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ValueError("is not a number")
    raise ValueError(f"unknown type {ptype}")  # pragma: no cover - validated earlier


def _parse_task(name: str, data: Any, file: str, errors: list[EdgeorchError], params: dict[str, Param]) -> TaskSpec | None:
    before = len(errors)
    r = TableReader(data, file=file, prefix=f"tasks.{name}", errors=errors, error_cls=PipelineError)
    if not _NAME_RE.match(name):
        r.fail(None, "is not a valid task name", value=name,
               expected="letters, digits, '_' or '-', starting with a letter or '_', at most 64 characters")
    shell = r.bool("shell", False)
    command: tuple[str, ...] | str | None = None
    if r.has("command"):
        raw = r.raw("command")
        if shell:
            if isinstance(raw, str) and raw.strip():
                command = raw
            else:
                r.fail("command", "must be a non-empty string when shell = true", value=raw, expected="a shell command line")
        elif isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
            command = tuple(raw)
        elif isinstance(raw, str):
            r.fail("command", "is a string but shell is not true", value=raw,
                   expected="an argv array like [\"python\", \"train.py\"] (or set shell = true)")
        else:
            r.fail("command", "must be a non-empty array of strings", value=raw, expected="an argv array")
    call = r.str("call", None)
    if call is not None and not _CALL_RE.match(call):
        r.fail("call", "is not a function reference", value=call, expected="'package.module:function'")
    kind = r.str("kind", None)
    options = r.table("options", {})
    if kind is not None:
        try:
            from .kernels.options import KINDS, check_options
        except ImportError:  # the kernels package is optional at this layer
            KINDS, check_options = (), None
        if kind not in KINDS:
            close = suggest(kind, list(KINDS))
            r.fail("kind", "is not a built-in task kind", value=kind,
                   expected=f"one of {', '.join(KINDS) or '(none installed)'}", hint=f"did you mean {close!r}?" if close else None)
        elif check_options is not None:
            errors.extend(check_options(kind, options, file=file, prefix=f"tasks.{name}.options"))
    elif r.has("options"):
        r.fail("options", "is only valid with kind", expected="kind = one of the built-in task kinds")
    given = [k for k, v in (("command", r.has("command")), ("call", call is not None or r.has("call")), ("kind", kind is not None or r.has("kind"))) if v]
    if len(given) != 1:
        r.fail(None, "must set exactly one of command, call or kind", value=", ".join(given) or "none",
               expected="one of command, call, kind")
    needs = r.str_list("needs", [])
    if len(set(needs)) != len(needs):
        dup = next(n for n in needs if needs.count(n) > 1)
        r.fail("needs", "lists a task twice", value=dup, expected="each upstream task once")
    retries = r.int("retries", 0, minimum=0, maximum=100)
    retry_delay = r.duration("retry_delay", 1.0)
    retry_backoff = r.number("retry_backoff", 2.0, minimum=1.0)
    retry_max_delay = r.duration("retry_max_delay", 300.0)
    retry_jitter = r.number("retry_jitter", 0.1, minimum=0.0)
    if retry_jitter is not None and retry_jitter > 1:
        r.fail("retry_jitter", "is out of range", value=retry_jitter, expected="a fraction from 0 to 1")
    timeout = r.duration("timeout", None)
    if timeout is not None and timeout <= 0:
        r.fail("timeout", "must be positive", value=r.data.get("timeout"), expected="a duration > 0")
    env_raw = r.table("env", {})
    env: dict[str, str] = {}
    for k, v in env_raw.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            r.fail(f"env.{k}", "is not a valid environment variable name", value=k, expected="[A-Za-z_][A-Za-z0-9_]*")
        elif isinstance(v, bool) or not isinstance(v, (str, int, float)):
            r.fail(f"env.{k}", "must be a string or number", value=v, expected="a string")
        else:
            env[k] = str(v)
    workdir = r.str("workdir", None)
    outputs = r.str_list("outputs", [])
    cache = r.bool("cache", False)
    cpus = r.int("cpus", 0, minimum=0, maximum=4096)
    memory = r.size("memory", None)
    gpus = r.int("gpus", 0, minimum=0, maximum=64)
    gpu_memory = r.size("gpu_memory", None)
    if gpus and gpu_memory:
        r.fail("gpu_memory", "cannot be combined with gpus", value=r.data.get("gpu_memory"),
               expected="either gpus = N (whole GPUs) or gpu_memory = SIZE (a share of one GPU)")
    gpu_model = r.str("gpu_model", None)
    if gpu_model is not None and not gpus and not gpu_memory:
        # A model constraint on no GPU would silently mean "any machine": say so.
        r.fail("gpu_model", "constrains a GPU the task does not ask for", value=gpu_model,
               expected="gpus = N or gpu_memory = SIZE alongside gpu_model")
    pool = r.str("pool", None)
    r.str("description", "", nonempty=False)
    r.finish(TASK_KEYS)

    # Placeholders must name a param or a built-in; checked on every string the engine substitutes.
    known = set(params) | set(BUILTIN_PLACEHOLDERS)
    texts: list[tuple[str, str]] = []
    if isinstance(command, tuple):
        texts += [(f"tasks.{name}.command[{i}]", a) for i, a in enumerate(command)]
    elif isinstance(command, str):
        texts.append((f"tasks.{name}.command", command))
    texts += [(f"tasks.{name}.env.{k}", v) for k, v in env.items()]
    texts += [(f"tasks.{name}.outputs[{i}]", o) for i, o in enumerate(outputs or [])]
    if workdir:
        texts.append((f"tasks.{name}.workdir", workdir))
    texts += [(f"tasks.{name}.options.{k}", v) for k, v in _strings_in(options)]
    for field, text in texts:
        problem = placeholder_problem(text, known)
        if problem:
            errors.append(PipelineError(problem[0], file=file, field=field, value=text, expected=problem[1]))
    if any(o.startswith("/") or ".." in Path(o).parts for o in outputs or []):
        bad = next(o for o in outputs if o.startswith("/") or ".." in Path(o).parts)
        r.fail("outputs", "must be relative to the task's output folder", value=bad,
               expected="a relative path without '..' (it lands under $EDGEORCH_OUTPUT_DIR)")

    if len(errors) > before:
        return None
    spec = TaskSpec(
        name=name, command=command, shell=shell, call=call, kind=kind, options=options, needs=tuple(needs),
        retries=retries, retry_delay=retry_delay, retry_backoff=retry_backoff, retry_max_delay=retry_max_delay,
        retry_jitter=retry_jitter, timeout=timeout, env=env, workdir=workdir, outputs=tuple(outputs), cache=cache,
        cpus=cpus, memory=memory, gpus=gpus, gpu_memory=gpu_memory, gpu_model=gpu_model, pool=pool,
    )
    return replace(spec, definition_hash=definition_hash(spec))


def _strings_in(value: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_in(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings_in(v, f"{prefix}[{i}]")


def placeholder_problem(text: str, known: set[str]) -> tuple[str, str] | None:
    """``(message, expected)`` if ``text`` has a malformed or unknown ``{placeholder}``."""
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return f"malformed placeholder: {exc}", "'{name}' placeholders, with '{{' and '}}' for literal braces"
    for f, spec, conv in parsed:
        if spec or conv:
            # Values are substituted as text; a format spec would fail (or mislead) at run time.
            return (f"placeholder {{{f}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} has a format spec or conversion",
                    "a plain '{name}' placeholder (format the value in the task itself)")
    fields = [f for f, _, _ in parsed]
    for f in fields:
        if f not in known:
            close = suggest(f, known)
            hint = f" (did you mean {{{close}}}?)" if close else ""
            return f"unknown placeholder {{{f}}}{hint}", f"a param or one of {', '.join(sorted(known))}"
    return None


def substitute(text: str, values: dict[str, Any]) -> str:
    """Replace ``{name}`` placeholders (validated beforehand) with ``values``."""
    return string.Formatter().vformat(text, (), {k: _fmt(v) for k, v in values.items()})


def substitute_deep(value: Any, values: dict[str, Any]) -> Any:
    """:func:`substitute` through nested lists and tables (kind options)."""
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, dict):
        return {k: substitute_deep(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_deep(v, values) for v in value]
    return value


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def definition_hash(spec: TaskSpec) -> str:
    """sha256 of what the task computes: command/call/kind, options, env, workdir, outputs, needs.

    Retries, timeouts and resource requests are left out: they change how the
    task runs, not what it produces, so changing them keeps the cache valid.
    """
    d = asdict(spec)
    keep = {k: d[k] for k in ("command", "shell", "call", "kind", "options", "env", "workdir", "outputs", "needs")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]`` (following needs), or None.

    ``graph`` maps a node to the nodes it needs. Iterative DFS (no recursion
    limit on deep pipelines); deterministic: nodes in insertion order.
    """
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    for root in graph:
        if color[root] != WHITE:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = GREY
        while stack:
            node, idx = stack[-1]
            deps = graph.get(node, [])
            if idx < len(deps):
                stack[-1] = (node, idx + 1)
                nxt = deps[idx]
                if nxt not in color:
                    continue
                if color[nxt] == GREY:
                    start = path.index(nxt)
                    # Report in the direction people read DAGs: upstream -> downstream.
                    cyc = path[start:] + [nxt]
                    return list(reversed(cyc))
                if color[nxt] == WHITE:
                    color[nxt] = GREY
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = BLACK
                stack.pop()
                path.pop()
    return None


def topological_order(graph: dict[str, list[str]]) -> list[str]:
    """Kahn's order (upstream first), ties broken by declaration order. Assumes a DAG."""
    indeg = {n: len(set(deps)) for n, deps in graph.items()}
    downs: dict[str, list[str]] = {n: [] for n in graph}
    for n, deps in graph.items():
        for d in set(deps):
            downs[d].append(n)
    ready = [n for n in graph if indeg[n] == 0]
    out: list[str] = []
    i = 0
    while i < len(ready):
        n = ready[i]
        i += 1
        out.append(n)
        for m in downs[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    return out


def resolve_params(pipeline: Pipeline, given: dict[str, str | Any], *, source: str = "-p") -> dict[str, Any]:
    """Merge ``given`` (strings from the command line, or typed values) into defaults.

    Raises :class:`UsageError` for an unknown param (with did-you-mean), a value
    of the wrong type, or a required param left unset.
    """
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in pipeline.params:
            close = suggest(key, list(pipeline.params))
            raise UsageError(
                f"pipeline {pipeline.name!r} has no parameter {key!r}", field=f"{source} {key}",
                expected=f"one of {', '.join(pipeline.params) or '(no params)'}", hint=f"did you mean {close!r}?" if close else None,
            )
        p = pipeline.params[key]
        try:
            out[key] = coerce_param(p.type, value)
        except ValueError as exc:
            raise UsageError(f"parameter {key} {exc}", field=f"{source} {key}", value=value, expected=a_or_an(p.type)) from None
    for name, p in pipeline.params.items():
        if name not in out:
            if p.required:
                raise UsageError(f"parameter {name} is required", field=f"{source} {name}", expected=f"-p {name}=<{p.type}>")
            out[name] = p.default
    return out


def parse_param_args(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; raises UsageError on a missing '='."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError("parameter must be key=value", field="-p", value=item, expected="key=value")
        out[key.strip()] = value
    return out
