"""Dagster asset of Stage 3: linear-probe predictions per (experiment, handle), in process."""

import dagster as dg
import numpy as np
import polars as pl

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.markdown import frame_to_markdown
from irbench_assets.models.defs import features
from irbench_assets.outcomes import OUTCOMES, eligibility, families_for
from irbench_assets.partitions import arm_partitions, experiment_to_arms, handle_of
from irbench_assets.probes.linear import load_features, run_probes
from irbench_assets.storage import features_dir, outcomes_path, predictions_path, write_json, write_parquet

SPLITS = ("train", "tuning", "held_out")


@dg.asset(
    group_name="probes",
    partitions_def=arm_partitions,
    deps=[features],
    ins={"outcomes": dg.AssetIn(partition_mapping=experiment_to_arms, dagster_type=dg.Nothing)},
    kinds={"scikitlearn", "parquet"},
    tags={"irbench/stage": "probes"},
    description="Stage 3: per outcome, standardized L2 logistic regression (binary) or ridge (regression) on "
    "the frozen features; C/alpha chosen on tuning AUROC / Spearman; tuning + held_out predictions.",
)
def predictions(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    h = handle_of(context)
    feats = {sp: load_features(str(features_dir(s, h.experiment, h.handle) / f"{sp}.parquet")) for sp in SPLITS}
    table = pl.read_parquet(outcomes_path(s, h.experiment))
    fams = families_for(h.experiment)
    tasks = {o: OUTCOMES[o].task_type for o in fams}
    elig = {o: eligibility(table, o) for o in fams}
    preds, log = run_probes(feats, table, tasks, elig, seed=s.seed)
    out = write_parquet(preds, predictions_path(s, h.experiment, h.handle))
    write_json(log, out.with_name("probe_selection.json"))
    skipped = [e for e in log if "skipped" in e]
    ho = preds.filter(pl.col("split") == "held_out")
    summary = ho.group_by("outcome", "task_type", "param").agg(pl.len().alias("n_held_out")).sort("outcome")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "n_outcomes": len(log) - len(skipped),
            "skipped_outcomes": dg.MetadataValue.json(skipped),
            "selection": dg.MetadataValue.md(frame_to_markdown(summary, 40)),
        }
    )


@dg.asset_check(
    asset=predictions, blocking=True, partitions_def=arm_partitions,
    description="Predictions finite; probabilities in [0, 1]; one row per (admission, outcome, split).",
)
def predictions_valid(context: dg.AssetCheckExecutionContext, settings: IrbenchSettings) -> dg.AssetCheckResult:
    h = handle_of(context)
    df = pl.read_parquet(predictions_path(settings.get(), h.experiment, h.handle))
    y = df["y_pred"].to_numpy()
    cls = (df["task_type"] == "classification").to_numpy()
    problems = []
    if not np.isfinite(y).all():
        problems.append(f"{int((~np.isfinite(y)).sum())} non-finite predictions")
    if ((y[cls] < 0) | (y[cls] > 1)).any():
        problems.append("classification predictions outside [0, 1]")
    dup = df.group_by("hadm_id", "outcome", "split").len().filter(pl.col("len") > 1).height
    if dup:
        problems.append(f"{dup} duplicated (hadm_id, outcome, split) rows")
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": dg.MetadataValue.json(problems),
                                                               "rows": df.height})


defs = dg.Definitions(assets=[predictions], asset_checks=[predictions_valid])
