"""The model of one handle: a Llama decoder fed through ``inputs_embeds`` by a representation.

``forward`` = token embeddings → representation mechanics (soft mix / xVal scaling) → decoder with our
rotary positions and attention mask → final hidden states (after the final RMSNorm). ``loss`` adds the
LM head and the representation's loss. Extraction calls ``forward`` directly, so the mechanics are applied
there too.

Attention across admissions in packed rows is prevented cheaply and explicitly:

- SDPA / eager: a 4-D mask ``causal & same piece`` (boolean; additive for eager) when a row holds more than one piece (PAD forms
  its own piece, so no query row is ever fully masked); otherwise a 2-D padding mask, which transformers
  turns into SDPA's ``is_causal`` fast path when there is no padding.
- FlashAttention-2: the variable-length kernel with ``cu_seq_lens`` built from the pieces of the flattened
  batch (always passed, so transformers never tries to infer packing from our float ``position_ids``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import LlamaForCausalLM

from irbench_assets.models.config import ModelConfig, TokenizerOutputs
from irbench_assets.models.data import Batch
from irbench_assets.models.discrete import DiscreteRepresentation, LossParts
from irbench_assets.models.soft import SoftRepresentation
from irbench_assets.models.xval import XValRepresentation

REPRESENTATIONS = ("discrete", "soft", "xval", "xval_affine")


def build_representation(kind: str, tok: TokenizerOutputs, cfg: ModelConfig, n_bins: int) -> DiscreteRepresentation:
    """The representation module of a handle (discrete | soft | xval | xval_affine)."""
    if kind == "discrete":
        return DiscreteRepresentation()
    if kind == "soft":
        if not tok.vocab.q_token_ids:
            raise ValueError("soft representation needs unfused Q<k> tokens in vocab.parquet")
        if not tok.bins:
            raise ValueError("soft representation needs train/bins.parquet with edges")
        return SoftRepresentation(tok.vocab, tok.bins, n_bins, cfg.hidden_size, cfg.initializer_range)
    if kind in ("xval", "xval_affine"):
        if tok.stats is None:
            raise ValueError("xVal needs train/numeric_stats.json")
        return XValRepresentation(tok.vocab, tok.stats, cfg.hidden_size, cfg.initializer_range,
                                  affine=kind == "xval_affine", loss_weight=cfg.xval_loss_weight)
    raise ValueError(f"unknown representation {kind!r}; valid: {', '.join(REPRESENTATIONS)}")


def attention_inputs(segments: torch.Tensor, attn_implementation: str) -> dict[str, Any]:
    """Keyword arguments for the decoder that keep attention inside each piece (see module doc)."""
    T = segments.shape[1]
    if attn_implementation == "flash_attention_2":
        flat = segments.reshape(-1)
        starts = torch.ones_like(flat, dtype=torch.bool)
        starts[1:] = flat[1:] != flat[:-1]
        starts[::T] = True  # every row starts a sequence
        cu = torch.cat([starts.nonzero().flatten(), flat.new_tensor([flat.numel()])]).to(torch.int32)
        longest = int((cu[1:] - cu[:-1]).max())
        return {"attention_mask": None, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
                "max_length_q": longest, "max_length_k": longest}
    if int(segments.max()) <= 0:  # one piece per row (+ trailing PAD): a padding mask suffices
        return {"attention_mask": (segments >= 0).long()}
    seg = torch.where(segments >= 0, segments, segments.new_full((), T + 1))  # PAD = its own piece
    causal = torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    mask = ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]
    if attn_implementation == "eager":  # eager adds the mask to the scores: needs 0 / -inf, not booleans
        return {"attention_mask": torch.zeros(mask.shape, device=mask.device).masked_fill(~mask, float("-inf"))}
    return {"attention_mask": mask}


class RepresentationModel(nn.Module):
    """Base decoder + representation; ``forward`` gives final hidden states, ``loss`` the loss parts."""

    def __init__(self, base: LlamaForCausalLM, representation: DiscreteRepresentation) -> None:
        super().__init__()
        self.base = base
        self.representation = representation

    @property
    def attn_implementation(self) -> str:
        return str(self.base.config._attn_implementation)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Final-layer hidden states [B, T, d] (after the final norm), representation mechanics applied."""
        embeds = self.base.get_input_embeddings()(batch.input_ids)
        embeds = self.representation.embed(embeds, batch)
        out = self.base.model(inputs_embeds=embeds, position_ids=batch.positions,
                              **attention_inputs(batch.segments, self.attn_implementation))
        return out.last_hidden_state

    def loss(self, batch: Batch) -> LossParts:
        """Loss parts of a batch (token CE / soft CE, xVal MSE) from the LM head on the hidden states."""
        hidden = self.forward(batch)
        logits = self.base.lm_head(hidden)
        return self.representation.loss(logits, hidden, batch)

    def logits(self, batch: Batch) -> torch.Tensor:
        """Next-token logits [B, T, V] (for tests and diagnostics)."""
        return self.base.lm_head(self.forward(batch))

    def representation_state(self) -> dict[str, torch.Tensor]:
        """Learnable representation parameters (soft bin table, xVal head, affine shift)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.representation.state_dict().items()}
