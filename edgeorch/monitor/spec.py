"""Pure: the ``[[on]]`` tables of a pipeline file -> :class:`RuleSpec` (docs/monitoring.md).

A rule reads one signal, compares it with a threshold, and when the condition
has held long enough (hysteresis) runs its responses, bounded by a cooldown,
a daily maximum and a dedupe key::

    [[on]]
    name = "retrain_on_drift"     # unique among the loaded pipelines
    signal = "drift_share"        # drift_share | violations | metric | failure_rate | freshness | model_metric
    task = "drift"                # a kind task of this pipeline (result signals)
    op = ">="                     # > (default), >=, <, <=
    threshold = 0.3
    for_evaluations = 1           # consecutive evaluations that must hold (hysteresis)
    for = "0s"                    # ... and for at least this long
    cooldown = "1h"               # no response sooner than this after the last one
    max_per_day = 3
    dedupe = "{input_sha256}"     # a firing whose key was seen in the last day responds no more
    dry_run = false               # record what would have happened, do nothing
    [[on.do]]
    trigger = "house_prices"
    params = { data = "{input_path}" }

:func:`check_rules` never raises for bad input: it returns the rules it could
build and one :class:`~edgeorch.errors.PipelineError` per problem, naming the
file, the field (``on[0].threshold``), the value and what was expected. The
pipeline parser calls it (inside a function, as for the triggers' keys); the
monitor service calls :func:`pipeline_rules` for a loaded pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..errors import EdgeorchError, PipelineError
from ..models.spec import alias_problem, name_problem
from ..records import frozen
from ..tomlcheck import TableReader

SIGNALS = ("drift_share", "violations", "metric", "failure_rate", "freshness", "model_metric")
"""What a condition reads. Result signals (the first three) read the newest result of one check task of the
rule's pipeline; ``failure_rate`` the share of a pipeline's runs finished in a window that failed;
``freshness`` the age of a drop folder's newest input or of a pipeline's newest successful run;
``model_metric`` a metric of the version a model's alias points at: its realized value (the newest observed
since the alias moved to it, ``edgeorch models observe``) or the value it was registered with."""
RESULT_SIGNALS = ("drift_share", "violations", "metric")
OPS = (">", ">=", "<", "<=")
FRESHNESS_SOURCES = ("drop", "success")
MODEL_SOURCES = ("realized", "registered")
ACTIONS = ("trigger", "pause", "quarantine", "notify", "rollback", "block_promotions")
"""The response kinds; each ``[[on.do]]`` table sets exactly one of them."""

PLACEHOLDERS = ("rule", "pipeline", "run_id", "value", "threshold", "input_path", "input_sha256", "signal", "model",
                "version")
"""What ``{...}`` may name in a trigger's params, a dedupe key or a notify argv; ``params.NAME`` too (the
signal run's params)."""

RULE_KEYS = ["name", "signal", "task", "metric", "column", "op", "threshold", "window", "pipeline", "source",
             "max_age", "check_every", "model", "alias", "for_evaluations", "for", "cooldown", "max_per_day",
             "dedupe", "dry_run", "do", "description"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


@frozen
class Response:
    """One ``[[on.do]]`` table: ``action`` (one of :data:`ACTIONS`) and its arguments.

    ``target``: the pipeline to trigger or pause, the model to roll back or
    whose promotions to block; ``params``: a trigger's params (templates);
    ``argv``: a notify command (templates; the signal as JSON on stdin);
    ``timeout``: seconds; ``alias``: the alias a rollback moves back;
    ``until``: how long a block lasts at most (seconds; None: until the rule
    resolves, which lifts it in any case).
    """

    action: str
    target: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    argv: tuple[str, ...] = ()
    timeout: float = 30.0
    alias: str = "champion"
    until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.action}
        if self.target is not None:
            d["target"] = self.target
        if self.params:
            d["params"] = dict(self.params)
        if self.argv:
            d["argv"] = list(self.argv)
            d["timeout"] = self.timeout
        if self.action == "rollback":
            d["alias"] = self.alias
        if self.action == "block_promotions":
            d["until"] = self.until
        return d


@frozen
class RuleSpec:
    """One validated rule. Durations are seconds; ``pipeline`` is the file's pipeline (the rule's owner).

    ``watched``: the pipeline whose runs (failure_rate, freshness ``success``) or drop folder (freshness
    ``drop``) the signal reads; the owner unless ``pipeline =`` names another. ``model``, ``alias``: the
    model and alias a ``model_metric`` signal reads (``source``: realized or registered).
    """

    name: str
    pipeline: str
    signal: str
    threshold: float | None
    op: str = ">"
    task: str | None = None
    metric: str | None = None
    column: str | None = None
    window: float = 3600.0
    watched: str = ""
    source: str = "drop"
    max_age: float | None = None
    check_every: float | None = None
    model: str | None = None
    alias: str = "champion"
    for_evaluations: int = 1
    for_seconds: float = 0.0
    cooldown: float = 0.0
    max_per_day: int | None = None
    dedupe: str | None = None
    dry_run: bool = False
    responses: tuple[Response, ...] = ()
    description: str = ""
    field_prefix: str = "on"
    source_file: str | None = None
    """The rules-folder file that declares it (None: its pipeline's file)."""

    @property
    def timed(self) -> bool:
        """Evaluated on a timer (freshness), not when a run finishes."""
        return self.signal == "freshness"

    @property
    def on_model(self) -> bool:
        """Evaluated when the model's metrics are observed or its alias moves (model_metric), not on runs."""
        return self.signal == "model_metric"

    @property
    def on_runs(self) -> bool:
        """Evaluated on every finished run of ``watched`` (result signals, failure_rate)."""
        return not self.timed and not self.on_model

    def describe(self) -> str:
        """The condition in words: ``drift_share of task drift > 0.3``."""
        if self.signal == "model_metric":
            return f"{self.source} {self.metric} of {self.model} {self.alias} {self.op} {self.threshold:g}"
        if self.signal == "freshness":
            what = ("newest input of the drop folder of " if self.source == "drop"
                    else "newest successful run of ") + self.watched
            return f"age of the {what} > {self.max_age:g}s"
        if self.signal == "failure_rate":
            return f"failure rate of {self.watched} over {self.window:g}s {self.op} {self.threshold:g}"
        subject = self.metric if self.signal == "metric" else self.signal
        col = f" (column {self.column})" if self.column else ""
        return f"{subject}{col} of task {self.task} {self.op} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pipeline": self.pipeline, "signal": self.signal, "condition": self.describe(),
                "op": self.op, "threshold": self.threshold, "task": self.task, "metric": self.metric,
                "column": self.column, "watched": self.watched, "source": self.source, "max_age": self.max_age,
                "window": self.window, "model": self.model, "alias": self.alias,
                "for_evaluations": self.for_evaluations, "for": self.for_seconds,
                "cooldown": self.cooldown, "max_per_day": self.max_per_day, "dedupe": self.dedupe,
                "dry_run": self.dry_run, "responses": [r.to_dict() for r in self.responses],
                "file": self.source_file}


def check_rules(data: dict[str, Any], file: str, *, pipeline: str, tasks: dict[str, Any] | None = None,
                params: set[str] | None = None) -> tuple[list[RuleSpec], list[EdgeorchError]]:
    """Validate the ``on`` key of a pipeline file (absent: no rules); collect every problem.

    ``tasks`` maps this pipeline's task names to their ``kind`` (None for a command or call task): a
    result signal must name a kind task. ``params``: this pipeline's param names (``{params.X}`` must
    name one). Names must be unique within the file; across files the monitor service refuses a
    duplicate (it cannot be seen from one file).
    """
    errors: list[EdgeorchError] = []
    raw = data.get("on")
    if raw is None:
        return [], errors
    rules: list[RuleSpec] = []
    seen: set[str] = set()
    for prefix, table in _on_tables(raw, file, errors):
        rule = _check_rule(table, file, prefix, pipeline, tasks or {}, params or set(), errors)
        if rule is not None and _unique(rule, seen, file, prefix, errors):
            rules.append(rule)
    return rules, errors


def _unique(rule: RuleSpec, seen: set[str], file: str, prefix: str, errors: list[EdgeorchError]) -> bool:
    """Whether ``rule``'s name is new in this file (then it is added to ``seen``); else an error is appended."""
    if rule.name in seen:
        errors.append(PipelineError("names a rule twice in this file", file=file, field=f"{prefix}.name",
                                    value=rule.name, expected="a name used by one [[on]] table"))
        return False
    seen.add(rule.name)
    return True


def _on_tables(raw: Any, file: str, errors: list[EdgeorchError]) -> list[tuple[str, dict[str, Any]]]:
    """``on`` as ``(field prefix, table)`` pairs: one ``[on]`` table or an array of them; anything else is
    an error (appended) and no table."""
    tables = [raw] if isinstance(raw, dict) else raw
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        errors.append(PipelineError("must be a table or an array of tables", file=file, field="on", value=raw,
                                    expected="[[on]] tables"))
        return []
    return [("on" if isinstance(raw, dict) else f"on[{i}]", table) for i, table in enumerate(tables)]


def check_rules_file(data: dict[str, Any], file: str, *,
                     pipelines: Mapping[str, Any]) -> tuple[list[RuleSpec], list[EdgeorchError]]:
    """Validate a rules-folder file: only ``[[on]]`` tables, each naming with ``pipeline =`` the loaded pipeline
    whose task results, runs or drop folder it reads (a ``model_metric`` rule may name none). Collects every
    problem like :func:`check_rules`; a rule naming a pipeline that is not loaded is one of them.
    """
    errors: list[EdgeorchError] = []
    for key in data:
        if key != "on":
            errors.append(PipelineError("a rules file holds only [[on]] tables", file=file, field=key,
                                        expected="[[on]] tables (a pipeline goes in the pipelines folder)"))
    raw = data.get("on")
    if raw is None:
        errors.append(PipelineError("has no rule", file=file, field="on", expected="[[on]] tables"))
        return [], errors
    rules: list[RuleSpec] = []
    seen: set[str] = set()
    for prefix, table in _on_tables(raw, file, errors):
        owner, signal = table.get("pipeline"), table.get("signal")
        if owner is None and signal != "model_metric":
            errors.append(PipelineError("is required in a rules file", file=file, field=f"{prefix}.pipeline",
                                        expected="the name of the loaded pipeline whose results, runs or drop folder "
                                                 "the rule reads"))
            continue
        if owner is not None and (not isinstance(owner, str) or owner not in pipelines):
            errors.append(PipelineError("names no loaded pipeline", file=file, field=f"{prefix}.pipeline", value=owner,
                                        expected=f"one of {', '.join(sorted(pipelines)) or '(none loaded)'}"))
            continue
        p = pipelines.get(owner) if owner is not None else None
        # The owner is the pipeline the rule reads; failure_rate and freshness keep the key (what they watch).
        body = {k: v for k, v in table.items() if k != "pipeline" or signal in ("failure_rate", "freshness")}
        rule = _check_rule(body, file, prefix, owner or "", {n: t.kind for n, t in p.tasks.items()} if p else {},
                           set(p.params) if p else set(), errors)
        if rule is not None and _unique(rule, seen, file, prefix, errors):
            rules.append(replace(rule, source_file=file))
    return rules, errors


def _check_rule(data: dict[str, Any], file: str, prefix: str, pipeline: str, tasks: dict[str, Any],
                params: set[str], errors: list[EdgeorchError]) -> RuleSpec | None:
    before = len(errors)
    r = TableReader(data, file=file, prefix=prefix, errors=errors, error_cls=PipelineError)
    name = r.str("name", None, required=True)
    if name is not None and not _NAME_RE.match(name):
        r.fail("name", "is not a valid rule name", value=name,
               expected="letters, digits, '_', '-' or '.', starting with a letter or '_', at most 64 characters")
    signal = r.str("signal", None, required=True)
    if signal is not None and signal not in SIGNALS:
        r.fail("signal", "has an unknown value", value=signal, expected=f"one of {', '.join(SIGNALS)}")
        signal = None
    op = r.choice("op", OPS, ">")
    threshold = r.number("threshold", None)
    task = r.str("task", None)
    metric = r.str("metric", None)
    column = r.str("column", None)
    window = r.duration("window", 3600.0)
    watched = r.str("pipeline", pipeline)
    model = r.str("model", None)
    alias = r.str("alias", "champion")
    sources = MODEL_SOURCES if signal == "model_metric" else FRESHNESS_SOURCES
    source = r.choice("source", sources, sources[0])
    max_age = r.duration("max_age", None)
    check_every = r.duration("check_every", None)
    n = r.int("for_evaluations", 1, minimum=1, maximum=1000)
    for_s = r.duration("for", 0.0)
    cooldown = r.duration("cooldown", 0.0)
    max_per_day = r.int("max_per_day", None, minimum=1, maximum=100000)
    dedupe = r.str("dedupe", None)
    dry_run = r.bool("dry_run", False)
    description = r.str("description", "", nonempty=False)
    for key, val in (("window", window), ("max_age", max_age), ("check_every", check_every)):
        if val is not None and val <= 0:
            r.fail(key, "must be positive", value=data.get(key), expected="a duration > 0")
    for key, val in (("for", for_s), ("cooldown", cooldown)):
        if val is not None and val < 0:
            r.fail(key, "must not be negative", value=data.get(key), expected="a duration >= 0")

    if signal in RESULT_SIGNALS:
        if task is None:
            r.fail("task", "is required for a result signal", expected="the name of a kind task of this pipeline")
        elif task not in tasks:
            r.fail("task", "names no task of this pipeline", value=task,
                   expected=f"one of {', '.join(tasks) or '(none)'}")
        elif tasks[task] is None:
            r.fail("task", "is not a check task (it has no kind)", value=task,
                   expected="a task with kind = drift, validate, profile, fairness, ...")
        if signal == "metric" and metric is None:
            r.fail("metric", "is required for signal = \"metric\"", expected="a result row's metric (psi, null_rate, ...)")
    elif signal == "model_metric":
        if model is None:
            r.fail("model", "is required for signal = \"model_metric\"", expected="the name of a model (models.NAME)")
        elif name_problem(model):
            r.fail("model", name_problem(model) or "", value=model, expected="a model name like house_prices")
        if alias_problem(alias):
            r.fail("alias", alias_problem(alias) or "", value=alias, expected="an alias like champion or canary")
        if metric is None:
            r.fail("metric", "is required for signal = \"model_metric\"", expected="a metric of the model (rmse, ...)")
        for key in ("task", "column"):
            if r.has(key):
                r.fail(key, f"is only valid with a result signal ({', '.join(RESULT_SIGNALS)})", value=data[key],
                       expected="model, alias, metric and source for a model_metric signal")
    else:
        for key in ("task", "metric", "column"):
            if r.has(key) and signal is not None:
                r.fail(key, f"is only valid with a result signal ({', '.join(RESULT_SIGNALS)})", value=data[key])
    if signal != "model_metric":
        for key in ("model", "alias"):
            if r.has(key) and signal is not None:
                r.fail(key, "is only valid with signal = \"model_metric\"", value=data[key],
                       expected="no model or alias key with this signal")
    if signal == "freshness":
        if max_age is None:
            r.fail("max_age", "is required for signal = \"freshness\"", expected="a duration like '2h'")
        if r.has("threshold"):
            r.fail("threshold", "is not used by freshness (max_age is its threshold)", value=data["threshold"])
    elif signal is not None:
        if threshold is None and not r.has("threshold"):
            r.fail("threshold", "is required", expected="a number the signal is compared with")
        for key in ("max_age", "check_every") if signal == "model_metric" else ("max_age", "check_every", "source"):
            if r.has(key):
                r.fail(key, "is only valid with signal = \"freshness\"", value=data[key])
    if signal == "failure_rate" and threshold is not None and not 0 <= threshold <= 1:
        r.fail("threshold", "is out of range for a failure rate", value=threshold, expected="a fraction from 0 to 1")
    if r.has("window") and signal not in ("failure_rate", None):
        r.fail("window", "is only valid with signal = \"failure_rate\"", value=data["window"])
    if r.has("pipeline") and (signal in RESULT_SIGNALS or signal == "model_metric"):
        r.fail("pipeline", "is only valid with failure_rate and freshness (a result signal reads this pipeline, "
               "model_metric its model)", value=watched)
    if dedupe is not None:
        _check_templates(r, [("dedupe", dedupe)], params)

    responses = _check_responses(r, params)
    if sum(x.action == "trigger" for x in responses) > 1:
        # The run a firing starts is created in the transaction of the firing (one per episode): one run.
        r.fail("do", "has more than one trigger response", value=[x.target for x in responses if x.action == "trigger"],
               expected="at most one [[on.do]] trigger per rule (a pipeline may start others itself)")
    r.finish(RULE_KEYS)
    if len(errors) > before or name is None or signal is None:
        return None
    if check_every is None and max_age is not None:
        check_every = min(max(max_age / 4, 1.0), 300.0)  # a breach is seen within a quarter of max_age
    return RuleSpec(name=name, pipeline=pipeline, signal=signal, threshold=threshold, op=op, task=task, metric=metric,
                    column=column, window=window, watched=watched, source=source, max_age=max_age,
                    check_every=check_every, model=model, alias=alias or "champion", for_evaluations=n, for_seconds=for_s, cooldown=cooldown,
                    max_per_day=max_per_day, dedupe=dedupe, dry_run=dry_run, responses=tuple(responses),
                    description=description, field_prefix=prefix)


def _check_responses(r: TableReader, params: set[str]) -> list[Response]:
    raw = r.raw("do", None)
    if raw is None:
        r.fail("do", "is required", expected=f"at least one [[on.do]] table ({', '.join(ACTIONS)})")
        return []
    tables = [raw] if isinstance(raw, dict) else raw
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        r.fail("do", "must be a table or a non-empty array of tables", value=raw, expected="[[on.do]] tables")
        return []
    out: list[Response] = []
    for i, table in enumerate(tables):
        d = TableReader(table, file=r.file, prefix=r.field(f"do[{i}]"), errors=r.errors, error_cls=r.error_cls)
        given = [a for a in ACTIONS if a in table]
        if len(given) != 1:
            d.fail(None, "must set exactly one action", value=", ".join(given) or "none",
                   expected=f"one of {', '.join(ACTIONS)}")
            continue
        action = given[0]
        if action in ("trigger", "pause", "rollback", "block_promotions"):
            target = d.str(action, None, required=True)
            if target is not None and action in ("rollback", "block_promotions") and name_problem(target):
                d.fail(action, name_problem(target) or "", value=target, expected="a model name like house_prices")
            p_raw = d.table("params", {}) if action == "trigger" else {}
            pairs: list[tuple[str, str]] = []
            for k, v in p_raw.items():
                if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                    d.fail(f"params.{k}", "must be a string or number", value=v, expected="a value or a {placeholder}")
                else:
                    pairs.append((k, str(v)))
            _check_templates(d, [(f"params.{k}", v) for k, v in pairs], params)
            alias = d.str("alias", "champion") if action == "rollback" else "champion"
            until = d.duration("until", None) if action == "block_promotions" else None
            if until is not None and until <= 0:
                d.fail("until", "must be positive", value=table.get("until"),
                       expected="a duration > 0 (without it the block lasts until the rule resolves)")
            d.finish({"trigger": [action, "params"], "rollback": [action, "alias"],
                      "block_promotions": [action, "until"]}.get(action, [action]))
            if target is not None:
                out.append(Response(action, target=target, params=tuple(pairs), alias=alias, until=until))
        elif action == "quarantine":
            flag = d.bool("quarantine", None)
            if flag is not True:
                d.fail("quarantine", "must be true", value=table.get("quarantine"), expected="quarantine = true")
            d.finish(["quarantine"])
            out.append(Response("quarantine"))
        else:
            argv = d.str_list("notify", None)
            if not argv:
                d.fail("notify", "must be a non-empty array of strings", value=table.get("notify"),
                       expected="an argv array like [\"/usr/local/bin/page\", \"{rule}\"]")
            timeout = d.duration("timeout", 30.0)
            if timeout is not None and timeout <= 0:
                d.fail("timeout", "must be positive", value=table.get("timeout"), expected="a duration > 0")
            d.finish(["notify", "timeout"])
            if argv:
                _check_templates(d, [(f"notify[{j}]", a) for j, a in enumerate(argv)], params)
                out.append(Response("notify", argv=tuple(argv), timeout=timeout or 30.0))
    return out


def _check_templates(r: TableReader, texts: list[tuple[str, str]], params: set[str]) -> None:
    for key, text in texts:
        for name in _PLACEHOLDER_RE.findall(text):
            if name in PLACEHOLDERS or (name.startswith("params.") and name[7:] in params):
                continue
            r.fail(key, "names an unknown placeholder", value="{" + name + "}",
                   expected=f"one of {', '.join('{' + p + '}' for p in PLACEHOLDERS)} or {{params.NAME}} "
                            f"(NAME a param of this pipeline)")


INPUT_PLACEHOLDERS = ("input_path", "input_sha256")
"""The placeholders a signal has only when its run was started by a dropped file."""


def lacking_input(spec: Any, values: dict[str, Any]) -> list[str]:
    """The input placeholders (:data:`INPUT_PLACEHOLDERS`) that ``spec``'s responses use (a trigger's params, a
    notify's argv) and ``values`` (its signal's) lacks: the run the signal came from was not started by a dropped
    file. Firing then retrained on ``data = ""``, a run that failed before any attempt, and spent the rule's
    cooldown on it. Empty when nothing is lacking."""
    used = {m.group(1) for r in spec.responses for text in (*(v for _, v in r.params), *r.argv)
            for m in _PLACEHOLDER_RE.finditer(text)}
    return [name for name in INPUT_PLACEHOLDERS if name in used and values.get(name) is None]


def fill(template: str, values: dict[str, Any]) -> str:
    """Substitute ``{name}`` placeholders (checked at parse time) from ``values``; a missing one becomes ''."""
    return _PLACEHOLDER_RE.sub(lambda m: "" if values.get(m.group(1)) is None else str(values[m.group(1)]), template)


@dataclass
class _Cache:
    """A pipeline's checked rules by (pipeline file, content hash): an unchanged pipeline's are not checked again."""

    entries: dict[tuple[str, str], list[RuleSpec]] = field(default_factory=dict)


_CACHE = _Cache()


def pipeline_rules(pipeline: Any) -> list[RuleSpec]:
    """The rules of a valid, loaded pipeline (validated with it; cached by file and content hash)."""
    key = (pipeline.source_file, pipeline.content_hash)
    hit = _CACHE.entries.get(key)
    if hit is None:
        import tomllib

        data = tomllib.loads(pipeline.source_text)
        hit, _ = check_rules(data, pipeline.source_file, pipeline=pipeline.name,
                             tasks={n: t.kind for n, t in pipeline.tasks.items()}, params=set(pipeline.params))
        if len(_CACHE.entries) >= 1024:  # bounded: old versions drop out
            _CACHE.entries.pop(next(iter(_CACHE.entries)))
        _CACHE.entries[key] = hit
    return hit
