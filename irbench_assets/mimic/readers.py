"""Validated, streaming readers for MIMIC-IV 3.1 ``.csv.gz`` tables.

Tables are streamed in record batches with pyarrow's CSV reader (bounded memory, multi-threaded parsing;
polars cannot stream a gzip CSV lazily) and every batch is checked against :mod:`irbench_assets.mimic.schema`.
A missing column, an unparseable timestamp or number, a truncated gzip stream or an empty table raises
:class:`MimicSchemaError` naming the file, the column, the line number and the offending value.

Two paths, one result. The fast path lets pyarrow parse the float columns itself and gives polars only the
columns where pyarrow would be more lenient than the schema (see :data:`_ARROW_PARSES`). When pyarrow
refuses anything (a bad number, a ragged row, a corrupt gzip stream), the rows not yet yielded are read
again on the string path — every column as text, cast by polars — which finds the first bad value and
names its line. Only bad input pays for the second read.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from irbench_assets.mimic.schema import DATE_FORMAT, DATETIME_FORMAT, TABLES, Dtype, TableSchema

#: pyarrow parse block (bytes of decompressed CSV). Small blocks stay in cache while they are parsed and let
#: decompression of the next block overlap; blocks are then grouped into frames of about ``batch_rows`` rows.
_BLOCK_SIZE = 2 << 20

#: Dtypes pyarrow parses on the fast path: only those where its parser accepts no value that the polars
#: string path rejects and agrees on every value both accept. Not ints (pyarrow also reads hexadecimal
#: "0x10"), not datetimes/dates (pyarrow's ISO-8601 parser also takes "2180-01-01", a "T" separator or no
#: seconds; its strptime rolls "02-30" over into March). Floats qualify except for NaN with a payload
#: ("nan(1)"), which a NaN check sends to the string path (plain "nan" is a null marker on both paths).
_ARROW_PARSES: dict[Dtype, pa.DataType] = {"float": pa.float64()}


class MimicSchemaError(ValueError):
    """A MIMIC-IV file that does not match the 3.1 schema (message names file, column, row and value)."""


class _FastPathRefused(Exception):
    """pyarrow's typed parse refused a block; the caller re-reads the remaining rows on the string path."""


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


def _unparsed(raw: pl.Series, cast: pl.Series) -> pl.Series:
    """Rows with a value in the file that the cast could not parse."""
    return raw.is_not_null() & cast.is_null()


def _cast_column(s: pl.Series, dtype: Dtype) -> pl.Series:
    """Parse a text column to ``dtype`` (null where unparseable); the slower variants run only when needed."""
    if dtype == "str" or s.dtype == _polars_type(dtype):
        return s
    if dtype == "datetime":
        out = s.str.strptime(pl.Datetime("us"), DATETIME_FORMAT, strict=False)
        if _unparsed(s, out).any():
            # Real MIMIC writes whole seconds; accept an optional fractional part as well.
            out = out.fill_null(s.str.strptime(pl.Datetime("us"), DATETIME_FORMAT + "%.f", strict=False))
        return out
    if dtype == "date":
        return s.str.strptime(pl.Date(), DATE_FORMAT, strict=False)
    out = s.cast(_polars_type(dtype), strict=False)
    if _unparsed(s, out).any():  # surrounding blanks: strip only where the plain cast failed somewhere
        out = s.str.strip_chars().cast(_polars_type(dtype), strict=False)
    return out


def _check_and_cast(
    df: pl.DataFrame, schema: TableSchema, path: Path, first_line: int
) -> pl.DataFrame:
    """Cast the string batch to the schema's dtypes; the first unparseable value raises with its line."""
    out = {}
    for col in df.columns:
        dtype = schema.columns[col]
        raw = df.get_column(col)
        cast = _cast_column(raw, dtype)
        if cast is not raw:
            bad = _unparsed(raw, cast)
            if bad.any():
                i = int(bad.arg_max())  # first failing row of the batch
                n_bad = int(bad.sum())
                raise MimicSchemaError(
                    f"{path}: column {col!r}, line {first_line + i}: cannot parse {raw[i]!r} as {dtype} "
                    f"({n_bad} bad value(s) in this batch)"
                )
        out[col] = cast
    return pl.DataFrame(out)


def _frames(
    path: Path, schema: TableSchema, wanted: list[str], batch_rows: int, fast: bool, skip_rows: int
) -> Iterator[pl.DataFrame]:
    """Typed, checked frames of about ``batch_rows`` rows, starting ``skip_rows`` rows below the header.

    ``fast``: pyarrow parses the :data:`_ARROW_PARSES` columns and anything it refuses raises
    :class:`_FastPathRefused`; otherwise every column is read as text and errors raise
    :class:`MimicSchemaError` with the line.
    """
    types = {c: (_ARROW_PARSES.get(schema.columns[c], pa.string()) if fast else pa.string()) for c in wanted}
    checked_floats = [c for c in wanted if types[c] == pa.float64()]
    read_opts = pacsv.ReadOptions(block_size=_BLOCK_SIZE, use_threads=True, skip_rows_after_names=skip_rows)
    convert_opts = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types=types,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    line = 2 + skip_rows  # line 1 is the header; first line of the frame being assembled
    pending: list[pa.RecordBatch] = []
    n_pending = 0

    def frame() -> pl.DataFrame:
        df = pl.from_arrow(pa.Table.from_batches(pending))
        assert isinstance(df, pl.DataFrame)
        return _check_and_cast(df.select(wanted), schema, path, line)

    try:
        with pa.input_stream(str(path), compression="gzip") as stream:
            reader = pacsv.open_csv(stream, read_options=read_opts, convert_options=convert_opts)
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                if any(pc.any(pc.is_nan(batch.column(c))).as_py() for c in checked_floats):
                    raise _FastPathRefused("NaN: the string path decides whether its text is a number")
                pending.append(batch)
                n_pending += batch.num_rows
                if n_pending >= batch_rows:
                    yield frame()
                    line += n_pending
                    pending, n_pending = [], 0
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        if fast:
            raise _FastPathRefused(str(exc)) from exc
        msg = str(exc).splitlines()[0]
        low = msg.lower()
        corrupt = any(w in low for w in ("gzip", "truncat", "compress", "eof"))
        kind = "truncated or corrupt gzip stream" if corrupt else "unreadable CSV"
        raise MimicSchemaError(f"{path}: {kind} near line {line + n_pending} ({msg})") from exc
    if pending:
        yield frame()


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
    n_rows = 0
    try:
        for df in _frames(path, schema, wanted, batch_rows, fast=True, skip_rows=0):
            n_rows += df.height
            yield df
    except _FastPathRefused:
        # Bad (or unusual) input: re-read the rows not yet yielded as text to name the offending value.
        for df in _frames(path, schema, wanted, batch_rows, fast=False, skip_rows=n_rows):
            n_rows += df.height
            yield df
    if n_rows == 0:
        raise MimicSchemaError(f"{path}: empty table (header only, no rows)")


def read_table(mimic_root: Path, table: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Read a (small) table whole, validated; use :func:`iter_table` for the large event tables."""
    batches = list(iter_table(mimic_root, table, columns))
    return pl.concat(batches, how="vertical") if len(batches) > 1 else batches[0]
