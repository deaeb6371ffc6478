"""Typed model / training settings (profile sections ``model`` and ``train``) and the tokenizer outputs a
model needs: the vocabulary, the train-fitted bin edges and the per-code numeric statistics.

Everything here reads plain files (pyarrow, json) so that it also runs on a bare GPU machine.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq

IGNORE_INDEX = -100
STOP_TOKENS = ("PAD", "TRUNC", "TL_END")
_Q_TOKEN = re.compile(r"^Q(\d+)$")
NUM_TOKEN = "[NUM]"


def _from_dict(cls: type, raw: dict[str, Any], where: str) -> Any:
    """Build a dataclass from a profile section, rejecting unknown keys with the list of known ones."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known keys: {sorted(known)}")
    return cls(**raw)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the Llama-style decoder plus the representation knobs (profile section ``model``)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    rope_theta: float = 500_000.0
    rope_type: Literal["default", "llama3"] = "default"
    tie_word_embeddings: bool = True
    rms_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    # admission-relative RoPE: rotary position = hours since the first visible token x this factor
    rope_positions_per_hour: float = 60.0
    # xVal: total loss = token CE + xval_loss_weight x MSE(next [NUM] z)
    xval_loss_weight: float = 1.0
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> ModelConfig:
        """Profile section ``model`` → config (unknown keys are an error)."""
        cfg = _from_dict(cls, dict(raw or {}), "profile section 'model'")
        if cfg.rope_type not in ("default", "llama3"):
            raise ValueError(f"profile section 'model': rope_type={cfg.rope_type!r} is not 'default' or 'llama3'")
        if cfg.rope_positions_per_hour <= 0:
            raise ValueError("profile section 'model': rope_positions_per_hour must be > 0")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Stage-1 training settings (profile section ``train``)."""

    epochs: int = 1
    block_size: int = 4096
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-4
    lr_sweep: list[float] = field(default_factory=list)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    optimizer: Literal["adamw", "muon"] = "adamw"
    max_windows_per_admission: int | None = None
    checkpoint_every: int = 200
    log_every: int = 10
    eval_max_batches: int | None = None
    seed: int = 42
    device: str = "auto"

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrainConfig:
        """Profile section ``train`` → config (unknown keys are an error)."""
        raw = dict(raw or {})
        if "lr_sweep" in raw:
            raw["lr_sweep"] = [float(x) for x in raw["lr_sweep"] or []]
        cfg = _from_dict(cls, raw, "profile section 'train'")
        if cfg.optimizer not in ("adamw", "muon"):
            raise ValueError(f"profile section 'train': optimizer={cfg.optimizer!r} is not 'adamw' or 'muon'")
        for name in ("epochs", "block_size", "batch_size", "grad_accum", "checkpoint_every", "log_every"):
            if getattr(cfg, name) < 1:
                raise ValueError(f"profile section 'train': {name} must be >= 1, got {getattr(cfg, name)}")
        if cfg.block_size < 2:
            raise ValueError("profile section 'train': block_size must be >= 2")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Vocabulary:
    """The token strings of one tokenized handle (index = token id) and the ids the models need."""

    tokens: tuple[str, ...]
    pad_id: int
    tl_start_id: int
    tl_end_id: int
    trunc_id: int
    tl_cont_id: int
    q_token_ids: tuple[int, ...]  # Q0..Qm → token id (-1 where Qk is not in the vocabulary)
    num_token_id: int | None

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Tokens that end the real part of a first-24h timeline (extraction reads the token before)."""
        return (self.pad_id, self.trunc_id, self.tl_end_id)


def read_vocabulary(path: Path) -> Vocabulary:
    """Read ``train/vocab.parquet`` (token_id, token, ...); ids must be 0..V-1 and PAD must be id 0."""
    table = pq.read_table(path, columns=["token_id", "token"])
    ids = table.column("token_id").to_numpy().astype(np.int64)
    toks = table.column("token").to_pylist()
    order = np.argsort(ids, kind="stable")
    ids, toks = ids[order], [toks[i] for i in order]
    if len(ids) == 0 or not np.array_equal(ids, np.arange(len(ids))):
        bad = next((int(i) for k, i in enumerate(ids) if i != k), None)
        raise ValueError(f"{path}: column token_id must be exactly 0..{len(ids) - 1}; first offending id {bad}")
    lookup = {t: i for i, t in enumerate(toks)}
    missing = [s for s in ("PAD", "TL_START", "TL_END", "TRUNC", "TL_CONT") if s not in lookup]
    if missing:
        raise ValueError(f"{path}: column token lacks the special tokens {missing}")
    if lookup["PAD"] != 0:
        raise ValueError(f"{path}: PAD must have token_id 0, found {lookup['PAD']}")
    q = {int(m.group(1)): i for i, t in enumerate(toks) if (m := _Q_TOKEN.match(t))}
    q_ids = tuple(q.get(k, -1) for k in range(max(q) + 1)) if q else ()
    return Vocabulary(
        tokens=tuple(toks),
        pad_id=0,
        tl_start_id=lookup["TL_START"],
        tl_end_id=lookup["TL_END"],
        trunc_id=lookup["TRUNC"],
        tl_cont_id=lookup["TL_CONT"],
        q_token_ids=q_ids,
        num_token_id=lookup.get(NUM_TOKEN),
    )


def read_bins(path: Path, vocab_size: int) -> dict[int, np.ndarray]:
    """Read ``train/bins.parquet`` → {code token id: sorted finite inner edges (float64)}."""
    table = pq.read_table(path, columns=["code", "code_token_id", "edges"])
    codes = table.column("code").to_pylist()
    ids = table.column("code_token_id").to_pylist()
    edges = table.column("edges").to_pylist()
    out: dict[int, np.ndarray] = {}
    for row, (code, tid, e) in enumerate(zip(codes, ids, edges, strict=True)):
        if tid is None or not 0 <= tid < vocab_size:
            raise ValueError(f"{path}: row {row} (code {code!r}): code_token_id {tid} is not a vocabulary id")
        arr = np.asarray(e if e is not None else [], dtype=np.float64)
        if arr.size and (not np.all(np.isfinite(arr)) or np.any(np.diff(arr) < 0)):
            raise ValueError(f"{path}: row {row} (code {code!r}): edges must be finite and sorted, got {arr}")
        if tid in out:
            raise ValueError(f"{path}: row {row}: code_token_id {tid} ({code!r}) appears twice")
        out[int(tid)] = arr
    return out


@dataclass(frozen=True)
class NumericStats:
    """Per-code robust statistics from ``train/numeric_stats.json`` (xVal normalisation)."""

    median: dict[int, float]
    std: dict[int, float]
    clip_sigma: float


def read_numeric_stats(path: Path, vocab_size: int) -> NumericStats:
    """Read ``numeric_stats.json``; a code's median/std must be finite with std > 0 (null = no statistics)."""
    raw = json.loads(Path(path).read_text())
    med: dict[int, float] = {}
    std: dict[int, float] = {}
    for code, st in sorted(raw.get("codes", {}).items()):
        tid, m, s = st.get("token_id"), st.get("median"), st.get("std")
        if tid is None or not 0 <= int(tid) < vocab_size:
            raise ValueError(f"{path}: codes[{code!r}].token_id={tid} is not a vocabulary id")
        if m is None or s is None:  # a code without usable values: its [NUM] positions stay unscaled
            continue
        if not math.isfinite(m) or not math.isfinite(s) or s <= 0:
            raise ValueError(f"{path}: codes[{code!r}] needs a finite median and std > 0, got {m}, {s}")
        med[int(tid)], std[int(tid)] = float(m), float(s)
    clip = float(raw.get("clip_sigma", 5.0))
    if not clip > 0:
        raise ValueError(f"{path}: clip_sigma must be > 0, got {clip}")
    return NumericStats(median=med, std=std, clip_sigma=clip)


@dataclass(frozen=True)
class TokenizerOutputs:
    """What a model reads from the tokenized handle's ``train/`` folder."""

    vocab: Vocabulary
    bins: dict[int, np.ndarray]
    stats: NumericStats | None


VOCAB_FILES = ("vocab.parquet", "bins.parquet", "numeric_stats.json")


def read_tokenizer_outputs(train_dir: Path) -> TokenizerOutputs:
    """Read vocab / bins / numeric stats from a ``train/`` folder (bins and stats may be absent)."""
    train_dir = Path(train_dir)
    vpath = train_dir / "vocab.parquet"
    if not vpath.exists():
        raise FileNotFoundError(f"{vpath} does not exist (is this a tokenized handle's train/ folder?)")
    vocab = read_vocabulary(vpath)
    bpath, spath = train_dir / "bins.parquet", train_dir / "numeric_stats.json"
    bins = read_bins(bpath, vocab.size) if bpath.exists() else {}
    stats = read_numeric_stats(spath, vocab.size) if spath.exists() else None
    return TokenizerOutputs(vocab=vocab, bins=bins, stats=stats)
