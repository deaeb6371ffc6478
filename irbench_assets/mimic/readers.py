"""Validated, streaming readers for MIMIC-IV 3.1 ``.csv.gz`` tables.

Tables are streamed in record batches with pyarrow's CSV reader (bounded memory, multi-threaded parsing;
polars cannot stream a gzip CSV lazily) and every batch is checked against :mod:`irbench_assets.mimic.schema`.
A missing column, an unparseable timestamp or number, a truncated gzip stream or an empty table raises
:class:`MimicSchemaError` naming the file, the column, the line number and the offending value.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from irbench_assets.mimic.schema import DATE_FORMAT, DATETIME_FORMAT, TABLES, Dtype, TableSchema


class MimicSchemaError(ValueError):
    """A MIMIC-IV file that does not match the 3.1 schema (message names file, column, row and value)."""


def table_path(mimic_root: Path, table: str) -> Path:
    """Path of ``table`` below a MIMIC-IV root (``hosp/<t>.csv.gz`` or ``icu/<t>.csv.gz``)."""
    return Path(mimic_root) / TABLES[table].relpath


def read_header(path: Path) -> list[str]:
    """The column names on the first line of a gzip CSV (reads only the first line)."""
    try:
        with gzip.open(path, "rt", newline="") as fh:
            first = fh.readline()
    except (OSError, EOFError, zlib.error) as exc:
        raise MimicSchemaError(f"{path}: not a readable gzip file ({exc})") from exc
    if not first.strip():
        raise MimicSchemaError(f"{path}: empty table (no header line)")
    return [c.strip().strip('"') for c in first.rstrip("\r\n").split(",")]


def _polars_type(dtype: Dtype) -> pl.DataType:
    return {
        "int": pl.Int64(),
        "float": pl.Float64(),
        "str": pl.String(),
        "datetime": pl.Datetime("us"),
        "date": pl.Date(),
    }[dtype]


def _cast_column(s: pl.Series, dtype: Dtype) -> pl.Series:
    if dtype == "str":
        return s
    if dtype == "datetime":
        # Real MIMIC writes whole seconds; accept an optional fractional part as well.
        return s.str.strptime(pl.Datetime("us"), DATETIME_FORMAT, strict=False).fill_null(
            s.str.strptime(pl.Datetime("us"), DATETIME_FORMAT + "%.f", strict=False)
        )
    if dtype == "date":
        return s.str.strptime(pl.Date(), DATE_FORMAT, strict=False)
    return s.str.strip_chars().cast(_polars_type(dtype), strict=False)


def _check_and_cast(
    df: pl.DataFrame, schema: TableSchema, path: Path, first_line: int
) -> pl.DataFrame:
    """Cast the string batch to the schema's dtypes; the first unparseable value raises with its line."""
    out = {}
    for col in df.columns:
        dtype = schema.columns[col]
        raw = df.get_column(col)
        cast = _cast_column(raw, dtype)
        bad = raw.is_not_null() & cast.is_null()
        if bad.any():
            i = int(bad.arg_max())  # first failing row of the batch
            n_bad = int(bad.sum())
            raise MimicSchemaError(
                f"{path}: column {col!r}, line {first_line + i}: cannot parse {raw[i]!r} as {dtype} "
                f"({n_bad} bad value(s) in this batch)"
            )
        out[col] = cast
    return pl.DataFrame(out)


def iter_table(
    mimic_root: Path,
    table: str,
    columns: Sequence[str] | None = None,
    batch_rows: int = 1_000_000,
) -> Iterator[pl.DataFrame]:
    """Stream ``table`` as typed polars batches of about ``batch_rows`` rows (only ``columns`` are parsed).

    Billing tables are refused: Stage -1 must never read them.
    """
    schema = TABLES[table]
    if schema.billing:
        raise PermissionError(f"{table} is a billing table; irbench never reads billing tables")
    path = table_path(mimic_root, table)
    if not path.exists():
        raise MimicSchemaError(f"{path}: file missing (required MIMIC-IV 3.1 table {schema.relpath})")
    wanted = list(columns) if columns is not None else list(schema.required)
    header = read_header(path)
    missing = [c for c in schema.required if c not in header]
    missing += [c for c in wanted if c not in header and c not in missing]
    if missing:
        raise MimicSchemaError(
            f"{path}: missing required column(s) {missing}; header is {header}"
        )
    # Estimate a block size from the header width so that batches hold roughly batch_rows rows.
    block_size = max(1 << 20, min(1 << 28, batch_rows * 16 * max(1, len(header))))
    read_opts = pacsv.ReadOptions(block_size=block_size, use_threads=True)
    convert_opts = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types={c: pa.string() for c in wanted},
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    line = 2  # line 1 is the header
    n_rows = 0
    try:
        stream = pa.input_stream(str(path), compression="gzip")
        reader = pacsv.open_csv(stream, read_options=read_opts, convert_options=convert_opts)
        for batch in reader:
            if batch.num_rows == 0:
                continue
            df = pl.from_arrow(batch)
            assert isinstance(df, pl.DataFrame)
            typed = _check_and_cast(df.select(wanted), schema, path, line)
            line += batch.num_rows
            n_rows += batch.num_rows
            yield typed
    except MimicSchemaError:
        raise
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        msg = str(exc).splitlines()[0]
        low = msg.lower()
        corrupt = any(w in low for w in ("gzip", "truncat", "compress", "eof"))
        kind = "truncated or corrupt gzip stream" if corrupt else "unreadable CSV"
        raise MimicSchemaError(f"{path}: {kind} near line {line} ({msg})") from exc
    if n_rows == 0:
        raise MimicSchemaError(f"{path}: empty table (header only, no rows)")


def read_table(mimic_root: Path, table: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Read a (small) table whole, validated; use :func:`iter_table` for the large event tables."""
    batches = list(iter_table(mimic_root, table, columns))
    return pl.concat(batches, how="vertical") if len(batches) > 1 else batches[0]
