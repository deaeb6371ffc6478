"""Benjamini–Hochberg: scipy's step-up within each (family, metric), NaN p-values left out."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import false_discovery_control

from irbench_assets.stats.multitest import adjust_within, bh_adjust


def test_bh_matches_scipy_and_leaves_nan_out_of_the_family() -> None:
    rng = np.random.default_rng(31)
    p = np.concatenate([rng.uniform(0, 0.01, 5), rng.uniform(0, 1, 40), [1.0, 1.0, 0.0]])
    assert np.allclose(bh_adjust(p), false_discovery_control(p, method="bh"), rtol=0, atol=1e-15)
    with_nan = np.insert(p, [3, 10], np.nan)
    got = bh_adjust(with_nan)
    assert np.isnan(got[[3, 11]]).all()
    assert np.allclose(np.delete(got, [3, 11]), false_discovery_control(p, method="bh"), rtol=0, atol=1e-15)
    assert np.isnan(bh_adjust([np.nan, np.nan])).all()
    # a hand-checked case: sorted p = .01 .02 .03 .5 -> m p / rank = .04 .04 .04 .5
    assert np.allclose(bh_adjust([0.03, 0.5, 0.01, 0.02]), [0.04, 0.5, 0.04, 0.04])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bh_adjust([0.2, 1.5])


def test_adjustment_runs_within_each_family_and_metric_pooling_outcomes() -> None:
    rng = np.random.default_rng(32)
    rows = []
    for fam in ("exp1_primary_binary", "exp1_additional_binary"):
        for metric in ("roc_auc", "brier"):
            for outcome in ("a", "b", "c"):
                for pair in range(4):
                    rows.append((fam, metric, outcome, pair, float(rng.uniform(0, 0.2))))
    df = pl.DataFrame(rows, schema=["family_name", "metric", "outcome", "pair", "p_raw"], orient="row")
    df = df.sample(fraction=1.0, shuffle=True, seed=3)
    out = adjust_within(df)
    assert out.drop("p_adj").equals(df)  # rows and order kept
    for (_fam, _metric), part in out.group_by(["family_name", "metric"]):
        assert part.height == 12
        expected = false_discovery_control(part["p_raw"].to_numpy(), method="bh")
        assert np.allclose(part["p_adj"].to_numpy(), expected, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="missing"):
        adjust_within(df.drop("metric"))
