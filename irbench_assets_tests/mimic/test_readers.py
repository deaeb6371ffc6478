"""Bad-input behaviour of the MIMIC-IV readers: each corruption names file, column, line and value."""

from __future__ import annotations

import gzip
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from irbench_assets.meds.extract import extract_meds
from irbench_assets.mimic import readers
from irbench_assets.mimic.readers import MimicSchemaError, iter_table, read_table
from irbench_assets.mimic.schema import TABLES
from irbench_assets.settings import MedsConfig


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite(path: Path, edit) -> None:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    path.write_bytes(gzip.compress("".join(edit(lines)).encode(), mtime=0))


def _set_field(lines: list[str], line_no: int, col: str, value: str) -> list[str]:
    header = lines[0].rstrip("\n").split(",")
    import csv
    import io

    row = next(csv.reader(io.StringIO(lines[line_no - 1])))
    row[header.index(col)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    lines[line_no - 1] = buf.getvalue()
    return lines


def test_valid_table_reads_with_schema_dtypes(small_mimic: Path) -> None:
    df = read_table(small_mimic, "labevents")
    assert df.schema["valuenum"] == pl.Float64
    assert df.schema["storetime"] == pl.Datetime("us")
    assert df.height > 1000
    assert set(df.columns) == set(TABLES["labevents"].required)


def test_batches_cover_every_row(small_mimic: Path) -> None:
    whole = read_table(small_mimic, "chartevents", ["subject_id", "itemid"])
    parts = list(iter_table(small_mimic, "chartevents", ["subject_id", "itemid"], batch_rows=1000))
    assert len(parts) > 1
    assert pl.concat(parts).equals(whole)


def test_missing_column_names_file_and_column(small_mimic: Path, tmp_path: Path) -> None:
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "hosp" / "labevents.csv.gz"
    _rewrite(path, lambda ls: [",".join(
        "valuenum_x" if c == "valuenum" else c for c in ls[0].rstrip("\n").split(",")) + "\n", *ls[1:]])
    with pytest.raises(MimicSchemaError, match=r"labevents\.csv\.gz: missing required column\(s\) \['valuenum'\]"):
        read_table(root, "labevents")


def test_unparseable_timestamp_names_column_line_value(small_mimic: Path, tmp_path: Path) -> None:
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "icu" / "chartevents.csv.gz"
    _rewrite(path, lambda ls: _set_field(ls, 7, "storetime", "2180-02-30 25:61:00"))
    with pytest.raises(MimicSchemaError, match=r"chartevents\.csv\.gz: column 'storetime', line 7: "
                                               r"cannot parse '2180-02-30 25:61:00' as datetime"):
        read_table(root, "chartevents")


def test_non_numeric_valuenum_names_column_line_value(small_mimic: Path, tmp_path: Path) -> None:
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "hosp" / "labevents.csv.gz"
    _rewrite(path, lambda ls: _set_field(ls, 12, "valuenum", "4.1 mEq"))
    with pytest.raises(MimicSchemaError, match=r"column 'valuenum', line 12: cannot parse '4.1 mEq' as float"):
        read_table(root, "labevents")


def test_truncated_gzip_is_reported(small_mimic: Path, tmp_path: Path) -> None:
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "hosp" / "labevents.csv.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MimicSchemaError, match=r"labevents\.csv\.gz: truncated or corrupt gzip stream"):
        read_table(root, "labevents")


def test_empty_table_is_reported(small_mimic: Path, tmp_path: Path) -> None:
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "icu" / "icustays.csv.gz"
    _rewrite(path, lambda ls: ls[:1])
    with pytest.raises(MimicSchemaError, match=r"icustays\.csv\.gz: empty table"):
        read_table(root, "icustays")


def test_billing_tables_are_refused(small_mimic: Path) -> None:
    with pytest.raises(PermissionError, match="billing"):
        next(iter_table(small_mimic, "diagnoses_icd"))


def test_bad_input_leaves_previous_meds_intact(small_mimic: Path, tmp_path: Path) -> None:
    """A failed Stage -1 run writes nothing under the final path and keeps the previous materialization."""
    out = tmp_path / "meds"
    cfg = MedsConfig(batch_rows=2000)
    extract_meds(small_mimic, out, cfg)
    before = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    root = _copy(small_mimic, tmp_path / "m")
    _rewrite(root / "icu" / "chartevents.csv.gz", lambda ls: _set_field(ls, len(ls) - 1, "valuenum", "abc"))
    with pytest.raises(MimicSchemaError, match="chartevents"):
        extract_meds(root, out, cfg)
    after = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    assert after == before
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def _n_lines(path: Path) -> int:
    return len(gzip.decompress(path.read_bytes()).decode().splitlines())


def test_fast_path_fallback_resumes_after_yielded_batches(
    small_mimic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'+nan' parses on both paths but sends the fast path to the string path (NaN check) after earlier
    batches were yielded: the re-read must resume exactly there, losing and repeating no row."""
    monkeypatch.setattr(readers, "_BLOCK_SIZE", 1 << 16)  # many blocks, so batches precede the fallback
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "hosp" / "labevents.csv.gz"
    line = _n_lines(path) - 3
    _rewrite(path, lambda ls: _set_field(ls, line, "valuenum", "+nan"))
    before = read_table(small_mimic, "labevents")
    parts = list(iter_table(root, "labevents", batch_rows=2000))
    assert len(parts) > 2
    after = pl.concat(parts)
    assert after.height == before.height
    row = line - 2  # line 1 is the header
    assert np.isnan(after["valuenum"][row])
    assert after.with_row_index().filter(pl.col("index") != row).drop("index").equals(
        before.with_row_index().filter(pl.col("index") != row).drop("index")
    )


def test_bad_number_after_yielded_batches_names_its_line(
    small_mimic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "_BLOCK_SIZE", 1 << 16)
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "icu" / "chartevents.csv.gz"
    line = _n_lines(path) - 5
    _rewrite(path, lambda ls: _set_field(ls, line, "valuenum", "nan(1)"))  # pyarrow reads NaN; we refuse it
    seen = 0
    with pytest.raises(MimicSchemaError, match=rf"column 'valuenum', line {line}: cannot parse 'nan\(1\)' as float"):
        for df in iter_table(root, "chartevents", batch_rows=2000):
            seen += df.height
    assert 0 < seen < line - 1


@pytest.mark.parametrize(
    ("column", "value", "dtype"),
    [
        ("itemid", "0x10", "int"),  # pyarrow would read hexadecimal; the schema says decimal
        ("storetime", "2180-01-01T10:00:00", "datetime"),  # ISO-8601 variants are not MIMIC's format
        ("storetime", "2180-01-01", "datetime"),
        ("storetime", "2180-02-30 10:00:00", "datetime"),  # strptime-style parsers roll this into March
    ],
)
def test_lenient_parser_inputs_are_still_refused(
    small_mimic: Path, tmp_path: Path, column: str, value: str, dtype: str
) -> None:
    root = _copy(small_mimic, tmp_path / "m")
    _rewrite(root / "icu" / "chartevents.csv.gz", lambda ls: _set_field(ls, 9, column, value))
    with pytest.raises(MimicSchemaError, match=rf"column '{column}', line 9: cannot parse '{value}' as {dtype}"):
        read_table(root, "chartevents")


def test_padded_ints_and_fractional_seconds_are_accepted(small_mimic: Path, tmp_path: Path) -> None:
    """The slower parses (strip, fractional seconds) run only when the plain one fails, with the same result."""
    root = _copy(small_mimic, tmp_path / "m")
    path = root / "icu" / "chartevents.csv.gz"
    _rewrite(path, lambda ls: _set_field(_set_field(ls, 4, "itemid", " 220045 "), 5, "storetime", "2180-01-01 10:00:00.25"))
    df = read_table(root, "chartevents")
    assert df["itemid"][2] == 220045
    assert df["storetime"][3] == datetime(2180, 1, 1, 10, 0, 0, 250000)
    assert df["storetime"].dtype == pl.Datetime("us")
