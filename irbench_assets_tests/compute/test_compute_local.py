"""IrbenchCompute in local mode through real Dagster runs, and payloads run as plain CLIs."""

# No `from __future__ import annotations`: Dagster reads the asset functions' context annotations.

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from irbench_assets.compute.resource import IrbenchCompute
from irbench_assets.settings import REPO_ROOT

ECHO_MODULE = "irbench_assets_tests.compute.echo_payload"
PARTITION = "exp2.soft_rope"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("DAGSTER_PIPES_CONTEXT", None)
    env.pop("DAGSTER_PIPES_MESSAGES", None)
    return env


def _assets(out_path: Path) -> list[dg.AssetsDefinition]:
    @dg.asset(partitions_def=dg.StaticPartitionsDefinition([PARTITION]))
    def echoed(context: dg.AssetExecutionContext, compute: IrbenchCompute) -> dg.MaterializeResult:
        result = compute.run(context, "train", ECHO_MODULE, {"out_path": str(out_path), "text": "hello", "repeat": 3})
        assert isinstance(result, dg.MaterializeResult)
        return result

    @dg.asset
    def failing(context: dg.AssetExecutionContext, compute: IrbenchCompute) -> dg.MaterializeResult:
        result = compute.run(context, "extract", f"{ECHO_MODULE}:fail", {"lines": 60, "code": 3})
        assert isinstance(result, dg.MaterializeResult)
        return result

    return [echoed, failing]


@pytest.fixture()
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def test_local_payload_streams_logs_and_metadata(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    out = tmp_path / "out" / "echo.txt"
    compute = IrbenchCompute(mode="local", profile="demo", log_dir=str(tmp_path / "logs"), work_dir=str(tmp_path))
    result = dg.materialize(
        _assets(out), selection=["echoed"], partition_key=PARTITION, instance=instance, resources={"compute": compute}
    )
    assert result.success
    assert out.read_text() == "hello\nhello\nhello\n"
    assert not list(tmp_path.glob("irbench-train-*"))  # launch files removed after success

    meta = result.asset_materializations_for_node("echoed")[0].metadata
    assert meta["lines"].value == 3
    assert meta["bytes"].value == len("hello\n") * 3
    assert meta["out_path"] == dg.MetadataValue.path(str(out))
    assert meta["summary"] == dg.MetadataValue.json({"text": "hello"})
    assert meta["compute_mode"].value == "local"
    assert meta["compute_stage"].value == "train"
    assert meta["compute_payload"].value == ECHO_MODULE

    # The payload's log file is per run and partition and holds its output.
    log = Path(meta["compute_log"].value)
    assert log == tmp_path / "logs" / result.run_id / f"train__{PARTITION}.log"
    assert '"step": 3' in log.read_text()

    # Every log({...}) record reached the Dagster run log.
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    records = [m for m in messages if m.startswith("[train] {")]
    assert [json.loads(m.split(" ", 1)[1])["step"] for m in records] == [1, 2, 3]


def test_local_payload_failure_fails_step_with_log_tail(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    compute = IrbenchCompute(
        mode="local", profile="demo", log_dir=str(tmp_path / "logs"), work_dir=str(tmp_path), log_tail_lines=20
    )
    result = dg.materialize(
        _assets(tmp_path / "unused.txt"),
        selection=["failing"],
        instance=instance,
        resources={"compute": compute},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "exit code 3" in message
    assert "line 60 of 60" in message and "boom: simulated payload failure" in message
    assert "line 30 of 60" not in message  # only the tail (20 lines)
    assert "PipesDefaultLogWriterChannel" not in message
    (kept,) = tmp_path.glob("irbench-extract-*")  # launch files kept for inspection, and named
    assert str(kept) in message and (kept / result.run_id / "launch.sh").exists()
    assert not result.asset_materializations_for_node("failing")
    log = tmp_path / "logs" / result.run_id / "extract.log"
    assert "line 1 of 60" in log.read_text()  # the full log stays on disk


def test_mode_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IRBENCH_COMPUTE_MODE", raising=False)
    assert IrbenchCompute().resolved_mode() == "local"
    monkeypatch.setenv("IRBENCH_COMPUTE_MODE", "slurm")
    assert IrbenchCompute().resolved_mode() == "slurm"
    assert IrbenchCompute(mode="local").resolved_mode() == "local"
    monkeypatch.setenv("IRBENCH_COMPUTE_MODE", "kubernetes")
    with pytest.raises(ValueError, match="kubernetes"):
        IrbenchCompute().resolved_mode()


def test_payload_runs_as_plain_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli.txt"
    args = json.dumps({"out_path": str(out), "text": "x", "repeat": 2})
    # function target
    proc = subprocess.run(
        [sys.executable, "-m", "irbench_assets.compute.payload", f"{ECHO_MODULE}:echo", "--json-args", args],
        capture_output=True, text=True, env=_env(), check=True,
    )
    assert out.read_text() == "x\nx\n"
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["metadata"]["lines"] == 2 and last["metadata"]["out_path"] == str(out)
    assert '[irbench] {"of": 2, "phase": "echo", "step": 2}' in proc.stdout

    # a payload module run with python -m, arguments from a file
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"out_path": str(out), "text": "y"}))
    subprocess.run([sys.executable, "-m", ECHO_MODULE, "--json-file", str(argfile)], env=_env(), check=True,
                   capture_output=True)
    assert out.read_text() == "y\n"

    # without Dagster and without arguments it refuses with a usage message
    proc = subprocess.run([sys.executable, "-m", ECHO_MODULE], env=_env(), capture_output=True, text=True)
    assert proc.returncode != 0 and "--json-args" in proc.stderr

    # a failing payload keeps its exit status
    proc = subprocess.run(
        [sys.executable, "-m", "irbench_assets.compute.payload", f"{ECHO_MODULE}:fail", "--json-args", '{"lines": 2}'],
        env=_env(), capture_output=True, text=True,
    )
    assert proc.returncode == 3 and "line 2 of 2" in proc.stdout


def _supervise(target: str, log: Path, args: dict) -> subprocess.CompletedProcess[str]:
    argv = ["--json-args", json.dumps(args)]
    code = (
        "import sys; from irbench_assets.compute.payload import supervise; "
        f"sys.exit(supervise({target!r}, {str(log)!r}, {argv!r}))"
    )
    return subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True)


def test_supervise_keeps_log_and_exit_status(tmp_path: Path) -> None:
    log = tmp_path / "l" / "p.log"
    proc = _supervise(f"{ECHO_MODULE}:fail", log, {"lines": 3, "code": 7})
    assert proc.returncode == 7
    text = log.read_text()
    assert "line 3 of 3" in text and "boom" in text
    assert "failed with exit code 7" in text.splitlines()[-1]
    assert "line 3 of 3" in proc.stdout  # teed, not only logged

    # an exception in the payload (a diverged run): exit status 1, the traceback is in the log
    proc = _supervise(f"{ECHO_MODULE}:nan_loss", log, {"step": 5})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = log.read_text()
    assert "FloatingPointError: loss is NaN at step 5" in text and '"loss": NaN' in text
