"""Atomic writes: temporaries of killed writers are swept by the next writer; live writers are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from irbench_assets.storage import _sibling, atomic_dir, atomic_file, sweep_stale_temporaries


def _dead_pid() -> int:
    """The pid of a process that has already exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _as_pid(sibling: Path, pid: int) -> Path:
    """``sibling``'s name with the writer pid replaced by ``pid``."""
    head, host, _, rand = sibling.name.rsplit("-", 3)
    return sibling.with_name(f"{head}-{host}-{pid}-{rand}")


def test_next_writer_sweeps_dead_writers_siblings(tmp_path: Path) -> None:
    final = tmp_path / "dataset"
    dead_tmp = _as_pid(_sibling(final, "tmp"), _dead_pid())
    dead_tmp.mkdir()
    (dead_tmp / "half.parquet").write_bytes(b"partial")
    dead_old = _as_pid(_sibling(final, "old"), _dead_pid())
    dead_old.mkdir()
    live = _sibling(final, "tmp")  # this process's pid: a writer that is still running
    live.mkdir()
    other_host = tmp_path / ".dataset.tmp-othernode-1-abcdef01"
    other_host.mkdir()
    unrelated = tmp_path / ".dataset2.tmp-x-1-abcdef01"
    unrelated.mkdir()

    with atomic_dir(final) as tmp:
        (tmp / "ok").write_text("1")

    assert (final / "ok").read_text() == "1"
    assert not dead_tmp.exists() and not dead_old.exists()
    assert live.exists(), "a running writer's temporary must never be removed"
    assert other_host.exists(), "another host's temporary cannot be judged from here"
    assert unrelated.exists(), "only siblings of the path being written are swept"


def test_atomic_file_sweeps_and_keeps_previous_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "table.csv"
    final.write_text("previous\n")
    dead = _as_pid(_sibling(final, "tmp"), _dead_pid())
    dead.write_text("half")
    with pytest.raises(RuntimeError), atomic_file(final) as tmp:
        tmp.write_text("new, unfinished")
        raise RuntimeError("writer failed")
    assert final.read_text() == "previous\n"
    assert not dead.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_sweep_stale_temporaries_on_idle_home(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / f".x.tmp-h-{os.getpid()}-1").mkdir()
    (tmp_path / ".y.old-h-1-2").write_text("")
    (tmp_path / "keep.parquet").write_text("")
    assert sweep_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "keep.parquet"]
