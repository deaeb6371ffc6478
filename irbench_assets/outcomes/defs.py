"""Dagster assets of Stage 0.5: one outcomes table per experiment (base + extended), with QC checks."""

import dagster as dg
import polars as pl

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.experiments import load_experiments
from irbench_assets.markdown import frame_to_markdown
from irbench_assets.meds.defs import meds_dataset
from irbench_assets.outcomes import (
    compute_outcomes,
    families_for,
    outcome_descriptives,
    prevalence_bounds_check,
)
from irbench_assets.partitions import experiment_partitions
from irbench_assets.storage import meds_root, outcomes_path, write_parquet


def _cohort(experiment: str) -> str:
    return next(iter(load_experiments()[experiment].handles.values())).cohort


@dg.asset(
    group_name="outcomes",
    partitions_def=experiment_partitions,
    deps=[meds_dataset],
    kinds={"polars", "parquet"},
    tags={"irbench/stage": "tokenize"},
    description="Stage 0.5: base + extended outcome labels per admission, computed from MEDS event times "
    "(never from tokens); Exp3 uses the ICU cohort. Keyed by hadm_id.",
)
def outcomes(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    exp = context.partition_key
    table = compute_outcomes(meds_root(s), cohort=_cohort(exp))
    path = write_parquet(table, outcomes_path(s, exp))
    fams = families_for(exp)
    desc = outcome_descriptives(table, fams).filter(pl.col("split") == "held_out")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "n_admissions": table.height,
            "cohort": _cohort(exp),
            "n_outcomes": len(fams),
            "held_out_descriptives": dg.MetadataValue.md(
                frame_to_markdown(desc.select("family", "outcome", "n_eligible", "n_positive", "prevalence", "mean"),
                                  max_rows=40)
            ),
        }
    )


@dg.asset_check(
    asset=outcomes, blocking=True, partitions_def=experiment_partitions,
    description="Every outcome's prevalence / variance is within sane bounds (no all-0 or all-1 base outcome).",
)
def outcome_prevalence_sane(context: dg.AssetCheckExecutionContext, settings: IrbenchSettings) -> dg.AssetCheckResult:
    exp = context.partition_key
    table = pl.read_parquet(outcomes_path(settings.get(), exp))
    problems = prevalence_bounds_check(table, families_for(exp))
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)})


defs = dg.Definitions(assets=[outcomes], asset_checks=[outcome_prevalence_sane])
