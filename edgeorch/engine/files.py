"""File facts the engine records (sha256 of outputs, checkpoints and declared inputs) and its run folders."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..filekinds import file_kind
from ..loopslices import sliced
from ..records import frozen


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    with open(path, "rb") as f:
        return _sha256_fd(f.fileno(), bufsize)


def _sha256_fd(fd: int, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, bufsize):
        h.update(chunk)  # hashlib releases the GIL on large blocks: a worker thread hashes in parallel with the loop
    return h.hexdigest()


class Refused(Exception):
    """A task's folder holds something edgeorch will not follow (a symbolic link out of it)."""


def hash_regular_file(path: Path) -> tuple[str, os.stat_result]:
    """``(sha256, stat)`` of the regular file at ``path``, following symbolic links (a task's declared input).

    Raises :class:`Refused` when it is not a regular file (a FIFO is opened
    without blocking and never read), OSError when it cannot be opened. The
    stat is the opened file's own (``fstat``), taken before reading.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{path} is not a regular file")
        return _sha256_fd(fd), st
    finally:
        os.close(fd)


def describe_file(path: Path, name: str, *, dir_fd: int | None = None) -> dict[str, Any]:
    """``{name, path, size, sha256}`` of a regular file, never through a symbolic link.

    Raises :class:`Refused` when ``path`` (relative to ``dir_fd`` when given)
    is a symbolic link or not a regular file, OSError when it cannot be read.
    """
    try:
        fd = os.open(path.name if dir_fd is not None else path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                     dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused(f"{name} is a symbolic link; edgeorch never follows links out of a task's folders") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{name} is not a regular file")
        return {"name": name, "path": str(path), "size": st.st_size, "sha256": _sha256_fd(fd)}
    finally:
        os.close(fd)


def describe_tree(root: Path) -> list[dict[str, Any]]:
    """Every regular file below ``root`` (names relative to it, sorted); [] when absent.

    Walks by directory descriptors without following symbolic links (links
    inside are skipped, as are sub-folders swapped for links while walking).
    Raises :class:`Refused` when ``root`` itself is a symbolic link.
    """
    _check_folder(root)
    if not root.is_dir():
        return []
    out = []
    for dirpath, _, files, dirfd in os.fwalk(root, follow_symlinks=False):
        for f in files:
            rel = str(Path(dirpath, f).relative_to(root))
            try:
                out.append(describe_file(Path(dirpath, f), rel, dir_fd=dirfd))
            except Refused:
                continue  # a link or a FIFO inside the folder is not a checkpoint
            except FileNotFoundError:
                continue  # removed while walking
    return sorted(out, key=lambda d: d["name"])


def _check_folder(folder: Path) -> None:
    """Raise :class:`Refused` when a task folder was replaced by a symbolic link."""
    if folder.is_symlink():
        target = os.readlink(folder)
        raise Refused(f"{folder} is a symbolic link (to {target}); edgeorch never follows links out of a task's folders")


@frozen
class FileOutcome:
    """The files an ended attempt leaves: its artifacts, its checkpoints, or why they were refused."""

    artifacts: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    refused: str | None = None
    dataset: Any = None
    """The snapshot of the task's declared dataset output (``edgeorch.datasets.snapshot.Snapshot``,
    holding pins until released), when the task declares one and its files were accepted."""
    model: Any = None
    """The task's declared model output (``edgeorch.models.register.Candidate``), when it declares one and
    its files were accepted."""


def hash_outcome(out_dir: Path, outputs: list[str] | None, ckpt_dir: Path,
                 workdir: Path | None = None) -> FileOutcome:
    """Describe (sha256) an attempt's promised ``outputs`` (None: it failed, none expected) and its checkpoints.

    Runs in a worker thread; touches only the filesystem. Outputs must be
    regular files inside ``out_dir`` (no '..', no absolute names, no links);
    a checkpoint folder replaced by a link is refused, never walked. A
    missing output that is a file in the task's ``workdir`` is named in the
    reason (the usual mistake: writing it to the working folder); it is not
    taken from there.
    """
    refused = None
    try:
        checkpoints = describe_tree(ckpt_dir)
    except Refused as exc:
        checkpoints, refused = [], f"checkpoint folder refused: {exc}"
    if not outputs or refused:
        return FileOutcome([], checkpoints, refused)
    try:
        _check_folder(out_dir)
    except Refused as exc:
        return FileOutcome([], checkpoints, f"output folder refused: {exc}")
    # A param value may carry '..' or an absolute path: outputs must stay in the output folder.
    escaping = [n for n in outputs if not (out_dir / n).resolve().is_relative_to(out_dir.resolve())]
    if escaping:
        return FileOutcome([], checkpoints, f"output path leaves the task's output folder: {', '.join(escaping)}")
    missing = [n for n in outputs if not (out_dir / n).is_file() and not (out_dir / n).is_symlink()]
    other = [f"{n} is {kind}" for n in missing if (kind := _not_a_file(out_dir / n)) is not None]
    if other:  # it is there, as something else: "missing" sent the person looking for a file that exists
        return FileOutcome([], checkpoints, f"promised output is not a regular file: {', '.join(other)} (under "
                                               f"{out_dir}; an output is one file: a folder's files are listed "
                                               "one by one, or the folder packed into one)")
    if missing:
        stray = [n for n in missing if workdir is not None and (workdir / n).is_file()]
        found = f"; {', '.join(stray)} found in the task's working folder {workdir} instead" if stray else ""
        return FileOutcome([], checkpoints, f"promised output missing: {', '.join(missing)} "
                                               f"(under {out_dir}, the task's $EDGEORCH_OUTPUT_DIR){found}")
    try:
        artifacts = [describe_file(out_dir / n, n) for n in outputs]
    except Refused as exc:
        return FileOutcome([], checkpoints, f"output refused: {exc}")
    return FileOutcome(artifacts, checkpoints)


def with_written(outcome: FileOutcome, out_dir: Path, names: list[str]) -> FileOutcome:
    """``outcome`` plus, as artifacts, those of ``names`` (bare file names in ``out_dir``) that the attempt wrote and
    ``outcome`` does not list already: a kind task's ``save``/``report`` file, recorded like a declared output
    (lineage found no version of it, OpenLineage left it out). One that is not there, or not a regular file, is
    left out without a word: a file the task may or may not write is no promise. Nothing for a refused outcome."""
    if outcome.refused is not None:
        return outcome
    have = {a["name"] for a in outcome.artifacts}
    extra = []
    for name in names:
        if name in have or not (out_dir / name).is_file() or (out_dir / name).is_symlink():
            continue
        try:
            extra.append(describe_file(out_dir / name, name))
        except (OSError, Refused):
            continue
    return replace(outcome, artifacts=[*outcome.artifacts, *extra]) if extra else outcome


def _not_a_file(path: Path) -> str | None:
    """What stands at ``path`` when it is there but not a regular file (``a folder``, ``a FIFO``, ...), else
    None (nothing there)."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return None
    return file_kind(mode)


def with_dataset(outcome: FileOutcome, out_dir: Path, rel: str, name: str, state_dir: Path,
                 compress: bool) -> FileOutcome:
    """``outcome`` plus the snapshot of ``out_dir/rel`` (``""``: the whole folder) for dataset ``name``.

    Runs in the hashing worker after :func:`hash_outcome`. The path must stay
    inside ``out_dir`` and exist; an outcome already refused is returned as
    is. A path that cannot be stored (missing, a link inside, a full disk)
    refuses the outcome (the attempt fails, and is retried by policy).
    """
    if outcome.refused:
        return outcome
    from dataclasses import replace

    from ..datasets.service import object_store, take_snapshot
    from ..errors import EdgeorchError

    path = out_dir / rel if rel else out_dir
    if not path.resolve().is_relative_to(out_dir.resolve()):
        return replace(outcome, refused=f"dataset {name}: the path leaves the task's output folder: {rel}")
    if not os.path.lexists(path):
        return replace(outcome, refused=f"dataset {name}: the declared output {path} is missing")
    try:
        snap = take_snapshot(path, object_store(state_dir), compress=compress)
    except (OSError, EdgeorchError) as exc:  # a link inside, the path vanished, a full disk
        return replace(outcome, refused=f"dataset {name}: cannot store {path}: {exc}")
    return replace(outcome, dataset=snap)


def has_entries(folder: Path) -> bool:
    """True when ``folder`` exists with anything in it, or is not a plain folder (a link: let the worker refuse it)."""
    try:
        if folder.is_symlink():
            return True
        with os.scandir(folder) as it:
            return next(it, None) is not None
    except OSError:
        return False


def link_cached_outputs(artifacts: list[dict[str, Any]], out_dir: Path) -> str | None:
    """Hard-link a cache hit's recorded outputs (``artifacts`` of the earlier attempt) into ``out_dir``, the
    task's output folder in this run, each under its recorded name: a downstream task (or a kind's option)
    that reads ``{run_dir}/outputs/<task>/<file>`` finds it after a hit as after a real run. No data is
    copied (the files are the earlier run's, shared); a file already there as the same file is kept.

    Returns None when every file is linked, else why not (the first failure: another file at that name, a
    file system that refuses hard links, a full disk); the links made before it stay (correct files).
    """
    try:
        for a in artifacts:
            dest = out_dir / a["name"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(a["path"], dest, follow_symlinks=False)
            except FileExistsError:
                if not os.path.samefile(a["path"], dest):
                    return f"{dest} is there already, and is another file"
    except OSError as exc:
        return f"{exc.filename or out_dir}: {exc.strerror or exc}"
    return None


def intact(artifacts: list[dict[str, Any]]) -> bool:
    """True when every recorded file still exists with the recorded size and sha256."""
    for a in artifacts:
        p = Path(a["path"])
        try:
            if p.stat().st_size != a["size"]:
                return False
        except OSError:
            return False
        if sha256_file(p) != a["sha256"]:
            return False
    return True


def own_links(artifacts: list[dict[str, Any]], out_dir: Path) -> list[dict[str, Any]]:
    """A cache hit's records (``artifacts``, the earlier attempt's) as this run keeps them: each file that is
    linked at its name in ``out_dir`` named by that link, the others by the earlier run's path."""
    return [{**a, "path": str(out_dir / a["name"])} if _linked(a, out_dir) else a for a in artifacts]


def still_linked(artifacts: list[dict[str, Any]], out_dir: Path) -> bool:
    """Whether each of a cache hit's files (``artifacts``) is still the file at its name in ``out_dir``
    (:func:`link_cached_outputs` made the links). A hit whose links could not be made counts as not linked: a
    retry reruns it, and it asks the cache again."""
    return all(_linked(a, out_dir) for a in artifacts)


def _linked(artifact: dict[str, Any], out_dir: Path) -> bool:
    """Whether the recorded file is the one at its name in ``out_dir`` (the same inode); False when either is gone."""
    try:
        return os.path.samefile(artifact["path"], out_dir / artifact["name"])
    except OSError:
        return False


_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\\\)?|[@-Z\\-_])")
"""Terminal escape sequences (colours, cursor moves, titles): a task's output may hold them."""
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def last_log_line(path: Path, *, limit: int = 160, window: int = 4096) -> str | None:
    """The last non-blank line of a task's log, as a reason may quote it (``exited with code 2: <line>``); a last
    line ``hint: ...`` comes after the line above it (the error it is the hint of).

    Read from the last ``window`` bytes only (a log may be gigabytes). What a terminal would act on is
    taken out (escape sequences) or made a space (other control characters), a byte that is not UTF-8
    is written ``\\xNN``, so the line is safe to print and to record; longer than ``limit`` characters,
    it is cut and ends with ``...``. None when the log is missing, unreadable or blank.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - window))
            tail = f.read(window)
    except OSError:
        return None
    text = tail.decode("utf-8", "backslashreplace").replace("\r", "\n")  # a byte that is not UTF-8 as \xNN: it says
    # which byte it was (U+FFFD said nothing), and stays ASCII (a lone surrogate could not be stored)
    lines = [shown for raw in text.split("\n")
             if (shown := " ".join(_CONTROLS.sub(" ", _ESCAPES.sub("", raw)).split()))]
    if not lines:
        return None
    line = lines[-1]
    if line.startswith("hint:") and len(lines) > 1:
        # An error with a hint under it (edgeorch's own, a kernel task's): the error first, then the hint.
        line = f"{lines[-2]} ({line})"
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def read_small(path: str | Path) -> bytes:
    """The whole of a small file, read raw (open, reads to EOF, close: no buffered text layer and its extra
    system calls; an attempt's end reads two such files). Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A small JSON object written by a task or a supervisor (``result.json``, ``exit.json``, …); None when absent
    or not one."""
    try:
        data = json.loads(read_small(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def claim_run_dir(runs_dir: Path, run_id: int) -> Path:
    """Create and return a run folder no earlier run used: ``<run id>``, else ``<run id>-2``, ``-3``, ...

    Run ids come from the state file and go back when an older backup of it
    is restored, but the folders of the runs made after that backup stay on
    disk (with their attempts' ``owner.json`` claims). Creating the folder
    exclusively here, when the run is created, guarantees that a new run never
    shares a folder with an old one, whatever the state file says.
    """
    suffix = 1
    while True:
        path = runs_dir / (str(run_id) if suffix == 1 else f"{run_id}-{suffix}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            suffix += 1
        except FileNotFoundError:
            # The runs folder itself is gone (removed by hand): make it once, not on every run
            # (this runs on the engine's loop for every new run).
            runs_dir.mkdir(parents=True, exist_ok=True)


def folder_elsewhere(recorded: Path, runs_dir: Path) -> str | None:
    """Where an active run's recorded folder lies against this state's runs folder: None when in it (the same
    folder by any path: a symbolic link, a bind mount), else ``"moved"`` (gone from its recorded place, and a
    folder of its name is here: the state folder was moved while the run was active) or ``"copied"`` (it is
    still there: this state file is a copy of another folder's, made while the run was active; that folder's
    daemon, or its tasks under live restore, still own it). An engine must not start on either: it would
    run the tasks a second time, or follow, time out and stop the other folder's own (and write into its run
    folders). A recorded folder gone with none of its name here is None too: the run's folder was removed,
    and its attempts are lost as any whose folder is gone.
    """
    parent = recorded.parent
    if parent == runs_dir or not recorded.name:
        return None
    try:
        if os.path.samefile(parent, runs_dir):
            return None
    except OSError:
        pass  # one of them is gone or unreadable: not the same folder
    if os.path.lexists(recorded):
        return "copied"
    return "moved" if (runs_dir / recorded.name).is_dir() else None


AHEAD_MAX = 1000
"""At most this many run folders are held made ahead (:class:`RunFolders`; a claim group needs at most
500); also how many ids past the newest run a start checks for an empty folder a killed engine left."""


async def make_run_dirs(runs_dir: Path, run_ids: list[int]) -> dict[int, Path]:
    """:func:`claim_run_dir` for each of ``run_ids``, on the loop in slices (:mod:`edgeorch.loopslices`: a
    worker thread's ``mkdir`` waits for the GIL while the loop is busy): ``{run id: folder}`` of those made.

    Never raises; at the first folder that cannot be made now (a full disk, an unusable runs folder) it stops:
    those runs make their folders when they are created and meet the error there, where it is reported.
    """
    made: dict[int, Path] = {}
    async for run_id in sliced(run_ids):
        try:
            made[run_id] = claim_run_dir(runs_dir, run_id)
        except OSError:
            break
    return made


class RunFolders:
    """The folder of each new run, made exclusively for it (:func:`claim_run_dir`); for a group of runs
    about to be created (a claim group's), made ahead, before the group's transaction (:func:`make_run_dirs`).

    A folder made ahead for run id N was made exclusively by this engine and is still empty: whichever
    run gets id N takes it (:meth:`take`). The caller that made folders ahead :meth:`release` s the ones
    no run took once its runs are created (a few seconds later: a gc never sees them as strays, which it
    removes only past its age bound); :meth:`sweep_left` removes, at a start, the empty ones a killed
    engine left past the newest run (else each such run would be named ``<id>-2``). Not thread-safe: all on
    the loop; between :meth:`plan` and :meth:`keep`, :func:`make_run_dirs` yields to it, and another run may be
    created meanwhile (:meth:`take`).
    """

    def __init__(self) -> None:
        self._ahead: dict[int, Path] = {}
        self._planned: set[int] = set()  # ids whose folders make_run_dirs may be making right now
        self._taken_early: set[int] = set()  # of those, the ids a run took before its result came

    def plan(self, next_id: int, count: int) -> list[int]:
        """The ids of the next ``count`` runs (from ``next_id``) with no folder made ahead yet."""
        room = max(0, AHEAD_MAX - len(self._ahead))
        ids = [i for i in range(next_id, next_id + count) if i not in self._ahead][:room]
        self._planned.update(ids)
        return ids

    def keep(self, made: dict[int, Path]) -> None:
        """Hold the folders :func:`make_run_dirs` made for their runs (but those a run took already:
        :meth:`take`). A run that took its id first made ``<id>`` itself, and make_run_dirs, finding it,
        made ``<id>-2``: that one is removed (it was left behind, empty, for good under ``runs = "forever"``)."""
        for i, path in made.items():
            if i in self._taken_early and path.name != str(i):
                remove_if_empty(path)
        self._ahead.update({i: p for i, p in made.items() if i not in self._taken_early})
        self._planned.difference_update(made)
        self._taken_early.difference_update(made)

    def take(self, runs_dir: Path, run_id: int) -> Path:
        """The folder of new run ``run_id``: the one made ahead for it, while it is still there (a gc
        with a bound of seconds removes a folder no row names yet), else one made now. An id planned for a
        :func:`make_run_dirs` still under way (a schedule's or a command's run created while a drop group's
        folders are made) takes the empty folder it may have made already, rather than naming its own
        ``<id>-2``; its result then leaves it to this run."""
        path = self._ahead.pop(run_id, None)
        if path is not None and path.parent == runs_dir and os.path.isdir(path):
            return path
        if run_id in self._planned:
            made = runs_dir / str(run_id)
            try:
                os.mkdir(made)
            except FileExistsError:
                if has_entries(made) or not made.is_dir():  # a link or anything in it: never shared
                    return claim_run_dir(runs_dir, run_id)
            except FileNotFoundError:
                return claim_run_dir(runs_dir, run_id)
            self._taken_early.add(run_id)
            return made
        return claim_run_dir(runs_dir, run_id)

    def release(self) -> None:
        """Remove the folders made ahead that no run took (empty: ``rmdir`` removes nothing else)."""
        ahead, self._ahead = self._ahead, {}
        self._planned.clear()
        self._taken_early.clear()
        for path in ahead.values():
            remove_if_empty(path)

    @staticmethod
    def newer_than(runs_dir: Path, newest_id: int) -> list[str]:
        """The run folders (``<id>`` or ``<id>-N``) of ids past run ``newest_id``, sorted by id: runs the state file
        does not know (it is older than its runs folder: a restored backup, a copy made without its ``-wal``).
        One listing of the folder (at a start)."""
        found: list[tuple[int, str]] = []
        try:
            with os.scandir(runs_dir) as entries:
                for entry in entries:
                    head = entry.name.split("-", 1)[0]
                    if head.isdigit() and int(head) > newest_id and entry.is_dir(follow_symlinks=False):
                        found.append((int(head), entry.name))
        except OSError:
            return []
        return [name for _id, name in sorted(found)]

    @staticmethod
    def sweep_left(runs_dir: Path, newest_id: int) -> None:
        """Remove the empty folders ``<id>`` past run ``newest_id`` that an engine killed before it
        released them left: ids in a row from ``newest_id + 1`` (folders are made ahead for consecutive
        ids), up to the first missing one, at most :data:`AHEAD_MAX`; a folder with anything in it stays.
        Usually one ``rmdir`` that finds nothing."""
        remove_empty_in_a_row([runs_dir / str(i) for i in range(newest_id + 1, newest_id + 1 + AHEAD_MAX)])


def remove_if_empty(folder: Path) -> None:
    """``rmdir`` ``folder``: a folder with anything in it (or one that is gone, or cannot be removed) is left."""
    try:
        os.rmdir(folder)
    except OSError:
        pass


def remove_empty_in_a_row(folders: list[Path]) -> None:
    """``rmdir`` each of ``folders`` in turn until one is missing (a folder with anything in it, or that
    cannot be removed, is left and the next one tried)."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            return
        except OSError:
            pass
