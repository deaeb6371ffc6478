"""The paper's figures (matplotlib, object-oriented API rendered by the Agg/PDF backends, no pyplot state).

Each builder returns a :class:`FigureResult`: the matplotlib figure and its plotting table, which
:func:`write_figure` saves as ``<name>.pdf``, ``<name>.png`` and ``sources/<name>.csv``. Colours are the
Okabe–Ito palette (colour-blind safe), diverging maps ``PuOr`` and sequential ``viridis``; handles appear in
``resources/experiments.yaml`` order with their ``label``.

Figures: per-experiment forest plots (AUROC / Spearman ρ with 95% CI), baseline-centred delta heatmaps (shared
colour scale across experiments, * = BH-significant), summary bars along each design axis, calibration
curves (primary binaries, held-out), sequence-length histograms (fused vs unfused, time tokens vs none;
full vs first 24 h), PCA of learned value-bin embeddings (K, Hb, creatinine, glucose, Na, heart rate).
"""

from __future__ import annotations

import functools
import math
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from irbench_assets.experiments import Experiment, HandleConfig, parse_arm_key
from irbench_assets.outcomes.definitions import families_for
from irbench_assets.paper.inputs import (
    ALPHA,
    AXES,
    METRIC_LABELS,
    PRIMARY_METRIC,
    TASK_LABELS,
    Manifest,
    MissingInput,
    PaperInputs,
    Skipped,
    StatsTables,
    common_outcome_means,
    design_axes,
    grouped_skips,
    level_label,
    outcome_label,
    outcome_rank,
    read_json,
)
from irbench_assets.storage import atomic_dir, atomic_file

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P")
#: Chance level where a summary bar starts (AUROC 0.5, Spearman 0).
CHANCE = {"roc_auc": 0.5, "spearman_rho": 0.0}
STYLE: dict[str, Any] = {
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42,
    "savefig.bbox": "tight", "figure.dpi": 100,
}
#: The labs and vitals of the value-bin PCA: (domain, MIMIC itemid); units may differ between datasets.
PCA_CODES: dict[str, tuple[str, int]] = {
    "Potassium": ("LAB", 50971), "Hemoglobin": ("LAB", 51222), "Creatinine": ("LAB", 50912),
    "Glucose": ("LAB", 50931), "Sodium": ("LAB", 50983), "Heart rate": ("VITAL", 220045),
}
DEFAULT_PCA_HANDLES = ("exp1.centiles_fused", "exp1.centiles_unfused")


@dataclass
class FigureResult:
    """One figure: the matplotlib object, its plotting table, and parts skipped for missing inputs."""

    name: str
    figure: Figure
    source: pl.DataFrame
    skipped: list[Skipped] = field(default_factory=list)


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def styled(fn: Callable[..., FigureResult]) -> Callable[..., FigureResult]:
    """Run a figure builder under the paper's rcParams (fonts are fixed when text is created, so the whole
    builder runs inside the context, not only the save)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> FigureResult:
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class HandleStyle:
    """How a handle is drawn: colour (one design-axis combination) and marker (the other axis)."""

    color: str
    marker: str
    color_label: str
    marker_label: str


def handle_styles(exp: Experiment) -> dict[str, HandleStyle]:
    """Colour = the combination of the experiment's design axes except fusion/time encoding; marker = fusion
    (Exp1) or time encoding (Exp2); levels in handle order (e.g. Exp1: colour = scheme, ○ unfused, □ fused)."""
    axes = design_axes(exp)
    marker_axis = "fused" if "fused" in axes else "temporal" if "temporal" in axes else None
    color_axes = [a for a in axes if a != marker_axis]
    colors: dict[tuple, int] = {}
    markers: dict[Any, int] = {}
    out: dict[str, HandleStyle] = {}
    for name, h in exp.handles.items():
        ck = tuple(getattr(h, a) for a in color_axes)
        mk = getattr(h, marker_axis) if marker_axis else None
        ci_ = colors.setdefault(ck, len(colors))
        mi = markers.setdefault(mk, len(markers))
        out[name] = HandleStyle(
            OKABE_ITO[ci_ % len(OKABE_ITO)], MARKERS[mi % len(MARKERS)],
            ", ".join(level_label(a, v) for a, v in zip(color_axes, ck, strict=True)) or h.label,
            level_label(marker_axis, mk) if marker_axis else "")
    return out


def _style_legend(fig: Figure, exp: Experiment, handles: Sequence[str]) -> None:
    st = handle_styles(exp)
    items: list[Line2D] = []
    seen: set[str] = set()
    for h in handles:
        s = st[h]
        if s.color_label not in seen:
            seen.add(s.color_label)
            items.append(Line2D([], [], color=s.color, marker="s", linestyle="", label=s.color_label))
    seen_m: set[str] = set()
    for h in handles:
        s = st[h]
        if s.marker_label and s.marker_label not in seen_m:
            seen_m.add(s.marker_label)
            items.append(Line2D([], [], color="0.3", marker=s.marker, linestyle="", markerfacecolor="white",
                                label=s.marker_label))
    if items:
        fig.legend(handles=items, loc="outside lower center", ncols=min(len(items), 4), frameon=False)


def _finite(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


# ------------------------------------------------------------------------------------------ forest plots
@styled
def forest_plot(stats: StatsTables, exp: Experiment, task_type: str) -> FigureResult:
    """One panel per outcome, one row per handle: the primary metric with its 95% CI; dotted line = baseline."""
    metric = PRIMARY_METRIC[task_type]
    m = stats.metrics.filter((pl.col("experiment") == exp.name) & (pl.col("metric") == metric))
    if m.height == 0:
        raise MissingInput(f"no {METRIC_LABELS[metric]} rows for {exp.name}")
    outcomes = sorted(dict.fromkeys(m.get_column("outcome").to_list()), key=outcome_rank)
    present = set(m.get_column("handle").to_list())
    handles = [h for h in exp.handles if h in present]
    st = handle_styles(exp)
    by = {(r["outcome"], r["handle"]): r for r in m.iter_rows(named=True)}
    ncols = min(4, len(outcomes))
    nrows = math.ceil(len(outcomes) / ncols)
    fig = _figure(7.0, nrows * (0.13 * len(handles) + 0.75) + 0.5)
    axs = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    y = np.arange(len(handles))[::-1]
    rows = []
    for i, outcome in enumerate(outcomes):
        ax = axs[i]
        for yi, h in zip(y, handles, strict=True):
            r = by.get((outcome, h))
            if r is None or not _finite(r["point"]):
                continue
            lo, hi = r["ci_lo"], r["ci_hi"]
            err = ([[r["point"] - lo], [hi - r["point"]]] if _finite(lo) and _finite(hi) else None)
            ax.errorbar(r["point"], yi, xerr=err, fmt=st[h].marker, color=st[h].color, markersize=3.5,
                        elinewidth=0.8, capsize=1.5, markerfacecolor=st[h].color)
            rows.append({"experiment": exp.name, "task_type": task_type, "outcome": outcome,
                         "outcome_label": outcome_label(outcome), "handle": h, "handle_label": exp.handles[h].label,
                         "metric": metric, "point": r["point"], "ci_lo": lo, "ci_hi": hi, "n_eval": r["n_eval"],
                         "y": int(yi), "color": st[h].color, "marker": st[h].marker,
                         "is_baseline": h == exp.baseline})
        base = by.get((outcome, exp.baseline))
        if base is not None and _finite(base["point"]):
            ax.axvline(base["point"], color="0.5", linestyle=":", linewidth=0.8)
        ax.set_title(textwrap.fill(outcome_label(outcome), 28))
        ax.set_yticks(y, [exp.handles[h].label for h in handles])
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", color="0.9", linewidth=0.5)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        if i // ncols == nrows - 1 or i + ncols >= len(outcomes):
            ax.set_xlabel(METRIC_LABELS[metric])
    for ax in axs[len(outcomes):]:
        ax.set_visible(False)
    fig.suptitle(f"{exp.name.capitalize()}: {exp.title} — {TASK_LABELS[task_type]} outcomes, "
                 f"{METRIC_LABELS[metric]} with 95% CI", fontsize=8)
    _style_legend(fig, exp, handles)
    src = pl.DataFrame(rows, schema={
        "experiment": pl.String, "task_type": pl.String, "outcome": pl.String, "outcome_label": pl.String,
        "handle": pl.String, "handle_label": pl.String, "metric": pl.String, "point": pl.Float64,
        "ci_lo": pl.Float64, "ci_hi": pl.Float64, "n_eval": pl.Int64, "y": pl.Int64, "color": pl.String,
        "marker": pl.String, "is_baseline": pl.Boolean})
    return FigureResult(f"forest_{exp.name}_{TASK_LABELS[task_type]}", fig, src)


# -------------------------------------------------------------------------------------- delta heatmaps
def shared_delta_limits(stats: StatsTables) -> dict[str, float]:
    """Per task type, the largest |Δ| of the primary metric over every experiment: one colour scale for all
    experiments' heatmaps, so equal colours mean equal differences."""
    out: dict[str, float] = {}
    pw = stats.pairwise_baseline
    for task, metric in PRIMARY_METRIC.items():
        if pw is None:
            continue
        d = pw.filter(pl.col("metric") == metric).get_column("delta_better").fill_nan(None).drop_nulls().abs()
        if d.len():
            out[task] = max(float(d.max()), 1e-6)  # type: ignore[arg-type]
    return out


@styled
def delta_heatmap(stats: StatsTables, exp: Experiment, task_type: str, limit: float | None = None) -> FigureResult:
    """Handle × outcome heatmap of Δ (handle − baseline, sign flipped so positive = better) of the primary
    metric; colour scale ±``limit`` (shared across experiments); * = BH-adjusted p < 0.05."""
    metric = PRIMARY_METRIC[task_type]
    if stats.pairwise_baseline is None:
        raise MissingInput("no all_family_pairwise_baseline.csv")
    pw = stats.pairwise_baseline.filter((pl.col("experiment") == exp.name) & (pl.col("metric") == metric))
    if pw.height == 0:
        raise MissingInput(f"no baseline pairwise {METRIC_LABELS[metric]} rows for {exp.name}")
    outcomes = sorted(dict.fromkeys(pw.get_column("outcome").to_list()), key=outcome_rank)
    present = set(pw.get_column("handle1").to_list())
    handles = [h for h in exp.handles if h in present]
    base = pw.get_column("handle0")[0]
    by = {(r["handle1"], r["outcome"]): r for r in pw.iter_rows(named=True)}
    vals = np.full((len(handles), len(outcomes)), np.nan)
    sig = np.zeros_like(vals, dtype=bool)
    rows = []
    for i, h in enumerate(handles):
        for j, o in enumerate(outcomes):
            r = by.get((h, o))
            if r is None:
                continue
            d, p = r["delta_better"], r["p_adj"]
            vals[i, j] = d if _finite(d) else np.nan
            sig[i, j] = bool(_finite(p) and p < ALPHA)
            rows.append({"experiment": exp.name, "task_type": task_type, "metric": metric, "handle0": base,
                         "handle1": h, "handle1_label": exp.handles[h].label, "outcome": o,
                         "outcome_label": outcome_label(o), "row": i, "col": j, "delta_better": d,
                         "delta_raw": r["delta_raw"], "delta_ci_lo_raw": r["delta_ci_lo_raw"],
                         "delta_ci_hi_raw": r["delta_ci_hi_raw"], "p_adj": p, "significant": sig[i, j]})
    lim = limit if limit is not None else max(float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 0, 1e-6)
    cmap = matplotlib.colormaps["PuOr"].with_extremes(bad="0.85")
    fig = _figure(min(7.0, max(3.6, 2.0 + 0.3 * len(outcomes))), 1.6 + 0.2 * len(handles))
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for i, j in zip(*np.nonzero(sig), strict=True):
        rgba = cmap((vals[i, j] + lim) / (2 * lim))
        lum = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
        ax.text(j, i, "*", ha="center", va="center", fontsize=8, color="white" if lum < 0.5 else "black")
    ax.set_xticks(range(len(outcomes)), [outcome_label(o) for o in outcomes], rotation=55, ha="right")
    ax.set_yticks(range(len(handles)), [exp.handles[h].label for h in handles])
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    cb = fig.colorbar(im, ax=ax, shrink=0.9, pad=0.01)
    cb.set_label(f"Δ {METRIC_LABELS[metric]} (positive = better)")
    ax.set_title(f"{exp.name.capitalize()}, {TASK_LABELS[task_type]} outcomes: Δ vs {exp.handles[base].label}\n"
                 f"* BH-adjusted p < {ALPHA}")
    src = pl.DataFrame(rows, schema={
        "experiment": pl.String, "task_type": pl.String, "metric": pl.String, "handle0": pl.String,
        "handle1": pl.String, "handle1_label": pl.String, "outcome": pl.String, "outcome_label": pl.String,
        "row": pl.Int64, "col": pl.Int64, "delta_better": pl.Float64, "delta_raw": pl.Float64,
        "delta_ci_lo_raw": pl.Float64, "delta_ci_hi_raw": pl.Float64, "p_adj": pl.Float64,
        "significant": pl.Boolean}).with_columns(pl.lit(lim).alias("color_limit"))
    return FigureResult(f"delta_heatmap_{exp.name}_{TASK_LABELS[task_type]}", fig, src)


# ---------------------------------------------------------------------------------------- axis summaries
@styled
def axis_summary(stats: StatsTables, exp: Experiment) -> FigureResult:
    """Per design axis and level: the mean over handles of each handle's mean primary metric (over the outcomes
    every handle has; bar from chance level), the range of handle means (whisker) and each handle (dots)."""
    axes = design_axes(exp) or ["arm"]
    m = stats.metrics.filter((pl.col("experiment") == exp.name)
                             & pl.col("metric").is_in(list(PRIMARY_METRIC.values())))
    m = m.with_columns(pl.col("point").fill_nan(None)).drop_nulls("point")
    if m.height == 0:
        raise MissingInput(f"no AUROC / Spearman rows for {exp.name}")
    tasks = [t for t, mt in PRIMARY_METRIC.items() if common_outcome_means(stats.metrics, exp.name, mt)[0]]
    if not tasks:
        raise MissingInput(f"no outcome of {exp.name} has a finite AUROC / Spearman for every handle")
    fig = _figure(max(2.4 * len(axes), 3.0), 2.0 * len(tasks) + 0.3)
    axs = fig.subplots(len(tasks), len(axes), squeeze=False)
    rows = []
    for ti, task in enumerate(tasks):
        metric = PRIMARY_METRIC[task]
        means, used = common_outcome_means(stats.metrics, exp.name, metric)
        hm = {h: (v, len(used)) for h, v in means.items()}
        for ai, axis in enumerate(axes):
            ax = axs[ti, ai]
            levels = list(dict.fromkeys(getattr(h, axis) for h in exp.handles.values()))
            chance = CHANCE[metric]
            for li, lev in enumerate(levels):
                hs = [n for n, h in exp.handles.items() if getattr(h, axis) == lev and n in hm]
                if not hs:
                    continue
                v = np.array([hm[n][0] for n in hs])
                mean = float(v.mean())
                color = OKABE_ITO[li % len(OKABE_ITO)]
                ax.bar(li, mean - chance, bottom=chance, color=color, alpha=0.55, width=0.7)
                ax.vlines(li, v.min(), v.max(), color="0.2", linewidth=0.9)
                ax.scatter(np.full(len(v), li), v, s=6, color="0.2", zorder=3)
                ax.annotate(f"{mean:.3f}", (li, v.max()), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=5)
                for n, val in zip(hs, v, strict=True):
                    rows.append({"experiment": exp.name, "task_type": task, "metric": metric, "axis": axis,
                                 "axis_label": AXES.get(axis, axis), "level": str(lev),
                                 "level_label": level_label(axis, lev), "x": li, "handle": n,
                                 "handle_label": exp.handles[n].label, "handle_mean": float(val),
                                 "n_outcomes": hm[n][1], "level_mean": mean, "level_min": float(v.min()),
                                 "level_max": float(v.max()), "bar_bottom": chance})
            ax.set_xticks(range(len(levels)), [level_label(axis, lev) for lev in levels], rotation=30, ha="right")
            ax.axhline(chance, color="0.4", linewidth=0.6)
            if ti == 0:
                ax.set_title(AXES.get(axis, axis))
            if ai == 0:
                ax.set_ylabel(f"mean {METRIC_LABELS[metric]}\n({TASK_LABELS[task]} outcomes)")
            vals = [r["handle_mean"] for r in rows if r["metric"] == metric]
            lo, hi = min([chance, *vals]), max([chance, *vals])
            pad = 0.08 * (hi - lo) if hi > lo else 0.05
            ax.set_ylim(lo - pad, hi + pad)
    fig.suptitle(f"{exp.name.capitalize()}: {exp.title} — averages along each design axis", fontsize=8)
    src = pl.DataFrame(rows, schema={
        "experiment": pl.String, "task_type": pl.String, "metric": pl.String, "axis": pl.String,
        "axis_label": pl.String, "level": pl.String, "level_label": pl.String, "x": pl.Int64, "handle": pl.String,
        "handle_label": pl.String, "handle_mean": pl.Float64, "n_outcomes": pl.Int64, "level_mean": pl.Float64,
        "level_min": pl.Float64, "level_max": pl.Float64, "bar_bottom": pl.Float64})
    return FigureResult(f"axis_summary_{exp.name}", fig, src)


# ------------------------------------------------------------------------------------------ calibration
def calibration_bins(y_true: np.ndarray, y_pred: np.ndarray, n_bins: int = 15) -> pl.DataFrame:
    """Reliability table with the ECE-15 convention: equal-width bins [k/n, (k+1)/n), the last closed at 1;
    per non-empty bin: count, mean prediction, observed positive fraction."""
    k = np.minimum(np.floor(y_pred * n_bins).astype(np.int64), n_bins - 1)
    n = np.bincount(k, minlength=n_bins)
    sp = np.bincount(k, weights=y_pred, minlength=n_bins)
    sy = np.bincount(k, weights=y_true.astype(np.float64), minlength=n_bins)
    keep = n > 0
    idx = np.flatnonzero(keep)
    return pl.DataFrame({"bin": idx.astype(np.int64), "bin_lo": idx / n_bins, "bin_hi": (idx + 1) / n_bins,
                         "n": n[keep].astype(np.int64), "mean_pred": sp[keep] / n[keep],
                         "frac_pos": sy[keep] / n[keep]})


@styled
def calibration_curves(inputs: PaperInputs, exp: Experiment, n_bins: int = 15) -> FigureResult:
    """Reliability diagrams of the primary binary outcomes on the held-out split, one line per handle."""
    primaries = [o for o, f in families_for(exp.name).items() if f.endswith("primary_binary")]
    st = handle_styles(exp)
    parts: list[pl.DataFrame] = []
    missing: list[str] = []
    for h in exp.handles.values():
        path = inputs.predictions(h)
        if not path.exists():
            missing.append(h.handle)
            continue
        df = (pl.scan_parquet(path)
              .filter((pl.col("split") == "held_out") & pl.col("outcome").is_in(primaries))
              .select("outcome", "y_true", "y_pred").collect())
        for col in ("y_true", "y_pred"):
            bad = df.with_row_index().filter(~pl.col(col).is_between(0, 1) | pl.col(col).is_null()
                                             | pl.col(col).cast(pl.Float64).is_nan())
            if bad.height:
                r = bad.row(0, named=True)
                raise ValueError(f"{path}: column {col}, held-out row {r['index']} (outcome {r['outcome']}): "
                                 f"{r[col]!r} is not a value in [0, 1]")
        for o in primaries:
            d = df.filter(pl.col("outcome") == o)
            if d.height == 0:
                continue
            yt, yp = d.get_column("y_true").cast(pl.Float64).to_numpy(), d.get_column("y_pred").cast(pl.Float64).to_numpy()
            if not np.isin(yt, (0.0, 1.0)).all():
                raise ValueError(f"{path}: column y_true of outcome {o} holds values other than 0/1")
            parts.append(calibration_bins(yt, yp, n_bins).with_columns(
                pl.lit(exp.name).alias("experiment"), pl.lit(o).alias("outcome"), pl.lit(h.handle).alias("handle"),
                pl.lit(h.label).alias("handle_label"), pl.lit(st[h.handle].color).alias("color")))
    if not parts:
        raise MissingInput(f"no held-out predictions of {exp.name}'s primary binary outcomes")
    src = pl.concat(parts).select("experiment", "outcome", "handle", "handle_label", "bin", "bin_lo", "bin_hi", "n",
                                  "mean_pred", "frac_pos", "color")
    outcomes = [o for o in primaries if o in set(src.get_column("outcome").to_list())]
    handles = [h for h in exp.handles if h in set(src.get_column("handle").to_list())]
    fig = _figure(7.0, 2.3)
    axs = fig.subplots(1, len(outcomes), squeeze=False).ravel()
    for ax, o in zip(axs, outcomes, strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=0.8)
        for h in handles:
            d = src.filter((pl.col("outcome") == o) & (pl.col("handle") == h))
            if d.height:
                ax.plot(d["mean_pred"], d["frac_pos"], marker=st[h].marker, markersize=2.5, linewidth=0.8,
                        color=st[h].color, label=exp.handles[h].label)
        ax.set_title(outcome_label(o))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("mean predicted probability")
    axs[0].set_ylabel("observed frequency")
    hs, ls = axs[0].get_legend_handles_labels()
    fig.legend(hs, ls, loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle(f"{exp.name.capitalize()}: calibration on the held-out split ({n_bins} equal-width bins)",
                 fontsize=8)
    return FigureResult(f"calibration_{exp.name}", fig, src,
                        grouped_skips("calibration", {exp.name: missing}, "predictions.parquet"))


# ---------------------------------------------------------------------------------- sequence lengths
def axis_siblings(exp: Experiment, axis: str) -> list[str]:
    """Handles equal to the baseline on every setting except ``axis`` (the baseline included), yaml order."""
    base = exp.handles[exp.baseline]
    skip = {"experiment", "handle", "label", axis}
    keys = [k for k in base.__dataclass_fields__ if k not in skip]
    return [n for n, h in exp.handles.items() if all(getattr(h, k) == getattr(base, k) for k in keys)]


def _seq_lens(inputs: PaperInputs, h: HandleConfig, layout: str, split: str) -> np.ndarray:
    path = inputs.tokenized(h) / layout / split / "tokens_timelines.parquet"
    if not path.exists():
        raise MissingInput(f"{path} does not exist")
    s = pl.read_parquet(path, columns=["seq_len"]).get_column("seq_len")
    if s.null_count():
        raise ValueError(f"{path}: column seq_len has null values")
    return s.to_numpy().astype(np.int64)


@styled
def length_histograms(inputs: PaperInputs, name: str, handles: Sequence[HandleConfig],
                      split: str = "train", n_bins: int = 40) -> FigureResult:
    """Histograms of timeline lengths (tokens, log-spaced bins) of ``handles``; panels full / first 24 h;
    dashed line = the context length (max_len)."""
    layouts = ("full", "first_24h")
    data: dict[tuple[str, str], np.ndarray] = {}
    skipped = []
    for h in handles:
        for lay in layouts:
            try:
                data[(h.handle, lay)] = _seq_lens(inputs, h, lay, split)
            except MissingInput as err:
                skipped.append(Skipped(f"{name}/{h.key}/{lay}", str(err)))
    if not data:
        raise MissingInput(f"none of {[h.key for h in handles]} is tokenized yet")
    top = max(int(v.max()) for v in data.values() if len(v)) if any(len(v) for v in data.values()) else 1
    edges = np.unique(np.round(np.geomspace(1, max(top, 2) + 1, n_bins + 1)).astype(np.int64))
    fig = _figure(7.0, 2.4)
    axs = fig.subplots(1, len(layouts), squeeze=False).ravel()
    rows = []
    for ax, lay in zip(axs, layouts, strict=True):
        for i, h in enumerate(handles):
            v = data.get((h.handle, lay))
            if v is None:
                continue
            cnt, _ = np.histogram(v, bins=edges)
            color = OKABE_ITO[i % len(OKABE_ITO)]
            ax.stairs(cnt, edges, color=color, linewidth=1.0, label=f"{h.label} (median {np.median(v):.0f})")
            for k in range(len(cnt)):
                rows.append({"figure": name, "layout": lay, "split": split, "experiment": h.experiment,
                             "handle": h.handle, "handle_label": h.label, "bin_lo": int(edges[k]),
                             "bin_hi": int(edges[k + 1]), "count": int(cnt[k]), "n": len(v),
                             "median": float(np.median(v))})
        try:
            max_len = read_json(inputs.tokenized(handles[0]) / "tokenizer.json").get("max_len")
        except MissingInput:
            max_len = None
        if max_len:
            ax.axvline(max_len, color="0.4", linestyle="--", linewidth=0.8, label=f"context {max_len}")
        ax.set_xscale("log")
        ax.set_title("full timeline" if lay == "full" else "first 24 h")
        ax.set_xlabel("tokens per admission")
        ax.legend(frameon=False)
    axs[0].set_ylabel(f"admissions ({split})")
    src = pl.DataFrame(rows, schema={
        "figure": pl.String, "layout": pl.String, "split": pl.String, "experiment": pl.String, "handle": pl.String,
        "handle_label": pl.String, "bin_lo": pl.Int64, "bin_hi": pl.Int64, "count": pl.Int64, "n": pl.Int64,
        "median": pl.Float64})
    return FigureResult(name, fig, src, skipped)


def length_histogram_handles(exps: Mapping[str, Experiment]) -> dict[str, list[HandleConfig]]:
    """The two comparisons: fused vs unfused (first experiment where fusion varies, baseline's siblings) and
    time tokens vs none (first experiment where time encoding varies; RoPE adds no tokens, so it is left out)."""
    out: dict[str, list[HandleConfig]] = {}
    for name, axis in (("length_histograms_fusion", "fused"), ("length_histograms_temporal", "temporal")):
        for exp in exps.values():
            if axis in design_axes(exp):
                sib = [exp.handles[n] for n in axis_siblings(exp, axis)]
                if axis == "temporal":
                    sib = [h for h in sib if h.temporal != "rope"]
                if len(sib) > 1:
                    out[name] = sib
                    break
    return out


# ------------------------------------------------------------------------------- value-bin embedding PCA
_Q = re.compile(r"^Q(\d+)$")


def value_bin_rows(tokens: Sequence[str], counts: np.ndarray | None, domain: str, itemid: int
                   ) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The fused bin tokens ``<domain>//<itemid>//<unit>//Q<k>`` of one measurement: (code, token ids sorted by
    k, bin numbers). Among several units the code with the most train tokens wins (ties: the code string)."""
    pat = re.compile(rf"^({re.escape(domain)}//{itemid}//.*)//Q(\d+)$")
    found: dict[str, list[tuple[int, int]]] = {}
    for tid, tok in enumerate(tokens):
        mt = pat.match(tok)
        if mt:
            found.setdefault(mt.group(1), []).append((int(mt.group(2)), tid))
    if not found:
        return None

    def total(code: str) -> int:
        return int(sum(counts[t] for _, t in found[code])) if counts is not None else 0

    code = sorted(found, key=lambda c: (-total(c), c))[0]
    pairs = sorted(found[code])
    return code, np.array([t for _, t in pairs], np.int64), np.array([k for k, _ in pairs], np.int64)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components of the rows of ``x`` (scikit-learn PCA, deterministic sign) and their
    explained-variance ratios; one component (or none) when there are too few rows."""
    from sklearn.decomposition import PCA

    n = min(2, x.shape[0] - 1, x.shape[1])
    if n < 1:
        return np.zeros((x.shape[0], 2)), np.zeros(2)
    p = PCA(n_components=n, svd_solver="full")
    z = p.fit_transform(x.astype(np.float64))
    ev = p.explained_variance_ratio_
    if n == 1:
        z, ev = np.column_stack([z, np.zeros(len(z))]), np.array([ev[0], 0.0])
    return z, ev


@dataclass(frozen=True)
class BinEmbeddings:
    """A trained model's value-bin embeddings: the token table, token strings and train counts, and the
    soft representation's shared bin table when it has one."""

    token_embeddings: np.ndarray
    tokens: tuple[str, ...]
    counts: np.ndarray | None
    soft_bins: np.ndarray | None = None


def load_bin_embeddings(model_dir: Path) -> BinEmbeddings:
    """Read a model directory through :func:`irbench_assets.models.extract.load_model` (CPU)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise MissingInput(f"{model_dir / 'config.json'} does not exist (model not trained yet)")
    from irbench_assets.models.extract import load_model

    model, meta = load_model(model_dir, device="cpu")
    emb = model.base.get_input_embeddings().weight.detach().float().cpu().numpy()
    vpath = model_dir / "vocab" / "vocab.parquet"
    counts = None
    if vpath.exists():
        v = pl.read_parquet(vpath).sort("token_id")
        if "count" in v.columns:
            counts = v.get_column("count").to_numpy()
    soft = getattr(model.representation, "bin_embeddings", None)
    return BinEmbeddings(emb, tuple(meta["tokenizer"].vocab.tokens), counts,
                         None if soft is None else soft.detach().float().cpu().numpy())


@styled
def pca_value_bins(h: HandleConfig, emb: BinEmbeddings) -> FigureResult:
    """PCA of the learned value-bin embeddings: per lab/vital the fused ``<code>//Q<k>`` tokens (fused
    vocabularies); for unfused vocabularies the shared ``Q<k>`` tokens (or the soft bin table), one panel,
    since every code uses the same bin embeddings. Points in bin order; hollow = bin never seen in train."""
    if h.representation in ("xval", "xval_affine"):
        raise MissingInput(f"{h.key}: xVal has no value-bin embeddings")
    panels: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray | None]] = []  # title, code, X, k, counts
    skipped = []
    if h.fused:
        for lab, (domain, itemid) in PCA_CODES.items():
            found = value_bin_rows(emb.tokens, emb.counts, domain, itemid)
            if found is None:
                skipped.append(Skipped(f"pca_value_bins_{h.experiment}_{h.handle}/{lab}",
                                       f"no {domain}//{itemid}//…//Q<k> tokens in the vocabulary"))
                continue
            code, tids, ks = found
            panels.append((lab, code, emb.token_embeddings[tids], ks,
                           emb.counts[tids] if emb.counts is not None else None))
    elif h.representation == "soft" and emb.soft_bins is not None:
        ks = np.arange(emb.soft_bins.shape[0])
        panels.append(("Soft bin table (shared by all codes)", "soft", emb.soft_bins, ks, None))
    else:
        q = sorted((int(m.group(1)), t) for t, tok in enumerate(emb.tokens) if (m := _Q.match(tok)))
        if q:
            tids = np.array([t for _, t in q], np.int64)
            panels.append(("Shared Q<k> tokens (all codes)", "Q", emb.token_embeddings[tids],
                           np.array([k for k, _ in q], np.int64),
                           emb.counts[tids] if emb.counts is not None else None))
    if not panels:
        raise MissingInput(f"{h.key}: no value-bin tokens in the vocabulary")
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(2.4 * ncols, 2.2 * nrows + 0.3)
    axs = fig.subplots(nrows, ncols, squeeze=False).ravel()
    cmap = matplotlib.colormaps["viridis"]
    rows = []
    for ax, (title, code, x, ks, cnt) in zip(axs, panels, strict=False):
        z, ev = pca_2d(x)
        kmax = max(int(ks.max()), 1)
        ax.plot(z[:, 0], z[:, 1], color="0.75", linewidth=0.6, zorder=1)
        seen = np.ones(len(ks), bool) if cnt is None else cnt > 0
        colors = cmap(ks / kmax)
        ax.scatter(z[seen, 0], z[seen, 1], c=colors[seen], s=10, zorder=2)
        ax.scatter(z[~seen, 0], z[~seen, 1], facecolors="none", edgecolors=colors[~seen], s=10, zorder=2)
        for i in (0, len(ks) - 1):
            ax.annotate(f"Q{ks[i]}", (z[i, 0], z[i, 1]), fontsize=5, xytext=(2, 2), textcoords="offset points")
        ax.set_title(f"{title}\n{code}" if code not in ("Q", "soft") else title)
        ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}%)")
        ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f}%)")
        for i in range(len(ks)):
            rows.append({"experiment": h.experiment, "handle": h.handle, "panel": title, "code": code,
                         "bin": int(ks[i]), "pc1": float(z[i, 0]), "pc2": float(z[i, 1]),
                         "train_count": None if cnt is None else int(cnt[i]), "ev1": float(ev[0]), "ev2": float(ev[1])})
    for ax in axs[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{h.experiment.capitalize()} {h.label}: PCA of learned value-bin embeddings "
                 "(colour = bin, dark = low; hollow = unseen in train)", fontsize=8)
    src = pl.DataFrame(rows, schema={"experiment": pl.String, "handle": pl.String, "panel": pl.String,
                                     "code": pl.String, "bin": pl.Int64, "pc1": pl.Float64, "pc2": pl.Float64,
                                     "train_count": pl.Int64, "ev1": pl.Float64, "ev2": pl.Float64})
    return FigureResult(f"pca_value_bins_{h.experiment}_{h.handle}", fig, src, skipped)


# ---------------------------------------------------------------------------------------------- writing
def write_figure(result: FigureResult, figures_dir: Path, dpi: int = 200) -> list[Path]:
    """Save ``<name>.pdf``, ``<name>.png`` and ``sources/<name>.csv`` atomically (no timestamps in the PDF)."""
    figures_dir = Path(figures_dir)
    pdf, png = figures_dir / f"{result.name}.pdf", figures_dir / f"{result.name}.png"
    src = figures_dir / "sources" / f"{result.name}.csv"
    with matplotlib.rc_context(STYLE):
        with atomic_file(pdf) as tmp:
            result.figure.savefig(tmp, format="pdf", metadata={"CreationDate": None, "ModDate": None})
        with atomic_file(png) as tmp:
            result.figure.savefig(tmp, format="png", dpi=dpi)
    with atomic_file(src) as tmp:
        result.source.write_csv(tmp)
    return [pdf, png, src]


def figure_builders(inputs: PaperInputs, stats: StatsTables | None,
                    pca_handles: Sequence[str] = DEFAULT_PCA_HANDLES,
                    embeddings: Callable[[Path], BinEmbeddings] = load_bin_embeddings,
                    ) -> list[tuple[str, Callable[[], FigureResult]]]:
    """Every figure as (item name, zero-argument builder), in the paper's order."""
    exps = inputs.exps

    def need_stats() -> StatsTables:
        if stats is None:
            raise MissingInput("statistics tables are missing")
        return stats

    limits = shared_delta_limits(stats) if stats is not None else {}
    items: list[tuple[str, Callable[[], FigureResult]]] = []
    for exp in exps.values():
        for task in PRIMARY_METRIC:
            tag = TASK_LABELS[task]
            items.append((f"forest_{exp.name}_{tag}", lambda exp=exp, task=task: forest_plot(need_stats(), exp, task)))
            items.append((f"delta_heatmap_{exp.name}_{tag}", lambda exp=exp, task=task: delta_heatmap(
                need_stats(), exp, task, limits.get(task))))
        items.append((f"axis_summary_{exp.name}", lambda exp=exp: axis_summary(need_stats(), exp)))
        items.append((f"calibration_{exp.name}", lambda exp=exp: calibration_curves(inputs, exp)))
    for name, hs in length_histogram_handles(exps).items():
        items.append((name, lambda name=name, hs=hs: length_histograms(inputs, name, hs)))
    for key in pca_handles:
        h = parse_arm_key(key)

        def pca(h: HandleConfig = h) -> FigureResult:
            return pca_value_bins(h, embeddings(inputs.model(h)))

        items.append((f"pca_value_bins_{h.experiment}_{h.handle}", pca))
    return items


def build_figures(out_dir: Path, inputs: PaperInputs, stats: StatsTables | None = None,
                  pca_handles: Sequence[str] = DEFAULT_PCA_HANDLES, dpi: int = 200,
                  embeddings: Callable[[Path], BinEmbeddings] = load_bin_embeddings) -> Manifest:
    """Write every figure (PDF, PNG, sources CSV) under ``out_dir/figures``; return the manifest.

    A figure whose input is missing is skipped with its reason; bad input raises. The folder is written to a
    temporary directory and swapped in. ``embeddings`` reads a model directory (default: via load_model).
    """
    from irbench_assets.paper.inputs import built_items, stats_or_skip

    out_dir = Path(out_dir)
    final = out_dir / "figures"
    man = Manifest(out_dir)
    stats = stats_or_skip(inputs, man, stats)
    with atomic_dir(final) as tmp:
        for res in built_items(man, figure_builders(inputs, stats, pca_handles, embeddings)):
            for p in write_figure(res, tmp, dpi):
                man.add_file(final / p.relative_to(tmp))
            man.skipped += res.skipped
    return man
