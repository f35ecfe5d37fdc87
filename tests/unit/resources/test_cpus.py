"""CPU inventory: affinity ∩ cgroup cpuset − reserved, NUMA nodes, MemAvailable (fake /proc and /sys trees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.errors import ConfigError
from edgeorch.resources.cpus import (
    available_memory,
    cgroup_cpuset,
    format_cpu_list,
    numa_nodes,
    parse_cpu_list,
    read_inventory,
    usable_cpus,
)


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.mark.parametrize(("text", "ids"), [("", set()), ("0-3,8", {0, 1, 2, 3, 8}), ("5\n", {5}), ("1-1", {1})])
def test_cpu_list_parses_kernel_syntax(text: str, ids: set[int]) -> None:
    assert parse_cpu_list(text) == ids


def test_cpu_list_round_trips() -> None:
    assert format_cpu_list({0, 1, 2, 3, 8, 10, 11}) == "0-3,8,10-11"
    assert parse_cpu_list(format_cpu_list({0, 1, 2, 3, 8, 10, 11})) == {0, 1, 2, 3, 8, 10, 11}


def test_bad_cpu_list_raises() -> None:
    with pytest.raises(ValueError):
        parse_cpu_list("3-1")


def test_cgroup_v2_cpuset_found_walking_up(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "0::/system.slice/edgeorch.service\n")
    write(tmp_path, "sys/fs/cgroup/system.slice/cpuset.cpus.effective", "2-5\n")
    assert cgroup_cpuset(tmp_path) == {2, 3, 4, 5}


def test_cgroup_v1_cpuset(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "4:memory:/x\n3:cpuset:/docker/abc\n")
    write(tmp_path, "sys/fs/cgroup/cpuset/docker/abc/cpuset.effective_cpus", "0-1\n")
    assert cgroup_cpuset(tmp_path) == {0, 1}


def test_usable_is_affinity_and_cpuset_minus_reserved(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "0::/svc\n")
    write(tmp_path, "sys/fs/cgroup/svc/cpuset.cpus.effective", "2-7\n")
    assert usable_cpus((2,), affinity=set(range(6)), root=tmp_path) == [3, 4, 5]


def test_reserved_cores_the_daemon_does_not_have_are_ignored_but_said(tmp_path: Path, caplog) -> None:
    """`reserved_cpus = [5, 9]` on a 2-core machine was accepted in silence: a typo went unnoticed."""
    import logging

    with caplog.at_level(logging.WARNING, logger="edgeorch.resources"):
        assert usable_cpus((1, 5, 9), affinity={0, 1}, root=tmp_path) == [0]
    assert ["resources.reserved_cpus names core(s) 5,9 that the daemon does not have (it has 0-1): ignored"] == [
        r.getMessage() for r in caplog.records], caplog.records
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgeorch.resources"):
        usable_cpus((1,), affinity={0, 1}, root=tmp_path)
    assert caplog.records == []


def test_reserving_every_core_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        usable_cpus((0, 1), affinity={0, 1}, root=tmp_path)
    assert e.value.field == "resources.reserved_cpus"


def test_numa_nodes_and_meminfo(tmp_path: Path) -> None:
    write(tmp_path, "sys/devices/system/node/node0/cpulist", "0-1\n")
    write(tmp_path, "sys/devices/system/node/node1/cpulist", "2-3\n")
    write(tmp_path, "proc/meminfo", "MemTotal: 100 kB\nMemAvailable:   2048 kB\n")
    assert numa_nodes(tmp_path) == {0: 0, 1: 0, 2: 1, 3: 1}
    assert available_memory(tmp_path) == 2048 * 1024
    inv = read_inventory((0,), affinity={0, 1, 2, 3}, root=tmp_path)
    assert [(c.id, c.numa_node) for c in inv.cpus] == [(1, 0), (2, 1), (3, 1)]


def test_real_machine_inventory_is_within_affinity() -> None:
    import os

    inv = read_inventory()
    assert {c.id for c in inv.cpus} <= os.sched_getaffinity(0)
    assert inv.memory_available > 0


def test_core_groups_say_each_keys_cores_compactly_in_the_order_of_their_lowest_core():
    from edgeorch.resources.cpus import core_groups

    assert core_groups([(9, "b"), (0, "a"), (1, "a"), (3, "a"), (2, "b")]) == [("a", "cores 0-1,3"), ("b", "cores 2,9")]
    assert core_groups([(4, None)]) == [(None, "core 4")] and core_groups([]) == []
