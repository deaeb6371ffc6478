"""Cost of the model-running diagnostics (attention washout with eager attention + hooks + contextual CE; xVal
zero-out audit with per-layer hooks) relative to a plain forward pass over the same timelines (the Stage-2
extraction path: SDPA, no hooks) measured in the same run, and agreement of the device (bf16 autocast)
answers with fp32 CPU answers on the same models.

    .venv/bin/python benchmarks/bench_diagnostics.py --quick          # CPU, tiny models, ~1 minute
    python benchmarks/bench_diagnostics.py --paper --out $OUT/x.json   # GPU: paper-size models (d=1024, 8 layers)

Writes benchmarks/results/diagnostics.md (unless --out names a JSON file only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    import polars  # noqa: F401
except ImportError:  # the GPU image has no polars; only storage.write_parquet uses it, never called here
    sys.modules["polars"] = types.ModuleType("polars")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from irbench_assets.diagnostics import Arm, attention_washout, xval_zero_audit  # noqa: E402
from irbench_assets.diagnostics.common import (  # noqa: E402
    analysis_batches,
    load_for_analysis,
    read_timeline_subset,
    resolve_arms,
)
from irbench_assets.experiments import get_handle  # noqa: E402
from irbench_assets.models.synthetic import write_synthetic_tokenized  # noqa: E402
from irbench_assets.models.train import train_model  # noqa: E402

PAPER = {"hidden_size": 1024, "intermediate_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 8,
         "head_dim": 64, "rope_type": "llama3"}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def core_timings(arm: Arm, n: int, batch_size: int, device: str, kind: str) -> dict:
    """Best-of-2 seconds of (a) the plain forward (default attention, no hooks) and (b) the diagnostic's core
    pass (eager + hooks + CE, or per-layer hooks) over the same timelines and loaded weights."""
    from irbench_assets.diagnostics.attention import washout_stats
    from irbench_assets.diagnostics.xval_audit import collect_num_states

    (ra,) = resolve_arms([arm])
    model, meta = load_for_analysis(ra, device=device)
    tl = read_timeline_subset(arm.tokenized_dir, "held_out", n, 42, need_minutes=True)
    amp, dev = meta["autocast"], meta["device"]

    def plain() -> int:
        tokens = 0
        with torch.no_grad():
            for _rows, batch in analysis_batches(tl, meta, batch_size):
                with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                    model(batch)
                tokens += batch.n_real
        return tokens

    def best(fn: Callable[[], object]) -> float:
        out = float("inf")
        for _ in range(2):  # the first round warms up kernels and the allocator
            sync(dev)
            t0 = time.perf_counter()
            fn()
            sync(dev)
            out = min(out, time.perf_counter() - t0)
        return out

    res = {"attn_plain": meta["attn_implementation"], "tokens": plain(), "plain_s": best(plain)}
    if kind == "attention":
        model.base.set_attn_implementation("eager")
        meta = {**meta, "attn_implementation": "eager"}
        res["core_s"] = best(lambda: washout_stats(model, meta, tl, batch_size))
    else:
        res["core_s"] = best(lambda: collect_num_states(model, meta, tl, batch_size))
    res["core_vs_plain"] = res["core_s"] / res["plain_s"]
    return res


def timed(fn: Callable[[], dict], dev: torch.device) -> tuple[dict, float, float]:
    """(summary, seconds, peak GiB on the device) of one diagnostic call."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    return out, time.perf_counter() - t0, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--paper", action="store_true", help="paper-size models (d=1024, 8 layers, 4096 context)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--timelines", type=int, default=None)
    a = ap.parse_args()
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    model_cfg = PAPER if a.paper else TINY
    block = 4096 if a.paper else 256
    n_tl = a.timelines or (40 if a.paper else (12 if a.quick else 40))
    rate = 40.0 if a.paper else 3.0  # events per hour: paper-like first-24h lengths (~1-2k tokens) on --paper
    work = Path(tempfile.mkdtemp(prefix="bench_diag_"))
    t0 = time.perf_counter()
    n_adm = 50 if a.paper else (40 if a.quick else 80)
    q = write_synthetic_tokenized(work / "q", n_admissions=n_adm, temporal="rope", max_len=block,
                                  events_per_hour=rate)
    x = write_synthetic_tokenized(work / "x", n_admissions=n_adm, temporal="rope", numeric_encoding="xval",
                                  max_len=block, events_per_hour=rate)
    train = {"block_size": block, "batch_size": 2, "lr": 1e-3, "max_steps": 2 if a.paper else 6,
             "device": str(dev), "eval_max_batches": 1}
    arms = {}
    for rep in ("discrete", "soft", "xval", "xval_affine"):
        data = x if rep.startswith("xval") else q
        train_model(data, get_handle("exp2", f"{rep}_rope"), model_cfg, train, work / rep, work / "w")
        arms[rep] = Arm(work / rep, data)
    setup_s = time.perf_counter() - t0
    res: dict = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor() or "cpu",
                 "torch": torch.__version__, "model": model_cfg, "context": block, "timelines": n_tl,
                 "setup_s": setup_s}
    bs = 2 if a.paper else 4
    res["attention_core"] = core_timings(arms["soft"], n_tl, bs, str(dev), "attention")
    res["xval_core"] = core_timings(arms["xval"], n_tl, bs, str(dev), "xval")
    s_att, t_att, m_att = timed(lambda: attention_washout([arms["discrete"], arms["soft"]], work / "att",
                                                          max_timelines=n_tl, batch_size=bs, device=str(dev)), dev)
    s_x, t_x, m_x = timed(lambda: xval_zero_audit([arms["xval"], arms["xval_affine"]], work / "xv",
                                                  max_timelines=n_tl, batch_size=bs, device=str(dev)), dev)
    res["attention_washout"] = {"seconds_2_arms": t_att, "peak_gib": m_att, "degradation": s_att["degradation"],
                                "mean_numeric_share": s_att["mean_numeric_share"]}
    res["xval_zero_audit"] = {"seconds_2_arms": t_x, "peak_gib": m_x, "share_input_erased": s_x["share_input_erased"]}
    if dev.type == "cuda":  # device (bf16 autocast) vs CPU fp32 on the same models and timelines
        k = 4
        with contextlib.redirect_stdout(sys.stderr):
            g = attention_washout([arms["soft"]], work / "g", max_timelines=k, batch_size=2, device="cuda")
            c = attention_washout([arms["soft"]], work / "c", max_timelines=k, batch_size=2, device="cpu")
        rg = json.loads((work / "g" / "attention_washout_results.json").read_text())["arms"]["exp2.soft_rope"]
        rc = json.loads((work / "c" / "attention_washout_results.json").read_text())["arms"]["exp2.soft_rope"]
        res["device_vs_cpu"] = {
            "max_abs_diff_numeric_share": float(np.max(np.abs(np.asarray(rg["attention"]["numeric_share"])
                                                              - np.asarray(rc["attention"]["numeric_share"])))),
            "ce_categorical": [rg["ce"]["categorical_targets"]["mean"], rc["ce"]["categorical_targets"]["mean"]],
            "degradation": [g["degradation"]["exp2.soft_rope"], c["degradation"]["exp2.soft_rope"]]}
    text = json.dumps(res, indent=2, sort_keys=True, default=str)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    else:
        ac, xc = res["attention_core"], res["xval_core"]
        md = ["# Diagnostics benchmark", "", f"Device: {res['device']}; model {model_cfg}; context {block}; "
              f"{n_tl} held-out timelines ({ac['tokens']} tokens).", "",
              "| pass (same loaded model, same timelines) | seconds | ratio to plain forward |", "|---|---|---|",
              f"| plain forward, {ac['attn_plain']}, no hooks (soft model; baseline) | {ac['plain_s']:.4f} | 1.00 |",
              f"| attention washout core (eager + hooks + CE) | {ac['core_s']:.4f} | {ac['core_vs_plain']:.2f} |",
              f"| plain forward, {xc['attn_plain']} (xval model; baseline) | {xc['plain_s']:.4f} | 1.00 |",
              f"| xVal audit core (per-layer hooks, norms) | {xc['core_s']:.4f} | {xc['core_vs_plain']:.2f} |",
              "", f"End to end (2 arms, load + run + JSON/PNG): attention_washout {t_att:.2f} s (peak {m_att:.2f} GiB), "
              f"xval_zero_audit {t_x:.2f} s (peak {m_x:.2f} GiB).", ""]
        (ROOT / "benchmarks" / "results" / "diagnostics.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
