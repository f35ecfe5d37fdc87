"""The runners of the built-in task kinds: ``run_<kind>(options, progress) -> result document``.

Each is named by its kind's one declaration in :mod:`edgeorch.kernels.kinds`,
whose ``run_task(kind, options)`` checks the options, calls the runner and
stamps ``kind``/``on_violation`` on the document. Light at import: numpy and
numba are imported by a runner when it runs.

Runs inside the task's child process: the working directory is the task's
workdir (relative paths resolve from it) and ``$EDGEORCH_OUTPUT_DIR``, when
set, is where a relative ``save``/``report`` path is written if it has no
directory part. The result document (strict JSON)::

    {"kind", "verdict": ok|warn|violation, "on_violation": fail|warn,
     "message", "rows": [{column, metric, value, p_value, threshold, verdict, details}],
     "summary": {...}, "outputs": [paths written]}

Verdicts: ``violation`` when the check fails as a whole (dataset drift,
a fairness limit broken, a schema violation); ``warn`` when some columns
drifted without dataset drift, or a fairness metric is undefined; else
``ok``. Whether a violation fails the task is the engine's call, from
``on_violation``. Bad input raises :class:`DataError`.

The document's ``verdict``, ``message``, ``rows`` and ``summary`` are the
result object's ``to_dict()`` (``Profile``, ``DatasetDrift``,
``FairnessReport``): one place builds them for the tasks, the CLI's
``--json`` and a notebook.
"""

from __future__ import annotations

import os
from typing import Any

from .results import strict  # noqa: F401  (kinds.run_task makes every document strict through here)


def _out_path(path: str, key: str) -> str:
    """Where option ``key``'s file is written: a bare file name in the task's output folder when there is one.
    Refused in edgeorch's state folder outside its runs (:func:`edgeorch.ownstate.check_output_file`)."""
    from ..ownstate import check_output_file

    out_dir = os.environ.get("EDGEORCH_OUTPUT_DIR")
    if out_dir and not os.path.isabs(path) and os.path.dirname(path) == "":
        path = os.path.join(out_dir, path)
    check_output_file(path, field=key)
    return path


def _doc(verdict: str, message: str, rows: list[dict[str, Any]], summary: dict[str, Any],
         outputs: list[str]) -> dict[str, Any]:
    return {"verdict": verdict, "message": message, "rows": rows, "summary": summary, "outputs": outputs}


def _result_doc(result: Any, outputs: list[str]) -> dict[str, Any]:
    """A result object's document (its ``to_dict()``, less ``kind``, which ``run_task`` stamps) plus ``outputs``
    (the list itself: a report written afterwards is listed too)."""
    d = result.to_dict()
    return _doc(d["verdict"], d["message"], d["rows"], d["summary"], outputs)


# ---------------------------------------------------------------------------


def run_profile(o: dict[str, Any], progress: Any) -> dict[str, Any]:
    """The ``profile`` kind's result document (without ``kind``/``on_violation``)."""
    from .profiling import Profile, profile

    prof = profile(o["input"], columns=o.get("columns"), sketch_size=o.get("sketch_size", 32768),
                   max_bins=o.get("max_bins", 64), progress=progress)
    outputs: list[str] = []
    if o.get("save"):
        path = _out_path(o["save"], "save")
        prof.save(path)
        outputs.append(path)
    result: Any = prof
    if o.get("reference_profile"):
        from .drift import drift_from_profile

        ref = Profile.load(o["reference_profile"])
        result = drift_from_profile(ref, o["input"], columns=o.get("columns"), method=o.get("method"),
                                    threshold=o.get("threshold"), drift_share=o.get("drift_share", 0.5))
        charts = _profile_pair_charts(ref, prof)
    else:
        charts = {c.name: _hist_series(c) for c in prof.columns.values()}
    doc = _result_doc(result, outputs)
    if o.get("report"):
        from .report import render, write

        sections: list[Any] = []
        if not o.get("reference_profile"):
            from .reportparts import profile_sections, sample_table

            sample, sampled = sample_table(o["input"], o.get("columns"))
            sections, _ = profile_sections(prof, sample, sampled, ranges=o.get("ranges"))
        outputs.append(write(_out_path(o["report"], "report"), render({**doc, "kind": "profile"}, charts, sections=sections,
                                                            rows_table=bool(o.get("reference_profile")))))
    return doc


def _edge_labels(c: Any, edges: Any) -> list[str]:
    """Histogram bins as text: ISO 8601 for a datetime column, else 6 significant digits."""
    if c.kind == "datetime":
        from .datetimes import iso

        text = [iso(v, c.tz, date=c.dtype == "date") for v in edges]
    else:
        text = [f"{v:.6g}" for v in edges]
    return [f"[{text[i]}, {text[i + 1]})" for i in range(len(edges) - 1)]


def _hist_series(c: Any, name: str = "data") -> tuple[list[str], list[tuple[str, list[float]]]]:
    if c.kind in ("numeric", "datetime"):
        return _edge_labels(c, c.histogram.edges), [(name, [float(v) for v in c.histogram.counts])]
    top = c.top(30)
    return [k for k, _ in top], [(name, [float(v) for _, v in top])]


def _profile_pair_charts(ref: Any, cur: Any) -> dict[str, Any]:
    charts = {}
    for name, rc in ref.columns.items():
        cc = cur.columns.get(name)
        if cc is None or rc.kind != cc.kind:
            continue
        if rc.kind in ("numeric", "datetime"):
            merged = rc.histogram.merge(cc.histogram)
            a, b = rc.histogram.merge(type(rc.histogram)(merged.exp, merged.start, merged.counts * 0)), \
                cc.histogram.merge(type(cc.histogram)(merged.exp, merged.start, merged.counts * 0))
            labels = _edge_labels(rc, merged.edges)
            charts[name] = (labels, [("reference", [float(v) for v in a.counts]),
                                     ("current", [float(v) for v in b.counts])])
        else:
            keys = [k for k, _ in rc.top(30)]
            keys += [k for k, _ in cc.top(30) if k not in keys]
            charts[name] = (keys, [("reference", [float(rc.value_counts.get(k, 0)) for k in keys]),
                                   ("current", [float(cc.value_counts.get(k, 0)) for k in keys])])
    return charts


def run_drift(o: dict[str, Any], progress: Any) -> dict[str, Any]:
    """The ``drift`` kind's result document (without ``kind``/``on_violation``)."""
    from .columns import NumericBatch
    from .drift import _clean, binned, dataset_drift
    from .io import load_table

    reference, against = _drift_reference(o["reference"])
    if reference is not None:  # a stored profile (a baseline): compared by its histograms, sketches and counts
        return _drift_from_profile(o, reference, against, progress)
    ref_t = load_table(against or o["reference"], o.get("columns"), progress=progress)
    cur_t = load_table(o["current"], o.get("columns"), progress=progress)
    result = dataset_drift(ref_t, cur_t, columns=o.get("columns"),  # None: those in common (or an error naming both)
                           method=o.get("method"), methods=o.get("methods"), threshold=o.get("threshold"),
                           thresholds=o.get("thresholds"), drift_share=o.get("drift_share", 0.5),
                           correction=o.get("correction", "bh"), progress=progress)
    outputs: list[str] = []
    doc = _result_doc(result, outputs)
    if against is not None and against != o["reference"]:
        doc["message"] += f" (reference: {o['reference']})"
    if o.get("report"):
        from .report import render, write

        charts = {}
        for c in result.columns:
            if c.verdict == "skipped":
                continue
            rb, _ = _clean(ref_t[c.column])
            cb, _ = _clean(cur_t[c.column])
            if len(rb.values) and len(cb.values) and isinstance(rb, NumericBatch) == isinstance(cb, NumericBatch):
                r, cu, labels = binned(rb, cb)
                charts[c.column] = (labels, [("reference", list(r)), ("current", list(cu))])
        outputs.append(write(_out_path(o["report"], "report"), render({**doc, "kind": "drift"}, charts)))
    return doc


def _drift_reference(text: Any) -> tuple[Any, str | None]:
    """``(profile, None)`` for a saved profile or a ``baseline:`` reference; ``(None, path)`` for a data file, a
    ``model:`` reference resolving to its training data included (:mod:`edgeorch.monitor.baselines`)."""
    from ..monitor.baselines import is_profile_file, parse_reference, resolve_reference

    if parse_reference(text) is not None:
        ref = resolve_reference(text)
        return ref.profile, ref.path
    if is_profile_file(text):
        from .profiling import Profile

        return Profile.load(text), None
    return None, text


def _drift_from_profile(o: dict[str, Any], reference: Any, against: str | None, progress: Any) -> dict[str, Any]:
    """A drift task against a stored profile (``drift_from_profile``): one method for every column, no per-column
    overrides (they need the reference's values)."""
    from ..errors import DataError
    from .drift import drift_from_profile

    for key in ("methods", "thresholds"):
        if o.get(key):
            raise DataError("per-column overrides need reference data, not a stored profile", field=key,
                            value=o["reference"], expected="one method and threshold for every column")
    result = drift_from_profile(reference, o["current"], columns=o.get("columns"), method=o.get("method"),
                                threshold=o.get("threshold"), drift_share=o.get("drift_share", 0.5),
                                correction=o.get("correction", "bh"), progress=progress)
    outputs: list[str] = []
    doc = _result_doc(result, outputs)
    doc["message"] += f" (reference: {o['reference']})"
    if o.get("report"):
        from .profiling import profile
        from .report import render, write

        cur = profile(o["current"], columns=o.get("columns"))
        outputs.append(write(_out_path(o["report"], "report"), render({**doc, "kind": "drift"}, _profile_pair_charts(reference,
                                                                                                         cur))))
    return doc


def run_fairness(o: dict[str, Any], progress: Any) -> dict[str, Any]:
    """The ``fairness`` kind's result document (without ``kind``/``on_violation``)."""
    from ..errors import DataError
    from .fairness import fairness_report
    from .io import read_table

    groups = o["group"] if isinstance(o["group"], list) else [o["group"]]
    needed = list(dict.fromkeys([*groups, o["prediction"], *([o["label"]] if o.get("label") else []),
                                 *([o["weight"]] if o.get("weight") else [])]))
    table = read_table(o["input"], needed, progress=progress)
    if table.num_rows == 0:
        raise DataError("no rows to measure fairness on", file=str(o["input"]))
    pos = o.get("pos_label", 1)
    pred = _labels(table.column(o["prediction"]), pos, o["input"], o["prediction"])
    truth = _labels(table.column(o["label"]), pos, o["input"], o["label"]) if o.get("label") else None
    sens = {g: table.column(g).to_numpy(zero_copy_only=False) for g in groups}
    # The group rows name their group in `column` (`sex=f`) and carry the
    # minimum group size in their details: FairnessReport.to_dict.
    try:
        rep = fairness_report(truth, pred, sens, pos_label=pos, privileged=o.get("privileged"),
                              min_group_size=o.get("min_group_size", 30), metrics=o.get("metrics"),
                              thresholds=o.get("thresholds"), sample_weight=_weights(table, o),
                              names=(o.get("label") or "label", o["prediction"]))
    except DataError as exc:
        exc.file = exc.file or str(o["input"])
        raise
    outputs: list[str] = []
    doc = _result_doc(rep, outputs)
    if o.get("report"):
        from .report import render, write
        from .reportparts import fairness_sections

        # Rates, not counts: each bar (and its tooltip) is the group's own selection rate.
        outputs.append(write(_out_path(o["report"], "report"), render(
            {**doc, "kind": "fairness"}, sections=fairness_sections(doc, rep.groups, rep.min_group_size))))
    return doc


def _weights(table: Any, o: dict[str, Any]) -> Any:
    """The ``weight`` column as float64 (None without one); a DataError naming the file and column otherwise."""
    if not o.get("weight"):
        return None
    import numpy as np

    from ..errors import DataError

    col = table.column(o["weight"])
    if col.null_count:
        raise DataError("sample weights must not be missing", file=str(o["input"]), field=o["weight"],
                        value=f"{col.null_count} missing", expected="a weight >= 0 on every row")
    try:
        w = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("sample weights must be numbers", file=str(o["input"]), field=o["weight"],
                        value=str(col.type), expected="a numeric column") from None
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():  # said here, naming the file and the column (the kernel's own check names its argument)
        row = int(np.argmax(bad))
        raise DataError("sample weights must be finite and non-negative", file=str(o["input"]), field=o["weight"],
                        value=f"{w[row]:g} (row {row + 1})", expected="a weight >= 0 on every row")
    return w


def _labels(col: Any, pos: Any, file: str, name: str) -> Any:
    """Label column as numpy; a textual pos_label matches numbers by their text (TOML "1" vs 1)."""
    import numpy as np

    arr = col.to_numpy(zero_copy_only=False)
    if isinstance(pos, str) and arr.dtype.kind in "biuf":
        arr = np.asarray([str(int(v)) if float(v).is_integer() else str(v) for v in arr], dtype=object)
    return arr


def run_validate(o: dict[str, Any], progress: Any) -> dict[str, Any]:
    """The ``validate`` kind's result document (without ``kind``/``on_violation``)."""
    from .profiling import profile
    from .validation import validate

    prof = profile(o["input"], progress=progress)
    res = validate(None, required_columns=o.get("required_columns"), types=o.get("types"),
                   ranges=o.get("ranges"), max_null_rate=o.get("max_null_rate"), allowed=o.get("allowed"),
                   profile=prof)
    n = res["violations"]
    verdict = "violation" if n else "ok"
    message = f"{n} of {len(res['rows'])} checks failed" if n else f"all {len(res['rows'])} checks passed"
    outputs: list[str] = []
    summary = {"checks": len(res["rows"]), "violations": n, "rows": prof.rows}
    if o.get("report"):
        from .report import render, write

        doc = _doc(verdict, message, res["rows"], summary, outputs)
        doc["kind"] = "validate"
        outputs.append(write(_out_path(o["report"], "report"), render(doc, {c.name: _hist_series(c) for c in prof.columns.values()})))
    return _doc(verdict, message, res["rows"], summary, outputs)


def run_explain(o: dict[str, Any], progress: Any) -> dict[str, Any]:
    """The ``explain`` kind's result document (without ``kind``/``on_violation``).

    The features are passed to the model as one 2-D float64 array, columns
    in ``features`` order; a non-numeric feature column is a DataError.
    """
    import numpy as np

    from ..errors import DataError
    from .explain import load_model, permutation_importance, shap_importance
    from .io import read_table

    predict = load_model(o["model"])
    table = read_table(o["input"], None if not o.get("features") else [*o["features"], o["target"]],
                       progress=progress)
    if o["target"] not in table.column_names:
        raise DataError("no such column", file=str(o["input"]), field="target", value=o["target"],
                        expected=f"one of {', '.join(table.column_names)}")
    features = list(o.get("features") or [c for c in table.column_names if c != o["target"]])
    if not features:
        raise DataError("no feature columns besides the target", file=str(o["input"]), field="features")
    cols = []
    for name in features:
        col = table.column(name)
        try:
            cols.append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64))
        except (TypeError, ValueError):
            raise DataError("a feature column is not numeric", file=str(o["input"]), field=name,
                            value=str(col.type), expected="numbers (explain passes a 2-D float array)") from None
    X = np.column_stack(cols)
    y = table.column(o["target"]).to_numpy(zero_copy_only=False)
    result = permutation_importance(predict, X, y, metric=o.get("metric", "r2"), n_repeats=o.get("n_repeats", 5),
                                    random_state=o.get("random_state", 0), n_jobs=o.get("n_jobs"),
                                    confidence=o.get("confidence", 0.95), feature_names=features, progress=progress,
                                    source=str(o["input"]), target_name=o["target"])
    if o.get("shap"):
        shap = shap_importance(predict, X, samples=o.get("shap_samples", 100), random_state=o.get("random_state", 0),
                               feature_names=features)
        for f in result.features:
            f["shap"] = shap[f["feature"]]
    outputs: list[str] = []
    doc = _result_doc(result, outputs)
    doc["summary"]["rows"] = table.num_rows
    if o.get("report"):
        from .report import render, write
        from .reportparts import explain_sections

        outputs.append(write(_out_path(o["report"], "report"), render({**doc, "kind": "explain"}, sections=explain_sections(doc),
                                                            rows_table=False)))
    return doc


def run_dp_profile(o: dict[str, Any], progress: Any) -> dict[str, Any]:
    """The ``dp_profile`` kind's result document (without ``kind``/``on_violation``), with ``privacy``.

    ``privacy`` (``dataset``, ``epsilon``, ``delta``, ``budget``, ``release``)
    is what the engine charges to the dataset's ledger before it records the
    document (docs/privacy.md): a release over budget is refused there, its
    document and report removed, never recorded.
    """
    from .privacy import dp_profile

    result = dp_profile(o["input"], epsilon=o["epsilon"], bounds=o.get("bounds"), categories=o.get("categories"),
                        columns=o.get("columns"), contributions=o.get("contributions", 1), bins=o.get("bins", 20),
                        delta=o.get("delta", 0.0))
    outputs: list[str] = []
    doc = _result_doc(result, outputs)
    doc["privacy"] = {"dataset": o.get("dataset") or dataset_name(o["input"]), "epsilon": result.spent,
                      "delta": result.spent_delta, "budget": o.get("budget"),
                      "budget_delta": o.get("budget_delta"),
                      "release": f"dp_profile of {os.path.basename(str(o['input']))}: "
                                 f"{len(result.columns)} columns"}
    if o.get("report"):
        from .report import render, write

        # Absolute: the engine deletes it when the release is refused (engine/privacy.py).
        outputs.append(os.path.abspath(write(_out_path(o["report"], "report"), render({**doc, "kind": "dp_profile"},
                                                                              dp_charts(doc)))))
    return doc


def dp_charts(doc: dict[str, Any]) -> dict[str, Any]:
    """The noisy histogram of each released column of a ``dp_profile`` document, as report charts."""
    return {r["column"]: (r["details"]["histogram"]["labels"],
                          [("noisy counts", [float(v) for v in r["details"]["histogram"]["counts"]])])
            for r in doc["rows"] if r["details"].get("histogram")}


def dataset_name(path: str) -> str:
    """The ledger name of a data file with no ``dataset`` option: ``file:`` and its absolute path."""
    return "file:" + os.path.abspath(str(path))
