"""Statistics stage: metrics, vectorized paired bootstrap CIs and permutation tests, BH, seed tables.

Domain code only (numpy / scipy / polars); the Dagster assets live in ``defs.py``.
"""

from irbench_assets.stats.families import (
    METRICS_SCHEMA,
    PAIRWISE_SCHEMA,
    FamilyTables,
    build_family_tables,
    default_family_map,
    handle_metrics_table,
    load_predictions,
)
from irbench_assets.stats.metrics import (
    BINARY_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    compute_metrics,
    metrics_for,
    validate_arrays,
)
from irbench_assets.stats.multitest import adjust_within, bh_adjust
from irbench_assets.stats.resample import (
    FamilyResult,
    HandleMetric,
    PairMetric,
    ResamplePlan,
    bootstrap_distributions,
    evaluate_family,
    evaluate_handle,
    percentile_ci,
    permutation_distribution,
    permutation_pvalue,
)

__all__ = [
    "BINARY_METRICS",
    "HIGHER_IS_BETTER",
    "METRICS_SCHEMA",
    "PAIRWISE_SCHEMA",
    "REGRESSION_METRICS",
    "FamilyResult",
    "FamilyTables",
    "HandleMetric",
    "PairMetric",
    "ResamplePlan",
    "adjust_within",
    "bh_adjust",
    "bootstrap_distributions",
    "build_family_tables",
    "compute_metrics",
    "default_family_map",
    "evaluate_family",
    "evaluate_handle",
    "handle_metrics_table",
    "load_predictions",
    "metrics_for",
    "percentile_ci",
    "permutation_distribution",
    "permutation_pvalue",
    "validate_arrays",
]
