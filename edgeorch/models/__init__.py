"""Models (docs/models.md): a registry of versions and aliases, promotion gates, deployment on one box.

One module per job:

- :mod:`.spec`: what a pipeline declares (the task key ``model``, ``[models.NAME]``); name and alias rules (pure);
- :mod:`.gates`: the gate language, parsed and evaluated (pure, no ``eval``);
- :mod:`.gatetask`: the ``gate`` task kind (declared in :mod:`edgeorch.kernels.kinds`);
- :mod:`.register`: a task's model output described (hashing worker) and registered (outcome transaction);
- :mod:`.targets`: deployment targets (stable path links, Triton layout) behind one contract;
- :mod:`.commands`: the reload and health commands, bounded by timeouts, off the loop;
- :mod:`.deploy`: the Deployer: a deployment's durable steps, undo, rollback, recovery;
- :mod:`.canary`: a canary's comparison (pure);
- :mod:`.rollback`: which version a rollback returns to (pure; ``models rollback`` and retention's holds);
- :mod:`.owners`: the pipeline a model belongs to; runs that may not register its versions (the front door);
- :mod:`.blocks`: promotion blocks (a monitoring rule's response): the one check every forward move passes;
- :mod:`.service`: ModelService: promote, rollback, auto_rollback, unblock, observe, canary decisions;
- :mod:`.views`: the documents the ops and the CLI print.

The rows are ``store.models``'s (:mod:`edgeorch.store.models`).
"""
