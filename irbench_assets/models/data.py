"""Model inputs: tokenized timelines as flat arrays, the packed (Exp1) and windowed (Exp2/3) training plans,
and collation into a :class:`Batch`.

- **Packed**: the split's timelines, in a seeded order derived from ``hadm_id`` alone (so every handle of an
  experiment sees the admissions in the same order), are concatenated into one stream that is cut into
  rows of exactly ``block_size`` tokens; only the very last row is padded. A row holds several *pieces*
  (parts of different admissions); attention never crosses a piece boundary (see ``wrapper.py``), and
  positions restart at 0 in every piece.
- **Windowed**: each admission's full timeline is cut into non-overlapping windows of ``block_size``
  tokens; every window after the first starts with ``TL_CONT`` followed by the next ``block_size - 1``
  tokens. Windows are shuffled by a seeded key of (hadm_id, window index) and padded per batch.

Every token carries its *code id*: the token before it in the full timeline (-1 at the timeline's first
token), so that a value position keeps its code even when the code token falls in the previous row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from irbench_assets.models.config import IGNORE_INDEX, Vocabulary
from irbench_assets.models.time_rope import index_positions, time_positions

_MINUTE = {"s": 60.0, "ms": 60e3, "us": 60e6, "ns": 60e9}


# ------------------------------------------------------------------------------------------ timelines
@dataclass
class Timelines:
    """A split's timelines as flat arrays: tokens of admission i are ``tokens[offsets[i]:offsets[i+1]]``."""

    hadm_id: np.ndarray  # int64 [n]
    offsets: np.ndarray  # int64 [n + 1]
    tokens: np.ndarray  # int32 [N]
    values: np.ndarray  # float32 [N], NaN where the token carries no value
    code_ids: np.ndarray  # int32 [N], previous token of the same timeline, -1 at its first token
    minutes: np.ndarray | None  # float32 [N], minutes since the timeline's first token (None: not loaded)
    source: str

    @property
    def n(self) -> int:
        return len(self.hadm_id)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _flat_list(table: pa.Table, name: str, source: str) -> tuple[pa.Array, np.ndarray]:
    """Flatten one list column; return (values, per-row lengths). Null rows are an error."""
    col = table.column(name)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{source}: column {name} is null in row {row} (hadm_id {table.column('hadm_id')[row]})")
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    return arr.flatten(), lengths


def timelines_from_table(table: pa.Table, source: str, need_minutes: bool) -> Timelines:
    """Tokenized rows (hadm_id, tokens, numeric_values[, times]) → :class:`Timelines`, with checks."""
    needed = ["hadm_id", "tokens", "numeric_values"] + (["times"] if need_minutes else [])
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ValueError(f"{source}: missing columns {missing} (have {table.column_names})")
    hadm = table.column("hadm_id").to_numpy().astype(np.int64)
    flat_tok, lengths = _flat_list(table, "tokens", source)
    if np.any(lengths == 0):
        row = int(np.flatnonzero(lengths == 0)[0])
        raise ValueError(f"{source}: row {row} (hadm_id {hadm[row]}) has an empty tokens list")
    flat_val, vlen = _flat_list(table, "numeric_values", source)
    if not np.array_equal(vlen, lengths):
        row = int(np.flatnonzero(vlen != lengths)[0])
        raise ValueError(f"{source}: row {row} (hadm_id {hadm[row]}): numeric_values has {vlen[row]} entries, "
                         f"tokens has {lengths[row]}")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = flat_tok.to_numpy(zero_copy_only=False).astype(np.int32)
    values = pc.fill_null(flat_val.cast(pa.float32()), float("nan")).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.float32)
    code_ids = np.empty_like(tokens)
    code_ids[1:] = tokens[:-1]
    code_ids[offsets[:-1]] = -1
    minutes = None
    if need_minutes:
        flat_t, tlen = _flat_list(table, "times", source)
        if not np.array_equal(tlen, lengths):
            row = int(np.flatnonzero(tlen != lengths)[0])
            raise ValueError(f"{source}: row {row} (hadm_id {hadm[row]}): times and tokens differ in length")
        if flat_t.null_count:
            pos = int(np.flatnonzero(flat_t.is_null().to_numpy(zero_copy_only=False))[0])
            row = int(np.searchsorted(offsets, pos, side="right") - 1)
            raise ValueError(f"{source}: row {row} (hadm_id {hadm[row]}): null time at token {pos - offsets[row]} "
                             "(admission-relative RoPE needs a time for every token)")
        if not pa.types.is_timestamp(flat_t.type):
            raise ValueError(f"{source}: column times must be list[timestamp], got list[{flat_t.type}]")
        raw = flat_t.cast(pa.int64()).to_numpy(zero_copy_only=False)
        first = np.repeat(raw[offsets[:-1]], lengths)
        minutes = ((raw - first) / _MINUTE[flat_t.type.unit]).astype(np.float32)
    return Timelines(hadm, offsets, tokens, values, code_ids, minutes, source)


def read_timelines(path: Path, need_minutes: bool) -> Timelines:
    """Read one ``tokens_timelines.parquet`` into flat arrays."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    cols = ["hadm_id", "tokens", "numeric_values"] + (["times"] if need_minutes else [])
    have = pq.read_schema(path).names
    missing = [c for c in cols if c not in have]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (have {have})")
    return timelines_from_table(pq.read_table(path, columns=cols), str(path), need_minutes)


def check_token_ids(tl: Timelines, vocab: Vocabulary) -> None:
    """Every token id must be a vocabulary id."""
    bad = (tl.tokens < 0) | (tl.tokens >= vocab.size)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(tl.offsets, pos, side="right") - 1)
        raise ValueError(f"{tl.source}: row {row} (hadm_id {tl.hadm_id[row]}): token id {tl.tokens[pos]} is "
                         f"outside the vocabulary (size {vocab.size})")


# ------------------------------------------------------------------------------------------ ordering
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fixed bijective scramble of uint64 (hand-written: numpy has no keyed hash)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def order_key(hadm_id: np.ndarray, seed: int, epoch: int, window: np.ndarray | None = None) -> np.ndarray:
    """Seeded sort key from (hadm_id[, window index]) only — identical for every handle of an experiment."""
    salt = _mix64(np.array([seed * 1_000_003 + epoch], dtype=np.uint64))
    key = _mix64(_mix64(hadm_id.astype(np.uint64)) ^ salt)
    if window is not None:
        key = _mix64(key ^ _mix64(window.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)))
    return key


# ------------------------------------------------------------------------------------------ plans
@dataclass
class Plan:
    """Rows of model input as pieces of timelines: piece j is ``doc[j]``'s tokens ``start[j]:stop[j]`` in
    row ``row[j]`` (rows ascending), preceded by TL_CONT when ``cont[j]``. ``row_len`` fixes the row length
    (packed) or is None (padded per batch)."""

    row: np.ndarray
    doc: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    cont: np.ndarray
    n_rows: int
    row_len: int | None

    def n_batches(self, batch_size: int) -> int:
        return -(-self.n_rows // batch_size)

    def real_tokens(self) -> int:
        return int((self.stop - self.start).sum() + self.cont.sum())

    def efficiency(self, batch_size: int) -> float:
        """Share of real (non-PAD) tokens among all token slots the batches would hold."""
        lens = np.bincount(self.row, weights=self.stop - self.start + self.cont, minlength=self.n_rows)
        if self.row_len is not None:
            slots = self.n_rows * self.row_len
        else:
            starts = np.arange(0, self.n_rows, batch_size)
            slots = int(sum(lens[s:s + batch_size].max() * len(lens[s:s + batch_size]) for s in starts))
        return float(lens.sum() / max(slots, 1))

    def batch_pieces(self, index: int, batch_size: int) -> Plan:
        """The sub-plan of batch ``index`` (rows renumbered from 0)."""
        lo, hi = index * batch_size, min((index + 1) * batch_size, self.n_rows)
        a, b = np.searchsorted(self.row, [lo, hi], side="left")
        return Plan(self.row[a:b] - lo, self.doc[a:b], self.start[a:b], self.stop[a:b], self.cont[a:b],
                    hi - lo, self.row_len)


def packed_plan(tl: Timelines, block_size: int, seed: int, epoch: int) -> Plan:
    """Concatenate all timelines (seeded hadm order) and cut the stream into rows of ``block_size``."""
    order = np.lexsort((tl.hadm_id, order_key(tl.hadm_id, seed, epoch)))
    lengths = tl.lengths[order]
    doc_start = np.concatenate([[0], np.cumsum(lengths)])
    total = int(doc_start[-1])
    cuts = np.union1d(doc_start, np.arange(0, total, block_size, dtype=np.int64))
    cuts = cuts[cuts < total]
    ends = np.append(cuts[1:], total)
    which = np.searchsorted(doc_start, cuts, side="right") - 1
    start = cuts - doc_start[which]
    return Plan(row=cuts // block_size, doc=order[which], start=start, stop=start + (ends - cuts),
                cont=np.zeros(len(cuts), dtype=bool), n_rows=-(-total // block_size), row_len=block_size)


def windowed_plan(tl: Timelines, block_size: int, seed: int, epoch: int, max_windows: int | None) -> Plan:
    """Cut every timeline into windows (TL_CONT on continuations) and shuffle them by (hadm_id, window)."""
    n = tl.lengths
    n_win = 1 + np.ceil(np.maximum(n - block_size, 0) / (block_size - 1)).astype(np.int64)
    doc = np.repeat(np.arange(tl.n), n_win)
    widx = np.arange(len(doc)) - np.repeat(np.cumsum(n_win) - n_win, n_win)
    if max_windows is not None and (n_win > max_windows).any():
        keep = np.ones(len(doc), dtype=bool)
        first_of = np.cumsum(n_win) - n_win
        for d in np.flatnonzero(n_win > max_windows):  # deterministic, evenly spaced subsample
            first = int(first_of[d])
            kept = np.unique(np.round(np.linspace(0, n_win[d] - 1, max_windows)).astype(np.int64))
            keep[first:first + n_win[d]] = False
            keep[first + kept] = True
        doc, widx = doc[keep], widx[keep]
    start = np.where(widx == 0, 0, block_size + (widx - 1) * (block_size - 1))
    stop = np.minimum(np.where(widx == 0, block_size, start + block_size - 1), n[doc])
    order = np.lexsort((widx, tl.hadm_id[doc], order_key(tl.hadm_id[doc], seed, epoch, widx)))
    return Plan(row=np.arange(len(doc)), doc=doc[order], start=start[order], stop=stop[order],
                cont=(widx > 0)[order], n_rows=len(doc), row_len=None)


# ------------------------------------------------------------------------------------------ batches
@dataclass
class Batch:
    """One model input. Labels are shifted: ``labels[:, t]`` is the token at ``t + 1`` of the same piece
    (IGNORE_INDEX at PAD, at a piece's last position and after TL_CONT-less cuts)."""

    input_ids: torch.Tensor  # long [B, T]
    values: torch.Tensor  # float32 [B, T], NaN where no value
    code_ids: torch.Tensor  # long [B, T], previous token of the same timeline, -1 at its start / PAD
    positions: torch.Tensor  # float32 [B, T], rotary positions (index or admission-relative time)
    segments: torch.Tensor  # long [B, T], piece number within the row, -1 at PAD
    labels: torch.Tensor  # long [B, T]

    def to(self, device: torch.device) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    @property
    def n_real(self) -> int:
        return int((self.segments >= 0).sum())


def collate(tl: Timelines, plan: Plan, vocab: Vocabulary, rope: bool, positions_per_hour: float) -> Batch:
    """Build the tensors of a (sub-)plan: rows right-padded with PAD to ``row_len`` or the longest row."""
    piece_len = plan.stop - plan.start + plan.cont
    row_lens = np.bincount(plan.row, weights=piece_len, minlength=plan.n_rows).astype(np.int64)
    width = plan.row_len if plan.row_len is not None else int(row_lens.max())
    B = plan.n_rows
    ids = np.full((B, width), vocab.pad_id, dtype=np.int64)
    vals = np.full((B, width), np.nan, dtype=np.float32)
    codes = np.full((B, width), -1, dtype=np.int64)
    pos = np.zeros((B, width), dtype=np.float32)
    seg = np.full((B, width), -1, dtype=np.int64)
    labels = np.full((B, width), IGNORE_INDEX, dtype=np.int64)
    fill = np.zeros(B, dtype=np.int64)
    piece_no = np.zeros(B, dtype=np.int64)
    for j in range(len(plan.row)):
        r, d = int(plan.row[j]), int(plan.doc[j])
        a, b = int(tl.offsets[d] + plan.start[j]), int(tl.offsets[d] + plan.stop[j])
        c = int(plan.cont[j])
        s, e = int(fill[r]), int(fill[r] + c + b - a)
        if c:
            ids[r, s] = vocab.tl_cont_id
        ids[r, s + c:e] = tl.tokens[a:b]
        vals[r, s + c:e] = tl.values[a:b]
        codes[r, s + c:e] = tl.code_ids[a:b]
        if rope:
            assert tl.minutes is not None
            m = tl.minutes[a:b]
            pos[r, s:e] = time_positions(np.concatenate([m[:1], m]) if c else m, positions_per_hour)
        else:
            pos[r, s:e] = index_positions(e - s)
        seg[r, s:e] = piece_no[r]
        labels[r, s:e - 1] = ids[r, s + 1:e]
        fill[r], piece_no[r] = e, piece_no[r] + 1
    return Batch(*(torch.from_numpy(x) for x in (ids, vals, codes, pos, seg, labels)))
