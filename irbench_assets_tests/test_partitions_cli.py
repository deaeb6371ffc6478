"""Experiment × handle partitions: only pairs in experiments.yaml exist; invalid pairs fail at once with
the valid handles listed; the CLI's per-experiment run goes through Dagster and skips what is fresh."""

from __future__ import annotations

import pytest

from irbench_assets.cli import main
from irbench_assets.experiments import UnknownArmError, get_handle, load_experiments, parse_arm_key
from irbench_assets.partitions import arm_partitions, experiment_arm_keys, experiment_partitions


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
