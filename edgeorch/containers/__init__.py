"""Containers: a task's command run inside an image, under the same leases, live restore and lineage.

Modules, each with one job (docs/containers.md):

- ``spec``: pure: the task key ``container`` (parsed with precise errors; what of it is the definition).
- ``image``: the image resolved to its digest (inspect, pull by policy) and the GPU check, in the engine's
  hashing worker, never on the loop; :class:`~.image.ContainerError` names the task's field.
- ``command``: pure: the ``run`` command line of one attempt (name, leases, mounts, variables), the
  cleanup command, and how a container's exit reads as a host task's.

The engine calls them; the local shim supervises the ``run`` client like any task.
"""

RUNTIMES = ("podman", "docker")
"""The container runtimes, in the order of preference: the one list (the task key's and ``[containers]``'s).

Here rather than in ``spec`` so that reading the config does not load the task key's parser (issue 11)."""
