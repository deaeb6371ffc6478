"""Deterministic synthetic MIMIC-IV 3.1: all 15 tables irbench knows, with the real columns, itemids and units.

The generator draws patients, hospital admissions and ICU stays from a small latent-variable model
(subject frailty and chronic conditions, per-admission severity, organ-specific derangements and a
later deterioration) and turns them into time-stamped events: labs, ICU vitals, medications, ICU
procedures and infusions, transfers, and billing codes. docs/synthetic_mimic.md describes the model.

Work is done in chunks of ``chunk_admissions`` admissions (whole subjects per chunk). Each chunk uses
its own random streams, derived with :class:`numpy.random.SeedSequence` from ``(seed, chunk, stream)``,
so results depend only on ``(admissions, seed, chunk_admissions)``; every table is one gzip stream
(mtime 0) that receives the chunk's CSV rows in order, so memory is bounded by a chunk and the output
is byte-identical across runs.
"""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl
from scipy.signal import lfilter

from irbench_assets.mimic import catalog as cat
from irbench_assets.mimic.schema import DATE_FORMAT, DATETIME_FORMAT, TABLES, TableSchema
from irbench_assets.storage import atomic_dir

Arr = np.ndarray
Cols = dict[str, Arr]
Rng = np.random.Generator

HOUR = 3600
DAY = 86400
KNOT_H = 4.0  # spacing of the latent AR(1) knots that drive lab/vital trajectories
GZIP_LEVEL = 4  # compression level: a compromise between speed and size (MIMIC ships level 6-9)
SUBJECT_BASE, HADM_BASE, STAY_BASE = 10_000_000, 20_000_000, 30_000_000
ID_STRIDE_PER_ADMISSION = 4  # each chunk owns 4 * chunk_admissions ids of each kind
STREAMS = ("cohort", "knots", "icu", "labs", "vitals", "procedures", "inputs", "emar", "billing", "ids")


# ============================================================================================ utilities
def _sig(x: Arr | float) -> Arr:
    """Logistic function (vectorized)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _seg_arange(counts: Arr) -> Arr:
    """Concatenated ``arange(c)`` for each count c (position of each element inside its segment)."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _pick(rng: Rng, n: int, choices: Sequence[tuple[Any, float]]) -> Arr:
    """Indices into ``choices`` drawn with the (renormalised) weights given there."""
    p = np.array([w for _, w in choices], dtype=np.float64)
    return rng.choice(len(choices), size=n, p=p / p.sum())


def _gumbel_argmax(rng: Rng, logits: Arr) -> Arr:
    """One categorical draw per row of a (n, k) logit matrix (Gumbel-max trick)."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _to_min(h: Arr) -> Arr:
    """Round hours to whole minutes (MIMIC chart times have minute resolution)."""
    return np.round(np.asarray(h, dtype=np.float64) * 60.0) / 60.0


def _year_start(years: Arr) -> Arr:
    """Epoch seconds of 1 January of each (shifted, 21xx) year."""
    return (np.asarray(years, dtype=np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def _abs(admit: Arr, a: Arr, h: Arr) -> Arr:
    """Absolute epoch seconds (whole minutes) of ``h`` hours after the admission ``a``."""
    return admit[a] + np.round(np.asarray(h) * 60.0).astype(np.int64) * 60


def _subset(cols: Cols, idx: Arr | slice) -> Cols:
    """Rows ``idx`` of every array of a struct-of-arrays."""
    return {k: v[idx] for k, v in cols.items()}


def _concat(parts: list[Cols]) -> Cols:
    """Row-wise concatenation of struct-of-arrays with the same keys."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _lognormal_minutes(rng: Rng, n: int, median_min: float, sigma: float) -> Arr:
    """Storage lags in whole minutes (>= 0), log-normal around ``median_min``."""
    return np.round(median_min * np.exp(sigma * rng.standard_normal(n))).astype(np.int64)


# --------------------------------------------------------------------------------- polars columns
def _dt(secs: Arr, valid: Arr | None = None) -> pl.Series:
    """Datetime column from epoch seconds (null where ``valid`` is False)."""
    ms = np.asarray(secs, dtype=np.int64) * 1000
    data = ms if valid is None else np.ma.masked_array(ms, ~np.asarray(valid, dtype=bool))
    return pl.Series(data, dtype=pl.Int64).cast(pl.Datetime("ms"))


def _date(secs: Arr, valid: Arr | None = None) -> pl.Series:
    """Date column from epoch seconds (null where ``valid`` is False)."""
    return _dt(secs, valid).cast(pl.Date)


def _int(x: Arr, valid: Arr | None = None) -> pl.Series:
    """Int64 column (null where ``valid`` is False)."""
    x = np.asarray(x, dtype=np.int64)
    data = x if valid is None else np.ma.masked_array(x, ~np.asarray(valid, dtype=bool))
    return pl.Series(data, dtype=pl.Int64)


def _flt(x: Arr | float, n: int | None = None) -> pl.Series:
    """Float64 column; NaN becomes null."""
    arr = np.full(n, x, dtype=np.float64) if n is not None else np.asarray(x, dtype=np.float64)
    return pl.Series(arr, dtype=pl.Float64).fill_nan(None)


def _str(labels: Sequence[str | None], idx: Arr) -> pl.Series:
    """String column ``labels[idx]``; idx -1 (or a None label) gives null."""
    table = pl.Series([*labels, None], dtype=pl.String)
    idx = np.asarray(idx, dtype=np.int64)
    return table.gather(np.where(idx < 0, len(labels), idx))


def _const(value: str | None, n: int) -> pl.Series:
    """A string column holding one value (or null) n times."""
    return pl.Series([value], dtype=pl.String).gather(np.zeros(n, dtype=np.int64))


def _fixed_decimals(value: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """Format non-negative numbers with 0, 1 or 2 decimals as a lab system prints them ("4.0", "0.05")."""
    scaled = (value * pl.when(decimals == 0).then(1).when(decimals == 1).then(10).otherwise(100)).round(0)
    m = scaled.cast(pl.Int64)
    int0 = m.cast(pl.String)
    int1 = pl.concat_str((m // 10).cast(pl.String), pl.lit("."), (m % 10).cast(pl.String))
    int2 = pl.concat_str((m // 100).cast(pl.String), pl.lit("."), (m % 100).cast(pl.String).str.zfill(2))
    return pl.when(decimals == 0).then(int0).when(decimals == 1).then(int1).otherwise(int2)


def _float_text(col: pl.Expr) -> pl.Expr:
    """MIMIC's CSV float style: integral values without '.0' ("140"), others shortest repr ("4.1")."""
    integral = (col.round(0) == col) & (col.abs() < 1e15)
    return pl.when(integral).then(col.cast(pl.Int64).cast(pl.String)).otherwise(col.cast(pl.String))


# ============================================================================================= catalog
@dataclass(frozen=True)
class _Chan:
    """A latent trajectory channel: how an admission's level moves over the stay (see docs)."""

    name: str
    log: bool  # latent is the log of the natural value
    sd_dyn: float  # sd of the slow AR(1) fluctuation (latent units)
    tau_h: float  # its correlation time
    r_inf: float  # share of the admission's acute deviation still present after treatment
    tau_res_h: float  # time constant of that resolution
    term: float  # shift reached at death (ramps over the last 36 h of a fatal stay)
    peak: bool = False  # troponin-like rise and fall of the acute part


CHANNELS: tuple[_Chan, ...] = (
    _Chan("k", False, 0.16, 30, 0.55, 24, 0.6),
    _Chan("na", False, 1.2, 36, 0.55, 48, 2.5),
    _Chan("hco3", False, 1.0, 24, 0.5, 24, -4.0),
    _Chan("bun", True, 0.08, 36, 0.6, 48, 0.25),
    _Chan("cr", True, 0.06, 36, 0.55, 48, 0.2),
    _Chan("glu", True, 0.15, 12, 0.7, 24, 0.1),
    _Chan("mg", False, 0.1, 24, 0.6, 24, 0.0),
    _Chan("phos", False, 0.3, 24, 0.6, 36, 0.8),
    _Chan("ca", False, 0.2, 24, 0.7, 24, -0.3),
    _Chan("hb", False, 0.3, 36, 1.0, 24, -0.4),
    _Chan("wbc", True, 0.1, 36, 0.5, 48, 0.25),
    _Chan("plt", True, 0.07, 36, 0.7, 48, -0.3),
    _Chan("inr", True, 0.05, 36, 0.8, 48, 0.2),
    _Chan("lact", True, 0.12, 12, 0.35, 12, 0.9),
    _Chan("trop", True, 0.08, 36, 1.0, 12, 0.6, peak=True),
    _Chan("bnp", True, 0.06, 48, 0.8, 48, 0.3),
    _Chan("hr", False, 7.0, 8, 0.6, 24, 15.0),
    _Chan("sbp", False, 8.0, 8, 0.6, 24, -25.0),
    _Chan("dbpoff", False, 3.0, 8, 1.0, 24, -3.0),
    _Chan("rr", False, 2.0, 8, 0.6, 24, 6.0),
    _Chan("spo2def", True, 0.2, 8, 0.5, 24, 0.6),  # log(100 - SpO2)
    _Chan("temp", False, 0.4, 8, 0.4, 36, -0.3),
)
CH = {c.name: i for i, c in enumerate(CHANNELS)}

# Admission types: (intercept, slope on severity) of the categorical logits.
_TYPE_LOGITS = np.array(
    [(1.2, 0.5), (0.5, -0.5), (0.0, 0.2), (-0.3, 0.0), (-0.6, -0.6), (-1.0, 0.2), (-1.0, -0.7), (-1.2, -0.3),
     (-3.5, 0.0)]
)
_T = {name: i for i, name in enumerate(cat.ADMISSION_TYPES)}
_OBS_TYPES = np.array([_T["EU OBSERVATION"], _T["OBSERVATION ADMIT"], _T["DIRECT OBSERVATION"], _T["AMBULATORY OBSERVATION"]])
_ED_TYPES = np.array([_T["EW EMER."], _T["EU OBSERVATION"], _T["OBSERVATION ADMIT"]])
_SURGICAL = np.array([_T["SURGICAL SAME DAY ADMISSION"], _T["ELECTIVE"]])

UNITS: tuple[str, ...] = (*cat.ICU_CAREUNITS, *cat.WARD_CAREUNITS)
_N_ICU_UNITS = len(cat.ICU_CAREUNITS)

CHART_TEXTS: tuple[str, ...] = (
    "Spontaneously", "To Speech", "To Pain", "No Response",  # GCS eye 4..1  (0-3)
    "Oriented", "Confused", "Inappropriate Words", "Incomprehensible sounds", "No Response", "No Response-ETT",  # 4-9
    "Obeys Commands", "Localizes Pain", "Flex-withdraws", "Abnormal Flexion", "Abnormal extension", "No response",
    "CMV/ASSIST/AutoFlow", "CPAP/PSV", "CMV/ASSIST", "PRVC/AC", "SIMV/PSV/AutoFlow",  # 16-20 ventilator modes
    "CVVHDF", "CVVH", "CVVHD", "SCUF",  # 21-24 CRRT modes
)


# ============================================================================================= cohort
def _draw_batch(rng: Rng, m: int) -> tuple[Cols, Cols]:
    """Draw ``m`` subjects and their planned admissions (latents, labs' starting levels, death).

    Admissions after a subject's first in-hospital death are dropped here, so that a subject never
    comes back after dying.
    """
    sub: Cols = {}
    female = rng.random(m) < 0.52
    age = np.minimum(np.floor(18 + 73 * rng.beta(2.0, 1.6, m)), 91).astype(np.int64)
    age_z = (age - 60) / 18.0
    frail = rng.standard_normal(m)
    ckd = rng.random(m) < _sig(-2.4 + 0.6 * frail + 0.6 * age_z)
    esrd = ckd & (rng.random(m) < 0.2)
    chf = rng.random(m) < _sig(-2.5 + 0.5 * frail + 0.8 * age_z)
    dm = rng.random(m) < _sig(-1.2 + 0.3 * frail + 0.3 * age_z)
    copd = rng.random(m) < _sig(-2.6 + 0.4 * frail + 0.5 * age_z)
    htn = rng.random(m) < _sig(-0.3 + 0.9 * age_z)
    afib = rng.random(m) < _sig(-2.6 + 1.0 * age_z)
    sub.update(
        female=female, anchor_age=age, age_z=age_z, frail=frail, ckd=ckd, esrd=esrd, chf=chf, dm=dm, copd=copd,
        htn=htn, afib=afib, anticoag=afib & (rng.random(m) < 0.5), insulin=dm & (rng.random(m) < 0.45),
        anchor_year=rng.integers(2110, 2201, m),
        year_group=rng.choice(5, m, p=[0.22, 0.22, 0.22, 0.2, 0.14]),
        race=_pick(rng, m, cat.RACES), language=_pick(rng, m, cat.LANGUAGES),
        marital=_pick(rng, m, cat.MARITAL_STATUSES),
    )
    old_ins = rng.choice(5, m, p=[0.8, 0.03, 0.12, 0.05, 0.0])
    young_ins = rng.choice(5, m, p=[0.12, 0.28, 0.45, 0.13, 0.02])
    sub["insurance"] = np.where(age >= 65, old_ins, young_ins)
    n_plan = np.clip(rng.geometric(np.clip(0.645 - 0.08 * frail, 0.4, 0.9)), 1, 12)

    sidx = np.repeat(np.arange(m), n_plan)
    n = len(sidx)
    adm: Cols = {"sidx": sidx, "j": _seg_arange(n_plan)}
    for key in ("female", "age_z", "ckd", "esrd", "chf", "dm", "copd", "htn", "afib", "anticoag", "insulin"):
        adm[key] = sub[key][sidx]
    burden = (adm["ckd"].astype(float) + adm["chf"] + adm["copd"] + adm["dm"]) - 0.6
    s = 0.45 * frail[sidx] + 0.30 * adm["age_z"] + 0.25 * burden + 0.80 * rng.standard_normal(n)
    d = 0.35 * s + 0.9 * rng.standard_normal(n)
    adm.update(
        s=s, d=d, dpos=np.maximum(d - 0.2, 0.0),
        r=0.45 * s + 0.3 * adm["ckd"] + 0.85 * rng.standard_normal(n) - 0.3,
        c=0.35 * s + 0.9 * adm["chf"] + 0.85 * rng.standard_normal(n) - 0.2,
        i=0.45 * s + 0.85 * rng.standard_normal(n),
        p=0.4 * s + 0.6 * adm["copd"] + 0.85 * rng.standard_normal(n) - 0.2,
        h=0.3 * s + 0.3 * adm["ckd"] + 0.9 * rng.standard_normal(n) - 0.2,
        t_on=6.0 + rng.exponential(40.0, n),
    )
    adm["type"] = _gumbel_argmax(rng, _TYPE_LOGITS[:, 0] + _TYPE_LOGITS[:, 1] * s[:, None])
    adm["obs"] = np.isin(adm["type"], _OBS_TYPES)
    adm["surg"] = np.isin(adm["type"], _SURGICAL)
    chronic, acute, det, drift = _channel_state(rng, adm)
    adm.update(chronic=chronic, acute=acute, det=det, drift=drift)

    # In-hospital death: severity, deterioration, age, and non-monotone / threshold lab effects.
    k0 = chronic[:, CH["k"]] + acute[:, CH["k"]]
    na0 = chronic[:, CH["na"]] + acute[:, CH["na"]]
    lact0 = np.exp(chronic[:, CH["lact"]] + acute[:, CH["lact"]])
    u_k = np.minimum(0.35 * ((k0 - 4.25) / 0.5) ** 2, 3.0)  # U-shape: hypo- and hyperkalemia both kill
    u_na = np.minimum(0.25 * ((na0 - 140.0) / 5.0) ** 2, 2.0)
    logit = (
        -4.7 + 0.9 * s + 0.7 * adm["dpos"] + 0.35 * adm["age_z"] + u_k + u_na
        + 1.2 * _sig((lact0 - 4.0) / 0.25) + 0.3 * np.maximum(adm["c"], 0) + 0.4 * adm["esrd"]
        - 1.0 * adm["obs"] - 0.8 * adm["surg"]
    )
    death = rng.random(n) < _sig(logit)
    adm["death"] = death
    adm["exc_amp"], adm["exc_frac"] = _excursions(rng, adm)
    first_death = np.full(m, 1 << 30, dtype=np.int64)
    np.minimum.at(first_death, sidx[death], adm["j"][death])
    return sub, _subset(adm, adm["j"] <= first_death[sidx])


def _channel_state(rng: Rng, adm: Cols) -> tuple[Arr, Arr, Arr, Arr]:
    """Per admission and channel: chronic level, acute deviation, deterioration shift, daily drift.

    Latent units (log scale for the ``log`` channels). The four (n, n_channels) arrays feed
    :class:`_Channels`; docs/synthetic_mimic.md lists the equations.
    """
    n = len(adm["s"])
    nc = len(CHANNELS)
    chronic = np.zeros((n, nc))
    acute = np.zeros((n, nc))
    det = np.zeros((n, nc))
    drift = np.zeros((n, nc))

    def z() -> Arr:
        return rng.standard_normal(n)

    s, dpos = adm["s"], adm["dpos"]
    spos = np.maximum(s, 0)
    rpos, cpos, ipos, ppos, hpos = (np.maximum(adm[k], 0) for k in ("r", "c", "i", "p", "h"))
    ckd, esrd, chf, dm, copd = (adm[k].astype(float) for k in ("ckd", "esrd", "chf", "dm", "copd"))
    female = adm["female"].astype(float)

    def mix(p: Arr | float, size: Arr) -> Arr:
        return np.where(rng.random(n) < p, size, 0.0)

    k = CH["k"]
    chronic[:, k] = 4.05 + 0.22 * ckd + 0.45 * esrd + 0.15 * z()
    acute[:, k] = (0.32 * rpos + 0.25 * z() - mix(0.07 + 0.05 * chf, 0.45 + 0.5 * np.abs(z()))
                   + mix(0.02 + 0.04 * rpos, 0.5 + 0.6 * np.abs(z())))
    det[:, k] = dpos * np.where(adm["r"] > 0, 0.45, -0.25)
    k = CH["na"]
    chronic[:, k] = 139.5 + 1.5 * z() - 1.5 * chf
    acute[:, k] = 1.5 * z() - mix(0.08, 4 + 5 * np.abs(z())) + mix(0.025 + 0.03 * (adm["age_z"] > 1.1), 4 + 4 * np.abs(z()))
    det[:, k] = 1.2 * dpos
    k = CH["hco3"]
    chronic[:, k] = 25 - 1.0 * ckd - 1.5 * esrd + 2.0 * copd + 1.2 * z()
    acute[:, k] = -2.2 * rpos - 1.2 * ipos + 1.0 * z()
    det[:, k] = -1.8 * dpos
    k = CH["bun"]
    chronic[:, k] = np.log(14) + 0.55 * ckd + 0.6 * esrd + 0.12 * adm["age_z"] + 0.2 * z()
    acute[:, k] = 0.45 * rpos + 0.25 * hpos + 0.1 * z()
    det[:, k] = 0.25 * dpos
    k = CH["cr"]
    chronic[:, k] = np.log(0.9) - 0.2 * female + 0.75 * ckd + 1.1 * esrd + 0.12 * z()
    acute[:, k] = 0.5 * rpos + 0.06 * z()
    det[:, k] = 0.3 * dpos * (adm["r"] > -0.5)
    k = CH["glu"]
    chronic[:, k] = np.log(98) + 0.3 * dm + 0.08 * z()
    acute[:, k] = 0.12 * s + 0.15 * dm * np.abs(z()) + 0.08 * z()
    det[:, k] = 0.05 * dpos
    k = CH["mg"]
    chronic[:, k] = 2.0 + 0.15 * z() + 0.15 * ckd
    acute[:, k] = -0.1 * ipos + 0.1 * z()
    k = CH["phos"]
    chronic[:, k] = 3.4 + 0.4 * z() + 1.2 * esrd + 0.4 * ckd
    acute[:, k] = 0.5 * rpos + 0.3 * z()
    det[:, k] = 0.4 * dpos
    k = CH["ca"]
    chronic[:, k] = 9.1 + 0.35 * z()
    acute[:, k] = -0.25 * ipos - 0.1 * spos
    k = CH["hb"]
    chronic[:, k] = 13.8 - 1.3 * female - 1.3 * ckd - 0.7 * esrd - 0.35 * adm["age_z"] + 1.1 * z()
    acute[:, k] = -1.0 * hpos - 0.35 * spos + 0.4 * z()
    det[:, k] = -0.6 * dpos
    drift[:, k] = -(0.15 + 0.1 * spos)  # g/dL per day (phlebotomy, hemodilution), for up to 5 days
    k = CH["wbc"]
    chronic[:, k] = np.log(7.5) + 0.2 * z()
    acute[:, k] = 0.35 * ipos + 0.08 * s + 0.1 * z()
    det[:, k] = 0.25 * dpos
    k = CH["plt"]
    chronic[:, k] = np.log(235) + 0.28 * z() - 0.1 * esrd
    acute[:, k] = -0.25 * ipos - 0.1 * spos
    det[:, k] = -0.2 * dpos
    k = CH["inr"]
    chronic[:, k] = np.log(1.08) + 0.06 * z() + 0.75 * adm["anticoag"]
    acute[:, k] = 0.1 * spos + 0.05 * z()
    det[:, k] = 0.15 * dpos
    k = CH["lact"]
    chronic[:, k] = np.log(1.15) + 0.15 * z()
    acute[:, k] = 0.55 * ipos + 0.25 * spos + 0.2 * z()
    det[:, k] = 0.35 * dpos
    k = CH["trop"]
    chronic[:, k] = np.log(0.006) + 0.9 * ckd + 1.2 * esrd + 0.3 * adm["age_z"] + 0.35 * z()
    acute[:, k] = 1.3 * cpos + mix(0.04 + 0.05 * cpos, 2.5 + 0.8 * z())
    det[:, k] = 0.2 * dpos
    k = CH["bnp"]
    chronic[:, k] = np.log(180) + 0.45 * adm["age_z"] + 1.2 * chf + 0.8 * ckd + 1.4 * esrd + 0.6 * z()
    acute[:, k] = 0.9 * cpos + 0.2 * z()
    det[:, k] = 0.2 * dpos
    k = CH["hr"]
    chronic[:, k] = 79 + 7 * z() + 4 * adm["afib"]
    acute[:, k] = 9 * ipos + 4 * spos + 4 * cpos + 5 * z()
    det[:, k] = 12 * dpos
    k = CH["sbp"]
    chronic[:, k] = 124 + 5 * adm["age_z"] + 10 * adm["htn"] + 9 * z()
    acute[:, k] = -7 * ipos - 4 * spos + mix(0.04, 40 + 10 * np.abs(z())) + 5 * z()
    det[:, k] = -7 * dpos
    k = CH["dbpoff"]
    chronic[:, k] = 18 + 5 * z()
    k = CH["rr"]
    chronic[:, k] = 17 + 2 * z() + 2 * copd
    acute[:, k] = 3 * ppos + 2 * ipos + 1.5 * z()
    det[:, k] = 3 * dpos
    k = CH["spo2def"]
    chronic[:, k] = np.log(2.5) + 0.3 * copd + 0.25 * z()
    acute[:, k] = 0.45 * ppos + 0.2 * z()
    det[:, k] = 0.3 * dpos
    k = CH["temp"]
    chronic[:, k] = 98.3 + 0.3 * z()
    acute[:, k] = 1.3 * ipos * rng.random(n) + 0.4 * z()
    det[:, k] = 0.5 * dpos * (adm["i"] > 0)
    return chronic, acute, det, drift


# Width (h) of the transient excursions of each channel that has them.
_EXC_WIDTH = {"k": 10.0, "na": 24.0, "hb": 36.0, "hr": 3.0, "sbp": 3.0}


def _excursions(rng: Rng, adm: Cols) -> tuple[Arr, Arr]:
    """Rare transient excursions (hyper/hypokalemia, dysnatremia, bleeding, tachycardia, hypertension).

    Returns the amplitude (latent units, 0 for none) and the time of the peak as a fraction of the
    stay; their probabilities depend on the admission's risk factors, so that rare post-24h events are
    predictable from the first day without being determined by it.
    """
    n = len(adm["s"])
    amp = np.zeros((n, len(CHANNELS)))
    frac = rng.random((n, len(CHANNELS)))
    rpos, ipos, hpos = (np.maximum(adm[k], 0) for k in ("r", "i", "h"))
    dpos, death, chf, esrd = adm["dpos"], adm["death"], adm["chf"], adm["esrd"]
    na0 = adm["chronic"][:, CH["na"]] + adm["acute"][:, CH["na"]]

    def event(logit: Arr, lo: float, hi: float) -> Arr:
        return np.where(rng.random(n) < _sig(logit), rng.uniform(lo, hi, n), 0.0)

    hyper_k = event(-5.7 + 1.3 * rpos + 1.2 * esrd + 0.6 * dpos + 0.8 * death, 1.6, 3.0)
    hypo_k = event(-4.8 + 1.0 * chf + 0.6 * ipos + 0.5 * dpos, -1.9, -1.1)
    amp[:, CH["k"]] = np.where(hyper_k != 0, hyper_k, hypo_k)
    hypo_na = event(-5.0 + 2.0 * (na0 < 133) + 0.8 * chf + 0.4 * dpos, -22.0, -10.0)
    hyper_na = event(-5.6 + 1.0 * (adm["age_z"] > 1.0) + 0.8 * dpos + 1.2 * death, 14.0, 26.0)
    amp[:, CH["na"]] = np.where(hypo_na != 0, hypo_na, hyper_na)
    amp[:, CH["hb"]] = event(-4.2 + 1.2 * hpos + 0.5 * adm["ckd"], -3.5, -1.5)
    amp[:, CH["hr"]] = event(-3.0 + 1.0 * adm["afib"] + 0.6 * ipos + 0.5 * dpos, 30.0, 55.0)
    amp[:, CH["sbp"]] = event(-2.8 + 1.0 * adm["htn"] + 0.4 * adm["age_z"], 35.0, 65.0)
    return amp, frac


def _cohort(rng: Rng, n_target: int) -> tuple[Cols, Cols]:
    """Whole subjects until ``n_target`` admissions (the last subject's later admissions are cut)."""
    subs: list[Cols] = []
    adms: list[Cols] = []
    total = 0
    m_off = 0
    while total < n_target:
        m = max(16, int((n_target - total) / 1.35) + 16)
        sub, adm = _draw_batch(rng, m)
        adm["sidx"] = adm["sidx"] + m_off
        m_off += m
        total += len(adm["sidx"])
        subs.append(sub)
        adms.append(adm)
    sub, adm = _concat(subs), _concat(adms)
    adm = _subset(adm, slice(0, n_target))
    sub = _subset(sub, slice(0, int(adm["sidx"][-1]) + 1))
    return sub, adm


def _timeline(rng: Rng, sub: Cols, adm: Cols) -> None:
    """Admission/discharge times, length of stay, ED times, ICU plan and demographics (in place)."""
    n = len(adm["sidx"])
    s, dpos, death = adm["s"], adm["dpos"], adm["death"]
    ipos, ppos = np.maximum(adm["i"], 0), np.maximum(adm["p"], 0)
    obs, surg = adm["obs"], adm["surg"]
    sameday = adm["type"] == _T["SURGICAL SAME DAY ADMISSION"]

    los = np.exp(np.log(74) + 0.33 * s + 0.3 * dpos + 0.2 * ipos - 1.0 * obs - 0.15 * surg
                 + 0.65 * rng.standard_normal(n))
    los = np.clip(los, 3.0, 90 * 24.0)
    ed = np.isin(adm["type"], _ED_TYPES) & (rng.random(n) < 0.95)
    ed |= (adm["type"] == _T["URGENT"]) & (rng.random(n) < 0.4)
    ed_out = np.where(ed, _to_min(rng.uniform(0.05, 1.0, n)), 0.0)

    icu = rng.random(n) < _sig(-1.35 + 1.2 * s + 0.5 * dpos + 0.35 * ppos + 1.8 * sameday - 1.2 * obs + 1.0 * death)
    late = rng.random(n) < _sig(-0.8 + 1.0 * dpos - 0.5 * s - 2.0 * sameday)
    direct = ~late & ed & (rng.random(n) < 0.55)
    i1 = np.where(late, 24.0 + rng.exponential(36.0, n),
                  np.where(direct, ed_out, ed_out + rng.uniform(1.0, 20.0, n)))
    dur1 = np.clip(np.exp(np.log(44) + 0.3 * s + 0.3 * dpos + 0.65 * rng.standard_normal(n)), 6.0, 30 * 24.0)
    icu2 = icu & (rng.random(n) < 0.07)
    i2 = i1 + dur1 + rng.uniform(12.0, 96.0, n)
    dur2 = np.clip(np.exp(np.log(30) + 0.6 * rng.standard_normal(n)), 6.0, 20 * 24.0)
    i1, i2 = _to_min(i1), _to_min(i2)
    o1, o2 = _to_min(i1 + dur1), _to_min(i2 + dur2)
    last_out = np.where(icu2, o2, o1)
    ward_after = np.clip(np.exp(np.log(36) + 0.55 * rng.standard_normal(n)), 4.0, 20 * 24.0)
    los = np.where(icu, np.where(death, last_out, np.maximum(los, last_out + ward_after)), los)
    los = np.maximum(_to_min(los), ed_out + 1.0)
    split = icu & (rng.random(n) < 0.06)
    adm.update(
        los_h=los, ed=ed, ed_out=ed_out, icu=icu, i1=i1, o1=o1, icu2=icu2, i2=i2, o2=o2,
        split1=np.where(split, _to_min(i1 + rng.uniform(0.3, 0.7, n) * (o1 - i1)), np.nan),
        t_death=np.where(death, los, np.inf),
    )
    # care units: ICU by case mix, wards by case mix; the second ward after an ICU stay may differ
    cpos = np.maximum(adm["c"], 0)
    icu_logits = np.stack([
        1.0 + 0.5 * ipos, 0.5 + 0 * s, 0.0 + 1.5 * surg, -0.5 + 2.5 * sameday + 0.6 * cpos,
        -0.8 + 1.2 * cpos, -1.2 + 0 * s, -1.5 + 0 * s], axis=1)
    adm["cu1"] = _gumbel_argmax(rng, icu_logits)
    other = (adm["cu1"] + rng.integers(1, _N_ICU_UNITS, n)) % _N_ICU_UNITS
    adm["cu1_last"] = np.where(split, other, adm["cu1"])
    adm["cu2"] = _gumbel_argmax(rng, icu_logits)
    ward_logits = np.stack([
        1.2 + 0 * s, 0.8 + 0 * s, -0.5 + 1.0 * cpos, -0.5 + 2.0 * surg, -1.0 + 1.0 * cpos, -1.2 + 0 * s,
        -1.2 + 0 * s, -2.5 + 1.0 * adm["esrd"], -2.0 + 0 * s, -1.5 + 0 * s, -3.0 + 4.0 * obs], axis=1)
    adm["ward1"] = _N_ICU_UNITS + _gumbel_argmax(rng, ward_logits)
    adm["ward2"] = _N_ICU_UNITS + _gumbel_argmax(rng, ward_logits)

    # calendar: first admission within 2.5 years after 1 Jan of anchor_year, then gaps between stays
    sidx, j = adm["sidx"], adm["j"]
    start = _year_start(sub["anchor_year"])[sidx] + (rng.random(n) * 2.5 * 365 * DAY).astype(np.int64)
    gap = (2 * DAY + rng.exponential(200 * DAY, n)).astype(np.int64)
    los_s = np.round(los * 60).astype(np.int64) * 60
    step = los_s + gap
    csum = np.cumsum(step)
    first = np.flatnonzero(j == 0)
    before = np.repeat(csum[first] - step[first], np.diff(np.append(first, n)))  # cumsum before subject
    offset = csum - step - before  # sum of (los + gap) of this subject's earlier admissions
    admit = start[first][np.repeat(np.arange(len(first)), np.diff(np.append(first, n)))] + offset
    adm["admit"] = (admit // 60) * 60
    adm["disch"] = adm["admit"] + los_s
    adm["prev_disch"] = np.where(j > 0, np.roll(adm["disch"], 1), -(1 << 62))

    # categorical fields
    adm["ed_reg"] = adm["admit"] - np.round(np.clip(np.exp(np.log(5) + 0.5 * rng.standard_normal(n)), 0.5, 24) * 60).astype(np.int64) * 60
    loc_ed = _pick(rng, n, cat.ED_ADMISSION_LOCATIONS)
    loc_other = len(cat.ED_ADMISSION_LOCATIONS) + _pick(rng, n, cat.OTHER_ADMISSION_LOCATIONS)
    adm["adm_loc"] = np.where(ed, loc_ed, loc_other)
    p_alive = np.array([w for _, w in cat.DISCHARGE_LOCATIONS_ALIVE])
    coef = np.array([-0.5, 0.1, 0.8, 0.4, 0.8, 0.3, 1.0, -0.3, 0.0, 0.2, 0.0])
    severity = 0.6 * adm["age_z"] + 0.5 * s
    dl = _gumbel_argmax(rng, np.log(p_alive)[None, :] + coef[None, :] * severity[:, None])
    adm["disch_loc"] = np.where(death, -2, dl)  # -2 = DIED


def _subject_deaths(rng: Rng, sub: Cols, adm: Cols) -> None:
    """``dod``: the in-hospital death date, or for some survivors a death within a year after discharge."""
    m = len(sub["anchor_age"])
    last = np.zeros(m, dtype=np.int64)
    last[adm["sidx"]] = np.arange(len(adm["sidx"]))  # admissions are sorted within subject
    died_in = adm["death"][last]
    post = ~died_in & (rng.random(m) < _sig(-3.3 + 0.8 * adm["s"][last] + 0.6 * adm["age_z"][last]))
    after = adm["disch"][last] + (rng.uniform(1.0, 365.0, m) * DAY).astype(np.int64)
    sub["dod"] = np.where(died_in, adm["disch"][last], after)
    sub["has_dod"] = died_in | post


# ============================================================================ ICU course and segments
def _icu_course(rng: Rng, adm: Cols) -> None:
    """Interventions during the first ICU stay: IMV, shock with vasopressors, CRRT (hours since admit)."""
    n = len(adm["s"])
    icu, s, dpos, death = adm["icu"], adm["s"], adm["dpos"], adm["death"]
    i1, o1 = adm["i1"], adm["o1"]
    dur = o1 - i1
    end_ok = np.where(death & ~adm["icu2"], o1, o1 - 0.25)
    ipos, ppos, cpos, rpos = (np.maximum(adm[k], 0) for k in ("i", "p", "c", "r"))
    cvicu = adm["cu1"] == 3

    def onset(p_early: float) -> Arr:
        early = rng.random(n) < p_early
        return _to_min(i1 + np.where(early, rng.uniform(0.0, 2.0, n), rng.uniform(0.0, 0.6, n) * dur))

    def course(on: Arr, median_h: float) -> Arr:
        off = on + np.exp(np.log(median_h) + 0.7 * rng.standard_normal(n))
        return _to_min(np.minimum(off, end_ok))

    imv = icu & (rng.random(n) < _sig(-1.5 + 0.9 * s + 0.9 * ppos + 0.5 * dpos + 1.2 * death + 0.8 * cvicu))
    imv_on = onset(0.45)
    imv_off = course(imv_on, 40.0)
    imv &= imv_off - imv_on >= 1.0
    shock = icu & (rng.random(n) < _sig(-1.6 + 1.0 * s + 0.9 * ipos + 0.6 * dpos + 1.2 * death + 0.5 * cpos))
    shock_on = onset(0.55)
    press_on = _to_min(shock_on + rng.uniform(0.25, 1.5, n))
    press_off = course(press_on, 30.0)
    shock &= press_off - press_on >= 1.0
    crrt = icu & ~adm["esrd"] & (rng.random(n) < _sig(-4.3 + 1.4 * rpos + 0.9 * s + 1.0 * death))
    crrt_on = onset(0.4)
    crrt_off = course(crrt_on, 60.0)
    crrt &= crrt_off - crrt_on >= 2.0
    nan = np.nan
    adm.update(
        imv=imv, imv_on=np.where(imv, imv_on, nan), imv_off=np.where(imv, imv_off, nan),
        shock=shock, shock_on=np.where(shock, shock_on, nan), press_on=np.where(shock, press_on, nan),
        press_off=np.where(shock, press_off, nan),
        crrt=crrt, crrt_on=np.where(crrt, crrt_on, nan), crrt_off=np.where(crrt, crrt_off, nan),
        hd_aki=icu & ~adm["esrd"] & ~crrt & (rng.random(n) < _sig(-4.8 + 1.3 * rpos)),
        aline=icu & (rng.random(n) < _sig(-0.8 + 0.7 * s + 1.5 * imv + 1.2 * shock + 1.0 * cvicu)),
        weight=np.round(np.clip(72 + 10 * ~adm["female"] + 16 * rng.standard_normal(n), 38, 220), 1),
        sbp_dip=25 + 10 * np.abs(rng.standard_normal(n)),
    )


def _stays(adm: Cols) -> Cols:
    """One row per ICU stay (first stay, and the ICU readmission when there is one)."""
    a1 = np.flatnonzero(adm["icu"])
    a2 = np.flatnonzero(adm["icu2"])
    a = np.concatenate([a1, a2])
    second = np.concatenate([np.zeros(len(a1), bool), np.ones(len(a2), bool)])
    order = np.lexsort((second, a))
    a, second = a[order], second[order]
    return {
        "a": a, "second": second,
        "in_h": np.where(second, adm["i2"][a], adm["i1"][a]),
        "out_h": np.where(second, adm["o2"][a], adm["o1"][a]),
        "first_cu": np.where(second, adm["cu2"][a], adm["cu1"][a]),
        "last_cu": np.where(second, adm["cu2"][a], adm["cu1_last"][a]),
    }


def _segments(adm: Cols) -> Cols:
    """Bed segments per admission in time order: (unit, start, end, is_icu); the basis of transfers."""
    icu, icu2, los = adm["icu"], adm["icu2"], adm["los_h"]
    i1, o1, i2, o2, sp = adm["i1"], adm["o1"], adm["i2"], adm["o2"], adm["split1"]
    has_sp = ~np.isnan(sp)
    start = np.stack([adm["ed_out"], i1, sp, o1, i2, o2], axis=1)
    end = np.stack([np.where(icu, i1, los), np.where(has_sp, sp, o1), o1, np.where(icu2, i2, los), o2, los], axis=1)
    unit = np.stack([adm["ward1"], adm["cu1"], adm["cu1_last"], adm["ward2"], adm["cu2"], adm["ward2"]], axis=1)
    valid = np.stack([
        ~icu | (i1 > adm["ed_out"]), icu, icu & has_sp, icu & (o1 < los), icu2, icu2 & (o2 < los)], axis=1)
    valid &= np.nan_to_num(end, nan=0) > np.nan_to_num(start, nan=0)
    rows, slot = np.nonzero(valid)
    return {
        "a": rows, "start_h": start[rows, slot], "end_h": end[rows, slot], "unit": unit[rows, slot],
        "is_icu": np.isin(slot, (1, 2, 4)), "first": np.r_[True, rows[1:] != rows[:-1]] if len(rows) else rows,
    }


# ======================================================================================= trajectories
class _Channels:
    """Latent lab/vital trajectories of one chunk: admission levels plus AR(1) knots every 4 h."""

    def __init__(self, rng: Rng, adm: Cols) -> None:
        self.adm = adm
        n = len(adm["s"])
        self.n_knots = np.floor(adm["los_h"] / KNOT_H).astype(np.int64) + 3
        self.koff = np.cumsum(self.n_knots) - self.n_knots
        total = int(self.n_knots.sum())
        local = _seg_arange(self.n_knots)
        prev_idx = self.koff[1:] - 1
        self.x = np.empty((len(CHANNELS), total))
        for c, spec in enumerate(CHANNELS):
            rho = float(np.exp(-KNOT_H / spec.tau_h))
            e = rng.standard_normal(total) * np.sqrt(1 - rho * rho)
            e[self.koff] /= np.sqrt(1 - rho * rho)  # stationary start of every admission's series
            # AR(1) over the concatenated series; lfilter is exact, the term carried over from the
            # previous admission (rho**(j+1) * last value) is then removed.
            x = lfilter([1.0], [1.0, -rho], e)
            prev = np.zeros(n)
            prev[1:] = x[prev_idx]
            x -= rho ** (local + 1.0) * np.repeat(prev, self.n_knots)
            self.x[c] = x

    def level(self, name: str, a: Arr, t: Arr) -> Arr:
        """Latent value of channel ``name`` for admissions ``a`` at ``t`` hours after admission."""
        c = CH[name]
        spec = CHANNELS[c]
        adm = self.adm
        tt = np.maximum(t, 0.0)
        if spec.peak:
            r = 0.55 + 0.9 * (tt / 12.0) * np.exp(1.0 - tt / 12.0)
        else:
            r = spec.r_inf + (1.0 - spec.r_inf) * np.exp(-tt / spec.tau_res_h)
        kf = tt / KNOT_H
        kk = kf.astype(np.int64)
        w = kf - kk
        idx = self.koff[a] + kk
        zz = self.x[c, idx] * (1.0 - w) + self.x[c, idx + 1] * w
        ramp = np.clip((tt - adm["t_on"][a]) / 36.0, 0.0, 1.0)
        term = np.clip(1.0 - (adm["t_death"][a] - tt) / 36.0, 0.0, 1.0)
        acute = adm["acute"][a, c]
        out = (adm["chronic"][a, c] + np.where(t < 0, 0.25, r) * acute + adm["det"][a, c] * ramp
               + spec.term * term + spec.sd_dyn * zz + adm["drift"][a, c] * np.minimum(tt, 120.0) / 24.0)
        if name in _EXC_WIDTH:  # transient excursion peaking somewhere after the first 12 h
            peak = 12.0 + adm["exc_frac"][a, c] * np.maximum(adm["los_h"][a] - 12.0, 0.0)
            out = out + adm["exc_amp"][a, c] * np.exp(-0.5 * ((tt - peak) / _EXC_WIDTH[name]) ** 2)
        if name == "sbp":  # shock: a dip from onset, partly corrected by vasopressors, gone after them
            on, pon, poff = adm["shock_on"][a], adm["press_on"][a], adm["press_off"][a]
            with np.errstate(invalid="ignore", over="ignore"):
                prof = (_sig((t - on) / 0.5) * (1 - 0.65 * _sig((t - pon - 0.5) / 0.5)) * _sig((poff + 3 - t) / 1.0))
            out = out - np.nan_to_num(prof) * adm["sbp_dip"][a]
        return out

    def natural(self, name: str, a: Arr, t: Arr) -> Arr:
        """Channel value on its natural scale (exp of the log channels)."""
        v = self.level(name, a, t)
        return np.exp(v) if CHANNELS[CH[name]].log else v


# =============================================================================================== labs
@dataclass(frozen=True)
class _Panel:
    """A lab order: the analytes on one specimen, each's inclusion probability, and the result lag."""

    name: str
    itemids: tuple[int, ...]
    include: tuple[float, ...]
    lag_min: float
    lag_sigma: float


PANELS: tuple[_Panel, ...] = (
    _Panel("bmp", (50971, 50983, 50902, 50882, 50868, 51006, 50912, 50931), (1, 1, 1, 1, 0.97, 1, 1, 1), 55, 0.35),
    _Panel("cbc", (51222, 51221, 51301, 51265), (1, 1, 1, 0.98), 40, 0.35),
    _Panel("chem2", (50960, 50970, 50893), (0.95, 0.85, 0.9), 60, 0.35),
    _Panel("coag", (51237, 51274), (1, 1), 50, 0.35),
    _Panel("bg", (50822, 50824, 50809, 50811, 50813), (0.8, 0.8, 0.85, 0.6, 0.95), 9, 0.5),
    _Panel("trop", (51003,), (1,), 70, 0.3),
    _Panel("bnp", (50963,), (1,), 95, 0.3),
)
LAB_IDS = tuple(lab.itemid for lab in cat.LAB_ITEMS)
_LAB_POS = {itemid: i for i, itemid in enumerate(LAB_IDS)}


def _lab_draws(rng: Rng, adm: Cols, seg: Cols) -> Cols:
    """Blood draw times: admission labs, then every 6-8 h in the ICU and 8-30 h on the ward."""
    s = adm["s"]
    a = seg["a"]
    nseg = len(a)
    sev = np.maximum(s[a], 0)
    interval = np.where(
        seg["is_icu"], 8.0 / (1 + 0.25 * sev) * rng.uniform(0.85, 1.15, nseg),
        np.clip(24.0 / (1 + 0.4 * sev) * rng.uniform(0.8, 1.2, nseg), 8.0, 30.0),
    )
    first = seg["start_h"] + rng.uniform(0.2, 1.0, nseg) * interval
    first = np.where(seg["first"], rng.uniform(0.1, 1.5, nseg), first)
    count = np.maximum(np.floor((seg["end_h"] - first) / interval).astype(np.int64) + 1, 0)
    si = np.repeat(np.arange(nseg), count)
    kk = _seg_arange(count)
    t = first[si] + kk * interval[si] + 0.08 * interval[si] * rng.standard_normal(len(si))
    t = _to_min(np.clip(t, seg["start_h"][si], seg["end_h"][si] - 1 / 60))
    da = a[si]
    keep = t <= adm["los_h"][da] - 1 / 60
    draws: Cols = {"a": da[keep], "t": t[keep], "icu": seg["is_icu"][si][keep], "first": (kk == 0)[keep] & seg["first"][si][keep]}
    # troponin repeat 6 h after the admission draw (added as its own draw, flagged)
    n = len(s)
    trop_first = rng.random(n) < _sig(-1.0 + 1.2 * np.maximum(adm["c"], 0) + 0.4 * adm["age_z"])
    adm["trop_first"] = trop_first
    rep = trop_first & (rng.random(n) < 0.75)
    first_t = np.full(n, np.nan)
    first_t[draws["a"][draws["first"]]] = draws["t"][draws["first"]]
    rep_t = _to_min(first_t + rng.uniform(5.0, 7.0, n))
    rep &= rep_t < adm["los_h"] - 0.1
    ra = np.flatnonzero(rep)
    draws["kind"] = np.zeros(len(draws["a"]), dtype=np.int8)  # 0 routine, 1 troponin repeat, 2 outpatient
    extra = {"a": ra, "t": rep_t[ra], "icu": np.zeros(len(ra), bool), "first": np.zeros(len(ra), bool),
             "kind": np.ones(len(ra), dtype=np.int8)}
    # outpatient draws (no hadm_id) 2-30 days before some admissions, after the previous discharge
    out_t = -rng.uniform(2.0, 30.0, n) * 24.0
    out_ok = (rng.random(n) < 0.3) & (adm["admit"] + out_t * HOUR > adm["prev_disch"] + DAY)
    oa = np.flatnonzero(out_ok)
    outp = {"a": oa, "t": _to_min(out_t[oa]), "icu": np.zeros(len(oa), bool), "first": np.zeros(len(oa), bool),
            "kind": np.full(len(oa), 2, dtype=np.int8)}
    return _concat([draws, extra, outp])


def _draw_values(rng: Rng, ch: _Channels, adm: Cols, dr: Cols) -> Arr:
    """Measured value of every lab item at every draw: (n_items, n_draws), natural units, unrounded."""
    a, t = dr["a"], dr["t"]
    n = len(a)
    vals = np.empty((len(LAB_IDS), n))

    def z() -> Arr:
        return rng.standard_normal(n)

    def put(itemid: int, v: Arr) -> None:
        vals[_LAB_POS[itemid]] = v

    k = ch.natural("k", a, t)
    na = ch.natural("na", a, t)
    hco3 = ch.natural("hco3", a, t) + 0.6 * z()
    na_m = na + 0.6 * z()
    cl = 103 + 0.8 * (na - 139.5) - 0.45 * (hco3 - 25) + 1.2 * z()
    put(50971, k + 0.08 * z())
    put(50822, k - 0.15 + 0.12 * z())
    put(50983, na_m)
    put(50824, na - 1.0 + 1.0 * z())
    put(50902, cl)
    put(50882, hco3)
    put(50868, np.maximum(na_m - np.round(cl) - np.round(hco3), 3.0))
    put(51006, ch.natural("bun", a, t) * np.exp(0.04 * z()))
    put(50912, ch.natural("cr", a, t) * np.exp(0.03 * z()))
    glu = ch.natural("glu", a, t) * np.exp(0.04 * z())
    hypo = (t > 6) & (rng.random(n) < 0.005 * adm["insulin"][a] + 0.0005 + 0.004 * (adm["s"][a] > 1.5))
    glu = np.where(hypo, rng.uniform(28.0, 62.0, n), glu)
    put(50931, glu)
    put(50809, glu * np.exp(0.05 * z()))
    put(50960, ch.natural("mg", a, t) + 0.05 * z())
    put(50970, ch.natural("phos", a, t) + 0.1 * z())
    put(50893, ch.natural("ca", a, t) + 0.1 * z())
    hb = ch.natural("hb", a, t)
    put(51222, hb + 0.12 * z())
    put(51221, 3.0 * hb + 0.8 * z())
    put(50811, hb + 0.3 * z())
    put(51301, ch.natural("wbc", a, t) * np.exp(0.04 * z()))
    put(51265, ch.natural("plt", a, t) * np.exp(0.04 * z()))
    inr = ch.natural("inr", a, t) * np.exp(0.02 * z())
    put(51237, inr)
    put(51274, 10.6 * inr ** 0.9 + 0.3 * z())
    put(50813, ch.natural("lact", a, t) * np.exp(0.05 * z()))
    trop = ch.natural("trop", a, t) * np.exp(0.05 * z())
    put(51003, trop)
    put(51002, trop * 3.0 * np.exp(0.3 * z()))
    put(50963, ch.natural("bnp", a, t) * np.exp(0.05 * z()))
    return vals


_LAB_CLIP = {
    50971: (1.5, 9.5), 50822: (1.5, 9.5), 50983: (100, 185), 50824: (100, 185), 50902: (70, 140), 50882: (5, 45),
    50868: (3, 40), 51006: (2, 250), 50912: (0.2, 20), 50931: (20, 1200), 50809: (20, 1200), 50960: (0.6, 5),
    50970: (0.5, 15), 50893: (5, 14), 51222: (3, 22), 51221: (9, 66), 50811: (3, 22), 51301: (0.2, 150),
    51265: (5, 1200), 51237: (0.8, 12), 51274: (9, 150), 50813: (0.3, 25), 51003: (0.0, 25), 51002: (0.0, 60),
    50963: (5, 70000),
}


def _labevents(rng: Rng, ch: _Channels, adm: Cols, seg: Cols, providers: list[str]) -> tuple[pl.DataFrame, Cols]:
    """labevents rows of a chunk (ids left to the writer) and the numeric results for reactive orders."""
    dr = _lab_draws(rng, adm, seg)
    nd = len(dr["a"])
    a, t, first, kind = dr["a"], dr["t"], dr["first"], dr["kind"]
    outp = kind == 2
    s = adm["s"][a]
    imv_now = (t >= np.nan_to_num(adm["imv_on"][a], nan=np.inf)) & (t <= np.nan_to_num(adm["imv_off"][a], nan=-np.inf))
    u = rng.random((len(PANELS), nd))
    p_bg = np.where(first, 0.12 + 0.35 * _sig(adm["i"][a] + s - 1.0), np.where(dr["icu"], 0.25 + 0.45 * imv_now, 0.02))
    p_trop = np.where(first, adm["trop_first"][a].astype(float), 0.03)
    p_bnp = np.where(first, _sig(-2.4 + 1.6 * adm["chf"][a] + 0.8 * np.maximum(adm["c"][a], 0)), 0.01)
    want = {
        "bmp": u[0] < np.where(first, 0.97, np.where(dr["icu"], 0.95, 0.88)),
        "cbc": u[1] < np.where(first, 0.95, np.where(dr["icu"], 0.85, 0.7)),
        "chem2": u[2] < np.where(first, 0.5, np.where(dr["icu"], 0.6, 0.35)),
        "coag": u[3] < np.where(first, 0.45, np.where(dr["icu"], 0.25, 0.08)),
        "bg": u[4] < p_bg,
        "trop": u[5] < p_trop,
        "bnp": u[6] < p_bnp,
    }
    for name in want:  # troponin repeats carry only troponin; outpatient draws only BMP + CBC
        want[name] = np.where(kind == 1, name == "trop", want[name])
        if name not in ("bmp", "cbc"):
            want[name] &= ~outp
    vals = _draw_values(rng, ch, adm, dr)

    r_draw, r_item, r_spec, r_lag = [], [], [], []
    spec_count = 0
    for panel in PANELS:
        di = np.flatnonzero(want[panel.name] & ((kind != 1) | (panel.name == "trop")))
        spec = spec_count + np.arange(len(di))
        spec_count += len(di)
        lag = _lognormal_minutes(rng, len(di), panel.lag_min, panel.lag_sigma)
        late = rng.random(len(di)) < 0.02  # add-on tests / delayed runs
        lag = np.where(late, lag + rng.integers(120, 480, len(di)), lag)
        lag = np.where(outp[di], lag + 120, np.maximum(lag, 3))
        for itemid, p_inc in zip(panel.itemids, panel.include, strict=True):
            take = di[rng.random(len(di)) < p_inc] if p_inc < 1 else di
            pos = np.searchsorted(di, take)
            r_draw.append(take)
            r_item.append(np.full(len(take), itemid, dtype=np.int64))
            r_spec.append(spec[pos])
            r_lag.append(lag[pos])
    rd = np.concatenate(r_draw)
    item = np.concatenate(r_item)
    spec_local = np.concatenate(r_spec)
    lag = np.concatenate(r_lag)
    # troponin I instead of T for a few admissions (another assay)
    trop_i = (item == 51003) & (rng.random(len(adm["s"])) < 0.06)[a[rd]]
    item = np.where(trop_i, 51002, item)
    nr = len(rd)
    item_pos = _item_positions(item)
    v = vals[item_pos, rd]
    lo = np.array([_LAB_CLIP[i][0] for i in LAB_IDS])[item_pos]
    hi = np.array([_LAB_CLIP[i][1] for i in LAB_IDS])[item_pos]
    dec = np.array([lab.decimals for lab in cat.LAB_ITEMS])[item_pos]
    v = np.clip(v, lo, hi)
    v = np.round(v * 10.0 ** dec) / 10.0 ** dec
    ra = a[rd]
    female = adm["female"][ra]
    ref_lo = np.array([lab.ref_low if lab.ref_low is not None else np.nan for lab in cat.LAB_ITEMS])[item_pos]
    ref_hi = np.array([lab.ref_high if lab.ref_high is not None else np.nan for lab in cat.LAB_ITEMS])[item_pos]
    f_lo = np.array([lab.ref_low_female if lab.ref_low_female is not None else np.nan for lab in cat.LAB_ITEMS])[item_pos]
    f_hi = np.array([lab.ref_high_female if lab.ref_high_female is not None else np.nan for lab in cat.LAB_ITEMS])[item_pos]
    ref_lo = np.where(female & ~np.isnan(f_lo), f_lo, ref_lo)
    ref_hi = np.where(female & ~np.isnan(f_hi), f_hi, ref_hi)

    # text-only results: hemolyzed potassium, '___' (not reported / de-identified), troponin below detection
    text = np.full(nr, -1, dtype=np.int64)
    hemolyzed = np.isin(item, (50971, 50822)) & (rng.random(nr) < 0.012)
    blank = rng.random(nr) < 0.003
    trop_low = np.isin(item, (51003, 51002)) & (v < 0.01)
    text[trop_low] = 2
    text[blank] = 1
    text[hemolyzed] = 0
    valuenum = np.where(text >= 0, np.nan, v)
    valuenum = np.where(trop_low & ~blank & ~hemolyzed, 0.01, valuenum)
    comments = np.where(hemolyzed, 0, np.where(blank, 1, -1))
    flag = np.where((valuenum < ref_lo) | (valuenum > ref_hi), 0, -1)
    charttime = _abs(adm["admit"], ra, t[rd])
    storetime = charttime + lag * 60
    first_r, icu_r, kind_r = first[rd], dr["icu"][rd], kind[rd]
    prio = np.where(kind_r == 2, -1, np.where(first_r | icu_r | (item == 50813) | (kind_r == 1), 0, 1))
    prio = np.where(rng.random(nr) < 0.08, -1, prio)
    # one ordering provider per specimen (a third unrecorded)
    prov = np.where(rng.random(spec_count) < 0.35, -1, rng.integers(0, len(providers), spec_count))
    spec_prov = prov[spec_local]
    df = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][ra]),
        "hadm_id": _int(adm["hadm_id"][ra], kind_r != 2),
        "specimen_local": _int(spec_local),
        "itemid": _int(item),
        "order_provider_id": _str(providers, spec_prov),
        "charttime": _dt(charttime),
        "storetime": _dt(storetime),
        "_num": _flt(v),
        "_dec": _int(dec),
        "_text": _int(text),
        "valuenum": _flt(valuenum),
        "valueuom": _str([lab.unit for lab in cat.LAB_ITEMS], item_pos),
        "ref_range_lower": _flt(ref_lo),
        "ref_range_upper": _flt(ref_hi),
        "flag": _str(["abnormal"], flag),
        "priority": _str(["STAT", "ROUTINE"], prio),
        "comments": _str(["SPECIMEN HEMOLYZED, POTASSIUM NOT REPORTED.", "___"], comments),
    })
    text_value = pl.col("_text").replace_strict(
        {0: "HEMOLYZED", 1: "___", 2: "<0.01"}, default=None, return_dtype=pl.String
    )
    df = df.with_columns(
        value=pl.when(pl.col("_text") >= 0).then(text_value).otherwise(_fixed_decimals(pl.col("_num"), pl.col("_dec")))
    ).drop("_num", "_dec", "_text")
    df = df.sort(["subject_id", "charttime", "specimen_local", "itemid"], maintain_order=True)
    react = {"a": ra, "itemid": item, "v": valuenum, "store_h": t[rd] + lag / 60.0, "inpatient": kind_r != 2}
    return df, react


def _item_positions(item: Arr) -> Arr:
    """Row positions of lab itemids inside ``cat.LAB_ITEMS``."""
    ids = np.array(LAB_IDS)
    order = np.argsort(ids)
    return order[np.searchsorted(ids[order], item)]


# ======================================================================================== chartevents
def _hd_sessions(rng: Rng, adm: Cols, st: Cols) -> Cols:
    """Intermittent hemodialysis sessions (3.5-4.5 h every ~48 h) in ICU stays of ESRD / some AKI."""
    a = st["a"]
    ns = len(a)
    on_crrt = adm["crrt"][a] & ~st["second"]
    hd = (adm["esrd"][a] | adm["hd_aki"][a]) & ~on_crrt
    phase = rng.uniform(2.0, 30.0, ns)
    span = st["out_h"] - 4.5 - (st["in_h"] + phase)
    count = np.where(hd & (span >= 0), np.floor(np.maximum(span, 0) / 48.0).astype(np.int64) + 1, 0)
    si = np.repeat(np.arange(ns), count)
    start = _to_min(st["in_h"][si] + phase[si] + 48.0 * _seg_arange(count))
    return {"si": si, "start_h": start, "end_h": _to_min(start + rng.uniform(3.5, 4.5, len(si)))}


def _chartevents(rng: Rng, ch: _Channels, adm: Cols, st: Cols, hd: Cols) -> pl.DataFrame:
    """ICU charting: hourly vitals on the hour (arterial line or cuff BP), temperature and GCS every 4 h,
    ventilator settings during IMV, CRRT mode during CRRT, dialysis output after each HD session."""
    admit = adm["admit"]
    a = st["a"]
    ns = len(a)
    in_abs = _abs(admit, a, st["in_h"])
    out_abs = _abs(admit, a, st["out_h"])
    h0 = ((in_abs + HOUR - 1) // HOUR) * HOUR
    nh = np.maximum((out_abs - h0) // HOUR + 1, 0)
    si = np.repeat(np.arange(ns), nh)
    kk = _seg_arange(nh)
    tabs = h0[si] + kk * HOUR
    ra = a[si]
    nr = len(si)
    t = (tabs - admit[ra]) / HOUR
    first_stay = ~st["second"][si]
    imv_now = first_stay & (t >= np.nan_to_num(adm["imv_on"][ra], nan=np.inf)) & (t <= np.nan_to_num(adm["imv_off"][ra], nan=-np.inf))
    crrt_now = first_stay & (t >= np.nan_to_num(adm["crrt_on"][ra], nan=np.inf)) & (t <= np.nan_to_num(adm["crrt_off"][ra], nan=-np.inf))
    u = rng.random((8, nr))

    parts: list[Cols] = []

    def add(mask: Arr, itemid: int, value: Arr, text: Arr | None = None, when: Arr | None = None) -> None:
        idx = np.flatnonzero(mask)
        parts.append({
            "si": si[idx], "tabs": (tabs if when is None else when)[idx], "itemid": np.full(len(idx), itemid),
            "v": np.asarray(value, dtype=np.float64)[idx],
            "text": np.full(len(idx), -1, dtype=np.int64) if text is None else text[idx],
        })

    def z() -> Arr:
        return rng.standard_normal(nr)

    # irregular re-checks: a tenth of the hourly vitals are charted a few minutes off the hour
    off = np.where(rng.random(nr) < 0.1, rng.integers(1, 45, nr) * 60, 0)
    when = np.minimum(tabs + off, out_abs[si])
    hr = ch.natural("hr", ra, t)
    add(u[0] > 0.04, 220045, np.clip(hr + 3 * z(), 25, 220), when=when)
    add(u[1] > 0.05, 220210, np.clip(ch.natural("rr", ra, t) + 1.5 * z(), 4, 60), when=when)
    add(u[2] > 0.05, 220277, np.clip(100 - ch.natural("spo2def", ra, t) * np.exp(0.15 * z()), 50, 100), when=when)
    sbp = ch.natural("sbp", ra, t)
    dbp = 0.42 * sbp + ch.natural("dbpoff", ra, t)
    mbp = dbp + (sbp - dbp) / 3
    aline = adm["aline"][ra] & first_stay
    art = aline & (u[3] > 0.06)
    cuff = (~aline & (u[3] > 0.08)) | (aline & (u[3] < 0.15))
    add(art, 220050, np.clip(sbp + 4 + 4 * z(), 40, 260), when=when)
    add(art, 220051, np.clip(dbp + 3 * z(), 15, 160), when=when)
    add(art, 220052, np.clip(mbp + 2 * z(), 25, 200), when=when)
    add(cuff, 220179, np.clip(sbp + 6 * z(), 40, 260), when=when)
    add(cuff, 220180, np.clip(dbp + 5 * z(), 15, 160), when=when)
    add(cuff, 220181, np.clip(mbp + 3 * z(), 25, 200), when=when)
    add((kk % 4 == 0) & (u[4] > 0.1), 223761, np.clip(ch.natural("temp", ra, t) + 0.2 * z(), 91, 107))
    # GCS from an impairment score (sedation on the ventilator dominates)
    g = adm["s"][ra] + 2.5 * imv_now + 0.8 * z()
    eye = 4 - np.searchsorted([1.0, 1.8, 2.6], g)
    verbal = 5 - np.searchsorted([0.8, 1.6, 2.2, 2.8], g)
    motor = 6 - np.searchsorted([1.3, 2.0, 2.6, 3.0, 3.4], g)
    gcs = (kk % 4 == 2) & (u[5] > 0.15)
    add(gcs, 220739, eye, text=4 - eye)
    add(gcs, 223900, np.where(imv_now, 1, verbal), text=np.where(imv_now, 9, 4 + (5 - verbal)))
    add(gcs, 223901, motor, text=10 + (6 - motor))
    # ventilator and CRRT settings
    n_adm = len(adm["s"])
    vent_mode = 16 + rng.choice(5, n_adm, p=[0.55, 0.25, 0.1, 0.05, 0.05])
    crrt_mode = 21 + rng.choice(4, n_adm, p=[0.85, 0.07, 0.06, 0.02])
    vent = imv_now & (kk % 4 == 1) & (u[6] > 0.05)
    add(vent, 223849, np.full(nr, np.nan), text=vent_mode[ra])
    fio2 = np.clip(np.round((40 + 15 * np.maximum(adm["p"][ra], 0) + 8 * z()) / 5) * 5, 21, 100)
    add(vent, 223835, fio2)
    add(crrt_now & (kk % 2 == 0) & (u[7] > 0.05), 227290, np.full(nr, np.nan), text=crrt_mode[ra])
    # one-off rows: admission weight, dialysis output at the end of each HD session
    w_when = in_abs + rng.integers(0, 120, ns) * 60
    parts.append({"si": np.arange(ns), "tabs": np.minimum(w_when, out_abs), "itemid": np.full(ns, 226512),
                  "v": adm["weight"][a], "text": np.full(ns, -1, dtype=np.int64)})
    nhd = len(hd["si"])
    parts.append({"si": hd["si"], "tabs": _abs(admit, a[hd["si"]], hd["end_h"]), "itemid": np.full(nhd, 226499),
                  "v": np.round(rng.uniform(1000, 4000, nhd), -1), "text": np.full(nhd, -1, dtype=np.int64)})

    rows = _concat(parts)
    n = len(rows["si"])
    itemid = rows["itemid"].astype(np.int64)
    chart_ids = np.array([c.itemid for c in cat.CHART_ITEMS])
    order = np.argsort(chart_ids)
    cpos = order[np.searchsorted(chart_ids[order], itemid)]
    dec = np.array([c.decimals for c in cat.CHART_ITEMS])[cpos]
    v = np.round(rows["v"] * 10.0 ** dec) / 10.0 ** dec
    # implausible device values (disconnected line, typing errors) to exercise range filters
    vital = np.isin(itemid, (220045, 220050, 220051, 220052, 220179, 220180, 220181, 220277))
    junk = vital & (rng.random(n) < 0.0015)
    v = np.where(junk, rng.choice(np.array([0.0, 999.0, 9999.0]), n), v)
    lo = np.array([np.nan if c.lownormalvalue is None else c.lownormalvalue for c in cat.CHART_ITEMS])[cpos]
    hi = np.array([np.nan if c.highnormalvalue is None else c.highnormalvalue for c in cat.CHART_ITEMS])[cpos]
    warning = ((v < 0.75 * lo) | (v > 1.3 * hi)) & ~np.isnan(lo)
    lag = np.where(rng.random(n) < 0.05, 0, _lognormal_minutes(rng, n, 8.0, 1.0))
    lag = np.minimum(lag, 240)
    stays_a = a[rows["si"]]
    shift = (rows["tabs"] // (12 * HOUR)).astype(np.int64)
    caregiver = 10000 + (st["stay_id"][rows["si"]] * 7 + shift * 13) % 89000
    df = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][stays_a]),
        "hadm_id": _int(adm["hadm_id"][stays_a]),
        "stay_id": _int(st["stay_id"][rows["si"]]),
        "caregiver_id": _int(caregiver),
        "charttime": _dt(rows["tabs"]),
        "storetime": _dt(rows["tabs"] + lag * 60),
        "itemid": _int(itemid),
        "_num": _flt(np.where(rows["text"] >= 0, np.nan, v)),
        "_dec": _int(dec),
        "_text": _int(rows["text"]),
        "valuenum": _flt(np.where((rows["text"] >= 0) & np.isnan(v), np.nan, v)),
        "valueuom": _str([c.unitname for c in cat.CHART_ITEMS], cpos),
        "warning": _int(warning.astype(np.int64)),
    })
    df = df.with_columns(
        value=pl.when(pl.col("_text") >= 0)
        .then(_str(CHART_TEXTS, rows["text"]))
        .otherwise(_fixed_decimals(pl.col("_num"), pl.col("_dec")))
    ).drop("_num", "_dec", "_text")
    return df.sort(["subject_id", "stay_id", "charttime", "itemid"], maintain_order=True)


# ==================================================================================== procedureevents
_LOCATIONS: tuple[str, ...] = (
    "Left Arm", "Right Arm", "Left Hand", "Right Hand",  # peripheral 0-3
    "Right Radial", "Left Radial", "Right Femoral",  # arterial 4-6
    "Right IJ", "Left IJ", "Right Subclavian", "Left Femoral",  # venous 7-10
)
_LOC_CATEGORY = ("Peripheral",) * 4 + ("Invasive Arterial",) * 3 + ("Invasive Venous",) * 4


def _procedureevents(rng: Rng, adm: Cols, st: Cols, hd: Cols) -> pl.DataFrame:
    """ICU procedures: ventilation (intubation, IMV, extubation, NIV), dialysis, lines, imaging, cultures."""
    a = st["a"]
    ns = len(a)
    first = ~st["second"]
    in_h, out_h = st["in_h"], st["out_h"]
    parts: list[Cols] = []

    def add(mask: Arr, itemid: int, start: Arr, end: Arr, loc: Arr | None = None) -> None:
        idx = np.flatnonzero(mask)
        parts.append({"si": idx, "itemid": np.full(len(idx), itemid), "start": _to_min(start[idx]),
                      "end": _to_min(end[idx]), "loc": np.full(len(idx), -1) if loc is None else loc[idx]})

    def u(lo: float, hi: float) -> Arr:
        return rng.uniform(lo, hi, ns)

    def pick(v: Arr) -> Arr:  # per-stay view of an admission array
        return v[a]

    imv = first & pick(adm["imv"])
    imv_on, imv_off = np.nan_to_num(pick(adm["imv_on"])), np.nan_to_num(pick(adm["imv_off"]))
    one_min = 1 / 60
    add(imv, 224385, imv_on, imv_on + one_min)
    add(imv, 225792, imv_on, imv_off)
    add(imv & (imv_off < out_h - 0.2), 227194, imv_off, imv_off + one_min)
    niv = first & ~imv & (np.maximum(pick(adm["p"]), 0) > 0.5) & (rng.random(ns) < 0.35)
    niv_on = in_h + u(0.0, 0.5) * (out_h - in_h)
    add(niv, 225794, niv_on, np.minimum(niv_on + u(4, 24), out_h))
    crrt = first & pick(adm["crrt"])
    add(crrt, 225802, np.nan_to_num(pick(adm["crrt_on"])), np.nan_to_num(pick(adm["crrt_off"])))
    hd_parts = {"si": hd["si"], "itemid": np.full(len(hd["si"]), 225441), "start": hd["start_h"], "end": hd["end_h"],
                "loc": np.full(len(hd["si"]), -1)}
    parts.append(hd_parts)
    shock = first & pick(adm["shock"])
    add(rng.random(ns) < 0.6, 224275, in_h + u(0, 1), out_h, rng.integers(0, 4, ns))
    aline = first & pick(adm["aline"])
    add(aline, 225752, in_h + u(0, 3), np.maximum(out_h - u(0, 2), in_h + 3.5), rng.integers(4, 7, ns))
    line_at = np.minimum.reduce([np.nan_to_num(pick(adm["press_on"]), nan=1e9), np.nan_to_num(pick(adm["crrt_on"]), nan=1e9), in_h + 6])
    mlc = (shock | crrt | (rng.random(ns) < 0.1)) & (rng.random(ns) < 0.9)
    add(mlc, 224263, np.maximum(line_at - u(0.2, 1.0), in_h), out_h, rng.integers(7, 11, ns))
    cxr_t = in_h + u(0.5, 3)
    add(rng.random(ns) < 0.7, 225459, cxr_t, cxr_t)
    cult = (pick(adm["i"]) > 0.5) & (rng.random(ns) < 0.7)
    cult_t = in_h + u(0, 4)
    add(cult, 225401, cult_t, cult_t + one_min)
    # daily chest X-rays while ventilated
    ndays = np.where(imv, np.floor((imv_off - imv_on) / 24.0).astype(np.int64), 0)
    xi = np.repeat(np.arange(ns), ndays)
    xt = imv_on[xi] + 24.0 * (_seg_arange(ndays) + 1) + rng.uniform(-2, 2, len(xi))
    xt = np.minimum(xt, out_h[xi] - one_min)
    parts.append({"si": xi, "itemid": np.full(len(xi), 225459), "start": _to_min(xt), "end": _to_min(xt),
                  "loc": np.full(len(xi), -1)})

    rows = _concat(parts)
    rows["end"] = np.maximum(rows["end"], rows["start"])  # instantaneous items: start == end
    n = len(rows["si"])
    itemid = rows["itemid"].astype(np.int64)
    dur_item = np.isin(itemid, [p.itemid for p in cat.PROCEDURE_ITEMS if p.duration])
    ra = a[rows["si"]]
    start = _abs(adm["admit"], ra, rows["start"])
    end = _abs(adm["admit"], ra, rows["end"])
    minutes = (end - start) // 60
    value = np.where(dur_item, minutes, 1).astype(np.float64)
    at_end = dur_item & (rng.random(n) < 0.7)
    store = np.where(at_end, end + rng.integers(0, 61, n) * 60, start + rng.integers(1, 31, n) * 60)
    p_ids = np.array([p.itemid for p in cat.PROCEDURE_ITEMS])
    ppos = np.argsort(p_ids)[np.searchsorted(np.sort(p_ids), itemid)]
    df = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][ra]),
        "hadm_id": _int(adm["hadm_id"][ra]),
        "stay_id": _int(st["stay_id"][rows["si"]]),
        "caregiver_id": _int(10000 + (st["stay_id"][rows["si"]] * 11 + itemid) % 89000),
        "starttime": _dt(start),
        "endtime": _dt(end),
        "storetime": _dt(store),
        "itemid": _int(itemid),
        "value": _flt(value),
        "valueuom": _str([p.unitname for p in cat.PROCEDURE_ITEMS], ppos),
        "location": _str(_LOCATIONS, rows["loc"]),
        "locationcategory": _str(_LOC_CATEGORY, rows["loc"]),
        "orderid": _int(np.zeros(n)),
        "linkorderid": _int(np.zeros(n)),
        "ordercategoryname": _str([p.ordercategoryname for p in cat.PROCEDURE_ITEMS], ppos),
        "ordercategorydescription": _const("Task", n),
        "patientweight": _flt(adm["weight"][ra]),
        "isopenbag": _int(np.zeros(n)),
        "continueinnextdept": _int(np.zeros(n)),
        "statusdescription": _const("FinishedRunning", n),
        "originalamount": _flt(value),
        "originalrate": _flt(np.where(dur_item, 0.0, 1.0)),
    })
    return df.sort(["subject_id", "starttime", "itemid"], maintain_order=True)


# ======================================================================================== inputevents
_DRIP_RATE = {  # itemid -> (median rate, log-sd, decimals)
    221906: (0.08, 0.6, 4), 221289: (0.05, 0.6, 4), 222315: (0.04, 0.1, 4), 221749: (1.0, 0.5, 4),
    221662: (5.0, 0.4, 4), 221653: (3.0, 0.3, 4), 222168: (30.0, 0.4, 3), 221744: (50.0, 0.5, 2),
    223258: (3.0, 0.6, 2), 225152: (1000.0, 0.3, 1), 225828: (100.0, 0.2, 0), 220949: (75.0, 0.2, 0),
}
_BAG_ML = {221906: 250, 221289: 250, 222315: 100, 221749: 250, 221662: 250, 221653: 250, 222168: 100,
           221744: 100, 223258: 100, 225152: 250, 225828: 1000, 220949: 1000, 225158: 1000, 225166: 100,
           221456: 100}


def _stay_lookup(adm: Cols, st: Cols, a: Arr, h: Arr) -> Arr:
    """The ICU stay (row of ``st``) containing hour ``h`` of admission ``a``, or -1."""
    n = len(adm["s"])
    if len(st["a"]) == 0:
        return np.full(len(a), -1)
    s1 = np.full(n, -1)
    s2 = np.full(n, -1)
    s1[st["a"][~st["second"]]] = np.flatnonzero(~st["second"])
    s2[st["a"][st["second"]]] = np.flatnonzero(st["second"])
    out = np.full(len(a), -1)
    for cand in (s1[a], s2[a]):
        ok = (cand >= 0)
        c = np.where(ok, cand, 0)
        inside = ok & (h >= st["in_h"][c]) & (h < st["out_h"][c] - 0.5)
        out = np.where(inside & (out < 0), cand, out)
    return out


def _inputevents(rng: Rng, adm: Cols, st: Cols, react: Cols) -> pl.DataFrame:
    """ICU infusions: vasopressors during shock, sedation on IMV, insulin/heparin drips, fluids, KCl."""
    a = st["a"]
    ns = len(a)
    first = ~st["second"]
    in_h, out_h = st["in_h"], st["out_h"]
    courses: list[Cols] = []

    def add(mask: Arr, itemid: int, start: Arr, end: Arr) -> None:
        idx = np.flatnonzero(mask & (end - start >= 0.5))
        courses.append({"si": idx, "itemid": np.full(len(idx), itemid), "start": _to_min(start[idx]),
                        "end": _to_min(end[idx])})

    def u(lo: float, hi: float) -> Arr:
        return rng.uniform(lo, hi, ns)

    def pick(v: Arr) -> Arr:  # per-stay view of an admission array
        return v[a]

    shock = first & pick(adm["shock"])
    pon, poff = np.nan_to_num(pick(adm["press_on"])), np.nan_to_num(pick(adm["press_off"]))
    death = pick(adm["death"])
    cpos = np.maximum(pick(adm["c"]), 0)
    ne = shock & (rng.random(ns) < 0.85)
    phenyl = shock & (rng.random(ns) < np.where(ne, 0.12, 0.7))
    dopa = shock & ~ne & ~phenyl
    add(ne, 221906, pon, poff)
    add(phenyl, 221749, np.where(ne, np.minimum(pon + u(0, 6), poff), pon), poff - u(0, 4))
    add(dopa, 221662, pon, poff)
    add(shock & (rng.random(ns) < 0.25 + 0.3 * death), 222315, np.minimum(pon + u(1, 12), poff), poff - u(0, 4))
    add(shock & (rng.random(ns) < 0.08 + 0.1 * death), 221289, np.minimum(pon + u(2, 24), poff), poff)
    add(shock & (rng.random(ns) < np.where(cpos > 1, 0.25, 0.02)), 221653, np.minimum(pon + u(0, 12), poff), poff)
    imv = first & pick(adm["imv"])
    ion, ioff = np.nan_to_num(pick(adm["imv_on"])), np.nan_to_num(pick(adm["imv_off"]))
    add(imv & (rng.random(ns) < 0.8), 222168, ion + u(0, 0.5), ioff - u(0, 2))
    add(imv & (rng.random(ns) < 0.6), 221744, ion + u(0, 1), ioff - u(0, 2))
    hyper = np.exp(adm["chronic"][:, CH["glu"]] + adm["acute"][:, CH["glu"]])[a] > 180
    ins_on = in_h + u(1, 6)
    add(hyper & (rng.random(ns) < 0.6), 223258, ins_on, np.minimum(out_h, ins_on + u(12, 48)))
    hep_on = in_h + u(1, 12)
    add(rng.random(ns) < 0.08 + 0.25 * pick(adm["anticoag"]), 225152, hep_on, out_h - u(0, 2))
    mf_on = in_h + u(0, 4)
    fluid = rng.random(ns)
    add(fluid < 0.22, 225828, mf_on, np.minimum(out_h, mf_on + u(12, 48)))
    add((fluid >= 0.22) & (fluid < 0.35), 220949, mf_on, np.minimum(out_h, mf_on + u(12, 48)))
    drips = _concat(courses)

    # split each drip into charted segments of 1-6 h with rate changes
    nc = len(drips["si"])
    piece_h = rng.uniform(1.0, 6.0, nc)
    npieces = np.maximum(np.ceil((drips["end"] - drips["start"]) / piece_h).astype(np.int64), 1)
    ci = np.repeat(np.arange(nc), npieces)
    kk = _seg_arange(npieces)
    p_start = _to_min(drips["start"][ci] + kk * piece_h[ci])
    p_end = np.where(kk == npieces[ci] - 1, drips["end"][ci], _to_min(drips["start"][ci] + (kk + 1) * piece_h[ci]))
    item = drips["itemid"][ci]
    med = np.array([_DRIP_RATE[int(i)][0] for i in item]) if len(item) else np.zeros(0)
    lsd = np.array([_DRIP_RATE[int(i)][1] for i in item]) if len(item) else np.zeros(0)
    rate = med * np.exp(lsd * rng.standard_normal(len(ci)))
    dur_h = p_end - p_start
    last = kk == npieces[ci] - 1
    status = np.where(last, np.where(rng.random(len(ci)) < 0.7, 0, 1), 2)  # FinishedRunning/Stopped/ChangeDose
    link_local = np.cumsum(npieces) - npieces  # first piece of each course
    pieces: Cols = {"si": drips["si"][ci], "itemid": item, "start": p_start, "end": p_end, "rate": rate,
                    "dur_h": dur_h, "status": status, "link": link_local[ci], "push": np.zeros(len(ci), bool)}

    # fluid boluses (NaCl 0.9%) early in the stay, more in shock
    nb = rng.poisson(0.5 + 1.5 * shock)
    bi = np.repeat(np.arange(ns), nb)
    b_start = _to_min(in_h[bi] + rng.uniform(0, 12, len(bi)))
    b_dur = rng.choice(np.array([0.5, 1.0]), len(bi))
    b_amt = rng.choice(np.array([500.0, 1000.0]), len(bi), p=[0.6, 0.4])
    bok = b_start + b_dur < out_h[bi]
    boluses: Cols = {"si": bi[bok], "itemid": np.full(int(bok.sum()), 225158), "start": b_start[bok],
                     "end": _to_min(b_start[bok] + b_dur[bok]), "rate": b_amt[bok] / b_dur[bok], "dur_h": b_dur[bok],
                     "status": np.zeros(int(bok.sum()), dtype=np.int64), "link": np.full(int(bok.sum()), -1),
                     "push": np.zeros(int(bok.sum()), bool)}

    # reactive: KCl for low potassium, calcium gluconate push for high potassium (ICU results only)
    isk = np.isin(react["itemid"], (50971, 50822)) & react["inpatient"] & ~np.isnan(react["v"])
    low = isk & (react["v"] < 3.5) & (rng.random(len(isk)) < 0.7)
    high = isk & (react["v"] >= 6.0) & (rng.random(len(isk)) < 0.7)
    rx = []
    for mask, itemid in ((low, 225166), (high, 221456)):
        idx = np.flatnonzero(mask)
        t0 = _to_min(react["store_h"][idx] + rng.uniform(0.3, 1.5, len(idx)))
        sidx = _stay_lookup(adm, st, react["a"][idx], t0)
        ok = sidx >= 0
        idx, t0, sidx = idx[ok], t0[ok], sidx[ok]
        k = len(idx)
        if itemid == 225166:
            dur = rng.choice(np.array([1.0, 2.0, 4.0]), k)
            amt = rng.choice(np.array([20.0, 40.0]), k)
            end = np.minimum(t0 + dur, st["out_h"][sidx])
            rx.append({"si": sidx, "itemid": np.full(k, itemid), "start": t0, "end": _to_min(end),
                       "rate": amt / dur, "dur_h": _to_min(end) - t0, "status": np.zeros(k, dtype=np.int64),
                       "link": np.full(k, -1), "push": np.zeros(k, bool)})
        else:
            rx.append({"si": sidx, "itemid": np.full(k, itemid), "start": t0, "end": t0 + 1 / 60,
                       "rate": np.full(k, 2.0), "dur_h": np.full(k, 1 / 60), "status": np.zeros(k, dtype=np.int64),
                       "link": np.full(k, -1), "push": np.ones(k, bool)})
    nd = len(pieces["si"])
    rows = _concat([pieces, boluses, *rx])
    n = len(rows["si"])
    local = np.arange(n)
    rows["link"] = np.where(rows["link"] >= 0, rows["link"], local)
    rows["link"][:nd] = pieces["link"]
    itemid = rows["itemid"].astype(np.int64)
    ids = np.array([i.itemid for i in cat.INPUT_ITEMS])
    ipos = np.argsort(ids)[np.searchsorted(np.sort(ids), itemid)]
    weight_based = np.array([i.weight_based for i in cat.INPUT_ITEMS])[ipos]
    dec = np.array([_DRIP_RATE.get(int(i), (0, 0, 1))[2] for i in ids])[ipos]
    rate = np.round(rows["rate"] * 10.0 ** dec) / 10.0 ** dec
    ra = a[rows["si"]]
    w = adm["weight"][ra]
    minutes = rows["dur_h"] * 60
    amount = np.where(weight_based, rate * minutes * w / 1000.0, np.where(itemid == 222315, rate * minutes, rate * rows["dur_h"]))
    amount = np.where(rows["push"], rows["rate"], amount)
    amount = np.round(amount, 4)
    start = _abs(adm["admit"], ra, rows["start"])
    end = _abs(adm["admit"], ra, rows["end"])
    store = end + rng.integers(0, 46, n) * 60
    store = np.where(rng.random(n) < 0.3, start + rng.integers(1, 16, n) * 60, store)
    rate_ok = ~rows["push"]
    bag = np.array([_BAG_ML[int(i)] for i in ids])[ipos].astype(np.float64)
    df = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][ra]),
        "hadm_id": _int(adm["hadm_id"][ra]),
        "stay_id": _int(st["stay_id"][rows["si"]]),
        "caregiver_id": _int(10000 + (st["stay_id"][rows["si"]] * 17 + itemid) % 89000),
        "starttime": _dt(start),
        "endtime": _dt(end),
        "storetime": _dt(store),
        "itemid": _int(itemid),
        "amount": _flt(amount),
        "amountuom": _str([i.amountuom for i in cat.INPUT_ITEMS], ipos),
        "rate": _flt(np.where(rate_ok, rate, np.nan)),
        "rateuom": _str([i.rateuom for i in cat.INPUT_ITEMS], np.where(rate_ok, ipos, -1)),
        "orderid": _int(local),
        "linkorderid": _int(rows["link"]),
        "ordercategoryname": _str([i.ordercategoryname for i in cat.INPUT_ITEMS], ipos),
        "secondaryordercategoryname": _str([i.secondaryordercategoryname for i in cat.INPUT_ITEMS], ipos),
        "ordercomponenttypedescription": _const("Main order parameter", n),
        "ordercategorydescription": _str([i.ordercategorydescription for i in cat.INPUT_ITEMS], ipos),
        "patientweight": _flt(w),
        "totalamount": _flt(bag),
        "totalamountuom": _const("mL", n),
        "isopenbag": _int(np.zeros(n)),
        "continueinnextdept": _int(np.zeros(n)),
        "statusdescription": _str(["FinishedRunning", "Stopped", "ChangeDose/Rate"], rows["status"]),
        "originalamount": _flt(np.where(rows["push"], amount, bag)),
        "originalrate": _flt(np.where(rate_ok, rate, np.nan)),
    })
    return df.sort(["subject_id", "starttime", "itemid"], maintain_order=True)


# =============================================================================================== emar
# (medication, base logit, {latent: weight}, PRN doses per day); reactive medications are handled apart.
_EMAR_CHOICE: tuple[tuple[str, float, dict[str, float], float], ...] = (
    ("Heparin", 0.5, {"anticoag": -1.5}, 0),
    ("Pantoprazole", -0.3, {"s": 0.5}, 0),
    ("Acetaminophen", 0.2, {"surg": 0.5}, 1.5),
    ("Sodium Chloride 0.9%  Flush", 0.6, {}, 0),
    ("Docusate Sodium", -0.9, {"age_z": 0.3}, 0),
    ("Senna", -0.9, {"age_z": 0.3}, 0),
    ("Polyethylene Glycol", -1.4, {}, 0),
    ("Ondansetron", -0.6, {"surg": 0.5}, 0.8),
    ("Metoprolol Tartrate", -1.6, {"cpos": 1.0, "afib": 1.2, "htn": 0.6}, 0),
    ("Furosemide", -2.5, {"chf": 2.5, "cpos": 0.8}, 0),
    ("Insulin", -3.0, {"dm": 4.0}, 0),
    ("Vancomycin", -2.2, {"ipos": 1.6}, 0),
    ("Piperacillin-Tazobactam", -2.4, {"ipos": 1.6}, 0),
    ("CefTRIAXone", -1.8, {"ipos": 1.0}, 0),
    ("Atorvastatin", -1.0, {"age_z": 0.6, "cpos": 0.6}, 0),
    ("Aspirin", -1.2, {"age_z": 0.6, "cpos": 1.0}, 0),
    ("Lisinopril", -1.8, {"htn": 1.2}, 0),
    ("amLODIPine", -1.8, {"htn": 1.2}, 0),
    ("OxyCODONE (Immediate Release)", -1.4, {"surg": 1.5}, 2.0),
    ("HYDROmorphone (Dilaudid)", -1.8, {"surg": 1.0, "s": 0.5}, 1.5),
    ("Morphine Sulfate", -2.2, {"s": 0.5}, 1.0),
    ("Lorazepam", -2.2, {"s": 0.3}, 0.6),
    ("Haloperidol", -2.6, {"age_z": 0.5, "s": 0.4}, 0.5),
    ("Albuterol 0.083% Neb Soln", -2.4, {"copd": 2.0, "ppos": 0.8}, 1.5),
    ("Ipratropium-Albuterol Neb", -2.6, {"copd": 2.2}, 0),
    ("PredniSONE", -3.0, {"copd": 1.5}, 0),
    ("sevelamer CARBONATE", -5.0, {"esrd": 7.0}, 0),
    ("Warfarin", -3.0, {"anticoag": 2.5}, 0),
    ("Apixaban", -3.0, {"afib": 2.0}, 0),
    ("Gabapentin", -2.0, {}, 0),
    ("Levetiracetam", -3.5, {}, 0),
    ("Nicotine Patch", -2.5, {}, 0),
    ("Tamsulosin", -3.0, {"old_male": 1.5}, 0),
)
_EMAR_EVENTS = ("Administered", "Not Given", "Held", "Flushed", "Applied", "Delayed Administered", "Confirmed")
_ANTIBIOTICS = {"Vancomycin", "Piperacillin-Tazobactam", "CefTRIAXone"}


def _emar(rng: Rng, adm: Cols, react: Cols, providers: list[str]) -> pl.DataFrame:
    """Bar-code medication administrations: scheduled and PRN orders, plus orders reacting to lab results."""
    feats = {
        "s": adm["s"], "surg": adm["surg"].astype(float), "age_z": adm["age_z"], "cpos": np.maximum(adm["c"], 0),
        "ipos": np.maximum(adm["i"], 0), "ppos": np.maximum(adm["p"], 0),
        "old_male": (~adm["female"] & (adm["age_z"] > 0.5)).astype(float),
    }
    for k in ("anticoag", "afib", "htn", "chf", "dm", "copd", "esrd"):
        feats[k] = adm[k].astype(float)
    zero = np.zeros(len(adm["s"]))
    logits = np.stack([b + zero + sum(w * feats[f] for f, w in eff.items()) for _, b, eff, _ in _EMAR_CHOICE], axis=1)
    chosen = rng.random(logits.shape) < _sig(logits)
    oa, om = np.nonzero(chosen)
    los = adm["los_h"]
    start = np.minimum(_to_min(np.exp(np.log(2.5) + 0.8 * rng.standard_normal(len(oa)))), los[oa] - 0.1)
    start = np.maximum(start, 0.0)
    is_abx = np.array([_EMAR_CHOICE[m][0] in _ANTIBIOTICS for m in range(len(_EMAR_CHOICE))])[om]
    course = np.where(is_abx, np.exp(np.log(120) + 0.5 * rng.standard_normal(len(oa))), np.inf)
    end = np.minimum(start + course, los[oa] - rng.uniform(0, 4, len(oa)))
    end = np.maximum(end, start)
    med_names = [m for m, _, _, _ in _EMAR_CHOICE]
    interval = np.array([cat.MEDICATION_BY_NAME[m].interval_h for m in med_names], dtype=np.float64)[om]
    prn_rate = np.array([r for _, _, _, r in _EMAR_CHOICE])[om]
    prn = interval == 0
    # scheduled doses at whole hours from the first dose; PRN doses at random times
    n_sched = np.where(prn, 0, np.floor((end - start) / np.where(prn, 1, interval)).astype(np.int64) + 1)
    n_prn = np.where(prn, rng.poisson(prn_rate * (end - start) / 24.0), 0)
    count = n_sched + n_prn
    oi = np.repeat(np.arange(len(oa)), count)
    kk = _seg_arange(count)
    # first scheduled dose on the next whole clock hour after the order starts
    admit_o = adm["admit"][oa]
    first_dose_h = (-(-(admit_o + np.round(start * 3600).astype(np.int64)) // HOUR) * HOUR - admit_o) / HOUR
    sched_h = first_dose_h[oi] + kk * np.where(prn[oi], 0, interval[oi])
    prn_h = start[oi] + rng.random(len(oi)) * (end[oi] - start[oi])
    is_prn = prn[oi]
    chart_h = np.where(is_prn, _to_min(prn_h), _to_min(sched_h + np.clip(rng.normal(10, 20, len(oi)), -30, 120) / 60))
    keep = (chart_h <= los[oa][oi]) & (chart_h >= 0)
    oi, chart_h, sched_h, is_prn = oi[keep], chart_h[keep], sched_h[keep], is_prn[keep]
    base_event = np.array([_EMAR_EVENTS.index(cat.MEDICATION_BY_NAME[m].event_txt) for m in med_names])[om][oi]
    r = rng.random(len(oi))
    event = np.where(is_prn, base_event, np.select(
        [r < 0.04, r < 0.065, r < 0.08, r < 0.085], [1, 2, 5, 6], base_event))
    rows: Cols = {"order": oi, "chart_h": chart_h, "sched_h": np.where(is_prn, np.nan, sched_h), "event": event}

    # reactive orders from lab results (potassium, glucose, magnesium), charted after the result is stored
    v, item = react["v"], react["itemid"]
    ok = react["inpatient"] & ~np.isnan(v)
    isk = np.isin(item, (50971, 50822))
    isg = np.isin(item, (50931, 50809))
    rules = (
        (isk & (v < 3.5), "Potassium Chloride", 0.75), (isk & (v >= 6.0), "Sodium Polystyrene Sulfonate", 0.5),
        (isk & (v >= 6.0), "Calcium Gluconate", 0.6), (isk & (v >= 6.0), "Insulin", 0.6),
        (isg & (v >= 250), "Insulin", 0.5), (isg & (v < 65), "Dextrose 50%", 0.8),
        ((item == 50960) & (v < 1.6), "Magnesium Sulfate", 0.7),
    )
    all_names = [*med_names, "Potassium Chloride", "Sodium Polystyrene Sulfonate", "Calcium Gluconate",
                 "Dextrose 50%", "Magnesium Sulfate"]
    ra_list, rm_list = [oa], [om]
    next_order = len(oa)
    extra_rows: list[Cols] = []
    for mask, name, p in rules:
        idx = np.flatnonzero(mask & ok & (rng.random(len(v)) < p))
        t = _to_min(react["store_h"][idx] + rng.uniform(0.2, 2.0, len(idx)))
        inside = t < los[react["a"][idx]]
        idx, t = idx[inside], t[inside]
        k = len(idx)
        ra_list.append(react["a"][idx])
        rm_list.append(np.full(k, all_names.index(name)))
        extra_rows.append({"order": next_order + np.arange(k), "chart_h": t, "sched_h": t.copy(),
                           "event": np.zeros(k, dtype=np.int64)})
        next_order += k
    orders = {"a": np.concatenate(ra_list), "med": np.concatenate(rm_list)}
    rows = _concat([rows, *extra_rows])
    no = len(orders["a"])
    order_prov = np.where(rng.random(no) < 0.6, -1, rng.integers(0, len(providers), no))
    ra = orders["a"][rows["order"]]
    charttime = _abs(adm["admit"], ra, rows["chart_h"])
    sched = np.where(np.isnan(rows["sched_h"]), 0, rows["sched_h"])
    schedtime = adm["admit"][ra] + np.round(sched * 60).astype(np.int64) * 60
    store_s = np.clip(np.round(40 * np.exp(1.0 * rng.standard_normal(len(ra)))), 1, 1800).astype(np.int64)
    df = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][ra]),
        "hadm_id": _int(adm["hadm_id"][ra]),
        "_order": _int(rows["order"]),
        "poe_order": _int(rows["order"]),
        "pharmacy_id": _int(rows["order"]),
        "enter_provider_id": _str(providers, order_prov[rows["order"]]),
        "charttime": _dt(charttime),
        "medication": _str(all_names, orders["med"][rows["order"]]),
        "event_txt": _str(_EMAR_EVENTS, rows["event"]),
        "scheduletime": _dt(schedtime, ~np.isnan(rows["sched_h"])),
        "storetime": _dt(charttime + store_s),
    })
    df = df.sort(["subject_id", "charttime", "medication", "_order"], maintain_order=True)
    # per-subject sequence numbers: emar_seq over administrations, poe_seq over orders by first use
    df = df.with_columns(emar_seq=(pl.int_range(pl.len()).over("subject_id") + 1).cast(pl.Int64))
    first_use = df.group_by("_order", maintain_order=True).agg(pl.col("subject_id").first(), pl.len().alias("_n"))
    first_use = first_use.with_columns(poe_seq=(pl.int_range(pl.len()).over("subject_id") + 1).cast(pl.Int64))
    df = df.join(first_use.select("_order", "poe_seq"), on="_order", how="left", maintain_order="left")
    return df.with_columns(
        emar_id=pl.format("{}-{}", "subject_id", "emar_seq"),
        poe_id=pl.format("{}-{}", "subject_id", "poe_seq"),
    ).drop("poe_order", "poe_seq", "_order")


# ============================================================================================ billing
_PRINCIPAL_ORDER = ("sepsis", "resp_failure", "ami", "heart_failure", "aki", "gi_bleed", "pneumonia",
                    "hyponatremia", "diabetes", "osteoarthritis", "chest_pain", "syncope")


def _billing(rng: Rng, adm: Cols, sub: Cols) -> dict[str, pl.DataFrame]:
    """diagnoses_icd, procedures_icd, hcpcsevents and drgcodes, correlated with what happened in the stay."""
    n = len(adm["s"])
    s, death = adm["s"], adm["death"]
    r = rng.random((len(cat.CONDITIONS), n))
    k0 = adm["chronic"][:, CH["k"]] + adm["acute"][:, CH["k"]]
    na0 = adm["chronic"][:, CH["na"]] + adm["acute"][:, CH["na"]]
    hb0 = adm["chronic"][:, CH["hb"]] + adm["acute"][:, CH["hb"]]
    trop0 = adm["chronic"][:, CH["trop"]] + adm["acute"][:, CH["trop"]]
    imv_h = np.nan_to_num(adm["imv_off"] - adm["imv_on"])
    flags = {
        "sepsis": (adm["i"] > 1.0) | (adm["shock"] & (adm["i"] > 0.3)),
        "septic_shock": adm["shock"] & (adm["i"] > 0.3),
        "aki": (adm["r"] > 0.8) | adm["crrt"], "ckd": adm["ckd"] & ~adm["esrd"], "esrd": adm["esrd"],
        "hyperkalemia": k0 >= 5.3, "hypokalemia": k0 < 3.3, "hyponatremia": na0 < 132, "hypernatremia": na0 > 147,
        "heart_failure": adm["chf"] | (adm["c"] > 1.5), "ami": trop0 > np.log(0.1),
        "resp_failure": adm["imv"] | (adm["p"] > 1.5), "pneumonia": (adm["p"] > 0.8) & (adm["i"] > 0.3),
        "gi_bleed": adm["h"] > 1.5, "anemia": hb0 < 10, "diabetes": adm["dm"],
        "hypoglycemia": adm["insulin"] & (r[16] < 0.05), "hypertension": adm["htn"], "copd": adm["copd"],
        "afib": adm["afib"], "hyperlipidemia": r[20] < _sig(-1.0 + 0.6 * adm["age_z"]), "gerd": r[21] < 0.15,
        "depression": r[22] < 0.12, "tobacco": r[23] < 0.15, "cardiac_arrest": death & (r[24] < 0.15),
        "dnr": (death & (r[25] < 0.5)) | ((s > 2) & (r[25] < 0.1)), "palliative": death & (r[26] < 0.7),
        "chest_pain": (adm["c"] > 0.5) & (trop0 <= np.log(0.1)) & (r[27] < 0.5),
        "syncope": r[28] < 0.04, "osteoarthritis": adm["surg"] & (r[29] < 0.5),
    }
    mat = np.stack([flags[c.key] for c in cat.CONDITIONS], axis=1)
    none = ~mat.any(axis=1)
    mat[none, [c.key for c in cat.CONDITIONS].index("syncope")] = True
    # principal diagnosis first, the rest in random order
    rank = np.full(len(cat.CONDITIONS), len(_PRINCIPAL_ORDER), dtype=np.float64)
    for i, key in enumerate(_PRINCIPAL_ORDER):
        rank[[c.key for c in cat.CONDITIONS].index(key)] = i
    ra, rc = np.nonzero(mat)
    key = np.where(rank[rc] < len(_PRINCIPAL_ORDER), rank[rc], 100 + rng.random(len(ra)))
    order = np.lexsort((key, ra))
    ra, rc = ra[order], rc[order]
    seq = _seg_arange(np.bincount(ra, minlength=n)) + 1
    p10 = np.array([0.0, 0.1, 0.5, 1.0, 1.0])[sub["year_group"][adm["sidx"]]]
    v10 = rng.random(n) < p10
    codes9 = [c.icd9 for c in cat.CONDITIONS]
    codes10 = [c.icd10 for c in cat.CONDITIONS]
    dx = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][ra]), "hadm_id": _int(adm["hadm_id"][ra]), "seq_num": _int(seq),
        "icd_code": pl.Series(np.where(v10[ra], np.array(codes10, dtype=object)[rc], np.array(codes9, dtype=object)[rc]), dtype=pl.String),
        "icd_version": _int(np.where(v10[ra], 10, 9)),
    })

    # procedures
    pkeys = [p.key for p in cat.ICD_PROCEDURES]
    pflags = {
        "imv_short": adm["imv"] & (imv_h <= 96), "imv_long": adm["imv"] & (imv_h > 96), "intubation": adm["imv"],
        "crrt": adm["crrt"], "hemodialysis": adm["esrd"] & adm["icu"], "central_line": adm["shock"] | adm["crrt"],
        "transfusion": hb0 < 7.5, "knee_replacement": flags["osteoarthritis"],
    }
    when = {
        "imv_short": adm["imv_on"], "imv_long": adm["imv_on"], "intubation": adm["imv_on"], "crrt": adm["crrt_on"],
        "hemodialysis": adm["i1"], "central_line": np.fmin(adm["press_on"], adm["crrt_on"]),
        "transfusion": np.full(n, 12.0), "knee_replacement": np.full(n, 4.0),
    }
    pmat = np.stack([pflags[k] for k in pkeys], axis=1)
    pa, pc = np.nonzero(pmat)
    ph = np.stack([np.nan_to_num(when[k], nan=0.0) for k in pkeys], axis=1)[pa, pc]
    pseq = _seg_arange(np.bincount(pa, minlength=n)) + 1
    p9 = [p.icd9 for p in cat.ICD_PROCEDURES]
    p10 = [p.icd10 for p in cat.ICD_PROCEDURES]
    px = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][pa]), "hadm_id": _int(adm["hadm_id"][pa]), "seq_num": _int(pseq),
        "chartdate": _date(_abs(adm["admit"], pa, ph)),
        "icd_code": pl.Series(np.where(v10[pa], np.array(p10, dtype=object)[pc], np.array(p9, dtype=object)[pc]), dtype=pl.String),
        "icd_version": _int(np.where(v10[pa], 10, 9)),
    })

    # HCPCS (professional billing): initial visit, follow-ups, critical care, line/airway/dialysis codes
    hk = list(cat.HCPCS)
    has = rng.random(n) < 0.6
    n_sub = np.where(has, np.minimum(rng.poisson(1.5, n), np.floor(adm["los_h"] / 24).astype(np.int64)), 0)
    hrows = [
        (has, "initial", np.zeros(n)),
        (has & adm["icu"], "critical", np.nan_to_num(adm["i1"])),
        (has & (adm["shock"] | adm["crrt"]), "central_line", np.nan_to_num(np.fmin(adm["press_on"], adm["crrt_on"]))),
        (has & adm["imv"], "intubation", np.nan_to_num(adm["imv_on"])),
        (has & adm["esrd"] & adm["icu"], "hemodialysis", np.nan_to_num(adm["i1"]) + 6),
        (has & adm["crrt"], "crrt", np.nan_to_num(adm["crrt_on"])),
        (has & (adm["los_h"] >= 24), "discharge", adm["los_h"]),
    ]
    ha_l, hc_l, hh_l = [], [], []
    for mask, k, h in hrows:
        idx = np.flatnonzero(mask)
        ha_l.append(idx)
        hc_l.append(np.full(len(idx), hk.index(k)))
        hh_l.append(h[idx])
    si = np.repeat(np.arange(n), n_sub)
    ha_l.append(si)
    hc_l.append(np.full(len(si), hk.index("subsequent")))
    hh_l.append(24.0 * (_seg_arange(n_sub) + 1))
    ha, hc, hh = np.concatenate(ha_l), np.concatenate(hc_l), np.concatenate(hh_l)
    order = np.lexsort((hc, hh, ha))
    ha, hc, hh = ha[order], hc[order], np.minimum(hh[order], adm["los_h"][ha[order]])
    hx = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][ha]), "hadm_id": _int(adm["hadm_id"][ha]),
        "chartdate": _date(_abs(adm["admit"], ha, hh)),
        "hcpcs_cd": _str([cat.HCPCS[k][0] for k in hk], hc),
        "seq_num": _int(_seg_arange(np.bincount(ha, minlength=n)) + 1),
        "short_description": _str([cat.HCPCS[k][1] for k in hk], hc),
    })

    # DRGs: one HCFA and one APR row from the principal diagnosis (ventilation > 96 h overrides)
    principal = rc[seq == 1]
    pr_adm = ra[seq == 1]
    drg_hcfa = [c.hcfa_drg or cat.CONDITION_BY_KEY["chest_pain"].hcfa_drg for c in cat.CONDITIONS]
    drg_apr = [c.apr_drg or cat.CONDITION_BY_KEY["chest_pain"].apr_drg for c in cat.CONDITIONS]
    long_mv = (adm["imv"] & (imv_h > 96))[pr_adm]
    h_code = np.where(long_mv, cat.MV_LONG_DRG[0][0], np.array([d[0] for d in drg_hcfa], dtype=object)[principal])  # type: ignore[index]
    h_desc = np.where(long_mv, cat.MV_LONG_DRG[0][1], np.array([d[1] for d in drg_hcfa], dtype=object)[principal])  # type: ignore[index]
    a_code = np.where(long_mv, cat.MV_LONG_DRG[1][0], np.array([d[0] for d in drg_apr], dtype=object)[principal])  # type: ignore[index]
    a_desc = np.where(long_mv, cat.MV_LONG_DRG[1][1], np.array([d[1] for d in drg_apr], dtype=object)[principal])  # type: ignore[index]
    has_drg = rng.random(len(pr_adm)) < 0.95
    sp = s[pr_adm]
    dp = death[pr_adm]
    sev = np.clip(1 + (sp > -0.3) + (sp > 0.7) + ((sp > 1.5) | dp), 1, 4)
    mort = np.clip(1 + (sp > 0.0) + (sp > 1.0) + dp, 1, 4)
    idx = np.flatnonzero(has_drg)
    both = np.concatenate([idx, idx])
    is_apr = np.concatenate([np.zeros(len(idx), bool), np.ones(len(idx), bool)])
    order = np.lexsort((is_apr, pr_adm[both]))
    both, is_apr = both[order], is_apr[order]
    drg = pl.DataFrame({
        "subject_id": _int(adm["subject_id"][pr_adm[both]]), "hadm_id": _int(adm["hadm_id"][pr_adm[both]]),
        "drg_type": pl.Series(np.where(is_apr, "APR", "HCFA"), dtype=pl.String),
        "drg_code": pl.Series(np.where(is_apr, a_code[both], h_code[both]), dtype=pl.String),
        "description": pl.Series(np.where(is_apr, a_desc[both], h_desc[both]), dtype=pl.String),
        "drg_severity": _int(sev[both], is_apr), "drg_mortality": _int(mort[both], is_apr),
    })
    return {"diagnoses_icd": dx, "procedures_icd": px, "hcpcsevents": hx, "drgcodes": drg}


# ===================================================================================== core tables
def _patients(sub: Cols) -> pl.DataFrame:
    """patients rows (one per subject)."""
    return pl.DataFrame({
        "subject_id": _int(sub["subject_id"]),
        "gender": pl.Series(np.where(sub["female"], "F", "M"), dtype=pl.String),
        "anchor_age": _int(sub["anchor_age"]),
        "anchor_year": _int(sub["anchor_year"]),
        "anchor_year_group": _str(cat.ANCHOR_YEAR_GROUPS, sub["year_group"]),
        "dod": _date(sub["dod"], sub["has_dod"]),
    })


def _admissions(adm: Cols, sub: Cols, providers: list[str], rng: Rng) -> pl.DataFrame:
    """admissions rows (times, categories, discharge location, death flags)."""
    n = len(adm["s"])
    sidx = adm["sidx"]
    locs = [*(x for x, _ in cat.ED_ADMISSION_LOCATIONS), *(x for x, _ in cat.OTHER_ADMISSION_LOCATIONS)]
    dl = adm["disch_loc"]
    alive = [x for x, _ in cat.DISCHARGE_LOCATIONS_ALIVE]
    dl_idx = np.where(dl == -2, len(alive), dl)
    return pl.DataFrame({
        "subject_id": _int(adm["subject_id"]),
        "hadm_id": _int(adm["hadm_id"]),
        "admittime": _dt(adm["admit"]),
        "dischtime": _dt(adm["disch"]),
        "deathtime": _dt(adm["disch"], adm["death"]),
        "admission_type": _str(cat.ADMISSION_TYPES, adm["type"]),
        "admit_provider_id": _str(providers, rng.integers(0, len(providers), n)),
        "admission_location": _str(locs, adm["adm_loc"]),
        "discharge_location": _str([*alive, "DIED"], dl_idx),
        "insurance": _str(cat.INSURANCES, sub["insurance"][sidx]),
        "language": _str([x for x, _ in cat.LANGUAGES], sub["language"][sidx]),
        "marital_status": _str([x for x, _ in cat.MARITAL_STATUSES], sub["marital"][sidx]),
        "race": _str([x for x, _ in cat.RACES], sub["race"][sidx]),
        "edregtime": _dt(adm["ed_reg"], adm["ed"]),
        "edouttime": _dt(adm["admit"] + np.round(adm["ed_out"] * 60).astype(np.int64) * 60, adm["ed"]),
        "hospital_expire_flag": _int(adm["death"].astype(np.int64)),
    })


def _transfers(adm: Cols, seg: Cols) -> pl.DataFrame:
    """transfers rows: ED visit, admit / transfer for every bed segment, discharge (careunit null)."""
    admit = adm["admit"]
    ed = np.flatnonzero(adm["ed"])
    n = len(adm["s"])
    ed_out_abs = admit + np.round(adm["ed_out"] * 60).astype(np.int64) * 60
    parts: list[Cols] = [
        {"a": ed, "ev": np.zeros(len(ed), dtype=np.int64), "unit": np.full(len(ed), len(UNITS)),
         "in": adm["ed_reg"][ed], "out": ed_out_abs[ed], "has_out": np.ones(len(ed), bool), "k": np.zeros(len(ed))},
        {"a": seg["a"], "ev": np.where(seg["first"], 1, 2), "unit": seg["unit"],
         "in": _abs(admit, seg["a"], seg["start_h"]), "out": _abs(admit, seg["a"], seg["end_h"]),
         "has_out": np.ones(len(seg["a"]), bool), "k": np.ones(len(seg["a"]))},
        {"a": np.arange(n), "ev": np.full(n, 3), "unit": np.full(n, -1), "in": adm["disch"], "out": adm["disch"],
         "has_out": np.zeros(n, bool), "k": np.full(n, 2.0)},
    ]
    rows = _concat(parts)
    order = np.lexsort((rows["k"], rows["in"], rows["a"]))
    rows = _subset(rows, order)
    a = rows["a"]
    return pl.DataFrame({
        "subject_id": _int(adm["subject_id"][a]),
        "hadm_id": _int(adm["hadm_id"][a]),
        "transfer_id": _int(np.arange(len(a))),
        "eventtype": _str(["ED", "admit", "transfer", "discharge"], rows["ev"]),
        "careunit": _str([*UNITS, cat.ED_CAREUNIT], rows["unit"]),
        "intime": _dt(rows["in"]),
        "outtime": _dt(rows["out"], rows["has_out"]),
    })


def _icustays(adm: Cols, st: Cols) -> pl.DataFrame:
    """icustays rows (los in fractional days, as MIMIC)."""
    a = st["a"]
    intime = _abs(adm["admit"], a, st["in_h"])
    outtime = _abs(adm["admit"], a, st["out_h"])
    return pl.DataFrame({
        "subject_id": _int(adm["subject_id"][a]),
        "hadm_id": _int(adm["hadm_id"][a]),
        "stay_id": _int(st["stay_id"]),
        "first_careunit": _str(UNITS, st["first_cu"]),
        "last_careunit": _str(UNITS, st["last_cu"]),
        "intime": _dt(intime),
        "outtime": _dt(outtime),
        "los": _flt(np.round((outtime - intime) / DAY, 6)),
    })


def _dictionaries() -> dict[str, pl.DataFrame]:
    """d_labitems and d_items from the catalog (sorted by itemid)."""
    labs = sorted(cat.LAB_ITEMS, key=lambda x: x.itemid)
    d_lab = pl.DataFrame({
        "itemid": _int(np.array([x.itemid for x in labs])),
        "label": pl.Series([x.label for x in labs], dtype=pl.String),
        "fluid": pl.Series([x.fluid for x in labs], dtype=pl.String),
        "category": pl.Series([x.category for x in labs], dtype=pl.String),
    })
    rows: list[tuple[int, str, str, str, str, str | None, str, float | None, float | None]] = []
    rows += [(c.itemid, c.label, c.abbreviation, "chartevents", c.category, c.unitname, c.param_type,
              c.lownormalvalue, c.highnormalvalue) for c in cat.CHART_ITEMS]
    rows += [(p.itemid, p.label, p.label, "procedureevents", p.category, p.unitname, "Process", None, None)
             for p in cat.PROCEDURE_ITEMS]
    rows += [(i.itemid, i.label, i.abbreviation, "inputevents", i.category, i.amountuom, "Solution", None, None)
             for i in cat.INPUT_ITEMS]
    rows.sort(key=lambda x: x[0])
    cols = list(zip(*rows, strict=True))
    d_items = pl.DataFrame({
        "itemid": _int(np.array(cols[0])),
        "label": pl.Series(cols[1], dtype=pl.String),
        "abbreviation": pl.Series(cols[2], dtype=pl.String),
        "linksto": pl.Series(cols[3], dtype=pl.String),
        "category": pl.Series(cols[4], dtype=pl.String),
        "unitname": pl.Series(cols[5], dtype=pl.String),
        "param_type": pl.Series(cols[6], dtype=pl.String),
        "lownormalvalue": pl.Series(cols[7], dtype=pl.Float64),
        "highnormalvalue": pl.Series(cols[8], dtype=pl.Float64),
    })
    return {"d_labitems": d_lab, "d_items": d_items}


# ============================================================================================= chunks
def _providers(seed: int, n: int = 600) -> list[str]:
    """A fixed pool of MIMIC-style provider ids ('P' + 5 characters)."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(1 << 30,)))
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    chars = alphabet[rng.integers(0, len(alphabet), (n, 5))]
    return sorted({"P" + "".join(row) for row in chars})


def _chunk_frames(seed: int, k: int, n_adm: int, chunk_admissions: int, providers: list[str]) -> dict[str, pl.DataFrame]:
    """All event tables for chunk ``k`` (``n_adm`` admissions); row ids are local, the writer offsets them."""
    rngs = {name: np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(k, i)))
            for i, name in enumerate(STREAMS)}
    stride = ID_STRIDE_PER_ADMISSION * chunk_admissions
    sub, adm = _cohort(rngs["cohort"], n_adm)
    _timeline(rngs["cohort"], sub, adm)
    _subject_deaths(rngs["cohort"], sub, adm)
    ids = rngs["ids"]
    m = len(sub["anchor_age"])
    sub["subject_id"] = SUBJECT_BASE + k * stride + np.sort(ids.choice(stride, m, replace=False))
    adm["subject_id"] = sub["subject_id"][adm["sidx"]]
    adm["hadm_id"] = HADM_BASE + k * stride + ids.choice(stride, n_adm, replace=False)
    _icu_course(rngs["icu"], adm)
    st = _stays(adm)
    st["stay_id"] = STAY_BASE + k * stride + ids.choice(stride, len(st["a"]), replace=False)
    seg = _segments(adm)
    ch = _Channels(rngs["knots"], adm)
    labs, react = _labevents(rngs["labs"], ch, adm, seg, providers)
    hd = _hd_sessions(rngs["icu"], adm, st)
    frames = {
        "patients": _patients(sub),
        "admissions": _admissions(adm, sub, providers, rngs["cohort"]).sort(["subject_id", "admittime"]),
        "labevents": labs,
        "emar": _emar(rngs["emar"], adm, react, providers),
        "transfers": _transfers(adm, seg),
        "icustays": _icustays(adm, st).sort(["subject_id", "intime"]),
        "chartevents": _chartevents(rngs["vitals"], ch, adm, st, hd),
        "procedureevents": _procedureevents(rngs["procedures"], adm, st, hd),
        "inputevents": _inputevents(rngs["inputs"], adm, st, react),
    }
    frames.update(_billing(rngs["billing"], adm, sub))
    return frames


class _IdCounters:
    """Running row ids across chunks (MIMIC's labevent_id, specimen_id, transfer_id, orderid, pharmacy_id)."""

    def __init__(self) -> None:
        self.next = {"labevent_id": 1, "specimen_id": 10_000_000, "transfer_id": 30_000_000,
                     "orderid": 1_000_000, "pharmacy_id": 10_000_000}

    def _take(self, name: str, count: int) -> int:
        base = self.next[name]
        self.next[name] = base + count
        return base

    def apply(self, frames: dict[str, pl.DataFrame]) -> None:
        """Replace the chunk-local ids by global ones (in place in ``frames``)."""
        lab = frames["labevents"]
        n_spec = int(lab["specimen_local"].max() + 1) if lab.height else 0
        spec_base = self._take("specimen_id", n_spec)
        frames["labevents"] = lab.with_columns(
            labevent_id=pl.int_range(pl.len(), dtype=pl.Int64) + self._take("labevent_id", lab.height),
            specimen_id=pl.col("specimen_local") + spec_base,
        )
        tr = frames["transfers"]
        frames["transfers"] = tr.with_columns(transfer_id=pl.col("transfer_id") + self._take("transfer_id", tr.height))
        for name in ("procedureevents", "inputevents"):
            df = frames[name]
            n_orders = int(df["orderid"].max() + 1) if df.height and name == "inputevents" else df.height
            base = self._take("orderid", n_orders)
            if name == "procedureevents":
                ids = pl.int_range(pl.len(), dtype=pl.Int64) + base
                frames[name] = df.with_columns(orderid=ids, linkorderid=ids)
            else:
                frames[name] = df.with_columns(orderid=pl.col("orderid") + base, linkorderid=pl.col("linkorderid") + base)
        em = frames["emar"]
        n_orders = int(em["pharmacy_id"].max() + 1) if em.height else 0
        frames["emar"] = em.with_columns(pharmacy_id=pl.col("pharmacy_id") + self._take("pharmacy_id", n_orders))


def _csv_bytes(df: pl.DataFrame, schema: TableSchema) -> bytes:
    """The rows of ``df`` as MIMIC-formatted CSV (schema column order, no header)."""
    missing = [c for c in schema.columns if c not in df.columns]
    if missing:
        raise ValueError(f"synthetic {schema.relpath}: generator produced no column(s) {missing}")
    exprs = [(_float_text(pl.col(c)) if t == "float" else pl.col(c)).alias(c) for c, t in schema.columns.items()]
    buf = io.BytesIO()
    df.select(exprs).write_csv(buf, include_header=False, datetime_format=DATETIME_FORMAT, date_format=DATE_FORMAT,
                               null_value="")
    return buf.getvalue()


class _GzipCsv:
    """One gzip member per table (mtime 0, no file name) that CSV chunks are appended to."""

    def __init__(self, path: Path, schema: TableSchema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._raw: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=GZIP_LEVEL, mtime=0)
        self._gz.write((",".join(schema.columns) + "\n").encode())
        self.rows = 0

    def write(self, data: bytes, rows: int) -> None:
        self._gz.write(data)
        self.rows += rows

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


def generate_synthetic_mimic(
    out: Path,
    admissions: int,
    seed: int = 42,
    chunk_admissions: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write a synthetic MIMIC-IV 3.1 root (``out/hosp/*.csv.gz``, ``out/icu/*.csv.gz``) and return a summary.

    Output is byte-identical for the same ``(admissions, seed, chunk_admissions)``; ``out`` is replaced
    atomically. The summary holds rows per table, ``n_subjects``, ``n_admissions`` and ``seconds``.
    """
    if admissions < 1:
        raise ValueError(f"synthetic MIMIC: admissions must be >= 1, got {admissions}")
    if chunk_admissions < 1:
        raise ValueError(f"synthetic MIMIC: chunk_admissions must be >= 1, got {chunk_admissions}")
    t0 = time.perf_counter()
    providers = _providers(seed)
    counters = _IdCounters()
    n_chunks = -(-admissions // chunk_admissions)
    n_subjects = 0
    with atomic_dir(Path(out)) as tmp:
        writers = {name: _GzipCsv(tmp / schema.relpath, schema) for name, schema in TABLES.items()}
        try:
            # compression runs on a single worker thread (zlib releases the GIL) while the next chunk is
            # generated; one worker keeps the append order, and waiting on the previous chunk bounds memory.
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending: Future[None] | None = None
                done = 0
                for k in range(n_chunks):
                    n_k = min(chunk_admissions, admissions - done)
                    frames = _chunk_frames(seed, k, n_k, chunk_admissions, providers)
                    counters.apply(frames)
                    n_subjects += frames["patients"].height
                    payload = []
                    for name in list(frames):  # format table by table, freeing each frame as we go
                        df = frames.pop(name)
                        payload.append((name, _csv_bytes(df, TABLES[name]), df.height))
                        del df
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(_write_payload, writers, payload)
                    done += n_k
                    if progress is not None:
                        progress(done, admissions)
                static = _dictionaries()
                payload = [(name, _csv_bytes(df, TABLES[name]), df.height) for name, df in static.items()]
                if pending is not None:
                    pending.result()
                _write_payload(writers, payload)
        finally:
            for w in writers.values():
                w.close()
        rows = {name: w.rows for name, w in writers.items()}
    return {
        "rows": rows,
        "n_subjects": n_subjects,
        "n_admissions": admissions,
        "n_events": sum(rows[t] for t in ("labevents", "chartevents", "emar", "inputevents", "procedureevents",
                                          "transfers")),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _write_payload(writers: dict[str, _GzipCsv], payload: list[tuple[str, bytes, int]]) -> None:
    """Append one chunk's CSV bytes to every table's gzip stream, in table order."""
    for name, data, rows in payload:
        writers[name].write(data, rows)
