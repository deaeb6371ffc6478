"""Everything Stage 0 learns, learned from the train split only and shared by all handles of an experiment.

:func:`fit_train` makes one pass over the prepared train events and admissions and keeps what any handle
needs: the code list and counts, the sorted finite values of every code (and of age), reference ranges
(mode per code), the counts of missing values and of each time-spacing bucket, and the counts of every
prefix/suffix value. Bin edges per (quantizer, anchoring) are then cheap (:func:`fit_edge_sets`), and each
handle's vocabulary follows from these counts without re-reading anything (:func:`build_vocab`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from irbench_assets.tokenize.bins import EdgeSet, Ragged, bin_counts, digitize, fit_edges, ragged_from_codes
from irbench_assets.tokenize.config import CODE_SEP, TokenizerConfig
from irbench_assets.tokenize.events import EventReader, admission_chunks, code_counts, code_index
from irbench_assets.tokenize.vocab import (
    NAN,
    NUM,
    SPECIALS,
    TIME_TOKENS,
    TL_END,
    TL_START,
    UNK,
    Vocab,
    field_token,
    q_token,
    time_bucket,
)

AGE_ROW_NAME = "AGE"


def first_event_mask(n_events: np.ndarray, n: int) -> np.ndarray:
    """True at the first event of every admission (events grouped by admission, ``n_events`` per admission)."""
    n_events = np.asarray(n_events, dtype=np.int64)
    first = np.zeros(n, dtype=bool)
    first[(np.cumsum(n_events) - n_events)[n_events > 0]] = True
    return first


@dataclass
class TrainFit:
    """Train-split statistics shared by every handle; code index = position in ``codes``.

    Rows of ``values``/``ref_*`` are the codes, plus one last row for age when the config has an age field.
    """

    codes: list[str]
    code_counts: np.ndarray
    n_finite: np.ndarray
    n_nonfinite: np.ndarray
    values: Ragged
    ref_lower: np.ndarray
    ref_upper: np.ndarray
    spacer_counts: np.ndarray
    n_admissions: int
    field_counts: dict[str, dict[str, int]]
    age_token: str | None
    n_age_nonfinite: int
    codes_arrow: pa.Array = field(repr=False)

    @property
    def n_codes(self) -> int:
        return len(self.codes)

    @property
    def numeric(self) -> np.ndarray:
        """Per code: at least one finite train value (its events carry a value token)."""
        return self.n_finite > 0

    @property
    def row_names(self) -> list[str]:
        """Names of the value rows: the codes, then the age token if any."""
        return self.codes + ([self.age_token] if self.age_token else [])


def _field_counts(adm: pl.DataFrame, cfg: TokenizerConfig) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for f in cfg.fields:
        if f.age:
            continue
        col = adm[f.token]
        if f.aggregate:
            col = col.explode().drop_nulls()
        vc = col.value_counts()
        out[f.token] = {str(k): int(n) for k, n in vc.iter_rows()}
    return out


def _ref_modes(events_path: Path, codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per code the most frequent non-null ref_range_lower / _upper (ties: the smaller value); NaN if none."""
    out = []
    for col in ("ref_range_lower", "ref_range_upper"):
        modes = (
            pl.scan_parquet(events_path)
            .select("code", col)
            .filter(pl.col(col).is_not_null() & pl.col(col).is_not_nan())
            .group_by("code", col)
            .len()
            .sort(["code", "len", col], descending=[False, True, False])
            .group_by("code", maintain_order=True)
            .first()
            .collect(engine="streaming")
        )
        arr = np.full(len(codes), np.nan)
        pos = {c: i for i, c in enumerate(codes)}
        for code, v in modes.select("code", col).iter_rows():
            if code in pos:
                arr[pos[code]] = float(v)
        out.append(arr)
    return out[0], out[1]


def fit_train(events_dir: Path, cfg: TokenizerConfig, chunk_events: int = 2_000_000) -> TrainFit:
    """One pass over ``events_dir/train``: codes, values, reference ranges, spacer and field counts."""
    d = Path(events_dir) / "train"
    adm = pl.read_parquet(d / "admissions.parquet")
    reader = EventReader(d / "events.parquet")
    if int(adm["n_events"].sum()) != reader.n_rows:
        raise ValueError(
            f"{d}: admissions.parquet n_events sums to {int(adm['n_events'].sum())} but events.parquet "
            f"has {reader.n_rows} rows (re-run prepare_events)"
        )
    counts: dict[str, int] = {}
    for rg in range(reader.pf.num_row_groups):
        for code, k in code_counts(reader.pf.read_row_group(rg, columns=["code"]).column("code")).items():
            counts[code] = counts.get(code, 0) + k
    codes = sorted(counts)
    codes_arrow = pa.array(codes, type=pa.string())
    n_codes = len(codes)
    n_finite = np.zeros(n_codes, np.int64)
    n_nonfinite = np.zeros(n_codes, np.int64)
    spacer = np.zeros(len(TIME_TOKENS), np.int64)
    val_codes, val_values = [], []
    for a0, a1, r0, r1 in admission_chunks(adm["n_events"].to_numpy(), chunk_events):
        tbl = reader.read(r0, r1, ["code", "numeric_value", "time"])
        cidx = code_index(tbl.column("code"), codes_arrow)
        vals = tbl.column("numeric_value").to_numpy().astype(np.float32, copy=False)
        fin = np.isfinite(vals)
        n_finite += np.bincount(cidx[fin], minlength=n_codes)
        n_nonfinite += np.bincount(cidx[~fin], minlength=n_codes)
        val_codes.append(cidx[fin])
        val_values.append(vals[fin])
        t = tbl.column("time").to_numpy().view(np.int64)
        first = first_event_mask(adm["n_events"][a0:a1].to_numpy(), len(t))
        b = time_bucket(np.diff(t, prepend=t[:1])[~first])
        spacer += np.bincount(b[b >= 0], minlength=len(TIME_TOKENS))
    n_nonfinite[n_finite == 0] = 0  # codes without any train value are categorical: no value token
    age_token = next((f.token for f in cfg.prefix if f.age), None)
    vc = np.concatenate(val_codes) if val_codes else np.zeros(0, np.int32)
    vv = np.concatenate(val_values).astype(np.float64) if val_values else np.zeros(0)
    n_age_nonfinite = 0
    n_rows = n_codes
    if age_token is not None:
        age = adm[age_token].to_numpy().astype(np.float64)
        ok = np.isfinite(age)
        n_age_nonfinite = int((~ok).sum())
        vc = np.concatenate([vc, np.full(int(ok.sum()), n_codes, np.int32)])
        vv = np.concatenate([vv, age[ok]])
        n_rows += 1
    values = ragged_from_codes(vc, vv, n_rows)
    lo, hi = _ref_modes(d / "events.parquet", codes)
    if age_token is not None:
        lo, hi = np.append(lo, np.nan), np.append(hi, np.nan)
    return TrainFit(
        codes=codes,
        code_counts=np.asarray([counts[c] for c in codes], np.int64),
        n_finite=n_finite,
        n_nonfinite=n_nonfinite,
        values=values,
        ref_lower=lo,
        ref_upper=hi,
        spacer_counts=spacer,
        n_admissions=adm.height,
        field_counts=_field_counts(adm, cfg),
        age_token=age_token,
        n_age_nonfinite=n_age_nonfinite,
        codes_arrow=codes_arrow,
    )


@dataclass(frozen=True)
class FittedBins:
    """One (quantizer, anchoring) pair fitted on train: edges per value row and train counts per bin."""

    edges: EdgeSet
    counts: np.ndarray  # (n_rows, n_bins) train values per (row, bin)

    @property
    def n_realized(self) -> np.ndarray:
        """Per row the number of bins that hold at least one train value."""
        return (self.counts > 0).sum(axis=1)


def fit_edge_sets(fit: TrainFit, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], FittedBins]:
    """Edges and train bin counts of each distinct (quantizer, anchoring) pair, fitted once."""
    out: dict[tuple[str, str], FittedBins] = {}
    rid = fit.values.row_ids()
    for q, a in pairs:
        if (q, a) in out:
            continue
        es = fit_edges(fit.values, q, a, fit.ref_lower, fit.ref_upper)
        b = digitize(rid, fit.values.flat, es.edges)
        out[(q, a)] = FittedBins(es, bin_counts(rid, b, fit.values.n_rows, es.n_bins))
    return out


@dataclass(frozen=True)
class HandleVocab:
    """A handle's vocabulary and the id lookups the timelines need."""

    vocab: Vocab
    code_tok: np.ndarray  # (n_rows + 1,) id of the bare token of each value row; the extra last entry is UNK
    fused_tok: np.ndarray  # (n_rows, width) id of <row>//Q<k>; UNK where there is none


def build_vocab(
    fit: TrainFit, cfg: TokenizerConfig, bins: FittedBins, fused: bool, xval: bool, tt: bool
) -> HandleVocab:
    """The handle's vocabulary with train counts of the full timelines, computed from the fit alone.

    Counts equal what the train timelines contain (a test checks this against the written tokens). The
    ranking of the (possibly tens of thousands of) code and fused tokens is one polars sort.
    """
    n_adm = fit.n_admissions
    n_codes = fit.n_codes
    nan_count = int(fit.n_nonfinite.sum()) + fit.n_age_nonfinite
    specials = {TL_START: n_adm, TL_END: n_adm, NAN: nan_count}
    fixed: list[tuple[str, int, str]] = [(s, specials.get(s, 0), "special") for s in SPECIALS]
    bc = bins.counts
    slots = bins.edges.n_bin_slots
    if xval:
        fixed.append((NUM, int(fit.n_finite.sum()) + int(fit.values.lengths[n_codes:].sum()), "value"))
    elif not fused:
        per_bin = bc.sum(axis=0)
        fixed += [(q_token(k), int(per_bin[k]), "value") for k in range(bins.edges.n_bins)]
    if tt:
        fixed += [(t, int(n), "time") for t, n in zip(TIME_TOKENS, fit.spacer_counts, strict=True)]

    names = fit.row_names
    n_rows = len(names)
    bare = fit.code_counts.copy()
    if fused:  # a finite value becomes a fused token; the bare code only carries missing values
        bare = np.where(fit.numeric, fit.n_nonfinite, bare)
    kinds = ["event"] * n_codes
    if fit.age_token is not None:
        bare = np.append(bare, fit.n_age_nonfinite if fused else n_adm)
        kinds.append("prefix")
    schema = {"token": pl.String, "count": pl.Int64, "kind": pl.String, "row": pl.Int64, "k": pl.Int64}
    frames = [pl.DataFrame({"token": names, "count": bare, "kind": kinds, "row": np.arange(n_rows),
                            "k": np.full(n_rows, -1)}, schema=schema)]
    if fused:
        r = np.flatnonzero(slots[:n_rows] > 0)
        s = slots[r].astype(np.int64)
        row = np.repeat(r, s)
        k = np.arange(len(row)) - np.repeat(np.cumsum(s) - s, s)
        tok = pl.Series(names, dtype=pl.String).gather(row) + CODE_SEP + "Q" + pl.Series(k).cast(pl.String)
        frames.append(pl.DataFrame({"token": tok, "count": bc[row, k], "kind": "fused", "row": row, "k": k},
                                   schema=schema))
    fields = [(field_token(f.token, v), n, "prefix" if f in cfg.prefix else "suffix", -1, -1)
              for f in cfg.fields if not f.age for v, n in fit.field_counts[f.token].items()]
    frames.append(pl.DataFrame(fields, schema=schema, orient="row"))
    ranked = pl.concat(frames).sort(["count", "token"], descending=[True, False])
    vocab = Vocab(
        tokens=tuple([e[0] for e in fixed] + ranked["token"].to_list()),
        counts=np.concatenate([np.asarray([e[1] for e in fixed], np.int64), ranked["count"].to_numpy()]),
        kinds=tuple([e[2] for e in fixed] + ranked["kind"].to_list()),
    )
    ids = np.arange(len(fixed), len(vocab), dtype=np.int32)
    unk = vocab.index[UNK]
    rr, kk = ranked["row"].to_numpy(), ranked["k"].to_numpy()
    code_tok = np.full(n_rows + 1, unk, np.int32)
    m = (rr >= 0) & (kk < 0)
    code_tok[rr[m]] = ids[m]
    fused_tok = np.full((n_rows, max(int(slots.max(initial=0)), 1)), unk, np.int32)
    m = kk >= 0
    fused_tok[rr[m], kk[m]] = ids[m]
    return HandleVocab(vocab, code_tok, fused_tok)
