"""Pipeline params: typing a value (TOML or a command-line string) and resolving a run's params."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from ..model import Pipeline
from ..tomlcheck import a_or_an, suggest, type_name


def infer_param_type(value: Any) -> str | None:
    """The param type of a TOML value (``bool`` before ``int``), or None when no param type fits."""
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
        if isinstance(value, str) and "\0" in value:  # no task could get it: an argument, EDGEORCH_PARAM_*
            raise ValueError("contains a NUL character")
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
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer no float holds
                raise ValueError("is too large for a float") from None
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
        if number is None:
            raise ValueError("is not a number")
        # nan and inf parse as floats but compare with nothing, and JSON (the runs' records, every reply) has
        # none: `-p rmse=nan` made a run the daemon could not list.
        if not math.isfinite(number):
            raise ValueError("is not a finite number")
        return number
    raise ValueError(f"unknown type {ptype}")  # pragma: no cover - validated earlier


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
                f"has no parameter {key!r}", pipeline=pipeline.name, field=f"{source} {key}", value=key,
                expected=f"one of {', '.join(pipeline.params) or '(no params)'}", hint=f"did you mean {close!r}?" if close else None,
            )
        p = pipeline.params[key]
        try:
            out[key] = coerce_param(p.type, value)
        except ValueError as exc:
            raise UsageError(f"parameter {key} {exc}", pipeline=pipeline.name, field=f"{source} {key}", value=value,
                             expected="a finite float" if "finite" in str(exc) else a_or_an(p.type)) from None
    for name, p in pipeline.params.items():
        if name not in out:
            if p.required:
                raise UsageError(f"parameter {name} is required", pipeline=pipeline.name, field=f"{source} {name}",
                                 expected=f"-p {name}=<{p.type}>")
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


def schedule_params_problem(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Why a scheduled pipeline's fires cannot start, whose ``[params]`` are ``params`` (name -> a declaration with
    ``required``), as an error's fields, or None: a fire passes no params, so a required one (no default) refuses
    every fire; the daemon said so at each fire, and ``validate`` said ok."""
    required = [n for n, p in params.items() if p.required]
    if not required:
        return None
    return {"message": "a schedule's fires pass no params: every fire would be refused",
            "field": f"params.{required[0]}", "value": None,
            "expected": "a default for every param of a scheduled pipeline"
                        + (f" (also {', '.join(required[1:])})" if required[1:] else ""),
            "hint": f"give it one: [params] {required[0]} = {{ type = \"...\", default = ... }}; a run started by "
                    "hand or by a drop sets it with -p or the dropped file"}


def watch_param_problem(param: str, params: Mapping[str, Any], pipeline: str) -> dict[str, Any] | None:
    """Why a watch's ``param`` cannot receive the claimed path in ``pipeline``, whose ``[params]`` are ``params``
    (name -> a declaration with a ``type``), as an error's fields (message, field, value, expected, hint), or
    None. Every file dropped into such a watch's folder would fail to start and go to quarantine."""
    p = params.get(param)
    if p is None:
        return {"message": f"names no param of pipeline {pipeline!r}", "field": "watch.param", "value": param,
                "expected": f"one of {', '.join(params) or '(none)'}",
                "hint": f"declare it in the pipeline: [params] {param} = {{ type = \"path\" }}, "
                        "or set the watch's param"}
    if p.type not in ("path", "str"):
        return {"message": f"must be a path or str param of pipeline {pipeline!r} to receive the claimed file",
                "field": f"params.{param}", "value": p.type, "expected": "type = \"path\" or \"str\"", "hint": None}
    return None
