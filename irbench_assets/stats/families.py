"""The seed's statistics tables from the probes' held-out predictions of one experiment.

``build_family_tables`` turns a long predictions frame (one row per handle x outcome x admission) into

* ``all_family_metrics``: per (family, outcome, handle, metric) point estimate and 95 % percentile
  bootstrap CI over that handle's held-out admissions;
* ``all_family_pairwise``: every pair of handles on the admissions all handles share (inner join on
  ``hadm_id``): metrics, delta = metric1 - metric0 with a paired bootstrap CI, two-sided paired
  permutation p-value, BH-adjusted within (family, metric) over all outcomes and pairs;
* ``all_family_pairwise_baseline``: the (baseline, other) rows of the above, BH re-applied within
  (family, metric) on that subset.

Resamples depend only on (seed, outcome, sorted id set), so :func:`handle_metrics_table` (one handle,
the partitioned asset) reproduces the family run's rows exactly when the id sets agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from irbench_assets.stats.metrics import TASK_TYPES, as_py
from irbench_assets.stats.multitest import adjust_within
from irbench_assets.stats.resample import (
    CONFIDENCE,
    DEFAULT_SEED,
    N_PERMUTATIONS,
    N_RESAMPLES,
    HandleMetric,
    evaluate_family,
    evaluate_handle,
)

HELD_OUT = "held_out"
PREDICTION_COLUMNS = ("hadm_id", "outcome", "task_type", "y_true", "y_pred")
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "family_name": pl.String(),
    "task_type": pl.String(),
    "outcome": pl.String(),
    "handle": pl.String(),
    "metric": pl.String(),
    "higher_is_better": pl.Boolean(),
    "n_eval": pl.Int64(),
    "point": pl.Float64(),
    "ci_lo": pl.Float64(),
    "ci_hi": pl.Float64(),
    "pred_path": pl.String(),
}
PAIRWISE_SCHEMA: dict[str, pl.DataType] = {
    "family_name": pl.String(),
    "task_type": pl.String(),
    "outcome": pl.String(),
    "metric": pl.String(),
    "higher_is_better": pl.Boolean(),
    "handle0": pl.String(),
    "handle1": pl.String(),
    "n_eval_common": pl.Int64(),
    "metric0": pl.Float64(),
    "metric1": pl.Float64(),
    "delta_raw": pl.Float64(),
    "delta_better": pl.Float64(),
    "delta_ci_lo_raw": pl.Float64(),
    "delta_ci_hi_raw": pl.Float64(),
    "p_raw": pl.Float64(),
    "p_adj": pl.Float64(),
}
RESAMPLE_COUNTS_SCHEMA: dict[str, pl.DataType] = {
    "family_name": pl.String(),
    "outcome": pl.String(),
    "metric": pl.String(),
    "handle0": pl.String(),
    "handle1": pl.String(),
    "n_boot_finite": pl.Int64(),
    "n_resamples": pl.Int64(),
    "n_perm_finite": pl.Int64(),
    "n_permutations": pl.Int64(),
}


def default_family_map(experiment: str) -> dict[str, str]:
    """Outcome -> family name of an experiment (16 binaries + 13 regressions; Exp3 swaps the ICU
    endpoint for ``prolonged_icu_stay``), as defined by the outcomes stage."""
    from irbench_assets.outcomes.definitions import families_for

    return families_for(experiment)


def load_predictions(
    paths: Mapping[str, Path | str], experiment: str, *, split: str = HELD_OUT
) -> pl.DataFrame:
    """Read each handle's ``predictions.parquet`` and keep the ``split`` rows, as one long frame with
    ``experiment``, ``handle`` and ``pred_path`` added (handles in sorted order)."""
    frames = []
    for handle in sorted(paths):
        path = Path(paths[handle])
        df = pl.read_parquet(path)
        missing = [c for c in (*PREDICTION_COLUMNS, "split") if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: columns {missing} missing (has {df.columns})")
        df = df.filter(pl.col("split") == split)
        if df.height == 0:
            raise ValueError(f"{path}: no rows with split == {split!r}")
        frames.append(
            df.select(
                pl.lit(experiment).alias("experiment"),
                pl.lit(handle).alias("handle"),
                *PREDICTION_COLUMNS,
                pl.lit(str(path)).alias("pred_path"),
            )
        )
    if not frames:
        raise ValueError(f"experiment {experiment!r}: no prediction files given")
    return pl.concat(frames, how="vertical_relaxed")


# ------------------------------------------------------------------------------------- preparation
@dataclass(frozen=True)
class _OutcomeData:
    """One outcome's held-out predictions per handle, each sorted by hadm_id."""

    outcome: str
    family: str
    task_type: str
    per_handle: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # handle -> (ids, y_true, y_pred)


def _prepare(
    preds: pl.DataFrame,
    family_map: Mapping[str, str],
    handles: Sequence[str] | None,
    *,
    require_all_outcomes: bool,
    ignore_unmapped: bool,
) -> tuple[list[str], list[_OutcomeData], dict[str, str | None]]:
    required = ("handle", *PREDICTION_COLUMNS)
    missing = [c for c in required if c not in preds.columns]
    if missing:
        raise ValueError(f"predictions frame lacks columns {missing} (has {preds.columns})")
    if "split" in preds.columns:
        preds = preds.filter(pl.col("split") == HELD_OUT)
    if "experiment" in preds.columns:
        exps = sorted(preds["experiment"].unique().to_list())
        if len(exps) > 1:
            raise ValueError(f"predictions frame mixes experiments {exps}; build tables per experiment")
    if preds.height == 0:
        raise ValueError("predictions frame has no held-out rows")
    null_cols = [c for c in required if preds[c].null_count()]
    if null_cols:
        c = null_cols[0]
        row = preds.filter(pl.col(c).is_null()).row(0, named=True)
        raise ValueError(
            f"column {c!r} is null for handle {row['handle']!r}, outcome {row['outcome']!r}, "
            f"hadm_id {row['hadm_id']!r}"
        )
    bad_tt = sorted(set(preds["task_type"].unique().to_list()) - set(TASK_TYPES))
    if bad_tt:
        raise ValueError(f"task_type must be one of {TASK_TYPES}, found {bad_tt}")
    present = sorted(preds["handle"].unique().to_list())
    order = list(handles) if handles is not None else present
    unknown = sorted(set(present) - set(order))
    if unknown:
        raise ValueError(f"predictions for handles {unknown} not in the handle list {order}")
    absent = [h for h in order if h not in present]
    if absent:
        raise ValueError(f"no held-out predictions for handles {absent}")
    outcomes = sorted(preds["outcome"].unique().to_list())
    unmapped = [o for o in outcomes if o not in family_map]
    if unmapped and not ignore_unmapped:
        raise ValueError(f"outcomes {unmapped} have no family in the family map")
    if require_all_outcomes:
        lacking = sorted(set(family_map) - set(outcomes))
        if lacking:
            raise ValueError(f"family map outcomes {lacking} have no predictions from any handle")
    pred_paths: dict[str, str | None] = {h: None for h in order}
    if "pred_path" in preds.columns:
        for h, p in preds.group_by("handle").agg(pl.col("pred_path").first()).iter_rows():
            pred_paths[h] = p
    data: list[_OutcomeData] = []
    for outcome in outcomes:
        if outcome not in family_map:
            continue
        sub = preds.filter(pl.col("outcome") == outcome)
        tts = sorted(sub["task_type"].unique().to_list())
        if len(tts) != 1:
            raise ValueError(f"outcome {outcome!r} has mixed task_type {tts} across handles")
        per_handle: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for h in order:
            hs = sub.filter(pl.col("handle") == h).sort("hadm_id")
            if hs.height == 0:
                raise ValueError(
                    f"outcome {outcome!r}: handle {h!r} has no held-out predictions (missing outcome)"
                )
            ids = hs["hadm_id"].to_numpy()
            dup = np.flatnonzero(ids[1:] == ids[:-1])
            if dup.size:
                raise ValueError(
                    f"outcome {outcome!r}, handle {h!r}: hadm_id {as_py(ids[dup[0]])!r} appears twice"
                )
            per_handle[h] = (
                ids,
                hs["y_true"].cast(pl.Float64).to_numpy(),
                hs["y_pred"].cast(pl.Float64).to_numpy(),
            )
        data.append(_OutcomeData(outcome, family_map[outcome], tts[0], per_handle))
    return order, data, pred_paths


def _common(od: _OutcomeData) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Inner join of the handles on hadm_id; y_true must agree across handles on the shared ids."""
    handles = list(od.per_handle)
    common = od.per_handle[handles[0]][0]
    for h in handles[1:]:
        common = np.intersect1d(common, od.per_handle[h][0], assume_unique=True)
    if common.size == 0:
        raise ValueError(f"outcome {od.outcome!r}: the handles share no hadm_id")
    y_ref: np.ndarray | None = None
    preds: dict[str, np.ndarray] = {}
    for h in handles:
        ids, yt, yp = od.per_handle[h]
        pos = np.searchsorted(ids, common)
        y = yt[pos]
        if y_ref is None:
            y_ref = y
        else:
            bad = np.flatnonzero(~((y == y_ref) | (np.isnan(y) & np.isnan(y_ref))))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"outcome {od.outcome!r}: y_true differs between handles {handles[0]!r} "
                    f"({float(y_ref[i])!r}) and {h!r} ({float(y[i])!r}) at hadm_id {as_py(common[i])!r} "
                    "(misaligned labels)"
                )
        preds[h] = yp[pos]
    assert y_ref is not None
    return common, y_ref, preds


def _metric_rows(
    od: _OutcomeData, handle: str, rows: list[HandleMetric], pred_path: str | None
) -> list[dict[str, object]]:
    return [
        {
            "family_name": od.family,
            "task_type": od.task_type,
            "outcome": od.outcome,
            "handle": handle,
            "metric": r.metric,
            "higher_is_better": r.higher_is_better,
            "n_eval": r.n_eval,
            "point": r.point,
            "ci_lo": r.ci_lo,
            "ci_hi": r.ci_hi,
            "pred_path": pred_path,
        }
        for r in rows
    ]


def _sorted(df: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    return df.sort(list(keys), maintain_order=True)


# ------------------------------------------------------------------------------------------- tables
@dataclass
class FamilyTables:
    """The three seed tables plus, per comparison, how many resamples/permutations were defined."""

    metrics: pl.DataFrame
    pairwise: pl.DataFrame
    pairwise_baseline: pl.DataFrame
    resample_counts: pl.DataFrame


def _handle_alone(
    od: _OutcomeData, h: str, *, seed: int, n_resamples: int, confidence: float, chunk_size: int | None
) -> list[HandleMetric]:
    """One handle's metrics + CIs on its own admissions (resamples keyed by seed, outcome and its id set)."""
    ids, yt, yp = od.per_handle[h]
    return evaluate_handle(
        ids, yt, yp, od.task_type, key=od.outcome, handle=h, seed=seed, n_resamples=n_resamples,
        confidence=confidence, chunk_size=chunk_size,
    )


# The kernels' BLAS calls are small per-chunk products (resamples × items × a few columns): OpenBLAS threads
# cost more than they give there, and spin badly when other work shares the cores (a demo family went from
# 60 s to 5 s on 2 loaded cores with one BLAS thread). Results do not depend on the thread count.
_ONE_BLAS_THREAD = threadpool_limits.wrap(limits=1, user_api="blas")


@_ONE_BLAS_THREAD
def handle_metrics_table(
    preds: pl.DataFrame,
    family_map: Mapping[str, str],
    *,
    seed: int = DEFAULT_SEED,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    chunk_size: int | None = None,
    require_all_outcomes: bool = True,
    ignore_unmapped: bool = False,
) -> pl.DataFrame:
    """``all_family_metrics`` rows of ONE handle (the per-handle partitioned asset)."""
    handles = sorted(preds["handle"].unique().to_list()) if "handle" in preds.columns else []
    if len(handles) != 1:
        raise ValueError(f"handle_metrics_table expects exactly one handle, got {handles}")
    _, data, paths = _prepare(
        preds, family_map, handles, require_all_outcomes=require_all_outcomes, ignore_unmapped=ignore_unmapped
    )
    h = handles[0]
    rows: list[dict[str, object]] = []
    for od in data:
        res = _handle_alone(od, h, seed=seed, n_resamples=n_resamples, confidence=confidence, chunk_size=chunk_size)
        rows.extend(_metric_rows(od, h, res, paths[h]))
    return _sorted(pl.DataFrame(rows, schema=METRICS_SCHEMA), ("family_name", "outcome", "metric", "handle"))


@_ONE_BLAS_THREAD
def build_family_tables(
    preds: pl.DataFrame,
    family_map: Mapping[str, str],
    *,
    baseline: str | None = None,
    handles: Sequence[str] | None = None,
    pairs: Literal["all", "baseline"] = "all",
    seed: int = DEFAULT_SEED,
    n_resamples: int = N_RESAMPLES,
    n_permutations: int = N_PERMUTATIONS,
    confidence: float = CONFIDENCE,
    chunk_size: int | None = None,
    require_all_outcomes: bool = True,
    ignore_unmapped: bool = False,
) -> FamilyTables:
    """All seed tables of one experiment from its long held-out predictions frame.

    ``handles`` fixes the pair order (default: sorted); ``baseline`` is moved first, so every
    baseline pair is (baseline, other) with delta = other - baseline. ``pairs="baseline"`` tests only
    the baseline pairs (the seed's Exp2/Exp3 runs; 11 instead of 66 pairs for 12 handles), and then
    both pairwise tables hold those rows. Bad input raises ``ValueError``.
    """
    order, data, paths = _prepare(
        preds, family_map, handles, require_all_outcomes=require_all_outcomes, ignore_unmapped=ignore_unmapped
    )
    if baseline is not None:
        if baseline not in order:
            raise ValueError(f"baseline {baseline!r} is not among the handles {order}")
        order = [baseline, *(h for h in order if h != baseline)]
    if pairs not in ("all", "baseline"):
        raise ValueError(f"pairs must be 'all' or 'baseline', got {pairs!r}")
    if pairs == "baseline" and baseline is None:
        raise ValueError("pairs='baseline' needs a baseline handle")
    pair_list = list(itertools.combinations(order, 2))
    if pairs == "baseline":
        pair_list = [p for p in pair_list if p[0] == baseline]
    metric_rows: list[dict[str, object]] = []
    pair_rows: list[dict[str, object]] = []
    count_rows: list[dict[str, object]] = []
    for od in data:
        ids, y, aligned = _common(od)
        fam = evaluate_family(
            ids,
            y,
            {h: aligned[h] for h in order},
            od.task_type,
            key=od.outcome,
            pairs=pair_list,
            seed=seed,
            n_resamples=n_resamples,
            n_permutations=n_permutations,
            confidence=confidence,
            chunk_size=chunk_size,
        )
        for h in order:
            own_ids = od.per_handle[h][0]
            if own_ids.size == ids.size:  # same id set: the family run's resamples are this handle's
                res = [r for r in fam.handles if r.handle == h]
            else:
                res = _handle_alone(
                    od, h, seed=seed, n_resamples=n_resamples, confidence=confidence, chunk_size=chunk_size
                )
            metric_rows.extend(_metric_rows(od, h, res, paths[h]))
            count_rows.extend(
                {
                    "family_name": od.family,
                    "outcome": od.outcome,
                    "metric": r.metric,
                    "handle0": h,
                    "handle1": None,
                    "n_boot_finite": r.n_finite,
                    "n_resamples": r.n_resamples,
                    "n_perm_finite": None,
                    "n_permutations": None,
                }
                for r in res
            )
        for pm in fam.pairs:
            pair_rows.append(
                {
                    "family_name": od.family,
                    "task_type": od.task_type,
                    "outcome": od.outcome,
                    "metric": pm.metric,
                    "higher_is_better": pm.higher_is_better,
                    "handle0": pm.handle0,
                    "handle1": pm.handle1,
                    "n_eval_common": pm.n_eval_common,
                    "metric0": pm.metric0,
                    "metric1": pm.metric1,
                    "delta_raw": pm.delta_raw,
                    "delta_better": pm.delta_better,
                    "delta_ci_lo_raw": pm.delta_ci_lo_raw,
                    "delta_ci_hi_raw": pm.delta_ci_hi_raw,
                    "p_raw": pm.p_raw,
                    "p_adj": None,
                }
            )
            count_rows.append(
                {
                    "family_name": od.family,
                    "outcome": od.outcome,
                    "metric": pm.metric,
                    "handle0": pm.handle0,
                    "handle1": pm.handle1,
                    "n_boot_finite": pm.n_boot_finite,
                    "n_resamples": n_resamples,
                    "n_perm_finite": pm.n_perm_finite,
                    "n_permutations": n_permutations,
                }
            )
    metrics = _sorted(
        pl.DataFrame(metric_rows, schema=METRICS_SCHEMA), ("family_name", "outcome", "metric", "handle")
    )
    pair_keys = ("family_name", "outcome", "metric", "handle0", "handle1")
    pairwise = pl.DataFrame(pair_rows, schema=PAIRWISE_SCHEMA)
    all_pairs = _sorted(adjust_within(pairwise.drop("p_adj")).select(list(PAIRWISE_SCHEMA)), pair_keys)
    if baseline is None:
        base = all_pairs.clear()
    else:
        sub = pairwise.filter(pl.col("handle0") == baseline).drop("p_adj")
        base = _sorted(adjust_within(sub).select(list(PAIRWISE_SCHEMA)), pair_keys)
    counts = _sorted(pl.DataFrame(count_rows, schema=RESAMPLE_COUNTS_SCHEMA), pair_keys)
    return FamilyTables(metrics, all_pairs, base, counts)
