"""A ready task that asks the cache again when its slot comes (a result of it was recorded while it waited) does
not leave that slot idle.

Found by a tester: with one run's long `train` in one slot, two more runs' short cached `prep` tasks took
turns in the other; the second prep, asked again at its turn, was queued back with no dispatch, and the free slot
stayed idle until the long train ended (30 s for 1.5 s of work; hours on a training box).
"""

from __future__ import annotations

import time


def test_a_task_queued_back_by_its_second_cache_question_starts_in_the_free_slot(workspace, daemon):
    workspace.pipeline("stall", """
        [params]
        tag = "x"
        hold = "no"
        [tasks.prep]
        command = ["sh", "-c", "sleep 0.3; echo {tag} > {output_dir}/p.txt"]
        outputs = ["p.txt"]
        cache = true
        [tasks.train]
        command = ["sh", "-c", "if [ {hold} = yes ]; then while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done; fi"]
        needs = ["prep"]
    """)
    daemon.start()
    long = daemon.call("trigger", {"pipeline": "stall", "params": {"tag": "a", "hold": "yes"}})["run_id"]
    deadline = time.monotonic() + 30
    while not any(t["name"] == "train" and t["state"] == "running"
                  for t in daemon.call("runs.show", {"run_id": long})["tasks"]):
        assert time.monotonic() < deadline, "the long run's train never started"
        time.sleep(0.02)
    b = daemon.call("trigger", {"pipeline": "stall", "params": {"tag": "b"}})["run_id"]
    c = daemon.call("trigger", {"pipeline": "stall", "params": {"tag": "c"}})["run_id"]
    try:
        # While the long train holds one slot, both short runs finish in the other.
        assert daemon.wait_run(b, timeout=30) == "succeeded"
        assert daemon.wait_run(c, timeout=30) == "succeeded"
        assert daemon.call("runs.show", {"run_id": long})["state"] == "running"
    finally:
        (workspace.pipelines / "go").touch()
    assert daemon.wait_run(long) == "succeeded"
    assert "asking the cache again" in daemon.output()  # the path this is about was taken
