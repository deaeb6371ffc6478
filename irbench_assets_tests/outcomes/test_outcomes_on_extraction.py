"""Outcomes on the Stage -1 extraction of the synthetic MIMIC-IV, cross-checked against the raw MIMIC tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from irbench_assets.mimic.readers import read_table
from irbench_assets.outcomes import (
    compute_outcomes,
    eligibility,
    families_for,
    icu_cohort,
    outcome_descriptives,
    output_columns,
)
from irbench_assets.outcomes.definitions import DEATH_WORDS


@pytest.fixture(scope="module")
def outcomes(small_meds: tuple[Path, dict]) -> pl.DataFrame:
    return compute_outcomes(small_meds[0])


def test_anchors_los_icu_and_death_agree_with_the_mimic_tables(small_mimic: Path, outcomes: pl.DataFrame) -> None:
    adm = read_table(small_mimic, "admissions", ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
                                                 "discharge_location"])
    adm = adm.filter(pl.col("admittime").is_not_null() & pl.col("dischtime").is_not_null())
    assert outcomes.columns == list(output_columns())
    assert outcomes["hadm_id"].to_list() == sorted(adm["hadm_id"].to_list())
    # MEDS_DEATH is the subject's latest in-hospital deathtime, else dod at 23:59:59 (docs/meds.md)
    pat = read_table(small_mimic, "patients", ["subject_id", "dod"])
    death = (
        pat.join(adm.group_by("subject_id").agg(pl.col("deathtime").max()), on="subject_id", how="left")
        .select("subject_id", pl.coalesce("deathtime", pl.col("dod").cast(pl.Datetime("us"))
                                          + pl.duration(hours=23, minutes=59, seconds=59)).alias("death"))
    )
    icu = read_table(small_mimic, "icustays", ["hadm_id", "intime"]).filter(pl.col("intime").is_not_null())
    ref = (
        adm.join(death, on="subject_id", how="left")
        .with_columns(
            ((pl.col("dischtime") - pl.col("admittime")).dt.total_seconds() / 3600).alias("los"),
            (pl.col("discharge_location").str.to_lowercase().str.contains("|".join(DEATH_WORDS)).fill_null(False)
             | pl.col("death").is_between(pl.col("admittime"), pl.col("dischtime")).fill_null(False)).alias("died"),
            pl.col("hadm_id").is_in(icu["hadm_id"].implode()).alias("icu"),
        )
        .sort("hadm_id")
    )
    assert outcomes["length_of_stay"].to_list() == pytest.approx(ref["los"].to_list())
    assert outcomes["same_admission_death"].to_list() == ref["died"].to_list()
    assert outcomes["icu_admission"].to_list() == ref["icu"].to_list()
    assert outcomes["long_length_of_stay"].to_list() == (ref["los"] > 168).to_list()


def test_split_matches_the_subject_split(small_meds: tuple[Path, dict], outcomes: pl.DataFrame) -> None:
    splits = pl.read_parquet(small_meds[0] / "metadata" / "subject_splits.parquet")
    joined = outcomes.join(splits, on="subject_id", how="left", suffix="_meta")
    assert joined["split"].to_list() == joined["split_meta"].to_list()


def test_eligibility_and_descriptives_cover_every_family_outcome(
    small_meds: tuple[Path, dict], outcomes: pl.DataFrame
) -> None:
    fams = families_for("exp1", "all")
    for outcome in fams:
        mask = eligibility(outcomes, outcome)
        assert mask.null_count() == 0 and mask.len() == outcomes.height
    desc = outcome_descriptives(outcomes, fams)
    n_splits = outcomes["split"].n_unique()
    assert desc.height == n_splits * len(fams)
    icu = compute_outcomes(small_meds[0], cohort="icu")
    assert icu["hadm_id"].to_list() == icu_cohort(small_meds[0])["hadm_id"].to_list()
    assert icu.height < outcomes.height and bool(icu["icu_admission"].all())
    assert (icu["length_of_stay"] >= 24).all()
