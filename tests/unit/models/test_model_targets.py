"""Deployment targets on real files: slots complete or absent, links switched by rename, Triton's layout."""

from __future__ import annotations

import os

import pytest

from edgeorch.engine.files import sha256_file
from edgeorch.engine.inputs import hash_inputs
from edgeorch.models.targets import PathTarget, StagingError, TritonTarget


def _champion_at_1(tmp_path) -> PathTarget:
    """A path target with a one-file version 1 staged and served as champion."""
    src = tmp_path / "model.bin"
    src.write_text("weights")
    target = PathTarget(tmp_path / "serving" / "m")
    target.stage(1, _artifact(src))
    target.switch("champion", 1)
    return target


def _artifact(path, kind="file"):
    digest = sha256_file(path) if kind == "file" else hash_inputs("m", [(".", str(path))], path).items[0].sha256
    return {"kind": kind, "path": str(path), "sha256": digest}


def test_a_folder_version_is_staged_whole_and_checked_against_its_manifest(tmp_path) -> None:
    src = tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(b"w" * 1000)
    (src / "sub" / "config.json").write_text("{}")
    target = PathTarget(tmp_path / "serving" / "m")
    slot = target.stage(1, _artifact(src, "folder"))
    assert sorted(str(p.relative_to(slot)) for p in slot.rglob("*")) == ["sub", "sub/config.json", "weights.bin"]
    target.switch("champion", 1)
    assert os.readlink(target.root / "current") == "versions/1" and target.points_at("champion") == 1
    assert target.aliases_on_disk() == {"champion": 1}


def test_a_file_changed_since_registration_is_never_staged(tmp_path) -> None:
    src = tmp_path / "model.bin"
    src.write_text("registered")
    artifact = _artifact(src)
    src.write_text("rewritten afterwards")
    target = PathTarget(tmp_path / "serving" / "m")
    with pytest.raises(StagingError, match="changed since it was registered"):
        target.stage(1, artifact)
    assert not target.slot(1).exists() and not list((target.root / "versions").iterdir())  # nothing half-made


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_staged_copy_changed_since_is_staged_again_before_it_is_served(tmp_path, kind) -> None:
    """`echo garbage > versions/9/model.npz`, then a rollback to 9 served the garbage: a slot that exists was
    taken as it was. It is checked against the registered hash and staged again from the registered files."""
    src = tmp_path / ("out" if kind == "folder" else "model.npz")
    if kind == "folder":
        src.mkdir()
        (src / "model.npz").write_bytes(b"weights")
    else:
        src.write_bytes(b"weights")
    artifact = _artifact(src, kind)
    target = PathTarget(tmp_path / "serving" / "m")
    slot = target.stage(9, artifact)
    (slot / "model.npz").write_bytes(b"garbage")
    assert target.stage(9, artifact) == slot
    assert (slot / "model.npz").read_bytes() == b"weights"
    assert [p.name for p in (target.root / "versions").iterdir()] == ["9"]  # nothing left aside
    # Damaged, and its registered files gone: refused, never served.
    (slot / "model.npz").unlink()
    if kind == "folder":
        (src / "model.npz").unlink()
        src.rmdir()
    else:
        src.unlink()
    with pytest.raises(StagingError, match="lacks|changed since it was staged") as err:
        target.stage(9, artifact)
    assert "its registered files are gone" in str(err.value)


def test_a_version_whose_files_are_gone_is_refused_with_a_hint(tmp_path) -> None:
    target = PathTarget(tmp_path / "serving" / "m")
    with pytest.raises(StagingError, match="files are gone") as err:
        target.stage(1, {"kind": "file", "path": str(tmp_path / "nope.bin"), "sha256": "0" * 64})
    assert "register the model again" in (err.value.hint or "")


def test_switching_an_alias_that_is_not_served_leaves_current_alone_and_none_removes_it(tmp_path) -> None:
    target = _champion_at_1(tmp_path)
    target.switch("canary", 1)
    target.switch("canary", None)
    assert target.aliases_on_disk() == {"champion": 1} and os.readlink(target.root / "current") == "versions/1"
    with pytest.raises(StagingError, match="not staged"):
        target.switch("champion", 2)
    assert target.points_at("champion") == 1


def test_triton_layout_numbered_folders_and_the_version_policy_the_aliases_imply(tmp_path) -> None:
    template = tmp_path / "config.pbtxt"
    template.write_text('name: "house"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n')
    target = TritonTarget(tmp_path / "repo" / "house", "champion", str(template))
    for v in (1, 2):
        src = tmp_path / f"run{v}" / "model.onnx"
        src.parent.mkdir()
        src.write_text(f"onnx {v}")
        target.stage(v, _artifact(src))
    target.switch("champion", 1)
    target.switch("canary", 2)
    assert (target.root / "1" / "model.onnx").read_text() == "onnx 1"
    config = (target.root / "config.pbtxt").read_text()
    assert config.startswith('name: "house"\nplatform: "onnxruntime_onnx"')
    assert config.endswith("version_policy: { specific: { versions: [1, 2] } }\n")
    target.switch("canary", None)
    assert (target.root / "config.pbtxt").read_text().endswith("version_policy: { specific: { versions: [1] } }\n")
    assert target.aliases_on_disk() == {"champion": 1}


def test_a_triton_template_that_sets_its_own_version_policy_is_refused(tmp_path) -> None:
    template = tmp_path / "config.pbtxt"
    template.write_text('name: "m"\nversion_policy: { latest: { num_versions: 1 } }\n')
    src = tmp_path / "model.onnx"
    src.write_text("x")
    target = TritonTarget(tmp_path / "repo" / "m", "champion", str(template))
    target.stage(1, _artifact(src))
    with pytest.raises(StagingError, match="sets version_policy"):
        target.switch("champion", 1)


def test_a_crash_s_temporary_files_are_cleaned_and_nothing_else(tmp_path) -> None:
    # A kill -9 mid-write leaves a file's temporary (write_atomic: `.tmp-<pid>-<hex>`) or a link's
    # (`.<name>.tmp-<pid>`); neither is ever served, both go at the next start, the slot and links stay.
    target = _champion_at_1(tmp_path)
    (target.root / ".tmp-123-abcdef").write_text("half a weights.json")
    os.symlink("versions/1", target.root / ".champion.tmp-123")
    target.clean_stale()
    assert sorted(p.name for p in target.root.iterdir()) == ["champion", "current", "versions"]
    assert target.points_at("champion") == 1 and target.slot(1).is_dir()


def test_why_says_a_version_whose_files_changed_needs_registering_again_not_promoting() -> None:
    """After a sha256 mismatch `models why` said "(... promote lsq 8 --alias champion tries again)": it cannot."""
    from edgeorch.models.views import why_text

    doc = {"model": "lsq", "version": 8, "decisions": [], "alias_moves": [], "aliases": [], "current_aliases": {},
           "deployments": [{"id": 3, "action": "promote", "alias": "champion", "state": "failed", "step": "staging",
                            "outcome": "not deployed: version 8's files changed since it was registered (x: sha256 "
                                       "10daacaa9a65, registered d760a1baaa21)"}]}
    text = why_text(doc)
    assert "register the model again" in text and "tries again" not in text
    doc["deployments"][0]["outcome"] = "the health check failed before the switch"
    assert "edgeorch models promote lsq 8 --alias champion tries again" in why_text(doc)


@pytest.mark.parametrize("link_at", ["root", "versions"])
def test_a_target_reached_through_a_symbolic_link_is_never_written(tmp_path, link_at) -> None:
    """Found by a hostile user: a new model whose deploy.dir held ``<model>`` as a link to another model's serving
    folder staged its file ("EVIL") over that model's served version 1; the owner's `promote --again` then failed
    (the registered files were gone). The same through a link at ``versions``."""
    victim = _champion_at_1(tmp_path)
    served = victim.root / "current" / "model.bin"
    evil_src = tmp_path / "evil.bin"
    evil_src.write_text("EVIL\n")
    trap = tmp_path / "trap"
    trap.mkdir()
    if link_at == "root":
        (trap / "evilm").symlink_to(victim.root)
    else:
        (trap / "evilm").mkdir()
        (trap / "evilm" / "versions").symlink_to(victim.root / "versions")
    attacker = PathTarget(trap / "evilm")
    with pytest.raises(StagingError) as err:
        attacker.stage(1, _artifact(evil_src))
    assert "is a symbolic link" in err.value.message and "never deployed through a link" in err.value.message
    with pytest.raises(StagingError):
        attacker.switch("champion", 1)
    assert served.read_text() == "weights"  # untouched
