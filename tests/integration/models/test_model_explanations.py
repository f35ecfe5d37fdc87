"""An explain task the registering task needs: its feature importances (with intervals) are recorded with the
model version in the registration's transaction and shown by `edgeorch models show NAME VERSION`."""

from __future__ import annotations

import json
import sys
import textwrap

from edgeorch.model import RunState

TRAIN = textwrap.dedent('''\
    import json, os, pickle
    import numpy as np
    from sklearn.linear_model import LinearRegression
    out = os.environ["EDGEORCH_OUTPUT_DIR"]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = 3.0 * X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.1, size=400)
    with open(os.path.join(out, "data.csv"), "w") as f:
        f.write("strong,weak,noise,y\\n")
        for row, t in zip(X, y):
            f.write(",".join(f"{v:.6f}" for v in (*row, t)) + "\\n")
    model = LinearRegression().fit(X, y)
    with open(os.path.join(out, "model.pkl"), "wb") as f:
        pickle.dump(model, f)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"r2": float(model.score(X, y))}, f)
    ''')


def _pipeline(ws) -> None:
    (ws.root / "train.py").write_text(TRAIN)
    ws.pipeline("explained", f'''
        name = "explained"
        [tasks.train]
        command = ["{sys.executable}", "{ws.root / 'train.py'}"]
        outputs = ["model.pkl", "metrics.json", "data.csv"]
        [tasks.why]
        kind = "explain"
        needs = ["train"]
        [tasks.why.options]
        model = "{{run_dir}}/outputs/train/model.pkl"
        input = "{{run_dir}}/outputs/train/data.csv"
        target = "y"
        n_repeats = 4
        n_jobs = 1
        [tasks.register]
        command = ["{sys.executable}", "-c", "import os, shutil; d = os.environ['EDGEORCH_RUN_DIR'] + '/outputs/train/'; [shutil.copy(d + f, os.environ['EDGEORCH_OUTPUT_DIR']) for f in ('model.pkl', 'metrics.json')]"]
        needs = ["train", "why"]
        outputs = ["model.pkl", "metrics.json"]
        model = {{ name = "lin", path = "model.pkl", metrics = "metrics.json" }}
        ''')


def test_explain_before_register_records_importances_with_the_version(workspace, harness) -> None:
    _pipeline(workspace)
    run_id, state = harness.run("explained", timeout=120)
    assert state == RunState.SUCCEEDED, _reasons(harness, run_id)
    store = harness.store()
    try:
        [v] = store.models.versions("lin")
        ex = v["checks"]["why"]["explanation"]
        assert [f["feature"] for f in ex["features"]] == ["strong", "weak", "noise"]
        strong, weak, noise = ex["features"]
        assert strong["rank"] == 1 and strong["ci_low"] <= strong["importance"] <= strong["ci_high"]
        assert weak["ci_low"] > 0 > noise["ci_low"] - 1e-12  # the noise feature's interval reaches 0 or below
    finally:
        store.close()
    shown = workspace.invoke("models", "show", "lin", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["version"] == 1 and doc["explanations"]["why"]["features"][0]["feature"] == "strong"
    table = workspace.invoke("models", "show", "lin", "1")
    assert table.returncode == 0, table.stderr
    assert "feature importances from why (permutation_importance; top 3 of 3)" in table.stdout
    assert table.stdout.index("strong") < table.stdout.index("weak") < table.stdout.index("noise")
    missing = workspace.invoke("models", "show", "lin", "7")
    assert missing.returncode == 3 and "lin has no version 7" in missing.stderr


def _reasons(harness, run_id: int) -> list[tuple[str, str | None]]:
    store = harness.store()
    try:
        return [(t["name"], t["reason"]) for t in store.runs.tasks_of(run_id)]
    finally:
        store.close()
