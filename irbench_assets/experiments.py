"""The experiment matrix from ``resources/experiments.yaml`` as plain dataclasses (no Dagster here).

A partition of every per-arm asset is one (experiment, handle) pair written ``<experiment>.<handle>``;
anything not in the YAML is rejected with the list of valid handles of that experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

from irbench_assets.settings import resources_dir

ARM_SEP = "."
QUANTIZER_BINS = {"deciles": 10, "ventiles": 20, "trentiles": 30, "centiles": 100}
ANCHORING_FOR = {"5-10-5": "ventiles", "10-10-10": "trentiles"}


class UnknownArmError(ValueError):
    """An (experiment, handle) pair that is not in experiments.yaml."""


@dataclass(frozen=True)
class HandleConfig:
    """Everything a handle changes: tokenization, representation, time encoding, training regime, cohort."""

    experiment: str
    handle: str
    label: str
    tokenizer: str
    quantizer: Literal["deciles", "ventiles", "trentiles", "centiles"]
    anchoring: Literal["none", "5-10-5", "10-10-10"]
    fused: bool
    numeric_encoding: Literal["quantile", "xval"]
    representation: Literal["discrete", "soft", "xval", "xval_affine"]
    temporal: Literal["none", "tt", "rope"]
    training: Literal["packed", "windowed"]
    cohort: Literal["all", "icu"]
    arm: Literal["meds", "mapped", "randomized", "freqmatched"]

    @property
    def key(self) -> str:
        return arm_key(self.experiment, self.handle)

    @property
    def n_bins(self) -> int:
        return QUANTIZER_BINS[self.quantizer]

    @property
    def time_tokens(self) -> bool:
        return self.temporal == "tt"


@dataclass(frozen=True)
class Experiment:
    """One experiment: its handles in file order and its baseline handle."""

    name: str
    title: str
    baseline: str
    handles: dict[str, HandleConfig]


_ALLOWED = {
    "quantizer": set(QUANTIZER_BINS),
    "anchoring": {"none", "5-10-5", "10-10-10"},
    "numeric_encoding": {"quantile", "xval"},
    "representation": {"discrete", "soft", "xval", "xval_affine"},
    "temporal": {"none", "tt", "rope"},
    "training": {"packed", "windowed"},
    "cohort": {"all", "icu"},
    "arm": {"meds", "mapped", "randomized", "freqmatched"},
}


def _validate(path: Path, cfg: HandleConfig) -> None:
    where = f"{path}: experiments.{cfg.experiment}.handles.{cfg.handle}"
    for name, allowed in _ALLOWED.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{where}: {name}={getattr(cfg, name)!r} is not one of {sorted(allowed)}")
    if cfg.anchoring != "none" and ANCHORING_FOR[cfg.anchoring] != cfg.quantizer:
        raise ValueError(f"{where}: anchoring {cfg.anchoring} needs quantizer {ANCHORING_FOR[cfg.anchoring]}")
    if cfg.representation in ("xval", "xval_affine") and cfg.numeric_encoding != "xval":
        raise ValueError(f"{where}: representation {cfg.representation} needs numeric_encoding: xval")
    if cfg.representation in ("soft", "xval", "xval_affine") and cfg.fused:
        raise ValueError(f"{where}: representation {cfg.representation} needs unfused tokenization")


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Experiment]:
    raw = yaml.safe_load(path.read_text())
    names = {f.name for f in fields(HandleConfig)} - {"experiment", "handle"}
    out: dict[str, Experiment] = {}
    for exp_name, exp in raw["experiments"].items():
        if ARM_SEP in exp_name:
            raise ValueError(f"{path}: experiment name {exp_name!r} must not contain {ARM_SEP!r}")
        handles: dict[str, HandleConfig] = {}
        for handle, spec in exp["handles"].items():
            merged = {**exp.get("defaults", {}), **(spec or {})}
            unknown = set(merged) - names
            if unknown:
                raise ValueError(f"{path}: {exp_name}.{handle}: unknown keys {sorted(unknown)}")
            merged.setdefault("label", handle)
            cfg = HandleConfig(experiment=exp_name, handle=handle, **merged)
            _validate(path, cfg)
            handles[handle] = cfg
        if exp["baseline"] not in handles:
            raise ValueError(f"{path}: {exp_name}.baseline {exp['baseline']!r} is not one of its handles")
        out[exp_name] = Experiment(exp_name, exp.get("title", exp_name), exp["baseline"], handles)
    return out


def load_experiments(path: Path | None = None) -> dict[str, Experiment]:
    """All experiments of ``resources/experiments.yaml`` (or ``path``), validated."""
    return _load(Path(path or resources_dir() / "experiments.yaml").resolve())


def arm_key(experiment: str, handle: str) -> str:
    """The partition key of one (experiment, handle) pair."""
    return f"{experiment}{ARM_SEP}{handle}"


def all_arm_keys() -> list[str]:
    return [cfg.key for exp in load_experiments().values() for cfg in exp.handles.values()]


def get_experiment(experiment: str) -> Experiment:
    """One experiment; an unknown name fails at once, listing the valid ones."""
    exps = load_experiments()
    if experiment not in exps:
        raise UnknownArmError(f"unknown experiment {experiment!r}; valid experiments: {', '.join(exps)}")
    return exps[experiment]


def get_handle(experiment: str, handle: str) -> HandleConfig:
    """Look up one handle; an unknown pair fails at once, listing what is valid."""
    exp = get_experiment(experiment)
    if handle not in exp.handles:
        raise UnknownArmError(
            f"{handle!r} is not a handle of {experiment}; valid handles of {experiment}: {', '.join(exp.handles)}"
        )
    return exp.handles[handle]


def parse_arm_key(key: str) -> HandleConfig:
    """``"exp1.deciles_unfused"`` → its HandleConfig (with the same errors as :func:`get_handle`)."""
    experiment, sep, handle = key.partition(ARM_SEP)
    if not sep:
        raise UnknownArmError(f"partition key {key!r} is not '<experiment>{ARM_SEP}<handle>'")
    return get_handle(experiment, handle)
