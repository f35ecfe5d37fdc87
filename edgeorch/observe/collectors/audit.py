"""The audit log: its head sequence number (the newest record) and the last sealed one."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..collect import Sources, gauge


def collect(src: Sources) -> Iterator[Metric]:
    head = src.store.audit.head()
    yield gauge("edgeorch_audit_head_sequence", "Sequence number of the newest audit record (0: an empty log).",
                head[0] if head else 0)
    seal = src.store.audit.last_seal()
    if seal is not None and seal.get("seq") is not None:
        yield gauge("edgeorch_audit_sealed_sequence", "Sequence number the last seal covers.", seal["seq"])
