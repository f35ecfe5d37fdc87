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
    from ..pipelines.load import read_pipeline_bytes  # the same bounded read as a pipeline file

    rules: list[RuleSpec] = []
    errors: list[EdgeorchError] = []
    for f in rules_files(folder):
        try:
            data = tomllib.loads(read_pipeline_bytes(f).decode("utf-8"))
        except EdgeorchError as exc:
            errors.append(exc)
            continue
        except UnicodeDecodeError:
            errors.append(PipelineError("is not UTF-8 text", file=str(f), expected="a TOML file of [[on]] rules"))
            continue
        except tomllib.TOMLDecodeError as exc:
            errors.append(PipelineError(f"is not valid TOML: {exc}", file=str(f), expected="a TOML file of [[on]] rules"))
            continue
        found, problems = check_rules_file(data, str(f), pipelines=pipelines)
        rules.extend(found)
        errors.extend(problems)
    return rules, errors


def collect_rules(pipelines: Mapping[str, Any], folder: Path | None) -> tuple[dict[str, RuleSpec], list[str]]:
    """Every rule in force: the pipelines' own (by pipeline name) then the rules folder's, name -> rule, and a
    sentence per problem (a bad rules file; a name declared twice: the first declaration wins, the other is
    ignored and said). The daemon's monitors and ``edgeorch monitors`` without a daemon both read rules this way.
    """
    rules: dict[str, RuleSpec] = {}
    problems: list[str] = []
    for name in sorted(pipelines):
        for spec in pipeline_rules(pipelines[name]):
            if spec.name in rules:
                problems.append(f"rule {spec.name} of pipeline {name} is ignored: pipeline "
                                f"{rules[spec.name].pipeline} declares a rule with that name")
                continue
            rules[spec.name] = spec
    folder_rules, errors = load_rules_dir(folder, pipelines)
    problems.extend(e.render() for e in errors)
    for spec in folder_rules:
        if spec.name in rules:
            first = rules[spec.name]
            problems.append(f"rule {spec.name} of {spec.source_file} is ignored: "
                            f"{first.source_file or 'pipeline ' + first.pipeline} declares a rule with that name")
            continue
        rules[spec.name] = spec
    return rules, problems


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
