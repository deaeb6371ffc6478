"""Linear probes on frozen admission embeddings, with hyper-parameter selection on the tuning split.

Binary outcomes: standardized features → L2 logistic regression; C ∈ {0.01, 0.1, 1, 10, 100} chosen by
tuning-split AUROC. Regression outcomes: ridge; alpha from the same grid chosen by tuning-split Spearman ρ.
The selected model is the one fitted on train (the tuning split is not merged in, as in the reference).
Features are standardized once, in float32, and shared by every grid point — no per-C copy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
ALPHA_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
TaskType = Literal["classification", "regression"]


@dataclass(frozen=True)
class Split:
    """Features (n × d, float32) and labels of one split, with the admission ids for alignment."""

    hadm_id: np.ndarray
    X: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class ProbeResult:
    """Predictions on tuning and held_out plus the selection trace of one outcome."""

    outcome: str
    task_type: TaskType
    param_name: str
    param: float
    selection: dict[float, float]
    predictions: pl.DataFrame


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """z-score every matrix with the TRAIN mean/SD (float32; constant columns left at 0)."""
    mu = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    sd = train.std(axis=0, dtype=np.float64).astype(np.float32)
    sd[sd == 0] = 1.0
    return [((m - mu) / sd).astype(np.float32, copy=False) for m in (train, *others)]


def _score(task: TaskType, y: np.ndarray, p: np.ndarray) -> float:
    if task == "classification":
        return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(y, p).statistic)


def fit_probe(
    outcome: str, task: TaskType, train: Split, tuning: Split, held_out: Split, seed: int = 42
) -> ProbeResult:
    """Fit one probe: select the grid point on tuning, predict tuning and held_out with the train fit."""
    if task == "classification":
        for name, s in (("train", train), ("tuning", tuning)):
            if len(np.unique(s.y)) < 2:
                raise ValueError(f"outcome {outcome!r}: the {name} split has a single class (n={len(s.y)})")
    Xtr, Xtu, Xho = standardize(train.X, tuning.X, held_out.X)
    grid = C_GRID if task == "classification" else ALPHA_GRID
    best: tuple[float, float, object] | None = None
    selection: dict[float, float] = {}
    for g in grid:
        if task == "classification":
            model = LogisticRegression(C=g, solver="lbfgs", max_iter=2000, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(Xtr, train.y.astype(np.int64))
            p_tu = model.predict_proba(Xtu)[:, 1]
        else:
            model = Ridge(alpha=g, random_state=seed)
            model.fit(Xtr, train.y.astype(np.float64))
            p_tu = model.predict(Xtu)
        score = _score(task, tuning.y, p_tu)
        selection[g] = score
        # Ties and NaN scores keep the earlier (stronger-regularized) grid point.
        if best is None or (np.isfinite(score) and (not np.isfinite(best[0]) or score > best[0])):
            best = (score, g, model)
    assert best is not None
    _, g_best, model = best
    if task == "classification":
        p_tu = model.predict_proba(Xtu)[:, 1]  # type: ignore[attr-defined]
        p_ho = model.predict_proba(Xho)[:, 1]  # type: ignore[attr-defined]
    else:
        p_tu = model.predict(Xtu)  # type: ignore[attr-defined]
        p_ho = model.predict(Xho)  # type: ignore[attr-defined]
    param_name = "C" if task == "classification" else "alpha"
    frames = [
        pl.DataFrame(
            {
                "hadm_id": s.hadm_id.astype(np.int64),
                "outcome": outcome,
                "task_type": task,
                "y_true": s.y.astype(np.float64),
                "y_pred": p.astype(np.float64),
                "split": name,
                "param_name": param_name,
                "param": float(g_best),
            }
        )
        for name, s, p in (("tuning", tuning, p_tu), ("held_out", held_out, p_ho))
    ]
    return ProbeResult(outcome, task, param_name, float(g_best), selection, pl.concat(frames))


def load_features(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a features parquet (hadm_id + fixed-size-list ``features``) as (ids, float32 matrix)."""
    df = pl.read_parquet(path)
    if "features" not in df.columns or "hadm_id" not in df.columns:
        raise ValueError(f"{path}: expected columns hadm_id and features, found {df.columns}")
    ids = df.get_column("hadm_id").to_numpy()
    X = np.asarray(df.get_column("features").to_numpy(), dtype=np.float32)
    if X.ndim != 2:
        X = np.stack(df.get_column("features").to_list()).astype(np.float32)
    if not np.isfinite(X).all():
        bad = int(np.argwhere(~np.isfinite(X))[0][0])
        raise ValueError(f"{path}: column 'features' has a non-finite value at row {bad} (hadm_id {ids[bad]})")
    return ids, X


def run_probes(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    outcomes: pl.DataFrame,
    tasks: dict[str, TaskType],
    eligible: dict[str, pl.Series] | None = None,
    seed: int = 42,
) -> tuple[pl.DataFrame, list[dict]]:
    """Probe every outcome in ``tasks`` on the three splits; returns (long predictions frame, selection log).

    ``features[split] = (hadm_ids, X)``; ``outcomes`` holds one row per hadm_id with a column per outcome;
    ``eligible[outcome]`` is a boolean mask aligned with ``outcomes`` (None = label not null).
    """
    preds: list[pl.DataFrame] = []
    log: list[dict] = []
    for outcome, task in tasks.items():
        if outcome not in outcomes.columns:
            raise ValueError(f"outcome {outcome!r} is missing from the outcomes table (columns: {outcomes.columns})")
        mask = eligible[outcome] if eligible and outcome in eligible else outcomes.get_column(outcome).is_not_null()
        lab = outcomes.filter(mask).select("hadm_id", pl.col(outcome).cast(pl.Float64).alias("y"))
        parts: dict[str, Split] = {}
        for split, (ids, X) in features.items():
            idx = pl.DataFrame({"hadm_id": ids.astype(np.int64), "row": np.arange(len(ids))}).join(
                lab, on="hadm_id", how="inner"
            ).sort("hadm_id")
            rows = idx.get_column("row").to_numpy()
            parts[split] = Split(idx.get_column("hadm_id").to_numpy(), X[rows], idx.get_column("y").to_numpy())
        if min(len(parts[s].y) for s in ("train", "tuning", "held_out")) < 2:
            log.append({"outcome": outcome, "skipped": "fewer than 2 eligible admissions in a split"})
            continue
        try:
            res = fit_probe(outcome, task, parts["train"], parts["tuning"], parts["held_out"], seed)
        except ValueError as exc:
            log.append({"outcome": outcome, "skipped": str(exc)})
            continue
        preds.append(res.predictions)
        log.append({"outcome": outcome, "task_type": task, res.param_name: res.param,
                    "selection": {str(k): v for k, v in res.selection.items()},
                    "n": {s: len(parts[s].y) for s in parts}})
    if not preds:
        raise ValueError("no outcome could be probed (every outcome lacked eligible admissions or classes)")
    return pl.concat(preds).sort(["outcome", "split", "hadm_id"]), log
