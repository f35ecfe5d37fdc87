"""resources/cluster.py: a request no node of a cluster could hold is refused naming what each node
lacks; the admission counts the alive nodes as one machine; nodes are read from ray.nodes() entries."""

from __future__ import annotations

from edgeorch.config import ResourcesConfig
from edgeorch.resources import ResourceRequest
from edgeorch.resources.admission import Admission
from edgeorch.resources.cluster import ClusterNode, cluster_inventory, model_matches, never_on_cluster

G = 1024**3
SMALL = ClusterNode("a" * 56, "10.0.0.1", cpus=2, memory=8 * G)
GPU = ClusterNode("b" * 56, "10.0.0.2", cpus=8, gpus=2, memory=64 * G, gpu_memory=24 * G, gpu_models=("A10G",))
DEAD = ClusterNode("c" * 56, "10.0.0.3", alive=False, cpus=64, gpus=8, memory=512 * G, gpu_memory=80 * G,
                   gpu_models=("H100",))


def test_nodes_are_read_from_ray_nodes_entries():
    node = ClusterNode.from_ray({"NodeID": "n1", "NodeManagerAddress": "127.0.0.1", "Alive": True,
                                 "Resources": {"CPU": 2.0, "GPU": 1.0, "memory": 4.0 * G, "gpu_memory_mib": 8192.0,
                                               "accelerator_type:FAKE": 1.0, "node:127.0.0.1": 1.0}})
    assert (node.cpus, node.gpus, node.memory, node.gpu_memory, node.gpu_models) == (2, 1, 4 * G, 8 * G, ("FAKE",))


def test_a_request_one_node_can_hold_is_accepted():
    assert never_on_cluster(ResourceRequest(cpus=2), [SMALL, GPU]) is None
    assert never_on_cluster(ResourceRequest(gpus=2, gpu_memory=16 * G, gpu_model="a10"), [SMALL, GPU]) is None
    assert never_on_cluster(ResourceRequest(gpu_memory=20 * G), [SMALL, GPU]) is None


def test_the_sum_of_nodes_is_not_enough_an_attempt_runs_on_one_node():
    why = never_on_cluster(ResourceRequest(cpus=9), [SMALL, GPU])
    assert why is not None and "fits no node of the Ray cluster (2 nodes" in why
    assert "10.0.0.1 lacks 9 cpus (it has 2)" in why and "10.0.0.2 lacks 9 cpus (it has 8)" in why


def test_dead_nodes_do_not_count():
    why = never_on_cluster(ResourceRequest(gpus=1, gpu_model="H100"), [SMALL, GPU, DEAD])
    assert why is not None and "gpu_model 'H100' (it has A10G)" in why and "10.0.0.3" not in why
    assert never_on_cluster(ResourceRequest(), [DEAD]) == "cannot be placed: the Ray cluster has no alive node"


def test_gpu_memory_needs_a_node_that_declares_it():
    plain = ClusterNode("d" * 56, "10.0.0.4", cpus=4, gpus=1, memory=G)
    why = never_on_cluster(ResourceRequest(gpu_memory=G), [plain])
    assert why is not None and "declares no gpu_memory_mib" in why
    why = never_on_cluster(ResourceRequest(gpu_memory=30 * G), [GPU])
    assert why is not None and "its GPUs have 24.0G" in why


def test_an_unknown_pool_is_refused_with_the_words_used_on_one_machine():
    why = never_on_cluster(ResourceRequest(pool="db"), [GPU], {"io": 2})
    assert why == "pool 'db' is not configured in [resources.pools] (known: io)"


def test_model_matching_is_a_case_insensitive_substring_as_locally():
    assert model_matches(("A100-80GB", "T4"), "a100") == "A100-80GB"
    assert model_matches(("T4",), "A100") is None
    assert model_matches((), None) == ""


def test_the_admission_counts_alive_nodes_as_one_machine_and_refuses_per_node():
    inv = cluster_inventory([SMALL, GPU, DEAD])
    assert len(inv.cpus) == 10 and inv.memory_available == 72 * G
    assert [g.name for g in inv.gpus] == ["A10G", "A10G"] and {g.memory_total for g in inv.gpus} == {24 * G}
    adm = Admission.for_cluster(ResourcesConfig(), [SMALL, GPU])
    assert adm.never(ResourceRequest(cpus=9)) is not None  # 10 cpus in all, but no node has 9
    assert adm.never(ResourceRequest(cpus=8)) is None
    assert not adm.cgroup.enforced and adm.backend is None
