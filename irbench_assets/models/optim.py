"""Optimizers and the learning-rate schedule of Stage 1.

- ``adamw`` (default): AdamW (betas 0.9/0.999, eps 1e-8); weight decay on matrices only (embeddings
  included, norms / biases / the xVal shift excluded) — the HF Trainer convention the reference used.
- ``muon``: ``torch.optim.Muon`` (momentum 0.95, Nesterov, 5 Newton–Schulz steps, update RMS matched to
  AdamW so one ``lr`` serves both) on the 2-D weight matrices inside the decoder blocks; AdamW as above on
  everything else (embeddings, LM head, norms, representation parameters) — the reference's split.
- Schedule: linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0 (HF "linear").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from irbench_assets.models.config import TrainConfig


def _adamw(params: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay = [p for _, p in params if p.ndim >= 2]
    no_decay = [p for _, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.999), eps=1e-8)


def build_optimizers(model: nn.Module, cfg: TrainConfig, lr: float) -> list[torch.optim.Optimizer]:
    """One AdamW, or Muon (decoder matrices) + AdamW (the rest), over the model's distinct parameters."""
    named = list(model.named_parameters())  # named_parameters() already yields tied weights once
    if cfg.optimizer == "adamw":
        return [_adamw(named, lr, cfg.weight_decay)]
    if not hasattr(torch.optim, "Muon"):
        raise RuntimeError(f"train.optimizer=muon needs torch.optim.Muon (torch >= 2.9); this is torch {torch.__version__}")
    hidden = [(n, p) for n, p in named if p.ndim == 2 and ".layers." in n]
    rest = [(n, p) for n, p in named if not (p.ndim == 2 and ".layers." in n)]
    muon = torch.optim.Muon([p for _, p in hidden], lr=lr, weight_decay=cfg.weight_decay,
                            momentum=0.95, nesterov=True, ns_steps=5, adjust_lr_fn="match_rms_adamw")
    return [muon, _adamw(rest, lr, cfg.weight_decay)]


def warmup_linear(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier at optimizer step ``s`` (0-based): linear warm-up, then linear decay to 0."""
    warm = round(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


def build_schedulers(optimizers: list[torch.optim.Optimizer], total_steps: int,
                     warmup_ratio: float) -> list[torch.optim.lr_scheduler.LambdaLR]:
    """The same warm-up / linear-decay schedule on every optimizer."""
    return [torch.optim.lr_scheduler.LambdaLR(o, warmup_linear(total_steps, warmup_ratio)) for o in optimizers]
