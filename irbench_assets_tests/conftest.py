"""Shared fixtures: a small synthetic MIMIC-IV directory and its MEDS extraction, built once per session."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from irbench_assets.meds.extract import extract_meds
from irbench_assets.mimic.synth import generate_synthetic_mimic
from irbench_assets.settings import REPO_ROOT, MedsConfig

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


@pytest.fixture()
def tiny_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, dict[str, Any]]], Path]:
    """Factory: copy resources/ with the demo profile's sections updated by ``overrides`` and point
    IRBENCH_RESOURCES at the copy, so every stage of a test run reads the smaller profile."""
    return lambda overrides: _tiny_resources(tmp_path, monkeypatch, overrides)


def _tiny_resources(root: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, dict[str, Any]]) -> Path:
    res = root / "resources"
    shutil.copytree(REPO_ROOT / "resources", res)
    path = res / "profiles" / "demo.yaml"
    prof = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        prof.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(prof))
    monkeypatch.setenv("IRBENCH_RESOURCES", str(res))
    monkeypatch.setenv("IRBENCH_PAPER_DIR", str(root / "paper"))  # paper assets must not write into the repo
    return res
