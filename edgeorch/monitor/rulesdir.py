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
from typing import Any, Mapping

from ..errors import EdgeorchError, PipelineError
from .spec import RuleSpec, check_rules_file, pipeline_rules


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
    return rules, [e.render() for e in (*errors, *duplicates)]


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
