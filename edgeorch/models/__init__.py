"""Models (docs/models.md): a registry of versions and aliases, promotion gates, deployment on one box.

One module per job:

- :mod:`.spec`: what a pipeline declares (the task key ``model``, ``[models.NAME]``); name and alias rules;
- :mod:`.gates`: the gate language, parsed and evaluated (pure, no ``eval``);
- :mod:`.gatetask`: the ``gate`` task kind (declared in :mod:`edgeorch.kernels.kinds`).
"""
