"""Stage 1: train the model of one handle on its full train timelines.

A plain torch loop rather than the HF Trainer: the loss is the representation's own (soft targets, xVal
MSE), the batches carry our rotary positions and piece masks, and resume must replay exactly the same
micro-batches — all of which would mean overriding most of the Trainer. The loop is ~100 lines.

- ``packed`` (Exp1): rows of ``block_size`` tokens from concatenated timelines; one run per learning rate
  of ``train.lr_sweep`` (or ``train.lr`` alone), all from the same seeded initial weights; the run with
  the lowest tuning-split loss is the checkpoint later stages use; the sweep table is kept.
- ``windowed`` (Exp2/3): windows of one admission, padded per batch; one run at ``train.lr``.
- Data order comes from (hadm_id, seed, epoch) only, so every handle of an experiment sees the admissions
  in the same order. Micro-batch ``m`` is a pure function of ``m``, so a resumed run replays exactly what an
  uninterrupted one would.
- Resume: every ``checkpoint_every`` steps the full training state (model, optimizers, schedulers, step,
  RNG, log so far) is written atomically to ``work_dir/run-<i>/state.pt``; a rerun continues from there.
  A finished run leaves ``done.pt``. The output directory is written atomically, once, at the end; the work
  dir is then removed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from irbench_assets.experiments import HandleConfig
from irbench_assets.models.config import (
    VOCAB_FILES,
    ModelConfig,
    TokenizerOutputs,
    TrainConfig,
    read_tokenizer_outputs,
)
from irbench_assets.models.data import (
    Plan,
    Timelines,
    check_token_ids,
    collate,
    packed_plan,
    read_timelines,
    windowed_plan,
)
from irbench_assets.models.llama import (
    attention_implementation,
    autocast_dtype,
    build_llama,
    count_parameters,
    pick_device,
)
from irbench_assets.models.optim import build_optimizers, build_schedulers
from irbench_assets.models.soft import check_soft_values
from irbench_assets.models.wrapper import RepresentationModel, build_representation
from irbench_assets.models.xval import z_summary
from irbench_assets.storage import atomic_dir, atomic_file

LOG_COLUMNS = ("step", "loss", "token_loss", "numeric_loss", "lr", "tokens_per_s")
SPLIT_FILE = "tokens_timelines.parquet"


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


# ------------------------------------------------------------------------------------------ pieces
class _Data:
    """One split's timelines with its (cached) plan per epoch."""

    def __init__(self, tl: Timelines, handle: HandleConfig, tcfg: TrainConfig) -> None:
        self.tl, self.handle, self.tcfg = tl, handle, tcfg
        self._plans: dict[int, Plan] = {}

    def plan(self, epoch: int) -> Plan:
        if epoch not in self._plans:
            self._plans.clear()
            t = self.tcfg
            self._plans[epoch] = (packed_plan(self.tl, t.block_size, t.seed, epoch) if self.handle.training == "packed"
                                  else windowed_plan(self.tl, t.block_size, t.seed, epoch, t.max_windows_per_admission))
        return self._plans[epoch]


def _fingerprint(tokenized_dir: Path, handle: HandleConfig, mcfg: ModelConfig, tcfg: TrainConfig) -> str:
    """Hash of the settings and of the input files' sizes/mtimes: a resume state is only used if it matches."""
    files = [tokenized_dir / "full" / s / SPLIT_FILE for s in ("train", "tuning")]
    files += [tokenized_dir / "train" / f for f in VOCAB_FILES]
    stamp = [(str(f.relative_to(tokenized_dir)), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()]
    blob = json.dumps([asdict(handle), mcfg.to_dict(), tcfg.to_dict(), stamp], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _prepare_work_dir(work_dir: Path, fingerprint: str) -> None:
    """Keep the work dir's states only if they belong to exactly these settings and inputs."""
    fp = work_dir / "fingerprint.json"
    if fp.exists() and json.loads(fp.read_text()).get("fingerprint") != fingerprint:
        for p in sorted(work_dir.glob("run-*")):
            shutil.rmtree(p, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    fp.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")


def _save(obj: Any, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate(model: RepresentationModel, data: _Data, vocab: Any, tcfg: TrainConfig, mcfg: ModelConfig,
             device: torch.device, amp: torch.dtype | None) -> dict[str, float]:
    """Target-weighted mean loss over the split's batches (epoch-0 order, at most ``eval_max_batches``)."""
    model.eval()
    plan = data.plan(0)
    n_batches = plan.n_batches(tcfg.batch_size)
    if tcfg.eval_max_batches is not None:
        n_batches = min(n_batches, tcfg.eval_max_batches)
    tot = {"loss": 0.0, "token_loss": 0.0, "numeric_loss": 0.0}
    n_all = 0
    for b in range(n_batches):
        batch = collate(data.tl, plan.batch_pieces(b, tcfg.batch_size), vocab, data.handle.temporal == "rope",
                        mcfg.rope_positions_per_hour).to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            parts = model.loss(batch)
        for k, v in (("loss", parts.total), ("token_loss", parts.token), ("numeric_loss", parts.numeric)):
            tot[k] += float(v) * parts.n_targets
        n_all += parts.n_targets
    model.train()
    return {k: v / max(n_all, 1) for k, v in tot.items()}


# ------------------------------------------------------------------------------------------ one run
def _train_run(run: int, lr: float, run_dir: Path, model: RepresentationModel, init_state: dict[str, torch.Tensor],
               train: _Data, tune: _Data, tok: TokenizerOutputs, handle: HandleConfig, mcfg: ModelConfig,
               tcfg: TrainConfig, device: torch.device, amp: torch.dtype | None,
               log: Callable[[dict], None] | None) -> dict[str, Any]:
    """Train (or resume, or reload) one run; returns its final weights (CPU), log rows and tuning loss."""
    done = run_dir / "done.pt"
    if done.exists():
        return torch.load(done, map_location="cpu", weights_only=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.load_state_dict(init_state)
    optimizers = build_optimizers(model, tcfg, lr)
    n_batches = train.plan(0).n_batches(tcfg.batch_size)
    total_micro = tcfg.epochs * n_batches
    total_steps = -(-total_micro // tcfg.grad_accum)
    if tcfg.max_steps is not None:
        total_steps = min(total_steps, tcfg.max_steps)
    schedulers = build_schedulers(optimizers, total_steps, tcfg.warmup_ratio)
    rows: list[dict[str, float]] = []
    start, tokens_seen, seconds, resumed_from = 0, 0, 0.0, None
    state_path = run_dir / "state.pt"
    if state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        for o, s in zip(optimizers, st["optimizers"], strict=True):
            o.load_state_dict(s)
        for sch, s in zip(schedulers, st["schedulers"], strict=True):
            sch.load_state_dict(s)
        _set_rng_state(st["rng"])
        start, rows, tokens_seen, seconds = st["step"], st["rows"], st["tokens_seen"], st["seconds"]
        resumed_from = start
    rope, per_hour = handle.temporal == "rope", mcfg.rope_positions_per_hour
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    for step in range(start, total_steps):
        t0 = time.perf_counter()
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        micro = range(step * tcfg.grad_accum, min((step + 1) * tcfg.grad_accum, total_micro))
        sums = np.zeros(3)
        n_tok = 0
        for m in micro:
            epoch, b = divmod(m, n_batches)
            batch = collate(train.tl, train.plan(epoch).batch_pieces(b, tcfg.batch_size), tok.vocab, rope,
                            per_hour).to(device)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                parts = model.loss(batch)
            vals = np.array([float(parts.total.detach()), float(parts.token), float(parts.numeric)])
            if not np.all(np.isfinite(vals)):
                raise NonFiniteLossError(
                    f"{handle.key}: non-finite loss at step {step + 1} (run {run}, lr {lr:g}, epoch {epoch}, "
                    f"batch {b}): loss={vals[0]}, token_loss={vals[1]}, numeric_loss={vals[2]}")
            (parts.total / len(micro)).backward()
            sums += vals
            n_tok += batch.n_real
        torch.nn.utils.clip_grad_norm_(params, tcfg.max_grad_norm)
        current_lr = schedulers[0].get_last_lr()[0]
        for o, sch in zip(optimizers, schedulers, strict=True):
            o.step()
            sch.step()
        dt = time.perf_counter() - t0
        seconds += dt
        tokens_seen += n_tok
        mean = [float(x) for x in sums / len(micro)]
        row = {"step": step + 1, "loss": mean[0], "token_loss": mean[1], "numeric_loss": mean[2], "lr": current_lr,
               "tokens_per_s": n_tok / max(dt, 1e-9)}
        rows.append(row)
        if log is not None and ((step + 1) % tcfg.log_every == 0 or step + 1 == total_steps):
            log({"run": run, "lr_peak": lr, **row})
        if (step + 1) % tcfg.checkpoint_every == 0 and step + 1 < total_steps:
            _save({"model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
                   "schedulers": [s.state_dict() for s in schedulers], "rng": _rng_state(), "step": step + 1,
                   "rows": rows, "tokens_seen": tokens_seen, "seconds": seconds}, state_path)
    tuning = evaluate(model, tune, tok.vocab, tcfg, mcfg, device, amp)
    result = {"run": run, "lr": lr, "rows": rows, "tuning": tuning, "tokens_seen": tokens_seen, "seconds": seconds,
              "steps": total_steps, "resumed_from_step": resumed_from,
              "weights": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    _save(result, done)
    state_path.unlink(missing_ok=True)
    return result


# ------------------------------------------------------------------------------------------ outputs
def _window_mean(xs: list[float], first: bool) -> float:
    k = max(1, min(10, len(xs) // 5))
    part = xs[:k] if first else xs[-k:]
    return float(np.mean(part)) if part else float("nan")


def _plot(results: list[dict[str, Any]], best: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for r in results:
        steps = [row["step"] for row in r["rows"]]
        lw, alpha = (1.8, 1.0) if r["run"] == best else (0.9, 0.5)
        ax.plot(steps, [row["loss"] for row in r["rows"]], lw=lw, alpha=alpha, label=f"lr {r['lr']:g} (total)")
        if r["run"] == best and any(row["numeric_loss"] for row in r["rows"]):
            ax.plot(steps, [row["token_loss"] for row in r["rows"]], lw=1, ls="--", label="token CE")
            ax.plot(steps, [row["numeric_loss"] for row in r["rows"]], lw=1, ls=":", label="xVal MSE")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


# ------------------------------------------------------------------------------------------ entry point
def train_model(tokenized_dir: Path, handle: HandleConfig, model_cfg: dict, train_cfg: dict, out_dir: Path,
                work_dir: Path, log: Callable[[dict], None] | None = None) -> dict:
    """Train one handle's model (with the LR sweep for packed handles) and write its checkpoint directory.

    Returns a JSON-able summary: parameters, initial/final training loss, tokens seen, tokens/s, best lr,
    sweep table, packing efficiency, tuning loss (and xVal / soft data counts where relevant).
    """
    tokenized_dir, out_dir, work_dir = Path(tokenized_dir), Path(out_dir), Path(work_dir)
    mcfg, tcfg = ModelConfig.from_dict(model_cfg), TrainConfig.from_dict(train_cfg)
    tok = read_tokenizer_outputs(tokenized_dir / "train")
    rope = handle.temporal == "rope"
    tls = {s: read_timelines(tokenized_dir / "full" / s / SPLIT_FILE, need_minutes=rope) for s in ("train", "tuning")}
    data_info: dict[str, Any] = {}
    for tl in tls.values():
        check_token_ids(tl, tok.vocab)
    if handle.representation == "soft":
        data_info["soft"] = check_soft_values(tls["train"], tok.vocab, tok.bins)
    if handle.representation in ("xval", "xval_affine"):
        if tok.stats is None:
            raise ValueError(f"{tokenized_dir / 'train' / 'numeric_stats.json'} is needed for {handle.representation}")
        data_info["xval"] = z_summary(tls["train"], tok.vocab, tok.stats)
    train, tune = _Data(tls["train"], handle, tcfg), _Data(tls["tuning"], handle, tcfg)

    device = pick_device(tcfg.device)
    attn = attention_implementation(mcfg.attn_implementation, device)
    amp = autocast_dtype(mcfg.dtype, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(tcfg.seed)
    model = RepresentationModel(build_llama(mcfg, tok.vocab, attn),
                                build_representation(handle.representation, tok, mcfg, handle.n_bins)).to(device)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    initial_embeddings = model.base.get_input_embeddings().weight.detach().cpu().clone()

    _prepare_work_dir(work_dir, _fingerprint(tokenized_dir, handle, mcfg, tcfg))
    lrs = list(tcfg.lr_sweep) if handle.training == "packed" and tcfg.lr_sweep else [tcfg.lr]
    results = [_train_run(i, lr, work_dir / f"run-{i}", model, init_state, train, tune, tok, handle, mcfg, tcfg,
                          device, amp, log) for i, lr in enumerate(lrs)]
    best = min(results, key=lambda r: (r["tuning"]["loss"], r["run"]))
    model.load_state_dict(best["weights"])
    sweep = [{"run": r["run"], "lr": r["lr"], "tuning_loss": r["tuning"]["loss"],
              "tuning_token_loss": r["tuning"]["token_loss"], "tuning_numeric_loss": r["tuning"]["numeric_loss"],
              "final_train_loss": _window_mean([x["loss"] for x in r["rows"]], first=False), "steps": r["steps"],
              "chosen": r["run"] == best["run"]} for r in results]
    losses = [x["loss"] for x in best["rows"]]
    n_params = count_parameters(model)
    summary = {
        "handle": handle.key, "representation": handle.representation, "temporal": handle.temporal,
        "training": handle.training, "n_parameters": n_params,
        "n_parameters_representation": count_parameters(model.representation),
        "initial_loss": _window_mean(losses, first=True), "final_loss": _window_mean(losses, first=False),
        "first_step_loss": losses[0] if losses else float("nan"),
        "last_step_loss": losses[-1] if losses else float("nan"),
        "tokens_seen": int(best["tokens_seen"]),
        "tokens_per_s": float(best["tokens_seen"] / best["seconds"]) if best["seconds"] > 0 else float("nan"),
        "steps": best["steps"], "best_lr": best["lr"], "tuning_loss": best["tuning"]["loss"], "sweep": sweep,
        "packing_efficiency": train.plan(0).efficiency(tcfg.batch_size), "n_train_rows": train.plan(0).n_rows,
        "n_train_admissions": train.tl.n, "device": str(device), "attn_implementation": attn,
        "autocast": str(amp).replace("torch.", "") if amp else "float32",
        "resumed_from_step": best["resumed_from_step"], **data_info,
    }
    config = {"handle": asdict(handle), "model": mcfg.to_dict(), "train": tcfg.to_dict(),
              "representation": handle.representation, "representation_state": model.representation.extra_state(),
              "temporal": handle.temporal, "training": handle.training, "context_length": tcfg.block_size,
              "n_bins": handle.n_bins, "vocab_size": tok.vocab.size, "tokenized_dir": str(tokenized_dir),
              "n_parameters": n_params, "best_lr": best["lr"], "attn_implementation_trained": attn}

    with atomic_dir(out_dir) as tmp:
        model.base.save_pretrained(tmp / "base")
        rep_state = model.representation_state()
        if rep_state:
            save_file(rep_state, str(tmp / "representation.safetensors"))
        save_file({"embed_tokens": initial_embeddings.contiguous()}, str(tmp / "initial_embeddings.safetensors"))
        (tmp / "vocab").mkdir()
        for f in VOCAB_FILES:
            if (tokenized_dir / "train" / f).exists():
                shutil.copy2(tokenized_dir / "train" / f, tmp / "vocab" / f)
        if (tokenized_dir / "tokenizer.json").exists():
            shutil.copy2(tokenized_dir / "tokenizer.json", tmp / "vocab" / "tokenizer.json")
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        _write_csv(tmp / "train_log.csv", best["rows"], LOG_COLUMNS)
        _write_csv(tmp / "sweep.csv", sweep, tuple(sweep[0]))
        _plot(results, best["run"], tmp / "loss_curve.png", f"{handle.key}: {handle.label}")
    for p in sorted(work_dir.glob("run-*")):
        shutil.rmtree(p, ignore_errors=True)
    (work_dir / "fingerprint.json").unlink(missing_ok=True)
    if work_dir.exists() and not any(work_dir.iterdir()):
        work_dir.rmdir()
    return json.loads(json.dumps(summary, default=float))
