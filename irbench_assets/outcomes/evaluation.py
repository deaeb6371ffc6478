"""Evaluation eligibility, outcome descriptives per split, and sanity bounds on outcome prevalence."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from irbench_assets.outcomes.base import SPLITS
from irbench_assets.outcomes.definitions import ADDITIONAL_BINARY_ORDER, OUTCOMES, families_for


def eligibility(outcomes: pl.DataFrame, outcome: str) -> pl.Series:
    """Rows evaluated for ``outcome``: label non-null and, if a ``<outcome>_24h`` flag exists, flag not True.

    Admissions already positive in the first 24 h are excluded so that a probe on the first-24 h
    timeline is not rewarded for reading the answer off its input. Mortality and long LOS have no flag.
    """
    if outcome not in outcomes.columns:
        raise KeyError(f"outcome {outcome!r} is not a column of the outcomes table; columns: {outcomes.columns}")
    mask = outcomes.get_column(outcome).is_not_null()
    flag = f"{outcome}_24h"
    if flag in outcomes.columns:
        mask &= ~outcomes.get_column(flag).fill_null(False)
    return mask.alias(f"{outcome}_eligible")


def outcome_descriptives(outcomes: pl.DataFrame, families: Mapping[str, str]) -> pl.DataFrame:
    """Per split and outcome: eligible N, positives/negatives/prevalence (binaries) or mean/SD (regressions).

    Rows in split order (train, tuning, held_out) then family order; SD is the sample SD (ddof=1).
    """
    rows: list[dict[str, object]] = []
    splits = [s for s in SPLITS if s in set(outcomes.get_column("split").unique().to_list())]
    for split in splits:
        part = outcomes.filter(pl.col("split") == split)
        for outcome, family in families.items():
            d = OUTCOMES[outcome]
            y = part.get_column(outcome).filter(eligibility(part, outcome))
            row: dict[str, object] = {
                "split": split, "family": family, "outcome": outcome, "task_type": d.task_type,
                "n_eligible": y.len(), "n_positive": None, "n_negative": None, "prevalence": None,
                "mean": None, "sd": None,
            }
            if d.task_type == "classification":
                pos = int(y.cast(pl.Int64).sum())
                row.update(n_positive=pos, n_negative=y.len() - pos, prevalence=pos / y.len() if y.len() else None)
            else:
                yf = y.cast(pl.Float64)
                row.update(mean=yf.mean(), sd=yf.std(ddof=1))
            rows.append(row)
    schema = {
        "split": pl.String, "family": pl.String, "outcome": pl.String, "task_type": pl.String,
        "n_eligible": pl.Int64, "n_positive": pl.Int64, "n_negative": pl.Int64, "prevalence": pl.Float64,
        "mean": pl.Float64, "sd": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def prevalence_bounds_check(outcomes: pl.DataFrame, families: Mapping[str, str] | None = None) -> list[str]:
    """Problems that mean a wrong label table (empty list when sane).

    Checks: unique non-null hadm_id; LOS non-null; ICU hours >= 0 and 0 without an ICU admission; each
    primary binary of ``families`` (default: the Exp1-2 set, or the Exp3 set when every row had an ICU
    stay) has eligible rows and prevalence strictly between 0 and 1; no additional binary has every
    eligible row positive.
    """
    problems: list[str] = []
    hadm = outcomes.get_column("hadm_id")
    if hadm.null_count():
        problems.append(f"hadm_id: {hadm.null_count()} null values")
    if hadm.n_unique() != hadm.len():
        problems.append(f"hadm_id: {hadm.len() - hadm.n_unique()} duplicated admissions")
    if outcomes.height == 0:
        return [*problems, "outcomes table is empty"]
    if (n := outcomes.get_column("length_of_stay").null_count()) > 0:
        problems.append(f"length_of_stay: {n} null values")
    icu = outcomes.get_column("icu_length_of_stay")
    if (n := int((icu < 0).sum())) > 0:
        problems.append(f"icu_length_of_stay: {n} negative values")
    if (n := outcomes.filter(~pl.col("icu_admission") & (pl.col("icu_length_of_stay") > 0)).height) > 0:
        problems.append(f"icu_length_of_stay: {n} admissions with ICU hours but icu_admission False")
    if families is None:
        cohort = "icu" if bool(outcomes.get_column("icu_admission").all()) else "all"
        families = families_for("check", cohort)  # type: ignore[arg-type]
    for outcome, family in families.items():
        d = OUTCOMES[outcome]
        if d.task_type != "classification" or outcome not in outcomes.columns:
            continue
        y = outcomes.get_column(outcome).filter(eligibility(outcomes, outcome)).cast(pl.Int64)
        n, pos = y.len(), int(y.sum())
        if family.endswith("primary_binary"):
            if n == 0:
                problems.append(f"{outcome}: no eligible admissions")
            elif pos in (0, n):
                problems.append(f"{outcome}: prevalence {pos / n:.3f} among {n} eligible admissions (expected in (0, 1))")
        elif outcome in ADDITIONAL_BINARY_ORDER and n > 0 and pos == n:
            problems.append(f"{outcome}: every one of {n} eligible admissions is positive")
    return problems
