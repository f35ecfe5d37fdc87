"""ResourceRequest validation and Lease records."""

from __future__ import annotations

import pytest

from edgeorch.resources.model import Lease, ResourceError, ResourceRequest

from .conftest import G


def test_request_from_mapping_parses_sizes() -> None:
    r = ResourceRequest.from_mapping({"cpus": 4, "memory": "8G", "gpu_memory": "20G", "gpu_model": "A100"})
    assert (r.cpus, r.memory, r.gpu_memory, r.gpu_model) == (4, 8 * G, 20 * G, "A100")
    assert r.gpu_share and r.wants_gpu


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        ({"cpus": -1}, "tasks.t.resources.cpus", "an integer >= 0"),
        ({"cpus": True}, "tasks.t.resources.cpus", "an integer >= 0"),
        ({"memory": "8 bananas"}, "tasks.t.resources.memory", "a number of bytes"),
        ({"gpu_model": ""}, "tasks.t.resources.gpu_model", "a non-empty string"),
        ({"gpu": 1}, "tasks.t.resources.gpu", "one of cpus"),
    ],
)
def test_bad_request_names_file_field_and_expectation(data: dict, field: str, expected: str) -> None:
    with pytest.raises(ResourceError) as e:
        ResourceRequest.from_mapping(data, file="p.toml", prefix="tasks.t.resources")
    assert e.value.field == field and e.value.file == "p.toml"
    assert expected in str(e.value)


def test_direct_construction_validates() -> None:
    with pytest.raises(ResourceError, match="gpus"):
        ResourceRequest(gpus=-2)


def test_lease_round_trips_through_dict() -> None:
    lease = Lease("run1/train/1", (2, 3), (2, 3), 8 * G, ("GPU-a",), True, 20 * G, "db")
    assert Lease.from_dict(lease.to_dict()) == lease


def test_malformed_lease_record_is_a_resource_error() -> None:
    with pytest.raises(ResourceError, match="malformed lease"):
        Lease.from_dict({"cpus": [1]})
