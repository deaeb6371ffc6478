"""Small hand-made run artifacts with known content for the paper builders' tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from irbench_assets.outcomes.definitions import OUTCOMES, output_columns
from irbench_assets.paper.inputs import METRIC_ORDER
from irbench_assets.stats.families import METRICS_SCHEMA, PAIRWISE_SCHEMA

# exp1: three handles (baseline first in yaml); exp3: two; exp2 deliberately absent
HANDLES = {"exp1": ["deciles_unfused", "deciles_fused", "centiles_fused"], "exp3": ["meds", "mapped"]}
BASELINE = {"exp1": "deciles_unfused", "exp3": "meds"}
OUTCOMES_OF = {
    "exp1": {"same_admission_death": "exp1_primary_binary", "long_length_of_stay": "exp1_primary_binary",
             "hyperkalemia": "exp1_additional_binary", "length_of_stay": "exp1_length_of_stay",
             "peak_potassium": "exp1_extended_regression"},
    "exp3": {"prolonged_icu_stay": "exp3_primary_binary", "length_of_stay": "exp3_length_of_stay"},
}
HIGHER = {"roc_auc": True, "pr_auc": True, "brier": False, "ece_15": False, "spearman_rho": True, "r2": True,
          "mae": False, "rmse": False}
#: AUROC / Spearman of each (experiment, outcome, handle): the best handle differs per outcome.
PRIMARY = {
    ("exp1", "same_admission_death"): {"deciles_unfused": 0.80, "deciles_fused": 0.82, "centiles_fused": 0.85},
    ("exp1", "long_length_of_stay"): {"deciles_unfused": 0.71, "deciles_fused": 0.74, "centiles_fused": 0.70},
    ("exp1", "hyperkalemia"): {"deciles_unfused": 0.66, "deciles_fused": float("nan"), "centiles_fused": 0.61},
    ("exp1", "length_of_stay"): {"deciles_unfused": 0.40, "deciles_fused": 0.45, "centiles_fused": 0.43},
    ("exp1", "peak_potassium"): {"deciles_unfused": 0.30, "deciles_fused": 0.28, "centiles_fused": 0.35},
    ("exp3", "prolonged_icu_stay"): {"meds": 0.77, "mapped": 0.79},
    ("exp3", "length_of_stay"): {"meds": 0.50, "mapped": 0.47},
}


def value(exp: str, outcome: str, handle: str, metric: str) -> float:
    """Metric value of the fixture: the primary metric from PRIMARY, others derived from it."""
    p = PRIMARY[(exp, outcome)][handle]
    return {"roc_auc": p, "spearman_rho": p, "pr_auc": p / 3, "r2": p / 2, "brier": 0.3 - p / 5,
            "ece_15": 0.1 - p / 20, "mae": 100 - 50 * p, "rmse": 150 - 60 * p}[metric]


def metrics_frame() -> pl.DataFrame:
    """all_family_metrics rows in scrambled order (handles reversed) to test the builders' ordering."""
    rows = []
    for exp, outs in OUTCOMES_OF.items():
        for outcome, fam in outs.items():
            task = OUTCOMES[outcome].task_type
            for handle in reversed(HANDLES[exp]):
                for metric in METRIC_ORDER[task]:
                    v = value(exp, outcome, handle, metric)
                    rows.append({"family_name": fam, "task_type": task, "outcome": outcome, "handle": handle,
                                 "metric": metric, "higher_is_better": HIGHER[metric], "n_eval": 1000 + len(outcome),
                                 "point": v, "ci_lo": v - 0.02, "ci_hi": v + 0.02, "pred_path": f"/p/{handle}"})
    return pl.DataFrame(rows, schema=METRICS_SCHEMA)


#: p_adj per (exp, outcome, handle1) for every metric; NaN = not testable.
P_ADJ = {("exp1", "same_admission_death", "deciles_fused"): 0.20, ("exp1", "same_admission_death", "centiles_fused"): 0.001,
         ("exp1", "long_length_of_stay", "deciles_fused"): 0.049, ("exp1", "long_length_of_stay", "centiles_fused"): 0.05,
         ("exp1", "hyperkalemia", "deciles_fused"): float("nan"), ("exp1", "hyperkalemia", "centiles_fused"): 0.01,
         ("exp1", "length_of_stay", "deciles_fused"): 0.03, ("exp1", "length_of_stay", "centiles_fused"): 0.5,
         ("exp1", "peak_potassium", "deciles_fused"): 0.9, ("exp1", "peak_potassium", "centiles_fused"): 0.002,
         ("exp3", "prolonged_icu_stay", "mapped"): 0.04, ("exp3", "length_of_stay", "mapped"): 0.6}


def pairwise_frame() -> pl.DataFrame:
    """all_family_pairwise_baseline rows: Δ = handle1 − baseline of the fixture's values."""
    rows = []
    for exp, outs in OUTCOMES_OF.items():
        base = BASELINE[exp]
        for outcome, fam in outs.items():
            task = OUTCOMES[outcome].task_type
            for h1 in HANDLES[exp][1:]:
                for metric in METRIC_ORDER[task]:
                    m0, m1 = value(exp, outcome, base, metric), value(exp, outcome, h1, metric)
                    d = m1 - m0
                    rows.append({"family_name": fam, "task_type": task, "outcome": outcome, "metric": metric,
                                 "higher_is_better": HIGHER[metric], "handle0": base, "handle1": h1,
                                 "n_eval_common": 900, "metric0": m0, "metric1": m1, "delta_raw": d,
                                 "delta_better": d if HIGHER[metric] else -d, "delta_ci_lo_raw": d - 0.01,
                                 "delta_ci_hi_raw": d + 0.01, "p_raw": P_ADJ[(exp, outcome, h1)] / 2,
                                 "p_adj": P_ADJ[(exp, outcome, h1)]})
    return pl.DataFrame(rows, schema=PAIRWISE_SCHEMA)


def write_stats(stats_dir: Path) -> None:
    """The study-wide CSVs as the statistics stage writes them."""
    stats_dir.mkdir(parents=True, exist_ok=True)
    metrics_frame().write_csv(stats_dir / "all_family_metrics.csv", float_precision=10)
    pairwise_frame().write_csv(stats_dir / "all_family_pairwise_baseline.csv", float_precision=10)


def write_json(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def tokenizer_json(vocab: int, max_len: int = 64) -> dict:
    """A tokenizer.json with the metadata keys the tokenization table reads."""
    q = {"p50": 10.0, "p90": 30.0, "p99": 60.0, "max": 80, "mean": 15.0}
    return {"max_len": max_len, "metadata": {
        "vocab_size": vocab, "max_len": max_len,
        "seq_len": {"train": {"full": q, "first_24h": {**q, "p50": 5.0}}},
        "overflow_fraction": {"train": {"full": 0.125, "first_24h": 0.0}, "held_out": {"full": 0.1, "first_24h": 0.0}},
        "zero_frequency_tokens": 7,
        "bins": {"quantizer": "deciles", "anchoring": "none", "n_bins_nominal": 10, "n_numeric_codes": 12,
                 "realized_mean": 9.5, "realized_min": 3, "n_codes_realized_below_nominal": 2}}}


def outcomes_frame(n: int, seed: int) -> pl.DataFrame:
    """An outcomes table with every column of the real one (random labels, some nulls, some 24 h flags)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, pl.Series] = {}
    for c in output_columns():
        if c == "hadm_id":
            cols[c] = pl.Series(c, np.arange(n, dtype=np.int64) + 100)
        elif c == "subject_id":
            cols[c] = pl.Series(c, np.arange(n, dtype=np.int64) // 2)
        elif c == "split":
            cols[c] = pl.Series(c, np.array(["train", "tuning", "held_out"])[np.arange(n) % 3])
        elif c in ("admission_time", "discharge_time"):
            cols[c] = pl.Series(c, [None] * n, pl.Datetime("us"))
        elif c.endswith("_24h"):
            cols[c] = pl.Series(c, rng.random(n) < 0.2)
        elif c in OUTCOMES and OUTCOMES[c].task_type == "classification":
            v = (rng.random(n) < 0.3).tolist()
            cols[c] = pl.Series(c, [None if rng.random() < 0.1 else x for x in v], pl.Boolean)
        else:
            v = rng.normal(50, 10, n).tolist()
            cols[c] = pl.Series(c, [None if rng.random() < 0.1 else x for x in v], pl.Float64)
    return pl.DataFrame(list(cols.values()))


EXP3_META = {
    "arm": "mapped", "schema_version": 2, "tokenizer_domains": ["LAB", "VITAL"],
    "coverage": {s: {"LAB": {"n_total": 1000, "n_mapped": 875, "n_unmapped": 125, "pct_remapped": 87.5},
                     "VITAL": {"n_total": 400, "n_mapped": 100, "n_unmapped": 300, "pct_remapped": 25.0},
                     "MEDICATION": {"n_total": 0, "n_mapped": 0, "n_unmapped": 0, "pct_remapped": None}}
                 for s in ("train", "tuning", "held_out")},
    "n_distinct_codes_train": {"LAB": {"native": 120, "mapped": 40}, "VITAL": {"native": 30, "mapped": 12},
                               "MEDICATION": {"native": 0, "mapped": 0}},
}


def predictions_frame(handle_idx: int, n: int = 300, seed: int = 0) -> pl.DataFrame:
    """Held-out (and some train) predictions for exp1's primary binaries."""
    rng = np.random.default_rng(seed + handle_idx)
    rows = []
    for outcome in ("same_admission_death", "long_length_of_stay"):
        y = (rng.random(n) < 0.3).astype(np.int64)
        p = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.15, n), 0, 1)
        p[0] = 1.0  # the closed last bin
        for split, sl in (("held_out", slice(0, n - 50)), ("train", slice(n - 50, n))):
            rows.append(pl.DataFrame({"hadm_id": np.arange(n)[sl], "outcome": outcome, "task_type": "classification",
                                      "y_true": y[sl].astype(np.float64), "y_pred": p[sl], "split": split,
                                      "param_name": "C", "param": 1.0}))
    return pl.concat(rows)


def write_run(home: Path) -> None:
    """Everything the builders read under IRBENCH_HOME (exp1 + exp3 partly, exp2 absent)."""
    runs = home / "runs"
    write_stats(runs / "statistics" / "paper_stats_run_artifacts")
    for exp in ("exp1", "exp3"):
        for i, h in enumerate(HANDLES[exp]):
            tok = runs / "tokenized" / exp / h
            write_json(tokenizer_json(100 + 10 * i), tok / "tokenizer.json")
            for layout, scale in (("full", 3.0), ("first_24h", 1.0)):
                rng = np.random.default_rng(i)
                lens = np.maximum(1, rng.lognormal(3, 0.5, 120) * scale * (1.4 if h.endswith("_unfused") else 1.0))
                d = tok / layout / "train"
                d.mkdir(parents=True, exist_ok=True)
                pl.DataFrame({"seq_len": lens.astype(np.int32)}).write_parquet(d / "tokens_timelines.parquet")
    for h in HANDLES["exp1"][:2]:  # centiles_fused has no model yet
        m = runs / "models" / f"exp1_{h}"
        write_json({"n_parameters": 1_234_567, "initial_loss": 5.5, "final_loss": 2.25, "tuning_loss": 2.5,
                    "tokens_seen": 3_000_000, "tokens_per_s": 12_345.0, "best_lr": 3e-4, "steps": 10,
                    "sweep": [{}, {}]}, m / "summary.json")
        write_json({"vocab_size": 321}, m / "config.json")
    for exp, seed in (("exp1", 1), ("exp2", 1), ("exp3", 2)):
        d = runs / "outcomes" / exp
        d.mkdir(parents=True, exist_ok=True)
        outcomes_frame(60, seed).write_parquet(d / "outcomes.parquet")
    write_json(EXP3_META, runs / "exp3" / "arms" / "meds_mapped" / "mappings" / "meta.json")
    for i, h in enumerate(HANDLES["exp1"]):
        d = runs / "predictions" / "exp1" / h
        d.mkdir(parents=True, exist_ok=True)
        predictions_frame(i).write_parquet(d / "predictions.parquet")
