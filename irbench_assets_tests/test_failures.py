"""Failure handling through the real pipeline: ``kill -9`` of a materialization in the middle of tokenization
and of training (no half-written artifact under a final path, the rerun completes and training resumes from
its work-dir state), and corrupted inputs given to the Dagster assets (a clear error naming file and column,
and the previous materialization still loads)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.definitions import defs
from irbench_assets.settings import REPO_ROOT, get_settings
from irbench_assets.storage import (
    events_dir,
    meds_root,
    model_dir,
    runs_dir,
    tokenized_dir,
)

TINY = {
    "synthetic": {"admissions": 200},
    "meds": {"subjects_per_shard": 60},
    "tokenize": {"max_len": 256},
    "model": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 1},
    "train": {"max_steps": 60, "block_size": 64, "batch_size": 4, "lr_sweep": [3.0e-3], "lr": 3.0e-3,
              "checkpoint_every": 5, "log_every": 50},
    "stats": {"n_boot": 100, "n_perm": 100},
}
EXP, HANDLE = "exp2", "discrete_tt"
UP_TO_TRAINING = "mimic_source,meds_dataset,tokenizer_events,tokenized,checkpoint"
# What a complete tokenized dataset holds (the asset and its checks read these).
TOKENIZED_FILES = ["tokenizer.json", "train/vocab.parquet", *(f"{p}/{s}/tokens_timelines.parquet"
                   for p in ("full", "first_24h") for s in ("train", "tuning", "held_out"))]
MODEL_FILES = ["summary.json", "config.json", "base/config.json", "vocab/vocab.parquet"]


# ------------------------------------------------------------------------------------------ helpers
def _start(home: Path, dagster_home: Path, select: str, log: Path) -> subprocess.Popen:
    """``irbench materialize`` of the tiny profile in its own process group (so kill -9 reaches the payload)."""
    env = dict(os.environ, IRBENCH_HOME=str(home), DAGSTER_HOME=str(dagster_home), IRBENCH_PROFILE="demo")
    cmd = [sys.executable, "-m", "irbench_assets.cli", "materialize", "--experiment", EXP, "--handle", HANDLE,
           "--select", select, "--quiet"]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group and wait until none of its processes is left."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail("processes of the killed materialization survived SIGKILL of its group")


def _complete(root: Path, files: list[str]) -> bool:
    return all((root / f).is_file() for f in files)


def _kill_when(proc: subprocess.Popen, ready, finals: dict[Path, list[str]], log: Path, timeout: float = 120) -> None:
    """Poll until ``ready()`` and then kill -9; meanwhile every final path, whenever it exists, must be complete."""
    deadline = time.monotonic() + timeout
    while not ready():
        for final, files in finals.items():
            # Checked right after exists(): a rename may happen in between, so re-test existence on a miss.
            if final.exists() and not _complete(final, files) and final.exists():
                proc.kill()
                pytest.fail(f"half-written artifact visible under its final path {final}")
        if proc.poll() is not None:
            pytest.fail(f"materialization ended (rc {proc.returncode}) before the kill point:\n"
                        f"{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kill point not reached in time")
        time.sleep(0.02)
    _kill_group(proc)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


def _error_text(result: dg.ExecuteInProcessResult) -> str:
    """The whole cause chain of the failed step's error (Dagster wraps the domain error)."""
    out = []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            while err is not None:
                out.append(err.message)
                err = err.cause
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ kill -9
@pytest.mark.slow
def test_kill_during_tokenization_and_training_then_rerun(tiny_resources, tmp_path: Path) -> None:
    tiny_resources(TINY)
    home, dh = tmp_path / "home", tmp_path / "dagster_home"
    dh.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dh / "dagster.yaml")
    s = get_settings(str(home), "demo")
    tok, model, work = tokenized_dir(s, EXP, HANDLE), model_dir(s, EXP, HANDLE), runs_dir(s) / "work" / "train"
    finals = {tok: TOKENIZED_FILES, model: MODEL_FILES}

    # 1. kill -9 while the handle's tokenized dataset is being written (its temporary sibling exists)
    log = tmp_path / "run1.log"
    proc = _start(home, dh, UP_TO_TRAINING, log)
    _kill_when(proc, lambda: any(tok.parent.glob(f".{HANDLE}.tmp-*")), finals, log)
    assert not tok.exists(), "tokenized dataset appeared under its final path although the writer was killed"
    leftovers = _temporaries(runs_dir(s))
    assert leftovers, "the killed writer's temporary directory should still be there"

    # 2. the rerun gets past tokenization (ignoring the stale temporary); kill -9 it once training saved state
    log = tmp_path / "run2.log"
    proc = _start(home, dh, UP_TO_TRAINING, log)
    state = work / f"{EXP}_{HANDLE}" / "run-0" / "state.pt"
    _kill_when(proc, state.exists, finals, log)
    assert _complete(tok, TOKENIZED_FILES)
    assert not model.exists(), "checkpoint appeared under its final path although training was killed"
    assert state.is_file()

    # 3. the second rerun completes, and training resumed from the saved state instead of step 0
    log = tmp_path / "run3.log"
    proc = _start(home, dh, UP_TO_TRAINING, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]


    summary = json.loads((model / "summary.json").read_text())
    assert summary["resumed_from_step"] >= TINY["train"]["checkpoint_every"]
    assert summary["steps"] == TINY["train"]["max_steps"]
    assert _complete(model, MODEL_FILES) and _complete(tok, TOKENIZED_FILES)
    assert not (work / f"{EXP}_{HANDLE}").exists(), "the finished run's work dir is removed"
    tl = pl.read_parquet(tok / "full" / "train" / "tokens_timelines.parquet")
    assert tl.height > 0

    # The next writer of a path removes what killed writers (dead pids on this host) left next to it: the
    # tokenized dataset's temporary of run 1 is gone, and the finished home holds no temporary at all.
    assert not any(p.exists() for p in leftovers if p.parent == tok.parent), "stale sibling was not swept"
    assert not _temporaries(runs_dir(s))


# ------------------------------------------------------------------------------------------ corrupted inputs
def _materialize(instance: dg.DagsterInstance, settings: IrbenchSettings, select: list[str],
                 partition: str | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs.assets) + list(defs.asset_checks), selection=select, partition_key=partition, instance=instance,
        resources={**defs.resources, "settings": settings}, raise_on_error=False,
    )


def _gz_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)


def _set_field(lines: list[str], line_no: int, col: str, value: str) -> list[str]:
    header = lines[0].rstrip("\n").split(",")
    row = lines[line_no - 1].rstrip("\n").split(",")  # synthetic labevents rows hold no quoted commas
    row[header.index(col)] = value
    lines[line_no - 1] = ",".join(row) + "\n"
    return lines


def _missing_column(p: Path) -> None:
    ls = _gz_lines(p)
    p.write_bytes(gzip.compress("".join([ls[0].replace("valuenum", "valuenum_x"), *ls[1:]]).encode()))


def _non_numeric(p: Path) -> None:
    p.write_bytes(gzip.compress("".join(_set_field(_gz_lines(p), 12, "valuenum", "4.1 mEq")).encode()))


def _truncated(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _empty(p: Path) -> None:
    p.write_bytes(gzip.compress(_gz_lines(p)[0].encode()))


# The unparseable-timestamp case is covered through Dagster in test_stage_minus1_dagster.py; the readers'
# exact messages (with line and value) are pinned in mimic/test_readers.py.
READER_CASES = [
    ("hosp/labevents.csv.gz", _missing_column, ["labevents.csv.gz", "valuenum"]),
    ("hosp/labevents.csv.gz", _non_numeric, ["labevents.csv.gz", "column 'valuenum'", "line 12", "4.1 mEq"]),
    ("hosp/labevents.csv.gz", _truncated, ["labevents.csv.gz", "truncated or corrupt gzip"]),
    ("icu/icustays.csv.gz", _empty, ["icustays.csv.gz", "empty table"]),
]


def test_corrupted_inputs_fail_the_asset_and_keep_the_previous_materialization(
    tiny_resources, tmp_path: Path
) -> None:
    tiny_resources(TINY)
    home = tmp_path / "home"
    settings = IrbenchSettings(home=str(home), profile="demo")
    s = settings.get()
    with dg.instance_for_test() as instance:
        assert _materialize(instance, settings, ["mimic_source", "meds_dataset"]).success
        assert _materialize(instance, settings, ["tokenizer_events"], EXP).success
        assert _materialize(instance, settings, ["tokenized"], f"{EXP}.{HANDLE}").success
        meds = meds_root(s)
        meds_before = {p: p.read_bytes() for p in sorted(meds.rglob("*.parquet"))}

        # (1) each MIMIC-IV reader case, given to the meds_dataset asset
        for rel, corrupt, expected in READER_CASES:
            src = home / "mimic" / rel
            good = src.read_bytes()
            corrupt(src)
            failed = _materialize(instance, settings, ["meds_dataset"])
            src.write_bytes(good)
            assert not failed.success, rel
            msg = _error_text(failed)
            for part in expected:
                assert part in msg, (corrupt.__name__, part, msg[-2000:])
            assert {p: p.read_bytes() for p in sorted(meds.rglob("*.parquet"))} == meds_before
            assert pl.read_parquet(meds / "metadata" / "codes.parquet").height > 0

        # (2) a MEDS shard whose numeric_value was written as strings, given to the tokenizer stage
        events = events_dir(s, EXP, "meds")
        events_before = {p: p.read_bytes() for p in sorted(events.rglob("*.parquet"))}
        shard = sorted((meds / "data" / "train").glob("*.parquet"))[-1]
        pl.read_parquet(shard).with_columns(pl.col("numeric_value").cast(pl.String)).write_parquet(shard)
        failed = _materialize(instance, settings, ["tokenizer_events"], EXP)
        shard.write_bytes(meds_before[shard])
        assert not failed.success
        msg = _error_text(failed)
        assert str(shard) in msg and "column 'numeric_value'" in msg, msg[-2000:]
        assert {p: p.read_bytes() for p in sorted(events.rglob("*.parquet"))} == events_before
        assert pl.read_parquet(events / "train" / "admissions.parquet").height > 0

        # (3) the vocabulary file deleted under the tokenized dataset, given to training
        tok = tokenized_dir(s, EXP, HANDLE)
        vocab = tok / "train" / "vocab.parquet"
        saved = vocab.read_bytes()
        vocab.unlink()
        failed = _materialize(instance, settings, ["checkpoint"], f"{EXP}.{HANDLE}")
        assert not failed.success
        msg = _error_text(failed)
        assert f"{vocab} does not exist" in msg, msg[-2000:]
        assert not model_dir(s, EXP, HANDLE).exists(), "no checkpoint may be written from a broken dataset"
        vocab.write_bytes(saved)
        assert pl.read_parquet(tok / "full" / "train" / "tokens_timelines.parquet").height > 0
        assert not _temporaries(runs_dir(s)), "failed writers must remove their temporaries"
