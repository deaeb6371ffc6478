"""Stage -1 (MIMIC-IV → MEDS) on a small synthetic download: schema, codes, times, splits, reconciliation."""

from __future__ import annotations

from pathlib import Path

import meds
import polars as pl
import pyarrow.parquet as pq

from irbench_assets.meds.extract import extract_meds, read_meds
from irbench_assets.meds.splits import assign_shards, subject_splits
from irbench_assets.mimic.readers import read_table
from irbench_assets.settings import MedsConfig


def test_every_shard_is_valid_meds_and_sorted(small_meds: tuple[Path, dict]) -> None:
    root, _ = small_meds
    files = sorted((root / "data").glob("*/*.parquet"))
    assert {f.parent.name for f in files} == {"train", "tuning", "held_out"}
    assert len([f for f in files if f.parent.name == "train"]) > 1  # subjects_per_shard=60 → several shards
    for f in files:
        table = pq.read_table(f)
        meds.DataSchema.validate(table)  # raises on any violation
        df = pl.from_arrow(table)
        assert df.equals(df.sort(["subject_id", "time", "code"], nulls_last=False, maintain_order=True))
    for name, schema in [("codes.parquet", meds.CodeMetadataSchema), ("subject_splits.parquet", meds.SubjectSplitSchema)]:
        schema.validate(pq.read_table(root / "metadata" / name))


def test_splits_are_subject_level_disjoint_and_complete(small_mimic: Path, small_meds: tuple[Path, dict]) -> None:
    root, report = small_meds
    splits = pl.read_parquet(root / "metadata" / "subject_splits.parquet")
    patients = read_table(small_mimic, "patients", ["subject_id"])
    assert splits["subject_id"].n_unique() == splits.height == patients.height
    seen = pl.concat(
        [read_meds(root, s).select("subject_id").unique().collect().with_columns(pl.lit(s).alias("in"))
         for s in ("train", "tuning", "held_out")]
    )
    assert seen["subject_id"].n_unique() == seen.height  # nobody in two splits
    assert seen.join(splits, on="subject_id").filter(pl.col("in") != pl.col("split")).height == 0
    frac = splits.group_by("split").len().with_columns(pl.col("len") / splits.height)
    shares = dict(frac.iter_rows())
    assert abs(shares["train"] - 0.7) < 0.02 and abs(shares["tuning"] - 0.1) < 0.02
    assert report["n_subjects"] == patients.height


def test_split_is_deterministic_and_order_free() -> None:
    ids = pl.Series(range(1000, 3000))
    a = subject_splits(ids, seed=42)
    b = subject_splits(ids.shuffle(seed=3), seed=42)
    assert a.equals(b)
    assert not a.equals(subject_splits(ids, seed=43))
    sh = assign_shards(a, 100)
    assert sh.group_by("split", "shard").len()["len"].max() <= 100


def test_lab_events_use_storetime_and_keep_values(small_mimic: Path, small_meds: tuple[Path, dict]) -> None:
    root, _ = small_meds
    labs = read_table(small_mimic, "labevents").filter(pl.col("storetime").is_not_null() & pl.col("valuenum").is_not_null())
    row = labs.row(len(labs) // 2, named=True)
    code = f"LAB//{row['itemid']}//{row['valueuom'] or 'UNK'}"
    ev = read_meds(root).filter(
        (pl.col("subject_id") == row["subject_id"]) & (pl.col("code") == code) & (pl.col("charttime") == row["charttime"])
    ).collect()
    assert ev.height >= 1
    assert ev["time"][0] == row["storetime"]
    assert abs(ev["numeric_value"][0] - row["valuenum"]) < 1e-4
    assert ev["ref_range_lower"][0] is None or abs(ev["ref_range_lower"][0] - row["ref_range_lower"]) < 1e-4


def test_code_families_and_anchors(small_meds: tuple[Path, dict]) -> None:
    root, report = small_meds
    codes = pl.read_parquet(root / "metadata" / "codes.parquet")
    families = set(codes["code"].str.split("//").list.first())
    for fam in ["MEDS_BIRTH", "GENDER", "HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE", "LAB", "VITAL", "MEDICATION",
                "TRANSFER_TO", "ICU_ADMISSION", "ICU_DISCHARGE", "PROCEDURE", "INFUSION_START", "INFUSION_END",
                "RACE", "INSURANCE"]:
        assert fam in families, fam
    assert not families & {"DIAGNOSIS", "ICD", "HCPCS", "DRG"}
    adm = read_meds(root).filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION")).collect()
    assert adm.height == report["n_admissions"]
    static = read_meds(root).filter(pl.col("time").is_null()).collect()
    assert set(static["code"].str.split("//").list.first()) == {"GENDER"}
    assert codes.filter(pl.col("code") == "LAB//50971//mEq/L")["description"].item() is not None


def test_reconciliation_accounts_for_every_row(small_meds: tuple[Path, dict]) -> None:
    root, report = small_meds
    written = read_meds(root).select(pl.len()).collect().item()
    assert written == report["n_events"] == sum(t["emitted"] for t in report["tables"].values())
    for name, t in report["tables"].items():
        assert t["reconciled"], name
        assert t["candidates"] == t["emitted"] + sum(t["dropped"].values())
    assert report["billing_tables_read"] == []


def test_extraction_is_byte_deterministic(small_mimic: Path, tmp_path: Path) -> None:
    cfg = MedsConfig(subjects_per_shard=60, batch_rows=3000)
    a, b = tmp_path / "a", tmp_path / "b"
    extract_meds(small_mimic, a, cfg)
    extract_meds(small_mimic, b, MedsConfig(subjects_per_shard=60, batch_rows=777))  # other batching, same output
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        if rel.name != "extraction_report.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_output_does_not_depend_on_workers(small_mimic: Path, small_meds: tuple[Path, dict], tmp_path: Path) -> None:
    """One worker (no overlap of tables or shards) writes the same bytes as the parallel default."""
    root, report = small_meds
    one = tmp_path / "one"
    report_one = extract_meds(small_mimic, one, MedsConfig(subjects_per_shard=60, batch_rows=5000), workers=1)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    for rel in files:
        assert (root / rel).read_bytes() == (one / rel).read_bytes(), rel
    assert report_one["tables"] == report["tables"]
