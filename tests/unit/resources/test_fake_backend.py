"""The fake device table: file loading, clear errors, and the simulation controls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeorch.resources.gpus.fake import FakeBackend
from edgeorch.resources.model import NVML_ERROR_GPU_IS_LOST, GpuBackendError, ResourceError

from .conftest import G, gpu_table

M = 1024**2


def test_loads_toml_and_json_files(tmp_path: Path) -> None:
    t = tmp_path / "gpus.toml"
    t.write_text('[[gpu]]\nuuid = "GPU-a"\nmemory = "16G"\nname = "Tesla T4"\n'
                 '[[gpu.process]]\npid = 42\nmemory = "1G"\n')
    j = tmp_path / "gpus.json"
    j.write_text(json.dumps(gpu_table(2)))
    ft = FakeBackend.from_file(t)
    assert ft.devices()[0].name == "Tesla T4"
    assert ft.reading("GPU-a").memory_free == 15 * G - 512 * M  # 1G used, 512M kept by the driver
    assert [p.pid for p in ft.processes("GPU-a")] == [42]
    assert len(FakeBackend.from_file(j).devices()) == 2


@pytest.mark.parametrize(
    ("table", "field", "expected"),
    [
        ({"gpu": [{"uuid": "GPU-a"}]}, "gpu[0].memory", "a number of bytes"),
        ({"gpu": [{"uuid": "x", "memory": "1G"}]}, "gpu[0].uuid", "starting with 'GPU-'"),
        ({"gpu": [{"uuid": "GPU-a", "memory": "lots"}]}, "gpu[0].memory", "a number of bytes"),
        ({"gpu": [{"uuid": "GPU-a", "memory": "1G", "colour": 1}]}, "gpu[0].colour", "one of"),
        ({"gpu": [{"uuid": "GPU-a", "memory": "1G", "cpus": "9-1"}]}, "gpu[0].cpus", "CPU list"),
        ({"gpu": [{"uuid": "GPU-a", "memory": "1G", "mig": [{"uuid": "MIG-1", "memory": "2G"}]}]},
         "gpu[0].mig", "at most"),
        ({"gpu": [{"uuid": "GPU-a", "memory": "1G"}, {"uuid": "GPU-a", "memory": "1G"}]}, "gpu[1].uuid", "unique"),
    ],
)
def test_bad_table_names_file_field_value(table: dict, field: str, expected: str) -> None:
    with pytest.raises(ResourceError) as e:
        FakeBackend(table, file="gpus.toml")
    assert e.value.field == field and e.value.file == "gpus.toml"
    assert expected in str(e.value)


def test_malformed_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "gpus.json"
    bad.write_text("{nope")
    with pytest.raises(ResourceError, match="gpus.json: malformed JSON"):
        FakeBackend.from_file(bad)
    badt = tmp_path / "gpus.toml"
    badt.write_text("[[gpu]\n")
    with pytest.raises(ResourceError, match="malformed TOML"):
        FakeBackend.from_file(badt)


def test_memory_follows_processes_and_external_use(fake: FakeBackend) -> None:
    u = fake.devices()[0].uuid
    fake.set_used(u, 10 * G)
    fake.add_process(u, 100, 5 * G)
    assert fake.reading(u).memory_free == 65 * G - 512 * M
    fake.remove_process(u, 100)
    assert fake.reading(u).memory_free == 70 * G - 512 * M


def test_xid_on_mig_parent_is_reported_for_each_instance(fake: FakeBackend) -> None:
    mig = next(d for d in fake.devices() if d.parent)
    fake.inject_xid(mig.uuid, 79)
    events = fake.poll_health()
    assert {e.uuid for e in events} == {d.uuid for d in fake.devices() if d.parent}
    assert all(e.kind == "xid" and e.code == 79 for e in events)
    assert fake.poll_health() == []


def test_uncorrectable_ecc_counts_and_reports(fake: FakeBackend) -> None:
    u = fake.devices()[0].uuid
    fake.inject_ecc_uncorrectable(u, 2)
    assert fake.reading(u).ecc_uncorrected == 2
    assert [e.kind for e in fake.poll_health()] == ["ecc_uncorrectable"]


def test_lost_gpu_raises_gpu_is_lost_and_is_reported_once(fake: FakeBackend) -> None:
    u = fake.devices()[1].uuid
    fake.make_lost(u)
    with pytest.raises(GpuBackendError) as e:
        fake.reading(u)
    assert e.value.nvml_code == NVML_ERROR_GPU_IS_LOST
    assert [(e.uuid, e.kind) for e in fake.poll_health()] == [(u, "lost")]
    assert fake.poll_health() == []


def test_fail_with_simulates_any_nvml_code(fake: FakeBackend) -> None:
    u = fake.devices()[0].uuid
    fake.fail_with(u, 999)
    with pytest.raises(GpuBackendError) as e:
        fake.processes(u)
    assert e.value.nvml_code == 999
    fake.fail_with(u, None)
    assert fake.processes(u) == ()


@pytest.mark.parametrize(
    ("gpu", "field", "expected"),
    [
        ({"reserved": "90G"}, "gpu[0].reserved", "at most"),
        ({"reserved": "lots"}, "gpu[0].reserved", "a number of bytes"),
        ({"compute_mode": "exclusive_thread"}, "gpu[0].compute_mode", "default, exclusive_process or prohibited"),
        ({"mig": [{"uuid": "MIG-1", "memory": "1G", "gi": "one"}]}, "gpu[0].mig[0].gi", "an integer"),
    ],
)
def test_bad_new_keys_name_file_field_value(gpu: dict, field: str, expected: str) -> None:
    with pytest.raises(ResourceError) as e:
        FakeBackend({"gpu": [{"uuid": "GPU-a", "memory": "80G", **gpu}]}, file="gpus.toml")
    assert e.value.field == field and expected in str(e.value)


def test_an_idle_gpu_is_never_entirely_free() -> None:
    fake = FakeBackend({"gpu": [{"uuid": "GPU-a", "memory": "80G"}, {"uuid": "GPU-b", "memory": "8G",
                                                                     "reserved": "0"}]})
    a, b = fake.devices()
    assert (a.memory_reserved, fake.free_memory("GPU-a")) == (512 * M, 80 * G - 512 * M)
    assert fake.reading("GPU-a").memory_used == 512 * M  # as NVML's v1 memory query reports it
    assert (b.memory_reserved, fake.free_memory("GPU-b")) == (0, 8 * G)


def test_a_cuda_process_reports_its_context_and_host_pid() -> None:
    from edgeorch.resources.gpus.fake import CUDA_CONTEXT

    fake = FakeBackend({"gpu": [{"uuid": "GPU-a", "memory": "80G"}]})
    fake.add_cuda_process("GPU-a", 10, G)
    fake.pid_offset = 7000
    assert [(p.pid, p.used_memory) for p in fake.processes("GPU-a")] == [(7010, G + CUDA_CONTEXT)]


def test_optional_readings_fail_alone_and_remaps_are_reported_once(fake: FakeBackend) -> None:
    u = fake.devices()[0].uuid
    fake.fail_optional(u, "temperature", 999)
    r = fake.reading(u)
    assert r.temperature is None and r.problems == ("temperature: NVML error 999",) and r.memory_free > 0
    fake.fail_optional(u, "temperature", None)
    assert fake.reading(u).temperature == 30
    fake.set_remapped(u, failed=True)
    assert [(e.uuid, e.kind) for e in fake.poll_health()] == [(u, "remap_failed")]
    assert fake.poll_health() == [] and fake.reading(u).remap_failed is True


def test_a_call_can_raise_something_that_is_not_a_backend_error(fake: FakeBackend) -> None:
    u = fake.devices()[0].uuid
    fake.fail_with(u, None, exc=lambda: KeyError("bug"), calls=("processes",))
    with pytest.raises(KeyError):
        fake.processes(u)
    assert fake.reading(u).memory_free > 0
