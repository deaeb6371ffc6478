"""Base outcomes from MEDS event times: LOS, ICU LOS, mortality, ICU admission, IMV, prolonged ICU stay.

Everything is computed from the MEDS ``time`` column (when the information became available), never
from tokens: the tokenizer moves procedures to the discharge suffix, so token positions lose timing.
Queries are polars lazy scans restricted to the few codes an outcome needs, so memory stays bounded
by the (small) per-admission aggregates, not by the event table.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from irbench_assets.outcomes.definitions import (
    DEATH_WORDS,
    ICU_COHORT_MIN_LOS_HOURS,
    IMV_CODES,
    LONG_LOS_HOURS,
    OBSERVATION_HOURS,
    PROLONGED_ICU_HOURS,
)

SPLITS = ("train", "tuning", "held_out")
_HOUR_US = 3_600_000_000  # microseconds per hour


def split_files(meds_root: Path) -> dict[str, list[Path]]:
    """The shard files of each split present under ``<meds_root>/data`` (sorted), train/tuning/held_out order."""
    data = Path(meds_root) / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: not a MEDS data directory (expected data/<split>/*.parquet)")
    out = {s: sorted((data / s).glob("*.parquet")) for s in SPLITS}
    out = {s: files for s, files in out.items() if files}
    if not out:
        raise FileNotFoundError(f"{data}: no shard files under data/{{{','.join(SPLITS)}}}/*.parquet")
    return out


def scan_events(meds_root: Path, columns: tuple[str, ...] = ("subject_id", "time", "code", "numeric_value",
                                                              "hadm_id")) -> pl.LazyFrame:
    """Lazy scan of every MEDS shard with a ``split`` column taken from the shard's directory."""
    frames = [
        pl.scan_parquet(files).select(*columns).with_columns(pl.lit(split).alias("split"))
        for split, files in split_files(meds_root).items()
    ]
    return pl.concat(frames, how="vertical")


def hours(expr: pl.Expr) -> pl.Expr:
    """A duration expression in (fractional) hours, as Float64."""
    return expr.dt.total_microseconds().cast(pl.Float64) / _HOUR_US


def admissions(meds_root: Path) -> pl.DataFrame:
    """One row per hadm_id: subject_id, split, admission_time, discharge_time, discharge_location.

    Taken from the HOSPITAL_ADMISSION / HOSPITAL_DISCHARGE events (earliest admission, latest discharge).
    An admission without a discharge event, or an hadm_id shared by two subjects, is an error.
    """
    ev = (
        scan_events(meds_root, ("subject_id", "time", "code", "hadm_id"))
        .filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION") | pl.col("code").str.starts_with(
            "HOSPITAL_DISCHARGE"))
        .collect(engine="streaming")
    )
    where = f"{Path(meds_root) / 'data'}"
    bad = ev.filter(pl.col("hadm_id").is_null() | pl.col("time").is_null())
    if bad.height:
        r = bad.row(0, named=True)
        raise ValueError(
            f"{where}: {bad.height} HOSPITAL_ADMISSION/DISCHARGE events with null hadm_id or time "
            f"(first: subject_id={r['subject_id']}, code={r['code']!r}, hadm_id={r['hadm_id']}, time={r['time']})"
        )
    is_adm = pl.col("code").str.starts_with("HOSPITAL_ADMISSION")
    adm = (
        ev.sort("hadm_id", "time", "code")
        .group_by("hadm_id")
        .agg(
            pl.col("subject_id").n_unique().alias("_n_subjects"),
            pl.col("subject_id").first(),
            pl.col("split").first(),
            pl.col("time").filter(is_adm).min().alias("admission_time"),
            pl.col("time").filter(~is_adm).max().alias("discharge_time"),
            pl.col("code").filter(~is_adm).last().str.replace(r"^HOSPITAL_DISCHARGE/*", "")
            .alias("discharge_location"),
        )
        .sort("hadm_id")
    )
    shared = adm.filter(pl.col("_n_subjects") > 1)
    if shared.height:
        raise ValueError(f"{where}: column hadm_id: hadm_id {shared['hadm_id'][0]} belongs to several subject_ids")
    for col, what in (("admission_time", "HOSPITAL_ADMISSION"), ("discharge_time", "HOSPITAL_DISCHARGE")):
        miss = adm.filter(pl.col(col).is_null())
        if miss.height:
            raise ValueError(
                f"{where}: column code: hadm_id {miss['hadm_id'][0]} (and {miss.height - 1} more) has no "
                f"{what} event"
            )
    return adm.drop("_n_subjects")


def _icu_events(meds_root: Path) -> pl.LazyFrame:
    return scan_events(meds_root, ("time", "code", "hadm_id")).filter(
        pl.col("hadm_id").is_not_null()
        & pl.col("time").is_not_null()
        & (pl.col("code").str.starts_with("ICU_ADMISSION") | pl.col("code").str.starts_with("ICU_DISCHARGE"))
    )


def icu_hours(icu_events: pl.DataFrame, adm: pl.DataFrame) -> pl.DataFrame:
    """Per hadm_id the ICU hours: length of the union of ICU segments (open segment ends at discharge).

    MEDS codes carry no stay_id, so admissions and discharges are paired by a running depth: at each
    distinct time the depth moves by (#ICU_ADMISSION - #ICU_DISCHARGE), clipped at 0 (a discharge with
    no open stay is ignored). Time with depth > 0 is ICU time. Back-to-back stays (discharge and new
    admission at the same instant) and zero-length stays are handled exactly; overlaps count once.
    """
    if icu_events.is_empty():
        return pl.DataFrame(schema={"hadm_id": pl.Int64, "icu_length_of_stay": pl.Float64})
    steps = (
        icu_events.with_columns(
            pl.when(pl.col("code").str.starts_with("ICU_ADMISSION")).then(1).otherwise(-1).alias("_d")
        )
        .group_by("hadm_id", "time")
        .agg(pl.col("_d").sum())
        .sort("hadm_id", "time")
        .with_columns(pl.col("_d").cum_sum().over("hadm_id").alias("_s"))
        .with_columns(
            (pl.col("_s") - pl.min_horizontal(pl.lit(0), pl.col("_s").cum_min().over("hadm_id"))).alias("_depth"),
            pl.col("time").shift(-1).over("hadm_id").alias("_next"),
        )
        .join(adm.select("hadm_id", "discharge_time"), on="hadm_id", how="left")
        .with_columns(pl.coalesce("_next", "discharge_time").alias("_end"))
    )
    seg = pl.when(pl.col("_depth") > 0).then(hours(pl.col("_end") - pl.col("time")).clip(lower_bound=0.0))
    return steps.group_by("hadm_id").agg(seg.otherwise(0.0).sum().alias("icu_length_of_stay"))


def _any_in_windows(
    ev: pl.DataFrame, adm: pl.DataFrame, name: str, observation_hours: float
) -> pl.DataFrame:
    """Per hadm_id: ``name`` (any event) and ``name_24h`` (any event with time <= admission + window)."""
    cut = pl.col("admission_time") + pl.duration(microseconds=round(observation_hours * _HOUR_US))
    return (
        ev.join(adm.select("hadm_id", "admission_time"), on="hadm_id", how="inner")
        .group_by("hadm_id")
        .agg(pl.lit(True).alias(name), (pl.col("time") <= cut).any().alias(f"{name}_24h"))
    )


def base_outcomes(
    meds_root: Path, adm: pl.DataFrame | None = None, observation_hours: float = OBSERVATION_HOURS
) -> pl.DataFrame:
    """The base outcome columns for every admission (keys from :func:`admissions`), sorted by hadm_id."""
    adm = admissions(meds_root) if adm is None else adm
    icu_ev = _icu_events(meds_root).collect(engine="streaming")
    icu_los = icu_hours(icu_ev, adm)
    icu_adm = _any_in_windows(
        icu_ev.filter(pl.col("code").str.starts_with("ICU_ADMISSION")), adm, "icu_admission", observation_hours
    )
    imv_ev = (
        scan_events(meds_root, ("time", "code", "hadm_id"))
        .filter(pl.col("code").is_in(list(IMV_CODES)) & pl.col("hadm_id").is_not_null()
                & pl.col("time").is_not_null())
        .collect(engine="streaming")
    )
    imv = _any_in_windows(imv_ev, adm, "imv_event", observation_hours)
    death = (
        scan_events(meds_root, ("subject_id", "time", "code"))
        .filter((pl.col("code") == "MEDS_DEATH") & pl.col("time").is_not_null())
        .group_by("subject_id")
        .agg(pl.col("time").min().alias("_death_time"))
        .collect(engine="streaming")
    )
    died_text = pl.col("discharge_location").str.to_lowercase().str.contains("|".join(DEATH_WORDS)).fill_null(False)
    died_meds = (
        (pl.col("_death_time") >= pl.col("admission_time")) & (pl.col("_death_time") <= pl.col("discharge_time"))
    ).fill_null(False)
    out = (
        adm.join(death, on="subject_id", how="left")
        .join(icu_los, on="hadm_id", how="left")
        .join(icu_adm, on="hadm_id", how="left")
        .join(imv, on="hadm_id", how="left")
        .with_columns(hours(pl.col("discharge_time") - pl.col("admission_time")).alias("length_of_stay"))
        .with_columns(
            pl.col("icu_length_of_stay").fill_null(0.0),
            (died_text | died_meds).alias("same_admission_death"),
            (pl.col("length_of_stay") > LONG_LOS_HOURS).alias("long_length_of_stay"),
            *[pl.col(c).fill_null(False) for c in ("icu_admission", "icu_admission_24h", "imv_event",
                                                    "imv_event_24h")],
        )
        .with_columns(
            (pl.col("icu_admission") & (pl.col("icu_length_of_stay") > PROLONGED_ICU_HOURS)).alias(
                "prolonged_icu_stay"
            )
        )
    )
    return out.sort("hadm_id")


def icu_cohort(meds_root: Path, adm: pl.DataFrame | None = None) -> pl.DataFrame:
    """H_ICU: admissions with hospital LOS >= 24 h and >= 1 ICU_ADMISSION for the same hadm_id.

    Returns hadm_id, subject_id, split (sorted by hadm_id).
    """
    adm = admissions(meds_root) if adm is None else adm
    with_icu = (
        _icu_events(meds_root)
        .filter(pl.col("code").str.starts_with("ICU_ADMISSION"))
        .select("hadm_id")
        .unique()
        .collect(engine="streaming")
    )
    long_enough = hours(pl.col("discharge_time") - pl.col("admission_time")) >= ICU_COHORT_MIN_LOS_HOURS
    return (
        adm.filter(long_enough)
        .join(with_icu, on="hadm_id", how="semi")
        .select("hadm_id", "subject_id", "split")
        .sort("hadm_id")
    )
