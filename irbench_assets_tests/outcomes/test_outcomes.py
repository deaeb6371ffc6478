"""Outcome definitions on hand-built MEDS admissions (docs/meds.md layout): boundaries, nulls, 0-fill, flags."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from irbench_assets.meds.extract import MEDS_SCHEMA
from irbench_assets.outcomes import (
    OUTCOMES,
    compute_outcomes,
    eligibility,
    families_for,
    icu_cohort,
    outcome_descriptives,
    output_columns,
    prevalence_bounds_check,
)

T0 = datetime(2150, 1, 1, 8, 0, 0)
Row = tuple[int, datetime | None, str, float | None, int | None]


def h(x: float) -> datetime:
    """T0 + x hours."""
    return T0 + timedelta(hours=x)


def admission(subject: int, hadm: int, los_h: float, location: str = "HOME", start: datetime = T0) -> list[Row]:
    """The admission/discharge anchor events of one hospitalization."""
    return [
        (subject, start, "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", None, hadm),
        (subject, start + timedelta(hours=los_h), f"HOSPITAL_DISCHARGE//{location}", None, hadm),
    ]


def write_meds(root: Path, rows: list[Row], splits: dict[int, str] | None = None) -> Path:
    """Write ``rows`` as a MEDS dataset (data/<split>/0000.parquet, metadata/subject_splits.parquet)."""
    splits = splits or {}
    df = pl.DataFrame(
        rows,
        schema={"subject_id": pl.Int64, "time": pl.Datetime("us"), "code": pl.String,
                "numeric_value": pl.Float32, "hadm_id": pl.Int64},
        orient="row",
    ).with_columns(
        pl.lit(None, pl.String).alias("text_value"),
        pl.col("time").alias("charttime"),
        pl.lit(None, pl.Float32).alias("ref_range_lower"),
        pl.lit(None, pl.Float32).alias("ref_range_upper"),
        pl.lit("test").alias("table"),
        pl.col("subject_id").replace_strict(splits, default="train", return_dtype=pl.String).alias("_split"),
    )
    for split, part in df.partition_by("_split", as_dict=True).items():
        out = root / "data" / str(split[0]) / "0000.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        part = part.drop("_split").sort("subject_id", "time", nulls_last=False, maintain_order=True)
        pq.write_table(part.select(MEDS_SCHEMA.names).to_arrow().cast(MEDS_SCHEMA), out)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    subj = sorted({r[0] for r in rows})
    pq.write_table(
        pa.table({"subject_id": subj, "split": [splits.get(s, "train") for s in subj]}),
        root / "metadata" / "subject_splits.parquet",
    )
    return root


def one(df: pl.DataFrame, hadm: int) -> dict[str, object]:
    return df.filter(pl.col("hadm_id") == hadm).row(0, named=True)


# --------------------------------------------------------------------------------------- base
def test_length_of_stay_and_long_los_boundary(tmp_path: Path) -> None:
    rows = admission(1, 10, 168.0) + admission(2, 20, 168.5) + admission(3, 30, 2.25)
    out = compute_outcomes(write_meds(tmp_path, rows))
    assert out["hadm_id"].to_list() == [10, 20, 30]
    assert out["length_of_stay"].to_list() == pytest.approx([168.0, 168.5, 2.25])
    assert out["long_length_of_stay"].to_list() == [False, True, False]  # > 7 d, not >=
    assert out.columns == list(output_columns())


def test_icu_length_of_stay_sums_segments_and_open_segment_ends_at_discharge(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 240.0),
        (1, h(2), "ICU_ADMISSION//MICU", None, 10), (1, h(12), "ICU_DISCHARGE//MICU", None, 10),  # 10 h
        (1, h(30), "ICU_ADMISSION//SICU", None, 10),  # open: ends at discharge (240 h) -> 210 h
    ]
    rows += [*admission(2, 20, 100.0),  # back-to-back stays 5..20 and 20..60, and a zero-length stay at 70
        (2, h(5), "ICU_ADMISSION//MICU", None, 20), (2, h(20), "ICU_DISCHARGE//MICU", None, 20),
        (2, h(20), "ICU_ADMISSION//CCU", None, 20), (2, h(60), "ICU_DISCHARGE//CCU", None, 20),
        (2, h(70), "ICU_ADMISSION//CCU", None, 20), (2, h(70), "ICU_DISCHARGE//CCU", None, 20),
    ]
    rows += [*admission(3, 30, 100.0),  # 2 stays with a gap: 1..40 (39 h) and 50..59 (9 h) = 48 h, not > 48
        (3, h(1), "ICU_ADMISSION//MICU", None, 30), (3, h(40), "ICU_DISCHARGE//MICU", None, 30),
        (3, h(50), "ICU_ADMISSION//MICU", None, 30), (3, h(59), "ICU_DISCHARGE//MICU", None, 30),
    ]
    rows += admission(4, 40, 100.0)
    out = compute_outcomes(write_meds(tmp_path, rows))
    assert out["icu_length_of_stay"].to_list() == pytest.approx([220.0, 55.0, 48.0, 0.0])
    assert out["icu_admission"].to_list() == [True, True, True, False]
    assert out["prolonged_icu_stay"].to_list() == [True, True, False, False]
    assert out["icu_admission_24h"].to_list() == [True, True, True, False]


def test_same_admission_death_from_location_or_meds_death_in_window(tmp_path: Path) -> None:
    rows = admission(1, 10, 50.0, "DIED")
    rows += [*admission(2, 20, 50.0, "HOME"), (2, h(50), "MEDS_DEATH", None, None)]  # exactly at discharge
    rows += [*admission(3, 30, 50.0, "HOME"), (3, h(74), "MEDS_DEATH", None, None)]  # after discharge
    rows += admission(4, 40, 50.0, "Hospice, expired") + admission(5, 50, 10.0, "SKILLED NURSING FACILITY")
    # subject 6: two admissions, dies during the second one
    rows += [*admission(6, 60, 10.0), *admission(6, 61, 20.0, start=h(100)), (6, h(110), "MEDS_DEATH", None, None)]
    out = compute_outcomes(write_meds(tmp_path, rows))
    assert dict(zip(out["hadm_id"], out["same_admission_death"], strict=True)) == {
        10: True, 20: True, 30: False, 40: True, 50: False, 60: False, 61: True,
    }


def test_imv_and_icu_flags_at_exactly_24h(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 100.0),
        (1, h(24), "PROCEDURE//START//224385", 1.0, 10),  # exactly at 24 h: inside the first 24 h
        (1, h(24), "ICU_ADMISSION//MICU", None, 10), (1, h(30), "ICU_DISCHARGE//MICU", None, 10),
    ]
    rows += [*admission(2, 20, 100.0),
        (2, h(24) + timedelta(seconds=1), "PROCEDURE//START//225792", 1.0, 20),
        (2, h(24) + timedelta(seconds=1), "ICU_ADMISSION//MICU", None, 20),
        (2, h(30), "ICU_DISCHARGE//MICU", None, 20),
        (2, h(31), "PROCEDURE//START//225400", 1.0, 20),  # not an IMV itemid
    ]
    rows += [*admission(3, 30, 100.0), (3, h(31), "PROCEDURE//START//225400", 1.0, 30)]
    out = compute_outcomes(write_meds(tmp_path, rows))
    assert out["imv_event"].to_list() == [True, True, False]
    assert out["imv_event_24h"].to_list() == [True, False, False]
    assert out["icu_admission_24h"].to_list() == [True, False, False]
    assert eligibility(out, "imv_event").to_list() == [False, True, True]
    assert eligibility(out, "icu_admission").to_list() == [False, True, True]


def test_admission_without_discharge_is_an_error(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 5.0), (2, T0, "HOSPITAL_ADMISSION//URGENT//UNK", None, 20)]
    with pytest.raises(ValueError, match=r"hadm_id 20 .*HOSPITAL_DISCHARGE"):
        compute_outcomes(write_meds(tmp_path, rows))


def test_split_comes_from_the_shard_directory(tmp_path: Path) -> None:
    rows = admission(1, 10, 5.0) + admission(2, 20, 5.0) + admission(3, 30, 5.0)
    out = compute_outcomes(write_meds(tmp_path, rows, {1: "train", 2: "tuning", 3: "held_out"}))
    assert out.select("hadm_id", "subject_id", "split").rows() == [(10, 1, "train"), (20, 2, "tuning"),
                                                                   (30, 3, "held_out")]


# ----------------------------------------------------------------------------------- extended
def lab(subject: int, hadm: int, at: float, itemid: int, value: float, unit: str = "mEq/L") -> Row:
    return (subject, h(at), f"LAB//{itemid}//{unit}", value, hadm)


def vital(subject: int, hadm: int, at: float, itemid: int, value: float, unit: str = "mmHg") -> Row:
    return (subject, h(at), f"VITAL//{itemid}//{unit}", value, hadm)


def test_lab_thresholds_are_inclusive_or_strict_as_defined(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 200.0),
        lab(1, 10, 30, 50971, 6.5), lab(1, 10, 31, 50822, 4.0),  # K max exactly 6.5 -> hyperkalemia
        lab(1, 10, 32, 50983, 160.0), lab(1, 10, 33, 50824, 120.0),  # Na max 160 (>=), min 120 (not < 120)
        lab(1, 10, 34, 51222, 7.0, "g/dL"), lab(1, 10, 35, 50931, 54.0, "mg/dL"),  # not < 7, not < 54
    ]
    rows += [*admission(2, 20, 200.0),
        lab(2, 20, 30, 50971, 6.49), lab(2, 20, 31, 50971, 2.49),  # no hyperK; severe hypoK
        lab(2, 20, 32, 52623, 119.9), lab(2, 20, 33, 50811, 6.9, "g/dL"), lab(2, 20, 34, 50809, 53.9, "mg/dL"),
    ]
    out = compute_outcomes(write_meds(tmp_path, rows))
    a, b = one(out, 10), one(out, 20)
    assert (a["hyperkalemia"], b["hyperkalemia"]) == (True, False)
    assert (a["severe_hypokalemia"], b["severe_hypokalemia"]) == (False, True)
    assert (a["severe_hypernatremia"], a["profound_hyponatremia"], b["profound_hyponatremia"]) == (True, False, True)
    assert (a["severe_anemia"], b["severe_anemia"]) == (False, True)
    assert (a["hypoglycemia"], b["hypoglycemia"]) == (False, True)
    assert a["peak_potassium"] == pytest.approx(6.5) and a["min_potassium"] == pytest.approx(4.0)
    assert b["min_sodium"] == pytest.approx(119.9) and b["max_sodium"] == pytest.approx(119.9)
    assert a["min_hemoglobin"] == pytest.approx(7.0) and b["min_glucose"] == pytest.approx(53.9, rel=1e-6)


def test_measurement_at_exactly_24h_is_first_24h_and_no_post_value_gives_null(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 200.0), lab(1, 10, 24, 50971, 7.0), lab(1, 10, 2, 50983, 110.0)]
    rows += [*admission(2, 20, 200.0), lab(2, 20, 24.001, 50971, 7.0)]
    rows += admission(3, 30, 200.0)
    out = compute_outcomes(write_meds(tmp_path, rows))
    a, b, c = one(out, 10), one(out, 20), one(out, 30)
    assert a["peak_potassium"] is None and a["hyperkalemia"] is None and a["hyperkalemia_24h"] is True
    assert a["profound_hyponatremia"] is None and a["profound_hyponatremia_24h"] is True
    assert b["peak_potassium"] == pytest.approx(7.0) and b["hyperkalemia"] is True and b["hyperkalemia_24h"] is False
    assert c["hyperkalemia"] is None and c["hyperkalemia_24h"] is False and c["peak_creatinine"] is None
    assert eligibility(out, "hyperkalemia").to_list() == [False, True, False]
    assert eligibility(out, "peak_potassium").to_list() == [False, True, False]


def test_pooled_itemids_and_other_itemids_ignored(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 200.0),
        lab(1, 10, 30, 51003, 0.5, "ng/mL"), lab(1, 10, 31, 51002, 2.0, "ng/mL"),  # troponin T and I pooled
        lab(1, 10, 32, 50963, 900.0, "pg/mL"), lab(1, 10, 33, 50964, 1200.0, "pg/mL"),
        lab(1, 10, 34, 50912, 1.1, "mg/dL"), lab(1, 10, 35, 50912, 2.3, "mg/dL"),
        lab(1, 10, 36, 50902, 999.0),  # chloride: not an outcome measure
        (1, h(37), "LAB//50912//mg/dL", None, 10),  # text-only value: ignored
    ]
    out = compute_outcomes(write_meds(tmp_path, rows))
    a = one(out, 10)
    assert a["peak_troponin"] == pytest.approx(2.0)
    assert a["peak_bnp"] == pytest.approx(1200.0)
    assert a["peak_creatinine"] == pytest.approx(2.3)


def test_implausible_vitals_are_dropped_and_sbp_dbp_pool_arterial_and_nibp(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 200.0),
        vital(1, 10, 30, 220045, 350.0, "bpm"), vital(1, 10, 31, 220045, 131.0, "bpm"),  # HR 350 dropped
        vital(1, 10, 32, 220050, 310.0), vital(1, 10, 33, 220179, 150.0),  # SBP 310 dropped; NIBP 150 kept
        vital(1, 10, 34, 220180, 125.0),  # NIBP DBP 125 -> severe hypertension via DBP
        vital(1, 10, 35, 220052, 5.0), vital(1, 10, 36, 220181, 70.0),  # MAP 5 dropped; MAP 70 not < 65
        vital(1, 10, 37, 220050, 19.0),  # SBP 19 dropped (would otherwise be < 90)
    ]
    rows += [*admission(2, 20, 200.0),
        vital(2, 20, 30, 220045, 10.0, "bpm"),  # only implausible HR: as if unmeasured
        vital(2, 20, 31, 220051, 300.0), vital(2, 20, 32, 220181, 64.0),  # DBP 300 kept (inclusive); MAP 64 < 65
        vital(2, 20, 33, 220045, 130.0, "bpm"), vital(2, 20, 2, 220045, 140.0, "bpm"),
    ]
    out = compute_outcomes(write_meds(tmp_path, rows))
    a, b = one(out, 10), one(out, 20)
    assert a["max_heart_rate"] == pytest.approx(131.0) and a["tachycardia_hr130"] is True
    assert a["max_sbp"] == pytest.approx(150.0) and a["max_dbp"] == pytest.approx(125.0)
    assert a["severe_hypertension"] is True and a["hypotension"] is False
    assert b["max_heart_rate"] == pytest.approx(130.0) and b["tachycardia_hr130"] is True
    assert b["tachycardia_hr130_24h"] is True and b["max_sbp"] is None and b["max_dbp"] == pytest.approx(300.0)
    assert b["hypotension"] is True and b["severe_hypertension"] is True


def test_composite_binaries_null_only_when_no_component_measured(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 200.0), vital(1, 10, 30, 220179, 120.0)]  # SBP only, normal
    rows += [*admission(2, 20, 200.0), vital(2, 20, 30, 220045, 80.0, "bpm")]  # no SBP/DBP/MAP
    rows += [*admission(3, 30, 200.0), vital(3, 30, 30, 220181, 80.0), vital(3, 30, 31, 220180, 60.0)]
    out = compute_outcomes(write_meds(tmp_path, rows))
    assert out["severe_hypertension"].to_list() == [False, None, False]
    assert out["hypotension"].to_list() == [False, None, False]
    assert out["severe_hypertension_24h"].to_list() == [False, False, False]


def test_event_based_binaries_are_zero_filled_with_24h_flags(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 200.0),
        (1, h(30), "INFUSION_START//221906", 0.1, 10), (1, h(31), "INFUSION_END//221906", None, 10),
        (1, h(40), "VITAL//227290//UNK", None, 10),  # CRRT mode chart event
        (1, h(5), "PROCEDURE//START//225441", 1.0, 10),  # hemodialysis in the first 24 h only
    ]
    rows += [*admission(2, 20, 200.0),
        (2, h(3), "INFUSION_START//222315", 2.4, 20), (2, h(50), "INFUSION_START//221749", 1.0, 20),
        (2, h(51), "PROCEDURE//START//225802", 1.0, 20), (2, h(52), "INFUSION_START//225158", 50.0, 20),
    ]
    rows += [*admission(3, 30, 200.0), (3, h(30), "INFUSION_END//221906", None, 30)]  # end is not a start
    out = compute_outcomes(write_meds(tmp_path, rows))
    assert out["vasopressor_initiation"].to_list() == [True, True, False]
    assert out["vasopressor_initiation_24h"].to_list() == [False, True, False]
    assert out["crrt_initiation"].to_list() == [True, True, False]
    assert out["hemodialysis_initiation"].to_list() == [False, False, False]
    assert out["hemodialysis_initiation_24h"].to_list() == [True, False, False]
    for col in ("vasopressor_initiation", "crrt_initiation", "hemodialysis_initiation"):
        assert out[col].null_count() == 0 and out[f"{col}_24h"].null_count() == 0
    assert eligibility(out, "vasopressor_initiation").to_list() == [True, False, True]
    assert eligibility(out, "hemodialysis_initiation").to_list() == [False, True, True]


def test_observation_window_is_configurable(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 200.0), lab(1, 10, 10, 50971, 7.0), lab(1, 10, 20, 50971, 3.0)]
    root = write_meds(tmp_path, rows)
    assert one(compute_outcomes(root), 10)["peak_potassium"] is None
    short = one(compute_outcomes(root, observation_hours=12.0), 10)
    assert short["peak_potassium"] == pytest.approx(3.0) and short["hyperkalemia_24h"] is True


# -------------------------------------------------------------------------- cohort, eligibility
def test_icu_cohort_needs_24h_los_and_an_icu_stay(tmp_path: Path) -> None:
    icu = [(0, h(1), "ICU_ADMISSION//MICU", None, 0), (0, h(5), "ICU_DISCHARGE//MICU", None, 0)]

    def with_icu(subject: int, hadm: int) -> list[Row]:
        return [(subject, t, c, v, hadm) for (_, t, c, v, _) in icu]

    rows = admission(1, 10, 23.9) + with_icu(1, 10)  # too short
    rows += admission(2, 20, 24.0) + with_icu(2, 20)  # exactly 24 h: in
    rows += admission(3, 30, 48.0)  # no ICU
    rows += [*admission(4, 40, 30.0), (4, h(1), "ICU_ADMISSION//MICU", None, 40)]  # open ICU stay: in
    rows += admission(4, 41, 30.0, start=h(500)) + with_icu(4, 40)  # ICU events belong to hadm 40
    root = write_meds(tmp_path, rows, {4: "held_out"})
    assert icu_cohort(root).rows() == [(20, 2, "train"), (40, 4, "held_out")]
    out = compute_outcomes(root, cohort="icu")
    assert out["hadm_id"].to_list() == [20, 40]
    assert out["icu_admission"].all()


def test_eligibility_mortality_has_no_flag_and_regression_needs_a_value(tmp_path: Path) -> None:
    rows = [*admission(1, 10, 30.0, "DIED"), (1, h(2), "ICU_ADMISSION//MICU", None, 10)]
    rows += [*admission(2, 20, 30.0), lab(2, 20, 25, 50912, 1.0, "mg/dL")]
    out = compute_outcomes(write_meds(tmp_path, rows))
    assert eligibility(out, "same_admission_death").to_list() == [True, True]
    assert eligibility(out, "long_length_of_stay").to_list() == [True, True]
    assert eligibility(out, "icu_admission").to_list() == [False, True]
    assert eligibility(out, "peak_creatinine").to_list() == [False, True]
    with pytest.raises(KeyError, match="not_an_outcome"):
        eligibility(out, "not_an_outcome")


# ------------------------------------------------------------------------ registry, descriptives
@pytest.mark.parametrize(("experiment", "cohort", "icu_endpoint"), [
    ("exp1", "all", "icu_admission"), ("exp2", "all", "icu_admission"), ("exp3", "icu", "prolonged_icu_stay"),
])
def test_families_have_16_binaries_and_13_regressions(experiment: str, cohort: str, icu_endpoint: str) -> None:
    fam = families_for(experiment)
    assert fam == families_for(experiment, cohort)  # type: ignore[arg-type]
    binaries = [o for o in fam if OUTCOMES[o].task_type == "classification"]
    regressions = [o for o in fam if OUTCOMES[o].task_type == "regression"]
    assert (len(binaries), len(regressions)) == (16, 13)
    primary = [o for o, f in fam.items() if f == f"{experiment}_primary_binary"]
    assert primary == ["same_admission_death", "long_length_of_stay", icu_endpoint, "imv_event"]
    assert [o for o, f in fam.items() if f == f"{experiment}_length_of_stay"] == ["length_of_stay"]
    assert all(f == f"{experiment}_{OUTCOMES[o].family}" for o, f in fam.items())


def test_registry_matches_table_columns() -> None:
    cols = set(output_columns())
    for name, d in OUTCOMES.items():
        assert name in cols
        assert (f"{name}_24h" in cols) == d.has_24h_flag, name
        assert d.description and d.source_codes
    assert len(OUTCOMES) == 31  # 17 binaries + 14 regressions (icu_length_of_stay is in no family)
    with pytest.raises(ValueError, match="cohort"):
        families_for("exp1", "ward")  # type: ignore[arg-type]


def _small_cohort(tmp_path: Path) -> pl.DataFrame:
    rows: list[Row] = []
    splits: dict[int, str] = {}
    rng = np.random.default_rng(0)
    for i in range(12):
        s, hadm = i + 1, 100 + i
        los = float(rng.uniform(10, 300))
        rows += admission(s, hadm, los, "DIED" if i % 4 == 0 else "HOME")
        if i % 3 == 0:
            rows += [(s, h(2 if i % 2 else 30), "ICU_ADMISSION//MICU", None, hadm)]
        if i % 2:
            rows += [lab(s, hadm, 30, 50971, float(rng.uniform(2, 7)))]
        if i % 5 == 0:
            rows += [(s, h(40), "PROCEDURE//START//224385", 1.0, hadm)]
        splits[s] = ("train", "tuning", "held_out")[i % 3]
    return compute_outcomes(write_meds(tmp_path, rows, splits))


def test_outcome_descriptives_match_numpy(tmp_path: Path) -> None:
    out = _small_cohort(tmp_path)
    desc = outcome_descriptives(out, families_for("exp1", "all"))
    assert desc["split"].unique(maintain_order=True).to_list() == ["train", "tuning", "held_out"]
    assert desc.height == 3 * 29
    for split in ("train", "tuning", "held_out"):
        part = out.filter(pl.col("split") == split)
        row = desc.filter((pl.col("split") == split) & (pl.col("outcome") == "length_of_stay")).row(0, named=True)
        los = part["length_of_stay"].to_numpy()
        assert row["n_eligible"] == len(los)
        assert row["mean"] == pytest.approx(np.mean(los)) and row["sd"] == pytest.approx(np.std(los, ddof=1))
        row = desc.filter((pl.col("split") == split) & (pl.col("outcome") == "icu_admission")).row(0, named=True)
        keep = ~part["icu_admission_24h"].to_numpy()
        y = part["icu_admission"].to_numpy()[keep]
        assert (row["n_eligible"], row["n_positive"], row["n_negative"]) == (len(y), y.sum(), len(y) - y.sum())


def test_prevalence_bounds_check(tmp_path: Path) -> None:
    out = _small_cohort(tmp_path)
    assert prevalence_bounds_check(out) == []
    nobody_dies = out.with_columns(pl.lit(False).alias("same_admission_death"))
    assert any("same_admission_death" in p for p in prevalence_bounds_check(nobody_dies))
    dup = pl.concat([out, out.head(1)])
    assert any("duplicated" in p for p in prevalence_bounds_check(dup))
    all_hyper = out.with_columns(pl.lit(True).alias("hyperkalemia"))
    assert any("hyperkalemia" in p for p in prevalence_bounds_check(all_hyper))


def test_data_dictionary_documents_every_column() -> None:
    from irbench_assets.settings import REPO_ROOT

    doc = (REPO_ROOT / "docs" / "outcomes.md").read_text()
    missing = [c for c in output_columns() if f"`{c}`" not in doc and not c.endswith("_24h")]
    assert missing == []
    assert all(f"`{name}`" in doc for name in OUTCOMES)
