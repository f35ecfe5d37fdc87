"""The pure parts of container tasks: the run command line, the mounts, the exit read as a host task's; and the
image resolution's rules against a stand-in runtime CLI (a shell script that answers like podman or docker)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgeorch.containers.command import (
    CHECKPOINT_ALIAS,
    OOM_MARKER,
    OUTPUT_ALIAS,
    AttemptPlan,
    BindMount,
    cleanup_for,
    container_name,
    env_names,
    exit_as_host,
    mounts_for,
    oom_recorded,
    run_argv,
    substitute_container,
)
from edgeorch.containers.image import ContainerError, cdi_gpu_names, resolve
from edgeorch.containers.spec import ContainerSpec, Mount

DIGEST = "a" * 64


def _plan(**kw) -> AttemptPlan:
    base = dict(runtime_command=("podman", "--runtime", "runc"), runtime="podman",
                spec=ContainerSpec("img:1", args=("--network", "none"), user="1000:1000"),
                image_ref=f"sha256:{DIGEST}", name="edgeorch-1-t.1-abc", cidfile="/a/container.id",
                command=("python", "x.py"), env_names=("EDGEORCH_RUN_ID", "OMP_NUM_THREADS"),
                mounts=(BindMount("/out", "/out", False),), workdir="/p", cpus=(2, 3), memory=64 << 20,
                gpus=("GPU-1", "GPU-2"))
    base.update(kw)
    return AttemptPlan(**base)


def test_run_argv_applies_the_lease_and_ends_with_the_image_and_command():
    argv = run_argv(_plan())
    assert argv[:4] == ["podman", "--runtime", "runc", "run"]
    joined = " ".join(argv)
    for part in ("--rm", "--name edgeorch-1-t.1-abc", "--cidfile /a/container.id", "--workdir /p", "--replace",
                 "--cpuset-cpus 2,3", f"--memory {64 << 20} --memory-swap {64 << 20}",
                 "--device nvidia.com/gpu=GPU-1 --device nvidia.com/gpu=GPU-2", "--user 1000:1000",
                 "--mount type=bind,source=/out,target=/out", "--env EDGEORCH_RUN_ID --env OMP_NUM_THREADS"):
        assert part in joined, part
    assert argv[-5:] == ["--network", "none", f"sha256:{DIGEST}", "python", "x.py"]  # task args just before the image
    assert all("=" not in a or a.startswith(("--sig-proxy", "type=bind", "nvidia.com")) for a in argv[:-5])


def test_run_argv_without_leases_sets_no_limits_and_docker_gets_no_replace():
    argv = run_argv(_plan(runtime="docker", runtime_command=("docker",), cpus=None, memory=0, gpus=()))
    assert not {"--cpuset-cpus", "--memory", "--device", "--replace"} & set(argv)


def test_container_names_are_unique_per_attempt_folder_and_valid():
    a = container_name(7, "train", 2, "/s1/runs/7/attempts/train.2")
    b = container_name(7, "train", 2, "/s2/runs/7/attempts/train.2")
    assert a != b and a.startswith("edgeorch-7-train.2-")
    assert all(c.isalnum() or c in "_.-" for c in a)


def test_cleanup_removes_the_container_whatever_its_state():
    assert cleanup_for("podman", ["podman", "--runtime", "runc"], "n") == ["podman", "--runtime", "runc", "rm",
                                                                          "--force", "--ignore", "n"]
    assert cleanup_for("docker", ["docker"], "n") == ["docker", "rm", "--force", "n"]


def test_mounts_same_paths_aliases_one_per_target_and_the_tasks_own_first():
    mounts = mounts_for(output_dir="/s/runs/1/outputs/t", checkpoint_dir="/s/runs/1/checkpoints/t",
                        run_dir="/s/runs/1", pipeline_dir="/pipes",
                        read=["/s/runs/1/outputs/up", "/data/in.csv", "/pipes/sub", "/elsewhere/outputs/up", "/"],
                        asked=[("/srv/data", "/data", True)])
    assert mounts == (
        BindMount("/srv/data", "/data", True),
        BindMount("/s/runs/1/outputs/t", "/s/runs/1/outputs/t", False),
        BindMount("/s/runs/1/checkpoints/t", "/s/runs/1/checkpoints/t", False),
        BindMount("/s/runs/1/outputs/t", OUTPUT_ALIAS, False),
        BindMount("/s/runs/1/checkpoints/t", CHECKPOINT_ALIAS, False),
        BindMount("/s/runs/1", "/s/runs/1", True),
        BindMount("/pipes", "/pipes", True),
        BindMount("/elsewhere/outputs/up", "/elsewhere/outputs/up", True),  # a cached upstream of another run
    )  # /data/in.csv is under the task's own /data; /pipes/sub and the run's upstream under mounted folders;
    # never "/" (a glob like "/*.csv" has the root as its folder: mounting it would hide the image)


def test_variables_are_the_tasks_and_the_leases_never_host_only_ones():
    names = env_names(["EDGEORCH_RUN_ID", "EDGEORCH_STATE_FILE", "EDGEORCH_RESULT_FILE", "NUMBA_CACHE_DIR", "MY"],
                      ["OMP_NUM_THREADS", "MY"])
    assert names == ("EDGEORCH_RUN_ID", "MY", "OMP_NUM_THREADS")


@pytest.mark.parametrize("code, signal, expected", [
    (0, None, (0, None, None)),
    (3, None, (3, None, None)),
    (137, None, (None, 9, None)),  # an OOM kill or a SIGKILL inside: as for a host task
    (143, None, (None, 15, None)),
    (None, 9, (None, 9, None)),  # the client itself was killed
    (200, None, (200, None, None)),
])
def test_a_containers_exit_reads_as_a_host_tasks(code, signal, expected):
    assert exit_as_host(code, signal) == expected


@pytest.mark.parametrize("code, oom, stopped, expected", [
    (137, True, False, (None, 9, "killed: out of memory (memory bound 64M)")),
    (1, True, False, (1, None, "exited with code 1 after a process was killed: out of memory (memory bound 64M)")),
    (137, None, False, (None, 9, ("killed by signal 9 (SIGKILL), probably out of memory (memory bound 64M; "
                                  "no OOM record to confirm it)"))),
    (137, True, True, (None, 9, None)),  # edgeorch stopped it: its own SIGKILL
    (0, True, False, (0, None, None)),
])
def test_a_containers_oom_kill_is_reported_with_its_bound(code, oom, stopped, expected):
    assert exit_as_host(code, None, memory=64 << 20, oom=oom, stopped=stopped) == expected


def test_the_oom_record_is_the_monitors_marker_in_the_attempt_folder(tmp_path):
    assert oom_recorded(tmp_path) is None  # no marker: no record either way
    (tmp_path / OOM_MARKER).touch()
    assert oom_recorded(tmp_path) is True


@pytest.mark.parametrize("code, words", [(125, "a container it could not run"), (126, "could not invoke"),
                                         (127, "not found in the image")])
def test_the_runtimes_codes_quote_the_log_and_name_both_readings(code, words):
    """A tester's find: a command that exited 125 or 127 itself (`python: not found` from a script inside) was
    said to be the runtime's failure, without the log's last line that host tasks get: at 3 a.m. that sends one
    after podman when the script failed. Both readings are named, after the log's last line."""
    got_code, got_signal, why = exit_as_host(code, None, last_line="I exit myself", created=True)
    assert (got_code, got_signal) == (code, None)
    assert why.startswith(f"exited with code {code}: I exit myself (the container runtime's code for ")
    assert words in why and why.endswith("or the command's own)")
    assert "(see the log)" in exit_as_host(code, None)[2]  # no line to quote


def test_a_125_before_the_container_was_created_is_the_runtimes_alone():
    why = exit_as_host(125, None, last_line="Error: unknown flag: --no-such-flag", created=False)[2]
    assert why == ("the container runtime could not create the container (exit code 125): "
                   "Error: unknown flag: --no-such-flag")


def test_placeholders_are_substituted_in_every_container_string():
    spec = ContainerSpec("reg/{name}:{tag}", mounts=(Mount("{pipeline_dir}/d", "/d", True),), workdir="/w/{tag}",
                         args=("--label", "x={tag}"))
    got = substitute_container(spec, {"name": "m", "tag": 3, "pipeline_dir": "/p"})
    assert got == ContainerSpec("reg/m:3", mounts=(Mount("/p/d", "/d", True),), workdir="/w/3",
                                args=("--label", "x=3"))


def test_cdi_gpu_names_reads_yaml_and_json_specs_of_the_gpu_kind(tmp_path):
    (tmp_path / "nvidia.yaml").write_text('cdiVersion: "0.5.0"\nkind: nvidia.com/gpu\ndevices:\n'
                                          '- name: "0"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n'
                                          '- name: GPU-abc\n  containerEdits: {}\n')
    (tmp_path / "other.json").write_text('{"cdiVersion": "0.5.0", "kind": "vendor.com/fpga", '
                                         '"devices": [{"name": "fpga0"}]}')
    (tmp_path / "more.json").write_text('{"kind": "nvidia.com/gpu", "devices": [{"name": "GPU-def"}]}')
    (tmp_path / "notes.txt").write_text("kind: nvidia.com/gpu\nname: ignored\n")
    assert cdi_gpu_names([str(tmp_path), str(tmp_path / "absent")]) == {"0", "GPU-abc", "GPU-def"}


# -- resolution against a stand-in runtime CLI ------------------------------------------------------------


def _runtime(tmp_path: Path, *, have: bool, pull_ok: bool = True, id_prefix: str = "") -> tuple[list[str], Path]:
    """A shell script answering ``image inspect`` and ``pull`` like a container CLI; it logs its calls."""
    state = tmp_path / "have"
    if have:
        state.touch()
    calls = tmp_path / "calls"
    script = tmp_path / "fake-runtime"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "$1 $2" in
  "image inspect")
    if [ -f {state} ]; then echo "{id_prefix}{DIGEST} 1234"; exit 0; fi
    echo "Error: inspecting object: $6: image not known" >&2; exit 125;;
  "pull "*)
    if [ {int(pull_ok)} = 1 ]; then touch {state}; exit 0; fi
    echo "Error: initializing source: dial tcp: lookup registry: no such host" >&2; exit 125;;
esac
exit 2
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return [str(script)], calls


def _calls(calls: Path) -> list[str]:
    return [line.split()[0] + " " + line.split()[1] for line in calls.read_text().splitlines()] if calls.exists() \
        else []


def test_pull_never_inspects_only(tmp_path):
    cmd, calls = _runtime(tmp_path, have=True)
    got = resolve(cmd, "podman", "img:1", "never", where="tasks.t.container")
    assert (got.digest, got.size, got.run_ref) == (DIGEST, 1234, f"sha256:{DIGEST}")
    assert _calls(calls) == ["image inspect"]


def test_pull_missing_pulls_only_what_is_missing(tmp_path):
    cmd, calls = _runtime(tmp_path, have=False)
    assert resolve(cmd, "podman", "img:1", "missing", where="w").digest == DIGEST
    assert _calls(calls) == ["image inspect", "pull --quiet", "image inspect"]


def test_pull_always_pulls_first(tmp_path):
    cmd, calls = _runtime(tmp_path, have=True)
    resolve(cmd, "docker", "img:1", "always", where="w")
    assert _calls(calls) == ["pull img:1", "image inspect"]


def test_dockers_digest_prefix_is_dropped(tmp_path):
    cmd, _ = _runtime(tmp_path, have=True, id_prefix="sha256:")
    assert resolve(cmd, "docker", "img:1", "never", where="w").digest == DIGEST


def test_a_failed_pull_names_the_image_and_the_runtimes_message(tmp_path):
    cmd, _ = _runtime(tmp_path, have=False, pull_ok=False)
    with pytest.raises(ContainerError) as err:
        resolve(cmd, "podman", "img:1", "missing", where="tasks.t.container")
    assert str(err.value).startswith("tasks.t.container.image = 'img:1': podman cannot pull it: Error: initializing")
    assert "no such host" in str(err.value)


def test_a_runtime_answering_nonsense_is_an_error(tmp_path):
    script = tmp_path / "odd"
    script.write_text("#!/bin/sh\necho 'not an id'\n")
    script.chmod(0o755)
    with pytest.raises(ContainerError, match="unexpected answer"):
        resolve([str(script)], "podman", "img:1", "never", where="w")


def test_a_runtime_that_is_not_executable_is_an_error(tmp_path):
    script = tmp_path / "noexec"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o644)
    with pytest.raises(ContainerError, match="cannot be run"):
        resolve([str(script)], "podman", "img:1", "never", where="w")


def test_variables_the_client_reads_go_with_their_value_the_others_by_name():
    from edgeorch.containers.command import client_reads

    assert [n for n in ("PATH", "LD_PRELOAD", "TMPDIR", "CONTAINERS_CONF", "DOCKER_HOST", "HOME", "MY", "EDGEORCH_RUN_ID",
                        "OMP_NUM_THREADS") if client_reads(n)] == ["PATH", "LD_PRELOAD", "TMPDIR", "CONTAINERS_CONF",
                                                                  "DOCKER_HOST", "HOME"]
