"""SLURM mode without a cluster: the dagster-slurm resources we build, the sbatch options, the env layout, jobfiles."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster_slurm import BashLauncher, ComputeResource, SlurmPipesClient

from irbench_assets.compute.jobfiles import (
    Job,
    load_slurm_profile,
    sbatch_options,
    time_limit_seconds,
    write_jobfiles,
)
from irbench_assets.compute.resource import IrbenchCompute, remote_setup_script
from irbench_assets.settings import REPO_ROOT

PAPER = {  # the seed's compute table
    "tokenize": (8, "300G", 0),
    "tokenize_eval": (8, "80G", 0),
    "train": (4, "128G", 1),
    "extract": (4, "32G", 1),
    "probes": (8, "256G", 0),
    "diagnostics": (4, "32G", 1),
}
VENV = Path(sys.prefix)


@pytest.fixture()
def key(tmp_path: Path) -> Path:
    """dagster-slurm checks that the key file exists (it is never used: nothing connects here)."""
    path = tmp_path / "id_ed25519"
    path.write_text("not a real key\n")
    return path


def _slurm(key: Path, **kw: object) -> IrbenchCompute:
    base = {
        "mode": "slurm", "profile": "paper", "ssh_host": "login.example.org", "ssh_port": 2222,
        "ssh_user": "alice", "ssh_key_path": str(key), "pre_deployed_env_path": "/opt/irbench/.venv",
        "remote_base_dir": "/scratch/alice/irbench",
    }
    return IrbenchCompute(**{**base, **kw})


def _sbatch_flags(command: str) -> dict[str, str]:
    """Parse dagster-slurm's sbatch command line into long-option → value."""
    short = {"-p": "partition", "-t": "time", "-c": "cpus-per-task", "-N": "nodes"}
    tokens = shlex.split(command)[1:-1]
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in short:
            out[short[tok]] = tokens[i + 1]
            i += 2
        elif tok in ("-J", "-D", "-o", "-e"):
            i += 2
        else:
            k, _, v = tok[2:].partition("=")
            out[k] = v
            i += 1
    return out


def test_paper_profile_is_the_seed_compute_table() -> None:
    prof = load_slurm_profile("paper")
    assert list(prof.stages) == list(PAPER)
    for stage, (cpus, mem, gpus) in PAPER.items():
        res = prof.stage(stage)
        assert (res.cpus, res.mem, res.gpus) == (cpus, mem, gpus), stage
        assert res.partition == ("gpu" if gpus else "")
        assert (res.payload is None) != (res.select is None)
    demo = load_slurm_profile("demo")
    assert list(demo.stages) == list(PAPER)
    assert all(r.gpus == 0 and r.cpus <= 2 for r in demo.stages.values())
    assert time_limit_seconds("2-00:00:00") == 172800 and time_limit_seconds("00:30:00") == 1800
    with pytest.raises(KeyError, match="no stage 'nope'"):
        prof.stage("nope")


def test_bad_yaml_names_file_stage_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "paper.yaml"
    bad.write_text(yaml.safe_dump({"partitions": {"cpu": ""}, "stages": {"train": {
        "partition": "cpu", "cpus": 4, "mem": "lots", "gpus": 1, "time": "01:00:00", "payload": "a.b"}}}))
    with pytest.raises(ValueError, match=r"paper\.yaml: stage 'train': mem 'lots'"):
        load_slurm_profile("paper", path=bad)
    bad.write_text(yaml.safe_dump({"partitions": {"cpu": ""}, "stages": {"train": {
        "partition": "gpu", "cpus": 4, "mem": "4G", "gpus": 1, "time": "01:00:00", "payload": "a.b"}}}))
    with pytest.raises(ValueError, match="partition 'gpu' is not in partitions"):
        load_slurm_profile("paper", path=bad)


def test_slurm_mode_builds_dagster_slurm_resources(key: Path) -> None:
    compute = _slurm(key, partitions="gpu=a100", account="proj42")
    cr = compute.slurm_compute_resource()
    assert isinstance(cr, ComputeResource)
    assert cr.mode == "slurm"
    assert isinstance(cr.default_launcher, BashLauncher)
    assert cr.pre_deployed_env_path == "/opt/irbench/.venv"
    assert cr.slurm is not None
    ssh = cr.slurm.ssh
    assert (ssh.host, ssh.port, ssh.user, ssh.key_path) == ("login.example.org", 2222, "alice", str(key))
    assert ssh.host_key_checking == "strict"
    assert cr.slurm.remote_base == "/scratch/alice/irbench"

    opts = compute.slurm_options("train")
    assert opts == {"partition": "a100", "time_limit": "2-00:00:00", "cpus_per_task": 4, "mem": "128G",
                    "gpus_per_node": 1, "nodes": 1, "account": "proj42"}

    # What dagster-slurm itself would put on the sbatch line (client built, nothing connected).
    client = cr.get_pipes_client(None)  # type: ignore[arg-type]
    assert isinstance(client, SlurmPipesClient)
    for stage, (cpus, mem, gpus) in PAPER.items():
        cmd = client._build_sbatch_command(
            job_name="j", working_dir="/w", output_file="/w/o", error_file="/w/e", script_path="/w/job.sh",
            extra_opts=compute.slurm_options(stage),
        )
        flags = _sbatch_flags(cmd)
        assert flags["cpus-per-task"] == str(cpus) and flags["mem"] == mem, cmd
        assert flags.get("gres") == (f"gpu:{gpus}" if gpus else None), cmd
        assert flags.get("partition") == ("a100" if gpus else None), cmd
        # ...and it is exactly what the job files write.
        res = compute.stage_resources(stage)
        assert flags == dict(sbatch_options(res, account="proj42")), stage


def test_slurm_settings_come_from_environment(key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "IRBENCH_COMPUTE_MODE": "slurm", "IRBENCH_PROFILE": "demo", "IRBENCH_SLURM_HOST": "127.0.0.1",
        "IRBENCH_SLURM_PORT": "2200", "IRBENCH_SLURM_USER": "submitter", "IRBENCH_SLURM_KEY": str(key),
        "IRBENCH_SLURM_ENV": "/home/submitter/venv", "IRBENCH_SLURM_HOST_KEY_CHECKING": "accept-new",
        "IRBENCH_SLURM_PARTITIONS": "cpu=debug,gpu=debug", "IRBENCH_SLURM_QOS": "short",
    }.items():
        monkeypatch.setenv(name, value)
    compute = IrbenchCompute()
    assert compute.resolved_mode() == "slurm" and compute.resolved_profile() == "demo"
    cr = compute.slurm_compute_resource()
    assert cr.slurm is not None
    assert (cr.slurm.ssh.host, cr.slurm.ssh.port, cr.slurm.ssh.user) == ("127.0.0.1", 2200, "submitter")
    assert cr.slurm.ssh.host_key_checking == "accept-new"
    assert cr.pre_deployed_env_path == "/home/submitter/venv"
    assert cr.slurm.remote_base == "$HOME/irbench-pipelines"
    assert compute.slurm_options("train") == {"partition": "debug", "time_limit": "01:00:00", "cpus_per_task": 2,
                                              "mem": "4G", "gpus_per_node": 0, "nodes": 1, "qos": "short"}
    monkeypatch.delenv("IRBENCH_SLURM_USER")
    with pytest.raises(ValueError, match="IRBENCH_SLURM_USER"):
        IrbenchCompute().slurm_compute_resource()


def _run_setup(base: Path, env: Path) -> dict[str, str]:
    proc = subprocess.run(["bash", "-c", remote_setup_script(str(base), str(env), "run-1", ("true",))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines())


def test_venv_gets_the_layout_dagster_slurm_expects(tmp_path: Path) -> None:
    """The setup script (run over SSH in slurm mode) run here with bash against this project's venv."""
    base = tmp_path / "base"
    out = _run_setup(base, VENV)
    deploy = Path(out["IRBENCH_DEPLOY"])
    assert out["IRBENCH_BASE"] == str(base) and deploy.parent == base / "envs"
    assert (base / "logs" / "run-1").is_dir()
    assert (deploy / "env" / "bin" / "python").exists() and (deploy / "activate.sh").exists()
    assert _run_setup(base, VENV) == out  # idempotent

    # dagster-slurm's own BashLauncher script, with our activate.sh, runs the venv's interpreter.
    probe = tmp_path / "probe.py"
    probe.write_text("import sys, dagster_pipes, os; print('PREFIX', sys.prefix); print('VENV', os.environ['VIRTUAL_ENV'])\n")
    work = tmp_path / "work"
    work.mkdir()
    plan = BashLauncher().prepare_execution(
        payload_path=str(probe), python_executable=str(deploy / "env" / "bin" / "python"),
        working_dir=str(work), pipes_context={}, activation_script=str(deploy / "activate.sh"),
    )
    script = work / "job.sh"
    script.write_text("\n".join(plan.payload))
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"VENV {VENV}" in proc.stdout
    assert Path(proc.stdout.split("PREFIX ")[1].split()[0]).resolve() == VENV.resolve()

    # A folder that already has dagster-slurm's layout is used as is; anything else is refused.
    assert _run_setup(tmp_path / "b2", deploy)["IRBENCH_DEPLOY"] == str(deploy)
    proc = subprocess.run(["bash", "-c", remote_setup_script(str(tmp_path), str(tmp_path / "nothing"), "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 3 and "no bin/python" in proc.stderr


def _sbatch_lines(path: Path) -> dict[str, str]:
    lines = [ln[len("#SBATCH --"):] for ln in path.read_text().splitlines() if ln.startswith("#SBATCH --")]
    return dict(ln.split("=", 1) for ln in lines)


def test_paper_jobfiles_have_the_yaml_resources(tmp_path: Path) -> None:
    paths = write_jobfiles("paper", tmp_path / "jobs", env_path="/opt/irbench/.venv")
    assert [p.name for p in paths] == [f"{i:02d}_{s}.sbatch" for i, s in enumerate(PAPER)]
    for path, (stage, (cpus, mem, gpus)) in zip(paths, PAPER.items(), strict=True):
        sb = _sbatch_lines(path)
        assert sb["cpus-per-task"] == str(cpus) and sb["mem"] == mem
        assert sb.get("gres") == (f"gpu:{gpus}" if gpus else None)
        assert sb["job-name"] == f"irbench-{stage}"
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
        assert os.access(path, os.X_OK)
    train = _sbatch_lines(paths[2])
    assert train == {"job-name": "irbench-train", "partition": "gpu", "time": "2-00:00:00",
                     "cpus-per-task": "4", "mem": "128G", "gres": "gpu:1", "output": "%x-%j.out"}
    text = paths[2].read_text()
    assert "python -m irbench_assets.compute.payload irbench_assets.models.train_payload" in text
    assert 'IRBENCH_VENV="${IRBENCH_VENV:-/opt/irbench/.venv}"' in text
    assert "--select tag:irbench/stage=tokenize" in paths[0].read_text()
    # deterministic: the same inputs give the same bytes
    again = write_jobfiles("paper", tmp_path / "again", stages=["train"], env_path="/opt/irbench/.venv")
    assert [p.name for p in again] == ["02_train.sbatch"] and again[0].read_bytes() == paths[2].read_bytes()
    with pytest.raises(KeyError, match="nope"):
        write_jobfiles("paper", tmp_path / "x", stages=["nope"])


def test_jobfile_runs_its_payload_without_dagster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job file run by bash (as sbatch would, #SBATCH lines are comments) runs the payload as a CLI."""
    res = tmp_path / "resources"
    shutil.copytree(REPO_ROOT / "resources", res)
    prof = yaml.safe_load((res / "slurm" / "demo.yaml").read_text())
    prof["stages"]["train"]["payload"] = "irbench_assets_tests.compute.echo_payload:echo"
    (res / "slurm" / "demo.yaml").write_text(yaml.safe_dump(prof))
    monkeypatch.setenv("IRBENCH_RESOURCES", str(res))
    out = tmp_path / "echo.txt"
    (path,) = write_jobfiles(
        "demo", tmp_path / "jobs", jobs=[Job("echo-demo", "train", {"out_path": str(out), "text": "hi"})],
        env_path=str(VENV), python_path=[str(REPO_ROOT)],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    proc = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text() == "hi\n"
    assert json.loads(proc.stdout.strip().splitlines()[-1])["metadata"]["lines"] == 1
    # arguments given on the command line win over the embedded ones
    subprocess.run(["bash", str(path), json.dumps({"out_path": str(out), "text": "yo"})], env=env, check=True,
                   capture_output=True)
    assert out.read_text() == "yo\n"
    # a placeholder venv is refused with a clear message
    (bad,) = write_jobfiles("demo", tmp_path / "j2", stages=["train"])
    proc = subprocess.run(["bash", str(bad), "{}"], capture_output=True, text=True,
                          env={k: v for k, v in env.items() if k != "IRBENCH_VENV" and k != "IRBENCH_SLURM_ENV"})
    assert proc.returncode == 2 and "set IRBENCH_VENV" in proc.stderr
