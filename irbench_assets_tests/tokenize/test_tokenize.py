"""Stage 0 end to end on hand-built MEDS datasets: prepare_events, then tokenize_handle(s).

The train split is built so that its bins are known exactly: LAB//50971 takes the values 0..10 (deciles
edges 1..9, reference range 2..8) and VITAL//220045 the values 60..70 (edges 61..69, no reference range).
One held-out admission (hadm 3000) then has a token sequence written out by hand below.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from irbench_assets.experiments import HandleConfig, get_handle, load_experiments
from irbench_assets.tokenize import load_tokenizer_config, prepare_events, tokenize_handle, tokenize_handles

MEDS_SCHEMA = {
    "subject_id": pl.Int64, "time": pl.Datetime("us"), "code": pl.String, "numeric_value": pl.Float32,
    "text_value": pl.String, "hadm_id": pl.Int64, "charttime": pl.Datetime("us"),
    "ref_range_lower": pl.Float32, "ref_range_upper": pl.Float32, "table": pl.String,
}
T0 = datetime(2180, 1, 1, 8, 0)
H0 = datetime(2180, 3, 1, 8, 0)  # admittime of the hand-checked held-out admission
LAB, VIT, MED = "LAB//50971//mEq/L", "VITAL//220045//bpm", "MEDICATION//Aspirin//Administered"
TXT = "LAB//51000//txt"  # a lab code that never has a numeric value
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def _row(subject: int, time: datetime | None, code: str, value: float | None = None, hadm: int | None = None,
         lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"subject_id": subject, "time": time, "code": code, "numeric_value": value, "text_value": None,
            "hadm_id": hadm, "charttime": time, "ref_range_lower": lo, "ref_range_upper": hi, "table": "test"}


def _admission(subject: int, hadm: int, admit: datetime, los: timedelta, *, race: str = "WHITE",
               gender: str = "F", birth: datetime = datetime(2120, 1, 1)) -> list[dict[str, Any]]:
    return [
        _row(subject, birth, "MEDS_BIRTH"),
        _row(subject, None, f"GENDER//{gender}"),
        _row(subject, admit, "HOSPITAL_ADMISSION//URGENT//EMERGENCY ROOM", hadm=hadm),
        _row(subject, admit, f"RACE//{race}", hadm=hadm),
        _row(subject, admit, "INSURANCE//Medicare", hadm=hadm),
        _row(subject, admit, "LANGUAGE//ENGLISH", hadm=hadm),
        _row(subject, admit, "MARITAL_STATUS//MARRIED", hadm=hadm),
        _row(subject, admit + los, "HOSPITAL_DISCHARGE//HOME", hadm=hadm),
    ]


def _train_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(11):
        s, h, a = 1 + i, 1000 + i, T0 + i * DAY
        rows += _admission(s, h, a, 3 * DAY, gender="FM"[i % 2], birth=datetime(2120 + i, 1, 1))
        rows += [
            _row(s, a + HOUR, LAB, float(i), h, 2.0, 8.0),
            _row(s, a + 2 * HOUR, VIT, 60.0 + i, h),
            _row(s, a + 3 * HOUR, MED, None, h),
            _row(s, a + 4 * HOUR, TXT, None, h),
            _row(s, a + 5 * HOUR, "PROCEDURE//START//225792", 1.0, h),
        ]
    rows += [
        _row(1, T0 - HOUR, LAB, 99.0, 1000, 2.0, 8.0),  # before admittime: not part of the stay
        _row(1, T0 + HOUR, LAB, 55.0, None, 2.0, 8.0),  # no hadm_id: dropped
        _row(1, T0 + HOUR, "INFUSION_START//221906", 1.0, 1000),  # not an event block of the config
    ]
    rows += [*_admission(20, 1098, T0, DAY), _row(20, T0 + HOUR, MED, None, 1098)]  # LOS exactly 24 h: dropped
    rows += [*_admission(22, 1097, T0, DAY + timedelta(seconds=1)), _row(22, T0 + HOUR, MED, None, 1097)]  # kept
    rows += _admission(21, 1099, T0, DAY - timedelta(seconds=1))  # shorter than a day: dropped
    rows += [_row(21, T0 + HOUR, LAB, 1000.0, 1099, 2.0, 8.0)]
    return rows


def _held_out_rows(shift: float = 0.0) -> list[dict[str, Any]]:
    s, h = 30, 3000
    return [
        *_admission(s, h, H0, 2 * DAY),
        _row(s, H0, LAB, 4.5 + shift, h, 2.0, 8.0),
        _row(s, H0, MED, None, h),
        _row(s, H0 + 4 * MIN + timedelta(seconds=59), VIT, 65.0 + shift, h),
        _row(s, H0 + 9 * MIN + timedelta(seconds=59), LAB, None, h, 2.0, 8.0),
        _row(s, H0 + DAY, VIT, 100.0 + shift, h),
        _row(s, H0 + DAY + timedelta(seconds=1), LAB, -3.0 + shift, h, 2.0, 8.0),
        _row(s, H0 + 30 * HOUR, TXT, None, h),
        _row(s, H0 + 31 * HOUR, "LAB//99999//x", 1.0, h),
        _row(s, H0 + HOUR, "PROCEDURE//START//225792", 1.0, h),
    ]


def _tuning_rows() -> list[dict[str, Any]]:
    return [*_admission(40, 4000, T0, 2 * DAY, race="ASIAN"), _row(40, T0 + HOUR, VIT, 61.0, 4000)]


def write_meds(root: Path, splits: dict[str, list[dict[str, Any]]], shards: int = 1) -> Path:
    """A MEDS dataset in the docs/meds.md layout; ``shards`` > 1 spreads subjects over several files."""
    for split, rows in splits.items():
        d = root / "data" / split
        d.mkdir(parents=True, exist_ok=True)
        df = pl.DataFrame(rows, schema=MEDS_SCHEMA).sort("subject_id", "time", "code", nulls_last=False)
        for k in range(shards):
            df.filter(pl.col("subject_id") % shards == k).write_parquet(d / f"{k}.parquet")
    return root


def build(tmp: Path, *, shift: float = 0.0, shards: int = 1, config: str = "mimic-meds",
          hadm_ids: pl.DataFrame | None = None) -> Path:
    """Write the MEDS dataset and prepare its events; returns the prepared-events folder."""
    meds = write_meds(tmp / "meds", {"train": _train_rows(), "tuning": _tuning_rows(),
                                     "held_out": _held_out_rows(shift)}, shards)
    out = tmp / "events"
    prepare_events(meds, load_tokenizer_config(config), out, hadm_ids=hadm_ids)
    return out


def timelines(out: Path, layout: str = "full", split: str = "held_out") -> pl.DataFrame:
    return pl.read_parquet(out / layout / split / "tokens_timelines.parquet")


def strings(out: Path, layout: str = "full", split: str = "held_out", row: int = 0) -> list[str]:
    vocab = pl.read_parquet(out / "train" / "vocab.parquet")["token"].to_list()
    return [vocab[i] for i in timelines(out, layout, split)["tokens"][row].to_list()]


def handle(name: str, experiment: str = "exp1", **changes: Any) -> HandleConfig:
    return dataclasses.replace(get_handle(experiment, name), **changes)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("tok"))


# ------------------------------------------------------------------------------------ prepare_events
def test_prepare_builds_admissions_and_filters_events(events: Path) -> None:
    rep = json.loads((events / "prepare.json").read_text())["splits"]["train"]
    # Exactly 24 h is dropped too: its discharge suffix would sit inside the first-24h window (leakage).
    assert rep["admissions_dropped"]["stay_not_longer_than_24h"] == 2
    assert rep["events_dropped"] == {"no_hadm_id": 1, "admission_not_kept": 2, "outside_stay": 1}
    adm = pl.read_parquet(events / "train" / "admissions.parquet")
    assert adm["hadm_id"].to_list() == [*range(1000, 1011), 1097]
    first = adm.row(0, named=True)
    assert first["admittime"] == T0 and first["dischtime"] == T0 + 3 * DAY
    assert (first["SEX"], first["RACE"], first["ADMN"], first["DSCG"], first["PROC"]) == (
        "F", "WHITE", "URGENT", "HOME", ["225792"])
    assert first["AGE"] == pytest.approx((T0 - datetime(2120, 1, 1)).total_seconds() / (365.25 * 86400))
    ev = pl.read_parquet(events / "train" / "events.parquet")
    assert ev.columns == ["hadm_id", "subject_id", "time", "code", "numeric_value", "ref_range_lower",
                          "ref_range_upper"]
    assert sorted(ev["code"].unique().to_list()) == sorted([LAB, VIT, MED, TXT])
    lab = ev.filter(pl.col("code") == LAB)["numeric_value"]
    assert lab.to_list() == [float(i) for i in range(11)]  # 99 (before admission), 55 (no hadm_id) are gone
    assert adm["n_events"].sum() == ev.height
    assert ev.equals(ev.sort(["hadm_id", "time", "code", "numeric_value"], nulls_last=True))


def test_prepare_ties_sort_by_code_then_value_and_shards_do_not_matter(tmp_path: Path, events: Path) -> None:
    ho = pl.read_parquet(events / "held_out" / "events.parquet")
    assert ho["code"].head(2).to_list() == [LAB, MED]  # same time: code order
    sharded = build(tmp_path, shards=3)
    for split in ("train", "tuning", "held_out"):
        for name in ("events", "admissions"):
            a = pl.read_parquet(events / split / f"{name}.parquet")
            b = pl.read_parquet(sharded / split / f"{name}.parquet")
            assert a.equals(b), (split, name)


def test_prepare_exp3_config_and_cohort(tmp_path: Path) -> None:
    out = build(tmp_path, config="mimic-meds-exp3-icu", hadm_ids=pl.DataFrame({"hadm_id": [1000, 1001, 3000]}))
    adm = pl.read_parquet(out / "train" / "admissions.parquet")
    assert adm["hadm_id"].to_list() == [1000, 1001]
    assert "PROC" not in adm.columns and "DSCG" in adm.columns
    codes = set(pl.read_parquet(out / "held_out" / "events.parquet")["code"].to_list())
    assert codes == {LAB, VIT, TXT, "LAB//99999//x"}
    assert pl.read_parquet(out / "tuning" / "admissions.parquet").height == 0
    md = tokenize_handle(out, get_handle("exp3", "meds"), tmp_path / "tok", max_len=64)
    assert md["n_admissions"] == {"train": 2, "tuning": 0, "held_out": 1}
    assert strings(tmp_path / "tok")[-2:] == ["DSCG//HOME", "TL_END"]


def test_prepare_rejects_duplicate_admissions(tmp_path: Path) -> None:
    rows = [*_train_rows(), _row(1, T0, "HOSPITAL_ADMISSION//URGENT//X", hadm=1000)]
    meds = write_meds(tmp_path / "meds", {"train": rows})
    with pytest.raises(ValueError, match=r"0\.parquet.*hadm_id 1000"):
        prepare_events(meds, load_tokenizer_config("mimic-meds"), tmp_path / "ev")


# ------------------------------------------------------------------------------------- token sequences
PREFIX = ["TL_START", "RACE//WHITE", "LANG//ENGLISH", "SEX//F"]
MIDDLE = ["INSR//Medicare", "MRRD//MARRIED", "ADMN//URGENT"]
SUFFIX = ["DSCG//HOME", "PROC//225792", "TL_END"]


def _age_bin(out: Path, events: Path) -> int:
    bins = pl.read_parquet(out / "train" / "bins.parquet").filter(pl.col("code") == "AGE")
    age = pl.read_parquet(events / "held_out" / "admissions.parquet")["AGE"][0]
    return int(np.digitize(age, bins["edges"][0].to_numpy()))


def test_unfused_time_token_sequence(tmp_path: Path, events: Path) -> None:
    out = tmp_path / "tok"
    tokenize_handle(events, handle("deciles_unfused"), out, max_len=64)
    edges = pl.read_parquet(out / "train" / "bins.parquet").filter(pl.col("code") == LAB)["edges"][0].to_list()
    assert edges == [float(k) for k in range(1, 10)]
    a = _age_bin(out, events)
    assert strings(out) == [
        *PREFIX, "AGE", f"Q{a}", *MIDDLE,
        LAB, "Q4", MED, VIT, "Q5",  # same time, then 4 min 59 s: no time token
        "T_5m-15m", LAB, "nan",  # exactly 5 min; missing value
        "T_12h-1d", VIT, "Q9",  # above the fitted range: last bin
        LAB, "Q0",  # 1 s later, below the range: bin 0
        "T_2h-6h", TXT,  # never numeric in train: no value token
        "T_1h-2h", "UNK",  # unseen code: UNK alone
        *SUFFIX,
    ]
    tl = timelines(out)
    vals = tl["numeric_values"][0].to_list()
    toks = strings(out)
    assert [v for t, v in zip(toks, vals, strict=True) if v is not None][1:] == [4.5, 65.0, 100.0, -3.0]
    assert vals[toks.index("AGE") + 1] == pytest.approx(
        pl.read_parquet(events / "held_out" / "admissions.parquet")["AGE"][0], rel=1e-6)
    times = tl["times"][0].to_list()
    assert times[: len(PREFIX) + 5] == [H0] * (len(PREFIX) + 5)
    assert times[toks.index("T_5m-15m")] == H0 + 9 * MIN + timedelta(seconds=59)  # stamped at the next event
    assert times[-3:] == [H0 + 2 * DAY] * 3
    assert tl["seq_len"][0] == len(toks) and not tl["truncated"][0]
    assert strings(out, split="tuning")[:2] == ["TL_START", "UNK"]  # RACE//ASIAN never seen in train


def test_fused_xval_and_no_time_token_sequences(tmp_path: Path, events: Path) -> None:
    hs = [handle("deciles_fused"), handle("xval_none", "exp2"), handle("discrete_rope", "exp2")]
    outs = [tmp_path / h.handle for h in hs]
    tokenize_handles(events, hs, outs, max_len=64)
    a = _age_bin(outs[0], events)
    assert strings(outs[0]) == [
        *PREFIX, f"AGE//Q{a}", *MIDDLE,
        f"{LAB}//Q4", MED, f"{VIT}//Q5", "T_5m-15m", LAB, "nan", "T_12h-1d", f"{VIT}//Q9", f"{LAB}//Q0",
        "T_2h-6h", TXT, "T_1h-2h", "UNK", *SUFFIX,
    ]
    fused_vals = [v for v in timelines(outs[0])["numeric_values"][0].to_list() if v is not None]
    assert fused_vals[1:] == [4.5, 65.0, 100.0, -3.0]
    assert strings(outs[1]) == [
        *PREFIX, "AGE", "[NUM]", *MIDDLE,
        LAB, "[NUM]", MED, VIT, "[NUM]", LAB, "nan", VIT, "[NUM]", LAB, "[NUM]", TXT, "UNK", *SUFFIX,
    ]
    assert strings(outs[2]) == [
        *PREFIX, "AGE", f"Q{a}", *MIDDLE,
        LAB, "Q4", MED, VIT, "Q5", LAB, "nan", VIT, "Q9", LAB, "Q0", TXT, "UNK", *SUFFIX,
    ]
    xv = pl.read_parquet(outs[1] / "train" / "vocab.parquet")["token"].to_list()
    assert "[NUM]" in xv and not any(t.startswith("Q") for t in xv)


def test_first_24h_cut_and_truncation(tmp_path: Path, events: Path) -> None:
    out = tmp_path / "tok"
    md = tokenize_handle(events, handle("deciles_unfused"), out, max_len=64)
    full, cut = strings(out), strings(out, "first_24h")
    assert cut == full[: full.index(VIT, full.index("T_12h-1d")) + 2]  # event at exactly 24 h kept, 24 h + 1 s not
    tl = timelines(out, "first_24h", "train")
    adm = pl.read_parquet(events / "train" / "admissions.parquet")
    for times, admit in zip(tl["times"].to_list(), adm["admittime"].to_list(), strict=True):
        assert max(times) <= admit + DAY
    row = adm["hadm_id"].to_list().index(1097)  # LOS 24 h + 1 s: the discharge suffix is never in first_24h
    assert strings(out, "full", "train", row)[-3:] == [MED, "DSCG//HOME", "TL_END"]
    assert strings(out, "first_24h", "train", row) == strings(out, "full", "train", row)[:-2]
    assert md["overflow_fraction"]["held_out"] == {"full": 0.0, "first_24h": 0.0}

    short = tmp_path / "short"
    md = tokenize_handle(events, handle("deciles_unfused"), short, max_len=12)
    t24 = timelines(short, "first_24h")
    assert t24["seq_len"][0] == 12 and t24["truncated"][0]
    assert strings(short, "first_24h") == [*cut[:11], "TRUNC"]
    assert t24["numeric_values"][0].to_list()[-1] is None
    tf = timelines(short)
    assert tf["seq_len"][0] == len(full) > 12 and not tf["truncated"][0]  # full timelines are never cut
    assert md["overflow_fraction"]["held_out"] == {"full": 1.0, "first_24h": 1.0}


# ------------------------------------------------------------------------------ fitting, vocab, metadata
def test_vocab_counts_equal_train_tokens_for_every_exp1_handle(tmp_path: Path, events: Path) -> None:
    hs = [*load_experiments()["exp1"].handles.values(), handle("xval_tt", "exp2"), handle("discrete_none", "exp2")]
    outs = [tmp_path / f"{h.experiment}_{h.handle}" for h in hs]
    mds = tokenize_handles(events, hs, outs, max_len=64, chunk_events=7)
    for h, out, md in zip(hs, outs, mds, strict=True):
        vocab = pl.read_parquet(out / "train" / "vocab.parquet")
        toks = np.concatenate(timelines(out, "full", "train")["tokens"].to_list())
        np.testing.assert_array_equal(np.bincount(toks, minlength=vocab.height), vocab["count"].to_numpy(),
                                      err_msg=h.key)
        assert md["vocab_size"] == vocab.height
        assert vocab["token"].head(7).to_list() == ["PAD", "TL_START", "TL_END", "TRUNC", "UNK", "TL_CONT", "nan"]
        ranked = vocab.filter(~pl.col("kind").is_in(["special", "value", "time"]))
        assert ranked.equals(ranked.sort(["count", "token"], descending=[True, False]))
        assert md["zero_frequency_tokens"] == vocab.filter(
            (pl.col("count") == 0) & (pl.col("kind") != "special")).height
        assert md["unk_tokens"] == {"train": 0, "tuning": 1, "held_out": 1}  # RACE//ASIAN, LAB//99999
        assert md["n_tokens"]["held_out"]["full"] == len(strings(out))
    fused = pl.read_parquet(outs[1] / "train" / "vocab.parquet")
    assert fused.filter(pl.col("token") == f"{LAB}//Q3")["count"].item() == 1
    assert fused.filter(pl.col("token") == LAB)["count"].item() == 0  # bare code: only for missing values
    assert mds[11]["zero_frequency_by_kind"]["fused"] > 0  # centiles of 11 train values: empty fused bins


def test_chunking_and_grouping_do_not_change_outputs(tmp_path: Path, events: Path) -> None:
    hs = [handle("ventiles_5_10_5_unfused"), handle("centiles_fused")]
    tokenize_handles(events, hs, [tmp_path / "a" / h.handle for h in hs], max_len=20, chunk_events=3)
    for h in hs:
        tokenize_handle(events, h, tmp_path / "b" / h.handle, max_len=20)
        for layout in ("full", "first_24h"):
            for split in ("train", "tuning", "held_out"):
                assert timelines(tmp_path / "a" / h.handle, layout, split).equals(
                    timelines(tmp_path / "b" / h.handle, layout, split))
        for f in ("train/vocab.parquet", "train/bins.parquet", "train/numeric_stats.json"):
            assert (tmp_path / "a" / h.handle / f).read_bytes() == (tmp_path / "b" / h.handle / f).read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_train_only_fitting_and_determinism(tmp_path: Path, events: Path) -> None:
    h = handle("trentiles_10_10_10_fused")
    tokenize_handle(events, h, tmp_path / "a", max_len=64)
    tokenize_handle(events, h, tmp_path / "b", max_len=64)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")  # byte-identical reruns
    perturbed = build(tmp_path / "p", shift=1000.0)  # every held-out value moved far out of range
    tokenize_handle(perturbed, h, tmp_path / "c", max_len=64)
    for f in ("train/vocab.parquet", "train/bins.parquet", "train/numeric_stats.json",
              "full/train/tokens_timelines.parquet", "first_24h/tuning/tokens_timelines.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "c" / f).read_bytes(), f
    assert strings(tmp_path / "c")[len(PREFIX) + len(MIDDLE) + 1] == f"{LAB}//Q29"
    prep = _tree(events)
    again = build(tmp_path / "again")
    assert _tree(again) == prep


def test_bins_and_numeric_stats_files(tmp_path: Path, events: Path) -> None:
    out = tmp_path / "tok"
    md = tokenize_handle(events, handle("ventiles_5_10_5_unfused"), out, max_len=64)
    bins = pl.read_parquet(out / "train" / "bins.parquet")
    assert bins["code"].to_list() == ["AGE", LAB, VIT]  # TXT and MED carry no values
    lab = bins.row(1, named=True)
    x = np.arange(11.0)
    ref = np.unique(np.concatenate([[2.0, 8.0], np.quantile(x[x < 2], np.arange(1, 5) / 5),
                                    np.quantile(x[(x >= 2) & (x < 8)], np.arange(1, 10) / 10),
                                    np.quantile(x[x >= 8], np.arange(1, 5) / 5)]))
    assert lab["edges"] == ref.tolist() and lab["anchored"]
    assert (lab["ref_range_lower"], lab["ref_range_upper"], lab["n_values"]) == (2.0, 8.0, 11)
    assert lab["n_bins_nominal"] == 20 and lab["n_bins_reachable"] == len(ref) + 1
    assert lab["n_bins_realized"] == len(np.unique(np.digitize(x, ref)))
    vit = bins.row(2, named=True)
    assert not vit["anchored"] and vit["ref_range_lower"] is None
    assert vit["edges"] == np.quantile(np.arange(60.0, 71.0), np.arange(1, 20) / 20).tolist()
    vocab = pl.read_parquet(out / "train" / "vocab.parquet")
    assert vocab["token"][lab["code_token_id"]] == LAB
    stats = json.loads((out / "train" / "numeric_stats.json").read_text())
    assert (stats["schema_version"], stats["method"], stats["clip_sigma"]) == (1, "median_iqr", 5.0)
    s = stats["codes"][VIT]
    q25, med, q75 = np.quantile(np.arange(60.0, 71.0), [0.25, 0.5, 0.75])
    assert (s["median"], s["q25"], s["q75"], s["n"]) == (med, q25, q75, 11)
    assert s["std"] == pytest.approx((q75 - q25) / 1.35) and s["token_id"] == vocab["token"].to_list().index(VIT)
    assert md["bins"]["n_codes_anchored"] == 1 and md["bins"]["n_codes_anchor_fallback"] == 1


def test_handle_must_match_the_prepared_tokenizer_and_cohort(tmp_path: Path, events: Path) -> None:
    with pytest.raises(ValueError, match="mimic-meds-exp3-icu"):
        tokenize_handle(events, get_handle("exp3", "meds"), tmp_path / "x")
    with pytest.raises(ValueError, match="cohort 'icu'"):
        tokenize_handle(events, handle("deciles_unfused", cohort="icu"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_admission_without_events_or_birth(tmp_path: Path) -> None:
    rows = [r for r in _held_out_rows() if r["code"] != "MEDS_BIRTH" and (r["hadm_id"] is None or r["code"].startswith(
        ("HOSPITAL_", "RACE", "INSURANCE", "LANGUAGE", "MARITAL")))]
    meds = write_meds(tmp_path / "meds", {"train": _train_rows(), "held_out": rows})
    prepare_events(meds, load_tokenizer_config("mimic-meds"), tmp_path / "events")
    hs = [handle("deciles_unfused"), handle("deciles_fused")]
    mds = tokenize_handles(tmp_path / "events", hs, [tmp_path / h.handle for h in hs], max_len=64)
    assert mds[0]["n_events"]["held_out"] == 0 and mds[0]["n_admissions"]["tuning"] == 0
    for h in hs:  # no birth: age unknown → AGE, nan in both modes; no events, no procedures
        assert strings(tmp_path / h.handle) == [*PREFIX, "AGE", "nan", *MIDDLE, "DSCG//HOME", "TL_END"]
