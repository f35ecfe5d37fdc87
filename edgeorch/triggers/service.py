"""The daemon side of triggers: schedules and drop folders, wired to the store and the front door.

:class:`Triggers` is what the daemon holds: it composes :class:`Schedules`
(``triggers/schedule_service.py``) and :class:`DropFolders`
(``triggers/drop/service.py``), gives both the same explicit collaborators, and
keeps the start-up order of docs/triggers.md ("Wiring"): inputs recovered, then
schedules armed, then drop folders watched. Nothing here imports the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..events import Event, PipelinePaused, Reloaded, RunFinished
from .drop.service import DropFolders
from .schedule_service import Schedules

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from ..engine.engine import Engine
    from ..engine.requests import RunRequests
    from ..errors import EdgeorchError
    from ..pipelines import PipelineRegistry
    from ..store.store import Store
    from .drop.spec import WatchSpec
    from .schedule import ScheduleSpec



class Triggers:
    """Schedules and drop folders of one daemon (see the module docstring)."""

    def __init__(self, *, store: Store, requests: RunRequests, engine: Engine, registry: PipelineRegistry,
                 config: Config, loop: asyncio.AbstractEventLoop, publish: Callable[[Event], None],
                 clock: Any = None) -> None:
        """Explicit collaborators, nothing else.

        ``store``: the state file (every record). ``requests``: the front door every run goes
        through (paused, shutting down, params, resources). ``engine``: asked only which runs are
        live and whether it stopped on a fatal error. ``registry``: the loaded pipelines (read at
        each :meth:`reload`). ``config``: paths and ``[[watch]]`` tables (replaced by
        :meth:`reload`). ``loop``: the daemon's event loop (the one writer). ``publish``: the bus's
        ``publish`` (typed :class:`~edgeorch.events.InputChanged` / ``ScheduleFired`` events,
        stamped by ``engine.clock``). ``clock``: the schedules'
        clock (:class:`SystemClock` by default; tests inject a manual one).
        """
        self.schedules = Schedules(store=store, requests=requests, engine=engine, registry=registry, loop=loop,
                                   publish=publish, clock=clock)
        self.drops = DropFolders(store=store, requests=requests, engine=engine, registry=registry, config=config,
                                 loop=loop, publish=publish)

    # -- what the ops read -------------------------------------------------------------------

    @property
    def specs(self) -> dict[str, ScheduleSpec]:
        return self.schedules.specs

    def next_fire(self, pipeline: str) -> datetime | None:
        return self.schedules.next_fire(pipeline)

    def next_start(self, pipeline: str) -> datetime | None:
        """When the run of :meth:`next_fire` starts (its fire time plus the schedule's jitter)."""
        return self.schedules.next_start(pipeline)

    def fire_held(self, pipeline: str) -> bool:
        """Whether the next fire is held until a run of the pipeline finishes (``on_max_active = "wait"``)."""
        return self.schedules.fire_held(pipeline)

    def fire_refused(self, pipeline: str) -> dict[str, str] | None:
        """The pipeline's last scheduled fire when the front door refused it and none started since, else None."""
        return self.schedules.fire_refused(pipeline)

    def refused_fires(self) -> dict[str, dict[str, str]]:
        """Pipeline -> :meth:`fire_refused`, for each whose last fire was refused."""
        return self.schedules.refused_fires()

    @property
    def watches(self) -> list[WatchSpec]:
        return self.drops.watches

    @property
    def watch_errors(self) -> list[EdgeorchError]:
        return self.drops.watch_errors

    def held(self) -> dict[int, str]:
        """Input id -> why it has not started yet, for the inputs held in memory (:meth:`DropFolders.held`)."""
        return self.drops.held()

    def retrying(self) -> list[dict[str, Any]]:
        """The dropped files not recorded yet that are tried again later (:meth:`DropFolders.retrying`)."""
        return self.drops.retrying()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover inputs, then schedules, then drop folders (docs/triggers.md, start-up order)."""
        self.drops.recover_and_collect()
        self.schedules.start()
        self.drops.watch()

    def stop(self) -> None:
        self.schedules.stop()
        self.drops.stop()

    def check_folders(self) -> None:
        """The drop folders' periodic check (the daemon's path check): one replaced or back is watched again."""
        self.drops.check_folders()

    def reload(self, config: Config | None = None) -> None:
        """After the pipelines (or config) changed: re-sync schedules, rebuild the folder watch if it changed.

        ``config``: the daemon's new config when it was reloaded (its ``[[watch]]`` tables); else the
        one given to the constructor stays.
        """
        self.schedules.reload()
        self.drops.reload(config)

    def on_engine_event(self, event: Event) -> None:
        """A bus subscriber: a finished run releases waiting fires and settles its inputs; a resumed pipeline
        (or a reload: a pipeline back, or resumed where the daemon did not see it) starts its waiting inputs."""
        if isinstance(event, RunFinished):
            self.schedules.on_run_finished(event.pipeline)
            self.drops.on_run_finished(event.run_id, event.state, event.reason)
        elif isinstance(event, PipelinePaused) and not event.paused:
            self.drops.start_waiting(event.pipeline)
        elif isinstance(event, Reloaded):
            self.drops.start_waiting()
