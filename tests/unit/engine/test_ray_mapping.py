"""engine/executors/ray/mapping.py (pure, no Ray needed): a task's request as Ray options."""

from __future__ import annotations

from edgeorch.engine.executors.ray.mapping import actor_name, ray_options, wants_gpu
from edgeorch.resources.cluster import ClusterNode

G = 1024**3
A10 = ClusterNode("a" * 56, "10.0.0.1", cpus=8, gpus=2, memory=64 * G, gpu_memory=24 * G, gpu_models=("A10G",))
H100 = ClusterNode("b" * 56, "10.0.0.2", cpus=32, gpus=8, memory=512 * G, gpu_memory=80 * G,
                   gpu_models=("H100",))


def test_cpus_memory_and_whole_gpus_map_one_to_one():
    assert ray_options({}, [A10]) == {"num_cpus": 0, "num_gpus": 0}
    assert ray_options({"cpus": 4, "memory": 8 * G, "gpus": 2}, [A10]) == {"num_cpus": 4, "num_gpus": 2,
                                                                             "memory": 8 * G}


def test_a_gpu_memory_share_is_a_fraction_of_the_smallest_gpu_that_holds_it_rounded_up():
    assert ray_options({"gpu_memory": 10 * G}, [A10, H100])["num_gpus"] == 0.4167  # 10/24, never short
    assert ray_options({"gpu_memory": 40 * G}, [A10, H100])["num_gpus"] == 0.5  # only the 80G GPUs hold it


def test_gpu_model_asks_for_a_sliver_of_a_matching_accelerator_type():
    opts = ray_options({"gpus": 1, "gpu_model": "h100"}, [A10, H100])
    assert opts["resources"] == {"accelerator_type:H100": 0.001} and opts["num_gpus"] == 1


def test_attempts_are_named_after_their_id_and_gpu_requests_are_known():
    assert actor_name(42) == "edgeorch-attempt-42"
    assert wants_gpu({"gpu_memory": G}) and wants_gpu({"gpus": 1}) and not wants_gpu({"cpus": 2})
