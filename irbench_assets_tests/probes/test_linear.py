"""Probes: selection on tuning, equality with an sklearn pipeline fitted the obvious way, eligibility."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from irbench_assets.probes.linear import C_GRID, Split, fit_probe, run_probes


def _data(n: int, d: int, seed: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32) * rng.uniform(0.5, 3, size=d).astype(np.float32)
    w = np.zeros(d)
    w[:3] = [1.0, -0.7, 0.4]
    lin = X @ w / 2
    y = (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(float) if task == "classification" else lin + rng.normal(size=n)
    return X, y


def _splits(task: str) -> tuple[Split, Split, Split]:
    out = []
    for i, n in enumerate((600, 200, 300)):
        X, y = _data(n, 8, i, task)
        out.append(Split(np.arange(n) + 1000 * i, X, y))
    return tuple(out)  # type: ignore[return-value]


def test_logistic_probe_matches_sklearn_pipeline_and_selects_on_tuning() -> None:
    tr, tu, ho = _splits("classification")
    res = fit_probe("death", "classification", tr, tu, ho)
    # Reference: the obvious pipeline for every C, pick by tuning AUROC, predict held_out.
    scores = {}
    for c in C_GRID:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(tr.X, tr.y)
        scores[c] = roc_auc_score(tu.y, pipe.predict_proba(tu.X)[:, 1])
    best = max(C_GRID, key=lambda c: (scores[c], -C_GRID.index(c)))
    assert res.param == best
    for c in C_GRID:
        assert res.selection[c] == pytest.approx(scores[c], abs=2e-3)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=best, max_iter=2000)).fit(tr.X, tr.y)
    ho_pred = res.predictions.filter(pl.col("split") == "held_out")["y_pred"].to_numpy()
    np.testing.assert_allclose(ho_pred, pipe.predict_proba(ho.X)[:, 1], atol=2e-3)
    assert roc_auc_score(ho.y, ho_pred) > 0.65
    assert ((ho_pred >= 0) & (ho_pred <= 1)).all()


def test_ridge_probe_selects_by_spearman() -> None:
    tr, tu, ho = _splits("regression")
    res = fit_probe("los", "regression", tr, tu, ho)
    Xs = StandardScaler().fit(tr.X)
    rhos = {a: spearmanr(tu.y, Ridge(alpha=a).fit(Xs.transform(tr.X), tr.y).predict(Xs.transform(tu.X))).statistic
            for a in (0.01, 0.1, 1.0, 10.0, 100.0)}
    assert res.param == max(rhos, key=lambda a: (round(rhos[a], 12), -a))
    ho_pred = res.predictions.filter(pl.col("split") == "held_out")["y_pred"].to_numpy()
    assert spearmanr(ho.y, ho_pred).statistic > 0.3


def test_run_probes_respects_eligibility_and_alignment() -> None:
    feats, rows = {}, []
    rng = np.random.default_rng(0)
    for i, (split, n) in enumerate((("train", 400), ("tuning", 150), ("held_out", 150))):
        X, y = _data(n, 6, 10 + i, "classification")
        ids = np.arange(n) + 10_000 * (i + 1)
        perm = rng.permutation(n)  # features stored in another order than the outcomes table
        feats[split] = (ids[perm], X[perm])
        flag = rng.random(n) < 0.2
        rows.append(pl.DataFrame({"hadm_id": ids, "imv_event": y, "imv_event_24h": flag}))
    outcomes = pl.concat(rows)
    eligible = {"imv_event": ~outcomes["imv_event_24h"]}
    preds, log = run_probes(feats, outcomes, {"imv_event": "classification"}, eligible)
    excluded = set(outcomes.filter(pl.col("imv_event_24h"))["hadm_id"].to_list())
    assert not excluded & set(preds["hadm_id"].to_list())
    joined = preds.join(outcomes, on="hadm_id")
    assert (joined["y_true"] == joined["imv_event"]).all()
    assert set(preds["split"].unique()) == {"tuning", "held_out"}
    assert log[0]["n"]["held_out"] == int((~outcomes["imv_event_24h"][-150:]).sum())


def test_missing_outcome_is_a_clear_error() -> None:
    feats = {s: (np.arange(5), np.zeros((5, 2), np.float32)) for s in ("train", "tuning", "held_out")}
    with pytest.raises(ValueError, match="outcome 'nope' is missing"):
        run_probes(feats, pl.DataFrame({"hadm_id": np.arange(5)}), {"nope": "classification"})
