"""The whole graph through Dagster's real in-process executor on a tiny profile: Exp3 end to end (MIMIC →
MEDS → arms → tokens → models → features → probes → statistics), one handle per representation of Exp2
and the packed Exp1 regime, the local compute resource, QC checks, and skipping of fresh partitions."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from irbench_assets.compute.orchestrate import materialize_all
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.definitions import defs
from irbench_assets.settings import get_settings
from irbench_assets.storage import features_dir, model_dir, predictions_path, statistics_dir

TINY = {
    "synthetic": {"admissions": 300},
    "tokenize": {"max_len": 512},
    "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1},
    "train": {"max_steps": 30, "block_size": 128, "batch_size": 4, "lr_sweep": [1.0e-3, 3.0e-3], "lr": 3.0e-3,
              "checkpoint_every": 10, "log_every": 5},
    "stats": {"n_boot": 200, "n_perm": 200},
}
SEED_METRIC_COLUMNS = ["family_name", "task_type", "outcome", "handle", "metric", "higher_is_better", "n_eval",
                       "point", "ci_lo", "ci_hi", "pred_path"]
SEED_PAIR_COLUMNS = ["family_name", "task_type", "outcome", "metric", "higher_is_better", "handle0", "handle1",
                     "n_eval_common", "metric0", "metric1", "delta_raw", "delta_better", "delta_ci_lo_raw",
                     "delta_ci_hi_raw", "p_raw", "p_adj"]


@pytest.mark.slow
def test_exp3_and_one_handle_per_representation(tiny_resources, tmp_path: Path) -> None:
    tiny_resources(TINY)
    home = tmp_path / "home"
    resources = {"settings": IrbenchSettings(home=str(home), profile="demo")}
    s = get_settings(str(home), "demo")
    with dg.instance_for_test() as instance:
        steps = materialize_all(defs, instance, experiments={"exp3"}, resources=resources)
        assert {st["status"] for st in steps} == {"ok"}
        assert len([st for st in steps if st["partition"] and st["partition"].startswith("exp3.")]) == 4

        # every asset check of the run passed
        evals = []
        for st in steps:
            run = instance.get_run_by_id(st["run_id"])
            records = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            evals += [r.dagster_event.event_specific_data for r in records]
        names = {e.asset_check_key.name for e in evals}
        assert {"first_24h_no_late_tokens", "fitted_on_train_only", "training_loss_decreased", "features_valid",
                "predictions_valid", "statistics_complete", "exp3_arms_row_fixed", "row_reconciliation"} <= names
        failed = [e.asset_check_key.name for e in evals if not e.passed]
        assert not failed

        # the seed's tables, with its columns, for the four Exp3 arms
        root = statistics_dir(s)
        metrics = pl.read_csv(root / "all_family_metrics.csv")
        assert metrics.columns == SEED_METRIC_COLUMNS
        assert set(metrics["handle"]) == {"meds", "mapped", "randomized", "freqmatched"}
        base = pl.read_csv(root / "all_family_pairwise_baseline.csv")
        assert base.columns == SEED_PAIR_COLUMNS
        assert set(base["handle0"]) == {"meds"}
        assert base["p_raw"].drop_nans().min() >= 1 / 201
        auroc = metrics.filter((pl.col("metric") == "roc_auc") & pl.col("point").is_not_nan())
        assert auroc.height > 0 and auroc["point"].is_between(0, 1).all()

        # a second run with nothing changed recomputes nothing
        again = materialize_all(defs, instance, experiments={"exp3"}, resources=resources)
        assert {st["status"] for st in again} == {"fresh"}

        # one handle per representation (Exp2) and the packed, LR-swept Exp1 regime, up to the probes
        arms = {"exp1.deciles_unfused", "exp2.soft_rope", "exp2.xval_tt", "exp2.xval_affine_none"}
        upto = [k for k in defs.resolve_asset_graph().materializable_asset_keys
                if not k.to_user_string().startswith("paper_")]
        steps = materialize_all(defs, instance, selection=upto, arms=arms, resources=resources)
        # family statistics of Exp1/Exp2 read every handle of the experiment: they wait, nothing fails
        waiting = {st["partition"]: st["status"] for st in steps if st["segment"] == "family_statistics"}
        assert waiting == {"exp1": "waiting for 11 handle(s) of exp1", "exp2": "waiting for 9 handle(s) of exp2",
                           "exp3": "fresh"}
        assert {st["status"] for st in steps if st["segment"] != "family_statistics"} <= {"ok", "fresh"}
        for key in arms:
            exp, handle = key.split(".")
            assert (model_dir(s, exp, handle) / "summary.json").exists()
            feats = pl.read_parquet(features_dir(s, exp, handle) / "held_out.parquet")
            assert feats.schema["features"] == pl.Array(pl.Float32, 32)
            preds = pl.read_parquet(predictions_path(s, exp, handle))
            assert preds.filter(pl.col("task_type") == "classification")["y_pred"].is_between(0, 1).all()
        sweep = pl.read_csv(model_dir(s, "exp1", "deciles_unfused") / "sweep.csv")
        assert sweep.height == 2
