"""Typed run settings: where outputs go (IRBENCH_HOME), which profile (demo | paper), where MIMIC-IV lives.

Everything a stage needs to know about its environment comes from here, so that a run is reproducible
from (profile YAML, environment variables, seed) alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
PROFILES = ("demo", "paper")


def resources_dir() -> Path:
    """The YAML resources folder (experiments, tokenizers, profiles, slurm); IRBENCH_RESOURCES overrides."""
    return Path(os.environ.get("IRBENCH_RESOURCES", REPO_ROOT / "resources")).resolve()


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the embedded synthetic MIMIC-IV 3.1 used when no real MIMIC root is given."""

    admissions: int
    seed: int
    chunk_admissions: int = 5000


@dataclass(frozen=True)
class MedsConfig:
    """Stage -1 settings: subject split fractions/seed and shard size."""

    split_seed: int = 42
    train_fraction: float = 0.7
    tuning_fraction: float = 0.1
    subjects_per_shard: int = 5000
    batch_rows: int = 500_000


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one run: home directory, profile name and the profile's sections."""

    home: Path
    profile: str
    mimic_root: Path | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def synthetic(self) -> SyntheticConfig:
        return SyntheticConfig(**self.raw.get("synthetic", {}))

    @cached_property
    def meds(self) -> MedsConfig:
        return MedsConfig(**self.raw.get("meds", {}))

    @property
    def seed(self) -> int:
        """The global seed (data order, training, statistics) — the original study used 42 throughout."""
        return int(self.raw.get("seed", 42))

    def section(self, name: str) -> dict[str, Any]:
        """A raw profile section (e.g. ``model``, ``train``, ``stats``) for stages that type it themselves."""
        return dict(self.raw.get(name, {}))

    @property
    def uses_synthetic(self) -> bool:
        return self.mimic_root is None

    @property
    def mimic_dir(self) -> Path:
        """The MIMIC-IV 3.1 root that Stage -1 reads: the real one if configured, else the synthetic one."""
        return self.mimic_root if self.mimic_root is not None else self.home / "mimic"


def load_profile(profile: str) -> dict[str, Any]:
    """Read ``resources/profiles/<profile>.yaml``; an unknown profile names the valid ones."""
    path = resources_dir() / "profiles" / f"{profile}.yaml"
    if profile not in PROFILES or not path.exists():
        raise ValueError(f"IRBENCH_PROFILE={profile!r} is not a profile; valid profiles: {', '.join(PROFILES)}")
    with path.open() as fh:
        return yaml.safe_load(fh) or {}


def get_settings(
    home: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    mimic_root: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve settings from arguments, then IRBENCH_HOME / IRBENCH_PROFILE / IRBENCH_MIMIC_ROOT, then defaults."""
    home_path = Path(home or os.environ.get("IRBENCH_HOME") or "artifacts").resolve()
    prof = profile or os.environ.get("IRBENCH_PROFILE") or "demo"
    root = mimic_root or os.environ.get("IRBENCH_MIMIC_ROOT") or None
    root_path = Path(root).resolve() if root else None
    if root_path is not None and not (root_path / "hosp").is_dir():
        raise FileNotFoundError(
            f"IRBENCH_MIMIC_ROOT={root_path} is not a MIMIC-IV 3.1 directory (expected hosp/ and icu/ inside)"
        )
    return Settings(home=home_path, profile=prof, mimic_root=root_path, raw=load_profile(prof))
