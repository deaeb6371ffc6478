"""The outcomes table of one experiment: base + extended outcome columns, one row per admission."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from irbench_assets.outcomes.base import admissions, base_outcomes, icu_cohort
from irbench_assets.outcomes.definitions import (
    BASE_COLUMNS,
    KEY_COLUMNS,
    OBSERVATION_HOURS,
    Cohort,
    extended_columns,
)
from irbench_assets.outcomes.extended import extended_outcomes


def compute_outcomes(
    meds_root: Path, cohort: Cohort = "all", observation_hours: float = OBSERVATION_HOURS
) -> pl.DataFrame:
    """Every outcome column for the admissions of ``cohort`` ('all', or 'icu' = H_ICU), keyed by hadm_id.

    Columns: hadm_id, subject_id, split, admission_time, discharge_time, the base outcomes and the
    extended outcomes (order: :func:`irbench_assets.outcomes.definitions.output_columns`). The ``*_24h``
    column names keep their suffix whatever ``observation_hours`` is.
    """
    if cohort not in ("all", "icu"):
        raise ValueError(f"cohort must be 'all' or 'icu', got {cohort!r}")
    if not observation_hours > 0:
        raise ValueError(f"observation_hours must be > 0, got {observation_hours!r}")
    adm = admissions(meds_root)
    if cohort == "icu":
        adm = adm.join(icu_cohort(meds_root, adm).select("hadm_id"), on="hadm_id", how="semi")
    base = base_outcomes(meds_root, adm, observation_hours)
    ext = extended_outcomes(meds_root, adm, observation_hours)
    out = base.join(ext, on="hadm_id", how="left", validate="1:1")
    return out.select(*KEY_COLUMNS, *BASE_COLUMNS, *extended_columns()).sort("hadm_id")
