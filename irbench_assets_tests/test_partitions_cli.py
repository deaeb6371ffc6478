"""Experiment × handle partitions: only pairs in experiments.yaml exist; invalid pairs fail at once with
the valid handles listed; the CLI's per-experiment run goes through Dagster and skips what is fresh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from irbench_assets.cli import main
from irbench_assets.experiments import UnknownArmError, get_handle, load_experiments, parse_arm_key
from irbench_assets.partitions import arm_partitions, experiment_arm_keys, experiment_partitions
from irbench_assets.settings import REPO_ROOT, get_settings
from irbench_assets.storage import tokenized_dir


def test_partitions_are_exactly_the_yaml_pairs() -> None:
    exps = load_experiments()
    assert experiment_partitions.get_partition_keys() == ["exp1", "exp2", "exp3"]
    keys = arm_partitions.get_partition_keys()
    assert len(keys) == 28 == sum(len(e.handles) for e in exps.values())
    assert len([k for k in keys if k.startswith("exp1.")]) == 12
    assert len([k for k in keys if k.startswith("exp2.")]) == 12
    assert len([k for k in keys if k.startswith("exp3.")]) == 4
    # per-experiment key ranges are contiguous (a UI backfill is one range)
    exp_of = [k.split(".")[0] for k in keys]
    assert exp_of == sorted(exp_of)
    assert {e: x.baseline for e, x in exps.items()} == {"exp1": "deciles_unfused", "exp2": "discrete_tt", "exp3": "meds"}


def test_handle_settings_follow_the_study() -> None:
    h = parse_arm_key("exp1.trentiles_10_10_10_fused")
    assert (h.quantizer, h.anchoring, h.fused, h.n_bins, h.temporal) == ("trentiles", "10-10-10", True, 30, "tt")
    x = get_handle("exp2", "xval_affine_rope")
    assert (x.representation, x.numeric_encoding, x.temporal, x.fused) == ("xval_affine", "xval", "rope", False)
    m = get_handle("exp3", "randomized")
    assert (m.cohort, m.arm, m.temporal, m.tokenizer) == ("icu", "randomized", "rope", "mimic-meds-exp3-icu")


def test_invalid_pair_lists_the_valid_handles() -> None:
    with pytest.raises(UnknownArmError, match="'soft_tt' is not a handle of exp1; valid handles of exp1: "
                                               "deciles_unfused, deciles_fused, ventiles_unfused"):
        parse_arm_key("exp1.soft_tt")
    with pytest.raises(UnknownArmError, match="valid experiments: exp1, exp2, exp3"):
        experiment_arm_keys("exp4")


def test_cli_rejects_invalid_handle_before_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["materialize", "--experiment", "exp3", "--handle", "deciles_unfused", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "valid handles of exp3: meds, mapped, randomized, freqmatched" in err


def _dagster_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "irbench_assets.definitions",
           *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)


@pytest.mark.slow
def test_dagster_cli_single_partition_and_irbench_per_experiment_backfill(
    tiny_resources, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's commands: Dagster's own CLI for one partition, ``irbench materialize`` for one experiment."""
    tiny_resources({"synthetic": {"admissions": 200}, "tokenize": {"max_len": 256}})
    home, dh = tmp_path / "home", tmp_path / "dagster_home"
    dh.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dh / "dagster.yaml")
    env = {**os.environ, "IRBENCH_HOME": str(home), "DAGSTER_HOME": str(dh), "IRBENCH_PROFILE": "demo"}
    steps = [["--select", "mimic_source,meds_dataset,exp3_arms"],
             ["--select", "outcomes,tokenizer_events", "--partition", "exp3"],
             ["--select", "tokenized", "--partition", "exp3.mapped"]]
    for args in steps:
        proc = _dagster_cli(args, env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    s = get_settings(str(home), "demo")
    assert (tokenized_dir(s, "exp3", "mapped") / "tokenizer.json").is_file()
    assert not tokenized_dir(s, "exp3", "meds").exists(), "only the named partition is materialized"
    # a partition that is not in experiments.yaml is refused by Dagster before anything runs
    bad = _dagster_cli(["--select", "tokenized", "--partition", "exp3.soft_tt"], env)
    assert bad.returncode != 0 and "exp3.soft_tt" in bad.stderr + bad.stdout

    # the per-experiment backfill, restricted to the tokenizer so that it stays short: every Exp3 arm,
    # recorded in the same instance; exp3.mapped is fresh and skipped
    for k in ("IRBENCH_HOME", "DAGSTER_HOME", "IRBENCH_PROFILE"):
        monkeypatch.setenv(k, env[k])
    assert main(["materialize", "--experiment", "exp3", "--select", "tokenized", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "· tokenized [exp3.mapped] fresh" in out
    for handle in ("meds", "randomized", "freqmatched"):
        assert f"✓ tokenized [exp3.{handle}] ok" in out
        assert (tokenized_dir(s, "exp3", handle) / "tokenizer.json").is_file()
    with dg.DagsterInstance.from_config(str(dh)) as instance:
        recorded = instance.get_materialized_partitions(dg.AssetKey("tokenized"))
    assert recorded == {"exp3.meds", "exp3.mapped", "exp3.randomized", "exp3.freqmatched"}
