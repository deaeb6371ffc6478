"""Value bins per code: population quantiles and clinically anchored quantiles, fitted on train values.

All codes are handled at once on ragged arrays (values sorted within each code, ``offsets`` delimiting
codes), so fitting thousands of codes costs a few numpy passes and no per-code Python loop.

Semantics (docs/tokenizer.md):
- quantile edges are numpy's ``linear`` quantiles (``np.quantile(x, np.arange(1, n) / n)`` on float64);
- a value's bin is ``np.digitize(value, edges)`` (the number of edges <= value: a value equal to an edge
  goes up, values below the first edge are bin 0, above the last edge the last bin);
- anchored bins (5-10-5, 10-10-10) split a code's values at its reference range into below (< lower),
  within (lower <= v < upper) and above (>= upper), take inner quantile edges in each region, add the two
  bounds and de-duplicate; a code without a usable reference range falls back to plain quantile edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irbench_assets.experiments import QUANTIZER_BINS

ANCHOR_SPLITS: dict[str, tuple[int, int, int]] = {"5-10-5": (5, 10, 5), "10-10-10": (10, 10, 10)}


@dataclass(frozen=True)
class Ragged:
    """A ragged float64 array: row ``i`` is ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_rows(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    def row_ids(self) -> np.ndarray:
        """The row index of every element of ``flat``."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), self.lengths)


def group_order(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable permutation that groups integer ``codes`` (0..n_codes-1), and the group offsets.

    Uses numpy's radix sort (uint16 keys) when the codes fit, which is several times faster than a
    comparison sort on tens of millions of rows.
    """
    codes = np.asarray(codes)
    key = codes.astype(np.uint16) if n_codes <= 65536 else codes.astype(np.int64)
    order = np.argsort(key, kind="stable")
    counts = np.bincount(codes, minlength=n_codes)
    return order, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def ragged_from_codes(codes: np.ndarray, values: np.ndarray, n_codes: int) -> Ragged:
    """Group ``values`` by integer ``codes`` (0..n_codes-1) into a float64 Ragged sorted within each code."""
    order, offsets = group_order(codes, n_codes)
    flat = np.asarray(values)[order].astype(np.float64)
    for i in np.flatnonzero(np.diff(offsets) > 1):  # per code, not per value: sort each segment in place
        flat[offsets[i] : offsets[i + 1]].sort()
    return Ragged(flat, offsets)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    # numpy's own quantile interpolation (numpy.lib._function_base_impl._lerp), so that our vectorized
    # per-code quantiles equal np.quantile(..., method="linear") bit for bit.
    d = b - a
    return np.where(t >= 0.5, b - d * (1 - t), a + d * t)


def segment_quantiles(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """``(n_segments, len(qs))`` linear quantiles of sorted segments ``flat[starts:starts+lengths]``; NaN if empty.

    Equal to ``np.quantile(segment, qs)`` for every non-empty segment (written by hand because numpy has
    no ragged/segmented quantile).
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    qs = np.asarray(qs, dtype=np.float64)
    out = np.full((len(starts), len(qs)), np.nan)
    ok = lengths > 0
    if not ok.any() or len(qs) == 0:
        return out
    n = lengths[ok][:, None]
    vi = (n - 1) * qs[None, :]
    prev = np.floor(vi)
    above = vi >= n - 1
    lo = np.where(above, n - 1, prev).astype(np.int64)
    hi = np.where(above, n - 1, prev + 1).astype(np.int64)
    gamma = vi - np.where(above, -1.0, prev)  # numpy computes gamma against its -1 sentinel index
    base = starts[ok][:, None]
    out[ok] = _lerp(flat[base + lo], flat[base + hi], gamma)
    return out


def inner_qs(n_bins: int) -> np.ndarray:
    """The n-1 inner quantile levels k/n of an n-bin quantizer."""
    return np.arange(1, n_bins, dtype=np.float64) / n_bins


def _rows_to_ragged(mat: np.ndarray, dedup: np.ndarray) -> Ragged:
    """Per row: drop NaN, sort, and (where ``dedup``) de-duplicate; return the rows as a Ragged."""
    mat = np.sort(mat, axis=1)  # NaN sort last
    keep = ~np.isnan(mat)
    same = np.zeros_like(keep)
    same[:, 1:] = mat[:, 1:] == mat[:, :-1]
    keep &= ~(same & dedup[:, None])
    counts = keep.sum(axis=1)
    return Ragged(mat[keep], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


@dataclass(frozen=True)
class EdgeSet:
    """The fitted edges of one (quantizer, anchoring) pair for every code (rows of ``values``)."""

    quantizer: str
    anchoring: str
    n_bins: int
    edges: Ragged
    anchored: np.ndarray  # bool per code: anchored edges were used (False: plain quantiles / fallback)

    @property
    def n_bin_slots(self) -> np.ndarray:
        """Per code the number of bin indices a value can get: len(edges) + 1 (0 for codes without values)."""
        return np.where(self.edges.lengths > 0, self.edges.lengths + 1, 0)

    @property
    def n_reachable(self) -> np.ndarray:
        """Per code the number of distinct bins: len(unique(edges)) + 1 (0 for codes without edges)."""
        e = self.edges
        if len(e.flat) == 0:
            return np.zeros(e.n_rows, dtype=np.int64)
        rid = e.row_ids()
        new = np.ones(len(e.flat), dtype=bool)
        new[1:] = (e.flat[1:] != e.flat[:-1]) | (rid[1:] != rid[:-1])
        distinct = np.bincount(rid[new], minlength=e.n_rows)
        return np.where(e.lengths > 0, distinct + 1, 0)


def fit_edges(
    values: Ragged,
    quantizer: str,
    anchoring: str = "none",
    ref_lower: np.ndarray | None = None,
    ref_upper: np.ndarray | None = None,
) -> EdgeSet:
    """Fit bin edges for every code (row of ``values``: sorted finite train values) of one quantizer/anchoring.

    Codes without values get no edges. Under anchoring, codes whose reference range is missing or
    inverted (lower > upper) fall back to plain quantile edges (``anchored`` False).
    """
    if quantizer not in QUANTIZER_BINS:
        raise ValueError(f"quantizer {quantizer!r} is not one of {sorted(QUANTIZER_BINS)}")
    n_bins = QUANTIZER_BINS[quantizer]
    n_codes = values.n_rows
    lengths = values.lengths
    starts = values.offsets[:-1]
    plain = segment_quantiles(values.flat, starts, lengths, inner_qs(n_bins))
    anchored = np.zeros(n_codes, dtype=bool)
    if anchoring == "none":
        return EdgeSet(quantizer, anchoring, n_bins, _rows_to_ragged(plain, anchored), anchored)
    if anchoring not in ANCHOR_SPLITS:
        raise ValueError(f"anchoring {anchoring!r} is not one of none, {', '.join(ANCHOR_SPLITS)}")
    nb, nw, na = ANCHOR_SPLITS[anchoring]
    if nb + nw + na != n_bins:
        raise ValueError(f"anchoring {anchoring} needs {nb + nw + na} bins, quantizer {quantizer} has {n_bins}")
    lo = np.full(n_codes, np.nan) if ref_lower is None else np.asarray(ref_lower, dtype=np.float64)
    hi = np.full(n_codes, np.nan) if ref_upper is None else np.asarray(ref_upper, dtype=np.float64)
    anchored = np.isfinite(lo) & np.isfinite(hi) & (lo <= hi) & (lengths > 0)
    rid = values.row_ids()
    below = np.bincount(rid, weights=values.flat < lo[rid], minlength=n_codes).astype(np.int64)
    upto = np.bincount(rid, weights=values.flat < hi[rid], minlength=n_codes).astype(np.int64)
    regions = [
        (starts, below, nb),
        (starts + below, upto - below, nw),
        (starts + upto, lengths - upto, na),
    ]
    parts = [segment_quantiles(values.flat, s, n, inner_qs(m)) for s, n, m in regions]
    anch = np.concatenate([parts[0], lo[:, None], parts[1], hi[:, None], parts[2]], axis=1)
    width = max(anch.shape[1], plain.shape[1])
    mat = np.full((n_codes, width), np.nan)
    mat[:, : plain.shape[1]] = np.where(anchored[:, None], np.nan, plain)
    mat[anchored, : anch.shape[1]] = anch[anchored]
    return EdgeSet(quantizer, anchoring, n_bins, _rows_to_ragged(mat, anchored), anchored)


# ---------------------------------------------------------------------------------------- digitize
@dataclass(frozen=True)
class Grouped:
    """Values grouped by code once (``order`` permutes them into code order), reused for every edge set."""

    order: np.ndarray
    offsets: np.ndarray
    values: np.ndarray  # float64, in grouped order

    @property
    def n(self) -> int:
        return len(self.order)


def group_values(codes: np.ndarray, values: np.ndarray, n_codes: int) -> Grouped:
    """Group finite values by their integer code (see :func:`group_order`)."""
    order, offsets = group_order(codes, n_codes)
    return Grouped(order, offsets, np.asarray(values)[order].astype(np.float64))


def digitize_grouped(g: Grouped, edges: Ragged) -> np.ndarray:
    """np.digitize of every grouped value against its code's edges, returned in the original order.

    One ``np.searchsorted`` per code present (a loop over codes, not values); codes without edges
    (no train values) get bin 0.
    """
    out_sorted = np.zeros(g.n, dtype=np.int16)
    present = np.flatnonzero((np.diff(g.offsets) > 0) & (edges.lengths[: len(g.offsets) - 1] > 0))
    for c in present:
        s, e = g.offsets[c], g.offsets[c + 1]
        out_sorted[s:e] = np.searchsorted(edges.row(int(c)), g.values[s:e], side="right")
    out = np.empty(g.n, dtype=np.int16)
    out[g.order] = out_sorted
    return out


def digitize(codes: np.ndarray, values: np.ndarray, edges: Ragged) -> np.ndarray:
    """Bin index of each ``values[i]`` under the edges of code ``codes[i]`` — ``np.digitize`` semantics."""
    return digitize_grouped(group_values(codes, values, edges.n_rows), edges)


def bin_counts(codes: np.ndarray, bins: np.ndarray, n_codes: int, width: int) -> np.ndarray:
    """``(n_codes, width)`` counts of (code, bin) pairs."""
    if width == 0:
        return np.zeros((n_codes, 0), dtype=np.int64)
    flat = np.bincount(np.asarray(codes, np.int64) * width + bins, minlength=n_codes * width)
    return flat.reshape(n_codes, width).astype(np.int64)
