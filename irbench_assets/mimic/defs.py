"""Dagster assets of the MIMIC-IV source: the synthetic download (demo) or a validated real one."""


import dagster as dg

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.mimic.readers import MimicSchemaError, read_header, table_path
from irbench_assets.mimic.schema import TABLES
from irbench_assets.mimic.synth import generate_synthetic_mimic


@dg.asset(
    group_name="source",
    kinds={"csv"},
    description="MIMIC-IV 3.1 hosp/ and icu/ tables: generated (synthetic, deterministic) unless "
    "IRBENCH_MIMIC_ROOT points at a real credentialed download, which is then only validated.",
)
def mimic_source(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    if s.uses_synthetic:
        cfg = s.synthetic
        last = {"pct": -10}

        def progress(done: int, total: int) -> None:
            pct = int(100 * done / max(total, 1))
            if pct >= last["pct"] + 10:
                last["pct"] = pct
                context.log.info(f"synthetic MIMIC-IV: {done}/{total} admissions")

        summary = generate_synthetic_mimic(
            s.mimic_dir, admissions=cfg.admissions, seed=cfg.seed, chunk_admissions=cfg.chunk_admissions,
            progress=progress,
        )
        rows = summary.get("rows", {})
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(s.mimic_dir)),
                "synthetic": True,
                "admissions": cfg.admissions,
                "seed": cfg.seed,
                "rows_per_table": dg.MetadataValue.json(rows),
                "total_rows": int(sum(rows.values())) if rows else 0,
            },
            data_version=dg.DataVersion(f"synthetic-{cfg.admissions}-{cfg.seed}"),
        )
    # Real MIMIC-IV: validate presence and headers of every table Stage -1 reads (never the billing ones).
    sizes = {}
    for name, t in TABLES.items():
        if t.billing:
            continue
        path = table_path(s.mimic_dir, name)
        if not path.exists():
            raise MimicSchemaError(f"{path}: file missing (required MIMIC-IV 3.1 table {t.relpath})")
        header = read_header(path)
        missing = [c for c in t.required if c not in header]
        if missing:
            raise MimicSchemaError(f"{path}: missing required column(s) {missing}")
        sizes[name] = path.stat().st_size
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(s.mimic_dir)),
            "synthetic": False,
            "bytes_per_table": dg.MetadataValue.json(sizes),
        }
    )


defs = dg.Definitions(assets=[mimic_source])
