"""Soft discretization (ConSE-style): a value at a ``Q<k>`` position enters the model as a convex mix of
two adjacent learnable *bin embeddings*, placed by where the value lies between its code's train-fitted
bin edges; the next-token target at a value position is the matching two-bin soft distribution.

Bin coordinate (our definition, centred — see docs/representations.md):

- the code is the token before the value (``batch.code_ids``); its inner edges ``e_0 < ... < e_{n-1}``
  come from ``bins.parquet`` and define bins ``0..n`` (bin ``k`` = ``[e_{k-1}, e_k)``);
- the tokenizer's bin token ``Q<k>`` says which bin the value is in; inside it the value has the
  fractional place ``f = (v - lower_k) / (upper_k - lower_k)`` clamped to ``[0, 1]``. The open outer bins
  borrow the width of their inner neighbour (``lower_0 = e_0 - (e_1 - e_0)``,
  ``upper_n = e_{n-1} + (e_{n-1} - e_{n-2})``); a zero-width bin, or an outer bin of a code with a single
  edge, has ``f = 0.5``;
- the coordinate is ``u = clamp(k + f - 0.5, 0, n)``: bin centres sit at integers, an edge at ``k + 0.5``;
- ``lo = floor(u)``, ``hi = min(lo + 1, n)``, ``alpha = u - lo``; input ``(1 - alpha) B[lo] + alpha B[hi]``,
  target ``(1 - alpha)`` on ``Q<lo>`` and ``alpha`` on ``Q<hi>``.

A value at its bin's centre is pure ``B[k]``; at an edge it is 50/50 between the two bins the edge
separates, whichever side the tokenizer put the tie on; the map is continuous and monotone, and the bin
the tokenizer chose always gets at least half of the mass. Positions that are not ``Q<k>`` tokens, have no
finite value, or whose code has no edges keep the ordinary embedding and the hard target.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from irbench_assets.models.config import IGNORE_INDEX, Vocabulary
from irbench_assets.models.data import Batch, Timelines
from irbench_assets.models.discrete import DiscreteRepresentation, LossParts, hard_token_loss_sum


def check_soft_values(tl: Timelines, vocab: Vocabulary, bins: dict[int, np.ndarray]) -> dict[str, float]:
    """Every ``Q<k>`` after a binned code must have ``k <= n_edges`` (tokenizer and bins agree); returns the
    share of valued Q positions that get the soft treatment."""
    q_index = np.full(vocab.size, -1, dtype=np.int64)
    q_ids = np.asarray(vocab.q_token_ids, dtype=np.int64)
    q_index[q_ids[q_ids >= 0]] = np.flatnonzero(q_ids >= 0)
    n_edges = np.zeros(vocab.size, dtype=np.int64)
    for code, e in bins.items():
        n_edges[code] = len(e)
    k = q_index[tl.tokens]
    n = np.where(tl.code_ids >= 0, n_edges[np.maximum(tl.code_ids, 0)], 0)
    valued = (k >= 0) & np.isfinite(tl.values)
    bad = valued & (n > 0) & (k > n)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(tl.offsets, pos, side="right") - 1)
        raise ValueError(f"{tl.source}: row {row} (hadm_id {tl.hadm_id[row]}): token {vocab.tokens[tl.tokens[pos]]} "
                         f"after code {vocab.tokens[tl.code_ids[pos]]}, which has only {n[pos]} edges in bins.parquet")
    n_valued = int(valued.sum())
    return {"soft_value_positions": int((valued & (n > 0)).sum()), "valued_q_positions": n_valued}


def edge_table(bins: dict[int, np.ndarray], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per code token id: extended bounds ``[lower_0, e_0, ..., e_{n-1}, upper_n]`` (padded) and ``n``."""
    width = max((len(e) for e in bins.values()), default=0) + 2
    table = np.full((vocab_size, max(width, 3)), np.nan, dtype=np.float64)
    n_edges = np.zeros(vocab_size, dtype=np.int64)
    for code, e in bins.items():
        n = len(e)
        if n == 0:
            continue
        lower = e[0] - (e[1] - e[0]) if n >= 2 else np.nan
        upper = e[-1] + (e[-1] - e[-2]) if n >= 2 else np.nan
        table[code, : n + 2] = np.concatenate([[lower], e, [upper]])
        n_edges[code] = n
    return table, n_edges


class SoftRepresentation(DiscreteRepresentation):
    """Input: two-bin convex mix of a shared learnable bin table. Target: the matching soft distribution."""

    kind = "soft"

    def __init__(self, vocab: Vocabulary, bins: dict[int, np.ndarray], n_bins: int, hidden_size: int,
                 init_std: float) -> None:
        super().__init__()
        table, n_edges = edge_table(bins, vocab.size)
        n_bins = max(n_bins, int(n_edges.max()) + 1, len(vocab.q_token_ids))
        q_ids = np.full(n_bins, -1, dtype=np.int64)
        q_ids[: len(vocab.q_token_ids)] = vocab.q_token_ids
        for code in np.flatnonzero(n_edges):
            need = q_ids[: n_edges[code] + 1]
            if (need < 0).any():
                raise ValueError(f"bins.parquet: code token {vocab.tokens[code]!r} has {n_edges[code]} edges but "
                                 f"the vocabulary lacks Q{int(np.flatnonzero(need < 0)[0])}")
        q_index = np.full(vocab.size, -1, dtype=np.int64)
        q_index[q_ids[q_ids >= 0]] = np.flatnonzero(q_ids >= 0)
        self.n_bins = n_bins
        self.bin_embeddings = nn.Parameter(torch.randn(n_bins, hidden_size) * init_std)
        self.register_buffer("bounds", torch.from_numpy(table).float(), persistent=False)
        self.register_buffer("n_edges", torch.from_numpy(n_edges), persistent=False)
        self.register_buffer("q_index", torch.from_numpy(q_index), persistent=False)
        self.register_buffer("q_token_ids", torch.from_numpy(q_ids), persistent=False)

    def coordinates(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per position: (is_soft, lo, hi, alpha) of the centred two-bin interpolation (see module doc)."""
        k = self.q_index[batch.input_ids]
        code = batch.code_ids.clamp(min=0)
        n = torch.where(batch.code_ids >= 0, self.n_edges[code], torch.zeros_like(code))
        v = batch.values
        soft = (k >= 0) & (n > 0) & (k <= n) & torch.isfinite(v)
        width_all = self.bounds.shape[1]
        kk = k.clamp(min=0, max=width_all - 2)
        flat = self.bounds.reshape(-1)
        lower = flat[code * width_all + kk]  # bounds[code, k]
        upper = flat[code * width_all + kk + 1]  # bounds[code, k + 1]
        width = upper - lower
        frac = ((v - lower) / width).clamp(0.0, 1.0)
        frac = torch.where(torch.isfinite(frac) & (width > 0), frac, torch.full_like(frac, 0.5))
        u = torch.minimum((kk.float() + frac - 0.5).clamp(min=0.0), n.float())
        lo = u.floor().long()
        hi = torch.minimum(lo + 1, n)
        alpha = torch.where(hi > lo, u - lo.float(), torch.zeros_like(u))
        zero = torch.zeros_like(lo)
        return soft, torch.where(soft, lo, zero), torch.where(soft, hi, zero), torch.where(soft, alpha, 0.0)

    def embed(self, token_embeds: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Replace the embedding at soft positions by ``(1 - alpha) B[lo] + alpha B[hi]``."""
        soft, lo, hi, alpha = self.coordinates(batch)
        # two-hot weights @ bin table: a dense matmul whose backward is another matmul (indexing the table
        # instead would scatter-add ~B*T gradients into a handful of rows, which is slow on GPUs)
        w = torch.zeros(*lo.shape, self.n_bins, device=lo.device, dtype=self.bin_embeddings.dtype)
        w.scatter_(-1, lo.unsqueeze(-1), (1 - alpha).unsqueeze(-1).to(w.dtype))
        w.scatter_add_(-1, hi.unsqueeze(-1), alpha.unsqueeze(-1).to(w.dtype))
        mix = w @ self.bin_embeddings
        return torch.where(soft.unsqueeze(-1), mix.to(token_embeds.dtype), token_embeds)

    def loss(self, logits: torch.Tensor, hidden: torch.Tensor, batch: Batch) -> LossParts:
        """Hard CE everywhere except where the next token is a soft value: there ``-Σ w log p`` over 2 bins.

        Computed as the hard CE plus, at soft targets, ``logit[Q_k] - (1 - a) logit[Q_lo] - a logit[Q_hi]``
        (the log-normaliser is shared), so only three logits per soft target are gathered."""
        soft, lo, hi, alpha = self.coordinates(batch)
        valid = batch.labels != IGNORE_INDEX
        nxt = torch.zeros_like(soft)
        nxt[:, :-1] = soft[:, 1:] & valid[:, :-1]
        n = int(valid.sum())
        hard = hard_token_loss_sum(logits, batch.labels)
        lo_next, hi_next, a = torch.zeros_like(lo), torch.zeros_like(hi), torch.zeros_like(alpha)
        lo_next[:, :-1], hi_next[:, :-1], a[:, :-1] = lo[:, 1:], hi[:, 1:], alpha[:, 1:]
        idx = torch.stack([batch.labels.clamp(min=0), self.q_token_ids[lo_next].clamp(min=0),
                           self.q_token_ids[hi_next].clamp(min=0)], dim=-1)
        g = logits.gather(-1, idx).float()
        correction = torch.where(nxt, g[..., 0] - (1 - a) * g[..., 1] - a * g[..., 2], torch.zeros_like(a))
        token = (hard + correction.sum()) / max(n, 1)
        return LossParts(total=token, token=token.detach(), numeric=token.new_zeros(()), n_targets=n)

    def extra_state(self) -> dict[str, object]:
        return {"n_bins": self.n_bins}
