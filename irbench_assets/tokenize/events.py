"""Stage 0, part 1: the one scan of a MEDS dataset per experiment → prepared events per split.

``prepare_events`` reads ``data/{train,tuning,held_out}/*.parquet`` of a MEDS dataset (docs/meds.md),
builds one reference row per admission (admittime, dischtime, age, demographics, discharge location,
aggregated procedures), applies the config's filters and writes, per split,

``events.parquet``      hadm_id, subject_id, time, code, numeric_value, ref_range_lower, ref_range_upper —
                        only the config's event blocks, only admittime <= time <= dischtime, sorted by
                        (hadm_id, time, code, numeric_value, ref_range_lower, ref_range_upper), nulls last;
``admissions.parquet``  one row per kept admission (sorted by hadm_id) with one column per prefix/suffix
                        field (named by its token) and ``n_events``.

Every handle of the experiment is then tokenized from these files (:mod:`.timelines`) without touching
MEDS again. Memory is bounded by one MEDS shard plus one hadm_id bucket (an external sort: events are
bucketed by hadm_id rank while the shards are read, then each bucket is sorted and appended in order).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from irbench_assets.storage import atomic_dir, write_json, write_parquet
from irbench_assets.tokenize.config import CODE_SEP, TokenizerConfig

SPLITS = ("train", "tuning", "held_out")
PREPARED_SCHEMA_VERSION = 1
UNKNOWN_VALUE = "UNK"
DAY_US = 86_400_000_000
YEAR_US = 365.25 * DAY_US
MEDS_COLUMNS = ("subject_id", "hadm_id", "time", "code", "numeric_value", "ref_range_lower", "ref_range_upper")
SORT_KEYS = ["hadm_id", "time", "code", "numeric_value", "ref_range_lower", "ref_range_upper"]
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("hadm_id", pa.int64(), nullable=False),
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("time", pa.timestamp("us"), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("numeric_value", pa.float32()),
        pa.field("ref_range_lower", pa.float32()),
        pa.field("ref_range_upper", pa.float32()),
    ]
)
EVENTS_POLARS_SCHEMA: dict[str, pl.DataType] = {
    "hadm_id": pl.Int64(),
    "subject_id": pl.Int64(),
    "time": pl.Datetime("us"),
    "code": pl.String(),
    "numeric_value": pl.Float32(),
    "ref_range_lower": pl.Float32(),
    "ref_range_upper": pl.Float32(),
}


def match_code(code: str, col: str = "code") -> pl.Expr:
    """True where the MEDS code equals ``code`` or starts with ``code//`` (a whole-part prefix match)."""
    c = pl.col(col)
    return (c == code) | c.str.starts_with(code + CODE_SEP)


def code_value(code: str, col: str = "code") -> pl.Expr:
    """The first ``//`` part after the ``code`` prefix (``HOSPITAL_ADMISSION//URGENT//ER`` → ``URGENT``)."""
    rest = pl.col(col).str.slice(len(code) + len(CODE_SEP)).str.split(CODE_SEP).list.first()
    return pl.when(rest.is_null() | (rest == "")).then(pl.lit(UNKNOWN_VALUE)).otherwise(rest)


def split_files(meds_root: Path) -> dict[str, list[Path]]:
    """The MEDS shard files of each split (sorted); a missing ``data/train`` is an error."""
    data = Path(meds_root) / "data"
    if not (data / "train").is_dir():
        raise FileNotFoundError(f"{data / 'train'}: not a MEDS dataset (no data/train/ folder)")
    out = {s: sorted((data / s).rglob("*.parquet")) if (data / s).is_dir() else [] for s in SPLITS}
    for files in out.values():
        for f in files:
            names = set(pq.read_schema(f).names)
            missing = [c for c in MEDS_COLUMNS if c not in names]
            if missing:
                raise ValueError(f"{f}: MEDS shard lacks column(s) {missing} (see docs/meds.md)")
            _check_types(f, pq.read_schema(f))
    return out


def _check_types(path: Path, schema: pa.Schema) -> None:
    """A shard column whose type differs from the MEDS schema (e.g. numeric_value written as strings) is
    named with its file and types here, instead of surfacing as polars' file-less SchemaError in the scan."""
    for col in MEDS_COLUMNS:
        got, want = schema.field(col).type, EVENTS_SCHEMA.field(col).type
        # time: any timestamp unit is accepted (the scan casts it to microseconds)
        if got != want and not (col == "time" and pa.types.is_timestamp(got)) and not (
                pa.types.is_large_string(got) and want == pa.string()):
            raise ValueError(f"{path}: column '{col}' has type {got}, expected {want} (see docs/meds.md)")


def _scan(files: list[Path], with_path: bool = False) -> pl.LazyFrame:
    lf = pl.scan_parquet(files, include_file_paths="__file" if with_path else None)
    cols = [pl.col(c) for c in MEDS_COLUMNS]
    cols[MEDS_COLUMNS.index("time")] = pl.col("time").cast(pl.Datetime("us"))
    return lf.select([*cols, *([pl.col("__file")] if with_path else [])])


def _one_per_hadm(df: pl.DataFrame, what: str) -> pl.DataFrame:
    """Rows keyed by hadm_id must be unique; a duplicate names its file(s) and value."""
    dup = df.filter(pl.col("hadm_id").is_duplicated())
    if dup.height:
        row = dup.sort("hadm_id", "__file").row(0, named=True)
        files = sorted(dup.filter(pl.col("hadm_id") == row["hadm_id"])["__file"].unique().to_list())
        raise ValueError(f"{', '.join(files)}: column code: hadm_id {row['hadm_id']} has {what} more than once")
    return df


def _field_values(ref: pl.DataFrame, code: str, token: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-hadm and per-subject (static, hadm_id null) value of one field: first by (time, value)."""
    rows = ref.filter(match_code(code)).with_columns(code_value(code).alias(token))
    order = ["time", token]
    per_hadm = (
        rows.filter(pl.col("hadm_id").is_not_null())
        .sort(["hadm_id", *order], nulls_last=True)
        .group_by("hadm_id", maintain_order=True)
        .agg(pl.col(token).first())
    )
    per_subject = (
        rows.filter(pl.col("hadm_id").is_null())
        .sort(["subject_id", *order], nulls_last=True)
        .group_by("subject_id", maintain_order=True)
        .agg(pl.col(token).first().alias(f"{token}__subject"))
    )
    return per_hadm, per_subject


def build_admissions(
    ref: pl.DataFrame, cfg: TokenizerConfig, hadm_ids: pl.DataFrame | None
) -> tuple[pl.DataFrame, dict[str, int]]:
    """One row per admission from the reference codes of one split, filtered; returns (frame, drop counts)."""
    a = cfg.admission
    adm = _one_per_hadm(
        ref.filter(match_code(a.start_code) & pl.col("hadm_id").is_not_null()).select(
            "hadm_id", "subject_id", pl.col("time").alias("admittime"), "__file"
        ),
        a.start_code,
    )
    dis = _one_per_hadm(
        ref.filter(match_code(a.end_code) & pl.col("hadm_id").is_not_null()).select(
            "hadm_id", pl.col("time").alias("dischtime"), "__file"
        ),
        a.end_code,
    )
    adm = adm.drop("__file").join(dis.drop("__file"), on="hadm_id", how="left")
    dropped: dict[str, int] = {}
    n0 = adm.height
    adm = adm.filter(pl.col("admittime").is_not_null() & pl.col("dischtime").is_not_null())
    dropped["no_admit_or_discharge_time"] = n0 - adm.height
    n0 = adm.height
    adm = adm.filter(pl.col("dischtime") >= pl.col("admittime"))
    dropped["discharge_before_admission"] = n0 - adm.height
    if cfg.day_stay_filter:
        n0 = adm.height
        # Strictly longer than 24 h: the discharge suffix (DSCG, PROC, TL_END) is stamped at dischtime, so a
        # stay of exactly 24 h would put its discharge disposition (e.g. DSCG//DIED) inside first_24h.
        adm = adm.filter((pl.col("dischtime") - pl.col("admittime")) > pl.duration(days=1))
        dropped["stay_not_longer_than_24h"] = n0 - adm.height
    if hadm_ids is not None:
        n0 = adm.height
        adm = adm.join(hadm_ids.select(pl.col("hadm_id").cast(pl.Int64)).unique(), on="hadm_id", how="semi")
        dropped["not_in_cohort"] = n0 - adm.height
    birth = (
        ref.filter(match_code(a.birth_code))
        .group_by("subject_id")
        .agg(pl.col("time").min().alias("__birth"))
    )
    adm = adm.join(birth, on="subject_id", how="left")
    for f in cfg.fields:
        if f.age:
            age_us = (pl.col("admittime") - pl.col("__birth")).dt.total_microseconds()
            adm = adm.with_columns((age_us.cast(pl.Float64) / YEAR_US).alias(f.token))
        elif f.aggregate:
            assert f.code is not None
            vals = (
                ref.filter(match_code(f.code) & pl.col("hadm_id").is_not_null())
                .with_columns(code_value(f.code).alias(f.token))
                .join(adm.select("hadm_id", "admittime", "dischtime"), on="hadm_id", how="inner")
                .filter(pl.col("time").is_between(pl.col("admittime"), pl.col("dischtime")))
                .group_by("hadm_id", f.token)
                .agg(pl.col("time").min().alias("__first"))
                .sort(["hadm_id", "__first", f.token])
                .group_by("hadm_id", maintain_order=True)
                .agg(pl.col(f.token))
            )
            adm = adm.join(vals, on="hadm_id", how="left").with_columns(
                pl.col(f.token).fill_null(pl.lit([], dtype=pl.List(pl.String)))
            )
        else:
            assert f.code is not None
            per_hadm, per_subject = _field_values(ref, f.code, f.token)
            adm = (
                adm.join(per_hadm, on="hadm_id", how="left")
                .join(per_subject, on="subject_id", how="left")
                .with_columns(
                    pl.coalesce(f.token, f"{f.token}__subject", pl.lit(UNKNOWN_VALUE)).alias(f.token)
                )
                .drop(f"{f.token}__subject")
            )
    adm = adm.drop("__birth").sort("hadm_id")
    return adm, dropped


def _block_expr(cfg: TokenizerConfig) -> pl.Expr:
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for ev in reversed(cfg.events):
        expr = pl.when(match_code(ev.code)).then(pl.lit(ev.name)).otherwise(expr)
    return expr


def _prepare_split(
    files: list[Path], cfg: TokenizerConfig, hadm_ids: pl.DataFrame | None, split_dir: Path, rows_per_group: int
) -> dict[str, Any]:
    ref_codes = [cfg.admission.start_code, cfg.admission.end_code, cfg.admission.birth_code]
    ref_codes += [f.code for f in cfg.fields if f.code is not None]
    any_ref = pl.any_horizontal([match_code(c) for c in ref_codes])
    if files:
        ref = _scan(files, with_path=True).filter(any_ref).collect(engine="streaming")
    else:
        ref = pl.DataFrame(schema={**{c: EVENTS_POLARS_SCHEMA[c] for c in MEDS_COLUMNS}, "__file": pl.String})
    adm, dropped = build_admissions(ref, cfg, hadm_ids)
    del ref

    # pass over the shards: events of the config's blocks, inside the stay, bucketed by hadm_id rank
    n_buckets = max(1, len(files))
    keys = adm.select(
        "hadm_id", "admittime", "dischtime",
        ((pl.int_range(pl.len(), dtype=pl.Int64) * n_buckets) // pl.max_horizontal(pl.len(), 1)).alias("__bucket"),
    )
    numeric_blocks = [ev.name for ev in cfg.events if ev.numeric]
    any_event = pl.any_horizontal([match_code(ev.code) for ev in cfg.events])
    tmp = split_dir / "_buckets"
    counts = {"no_hadm_id": 0, "admission_not_kept": 0, "outside_stay": 0}
    per_block: dict[str, int] = {ev.name: 0 for ev in cfg.events}
    for i, f in enumerate(files):
        cand = _scan([f]).filter(any_event).with_columns(_block_expr(cfg).alias("__block")).collect()
        n_cand = cand.height
        cand = cand.filter(pl.col("hadm_id").is_not_null())
        counts["no_hadm_id"] += n_cand - cand.height
        n_cand = cand.height
        cand = cand.join(keys, on="hadm_id", how="inner")
        counts["admission_not_kept"] += n_cand - cand.height
        n_cand = cand.height
        cand = cand.filter(pl.col("time").is_between(pl.col("admittime"), pl.col("dischtime")))
        counts["outside_stay"] += n_cand - cand.height
        keep_value = pl.col("__block").is_in(numeric_blocks)
        cand = cand.with_columns(
            *[pl.when(keep_value).then(pl.col(c)).otherwise(None).alias(c)
              for c in ("numeric_value", "ref_range_lower", "ref_range_upper")]
        )
        for row in cand.group_by("__block").len().iter_rows():
            per_block[row[0]] += row[1]
        for (b,), part in cand.partition_by("__bucket", as_dict=True).items():
            d = tmp / f"{b:06d}"
            d.mkdir(parents=True, exist_ok=True)
            part.select(list(EVENTS_POLARS_SCHEMA)).write_parquet(d / f"{i:06d}.parquet")
        del cand

    # external sort: each bucket sorted, appended in bucket (= hadm_id) order as row groups
    n_events = []
    with pq.ParquetWriter(split_dir / "events.parquet", EVENTS_SCHEMA, compression="zstd") as w:
        for b in range(n_buckets):
            parts = sorted((tmp / f"{b:06d}").glob("*.parquet"))
            if not parts:
                continue
            df = pl.read_parquet(parts).sort(SORT_KEYS, nulls_last=True)
            n_events.append(df.group_by("hadm_id").len(name="n_events"))
            w.write_table(df.to_arrow().cast(EVENTS_SCHEMA), row_group_size=rows_per_group)
            del df
        if not n_events:
            w.write_table(EVENTS_SCHEMA.empty_table())
    if tmp.exists():
        for d in sorted(tmp.iterdir()):
            for p in d.iterdir():
                p.unlink()
            d.rmdir()
        tmp.rmdir()
    counts_df = pl.concat(n_events) if n_events else pl.DataFrame(schema={"hadm_id": pl.Int64, "n_events": pl.UInt32})
    adm = adm.join(counts_df, on="hadm_id", how="left").with_columns(
        pl.col("n_events").fill_null(0).cast(pl.Int64)
    ).sort("hadm_id")
    write_parquet(adm, split_dir / "admissions.parquet")
    return {
        "n_admissions": adm.height,
        "n_events": int(adm["n_events"].sum()),
        "events_per_block": per_block,
        "admissions_dropped": dropped,
        "events_dropped": counts,
        "n_shards": len(files),
    }


def prepare_events(
    meds_root: Path,
    cfg: TokenizerConfig,
    out_dir: Path,
    hadm_ids: pl.DataFrame | None = None,
    rows_per_group: int = 1_000_000,
) -> dict[str, Any]:
    """Scan a MEDS dataset once and write the prepared events + admissions of every split to ``out_dir``.

    ``hadm_ids`` (a frame with a ``hadm_id`` column) restricts the cohort (Exp3's H_ICU). Returns the
    report also written to ``out_dir/prepare.json`` (counts per split, drops with reason).
    """
    if hadm_ids is not None and "hadm_id" not in hadm_ids.columns:
        raise ValueError(f"hadm_ids: expected a column 'hadm_id', got {hadm_ids.columns}")
    files = split_files(Path(meds_root))
    report: dict[str, Any] = {
        "schema_version": PREPARED_SCHEMA_VERSION,
        "tokenizer": cfg.name,
        "config": cfg.to_dict(),
        "cohort_size": None if hadm_ids is None else int(hadm_ids["hadm_id"].n_unique()),
        "splits": {},
    }
    with atomic_dir(Path(out_dir)) as tmp:
        for split in SPLITS:
            d = tmp / split
            d.mkdir()
            report["splits"][split] = _prepare_split(files[split], cfg, hadm_ids, d, rows_per_group)
        write_json(report, tmp / "prepare.json")
    return report


def read_prepared_config(events_dir: Path) -> tuple[TokenizerConfig, dict[str, Any]]:
    """The tokenizer config and report a prepared-events folder was written with."""
    p = Path(events_dir) / "prepare.json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: not a prepared-events folder (run prepare_events first)")
    rep = json.loads(p.read_text())
    if rep.get("schema_version") != PREPARED_SCHEMA_VERSION:
        raise ValueError(f"{p}: schema_version {rep.get('schema_version')} != {PREPARED_SCHEMA_VERSION}")
    return TokenizerConfig.from_dict(_config_yaml_form(rep["config"]), str(p)), rep


def _config_yaml_form(d: dict[str, Any]) -> dict[str, Any]:
    """Turn :meth:`TokenizerConfig.to_dict` output back into the YAML schema."""
    return {
        "name": d["name"],
        "description": d.get("description", ""),
        "options": {"day_stay_filter": d["day_stay_filter"], "max_len": d["max_len"]},
        "admission": d["admission"],
        "prefix": [{k: v for k, v in f.items() if v not in (None, False)} for f in d["prefix"]],
        "events": list(d["events"]),
        "suffix": [{k: v for k, v in f.items() if v not in (None, False)} for f in d["suffix"]],
    }


# ------------------------------------------------------------------------------ reading prepared events
class EventReader:
    """Row-range reads of one split's prepared ``events.parquet`` (code read dictionary-encoded)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.pf = pq.ParquetFile(self.path, read_dictionary=["code"])
        md = self.pf.metadata
        sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.rg_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_rows = int(self.rg_start[-1])

    def read(self, r0: int, r1: int, columns: list[str]) -> pa.Table:
        """Rows ``[r0, r1)`` of the given columns (only the overlapping row groups are read)."""
        if r1 <= r0:
            return self.pf.schema_arrow.empty_table().select(columns)
        first = int(np.searchsorted(self.rg_start, r0, side="right") - 1)
        last = int(np.searchsorted(self.rg_start, r1, side="left"))
        tbl = self.pf.read_row_groups(list(range(first, last)), columns=columns)
        return tbl.slice(r0 - int(self.rg_start[first]), r1 - r0)


def code_index(col: pa.ChunkedArray | pa.Array, codes: pa.Array) -> np.ndarray:
    """Position of every code string in ``codes`` (int32), -1 where absent; fast on dictionary arrays."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out = []
    for ch in chunks:
        if pa.types.is_dictionary(ch.type):
            lut = pc.index_in(ch.dictionary, value_set=codes).fill_null(-1).to_numpy().astype(np.int32)
            idx = ch.indices.to_numpy(zero_copy_only=False)
            out.append(lut[idx] if len(lut) else np.full(len(idx), -1, np.int32))
        else:
            out.append(pc.index_in(ch, value_set=codes).fill_null(-1).to_numpy().astype(np.int32))
    return np.concatenate(out) if out else np.zeros(0, np.int32)


def code_counts(col: pa.ChunkedArray) -> dict[str, int]:
    """Occurrences of every code string of a (dictionary-encoded) code column."""
    counts: dict[str, int] = {}
    for ch in col.chunks:
        if not pa.types.is_dictionary(ch.type):
            ch = ch.dictionary_encode()
        n = np.bincount(ch.indices.to_numpy(zero_copy_only=False), minlength=len(ch.dictionary))
        for code, k in zip(ch.dictionary.to_pylist(), n.tolist(), strict=True):
            if k:
                counts[code] = counts.get(code, 0) + k
    return counts


def admission_chunks(n_events: np.ndarray, chunk_events: int) -> list[tuple[int, int, int, int]]:
    """Split admissions (in file order) into runs of about ``chunk_events`` events.

    Returns ``(adm_start, adm_stop, row_start, row_stop)`` per chunk; an admission is never split.
    """
    n_events = np.asarray(n_events, dtype=np.int64)
    if len(n_events) == 0:
        return []
    ends = np.cumsum(n_events)
    starts = ends - n_events
    cid = starts // max(int(chunk_events), 1)
    cuts = np.flatnonzero(np.diff(cid)) + 1
    bounds = np.concatenate([[0], cuts, [len(n_events)]])
    return [
        (int(a0), int(a1), int(starts[a0]), int(ends[a1 - 1]))
        for a0, a1 in itertools.pairwise(bounds.tolist())
    ]
