"""Parse a pipeline TOML table into a :class:`~edgeorch.model.Pipeline`, collecting every problem.

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

:func:`parse_pipeline` never raises for bad input: it returns ``(pipeline, [])``
or ``(None, errors)``, each error naming the file, the field
(``tasks.train.retries``), the value and what was expected. Reading files is
:mod:`edgeorch.pipelines.load`; params, placeholders and the DAG checks live in
their own modules of this package.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import EdgeorchError, PipelineError
from ..model import PARAM_TYPES, Param, Pipeline, TaskSpec, text_hash
from ..tomlcheck import TableReader, a_or_an, suggest
from .graph import find_cycle, topological_order
from .inputs import dataset_conflicts, input_problem
from .params import coerce_param, infer_param_type, schedule_params_problem, watch_param_problem
from .substitute import BUILTIN_PLACEHOLDERS, placeholder_problem, strings_in

PIPELINE_KEYS = ["name", "description", "priority", "max_parallel", "params", "tasks",
                 "schedule", "every", "timezone", "jitter", "catchup", "catchup_max", "max_active_runs", "on_max_active", "watch", "models", "on"]
"""Top-level keys. Trigger keys (schedule, every, ...) are checked by the triggers module, ``on`` (rules) by
:mod:`edgeorch.monitor.spec`."""

TASK_KEYS = ["command", "shell", "call", "kind", "options", "needs", "retries", "retry_delay", "retry_backoff",
             "retry_max_delay", "retry_jitter", "timeout", "env", "workdir", "outputs", "inputs", "cache", "cpus",
             "memory", "gpus", "gpu_memory", "gpu_model", "pool", "dataset", "model", "container", "description"]

TOP_LEVEL_ELSEWHERE = {
    "retries": "retries is a task's key: write it in each [tasks.NAME] that should retry",
    "retry_delay": "retry_delay is a task's key: write it in each [tasks.NAME]",
    "timeout": "timeout is a task's key: write it in each [tasks.NAME]",
    "default_args": "edgeorch has no defaults table: write each key in the [tasks.NAME] tables that need it",
    "env": "env is a task's key: write it in each [tasks.NAME] (or declare [params] every task can read)",
    "command": "a pipeline's commands belong to its tasks: [tasks.NAME] command = [...]",
}
"""Top-level keys of a pipeline file that belong to its tasks (another tool's habit): where to write them."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_CALL_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def parse_pipeline(data: dict[str, Any], *, file: Path, text: str,
                   stored: bool = False) -> tuple[Pipeline | None, list[EdgeorchError]]:
    """Build a :class:`Pipeline` from parsed TOML, collecting every problem: ``(pipeline, [])``, or
    ``(None, problems)``.

    ``stored``: the text is a run's recorded definition, valid for the edgeorch that recorded it. A rule added
    since (two tasks whose outputs share a variable, an empty program name) must not stop that run, nor the
    daemon that resumes it: the pipeline is built anyway, as that edgeorch ran it, whenever its tasks and their
    graph can be (each task one of command, call or kind with its numbers read; needs that name its tasks, no
    cycle), and returned with the problems this edgeorch found: ``(pipeline, problems)``.
    """
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

    _refuse_other_tools_layout(top, data)
    params = _parse_params(top.sub("params"), errors)
    # Every name the [params] table declares, a param whose declaration has an error included (its error is said
    # once: a bad default also made each {epochs} an "unknown placeholder", denying it was declared).
    declared = set(params) | (set(data["params"]) if isinstance(data.get("params"), dict) else set())
    tasks_table = None if isinstance(data.get("tasks"), list) else top.table("tasks", None)
    if tasks_table is None:
        if "tasks" not in data:
            top.fail("tasks", "the pipeline has no tasks", expected="at least one [tasks.NAME] table")
        tasks_table = {}
    elif not tasks_table:
        top.fail("tasks", "the pipeline has no tasks", expected="at least one [tasks.NAME] table")
    tasks: dict[str, TaskSpec] = {}
    for tname, tdata in tasks_table.items():
        spec = _parse_task(tname, tdata, fname, errors, declared, tolerate=stored)
        if spec is not None:
            tasks[tname] = spec
    models = _parse_models(top, tasks_table, tasks)
    top.finish(elsewhere=TOP_LEVEL_ELSEWHERE)
    _refuse_shared_variables(tasks_table, params, fname, errors)
    conflict = dataset_conflicts([(f"tasks.{t}.inputs", text) for t, spec in tasks.items() for text in spec.inputs])
    if conflict is not None:
        errors.append(PipelineError(conflict[1], file=fname, field=conflict[0],
                                    expected="one version of each dataset in a pipeline (dataset:NAME@latest is one)"))
    if name is not None:
        from ..triggers.checks import check_pipeline_triggers

        sched, watches, trig_errors = check_pipeline_triggers(data, fname, pipeline=name)
        errors.extend(trig_errors)
        if sched is not None or "schedule" in data or "every" in data:  # also beside the schedule's own errors
            problem = schedule_params_problem(params)
            if problem is not None:
                errors.append(PipelineError(file=fname, **problem))
        for w in watches:
            problem = watch_param_problem(w.param, params, name)
            if problem is not None:
                errors.append(PipelineError(file=fname, **problem))

        if "on" in data:  # [[on]]: monitoring rules (docs/monitoring.md); their checker loads only for them
            from ..monitor.spec import check_rules

            kinds = {t: (d.get("kind") if isinstance(d, dict) else None) for t, d in tasks_table.items()}
            errors.extend(check_rules(data, fname, pipeline=name, tasks=kinds, params=declared)[1])

    order: tuple[str, ...] = ()
    graph_errors = len(errors)
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
    graph_ok = len(errors) == graph_errors  # every need names another task
    if tasks and len(tasks) == len(tasks_table):
        if not errors or (stored and graph_ok):
            cycle = find_cycle({n: list(s.needs) for n, s in tasks.items()})
            if cycle:
                errors.append(PipelineError(
                    f"dependency cycle: {' -> '.join(cycle)}", file=fname, field="tasks",
                    expected="a DAG (no task may depend on itself through its needs)",
                ))
            else:
                order = tuple(topological_order({n: list(s.needs) for n, s in tasks.items()}))

    tolerated = stored and name is not None and bool(order)
    if (errors and not tolerated) or name is None:
        return None, [e.in_pipeline(name) for e in errors]
    content_hash = text_hash(text)
    return Pipeline(
        name=name, description=description, params=params, tasks=tasks, order=order,
        source_file=str(file.resolve()), content_hash=content_hash, source_text=text,
        priority=priority, max_parallel=max_parallel, models=models,
    ), [e.in_pipeline(name) for e in errors]


def _parse_models(top: TableReader, tasks_table: dict[str, Any], tasks: dict[str, TaskSpec]) -> dict[str, Any]:
    """The ``[models.NAME]`` tables (:mod:`edgeorch.models.spec` owns their rules); {} when absent."""
    if not top.has("models"):
        return {}
    from ..models.spec import check_models

    registering: dict[str, list[str]] = {}
    for spec in tasks.values():
        if spec.model is not None:
            registering.setdefault(spec.model.name, []).append(spec.name)
    for tname, tdata in tasks_table.items():  # a task with an error (said already) still names its model: else
        if tname in tasks or not isinstance(tdata, dict):  # "no task registers this model" too, which is false
            continue
        raw = tdata.get("model")
        named = raw if isinstance(raw, str) else raw.get("name") if isinstance(raw, dict) else None
        if isinstance(named, str):
            registering.setdefault(named, []).append(tname)
    needs = _declared_needs(tasks_table, tasks)
    checks: dict[str, list[str]] = {}
    for owners in registering.values():
        for owner in owners:
            seen: set[str] = set()
            stack = list(needs.get(owner, []))
            while stack:  # every task it needs, directly or not (a cycle is reported elsewhere)
                up = stack.pop()
                if up not in seen:
                    seen.add(up)
                    stack.extend(needs.get(up, []))
            checks[owner] = sorted(t for t in seen if t in tasks and tasks[t].kind is not None)  # a check: a verdict
    return check_models(top.sub("models"), registering, checks)


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

        from ..triggers.checks import check_pipeline_triggers

        sched, watches, _ = check_pipeline_triggers(tomllib.loads(pipeline.source_text), pipeline.source_file,
                                                    pipeline=pipeline.name)
        hit = _TRIGGERS[key] = (sched, watches)
    return hit


_TRIGGERS: dict[tuple[str, str], tuple[Any, list[Any]]] = {}


def _refuse_other_tools_layout(top: TableReader, data: dict[str, Any]) -> None:
    """Say how to write what another tool's layout put where edgeorch reads nothing: tasks as an array of tables
    (``[[tasks]]`` with a ``name`` key, as CI files and some orchestrators have them), and a pipeline's own keys
    under a ``[pipeline]`` table. A plain "wrong type" or "unknown key" left the reader guessing."""
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        first = next((t.get("name") for t in tasks if isinstance(t, dict) and isinstance(t.get("name"), str)), None)
        example = first if first and _NAME_RE.match(first) else "NAME"
        top.fail("tasks", f"is an array of {len(tasks)} tables ([[tasks]])",
                 expected="one table per task, named by its key: [tasks.NAME]",
                 hint=f"write [tasks.{example}] in place of each [[tasks]] and drop its name key")
    if isinstance(data.get("pipeline"), dict):
        top.seen.add("pipeline")
        top.fail("pipeline", "is not a table of a pipeline file", expected="the pipeline's own keys at the top level",
                 hint="write name, schedule, params, ... at the top of the file, before the first [tasks.NAME], "
                      "and remove the [pipeline] line")


def _refuse_shared_variables(tasks: dict[str, Any], params: dict[str, Param], file: str,
                             errors: list[EdgeorchError]) -> None:
    """Two task names, or two param names, that give one environment variable (:mod:`.envnames`), and a task
    named ``outputs``: an error each, naming both."""
    from .envnames import RESERVED_UPSTREAM, env_collisions

    for name, other, var in env_collisions(tasks, "EDGEORCH_UPSTREAM_", reserved=[RESERVED_UPSTREAM]):
        why = (f"would give its outputs as ${var}, the JSON map of every upstream's outputs" if not other
               else f"would give its outputs as ${var}, as task {other!r} does: one would hide the other")
        errors.append(PipelineError(why, file=file, field=f"tasks.{name}", value=name,
                                    expected="a task name whose variable no other task name gives (names differing "
                                             "only in '-' against '_' or in letter case share one)" if other
                                    else "another task name (outputs is reserved)"))
    for name, other, var in env_collisions(params, "EDGEORCH_PARAM_"):
        errors.append(PipelineError(f"would be passed as ${var}, as param {other!r} is: one would hide the other",
                                    file=file, field=f"params.{name}", value=name,
                                    expected="a param name whose variable no other param name gives (names "
                                             "differing only in '-' against '_' or in letter case share one)"))


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
                ptype = infer_param_type(default)
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
            ptype = infer_param_type(pval)
            if ptype is None:
                reader.fail(pname, "has an unsupported type", value=pval,
                            expected="a string, integer, float, boolean or a table {type, default, help}")
                continue
            try:  # the same rule as a table's default: `rmse = nan` was taken (a run then listed rmse as null)
                pval = coerce_param(ptype, pval)
            except ValueError as exc:
                reader.fail(pname, str(exc), value=pval, expected=a_or_an(ptype))
                continue
            params[pname] = Param(pname, ptype, pval, "")
    return params


NUL_EXPECTED = "text without a NUL character (\\u0000): the system cannot pass one to a program"


def _parse_task(name: str, data: Any, file: str, errors: list[EdgeorchError], params: set[str], *,
                tolerate: bool = False) -> TaskSpec | None:
    """Task ``name``'s table; ``params``: the names the pipeline's [params] declares (placeholders may name them).
    None when it has a problem, unless ``tolerate`` (a stored definition, :func:`parse_pipeline`) and the spec can
    still be built: one of command, call or kind, and its retry numbers read."""
    before = len(errors)
    r = TableReader(data, file=file, prefix=f"tasks.{name}", errors=errors, error_cls=PipelineError)
    if not isinstance(data, dict):  # "must be a table" said: its keys' errors ("must set exactly one of ...") are noise
        return None
    if not _NAME_RE.match(name):
        r.fail(None, "is not a valid task name", value=name,
               expected="letters, digits, '_' or '-', starting with a letter or '_', at most 64 characters")
    shell = r.bool("shell", False)
    command: tuple[str, ...] | str | None = None
    if r.has("command"):
        raw = r.raw("command")
        if shell:
            if isinstance(raw, str) and raw.strip() and "\0" in raw:
                r.fail("command", "contains a NUL character", value=raw, expected=NUL_EXPECTED)
            elif isinstance(raw, str) and raw.strip():
                command = raw
            else:
                r.fail("command", "must be a non-empty string when shell = true", value=raw, expected="a shell command line")
        elif isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
            command = tuple(raw)
            for i, arg in enumerate(raw):
                if "\0" in arg:
                    r.fail(f"command[{i}]", "contains a NUL character", value=arg, expected=NUL_EXPECTED)
            if not raw[0].strip():  # it failed at run time only: "cannot execute '': Permission denied", exit 127
                r.fail("command[0]", "names no program", value=raw[0],
                       expected="the program to run, e.g. \"python\" or \"/usr/bin/env\"")
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
        from ..kernels.kinds import check_options  # the one registry of task kinds

        errors.extend(check_options(kind, options, file=file, prefix=f"tasks.{name}.options",
                                    kind_field=f"tasks.{name}.kind"))
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
    retry_max_delay = r.duration("retry_max_delay", None)
    if retry_max_delay is None and "retry_max_delay" not in r.data:
        # The default cap never shortens a delay written out ("1h" waited 300 s, silently): it is at least that.
        retry_max_delay = max(300.0, retry_delay or 0.0)
    elif retry_max_delay is not None and retry_delay is not None and retry_delay > retry_max_delay:
        r.fail("retry_delay", "is longer than retry_max_delay", value=r.data.get("retry_delay"),
               expected=f"a delay up to retry_max_delay ({retry_max_delay:g}s), the cap of every retry's wait; "
                        "or a longer retry_max_delay")
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
            r.fail(f"env.{k}", "must be a string or number", value=v,
                   expected='a string or a number (a flag as a string: "true")')
        elif "\0" in str(v):
            r.fail(f"env.{k}", "contains a NUL character", value=v, expected=NUL_EXPECTED)
        else:
            env[k] = str(v)
    workdir = r.str("workdir", None)
    if workdir is not None and "\0" in workdir:
        r.fail("workdir", "contains a NUL character", value=workdir, expected=NUL_EXPECTED)
    outputs = r.str_list("outputs", [])
    inputs = r.str_list("inputs", [])
    for i, text in enumerate(inputs or []):
        problem = input_problem(text)
        if problem:
            r.fail(f"inputs[{i}]", problem[0], value=text, expected=problem[1])
        elif inputs.index(text) != i:
            r.fail(f"inputs[{i}]", "lists an input twice", value=text, expected="each input once")
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
    # Each key's one rule lives with its feature, loaded only for a task that has the key (issue 11: a
    # plain pipeline is parsed without the dataset, model and container modules). Absent, each is None.
    dataset = model = container = None
    if r.has("dataset"):
        from ..datasets.names import check_decl  # the one rule of the `dataset` key (tasks and watches)

        dataset = check_decl(r, "dataset", with_path=True)
    if r.has("model"):
        from ..models.spec import check_task_model  # the one rule of the `model` key (docs/models.md)

        model = check_task_model(r, "model")
    if r.has("container"):
        from ..containers.spec import check_task_container  # the one rule of the `container` key

        container = check_task_container(r, "container")
    if container is not None and command is None and (call is not None or kind is not None):
        r.fail("container", f"runs a command, not a {'call' if call is not None else 'kind'}", value=container.image,
               expected="command = [...] in the container (call and kind tasks run edgeorch's own Python on the host)")
    if container is not None and workdir is not None:
        r.fail("workdir", "is a folder on the host; a container task's working folder is container.workdir",
               value=workdir, expected="container = { ..., workdir = \"/path/inside\" } instead")
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
    texts += [(f"tasks.{name}.inputs[{i}]", o) for i, o in enumerate(inputs or [])]
    if dataset is not None and dataset.path:
        texts.append((f"tasks.{name}.dataset.path", dataset.path))
    if model is not None:
        texts += [(f"tasks.{name}.model.{k}", v) for k, v in (("path", model.path), ("metrics", model.metrics)) if v]
    if workdir:
        texts.append((f"tasks.{name}.workdir", workdir))
    if container is not None:
        texts += [(f"tasks.{name}.container.{k}", v) for k, v in container.texts()]
    texts += [(f"tasks.{name}.options.{k}", v) for k, v in strings_in(options)]
    for field, text in texts:
        problem = placeholder_problem(text, known)
        if problem:
            errors.append(PipelineError(problem[0], file=file, field=field, value=text, expected=problem[1]))
    if any(o.startswith("/") or ".." in Path(o).parts for o in outputs or []):
        bad = next(o for o in outputs if o.startswith("/") or ".." in Path(o).parts)
        r.fail("outputs", "must be relative to the task's output folder", value=bad,
               expected="a relative path without '..' (it lands under $EDGEORCH_OUTPUT_DIR)")

    buildable = (sum(x is not None for x in (command, call, kind)) == 1
                 and None not in (retries, retry_delay, retry_backoff, retry_jitter))
    if len(errors) > before and not (tolerate and buildable):
        return None
    spec = TaskSpec(
        name=name, command=command, shell=shell, call=call, kind=kind, options=options, needs=tuple(needs),
        retries=retries, retry_delay=retry_delay, retry_backoff=retry_backoff, retry_max_delay=retry_max_delay,
        retry_jitter=retry_jitter, timeout=timeout, env=env, workdir=workdir, outputs=tuple(outputs),
        inputs=tuple(inputs), dataset=dataset, model=model, cache=cache, cpus=cpus, memory=memory, gpus=gpus, gpu_memory=gpu_memory,
        gpu_model=gpu_model, pool=pool, container=container,
    )
    return replace(spec, definition_hash=definition_hash(spec))


DEFINITION_FIELDS = ("command", "shell", "call", "kind", "options", "env", "workdir", "outputs", "needs")
"""The task keys every definition hash covers (``inputs`` and ``container`` count only when declared)."""


def definition_hash(spec: TaskSpec) -> str:
    """sha256 of what the task computes: command/call/kind, options, env, workdir, outputs, needs, inputs, container.

    Retries, timeouts and resource requests are left out: they change how the
    task runs, not what it produces, so changing them keeps the cache valid.
    ``inputs`` and ``container`` count only when declared, so a task without
    them keeps the hash (and the cache) it had before they existed.

    The fields are read as they are: every one holds plain values (TOML's), which JSON encodes as
    ``dataclasses.asdict`` would give them (a cache key never changes with it), without that deep
    copy of the whole spec (a third of a millisecond per task).
    """
    keep = {k: getattr(spec, k) for k in DEFINITION_FIELDS}
    if spec.inputs:
        keep["inputs"] = spec.inputs
    if spec.container is not None:
        from ..containers.spec import definition_part

        keep["container"] = definition_part(spec.container)
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()
