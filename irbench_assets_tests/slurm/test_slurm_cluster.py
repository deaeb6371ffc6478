"""Stages 1 and 2 on a real single-node SLURM cluster (scripts/slurm-up): sbatch over SSH to localhost.

One tiny demo handle (exp3.meds): its upstream assets are materialized locally, then ``checkpoint`` and
``features`` run once locally and once as sbatch jobs through ``IrbenchCompute(mode="slurm")``; the outputs
must agree, the job id / metrics / sbatch resources must reach Dagster, and a failing payload, a job past
its time limit and a cancelled job must each fail the step cleanly, after which a retry succeeds.

Skipped unless the cluster is up: ``bash scripts/slurm-up`` writes ``/tmp/irbench-slurm/env``
(override with IRBENCH_SLURM_ENV_FILE).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml
from safetensors.numpy import load_file

from irbench_assets.compute.jobfiles import load_slurm_profile, sbatch_options
from irbench_assets.compute.orchestrate import materialize_all
from irbench_assets.compute.resource import IrbenchCompute
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.definitions import defs
from irbench_assets.models.defs import checkpoint, features, features_valid, training_loss_decreased
from irbench_assets.settings import REPO_ROOT, get_settings
from irbench_assets.storage import features_dir, model_dir, runs_dir, tokenized_dir

pytestmark = pytest.mark.slurm

ENV_FILE = Path(os.environ.get("IRBENCH_SLURM_ENV_FILE", "/tmp/irbench-slurm/env"))
ARM = "exp3.meds"
TINY = {
    "synthetic": {"admissions": 300},
    "tokenize": {"max_len": 512},
    "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1},
    "train": {"max_steps": 30, "block_size": 128, "batch_size": 4, "lr": 3.0e-3, "checkpoint_every": 10,
              "log_every": 5},
}
STAGE_ASSETS = [checkpoint, features, training_loss_decreased, features_valid]


def _read_env_file(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines scripts/slurm-up writes."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^export (IRBENCH_[A-Z_]+)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """The connection settings of the running test cluster; skip the module when there is none."""
    if not ENV_FILE.exists():
        pytest.skip(f"no SLURM test cluster: {ENV_FILE} missing (run `sudo bash scripts/slurm-up` first)")
    env = _read_env_file(ENV_FILE)
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no SLURM test cluster: sinfo unavailable ({exc})")
    if proc.returncode != 0 or not re.search(r"idle|mix|alloc", proc.stdout):
        pytest.skip(f"no SLURM test cluster: sinfo says {proc.stdout.strip() or proc.stderr.strip()!r}")
    return env


def _write_resources(root: Path, overrides: dict[str, dict[str, Any]], slurm_train: dict[str, Any] | None = None) -> Path:
    """A copy of resources/ with the demo profile's sections updated (and, optionally, the train stage's sbatch entry)."""
    res = root / "resources"
    shutil.rmtree(res, ignore_errors=True)
    shutil.copytree(REPO_ROOT / "resources", res)
    prof_path = res / "profiles" / "demo.yaml"
    prof = yaml.safe_load(prof_path.read_text())
    for section, values in overrides.items():
        prof.setdefault(section, {}).update(values)
    prof_path.write_text(yaml.safe_dump(prof))
    if slurm_train:
        sl_path = res / "slurm" / "demo.yaml"
        sl = yaml.safe_load(sl_path.read_text())
        sl["stages"]["train"].update(slurm_train)
        sl_path.write_text(yaml.safe_dump(sl))
    _share(res)
    return res


def _share(path: Path) -> None:
    """Let the submit user read and write what root wrote (mkdtemp-made folders are 0700)."""
    subprocess.run(["chmod", "-R", "a+rwX", str(path)], check=True)


@pytest.fixture(scope="module")
def world(cluster: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Upstream of ``checkpoint`` for exp3.meds materialized locally in a home both root and the submit user share."""
    shared = Path(cluster.get("IRBENCH_SLURM_SHARED_HOME", "/tmp/irbench-slurm/home"))
    root = Path(shared) / f"test-{os.getpid()}-{time.time_ns()}"
    root.mkdir(parents=True)
    home = root / "home"
    mp = pytest.MonkeyPatch()
    try:
        res = _write_resources(root, TINY)
        mp.setenv("IRBENCH_RESOURCES", str(res))
        mp.setenv("IRBENCH_HOME", str(home))
        mp.setenv("IRBENCH_PROFILE", "demo")
        mp.delenv("IRBENCH_COMPUTE_MODE", raising=False)
        graph = defs.resolve_asset_graph()
        upstream = dg.AssetSelection.assets(checkpoint).upstream().resolve(graph) - {checkpoint.key, features.key}
        settings = IrbenchSettings(home=str(home), profile="demo")
        with dg.instance_for_test() as instance:
            steps = materialize_all(defs, instance, selection=upstream, arms={ARM},
                                    resources={"settings": settings, "compute": IrbenchCompute(mode="local")})
            assert {st["status"] for st in steps} == {"ok"}, steps
            yield {"root": root, "home": home, "settings": settings, "instance": instance, "mp": mp,
                   "s": get_settings(str(home), "demo")}
    finally:
        mp.undo()
        shutil.rmtree(root, ignore_errors=True)


def _materialize(w: dict[str, Any], compute: IrbenchCompute, assets: list | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets or STAGE_ASSETS, partition_key=ARM, instance=w["instance"], raise_on_error=False,
        resources={"settings": w["settings"], "compute": compute},
    )


def _slurm_compute(cluster: dict[str, str], **kw: Any) -> IrbenchCompute:
    """IrbenchCompute in slurm mode from the env file's settings."""
    return IrbenchCompute(
        mode="slurm", profile="demo", ssh_host=cluster["IRBENCH_SLURM_HOST"], ssh_port=int(cluster["IRBENCH_SLURM_PORT"]),
        ssh_user=cluster["IRBENCH_SLURM_USER"], ssh_key_path=cluster["IRBENCH_SLURM_KEY"],
        ssh_host_key_checking=cluster["IRBENCH_SLURM_HOST_KEY_CHECKING"],
        ssh_known_hosts_file=cluster["IRBENCH_SLURM_KNOWN_HOSTS"], pre_deployed_env_path=cluster["IRBENCH_SLURM_ENV"],
        remote_python_path=cluster["IRBENCH_SLURM_PYTHONPATH"], remote_base_dir=cluster["IRBENCH_SLURM_REMOTE_BASE"],
        **kw,
    )


def _mat_metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    mats = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()
            if e.event_specific_data.materialization.asset_key == key]
    assert len(mats) == 1, mats
    return {k: getattr(v, "value", v) for k, v in mats[0].metadata.items()}


def _reset_training(w: dict[str, Any]) -> None:
    """Drop the checkpoint, features and the resumable training work folder of the arm."""
    s = w["s"]
    exp, handle = ARM.split(".")
    for path in (model_dir(s, exp, handle), features_dir(s, exp, handle), runs_dir(s) / "work" / "train" / f"{exp}_{handle}"):
        shutil.rmtree(path, ignore_errors=True)
    _share(w["home"])


def _sacct(job_id: str) -> dict[str, str]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ReqCPUS,ReqMem,Timelimit,Partition"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    state, cpus, mem, limit, part = out[0].split("|")
    return {"state": state, "cpus": cpus, "mem": mem, "timelimit": limit, "partition": part}


def _tensors(model: Path) -> dict[str, np.ndarray]:
    out = {}
    for f in sorted(model.rglob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.relative_to(model)}:{k}"] = v
    return out


def _step_failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "no step failure"
    err = failures[0].step_failure_data.error
    return "\n".join(filter(None, [err.message, *(c.message for c in _causes(err))]))


def _causes(err: Any) -> list[Any]:
    out = []
    while err is not None and (err.cause or err.context):
        err = err.cause or err.context
        out.append(err)
    return out


def test_stage1_and_2_on_slurm_equal_local(world: dict[str, Any], cluster: dict[str, str]) -> None:
    s = world["s"]
    exp, handle = ARM.split(".")
    ref = world["root"] / "local_ref"
    local = _materialize(world, IrbenchCompute(mode="local"))
    assert local.success
    shutil.copytree(model_dir(s, exp, handle), ref / "model")
    shutil.copytree(features_dir(s, exp, handle), ref / "features")

    _reset_training(world)
    result = _materialize(world, _slurm_compute(cluster))
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())

    # same seed, same data: same weights and the same features
    mine, theirs = _tensors(model_dir(s, exp, handle)), _tensors(ref / "model")
    assert mine.keys() == theirs.keys() and mine
    for k in mine:
        np.testing.assert_allclose(mine[k], theirs[k], rtol=0, atol=1e-6, err_msg=k)
    for split in ("train", "tuning", "held_out"):
        a = pl.read_parquet(features_dir(s, exp, handle) / f"{split}.parquet").sort("hadm_id")
        b = pl.read_parquet(ref / "features" / f"{split}.parquet").sort("hadm_id")
        assert a["hadm_id"].to_list() == b["hadm_id"].to_list()
        np.testing.assert_allclose(a["features"].to_numpy(), b["features"].to_numpy(), rtol=0, atol=1e-6)

    # job ids and SLURM metrics reach Dagster; the jobs asked for what resources/slurm/demo.yaml says
    prof = load_slurm_profile("demo")
    for key, stage in ((checkpoint.key, "train"), (features.key, "extract")):
        meta = _mat_metadata(result, key)
        assert meta["compute_mode"] == "slurm" and meta["compute_stage"] == stage
        job_id = str(meta["slurm_job_id"])
        assert job_id.isdigit()
        assert any(k.startswith("slurm_") and k != "slurm_job_id" for k in meta), sorted(meta)
        res = prof.stage(stage)
        assert meta["compute_sbatch"] == " ".join(f"--{k}={v}" for k, v in sbatch_options(res, None, None))
        acct = _sacct(job_id)
        assert acct["state"] == "COMPLETED"
        assert acct["cpus"] == str(res.cpus)
        assert acct["mem"].rstrip("n").upper() in (res.mem.upper(), f"{int(res.mem[:-1]) * 1024}M")
        assert acct["timelimit"] == res.time


def _no_checkpoint(w: dict[str, Any]) -> None:
    exp, handle = ARM.split(".")
    out = model_dir(w["s"], exp, handle)
    assert not out.exists(), f"partial checkpoint left at {out}: {sorted(p.name for p in out.iterdir())}"
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(out.name)] if out.parent.exists() else []
    assert not leftovers, leftovers


def test_failures_fail_the_step_and_a_retry_succeeds(world: dict[str, Any], cluster: dict[str, str]) -> None:
    mp: pytest.MonkeyPatch = world["mp"]
    s = world["s"]
    exp, handle = ARM.split(".")
    only_ckpt = [checkpoint, training_loss_decreased]

    # 1. the payload exits non-zero: its input folder is missing
    _reset_training(world)
    tok = tokenized_dir(s, exp, handle)
    hidden = tok.with_name(tok.name + ".hidden")
    tok.rename(hidden)
    try:
        msg = _step_failure(_materialize(world, _slurm_compute(cluster), only_ckpt))
    finally:
        hidden.rename(tok)
    assert re.search(r"Job \d+ did not complete successfully. Final state: FAILED", msg), msg
    assert "FileNotFoundError" in msg and "exit code 1" in msg and "last lines" in msg, msg
    _no_checkpoint(world)

    # 2. the job runs past its time limit (1 minute; SLURM's smallest) and 3. a running job is scancel'ed
    long_res = _write_resources(world["root"] / "long", {**TINY, "train": {**TINY["train"], "max_steps": 10**6, "epochs": 10**4}},
                                slurm_train={"time": "00:01:00"})
    mp.setenv("IRBENCH_RESOURCES", str(long_res))
    try:
        _reset_training(world)
        msg = _step_failure(_materialize(world, _slurm_compute(cluster), only_ckpt))
        assert re.search(r"Job \d+ did not complete successfully. Final state: TIMEOUT", msg), msg
        assert "SIGTERM" in msg and "last lines" in msg, msg
        _no_checkpoint(world)

        _reset_training(world)
        # dagster-slurm installs signal handlers, so Dagster stays on the main thread and the canceller runs beside it
        box: dict[str, str] = {}

        def cancel_when_running() -> None:
            box["job"] = _wait_for_running_job(cluster["IRBENCH_SLURM_USER"], timeout_s=120)
            time.sleep(3)
            subprocess.run(["scancel", box["job"]], check=True)

        canceller = threading.Thread(target=cancel_when_running, daemon=True)
        canceller.start()
        result = _materialize(world, _slurm_compute(cluster), only_ckpt)
        canceller.join(timeout=5)
        msg = _step_failure(result)
        assert f"Job {box['job']} " in msg and "CANCELLED" in msg and "last lines" in msg, msg
        _no_checkpoint(world)
    finally:
        mp.setenv("IRBENCH_RESOURCES", str(world["root"] / "resources"))

    # a retry with the normal profile succeeds
    _reset_training(world)
    again = _materialize(world, _slurm_compute(cluster), only_ckpt)
    assert again.success
    assert (model_dir(s, exp, handle) / "summary.json").exists()


def _wait_for_running_job(user: str, timeout_s: float) -> str:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        out = subprocess.run(["squeue", "-h", "-u", user, "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if out:
            return out[0]
        time.sleep(0.5)
    raise AssertionError(f"no running job of {user} within {timeout_s}s")
