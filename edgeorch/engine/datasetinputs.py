"""``dataset:`` entries of a task's ``inputs``: a data version resolved on the loop, put in the run's folder.

- **Resolution** (:func:`resolve`, on the engine's loop: it reads the state
  file). ``dataset:NAME@V`` names version V; ``dataset:NAME`` and
  ``dataset:NAME@latest`` the newest version when the task becomes ready,
  unless this run has read a version of NAME already: **one run reads one
  version of a dataset**, in ``{run_dir}/datasets/NAME`` (a run's tasks see the
  same data even when a new version lands while it runs, and no task's files
  are replaced under another task of the run). What a run has read is
  ``pins`` (kept by the engine while the run is active) and, after a restart,
  what its attempts recorded as consumed. A dataset or version that does not
  exist (or was pruned), an entry whose placeholders make no reference, or a
  second version of a dataset the run reads already, is an
  :class:`~edgeorch.engine.inputs.InputError` naming the entry: the task fails
  before any attempt, as for a missing file.
- **Placement** (:func:`edgeorch.engine.inputs.hash_inputs`, in the hashing
  worker): the folder is verified file by file against the version (sha256 and
  size of every file, nothing else in it) and rebuilt from the object store
  when it differs (absent, or changed by a task): see
  :func:`edgeorch.datasets.restore.restore`, whose rename puts it in place
  whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EdgeorchError
from ..pipelines.inputs import is_dataset, parse_dataset_input
from ..records import frozen
from .inputs import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

DATASETS_FOLDER = "datasets"
"""Where a run's data versions are put: ``{run_dir}/datasets/NAME``."""


@frozen
class DatasetInput:
    """A ``dataset:`` entry resolved: the version, what restoring it needs, and its folder in the run."""

    name: str
    version: int
    manifest_sha256: str
    manifest: Any  # datasets.restore.Manifest: the files (path, size, mode, sha256, chunks) and chunk codecs
    objects: Any  # datasets.objects.ObjectStore
    dest: str

    @property
    def ref(self) -> str:
        return f"dataset:{self.name}@{self.version}"


def resolve(store: Store, state_dir: Path, run_id: int, run_dir: Path, pins: dict[str, int], task: str,
            declared: Sequence[tuple[str, str]]) -> dict[int, DatasetInput]:
    """The ``dataset:`` entries of ``declared`` (``(as written, substituted)``), by their index, resolved.

    ``pins`` (name -> version, this run's) is read and extended: the first entry to resolve a dataset pins its
    version for the rest of the run. Raises :class:`InputError` (see the module docstring).
    """
    from ..datasets.service import manifest_of, object_store, show

    wanted = [(i, written, text) for i, (written, text) in enumerate(declared) if is_dataset(text)]
    if not wanted:
        return {}
    if not pins:
        pins.update(store.lineage.datasets_read_by_run(run_id))
    out: dict[int, DatasetInput] = {}
    for i, written, text in wanted:
        where = f"declared input tasks.{task}.inputs[{i}] = {written!r}"
        try:
            name, version = parse_dataset_input(text)
            pinned = pins.get(name)
            if pinned is not None and version is not None and version != pinned:
                raise InputError(f"{where}: this run reads {name}@{pinned} already (one run reads one version of a "
                                 f"dataset, in {{run_dir}}/{DATASETS_FOLDER}/{name}); expected the same version in "
                                 f"every task of a run (dataset:{name}@{pinned}), or another run for another")
            doc = show(store, name, pinned if pinned is not None else version, with_files=True)
        except EdgeorchError as exc:
            raise InputError(f"{where}: {exc.one_line()}") from None
        pins[name] = int(doc["version"])
        out[i] = DatasetInput(name, int(doc["version"]), str(doc["manifest_sha256"]), manifest_of(doc),
                              object_store(state_dir), str(run_dir / DATASETS_FOLDER / name))
    return out
