"""Child-process entry for ``call = "module:function"`` tasks and built-in kinds.

Run as ``python -m edgeorch.engine.callrunner`` with:

- ``EDGEORCH_CALL=module:function``: imports it and calls it with the params
  (``EDGEORCH_PARAMS``, JSON) as keyword arguments. Only the params the
  function accepts are passed, unless it takes ``**kwargs``.
- ``EDGEORCH_KIND=<kind>`` and ``EDGEORCH_KIND_OPTIONS`` (JSON): runs the
  task kind through its registry, ``edgeorch.kernels.kinds.run_task``.

A JSON-serialisable return value is written to ``$EDGEORCH_RESULT_FILE`` for
the engine to record. Exit codes: 0 success, 1 the function raised (traceback
in the task log), 2 bad input (an edgeorch error, one clear line), 3 a check
found a violation and its policy is ``fail`` (not retried).
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RAISED, EXIT_BAD_INPUT, EXIT_VIOLATION = 0, 1, 2, 3


def plain_json(value: Any, where: str = "") -> Any:
    """``value`` as plain JSON values: numpy scalars and arrays as Python numbers and lists, NaN and infinities
    (Python's or numpy's) as None, tuples as lists, at any depth.

    Raises :class:`TypeError` naming where the first value JSON has no form for lies (``['model']``, ``[2]``) and
    its type: an object is never written as its ``str()`` (a ``"<object object at 0x...>"`` in the result read as
    a value). A NaN inside a numpy scalar made the whole value "not JSON-serialisable", every metric beside it
    lost.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if type(value).__module__ == "numpy":  # numpy itself is only touched when the value came from it
        import numpy as np

        if isinstance(value, np.generic):
            return plain_json(value.item(), where)
        if isinstance(value, np.ndarray):
            return plain_json(value.tolist(), where)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"{where or 'the value'}: a key of type {type(k).__name__}")
            out[k] = plain_json(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where or 'the value'}: {type(value).__name__}")


def _write_result(value: Any, *, strict: bool = True) -> None:
    """``value`` to ``$EDGEORCH_RESULT_FILE`` (atomic). ``strict`` (a ``call`` task's return value): JSON values
    only (:func:`plain_json`), else nothing is written and the log says which value and why; a kind's result
    (edgeorch's own document) goes through the CLI's JSON writer."""
    path = os.environ.get("EDGEORCH_RESULT_FILE")
    if not path or value is None:
        return
    from edgeorch.textui import dumps

    try:
        text = dumps(plain_json(value) if strict else value)
    except (TypeError, ValueError) as exc:
        print(f"edgeorch: the return value is not JSON-serialisable ({exc}); not recorded", file=sys.stderr)
        return
    from edgeorch.durable import write_atomic

    write_atomic(Path(path), text.encode())


def run_call(ref: str, params: dict[str, Any]) -> int:
    module_name, _, func_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        print(f"edgeorch: cannot load {ref}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        sig = inspect.signature(func)
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            params = {k: v for k, v in params.items() if k in sig.parameters}
    except (TypeError, ValueError):
        pass
    try:
        value = func(**params)
    except SystemExit as exc:
        # Python's own meaning: sys.exit() and sys.exit(0) succeed; a message means failure.
        if exc.code is None:
            return EXIT_OK
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return EXIT_RAISED
    except Exception:
        sys.stdout.flush()  # a partial line printed before it: above the traceback, where it was printed
        traceback.print_exc()
        return EXIT_RAISED
    _write_result(value)
    return EXIT_OK


def run_kind(kind: str, options: dict[str, Any]) -> int:
    from edgeorch.errors import EdgeorchError, TaskViolation

    try:
        from edgeorch.kernels.kinds import run_task
    except ImportError as exc:
        print(f"edgeorch: built-in task kinds are not available: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        result = run_task(kind, options)
    except TaskViolation as exc:
        _write_result(exc.result, strict=False)
        print(f"edgeorch: {kind}: violation: {exc.message}", file=sys.stderr)
        return EXIT_VIOLATION
    except EdgeorchError as exc:
        print(f"edgeorch: {kind}: {exc.render()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _write_result(result, strict=False)
    print(f"{kind}: {result.get('verdict', 'ok')}: {result.get('message', '')}")
    if result.get("verdict") == "violation" and result.get("on_violation", "fail") == "fail":
        return EXIT_VIOLATION
    return EXIT_OK


def restore_task_path() -> None:
    """Give the task the module path it is documented to have, now that edgeorch itself is imported.

    The engine starts this module with ``python -P`` and only edgeorch's folder on ``PYTHONPATH``, so
    ``import edgeorch`` cannot pick up a folder of that name in the pipeline folder or the workdir; the
    task's own path (the pipeline folder, edgeorch's folder, the daemon's ``PYTHONPATH``; or the task's
    ``env.PYTHONPATH``) is in ``EDGEORCH_TASK_PYTHONPATH``. It goes back in front of ``sys.path``, after
    the working directory (as ``python -m`` would have put it), and into ``PYTHONPATH`` for the task's
    children. Without that variable (started by hand) nothing changes.
    """
    task_path = os.environ.pop("EDGEORCH_TASK_PYTHONPATH", None)
    if task_path is None:
        return
    if task_path:
        os.environ["PYTHONPATH"] = task_path
    else:
        os.environ.pop("PYTHONPATH", None)
    sys.path[0:0] = [os.getcwd(), *(p for p in task_path.split(os.pathsep) if p)]


def main() -> int:
    # Each line to the task's log as it is printed (and what was printed before the traceback, before it): the log
    # is a pipe, block-buffered by default (PYTHONUNBUFFERED, which the engine sets, may have been unset by the task).
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    restore_task_path()
    params = json.loads(os.environ.get("EDGEORCH_PARAMS", "{}"))
    kind = os.environ.get("EDGEORCH_KIND")
    if kind:
        return run_kind(kind, json.loads(os.environ.get("EDGEORCH_KIND_OPTIONS", "{}")))
    ref = os.environ.get("EDGEORCH_CALL")
    if not ref:
        print("edgeorch: callrunner needs EDGEORCH_CALL or EDGEORCH_KIND", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_call(ref, params)


if __name__ == "__main__":
    sys.exit(main())
