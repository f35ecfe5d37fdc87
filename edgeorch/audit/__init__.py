"""The audit log: a hash chain of records in the state file, sealed forward-securely (docs/audit.md).

Rooms, each with one job:

- :mod:`.chain`: pure. The canonical encoding of a record and of a seal, the
  record hash, timestamps, who an actor is, where pruning may cut.
- :mod:`.keys`: pure. The sealing keys: a random first key, one-way
  evolution, the seal MAC, the verification key's text form.
- :mod:`.verify`: pure. :class:`~.verify.Verifier` checks records, seals and
  checkpoints in order and names the first bad sequence number.
- :mod:`.keyfile`: the current sealing key on disk (overwritten in place when it evolves).
- :mod:`.sealer`: seals the chain's head at intervals and evolves the key.
- :mod:`.source`: where a reader gets the records (the state file, or a
  daemon), verifying them page by page and exporting them as JSON lines
  that verify elsewhere.

Records are written by the store (``edgeorch/store/audit.py``) inside the
transaction of the change they describe; nothing here writes the state file
except through that aggregate.
"""
