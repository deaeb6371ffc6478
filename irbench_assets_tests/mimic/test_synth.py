"""Synthetic MIMIC-IV 3.1 generator: schema, determinism, temporal consistency, volume and outcome signal."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from irbench_assets.mimic import catalog as cat
from irbench_assets.mimic import synth
from irbench_assets.mimic.schema import BILLING_TABLES, DATE_FORMAT, DATETIME_FORMAT, TABLES
from irbench_assets.mimic.synth import generate_synthetic_mimic

N_ADM = 400
CHUNK = 150  # three chunks, so the cross-chunk id and stream logic is exercised


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "mimic"
    summary = generate_synthetic_mimic(out, N_ADM, seed=7, chunk_admissions=CHUNK)
    (out.parent / "summary.json").write_text(json.dumps(summary))
    return out


def _read(root: Path, name: str) -> pl.DataFrame:
    """Read a table with the dtypes of the schema; strict casts fail on any malformed field."""
    schema = TABLES[name]
    raw = pl.read_csv(root / schema.relpath, infer_schema=False)
    exprs = []
    for col, dtype in schema.columns.items():
        c = pl.col(col)
        if dtype == "int":
            exprs.append(c.cast(pl.Int64, strict=True))
        elif dtype == "float":
            exprs.append(c.cast(pl.Float64, strict=True))
        elif dtype == "datetime":
            exprs.append(c.str.strptime(pl.Datetime, DATETIME_FORMAT, strict=True))
        elif dtype == "date":
            exprs.append(c.str.strptime(pl.Date, DATE_FORMAT, strict=True))
        else:
            exprs.append(c)
    return raw.select(exprs)


@pytest.fixture(scope="module")
def tables(root: Path) -> dict[str, pl.DataFrame]:
    return {name: _read(root, name) for name in TABLES}


def test_every_table_has_the_schema_columns_in_order(root: Path) -> None:
    for name, schema in TABLES.items():
        with gzip.open(root / schema.relpath, "rt") as f:
            header = f.readline().rstrip("\n").split(",")
        assert header == list(schema.columns), name


def test_dtypes_parse_and_ids_are_mimic_like(tables: dict[str, pl.DataFrame]) -> None:
    adm, pat, icu = tables["admissions"], tables["patients"], tables["icustays"]
    assert adm.height == N_ADM
    assert adm["hadm_id"].n_unique() == N_ADM
    assert pat["subject_id"].n_unique() == pat.height
    assert set(adm["subject_id"]) == set(pat["subject_id"])
    assert 1.2 < N_ADM / pat.height < 1.9  # ~1.5 admissions per subject
    assert pat["subject_id"].min() >= 10_000_000 and pat["subject_id"].max() < 20_000_000
    assert adm["hadm_id"].min() >= 20_000_000 and adm["hadm_id"].max() < 30_000_000
    assert icu["stay_id"].min() >= 30_000_000 and icu["stay_id"].n_unique() == icu.height
    lab = tables["labevents"]
    assert lab["labevent_id"].n_unique() == lab.height
    assert lab["itemid"].is_in(list(cat.LAB_BY_ID)).all()
    assert tables["chartevents"]["itemid"].is_in(list(cat.CHART_BY_ID)).all()
    assert set(tables["d_labitems"]["itemid"]) == set(cat.LAB_BY_ID)
    d_items = tables["d_items"]
    assert d_items.filter(pl.col("itemid") == 220045)["lownormalvalue"].item() == 60
    for name in ("subject_id", "hadm_id", "admittime", "dischtime", "admission_type", "race"):
        assert adm[name].null_count() == 0, name


def test_row_counts_in_summary_match_files(root: Path, tables: dict[str, pl.DataFrame]) -> None:
    summary = json.loads((root.parent / "summary.json").read_text())
    assert summary["rows"] == {name: df.height for name, df in tables.items()}
    assert summary["n_subjects"] == tables["patients"].height


def test_same_seed_is_byte_identical_and_other_seed_differs(root: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_synthetic_mimic(again, N_ADM, seed=7, chunk_admissions=CHUNK)
    for schema in TABLES.values():
        data = (root / schema.relpath).read_bytes()
        assert data == (again / schema.relpath).read_bytes(), schema.relpath
        assert data[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    other = tmp_path / "other"
    generate_synthetic_mimic(other, N_ADM, seed=8, chunk_admissions=CHUNK)
    rel = TABLES["labevents"].relpath
    assert (root / rel).read_bytes() != (other / rel).read_bytes()


def test_output_directory_is_replaced_atomically(tmp_path: Path) -> None:
    out = tmp_path / "mimic"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    calls: list[tuple[int, int]] = []
    generate_synthetic_mimic(out, 5, seed=1, chunk_admissions=2, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mimic"]  # no temp leftovers
    assert _read(out, "admissions").height == 5
    with pytest.raises(ValueError, match="admissions"):
        generate_synthetic_mimic(out, 0)


def test_storetime_never_precedes_charttime(tables: dict[str, pl.DataFrame]) -> None:
    for name, t0 in (("labevents", "charttime"), ("chartevents", "charttime"), ("emar", "charttime"),
                     ("procedureevents", "starttime"), ("inputevents", "starttime")):
        df = tables[name]
        assert df.filter(pl.col("storetime") < pl.col(t0)).height == 0, name
    for name in ("procedureevents", "inputevents"):
        df = tables[name]
        assert df.filter(pl.col("endtime") < pl.col("starttime")).height == 0, name
    lab = tables["labevents"]
    lag = (lab["storetime"] - lab["charttime"]).dt.total_minutes()
    assert 30 <= lag.median() <= 120
    em = tables["emar"]
    assert (em["storetime"] - em["charttime"]).dt.total_seconds().median() < 300


def test_events_lie_inside_admissions_and_icu_stays(tables: dict[str, pl.DataFrame]) -> None:
    adm = tables["admissions"].select("hadm_id", "admittime", "dischtime")
    icu = tables["icustays"].join(adm, on="hadm_id")
    assert icu.filter((pl.col("intime") < pl.col("admittime")) | (pl.col("outtime") > pl.col("dischtime"))
                      | (pl.col("outtime") <= pl.col("intime"))).height == 0
    # an ICU careunit transfer row opens every ICU stay
    tr = tables["transfers"]
    icu_tr = tr.filter(pl.col("careunit").is_in(list(cat.ICU_CAREUNITS)))
    assert icu.join(icu_tr, left_on=["hadm_id", "intime"], right_on=["hadm_id", "intime"], how="anti").height == 0
    assert tr.filter(pl.col("eventtype") == "discharge").height == adm.height
    stays = tables["icustays"].select("stay_id", "intime", "outtime")
    for name, t in (("chartevents", "charttime"), ("procedureevents", "starttime"), ("inputevents", "starttime")):
        df = tables[name].join(stays, on="stay_id")
        assert df.height == tables[name].height, name
        assert df.filter((pl.col(t) < pl.col("intime")) | (pl.col(t) > pl.col("outtime"))).height == 0, name
    lab = tables["labevents"].filter(pl.col("hadm_id").is_not_null()).join(adm, on="hadm_id")
    assert lab.filter((pl.col("charttime") < pl.col("admittime")) | (pl.col("charttime") > pl.col("dischtime"))).height == 0
    # deaths: DIED, deathtime = dischtime, dod on that date
    died = tables["admissions"].filter(pl.col("hospital_expire_flag") == 1)
    assert died.height > 0
    assert (died["discharge_location"] == "DIED").all() and (died["deathtime"] == died["dischtime"]).all()
    dod = died.join(tables["patients"], on="subject_id")
    assert (dod["dod"] == dod["dischtime"].dt.date()).all()


def test_event_volume_cadence_and_data_quirks(tables: dict[str, pl.DataFrame]) -> None:
    n = N_ADM
    lab, ce, em = tables["labevents"], tables["chartevents"], tables["emar"]
    assert 50 <= lab.height / n <= 250
    assert 20 <= em.height / n <= 150
    events = sum(tables[t].height for t in ("labevents", "chartevents", "emar", "inputevents", "procedureevents",
                                            "transfers"))
    assert events / n >= 200  # 100k admissions -> >= 20 M events
    icu_share = tables["icustays"]["hadm_id"].n_unique() / n
    assert 0.15 <= icu_share <= 0.45
    adm = tables["admissions"]
    los_d = (adm["dischtime"] - adm["admittime"]).dt.total_hours() / 24
    assert 0.08 <= (los_d > 7).mean() <= 0.35
    assert 0.01 <= adm["hospital_expire_flag"].mean() <= 0.12
    # hourly vitals in the ICU: about one heart rate per hour of ICU time
    hours = (tables["icustays"]["los"].sum()) * 24
    assert 0.8 <= ce.filter(pl.col("itemid") == 220045).height / hours <= 1.2
    # rounding as reported: K to 0.1, Na integer
    k = lab.filter(pl.col("itemid") == 50971)["valuenum"].drop_nulls()
    assert np.allclose(k * 10, np.round(k * 10))
    na = lab.filter(pl.col("itemid") == 50983)["valuenum"].drop_nulls()
    assert np.allclose(na, np.round(na))
    # quirks: outpatient labs, text-only results, implausible vitals, storage straddling 24 h
    assert lab["hadm_id"].null_count() > 0
    text_only = lab.filter(pl.col("valuenum").is_null())
    assert text_only.height > 0 and text_only["value"].is_in(["___", "HEMOLYZED"]).any()
    assert ce.filter(pl.col("valuenum").is_in([0.0, 999.0, 9999.0])).height > 0
    rel = lab.join(adm.select("hadm_id", "admittime"), on="hadm_id").with_columns(
        c=(pl.col("charttime") - pl.col("admittime")).dt.total_hours(),
        s=(pl.col("storetime") - pl.col("admittime")).dt.total_minutes() / 60,
    )
    assert rel.filter((pl.col("c") < 24) & (pl.col("s") >= 24)).height > 0
    assert set(em["event_txt"]) >= {"Administered", "Not Given", "Flushed"}


def test_outcome_itemids_occur(tables: dict[str, pl.DataFrame]) -> None:
    pe, ie = tables["procedureevents"], tables["inputevents"]
    assert pe["itemid"].is_in(list(cat.IMV_ITEMIDS)).sum() > 0
    assert ie["itemid"].is_in(list(cat.VASOPRESSOR_ITEMIDS)).sum() > 0
    ce = tables["chartevents"]
    crrt_stays = set(pe.filter(pl.col("itemid") == cat.CRRT_PROCEDURE_ITEMID)["stay_id"])
    assert set(ce.filter(pl.col("itemid") == cat.CRRT_CHART_ITEMID)["stay_id"]) <= crrt_stays
    hd_stays = set(pe.filter(pl.col("itemid") == cat.HEMODIALYSIS_PROCEDURE_ITEMID)["stay_id"])
    assert set(ce.filter(pl.col("itemid") == cat.HEMODIALYSIS_CHART_ITEMID)["stay_id"]) == hd_stays


def test_first_day_values_predict_later_extremes(tables: dict[str, pl.DataFrame]) -> None:
    adm = tables["admissions"].select("hadm_id", "admittime")
    lab = tables["labevents"].filter(pl.col("itemid").is_in([50971, 50822]) & pl.col("valuenum").is_not_null())
    lab = lab.join(adm, on="hadm_id").with_columns(h=(pl.col("charttime") - pl.col("admittime")).dt.total_hours())
    first = lab.filter(pl.col("h") < 24).group_by("hadm_id").agg(pl.col("valuenum").max().alias("k24"))
    later = lab.filter(pl.col("h") >= 24).group_by("hadm_id").agg(pl.col("valuenum").max().alias("kpost"))
    both = first.join(later, on="hadm_id")
    assert both.height > 100
    rho = spearmanr(both["k24"], both["kpost"]).statistic
    assert rho > 0.4
    # the sick are sicker: ICU in the first day goes with a higher in-hospital death rate
    icu = tables["icustays"].join(adm, on="hadm_id").filter(
        (pl.col("intime") - pl.col("admittime")).dt.total_hours() < 24)["hadm_id"]
    a = tables["admissions"].with_columns(icu24=pl.col("hadm_id").is_in(icu.implode()))
    rates = a.group_by("icu24").agg(pl.col("hospital_expire_flag").mean()).sort("icu24")["hospital_expire_flag"]
    assert rates[1] > rates[0]


def test_latent_model_drives_death_with_a_potassium_u_shape() -> None:
    # the generative model itself, on a large cohort (numpy only, no I/O)
    rng = np.random.default_rng(0)
    _, adm = synth._draw_batch(rng, 30_000)
    death = adm["death"]
    s = adm["s"]
    top = s >= np.quantile(s, 0.9)
    assert death[top].mean() > 3 * death[s < np.median(s)].mean()
    k0 = adm["chronic"][:, synth.CH["k"]] + adm["acute"][:, synth.CH["k"]]
    mid = (k0 > 3.8) & (k0 < 4.6)
    assert death[k0 < 3.3].mean() > 1.5 * death[mid].mean()
    assert death[k0 > 5.2].mean() > 1.5 * death[mid].mean()
    # fine differences inside the top potassium decile still matter
    top_k = k0 >= np.quantile(k0, 0.9)
    split = np.median(k0[top_k])
    assert death[top_k & (k0 > split)].mean() > 1.3 * death[top_k & (k0 <= split)].mean()


def test_billing_tables_are_populated_and_linked(tables: dict[str, pl.DataFrame]) -> None:
    hadm = set(tables["admissions"]["hadm_id"])
    for name in BILLING_TABLES:
        df = tables[name]
        assert df.height > 0, name
        assert set(df["hadm_id"]) <= hadm, name
    dx = tables["diagnoses_icd"]
    assert dx.filter(pl.col("seq_num") == 1).height == len(hadm)  # one principal diagnosis per stay
    assert set(dx["icd_version"]) <= {9, 10}
    drg = tables["drgcodes"]
    assert set(drg["drg_type"]) == {"HCFA", "APR"}
    assert drg.filter(pl.col("drg_type") == "APR")["drg_severity"].is_between(1, 4).all()
