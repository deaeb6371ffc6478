"""Determinism: two runs from scratch of the tiny Exp3 pipeline through Dagster (two IRBENCH_HOMEs, two
instances) give byte-identical MEDS, Exp3 arm, outcome and tokenized Parquet files; the long variant runs on
through training and extraction (every payload in its own process) and also requires identical model
weights, features, predictions and statistics tables."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dagster as dg
import pytest

from irbench_assets.compute.orchestrate import materialize_all
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.definitions import defs
from irbench_assets.settings import get_settings
from irbench_assets.storage import runs_dir, statistics_dir

TINY = {
    "synthetic": {"admissions": 200},
    "meds": {"subjects_per_shard": 60},
    "tokenize": {"max_len": 256},
    "model": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 1},
    "train": {"max_steps": 10, "block_size": 64, "batch_size": 4, "lr_sweep": [3.0e-3], "lr": 3.0e-3,
              "checkpoint_every": 5, "log_every": 5},
    "stats": {"n_boot": 100, "n_perm": 100},
}
# Run-specific by nature: wall-clock timings and the absolute paths of the home they were written in.
NOT_COMPARED = {"summary.json", "config.json", "train_log.csv", "loss_curve.png", "sweep.csv"}


def _digests(root: Path, home: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every matching file below ``root`` (relative path → digest), with the run's home path
    replaced by a placeholder so that files recording where they were written still compare."""
    out = {}
    for pattern in patterns:
        for p in sorted(root.rglob(pattern)):
            if p.is_file() and p.name not in NOT_COMPARED and "/work/" not in str(p):
                data = p.read_bytes().replace(str(home).encode(), b"<HOME>")
                out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


DATA = {"mimic_source", "meds_dataset", "exp3_arms", "outcomes", "tokenizer_events", "tokenized"}
UP_TO_STATS = DATA | {"checkpoint", "features", "predictions", "handle_metrics", "family_statistics"}
DATA_FILES = [("meds", ("*.parquet", "*.json")), ("exp3", ("*.parquet", "*.json")), ("outcomes", ("*.parquet",)),
              ("tokenized", ("*.parquet", "*.json"))]


def _run(home: Path, assets: set[str], jobs: int = 1) -> None:
    resources = {"settings": IrbenchSettings(home=str(home), profile="demo")}
    selection = [k for k in defs.resolve_asset_graph().materializable_asset_keys if k.to_user_string() in assets]
    with dg.instance_for_test() as instance:
        steps = materialize_all(defs, instance, experiments={"exp3"}, resources=resources, log_level="WARNING",
                                selection=selection, jobs=jobs, torch_threads=1)
    assert steps and {st["status"] for st in steps} == {"ok"}


def _compare(homes: list[Path], subs: list[tuple[str, tuple[str, ...]]], min_files: int = 1) -> dict[str, str]:
    """Assert that the files under ``runs/<sub>`` of both homes are identical; return the first's digests."""
    first: dict[str, str] = {}
    for sub, patterns in subs:
        da, db = (_digests(runs_dir(get_settings(str(h), "demo")) / sub, h, patterns) for h in homes)
        assert len(da) >= min_files, f"too few files under {sub}"
        assert da == db, f"{sub}: differs in {sorted(k for k in da.keys() | db.keys() if da.get(k) != db.get(k))}"
        first.update({f"{sub}/{k}": v for k, v in da.items()})
    return first


def test_two_runs_from_scratch_give_identical_data_and_tokens(tiny_resources, tmp_path: Path) -> None:
    tiny_resources(TINY)
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        _run(home, DATA)
    files = _compare(homes, DATA_FILES)
    # the four Exp3 arms' timelines (full and first 24 h, three splits each) are among the compared files
    assert sum(k.endswith("tokens_timelines.parquet") for k in files) == 4 * 2 * 3


# 16 payload processes (4 trainings + 4 extractions per run; the second run two partitions at a time): ~2.5 min on an idle 2-core machine, ~5 min
# on a loaded one — beyond the suite's per-test budget, so it runs only where IRBENCH_LONG_TESTS=1 (CI).
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("IRBENCH_LONG_TESTS"), reason="long (~2.5 min): set IRBENCH_LONG_TESTS=1")
def test_two_runs_from_scratch_give_identical_models_and_statistics(tiny_resources, tmp_path: Path) -> None:
    tiny_resources(TINY)
    homes = [tmp_path / "a", tmp_path / "b"]
    # one run partition by partition, the other two partitions at a time in worker processes (as `make demo`)
    for home, jobs in zip(homes, (1, 2), strict=True):
        _run(home, UP_TO_STATS, jobs)
    a, b = (get_settings(str(h), "demo") for h in homes)
    _compare(homes, DATA_FILES)
    # Training and extraction on CPU in separate processes: bitwise the same weights, features, predictions.
    _compare(homes, [("models", ("*.safetensors",)), ("features", ("*.parquet",)), ("predictions", ("*.parquet",))],
             min_files=4)
    sa = _digests(statistics_dir(a), homes[0], ("*.csv", "*.parquet", "*.json"))
    sb = _digests(statistics_dir(b), homes[1], ("*.csv", "*.parquet", "*.json"))
    assert any(k.endswith("all_family_metrics.csv") for k in sa)
    assert sa == sb, f"statistics differ in {sorted(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k))}"
