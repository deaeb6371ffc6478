"""Paired bootstrap CIs and paired permutation tests, all resamples of a chunk scored in one pass.

Resampling scheme (details and conventions in ``docs/statistics.md``):

* Items are the evaluated admissions sorted by ``hadm_id``. The random streams are a pure function of
  (seed, key, sorted id set): ``key`` is the outcome name, the id set is hashed (SHA-256), and resample
  ``b`` draws from its own ``SeedSequence(entropy=[seed, *hash], spawn_key=(purpose, b))``. So the
  indices do not depend on the chunk size, on which handles are scored together, or on run order;
  one handle scored alone gets the very same resamples as in its family run when the id sets match.
* Bootstrap resample ``b``: ``n`` indices drawn uniformly with replacement (``Generator.integers``),
  turned into per-item multiplicities. Every handle of the family is scored on the same resamples,
  so per-resample deltas are paired.
* Permutation ``p``: one fair coin per admission; where it is heads the two handles' predictions are
  swapped. Implemented as 0/1 weights over the pooled list ``[handle0 items, handle1 items]``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from irbench_assets.stats.metrics import (
    HIGHER_IS_BETTER,
    BinaryScores,
    RegressionScores,
    RegressionTarget,
    SwapBinary,
    SwapRegression,
    Weights,
    Workspace,
    as_py,
    check_metric_names,
    validate_arrays,
)

DEFAULT_SEED = 42
N_RESAMPLES = 2000
N_PERMUTATIONS = 2000
CONFIDENCE = 0.95
# Resamples scored per pass, as a number of (resample x item) weights: small enough that a chunk's
# gathered and prefix-summed arrays stay in cache (measured fastest at n = 60,000, 2 shared cores).
CHUNK_ELEMENTS = {"classification": 1 << 19, "regression": 1 << 19}
MAX_CHUNK = 256
# Upper bound of the per-plan cache of packed swap bits (2000 permutations × 60,000 items = 15 MB).
SWAP_CACHE_BYTES = 64 << 20


def auto_chunk(n_items: int, task_type: str = "classification") -> int:
    """Default number of resamples per chunk for ``n_items`` admissions."""
    return int(min(MAX_CHUNK, max(4, CHUNK_ELEMENTS[task_type] // max(n_items, 1))))


# |delta_perm| >= |delta_obs| - TIE_RTOL * scale counts as "at least as extreme" (scale = max(1, |m0|, |m1|)):
# absorbs float rounding so that exactly tied permutation deltas are never lost to the last bit.
TIE_RTOL = 1e-10
_PURPOSE_BOOTSTRAP = 0
_PURPOSE_PERMUTATION = 1


# ------------------------------------------------------------------------------------------ streams
def stream_entropy(ids: np.ndarray | Sequence[object], key: str, seed: int = DEFAULT_SEED) -> tuple[int, ...]:
    """Entropy words of the random streams for one (key, id set): ``seed`` then SHA-256 of key and ids.

    ``ids`` must be sorted and unique (the item order of the resamples). Integer ids hash as
    little-endian int64, anything else as its ``str`` joined by U+001F.
    """
    arr = np.asarray(ids)
    h = hashlib.sha256(b"irbench-stats-v1\x00" + key.encode() + b"\x00")
    if arr.dtype.kind in "iu":
        h.update(arr.astype("<i8").tobytes())
    else:
        h.update("\x1f".join(str(x) for x in arr.tolist()).encode())
    words = np.frombuffer(h.digest(), dtype="<u4")
    return (int(seed), *(int(x) for x in words))


@dataclass(frozen=True)
class ResamplePlan:
    """The bootstrap resamples and swap permutations of one (outcome, admission set).

    ``bootstrap_indices(b)`` / ``swap_mask(p)`` give one draw (for reference loops and tests);
    ``bootstrap_weights`` / ``swap_weights`` give a chunk of draws as a weight matrix for the kernels.
    """

    n_items: int
    entropy: tuple[int, ...]
    n_resamples: int = N_RESAMPLES
    n_permutations: int = N_PERMUTATIONS
    # Packed swap bits of all permutations, drawn once: every pair of a family uses the same plan, and
    # building one generator per permutation costs ~35 µs, which dominated small-n (demo) families.
    _cache: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_ids(
        cls,
        ids: np.ndarray | Sequence[object],
        key: str,
        *,
        seed: int = DEFAULT_SEED,
        n_resamples: int = N_RESAMPLES,
        n_permutations: int = N_PERMUTATIONS,
    ) -> ResamplePlan:
        """The plan of a sorted, unique id set (see :func:`stream_entropy`)."""
        arr = np.asarray(ids)
        if arr.size == 0:
            raise ValueError(f"{key!r}: no admissions to resample")
        if arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1])):
            raise ValueError(f"{key!r}: ids must be sorted and unique to define the resample order")
        return cls(int(arr.size), stream_entropy(arr, key, seed), n_resamples, n_permutations)

    def _rng(self, purpose: int, i: int) -> np.random.Generator:
        ss = np.random.SeedSequence(list(self.entropy), spawn_key=(purpose, i))
        return np.random.Generator(np.random.PCG64(ss))

    def bootstrap_indices(self, b: int) -> np.ndarray:
        """Item indices of bootstrap resample ``b`` (n draws with replacement)."""
        return self._rng(_PURPOSE_BOOTSTRAP, b).integers(0, self.n_items, self.n_items)

    def swap_mask(self, p: int) -> np.ndarray:
        """Swap decisions of permutation ``p``: True where the two handles' predictions trade places."""
        raw = self._rng(_PURPOSE_PERMUTATION, p).bytes((self.n_items + 7) // 8)
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=self.n_items, bitorder="little")
        return bits.astype(bool)

    def bootstrap_weights(self, start: int, stop: int, ws: Workspace | None = None) -> Weights:
        """Multiplicities of bootstrap resamples ``start..stop-1`` (one row per resample), counted lazily."""
        indices = [self.bootstrap_indices(b) for b in range(start, stop)]
        return counts_from_indices(indices, self.n_items, ws)

    def _swap_bits(self) -> np.ndarray | None:
        """All permutations' swap decisions as packed bits (cached), or None when they would exceed the cap."""
        nbytes = (self.n_items + 7) // 8
        if self.n_permutations * nbytes > SWAP_CACHE_BYTES:
            return None
        bits = self._cache.get("swap")
        if bits is None:
            bits = np.empty((self.n_permutations, nbytes), dtype=np.uint8)
            for p in range(self.n_permutations):
                bits[p] = np.frombuffer(self._rng(_PURPOSE_PERMUTATION, p).bytes(nbytes), dtype=np.uint8)
            self._cache["swap"] = bits
        return bits

    def swap_masks(self, start: int, stop: int) -> np.ndarray:
        """Swap decisions of permutations ``start..stop-1``: (permutations, items) bool."""
        bits = self._swap_bits()
        if bits is not None and stop <= self.n_permutations:
            return np.unpackbits(bits[start:stop], axis=1, count=self.n_items, bitorder="little").astype(bool)
        out = np.empty((stop - start, self.n_items), dtype=bool)
        for j, p in enumerate(range(start, stop)):
            out[j] = self.swap_mask(p)
        return out

    def swap_weights(self, start: int, stop: int, ws: Workspace | None = None) -> Weights:
        """0/1 selections over the pooled items ``[handle0; handle1]`` giving permuted handle 0."""
        n = self.n_items
        shape = (stop - start, 2 * n)
        cols = np.empty(shape, dtype=np.int32) if ws is None else ws.get("swap.cols", shape, np.int32)
        swap = self.swap_masks(start, stop)
        cols[:, :n] = ~swap
        cols[:, n:] = swap
        return Weights(cols, total=np.full(stop - start, n, dtype=np.int64), ws=ws)


def counts_from_indices(indices: Sequence[np.ndarray], n_items: int, ws: Workspace | None = None) -> Weights:
    """Per-item multiplicities of resamples given as index arrays (one row per resample).

    The counting itself happens on first use, straight into the layout the kernels ask for.
    """
    return Weights.from_indices(indices, n_items, ws)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    if total == 0:
        return
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")
    for start in range(0, total, size):
        yield start, min(total, start + size)


# ----------------------------------------------------------------------------------------- scoring
class Scorer:
    """Kernels of several handles on the same items, built once and applied to chunk after chunk.

    ``Scorer(y, preds, task_type, metrics)(w)`` -> handle -> metric -> one value per weight column.
    The weights' counts, packed words and y ranks are computed once per chunk and shared by all handles.
    """

    def __init__(
        self, y_true: np.ndarray, preds: Mapping[str, np.ndarray], task_type: str, metrics: Sequence[str]
    ):
        self.task_type = task_type
        self.metrics = tuple(metrics)
        if task_type == "classification":
            self.binary = {h: BinaryScores(y_true, p) for h, p in preds.items()}
        else:
            self.target = RegressionTarget(y_true)
            self.regression = {h: RegressionScores(self.target, p) for h, p in preds.items()}

    def __call__(self, w: Weights) -> dict[str, dict[str, np.ndarray]]:
        ms = self.metrics
        if self.task_type == "classification":
            return {h: e.score(w, ms) for h, e in self.binary.items()}
        side = self.target.side(w) if "spearman_rho" in ms else None
        return {h: e.score(w, side, ms) for h, e in self.regression.items()}


def bootstrap_distributions(
    y_true: np.ndarray,
    preds: Mapping[str, np.ndarray],
    task_type: str,
    plan: ResamplePlan,
    metrics: Sequence[str] | None = None,
    *,
    chunk_size: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Metric value of every handle on every bootstrap resample: handle -> metric -> (n_resamples,).

    Arrays must already be in the plan's item order and validated. NaN marks undefined resamples.
    """
    names = check_metric_names(task_type, metrics)
    scorer = Scorer(y_true, preds, task_type, names)
    out = {h: {m: np.empty(plan.n_resamples) for m in names} for h in preds}
    ws = Workspace()
    for start, stop in _chunks(plan.n_resamples, chunk_size or auto_chunk(plan.n_items, task_type)):
        vals = scorer(plan.bootstrap_weights(start, stop, ws))
        for h in preds:
            for m in names:
                out[h][m][start:stop] = vals[h][m]
    return out


def permutation_distribution(
    y_true: np.ndarray,
    pred0: np.ndarray,
    pred1: np.ndarray,
    task_type: str,
    plan: ResamplePlan,
    metrics: Sequence[str] | None = None,
    *,
    chunk_size: int | None = None,
) -> tuple[dict[str, tuple[float, float]], dict[str, np.ndarray]]:
    """Observed (metric0, metric1) and the permuted deltas ``metric1' - metric0'`` per metric.

    Both permuted handles of a chunk come from one pass: the rank metrics read handle 1's prefix sums
    as the complement of handle 0's (see :class:`SwapBinary`, :class:`SwapRegression`).
    """
    names = check_metric_names(task_type, metrics)
    if task_type == "classification":
        kernel: SwapBinary | SwapRegression = SwapBinary(y_true, pred0, pred1)
    else:
        kernel = SwapRegression(y_true, pred0, pred1)
    obs0, obs1 = kernel.score(np.zeros((1, plan.n_items), dtype=bool), names)
    observed = {m: (float(obs0[m][0]), float(obs1[m][0])) for m in names}
    deltas = {m: np.empty(plan.n_permutations) for m in names}
    ws = Workspace()
    for start, stop in _chunks(plan.n_permutations, chunk_size or auto_chunk(plan.n_items, task_type)):
        v0, v1 = kernel.score(plan.swap_masks(start, stop), names, ws)
        for m in names:
            deltas[m][start:stop] = v1[m] - v0[m]
    return observed, deltas


def percentile_ci(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, int]:
    """Percentile interval over the finite values (linear interpolation) and how many were finite."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan"), 0
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(finite, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(lo), float(hi), int(finite.size)


def permutation_pvalue(observed: float, permuted: np.ndarray, scale: float = 1.0) -> tuple[float, int]:
    """Two-sided add-one p-value ``(k + 1) / (n + 1)``; k counts finite ``|d_perm| >= |d_obs|`` (tie-tolerant)."""
    finite = permuted[np.isfinite(permuted)]
    if not np.isfinite(observed) or finite.size == 0:
        return float("nan"), int(finite.size)
    tol = TIE_RTOL * max(1.0, abs(scale))
    k = int(np.count_nonzero(np.abs(finite) >= abs(observed) - tol))
    return (k + 1) / (finite.size + 1), int(finite.size)


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class HandleMetric:
    """Point estimate and percentile CI of one metric of one handle; ``n_finite`` resamples were defined."""

    handle: str
    metric: str
    higher_is_better: bool
    n_eval: int
    point: float
    ci_lo: float
    ci_hi: float
    n_finite: int
    n_resamples: int


@dataclass(frozen=True)
class PairMetric:
    """One paired comparison: metrics, delta = metric1 - metric0 with bootstrap CI, permutation p-value."""

    handle0: str
    handle1: str
    metric: str
    higher_is_better: bool
    n_eval_common: int
    metric0: float
    metric1: float
    delta_raw: float
    delta_ci_lo_raw: float
    delta_ci_hi_raw: float
    p_raw: float
    n_boot_finite: int
    n_perm_finite: int

    @property
    def delta_better(self) -> float:
        """Delta oriented so that positive means handle1 is better."""
        return self.delta_raw if self.higher_is_better else -self.delta_raw


@dataclass
class FamilyResult:
    """Per-handle metrics and pairwise comparisons of one outcome; optional raw distributions."""

    handles: list[HandleMetric]
    pairs: list[PairMetric]
    bootstrap: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    permutation: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


def _align(
    ids: np.ndarray | Sequence[object],
    y_true: np.ndarray | Sequence[float],
    preds: Mapping[str, np.ndarray | Sequence[float]],
    task_type: str,
    outcome: str,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Validate and sort by id: (sorted ids, y_true, handle -> y_pred) in the resample item order."""
    if not preds:
        raise ValueError(f"outcome {outcome!r}: no handles given")
    id_arr = np.asarray(ids)
    if id_arr.ndim != 1 or id_arr.size == 0:
        raise ValueError(f"outcome {outcome!r}: ids must be a non-empty 1-D array")
    order = np.argsort(id_arr, kind="stable")
    sid = id_arr[order]
    dup = np.flatnonzero(sid[1:] == sid[:-1])
    if dup.size:
        raise ValueError(f"outcome {outcome!r}: duplicate id {as_py(sid[dup[0]])!r} ({dup.size} duplicates)")
    yt = None
    out: dict[str, np.ndarray] = {}
    for h, p in preds.items():
        if len(p) != id_arr.size:
            raise ValueError(
                f"outcome {outcome!r}, handle {h!r}: {len(p)} predictions for {id_arr.size} ids (misaligned)"
            )
        yt, yp = validate_arrays(y_true, p, task_type, outcome=outcome, handle=h, ids=id_arr)
        out[h] = yp[order]
    assert yt is not None
    return sid, yt[order], out


def evaluate_family(
    ids: np.ndarray | Sequence[object],
    y_true: np.ndarray | Sequence[float],
    preds: Mapping[str, np.ndarray | Sequence[float]],
    task_type: str,
    *,
    key: str,
    metrics: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    seed: int = DEFAULT_SEED,
    n_resamples: int = N_RESAMPLES,
    n_permutations: int = N_PERMUTATIONS,
    confidence: float = CONFIDENCE,
    chunk_size: int | None = None,
    keep_distributions: bool = False,
) -> FamilyResult:
    """Score aligned handles on one outcome: per-handle point + CI, and paired delta CI + permutation p.

    ``ids``, ``y_true`` and every ``preds[handle]`` are aligned (same admissions, same order); ``key``
    (normally the outcome name) seeds the streams together with the id set. ``pairs`` defaults to all
    pairs in ``preds`` order; delta = metric(handle1) - metric(handle0).
    """
    names = check_metric_names(task_type, metrics)
    sid, yt, aligned = _align(ids, y_true, preds, task_type, key)
    if pairs is None:
        pairs = list(itertools.combinations(list(aligned), 2))
    for a, b in pairs:
        for h in (a, b):
            if h not in aligned:
                raise ValueError(f"outcome {key!r}: pair ({a!r}, {b!r}) names unknown handle {h!r}")
        if a == b:
            raise ValueError(f"outcome {key!r}: pair compares handle {a!r} with itself")
    plan = ResamplePlan.for_ids(sid, key, seed=seed, n_resamples=n_resamples, n_permutations=n_permutations)
    n = plan.n_items
    point = Scorer(yt, aligned, task_type, names)(Weights.ones(n))
    boot = bootstrap_distributions(yt, aligned, task_type, plan, names, chunk_size=chunk_size)
    handles: list[HandleMetric] = []
    for h in aligned:
        for m in names:
            lo, hi, nf = percentile_ci(boot[h][m], confidence)
            handles.append(
                HandleMetric(h, m, HIGHER_IS_BETTER[m], n, float(point[h][m][0]), lo, hi, nf, n_resamples)
            )
    pair_rows: list[PairMetric] = []
    perms: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for a, b in pairs:
        _, deltas = permutation_distribution(
            yt, aligned[a], aligned[b], task_type, plan, names, chunk_size=chunk_size
        )
        perms[(a, b)] = deltas
        for m in names:
            # observed metrics = the handles' own point estimates (bit-identical for identical inputs)
            m0, m1 = float(point[a][m][0]), float(point[b][m][0])
            d = m1 - m0
            lo, hi, nb = percentile_ci(boot[b][m] - boot[a][m], confidence)
            scale = max(abs(m0), abs(m1)) if np.isfinite(d) else 1.0
            p, npf = permutation_pvalue(d, deltas[m], scale)
            pair_rows.append(PairMetric(a, b, m, HIGHER_IS_BETTER[m], n, m0, m1, d, lo, hi, p, nb, npf))
    return FamilyResult(
        handles,
        pair_rows,
        boot if keep_distributions else {},
        perms if keep_distributions else {},
    )


def evaluate_handle(
    ids: np.ndarray | Sequence[object],
    y_true: np.ndarray | Sequence[float],
    y_pred: np.ndarray | Sequence[float],
    task_type: str,
    *,
    key: str,
    handle: str,
    metrics: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    chunk_size: int | None = None,
) -> list[HandleMetric]:
    """One handle alone (the partitioned per-handle asset): identical to its rows of :func:`evaluate_family`
    whenever the id set is the same, because the resamples depend only on (seed, key, id set)."""
    res = evaluate_family(
        ids,
        y_true,
        {handle: y_pred},
        task_type,
        key=key,
        metrics=metrics,
        pairs=[],
        seed=seed,
        n_resamples=n_resamples,
        n_permutations=0,
        confidence=confidence,
        chunk_size=chunk_size,
    )
    return res.handles
