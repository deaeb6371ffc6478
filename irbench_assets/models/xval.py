"""xVal (Golkar et al. 2023) with code-normalised values, and the affine variant xVal-Aff.

Tokenization puts one ``[NUM]`` token after each numeric code token, carrying the raw value.

- Normalisation: the code is the token before ``[NUM]`` (``batch.code_ids``);
  ``z = clip((v - median_code) / std_code, -c, c)`` with ``std = IQR / 1.35`` and ``c = clip_sigma`` (5)
  from the train split's ``numeric_stats.json``.
- Input (``xval``): ``e = z * E[NUM]`` — a value at its code's median gives the zero vector.
- Input (``xval_affine``): ``e = z * E[NUM] + s`` with a learned shift vector ``s`` (d numbers, initialised
  like a token embedding), so ``z = 0`` no longer erases the token.
- ``[NUM]`` positions whose code has no statistics (or whose value is missing) keep the plain ``E[NUM]``
  and are left out of the numeric loss.
- Number head: ``Linear(d, 1)`` on the final hidden state (after the final RMSNorm); the hidden state at
  ``t`` predicts ``z`` of a ``[NUM]`` at ``t + 1``. Loss = token CE + ``weight`` x MSE (weight 1.0).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from irbench_assets.models.config import IGNORE_INDEX, NumericStats, Vocabulary
from irbench_assets.models.data import Batch, Timelines
from irbench_assets.models.discrete import DiscreteRepresentation, LossParts, hard_token_loss_sum


def z_summary(tl: Timelines, vocab: Vocabulary, stats: NumericStats) -> dict[str, float]:
    """Counts of [NUM] positions with / without code statistics and the share with |z| < 0.1 (the values
    that plain xVal nearly erases) — recorded as training metadata."""
    if vocab.num_token_id is None:
        raise ValueError("xVal needs the [NUM] token in vocab.parquet (tokenize with numeric_encoding: xval)")
    median = np.zeros(vocab.size)
    std = np.ones(vocab.size)
    has = np.zeros(vocab.size, dtype=bool)
    for tid in stats.median:
        median[tid], std[tid], has[tid] = stats.median[tid], stats.std[tid], True
    code = np.maximum(tl.code_ids, 0)
    num = (tl.tokens == vocab.num_token_id) & (tl.code_ids >= 0) & np.isfinite(tl.values)
    ok = num & has[code]
    z = np.clip((tl.values[ok] - median[code[ok]]) / std[code[ok]], -stats.clip_sigma, stats.clip_sigma)
    return {"num_positions": int(num.sum()), "num_positions_without_stats": int((num & ~has[code]).sum()),
            "share_abs_z_below_0_1": float(np.mean(np.abs(z) < 0.1)) if z.size else float("nan"),
            "share_clipped": float(np.mean(np.abs(z) >= stats.clip_sigma)) if z.size else float("nan")}


class XValRepresentation(DiscreteRepresentation):
    """[NUM] embedding scaled by the code-normalised value (+ a learned shift when ``affine``)."""

    def __init__(self, vocab: Vocabulary, stats: NumericStats, hidden_size: int, init_std: float,
                 affine: bool, loss_weight: float) -> None:
        super().__init__()
        if vocab.num_token_id is None:
            raise ValueError("xVal needs the [NUM] token in vocab.parquet (tokenize with numeric_encoding: xval)")
        self.kind = "xval_affine" if affine else "xval"
        self.affine = affine
        self.loss_weight = float(loss_weight)
        self.clip = float(stats.clip_sigma)
        self.num_id = int(vocab.num_token_id)
        median = np.zeros(vocab.size, dtype=np.float32)
        std = np.ones(vocab.size, dtype=np.float32)
        has = np.zeros(vocab.size, dtype=bool)
        for tid in stats.median:
            median[tid], std[tid], has[tid] = stats.median[tid], stats.std[tid], True
        self.register_buffer("median", torch.from_numpy(median), persistent=False)
        self.register_buffer("std", torch.from_numpy(std), persistent=False)
        self.register_buffer("has_stats", torch.from_numpy(has), persistent=False)
        self.head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.head.weight, std=init_std)
        nn.init.zeros_(self.head.bias)
        if affine:
            self.shift = nn.Parameter(torch.randn(hidden_size) * init_std)

    def normalized(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per position: (is_num, z) — is_num marks [NUM] tokens with a finite value and code statistics."""
        code = batch.code_ids.clamp(min=0)
        v = batch.values
        is_num = (batch.input_ids == self.num_id) & (batch.code_ids >= 0) & self.has_stats[code] & torch.isfinite(v)
        z = ((v - self.median[code]) / self.std[code]).clamp(-self.clip, self.clip)
        return is_num, torch.where(is_num, z, torch.zeros_like(z))

    def embed(self, token_embeds: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``z * E[NUM]`` (+ shift) at valued [NUM] positions, the plain embedding elsewhere."""
        is_num, z = self.normalized(batch)
        scaled = token_embeds * z.unsqueeze(-1).to(token_embeds.dtype)
        if self.affine:
            scaled = scaled + self.shift.to(token_embeds.dtype)
        return torch.where(is_num.unsqueeze(-1), scaled, token_embeds)

    def loss(self, logits: torch.Tensor, hidden: torch.Tensor, batch: Batch) -> LossParts:
        """Token CE + weight x MSE between the head's prediction at ``t`` and ``z`` of a [NUM] at ``t + 1``."""
        is_num, z = self.normalized(batch)
        valid = batch.labels != IGNORE_INDEX
        n = int(valid.sum())
        token = hard_token_loss_sum(logits, batch.labels) / max(n, 1)
        nxt = is_num[:, 1:] & valid[:, :-1]
        pred = self.head(hidden[:, :-1][nxt]).squeeze(-1).float()
        target = z[:, 1:][nxt].float()
        numeric = ((pred - target) ** 2).sum() / max(int(nxt.sum()), 1)
        total = token + self.loss_weight * numeric
        return LossParts(total=total, token=token.detach(), numeric=numeric.detach(), n_targets=n)

    def extra_state(self) -> dict[str, object]:
        return {"affine": self.affine, "loss_weight": self.loss_weight, "clip_sigma": self.clip}
