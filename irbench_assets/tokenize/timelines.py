"""Stage 0, part 2: prepared events → tokenized timelines of one or several handles (docs/tokenized_format.md).

Everything is fitted on train (:mod:`.fit`) and frozen for tuning/held_out. The work is vectorized over
all admissions of a chunk: every admission's tokens are slots of fixed-width matrices (prefix: one row per
admission; events: ``[time token, code, value]`` per event; suffix: ragged segments), the valid slots are
scattered to their place in one flat array per chunk (:func:`part_destinations`) and the flat arrays become
Arrow list columns through their offsets, without per-admission Python. The only Python loops run over
chunks, handles, segments and codes.

Several handles of one experiment share the read of the events, the code lookup, the time gaps, the bins of
each distinct (quantizer, anchoring) pair, and — for handles with the same (fused, time tokens) layout —
the token positions, times, values and the first-24h selection. Per handle only the token ids, the vocab and
the Parquet writing differ.

Timeline of one admission::

    TL_START, prefix fields (at admittime), events (at their time, in prepared order), suffix fields and
    TL_END (at dischtime)

An event is ``[code]`` (no value), ``[code, Q<k>]`` (unfused), ``[<code>//Q<k>]`` (fused), ``[code, [NUM]]``
(xVal) or ``[code, nan]`` (value missing / not finite); with temporal=tt a time token precedes every event
that follows the previous event of the stay by 5 minutes or more.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from irbench_assets.experiments import HandleConfig
from irbench_assets.storage import atomic_dir, write_json, write_parquet
from irbench_assets.tokenize.bins import digitize_grouped, group_values, segment_quantiles
from irbench_assets.tokenize.config import TokenizerConfig
from irbench_assets.tokenize.events import (
    DAY_US,
    SPLITS,
    EventReader,
    admission_chunks,
    code_index,
    read_prepared_config,
)
from irbench_assets.tokenize.fit import (
    FittedBins,
    TrainFit,
    build_vocab,
    first_event_mask,
    fit_edge_sets,
    fit_train,
)
from irbench_assets.tokenize.vocab import (
    NAN,
    NUM,
    TIME_TOKENS,
    TL_END,
    TL_START,
    TRUNC,
    UNK,
    Vocab,
    field_token,
    q_token,
    time_bucket,
)

LAYOUTS = ("full", "first_24h")
TIMELINE_SCHEMA = pa.schema(
    [
        pa.field("hadm_id", pa.int64(), nullable=False),
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("tokens", pa.list_(pa.int32()), nullable=False),
        pa.field("times", pa.list_(pa.timestamp("us")), nullable=False),
        pa.field("numeric_values", pa.list_(pa.float32()), nullable=False),
        pa.field("seq_len", pa.int32(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
    ]
)
CLIP_SIGMA = 5.0
# dictionary-encode only token ids (small alphabet); statistics only on the scalar columns
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["tokens.list.element"],
    "write_statistics": ["hadm_id", "subject_id", "seq_len", "truncated"],
}


# ---------------------------------------------------------------------------------- flat layout helpers
def part_destinations(lengths: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Where the elements of several per-admission parts land when concatenated admission by admission.

    ``lengths[k][a]`` is the size of part ``k`` for admission ``a``; part k's elements are stored part-major
    (all of admission 0, then admission 1, ...). Returns the timeline offsets and, per part, the flat
    destination index of each of its elements (a vectorized scatter plan; no per-admission loop).
    """
    lens = np.stack(lengths).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens.sum(axis=0))])
    before = np.cumsum(lens, axis=0) - lens
    dests = []
    for k in range(len(lengths)):
        m = int(lens[k].sum())
        src_start = np.cumsum(lens[k]) - lens[k]
        dests.append(np.repeat(offsets[:-1] + before[k] - src_start, lens[k]) + np.arange(m))
    return offsets, dests


def first_24h_selection(
    times: np.ndarray, lengths: np.ndarray, admittime: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the tokens kept in first_24h (time <= admittime + 24 h, at most ``max_len`` per admission).

    Returns (kept flat indices, kept lengths, per-admission truncated flag, positions within the kept
    array that become TRUNC — the last kept token of every admission longer than ``max_len``).
    """
    keep = times <= np.repeat(admittime + DAY_US, lengths)
    cz = np.concatenate([[0], np.cumsum(keep)])
    starts = np.cumsum(lengths) - lengths
    kept = cz[starts + lengths] - cz[starts]
    pos = cz[1:] - 1 - np.repeat(cz[starts], lengths)  # rank among the admission's kept tokens
    sel = np.flatnonzero(keep & (pos < max_len))
    cut_len = np.minimum(kept, max_len).astype(np.int64)
    truncated = kept > max_len
    trunc_pos = (np.cumsum(cut_len) - 1)[truncated]
    return sel, cut_len, truncated, trunc_pos


def _list_array(offsets: pa.Array, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(offsets, values)


# ------------------------------------------------------------------------------------------ per handle
@dataclass
class _Plan:
    """One handle's frozen lookups (token ids by code row / bin) and its output state."""

    handle: HandleConfig
    out: Path
    vocab: Vocab
    bins_key: tuple[str, str]
    bins: FittedBins
    code_tok: np.ndarray  # bare token id per value row (codes, then AGE), UNK appended for unseen codes
    q_tok: np.ndarray
    fused_tok: np.ndarray  # (n_rows, width)
    time_tok: np.ndarray
    num_tok: int
    nan_tok: int
    unk_tok: int
    trunc_tok: int
    stats: dict[str, Any] = field(default_factory=dict)
    writers: dict[str, pq.ParquetWriter] = field(default_factory=dict)

    @property
    def fused(self) -> bool:
        return self.handle.fused

    @property
    def xval(self) -> bool:
        return self.handle.numeric_encoding == "xval"

    @property
    def tt(self) -> bool:
        return self.handle.temporal == "tt"

    @property
    def layout(self) -> tuple[bool, bool]:
        """What decides token positions: (fused, time tokens). Handles sharing it differ only in token ids."""
        return (self.fused, self.tt)


def _make_plan(handle: HandleConfig, out: Path, fit: TrainFit, cfg: TokenizerConfig, bins: FittedBins) -> _Plan:
    xval = handle.numeric_encoding == "xval"
    if xval and handle.fused:
        raise ValueError(f"{handle.key}: xVal needs unfused tokenization")
    hv = build_vocab(fit, cfg, bins, handle.fused, xval, handle.temporal == "tt")
    idx = hv.vocab.index
    unk = idx[UNK]
    return _Plan(
        handle=handle, out=out, vocab=hv.vocab, bins_key=(handle.quantizer, handle.anchoring), bins=bins,
        code_tok=hv.code_tok, fused_tok=hv.fused_tok,
        q_tok=np.asarray([idx.get(q_token(k), unk) for k in range(bins.edges.n_bins)], np.int32),
        time_tok=np.asarray([idx.get(t, unk) for t in TIME_TOKENS], np.int32),
        num_tok=idx.get(NUM, unk), nan_tok=idx[NAN], unk_tok=unk, trunc_tok=idx[TRUNC],
    )


def _value_tokens(plan: _Plan, rows: np.ndarray, bins: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Token id of a value slot: bin token / [NUM] / fused token where finite, ``nan`` elsewhere."""
    if plan.fused:
        tok = plan.fused_tok[np.where(finite, rows, 0), np.where(finite, bins, 0)]
    elif plan.xval:
        tok = np.full(len(rows), plan.num_tok, np.int32)
    else:
        tok = plan.q_tok[np.where(finite, bins, 0)]
    return np.where(finite, tok, plan.nan_tok).astype(np.int32)


# ---------------------------------------------------------------------------------------- per split
@dataclass
class _SplitAdm:
    """One split's admissions as arrays, and the handle-independent prefix/suffix structure."""

    frame: pl.DataFrame
    hadm_id: np.ndarray
    subject_id: np.ndarray
    admittime: np.ndarray
    dischtime: np.ndarray
    n_events: np.ndarray
    age: np.ndarray  # float64, NaN where unknown (all NaN without an age field)
    age_ok: np.ndarray  # a finite age and train ages to bin it against
    suffix_lengths: list[np.ndarray]  # per suffix segment (fields, then TL_END)


def _split_adm(path: Path, cfg: TokenizerConfig, fit: TrainFit) -> _SplitAdm:
    df = pl.read_parquet(path)
    n = df.height
    age_f = next((f for f in cfg.prefix if f.age), None)
    age = np.full(n, np.nan) if age_f is None else df[age_f.token].cast(pl.Float64).fill_null(np.nan).to_numpy()
    has_edges = age_f is not None and fit.values.lengths[fit.n_codes] > 0
    suffix_lengths = [
        df[f.token].list.len().fill_null(0).to_numpy().astype(np.int64) if f.aggregate else np.ones(n, np.int64)
        for f in cfg.suffix
    ] + [np.ones(n, np.int64)]
    return _SplitAdm(
        frame=df,
        hadm_id=df["hadm_id"].to_numpy(),
        subject_id=df["subject_id"].to_numpy(),
        admittime=df["admittime"].dt.cast_time_unit("us").to_numpy().view(np.int64),
        dischtime=df["dischtime"].dt.cast_time_unit("us").to_numpy().view(np.int64),
        n_events=df["n_events"].to_numpy().astype(np.int64),
        age=age,
        age_ok=np.isfinite(age) & bool(has_edges),
        suffix_lengths=suffix_lengths,
    )


def _field_ids(col: pl.Series, token: str, fit: TrainFit, vocab: Vocab) -> np.ndarray:
    """Token ids of ``<token>//<value>`` for a string column (UNK for values unseen in train)."""
    values = sorted(fit.field_counts.get(token, {}))
    ids = [vocab.index[field_token(token, v)] for v in values]
    return (
        col.cast(pl.String)
        .replace_strict(values, ids, default=vocab.index[UNK], return_dtype=pl.Int32)
        .to_numpy()
        .astype(np.int32)
    )


def _prefix_slots(cfg: TokenizerConfig) -> int:
    """TL_START + one slot per prefix field, two for age (code slot, value slot)."""
    return 1 + sum(2 if f.age else 1 for f in cfg.prefix)


@dataclass
class _AdmTokens:
    """One handle's prefix token matrix and suffix token ids for every admission of a split."""

    prefix: np.ndarray  # (n_adm, P) int32
    suffix: list[np.ndarray]  # per suffix segment, flat ids (segment lengths in _SplitAdm.suffix_lengths)
    suffix_offsets: list[np.ndarray]  # per suffix segment, start of each admission's ids (n_adm + 1)


def _adm_tokens(plan: _Plan, sa: _SplitAdm, cfg: TokenizerConfig, fit: TrainFit) -> _AdmTokens:
    n = len(sa.hadm_id)
    vid = plan.vocab.index
    cols = [np.full(n, vid[TL_START], np.int32)]
    for f in cfg.prefix:
        if f.age:
            row = fit.n_codes
            edges = plan.bins.edges.edges.row(row)
            b = np.searchsorted(edges, np.where(sa.age_ok, sa.age, 0.0), side="right")  # == np.digitize
            cols.append(np.full(n, plan.code_tok[row], np.int32))
            cols.append(_value_tokens(plan, np.full(n, row), b.astype(np.int64), sa.age_ok))
        else:
            cols.append(_field_ids(sa.frame[f.token], f.token, fit, plan.vocab))
    suffix = [
        _field_ids(sa.frame[f.token].explode().drop_nulls() if f.aggregate else sa.frame[f.token],
                   f.token, fit, plan.vocab)
        for f in cfg.suffix
    ] + [np.full(n, vid[TL_END], np.int32)]
    offsets = [np.concatenate([[0], np.cumsum(lens)]) for lens in sa.suffix_lengths]
    return _AdmTokens(np.stack(cols, axis=1) if n else np.zeros((0, len(cols)), np.int32), suffix, offsets)


def _prefix_layout(sa: _SplitAdm, cfg: TokenizerConfig, fused: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix slot validity, values and value flags for all admissions of a split (handle-independent)."""
    n = len(sa.hadm_id)
    p = _prefix_slots(cfg)
    valid = np.ones((n, p), bool)
    val = np.zeros((n, p), np.float32)
    hv = np.zeros((n, p), bool)
    j = 1
    for f in cfg.prefix:
        if f.age:
            valid[:, j] = ~(fused & sa.age_ok)  # fused: the AGE//Q<k> token replaces AGE + Q<k>
            val[:, j + 1] = sa.age.astype(np.float32)
            hv[:, j + 1] = sa.age_ok
            j += 2
        else:
            j += 1
    return valid, val, hv


# ---------------------------------------------------------------------------------------- per chunk
@dataclass
class _Chunk:
    """Handle-independent arrays of one chunk of events (shared by every handle)."""

    a0: int
    a1: int
    n_events: np.ndarray  # per admission of the chunk
    rows: np.ndarray  # value row (code index); one past the last row for codes unseen in train
    values: np.ndarray  # float32
    times: np.ndarray  # int64 us
    has_val: np.ndarray  # numeric code (a value slot follows the code)
    finite: np.ndarray  # numeric code with a finite value
    bucket: np.ndarray  # time token index, -1 none
    bins: dict[tuple[str, str], np.ndarray]


def _read_chunk(reader: EventReader, fit: TrainFit, sa: _SplitAdm, bounds: tuple[int, int, int, int],
                bin_sets: dict[tuple[str, str], FittedBins]) -> _Chunk:
    a0, a1, r0, r1 = bounds
    tbl = reader.read(r0, r1, ["hadm_id", "code", "numeric_value", "time"])
    n_ev = sa.n_events[a0:a1]
    if not np.array_equal(tbl.column("hadm_id").to_numpy(), np.repeat(sa.hadm_id[a0:a1], n_ev)):
        raise ValueError(f"{reader.path}: rows {r0}..{r1} do not match admissions.parquet (re-run prepare_events)")
    cidx = code_index(tbl.column("code"), fit.codes_arrow)
    unk_row = fit.values.n_rows
    rows = np.where(cidx >= 0, cidx, unk_row).astype(np.int64)
    vals = tbl.column("numeric_value").to_numpy().astype(np.float32, copy=False)
    numeric = np.concatenate([fit.numeric, np.zeros(unk_row - fit.n_codes + 1, bool)])
    has_val = numeric[rows]
    finite = has_val & np.isfinite(vals)
    t = tbl.column("time").to_numpy().view(np.int64)
    first = first_event_mask(n_ev, len(t))
    bucket = np.where(first, -1, time_bucket(np.diff(t, prepend=t[:1]))).astype(np.int8)
    sel = np.flatnonzero(finite)
    g = group_values(rows[sel], vals[sel], fit.values.n_rows)
    bins: dict[tuple[str, str], np.ndarray] = {}
    for key, fb in bin_sets.items():
        b = np.zeros(len(t), np.int16)
        b[sel] = digitize_grouped(g, fb.edges.edges)
        bins[key] = b
    return _Chunk(a0, a1, n_ev, rows, vals, t, has_val, finite, bucket, bins)


@dataclass
class _Layout:
    """Token positions, times and values of one chunk for one (fused, tt) layout, shared by its handles.

    A handle's tokens are gathered from its *source* array — the concatenation of the prefix slot matrix
    (n_adm × P), the event slot matrix (n_events × 3: time token, code, value) and the suffix segments —
    through ``src_index`` (full timelines) and ``cut_index`` (first_24h); one gather each, no scatter.
    """

    src_index: np.ndarray  # int32/int64, one per full-timeline token
    cut_index: np.ndarray  # src_index of the first_24h tokens
    trunc_pos: np.ndarray  # positions in the first_24h arrays that become TRUNC
    full: dict[str, pa.Array]  # offsets, times, numeric_values (list arrays), seq_len, truncated
    cut: dict[str, pa.Array]
    full_lengths: np.ndarray
    cut_lengths: np.ndarray
    truncated: np.ndarray


def _source_parts(ch: _Chunk, sa: _SplitAdm, n_pre_slots: int) -> list[np.ndarray]:
    """Per-part base offsets of the source array: [prefix, events, suffix segments...]."""
    a0, a1 = ch.a0, ch.a1
    sizes = [(a1 - a0) * n_pre_slots, 3 * len(ch.rows), *(int(s[a0:a1].sum()) for s in sa.suffix_lengths)]
    return list(np.concatenate([[0], np.cumsum(sizes)])[:-1])


def _layout(ch: _Chunk, sa: _SplitAdm, pre: tuple[np.ndarray, np.ndarray, np.ndarray], fused: bool, tt: bool,
            max_len: int) -> _Layout:
    a0, a1 = ch.a0, ch.a1
    n = len(ch.rows)
    pre_valid, pre_val, pre_hv = (x[a0:a1] for x in pre)
    n_pre = pre_valid.shape[1]
    ev_valid = np.empty((n, 3), bool)
    ev_valid[:, 0] = (ch.bucket >= 0) if tt else False
    ev_valid[:, 1] = ~(fused & ch.finite)  # fused: the <code>//Q<k> token replaces code + Q<k>
    ev_valid[:, 2] = ch.has_val
    per_event = ev_valid.sum(axis=1)
    cs = np.concatenate([[0], np.cumsum(per_event)])
    ends = np.cumsum(ch.n_events)
    ev_len = cs[ends] - cs[ends - ch.n_events]
    suf_lens = [s[a0:a1] for s in sa.suffix_lengths]
    offsets, dests = part_destinations([pre_valid.sum(axis=1), ev_len, *suf_lens])
    n_tok = int(offsets[-1])
    bases = _source_parts(ch, sa, n_pre)
    itype = np.int32 if bases[-1] + int(suf_lens[-1].sum()) < 2**31 else np.int64  # source size
    src_index = np.empty(n_tok, itype)
    src_index[dests[0]] = np.flatnonzero(pre_valid.ravel())
    src_index[dests[1]] = bases[1] + np.flatnonzero(ev_valid.ravel())
    for d, base in zip(dests[2:], bases[2:], strict=True):
        src_index[d] = base + np.arange(len(d))
    # handle-independent source arrays of times and values, gathered the same way as the tokens
    n_adm = a1 - a0
    src_times = np.concatenate([np.repeat(sa.admittime[a0:a1], n_pre), np.repeat(ch.times, 3),
                                *(np.repeat(sa.dischtime[a0:a1], lens) for lens in suf_lens)])
    n_suf = int(sum(int(x.sum()) for x in suf_lens))
    ev_val = np.zeros((n, 3), np.float32)
    ev_val[:, 2] = ch.values
    ev_hv = np.zeros((n, 3), bool)
    ev_hv[:, 2] = ch.finite
    src_val = np.concatenate([pre_val.ravel(), ev_val.ravel(), np.zeros(n_suf, np.float32)])
    src_hv = np.concatenate([pre_hv.ravel(), ev_hv.ravel(), np.zeros(n_suf, bool)])
    times = src_times[src_index]
    lengths = np.diff(offsets)
    sel, cut_len, truncated, trunc_pos = first_24h_selection(times, lengths, sa.admittime[a0:a1], max_len)
    cut_index = src_index[sel]
    hv = src_hv[src_index]
    cut_hv = hv[sel]
    cut_hv[trunc_pos] = False
    values = src_val[src_index]
    ts = pa.array(times, pa.int64()).cast(pa.timestamp("us"))
    full_off = pa.array(offsets.astype(np.int32))
    cut_off = pa.array(np.concatenate([[0], np.cumsum(cut_len)]).astype(np.int32))
    return _Layout(
        src_index=src_index, cut_index=cut_index, trunc_pos=trunc_pos,
        full={
            "offsets": full_off,
            "times": _list_array(full_off, ts),
            "numeric_values": _list_array(full_off, pa.array(values, pa.float32(), mask=~hv)),
            "seq_len": pa.array(lengths.astype(np.int32), pa.int32()),
            "truncated": pa.array(np.zeros(n_adm, bool), pa.bool_()),
        },
        cut={
            "offsets": cut_off,
            "times": _list_array(cut_off, ts.take(pa.array(sel))),
            "numeric_values": _list_array(cut_off, pa.array(values[sel], pa.float32(), mask=~cut_hv)),
            "seq_len": pa.array(cut_len.astype(np.int32), pa.int32()),
            "truncated": pa.array(truncated, pa.bool_()),
        },
        full_lengths=lengths, cut_lengths=cut_len, truncated=truncated,
    )


def _handle_source(plan: _Plan, ch: _Chunk, at: _AdmTokens, sa: _SplitAdm) -> np.ndarray:
    """The handle's source array of token ids (see :class:`_Layout`)."""
    a0, a1 = ch.a0, ch.a1
    n = len(ch.rows)
    tok = np.empty((n, 3), np.int32)
    tok[:, 0] = plan.time_tok[np.maximum(ch.bucket, 0)]
    tok[:, 1] = plan.code_tok[ch.rows]
    tok[:, 2] = _value_tokens(plan, np.where(ch.has_val, ch.rows, 0), ch.bins[plan.bins_key], ch.finite)
    parts = [at.prefix[a0:a1].ravel(), tok.ravel()]
    for ids, cs in zip(at.suffix, at.suffix_offsets, strict=True):
        parts.append(ids[cs[a0] : cs[a1]])
    return np.concatenate(parts)


def _write_chunk(plan: _Plan, split: str, ch: _Chunk, lay: _Layout, at: _AdmTokens, sa: _SplitAdm) -> None:
    """One handle, one chunk: token ids, then append to its full and first_24h files."""
    src = _handle_source(plan, ch, at, sa)
    for layout in LAYOUTS:
        _write_part(plan, split, layout, src, lay, sa, ch.a0, ch.a1)


def _write_part(plan: _Plan, split: str, layout: str, src: np.ndarray, lay: _Layout, sa: _SplitAdm,
                a0: int, a1: int) -> None:
    """Gather one handle's tokens for one chunk and append them to its full or first_24h file."""
    if layout == "full":
        toks = src[lay.src_index]
        part = lay.full
        st = plan.stats[split]
        st["full"].append(lay.full_lengths)
        st["unk"] += int(np.count_nonzero(toks == plan.unk_tok))
    else:
        toks = src[lay.cut_index]
        toks[lay.trunc_pos] = plan.trunc_tok
        part = lay.cut
        st = plan.stats[split]
        st["first_24h"].append(lay.cut_lengths)
        st["trunc"] += int(lay.truncated.sum())
    tbl = pa.Table.from_arrays(
        [
            pa.array(sa.hadm_id[a0:a1], pa.int64()),
            pa.array(sa.subject_id[a0:a1], pa.int64()),
            _list_array(part["offsets"], pa.array(toks, pa.int32())),
            part["times"],
            part["numeric_values"],
            part["seq_len"],
            part["truncated"],
        ],
        schema=TIMELINE_SCHEMA,
    )
    plan.writers[layout].write_table(tbl)


# ------------------------------------------------------------------------------------- side outputs
def _bins_frame(plan: _Plan, fit: TrainFit) -> pl.DataFrame:
    fb = plan.bins
    rows = np.flatnonzero(fit.values.lengths > 0)
    names = fit.row_names
    e = fb.edges.edges
    return pl.DataFrame(
        {
            "code": [names[i] for i in rows],
            "code_token_id": plan.code_tok[rows].astype(np.int32),
            "edges": [e.row(int(i)).tolist() for i in rows],
            "n_values": fit.values.lengths[rows].astype(np.int64),
            "n_bins_nominal": np.full(len(rows), fb.edges.n_bins, np.int32),
            "n_bins_realized": fb.n_realized[rows].astype(np.int32),
            "n_bins_reachable": fb.edges.n_reachable[rows].astype(np.int32),
            "anchored": fb.edges.anchored[rows],
            "ref_range_lower": np.where(np.isfinite(fit.ref_lower[rows]), fit.ref_lower[rows], np.nan),
            "ref_range_upper": np.where(np.isfinite(fit.ref_upper[rows]), fit.ref_upper[rows], np.nan),
        },
        schema_overrides={"edges": pl.List(pl.Float64)},
    ).with_columns(pl.col("ref_range_lower", "ref_range_upper").fill_nan(None)).sort("code")


def numeric_stats(fit: TrainFit, code_tok: np.ndarray) -> dict[str, Any]:
    """Robust per-code stats of train values (median, quartiles, IQR, std = max(IQR/1.35, 1e-8), n)."""
    v = fit.values
    q = segment_quantiles(v.flat, v.offsets[:-1], v.lengths, np.asarray([0.25, 0.5, 0.75]))
    codes: dict[str, Any] = {}
    for i, name in enumerate(fit.row_names):
        if v.lengths[i] == 0:
            continue
        q25, med, q75 = (float(x) for x in q[i])
        iqr = q75 - q25
        codes[name] = {"token_id": int(code_tok[i]), "median": med, "q25": q25, "q75": q75, "iqr": iqr,
                       "std": max(iqr / 1.35, 1e-8), "n": int(v.lengths[i])}
    return {"schema_version": 1, "method": "median_iqr", "clip_sigma": CLIP_SIGMA, "codes": codes}


def _quantiles(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0, "mean": 0.0}
    p = np.quantile(x, [0.5, 0.9, 0.99])
    return {"p50": float(p[0]), "p90": float(p[1]), "p99": float(p[2]), "max": int(x.max()),
            "mean": float(x.mean())}


def _metadata(plan: _Plan, fit: TrainFit, max_len: int, n_events: dict[str, int]) -> dict[str, Any]:
    vocab = plan.vocab
    fb = plan.bins
    rows = np.flatnonzero(fit.values.lengths[: fit.n_codes] > 0)
    realized = fb.n_realized[rows]
    zero = vocab.counts == 0
    kinds = np.asarray(vocab.kinds)
    md: dict[str, Any] = {
        "handle": plan.handle.key,
        "max_len": max_len,
        "vocab_size": len(vocab),
        "n_admissions": {}, "n_events": n_events, "n_tokens": {}, "seq_len": {}, "overflow_fraction": {},
        "unk_tokens": {},
        "zero_frequency_tokens": int(zero[kinds != "special"].sum()),
        "zero_frequency_by_kind": {k: int((zero & (kinds == k)).sum()) for k in sorted(set(vocab.kinds))},
        "bins": {
            "quantizer": plan.handle.quantizer,
            "anchoring": plan.handle.anchoring,
            "n_bins_nominal": fb.edges.n_bins,
            "n_numeric_codes": len(rows),
            "realized_mean": float(realized.mean()) if len(rows) else 0.0,
            "realized_min": int(realized.min()) if len(rows) else 0,
            "n_codes_realized_below_nominal": int((realized < fb.edges.n_bins).sum()),
            "n_codes_reachable_below_nominal": int((fb.edges.n_reachable[rows] < fb.edges.n_bins).sum()),
            "n_codes_anchored": int(fb.edges.anchored[rows].sum()),
            "n_codes_anchor_fallback": int((~fb.edges.anchored[rows]).sum()) if plan.handle.anchoring != "none"
            else 0,
        },
    }
    for split in SPLITS:
        st = plan.stats.get(split, {"full": [], "first_24h": [], "unk": 0, "trunc": 0})
        full = np.concatenate(st["full"]) if st["full"] else np.zeros(0, np.int64)
        cut = np.concatenate(st["first_24h"]) if st["first_24h"] else np.zeros(0, np.int64)
        md["n_admissions"][split] = len(full)
        md["n_tokens"][split] = {"full": int(full.sum()), "first_24h": int(cut.sum())}
        md["seq_len"][split] = {"full": _quantiles(full), "first_24h": _quantiles(cut)}
        md["overflow_fraction"][split] = {
            "full": float((full > max_len).mean()) if len(full) else 0.0,
            "first_24h": float(st["trunc"] / len(cut)) if len(cut) else 0.0,
        }
        md["unk_tokens"][split] = st["unk"]
    return md


# -------------------------------------------------------------------------------------------- driver
def tokenize_handles(
    events_dir: Path,
    handles: list[HandleConfig],
    out_dirs: list[Path],
    max_len: int | None = None,
    chunk_events: int = 2_000_000,
    threads: int = 2,
) -> list[dict[str, Any]]:
    """Tokenize several handles of one experiment from one prepared-events folder in a single pass.

    Fits once on train (codes, values, ref ranges, bins per distinct quantizer/anchoring), then reads each
    split chunk by chunk and writes every handle's layout (docs/tokenized_format.md) through
    ``atomic_dir``. ``max_len`` defaults to the tokenizer config's. Returns one metadata dict per handle.
    """
    if len(handles) != len(out_dirs):
        raise ValueError(f"{len(handles)} handles but {len(out_dirs)} output folders")
    if len({Path(o).resolve() for o in out_dirs}) != len(out_dirs):
        raise ValueError(f"output folders must be distinct: {[str(o) for o in out_dirs]}")
    if not handles:
        return []
    events_dir = Path(events_dir)
    cfg, _report = read_prepared_config(events_dir)
    cohort = _report.get("cohort_size")
    for h in handles:
        if h.tokenizer != cfg.name:
            raise ValueError(f"{h.key}: handle uses tokenizer {h.tokenizer!r}, {events_dir} was prepared "
                             f"with {cfg.name!r}")
        if (h.cohort == "all") != (cohort is None):
            raise ValueError(f"{h.key}: handle cohort {h.cohort!r} but {events_dir} was prepared "
                             + ("for all admissions" if cohort is None else f"for a cohort of {cohort} hadm_ids"))
    max_len = int(max_len or cfg.max_len)
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2, got {max_len}")
    fit = fit_train(events_dir, cfg, chunk_events)
    bin_sets = fit_edge_sets(fit, [(h.quantizer, h.anchoring) for h in handles])
    n_events: dict[str, int] = {}
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        tmps = [stack.enter_context(atomic_dir(Path(o))) for o in out_dirs]
        plans = [_make_plan(h, t, fit, cfg, bin_sets[(h.quantizer, h.anchoring)])
                 for h, t in zip(handles, tmps, strict=True)]
        for split in SPLITS:
            d = events_dir / split
            sa = _split_adm(d / "admissions.parquet", cfg, fit)
            reader = EventReader(d / "events.parquet")
            if int(sa.n_events.sum()) != reader.n_rows:
                raise ValueError(f"{d}: admissions n_events != events rows (re-run prepare_events)")
            n_events[split] = reader.n_rows
            adm_tokens = [_adm_tokens(p, sa, cfg, fit) for p in plans]
            layouts = sorted({p.layout for p in plans})
            pre = {fused: _prefix_layout(sa, cfg, fused) for fused in sorted({fused for fused, _ in layouts})}
            for p in plans:
                for layout in LAYOUTS:
                    path = p.out / layout / split / "tokens_timelines.parquet"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    p.writers[layout] = pq.ParquetWriter(path, TIMELINE_SCHEMA, **WRITE_OPTIONS)
            chunks = admission_chunks(sa.n_events, chunk_events)
            if not chunks and len(sa.hadm_id):
                chunks = [(0, len(sa.hadm_id), 0, 0)]
            for p in plans:
                p.stats[split] = {"full": [], "first_24h": [], "unk": 0, "trunc": 0}
            pending: list[Any] = []
            bin_keys = {p.bins_key: p.bins for p in plans}
            for bounds in chunks:
                # prepare chunk i+1 here while the pool still writes chunk i
                ch = _read_chunk(reader, fit, sa, bounds, bin_keys)
                lays = {key: _layout(ch, sa, pre[key[0]], key[0], key[1], max_len) for key in layouts}
                for job in pending:  # a writer receives its chunks in order
                    job.result()
                pending = [pool.submit(_write_chunk, p, split, ch, lays[p.layout], at, sa)
                           for p, at in zip(plans, adm_tokens, strict=True)]
                del ch, lays
            for job in pending:
                job.result()
            for p in plans:
                for layout in LAYOUTS:
                    p.writers[layout].close()
                p.writers.clear()
        results = []
        for p in plans:
            train = p.out / "train"
            train.mkdir(parents=True, exist_ok=True)
            write_parquet(p.vocab.frame(), train / "vocab.parquet")
            write_parquet(_bins_frame(p, fit), train / "bins.parquet")
            write_json(numeric_stats(fit, p.code_tok), train / "numeric_stats.json")
            md = _metadata(p, fit, max_len, n_events)
            write_json({"handle": asdict(p.handle), "tokenizer": cfg.to_dict(), "max_len": max_len,
                        "events_dir_report": _report["splits"], "metadata": md}, p.out / "tokenizer.json")
            results.append(md)
    return results


def tokenize_handle(
    events_dir: Path, handle: HandleConfig, out_dir: Path, max_len: int | None = None, chunk_events: int = 2_000_000
) -> dict[str, Any]:
    """Tokenize one handle (see :func:`tokenize_handles`); returns its metadata."""
    return tokenize_handles(events_dir, [handle], [out_dir], max_len, chunk_events)[0]
