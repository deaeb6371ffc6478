"""Every metric kernel against scikit-learn / scipy / numpy on random and adversarial inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from irbench_assets.stats import metrics
from irbench_assets.stats.metrics import (
    BINARY_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    Weights,
    compute_metrics,
    evaluate_weights,
    metrics_for,
    validate_arrays,
)


def ece_reference(y: np.ndarray, p: np.ndarray) -> float:
    """15 equal-width bins on [0, 1] (numpy's histogram: half-open, last closed), share-weighted |gap|."""
    counts, _ = np.histogram(p, bins=15, range=(0.0, 1.0))
    sum_y, _ = np.histogram(p, bins=15, range=(0.0, 1.0), weights=y)
    sum_p, _ = np.histogram(p, bins=15, range=(0.0, 1.0), weights=p)
    full = counts > 0
    return float(
        np.sum(counts[full] / p.size * np.abs(sum_y[full] / counts[full] - sum_p[full] / counts[full]))
    )


def binary_reference(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The library values, NaN for AUROC / AP when only one class is present (our convention)."""
    two = np.unique(y).size == 2
    return {
        "roc_auc": roc_auc_score(y, p) if two else np.nan,
        "pr_auc": average_precision_score(y, p) if two else np.nan,
        "brier": brier_score_loss(y, p) if two else float(np.mean((p - y) ** 2)),
        "ece_15": ece_reference(y, p),
    }


def regression_reference(y: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """The library values, NaN where undefined (constant input for Spearman, constant y for R^2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = spearmanr(y, x).statistic if y.size > 1 else np.nan
    return {
        "spearman_rho": rho,
        "r2": r2_score(y, x) if np.unique(y).size > 1 else np.nan,
        "mae": mean_absolute_error(y, x),
        "rmse": root_mean_squared_error(y, x),
    }


def assert_close(got: dict[str, float], ref: dict[str, float], tol: float = 1e-12) -> None:
    for m, r in ref.items():
        g = got[m]
        if np.isnan(r):
            assert np.isnan(g), (m, g, r)
        else:
            assert abs(g - r) <= tol * max(1.0, abs(r)), (m, g, r)


def _binary_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    n = 257
    y = (rng.random(n) < 0.3).astype(float)
    cont = rng.random(n)
    return [
        ("continuous", y, cont),
        ("heavy ties", y, np.round(cont, 1)),
        (
            "ties across classes",
            np.array([0, 1, 0, 1, 1, 0, 0, 1.0]),
            np.array([0.2, 0.2, 0.5, 0.5, 0.9, 0.9, 0.1, 0.1]),
        ),
        ("constant predictions", y, np.full(n, 0.4)),
        ("exact bin edges", y[:16], np.linspace(0, 1, 16)),
        ("perfect", np.array([0, 0, 1, 1.0]), np.array([0.1, 0.2, 0.8, 0.9])),
        ("inverted", np.array([0, 0, 1, 1.0]), np.array([0.9, 0.8, 0.2, 0.1])),
        ("all positive", np.ones(9), rng.random(9)),
        ("all negative", np.zeros(9), rng.random(9)),
        ("n = 1", np.array([1.0]), np.array([0.7])),
        ("extremes 0 and 1", y[:20], np.where(y[:20] > 0, 1.0, 0.0)),
    ]


def test_binary_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(11)
    for name, y, p in _binary_cases(rng):
        got = compute_metrics(y, p, "classification")
        assert set(got) == set(BINARY_METRICS)
        try:
            assert_close(got, binary_reference(y, p))
        except AssertionError as e:
            raise AssertionError(f"case {name}: {e}") from e


def _regression_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    n = 301
    y = rng.gamma(2.0, 40.0, n)
    x = y + rng.normal(0, 30, n)
    return [
        ("continuous", y, x),
        ("ties in both", np.round(y, -1), np.round(x, -1)),
        ("constant predictions", y, np.full(n, 3.0)),
        ("constant target", np.full(n, 2.0), x),
        ("large offset", y + 1e6, x + 1e6),
        ("n = 2", y[:2], x[:2]),
        ("n = 1", y[:1], x[:1]),
        ("perfect ranks", y, 2 * y + 1),
    ]


def test_regression_metrics_match_sklearn_and_scipy() -> None:
    rng = np.random.default_rng(12)
    for name, y, x in _regression_cases(rng):
        got = compute_metrics(y, x, "regression")
        assert set(got) == set(REGRESSION_METRICS)
        try:
            assert_close(got, regression_reference(y, x), tol=1e-10)
        except AssertionError as e:
            raise AssertionError(f"case {name}: {e}") from e


def test_weighted_kernels_equal_metrics_of_the_expanded_sample() -> None:
    """A column of weights w means item i appears w_i times: compare with the repeated arrays."""
    rng = np.random.default_rng(13)
    n = 120
    y = (rng.random(n) < 0.4).astype(float)
    p = np.round(rng.random(n), 2)
    yr = np.round(rng.normal(size=n), 1)
    xr = np.round(yr + rng.normal(size=n), 1)
    cols = rng.integers(0, 4, size=(6, n)).astype(np.int32)
    cols[0] = 0
    cols[0, :2] = 5  # a column with only two distinct items
    w = Weights(cols)
    got_b = evaluate_weights(y, {"h": p}, "classification", BINARY_METRICS, w)["h"]
    got_r = evaluate_weights(yr, {"h": xr}, "regression", REGRESSION_METRICS, w)["h"]
    for j in range(cols.shape[0]):
        idx = np.repeat(np.arange(n), cols[j])
        assert_close({m: got_b[m][j] for m in BINARY_METRICS}, binary_reference(y[idx], p[idx]))
        assert_close(
            {m: got_r[m][j] for m in REGRESSION_METRICS}, regression_reference(yr[idx], xr[idx]), 1e-10
        )


@pytest.mark.parametrize("big", [(60_000, 50_000), (100_000, 70_000)])
@pytest.mark.parametrize("x_ties", [False, True])
def test_huge_weights_take_the_wide_paths(big: tuple[int, int], x_ties: bool) -> None:
    """Totals >= 2^16 pack 2 lanes of 32 bits instead of 4 of 16; past 4 N^3 >= 2^53 (N >= 131k) the
    Spearman sums switch from float64 to int64. Every path stays exact against the expanded sample."""
    rng = np.random.default_rng(14)
    n = 12
    y = rng.normal(size=n)
    x = y + rng.normal(size=n)
    if x_ties:
        x = np.round(x, 0)
    yb = (rng.random(n) < 0.5).astype(float)
    yb[:2] = [0.0, 1.0]
    pb = np.round(rng.random(n), 1)
    cols = np.ones((5, n), dtype=np.int32)  # 5 columns: the second word holds one lane
    cols[0, 3], cols[0, 7] = big
    cols[2, 0], cols[2, 1] = big
    cols[4, 5] = big[0]
    w = Weights(cols)
    assert int(w.total.max()) >= 2**16 and w.lanes.n_lanes == 2
    got_r = evaluate_weights(y, {"h": x}, "regression", REGRESSION_METRICS, w)["h"]
    got_b = evaluate_weights(yb, {"h": pb}, "classification", BINARY_METRICS, w)["h"]
    for j in range(cols.shape[0]):
        idx = np.repeat(np.arange(n), cols[j])
        assert_close({m: got_r[m][j] for m in REGRESSION_METRICS}, regression_reference(y[idx], x[idx]), 1e-9)
        assert_close({m: got_b[m][j] for m in BINARY_METRICS}, binary_reference(yb[idx], pb[idx]), 1e-9)


def test_metric_names_and_orientation() -> None:
    assert metrics_for("classification") == ("roc_auc", "pr_auc", "brier", "ece_15")
    assert metrics_for("regression") == ("spearman_rho", "r2", "mae", "rmse")
    assert [HIGHER_IS_BETTER[m] for m in BINARY_METRICS] == [True, True, False, False]
    assert [HIGHER_IS_BETTER[m] for m in REGRESSION_METRICS] == [True, True, False, False]
    with pytest.raises(ValueError, match="task_type"):
        metrics_for("survival")
    with pytest.raises(ValueError, match="not classification metrics"):
        compute_metrics([0, 1], [0.2, 0.8], "classification", ["rmse"])


@pytest.mark.parametrize(
    ("y", "p", "task", "match"),
    [
        ([], [], "classification", "no rows"),
        ([0, 1], [0.5], "classification", "2 rows but y_pred has 1"),
        (
            [0, 1, 1],
            [0.1, np.nan, 0.3],
            "classification",
            r"y_pred is not finite \(nan\) at row 1 \(hadm_id=11\)",
        ),
        (
            [0, 1, 1],
            [0.1, 1.2, 0.3],
            "classification",
            r"probability in \[0, 1\], got 1.2 at row 1 \(hadm_id=11\)",
        ),
        ([0, 2, 1], [0.1, 0.2, 0.3], "classification", "y_true must be 0/1, got 2.0 at row 1"),
        ([1.0, np.inf, 2.0], [0.1, 0.2, 0.3], "regression", "y_true is not finite"),
    ],
)
def test_bad_input_is_rejected_with_the_offending_row(y: list, p: list, task: str, match: str) -> None:
    ids = np.array([10, 11, 12])[: len(y)] if len(y) else None
    with pytest.raises(ValueError, match=match) as err:
        validate_arrays(np.array(y), np.array(p), task, outcome="imv_event", handle="deciles_fused", ids=ids)
    assert "imv_event" in str(err.value) and "deciles_fused" in str(err.value)


@pytest.mark.parametrize("ties", ["none", "x", "y", "both"])
def test_spearman_blocks_and_tie_heavy_resamples_match_scipy(
    ties: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bootstrap-like columns, plus columns with counts above the 16-bit cube fast path (w > 40) and
    above the halving bound (w > 15), through the blocked cross sum (block of 7 items: the x-prefix
    carry crosses every block) against scipy on the expanded sample."""
    monkeypatch.setattr(metrics, "SPEARMAN_BLOCK", 7)
    rng = np.random.default_rng(15)
    n = 61  # not a multiple of the lane-sum padding
    y = rng.gamma(2.0, 30.0, n)
    x = y + rng.normal(0, 25, n)
    if ties in ("y", "both"):
        y = np.round(y, -1)
    if ties in ("x", "both"):
        x = np.round(x, -1)
    cols = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(9)]).astype(np.int32)
    cols[6, 3] = 16  # past the halving bound
    cols[7, :5] = [41, 0, 2, 0, 7]  # past the 16-bit cube
    cols[8] = 0
    cols[8, [4, 9]] = [3, 2]  # two items only
    w = Weights(cols)
    got = evaluate_weights(y, {"h": x}, "regression", ["spearman_rho"], w)["h"]["spearman_rho"]
    for j in range(cols.shape[0]):
        idx = np.repeat(np.arange(n), cols[j])
        assert_close(
            {"spearman_rho": got[j]},
            {"spearman_rho": regression_reference(y[idx], x[idx])["spearman_rho"]},
            1e-10,
        )


def test_cube_sums_are_exact_for_every_count_range() -> None:
    """sum_i w_i^3 per column: the 16-bit in-lane path (with and without halving), the wide path for
    large counts and 32-bit lanes, and item counts that need zero padding."""
    rng = np.random.default_rng(16)
    for n, top in [(1, 1), (61, 3), (130, 15), (130, 16), (77, 40), (77, 41), (50, 300), (2, 70_000)]:
        cols = rng.integers(0, top + 1, size=(6, n)).astype(np.int32)
        cols[0] = 0
        cols[1, 0] = top
        w = Weights(cols)
        ref = (cols.astype(np.int64) ** 3).sum(axis=1)
        assert np.array_equal(w.cube_sums, ref.astype(np.float64)), (n, top)


def test_binary_rank_bins_with_cross_class_ties_match_sklearn() -> None:
    """Negatives tied with positive scores, above every positive and below every positive, under
    bootstrap-like weights: the bin sums give sklearn's AUROC and AP."""
    rng = np.random.default_rng(17)
    n = 150
    y = (rng.random(n) < 0.3).astype(float)
    p = np.round(rng.random(n), 1)  # many ties within and across classes
    p[y == 1] = np.maximum(p[y == 1], 0.1)
    p[(y == 0) & (p < 0.2)] = 0.0  # negatives below every positive
    neg = np.flatnonzero(y == 0)
    p[neg[:4]] = 1.0  # negatives above (or tied with) the top positive score
    cols = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(11)]).astype(np.int32)
    w = Weights(cols)
    got = evaluate_weights(y, {"h": p}, "classification", ["roc_auc", "pr_auc"], w)["h"]
    for j in range(cols.shape[0]):
        idx = np.repeat(np.arange(n), cols[j])
        ref = binary_reference(y[idx], p[idx])
        assert_close(
            {m: got[m][j] for m in ("roc_auc", "pr_auc")}, {m: ref[m] for m in ("roc_auc", "pr_auc")}
        )
