"""Evaluation metrics as weighted, vectorized kernels: one call scores many resamples at once.

Every metric of the benchmark is a function of the *multiset* of (y_true, y_pred) pairs, so a bootstrap
resample (item ``i`` drawn ``w_i`` times) or a permutation (item ``i`` taken from handle 0 or 1) is fully
described by an integer weight per item. The kernels here take a :class:`Weights` matrix (one row per
column = resample, one entry per item) and return one metric value per column, using only

* a *linear* aggregation of the weights (a sparse "which group does this item fall in" product, a
  gather into sorted order with a prefix sum, or a small dense product), and
* a cheap *finish* on the aggregated arrays (prefix sums over sorted groups, a few sums).

Because the aggregation is linear, the metric of the complementary weights ``1 - W`` (the other handle
of a swap permutation) costs only a finish. The formulas (tie handling included) are in
``docs/statistics.md``; every kernel is checked against scikit-learn / scipy in the tests.

scikit-learn's metric functions score one sample per call; at 2000 resamples x 60k admissions a loop
around them is the bottleneck this module removes, which is why the kernels are written here by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.sparse as sp

TaskType = Literal["classification", "regression"]
TASK_TYPES: tuple[TaskType, ...] = ("classification", "regression")

BINARY_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "brier", "ece_15")
REGRESSION_METRICS: tuple[str, ...] = ("spearman_rho", "r2", "mae", "rmse")
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "brier": False,
    "ece_15": False,
    "spearman_rho": True,
    "r2": True,
    "mae": False,
    "rmse": False,
}
ECE_BINS = 15
ECE_EDGES = np.linspace(0.0, 1.0, ECE_BINS + 1)
# Above this total weight the exact-integer rank arithmetic of the Spearman kernel (N^3 < 2^53) no
# longer holds; results are still correct to float64 rounding, but we refuse rather than degrade silently.
MAX_EXACT_N = 200_000


def metrics_for(task_type: str) -> tuple[str, ...]:
    """The benchmark's metric names for a task type (``classification`` or ``regression``)."""
    if task_type == "classification":
        return BINARY_METRICS
    if task_type == "regression":
        return REGRESSION_METRICS
    raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")


def check_metric_names(task_type: str, metrics: Sequence[str] | None) -> tuple[str, ...]:
    """The requested metric names (all of the task type's when ``None``); unknown names raise."""
    allowed = metrics_for(task_type)
    if metrics is None:
        return allowed
    bad = [m for m in metrics if m not in allowed]
    if bad:
        raise ValueError(f"metrics {bad} are not {task_type} metrics; choose from {allowed}")
    return tuple(metrics)


# ------------------------------------------------------------------------------------------ validation
def as_py(value: object) -> object:
    """A numpy scalar as the plain Python value (for readable error messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _row_label(i: int, ids: np.ndarray | Sequence[object] | None) -> str:
    if ids is None:
        return f"row {i}"
    return f"row {i} (hadm_id={as_py(ids[i])})"


def validate_arrays(
    y_true: np.ndarray | Sequence[float],
    y_pred: np.ndarray | Sequence[float],
    task_type: str,
    *,
    outcome: str = "?",
    handle: str = "?",
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Check one handle's labels and predictions for one outcome; return them as float64 arrays.

    Raises ``ValueError`` naming the outcome, the handle and the first offending row/value for: empty
    input, length mismatch, non-finite labels or predictions, labels outside {0, 1} or probabilities
    outside [0, 1] (classification).
    """
    metrics_for(task_type)
    where = f"outcome {outcome!r}, handle {handle!r}"
    yt = np.asarray(y_true, dtype=np.float64).ravel()
    yp = np.asarray(y_pred, dtype=np.float64).ravel()
    if yt.size == 0:
        raise ValueError(f"{where}: no rows to evaluate (empty y_true)")
    if yt.shape != yp.shape:
        raise ValueError(f"{where}: y_true has {yt.size} rows but y_pred has {yp.size}")
    if ids is not None and len(ids) != yt.size:
        raise ValueError(f"{where}: {len(ids)} ids for {yt.size} rows")
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{where}: {name} is not finite ({float(arr[i])!r}) at {_row_label(i, ids)}; {bad.size} such rows"
            )
    if task_type == "classification":
        bad = np.flatnonzero((yt != 0.0) & (yt != 1.0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{where}: y_true must be 0/1, got {float(yt[i])!r} at {_row_label(i, ids)}")
        bad = np.flatnonzero((yp < 0.0) | (yp > 1.0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{where}: y_pred must be a probability in [0, 1], got {float(yp[i])!r} at {_row_label(i, ids)}"
            )
    return yt, yp


# ----------------------------------------------------------------------------------------- weights
class Workspace:
    """Scratch arrays reused from chunk to chunk, keyed by name.

    Every chunk needs several arrays of (resamples x items) size; allocating them afresh makes the
    allocator hand pages back to the OS and fault them in again, which measured as slow as the
    arithmetic itself. One workspace per scoring loop avoids that. Arrays from ``get`` are only valid
    until the next ``get`` of the same name.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """An uninitialised array of this shape and dtype (reused when the last one matches)."""
        a = self._bufs.get(name)
        if a is None or a.shape != shape or a.dtype != np.dtype(dtype):
            a = np.empty(shape, dtype=dtype)
            self._bufs[name] = a
        return a


@dataclass
class Weights:
    """Integer weights of ``c`` columns over ``m`` items, stored resample-major: ``cols`` is (c, m) int32.

    One column is one bootstrap resample (multiplicities) or one permuted handle (0/1 selections over
    a pooled item list). ``total`` is each column's total weight (the resample size N). Other layouts
    are built once on first use and shared by every kernel scoring the same chunk.
    """

    cols: np.ndarray
    total: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    ws: Workspace | None = field(default=None, repr=False, compare=False)

    def buf(self, name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """Scratch array for this chunk (from the workspace when there is one)."""
        return np.empty(shape, dtype=dtype) if self.ws is None else self.ws.get(name, shape, dtype)

    def __post_init__(self) -> None:
        if self.cols.ndim != 2 or self.cols.dtype != np.int32 or not self.cols.flags.c_contiguous:
            raise ValueError("Weights.cols must be a C-contiguous (columns, items) int32 matrix")
        if self.total.size == 0:
            self.total = self.cols.sum(axis=1, dtype=np.int64)
        if self.total.size and int(self.total.max()) > MAX_EXACT_N:
            raise ValueError(f"resample size {int(self.total.max())} exceeds MAX_EXACT_N={MAX_EXACT_N}")

    @property
    def n_columns(self) -> int:
        return int(self.cols.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.cols.shape[1])

    @cached_property
    def items(self) -> np.ndarray:
        """Item-major copy (m, c) int32, the operand of the sparse group sums."""
        out = self.buf("w.items", (self.n_items, self.n_columns), np.int32)
        np.copyto(out, self.cols.T)
        return out

    @cached_property
    def f64(self) -> np.ndarray:
        """The weights as float64 (c, m), exact (small integers), for the dense linear terms."""
        out = self.buf("w.f64", self.cols.shape, np.float64)
        np.copyto(out, self.cols)
        return out

    @cached_property
    def max_weight(self) -> int:
        """The largest single weight (bounds the integer rank products)."""
        return int(self.cols.max(initial=0))

    @cached_property
    def cube_sum(self) -> np.ndarray:
        """Per column, sum of w^3 over items: the x tie correction when predictions have no ties."""
        sq = self.buf("w.sq", self.cols.shape, np.int32 if self.max_weight < 46341 else np.int64)
        np.multiply(self.cols, self.cols, out=sq, dtype=sq.dtype)
        return np.einsum("cg,cg->c", sq, self.cols, dtype=np.int64).astype(np.float64)

    @classmethod
    def ones(cls, n_items: int, n_columns: int = 1) -> Weights:
        """Unit weights: every item once (the point estimate)."""
        return cls(np.ones((n_columns, n_items), dtype=np.int32))


def segment_matrix(rows: np.ndarray, n_rows: int, dtype: type = np.int32) -> sp.csr_array:
    """A (n_rows x n_items) 0/1 CSR matrix with one entry per item (column) at row ``rows[i]``.

    ``S @ W`` (W item-major) sums the weights of the items of each group: a gather and aggregate in one
    pass over W.
    """
    rows = np.asarray(rows, dtype=np.int64)
    m = rows.size
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    idx_dtype = np.int32 if m < 2**31 - 1 else np.int64
    return sp.csr_array(
        (np.ones(m, dtype=dtype), order.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n_rows, m)
    )


def _cube_sum(counts: np.ndarray, bound: int | None = None) -> np.ndarray:
    """Per row (one column of the weights), the sum of count^3 as float64 (exact below 2^53).

    ``bound`` (the largest count, when known) lets the squares stay in int32.
    """
    sq = counts * counts if bound is not None and bound < 46341 else np.square(counts, dtype=np.int64)
    return np.einsum("cg,cg->c", sq, counts, dtype=np.int64).astype(np.float64)


def _prefix(a: np.ndarray) -> np.ndarray:
    """Inclusive prefix sum along the last axis; int32 suffices (totals are at most MAX_EXACT_N)."""
    return np.cumsum(a, axis=1, dtype=np.int32)


# ------------------------------------------------------------------------------------- binary kernel
@dataclass
class BinaryAgg:
    """Linear aggregates of a weight matrix for the binary kernel (see :class:`BinaryScores`)."""

    pos: np.ndarray | None  # (c, K) int: weight of each positive-score group (ascending score)
    neg: np.ndarray | None  # (c, 2K+1) int: weight of negatives per bin (between / tied with positives)
    linear: np.ndarray | None  # (c, 1 + ECE_BINS) float: sum w (p-y)^2, then sum w (y-p) per ECE bin

    def complement(self, ones: BinaryAgg) -> BinaryAgg:
        """Aggregates of the weights ``1 - w`` given those of ``1`` (one column) and of ``w``."""
        return BinaryAgg(
            _minus(ones.pos, self.pos), _minus(ones.neg, self.neg), _minus(ones.linear, self.linear)
        )


def _minus(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return None if a is None or b is None else a - b


class BinaryScores:
    """Precomputed structure of one handle's binary predictions: AUROC, AP, Brier and ECE-15 kernels.

    Positives are grouped by distinct score (K groups, ascending). Each negative falls in one of 2K+1
    bins: strictly between positive scores k-1 and k (bin 2k) or tied with positive score k (bin
    2k+1). From the aggregated weights, for positive group g: negatives strictly below = prefix over
    bins <= 2g, negatives at or below = prefix over bins <= 2g+1, positives at or above = W+ minus the
    prefix over positive groups < g.
    """

    def __init__(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        y = np.asarray(y_true) == 1
        p = np.asarray(y_pred, dtype=np.float64)
        self.n_items = int(p.size)
        pos_scores = np.unique(p[y])
        k = int(pos_scores.size)
        rows = np.empty(self.n_items, dtype=np.int64)
        rows[y] = np.searchsorted(pos_scores, p[y])
        pn = p[~y]
        below = np.searchsorted(pos_scores, pn, side="left")
        tie = np.zeros(pn.size, dtype=bool)
        if k:
            tie = (below < k) & (pos_scores[np.minimum(below, k - 1)] == pn)
        rows[~y] = k + 2 * below + tie
        self.k = k
        self.S = segment_matrix(rows, 3 * k + 1)
        ece_bin = np.searchsorted(ECE_EDGES[1:-1], p, side="right")
        lin = np.zeros((self.n_items, 1 + ECE_BINS), dtype=np.float64)
        lin[:, 0] = (p - y) ** 2
        lin[np.arange(self.n_items), 1 + ece_bin] = y - p
        self.linear_design = lin

    def aggregate(self, w: Weights, metrics: Sequence[str] = BINARY_METRICS) -> BinaryAgg:
        """Sum the weights per score group / bin, and the linear (Brier, ECE) terms; linear in ``w``.

        Only the parts the requested ``metrics`` need are computed.
        """
        pos = neg = linear = None
        if "roc_auc" in metrics or "pr_auc" in metrics:
            groups = (self.S @ w.items).T  # (c, 3K+1)
            pos = np.ascontiguousarray(groups[:, : self.k])
            neg = np.ascontiguousarray(groups[:, self.k :])
        if "brier" in metrics or "ece_15" in metrics:
            linear = w.f64 @ self.linear_design
        return BinaryAgg(pos, neg, linear)

    def finish(self, agg: BinaryAgg, total: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
        """Metric values per column from the aggregates; NaN for AUROC/AP where a column has one class."""
        k = self.k
        out: dict[str, np.ndarray] = {}
        total_f = total.astype(np.float64)
        if "brier" in metrics or "ece_15" in metrics:
            assert agg.linear is not None
            if "brier" in metrics:
                out["brier"] = agg.linear[:, 0] / total_f
            if "ece_15" in metrics:
                out["ece_15"] = np.abs(agg.linear[:, 1:]).sum(axis=1) / total_f
        if "roc_auc" not in metrics and "pr_auc" not in metrics:
            return out
        assert agg.pos is not None and agg.neg is not None
        pos = agg.pos
        w_pos = pos.sum(axis=1, dtype=np.int64)
        w_neg = total - w_pos
        defined = (w_pos > 0) & (w_neg > 0)
        neg_incl = _prefix(agg.neg)  # (c, 2K+1)
        neg_below = neg_incl[:, 0 : 2 * k : 2]  # negatives strictly below positive group g
        if "roc_auc" in metrics:
            # 2 * (correctly ordered pairs + half the tied pairs) = sum_g P_g (below_g + at_or_below_g)
            neg_at_or_below = neg_incl[:, 1 : 2 * k + 1 : 2]
            num2 = np.einsum("cg,cg->c", pos, neg_below + neg_at_or_below, dtype=np.float64)
            den2 = 2.0 * w_pos * w_neg
            out["roc_auc"] = np.where(defined, num2 / np.where(defined, den2, 1.0), np.nan)
        if "pr_auc" in metrics:
            # precision at threshold u_g = positives scoring >= u_g over everything scoring >= u_g;
            # where a group holds no positive weight the term is multiplied by 0 (guard 0/0 with max 1)
            tps = np.cumsum(pos, axis=1, dtype=np.int32)  # counts <= N: int32 is exact and fast
            np.subtract(pos, tps, out=tps)
            tps += w_pos.astype(np.int32)[:, None]
            everything = tps + w_neg.astype(np.int32)[:, None]
            everything -= neg_below
            np.maximum(everything, 1, out=everything)
            prec = tps / everything
            ap = np.einsum("cg,cg->c", pos, prec, dtype=np.float64) / np.where(defined, w_pos, 1)
            out["pr_auc"] = np.where(defined, ap, np.nan)
        return out


# --------------------------------------------------------------------------------- regression kernel
@dataclass
class YSide:
    """Per-column y-rank information shared by every handle of a regression outcome.

    ``w`` and ``u = w * 2b`` (c, m) are laid out in the order ``layout`` of the items (y order for a
    resampled outcome, item order for swap permutations); ``2b`` is twice the item's centred average
    y-rank within its column. ``den_y = 4 sum w b^2 = (N^3 - sum_g W_g^3) / 3`` over y groups is an
    exact integer and is 0 exactly when a column holds a single y value (R^2 and Spearman undefined).
    """

    w: np.ndarray
    u: np.ndarray
    den_y: np.ndarray
    layout: str


@dataclass
class RegressionAgg:
    """Aggregates for one handle: weights and ``w*2b`` per x-group (ascending x), linear terms."""

    wx: np.ndarray | None  # (c, Gx) int32
    ux: np.ndarray | None  # (c, Gx) int32 or int64
    cx: np.ndarray | None  # (c, Gx) int32: inclusive prefix of wx (overwritten by finish)
    linear: np.ndarray | None  # (c, 4) float: sum w|e|, sum w e^2, sum w yc, sum w yc^2
    cube: np.ndarray | None = None  # (c,) sum over x-groups of wx^3, when known without a pass
    y_varies: np.ndarray | None = None  # (c,) bool: more than one distinct y in the column

    def complement(self, ones: RegressionAgg, w: Weights | None = None) -> RegressionAgg:
        """Aggregates of the weights ``1 - w`` given those of ``1`` (one column) and of ``w``.

        Only valid for swap permutations, where each admission stays exactly once per column (so
        whether y varies is the same for both handles). ``w`` lends its workspace for the outputs.
        """

        def sub(name: str, a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            if a is None or b is None:
                return None
            out = w.buf(name, b.shape, b.dtype) if w is not None else None
            return np.subtract(a, b, out=out)

        return RegressionAgg(
            sub("c.wx", ones.wx, self.wx),
            sub("c.ux", ones.ux, self.ux),
            sub("c.cx", ones.cx, self.cx),
            _minus(ones.linear, self.linear),
            None,
            self.y_varies,
        )


def _group_bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable sort order, last sorted position of each run of equal values, group id per sorted item."""
    order = np.argsort(values, kind="stable")
    sv = values[order]
    new = np.ones(sv.size, dtype=bool)
    new[1:] = sv[1:] != sv[:-1]
    gid_sorted = np.cumsum(new) - 1
    ends = np.flatnonzero(np.append(new[1:], True))
    return order, ends, gid_sorted


def _rank_products_fit_int32(w: Weights, max_abs_b2: int) -> bool:
    return max(w.max_weight, 1) * max_abs_b2 < 2**31


class RegressionTarget:
    """The y side of a regression outcome: sorted order and groups of equal targets, mean for R^2."""

    def __init__(self, y_true: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.float64)
        self.y = y
        self.n_items = int(y.size)
        self.mean = float(y.mean())
        self.order, self.ends, _ = _group_bounds(y)
        self.n_groups = int(self.ends.size)
        self.group_sizes = np.diff(self.ends, prepend=-1)
        self.largest_group = int(self.group_sizes.max(initial=1))

    def side(self, w: Weights) -> YSide:
        """Average y-ranks of every column via a prefix sum over the items in y order."""
        n_tot = w.total
        shape = w.cols.shape
        wy = np.take(
            w.cols, self.order, axis=1, out=w.buf("y.w", shape, np.int32), mode="clip"
        )  # weights in y order
        incl = np.cumsum(wy, axis=1, out=w.buf("y.b2", shape, np.int32))  # N <= MAX_EXACT_N: fits
        if self.n_groups == self.n_items:  # no tied targets: every item is its own group
            b2 = incl
            b2 *= 2
            b2 -= wy
            b2 -= n_tot.astype(np.int32)[:, None]
            den_y = (n_tot.astype(np.float64) ** 3 - w.cube_sum) / 3.0
        else:
            end = incl[:, self.ends]  # inclusive prefix at each group's last item
            start = np.zeros_like(end)
            start[:, 1:] = end[:, :-1]
            wg = end - start
            b2g = end + start - n_tot.astype(np.int32)[:, None]  # 2 (average rank - (N+1)/2)
            den_y = (n_tot.astype(np.float64) ** 3 - _cube_sum(wg, w.max_weight * self.largest_group)) / 3.0
            # back to items (y order, groups contiguous): a prefix sum of the jumps at group starts
            b2 = incl
            b2[:] = 0
            b2[:, self.ends[:-1] + 1] = np.diff(b2g, axis=1)
            b2[:, 0] = b2g[:, 0]
            np.cumsum(b2, axis=1, out=b2)
        if _rank_products_fit_int32(w, int(n_tot.max(initial=0))):
            u = np.multiply(b2, wy, out=b2)  # in the workspace: valid for this chunk
        else:
            u = b2.astype(np.int64) * wy
        return YSide(wy, u, den_y, "y")

    def unit_b2(self) -> tuple[np.ndarray, float]:
        """2 * centred average y-rank per item (item order) with unit weights, and ``4 sum b^2``."""
        s = self.side(Weights.ones(self.n_items))
        b2 = np.empty(self.n_items, dtype=np.int64)
        b2[self.order] = s.u[0]
        return b2, float(s.den_y[0])


def fixed_side(w: Weights, b2_items: np.ndarray, den_y: float) -> YSide:
    """The y side when every column holds each admission exactly once (swap permutations): the y
    ranks do not move, so ``2b`` is the unit-weight rank of the admission behind each pooled item."""
    c = w.n_columns
    if _rank_products_fit_int32(w, int(np.abs(b2_items).max(initial=0))):
        u = np.multiply(w.cols, b2_items.astype(np.int32), out=w.buf("fixed.u", w.cols.shape, np.int32))
    else:
        u = w.cols.astype(np.int64) * b2_items
    return YSide(w.cols, u, np.full(c, float(den_y)), "items")


class RegressionScores:
    """Precomputed structure of one handle's regression predictions: Spearman, R^2, MAE, RMSE kernels.

    Items are grouped by distinct prediction (x ties). Per column, twice the centred average x-rank of
    group g is ``2 C_g - W_g - N`` (``C_g`` the inclusive prefix of group weights), so
    ``4 sum_i w_i a_i b_i = sum_g (2 C_g - W_g) U_g`` (``U_g`` the group sum of ``w * 2b``; the ``-N``
    term drops because centred ranks sum to zero) and ``4 sum w a^2 = (N^3 - sum_g W_g^3) / 3``.
    All rank arithmetic is in integers, hence exact.
    """

    def __init__(self, target: RegressionTarget, y_pred: np.ndarray, *, items_y: np.ndarray | None = None):
        x = np.asarray(y_pred, dtype=np.float64)
        y = target.y if items_y is None else np.asarray(items_y, dtype=np.float64)
        if x.size != y.size:
            raise ValueError(f"{x.size} predictions for {y.size} targets")
        m = self.n_items = int(x.size)
        order, ends, gid_sorted = _group_bounds(x)
        self.n_groups = int(ends.size)
        gid = np.empty(m, dtype=np.intp)
        gid[order] = gid_sorted
        # Positions of the x-sorted items in each YSide layout ("items": identity; "y": y order).
        self._take: dict[str, np.ndarray] = {"items": order}
        self._gid: dict[str, np.ndarray] = {"items": gid}
        if items_y is None:
            inv_y = np.empty(m, dtype=np.intp)
            inv_y[target.order] = np.arange(m)
            self._take["y"] = inv_y[order]
            self._gid["y"] = gid[target.order]
        self.ties = self.n_groups < m
        self._segments: dict[str, sp.csr_array] = {}
        e = x - y
        yc = y - target.mean
        self.y_items = y
        self.linear_design = np.stack([np.abs(e), e * e, yc, yc * yc], axis=1)  # (m, 4)

    def _y_varies(self, w: Weights, linear: np.ndarray) -> np.ndarray:
        """Whether each column holds more than one distinct y: clear from SS_tot unless it is ~0, in
        which case the column's drawn items are checked exactly."""
        n_tot = w.total.astype(np.float64)
        s_y, s_yy = linear[:, 2], linear[:, 3]
        ss_tot = s_yy - s_y * s_y / n_tot
        varies = ss_tot > 1e-9 * s_yy
        for j in np.flatnonzero(~varies):
            drawn = self.y_items[w.cols[j] > 0]
            varies[j] = drawn.size > 0 and drawn.min() != drawn.max()
        return varies

    def aggregate(
        self, w: Weights, side: YSide | None, metrics: Sequence[str] = REGRESSION_METRICS
    ) -> RegressionAgg:
        """Weights and ``w*2b`` per x-group in x order (Spearman), plus the linear terms (R^2, MAE,
        RMSE); linear in (w, w*2b). ``side`` is required for Spearman only."""
        linear = None
        if any(m in metrics for m in ("r2", "mae", "rmse")):
            linear = w.f64 @ self.linear_design
        y_varies = None
        if "r2" in metrics:
            assert linear is not None
            y_varies = side.den_y > 0 if side is not None else self._y_varies(w, linear)
        if "spearman_rho" not in metrics:
            return RegressionAgg(None, None, None, linear, None, y_varies)
        if side is None:
            raise ValueError("Spearman needs the y side of the weights (RegressionTarget.side)")
        if not self.ties:  # the grouping is a permutation: gather instead of a sparse product
            idx = self._take[side.layout]
            wx = np.take(side.w, idx, axis=1, out=w.buf("x.w", side.w.shape, side.w.dtype), mode="clip")
            ux = np.take(side.u, idx, axis=1, out=w.buf("x.u", side.u.shape, side.u.dtype), mode="clip")
            cx = np.cumsum(wx, axis=1, out=w.buf("x.cx", wx.shape, np.int32))
            return RegressionAgg(wx, ux, cx, linear, w.cube_sum, y_varies)
        if side.layout not in self._segments:
            self._segments[side.layout] = segment_matrix(self._gid[side.layout], self.n_groups, np.int64)
        s = self._segments[side.layout]
        wx = np.ascontiguousarray((s @ side.w.T.astype(np.int64)).T, dtype=np.int32)
        ux = np.ascontiguousarray((s @ side.u.T.astype(np.int64)).T)  # group sums may exceed int32
        cx = np.cumsum(wx, axis=1, dtype=np.int32)
        return RegressionAgg(wx, ux, cx, linear, None, y_varies)

    def finish(
        self,
        agg: RegressionAgg,
        total: np.ndarray,
        den_y: np.ndarray | None,
        metrics: Sequence[str],
    ) -> dict[str, np.ndarray]:
        """Metric values per column; Spearman NaN where x or y is constant, R^2 NaN where y is constant.

        ``den_y`` (from the y side) is needed for Spearman only.
        """
        n_tot = total.astype(np.float64)
        out: dict[str, np.ndarray] = {}
        if agg.linear is not None:
            s_abs, s_sq, s_y, s_yy = agg.linear.T
            if "mae" in metrics:
                out["mae"] = s_abs / n_tot
            if "rmse" in metrics:
                out["rmse"] = np.sqrt(s_sq / n_tot)
            if "r2" in metrics:
                assert agg.y_varies is not None
                ss_tot = s_yy - s_y * s_y / n_tot
                ok = agg.y_varies
                out["r2"] = np.where(ok, 1.0 - s_sq / np.where(ok, ss_tot, 1.0), np.nan)
        if "spearman_rho" in metrics:
            assert agg.wx is not None and agg.ux is not None and agg.cx is not None and den_y is not None
            a2 = agg.cx  # 2 C_g - W_g, in place: the prefix is not needed afterwards
            a2 *= 2
            a2 -= agg.wx
            num = np.einsum("cg,cg->c", a2, agg.ux, dtype=np.int64)
            cube = agg.cube if agg.cube is not None else _cube_sum(agg.wx)
            den_x = (n_tot**3 - cube) / 3.0
            den = den_x * den_y
            ok = den > 0
            out["spearman_rho"] = np.where(
                ok, num.astype(np.float64) / np.sqrt(np.where(ok, den, 1.0)), np.nan
            )
        return out


# ------------------------------------------------------------------------------------ point metrics
def compute_metrics(
    y_true: np.ndarray | Sequence[float],
    y_pred: np.ndarray | Sequence[float],
    task_type: str,
    metrics: Sequence[str] | None = None,
    *,
    outcome: str = "?",
    handle: str = "?",
) -> dict[str, float]:
    """Point estimates of the benchmark metrics on one sample (validated; NaN where undefined)."""
    names = check_metric_names(task_type, metrics)
    yt, yp = validate_arrays(y_true, y_pred, task_type, outcome=outcome, handle=handle)
    w = Weights.ones(yt.size)
    vals = evaluate_weights(yt, {handle: yp}, task_type, names, w)[handle]
    return {m: float(vals[m][0]) for m in names}


def evaluate_weights(
    y_true: np.ndarray,
    preds: Mapping[str, np.ndarray],
    task_type: str,
    metrics: Sequence[str],
    w: Weights,
) -> dict[str, dict[str, np.ndarray]]:
    """Weighted metrics of several handles on the same items: handle -> metric -> values per column.

    Inputs are assumed validated (see :func:`validate_arrays`); ``w`` has one row per item.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    if task_type == "classification":
        for h, p in preds.items():
            eng = BinaryScores(y_true, p)
            out[h] = eng.finish(eng.aggregate(w, metrics), w.total, metrics)
        return out
    target = RegressionTarget(y_true)
    side = target.side(w) if "spearman_rho" in metrics else None
    for h, p in preds.items():
        eng = RegressionScores(target, p)
        out[h] = eng.finish(eng.aggregate(w, side, metrics), w.total, side.den_y if side else None, metrics)
    return out
