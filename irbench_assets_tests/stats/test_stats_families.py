"""The seed tables: columns, pairing, baseline view with its own BH, alignment, errors, determinism."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import false_discovery_control

from irbench_assets.stats.families import (
    METRICS_SCHEMA,
    PAIRWISE_SCHEMA,
    build_family_tables,
    default_family_map,
    handle_metrics_table,
    load_predictions,
)

HANDLES = ("deciles_unfused", "deciles_fused", "centiles_fused")
FAMILY_MAP = {
    "same_admission_death": "exp1_primary_binary",
    "imv_event": "exp1_primary_binary",
    "hyperkalemia": "exp1_additional_binary",
    "length_of_stay": "exp1_length_of_stay",
    "peak_potassium": "exp1_extended_regression",
}
TASKS = {
    "same_admission_death": "classification",
    "imv_event": "classification",
    "hyperkalemia": "classification",
    "length_of_stay": "regression",
    "peak_potassium": "regression",
}
KW = {"n_resamples": 60, "n_permutations": 60}


def _predictions(n: int = 160, seed: int = 41) -> pl.DataFrame:
    """Synthetic held-out predictions of three handles, plus train rows that must be ignored."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(20_000_000, 20_100_000), size=n, replace=False)
    frames = []
    for outcome, task in TASKS.items():
        if task == "classification":
            y = (rng.random(n) < 0.3).astype(float)
        else:
            y = np.round(rng.gamma(2.0, 40.0, n), 1)
        for k, handle in enumerate(HANDLES):
            noise = rng.normal(0, 1.0 + 0.4 * k, n)
            pred = 1 / (1 + np.exp(-(1.5 * y - 0.5 + noise))) if task == "classification" else y + 30 * noise
            for split in ("held_out", "train"):
                frames.append(
                    pl.DataFrame(
                        {
                            "experiment": "exp1",
                            "handle": handle,
                            "hadm_id": ids,
                            "outcome": outcome,
                            "task_type": task,
                            "y_true": y,
                            "y_pred": pred if split == "held_out" else np.full(n, 0.5),
                            "split": split,
                        }
                    )
                )
    return pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.fixture(scope="module")
def preds() -> pl.DataFrame:
    return _predictions()


@pytest.fixture(scope="module")
def tables(preds: pl.DataFrame):
    return build_family_tables(preds, FAMILY_MAP, baseline="deciles_unfused", handles=HANDLES, **KW)


def test_tables_have_exactly_the_seed_columns_and_complete_rows(tables) -> None:
    assert tables.metrics.columns == list(METRICS_SCHEMA)
    assert tables.pairwise.columns == list(PAIRWISE_SCHEMA)
    assert tables.pairwise_baseline.columns == list(PAIRWISE_SCHEMA)
    assert dict(tables.metrics.schema) == METRICS_SCHEMA
    per_outcome = 4  # metrics per outcome, binary and regression alike
    assert tables.metrics.height == len(TASKS) * per_outcome * len(HANDLES)
    assert tables.pairwise.height == len(TASKS) * per_outcome * 3
    assert tables.pairwise_baseline.height == len(TASKS) * per_outcome * 2
    m = tables.metrics
    assert m["n_eval"].unique().to_list() == [160]
    assert (m["ci_lo"] <= m["ci_hi"]).all()
    assert sorted(m["task_type"].unique().to_list()) == ["classification", "regression"]
    hib = dict(zip(m["metric"], m["higher_is_better"], strict=True))
    assert hib == {"roc_auc": True, "pr_auc": True, "brier": False, "ece_15": False,
                   "spearman_rho": True, "r2": True, "mae": False, "rmse": False}  # fmt: skip
    assert m.sort(["family_name", "outcome", "metric", "handle"]).equals(m)


def test_pairwise_deltas_are_paired_and_oriented(tables) -> None:
    pw = tables.pairwise
    assert np.allclose(pw["delta_raw"], pw["metric1"] - pw["metric0"], rtol=0, atol=1e-15)
    sign = np.where(pw["higher_is_better"].to_numpy(), 1.0, -1.0)
    assert np.array_equal(pw["delta_better"].to_numpy(), sign * pw["delta_raw"].to_numpy())
    assert (pw["delta_ci_lo_raw"] <= pw["delta_ci_hi_raw"]).all()
    assert ((pw["p_raw"] >= 1 / 61) & (pw["p_raw"] <= 1)).all()
    # metric0 / metric1 are the same point estimates as the metrics table (same admissions)
    points = {
        (r["outcome"], r["handle"], r["metric"]): r["point"] for r in tables.metrics.iter_rows(named=True)
    }
    for r in pw.iter_rows(named=True):
        assert r["metric0"] == points[(r["outcome"], r["handle0"], r["metric"])]
        assert r["metric1"] == points[(r["outcome"], r["handle1"], r["metric"])]
    pairs = set(zip(pw["handle0"], pw["handle1"], strict=True))
    assert pairs == {("deciles_unfused", "deciles_fused"), ("deciles_unfused", "centiles_fused"),
                     ("deciles_fused", "centiles_fused")}  # fmt: skip


def test_bh_pools_outcomes_and_pairs_within_family_and_metric(tables) -> None:
    for table in (tables.pairwise, tables.pairwise_baseline):
        for _, part in table.group_by(["family_name", "metric"]):
            expected = false_discovery_control(part["p_raw"].to_numpy(), method="bh")
            assert np.allclose(part["p_adj"].to_numpy(), expected, rtol=0, atol=1e-15)
    base = tables.pairwise_baseline
    assert base["handle0"].unique().to_list() == ["deciles_unfused"]
    keys = ["family_name", "outcome", "metric", "handle0", "handle1"]
    sub = tables.pairwise.filter(pl.col("handle0") == "deciles_unfused")
    assert base.drop("p_adj").equals(sub.drop("p_adj").sort(keys))
    # primary family pools 2 outcomes x 3 pairs in the all-pairs table, 2 x 2 in the baseline view
    prim = tables.pairwise.filter(
        (pl.col("family_name") == "exp1_primary_binary") & (pl.col("metric") == "roc_auc")
    )
    assert prim.height == 6


def test_one_handle_alone_reproduces_its_family_rows(preds: pl.DataFrame, tables) -> None:
    h = "deciles_fused"
    alone = handle_metrics_table(
        preds.filter(pl.col("handle") == h), FAMILY_MAP, n_resamples=KW["n_resamples"]
    )
    assert alone.equals(tables.metrics.filter(pl.col("handle") == h))


def test_alignment_is_an_inner_join_on_hadm_id(preds: pl.DataFrame) -> None:
    dropped = preds.filter(pl.col("handle") == "centiles_fused")["hadm_id"].unique().sort()[:10].to_list()
    partial = preds.filter(~((pl.col("handle") == "centiles_fused") & pl.col("hadm_id").is_in(dropped)))
    t = build_family_tables(partial, FAMILY_MAP, baseline="deciles_unfused", handles=HANDLES, **KW)
    assert t.pairwise["n_eval_common"].unique().to_list() == [150]
    n_eval = dict(zip(t.metrics["handle"], t.metrics["n_eval"], strict=False))
    assert n_eval == {"deciles_unfused": 160, "deciles_fused": 160, "centiles_fused": 150}
    for h in HANDLES:  # each handle's CI comes from its own id set, as when run alone
        alone = handle_metrics_table(
            partial.filter(pl.col("handle") == h), FAMILY_MAP, n_resamples=KW["n_resamples"]
        )
        assert alone.equals(t.metrics.filter(pl.col("handle") == h))


def test_two_runs_are_byte_identical(preds: pl.DataFrame, tables, tmp_path: Path) -> None:
    again = build_family_tables(
        preds.reverse(), FAMILY_MAP, baseline="deciles_unfused", handles=HANDLES, **KW
    )
    for name in ("metrics", "pairwise", "pairwise_baseline", "resample_counts"):
        a, b = getattr(tables, name), getattr(again, name)
        assert a.equals(b), name
        a.write_csv(tmp_path / f"a_{name}.csv")
        b.write_csv(tmp_path / f"b_{name}.csv")
        assert (tmp_path / f"a_{name}.csv").read_bytes() == (tmp_path / f"b_{name}.csv").read_bytes()


def test_baseline_only_pairs_match_the_all_pairs_baseline_view(preds: pl.DataFrame, tables) -> None:
    t = build_family_tables(
        preds, FAMILY_MAP, baseline="deciles_unfused", handles=HANDLES, pairs="baseline", **KW
    )
    assert t.pairwise.equals(t.pairwise_baseline)
    assert t.pairwise_baseline.equals(tables.pairwise_baseline)
    with pytest.raises(ValueError, match="needs a baseline"):
        build_family_tables(preds, FAMILY_MAP, pairs="baseline", **KW)


def test_without_a_baseline_the_baseline_view_is_empty(preds: pl.DataFrame) -> None:
    t = build_family_tables(preds, FAMILY_MAP, n_resamples=10, n_permutations=10)
    assert t.pairwise_baseline.height == 0 and t.pairwise_baseline.columns == list(PAIRWISE_SCHEMA)
    assert set(t.pairwise["handle0"]) | set(t.pairwise["handle1"]) == set(HANDLES)


def _edit(df: pl.DataFrame, handle: str, outcome: str, row: int, **values: object) -> pl.DataFrame:
    """Change one held-out row of (handle, outcome): the ``row``-th smallest hadm_id."""
    target = df.filter(
        (pl.col("handle") == handle) & (pl.col("outcome") == outcome) & (pl.col("split") == "held_out")
    ).sort("hadm_id")["hadm_id"][row]
    hit = (
        (pl.col("handle") == handle)
        & (pl.col("outcome") == outcome)
        & (pl.col("split") == "held_out")
        & (pl.col("hadm_id") == target)
    )
    return df.with_columns(
        [pl.when(hit).then(pl.lit(v)).otherwise(pl.col(c)).alias(c) for c, v in values.items()]
    )


def test_bad_input_raises_naming_handle_outcome_and_row(preds: pl.DataFrame) -> None:
    def build(df: pl.DataFrame, fmap: dict[str, str] = FAMILY_MAP, **kw: object):
        return build_family_tables(df, fmap, handles=HANDLES, n_resamples=5, n_permutations=5, **kw)

    with pytest.raises(
        ValueError, match=r"y_true differs between handles 'deciles_unfused' .* and 'centiles_fused'"
    ):
        build(_edit(preds, "centiles_fused", "imv_event", 3, y_true=7.0))
    with pytest.raises(
        ValueError, match=r"outcome 'imv_event', handle 'deciles_fused': y_pred is not finite \(nan\)"
    ):
        build(_edit(preds, "deciles_fused", "imv_event", 0, y_pred=float("nan")))
    with pytest.raises(
        ValueError, match=r"handle 'deciles_fused': y_pred must be a probability in \[0, 1\], got 1.5"
    ):
        build(_edit(preds, "deciles_fused", "hyperkalemia", 4, y_pred=1.5))
    with pytest.raises(ValueError, match="column 'y_pred' is null for handle 'deciles_fused'"):
        build(_edit(preds, "deciles_fused", "hyperkalemia", 4, y_pred=None))
    with pytest.raises(
        ValueError, match="outcome 'hyperkalemia': handle 'centiles_fused' has no held-out predictions"
    ):
        build(preds.filter(~((pl.col("handle") == "centiles_fused") & (pl.col("outcome") == "hyperkalemia"))))
    dup = preds.filter((pl.col("handle") == "deciles_fused") & (pl.col("outcome") == "imv_event")).head(1)
    with pytest.raises(ValueError, match=r"handle 'deciles_fused': hadm_id \d+ appears twice"):
        build(pl.concat([preds, dup]))
    with pytest.raises(ValueError, match=r"outcomes \['peak_potassium'\] have no family"):
        build(preds, {k: v for k, v in FAMILY_MAP.items() if k != "peak_potassium"})
    with pytest.raises(ValueError, match=r"family map outcomes \['icu_admission'\] have no predictions"):
        build(preds, {**FAMILY_MAP, "icu_admission": "exp1_primary_binary"})
    with pytest.raises(ValueError, match="lacks columns"):
        build(preds.drop("y_true"))
    with pytest.raises(ValueError, match="mixes experiments"):
        build(pl.concat([preds, preds.head(3).with_columns(pl.lit("exp2").alias("experiment"))]))
    with pytest.raises(ValueError, match="baseline 'nope'"):
        build(preds, baseline="nope")
    # tolerant modes: extra outcomes ignored, absent ones allowed
    t = build(preds, {k: v for k, v in FAMILY_MAP.items() if k != "peak_potassium"}, ignore_unmapped=True)
    assert "peak_potassium" not in t.metrics["outcome"].to_list()


def test_load_predictions_keeps_held_out_rows(preds: pl.DataFrame, tmp_path: Path) -> None:
    paths = {}
    for h in HANDLES:
        p = tmp_path / h / "predictions.parquet"
        p.parent.mkdir()
        preds.filter(pl.col("handle") == h).drop("experiment", "handle").with_columns(
            pl.lit(1.0).alias("C")
        ).write_parquet(p)
        paths[h] = p
    long = load_predictions(paths, "exp1")
    assert "split" not in long.columns
    assert long.height == len(HANDLES) * len(TASKS) * 160
    assert sorted(long["pred_path"].unique().to_list()) == sorted(str(p) for p in paths.values())
    t = build_family_tables(long, FAMILY_MAP, handles=HANDLES, n_resamples=5, n_permutations=5)
    got = dict(zip(t.metrics["handle"], t.metrics["pred_path"], strict=False))
    assert got == {h: str(p) for h, p in paths.items()}
    bad = tmp_path / "bad.parquet"
    preds.head(3).drop("y_pred").write_parquet(bad)
    with pytest.raises(ValueError, match=r"bad.parquet: columns \['y_pred'\] missing"):
        load_predictions({"x": bad}, "exp1")


def test_default_family_maps_follow_the_seed() -> None:
    m1, m3 = default_family_map("exp1"), default_family_map("exp3")
    for m, exp, icu in ((m1, "exp1", "icu_admission"), (m3, "exp3", "prolonged_icu_stay")):
        assert len(m) == 29
        fams = {f: sorted(o for o, g in m.items() if g == f) for f in set(m.values())}
        assert {f: len(o) for f, o in fams.items()} == {
            f"{exp}_primary_binary": 4,
            f"{exp}_additional_binary": 12,
            f"{exp}_length_of_stay": 1,
            f"{exp}_extended_regression": 12,
        }
        assert icu in fams[f"{exp}_primary_binary"]
    assert "icu_admission" not in m3
    assert list(itertools.islice(m1, 1)) == ["same_admission_death"]
