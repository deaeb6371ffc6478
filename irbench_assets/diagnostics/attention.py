"""Attention washout and contextual cross-entropy (soft vs discrete, Exp2 ``*_rope`` / ``*_tt`` pairs).

Hypothesis under test: soft discretisation makes value positions look alike (mixtures of neighbouring bin
embeddings), so categorical tokens stop using them — their attention drifts away from numeric keys and
predicting what follows a value gets harder.

On at most ``max_timelines`` first-24h timelines of ``split`` (the same hash-chosen admissions for every
handle), each cut to the model's context, with the model switched to **eager** attention (the only
implementation that returns attention weights; the weights are the same softmax SDPA computes):

(a) **attention share** — for every layer × head, the attention mass that *categorical* query positions
    give to *numeric* keys (``Q<k>``, fused ``<code>//Q<k>``, ``[NUM]``), to categorical keys and to special
    keys (``TL_START``, ``nan``, ...), averaged over queries (each query's row sums to 1). The share a
    query would give numeric keys under uniform attention over its visible keys is reported as
    ``uniform_numeric_share``; ``numeric_enrichment`` = share / that baseline (1 = indifferent).
(b) **contextual CE** — the next-token cross-entropy (hard targets, natural log) of categorical target
    tokens, split by the class of the token right before the target: after a numeric token vs after a
    categorical token; ``degradation`` = CE after numeric − CE after categorical.

Token classes come from the token strings (``common.token_classes``); time-spacing tokens count as
categorical. Contrasts pair ``discrete`` and ``soft`` arms of the same experiment and time encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irbench_assets.diagnostics.common import (
    CATEGORICAL,
    CLASS_NAMES,
    NUMERIC,
    OUTPUTS,
    SPECIAL,
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
    summary_table,
    token_classes,
    write_outputs,
)


def washout_stats(model: Any, meta: Mapping[str, Any], tl: Any, batch_size: int = 4) -> dict[str, Any]:
    """Attention mass by key class (summed over categorical queries, per layer × head) and per-target CE
    by previous-token class, for a loaded model running with eager attention."""
    import torch
    import torch.nn.functional as F

    from irbench_assets.models.config import IGNORE_INDEX

    if model.attn_implementation != "eager":
        raise ValueError(f"attention weights need attn_implementation='eager', the model runs {model.attn_implementation!r}")
    vocab = meta["tokenizer"].vocab
    cls_np = token_classes(vocab.tokens)
    dev = meta["device"]
    cls = torch.as_tensor(cls_np, dtype=torch.long, device=dev)
    layers = model.base.model.layers
    n_layers = len(layers)
    n_heads = int(model.base.config.num_attention_heads)
    mass = torch.zeros(n_layers, n_heads, 3, dtype=torch.float64, device=dev)
    state: dict[str, Any] = {}

    def make_hook(i: int) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            w = output[1]
            if w is None:
                raise RuntimeError("the attention layer returned no weights (not eager attention?)")
            per = torch.matmul(w, state["key_onehot"].to(w.dtype)[:, None])  # [B, H, Tq, 3]
            mass[i] += (per.double() * state["query"][:, None, :, None]).sum(dim=(0, 2))
        return hook

    handles = [layer.self_attn.register_forward_hook(make_hook(i)) for i, layer in enumerate(layers)]
    n_queries = 0
    uniform_sum = 0.0
    key_counts = np.zeros(3, dtype=np.int64)
    ce_sum = np.zeros(3)  # CE of categorical targets by previous-token class (special, numeric, categorical)
    ce_n = np.zeros(3, dtype=np.int64)
    amp = meta["autocast"]
    try:
        with torch.no_grad():
            for _rows, batch in analysis_batches(tl, meta, batch_size):
                real = batch.segments >= 0
                c = cls[batch.input_ids]
                key_onehot = F.one_hot(c, 3) * real[..., None]
                query = ((c == CATEGORICAL) & real).double()
                state["key_onehot"], state["query"] = key_onehot.float(), query
                with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                    hidden = model(batch)
                # uniform-attention baseline: numeric keys among the visible keys 0..q of each query
                n_num = torch.cumsum((c == NUMERIC) & real, dim=1).double()
                visible = torch.arange(1, c.shape[1] + 1, device=dev, dtype=torch.float64)
                uniform_sum += float((n_num / visible * query).sum())
                n_queries += int(query.sum())
                key_counts += np.bincount(c[real].cpu().numpy(), minlength=3)
                labels = batch.labels
                valid = labels != IGNORE_INDEX
                tgt_cat = valid & (cls[labels.clamp(min=0)] == CATEGORICAL)
                for b in range(hidden.shape[0]):  # one row at a time keeps the [T, V] logits small
                    sel = tgt_cat[b]
                    if not bool(sel.any()):
                        continue
                    logits = model.base.lm_head(hidden[b][sel].float()).float()
                    ce = F.cross_entropy(logits, labels[b][sel], reduction="none").double().cpu().numpy()
                    prev = c[b][sel].cpu().numpy()
                    ce_sum += np.bincount(prev, weights=ce, minlength=3)
                    ce_n += np.bincount(prev, minlength=3)
    finally:
        for h in handles:
            h.remove()
    return {"mass": mass.cpu().numpy(), "n_queries": n_queries, "uniform_sum": uniform_sum,
            "key_counts": key_counts, "ce_sum": ce_sum, "ce_n": ce_n, "n_layers": n_layers, "n_heads": n_heads}


def summarise(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Shares per layer × head, the uniform baseline, enrichment and the CE split from :func:`washout_stats`."""
    nq = max(raw["n_queries"], 1)
    share = raw["mass"] / nq  # [L, H, 3]
    uniform = raw["uniform_sum"] / nq if raw["n_queries"] else float("nan")
    ce_sum, ce_n = raw["ce_sum"], raw["ce_n"]

    def ce(k: int) -> float:
        return float(ce_sum[k] / ce_n[k]) if ce_n[k] else float("nan")

    after_num, after_cat = ce(NUMERIC), ce(CATEGORICAL)
    total_n = int(ce_n.sum())
    return {
        "n_categorical_queries": int(raw["n_queries"]),
        "key_class_counts": {CLASS_NAMES[k]: int(raw["key_counts"][k]) for k in range(3)},
        "attention": {
            "numeric_share": share[..., NUMERIC], "categorical_share": share[..., CATEGORICAL],
            "special_share": share[..., SPECIAL], "uniform_numeric_share": uniform,
            "numeric_enrichment": share[..., NUMERIC] / uniform if uniform and np.isfinite(uniform) else
            np.full(share.shape[:2], np.nan),
            "layer_mean_numeric_share": share[..., NUMERIC].mean(axis=1),
        },
        "ce": {
            "categorical_targets": {"mean": float(ce_sum.sum() / total_n) if total_n else float("nan"), "n": total_n},
            "after_numeric": {"mean": after_num, "n": int(ce_n[NUMERIC])},
            "after_categorical": {"mean": after_cat, "n": int(ce_n[CATEGORICAL])},
            "after_special": {"mean": ce(SPECIAL), "n": int(ce_n[SPECIAL])},
            "degradation": after_num - after_cat,
        },
    }


def _contrasts(arms: Sequence[ResolvedArm], results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """soft − discrete, for arms of the same experiment and time encoding."""
    out = []
    for a, b in matched_pairs(arms, "discrete", "soft"):
        ra, rb = results[a.name], results[b.name]
        out.append({
            "discrete": a.name, "soft": b.name, "temporal": a.handle.get("temporal"),
            "delta_layer_mean_numeric_share": rb["attention"]["layer_mean_numeric_share"]
            - ra["attention"]["layer_mean_numeric_share"],
            "ce_categorical_targets": [ra["ce"]["categorical_targets"]["mean"], rb["ce"]["categorical_targets"]["mean"]],
            "degradation": [ra["ce"]["degradation"], rb["ce"]["degradation"]],
            "delta_degradation": rb["ce"]["degradation"] - ra["ce"]["degradation"],
        })
    return out


def _plot(results: Mapping[str, Mapping[str, Any]]) -> Any:
    names = sorted(results)
    n = len(names)
    fig = new_figure(3.6 * (n + 1), 3.6)
    axes = fig.subplots(1, n + 1, squeeze=False)[0]
    top = max(float(np.nanmax(results[a]["attention"]["numeric_share"])) for a in names) or 1.0
    im = None
    for ax, name in zip(axes[:n], names, strict=True):
        m = results[name]["attention"]["numeric_share"]
        im = ax.imshow(m, vmin=0, vmax=top, cmap="viridis", aspect="auto")
        ax.set_title(f"{name}\nnumeric share (uniform {results[name]['attention']['uniform_numeric_share']:.3f})",
                     fontsize=8)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]), [str(i + 1) for i in range(m.shape[0])])
    if im is not None:
        fig.colorbar(im, ax=axes[:n].tolist(), shrink=0.8)
    ax = axes[n]
    x = np.arange(n)
    num = [results[a]["ce"]["after_numeric"]["mean"] for a in names]
    cat = [results[a]["ce"]["after_categorical"]["mean"] for a in names]
    ax.bar(x - 0.2, num, 0.4, label="after numeric", color="#D55E00")
    ax.bar(x + 0.2, cat, 0.4, label="after categorical", color="#0072B2")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("CE of categorical targets (nats)")
    ax.legend(fontsize=7)
    return fig


def attention_washout(arms: Iterable[Arm | Mapping[str, Any]], out_dir: Path, *, split: str = "held_out",
                      max_timelines: int | None = 500, batch_size: int = 4, seed: int = 42, device: str = "auto",
                      log: LogFn | None = None) -> dict[str, Any]:
    """Attention share and contextual CE for each arm (model + tokenized folder); write
    ``out_dir/attention_washout_results.json`` + ``attention_washout.png`` atomically; return a summary."""
    log = log or _noop
    resolved = resolve_arms(arms)
    results: dict[str, dict[str, Any]] = {}
    for arm in resolved:
        if arm.tokenized_dir is None:
            raise ValueError(f"arm {arm.name}: attention washout needs tokenized_dir (its first_24h/{split} timelines)")
        log({"event": "attention_washout", "arm": arm.name})
        model, meta = load_for_analysis(arm, device=device, attn_implementation="eager")
        tl = read_timeline_subset(arm.tokenized_dir, split, max_timelines, seed, need_minutes=meta["temporal"] == "rope")
        res = summarise(washout_stats(model, meta, tl, batch_size))
        res.update(arm.describe())
        res["n_timelines"] = int(tl.n)
        res["n_timelines_cut_to_context"] = int((tl.lengths > int(meta["context_length"])).sum())
        results[arm.name] = res
        del model
    result = {"diagnostic": "attention_washout", "schema_version": 1, "split": split, "max_timelines": max_timelines,
              "seed": seed, "attn_implementation": "eager", "arms": results, "contrasts": _contrasts(resolved, results)}
    _folder, json_name, (png,) = OUTPUTS["attention_washout"]
    files = write_outputs(Path(out_dir), json_name, result, {png: _plot(results)})
    rows = [{"arm": n, "numeric_share": float(r["attention"]["numeric_share"].mean()),
             "uniform": r["attention"]["uniform_numeric_share"],
             "ce_cat": r["ce"]["categorical_targets"]["mean"], "ce_after_num": r["ce"]["after_numeric"]["mean"],
             "ce_after_cat": r["ce"]["after_categorical"]["mean"], "degradation": r["ce"]["degradation"]}
            for n, r in sorted(results.items())]
    return {"out_dir": str(out_dir), "files": files, "n_arms": len(results),
            "degradation": {n: r["ce"]["degradation"] for n, r in sorted(results.items())},
            "mean_numeric_share": {n: float(r["attention"]["numeric_share"].mean()) for n, r in sorted(results.items())},
            "preview_md": summary_table(rows, list(rows[0]))}
