"""The fan-in pipeline on Dagster: one whole process.

    python benchmarks/peers/dagster_fan.py --tasks 200 [--executor in_process|multiprocess] [--parallelism 2]

A root op, ``tasks - 2`` ops that each wait on the root, and a sink op that
waits on them all (``--tasks 1``: the root alone; ``Nothing`` dependencies: no data passed); every op runs
``true`` as a subprocess. ``execute_in_process`` with an ephemeral instance:
the default executor runs the ops one at a time in this process (parallelism
1, the cheapest way to run a Dagster job). ``--executor multiprocess`` runs
each op in its own Python process, at most ``--parallelism`` at a time, as a
deployed Dagster does (seconds per op: a fresh interpreter importing dagster).
Exit status 0 only when the run succeeded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from dagster import In, Nothing, job, op, reconstructable


def make_job(n: int, executor: str = "in_process", parallelism: int = 2):
    @op
    def root() -> None:
        subprocess.run(["true"], check=True)

    @op(ins={"after": In(Nothing)})
    def step() -> None:
        subprocess.run(["true"], check=True)

    @op(ins={"after": In(Nothing)})
    def sink() -> None:
        subprocess.run(["true"], check=True)

    config = None
    if executor == "multiprocess":
        from dagster import multiprocess_executor

        config = {"execution": {"config": {"max_concurrent": parallelism}}}
        deco = job(executor_def=multiprocess_executor, config=config)
    else:
        deco = job

    @deco
    def fan():
        r = root()
        if n == 1:  # the one-task pipeline: the root alone
            return
        sink(after=[step.alias(f"t{i}")(after=r) for i in range(n - 2)])

    return fan


def multiprocess_job():
    """The job for ``reconstructable`` (the multiprocess executor re-imports it in each op's process)."""
    import os

    return make_job(int(os.environ["FAN_TASKS"]), "multiprocess", int(os.environ["FAN_PARALLELISM"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--executor", choices=("in_process", "multiprocess"), default="in_process")
    ap.add_argument("--parallelism", type=int, default=2)
    args = ap.parse_args()
    if args.executor == "in_process":
        result = make_job(args.tasks).execute_in_process()
        return 0 if result.success else 1
    import os

    from dagster import DagsterInstance, execute_job

    os.environ["FAN_TASKS"], os.environ["FAN_PARALLELISM"] = str(args.tasks), str(args.parallelism)
    with DagsterInstance.ephemeral() as instance:  # needs DAGSTER_HOME unset or a temp one: see run.py
        result = execute_job(reconstructable(multiprocess_job), instance=instance)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
