"""Dagster assets of the statistics stage: per-handle metrics (partitioned), per-experiment family tables
with paired permutation tests and BH, and the study-wide seed tables (all_family_*.csv)."""

import dagster as dg
import polars as pl

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.experiments import get_experiment, load_experiments
from irbench_assets.markdown import frame_to_markdown
from irbench_assets.outcomes import families_for
from irbench_assets.partitions import arm_partitions, arms_to_experiment, experiment_partitions, handle_of
from irbench_assets.probes.defs import predictions
from irbench_assets.stats.families import build_family_tables, handle_metrics_table, load_predictions
from irbench_assets.storage import atomic_file, predictions_path, statistics_dir

TABLES = ("all_family_metrics", "all_family_pairwise", "all_family_pairwise_baseline")


def _write_csv(df: pl.DataFrame, path) -> None:
    with atomic_file(path) as tmp:
        df.write_csv(tmp, float_precision=10)


def _stats_cfg(settings: IrbenchSettings) -> dict:
    cfg = settings.get().section("stats")
    return {"seed": int(cfg.get("seed", 42)), "n_resamples": int(cfg.get("n_boot", 2000))}


@dg.asset(
    group_name="statistics",
    partitions_def=arm_partitions,
    deps=[predictions],
    kinds={"polars", "csv"},
    tags={"irbench/stage": "stats"},
    description="Per-handle metrics with 95 % percentile bootstrap CIs (2000 resamples; resample indices "
    "depend only on the outcome and the admission set, so they equal the family run's).",
)
def handle_metrics(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    h = handle_of(context)
    preds = load_predictions({h.handle: predictions_path(s, h.experiment, h.handle)}, h.experiment)
    table = handle_metrics_table(
        preds, families_for(h.experiment), require_all_outcomes=False, **_stats_cfg(settings)
    )
    path = statistics_dir(s) / "handles" / h.experiment / h.handle / "metrics.csv"
    _write_csv(table, path)
    auroc = table.filter(pl.col("metric").is_in(["roc_auc", "spearman_rho"])).select(
        "family_name", "outcome", "metric", "point", "ci_lo", "ci_hi"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "rows": table.height,
            "auroc_and_rho": dg.MetadataValue.md(frame_to_markdown(auroc, 40)),
        }
    )


@dg.asset(
    group_name="statistics",
    partitions_def=experiment_partitions,
    ins={"handle_metrics": dg.AssetIn(partition_mapping=arms_to_experiment, dagster_type=dg.Nothing)},
    kinds={"polars", "csv"},
    tags={"irbench/stage": "stats"},
    description="One experiment's family tables: metrics + CIs on shared resample indices, all-pairs and "
    "baseline-centred paired permutation tests (2000, two-sided, add-one), BH within (family, metric).",
)
def family_statistics(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    exp = get_experiment(context.partition_key)
    paths = {h: predictions_path(s, exp.name, h) for h in exp.handles}
    preds = load_predictions(paths, exp.name)
    cfg = _stats_cfg(settings)
    tables = build_family_tables(
        preds,
        families_for(exp.name),
        baseline=exp.baseline,
        handles=list(exp.handles),
        pairs="all",
        require_all_outcomes=False,
        n_permutations=int(s.section("stats").get("n_perm", 2000)),
        **cfg,
    )
    out = statistics_dir(s) / exp.name
    for name, df in zip(TABLES, (tables.metrics, tables.pairwise, tables.pairwise_baseline), strict=True):
        _write_csv(df, out / f"{name}.csv")
    _write_csv(tables.resample_counts, out / "resample_counts.csv")
    base = tables.pairwise_baseline.filter(pl.col("metric").is_in(["roc_auc", "spearman_rho"]))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "n_metric_rows": tables.metrics.height,
            "n_pairwise_rows": tables.pairwise.height,
            "n_significant_vs_baseline": int((base["p_adj"] < 0.05).sum()),
            "baseline_deltas": dg.MetadataValue.md(
                frame_to_markdown(
                    base.select("outcome", "metric", "handle1", "delta_raw", "p_raw", "p_adj"), 40
                )
            ),
        }
    )


@dg.asset_check(
    asset=family_statistics,
    blocking=True,
    partitions_def=experiment_partitions,
    description="Complete: every (handle, outcome, metric) that any handle was probed on has a metrics row "
    "for every handle of the experiment, and every baseline pair has a p-value.",
)
def statistics_complete(
    context: dg.AssetCheckExecutionContext, settings: IrbenchSettings
) -> dg.AssetCheckResult:
    exp = get_experiment(context.partition_key)
    out = statistics_dir(settings.get()) / exp.name
    m = pl.read_csv(out / "all_family_metrics.csv")
    grid = (
        m.select("outcome", "metric").unique().join(pl.DataFrame({"handle": list(exp.handles)}), how="cross")
    )
    missing = grid.join(
        m.select("outcome", "metric", "handle"), on=["outcome", "metric", "handle"], how="anti"
    )
    b = pl.read_csv(out / "all_family_pairwise_baseline.csv")
    expected_pairs = (len(exp.handles) - 1) * m.select("outcome", "metric").unique().height
    return dg.AssetCheckResult(
        passed=missing.height == 0 and b.height == expected_pairs,
        metadata={
            "missing_rows": missing.height,
            "baseline_rows": b.height,
            "expected_baseline_rows": expected_pairs,
        },
    )


@dg.asset(
    group_name="statistics",
    deps=[family_statistics],
    kinds={"polars", "csv"},
    tags={"irbench/stage": "stats"},
    description="The study's result tables with the original names and columns: "
    "paper_stats_run_artifacts/all_family_{metrics,pairwise,pairwise_baseline}.csv over every experiment.",
)
def paper_statistics(settings: IrbenchSettings) -> dg.MaterializeResult:
    root = statistics_dir(settings.get())
    meta = {}
    for name in TABLES:
        parts = [
            pl.read_csv(root / e / f"{name}.csv")
            for e in load_experiments()
            if (root / e / f"{name}.csv").exists()
        ]
        if not parts:
            raise FileNotFoundError(
                f"{root}: no experiment has {name}.csv yet; materialize family_statistics first"
            )
        df = pl.concat(parts, how="vertical_relaxed")
        _write_csv(df, root / f"{name}.csv")
        meta[name] = df.height
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(root)), "rows": dg.MetadataValue.json(meta)}
    )


defs = dg.Definitions(
    assets=[handle_metrics, family_statistics, paper_statistics], asset_checks=[statistics_complete]
)
