"""Sparsity distance: how far did each token's input embedding move from its initial value, as a function
of how often the token occurs in train? (Exp1: fused centiles, ~100 tokens per lab, vs fused deciles.)

Per token: ``distance = ||E_trained − E_init||_2`` with ``E_init`` the embedding matrix **saved at
initialisation** (``initial_embeddings.safetensors``, written by train_model), ``relative = distance /
||E_init||``, and ``log10(count + 1)`` with ``count`` the train occurrences from ``vocab.parquet``.

A token is **frozen** when ``relative < frozen_rel`` (default 0.1). Why 0.1: an embedding that moved by
less than a tenth of its own initial norm still has cosine ≥ 0.995 with its random draw (if the move is
orthogonal; ≥ 0.9 in the worst case) and a norm within 10 % of it — it is still, for all practical
purposes, the random vector it started as. The floor that weight decay alone produces is far below it:
AdamW's decoupled decay shrinks every row by ``Π(1 − lr_t · wd)``, ≈ 0.5 % for the paper's 1e-4 × 0.01 over
~10⁴ steps. Rows with a zero initial norm (``PAD``, whose row is zeroed at init) are left out.

Caveat: the input and output embeddings are tied, so every token receives a gradient from the softmax
normaliser at every step even when it never occurs; with Adam's per-coordinate normalisation such small,
consistent gradients still move a row. "Frozen" therefore means "barely moved", not "received no
gradient". The reference compared against a *regenerated* N(0, 0.02) draw (two independent draws are
≈ 0.9 apart); ``share_below_reference_threshold`` applies its absolute threshold (1.5 × σ √d) to our true
distances for comparison.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from irbench_assets.diagnostics.common import (
    OUTPUTS,
    Arm,
    LogFn,
    _noop,
    initial_embeddings,
    input_embeddings,
    new_figure,
    read_vocab_table,
    resolve_arms,
    spearman,
    summary_table,
    write_outputs,
)

FREQ_EDGES = (1, 10, 100, 1_000, 10_000, 100_000)  # count bins: 0, [1,10), [10,100), ..., >= 1e5


def _freq_labels() -> list[str]:
    pairs = itertools.pairwise(FREQ_EDGES)
    return ["0"] + [f"[{a:g},{b:g})" for a, b in pairs] + [f">={FREQ_EDGES[-1]:g}"]


def token_distances(model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per token: L2 distance of the learned input embedding from the saved initial one, and the initial norm."""
    e1 = input_embeddings(model_dir).astype(np.float64)
    e0 = initial_embeddings(model_dir).astype(np.float64)
    if e0.shape != e1.shape:
        raise ValueError(f"{model_dir}: initial_embeddings.safetensors has shape {e0.shape}, the model {e1.shape}")
    return np.linalg.norm(e1 - e0, axis=1), np.linalg.norm(e0, axis=1)


def sparsity_stats(distance: np.ndarray, init_norm: np.ndarray, counts: np.ndarray, kinds: tuple[str, ...],
                   frozen_rel: float, reference_threshold: float | None) -> dict[str, Any]:
    """Frozen shares (overall, zero-count, by kind, by frequency bin), Spearman(log freq, distance)."""
    ok = init_norm > 0
    rel = np.divide(distance, init_norm, out=np.full_like(distance, np.nan), where=ok)
    frozen = ok & (rel < frozen_rel)
    logf = np.log10(counts.astype(np.float64) + 1)
    fbin = np.where(counts <= 0, 0, np.digitize(counts, FREQ_EDGES))
    labels = _freq_labels()
    by_freq = []
    for b, lab in enumerate(labels):
        sel = ok & (fbin == b)
        by_freq.append({"count_bin": lab, "n": int(sel.sum()),
                        "median_distance": float(np.median(distance[sel])) if sel.any() else float("nan"),
                        "median_relative": float(np.median(rel[sel])) if sel.any() else float("nan"),
                        "frozen_share": float(frozen[sel].mean()) if sel.any() else float("nan")})
    by_kind = {}
    karr = np.asarray(kinds)
    for k in sorted(set(kinds)):
        sel = ok & (karr == k)
        if sel.any():
            by_kind[k or "unknown"] = {"n": int(sel.sum()), "frozen_share": float(frozen[sel].mean()),
                                       "median_relative": float(np.median(rel[sel]))}
    zero = ok & (counts == 0)
    out = {
        "vocab_size": len(distance), "n_evaluated": int(ok.sum()), "n_zero_init_norm": int((~ok).sum()),
        "frozen_rel": frozen_rel, "frozen_share": float(frozen[ok].mean()) if ok.any() else float("nan"),
        "n_frozen": int(frozen.sum()), "n_zero_count": int(zero.sum()),
        "frozen_share_zero_count": float(frozen[zero].mean()) if zero.any() else float("nan"),
        "median_distance": float(np.median(distance[ok])) if ok.any() else float("nan"),
        "median_relative": float(np.nanmedian(rel)) if ok.any() else float("nan"),
        "median_init_norm": float(np.median(init_norm[ok])) if ok.any() else float("nan"),
        "spearman_log_freq_distance": spearman(logf[ok], distance[ok]),
        "by_count_bin": by_freq, "by_kind": by_kind,
    }
    if reference_threshold is not None:
        out["reference_threshold"] = reference_threshold
        out["share_below_reference_threshold"] = float((distance[ok] < reference_threshold).mean()) if ok.any() else float("nan")
    return out


def sparsity_distance(arms: Iterable[Arm | Mapping[str, Any]], out_dir: Path, *, frozen_rel: float = 0.1,
                      log: LogFn | None = None) -> dict[str, Any]:
    """Embedding drift from the saved initial weights vs train frequency for each arm; write
    ``sparsity_distance_results.json`` + ``sparsity_distance.png`` into ``out_dir`` atomically."""
    log = log or _noop
    if not frozen_rel > 0:
        raise ValueError(f"frozen_rel must be > 0, got {frozen_rel}")
    resolved = resolve_arms(arms)
    results: dict[str, Any] = {}
    points: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for arm in resolved:
        log({"event": "sparsity_distance", "arm": arm.name})
        vocab = read_vocab_table(arm.vocab_dir / "vocab.parquet")
        dist, norm0 = token_distances(arm.model_dir)
        if len(dist) != vocab.size:
            raise ValueError(f"{arm.vocab_dir / 'vocab.parquet'} has {vocab.size} tokens, the embeddings {len(dist)} rows")
        model_cfg = arm.config.get("model", {})
        sigma, d = model_cfg.get("initializer_range"), model_cfg.get("hidden_size")
        ref = 1.5 * float(sigma) * float(np.sqrt(d)) if sigma and d else None
        results[arm.name] = {**arm.describe(), "vocab_size_handle": vocab.size,
                             **sparsity_stats(dist, norm0, vocab.counts, vocab.kinds, frozen_rel, ref)}
        points[arm.name] = (np.log10(vocab.counts + 1.0), dist, norm0)
    result = {"diagnostic": "sparsity_distance", "schema_version": 1, "frozen_rel": frozen_rel,
              "frozen_definition": "||E - E_init|| / ||E_init|| < frozen_rel (E_init saved at initialisation)",
              "arms": results}
    _folder, json_name, (png,) = OUTPUTS["sparsity_distance"]
    files = write_outputs(Path(out_dir), json_name, result, {png: _plot(points, frozen_rel)})
    rows = [{"arm": a, "vocab": r["vocab_size"], "frozen_share": r["frozen_share"],
             "frozen_share_zero_count": r["frozen_share_zero_count"], "rho_logfreq_dist": r["spearman_log_freq_distance"]}
            for a, r in sorted(results.items())]
    return {"out_dir": str(out_dir), "files": files, "n_arms": len(results),
            "frozen_share": {a: r["frozen_share"] for a, r in sorted(results.items())},
            "preview_md": summary_table(rows, list(rows[0]))}


def _plot(points: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], frozen_rel: float) -> Any:
    names = sorted(points)
    fig = new_figure(4.2 * len(names), 3.6)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        logf, dist, norm0 = points[name]
        ok = norm0 > 0
        ax.scatter(logf[ok], dist[ok], s=2, alpha=0.3, color="#0072B2", rasterized=True)
        thr = frozen_rel * float(np.median(norm0[ok])) if ok.any() else 0.0
        ax.axhline(thr, color="#D55E00", lw=1, label=f"frozen: < {frozen_rel:g} × ||E_init|| (median {thr:.3g})")
        ax.set_xlabel("log10(train count + 1)")
        ax.set_ylabel("||E - E_init||")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    return fig
