"""Exp3 arms on a hand-built MEDS dataset: row-fixed arms, native unmapped codes, null controls, meta counts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from irbench_assets.meds.exp3_arms import (
    ARMS,
    DOMAINS,
    arm_dir,
    build_exp3_arms,
    freqmatched_mapping,
    load_mappings,
    map_code,
    normalize_drug_name,
    randomized_mapping,
    verify_row_fixed,
)
from irbench_assets.meds.extract import MEDS_SCHEMA
from irbench_assets.settings import REPO_ROOT

MAPPINGS = REPO_ROOT / "resources" / "mappings"
T0 = datetime(2150, 3, 1, 6, 0, 0)

# code -> events per admission; values drawn per code (None: no numeric value)
PANEL: dict[str, tuple[int, tuple[float, float] | None]] = {
    "LAB//50971//mEq/L": (5, (3.0, 6.0)),  # potassium
    "LAB//50822//mEq/L": (3, (2.5, 7.0)),  # potassium, whole blood
    "LAB//50912//mg/dL": (2, (0.5, 3.0)),  # creatinine
    "LAB//50983//mEq/L": (4, (125.0, 150.0)),  # sodium
    "LAB//50868//mEq/L": (2, (5.0, 20.0)),  # anion gap: NO MAPPING
    "LAB//51301//K/uL": (1, (2.0, 20.0)),  # wbc
    "VITAL//220045//bpm": (6, (50.0, 140.0)),
    "VITAL//220179//mmHg": (3, (80.0, 180.0)),
    "VITAL//220050//mmHg": (2, (70.0, 190.0)),
    "VITAL//223835//UNK": (1, (21.0, 100.0)),  # FiO2: NO MAPPING
    "MEDICATION//Heparin//Administered": (3, None),
    "MEDICATION//Oxycodone (Immediate Release)//Administered": (2, None),
    "MEDICATION//Sodium Chloride 0.9%  Flush//Administered": (1, None),  # NO MAPPING
    "INFUSION_START//221906": (2, (0.05, 0.3)),
    "INFUSION_END//221906": (2, None),
    "INFUSION_START//225158": (1, (10.0, 100.0)),
    "INFUSION_START//225943": (1, (1.0, 5.0)),  # NO MAPPING
    "PROCEDURE//START//224385": (1, (1.0, 1.0)),
    "TRANSFER_TO//admit//Medical Intensive Care Unit (MICU)": (1, None),
}
Row = tuple[int, datetime | None, str, float | None, int | None]


def _admission(rng: np.random.Generator, subject: int, hadm: int, los_h: float, icu: bool,
               panel: dict[str, tuple[int, tuple[float, float] | None]]) -> list[Row]:
    rows: list[Row] = [
        (subject, T0, "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", None, hadm),
        (subject, T0 + timedelta(hours=los_h), "HOSPITAL_DISCHARGE//HOME", None, hadm),
    ]
    if icu:
        rows += [(subject, T0 + timedelta(hours=1), "ICU_ADMISSION//MICU", None, hadm),
                 (subject, T0 + timedelta(hours=los_h - 1), "ICU_DISCHARGE//MICU", None, hadm)]
    for code, (n, rng_v) in panel.items():
        for _ in range(n):
            t = T0 + timedelta(minutes=int(rng.integers(1, int(los_h * 60))))
            v = None if rng_v is None else float(np.float32(rng.uniform(*rng_v)))
            rows.append((subject, t, code, v, hadm))
    return rows


def _subject(subject: int) -> list[Row]:
    return [(subject, None, "GENDER//F", None, None), (subject, datetime(2080, 1, 1), "MEDS_BIRTH", None, None)]


# subject -> (split, shard, [(hadm, los_h, icu, extra codes)])
LAYOUT: dict[int, tuple[str, str, list[tuple[int, float, bool, dict]]]] = {
    1: ("train", "0000", [(10, 72.0, True, {}), (11, 10.0, False, {})]),  # 11: not H_ICU
    2: ("train", "0000", [(20, 30.0, True, {"LAB//50824//mEq/L": (3, (120.0, 160.0))})]),
    3: ("train", "0001", [(30, 20.0, True, {})]),  # LOS < 24 h: not H_ICU
    4: ("train", "0001", [(40, 48.0, True, {})]),
    5: ("tuning", "0000", [(50, 50.0, True, {"LAB//50931//mg/dL": (2, (60.0, 200.0))})]),  # glucose: tuning only
    6: ("held_out", "0000", [(60, 80.0, True, {})]),
    7: ("held_out", "0000", [(70, 80.0, False, {})]),  # no ICU: subject dropped entirely
}
H_ICU = {10, 20, 40, 50, 60}


def build_meds(root: Path) -> Path:
    """Write the LAYOUT dataset in the docs/meds.md layout (with metadata/)."""
    rng = np.random.default_rng(3)
    shards: dict[tuple[str, str], list[Row]] = {}
    for subject, (split, shard, adms) in LAYOUT.items():
        rows = _subject(subject)
        for hadm, los, icu, extra in adms:
            rows += _admission(rng, subject, hadm, los, icu, {**PANEL, **extra})
        shards.setdefault((split, shard), []).extend(rows)
    for (split, shard), rows in shards.items():
        df = pl.DataFrame(
            rows,
            schema={"subject_id": pl.Int64, "time": pl.Datetime("us"), "code": pl.String,
                    "numeric_value": pl.Float32, "hadm_id": pl.Int64},
            orient="row",
        ).with_columns(
            pl.when(pl.col("numeric_value").is_null() & pl.col("code").str.starts_with("MEDICATION"))
            .then(pl.lit("given")).alias("text_value"),
            (pl.col("time") - pl.duration(minutes=5)).alias("charttime"),
            pl.when(pl.col("code").str.starts_with("LAB")).then(pl.lit(1.0, pl.Float32)).alias("ref_range_lower"),
            pl.when(pl.col("code").str.starts_with("LAB")).then(pl.lit(9.0, pl.Float32)).alias("ref_range_upper"),
            pl.col("code").str.split("//").list.first().alias("table"),
        ).sort("subject_id", "time", "code", nulls_last=False)
        out = root / "data" / split / f"{shard}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(df.select(MEDS_SCHEMA.names).to_arrow().cast(MEDS_SCHEMA), out)
    meta = root / "metadata"
    meta.mkdir(parents=True)
    pl.DataFrame({"subject_id": list(LAYOUT), "split": [v[0] for v in LAYOUT.values()]}).write_parquet(
        meta / "subject_splits.parquet")
    (meta / "dataset.json").write_text('{"dataset_name": "test"}\n')
    return root


@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    meds = build_meds(tmp_path_factory.mktemp("meds"))
    out = tmp_path_factory.mktemp("arms")
    return meds, out, build_exp3_arms(meds, out, MAPPINGS, seed=42)


def _read(root: Path, split: str | None = None) -> pl.DataFrame:
    pattern = f"{split}/*.parquet" if split else "*/*.parquet"
    return pl.concat([pl.read_parquet(f) for f in sorted((root / "data").glob(pattern))])


def _mappings(out: Path, arm: str) -> dict[str, str]:
    res: dict[str, str] = {}
    for d in DOMAINS:
        res.update(json.loads((arm_dir(out, arm) / "mappings" / f"{d}_mapping.json").read_text()))
    return res


# ------------------------------------------------------------------------------- mapping tables
def test_mapping_tables_cover_the_clif_categories() -> None:
    m = load_mappings(MAPPINGS)
    assert {m.labs[i] for i in (50971, 50822)} == {"potassium"}
    assert {m.labs[i] for i in (50983, 50824, 52623)} == {"sodium"}
    assert (m.labs[50912], m.labs[51003], m.labs[51002], m.labs[50963]) == ("creatinine", "troponin_t",
                                                                           "troponin_i", "bnp")
    assert {m.vitals[i] for i in (220050, 220179)} == {"sbp"} and {m.vitals[i] for i in (220052, 220181)} == {"map"}
    for itemid, cat in {221906: "norepinephrine", 221289: "epinephrine", 222315: "vasopressin",
                        221749: "phenylephrine", 221662: "dopamine", 221653: "dobutamine"}.items():
        assert m.infusions[itemid] == cat
    assert 50868 not in m.labs and 223835 not in m.vitals and 225943 not in m.infusions  # NO MAPPING rows
    assert m.medications["oxycodone"] == "oxycodone" and "sodium chloride 0.9% flush" not in m.medications
    assert len(m.medications) >= 30 and set(m.sources) == {"labs.csv", "vitals.csv", "medications.csv",
                                                           "infusions.csv"}


def test_normalize_drug_name_and_map_code() -> None:
    assert normalize_drug_name("  HYDROmorphone (Dilaudid)  ") == "hydromorphone"
    assert normalize_drug_name("Sodium Chloride 0.9%  Flush") == "sodium chloride 0.9% flush"
    m = load_mappings(MAPPINGS)
    assert map_code("LAB//50971//mEq/L", m) == "LAB//potassium//mEq/L"
    assert map_code("LAB//50822//UNK", m) == "LAB//potassium//UNK"
    assert map_code("VITAL//220179//mmHg", m) == "VITAL//sbp//mmHg"
    assert map_code("MEDICATION//HYDROmorphone (Dilaudid)//Administered", m) == "MEDICATION//hydromorphone//Administered"
    assert map_code("INFUSION_START//221906", m) == "INFUSION_START//norepinephrine"
    assert map_code("INFUSION_END//221906", m) == "INFUSION_END//norepinephrine"
    for native in ("LAB//50868//mEq/L", "LAB//UNK//mg/dL", "HOSPITAL_ADMISSION//EW EMER.//UNK",
                   "PROCEDURE//START//224385", "MEDICATION//Bag//Administered", "INFUSION_START//225943"):
        assert map_code(native, m) is None


@pytest.mark.parametrize(("row", "message"), [
    ("50971,Potassium,potassium,MAYBE", r"row 3, column decision"),
    ("abc,Potassium,potassium,MAPPED", r"row 3, column itemid: 'abc'"),
    ("50971,Potassium,sodium,MAPPED", r"row 3, column itemid: '50971' maps to 'sodium'"),
    ("50972,Potassium,,MAPPED", r"row 3, column lab_category"),
])
def test_bad_mapping_rows_are_rejected_with_file_and_row(tmp_path: Path, row: str, message: str) -> None:
    for f in ("vitals.csv", "medications.csv", "infusions.csv"):
        (tmp_path / f).write_text((MAPPINGS / f).read_text())
    (tmp_path / "labs.csv").write_text(f"itemid,label,lab_category,decision\n50971,Potassium,potassium,MAPPED\n{row}\n")
    with pytest.raises(ValueError, match=message) as err:
        load_mappings(tmp_path)
    assert "labs.csv" in str(err.value)


# ---------------------------------------------------------------------------------- null controls
def test_randomized_mapping_is_cyclic_over_a_seeded_shuffle() -> None:
    src = {f"LAB//{i}//u": 1 for i in range(10)}
    tgt = {"LAB//a//u": 5, "LAB//b//u": 3, "LAB//c//u": 2}
    a = randomized_mapping(src, tgt, np.random.default_rng(42))
    assert a == randomized_mapping(src, tgt, np.random.default_rng(42))
    shuffled = [a[s] for s in sorted(src)][:3]
    assert sorted(shuffled) == sorted(tgt)  # the first K sources take the K shuffled targets in order
    assert all(a[s] == shuffled[i % 3] for i, s in enumerate(sorted(src)))
    seeds = {tuple(randomized_mapping(src, tgt, np.random.default_rng(s)).values()) for s in range(20)}
    assert len(seeds) > 1


def test_freqmatched_greedy_matches_the_frequency_profile() -> None:
    src = {"x": 60, "y": 40, "z": 30, "w": 20, "v": 5}
    tgt = {"A": 100, "B": 50, "C": 5}
    # x->A (A 40 left), y->B (B 10), z->A (A 10), w->A (tie A/B at 10: code order; A -10), v->B (B 5)
    assert freqmatched_mapping(src, tgt) == {"v": "B", "w": "A", "x": "A", "y": "B", "z": "A"}
    assert freqmatched_mapping({"p": 1, "q": 1}, {"T": 1, "S": 1}) == {"p": "S", "q": "T"}  # ties: code order


# ----------------------------------------------------------------------------------- built arms
def test_arms_are_row_identical_except_code(arms: tuple[Path, Path, dict]) -> None:
    meds, out, _ = arms
    native = _read(arm_dir(out, "meds"))
    for arm in ARMS[1:]:
        for split in ("train", "tuning", "held_out"):
            for f in sorted((arm_dir(out, "meds") / "data" / split).glob("*.parquet")):
                a = pl.read_parquet(f)
                b = pl.read_parquet(arm_dir(out, arm) / "data" / split / f.name)
                assert_frame_equal(a.drop("code"), b.drop("code"))
                assert pq.read_schema(f) == pq.read_schema(arm_dir(out, arm) / "data" / split / f.name)
    assert verify_row_fixed(out) == []
    # the native arm is exactly the input restricted to H_ICU (+ its subjects' subject-level rows), in order
    src = _read(meds)
    subjects = src.filter(pl.col("hadm_id").is_in(list(H_ICU)))["subject_id"].unique()
    expected = src.filter(pl.col("hadm_id").is_in(list(H_ICU))
                          | (pl.col("hadm_id").is_null() & pl.col("subject_id").is_in(subjects.implode())))
    assert_frame_equal(native, expected)
    assert set(native["hadm_id"].drop_nulls().unique().to_list()) == H_ICU
    assert 7 not in native["subject_id"].to_list()
    assert pq.read_schema(next((arm_dir(out, "meds") / "data" / "train").glob("*.parquet"))) == MEDS_SCHEMA
    assert (arm_dir(out, "mapped") / "metadata" / "subject_splits.parquet").is_file()


def test_verify_row_fixed_catches_a_changed_value(arms: tuple[Path, Path, dict], tmp_path: Path) -> None:
    import shutil

    _, out, _ = arms
    copy = tmp_path / "arms"
    shutil.copytree(out, copy)
    f = arm_dir(copy, "freqmatched") / "data" / "tuning" / "0000.parquet"
    df = pl.read_parquet(f)
    df.with_columns(pl.col("numeric_value") + 1).write_parquet(f)
    assert any("other than code" in p for p in verify_row_fixed(copy))


def test_mapped_arm_rewrites_covered_codes_and_keeps_the_rest_native(arms: tuple[Path, Path, dict]) -> None:
    _, out, _ = arms
    native, mapped = _read(arm_dir(out, "meds")), _read(arm_dir(out, "mapped"))
    pairs = pl.DataFrame({"native": native["code"], "mapped": mapped["code"]}).unique().sort("native")
    got = dict(pairs.iter_rows())
    assert got["LAB//50971//mEq/L"] == got["LAB//50822//mEq/L"] == "LAB//potassium//mEq/L"
    assert got["LAB//50824//mEq/L"] == "LAB//sodium//mEq/L"
    assert got["LAB//50931//mg/dL"] == "LAB//glucose//mg/dL"  # tuning-only code is mapped too
    assert got["MEDICATION//Oxycodone (Immediate Release)//Administered"] == "MEDICATION//oxycodone//Administered"
    assert got["INFUSION_END//221906"] == "INFUSION_END//norepinephrine"
    for keep in ("LAB//50868//mEq/L", "VITAL//223835//UNK", "INFUSION_START//225943", "PROCEDURE//START//224385",
                 "MEDICATION//Sodium Chloride 0.9%  Flush//Administered", "HOSPITAL_DISCHARGE//HOME", "GENDER//F",
                 "TRANSFER_TO//admit//Medical Intensive Care Unit (MICU)", "ICU_ADMISSION//MICU"):
        assert got[keep] == keep
    assert _mappings(out, "mapped") == {k: v for k, v in got.items() if k != v}


def test_meta_json_counts_match_the_data(arms: tuple[Path, Path, dict]) -> None:
    _, out, result = arms
    meta = json.loads((arm_dir(out, "mapped") / "mappings" / "meta.json").read_text())
    assert meta["seed"] == 42 and meta["domains_remapped"] == list(DOMAINS)
    assert meta["tokenizer_domains"] == ["LAB", "VITAL"] and result["tokenizer_domains"] == ["LAB", "VITAL"]
    assert set(meta["mapping_source"]["files"]) == {"labs.csv", "vitals.csv", "medications.csv", "infusions.csv"}
    for split in ("train", "tuning", "held_out"):
        native = _read(arm_dir(out, "meds"), split)
        mapped = _read(arm_dir(out, "mapped"), split)
        dom = native["code"].str.split("//").list.first()
        for d in DOMAINS:
            in_d = dom == d
            n_total = int(in_d.sum())
            n_mapped = int((in_d & (native["code"] != mapped["code"])).sum())
            c = meta["coverage"][split][d]
            assert (c["n_total"], c["n_mapped"], c["n_unmapped"]) == (n_total, n_mapped, n_total - n_mapped)
            assert c["pct_remapped"] == pytest.approx(100 * n_mapped / n_total, abs=1e-4)
        assert meta["cohort"]["n_rows"][split] == native.height
    assert meta["cohort"]["n_admissions"] == {"train": 3, "tuning": 1, "held_out": 1}
    assert meta["coverage"]["train"]["LAB"]["n_mapped"] > 0 and meta["coverage"]["train"]["LAB"]["n_unmapped"] > 0


def test_null_controls_use_the_mapped_train_vocabulary(arms: tuple[Path, Path, dict]) -> None:
    _, out, _ = arms
    train = {arm: _read(arm_dir(out, arm), "train") for arm in ("meds", "mapped", "randomized", "freqmatched")}
    dom = train["meds"]["code"].str.split("//").list.first()
    for d in DOMAINS:
        m = dom == d
        mapped_vocab = set(train["mapped"]["code"].filter(m).to_list())
        for arm in ("randomized", "freqmatched"):
            codes = train[arm]["code"].filter(m)
            assert set(codes.to_list()) <= mapped_vocab, (arm, d)
        rnd = set(train["randomized"]["code"].filter(m).to_list())
        assert rnd == mapped_vocab  # cyclic assignment uses every target (more sources than targets)
    # freqmatched reproduces the mapped arm's LAB frequency profile better than the randomized arm
    lab = dom == "LAB"

    def profile(arm: str) -> np.ndarray:
        c = train[arm]["code"].filter(lab).value_counts()["count"].sort(descending=True).to_numpy()
        return np.pad(c, (0, 20 - len(c)))

    assert np.abs(profile("freqmatched") - profile("mapped")).sum() <= np.abs(profile("randomized") - profile("mapped")).sum()
    # every row carries mapping.get(native, native), in every split
    for arm in ("mapped", "randomized", "freqmatched"):
        mp = _mappings(out, arm)
        native, coded = _read(arm_dir(out, "meds")), _read(arm_dir(out, arm))
        assert coded["code"].to_list() == [mp.get(c, c) for c in native["code"].to_list()]
    # codes never seen in train keep their native code in the null controls
    tuning = _read(arm_dir(out, "randomized"), "tuning")
    assert "LAB//50931//mg/dL" in tuning["code"].to_list()


def test_randomized_arm_is_deterministic_and_seed_sensitive(arms: tuple[Path, Path, dict], tmp_path: Path) -> None:
    meds, out, _ = arms
    again = tmp_path / "again"
    build_exp3_arms(meds, again, MAPPINGS, seed=42)
    for arm in ARMS:
        for f in sorted(arm_dir(out, arm).rglob("*")):
            if f.is_file():
                assert f.read_bytes() == (arm_dir(again, arm) / f.relative_to(arm_dir(out, arm))).read_bytes(), f
    other = tmp_path / "other"
    build_exp3_arms(meds, other, MAPPINGS, seed=7)
    assert _mappings(other, "randomized") != _mappings(out, "randomized")
    assert _mappings(other, "freqmatched") == _mappings(out, "freqmatched")  # greedy: no randomness
    assert _mappings(other, "mapped") == _mappings(out, "mapped")


def test_numeric_stats_pool_train_values_of_merged_codes(arms: tuple[Path, Path, dict]) -> None:
    _, out, _ = arms
    stats = json.loads((arm_dir(out, "mapped") / "mappings" / "LAB_numeric_stats.json").read_text())
    train = _read(arm_dir(out, "meds"), "train")
    vals = train.filter(pl.col("code").is_in(["LAB//50971//mEq/L", "LAB//50822//mEq/L"]))["numeric_value"]
    k = stats["LAB//potassium//mEq/L"]
    x = vals.cast(pl.Float64).to_numpy()
    assert k["n_values"] == len(x)
    assert k["boundaries"] == pytest.approx(np.quantile(x, np.arange(1, 10) / 10))
    assert k["median"] == pytest.approx(np.median(x))
    assert k["iqr"] == pytest.approx(np.subtract(*np.quantile(x, [0.75, 0.25])))
    assert k["src_codes_pooled"] == ["LAB//50822//mEq/L", "LAB//50971//mEq/L"]
    rnd = json.loads((arm_dir(out, "randomized") / "mappings" / "VITAL_numeric_stats.json").read_text())
    rmap = _mappings(out, "randomized")
    for target, s in rnd.items():
        assert sorted(c for c, t in rmap.items() if t == target) == s["src_codes_pooled"]
    assert not (arm_dir(out, "meds") / "mappings").exists()


def test_arms_on_the_extracted_synthetic_dataset(small_meds: tuple[Path, dict], tmp_path: Path) -> None:
    from irbench_assets.outcomes import icu_cohort

    root, _ = small_meds
    out = tmp_path / "arms"
    meta = build_exp3_arms(root, out, MAPPINGS, seed=42)
    assert verify_row_fixed(out) == []
    native = _read(arm_dir(out, "meds"))
    assert set(native["hadm_id"].drop_nulls().unique().to_list()) == set(icu_cohort(root)["hadm_id"].to_list())
    # the synthetic MIMIC uses real itemids: the mapped arm rewrites a part of the LAB and VITAL events
    for domain in ("LAB", "VITAL"):
        cov = meta["coverage"]["mapped"]["train"][domain]
        assert 0 < cov["n_mapped"] <= cov["n_total"]
