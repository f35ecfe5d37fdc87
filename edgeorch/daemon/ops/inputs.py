"""``inputs.*``: the files that arrived in drop folders, the quarantine, and sending a file back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from ...errors import NotFoundError, UsageError
from ...model import InputState
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...errors import EdgeorchError
    from ...store import Store


class Watches(Protocol):
    """What the list shows of the trigger service: the drop folders it watches and the ``[[watch]]`` errors."""

    @property
    def watches(self) -> Sequence[Any]: ...  # read-only: the ops only read them

    @property
    def watch_errors(self) -> Sequence["EdgeorchError"]: ...

    def held(self) -> dict[int, str]: ...

    def retrying(self) -> list[dict[str, Any]]: ...


class InputOps:
    """Drop-folder inputs: ``store`` holds their records; ``quarantine_dir`` the files set aside (with a
    ``<name>.reason.json`` each); ``watches`` the trigger service's watched folders."""

    OPS = (
        OpSpec("inputs.list", "inputs_list", "read",
               "files that arrived in drop folders: state, size, sha256, run, reason; and the quarantine",
               args=("pipeline", "state", "limit")),
        OpSpec("inputs.requeue", "inputs_requeue", "act", "send a quarantined file back to its drop folder",
               args=("file",)),
    )

    def __init__(self, *, store: "Store", quarantine_dir: Path, watches: Watches) -> None:
        self.store = store
        self.quarantine_dir = quarantine_dir
        self.watches = watches

    async def inputs_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        from ...triggers.inputs_view import inputs_doc

        doc = inputs_doc(self.store, self.quarantine_dir, pipeline=arg(args, "pipeline", str, required=False),
                         state=arg(args, "state", str, required=False),
                         limit=arg(args, "limit", int, required=False))
        held = self.watches.held()
        for r in doc["inputs"]:  # held in memory (an open batch, a claim tried again): why, and until when
            if r["id"] in held and r["state"] in (InputState.CLAIMED, InputState.CLAIMING) and not r.get("reason"):
                r["reason"] = held[r["id"]]
        doc["watches"] = [{"folder": str(w.folder), "pipeline": w.pipeline, "patterns": list(w.patterns),
                           "mode": w.mode, "param": w.param} for w in self.watches.watches]
        doc["watch_errors"] = [e.render() for e in self.watches.watch_errors]
        doc["retrying"] = self.watches.retrying()
        return doc

    async def inputs_requeue(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        from ...triggers.drop import ClaimError, requeue

        raw = arg(args, "file", str)
        qdir = self.quarantine_dir.resolve()
        # A bare name is one in the quarantine folder (as `edgeorch inputs --quarantine` lists them).
        path = qdir / raw if os.sep not in raw and raw not in ("", ".", "..") else Path(os.path.abspath(raw))
        if path.parent.resolve() != qdir:
            raise UsageError("is not a file in the quarantine folder", field="args.file", value=raw,
                             expected=f"a file directly inside {qdir}")
        if not os.path.lexists(path):  # a typo, or requeued already: not "its drop folder is unknown"
            names = sorted(p.name for p in qdir.iterdir() if not p.name.endswith(".reason.json")) if qdir.is_dir() else []
            from ...tomlcheck import suggest

            close = suggest(path.name, names)
            raise NotFoundError("no such file in the quarantine folder", field="args.file", value=raw,
                                expected=f"a file in {qdir}" + (f" (did you mean {close!r}?)" if close else ""),
                                hint="`edgeorch inputs --quarantine` lists them")
        store = self.store
        rec = next((r for r in store.inputs.list(state="quarantined", limit=1_000_000)
                    if r["inbox_path"] and Path(r["inbox_path"]).resolve() == path.resolve()), None)
        folder = None
        if rec is not None:
            folder = rec["watch_folder"]
        else:
            try:
                folder = json.loads(path.with_name(path.name + ".reason.json").read_text()).get("watch_folder")
            except (OSError, ValueError):
                folder = None
        if not folder:
            raise NotFoundError("no input record names this quarantined file, so its drop folder is unknown",
                                value=raw, hint="move it into the drop folder by hand")
        try:
            dest = requeue(path, folder)
        except ClaimError as exc:
            raise UsageError(exc.message if hasattr(exc, "message") else str(exc), field="args.file", value=raw) from None
        if rec is not None:
            store.inputs.record_state(rec["id"], InputState.REQUEUED, reason=f"requeued to {dest} by {peer.user}")
        store.events.add("input_requeued", f"{path.name} requeued to {dest}", actor=actor_of(peer),
                         data={"file": str(path), "dest": str(dest), "input_id": rec["id"] if rec else None})
        return {"file": str(path), "requeued_to": str(dest), "input_id": rec["id"] if rec else None}
