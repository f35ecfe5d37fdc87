"""The fan-in pipeline on Prefect 3: one whole process.

    python benchmarks/peers/prefect_fan.py --tasks 200 --parallelism 2

A flow whose root task, ``tasks - 2`` tasks waiting on it and a sink waiting
on them all (``--tasks 1``: the root alone) are submitted to a ``ThreadPoolTaskRunner`` of ``--parallelism``
workers; every task runs ``true`` as a subprocess. With no Prefect server
configured, Prefect starts its ephemeral local server (SQLite under
``PREFECT_HOME``) as a user running a flow without one gets; run.py points
``PREFECT_HOME`` at a fresh temporary folder. Exit status 0 only when the
flow completed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner


@task
def step(name: str) -> None:
    subprocess.run(["true"], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--parallelism", type=int, default=2)
    args = ap.parse_args()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=args.parallelism), log_prints=False)
    def fan() -> None:
        root = step.submit("root")
        if args.tasks == 1:  # the one-task pipeline: the root alone
            root.result()
            return
        middle = [step.submit(f"t{i}", wait_for=[root]) for i in range(args.tasks - 2)]
        step.submit("sink", wait_for=middle).result()

    state = fan(return_state=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
