"""Stage -1: MIMIC-IV 3.1 CSVs → a MEDS 0.4 dataset, streamed in bounded memory.

Why our own extractor and not MEDS-Extract: see docs/decisions.md. The shape is the same map/reduce as
MEDS-Transforms, in one process: every source table is streamed in record batches, turned into MEDS
events, and scattered into (split, shard) pieces; each shard is then sorted and written once. Both phases
run ``workers`` jobs at a time on threads (polars and pyarrow release the GIL; gzip decompression and
parquet encoding are single-threaded per table/file, so two tables or two shards overlap on two cores).
Memory is bounded by ``workers`` batches during the scan and by ``workers`` shards during the reduce.
The output does not depend on ``workers``, ``batch_rows`` or thread timing: every shard is fully sorted.

Billing tables (diagnoses_icd, procedures_icd, hcpcsevents, drgcodes) are never opened.
The codes written are documented in docs/meds.md.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time as _time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import meds
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from irbench_assets import __version__
from irbench_assets.meds.splits import SPLITS, assign_shards, subject_splits
from irbench_assets.mimic.readers import iter_table, read_table, table_path
from irbench_assets.settings import MedsConfig
from irbench_assets.storage import atomic_dir

UNK = "UNK"
DATASET_NAME = "mimiciv-3.1_meds"

#: The extra (non-core) MEDS columns every shard carries, in order.
EXTRA_COLUMNS: dict[str, pa.DataType] = {
    "hadm_id": pa.int64(),
    "charttime": pa.timestamp("us"),
    "ref_range_lower": pa.float32(),
    "ref_range_upper": pa.float32(),
    "table": pa.string(),
}
MEDS_SCHEMA = pa.schema(
    [
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("time", pa.timestamp("us")),
        pa.field("code", pa.string(), nullable=False),
        pa.field("numeric_value", pa.float32()),
        pa.field("text_value", pa.large_string()),
        *[pa.field(k, v) for k, v in EXTRA_COLUMNS.items()],
    ]
)
_POLARS_SCHEMA = {
    "subject_id": pl.Int64,
    "time": pl.Datetime("us"),
    "code": pl.String,
    "numeric_value": pl.Float32,
    "text_value": pl.String,
    "hadm_id": pl.Int64,
    "charttime": pl.Datetime("us"),
    "ref_range_lower": pl.Float32,
    "ref_range_upper": pl.Float32,
    "table": pl.String,
}
# Every column: rows equal in all sort keys are identical, so the written order is fully determined.
SORT_KEYS = [
    "subject_id", "time", "code", "hadm_id", "charttime", "numeric_value", "text_value",
    "ref_range_lower", "ref_range_upper", "table",
]


@dataclass
class TableReport:
    """Row reconciliation of one source table: every candidate event is emitted or dropped with a reason."""

    rows_read: int = 0
    candidates: int = 0
    emitted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(n)

    @property
    def reconciled(self) -> bool:
        return self.candidates == self.emitted + sum(self.dropped.values())


# ------------------------------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class _Code:
    """A code ``prefix//part//...``: each part is a column's value as text (see :func:`_part`)."""

    prefix: str
    columns: tuple[str, ...]

    def expr(self, df: pl.DataFrame) -> pl.Expr:
        return pl.concat_str([pl.lit(self.prefix), *[_part(df, c) for c in self.columns]], separator="//")


def _code(prefix: str, *columns: str) -> _Code:
    return _Code(prefix, columns)


def _part(df: pl.DataFrame, column: str) -> pl.Expr:
    """A code part: the value as text, ``UNK`` when missing, no ``//`` inside (it separates parts).

    Each step runs only where it can change something: the fill on a column with nulls, the replacement
    on a text column that holds a ``//`` (the text of a number never does).
    """
    values = df.get_column(column)
    expr = pl.col(column)
    if values.dtype != pl.String:
        expr = expr.cast(pl.String)
    if values.null_count():
        expr = expr.fill_null(UNK)
    if values.dtype == pl.String and values.str.contains("//", literal=True).any():
        expr = expr.str.replace_all("//", "/", literal=True)
    return expr


def _events(
    df: pl.DataFrame,
    table: str,
    code: _Code | pl.Expr,
    time: pl.Expr,
    *,
    numeric: pl.Expr | None = None,
    text: pl.Expr | None = None,
    hadm: bool = True,
    charttime: pl.Expr | None = None,
    ref_lo: pl.Expr | None = None,
    ref_hi: pl.Expr | None = None,
) -> pl.DataFrame:
    """Project a typed source batch onto the MEDS event columns (one event per row)."""
    null = pl.lit(None)
    if isinstance(code, _Code):
        code = code.expr(df)
    return df.select(
        pl.col("subject_id").cast(pl.Int64),
        time.cast(pl.Datetime("us")).alias("time"),
        code.alias("code"),
        (numeric if numeric is not None else null).cast(pl.Float32).alias("numeric_value"),
        (text if text is not None else null).cast(pl.String).alias("text_value"),
        (pl.col("hadm_id") if hadm else null).cast(pl.Int64).alias("hadm_id"),
        (charttime if charttime is not None else time).cast(pl.Datetime("us")).alias("charttime"),
        (ref_lo if ref_lo is not None else null).cast(pl.Float32).alias("ref_range_lower"),
        (ref_hi if ref_hi is not None else null).cast(pl.Float32).alias("ref_range_upper"),
        pl.lit(table).alias("table"),
    )


def _keep_timed(ev: pl.DataFrame, report: TableReport, reason: str) -> pl.DataFrame:
    """Drop events without a timestamp (counted under ``reason``)."""
    n_bad = ev.get_column("time").null_count()
    report.drop(reason, n_bad)
    return ev.filter(pl.col("time").is_not_null()) if n_bad else ev


# --------------------------------------------------------------------------------- table converters
def _measurement_events(
    df: pl.DataFrame, table: str, prefix: str, report: TableReport, ref: tuple[pl.Expr, pl.Expr] | None
) -> pl.DataFrame:
    """labevents / chartevents: ``<prefix>//<itemid>//<unit>`` at storetime (charttime if no storetime)."""
    report.candidates += df.height
    lo, hi = ref if ref is not None else (None, None)
    ev = _events(
        df,
        table,
        _code(prefix, "itemid", "valueuom"),
        pl.coalesce("storetime", "charttime"),
        numeric=pl.col("valuenum"),
        text=pl.when(pl.col("valuenum").is_null()).then(pl.col("value")),
        charttime=pl.col("charttime"),
        ref_lo=lo,
        ref_hi=hi,
    )
    return _keep_timed(ev, report, "no storetime or charttime")


def _chart_events(df: pl.DataFrame, normal: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    """chartevents, with the item's normal range from d_items as the reference range."""
    ids = normal.get_column("itemid")
    if ids.null_count() or ids.is_duplicated().any():  # a left join repeats rows; keep its exact behaviour
        df = df.join(normal, on="itemid", how="left")
        ref = (pl.col("lownormalvalue"), pl.col("highnormalvalue"))
    else:  # the same lookup without reshuffling the batch
        lo, hi = (
            pl.col("itemid").replace_strict(ids, normal.get_column(c), default=None)
            for c in ("lownormalvalue", "highnormalvalue")
        )
        ref = (lo, hi)
    return _measurement_events(df, "icu/chartevents", "VITAL", report, ref)


def _emar_events(df: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    report.candidates += df.height
    ev = _events(
        df,
        "hosp/emar",
        _code("MEDICATION", "medication", "event_txt"),
        pl.coalesce("storetime", "charttime"),
        charttime=pl.col("charttime"),
    )
    return _keep_timed(ev, report, "no storetime or charttime")


def _transfer_events(df: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    report.candidates += df.height
    ev = _events(df, "hosp/transfers", _code("TRANSFER_TO", "eventtype", "careunit"), pl.col("intime"))
    return _keep_timed(ev, report, "no intime")


def _icustay_events(df: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    report.candidates += 2 * df.height
    adm = _keep_timed(
        _events(df, "icu/icustays", _code("ICU_ADMISSION", "first_careunit"), pl.col("intime")),
        report,
        "no intime",
    )
    dis = _keep_timed(
        _events(df, "icu/icustays", _code("ICU_DISCHARGE", "last_careunit"), pl.col("outtime")),
        report,
        "no outtime",
    )
    return pl.concat([adm, dis])


def _procedure_events(df: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    report.candidates += df.height
    ev = _events(
        df,
        "icu/procedureevents",
        _code("PROCEDURE//START", "itemid"),
        pl.coalesce("storetime", "starttime"),
        numeric=pl.col("value"),
        charttime=pl.col("starttime"),
    )
    return _keep_timed(ev, report, "no storetime or starttime")


def _infusion_events(df: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    report.candidates += 2 * df.height
    start = _events(
        df,
        "icu/inputevents",
        _code("INFUSION_START", "itemid"),
        pl.col("starttime"),
        numeric=pl.coalesce("rate", "amount"),
    )
    end = _events(df, "icu/inputevents", _code("INFUSION_END", "itemid"), pl.col("endtime"))
    return pl.concat(
        [_keep_timed(start, report, "no starttime"), _keep_timed(end, report, "no endtime")]
    )


def _admission_events(adm: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    """Admission/discharge anchors and the admission-level demographics, stamped at admittime."""
    report.candidates += 6 * adm.height
    at_admit = [
        _code("HOSPITAL_ADMISSION", "admission_type", "admission_location"),
        _code("RACE", "race"),
        _code("INSURANCE", "insurance"),
        _code("LANGUAGE", "language"),
        _code("MARITAL_STATUS", "marital_status"),
    ]
    parts = [
        _keep_timed(_events(adm, "hosp/admissions", c, pl.col("admittime")), report, "no admittime")
        for c in at_admit
    ]
    parts.append(
        _keep_timed(
            _events(adm, "hosp/admissions", _code("HOSPITAL_DISCHARGE", "discharge_location"),
                    pl.col("dischtime")),
            report,
            "no dischtime",
        )
    )
    return pl.concat(parts)


def _patient_events(pat: pl.DataFrame, adm: pl.DataFrame, report: TableReport) -> pl.DataFrame:
    """MEDS_BIRTH (1 Jan of anchor_year − anchor_age), static GENDER, MEDS_DEATH (deathtime, else dod 23:59:59)."""
    report.candidates += 3 * pat.height
    birth = pl.datetime(pl.col("anchor_year") - pl.col("anchor_age"), 1, 1)
    ev_birth = _events(pat, "hosp/patients", pl.lit(meds.birth_code), birth, hadm=False)
    ev_gender = _events(pat, "hosp/patients", _code("GENDER", "gender"), pl.lit(None), hadm=False)
    death_in_hosp = (
        adm.filter(pl.col("deathtime").is_not_null())
        .group_by("subject_id")
        .agg(pl.col("deathtime").max())
    )
    pat_d = pat.join(death_in_hosp, on="subject_id", how="left")
    death_time = pl.coalesce(
        pl.col("deathtime"), pl.col("dod").cast(pl.Datetime("us")) + pl.duration(hours=23, minutes=59, seconds=59)
    )
    ev_death = _events(pat_d, "hosp/patients", pl.lit(meds.death_code), death_time, hadm=False)
    alive = ev_death.get_column("time").is_null()
    report.drop("alive (no death recorded)", int(alive.sum()))
    return pl.concat([ev_birth, ev_gender, ev_death.filter(~alive)])


# ------------------------------------------------------------------------------------------ scatter
class _Scatter:
    """Scatter event batches into (split, shard) piece files under a work directory.

    A piece is ``<split>/<shard>/<table>/<batch no.>.parquet`` without the ``table`` column (constant per
    piece; :func:`_read_pieces` restores it). Tables can be scattered from different threads, each table
    by one thread at a time.
    """

    def __init__(self, work: Path, shard_map: pl.DataFrame, report: dict[str, TableReport]):
        self.work = work
        self.report = report
        self._batches: dict[str, int] = {t: 0 for t in report}
        # One integer per (split, shard): partitioning on it is cheaper than on the (text, int) pair.
        pairs = shard_map.select("split", "shard").unique().sort("split", "shard")
        self._dirs = [work / str(split) / f"{int(shard):04d}" for split, shard in pairs.iter_rows()]
        self._key = shard_map.join(
            pairs.with_row_index("__shard"), on=["split", "shard"], how="left"
        ).select("subject_id", "__shard")

    def add(self, table: str, ev: pl.DataFrame) -> None:
        rep = self.report[table]
        ev = ev.drop("table").join(self._key, on="subject_id", how="left")
        n_unknown = ev.get_column("__shard").null_count()
        rep.drop("subject not in patients", n_unknown)
        if n_unknown:
            ev = ev.filter(pl.col("__shard").is_not_null())
        rep.emitted += ev.height
        n = self._batches[table]
        self._batches[table] = n + 1
        for (key,), part in ev.partition_by("__shard", as_dict=True, maintain_order=False).items():
            d = self._dirs[int(key)] / _piece_dir(table)
            d.mkdir(parents=True, exist_ok=True)
            part.drop("__shard").write_parquet(d / f"{n:06d}.parquet", compression="lz4", statistics=False)


def _piece_dir(table: str) -> str:
    return table.replace("/", "__")


def _piece_table(piece_dir: str) -> str:
    return piece_dir.replace("__", "/")


def _read_pieces(shard_dir: Path) -> pl.DataFrame:
    """All events of one shard (in no particular order), with the ``table`` column restored."""
    frames = [
        pl.read_parquet(sorted(d.glob("*.parquet"))).with_columns(pl.lit(_piece_table(d.name)).alias("table"))
        for d in sorted(shard_dir.iterdir())
    ]
    return pl.concat(frames, how="vertical").select(list(_POLARS_SCHEMA))


#: Columns with few distinct values per row group get a parquet dictionary; for the others (times, values,
#: subject ids in sorted runs) dictionary encoding costs more time than it saves space.
_DICTIONARY_COLUMNS = ["code", "text_value", "hadm_id", "ref_range_lower", "ref_range_upper", "table"]
#: Row-group min/max statistics for the columns readers filter on; string statistics (code, text) cost a
#: fifth of the write and prune nothing in files sorted by subject and time.
_STATISTICS_COLUMNS = ["subject_id", "time", "hadm_id", "charttime"]


def _finalize_shard(shard_dir: Path, out_file: Path, multithreaded: bool) -> tuple[int, pl.DataFrame]:
    """Sort one shard's pieces by (subject_id, time, code, ...) and write it with the MEDS schema.

    Returns the number of events and the shard's event count per code. ``multithreaded``: sort on
    polars' thread pool (worth it only when shards are not already reduced in parallel).
    """
    df = _read_pieces(shard_dir).sort(SORT_KEYS, nulls_last=False, multithreaded=multithreaded)
    code_counts = df.group_by("code").agg(pl.len().alias("n_events"))
    table = df.select(list(_POLARS_SCHEMA)).to_arrow().cast(MEDS_SCHEMA)
    del df
    meds.DataSchema.validate(table.schema)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        out_file,
        compression="zstd",
        row_group_size=256_000,
        use_dictionary=_DICTIONARY_COLUMNS,
        write_statistics=_STATISTICS_COLUMNS,
    )
    return table.num_rows, code_counts


T = TypeVar("T")
Job = Callable[[threading.Event], T]


class _Stopped(Exception):
    """A job that did not run because another one had failed."""


def _parallel(jobs: Sequence[Job[T]], workers: int, relay: Callable[[], None]) -> list[T]:
    """Run ``jobs`` on ``workers`` threads and return their results in order; ``relay`` runs on this thread.

    A job receives a stop event and returns early once it is set. The first failure sets it, so the other
    jobs stop at their next batch, and the error of the first failed job in list order is raised.
    """
    stop = threading.Event()

    def guarded(job: Job[T]) -> T:
        if stop.is_set():
            raise _Stopped
        try:
            return job(stop)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="irbench-meds") as pool:
        futures = [pool.submit(guarded, job) for job in jobs]
        try:
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                relay()
        except BaseException:
            stop.set()
            raise
    errors = [e for f in futures if (e := f.exception()) is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])
    return [f.result() for f in futures]


# --------------------------------------------------------------------------------------------- main
def _file_size(path: Path) -> int:
    """Size of ``path`` in bytes, 0 when missing (the reader then reports the missing table)."""
    return path.stat().st_size if path.exists() else 0


ProgressFn = Callable[[str, dict[str, Any]], None]


def extract_meds(
    mimic_root: Path,
    out_root: Path,
    cfg: MedsConfig | None = None,
    progress: ProgressFn | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Convert the MIMIC-IV 3.1 directory ``mimic_root`` into a MEDS dataset at ``out_root`` (atomically).

    Returns a report: events per split, codes, and per source table the rows read, events emitted and
    events dropped by reason (row reconciliation). ``workers`` tables (then shards) are processed at a
    time; the output is the same for any value, memory grows with it. ``progress`` is called on this thread.
    """
    cfg = cfg or MedsConfig()
    mimic_root = Path(mimic_root)
    t0 = _time.perf_counter()
    say = progress or (lambda _stage, _info: None)
    messages: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()

    def relay() -> None:
        while not messages.empty():
            say(*messages.get())
    tables = [
        "hosp/patients", "hosp/admissions", "hosp/labevents", "hosp/emar", "hosp/transfers",
        "icu/icustays", "icu/chartevents", "icu/procedureevents", "icu/inputevents",
    ]
    report = {t: TableReport() for t in tables}

    adm = read_table(
        mimic_root,
        "admissions",
        ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
         "admission_location", "discharge_location", "insurance", "language", "marital_status", "race"],
    )
    pat = read_table(mimic_root, "patients", ["subject_id", "gender", "anchor_age", "anchor_year", "dod"])
    report["hosp/admissions"].rows_read = adm.height
    report["hosp/patients"].rows_read = pat.height
    splits = subject_splits(pat.get_column("subject_id"), cfg.split_seed, cfg.train_fraction, cfg.tuning_fraction)
    shard_map = assign_shards(splits, cfg.subjects_per_shard)

    d_lab = read_table(mimic_root, "d_labitems", ["itemid", "label"])
    d_items = read_table(mimic_root, "d_items", ["itemid", "label", "lownormalvalue", "highnormalvalue"])

    with atomic_dir(Path(out_root)) as tmp:
        work = tmp / "_work"
        scatter = _Scatter(work, shard_map, report)
        scatter.add("hosp/patients", _patient_events(pat, adm, report["hosp/patients"]))
        scatter.add("hosp/admissions", _admission_events(adm, report["hosp/admissions"]))
        say("hosp/admissions", {"rows": adm.height})

        normal = d_items.select("itemid", "lownormalvalue", "highnormalvalue")
        streamed: list[tuple[str, str, list[str], Callable[[pl.DataFrame, TableReport], pl.DataFrame]]] = [
            ("hosp/labevents", "labevents",
             ["subject_id", "hadm_id", "itemid", "charttime", "storetime", "value", "valuenum", "valueuom",
              "ref_range_lower", "ref_range_upper"],
             lambda df, r: _measurement_events(
                 df, "hosp/labevents", "LAB", r, (pl.col("ref_range_lower"), pl.col("ref_range_upper")))),
            ("icu/chartevents", "chartevents",
             ["subject_id", "hadm_id", "itemid", "charttime", "storetime", "value", "valuenum", "valueuom"],
             lambda df, r: _chart_events(df, normal, r)),
            ("hosp/emar", "emar",
             ["subject_id", "hadm_id", "charttime", "medication", "event_txt", "storetime"], _emar_events),
            ("hosp/transfers", "transfers",
             ["subject_id", "hadm_id", "eventtype", "careunit", "intime"], _transfer_events),
            ("icu/icustays", "icustays",
             ["subject_id", "hadm_id", "first_careunit", "last_careunit", "intime", "outtime"], _icustay_events),
            ("icu/procedureevents", "procedureevents",
             ["subject_id", "hadm_id", "itemid", "starttime", "storetime", "value"], _procedure_events),
            ("icu/inputevents", "inputevents",
             ["subject_id", "hadm_id", "itemid", "starttime", "endtime", "amount", "rate"], _infusion_events),
        ]
        # Largest files first so that the two workers finish together (the order does not affect the output).
        streamed.sort(key=lambda job: -_file_size(table_path(mimic_root, job[1])))

        def scan_job(
            key: str, table: str, cols: list[str], convert: Callable[[pl.DataFrame, TableReport], pl.DataFrame]
        ) -> Job[None]:
            def run(stop: threading.Event) -> None:
                rep = report[key]
                for batch in iter_table(mimic_root, table, cols, batch_rows=cfg.batch_rows):
                    if stop.is_set():
                        return
                    rep.rows_read += batch.height
                    scatter.add(key, convert(batch, rep))
                    messages.put((key, {"rows": rep.rows_read, "events": rep.emitted}))
            return run

        _parallel([scan_job(*job) for job in streamed], workers, relay)

        # Reduce: one sorted file per (split, shard).
        shard_dirs = [
            (split, shard_dir)
            for split in SPLITS
            for shard_dir in (sorted((work / split).glob("*")) if (work / split).exists() else [])
        ]

        def reduce_job(split: str, shard_dir: Path) -> Job[tuple[int, pl.DataFrame]]:
            def run(stop: threading.Event) -> tuple[int, pl.DataFrame]:
                out_file = tmp / meds.data_subdirectory / split / f"{shard_dir.name}.parquet"
                n, code_counts = _finalize_shard(shard_dir, out_file, workers < 2)
                shutil.rmtree(shard_dir)
                messages.put(("reduce", {"split": split, "shard": shard_dir.name, "events": n}))
                return n, code_counts
            return run

        reduced = _parallel([reduce_job(*sd) for sd in shard_dirs], workers, relay)
        counts: dict[str, int] = {s: 0 for s in SPLITS}
        for (split, _), (n, _) in zip(shard_dirs, reduced, strict=True):
            counts[split] += n
        code_counts = [c for _, c in reduced]
        shutil.rmtree(work)

        codes = _code_metadata(code_counts, d_lab, d_items)
        meta_dir = tmp / "metadata"
        meta_dir.mkdir()
        pq.write_table(codes.to_arrow().cast(_CODES_SCHEMA), meta_dir / "codes.parquet")
        split_tbl = splits.select("subject_id", "split").to_arrow().cast(meds.SubjectSplitSchema.schema())
        pq.write_table(split_tbl, meta_dir / "subject_splits.parquet")
        dataset_meta = {
            "dataset_name": DATASET_NAME,
            "dataset_version": "3.1",
            "etl_name": "irbench",
            "etl_version": __version__,
            "meds_version": _meds_version(),
            "created_at": datetime(2000, 1, 1, tzinfo=UTC).isoformat(),  # fixed: outputs must be reproducible
            "raw_source_id_columns": ["hadm_id"],
            "other_extension_columns": ["charttime", "ref_range_lower", "ref_range_upper", "table"],
        }
        meds.DatasetMetadataSchema.validate(dataset_meta)
        (meta_dir / "dataset.json").write_text(json.dumps(dataset_meta, indent=2, sort_keys=True) + "\n")
        result = {
            "events_per_split": counts,
            "n_events": sum(counts.values()),
            "n_subjects": splits.height,
            "n_subjects_per_split": {s: int((splits["split"] == s).sum()) for s in SPLITS},
            "n_admissions": adm.height,
            "n_codes": codes.height,
            "tables": {
                k: {"rows_read": r.rows_read, "candidates": r.candidates, "emitted": r.emitted,
                    "dropped": dict(sorted(r.dropped.items())), "reconciled": r.reconciled}
                for k, r in report.items()
            },
            "billing_tables_read": [],
        }
        (meta_dir / "extraction_report.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    result["seconds"] = round(_time.perf_counter() - t0, 3)
    return result


_CODES_SCHEMA = pa.schema(
    [
        pa.field("code", pa.string(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("parent_codes", pa.list_(pa.string())),
        pa.field("n_events", pa.int64()),
    ]
)


def _meds_version() -> str:
    from importlib.metadata import version

    return version("meds")


def _code_metadata(code_counts: list[pl.DataFrame], d_lab: pl.DataFrame, d_items: pl.DataFrame) -> pl.DataFrame:
    """codes.parquet: every code with its event count and, for item-based codes, the MIMIC label."""
    if code_counts:
        codes = pl.concat(code_counts).group_by("code").agg(pl.col("n_events").sum())
    else:
        codes = pl.DataFrame(schema={"code": pl.String, "n_events": pl.Int64})
    labels = pl.concat(
        [
            d_lab.select(pl.lit("LAB").alias("kind"), pl.col("itemid"), pl.col("label")),
            d_items.select(pl.lit("ITEM").alias("kind"), pl.col("itemid"), pl.col("label")),
        ]
    )
    parts = pl.col("code").str.split("//")
    codes = codes.with_columns(
        pl.when(parts.list.first() == "LAB").then(pl.lit("LAB")).otherwise(pl.lit("ITEM")).alias("kind"),
        pl.when(parts.list.first().is_in(["LAB", "VITAL", "INFUSION_START", "INFUSION_END"]))
        .then(parts.list.get(1, null_on_oob=True))
        .when(parts.list.first() == "PROCEDURE")
        .then(parts.list.get(2, null_on_oob=True))
        .cast(pl.Int64, strict=False)
        .alias("itemid"),
    )
    return (
        codes.join(labels, on=["kind", "itemid"], how="left")
        .select(
            "code",
            pl.col("label").alias("description"),
            pl.lit(None, dtype=pl.List(pl.String)).alias("parent_codes"),
            pl.col("n_events").cast(pl.Int64),
        )
        .sort("code")
    )


def read_meds(meds_root: Path, split: str | None = None) -> pl.LazyFrame:
    """Lazily scan the MEDS data of one split (or all) — the entry point later stages use."""
    pattern = f"{split}/*.parquet" if split else "*/*.parquet"
    return pl.scan_parquet(Path(meds_root) / meds.data_subdirectory / pattern)
