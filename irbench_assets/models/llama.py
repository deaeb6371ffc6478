"""The base decoder: a transformers ``LlamaForCausalLM`` built from a :class:`ModelConfig`.

Random initialisation, nothing downloaded. The architecture follows the reference (a Llama-3.2 config
with hidden/intermediate/layers/heads overridden): RoPE, RMSNorm, SwiGLU, optional GQA, tied input/output
embeddings. Attention is FlashAttention-2 when CUDA and ``flash_attn`` are importable, SDPA otherwise —
nothing else changes with the hardware.
"""

from __future__ import annotations

import importlib.util

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from irbench_assets.models.config import ModelConfig, Vocabulary

# Llama-3.2's long-context RoPE frequency scaling, used when model.rope_type == "llama3"
_LLAMA3_ROPE = {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device when there is one, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def attention_implementation(requested: str, device: torch.device) -> str:
    """FlashAttention-2 on CUDA when flash_attn imports, SDPA otherwise (or what the profile forces)."""
    if requested != "auto":
        if requested == "flash_attention_2" and not flash_attn_available(device):
            raise RuntimeError("model.attn_implementation=flash_attention_2 needs CUDA and the flash_attn package")
        return requested
    return "flash_attention_2" if flash_attn_available(device) else "sdpa"


def flash_attn_available(device: torch.device) -> bool:
    """True when FlashAttention-2 can run here (a CUDA device and an importable ``flash_attn``)."""
    return device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None


def autocast_dtype(requested: str, device: torch.device) -> torch.dtype | None:
    """bf16 mixed precision on GPU (fp32 master weights), plain fp32 on CPU unless the profile says otherwise."""
    if requested == "float32":
        return None
    if requested == "bfloat16" or (requested == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def llama_config(cfg: ModelConfig, vocab: Vocabulary, attn_implementation: str) -> LlamaConfig:
    """The transformers config: our sizes, our vocabulary's special ids, RoPE theta / type."""
    rope: dict[str, object] = {"rope_type": cfg.rope_type, "rope_theta": float(cfg.rope_theta)}
    if cfg.rope_type == "llama3":
        rope.update(_LLAMA3_ROPE)
    config = LlamaConfig(
        vocab_size=vocab.size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads or cfg.num_attention_heads,
        head_dim=cfg.head_dim or cfg.hidden_size // cfg.num_attention_heads,
        max_position_embeddings=131072,
        rms_norm_eps=cfg.rms_norm_eps,
        initializer_range=cfg.initializer_range,
        tie_word_embeddings=cfg.tie_word_embeddings,
        rope_parameters=rope,
        pad_token_id=vocab.pad_id,
        bos_token_id=vocab.tl_start_id,
        eos_token_id=vocab.tl_end_id,
        use_cache=False,
    )
    config._attn_implementation = attn_implementation
    return config


def build_llama(cfg: ModelConfig, vocab: Vocabulary, attn_implementation: str) -> LlamaForCausalLM:
    """A randomly initialised LlamaForCausalLM in fp32 (seed the global RNG before calling)."""
    config = llama_config(cfg, vocab, attn_implementation)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)


def count_parameters(module: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
