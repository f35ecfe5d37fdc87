"""The fan-in pipeline on Luigi, as a Luigi user writes it: one whole process.

    python benchmarks/peers/luigi_fan.py --tasks 200 --parallelism 2 --workdir DIR

A root task, ``tasks - 2`` tasks that each need the root, and a sink that
needs them all; every task runs ``true`` as a subprocess and then touches its
output file (``--tasks 1``: the root alone; Luigi decides "done" by a task's output, and its workers run in
forked processes, so an in-memory flag would not be seen). Local scheduler,
``--parallelism`` worker processes. ``DIR`` must be empty (a fresh run);
exit status 0 only when every task succeeded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import luigi


class Step(luigi.Task):
    """One ``true`` task; ``needs`` names the tasks it depends on (empty: the root)."""

    name = luigi.Parameter()
    needs = luigi.ListParameter(default=())
    workdir = luigi.Parameter()

    def requires(self):
        return [Step(name=n, needs=("root",) if n != "root" else (), workdir=self.workdir) for n in self.needs]

    def output(self):
        return luigi.LocalTarget(str(Path(self.workdir) / f"{self.name}.done"))

    def run(self):
        subprocess.run(["true"], check=True)
        Path(self.output().path).touch()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--workdir", type=Path, required=True)
    args = ap.parse_args()
    if args.tasks == 1:  # the one-task pipeline: the root alone
        top = Step(name="root", workdir=str(args.workdir))
    else:
        top = Step(name="sink", needs=tuple(f"t{i}" for i in range(args.tasks - 2)), workdir=str(args.workdir))
    ok = luigi.build([top], workers=args.parallelism, local_scheduler=True, log_level="WARNING")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
