"""Dagster assets of the paper stage: every table (CSV + LaTeX) and every figure (PDF + PNG + source CSV)."""

from pathlib import Path

import dagster as dg

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.markdown import png_markdown
from irbench_assets.paper import PaperInputs, build_figures, build_tables, default_paper_dir
from irbench_assets.stats.defs import paper_statistics
from irbench_assets.storage import write_json

MAX_IMAGES = 8  # keep the metadata of one materialization small; the rest are files on disk


def _manifest_metadata(man, out: Path) -> dict:
    return {
        "path": dg.MetadataValue.path(str(out)),
        "n_files": len(man.files),
        "skipped": dg.MetadataValue.json([{"item": s.item, "reason": s.reason} for s in man.skipped]),
    }


@dg.asset(
    group_name="paper",
    deps=[paper_statistics, dg.AssetKey("tokenized"), dg.AssetKey("checkpoint"), dg.AssetKey("outcomes"),
          dg.AssetKey("exp3_arms")],
    kinds={"latex", "csv"},
    tags={"irbench/stage": "paper"},
    description="Paper tables (CSV + booktabs LaTeX) and the text macros: coverage, sweeps, per-family results, "
    "baseline-centred deltas, model inventory, tokenization appendix, outcome descriptives, Exp3 coverage.",
)
def paper_tables(settings: IrbenchSettings) -> dg.MaterializeResult:
    out = default_paper_dir()
    # Without statistics yet, each builder records its skip with the reason (read_stats → MissingInput).
    man = build_tables(out, PaperInputs.from_settings(settings.get()))
    write_json(man.to_dict(), out / "manifest_tables.json")
    meta = _manifest_metadata(man, out)
    for name, md in sorted(man.previews.items()):
        meta[f"table_{name}"] = dg.MetadataValue.md(md)
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    group_name="paper",
    deps=[paper_statistics, dg.AssetKey("tokenized"), dg.AssetKey("checkpoint"), dg.AssetKey("predictions")],
    kinds={"matplotlib", "pdf"},
    tags={"irbench/stage": "paper"},
    description="Paper figures: forest plots, shared-scale delta heatmaps, design-axis summaries, calibration "
    "curves, sequence-length histograms, PCA of learned value-bin embeddings (each with its source CSV).",
)
def paper_figures(settings: IrbenchSettings) -> dg.MaterializeResult:
    out = default_paper_dir()
    man = build_figures(out, PaperInputs.from_settings(settings.get()))
    write_json(man.to_dict(), out / "manifest_figures.json")
    meta = _manifest_metadata(man, out)
    for rel in man.images[:MAX_IMAGES]:
        meta[Path(rel).stem] = dg.MetadataValue.md(png_markdown(out / rel))
    return dg.MaterializeResult(metadata=meta)


defs = dg.Definitions(assets=[paper_tables, paper_figures])
