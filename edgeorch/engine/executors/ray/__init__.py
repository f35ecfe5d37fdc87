"""The Ray executor: each attempt runs under a detached Ray actor on a node of a Ray cluster.

``executor.py`` is the daemon's side (the contract of ``../base.py``),
``actor.py`` the actor that runs on a node, ``runshim.py`` the supervisor it
starts there (the local shim, stopped when its actor dies), ``mapping.py`` the
pure mapping of a task's resource request to Ray's options. Ray is imported
only by ``executor.py`` and ``actor.py``, and only when ``[executor] kind =
"ray"`` (docs/scale-out.md). Kept free of imports.
"""
