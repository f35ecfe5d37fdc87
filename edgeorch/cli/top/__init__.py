"""``edgeorch top``: a live full-screen view of the daemon, built from the same ops as the CLI.

- :mod:`.model`: the op results -> one :class:`~.model.Snapshot` (pure);
- :mod:`.keys`: terminal bytes -> key names, and what a key does (pure);
- :mod:`.render`: a snapshot and the view's state -> ``rich`` renderables;
- :mod:`.screen`: the terminal, the refresh loop, the ops each key calls.

It reads with ``status``, ``resources``, ``runs.list``, ``runs.show``,
``inputs.list``, ``monitors.list`` and ``logs``, and acts with ``cancel``, ``pipelines.pause``
and ``pipelines.resume``: the daemon authorises each exactly as it does for
``edgeorch cancel`` or ``edgeorch pipelines pause`` (a reader who is not an
operator sees the refusal in the message line). It keeps no state of its own
and writes nothing.
"""
