"""Artifact paths under IRBENCH_HOME and atomic writes (temporary path, then rename into place).

Every asset writes through :func:`atomic_dir` or :func:`atomic_file`, so that a crash or a failed
validation never leaves a half-written artifact under its final path and the previous
materialization stays readable until the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import polars as pl

from irbench_assets.settings import Settings


# ---------------------------------------------------------------------------------------------- paths
def runs_dir(settings: Settings) -> Path:
    return settings.home / "runs"


def meds_root(settings: Settings) -> Path:
    """Stage -1 output: a MEDS dataset (data/, metadata/)."""
    return runs_dir(settings) / "meds" / "mimiciv-3.1_meds"


def exp3_arms_root(settings: Settings) -> Path:
    """The four Exp3 arm MEDS datasets (meds_<arm>/) and the mapped arm's mappings/meta.json."""
    return runs_dir(settings) / "exp3" / "arms"


def events_dir(settings: Settings, experiment: str, arm: str) -> Path:
    """The shared, handle-independent event scan of one experiment (one per Exp3 vocabulary arm)."""
    return runs_dir(settings) / "tokenized" / experiment / "_events" / arm


def tokenized_dir(settings: Settings, experiment: str, handle: str) -> Path:
    return runs_dir(settings) / "tokenized" / experiment / handle


def outcomes_path(settings: Settings, experiment: str) -> Path:
    return runs_dir(settings) / "outcomes" / experiment / "outcomes.parquet"


def model_dir(settings: Settings, experiment: str, handle: str) -> Path:
    return runs_dir(settings) / "models" / f"{experiment}_{handle}"


def features_dir(settings: Settings, experiment: str, handle: str) -> Path:
    return runs_dir(settings) / "features" / experiment / handle


def predictions_path(settings: Settings, experiment: str, handle: str) -> Path:
    return runs_dir(settings) / "predictions" / experiment / handle / "predictions.parquet"


def statistics_dir(settings: Settings) -> Path:
    return runs_dir(settings) / "statistics" / "paper_stats_run_artifacts"


def outputs_dir(settings: Settings) -> Path:
    return settings.home / "outputs"


# ------------------------------------------------------------------------------------- atomic writes
_HOST = socket.gethostname().split(".")[0].replace("-", "_")


def _sibling(path: Path, tag: str) -> Path:
    """Temporary sibling ``.<name>.<tag>-<host>-<pid>-<random>``: the writer's host and pid tell a stale one."""
    return path.parent / f".{path.name}.{tag}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _writer_dead(sibling: Path) -> bool:
    """True if ``sibling`` was left by a writer process on this host that no longer runs.

    Siblings of other hosts (a SLURM node sharing the file system) or of unknown format are kept.
    """
    parts = sibling.name.rsplit("-", 3)
    if len(parts) != 4 or parts[1] != _HOST or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _sweep_siblings(final: Path) -> None:
    """Remove what killed writers of ``final`` left next to it (a ``kill -9`` skips every cleanup)."""
    for tag in ("tmp", "old"):
        for p in final.parent.glob(f".{glob_escape(final.name)}.{tag}-*"):
            if _writer_dead(p):
                _remove(p)


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``final``; on success swap it into place.

    On any exception the temporary directory is removed and ``final`` (the previous
    materialization, if any) is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_siblings(final)
    tmp = _sibling(final, "tmp")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = _sibling(final, "old")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary file path next to ``final``; on success ``os.replace`` it into place."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_siblings(final)
    tmp = _sibling(final, "tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)


def write_parquet(df: pl.DataFrame, path: Path, **kwargs: Any) -> Path:
    """Write a polars frame atomically (zstd, statistics on) and return the final path."""
    with atomic_file(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True, **kwargs)
    return Path(path)


def write_json(obj: Any, path: Path) -> Path:
    """Write JSON atomically with sorted keys so that identical content gives identical bytes."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def sweep_stale_temporaries(root: Path) -> int:
    """Remove ``.*.tmp-*`` / ``.*.old-*`` leftovers of killed writers below ``root``; return how many."""
    n = 0
    if not root.exists():
        return 0
    for p in root.rglob(".*.*-*"):
        if ".tmp-" in p.name or ".old-" in p.name:
            _remove(p)
            n += 1
    return n
