"""Dagster assets of Stage -1: the MEDS dataset and its QC checks."""


import json

import dagster as dg
import meds
import polars as pl
import pyarrow.parquet as pq

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.markdown import frame_to_markdown
from irbench_assets.meds.exp3_arms import build_exp3_arms, verify_row_fixed
from irbench_assets.meds.extract import extract_meds, read_meds
from irbench_assets.meds.splits import SPLITS
from irbench_assets.mimic.defs import mimic_source
from irbench_assets.settings import resources_dir
from irbench_assets.storage import exp3_arms_root, meds_root

# Code prefixes that would only come from billing tables (diagnoses_icd, procedures_icd, hcpcsevents, drgcodes).
BILLING_CODE_PREFIXES = ("DIAGNOSIS", "ICD", "HCPCS", "DRG", "PROCEDURE_ICD")


@dg.asset(
    group_name="meds",
    deps=[mimic_source],
    kinds={"polars", "parquet"},
    description="Stage -1: MIMIC-IV 3.1 → MEDS (data/{train,tuning,held_out}, metadata/), subject split "
    "70/10/20 (seed 42), streamed in bounded memory; billing tables are never read.",
)
def meds_dataset(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    root = meds_root(s)

    def progress(stage: str, info: dict) -> None:
        context.log.debug(f"{stage}: {info}")

    report = extract_meds(s.mimic_dir, root, s.meds, progress=progress)
    preview = read_meds(root, "train").head(12).collect()
    for table, rep in report["tables"].items():
        context.log.info(f"{table}: read {rep['rows_read']}, emitted {rep['emitted']}, dropped {rep['dropped']}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(root)),
            "n_events": report["n_events"],
            "events_per_split": dg.MetadataValue.json(report["events_per_split"]),
            "n_subjects": report["n_subjects"],
            "n_admissions": report["n_admissions"],
            "n_codes": report["n_codes"],
            "seconds": report["seconds"],
            "events_per_second": round(report["n_events"] / max(report["seconds"], 1e-9)),
            "reconciliation": dg.MetadataValue.json(report["tables"]),
            "preview": dg.MetadataValue.md(frame_to_markdown(preview)),
        }
    )


def _data_files(settings: IrbenchSettings) -> dict[str, list]:
    root = meds_root(settings.get())
    return {s: sorted((root / meds.data_subdirectory / s).glob("*.parquet")) for s in SPLITS}


@dg.asset_check(asset=meds_dataset, blocking=True, description="Every shard matches the MEDS DataSchema.")
def meds_schema_valid(settings: IrbenchSettings) -> dg.AssetCheckResult:
    problems = []
    n_files = 0
    for files in _data_files(settings).values():
        for f in files:
            n_files += 1
            try:
                meds.DataSchema.validate(pq.read_schema(f))
            except Exception as exc:  # the schema library raises several error types
                problems.append(f"{f}: {exc}")
    root = meds_root(settings.get())
    for name, schema in [("codes.parquet", meds.CodeMetadataSchema), ("subject_splits.parquet", meds.SubjectSplitSchema)]:
        try:
            schema.validate(pq.read_schema(root / "metadata" / name))
        except Exception as exc:
            problems.append(f"metadata/{name}: {exc}")
    meds.DatasetMetadataSchema.validate(json.loads((root / "metadata" / "dataset.json").read_text()))
    return dg.AssetCheckResult(
        passed=not problems and n_files > 0,
        metadata={"files_checked": n_files, "problems": dg.MetadataValue.json(problems[:20])},
    )


@dg.asset_check(asset=meds_dataset, blocking=True, description="Splits are disjoint by subject and cover all.")
def splits_disjoint_by_subject(settings: IrbenchSettings) -> dg.AssetCheckResult:
    root = meds_root(settings.get())
    splits = pl.read_parquet(root / "metadata" / "subject_splits.parquet")
    dup = splits.group_by("subject_id").len().filter(pl.col("len") > 1).height
    data = (
        pl.concat(
            [read_meds(root, s).select("subject_id").unique().with_columns(pl.lit(s).alias("data_split"))
             for s in SPLITS if _data_files(settings)[s]]
        )
        .collect()
    )
    joined = data.join(splits, on="subject_id", how="left")
    misplaced = joined.filter(pl.col("split").is_null() | (pl.col("split") != pl.col("data_split"))).height
    in_two = data.group_by("subject_id").len().filter(pl.col("len") > 1).height
    uncovered = splits.join(data, on="subject_id", how="anti").height
    counts = {s: int((splits["split"] == s).sum()) for s in SPLITS}
    return dg.AssetCheckResult(
        passed=dup == 0 and misplaced == 0 and in_two == 0 and uncovered == 0,
        metadata={
            "subjects_per_split": dg.MetadataValue.json(counts),
            "subjects_in_two_splits": in_two,
            "events_in_wrong_split": misplaced,
            "subjects_without_events": uncovered,
        },
    )


@dg.asset_check(asset=meds_dataset, blocking=True, description="No code or source table from billing data.")
def no_billing_codes(settings: IrbenchSettings) -> dg.AssetCheckResult:
    root = meds_root(settings.get())
    lf = read_meds(root)
    billing_tables = ["hosp/diagnoses_icd", "hosp/procedures_icd", "hosp/hcpcsevents", "hosp/drgcodes"]
    bad = (
        lf.filter(
            pl.col("code").str.split("//").list.first().is_in(list(BILLING_CODE_PREFIXES))
            | pl.col("table").is_in(billing_tables)
        )
        .select(pl.len())
        .collect()
        .item()
    )
    report = json.loads((root / "metadata" / "extraction_report.json").read_text())
    tables_read = sorted(report["tables"])
    return dg.AssetCheckResult(
        passed=bad == 0 and not report["billing_tables_read"] and not set(tables_read) & set(billing_tables),
        metadata={"billing_events": int(bad), "tables_read": dg.MetadataValue.json(tables_read)},
    )


@dg.asset_check(
    asset=meds_dataset, blocking=True,
    description="Row reconciliation: every candidate event of every source table is emitted or dropped with a reason.",
)
def row_reconciliation(settings: IrbenchSettings) -> dg.AssetCheckResult:
    root = meds_root(settings.get())
    report = json.loads((root / "metadata" / "extraction_report.json").read_text())
    n_written = read_meds(root).select(pl.len()).collect().item()
    emitted = sum(t["emitted"] for t in report["tables"].values())
    unreconciled = [k for k, t in report["tables"].items() if not t["reconciled"]]
    return dg.AssetCheckResult(
        passed=not unreconciled and emitted == n_written,
        metadata={
            "events_written": int(n_written),
            "events_emitted": int(emitted),
            "unreconciled_tables": dg.MetadataValue.json(unreconciled),
            "dropped": dg.MetadataValue.json({k: t["dropped"] for k, t in report["tables"].items()}),
        },
    )


@dg.asset(
    group_name="meds",
    deps=[meds_dataset],
    kinds={"polars", "parquet"},
    tags={"irbench/stage": "tokenize"},
    description="Exp3 vocabulary arms on the ICU cohort (LOS >= 24 h and an ICU stay): native `meds`, "
    "CLIF-style `mapped`, and the `randomized` / `freqmatched` null controls. Only `code` differs between arms.",
)
def exp3_arms(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    meta = build_exp3_arms(meds_root(s), exp3_arms_root(s), resources_dir() / "mappings", seed=s.seed)
    cov = meta["coverage"]["mapped"]["train"]
    rows = [{"domain": d, **c} for d, c in cov.items()]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(exp3_arms_root(s))),
            "mapped_train_coverage": dg.MetadataValue.md(frame_to_markdown(pl.DataFrame(rows))),
            "tokenizer_domains": dg.MetadataValue.json(meta.get("tokenizer_domains", ["LAB", "VITAL"])),
            "summary": dg.MetadataValue.json({k: v for k, v in meta.items() if k not in ("coverage",)}),
        }
    )


@dg.asset_check(asset=exp3_arms, blocking=True, description="The arms are row-identical except for `code`.")
def exp3_arms_row_fixed(settings: IrbenchSettings) -> dg.AssetCheckResult:
    problems = verify_row_fixed(exp3_arms_root(settings.get()))
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": dg.MetadataValue.json(problems[:20])})


defs = dg.Definitions(
    assets=[meds_dataset, exp3_arms],
    asset_checks=[meds_schema_valid, splits_disjoint_by_subject, no_billing_codes, row_reconciliation,
                  exp3_arms_row_fixed],
)
