"""Extended outcomes: 12 lab/vital extremes after the first 24 h and 12 post-24 h binaries with 24 h flags.

A value counts as "after 24 h" when its MEDS ``time`` (availability time) is strictly later than
admission + 24 h; the ``*_24h`` flags use every event of the admission with ``time <= admission + 24 h``
(including events stored before the admission time, which the first-24 h timeline also shows).
Measurement-based binaries are null without a post-24 h measurement; event-based ones are False when
absent; ``*_24h`` flags are False when absent.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from irbench_assets.outcomes.base import _HOUR_US, scan_events
from irbench_assets.outcomes.definitions import (
    ADDITIONAL_BINARY_ORDER,
    EVENT_BINARIES,
    EXTENDED_REGRESSIONS,
    MEASUREMENT_BINARIES,
    MEASURES,
    OBSERVATION_HOURS,
    Condition,
)

_WINDOWS = ("post", "early")  # post: time > admit + window; early: time <= admit + window


def classify_codes(codes: pl.Series) -> pl.DataFrame:
    """Map MEDS codes to the measures/events the extended outcomes need: columns code, kind, name.

    ``kind`` is ``measure`` (a LAB//<itemid>//<unit> or VITAL//<itemid>//<unit> code of a :data:`MEASURES`
    itemid) or ``event`` (an :data:`EVENT_BINARIES` code). Codes that match nothing are left out.
    """
    df = pl.DataFrame({"code": codes.cast(pl.String)}).unique().drop_nulls()
    parts = pl.col("code").str.split("//")
    df = df.with_columns(
        parts.list.first().alias("_domain"),
        parts.list.get(1, null_on_oob=True).cast(pl.Int64, strict=False).alias("_itemid"),
    )
    lookup = pl.DataFrame(
        [
            {"_domain": m.domain, "_itemid": i, "kind": "measure", "name": m.name}
            for m in MEASURES.values()
            for i in m.itemids
        ],
        schema={"_domain": pl.String, "_itemid": pl.Int64, "kind": pl.String, "name": pl.String},
    )
    measures = df.join(lookup, on=["_domain", "_itemid"], how="inner").select("code", "kind", "name")
    events = []
    for name, patterns in EVENT_BINARIES.items():
        hit = pl.any_horizontal(
            [pl.col("code").str.starts_with(p) if p.endswith("//") else pl.col("code") == p for p in patterns]
        )
        events.append(df.filter(hit).select("code", pl.lit("event").alias("kind"), pl.lit(name).alias("name")))
    return pl.concat([measures, *events]).sort("kind", "name", "code")


def _cmp(expr: pl.Expr, c: Condition) -> pl.Expr:
    return expr >= c.threshold if c.op == ">=" else expr < c.threshold


def _binary(conds: tuple[Condition, ...], window: str, null_when_unmeasured: bool) -> pl.Expr:
    """Any condition true; null when every involved measure is missing (post window), else False-filled."""
    cols = [pl.col(f"{c.measure}_{window}_{c.agg}") for c in conds]
    hit = pl.any_horizontal([_cmp(col, c).fill_null(False) for col, c in zip(cols, conds, strict=True)])
    if not null_when_unmeasured:
        return hit
    return pl.when(pl.all_horizontal([col.is_null() for col in cols])).then(None).otherwise(hit)


def extended_outcomes(
    meds_root: Path, adm: pl.DataFrame, observation_hours: float = OBSERVATION_HOURS
) -> pl.DataFrame:
    """The extended outcome columns for every admission of ``adm`` (hadm_id, admission_time), by hadm_id."""
    codes = scan_events(meds_root, ("code",)).select("code").unique().collect(engine="streaming")["code"]
    cmap = classify_codes(codes)
    cut = pl.col("admission_time") + pl.duration(microseconds=round(observation_hours * _HOUR_US))
    keys = adm.select("hadm_id", "admission_time")

    # Lazy end to end: the streaming engine aggregates per (admission, measure, window), so memory is
    # bounded by the aggregates, not by the (large) vital-sign event stream.
    ev = (
        scan_events(meds_root, ("time", "code", "numeric_value", "hadm_id"))
        .filter(
            pl.col("code").is_in(cmap["code"].implode())
            & pl.col("hadm_id").is_not_null()
            & pl.col("time").is_not_null()
        )
        .join(cmap.lazy(), on="code", how="inner")
        .join(keys.lazy(), on="hadm_id", how="inner")
        .with_columns(pl.when(pl.col("time") > cut).then(pl.lit("post")).otherwise(pl.lit("early")).alias("window"))
    )

    # ---- measurements: drop non-finite and implausible values, then min/max per (hadm, measure, window)
    keep = pl.col("numeric_value").is_finite()
    for m in MEASURES.values():
        if m.plausible is not None:
            lo, hi = m.plausible
            keep &= (pl.col("name") != m.name) | pl.col("numeric_value").is_between(lo, hi, closed="both")
    aggs_long = (
        ev.filter((pl.col("kind") == "measure") & pl.col("numeric_value").is_not_null())
        .with_columns(pl.col("numeric_value").cast(pl.Float64))
        .filter(keep)
        .group_by("hadm_id", "name", "window")
        .agg(pl.col("numeric_value").min().alias("min"), pl.col("numeric_value").max().alias("max"))
        .collect(engine="streaming")
        .unpivot(index=["hadm_id", "name", "window"], on=["min", "max"], variable_name="agg")
        .with_columns(pl.concat_str(["name", "window", "agg"], separator="_").alias("col"))
    )
    wanted = [f"{m}_{w}_{a}" for m in MEASURES for w in _WINDOWS for a in ("min", "max")]
    if aggs_long.height:
        aggs = aggs_long.pivot(on="col", index="hadm_id", values="value")
    else:
        aggs = pl.DataFrame(schema={"hadm_id": pl.Int64})
    aggs = aggs.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in wanted if c not in aggs.columns])
    aggs = keys.select("hadm_id").join(aggs, on="hadm_id", how="left")

    cols: list[pl.Expr] = []
    for name, (measure, agg) in EXTENDED_REGRESSIONS.items():
        cols.append(pl.col(f"{measure}_post_{agg}").cast(pl.Float64).alias(name))
    for name, conds in MEASUREMENT_BINARIES.items():
        cols.append(_binary(conds, "post", True).alias(name))
        cols.append(_binary(conds, "early", False).alias(f"{name}_24h"))
    out = aggs.select("hadm_id", *cols)

    # ---- event-based binaries: any event in each window, False-filled
    evb = (
        ev.filter(pl.col("kind") == "event")
        .group_by("hadm_id")
        .agg(
            *[((pl.col("name") == n) & (pl.col("window") == "post")).any().alias(n) for n in EVENT_BINARIES],
            *[((pl.col("name") == n) & (pl.col("window") == "early")).any().alias(f"{n}_24h")
              for n in EVENT_BINARIES],
        )
        .collect(engine="streaming")
    )
    out = out.join(evb, on="hadm_id", how="left").with_columns(
        [pl.col(n).fill_null(False) for n in EVENT_BINARIES]
        + [pl.col(f"{n}_24h").fill_null(False) for n in EVENT_BINARIES]
    )
    ordered = list(EXTENDED_REGRESSIONS)
    for name in ADDITIONAL_BINARY_ORDER:
        ordered += [name, f"{name}_24h"]
    return out.select("hadm_id", *ordered).sort("hadm_id")
