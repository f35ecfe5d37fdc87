"""Data versions: named, versioned, content-addressed snapshots kept under the state dir (docs/datasets.md).

One module per job; nothing is imported here (the chunker compiles with numba,
so ``import edgeorch.datasets.names`` must not pay for it):

- :mod:`.names`: dataset names, ``NAME[@VERSION]``, the ``dataset`` key of pipelines and watches (pure);
- :mod:`.chunker`: content-defined chunking (FastCDC, gear hash, numba);
- :mod:`.objects`: the object store (``objects/<aa>/<sha256>[.zst]``), atomic writes, verified reads, pins;
- :mod:`.snapshot`: a file or folder -> chunks stored once -> a :class:`~.snapshot.Snapshot` (worker thread);
- :mod:`.restore`: a version rebuilt from verified chunks and moved into place whole;
- :mod:`.retention`: which versions a prune removes (pure); :mod:`.holders`: what keeps a version;
- :mod:`.service`: the steps the CLI, the daemon's ops, drop folders and the engine share.

The tables are ``store.datasets`` (:mod:`edgeorch.store.datasets`).
"""
