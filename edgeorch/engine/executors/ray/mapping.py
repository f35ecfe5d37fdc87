"""Pure: a task's resource request as Ray options, and the names the executor gives attempts.

The mapping (docs/scale-out.md "Resources"):

- ``cpus`` → ``num_cpus`` (0: the attempt takes no CPU of the node's count,
  as a local task without ``cpus`` shares the unleased cores);
- ``memory`` → ``memory`` (bytes; Ray reserves it on the node, it does not
  enforce it);
- ``gpus = N`` → ``num_gpus = N``; a memory share (``gpu_memory`` without
  ``gpus``) → a fraction of one GPU, ``gpu_memory`` over the memory of one GPU
  (``gpu_memory_mib``, declared by the node), rounded up to Ray's precision:
  Ray never places fractions adding up to more than one GPU, so shares never
  add up to more than its memory. With several GPU sizes in a cluster the
  fraction is taken against the smallest GPU that can hold the share (never
  too small on a larger one);
- ``gpu_model`` → a sliver (0.001) of the ``accelerator_type:<TYPE>``
  resource of a type it matches (case-insensitive substring, as locally),
  which only nodes with that GPU type have.

Nothing here imports Ray.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ....resources.cluster import ACCELERATOR_PREFIX, ClusterNode, fits_node, model_matches
from ....resources.model import ResourceRequest

FRACTION_STEP = 10_000
"""Ray counts fractional resources in steps of 1/10,000."""
MODEL_SLIVER = 0.001
"""How much of an ``accelerator_type:<TYPE>`` resource an attempt asks for (Ray's own convention)."""
ACTOR_PREFIX = "edgeorch-attempt-"


def actor_name(attempt_id: int) -> str:
    """The detached actor of an attempt, in the daemon's namespace: found again after a restart by this name."""
    return f"{ACTOR_PREFIX}{attempt_id}"


def request_of(resources: Mapping[str, Any]) -> ResourceRequest:
    """``SpawnRequest.resources`` back into a :class:`ResourceRequest` (validated there)."""
    keys = ("cpus", "memory", "gpus", "gpu_memory", "gpu_model")
    return ResourceRequest(**{k: resources[k] for k in keys if resources.get(k) is not None})


def ray_options(resources: Mapping[str, Any], nodes: Iterable[ClusterNode]) -> dict[str, Any]:
    """The ``.options(...)`` of an attempt's actor for ``resources`` (``SpawnRequest.resources``).

    ``nodes`` decide only the GPU share's fraction and which accelerator type
    a ``gpu_model`` names; a request that fits no node was refused before
    (``resources/cluster.py``), so the options here are then only a best try.
    """
    req = request_of(resources)
    fitting = [n for n in nodes if n.alive and fits_node(req, n) is None]
    opts: dict[str, Any] = {"num_cpus": req.cpus, "num_gpus": req.gpus}
    if req.memory:
        opts["memory"] = req.memory
    if req.gpu_share:
        sizes = [n.gpu_memory for n in fitting if n.gpu_memory]
        smallest = min(sizes) if sizes else req.gpu_memory
        opts["num_gpus"] = min(1.0, math.ceil(req.gpu_memory / smallest * FRACTION_STEP) / FRACTION_STEP)
    if req.wants_gpu and req.gpu_model is not None:
        types = sorted({t for n in fitting for t in n.gpu_models})
        chosen = model_matches(types, req.gpu_model) or req.gpu_model
        opts["resources"] = {f"{ACCELERATOR_PREFIX}{chosen}": MODEL_SLIVER}
    return opts


def wants_gpu(resources: Mapping[str, Any]) -> bool:
    """True when the attempt was given GPUs by Ray (then its ``CUDA_VISIBLE_DEVICES`` are Ray's)."""
    return bool(resources.get("gpus") or resources.get("gpu_memory"))


__all__ = ["ACTOR_PREFIX", "actor_name", "ray_options", "request_of", "wants_gpu"]
