"""Geometry of the learned value-bin embeddings (Exp1), and the serum-potassium grid.

**Embedding geometry** — for each arm, the bin embeddings in bin order: the shared ``Q<k>`` tokens of an
unfused arm (the soft bin table for soft arms) or, for a fused arm, the ``<code>//Q<k>`` tokens of each
selected code (potassium, hemoglobin, creatinine, glucose, sodium, heart rate by default; bins whose token
never occurs in train are left out and listed). Per set:

- the cosine-similarity matrix;
- a 2-D PCA (sklearn) with its explained-variance ratios, signs fixed so PC1/PC2 increase with bin order;
- the **U-shape metric** ``cos(bin_0, bin_last) − cos(bin_0, bin_middle)`` (middle = position (n−1)//2
  of the ordered bins): > 0 means the two extremes are closer to each other than the low extreme is to
  the middle — a folded scale (hypothesis for shared Q tokens: "abnormal low" and "abnormal high" end up
  alike); < 0 is the ordinal picture, where similarity falls with bin distance;
- two ordinal scores: ``ordinal_rho`` = Spearman correlation of |i − j| with cos(i, j) over bin pairs
  (−1 = similarity falls monotonically with bin distance) and ``pc1_rho`` = Spearman correlation of the
  bin index with PC1.

**Potassium grid** — for serum potassium (itemid 50971) in each arm: the number of quantile breakpoints
vs distinct breakpoints (values are reported to 0.1 mEq/L, so fine quantizers repeat edges and the
effective resolution is far below the nominal one), reachable / realised bins, the fused tokens present
(train count > 0) and missing (count 0: never seen, still at their random init), and a PCA panel per arm
arranged as a granularity × {unfused, fused} grid, points coloured by the bin's potassium midpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irbench_assets.diagnostics.common import (
    OUTPUTS,
    Arm,
    BinSet,
    LogFn,
    ResolvedArm,
    _noop,
    code_bin_set,
    cosine_matrix,
    find_code,
    input_embeddings,
    new_figure,
    pca_2d,
    reachable_bins,
    read_bins_table,
    read_vocab_table,
    resolve_arms,
    shared_bin_set,
    spearman,
    summary_table,
    u_shape,
    write_outputs,
)

GEOMETRY_CODES: tuple[tuple[str, str], ...] = (
    ("potassium", "LAB//50971//"), ("hemoglobin", "LAB//51222//"), ("creatinine", "LAB//50912//"),
    ("glucose", "LAB//50931//"), ("sodium", "LAB//50983//"), ("heart_rate", "VITAL//220045//"),
)
POTASSIUM = "LAB//50971//"
QUANTIZER_ORDER = {"deciles": 0, "ventiles": 1, "trentiles": 2, "centiles": 3}


def set_geometry(bs: BinSet, digits: int = 5) -> dict[str, Any]:
    """Cosine matrix, PCA, U-shape and ordinal scores of one ordered bin set."""
    cos = cosine_matrix(bs.vectors)
    coords, evr = pca_2d(bs.vectors)
    n = len(bs.bins)
    iu = np.triu_indices(n, k=1)
    out: dict[str, Any] = {
        "label": bs.label, "code": bs.code, "shared": bs.shared, "n_bins": n, "bins": bs.bins.tolist(),
        "token_counts": bs.counts.tolist(), "excluded_bins": bs.excluded,
        "midpoints": bs.midpoints.tolist() if bs.midpoints is not None else None,
        "cosine": np.round(cos, digits), "pca": {"coords": np.round(coords, digits), "explained_variance_ratio": evr},
        **u_shape(cos),
        # rounded so that equal similarities stay tied in the ranks despite float round-off
        "ordinal_rho": spearman(np.abs(iu[0] - iu[1]), np.round(cos[iu], 9)) if n >= 3 else float("nan"),
        "pc1_rho": spearman(np.arange(n), coords[:, 0]) if n >= 3 else float("nan"),
    }
    return out


def _arm_sets(arm: ResolvedArm, codes: Sequence[tuple[str, str]], min_count: int) -> tuple[list[BinSet], list[dict]]:
    """The bin sets of an arm: the shared Q set (unfused / soft) or one set per selected code (fused)."""
    vocab = read_vocab_table(arm.vocab_dir / "vocab.parquet")
    emb = input_embeddings(arm.model_dir)
    skipped: list[dict] = []
    if arm.representation in ("xval", "xval_affine"):
        return [], [{"set": "all", "reason": "xVal arms have no value-bin tokens"}]
    if not arm.fused:
        bs = shared_bin_set(arm, vocab, emb, min_count=min_count)
        return ([bs] if bs is not None else []), ([] if bs is not None else [{"set": "shared Q", "reason": "no Q<k> tokens"}])
    bins = read_bins_table(arm.vocab_dir / "bins.parquet")
    sets = []
    for name, prefix in codes:
        code = find_code(bins, prefix)
        if code is None:
            skipped.append({"set": name, "reason": f"no code starting with {prefix} in bins.parquet"})
            continue
        bs = code_bin_set(arm, vocab, bins, code, emb, min_count=min_count)
        bs.label = name
        sets.append(bs)
    return sets, skipped


def embedding_geometry(arms: Iterable[Arm | Mapping[str, Any]], out_dir: Path, *,
                       codes: Sequence[tuple[str, str]] = GEOMETRY_CODES, min_count: int = 1,
                       log: LogFn | None = None) -> dict[str, Any]:
    """Cosine heatmaps, PCA and U-shape metric of the value-bin embeddings of each arm; write
    ``embedding_geometry_results.json`` + two PNGs into ``out_dir`` atomically; return a summary."""
    log = log or _noop
    codes = [tuple(c) for c in codes]
    resolved = resolve_arms(arms)
    results: dict[str, Any] = {}
    for arm in resolved:
        log({"event": "embedding_geometry", "arm": arm.name})
        sets, skipped = _arm_sets(arm, codes, min_count)
        geo = {bs.label: set_geometry(bs) for bs in sets}
        u = [g["u_shape"] for g in geo.values() if np.isfinite(g["u_shape"])]
        results[arm.name] = {**arm.describe(), "shared_q_tokens": not arm.fused, "sets": geo, "skipped": skipped,
                             "mean_u_shape": float(np.mean(u)) if u else float("nan")}
    result = {"diagnostic": "embedding_geometry", "schema_version": 1, "codes": dict(codes), "min_count": min_count,
              "u_shape_definition": "cos(bin_0, bin_last) - cos(bin_0, bin_middle), middle = (n-1)//2",
              "arms": results}
    _folder, json_name, (png_main, png_u) = OUTPUTS["embedding_geometry"]
    figs = {png_main: _plot_sets(results), png_u: _plot_u(results)}
    files = write_outputs(Path(out_dir), json_name, result, figs)
    rows = [{"arm": a, "sets": len(r["sets"]), "mean_u_shape": r["mean_u_shape"],
             "mean_ordinal_rho": float(np.nanmean([g["ordinal_rho"] for g in r["sets"].values()])) if r["sets"] else None}
            for a, r in sorted(results.items())]
    return {"out_dir": str(out_dir), "files": files, "n_arms": len(results),
            "u_shape": {a: {k: g["u_shape"] for k, g in r["sets"].items()} for a, r in sorted(results.items())},
            "preview_md": summary_table(rows, list(rows[0]))}


def _first_set(r: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    if not r["sets"]:
        return None
    key = "potassium" if "potassium" in r["sets"] else sorted(r["sets"])[0]
    return key, r["sets"][key]


def _pca_panel(ax: Any, g: Mapping[str, Any], title: str) -> None:
    coords = np.asarray(g["pca"]["coords"], dtype=float)
    color = np.asarray(g["midpoints"], dtype=float) if g.get("midpoints") is not None else np.asarray(g["bins"], dtype=float)
    if coords.size:
        ax.plot(coords[:, 0], coords[:, 1], color="0.7", lw=0.8, zorder=1)
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=color, cmap="viridis", s=18, zorder=2)
        ax.figure.colorbar(sc, ax=ax, shrink=0.7, label="bin midpoint" if g.get("midpoints") is not None else "bin")
    evr = g["pca"]["explained_variance_ratio"]
    fmt = [f"{v:.0%}" if v is not None and np.isfinite(v) else "–" for v in evr]
    ax.set_xlabel(f"PC1 ({fmt[0]})")
    ax.set_ylabel(f"PC2 ({fmt[1]})")
    ax.set_title(title, fontsize=8)


def _plot_sets(results: Mapping[str, Any]) -> Any:
    names = [a for a in sorted(results) if _first_set(results[a]) is not None] or sorted(results)
    fig = new_figure(9, 3.3 * max(len(names), 1))
    axes = fig.subplots(max(len(names), 1), 2, squeeze=False)
    for i, a in enumerate(names):
        first = _first_set(results[a])
        if first is None:
            axes[i, 0].set_axis_off()
            axes[i, 1].set_axis_off()
            continue
        key, g = first
        cos = np.asarray(g["cosine"], dtype=float)
        im = axes[i, 0].imshow(cos, vmin=-1, vmax=1, cmap="RdBu_r")
        axes[i, 0].set_title(f"{a} — {key}: cosine (U-shape {g['u_shape']:.3f})", fontsize=8)
        axes[i, 0].set_xlabel("bin (ordered)")
        fig.colorbar(im, ax=axes[i, 0], shrink=0.7)
        _pca_panel(axes[i, 1], g, f"{a} — {key}: PCA")
    return fig


def _plot_u(results: Mapping[str, Any]) -> Any:
    labels, values = [], []
    for a in sorted(results):
        for k, g in sorted(results[a]["sets"].items()):
            labels.append(f"{a} · {k}")
            values.append(g["u_shape"])
    fig = new_figure(7, 1.0 + 0.28 * max(len(labels), 1))
    ax = fig.subplots()
    y = np.arange(len(labels))
    ax.barh(y, [v if np.isfinite(v) else 0 for v in values],
            color=["#D55E00" if np.isfinite(v) and v > 0 else "#0072B2" for v in values])
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("U-shape = cos(first, last) − cos(first, middle)")
    return fig


# ------------------------------------------------------------------------------------------- potassium grid
def potassium_summary(arm: ResolvedArm, code_prefix: str = POTASSIUM, min_count: int = 1) -> dict[str, Any]:
    """Breakpoints, reachable / realised bins, present / missing fused bins and the PCA of one arm."""
    vocab = read_vocab_table(arm.vocab_dir / "vocab.parquet")
    bins = read_bins_table(arm.vocab_dir / "bins.parquet")
    code = find_code(bins, code_prefix)
    base = {**arm.describe(), "code_prefix": code_prefix}
    if arm.representation in ("xval", "xval_affine"):
        return {**base, "status": "skipped", "reason": "xVal arms have no value-bin tokens"}
    if code is None:
        return {**base, "status": "skipped", "reason": f"no code starting with {code_prefix} in bins.parquet"}
    cb = bins[code]
    edges = cb.edges
    uniq, mult = np.unique(edges, return_counts=True)
    ks, _mids = reachable_bins(edges)
    out: dict[str, Any] = {
        **base, "status": "ok", "code": code, "n_bins_nominal": cb.n_bins_nominal or len(edges) + 1,
        "n_breakpoints": len(edges), "n_unique_breakpoints": len(uniq), "n_bins_reachable": len(ks),
        "n_bins_realized": cb.n_bins_realized, "breakpoints": edges.tolist(),
        "duplicate_breakpoints": [[float(v), int(m)] for v, m in zip(uniq, mult, strict=True) if m > 1],
        "n_train_values": cb.n_values,
    }
    if arm.fused:
        counts = np.array([vocab.counts[vocab.lookup[t]] if (t := f"{code}//Q{k}") in vocab.lookup else -1
                           for k in range(len(edges) + 1)])
        out["fused_bins_present"] = [int(k) for k in np.flatnonzero(counts > 0)]
        out["fused_bins_missing"] = [int(k) for k in np.flatnonzero(counts == 0)]
        out["fused_bins_not_in_vocab"] = [int(k) for k in np.flatnonzero(counts < 0)]
    else:
        out["fused_bins_present"] = out["fused_bins_missing"] = None
        out["note"] = "unfused: the bins are the shared Q<k> tokens (no per-code tokens to be missing)"
    emb = input_embeddings(arm.model_dir)
    bs = code_bin_set(arm, vocab, bins, code, emb, min_count=min_count)
    coords, evr = pca_2d(bs.vectors)
    out["pca"] = {"bins": bs.bins.tolist(), "midpoints": bs.midpoints.tolist(), "coords": np.round(coords, 5),
                  "explained_variance_ratio": evr, "excluded_bins": bs.excluded}
    return out


def potassium_geometry_grid(arms: Iterable[Arm | Mapping[str, Any]], out_dir: Path, *,
                            code_prefix: str = POTASSIUM, min_count: int = 1, log: LogFn | None = None) -> dict[str, Any]:
    """Serum-potassium breakpoints and PCA panels per arm (granularity × fused grid); write
    ``potassium_geometry_grid_results.json`` + ``.png`` into ``out_dir`` atomically; return a summary."""
    log = log or _noop
    resolved = resolve_arms(arms)
    results: dict[str, Any] = {}
    for arm in resolved:
        log({"event": "potassium_geometry_grid", "arm": arm.name})
        results[arm.name] = potassium_summary(arm, code_prefix, min_count)
    result = {"diagnostic": "potassium_geometry_grid", "schema_version": 1, "code_prefix": code_prefix,
              "min_count": min_count, "arms": results}
    _folder, json_name, (png,) = OUTPUTS["potassium_geometry_grid"]
    files = write_outputs(Path(out_dir), json_name, result, {png: _plot_grid(resolved, results)})
    rows = [{"arm": a, "n_breakpoints": r.get("n_breakpoints"), "n_unique": r.get("n_unique_breakpoints"),
             "fused_missing": len(r["fused_bins_missing"]) if r.get("fused_bins_missing") is not None else None}
            for a, r in sorted(results.items())]
    return {"out_dir": str(out_dir), "files": files, "n_arms": len(results),
            "n_unique_breakpoints": {a: r.get("n_unique_breakpoints") for a, r in sorted(results.items())},
            "preview_md": summary_table(rows, list(rows[0]))}


def _plot_grid(arms: Sequence[ResolvedArm], results: Mapping[str, Any]) -> Any:
    def row_key(a: ResolvedArm) -> tuple:
        return (QUANTIZER_ORDER.get(a.quantizer, 9), a.quantizer, str(a.handle.get("anchoring", "none")))

    row_keys = sorted({row_key(a) for a in arms})
    fig = new_figure(9, 3.2 * len(row_keys))
    axes = fig.subplots(len(row_keys), 2, squeeze=False)
    used = np.zeros(axes.shape, dtype=bool)
    for a in arms:
        r = results[a.name]
        i, j = row_keys.index(row_key(a)), int(a.fused)
        ax = axes[i, j]
        if used[i, j]:  # two arms in one cell (e.g. two models of a handle): keep the first
            continue
        used[i, j] = True
        if r["status"] != "ok":
            ax.text(0.5, 0.5, f"{a.name}\n{r['reason']}", ha="center", va="center", fontsize=7)
            ax.set_axis_off()
            continue
        g = {"pca": r["pca"], "midpoints": r["pca"]["midpoints"], "bins": r["pca"]["bins"]}
        miss = len(r["fused_bins_missing"]) if r.get("fused_bins_missing") is not None else "–"
        _pca_panel(ax, g, f"{a.name}: {r['n_breakpoints']} breakpoints, {r['n_unique_breakpoints']} unique, "
                          f"missing fused bins {miss}")
    for i, j in zip(*np.nonzero(~used), strict=True):
        axes[i, j].set_axis_off()
    return fig
