"""Discrete representation: a value is its bin token (``Q<k>`` or a fused ``<code>//Q<k>``) and enters the
model through the ordinary token embedding; the loss is next-token cross-entropy.

This class is also the interface every representation implements:

- ``embed(token_embeds, batch)`` changes the input embeddings at the value positions (identity here),
- ``loss(logits, hidden, batch)`` returns :class:`LossParts` (token CE, numeric loss, total).

Labels are already shifted by the collator (``batch.labels[:, t]`` is the token at ``t + 1``) and are
``IGNORE_INDEX`` at PAD positions, at the last position of a document piece and across admissions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from irbench_assets.models.config import IGNORE_INDEX
from irbench_assets.models.data import Batch


@dataclass
class LossParts:
    """The loss of one batch: ``total`` (backpropagated) and its parts (detached, for logging)."""

    total: torch.Tensor
    token: torch.Tensor
    numeric: torch.Tensor
    n_targets: int


def hard_token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of next-token cross-entropies over positions whose label is not ``IGNORE_INDEX``."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )


class DiscreteRepresentation(nn.Module):
    """Plain token embeddings and hard next-token cross-entropy."""

    kind = "discrete"

    def embed(self, token_embeds: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Input embeddings of the batch (unchanged for discrete tokens)."""
        return token_embeds

    def loss(self, logits: torch.Tensor, hidden: torch.Tensor, batch: Batch) -> LossParts:
        """Mean next-token cross-entropy over the real (non-ignored) targets."""
        n = int((batch.labels != IGNORE_INDEX).sum())
        token = hard_token_loss_sum(logits, batch.labels) / max(n, 1)
        zero = token.new_zeros(())
        return LossParts(total=token, token=token.detach(), numeric=zero, n_targets=n)

    def extra_state(self) -> dict[str, object]:
        """JSON-able settings needed to rebuild this representation (none for discrete)."""
        return {}
