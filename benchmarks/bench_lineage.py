"""How long a lineage query takes with 100,000 runs in the state file.

``python benchmarks/bench_lineage.py [--runs 100000] [--repeat 20]``

The history is written straight into a real state file (the schema of
``edgeorch.store``, every migration applied) in a few transactions, not by
running pipelines: each run is a drop-folder input claimed to the inbox, task
``ingest`` consuming it (a declared input) and writing ``clean.csv``, task
``train`` consuming that (an upstream output) and writing ``model.bin``; every
tenth run reads a shared folder of 20 files too. Then, for a run in the middle
of the history, it times (median and max of ``--repeat``) the queries people
make: the upstream of the model file (down to the dropped file and its hash),
the downstream of the dropped file, a run, a task, and the downstream of the
shared folder's first file (consumed by a tenth of all runs; capped by
``max_nodes``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeorch.lineage import query  # noqa: E402
from edgeorch.store import Store  # noqa: E402


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build(path: Path, runs: int) -> None:
    store = Store(path)
    conn = store.db.conn
    now = time.time() - runs
    shared = [(f"f{j:02d}.bin", sha(f"shared{j}"), 1000) for j in range(20)]
    shared_manifest = sha("manifest")
    with store.transaction():
        conn.execute("INSERT INTO pipeline_versions (id, name, content_hash, source_file, source_text, created_at)"
                     " VALUES (1, 'houses', ?, '/p/houses.toml', '', ?)", (sha("pipeline"), now))
        conn.executemany("INSERT INTO manifest_files (manifest, name, sha256, size) VALUES (?, ?, ?, ?)",
                         [(shared_manifest, *m) for m in shared])
    batch = 10_000
    for start in range(1, runs + 1, batch):
        ids = range(start, min(start + batch, runs + 1))
        runs_rows, tasks, attempts, arts, consumed, inputs = [], [], [], [], [], []
        for i in ids:
            t = now + i
            inbox = f"/var/inbox/{i}/houses-{i}.csv"
            raw, clean, model = sha(f"raw{i}"), sha(f"clean{i}"), sha(f"model{i}")
            runs_rows.append((i, "houses", 1, "succeeded", json.dumps({"input": inbox}), f"input:{i}", f"/r/{i}", t, t,
                              t + 1))
            tasks += [(2 * i - 1, i, "ingest", "succeeded", 1, "d1", "ih", t, t + 0.5),
                      (2 * i, i, "train", "succeeded", 1, "d2", "ih", t + 0.5, t + 1)]
            attempts += [(2 * i - 1, 2 * i - 1, i, "ingest", 1, "exited", 0, t, "/l", "/a", "d1", "ih"),
                         (2 * i, 2 * i, i, "train", 1, "exited", 0, t + 0.5, "/l", "/a", "d2", "ih")]
            arts += [(i, "ingest", 2 * i - 1, "clean.csv", f"/r/{i}/outputs/ingest/clean.csv", 10, clean, t + 0.5),
                     (i, "train", 2 * i, "model.bin", f"/r/{i}/outputs/train/model.bin", 10, model, t + 1)]
            consumed += [(i, "ingest", 2 * i - 1, "file", "{input}", inbox, raw, 100, None, None, None, None, t),
                         (i, "train", 2 * i, "upstream", None, f"/r/{i}/outputs/ingest/clean.csv", clean, 10, None,
                          i, "ingest", 2 * i - 1, t + 0.5)]
            if i % 10 == 0:
                consumed.append((i, "ingest", 2 * i - 1, "folder", "shared", "/data/shared", shared_manifest, 20_000,
                                 20, None, None, None, t))
            inputs.append((i, "houses", "/drop", f"houses-{i}.csv", f"/drop/houses-{i}.csv", inbox, 100, raw, "done",
                           i, t, t))
        with store.transaction():
            conn.executemany("INSERT INTO runs (id, pipeline, pipeline_version_id, state, params, trigger, run_dir,"
                             " created_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs_rows)
            conn.executemany("INSERT INTO tasks (id, run_id, name, state, attempts, definition_hash, input_hash,"
                             " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tasks)
            conn.executemany("INSERT INTO attempts (id, task_id, run_id, task, number, state, exit_code, started_at,"
                             " log_path, attempt_dir, definition_hash, input_hash) VALUES"
                             " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", attempts)
            conn.executemany("INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", arts)
            conn.executemany("INSERT INTO consumed (run_id, task, attempt_id, kind, spec, path, sha256, size, files,"
                             " source_run, source_task, source_attempt, recorded_at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", consumed)
            conn.executemany("INSERT INTO inputs (id, pipeline, watch_folder, source_name, source_path, inbox_path,"
                             " size, sha256, state, run_id, arrived_at, claimed_at) VALUES"
                             " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", inputs)
    conn.execute("ANALYZE")
    store.close()


def timed(fn, repeat: int) -> tuple[float, float, dict]:
    times, doc = [], {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        doc = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "edgeorch.db"
        t0 = time.perf_counter()
        build(db, args.runs)
        print(f"history: {args.runs} runs written in {time.perf_counter() - t0:.1f} s "
              f"({db.stat().st_size / 1e6:.0f} MB state file)")
        store = Store(db, readonly=True)
        mid = args.runs // 2 - args.runs // 2 % 10  # a run that also read the shared folder
        cases = [
            ("upstream of a model file (to the dropped file)", f"/r/{mid}/outputs/train/model.bin", ["upstream"]),
            ("downstream of a dropped file's inbox copy", f"/var/inbox/{mid}/houses-{mid}.csv", ["downstream"]),
            ("a run, both ways", str(mid), ["upstream", "downstream"]),
            ("a task, both ways", f"{mid}/train", ["upstream", "downstream"]),
            ("downstream of a file in a folder read by 10% of runs (max_nodes 2000)", "/data/shared/f00.bin",
             ["downstream"]),
        ]
        print(f"{'query':<72} {'median':>9} {'max':>9} {'nodes':>6}")
        for name, thing, dirs in cases:
            sha256 = sha("shared0") if thing.startswith("/data/shared") else None
            med, worst, doc = timed(lambda: query(store, thing, sha256=sha256, directions=dirs), args.repeat)
            print(f"{name:<72} {med * 1000:8.1f}ms {worst * 1000:8.1f}ms {len(doc['nodes']):>6}")
        store.close()


if __name__ == "__main__":
    main()
