"""The example pipeline's steps: ingest -> validate -> features -> train -> evaluate -> (quality_gate) -> register.

Each step is a plain function called by edgeorch in a child process with the
pipeline's params as keyword arguments. Steps read upstream outputs from the
paths edgeorch passes in ``EDGEORCH_UPSTREAM_<TASK>`` and write their own
outputs under ``EDGEORCH_OUTPUT_DIR``. ``train`` checkpoints every epoch into
``EDGEORCH_CHECKPOINT_DIR`` and resumes from the last checkpoint when retried.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

NUMERIC = ["area", "rooms", "age", "distance_km"]
REGIONS = ["north", "south", "east", "west"]


def _out(name: str) -> Path:
    return Path(os.environ["EDGEORCH_OUTPUT_DIR"]) / name


def _upstream(task: str) -> Path:
    return Path(os.environ[f"EDGEORCH_UPSTREAM_{task.upper()}"].split(os.pathsep)[0])


def _atomic_save(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def ingest(data: str) -> dict:
    """Read the CSV into arrays (numeric columns + region codes)."""
    src = Path(data)
    with open(src) as f:
        header = f.readline().strip().split(",")
        rows = [line.strip().split(",") for line in f if line.strip()]
    cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    arrays = {c: np.asarray(cols[c], dtype=np.float64) for c in NUMERIC + ["price"]}
    arrays["region"] = np.asarray([REGIONS.index(v) if v in REGIONS else -1 for v in cols["region"]])
    _atomic_save(_out("raw.npz"), **arrays)
    print(f"ingested {len(rows)} rows from {src}")
    return {"rows": len(rows)}


def validate(max_null_rate: float = 0.01) -> dict:
    """Refuse data with NaNs, negative areas or unknown regions."""
    raw = np.load(_upstream("ingest"))
    problems = []
    for c in NUMERIC + ["price"]:
        rate = float(np.isnan(raw[c]).mean())
        if rate > max_null_rate:
            problems.append(f"{c}: null rate {rate:.3f} > {max_null_rate}")
    if (raw["area"] <= 0).any():
        problems.append("area: non-positive values")
    if (raw["region"] < 0).any():
        problems.append("region: unknown categories")
    if problems:
        print("validation failed:\n  " + "\n  ".join(problems), file=sys.stderr)
        raise SystemExit(1)
    _out("valid.json").write_text(json.dumps({"ok": True, "rows": int(raw["area"].size)}))
    print("data valid")
    return {"ok": True}


def features(seed: int = 0) -> dict:
    """Standardise numeric columns, one-hot the region, split train/test."""
    raw = np.load(_upstream("ingest"))
    x_num = np.column_stack([raw[c] for c in NUMERIC])
    mean, std = x_num.mean(axis=0), x_num.std(axis=0)
    x = np.column_stack([(x_num - mean) / std, np.eye(len(REGIONS))[raw["region"]]])
    y = raw["price"]
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = idx[:cut], idx[cut:]
    _atomic_save(_out("features.npz"), x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te], mean=mean, std=std)
    print(f"features: {x.shape[1]} columns, {cut} train rows, {len(y) - cut} test rows")
    return {"columns": int(x.shape[1])}


def train(epochs: int = 40, learning_rate: float = 0.05, fail_at_epoch: int = -1, worse: bool = False) -> dict:
    """Gradient-descent linear regression, checkpointed every epoch.

    A retry resumes from the last checkpoint in ``EDGEORCH_CHECKPOINT_DIR``.
    ``fail_at_epoch`` (first attempt only) simulates a crash mid-training.
    ``worse`` stops after one epoch: a model about 30% worse, which the
    model's gates block (``edgeorch models why``).
    """
    if worse:
        epochs = 1
    data = np.load(_upstream("features"))
    x, y = data["x_train"], data["y_train"]
    ckpt_dir = Path(os.environ["EDGEORCH_CHECKPOINT_DIR"])
    ckpt = ckpt_dir / "last.npz"
    w, b, start = np.zeros(x.shape[1]), float(y.mean()), 0
    if ckpt.exists():
        saved = np.load(ckpt)
        w, b, start = saved["w"], float(saved["b"]), int(saved["epoch"]) + 1
        print(f"resuming from checkpoint after epoch {start}")
    attempt = int(os.environ.get("EDGEORCH_ATTEMPT", "1"))
    # A rerun whose checkpoint is the finished training (a retry after an upstream's file was lost and made
    # again, the same) has no epoch left: its loss is the checkpoint's.
    loss = float(np.mean((x @ w + b - y) ** 2))
    for epoch in range(start, epochs):
        for _ in range(20):
            err = x @ w + b - y
            w -= learning_rate * (x.T @ err) / len(y)
            b -= learning_rate * float(err.mean())
        loss = float(np.mean((x @ w + b - y) ** 2))
        _atomic_save(ckpt, w=w, b=np.asarray(b), epoch=np.asarray(epoch))
        print(f"epoch {epoch + 1}/{epochs} loss {loss:.2f}", flush=True)
        if epoch + 1 == fail_at_epoch and attempt == 1:  # after the epoch printed as "epoch N/..." (counted from 1)
            print("simulated crash", file=sys.stderr)
            raise SystemExit(1)
    _atomic_save(_out("model.npz"), w=w, b=np.asarray(b))
    return {"train_mse": loss, "epochs": epochs}


def evaluate() -> dict:
    """Test-set RMSE and R² into ``metrics.json`` (the quality_gate task judges them)."""
    data = np.load(_upstream("features"))
    model = np.load(_upstream("train"))
    pred = data["x_test"] @ model["w"] + float(model["b"])
    y = data["y_test"]
    rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
    r2 = float(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))
    _out("metrics.json").write_text(json.dumps({"rmse": rmse, "r2": r2}))
    print(f"rmse {rmse:.2f} r2 {r2:.3f}")
    return {"rmse": rmse, "r2": r2}


def register() -> dict:
    """Put the model and its metrics side by side in this task's outputs.

    edgeorch does the registering (the task's ``model`` key): the files
    become the next version of ``house_prices`` with their sha256, judged by
    the gates of ``[models.house_prices]`` and, when they pass, deployed.
    """
    _out("model.npz").write_bytes(_upstream("train").read_bytes())
    metrics = json.loads(_upstream("evaluate").read_text())
    _out("metrics.json").write_text(json.dumps(metrics))
    print(f"packaged the model (rmse {metrics['rmse']:.2f})")
    return metrics
