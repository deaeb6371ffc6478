"""Paper tables (CSV + booktabs LaTeX), text macros and figures (PDF + PNG + plotting tables) from the run
artifacts (docs/paper.md). Domain code only: the Dagster assets call these functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from irbench_assets.paper.figures import (
    DEFAULT_PCA_HANDLES,
    BinEmbeddings,
    build_figures,
    load_bin_embeddings,
)
from irbench_assets.paper.inputs import (
    Manifest,
    MissingInput,
    PaperInputs,
    StatsTables,
    default_paper_dir,
    read_stats,
    stats_from_frames,
)
from irbench_assets.paper.tables import build_tables
from irbench_assets.storage import write_json


def build_paper(out_dir: Path | None, inputs: PaperInputs, stats: StatsTables | None = None,
                pca_handles: Sequence[str] = DEFAULT_PCA_HANDLES, dpi: int = 200,
                embeddings: Callable[[Path], BinEmbeddings] = load_bin_embeddings) -> Manifest:
    """Build every table and figure under ``out_dir`` (default :func:`default_paper_dir`) and write
    ``manifest.json`` (files, skipped items with reasons); return the manifest."""
    out = Path(out_dir) if out_dir is not None else default_paper_dir()
    if stats is None:
        try:
            stats = read_stats(inputs.statistics, inputs.exps)
        except MissingInput:
            stats = None  # each builder records the skip
    man = build_tables(out, inputs, stats).merge(build_figures(out, inputs, stats, pca_handles, dpi, embeddings))
    write_json(man.to_dict(), out / "manifest.json")
    return man


__all__ = [
    "DEFAULT_PCA_HANDLES",
    "Manifest",
    "MissingInput",
    "PaperInputs",
    "StatsTables",
    "build_figures",
    "build_paper",
    "build_tables",
    "default_paper_dir",
    "read_stats",
    "stats_from_frames",
]
