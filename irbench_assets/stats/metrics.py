"""Evaluation metrics as weighted, vectorized kernels: one call scores many resamples at once.

Every metric of the benchmark is a function of the *multiset* of (y_true, y_pred) pairs, so a bootstrap
resample (item ``i`` drawn ``w_i`` times) or a permutation (item ``i`` taken from handle 0 or 1) is fully
described by an integer weight per item. The kernels here take a :class:`Weights` matrix (one row per
column = resample, one entry per item) and return one metric value per column, using only

* gathers of the weights into a precomputed sorted order (one global sort per handle, never one per
  resample) and prefix sums there, or sums of the weights per precomputed group (a fixed 0/1 sparse
  matrix times the weights: one pass that gathers and adds), and prefix sums over the groups;
* small dense products for the metrics that are linear in the weights (Brier, ECE, MAE, RMSE, R^2);
* a cheap *finish* on group-level arrays.

The rank metrics (AUROC, AP, Spearman) only need sums of counts, so several resamples are packed into
one 64-bit word (:class:`Lanes`: 4 lanes of 16 bits, or 2 of 32) and gathered, grouped and
prefix-summed together; no lane can overflow because every sum is at most the resample size. Only
the few per-item products of Spearman run on unpacked (items x lanes) float64 blocks of exact
integers. The formulas (tie handling included) are in ``docs/statistics.md``; every kernel is checked
against scikit-learn / scipy in the tests.

scikit-learn's metric functions score one sample per call; at 2000 resamples x 60k admissions a loop
around them is the bottleneck this module removes, which is why the kernels are written here by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
# Items per block of the Spearman cross sum: its (block, lanes) float64 operands stay in cache between
# the passes (measured fastest at n = 60,000 with the indices drawn right before each chunk).
SPEARMAN_BLOCK = 16384
# Weights.cube_sums pads the items to a multiple of this, so that _lane_sums can cut rows into 64 parts.
_LANE_SUM_BLOCK = 64


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


def _buf(ws: Workspace | None, name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    return np.empty(shape, dtype=dtype) if ws is None else ws.get(name, shape, dtype)


class Lanes:
    """``c`` integer columns over ``m`` items packed into 64-bit words: ``words`` is (ceil(c/L), m) uint64.

    Column ``j`` is lane ``j % L`` of word row ``j // L`` (``L`` = 4 lanes of 16 bits when every total
    is below 2^16, else 2 lanes of 32 bits). Gathers, prefix sums and differences of non-negative lane
    values whose results stay below ``2^bits`` act on all lanes at once (no carry crosses a lane), so
    one ``take`` + ``cumsum`` on the words does the work of ``L`` columns. Unused lanes are zero.
    """

    def __init__(self, n_columns: int, n_items: int, max_total: int, ws: Workspace | None = None) -> None:
        self.n_columns = n_columns
        self.n_items = n_items
        self.bits = 16 if max_total < 1 << 16 else 32
        self.n_lanes = 64 // self.bits
        self.lane_dtype = np.dtype(np.uint16 if self.bits == 16 else np.uint32)
        self.n_words = -(-n_columns // self.n_lanes)
        self.ws = ws
        self.words = _buf(ws, "lanes.words", (self.n_words, n_items), np.uint64)

    def lane_view(self, words: np.ndarray) -> np.ndarray:
        """A (word rows, items, lanes) view of a C-contiguous uint64 array (lane ``l`` = column offset)."""
        return words.view(self.lane_dtype).reshape(words.shape[0], words.shape[1], self.n_lanes)

    def clear_unused(self) -> None:
        """Zero the lanes past the last column (the last word row may be partly used)."""
        used = self.n_columns - (self.n_words - 1) * self.n_lanes
        if used < self.n_lanes:
            self.lane_view(self.words)[-1, :, used:] = 0

    def ones_word(self) -> np.uint64:
        """The word with every lane equal to 1."""
        w = np.zeros(1, dtype=np.uint64)
        w.view(self.lane_dtype)[:] = 1
        return w[0]

    def unpack(self, words: np.ndarray, dtype: type = np.int64) -> np.ndarray:
        """(word rows, k) uint64 -> (c, k) ``dtype``, one row per column."""
        p, k = words.shape
        out = np.empty((p, self.n_lanes, k), dtype=dtype)
        out[...] = self.lane_view(np.ascontiguousarray(words)).transpose(0, 2, 1)
        return out.reshape(p * self.n_lanes, k)[: self.n_columns]


class Weights:
    """Integer weights of ``c`` columns over ``m`` items (one column = one resample or permuted handle).

    Built either from a (c, m) int32 matrix ``cols`` or from per-column index arrays (``from_indices``:
    column ``j`` counts how often each item occurs in ``indices[j]``), which are counted on first use
    straight into packed words (:class:`Lanes`), the layout every kernel reads. ``cols`` is unpacked
    from the words on demand. ``total`` is each column's total weight (the resample size N).
    """

    def __init__(
        self,
        cols: np.ndarray | None = None,
        total: np.ndarray | None = None,
        ws: Workspace | None = None,
        *,
        indices: Sequence[np.ndarray] | None = None,
        n_items: int | None = None,
    ) -> None:
        self.ws = ws
        self._indices = indices
        self._cols: np.ndarray | None = None
        self._lanes: Lanes | None = None
        self._max_weight: int | None = None
        self._items_f64: np.ndarray | None = None
        self._cube_sums: np.ndarray | None = None
        if cols is not None:
            if cols.ndim != 2 or cols.dtype != np.int32 or not cols.flags.c_contiguous:
                raise ValueError("Weights.cols must be a C-contiguous (columns, items) int32 matrix")
            if cols.size and int(cols.min()) < 0:
                raise ValueError("Weights.cols must be non-negative")
            self._cols = cols
            self._shape = (int(cols.shape[0]), int(cols.shape[1]))
            tot = cols.sum(axis=1, dtype=np.int64) if total is None or total.size == 0 else total
        elif indices is not None and n_items is not None:
            self._shape = (len(indices), int(n_items))
            tot = np.array([len(i) for i in indices], dtype=np.int64)
        else:
            raise ValueError("Weights needs cols, or indices and n_items")
        self.total = np.asarray(tot, dtype=np.int64)
        if self.total.size and int(self.total.max()) > MAX_EXACT_N:
            raise ValueError(f"resample size {int(self.total.max())} exceeds MAX_EXACT_N={MAX_EXACT_N}")

    @classmethod
    def from_indices(
        cls, indices: Sequence[np.ndarray], n_items: int, ws: Workspace | None = None
    ) -> Weights:
        """Multiplicities of resamples given as item-index arrays; counted on first use."""
        return cls(indices=indices, n_items=n_items, ws=ws)

    @classmethod
    def ones(cls, n_items: int, n_columns: int = 1) -> Weights:
        """Unit weights: every item once (the point estimate)."""
        return cls(np.ones((n_columns, n_items), dtype=np.int32))

    def buf(self, name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """Scratch array for this chunk (from the workspace when there is one)."""
        return _buf(self.ws, name, shape, dtype)

    @property
    def n_columns(self) -> int:
        """Number of weight columns (resamples or permuted handles)."""
        return self._shape[0]

    @property
    def n_items(self) -> int:
        """Number of items (admissions, or pooled items of a swap test)."""
        return self._shape[1]

    @property
    def lanes(self) -> Lanes:
        """The weights packed into 64-bit words (see :class:`Lanes`), built on first use."""
        if self._lanes is None:
            lanes = Lanes(self.n_columns, self.n_items, int(self.total.max(initial=0)), self.ws)
            nl = lanes.n_lanes
            if self._cols is None:
                assert self._indices is not None
                # counting: each draw adds the column's lane unit to its item's word (no lane can
                # overflow: a count is at most the column total); np.add.at needs no temporary
                lanes.words.fill(0)
                units = np.zeros(nl, dtype=np.uint64)
                units.view(lanes.lane_dtype).reshape(nl, nl)[np.arange(nl), np.arange(nl)] = 1
                for j, idx in enumerate(self._indices):
                    np.add.at(lanes.words[j // nl], idx, units[j % nl])
            else:
                view = lanes.lane_view(lanes.words)
                for j in range(self.n_columns):
                    view[j // nl, :, j % nl] = self._cols[j]
                lanes.clear_unused()
            self._lanes = lanes
        return self._lanes

    @property
    def cols(self) -> np.ndarray:
        """(c, m) int32 weights (unpacked from the words when built from indices)."""
        if self._cols is None:
            cols = self.buf("w.cols", self._shape, np.int32)
            cols[...] = self.lanes.unpack(self.lanes.words)
            self._cols = cols
        return self._cols

    @property
    def max_weight(self) -> int:
        """The largest single weight."""
        if self._max_weight is None:
            self._max_weight = int(self.cols.max(initial=0))
        return self._max_weight

    @property
    def items_f64(self) -> np.ndarray:
        """The weights as item-major float64, (word rows, m, lanes) (exact small integers), cached."""
        if self._items_f64 is None:
            lanes = self.lanes
            self._items_f64 = self.buf(
                "w.items_f64", (lanes.n_words, self.n_items, lanes.n_lanes), np.float64
            )
            np.copyto(self._items_f64, lanes.lane_view(lanes.words))
        return self._items_f64

    @property
    def cube_sums(self) -> np.ndarray:
        """``sum_i w_i^3`` of every column as float64 (exact: at most N^3 < 2^53), cached.

        Shared by every handle: it gives the Spearman x denominator ``(N^3 - sum w^3) / 3`` of any
        handle without tied predictions. Small counts (the bootstrap case) are cubed inside the 16-bit
        lanes and summed four columns per uint64 operation (see :func:`_lane_sums`).
        """
        if self._cube_sums is None:
            lanes = self.lanes
            lv = lanes.words.view(lanes.lane_dtype)  # (word rows, items * lanes), contiguous
            top = int(lv.max(initial=0)) ** 3
            if lanes.bits == 16 and top < 1 << 16:
                p, m = lanes.words.shape
                padded = -(-m // _LANE_SUM_BLOCK) * _LANE_SUM_BLOCK
                c3 = self.buf("w.cubes", (p, padded * lanes.n_lanes), np.uint16)
                c3[:, lv.shape[1] :] = 0
                np.multiply(lv, lv, out=c3[:, : lv.shape[1]])
                np.multiply(c3[:, : lv.shape[1]], lv, out=c3[:, : lv.shape[1]])
                sums = _lane_sums(c3.view(np.uint64), max(top, 1))
            else:
                wide = lanes.lane_view(lanes.words).astype(np.uint64)  # w^3 <= N^3 < 2^64
                sums = np.sum(wide * wide * wide, axis=1, dtype=np.uint64).astype(np.float64)
            self._cube_sums = sums.reshape(-1)[: self.n_columns]
        return self._cube_sums

    def dot(self, design: np.ndarray) -> np.ndarray:
        """``W @ design`` (c, k): the linear aggregates of every column, from the item-major lanes."""
        wf = self.items_f64
        p, _, nl = wf.shape
        out = np.empty((p * nl, design.shape[1]))
        for r in range(p):
            out[r * nl : (r + 1) * nl] = wf[r].T @ design
        return out[: self.n_columns]


def _lane_sums(words: np.ndarray, top: int) -> np.ndarray:
    """Per-lane totals (rows, 4) float64 of (rows, k) words of four 16-bit lanes, each lane <= ``top``
    (exact while a total stays below 2^53).

    No lane may carry into the next, so the row is first cut into ``f`` equal parts that are added
    word by word (a lane then holds at most ``f * top < 2^16``; ``f`` a power of two dividing ``k``:
    callers pad with zero words); the few words left are then widened and summed (BLAS).
    """
    rows, k = words.shape
    f = 1
    while k % (2 * f) == 0 and 2 * f * top < 1 << 16:
        f *= 2
    if f > 1:
        words = words.reshape(rows, f, k // f).sum(axis=1, dtype=np.uint64)
    lanes = words.view(np.uint16).reshape(rows, -1, 4).astype(np.float64)
    return np.ones(lanes.shape[1]) @ lanes


def _cube_sum(counts: np.ndarray, axis: int = 1) -> np.ndarray:
    """Sum of count^3 along ``axis`` as float64 (exact: the sums stay below 2^53)."""
    c = counts.astype(np.int64)
    return np.sum(c * c * c, axis=axis, dtype=np.int64).astype(np.float64)


def _take_rows(src: np.ndarray, index: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[r] = src[r][index]`` for every row (``index`` is intp, in range)."""
    for r in range(src.shape[0]):
        np.take(src[r], index, out=out[r], mode="clip")
    return out


def _group_matrix(group: np.ndarray, n_groups: int) -> sp.csr_array:
    """(groups, items) 0/1 uint64 matrix with item ``k`` in row ``group[k]`` (no row where it is < 0):
    ``G @ words`` adds the packed words of every group's items in one sparse pass, a fused gather and
    segmented sum (scipy's CSR product; no lane carries while a group's lane total fits the lane).
    """
    keep = np.flatnonzero(group >= 0)
    rows = group[keep]
    counts = np.bincount(rows, minlength=n_groups)
    indptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    index = np.int32 if group.size < 2**31 else np.int64
    cols = keep[np.argsort(rows, kind="stable")].astype(index)
    data = np.ones(cols.size, dtype=np.uint64)
    return sp.csr_array((data, cols, indptr.astype(index)), shape=(n_groups, int(group.size)))


def _sorted_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable ascending order, last sorted position of each run of equal values, group of each position."""
    order = np.argsort(values, kind="stable")
    sv = values[order]
    new = np.ones(sv.size, dtype=bool)
    new[1:] = sv[1:] != sv[:-1]
    gid_sorted = np.cumsum(new) - 1
    ends = np.flatnonzero(np.append(new[1:], True))
    return order, ends, gid_sorted


# ------------------------------------------------------------------------------------- binary kernel
class BinaryScores:
    """Precomputed structure of one handle's binary predictions: AUROC, AP, Brier and ECE-15 kernels.

    Per distinct positive score u_g (descending, g = 0..K-1) the rank metrics need the positive weight
    scoring >= u_g (``TP_g``) and the negative weight scoring >= u_g and > u_g; then
    AP = sum_g P_g TP_g / (TP_g + FP>=_g) / W+ and 2 W+ W- AUROC = sum_g P_g (2 W- - FP>=_g - FP>_g),
    with P_g = TP_g - TP_{g-1}: scikit-learn's tie handling, in integers. :meth:`rank_scores` sums the
    weights into 3K bins (:attr:`bins`) and prefix-sums the bins. The swap kernels read the same
    counts as the inclusive prefix of the weights in one fixed order (positives by descending score,
    then negatives by descending score) at K + K (+ K) fixed positions (:meth:`prefix_values`).
    """

    def __init__(self, y_true: np.ndarray, y_pred: np.ndarray, *, rank_bins: bool = True) -> None:
        y = np.asarray(y_true) == 1
        p = np.asarray(y_pred, dtype=np.float64)
        self.n_items = int(p.size)
        pos = np.flatnonzero(y)
        neg = np.flatnonzero(~y)
        pos = pos[np.argsort(-p[pos], kind="stable")]
        neg = neg[np.argsort(-p[neg], kind="stable")]
        self.order = np.concatenate([pos, neg]).astype(np.intp)
        n_pos, n_neg = int(pos.size), int(neg.size)
        ps = p[pos]
        tp_at = np.flatnonzero(np.append(ps[1:] != ps[:-1], True)) if n_pos else np.zeros(0, np.intp)
        u = ps[tp_at]  # distinct positive scores, descending
        neg_asc = p[neg][::-1]
        ge = n_neg - np.searchsorted(neg_asc, u, side="left")  # negatives scoring >= u_g
        gt = n_neg - np.searchsorted(neg_asc, u, side="right")  # negatives scoring > u_g
        self.k = int(u.size)
        # prefix positions; a negative count c is read at n_pos - 1 + c (then W+ is subtracted)
        self._at = {
            "tp": tp_at.astype(np.intp),
            "ge": (n_pos - 1 + ge).astype(np.intp),
            "gt": (n_pos - 1 + gt).astype(np.intp),
        }
        self._positions: dict[tuple[str, ...], np.ndarray] = {}
        self._scores, self._u, self._n_pos = p, u, n_pos
        self._bins: sp.csr_array | None = None
        if rank_bins:  # per-handle setup, like the sorts above (the swap kernels do not use the bins)
            self._bins = self.bins
        ece_bin = np.searchsorted(ECE_EDGES[1:-1], p, side="right")
        lin = np.zeros((self.n_items, 1 + ECE_BINS), dtype=np.float64)
        lin[:, 0] = (p - y) ** 2
        lin[np.arange(self.n_items), 1 + ece_bin] = y - p
        self.linear_design = lin  # dense form, for the swap kernels
        # Brier and ECE as weighted sums over items sorted by ECE bin: each bin is a contiguous slice
        self.ece_order = np.argsort(ece_bin, kind="stable").astype(np.intp)
        self.ece_bounds = np.searchsorted(ece_bin[self.ece_order], np.arange(ECE_BINS + 1))
        self.brier_sorted = lin[self.ece_order, 0].copy()
        self.gap_sorted = (y - p)[self.ece_order]

    @property
    def bins(self) -> sp.csr_array:
        """(3K, items) sparse 0/1 matrix of the rank bins: row g holds the positives scoring u_g, row
        K + a the negatives strictly between u_a and u_{a-1} (a = 0: above u_0), row 2K + a the negatives
        tied with u_a; negatives below every positive score are in no row (they never count)."""
        if self._bins is None:
            k, n_pos = self.k, self._n_pos
            group = np.full(self.n_items, -1, dtype=np.int64)
            pos, neg = self.order[:n_pos], self.order[n_pos:]
            ps = self._scores[pos]
            if n_pos:
                group[pos] = np.cumsum(np.append(True, ps[1:] != ps[:-1])) - 1
            s = self._scores[neg]
            u_asc = self._u[::-1]
            above = k - np.searchsorted(u_asc, s, side="right")  # positive scores > s
            tied = k - np.searchsorted(u_asc, s, side="left") > above  # s equals u_above
            group[neg] = np.where(tied, 2 * k + above, np.where(above < k, k + above, -1))
            self._bins = _group_matrix(group, 3 * k)
        return self._bins

    def rank_scores(self, w: Weights, metrics: Sequence[str]) -> dict[str, np.ndarray]:
        """AUROC / AP per column from the packed bin totals (one sparse pass per word row) and their
        prefix sums over the K positive scores; NaN where a column holds one class only.

        Integer counts stay packed (four columns per uint64) up to TP_g and TP_g + FP>=_g; then
        AP = sum_g P_g TP_g / (TP_g + FP>=_g) / W+ and AUROC = 1 - sum_g P_g (FP>=_g + FP>_g) / (2 W+ W-).
        """
        lanes = w.lanes
        p, k, c, nl = lanes.n_words, self.k, w.n_columns, lanes.n_lanes
        out: dict[str, np.ndarray] = {}
        if k == 0:  # no positive item at all
            for m in ("roc_auc", "pr_auc"):
                if m in metrics:
                    out[m] = np.full(c, np.nan)
            return out
        bins = w.buf("bin.bins", (p, 3 * k), np.uint64)
        for r in range(p):
            bins[r] = self.bins @ lanes.words[r]
        tp = w.buf("bin.tp", (p, k), np.uint64)
        np.cumsum(bins[:, :k], axis=1, out=tp)  # TP_g (every total <= N: no lane carries)
        fge = w.buf("bin.fge", (p, k), np.uint64)
        np.add(bins[:, k : 2 * k], bins[:, 2 * k :], out=fge)
        np.cumsum(fge, axis=1, out=fge)  # FP>=_g

        def floats(packed: np.ndarray, name: str) -> np.ndarray:  # (p, k) packed -> (p, k, nl) float64
            f = w.buf(name, (p, k, nl), np.float64)
            np.copyto(f, lanes.lane_view(packed))
            return f

        def lane_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # sum_g a b per column, (c,)
            return np.concatenate([np.diagonal(a[r].T @ b[r]) for r in range(p)])[:c]

        tpf = floats(tp, "bin.tpf")
        gain = w.buf("bin.gain", (p, k, nl), np.float64)  # P_g = TP_g - TP_{g-1} (exact)
        gain[:, 0] = tpf[:, 0]
        np.subtract(tpf[:, 1:], tpf[:, :-1], out=gain[:, 1:])
        w_pos = tpf[:, k - 1].reshape(-1)[:c].copy()
        tot = w.total.astype(np.float64)
        defined = (w_pos > 0) & (w_pos < tot)
        if "pr_auc" in metrics:
            np.add(tp, fge, out=fge)  # TP_g + FP>=_g <= N
            everything = floats(fge, "bin.e")
            np.subtract(fge, tp, out=fge)  # back to FP>=_g
            np.maximum(everything, 1.0, out=everything)  # 0 only where P_g = 0 (the term is 0)
            np.divide(tpf, everything, out=everything)  # precision at u_g
            ap = lane_dots(gain, everything)
            out["pr_auc"] = np.where(defined, ap / np.where(defined, w_pos, 1.0), np.nan)
        if "roc_auc" in metrics:
            fp = floats(fge, "bin.fp")
            np.subtract(fge, bins[:, 2 * k :], out=fge)  # FP>_g = FP>=_g - negatives tied at u_g
            fp += floats(fge, "bin.fgt")
            den2 = 2.0 * w_pos * (tot - w_pos)
            out["roc_auc"] = np.where(
                defined, 1.0 - lane_dots(gain, fp) / np.where(defined, den2, 1.0), np.nan
            )
        return out

    def positions(self, metrics: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
        """The prefix positions the requested rank metrics read: parts (tp, ge[, gt]) concatenated."""
        parts: tuple[str, ...] = ("tp", "ge", "gt") if "roc_auc" in metrics else ("tp", "ge")
        if parts not in self._positions:
            self._positions[parts] = np.concatenate([self._at[q] for q in parts]).astype(np.intp)
        return parts, self._positions[parts]

    def prefix_values(self, words: np.ndarray, lanes: Lanes, metrics: Sequence[str]) -> np.ndarray:
        """Prefix-sum the sorted words in place and read them at the metrics' positions.

        Returns (c, P) float64 (exact: the values are counts).
        """
        np.cumsum(words, axis=1, out=words)
        _, at = self.positions(metrics)
        return lanes.unpack(np.take(words, at, axis=1), np.float64)

    def finish_ranks(
        self, vals: np.ndarray, total: np.ndarray, metrics: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """AUROC / AP per column from the prefix values; NaN where a column holds one class only."""
        k = self.k
        out: dict[str, np.ndarray] = {}
        if k == 0:  # no positive item at all
            for m in ("roc_auc", "pr_auc"):
                if m in metrics:
                    out[m] = np.full(total.size, np.nan)
            return out
        tp = vals[:, :k]  # positive weight scoring >= u_g
        ge = vals[:, k : 2 * k]  # W+ + negative weight scoring >= u_g
        w_pos = tp[:, k - 1].copy()
        tot = total.astype(np.float64)
        defined = (w_pos > 0) & (w_pos < tot)
        p_g = np.empty_like(tp)  # P_g = TP_g - TP_{g-1}
        p_g[:, 0] = tp[:, 0]
        np.subtract(tp[:, 1:], tp[:, :-1], out=p_g[:, 1:])
        if "roc_auc" in metrics:
            # 2 (negatives below u_g + half those tied) = 2 W- - FP>= - FP> = 2 N - ge - gt
            below2 = np.add(ge, vals[:, 2 * k : 3 * k])
            np.subtract((2 * tot)[:, None], below2, out=below2)
            num2 = np.einsum("cg,cg->c", p_g, below2)
            den2 = 2.0 * w_pos * (tot - w_pos)
            out["roc_auc"] = np.where(defined, num2 / np.where(defined, den2, 1.0), np.nan)
        if "pr_auc" in metrics:
            # precision at u_g = TP_g / (everything scoring >= u_g); where P_g = 0 the term is 0
            everything = np.subtract(tp, w_pos[:, None])
            everything += ge
            np.maximum(everything, 1.0, out=everything)
            np.divide(tp, everything, out=everything)
            ap = np.einsum("cg,cg->c", p_g, everything)
            out["pr_auc"] = np.where(defined, ap / np.where(defined, w_pos, 1.0), np.nan)
        return out

    @staticmethod
    def finish_linear(linear: np.ndarray, total: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
        """Brier and ECE-15 from ``(sum w (p-y)^2, sum w (y-p) per ECE bin)`` per column."""
        out: dict[str, np.ndarray] = {}
        total_f = total.astype(np.float64)
        if "brier" in metrics:
            out["brier"] = linear[:, 0] / total_f
        if "ece_15" in metrics:
            out["ece_15"] = np.abs(linear[:, 1:]).sum(axis=1) / total_f
        return out

    def linear(self, w: Weights) -> np.ndarray:
        """(c, 1 + ECE_BINS): ``sum w (p-y)^2`` and ``sum w (y-p)`` per ECE bin, from the words gathered
        into ECE-bin order (one gather for all lanes, then one matrix-vector product per bin)."""
        lanes = w.lanes
        words = _take_rows(lanes.words, self.ece_order, w.buf("bin.ece", lanes.words.shape, np.uint64))
        wf = w.buf("bin.ece_f64", (self.n_items, lanes.n_lanes), np.float64)
        nl = lanes.n_lanes
        out = np.zeros((lanes.n_words * nl, 1 + ECE_BINS))
        for r in range(lanes.n_words):
            np.copyto(wf, lanes.lane_view(words)[r])
            rows = out[r * nl : (r + 1) * nl]
            rows[:, 0] = wf.T @ self.brier_sorted
            for k in range(ECE_BINS):
                lo, hi = self.ece_bounds[k], self.ece_bounds[k + 1]
                if hi > lo:
                    rows[:, 1 + k] = wf[lo:hi].T @ self.gap_sorted[lo:hi]
        return out[: w.n_columns]

    def score(self, w: Weights, metrics: Sequence[str] = BINARY_METRICS) -> dict[str, np.ndarray]:
        """Metric values per weight column (only the requested metrics are computed)."""
        out: dict[str, np.ndarray] = {}
        if "brier" in metrics or "ece_15" in metrics:
            out.update(self.finish_linear(self.linear(w), w.total, metrics))
        if "roc_auc" in metrics or "pr_auc" in metrics:
            out.update(self.rank_scores(w, metrics))
        return out


# --------------------------------------------------------------------------------- regression kernel
def _padded_totals(w: Weights) -> np.ndarray:
    """Column totals laid out as the lanes, (word rows, lanes); unused lanes 0."""
    lanes = w.lanes
    tot = np.zeros(lanes.n_words * lanes.n_lanes, dtype=np.int64)
    tot[: w.n_columns] = w.total
    return tot.reshape(lanes.n_words, lanes.n_lanes)


@dataclass
class YSide:
    """Per-column y-rank information shared by every handle of a regression outcome.

    ``b2`` (word rows, Gy, lanes) is twice the centred average y-rank of each y group (ascending y)
    in each column, laid out like the weights' lanes (a workspace buffer when the weights have one:
    valid until the next :meth:`RegressionTarget.side` on that workspace);
    ``den_y = 4 sum w b^2 = (N^3 - sum_g W_g^3) / 3`` (c,) is an exact integer, 0 exactly when a column
    holds a single y value (R^2 and Spearman undefined).
    """

    b2: np.ndarray
    den_y: np.ndarray


class RegressionTarget:
    """The y side of a regression outcome: sorted order and groups of equal targets, mean for R^2."""

    def __init__(self, y_true: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.float64)
        self.y = y
        self.n_items = int(y.size)
        self.mean = float(y.mean())
        self.order, self.ends, gid_sorted = _sorted_groups(y)
        self.n_groups = int(self.ends.size)
        self.group_sizes = np.diff(self.ends, prepend=-1)
        self.group_of_item = np.empty(self.n_items, dtype=np.intp)
        self.group_of_item[self.order] = gid_sorted
        self.groups = _group_matrix(self.group_of_item, self.n_groups)  # (Gy, items)

    def side(self, w: Weights) -> YSide:
        """Average y-ranks of every column, per y group, from the groups' packed weights (one sparse pass
        per word row) and their prefix over the groups."""
        lanes = w.lanes
        p, nl, ng = lanes.n_words, lanes.n_lanes, self.n_groups
        wg = w.buf("y.wg", (p, ng), np.uint64)
        for r in range(p):
            wg[r] = self.groups @ lanes.words[r]  # W_g of every lane (< 2^bits: no carry)
        end = np.cumsum(wg, axis=1)  # E_g
        # float64 is exact here: every value, and every partial sum below, is an integer <= N^3 < 2^53
        ef = w.buf("y.e", (p, ng, nl), np.float64)
        np.copyto(ef, lanes.lane_view(end))
        b2 = w.buf("y.b2", (p, ng, nl), np.float64)
        b2[:, 0] = ef[:, 0]
        np.add(ef[:, 1:], ef[:, :-1], out=b2[:, 1:])  # S_g + E_g
        if w.n_columns and bool(np.all(w.total == w.total[0])):  # bootstrap: one N (unused lanes: garbage)
            b2 -= float(w.total[0])
        else:
            b2 -= _padded_totals(w).astype(np.float64)[:, None, :]  # - N of each column
        wb = w.buf("y.wb", (p, ng, nl), np.float64)
        np.copyto(wb, lanes.lane_view(wg))
        wb *= b2
        den = np.empty((p, nl))
        for r in range(p):  # den_y = 4 sum w b^2 = sum_g W_g b2_g^2
            den[r] = np.diagonal(wb[r].T @ b2[r])
        return YSide(b2, den.reshape(-1)[: w.n_columns])

    def unit_b2(self) -> tuple[np.ndarray, float]:
        """2 * centred average y-rank per item (item order) with unit weights, and ``4 sum b^2``."""
        n = self.n_items
        start = self.ends - self.group_sizes + 1  # first sorted position of each group
        b2g = start + self.ends + 1 - n  # S_g + E_g - N with unit weights
        b2 = b2g[self.group_of_item].astype(np.int64)
        return b2, float((float(n) ** 3 - float(_cube_sum(self.group_sizes, axis=0))) / 3.0)


class RegressionScores:
    """Precomputed structure of one handle's regression predictions: Spearman, R^2, MAE, RMSE kernels.

    Items are sorted by prediction once. In a column, twice the x-rank of item i plus N is
    ``A_i = S_g + E_g`` (weight strictly below / at or below its tie group g), so the Spearman
    numerator is ``4 sum w a b = sum_i t_i b2_i`` with ``t_i = w_i A_i`` (the ``N`` term drops because
    the centred y ranks sum to zero) and ``b2_i`` the item's y-group value of :class:`YSide`, looked
    up by a fixed index. Without tied predictions ``t_i = C_i^2 - C_{i-1}^2`` (C the inclusive prefix
    in x order), one square and one difference. The x denominator is ``4 sum w a^2 =
    (N^3 - sum_g W_g^3) / 3`` over the tie groups (the items themselves without ties: the cube sums of
    the counts, shared by every handle). The prefix sums run on the packed words; ``t`` and ``b2`` are
    item-major (items x lanes) float64 arrays of exact integers, and every partial sum of
    ``sum t b2`` stays below ``N^3 < 2^53``.
    """

    def __init__(self, target: RegressionTarget, y_pred: np.ndarray) -> None:
        x = np.asarray(y_pred, dtype=np.float64)
        y = target.y
        if x.size != y.size:
            raise ValueError(f"{x.size} predictions for {y.size} targets")
        self.n_items = int(x.size)
        self.order, self.ends, gid_sorted = _sorted_groups(x)
        self.n_groups = int(self.ends.size)
        self.ties = self.n_groups < self.n_items
        self.gid_sorted = gid_sorted.astype(np.intp)
        self.y_group_sorted = target.group_of_item[self.order]  # y group of each x-sorted item
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

    def spearman(self, w: Weights, side: YSide) -> np.ndarray:
        """Spearman rho per column; NaN where x or y is constant in the column."""
        lanes = w.lanes
        p, nl, m = lanes.n_words, lanes.n_lanes, w.n_items
        words = _take_rows(lanes.words, self.order, w.buf("x.sorted", lanes.words.shape, np.uint64))
        np.cumsum(words, axis=1, out=words)
        cum = lanes.lane_view(words)  # (p, m, nl): prefix C in x order
        n3 = w.total.astype(np.float64) ** 3
        if not self.ties:
            den_x = (n3 - w.cube_sums) / 3.0
        else:
            wide = np.dtype(np.uint32 if lanes.bits == 16 else np.uint64)  # holds N^2
            end = lanes.lane_view(np.take(words, self.ends, axis=1)).astype(wide)  # E_g, (p, Gx, nl)
            ag = end.copy()
            ag[:, 1:] += end[:, :-1]  # S_g + E_g
            t = w.buf("x.t", cum.shape, wide)
            for r in range(p):
                np.take(ag[r], self.gid_sorted, axis=0, out=t[r], mode="clip")  # A_i
            cnt = w.buf("x.w", cum.shape, lanes.lane_dtype)
            cnt[:, 0] = cum[:, 0]
            np.subtract(cum[:, 1:], cum[:, :-1], out=cnt[:, 1:])  # w_i
            t *= cnt  # t_i = w_i A_i <= W_g (S_g + E_g) = E_g^2 - S_g^2 <= N^2
            wg = np.diff(end.astype(np.float64), axis=1, prepend=0.0)  # W_g
            den_x = (n3 - np.sum(wg * wg * wg, axis=1).reshape(-1)[: w.n_columns]) / 3.0
        # sum_i t_i b2_i, one block of items at a time so that the float64 operands stay in cache;
        # every value and every partial sum is an integer of at most N^3 < 2^53 (exact in float64)
        blk = min(m, SPEARMAN_BLOCK)
        sq = w.buf("x.sq", (blk + 1, nl), np.float64)  # row 0 carries C_{i-1}^2 across blocks
        tf = w.buf("x.t64", (blk, nl), np.float64)
        b = w.buf("x.b", (blk, nl), np.float64)
        num = np.empty((p, nl))
        for r in range(p):
            acc = np.zeros((nl, nl))
            sq[0] = 0.0
            for a in range(0, m, blk):
                k = min(m, a + blk) - a
                if not self.ties:  # t_i = C_i^2 - C_{i-1}^2 = w_i (C_i + C_{i-1})
                    cur = sq[1 : k + 1]
                    np.copyto(cur, cum[r, a : a + k])
                    np.multiply(cur, cur, out=cur)
                    np.subtract(cur, sq[:k], out=tf[:k])
                    sq[0] = cur[k - 1]
                else:
                    np.copyto(tf[:k], t[r, a : a + k])
                np.take(side.b2[r], self.y_group_sorted[a : a + k], axis=0, out=b[:k], mode="clip")
                acc += tf[:k].T @ b[:k]  # BLAS
            num[r] = np.diagonal(acc)
        c = w.n_columns
        den = den_x * side.den_y  # (4 sum w a^2)(4 sum w b^2)
        ok = den > 0
        return np.where(ok, num.reshape(-1)[:c] / np.sqrt(np.where(ok, den, 1.0)), np.nan)

    def score(
        self, w: Weights, side: YSide | None, metrics: Sequence[str] = REGRESSION_METRICS
    ) -> dict[str, np.ndarray]:
        """Metric values per column; ``side`` (:meth:`RegressionTarget.side`) is needed for Spearman.

        Spearman is NaN where x or y is constant in a column, R^2 where y is.
        """
        out: dict[str, np.ndarray] = {}
        n_tot = w.total.astype(np.float64)
        if any(m in metrics for m in ("r2", "mae", "rmse")):
            linear = w.dot(self.linear_design)
            s_abs, s_sq, s_y, s_yy = linear.T
            if "mae" in metrics:
                out["mae"] = s_abs / n_tot
            if "rmse" in metrics:
                out["rmse"] = np.sqrt(s_sq / n_tot)
            if "r2" in metrics:
                ok = side.den_y > 0 if side is not None else self._y_varies(w, linear)
                ss_tot = s_yy - s_y * s_y / n_tot
                out["r2"] = np.where(ok, 1.0 - s_sq / np.where(ok, ss_tot, 1.0), np.nan)
        if "spearman_rho" in metrics:
            if side is None:
                raise ValueError("Spearman needs the y side of the weights (RegressionTarget.side)")
            out["spearman_rho"] = self.spearman(w, side)
        return out


# --------------------------------------------------------------------------- swap permutation kernels
def _swap_linear(
    design0: np.ndarray, design1: np.ndarray, swap: np.ndarray, ws: Workspace | None
) -> tuple[np.ndarray, np.ndarray]:
    """Linear aggregates of both permuted handles: handle 0 takes handle 1's row where ``swap``.

    ``sum_a design0[a] + swap[j, a] (design1[a] - design0[a])`` and the mirror image for handle 1.
    """
    diff = design1 - design0
    s = _buf(ws, "swap.f64", swap.shape, np.float64)
    np.copyto(s, swap)
    moved = s @ diff
    return design0.sum(axis=0) + moved, design1.sum(axis=0) - moved


def _handle0_mask(cache: dict[int, np.ndarray], from_handle0: np.ndarray, lanes: Lanes) -> np.ndarray:
    """All-lanes-one words at the pooled positions holding handle 0's items, 0 elsewhere (cached)."""
    if lanes.bits not in cache:
        cache[lanes.bits] = np.where(from_handle0, lanes.ones_word(), np.uint64(0))
    return cache[lanes.bits]


def _pack_bits(swap: np.ndarray, ws: Workspace | None) -> Lanes:
    """Swap masks (c, n) as packed words (one lane per permutation)."""
    c, n = swap.shape
    lanes = Lanes(c, n, n, ws)
    view = lanes.lane_view(lanes.words)
    for j in range(c):
        view[j // lanes.n_lanes, :, j % lanes.n_lanes] = swap[j]
    lanes.clear_unused()
    return lanes


class SwapBinary:
    """Both permuted handles of a paired swap test on binary predictions, from one gather per chunk.

    Pooled items are ``[handle 0 items; handle 1 items]``; permuted handle 0 takes the pooled item of
    handle 1 for admission ``a`` where ``swap[a]``, permuted handle 1 takes the other one. In the
    pooled kernel's order the packed 0/1 weight of permuted handle 0 is ``swap_word[a] XOR ones``
    (handle-0 items) or ``swap_word[a]`` (handle-1 items); handle 1's prefix is ``position + 1`` minus
    handle 0's, so one prefix sum serves both.
    """

    def __init__(self, y_true: np.ndarray, pred0: np.ndarray, pred1: np.ndarray) -> None:
        n = int(y_true.size)
        self.n = n
        self.kernel = BinaryScores(
            np.concatenate([y_true, y_true]), np.concatenate([pred0, pred1]), rank_bins=False
        )
        self.admission = (self.kernel.order % n).astype(np.intp)
        self.from_handle0 = self.kernel.order < n
        self.design0 = self.kernel.linear_design[:n]
        self.design1 = self.kernel.linear_design[n:]
        self._masks: dict[int, np.ndarray] = {}

    def _handle0_mask(self, lanes: Lanes) -> np.ndarray:
        """Per pooled position, the word that turns a swap bit into handle 0's weight (XOR)."""
        return _handle0_mask(self._masks, self.from_handle0, lanes)

    def score(
        self, swap: np.ndarray, metrics: Sequence[str], ws: Workspace | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Metric values of permuted handle 0 and permuted handle 1 per swap row (c, n) bool."""
        c, n = swap.shape
        total = np.full(c, n, dtype=np.int64)
        out0: dict[str, np.ndarray] = {}
        out1: dict[str, np.ndarray] = {}
        if "brier" in metrics or "ece_15" in metrics:
            lin0, lin1 = _swap_linear(self.design0, self.design1, swap, ws)
            out0.update(BinaryScores.finish_linear(lin0, total, metrics))
            out1.update(BinaryScores.finish_linear(lin1, total, metrics))
        if "roc_auc" in metrics or "pr_auc" in metrics:
            lanes = _pack_bits(swap, ws)
            words = _take_rows(
                lanes.words, self.admission, _buf(ws, "swap.sorted", (lanes.n_words, 2 * n), np.uint64)
            )
            words ^= self._handle0_mask(lanes)
            vals0 = self.kernel.prefix_values(words, lanes, metrics)
            _, at = self.kernel.positions(metrics)
            vals1 = (at + 1)[None, :] - vals0
            out0.update(self.kernel.finish_ranks(vals0, total, metrics))
            out1.update(self.kernel.finish_ranks(vals1, total, metrics))
        return out0, out1


class SwapRegression:
    """Both permuted handles of a paired swap test on regression predictions.

    The y ranks do not move under a swap (every admission stays exactly once), so each pooled item k
    (pooled x order) carries the fixed ``2b`` of its admission, ``b2_k``. Permuted handle 0's 0/1
    weights ``w`` in that order are a gather of the packed swap bits; with ``C`` their prefix sum its
    Spearman numerator is ``sum w (2C - 1) b2 = 2 S1`` and handle 1's (weights ``1 - w``, prefix
    ``k + 1 - C``) is ``K0 - S2 - 2 S3 + 2 S1``, with ``S1 = sum w C b2``, ``S2 = sum w (2k + 1) b2``,
    ``S3 = sum C b2``, ``K0 = sum (2k + 1) b2`` (``sum w b2 = 0``: each admission is selected once).
    Without x ties both x denominators are ``(n^3 - n) / 3``.
    """

    def __init__(self, y_true: np.ndarray, pred0: np.ndarray, pred1: np.ndarray) -> None:
        n = int(y_true.size)
        self.n = n
        target = RegressionTarget(y_true)
        b2, self.den_y = target.unit_b2()
        self.order, self.ends, _ = _sorted_groups(np.concatenate([pred0, pred1]))
        self.ties = self.ends.size < 2 * n
        self.admission = (self.order % n).astype(np.intp)
        self.from_handle0 = self.order < n
        self._masks: dict[int, np.ndarray] = {}
        self.b2 = b2[self.admission]  # int64, pooled x order
        rank_b2 = (2 * np.arange(2 * n, dtype=np.int64) + 1) * self.b2
        self.k0 = rank_b2.sum()  # int64, exact
        # float64 (BLAS) when every partial sum (at most 8 n^3) is an exact integer, else int64
        self.dtype = np.float64 if 8.0 * float(n) ** 3 < 2.0**53 else np.int64
        self.fixed = np.stack([self.b2, rank_b2], axis=1).astype(self.dtype)  # (2n, 2)
        self.group_sizes = np.diff(self.ends, prepend=-1)
        self.group_starts = self.ends - self.group_sizes + 1
        self.design0 = RegressionScores(target, pred0).linear_design
        self.design1 = RegressionScores(target, pred1).linear_design
        self.y_varies = target.n_groups > 1

    def score(
        self, swap: np.ndarray, metrics: Sequence[str], ws: Workspace | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Metric values of permuted handle 0 and permuted handle 1 per swap row (c, n) bool."""
        c, n = swap.shape
        nf = float(n)
        out0: dict[str, np.ndarray] = {}
        out1: dict[str, np.ndarray] = {}
        if any(m in metrics for m in ("r2", "mae", "rmse")):
            lins = _swap_linear(self.design0, self.design1, swap, ws)
            for lin, out in zip(lins, (out0, out1), strict=True):
                s_abs, s_sq, s_y, s_yy = lin.T
                if "mae" in metrics:
                    out["mae"] = s_abs / nf
                if "rmse" in metrics:
                    out["rmse"] = np.sqrt(s_sq / nf)
                if "r2" in metrics:
                    ss_tot = s_yy - s_y * s_y / nf
                    out["r2"] = 1.0 - s_sq / ss_tot if self.y_varies else np.full(c, np.nan)
        if "spearman_rho" in metrics:
            num0, den0, num1, den1 = self._spearman(swap, ws)
            for num, den_x, out in ((num0, den0, out0), (num1, den1, out1)):
                den = den_x * self.den_y
                ok = den > 0
                out["spearman_rho"] = np.where(ok, num / np.sqrt(np.where(ok, den, 1.0)), np.nan)
        return out0, out1

    def _spearman(
        self, swap: np.ndarray, ws: Workspace | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Spearman numerators and x denominators (``4 sum w a b``, ``4 sum w a^2``) of both handles."""
        c, n = swap.shape
        m = 2 * n
        nf = float(n)
        lanes = _pack_bits(swap, ws)
        nl = lanes.n_lanes
        words = _take_rows(lanes.words, self.admission, _buf(ws, "sr.sorted", (lanes.n_words, m), np.uint64))
        words ^= _handle0_mask(self._masks, self.from_handle0, lanes)  # handle 0 keeps the unswapped
        np.cumsum(words, axis=1, out=words)
        prefix = lanes.lane_view(words)
        cum = _buf(ws, "sr.C", (m, nl), self.dtype)
        wts = _buf(ws, "sr.W", (m, nl), self.dtype)
        res = np.empty((4, lanes.n_words, nl))
        for r in range(lanes.n_words):
            np.copyto(cum, prefix[r])
            wts[0] = cum[0]
            np.subtract(cum[1:], cum[:-1], out=wts[1:])  # 0/1 weights of handle 0
            if not self.ties:
                s3 = cum.T @ self.fixed[:, 0]
                s2 = wts.T @ self.fixed[:, 1]
                wts *= cum
                s1 = wts.T @ self.fixed[:, 0]
                res[0, r] = 2 * s1
                res[2, r] = self.k0 - s2 - 2 * s3 + 2 * s1
                res[1, r] = res[3, r] = (nf**3 - nf) / 3.0
                continue
            # tied predictions: per tie group g, A_g = S_g + E_g and U_g = sum over the group of w b2
            end0 = np.take(cum, self.ends, axis=0).astype(np.int64)
            wg0 = np.diff(end0, axis=0, prepend=0)
            end1 = (self.ends + 1)[:, None] - end0
            wg1 = self.group_sizes[:, None] - wg0
            u0 = np.add.reduceat(wts.astype(np.int64) * self.b2[:, None], self.group_starts, axis=0)
            u1 = np.add.reduceat(self.b2, self.group_starts)[:, None] - u0
            res[0, r] = np.einsum("gl,gl->l", 2 * end0 - wg0, u0, dtype=np.int64)
            res[2, r] = np.einsum("gl,gl->l", 2 * end1 - wg1, u1, dtype=np.int64)
            res[1, r] = (nf**3 - _cube_sum(wg0, axis=0)) / 3.0
            res[3, r] = (nf**3 - _cube_sum(wg1, axis=0)) / 3.0
        num0, den0, num1, den1 = (v.reshape(-1)[:c] for v in res)
        return num0, den0, num1, den1


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

    Inputs are assumed validated (see :func:`validate_arrays`); ``w`` has one entry per item.
    """
    if task_type == "classification":
        return {h: BinaryScores(y_true, p).score(w, metrics) for h, p in preds.items()}
    target = RegressionTarget(y_true)
    side = target.side(w) if "spearman_rho" in metrics else None
    return {h: RegressionScores(target, p).score(w, side, metrics) for h, p in preds.items()}
