"""Data versions: storage saved on a realistic series of daily batches, and add/restore throughput.

``python benchmarks/bench_datasets.py [--days 30] [--scale 1.0] [--keep-temp]``

Each day a batch folder is written and added as the next version of the
dataset ``daily`` (``edgeorch.datasets.service.add``, what ``edgeorch datasets
add`` runs without a daemon), once with raw chunks and once with ``--compress``:

* ``sales.csv``: an event log that grows by appends (starts at ~40 MB, ~1.5 MB
  of new rows a day);
* ``features.parquet``: a feature table rewritten every day (pyarrow, snappy,
  64k-row row groups) with late corrections to the most recent rows (1,000 rows
  of the last 5% changed) and 5,000 new rows;
* ``customers.csv``: a table exported whole every day, sorted by id (~25 MB):
  2,000 new customers at the end and 8 corrected e-mail addresses scattered
  through it (each changes its row's length, so every byte after it moves);
* ``images/``: a folder of incompressible ~100 KB files (standing in for JPEGs),
  200 on day 1 and 10 new a day.

Reported: the bytes plain daily copies would take, the bytes in the object
store (what ``du`` of ``<state>/datasets/objects`` says), the ratio, the same
figures for fixed-size 1 MiB chunks (computed, not stored: why the chunking is
content-defined), the chunker's own speed, the add throughput (content bytes
per second of ``add``, median of the days) and the restore throughput (the
last version into a new folder, every chunk verified and every file fsynced).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeorch.datasets import service  # noqa: E402
from edgeorch.datasets.chunker import cut_points  # noqa: E402
from edgeorch.datasets.restore import restore  # noqa: E402
from edgeorch.store import Store  # noqa: E402

MB = 1024 * 1024


class Batches:
    """The daily batch folder, evolved day by day (deterministic: seeded)."""

    def __init__(self, root: Path, scale: float) -> None:
        self.root = root
        self.rng = np.random.default_rng(42)
        self.scale = scale
        self.csv_rows = 0
        self.table = None
        self.images = 0
        self.customers: list[list[str]] = []
        (root / "images").mkdir(parents=True)

    def _csv_rows(self, n: int) -> bytes:
        ids = np.arange(self.csv_rows, self.csv_rows + n)
        amounts = self.rng.integers(1, 100_000, n)
        shops = self.rng.integers(1, 500, n)
        self.csv_rows += n
        return "".join(f"{i},2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00,{s},{a / 100:.2f},EUR\n"
                       for i, s, a in zip(ids.tolist(), shops.tolist(), amounts.tolist())).encode()

    def _rows(self, start: int, n: int) -> dict[str, np.ndarray]:
        return {"id": np.arange(start, start + n), "f1": self.rng.normal(size=n), "f2": self.rng.normal(size=n),
                "f3": self.rng.integers(0, 1000, n), "f4": self.rng.random(n).round(3),
                "label": self.rng.integers(0, 2, n)}

    def _customers(self, day: int) -> None:
        n_new = int((300_000 if day == 0 else 2_000) * self.scale)
        start = len(self.customers)
        for i in range(start, start + n_new):
            self.customers.append([str(i), f"name{i * 7919 % 100_003}", f"user{i}@example.org",
                                   ["DE", "FR", "IT", "ES", "NL"][i % 5], f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}"])
        if day:
            for i in self.rng.integers(0, start, 8).tolist():  # corrections: each row changes its length
                self.customers[i][2] = f"{self.customers[i][2].split('@')[0]}.{day}@mail{day}.example.com"
        (self.root / "customers.csv").write_text("id,name,email,country,since\n"
                                                 + "".join(",".join(r) + "\n" for r in self.customers))

    def next_day(self, day: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        csv = self.root / "sales.csv"
        if day == 0:
            csv.write_bytes(b"id,ts,shop,amount,currency\n" + self._csv_rows(int(800_000 * self.scale)))
        else:
            with open(csv, "ab") as f:
                f.write(self._csv_rows(int(30_000 * self.scale)))
        if self.table is None:
            self.table = self._rows(0, int(400_000 * self.scale))
        else:
            t = self.table
            n = len(t["id"])
            recent = self.rng.integers(int(n * 0.95), n, 1000)  # late corrections to the latest rows
            t["f1"][recent] = self.rng.normal(size=len(recent))
            t["label"][recent] = 1 - t["label"][recent]
            new = self._rows(n, 5000)
            self.table = {k: np.concatenate([t[k], new[k]]) for k in t}
        pq.write_table(pa.table(self.table), self.root / "features.parquet", row_group_size=65_536,
                       compression="snappy")
        self._customers(day)
        for _ in range(200 if day == 0 else 10):
            size = int(self.rng.integers(60_000, 140_000))
            (self.root / "images" / f"img{self.images:05d}.jpg").write_bytes(
                self.rng.integers(0, 256, size, dtype=np.uint8).tobytes())
            self.images += 1


def du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def component(rel: str) -> str:
    """``images/img00001.jpg`` -> ``images/``; a top-level file is its own component."""
    return rel.split("/")[0] + "/" if "/" in rel else rel


def fixed_size_stored(root: Path, seen: set[bytes], block: int = MB) -> dict[str, int]:
    """Bytes, per component, that fixed-size chunks of ``block`` would add given the blocks already ``seen``."""
    new: dict[str, int] = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        key = component(f.relative_to(root).as_posix())
        with open(f, "rb") as fh:
            while data := fh.read(block):
                h = hashlib.sha256(data).digest()
                if h not in seen:
                    seen.add(h)
                    new[key] = new.get(key, 0) + len(data)
    return new


def cdc_stored(store: Store, version_id: int, seen: set[str]) -> dict[str, int]:
    """Bytes (before compression), per component, of the chunks this version stored first."""
    files = store.datasets.files(version_id)
    sizes = {sha: r["size"] for sha, r in store.datasets.chunks(sorted({c for f in files for c in f["chunks"]})).items()}
    new: dict[str, int] = {}
    for f in files:
        key = component(f["path"])
        for sha in f["chunks"]:
            if sha not in seen:
                seen.add(sha)
                new[key] = new.get(key, 0) + sizes[sha]
    return new


def run_series(root: Path, days: int, scale: float, compress: bool) -> dict[str, object]:
    batch = Batches(root / "batch", scale)
    state = root / ("var-zstd" if compress else "var-raw")
    store = Store(state / "edgeorch.db")
    objects = service.object_store(state)
    logical, add_rates, fixed_seen, cdc_seen = 0, [], set(), set()
    parts: dict[str, dict[str, int]] = {}
    for day in range(days):
        batch.next_day(day)
        t0 = time.perf_counter()
        v = service.add(store, objects, "daily", batch.root, compress=compress)
        took = time.perf_counter() - t0
        logical += v["size"]
        add_rates.append(v["size"] / took / MB)
        if not compress:
            for f in batch.root.rglob("*"):
                if f.is_file():
                    key = component(f.relative_to(batch.root).as_posix())
                    parts.setdefault(key, {"naive": 0, "cdc": 0, "fixed": 0})["naive"] += f.stat().st_size
            for kind, new in (("cdc", cdc_stored(store, store.datasets.version("daily", v["version"])["id"], cdc_seen)),
                              ("fixed", fixed_size_stored(batch.root, fixed_seen))):
                for key, n in new.items():
                    parts[key][kind] += n
    stored = du(objects.objects)
    dest = root / "restored"
    t0 = time.perf_counter()
    res = restore(service.manifest_of(service.show(store, "daily", None, with_files=True)), objects, dest)
    restore_rate = res["bytes"] / (time.perf_counter() - t0) / MB
    shutil.rmtree(dest)
    last = store.datasets.version("daily")
    store.close()
    return {"compress": compress, "days": days, "versions": days, "last_version_bytes": last["size"],
            "naive_bytes": logical, "stored_bytes": stored, "ratio": logical / stored,
            "fixed_1mib_stored_bytes": sum(p["fixed"] for p in parts.values()) or None,
            "components": parts or None, "add_mb_s_median": statistics.median(add_rates),
            "restore_mb_s": restore_rate, "objects": sum(1 for _ in objects.list_objects())}


def chunker_speed() -> float:
    data = np.random.default_rng(1).integers(0, 256, 256 * MB, dtype=np.uint8).tobytes()
    cut_points(data[:MB])  # compiled (or loaded from numba's cache) before timing
    t0 = time.perf_counter()
    cut_points(data)
    return len(data) / (time.perf_counter() - t0) / MB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--scale", type=float, default=1.0, help="size of the batches (1.0: ~90 MB on day 1)")
    ap.add_argument("--keep-temp", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    try:
        out = {"chunker_mb_s": chunker_speed(), "series": []}
        for compress in (False, True):
            shutil.rmtree(root / "batch", ignore_errors=True)
            out["series"].append(run_series(root, args.days, args.scale, compress))
        print(json.dumps(out, indent=2))
        for s in out["series"]:
            mode = "zstd" if s["compress"] else "raw"
            fixed = (f", fixed 1 MiB chunks would store {s['fixed_1mib_stored_bytes'] / MB:.0f} MB"
                     if s["fixed_1mib_stored_bytes"] else "")
            print(f"{mode}: {s['days']} daily versions, plain copies {s['naive_bytes'] / MB:.0f} MB, stored "
                  f"{s['stored_bytes'] / MB:.0f} MB ({s['ratio']:.1f}x){fixed}; add {s['add_mb_s_median']:.0f} MB/s, "
                  f"restore {s['restore_mb_s']:.0f} MB/s", file=sys.stderr)
            for key, p in sorted((s["components"] or {}).items()):
                print(f"  {key:<18} plain {p['naive'] / MB:7.0f} MB  content-defined {p['cdc'] / MB:6.0f} MB  "
                      f"fixed 1 MiB {p['fixed'] / MB:6.0f} MB", file=sys.stderr)
    finally:
        if args.keep_temp:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
