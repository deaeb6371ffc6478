"""Render small polars frames as Markdown tables (asset previews in the Dagster UI, docs)."""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def frame_to_markdown(df: pl.DataFrame, max_rows: int = 20) -> str:
    """A GitHub-style Markdown table of the first ``max_rows`` rows (no pandas/tabulate needed)."""
    head = df.head(max_rows)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in head.iter_rows()]
    if df.height > max_rows:
        lines.append(f"\n… {df.height - max_rows} more rows")
    return "\n".join(lines)


def png_markdown(path: Path, alt: str | None = None) -> str:
    """Markdown that embeds a PNG inline (data URI), so the Dagster UI shows the image in asset metadata."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt or Path(path).stem}](data:image/png;base64,{data})"
