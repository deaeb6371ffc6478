"""Vectorized bootstrap / permutation against per-resample library loops, scipy's bootstrap, calibration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import bootstrap, spearmanr
from sklearn.metrics import roc_auc_score
from test_stats_metrics import binary_reference, regression_reference

from irbench_assets.stats.metrics import BINARY_METRICS, REGRESSION_METRICS
from irbench_assets.stats.resample import (
    ResamplePlan,
    bootstrap_distributions,
    evaluate_family,
    evaluate_handle,
    percentile_ci,
    permutation_distribution,
    permutation_pvalue,
    stream_entropy,
)

B = 40


def _binary_data(rng: np.random.Generator, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.25).astype(float)
    p0 = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    p1 = np.clip(0.5 * y + 0.5 * rng.random(n), 0, 1)
    if ties:
        p0, p1 = np.round(p0, 1), np.round(p1, 1)
    return y, p0, p1


def _regression_data(
    rng: np.random.Generator, n: int, ties: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.gamma(2.0, 30.0, n)
    x0 = y + rng.normal(0, 40, n)
    x1 = y + rng.normal(0, 20, n)
    if ties:
        y, x0, x1 = np.round(y, -1), np.round(x0, -1), np.round(x1, -1)
    return y, x0, x1


def _reference(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return binary_reference(y, p) if task == "classification" else regression_reference(y, p)


def _assert_same(got: float, ref: float, tol: float = 1e-9) -> None:
    assert (np.isnan(got) and np.isnan(ref)) or abs(got - ref) <= tol * max(1.0, abs(ref)), (got, ref)


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("ties", [False, True])
def test_vectorized_resamples_equal_a_library_loop_on_the_same_indices(task: str, ties: bool) -> None:
    rng = np.random.default_rng(21)
    n = 90  # small: some bootstrap resamples are single-class for the 25 % outcome
    data = _binary_data(rng, n, ties) if task == "classification" else _regression_data(rng, n, ties)
    y, p0, p1 = data
    plan = ResamplePlan.for_ids(np.arange(n), "outcome_x", n_resamples=B, n_permutations=B)
    names = BINARY_METRICS if task == "classification" else REGRESSION_METRICS
    boot = bootstrap_distributions(y, {"a": p0, "b": p1}, task, plan, chunk_size=7)
    observed, perm = permutation_distribution(y, p0, p1, task, plan, chunk_size=7)
    for m in names:
        ref0, ref1 = _reference(task, y, p0)[m], _reference(task, y, p1)[m]
        _assert_same(observed[m][0], ref0)
        _assert_same(observed[m][1], ref1)
    for b in range(B):
        idx = plan.bootstrap_indices(b)
        ref_b = _reference(task, y[idx], p1[idx])
        swap = plan.swap_mask(b)
        ref_q0 = _reference(task, y, np.where(swap, p1, p0))
        ref_q1 = _reference(task, y, np.where(swap, p0, p1))
        for m in names:
            _assert_same(boot["b"][m][b], ref_b[m])
            _assert_same(perm[m][b], ref_q1[m] - ref_q0[m])


def test_degenerate_samples_n1_and_single_class() -> None:
    """n = 1: every resample is the one admission; AUROC/AP and Spearman/R^2 are NaN with 0 finite."""
    res = evaluate_family(
        [7], [1.0], {"a": [0.3], "b": [0.6]}, "classification", key="o", n_resamples=25, n_permutations=25
    )
    by = {(r.handle, r.metric): r for r in res.handles}
    assert np.isnan(by[("a", "roc_auc")].point) and by[("a", "roc_auc")].n_finite == 0
    assert np.isnan(by[("a", "roc_auc")].ci_lo)
    assert by[("a", "brier")].point == pytest.approx(0.49)
    assert by[("a", "brier")].ci_lo == by[("a", "brier")].ci_hi == pytest.approx(0.49)
    pairs = {p.metric: p for p in res.pairs}
    assert np.isnan(pairs["roc_auc"].p_raw) and pairs["roc_auc"].n_perm_finite == 0
    reg = evaluate_family(
        [7], [3.0], {"a": [1.0], "b": [2.0]}, "regression", key="o", n_resamples=10, n_permutations=10
    )
    rb = {(r.handle, r.metric): r for r in reg.handles}
    assert np.isnan(rb[("a", "spearman_rho")].point) and np.isnan(rb[("a", "r2")].point)
    assert rb[("a", "mae")].point == 2.0


def test_single_class_resamples_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(22)
    n = 12
    y = np.zeros(n)
    y[0] = 1.0  # one positive: ~ (11/12)^12 = 35 % of resamples lack it
    res = evaluate_family(
        np.arange(n),
        y,
        {"a": rng.random(n)},
        "classification",
        key="rare",
        n_resamples=400,
        keep_distributions=True,
    )
    auc = next(r for r in res.handles if r.metric == "roc_auc")
    dist = res.bootstrap["a"]["roc_auc"]
    assert auc.n_finite == int(np.isfinite(dist).sum())
    assert 200 < auc.n_finite < 330
    lo, hi, nf = percentile_ci(dist)
    assert (lo, hi, nf) == (auc.ci_lo, auc.ci_hi, auc.n_finite)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_percentile_ci_agrees_with_scipy_bootstrap(task: str) -> None:
    rng = np.random.default_rng(23)
    n = 300
    if task == "classification":
        y = (rng.random(n) < 0.5).astype(float)
        p = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)

        def stat(a: np.ndarray, b: np.ndarray) -> float:
            return roc_auc_score(a, b)

        metric = "roc_auc"
    else:
        y = rng.normal(size=n)
        p = y + rng.normal(size=n)

        def stat(a: np.ndarray, b: np.ndarray) -> float:
            return spearmanr(a, b).statistic

        metric = "spearman_rho"
    res = evaluate_family(
        np.arange(n), y, {"h": p}, task, key="ci", n_resamples=2000, keep_distributions=True
    )
    ours = next(r for r in res.handles if r.metric == metric)
    ref = bootstrap(
        (y, p),
        stat,
        paired=True,
        vectorized=False,
        n_resamples=2000,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(5),
    )
    se = float(np.std(res.bootstrap["h"][metric]))
    # Monte-Carlo error of a 2.5 % / 97.5 % quantile from 2000 draws is ~0.06 se per run.
    assert abs(ours.ci_lo - ref.confidence_interval.low) < 0.3 * se
    assert abs(ours.ci_hi - ref.confidence_interval.high) < 0.3 * se
    assert ours.ci_lo < ours.point < ours.ci_hi


def test_permutation_test_is_calibrated_under_the_null_and_detects_a_planted_effect() -> None:
    """Exchangeable handles: rejection rate at 0.05 within [0.03, 0.07]; a real difference: p small."""
    rng = np.random.default_rng(24)
    n, n_sets, n_perm = 40, 500, 199
    ids = np.arange(n)
    rejections = 0
    for k in range(n_sets):
        y = (rng.random(n) < 0.5).astype(float)
        signal = 0.8 * y
        p0 = 1 / (1 + np.exp(-(signal + rng.normal(size=n))))
        p1 = 1 / (1 + np.exp(-(signal + rng.normal(size=n))))
        plan = ResamplePlan.for_ids(ids, f"null{k}", n_resamples=0, n_permutations=n_perm)
        obs, deltas = permutation_distribution(
            y, p0, p1, "classification", plan, ["roc_auc"], chunk_size=n_perm
        )
        d = obs["roc_auc"][1] - obs["roc_auc"][0]
        p, _ = permutation_pvalue(d, deltas["roc_auc"])
        rejections += p <= 0.05
    rate = rejections / n_sets
    assert 0.03 <= rate <= 0.07, rate

    n = 200
    y = (rng.random(n) < 0.5).astype(float)
    weak = 1 / (1 + np.exp(-(0.3 * y + rng.normal(size=n))))
    strong = 1 / (1 + np.exp(-(2.0 * y + rng.normal(size=n))))
    res = evaluate_family(
        np.arange(n),
        y,
        {"weak": weak, "strong": strong},
        "classification",
        key="effect",
        n_resamples=200,
        n_permutations=999,
    )
    auc = next(p for p in res.pairs if p.metric == "roc_auc")
    assert auc.delta_raw > 0.2 and auc.p_raw == pytest.approx(1 / 1000)
    assert auc.delta_ci_lo_raw > 0
    brier = next(p for p in res.pairs if p.metric == "brier")
    assert brier.delta_raw < 0 < brier.delta_better


def test_pvalue_tie_convention_and_identical_handles() -> None:
    assert permutation_pvalue(0.0, np.zeros(99)) == (1.0, 99)
    assert permutation_pvalue(0.5, np.array([0.5, -0.5, 0.1, np.nan])) == (3 / 4, 3)
    assert permutation_pvalue(0.5, np.array([0.5 - 1e-13, 0.1])) == (2 / 3, 2)  # rounding-level tie
    assert np.isnan(permutation_pvalue(np.nan, np.ones(5))[0])
    rng = np.random.default_rng(25)
    n = 50
    y = rng.normal(size=n)
    x = y + rng.normal(size=n)
    res = evaluate_family(
        np.arange(n), y, {"a": x, "b": x.copy()}, "regression", key="same", n_resamples=50, n_permutations=50
    )
    for p in res.pairs:
        assert p.delta_raw == 0.0 and p.p_raw == 1.0 and p.delta_ci_lo_raw == p.delta_ci_hi_raw == 0.0


def test_streams_depend_only_on_seed_key_and_id_set() -> None:
    ids = np.array([5, 9, 12, 40])
    plan = ResamplePlan.for_ids(ids, "imv_event", n_resamples=8, n_permutations=8)
    w = plan.bootstrap_weights(0, 8)
    for b in range(8):
        assert np.array_equal(w.cols[b], np.bincount(plan.bootstrap_indices(b), minlength=4))
    chunked = np.concatenate([plan.bootstrap_weights(0, 3).cols, plan.bootstrap_weights(3, 8).cols])
    assert np.array_equal(chunked, w.cols)
    assert stream_entropy(ids, "imv_event") == plan.entropy
    assert stream_entropy(ids, "icu_admission") != plan.entropy
    assert stream_entropy(ids[:3], "imv_event") != plan.entropy
    assert stream_entropy(ids, "imv_event", seed=43) != plan.entropy
    sw = plan.swap_weights(0, 8).cols
    assert np.array_equal(sw[:, :4] + sw[:, 4:], np.ones((8, 4)))
    with pytest.raises(ValueError, match="sorted and unique"):
        ResamplePlan.for_ids([3, 1, 2], "o")


def test_results_are_deterministic_and_independent_of_order_and_chunking() -> None:
    rng = np.random.default_rng(26)
    n = 150
    y, p0, p1 = _binary_data(rng, n, ties=False)
    ids = rng.permutation(np.arange(1000, 1000 + n))
    kw = {"key": "det", "n_resamples": 64, "n_permutations": 64}
    r1 = evaluate_family(ids, y, {"a": p0, "b": p1}, "classification", chunk_size=64, **kw)
    r2 = evaluate_family(ids, y, {"a": p0, "b": p1}, "classification", chunk_size=5, **kw)
    perm = rng.permutation(n)
    r3 = evaluate_family(
        ids[perm], y[perm], {"a": p0[perm], "b": p1[perm]}, "classification", chunk_size=17, **kw
    )
    assert r1.handles == r2.handles == r3.handles
    assert r1.pairs == r2.pairs == r3.pairs
    alone = evaluate_handle(ids, y, p1, "classification", handle="b", key="det", n_resamples=64)
    assert alone == [h for h in r1.handles if h.handle == "b"]


def test_family_api_rejects_misaligned_and_bad_input() -> None:
    ids = np.array([1, 2, 3, 4])
    y = np.array([0, 1, 0, 1.0])
    with pytest.raises(ValueError, match="handle 'b': 3 predictions for 4 ids"):
        evaluate_family(ids, y, {"a": [0.1, 0.2, 0.3, 0.4], "b": [0.1, 0.2, 0.3]}, "classification", key="o")
    with pytest.raises(ValueError, match="duplicate id 2"):
        evaluate_family([1, 2, 2, 4], y, {"a": [0.1, 0.2, 0.3, 0.4]}, "classification", key="o")
    with pytest.raises(ValueError, match=r"handle 'a'.*not finite \(nan\) at row 2 \(hadm_id=3\)"):
        evaluate_family(ids, y, {"a": [0.1, 0.2, np.nan, 0.4]}, "classification", key="o")
    with pytest.raises(ValueError, match="unknown handle 'c'"):
        evaluate_family(ids, y, {"a": [0.1, 0.2, 0.3, 0.4]}, "classification", key="o", pairs=[("a", "c")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent library warnings on constant input either
        evaluate_family(ids, y, {"a": np.full(4, 0.5)}, "classification", key="o", n_resamples=5)


def test_large_outcomes_take_the_wide_swap_paths() -> None:
    """n >= 2^16 packs the swap bits two to a 64-bit word; n >= 104k (8 n^3 >= 2^53) moves the swap
    Spearman sums from float64 to int64. Both stay equal to the library loop."""
    rng = np.random.default_rng(27)
    n = 105_000
    yb, p0, p1 = _binary_data(rng, n, ties=False)
    yr, x0, x1 = _regression_data(rng, n, ties=False)
    plan = ResamplePlan.for_ids(np.arange(n), "wide", n_resamples=0, n_permutations=3)
    for task, y, a, b, names in (
        ("classification", yb, p0, p1, ("roc_auc", "pr_auc")),
        ("regression", yr, x0, x1, ("spearman_rho",)),
    ):
        observed, perm = permutation_distribution(y, a, b, task, plan, names, chunk_size=3)
        for m in names:
            _assert_same(observed[m][0], _reference(task, y, a)[m])
        for k in range(3):
            swap = plan.swap_mask(k)
            q0 = _reference(task, y, np.where(swap, b, a))
            q1 = _reference(task, y, np.where(swap, a, b))
            for m in names:
                _assert_same(perm[m][k], q1[m] - q0[m])
