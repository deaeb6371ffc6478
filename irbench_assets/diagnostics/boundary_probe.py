"""Clinical boundary probe: do the learned value-bin embeddings know where "abnormal" starts?

For each lab with a fixed adult reference interval (potassium 3.5–5.0 mEq/L, glucose 70–100 mg/dL,
creatinine 0.6–1.2 mg/dL, hemoglobin 12.0–17.5 g/dL, troponin T 0–0.04 ng/mL) and each arm (Exp1:
deciles / ventiles / trentiles / centiles, fused or not):

1. the lab's code is found in the arm's ``bins.parquet`` (``LAB//<itemid>//<unit>``; the unit with the most
   train values when there are several);
2. its reachable bins get a midpoint from the edges (centre of each bin; the two open outer bins
   extrapolated by half the width of their inner neighbour; bins between duplicate edges are empty and
   left out) and a label: abnormal when the midpoint lies outside the closed reference interval;
3. each bin's static input embedding — the fused token ``<code>//Q<k>``, or, unfused, the shared ``Q<k>``
   (the soft bin table for soft models) — is one sample; bins whose token never occurs in train (fused
   zero-frequency tokens, still at their random init) are left out and listed;
4. leave-one-out logistic regression (sklearn, L2, ``C``; inside each fold the rows are centred and divided
   by one global scale, their RMS norm — see :class:`GlobalScale`) gives
   the accuracy, the balanced accuracy and the majority-class rate (the accuracy of always answering the
   larger class, the honest chance level since the classes are unbalanced).

A lab is skipped, with the reason recorded, when its code is missing, the arm has no value bins (xVal),
its midpoints are undefined (fewer than two distinct edges) or a class has fewer than ``min_per_class``
bins (leave-one-out then leaves a fold with a single class).

Unfused caveat: ``Q<k>`` tokens are shared by every code, so for unfused arms every lab probes the *same*
embedding matrix; only the labels differ, and they differ only through where each lab's reference
interval falls among its own quantile edges. A high accuracy there says the shared Q geometry separates
the bins this lab calls abnormal (typically the extremes — which needs a folded, U-shaped scale for a
linear probe), not that the model learned anything about that lab.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from irbench_assets.diagnostics.common import (
    OUTPUTS,
    Arm,
    LogFn,
    _noop,
    code_bin_set,
    find_code,
    input_embeddings,
    new_figure,
    read_bins_table,
    read_vocab_table,
    resolve_arms,
    summary_table,
    write_outputs,
)

UNFUSED_NOTE = ("Unfused arms share the Q<k> tokens across all codes: every lab is probed on the same "
                "embedding matrix (Q0..Qn-1 restricted to the bins that lab can reach), only the normal/abnormal "
                "labels change. Their accuracy measures whether the shared bin geometry separates the bins each "
                "lab calls abnormal (usually the extremes), not lab-specific knowledge.")


@dataclass(frozen=True)
class LabRange:
    """A lab (code prefix ``LAB//<itemid>//``) and its closed reference interval [low, high]."""

    name: str
    code_prefix: str
    low: float
    high: float


DEFAULT_LABS: tuple[LabRange, ...] = (
    LabRange("potassium", "LAB//50971//", 3.5, 5.0),
    LabRange("glucose", "LAB//50931//", 70.0, 100.0),
    LabRange("creatinine", "LAB//50912//", 0.6, 1.2),
    LabRange("hemoglobin", "LAB//51222//", 12.0, 17.5),
    LabRange("troponin_t", "LAB//51003//", 0.0, 0.04),
)


class GlobalScale:
    """Centre the rows and divide by one global scale (the RMS norm of the centred rows): an isotropic
    version of StandardScaler, which sklearn lacks. It keeps the geometry of the embedding (the relative
    size of its dimensions; per-feature standardisation would blow noise dimensions up to the size of the
    one that carries the boundary) while making ``C`` mean the same for a 64-d demo model and a 1024-d
    paper model (raw embeddings of norm ~0.1-0.6 would be swamped by the L2 penalty)."""

    def fit(self, x: np.ndarray, y: Any = None) -> GlobalScale:
        self.mean_ = x.mean(axis=0)
        rms = float(np.sqrt(np.mean(np.sum((x - self.mean_) ** 2, axis=1))))
        self.scale_ = rms if rms > 0 else 1.0
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_

    def fit_transform(self, x: np.ndarray, y: Any = None) -> np.ndarray:
        return self.fit(x, y).transform(x)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def set_params(self, **params: Any) -> GlobalScale:
        return self


def loo_probe(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Leave-one-out predictions of an L2 logistic regression (sklearn) on globally scaled embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(GlobalScale(), LogisticRegression(C=c, max_iter=10_000))
    return cross_val_predict(clf, np.asarray(x, dtype=np.float64), np.asarray(y), cv=LeaveOneOut())


def probe_bins(vectors: np.ndarray, midpoints: np.ndarray, low: float, high: float, c: float = 1.0,
               min_per_class: int = 2) -> dict[str, Any]:
    """Label bins by midpoint vs [low, high] and run the leave-one-out probe; a skip carries ``reason``."""
    mids = np.asarray(midpoints, dtype=np.float64)
    y = ((mids < low) | (mids > high)).astype(np.int64)
    out: dict[str, Any] = {"n_bins": len(y), "n_abnormal": int(y.sum()), "n_normal": int(len(y) - y.sum()),
                           "labels": y.tolist()}
    if len(y) and not np.all(np.isfinite(mids)):
        return {**out, "status": "skipped", "reason": "bin midpoints undefined (fewer than 2 distinct edges)"}
    if len(y) < 2 * min_per_class:
        return {**out, "status": "skipped", "reason": f"too few bins ({len(y)}; need >= {2 * min_per_class})"}
    if y.min() == y.max():
        which = "abnormal" if y[0] else "normal"
        return {**out, "status": "skipped", "reason": f"single class: every bin is {which}"}
    small = min(out["n_abnormal"], out["n_normal"])
    if small < min_per_class:
        return {**out, "status": "skipped", "reason": f"too few bins in one class (abnormal {out['n_abnormal']}, "
                f"normal {out['n_normal']}; need >= {min_per_class} each)"}
    pred = loo_probe(vectors, y, c)
    correct = pred == y
    recall = [float(correct[y == k].mean()) for k in (0, 1)]
    return {**out, "status": "ok", "reason": None, "predicted": pred.tolist(), "accuracy": float(correct.mean()),
            "balanced_accuracy": float(np.mean(recall)), "majority_baseline": float(max(y.mean(), 1 - y.mean()))}


def clinical_boundary_probe(arms: Iterable[Arm | Mapping[str, Any]], out_dir: Path, *,
                            labs: Sequence[LabRange | Mapping[str, Any]] = DEFAULT_LABS, c: float = 1.0,
                            min_per_class: int = 2, min_count: int = 1, log: LogFn | None = None) -> dict[str, Any]:
    """Run the probe for every arm × lab; write ``clinical_boundary_probe_results.json`` + ``.png`` into
    ``out_dir`` atomically; return a small summary (accuracy per arm × lab)."""
    log = log or _noop
    lab_list = [lab if isinstance(lab, LabRange) else LabRange(**lab) for lab in labs]
    resolved = resolve_arms(arms)
    results: dict[str, Any] = {}
    for arm in resolved:
        log({"event": "clinical_boundary_probe", "arm": arm.name})
        vocab = read_vocab_table(arm.vocab_dir / "vocab.parquet")
        bins = read_bins_table(arm.vocab_dir / "bins.parquet")
        emb = input_embeddings(arm.model_dir)
        per_lab: dict[str, Any] = {}
        for lab in lab_list:
            base = {"reference_range": [lab.low, lab.high], "code_prefix": lab.code_prefix}
            if arm.representation in ("xval", "xval_affine"):
                per_lab[lab.name] = {**base, "status": "skipped", "reason": "xVal arms have no value-bin tokens"}
                continue
            code = find_code(bins, lab.code_prefix)
            if code is None:
                per_lab[lab.name] = {**base, "status": "skipped",
                                     "reason": f"no code starting with {lab.code_prefix} in bins.parquet"}
                continue
            bs = code_bin_set(arm, vocab, bins, code, emb, min_count=min_count)
            res = probe_bins(bs.vectors, bs.midpoints, lab.low, lab.high, c, min_per_class)
            per_lab[lab.name] = {**base, "code": code, "shared_embeddings": bs.shared, "bins": bs.bins.tolist(),
                                 "midpoints": bs.midpoints.tolist(), "token_counts": bs.counts.tolist(),
                                 "excluded_bins": bs.excluded, **res}
        results[arm.name] = {**arm.describe(), "shared_q_tokens": not arm.fused, "labs": per_lab}
    result = {"diagnostic": "clinical_boundary_probe", "schema_version": 1,
              "labs": {lab.name: {"code_prefix": lab.code_prefix, "low": lab.low, "high": lab.high} for lab in lab_list},
              "classifier": {"model": "GlobalScale (centre, divide by the RMS row norm) + LogisticRegression(L2)", "C": c, "cv": "leave-one-out"},
              "min_per_class": min_per_class, "min_count": min_count, "note": UNFUSED_NOTE, "arms": results}
    _folder, json_name, (png,) = OUTPUTS["clinical_boundary_probe"]
    files = write_outputs(Path(out_dir), json_name, result, {png: _plot(results, [lab.name for lab in lab_list])})
    acc = {a: {lab: r["labs"][lab].get("accuracy") for lab in r["labs"]} for a, r in sorted(results.items())}
    rows = [{"arm": a, **{lab: v for lab, v in labs_acc.items()}} for a, labs_acc in acc.items()]
    return {"out_dir": str(out_dir), "files": files, "n_arms": len(results), "accuracy": acc,
            "n_skipped": sum(1 for r in results.values() for v in r["labs"].values() if v["status"] != "ok"),
            "preview_md": summary_table(rows, ["arm", *[lab.name for lab in lab_list]])}


def _plot(results: Mapping[str, Any], labs: list[str]) -> Any:
    names = list(sorted(results))
    acc = np.full((len(names), len(labs)), np.nan)
    text = [["" for _ in labs] for _ in names]
    for i, a in enumerate(names):
        for j, lab in enumerate(labs):
            r = results[a]["labs"][lab]
            if r["status"] == "ok":
                acc[i, j] = r["accuracy"]
                text[i][j] = f"{r['accuracy']:.2f}\n(maj {r['majority_baseline']:.2f}, n={r['n_bins']})"
            else:
                text[i][j] = "skipped"
    fig = new_figure(2.0 + 1.9 * len(labs), 1.2 + 0.55 * len(names))
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(acc), vmin=0, vmax=1, cmap="cividis", aspect="auto")
    for i in range(len(names)):
        for j in range(len(labs)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=6,
                    color="white" if np.isfinite(acc[i, j]) and acc[i, j] < 0.5 else "black")
    ax.set_xticks(range(len(labs)), labs, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title("Clinical boundary probe: leave-one-out accuracy (majority-class rate in brackets)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
