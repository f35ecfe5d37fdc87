"""The ``gate`` task kind: a test that is a task. It fails its run, with the reason, when a condition fails.

Declared once in :mod:`edgeorch.kernels.kinds` (``kind = "gate"``), with the
checker and the runner below. Options::

    [tasks.quality_gate]
    kind = "gate"
    needs = ["evaluate"]
    [tasks.quality_gate.options]
    metrics = "{run_dir}/outputs/evaluate/metrics.json"   # a JSON object of numbers
    conditions = ["rmse <= {max_rmse}", "r2 >= 0.5 and mae < 40"]   # params allowed

Each condition is the gate language of :mod:`edgeorch.models.gates`, over
the names of the metrics file and numbers (no alias or ``checks.``
references: a task does not read the registry). Every condition becomes a
result row (``metric``: the condition; ``value``, ``threshold``, ``verdict``
ok or violation; ``details.why`` in words); one failing condition makes the
task's verdict ``violation``, which fails the task without a retry (and the
run), unless ``on_violation = "warn"``. A registering task that needs this
task can gate on it as ``checks.quality_gate.passed == 1``.

Light: json only (the pipeline loader validates with the checker).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import DataError, DataNotFoundError
from ..tomlcheck import TableReader
from .gates import EXPECTED, GateInputs, GateSyntaxError, check_references, evaluate, parse_gate, verdict_of

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")

OPTIONS = {
    "metrics": "path of a JSON object of numbers (e.g. the metrics an evaluation wrote)",
    "conditions": "array of conditions over its names and numbers: 'rmse <= 60', 'r2 >= 0.5 and mae < 40'",
}


def check_gate(r: TableReader) -> None:
    """The options of a ``gate`` task: a metrics path and at least one condition that parses."""
    r.str("metrics", required=True)
    conditions = r.str_list("conditions", None, required=True)
    if conditions is not None and not conditions:
        r.fail("conditions", "is empty", expected="at least one condition")
    for i, text in enumerate(conditions or []):
        if _PLACEHOLDER.search(text):
            continue  # "rmse <= {max_rmse}": checked again when the task runs, with the param filled in
        try:
            check_references(parse_gate(text), metrics=None, aliases=(), check_tasks=None)
        except GateSyntaxError as exc:
            r.fail(f"conditions[{i}]", exc.message, value=text, expected=EXPECTED, hint=exc.hint)
    r.choice("on_violation", ("fail", "warn"))
    r.str("report")


def run_gate(options: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """The result document of a ``gate`` task (see :mod:`edgeorch.kernels.tasks` for its shape)."""
    path = Path(options["metrics"])
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataNotFoundError("no such metrics file", file=str(path), expected="a JSON object of numbers") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the metrics file: {exc}", file=str(path),
                        expected="a JSON object of numbers") from None
    if not isinstance(data, dict):
        raise DataError("is not a JSON object", file=str(path), expected="a JSON object of numbers")
    outcomes = evaluate(options["conditions"], GateInputs(metrics=data))
    rows = [{"column": None, "metric": o.condition, "value": o.value, "p_value": None, "threshold": o.threshold,
             "verdict": "ok" if o.verdict != "failed" else "violation", "details": {"why": o.why}}
            for o in outcomes]
    failed = [o for o in outcomes if o.verdict == "failed"]
    verdict = "violation" if verdict_of(outcomes) == "failed" else "ok"
    message = (f"{len(failed)} of {len(outcomes)} condition(s) failed: " + "; ".join(o.why for o in failed)
               if failed else f"all {len(outcomes)} condition(s) passed")
    return {"verdict": verdict, "message": message, "rows": rows,
            "summary": {"conditions": len(outcomes), "failed": len(failed)}, "outputs": []}
