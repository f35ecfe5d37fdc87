"""What the audit log costs: a record's write, the engine's per-task overhead with and without it, verification speed.

1. ``write_audit`` in a tight loop (one open transaction): microseconds per record.
2. The engine benchmark's fan pipeline (benchmarks/bench_engine.py) run in pairs,
   once as shipped and once with ``write_audit`` replaced by a no-op, in
   alternating order: the engine process's CPU time and the wall time per task.
3. ``edgeorch audit verify`` of a sealed log of ``--records`` records (read from
   the state file, the chain and every seal's MAC checked): records per second.

    python benchmarks/bench_audit.py [--tasks 300] [--pairs 6] [--records 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_engine  # noqa: E402

import edgeorch.store.attempts as attempts_mod  # noqa: E402
import edgeorch.store.events as events_mod  # noqa: E402
import edgeorch.store.inputs as inputs_mod  # noqa: E402
import edgeorch.store.pipelines as pipelines_mod  # noqa: E402
import edgeorch.store.runs as runs_mod  # noqa: E402
from edgeorch.audit.keyfile import key_path  # noqa: E402
from edgeorch.audit.sealer import Sealer  # noqa: E402
from edgeorch.audit.source import StoreSource, verify_source  # noqa: E402
from edgeorch.store import Store  # noqa: E402
from edgeorch.store.audit import write_audit  # noqa: E402

WRITERS = (events_mod, attempts_mod, runs_mod, inputs_mod, pipelines_mod)
DETAILS = {"attempt_id": 1, "state": "exited", "exit_code": 0, "signal": None, "reason": None,
           "task_state": "succeeded", "artifacts": 0, "charged": True}


def per_record(n: int = 20000, repeat: int = 5) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "edgeorch.db")
        out = []
        for _ in range(repeat):
            with store.transaction():
                t0 = time.perf_counter()
                for _ in range(n):
                    write_audit(store.db, None, "attempt_ended", "run:12/train", DETAILS)
                out.append((time.perf_counter() - t0) / n * 1e6)
        store.close()
        return out


def set_audit(on: bool) -> None:
    for mod in WRITERS:
        mod.write_audit = write_audit if on else (lambda *a, **k: 0)  # type: ignore[attr-defined]


def engine_pairs(tasks: int, pairs: int) -> dict[bool, tuple[list[float], list[float]]]:
    res: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    bench_engine.engine_once(50)  # warm up: zygote, imports
    for i in range(pairs):
        for on in ((True, False) if i % 2 == 0 else (False, True)):
            set_audit(on)
            c0 = time.process_time()
            wall = bench_engine.engine_once(tasks)
            res[on][0].append((time.process_time() - c0) / tasks * 1000)
            res[on][1].append(wall / tasks * 1000)
    set_audit(True)
    return res


def verify_speed(records: int) -> tuple[float, bool]:
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "edgeorch.db")
        sealer = Sealer(store.audit, key_path(Path(d)), clock=time.time)
        key0 = sealer.init(None)
        for start in range(0, records, 1000):
            with store.transaction():
                for i in range(start, min(start + 1000, records)):
                    write_audit(store.db, None, "attempt_ended", f"run:{i}/train", DETAILS)
            sealer.seal()
        store.close()
        reader = Store(Path(d) / "edgeorch.db", readonly=True)
        t0 = time.perf_counter()
        with reader.audit.snapshot():
            report, _ = verify_source(StoreSource(reader.audit, key_path(Path(d))), key0=key0)
        took = time.perf_counter() - t0
        reader.close()
        return report.records / took, report.ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    rec = per_record()
    print(f"write_audit: {statistics.median(rec):.1f} us/record (median; {', '.join(f'{x:.1f}' for x in rec)})")
    res = engine_pairs(args.tasks, args.pairs)
    for on in (False, True):
        cpu, wall = res[on]
        print(f"engine, {'with' if on else 'without'} audit: CPU {statistics.median(cpu):.2f} ms/task, "
              f"wall {statistics.median(wall):.2f} ms/task (medians of {args.pairs})")
    rate, ok = verify_speed(args.records)
    print(f"verify --key: {rate:,.0f} records/s over {args.records:,} records ({'ok' if ok else 'FAILED'})")


if __name__ == "__main__":
    main()
