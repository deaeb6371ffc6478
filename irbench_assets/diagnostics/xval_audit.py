"""xVal near-zero zero-out audit (Exp2 ``xval_*`` vs ``xval_affine_*`` models).

Plain xVal feeds ``z * E[NUM]`` with ``z`` the code-normalised value, so a value at its code's median
enters the decoder as (almost) the zero vector: the model literally cannot see it. This audit measures how
often that happens and whether the decoder recovers: on at most ``max_timelines`` first-24h timelines of
``split`` (held_out by default, a fixed hash-chosen subset shared by every handle) it records, at every
valued ``[NUM]`` position,

- the scale factor ``z`` exactly as the model computes it (``XValRepresentation.normalized``: clipped at
  ``clip_sigma``; positions whose code has no statistics keep the plain embedding and are only counted),
- the L2 norm of the hidden state there: ``input`` (what the first decoder layer receives, i.e. after the
  xVal scaling), the residual stream after each decoder layer ``layer_1..layer_L``, and ``final`` (after
  the final RMSNorm, the representation Stage 2 extracts).

Results: the share of scale factors within ``±near_zero``, the share of inputs that are effectively erased
(norm below 10 % of the median token-embedding norm), the mean norm per ``|z|`` bin and layer, and the
"trench" ratio = mean norm at ``|z| <= near_zero`` / mean norm at ``|z| >= 1`` per layer (≈ 0 at the input
for xval, ≈ 1 when nothing is erased), with xval vs xval_affine contrasts of the same time encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irbench_assets.diagnostics.common import (
    OUTPUTS,
    Arm,
    LogFn,
    ResolvedArm,
    _noop,
    analysis_batches,
    load_for_analysis,
    matched_pairs,
    new_figure,
    read_timeline_subset,
    resolve_arms,
    spearman,
    summary_table,
    write_outputs,
)

# |z| bins of the norm profile: [0, .1), [.1, .25), ..., [3, clip), and the clipped values (|z| == clip)
Z_EDGES = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0)
ERASED_FRACTION = 0.1  # an input norm below this share of the median token-embedding norm counts as erased


def z_bin_labels(clip: float) -> list[str]:
    """Labels of the |z| bins (the last one holds the values clipped at ``clip``)."""
    lo = (0.0, *Z_EDGES)
    hi = (*Z_EDGES, clip)
    return [f"[{a:g},{b:g})" for a, b in zip(lo, hi, strict=True)] + [f"={clip:g} (clipped)"]


def z_bin_index(abs_z: np.ndarray, clip: float) -> np.ndarray:
    """Bin of each |z| (see :func:`z_bin_labels`)."""
    idx = np.digitize(abs_z, Z_EDGES)
    return np.where(abs_z >= clip, len(Z_EDGES) + 1, idx)


def collect_num_states(model: Any, meta: Mapping[str, Any], tl: Any, batch_size: int = 8) -> dict[str, Any]:
    """Run the model over the timelines; return z, the per-layer hidden norms at valued [NUM] positions and
    counts. ``model`` is a loaded xVal RepresentationModel (its own forward, with hooks on the layers)."""
    import torch

    rep = model.representation
    if not hasattr(rep, "normalized"):
        raise ValueError(f"xVal audit needs an xval / xval_affine model; got representation {meta['representation']!r}")
    layers = model.base.model.layers
    names = ["input"] + [f"layer_{i + 1}" for i in range(len(layers))] + ["final"]
    captured: dict[int, Any] = {}

    def pre_hook(_module: Any, args: tuple, kwargs: dict) -> None:
        captured[0] = args[0] if args else kwargs["hidden_states"]

    def make_hook(i: int) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            captured[i] = output[0] if isinstance(output, tuple) else output
        return hook

    handles = [layers[0].register_forward_pre_hook(pre_hook, with_kwargs=True)]
    handles += [layer.register_forward_hook(make_hook(i + 1)) for i, layer in enumerate(layers)]
    zs: list[np.ndarray] = []
    norms: list[list[np.ndarray]] = [[] for _ in names]
    n_num_tokens = n_no_stats = n_tokens = 0
    num_id = int(rep.num_id)
    amp = meta["autocast"]
    try:
        with torch.no_grad():
            for _rows, batch in analysis_batches(tl, meta, batch_size):
                with torch.autocast(batch.input_ids.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    final = model(batch)
                is_num, z = rep.normalized(batch)
                real = batch.segments >= 0
                num_tok = (batch.input_ids == num_id) & real
                n_tokens += int(real.sum())
                n_num_tokens += int(num_tok.sum())
                n_no_stats += int((num_tok & ~is_num).sum())
                zs.append(z[is_num].float().cpu().numpy())
                states = [captured[i] for i in range(len(layers) + 1)] + [final]
                for j, h in enumerate(states):
                    norms[j].append(h[is_num].float().norm(dim=-1).cpu().numpy())
    finally:
        for h in handles:
            h.remove()
    emb = model.base.get_input_embeddings().weight.detach().float()
    token_norms = emb.norm(dim=-1).cpu().numpy()
    e_num = float(emb[num_id].norm())
    shift = getattr(rep, "shift", None)
    return {"z": np.concatenate(zs) if zs else np.zeros(0, dtype=np.float32),
            "norms": {n: (np.concatenate(v) if v else np.zeros(0, dtype=np.float32)) for n, v in zip(names, norms, strict=True)},
            "layers": names, "n_tokens": n_tokens, "n_num_tokens": n_num_tokens, "n_num_without_stats": n_no_stats,
            "clip": float(rep.clip), "num_embedding_norm": e_num,
            "shift_norm": float(shift.detach().float().norm()) if shift is not None else None,
            "median_token_embedding_norm": float(np.median(token_norms[token_norms > 0])) if (token_norms > 0).any() else 0.0}


def summarise(raw: Mapping[str, Any], near_zero: float) -> dict[str, Any]:
    """Shares, counts, norm-by-|z| profiles and trench ratios from :func:`collect_num_states` output."""
    z = raw["z"].astype(np.float64)
    az = np.abs(z)
    clip = raw["clip"]
    bins = z_bin_index(az, clip)
    labels = z_bin_labels(clip)
    n = len(z)
    out: dict[str, Any] = {
        "n_tokens": raw["n_tokens"], "n_num_tokens": raw["n_num_tokens"],
        "n_num_without_stats": raw["n_num_without_stats"], "n_num_scaled": n,
        "share_scale_within_near_zero": float(np.mean(az <= near_zero)) if n else float("nan"),
        "share_clipped": float(np.mean(az >= clip)) if n else float("nan"),
        "scale_factor_quantiles": {f"q{int(q * 100):02d}": float(np.quantile(z, q)) for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)} if n else {},
        "abs_z_bins": labels, "abs_z_bin_counts": np.bincount(bins, minlength=len(labels)).tolist(),
        "num_embedding_norm": raw["num_embedding_norm"], "shift_norm": raw["shift_norm"],
        "median_token_embedding_norm": raw["median_token_embedding_norm"], "layers": raw["layers"],
    }
    inp = raw["norms"]["input"].astype(np.float64)
    threshold = ERASED_FRACTION * raw["median_token_embedding_norm"]
    out["erased_threshold"] = threshold
    out["share_input_erased"] = float(np.mean(inp < threshold)) if n else float("nan")
    profile: dict[str, list[dict[str, Any]]] = {}
    trench: dict[str, float] = {}
    rho: dict[str, float] = {}
    for name in raw["layers"]:
        v = raw["norms"][name].astype(np.float64)
        rows = []
        for b, lab in enumerate(labels):
            sel = v[bins == b]
            rows.append({"bin": lab, "n": int(sel.size),
                         "mean": float(sel.mean()) if sel.size else float("nan"),
                         "median": float(np.median(sel)) if sel.size else float("nan"),
                         "p10": float(np.quantile(sel, 0.1)) if sel.size else float("nan"),
                         "p90": float(np.quantile(sel, 0.9)) if sel.size else float("nan")})
        profile[name] = rows
        near, far = v[az <= near_zero], v[az >= 1.0]
        trench[name] = float(near.mean() / far.mean()) if near.size and far.size and far.mean() > 0 else float("nan")
        rho[name] = spearman(az, v)
    out["norm_by_abs_z"] = profile
    out["near_zero_over_far_norm"] = trench
    out["spearman_abs_z_norm"] = rho
    out["mean_norm"] = {name: float(raw["norms"][name].mean()) if n else float("nan") for name in raw["layers"]}
    return out


def _contrasts(arms: Sequence[ResolvedArm], results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """xval vs xval_affine pairs of the same experiment and time encoding."""
    out = []
    for a, b in matched_pairs(arms, "xval", "xval_affine"):
        ra, rb = results[a.name], results[b.name]
        out.append({"xval": a.name, "xval_affine": b.name, "temporal": a.handle.get("temporal"),
                    "near_zero_over_far_norm": {k: [ra["near_zero_over_far_norm"][k], rb["near_zero_over_far_norm"][k]]
                                                for k in ra["near_zero_over_far_norm"]},
                    "share_input_erased": [ra["share_input_erased"], rb["share_input_erased"]]})
    return out


def _plot(results: Mapping[str, Mapping[str, Any]], raws: Mapping[str, Mapping[str, Any]], near_zero: float) -> Any:
    names = sorted(results)
    fig = new_figure(14, 3.4 * len(names))
    axes = fig.subplots(len(names), 3, squeeze=False)
    for r, name in enumerate(names):
        res, raw = results[name], raws[name]
        z, inp = raw["z"], raw["norms"]["input"]
        ax = axes[r, 0]
        if z.size:
            ax.hist(z, bins=np.linspace(-raw["clip"], raw["clip"], 81), color="#0072B2")
        ax.axvspan(-near_zero, near_zero, color="#D55E00", alpha=0.3, label=f"|z| ≤ {near_zero:g}")
        ax.set_title(f"{name}: scale factors z (share ≤ {near_zero:g}: {res['share_scale_within_near_zero']:.3f})",
                     fontsize=9)
        ax.set_xlabel("z")
        ax.legend(fontsize=7)
        ax = axes[r, 1]
        pick = np.random.default_rng(0).permutation(z.size)[:4000]
        ax.scatter(np.abs(z[pick]), inp[pick], s=3, alpha=0.4, color="#009E73")
        ax.set_xlabel("|z|")
        ax.set_ylabel("input L2 norm at [NUM]")
        ax.set_title("decoder input norm vs |z|", fontsize=9)
        ax = axes[r, 2]
        labels = res["abs_z_bins"]
        for layer in res["layers"]:
            means = np.array([row["mean"] if row["mean"] is not None else np.nan for row in res["norm_by_abs_z"][layer]],
                             dtype=float)
            scale = res["mean_norm"][layer]
            ax.plot(range(len(labels)), means / scale if scale else means, marker="o", ms=3, label=layer)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("mean norm / layer mean")
        ax.set_title("hidden-state norm by |z| bin", fontsize=9)
        ax.legend(fontsize=6, ncol=2)
    return fig


def xval_zero_audit(arms: Iterable[Arm | Mapping[str, Any]], out_dir: Path, *, split: str = "held_out",
                    max_timelines: int | None = 500, near_zero: float = 0.1, batch_size: int = 8, seed: int = 42,
                    device: str = "auto", log: LogFn | None = None) -> dict[str, Any]:
    """Audit xVal's zero-out on each arm (model + tokenized folder); write
    ``out_dir/xval_zero_out_results.json`` + ``xval_zero_out.png`` atomically; return a small summary."""
    log = log or _noop
    resolved = resolve_arms(arms)
    results: dict[str, dict[str, Any]] = {}
    raws: dict[str, dict[str, Any]] = {}
    for arm in resolved:
        if arm.tokenized_dir is None:
            raise ValueError(f"arm {arm.name}: the xVal audit needs tokenized_dir (its first_24h/{split} timelines)")
        if arm.representation not in ("xval", "xval_affine"):
            raise ValueError(f"arm {arm.name}: representation {arm.representation!r} is not xval / xval_affine")
        log({"event": "xval_zero_audit", "arm": arm.name})
        model, meta = load_for_analysis(arm, device=device)
        tl = read_timeline_subset(arm.tokenized_dir, split, max_timelines, seed, need_minutes=meta["temporal"] == "rope")
        raw = collect_num_states(model, meta, tl, batch_size)
        res = summarise(raw, near_zero)
        res.update(arm.describe())
        res["n_timelines"] = int(tl.n)
        res["n_timelines_cut_to_context"] = int((tl.lengths > int(meta["context_length"])).sum())
        results[arm.name], raws[arm.name] = res, raw
        del model
    result = {"diagnostic": "xval_zero_audit", "schema_version": 1, "split": split, "max_timelines": max_timelines,
              "near_zero": near_zero, "erased_fraction": ERASED_FRACTION, "seed": seed, "arms": results,
              "contrasts": _contrasts(resolved, results)}
    _folder, json_name, (png,) = OUTPUTS["xval_zero_audit"]
    files = write_outputs(Path(out_dir), json_name, result, {png: _plot(results, raws, near_zero)})
    rows = [{"arm": n, "n_num": r["n_num_scaled"], "share_|z|<=0.1": r["share_scale_within_near_zero"],
             "share_input_erased": r["share_input_erased"],
             "input_trench": r["near_zero_over_far_norm"]["input"], "final_trench": r["near_zero_over_far_norm"]["final"]}
            for n, r in sorted(results.items())]
    return {"out_dir": str(out_dir), "files": files, "n_arms": len(results),
            "share_scale_within_near_zero": {n: r["share_scale_within_near_zero"] for n, r in sorted(results.items())},
            "share_input_erased": {n: r["share_input_erased"] for n, r in sorted(results.items())},
            "preview_md": summary_table(rows, list(rows[0]))}
