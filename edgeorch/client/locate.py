"""Where the daemon is: the same answer the CLI gets, from the same rule.

An explicit ``socket`` wins; otherwise the config found by
:func:`edgeorch.config.load_config` (``config``, then ``$EDGEORCH_CONFIG``,
``./config.toml``, the user's and the system's config, the embedded
defaults) says where its daemon listens (:attr:`edgeorch.config.Config.socket_path`:
``[control] socket``, ``$RUNTIME_DIRECTORY``, the layout's runtime folder,
the state folder). The CLI's ``--config`` goes through the same two calls.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config, load_config


def find_socket(config: Config | str | os.PathLike[str] | None = None,
                socket: str | os.PathLike[str] | None = None) -> Path:
    """The control socket to use: ``socket`` when given, else the one ``config`` names.

    ``config`` is a loaded :class:`~edgeorch.config.Config`, the path of a
    config file, or None for the lookup order. Raises
    :class:`~edgeorch.errors.ConfigError` naming the file when a config file
    is missing or invalid. Nothing is connected to.
    """
    if socket is not None:
        return Path(os.fsdecode(socket))
    cfg = config if isinstance(config, Config) else load_config(config, named_by="config=")
    return cfg.socket_path
