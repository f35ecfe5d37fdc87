"""cgroup v2 memory limits: detection and child cgroups over a fake tree; this machine's real answer."""

from __future__ import annotations

from pathlib import Path

from edgeorch.resources import memory


def tree(tmp_path: Path, controllers: str = "cpu memory pids") -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/system.slice/edgeorch.service\n")
    cg = tmp_path / "sys/fs/cgroup/system.slice/edgeorch.service"
    cg.mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/cgroup.controllers").write_text("cpu memory pids\n")
    (cg / "cgroup.controllers").write_text(controllers + "\n")
    (cg / "cgroup.subtree_control").write_text("\n")
    return cg


def test_delegated_cgroup_gets_child_with_memory_max(tmp_path: Path) -> None:
    cg = tree(tmp_path)
    support = memory.detect(tmp_path)
    assert support.enforced and support.path == cg
    memory.prepare(support, pid=1234)
    assert (cg / "daemon/cgroup.procs").read_text() == "1234\n"
    assert (cg / "cgroup.subtree_control").read_text() == "+memory\n"
    child = memory.create_child(support, "run1.train.1", 8 * 1024**3)
    assert child is not None and (child / "memory.max").read_text() == f"{8 * 1024**3}\n"
    (child / "memory.max").unlink()  # on cgroupfs interface files vanish with the folder
    memory.remove_child(child)
    assert not child.exists()
    memory.remove_child(child)  # already gone: fine


def test_a_prepare_the_kernel_refuses_is_said_with_its_reason_and_for_ebusy_its_cause(tmp_path: Path) -> None:
    import errno

    tree(tmp_path)
    support = memory.detect(tmp_path)
    assert support.path is not None
    busy = memory.prepare_failure(support, OSError(errno.EBUSY, "Device or resource busy"))
    assert busy == (f"memory limits not enforced: cannot prepare {support.path}: Device or resource busy (other "
                    "processes share the daemon's cgroup; run it as the systemd service, whose unit has "
                    "Delegate=yes, or in a cgroup of its own)")
    denied = memory.prepare_failure(support, OSError(errno.EACCES, "Permission denied"))
    assert denied == f"memory limits not enforced: cannot prepare {support.path}: Permission denied"


def test_memory_controller_not_delegated_is_reported(tmp_path: Path) -> None:
    tree(tmp_path, controllers="cpu pids")
    support = memory.detect(tmp_path)
    assert not support.enforced and "Delegate=yes" in support.message
    assert memory.create_child(support, "x", 1) is None


def test_cgroup_v1_machine_is_not_enforced(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("4:memory:/x\n3:cpuset:/\n")
    support = memory.detect(tmp_path)
    assert not support.enforced and "cgroup v2" in support.message


def test_this_machine_says_something() -> None:
    support = memory.detect()
    assert support.message.startswith("memory limits")
