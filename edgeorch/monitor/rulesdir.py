"""The rules folder (``[monitor] rules_dir``, default ``<pipelines dir>/rules``): ``*.toml`` files of ``[[on]]``
rules only, read against the loaded pipelines (docs/monitoring.md "A rules folder").

:func:`load_rules_dir` never raises for a bad file: it returns the rules it could build and one error per problem
(an unreadable or oversized file, bad TOML with its line, a bad field with its value), so a broken file is
reported and skipped and the daemon goes on. Files are small and bounded (the pipelines' 1 MiB cap).
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import EdgeorchError, PipelineError
from .spec import RuleSpec, check_rules_file, pipeline_rules
from ..models.spec import STANDARD_ALIASES
from ..tomlcheck import suggest


def rules_files(folder: Path | None) -> list[Path]:
    """The folder's ``*.toml`` entries (``pipelines.load.toml_entries``: an entry that is no readable file is an
    error of its read, not skipped); none when the folder does not exist."""
    if folder is None or not folder.is_dir():
        return []
    from ..pipelines.load import toml_entries

    return toml_entries(folder)


def load_rules_dir(folder: Path | None, pipelines: Mapping[str, Any]) -> tuple[list[RuleSpec], list[EdgeorchError]]:
    """Every rule of the folder's files, validated against ``pipelines`` (name -> loaded pipeline)."""
    rules: list[RuleSpec] = []
    errors: list[EdgeorchError] = []
    for f in rules_files(folder):
        found, problems = load_rules_file(f, pipelines)
        rules.extend(found)
        errors.extend(problems)
    return rules, errors


def load_rules_file(f: Path, pipelines: Mapping[str, Any]) -> tuple[list[RuleSpec], list[EdgeorchError]]:
    """The rules of one rules file, validated against ``pipelines``; never raises for a bad file."""
    from ..pipelines.load import read_pipeline_bytes  # the same bounded read as a pipeline file

    try:
        data = tomllib.loads(read_pipeline_bytes(f).decode("utf-8"))
    except EdgeorchError as exc:
        return [], [exc]
    except UnicodeDecodeError:
        return [], [PipelineError("is not UTF-8 text", file=str(f), expected="a TOML file of [[on]] rules")]
    except tomllib.TOMLDecodeError as exc:
        return [], [PipelineError(f"is not valid TOML: {exc}", file=str(f), expected="a TOML file of [[on]] rules")]
    return check_rules_file(data, str(f), pipelines=pipelines)


def is_rules_file(path: Path, folder: Path | None) -> bool:
    """Whether ``path`` is read as a rules file, not a pipeline: a file in the rules folder ``folder``, or one that
    holds ``[[on]]`` tables and nothing else (a pipeline has tasks). A file that cannot be read or parsed is not
    (its pipeline validation says why)."""
    from ..pipelines.load import read_pipeline_bytes

    if not path.is_file():
        return False
    if folder is not None and path.absolute().parent.resolve() == folder.resolve():  # the entry, not a link's target
        return True
    try:
        data = tomllib.loads(read_pipeline_bytes(path).decode("utf-8"))
    except (EdgeorchError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return set(data) == {"on"}


def collect_rules(pipelines: Mapping[str, Any], folder: Path | None) -> tuple[dict[str, RuleSpec], list[str]]:
    """Every rule in force: the pipelines' own (by pipeline name) then the rules folder's, name -> rule, and a
    sentence per problem (a bad rules file; a name declared twice: :func:`in_force`). The daemon's monitors and
    ``edgeorch monitors`` without a daemon both read rules this way; ``edgeorch validate`` fails on the same
    problems.
    """
    folder_rules, errors = load_rules_dir(folder, pipelines)
    rules, duplicates = in_force(pipelines, folder_rules)
    # One line each (a log line, a cell of `monitors`): a hint's line break came out as a literal "\n" in the log.
    # A rule with an error is not in force (said first, as such); the others' problems are warnings.
    return rules, [f"{NOT_LOADED}{e.one_line()}" for e in errors] + [
        e.one_line() for e in (*duplicates, *unknown_names_of(rules.values(), pipelines))]


NOT_LOADED = "not loaded: "
"""How a problem that keeps a rule out of force begins (a bad rules file's): `edgeorch monitors` calls it an error,
not a warning (an inert safety rule read as merely warned about)."""


def unknown_names_of(rules: Iterable[RuleSpec], pipelines: Mapping[str, Any]) -> list[EdgeorchError]:
    """:func:`unknown_names` of every rule, each naming its file: warnings (``edgeorch validate`` prints them, the
    daemon logs them, ``edgeorch monitors`` lists them), not errors: the rule works but for what they name."""
    out: list[EdgeorchError] = []
    for spec in rules:
        p = pipelines.get(spec.pipeline)
        out += unknown_names(spec, pipelines, spec.source_file or getattr(p, "source_file", None))
    return out


def in_force(pipelines: Mapping[str, Any], folder_rules: list[RuleSpec]) -> tuple[dict[str, RuleSpec],
                                                                                  list[EdgeorchError]]:
    """Which declaration of each rule name is in force: the pipelines' own rules (pipelines by name, rules in file
    order) come first, then ``folder_rules`` (files in name order); the first to declare a name wins. Every later
    declaration is ignored and is an error naming both places (the daemon logs it, ``edgeorch validate`` fails on
    it): the one rule for a name declared twice."""
    rules: dict[str, RuleSpec] = {}
    errors: list[EdgeorchError] = []

    def file_of(spec: RuleSpec) -> str | None:
        if spec.source_file:
            return spec.source_file
        p = pipelines.get(spec.pipeline)
        return getattr(p, "source_file", None)

    def where(spec: RuleSpec) -> str:
        if spec.source_file:
            return spec.source_file
        file = file_of(spec)
        return f"pipeline {spec.pipeline}" + (f" ({file})" if file else "")

    own = [spec for name in sorted(pipelines) for spec in pipeline_rules(pipelines[name])]
    for spec in [*own, *folder_rules]:
        first = rules.get(spec.name)
        if first is None:
            rules[spec.name] = spec
            continue
        errors.append(PipelineError(f"rule {spec.name!r} is ignored: {where(first)} declares a rule with that name",
                                    file=file_of(spec), field=f"{spec.field_prefix}.name", value=spec.name,
                                    expected="a rule name declared once across the pipelines and the rules folder"))
    return rules, errors


def unknown_names(spec: RuleSpec, pipelines: Mapping[str, Any], file: str | None) -> list[EdgeorchError]:
    """A rule's responses and model signal checked against the pipelines: a ``trigger``/``pause`` of a pipeline,
    a ``rollback``/``block_promotions`` of a model (and a rollback's alias), a ``model_metric`` signal's model and
    alias, that none of them declares (a typo passed validation and showed only when the rule fired: "trigger
    house_price refused"). The rule stays in force (its signal and other responses work); the error says what
    will fail, with the nearest name. A warning, not an error (a pipeline that failed to load is unknown too)."""
    models: dict[str, tuple[str, ...]] = {}
    metrics: dict[str, tuple[str, ...]] = {}  # a model's declared metrics (none declared: any name is taken)
    for p in pipelines.values():
        for task in getattr(p, "tasks", {}).values():
            decl = getattr(task, "model", None)
            if decl is not None:
                models.setdefault(decl.name, STANDARD_ALIASES)
        for name, policy in (getattr(p, "models", None) or {}).items():
            models[name] = tuple(policy.aliases)
            metrics[name] = tuple(policy.metrics)
    out: list[EdgeorchError] = []

    def fail(field: str, what: str, value: str, known: list[str] | tuple[str, ...]) -> None:
        close = suggest(value, list(known))
        out.append(PipelineError(f"rule {spec.name!r}: {what}", file=file,
                                 field=field, value=value, expected=f"one of {', '.join(sorted(known)) or '(none)'}",
                                 hint=f"did you mean {close!r}?" if close else "it fails each time the rule fires"))

    for i, r in enumerate(spec.responses):
        field = f"{spec.field_prefix}.do[{i}].{r.action}"
        if r.target is None or "{" in r.target:
            continue
        if r.action in ("trigger", "pause") and r.target not in pipelines:
            fail(field, f"{r.action} names an unknown pipeline", r.target, list(pipelines))
        elif r.action in ("rollback", "block_promotions"):
            if r.target not in models:
                fail(field, f"{r.action} names a model no pipeline declares", r.target, list(models))
            elif r.action == "rollback" and r.alias not in models[r.target]:
                fail(f"{spec.field_prefix}.do[{i}].alias", f"the rollback names an alias {r.target} does not have",
                     r.alias, models[r.target])
    if spec.on_model and spec.model is not None:
        if spec.model not in models:
            fail(f"{spec.field_prefix}.model", "reads a model no pipeline declares", spec.model, list(models))
        elif spec.alias not in models[spec.model]:
            fail(f"{spec.field_prefix}.alias", f"reads an alias {spec.model} does not have", spec.alias,
                 models[spec.model])
        if spec.metric and metrics.get(spec.model) and spec.metric not in metrics[spec.model]:
            # `models observe` refuses such a name, so the rule would never get a value: a safety rule inert.
            fail(f"{spec.field_prefix}.metric", f"reads a metric model {spec.model} does not declare (its "
                 f"[models.{spec.model}] metrics): it never gets a value", spec.metric, metrics[spec.model])
    return out


def folder_digest(folder: Path | None) -> str:
    """A hash of the folder's rules files (names and contents): equal while nothing in it changed. Opening or
    reading a file is no change; an unreadable file counts by its name and error."""
    from ..pipelines.load import read_pipeline_bytes  # bounded, and never blocks on a FIFO

    h = hashlib.sha256()
    for f in rules_files(folder):
        h.update(f.name.encode() + b"\0")
        try:
            h.update(hashlib.sha256(read_pipeline_bytes(f)).digest())
        except EdgeorchError as exc:
            h.update(exc.render().encode())
    return h.hexdigest()
