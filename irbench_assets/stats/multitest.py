"""Benjamini–Hochberg adjustment, applied within groups of a results table.

The step-up procedure itself is scipy's (``scipy.stats.false_discovery_control``); this module adds
what the benchmark needs around it: NaN p-values (undefined comparisons) are left out of the family
and stay NaN, and the adjustment runs once per (family_name, metric) group of a polars frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.stats import false_discovery_control


def bh_adjust(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values of one family; NaN inputs are excluded from the family and returned as NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        bad = p[finite][(p[finite] < 0) | (p[finite] > 1)][0]
        raise ValueError(f"p-values must lie in [0, 1], got {bad!r}")
    if finite.any():
        out[finite] = false_discovery_control(p[finite], method="bh")
    return out


def adjust_within(
    df: pl.DataFrame,
    by: Sequence[str] = ("family_name", "metric"),
    p_col: str = "p_raw",
    out_col: str = "p_adj",
) -> pl.DataFrame:
    """Add ``out_col`` = BH adjustment of ``p_col`` within each group of ``by`` (row order kept)."""
    missing = [c for c in (*by, p_col) if c not in df.columns]
    if missing:
        raise ValueError(f"cannot adjust p-values: columns {missing} missing from {df.columns}")
    if df.height == 0:
        return df.with_columns(pl.lit(None, dtype=pl.Float64).alias(out_col))
    row = "__row__"
    indexed = df.with_row_index(row)
    adj = np.full(df.height, np.nan)
    for _, part in indexed.group_by(list(by), maintain_order=True):
        idx = part[row].to_numpy()
        adj[idx] = bh_adjust(part[p_col].cast(pl.Float64).fill_null(float("nan")).to_numpy())
    return df.with_columns(pl.Series(out_col, adj, dtype=pl.Float64))
