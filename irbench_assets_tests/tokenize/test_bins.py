"""Value bins: quantile edges against numpy, digitize semantics, clinical anchoring, time buckets."""

from __future__ import annotations

import numpy as np
import pytest

from irbench_assets.tokenize.bins import (
    digitize,
    fit_edges,
    inner_qs,
    ragged_from_codes,
    segment_quantiles,
)
from irbench_assets.tokenize.vocab import TIME_TOKENS, time_bucket

QUANTIZERS = {"deciles": 10, "ventiles": 20, "trentiles": 30, "centiles": 100}


def _data(seed: int = 0, n: int = 4000, n_codes: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Values with ties (rounded), negatives, NaNs and one constant code (code 3)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_codes, n)
    vals = np.round(rng.lognormal(1, 1, n) * np.where(rng.random(n) < 0.2, -1, 1), 1).astype(np.float32)
    vals[codes == 3] = 7.0
    vals[rng.random(n) < 0.05] = np.nan
    return codes, vals


def _ragged(codes: np.ndarray, vals: np.ndarray, n_codes: int):
    fin = np.isfinite(vals)
    return ragged_from_codes(codes[fin], vals[fin], n_codes)


def test_segment_quantiles_equal_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    segs = [np.sort(np.round(rng.normal(size=k), 1)) for k in (1, 2, 3, 10, 57, 1000)] + [np.zeros(0)]
    flat = np.concatenate(segs)
    lengths = np.array([len(s) for s in segs])
    starts = np.cumsum(lengths) - lengths
    qs = np.concatenate([inner_qs(100), [0.0, 1.0, 0.25]])
    got = segment_quantiles(flat, starts, lengths, qs)
    for i, s in enumerate(segs):
        if len(s):
            np.testing.assert_array_equal(got[i], np.quantile(s, qs))
        else:
            assert np.isnan(got[i]).all()


@pytest.mark.parametrize("quantizer", list(QUANTIZERS))
def test_quantile_edges_and_digitize_match_numpy(quantizer: str) -> None:
    codes, vals = _data()
    es = fit_edges(_ragged(codes, vals, 15), quantizer)
    n = QUANTIZERS[quantizer]
    assert es.n_bins == n
    for c in range(12):
        x = vals[codes == c].astype(np.float64)
        np.testing.assert_array_equal(es.edges.row(c), np.nanquantile(x, np.arange(1, n) / n))
    assert all(es.edges.lengths[12:] == 0), "codes without values get no edges"
    fin = np.isfinite(vals)
    b = digitize(codes[fin], vals[fin], es.edges)
    for c in range(12):
        m = codes[fin] == c
        np.testing.assert_array_equal(b[m], np.digitize(vals[fin][m].astype(np.float64), es.edges.row(c)))
    assert b.min() >= 0 and b.max() <= n - 1


def test_digitize_edge_values_go_up_and_out_of_range_is_clamped() -> None:
    train = np.arange(11, dtype=np.float32)  # deciles of 0..10 are exactly 1..9
    es = fit_edges(ragged_from_codes(np.zeros(11, np.int64), train, 1), "deciles")
    np.testing.assert_array_equal(es.edges.row(0), np.arange(1.0, 10.0))
    x = np.array([-1e6, 0.0, 0.999, 1.0, 4.5, 5.0, 8.999, 9.0, 10.0, 1e9, -0.0], np.float32)
    got = digitize(np.zeros(len(x), np.int64), x, es.edges)
    assert got.tolist() == [0, 0, 0, 1, 4, 5, 8, 9, 9, 9, 0]


def test_constant_code_lands_in_top_bin_and_reachable_bins_count_distinct_edges() -> None:
    es = fit_edges(ragged_from_codes(np.zeros(5, np.int64), np.full(5, 3.0, np.float32), 1), "deciles")
    assert es.edges.row(0).tolist() == [3.0] * 9  # plain quantiles keep duplicate edges
    assert es.n_bin_slots.tolist() == [10]
    assert es.n_reachable.tolist() == [2]
    assert digitize(np.zeros(3, np.int64), np.array([3.0, 2.0, 4.0], np.float32), es.edges).tolist() == [9, 0, 9]


def _anchored_reference(x: np.ndarray, lo: float, hi: float, split: tuple[int, int, int]) -> np.ndarray:
    parts = [np.array([lo, hi])]
    for sub, m in ((x[x < lo], split[0]), (x[(x >= lo) & (x < hi)], split[1]), (x[x >= hi], split[2])):
        if len(sub):
            parts.append(np.quantile(sub, np.arange(1, m) / m))
    return np.unique(np.concatenate(parts))


@pytest.mark.parametrize(("quantizer", "anchoring", "split"),
                         [("ventiles", "5-10-5", (5, 10, 5)), ("trentiles", "10-10-10", (10, 10, 10))])
def test_anchored_edges_match_reference_and_fall_back_without_ref_range(
    quantizer: str, anchoring: str, split: tuple[int, int, int]
) -> None:
    codes, vals = _data(seed=2)
    n_codes = 12
    lo = np.full(n_codes, np.nan)
    hi = np.full(n_codes, np.nan)
    lo[:8], hi[:8] = 1.0, 5.0
    lo[6], hi[6] = 9.0, 2.0  # inverted: unusable
    lo[7], hi[7] = 2.0, np.nan  # one bound only: unusable
    rag = _ragged(codes, vals, n_codes)
    es = fit_edges(rag, quantizer, anchoring, lo, hi)
    plain = fit_edges(rag, quantizer)
    for c in range(n_codes):
        x = vals[codes == c].astype(np.float64)
        x = x[np.isfinite(x)]
        if c < 6:
            assert es.anchored[c]
            np.testing.assert_array_equal(es.edges.row(c), _anchored_reference(x, 1.0, 5.0, split))
        else:
            assert not es.anchored[c]
            np.testing.assert_array_equal(es.edges.row(c), plain.edges.row(c))
    # the constant code (7.0, all above the range) collapses to the bounds + its one de-duplicated value
    assert es.edges.row(3).tolist() == [1.0, 5.0, 7.0]
    assert es.n_reachable[3] == 4 and es.n_bin_slots[3] == 4
    fin = np.isfinite(vals)
    b = digitize(codes[fin], vals[fin], es.edges)
    for c in range(n_codes):
        m = codes[fin] == c
        np.testing.assert_array_equal(b[m], np.digitize(vals[fin][m].astype(np.float64), es.edges.row(c)))


def test_anchored_edges_deduplicate_a_bound_equal_to_an_inner_quantile() -> None:
    x = np.array([1, 2, 2, 2, 2, 3, 4, 5, 6, 7, 8], np.float32)
    es = fit_edges(ragged_from_codes(np.zeros(len(x), np.int64), x, 1), "ventiles", "5-10-5",
                   np.array([2.0]), np.array([6.0]))
    e = es.edges.row(0)
    assert len(np.unique(e)) == len(e) and 2.0 in e and 6.0 in e
    np.testing.assert_array_equal(e, _anchored_reference(x.astype(np.float64), 2.0, 6.0, (5, 10, 5)))
    assert es.n_bin_slots[0] == len(e) + 1 < 20


def test_anchoring_needs_the_matching_quantizer() -> None:
    rag = ragged_from_codes(np.zeros(3, np.int64), np.ones(3, np.float32), 1)
    with pytest.raises(ValueError, match="needs 20 bins"):
        fit_edges(rag, "deciles", "5-10-5", np.array([0.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="quantizer"):
        fit_edges(rag, "sigmas")


def test_time_buckets_lower_bounds_are_inclusive() -> None:
    m, h, d = 60, 3600, 86400
    month = 365.25 / 12 * d
    gaps_s = [0, 5 * m - 1, 5 * m, 15 * m - 1, 15 * m, h, 2 * h, 6 * h, 12 * h, d, 3 * d, 7 * d, 14 * d, month,
              3 * month, 6 * month - 1, 6 * month, 400 * d]
    got = time_bucket((np.asarray(gaps_s) * 1_000_000).astype(np.int64))
    names = [TIME_TOKENS[k] if k >= 0 else None for k in got]
    assert names == [None, None, "T_5m-15m", "T_5m-15m", "T_15m-1h", "T_1h-2h", "T_2h-6h", "T_6h-12h",
                     "T_12h-1d", "T_1d-3d", "T_3d-1w", "T_1w-2w", "T_2w-1mt", "T_1mt-3mt", "T_3mt-6mt",
                     "T_3mt-6mt", "T_6mt+", "T_6mt+"]
