"""Stage 2: one feature vector per admission — the final-layer hidden state (after the final RMSNorm) at the
last real token of its first-24h timeline, computed through the handle's own representation (soft mix,
xVal scaling, time RoPE), unlike the reference's plain-HF extraction.

- Last real token: the token before the first ``PAD`` / ``TRUNC`` / ``TL_END`` (the reference's rule), or
  the final token when there is none.
- Over-long timelines: the model sees at most ``context_length`` tokens (its training block size). When the
  first-24h timeline is longer, the *last* tokens up to the last real one are kept (for a model trained on
  windows, the kept tail starts with ``TL_CONT``, exactly like a continuation window in training).
- Bounded memory: the parquet file is streamed in record batches; admissions are sorted by length inside a
  chunk so that a micro-batch pads little; rows are written back in file order (hadm_id).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from irbench_assets.models.config import ModelConfig, Vocabulary, read_tokenizer_outputs
from irbench_assets.models.data import Plan, Timelines, check_token_ids, collate, timelines_from_table
from irbench_assets.models.llama import attention_implementation, autocast_dtype, pick_device
from irbench_assets.models.wrapper import RepresentationModel, build_representation
from irbench_assets.storage import atomic_dir

SPLITS = ("train", "tuning", "held_out")


def load_model(model_dir: Path, device: str = "auto") -> tuple[RepresentationModel, dict[str, Any]]:
    """Rebuild a trained model (base weights + representation state + vocab copy) in eval mode.

    ``meta`` holds the saved config plus ``tokenizer`` (vocab/bins/stats), ``device``, ``attn_implementation``
    and ``autocast`` (the dtype to run under, or None).
    """
    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} does not exist (not a model directory written by train_model)")
    config = json.loads(cfg_path.read_text())
    mcfg = ModelConfig.from_dict(config["model"])
    tok = read_tokenizer_outputs(model_dir / "vocab")
    dev = pick_device(device)
    attn = attention_implementation(mcfg.attn_implementation, dev)
    base = AutoModelForCausalLM.from_pretrained(model_dir / "base", attn_implementation=attn, dtype=torch.float32)
    rep = build_representation(config["representation"], tok, mcfg, int(config["n_bins"]))
    rep_file = model_dir / "representation.safetensors"
    if rep_file.exists():
        rep.load_state_dict(load_file(str(rep_file)))
    model = RepresentationModel(base, rep).to(dev).eval()
    meta = {**config, "tokenizer": tok, "device": dev, "attn_implementation": attn,
            "autocast": autocast_dtype(mcfg.dtype, dev)}
    return model, meta


def extraction_plan(tl: Timelines, vocab: Vocabulary, context: int, continuation: bool) -> tuple[Plan, np.ndarray]:
    """One row per admission ending at its last real token; returns the plan and each row's last position."""
    is_stop = np.isin(tl.tokens, np.asarray(vocab.stop_ids, dtype=np.int32))
    stop = tl.lengths.copy()
    hits = np.flatnonzero(is_stop)
    if hits.size:
        row_of = np.searchsorted(tl.offsets, hits, side="right") - 1
        first = np.full(tl.n, np.iinfo(np.int64).max)
        np.minimum.at(first, row_of, hits - tl.offsets[row_of])
        stop = np.minimum(stop, first)
    if (stop == 0).any():
        row = int(np.flatnonzero(stop == 0)[0])
        raise ValueError(f"{tl.source}: row {row} (hadm_id {tl.hadm_id[row]}) has no real token before "
                         f"{vocab.tokens[tl.tokens[tl.offsets[row]]]}")
    start = np.maximum(stop - context, 0)
    cont = (start > 0) & continuation
    start = np.where(cont, start + 1, start)
    plan = Plan(row=np.arange(tl.n), doc=np.arange(tl.n), start=start, stop=stop, cont=cont, n_rows=tl.n,
                row_len=None)
    return plan, (stop - start + cont - 1).astype(np.int64)


def _select(plan: Plan, rows: np.ndarray) -> Plan:
    """Sub-plan of some rows of a one-piece-per-row plan, renumbered 0..k-1 in the given order."""
    return Plan(np.arange(len(rows)), plan.doc[rows], plan.start[rows], plan.stop[rows], plan.cont[rows],
                len(rows), None)


@torch.no_grad()
def _features(model: RepresentationModel, meta: dict[str, Any], tl: Timelines, batch_size: int) -> tuple[np.ndarray, int]:
    """Hidden states at the last real token of every timeline of ``tl`` ([n, d] float32), and #cut."""
    vocab = meta["tokenizer"].vocab
    plan, last = extraction_plan(tl, vocab, int(meta["context_length"]), meta["training"] == "windowed")
    order = np.lexsort((tl.hadm_id, -(plan.stop - plan.start)))  # longest first
    out = np.empty((tl.n, model.base.config.hidden_size), dtype=np.float32)
    dev, amp = meta["device"], meta["autocast"]
    rope, per_hour = meta["temporal"] == "rope", float(meta["model"]["rope_positions_per_hour"])
    for s in range(0, tl.n, batch_size):
        rows = order[s:s + batch_size]
        batch = collate(tl, _select(plan, rows), vocab, rope, per_hour).to(dev)
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            hidden = model(batch)
        pick = torch.as_tensor(last[rows], device=hidden.device)
        out[rows] = hidden[torch.arange(len(rows), device=hidden.device), pick].float().cpu().numpy()
    return out, int((plan.start > 0).sum())


def extract_features(model_dir: Path, tokenized_dir: Path, out_dir: Path, batch_size: int = 32,
                     chunk_rows: int = 4096) -> dict:
    """Write ``out_dir/{train,tuning,held_out}.parquet`` (hadm_id, features: fixed_size_list<float32>[d])
    from ``tokenized_dir/first_24h/<split>/tokens_timelines.parquet``, atomically; return a summary."""
    model_dir, tokenized_dir, out_dir = Path(model_dir), Path(tokenized_dir), Path(out_dir)
    t0 = time.perf_counter()
    model, meta = load_model(model_dir)
    vocab = meta["tokenizer"].vocab
    own = read_tokenizer_outputs(tokenized_dir / "train").vocab
    if own.tokens != vocab.tokens:
        raise ValueError(f"{tokenized_dir / 'train' / 'vocab.parquet'} differs from the vocabulary the model in "
                         f"{model_dir} was trained with")
    d = int(model.base.config.hidden_size)
    schema = pa.schema([("hadm_id", pa.int64()), ("features", pa.list_(pa.float32(), d))])
    rope = meta["temporal"] == "rope"
    summary: dict[str, Any] = {"dim": d, "attn_implementation": meta["attn_implementation"],
                               "device": str(meta["device"]), "splits": {}}
    with atomic_dir(out_dir) as tmp:
        for split in SPLITS:
            path = tokenized_dir / "first_24h" / split / "tokens_timelines.parquet"
            if not path.exists():
                raise FileNotFoundError(f"{path} does not exist")
            n_rows = n_cut = 0
            n_nonfinite = 0
            cols = ["hadm_id", "tokens", "numeric_values"] + (["times"] if rope else [])
            with pq.ParquetWriter(tmp / f"{split}.parquet", schema, compression="zstd") as writer:
                for rb in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=cols):
                    tl = timelines_from_table(pa.Table.from_batches([rb]), str(path), need_minutes=rope)
                    check_token_ids(tl, vocab)
                    feats, cut = _features(model, meta, tl, batch_size)
                    n_nonfinite += int((~np.isfinite(feats)).any(axis=1).sum())
                    arr = pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1)), d)
                    writer.write_table(pa.Table.from_arrays([pa.array(tl.hadm_id), arr], schema=schema))
                    n_rows, n_cut = n_rows + tl.n, n_cut + cut
            if n_nonfinite:
                raise ValueError(f"{model_dir}: {n_nonfinite} admissions of {path} got non-finite features")
            summary["splits"][split] = {"rows": n_rows, "cut_to_context": n_cut}
    summary["seconds"] = time.perf_counter() - t0
    return summary
