"""One-shot GPU check for Stage 1: trains a paper-size model (8 layers, d=1024, 8 heads, head_dim 64, vocab ~20k,
rows of 4096 tokens, batch 4, bf16 autocast, AdamW) for ~100 steps on synthetic packed timelines with each
attention path, and prints tokens/s as JSON:

- ``sdpa_packed``: SDPA with our block-diagonal piece mask (what runs without flash-attn),
- ``sdpa_causal``: SDPA with a plain causal mask (no admission boundaries; the flash backend of SDPA),
- ``flash_attention_2_packed``: FlashAttention-2 varlen over the pieces (only if flash_attn imports),
- ``soft_sdpa_packed`` / ``xval_sdpa_packed``: the representation overheads on GPU,
- ``sdpa_windowed_rope``: the Exp2/3 layout (windows padded per batch, 2-D padding mask, time positions),

plus a correctness check (hidden states of an admission inside a packed row vs alone, bf16).

    python scripts/gpu_check.py --out /tmp/gpu_check.json [--e2e]  # on a GPU machine (~2-3 minutes)
    python scripts/gpu_check.py --tiny [--e2e]                     # CPU smoke run (seconds)

The throughput part needs only torch, transformers, numpy and pyarrow. ``--e2e`` also runs ``train_model``
(with an interruption and resume) and ``extract_features`` on the device for two small handles; it imports
``irbench_assets.storage``, hence polars and pyyaml.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from irbench_assets.models.config import IGNORE_INDEX, ModelConfig, TrainConfig, read_tokenizer_outputs  # noqa: E402
from irbench_assets.models.data import Batch, Plan, collate, packed_plan, read_timelines, windowed_plan  # noqa: E402
from irbench_assets.models.llama import build_llama, count_parameters  # noqa: E402
from irbench_assets.models.optim import build_optimizers  # noqa: E402
from irbench_assets.models.synthetic import write_synthetic_tokenized  # noqa: E402
from irbench_assets.models.wrapper import RepresentationModel, build_representation  # noqa: E402

PAPER = {"hidden_size": 1024, "intermediate_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 8,
         "num_key_value_heads": 8, "head_dim": 64, "rope_type": "llama3"}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


def run_config(name: str, data: Path, rep: str, attn: str, causal_only: bool, sizes: dict, block: int, batch: int,
               steps: int, warmup: int, device: torch.device, windowed_rope: bool = False) -> dict:
    """Train ``warmup + steps`` steps; return tokens/s over the timed steps, step time, memory, losses."""
    tok = read_tokenizer_outputs(data / "train")
    tl = read_timelines(data / "full" / "train" / "tokens_timelines.parquet", need_minutes=windowed_rope)
    plan = (windowed_plan(tl, block, seed=42, epoch=0, max_windows=None) if windowed_rope
            else packed_plan(tl, block, seed=42, epoch=0))
    n_batches = plan.n_batches(batch) - 1  # skip the padded last row's batch
    mcfg = ModelConfig.from_dict(sizes)
    torch.manual_seed(42)
    model = RepresentationModel(build_llama(mcfg, tok.vocab, attn),
                                build_representation(rep, tok, mcfg, 10)).to(device)
    opt = build_optimizers(model, TrainConfig.from_dict({}), 1e-4)[0]
    amp = device.type == "cuda"
    batches = [collate(tl, plan.batch_pieces(b % n_batches, batch), tok.vocab, windowed_rope, 60.0)
               for b in range(min(n_batches, 16))]
    if causal_only:  # one piece per row: the plain causal path, admissions may attend to each other
        ignore = torch.full((batch, 1), IGNORE_INDEX)
        batches = [Batch(**{**b.__dict__, "segments": torch.zeros_like(b.segments),
                            "labels": torch.cat([b.input_ids[:, 1:], ignore], 1)}) for b in batches]
    losses, times, tokens = [], [], 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(warmup + steps):
        b = batches[step % len(batches)].to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            parts = model.loss(b)
        parts.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = float(parts.total.detach())
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            tokens += b.n_real
        losses.append(loss)
    total = sum(times)
    return {"representation": rep, "attn_implementation": attn, "causal_only": causal_only,
            "layout": "windowed+rope" if windowed_rope else "packed", "padding_share": 1 - tokens / (
                sum(batches[i % len(batches)].input_ids.numel() for i in range(warmup, warmup + steps))),
            "n_parameters": count_parameters(model), "tokens_per_s": tokens / total, "step_ms": 1000 * total / steps,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "loss_first": losses[0], "loss_last": losses[-1], "finite": all(x == x for x in losses)}


def mask_check(data: Path, attn: str, sizes: dict, device: torch.device) -> float:
    """Max |difference| of an admission's hidden states inside a packed row vs on its own (bf16 on GPU)."""
    tok = read_tokenizer_outputs(data / "train")
    tl = read_timelines(data / "full" / "train" / "tokens_timelines.parquet", need_minutes=False)
    plan = packed_plan(tl, 1024, seed=42, epoch=0)
    r = int(next(r for r in range(plan.n_rows - 1) if (plan.row == r).sum() >= 2))
    sub = plan.batch_pieces(r, 1)
    row = collate(tl, sub, tok.vocab, False, 60.0).to(device)
    j = 1  # the second piece of the row, recomputed alone
    alone_plan = Plan(sub.row[j:j + 1] * 0, sub.doc[j:j + 1], sub.start[j:j + 1], sub.stop[j:j + 1],
                      sub.cont[j:j + 1], 1, None)
    alone = collate(tl, alone_plan, tok.vocab, False, 60.0).to(device)
    mcfg = ModelConfig.from_dict(sizes)
    torch.manual_seed(0)
    model = RepresentationModel(build_llama(mcfg, tok.vocab, attn), build_representation("discrete", tok, mcfg, 10))
    model = model.to(device).eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        h_row = model(row)[0][row.segments[0] == j].float()
        h_alone = model(alone)[0].float()
    return float((h_row - h_alone).abs().max())


def end_to_end(root: Path, tiny: bool) -> dict:
    """``train_model`` + ``extract_features`` on this device for two small handles (soft + rope windowed,
    xVal-Aff packed with a 2-point LR sweep), with an interruption/resume in the first; returns their summaries."""
    import dataclasses

    import pyarrow.parquet as pq

    from irbench_assets.experiments import get_handle
    from irbench_assets.models.extract import extract_features
    from irbench_assets.models.train import train_model

    sizes = TINY if tiny else {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
                               "num_attention_heads": 4}
    out: dict = {}
    for name, rep, temporal, training, enc in [("soft_rope", "soft", "rope", "windowed", "quantile"),
                                               ("xval_affine_tt", "xval_affine", "tt", "packed", "xval")]:
        data = write_synthetic_tokenized(root / f"e2e_{name}", n_admissions=200, numeric_encoding=enc,
                                         temporal=temporal, max_len=2048, events_per_hour=3.0)
        h = dataclasses.replace(get_handle("exp2", f"{rep}_{temporal}"), training=training)
        cfg = {"block_size": 512, "batch_size": 8, "lr": 1e-3, "lr_sweep": [3e-4, 1e-3], "max_steps": 40,
               "checkpoint_every": 10, "log_every": 1}
        t0 = time.perf_counter()
        if name == "soft_rope":  # interrupt at step 15, then rerun: it must resume from step 10
            def crash(row: dict) -> None:
                if row["step"] == 15:
                    raise KeyboardInterrupt

            with contextlib.suppress(KeyboardInterrupt):
                train_model(data, h, sizes, cfg, root / f"m_{name}", root / f"w_{name}", log=crash)
        s = train_model(data, h, sizes, cfg, root / f"m_{name}", root / f"w_{name}")
        t1 = time.perf_counter()
        f = extract_features(root / f"m_{name}", data, root / f"f_{name}", batch_size=32)
        feats = pq.read_table(root / f"f_{name}" / "held_out.parquet").column("features").to_numpy(zero_copy_only=False)
        out[name] = {k: s[k] for k in ("device", "attn_implementation", "autocast", "initial_loss", "final_loss",
                                       "tuning_loss", "best_lr", "tokens_per_s", "resumed_from_step",
                                       "packing_efficiency")}
        out[name].update({"train_s": t1 - t0, "extract_s": time.perf_counter() - t1, "extract": f["splits"],
                          "features_finite": bool(all(np.isfinite(x).all() for x in feats))})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run with a tiny model")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--e2e", action="store_true", help="also run train_model + extract_features on this device")
    args = ap.parse_args()
    device = torch.device("cpu") if args.tiny or not torch.cuda.is_available() else torch.device("cuda")
    sizes, block, batch = (TINY, 128, 2) if args.tiny else (PAPER, 4096, 4)
    steps = args.steps or (5 if args.tiny else 100)
    warmup = 2 if args.tiny else 10
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    flash = device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None
    report: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "transformers": transformers.__version__, "flash_attn": flash,
                    "block_size": block, "batch_size": batch, "steps": steps, "warmup_steps": warmup,
                    "model": sizes, "configs": {}, "errors": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        n_adm = 60 if args.tiny else 700
        vocab = {} if args.tiny else {"n_lab_codes": 8000, "n_med_codes": 12000}
        q = write_synthetic_tokenized(Path(tmp) / "q", n_admissions=n_adm, temporal="tt", max_len=1_000_000,
                                      events_per_hour=6.0, **vocab)
        x = write_synthetic_tokenized(Path(tmp) / "x", n_admissions=n_adm, numeric_encoding="xval", temporal="tt",
                                      max_len=1_000_000, events_per_hour=6.0, **vocab)
        report["data_seconds"] = time.perf_counter() - t0
        configs = [("sdpa_packed", q, "discrete", "sdpa", False), ("sdpa_causal", q, "discrete", "sdpa", True),
                   ("soft_sdpa_packed", q, "soft", "sdpa", False), ("xval_sdpa_packed", x, "xval", "sdpa", False)]
        if flash:
            configs.insert(1, ("flash_attention_2_packed", q, "discrete", "flash_attention_2", False))
        configs.append(("sdpa_windowed_rope", q, "discrete", "sdpa", False))
        for name, data, rep, attn, causal in configs:
            try:
                report["configs"][name] = run_config(name, data, rep, attn, causal, sizes, block, batch, steps,
                                                     warmup, device, windowed_rope=name.endswith("windowed_rope"))
            except Exception:  # keep measuring the others; the traceback goes into the report
                report["errors"][name] = traceback.format_exc()[-3000:]
            if device.type == "cuda":
                torch.cuda.empty_cache()
            print(json.dumps({name: report["configs"].get(name) or "error"}), flush=True)
        for attn in ["sdpa"] + (["flash_attention_2"] if flash else []):
            try:
                report[f"mask_check_max_abs_diff_{attn}"] = mask_check(q, attn, sizes, device)
            except Exception:
                report["errors"][f"mask_check_{attn}"] = traceback.format_exc()[-3000:]
        if args.e2e:
            try:
                report["end_to_end"] = end_to_end(Path(tmp), args.tiny)
            except Exception:
                report["errors"]["end_to_end"] = traceback.format_exc()[-3000:]
    c = report["configs"]
    base = c.get("sdpa_packed", {}).get("tokens_per_s")
    if base:
        report["ratios_vs_sdpa_packed"] = {k: v["tokens_per_s"] / base for k, v in c.items()}
    report["seconds"] = time.perf_counter() - t0
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
