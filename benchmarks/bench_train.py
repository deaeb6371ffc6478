"""Stage-1 benchmark on CPU: training tokens/s of each representation relative to ``discrete`` measured in the
same run (same model size, same batches, interleaved rounds), the cost of admission-relative RoPE, and the
packing efficiency (share of non-PAD token slots) of packed rows vs per-batch-padded windows.

    .venv/bin/python benchmarks/bench_train.py            # ~2 minutes on 2 cores
    .venv/bin/python benchmarks/bench_train.py --quick    # ~30 s

Writes benchmarks/results/train.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from irbench_assets.models.config import ModelConfig, TrainConfig, read_tokenizer_outputs  # noqa: E402
from irbench_assets.models.data import collate, packed_plan, read_timelines, windowed_plan  # noqa: E402
from irbench_assets.models.llama import build_llama  # noqa: E402
from irbench_assets.models.optim import build_optimizers  # noqa: E402
from irbench_assets.models.synthetic import write_synthetic_tokenized  # noqa: E402
from irbench_assets.models.wrapper import RepresentationModel, build_representation  # noqa: E402

ARMS = [
    ("discrete", "tt", "quantile"),
    ("soft", "tt", "quantile"),
    ("xval", "tt", "xval"),
    ("xval_affine", "tt", "xval"),
    ("discrete", "rope", "quantile"),
]
MODEL = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4}


def build_arm(data: Path, rep: str, temporal: str, block: int, batch: int, n_batches: int):
    """Model, optimizer and the first ``n_batches`` packed batches of one arm (same seed for all arms)."""
    tok = read_tokenizer_outputs(data / "train")
    tl = read_timelines(data / "full" / "train" / "tokens_timelines.parquet", need_minutes=temporal == "rope")
    plan = packed_plan(tl, block, seed=42, epoch=0)
    batches = [
        collate(tl, plan.batch_pieces(b, batch), tok.vocab, temporal == "rope", 60.0)
        for b in range(n_batches)
    ]
    mcfg = ModelConfig.from_dict(MODEL)
    torch.manual_seed(42)
    model = RepresentationModel(
        build_llama(mcfg, tok.vocab, "sdpa"), build_representation(rep, tok, mcfg, 10)
    )
    opt = build_optimizers(model, TrainConfig.from_dict({}), 1e-3)[0]
    return model, opt, batches


def timed_steps(model, opt, batches) -> float:
    """Tokens/s of forward + backward + AdamW step over the given batches."""
    model.train()
    t0 = time.perf_counter()
    n = 0
    for b in batches:
        opt.zero_grad(set_to_none=True)
        model.loss(b).total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        n += b.n_real
    return n / (time.perf_counter() - t0)


def gpu_section() -> list[str]:
    """Markdown for the last GPU check (``scripts/gpu_check.py`` output kept in results/train_gpu_check.json)."""
    path = ROOT / "benchmarks" / "results" / "train_gpu_check.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    m = r["model"]
    out = [
        "## GPU (scripts/gpu_check.py, one lent machine)",
        "",
        f"Command: `python3 scripts/gpu_check.py --e2e --out train_gpu_check.json` on {r['device']} "
        f"(torch {r['torch']}, transformers {r['transformers']}, flash_attn importable: {r['flash_attn']}). "
        f"Paper-size model: {m['num_hidden_layers']} layers, hidden {m['hidden_size']}, {m['num_attention_heads']} "
        f"heads x head_dim {m.get('head_dim')}, tied embeddings, "
        f"{next(iter(r['configs'].values()))['n_parameters'] / 1e6:.1f} M parameters (vocab ~20k); rows of "
        f"{r['block_size']} tokens, batch {r['batch_size']}, bf16 autocast, AdamW; {r['steps']} timed steps after "
        f"{r['warmup_steps']} warm-up steps.",
        "",
        "| config | tokens/s | step (ms) | peak GiB | vs sdpa_packed |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in r["configs"].items():
        out.append(
            f"| {k} | {v['tokens_per_s']:,.0f} | {v['step_ms']:.1f} | {v['peak_mem_gib']:.1f} | "
            f"{r['ratios_vs_sdpa_packed'][k]:.2f}x |"
        )
    out += [
        "",
        "FlashAttention-2 could not be measured: `flash_attn` is not installed on the lent machine and cannot "
        "be built there (no network). `sdpa_causal` is the same model without the admission-boundary mask "
        "(what packing without the block mask would cost); `sdpa_windowed_rope` pads windows per batch "
        f"(padding share {r['configs'].get('sdpa_windowed_rope', {}).get('padding_share', float('nan')):.0%} on "
        "the synthetic timelines), so its tokens/s counts real tokens only. Packed-row vs alone hidden states "
        f"(bf16): max |diff| = {r.get('mask_check_max_abs_diff_sdpa')}.",
        "",
    ]
    if "end_to_end" in r:
        out += [
            "`--e2e`: `train_model` (with an interruption at step 15 and a resume from the step-10 state) and "
            "`extract_features` on the GPU for a small soft+rope windowed and an xVal-Aff packed handle:",
            "",
            "| handle | device | autocast | initial → final loss | resumed from | features finite |",
            "|---|---|---|---|---|---|",
        ]
        for k, v in r["end_to_end"].items():
            out.append(
                f"| {k} | {v['device']} | {v['autocast']} | {v['initial_loss']:.3f} → {v['final_loss']:.3f} | "
                f"{v['resumed_from_step']} | {v['features_finite']} |"
            )
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds, steps = (3, 4) if args.quick else (5, 10)
    block, batch = 256, 8
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        q = write_synthetic_tokenized(
            Path(tmp) / "q", n_admissions=600, temporal="tt", max_len=4096, seed=1, events_per_hour=2.0
        )
        x = write_synthetic_tokenized(
            Path(tmp) / "x",
            n_admissions=600,
            numeric_encoding="xval",
            temporal="tt",
            max_len=4096,
            seed=1,
            events_per_hour=2.0,
        )
        arms = {
            f"{r}_{t}": build_arm(q if enc == "quantile" else x, r, t, block, batch, steps)
            for r, t, enc in ARMS
        }
        for _ in range(2):  # warm-up
            for m, o, b in arms.values():
                timed_steps(m, o, b)
        speeds: dict[str, list[float]] = {k: [] for k in arms}
        for _ in range(rounds):  # interleaved so that machine noise hits every arm alike
            for k, (m, o, b) in arms.items():
                speeds[k].append(timed_steps(m, o, b))
        tl = read_timelines(q / "full" / "train" / "tokens_timelines.parquet", need_minutes=False)
        eff = {
            "packed (block 256)": packed_plan(tl, 256, 42, 0).efficiency(8),
            "packed (block 4096)": packed_plan(tl, 4096, 42, 0).efficiency(4),
            "windowed (256, batch 8)": windowed_plan(tl, 256, 42, 0, None).efficiency(8),
            "windowed (4096, batch 4)": windowed_plan(tl, 4096, 42, 0, None).efficiency(4),
        }
        n_tokens = len(tl.tokens)
        wall = time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in speeds.items()}
    base = med["discrete_tt"]
    lines = [
        "# Stage 1 training benchmark (CPU)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_train.py{' --quick' if args.quick else ''}` "
        f"({wall:.0f} s wall; {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads).",
        "",
        f"Model: Llama {MODEL['num_hidden_layers']} layers, hidden {MODEL['hidden_size']}, "
        f"intermediate {MODEL['intermediate_size']}, {MODEL['num_attention_heads']} heads, SDPA, fp32; packed rows of "
        f"{block} tokens, batch {batch}; synthetic handle with {n_tokens:,} train tokens (600 admissions). Each arm "
        f"runs the same {steps} batches (forward + backward + AdamW), {rounds} interleaved rounds; median tokens/s.",
        "",
        "| arm | tokens/s (median) | slowdown vs discrete_tt | rounds |",
        "|---|---:|---:|---|",
    ]
    for k, v in med.items():
        lines.append(f"| {k} | {v:,.0f} | {base / v:.2f}x | {', '.join(f'{s:,.0f}' for s in speeds[k])} |")
    target = all(base / med[k] <= 1.3 for k in ("soft_tt", "xval_tt", "xval_affine_tt"))
    lines += [
        "",
        f"Target (soft and xVal within 1.3x of discrete): **{'met' if target else 'NOT met'}**.",
        "",
        "## Packing efficiency (share of non-PAD token slots)",
        "",
        "| layout | efficiency |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.4f} |" for k, v in eff.items()]
    lines += [
        "",
        "Packed rows pad only the very last row (target >= 0.97); windows are padded to the longest window "
        "of their batch, so short admissions waste slots there.",
        "",
    ]
    lines += gpu_section()
    text = "\n".join(lines)
    out = ROOT / "benchmarks" / "results" / "train.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
