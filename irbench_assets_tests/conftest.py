"""Shared fixtures: a small synthetic MIMIC-IV directory and its MEDS extraction, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from irbench_assets.meds.extract import extract_meds
from irbench_assets.mimic.synth import generate_synthetic_mimic
from irbench_assets.settings import MedsConfig

SMALL_ADMISSIONS = 300


@pytest.fixture(scope="session")
def small_mimic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deterministic synthetic MIMIC-IV 3.1 directory with a few hundred admissions (read-only for tests)."""
    out = tmp_path_factory.mktemp("mimic") / "mimiciv"
    generate_synthetic_mimic(out, admissions=SMALL_ADMISSIONS, seed=7, chunk_admissions=100)
    return out


@pytest.fixture(scope="session")
def small_meds(tmp_path_factory: pytest.TempPathFactory, small_mimic: Path) -> tuple[Path, dict]:
    """The MEDS extraction of :func:`small_mimic` (root, report); small shards to exercise sharding."""
    out = tmp_path_factory.mktemp("meds") / "mimiciv-3.1_meds"
    report = extract_meds(small_mimic, out, MedsConfig(subjects_per_shard=60, batch_rows=5000))
    return out, report
