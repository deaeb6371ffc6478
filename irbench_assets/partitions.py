"""Dagster partitions built from resources/experiments.yaml.

* ``arm_partitions`` — one key per (experiment, handle) pair, ``<experiment>.<handle>``, in file order, so
  only pairs in the YAML exist and a per-experiment backfill is one contiguous key range.
* ``experiment_partitions`` — one key per experiment, for experiment-level assets (outcomes, pairwise stats).
* ``experiment_to_arms`` / ``arms_to_experiment`` — the partition mappings between the two levels.
"""

from __future__ import annotations

import warnings

import dagster as dg

from irbench_assets.experiments import (
    HandleConfig,
    all_arm_keys,
    get_experiment,
    load_experiments,
    parse_arm_key,
)

# Partitioned asset checks (one result per partition) are a Dagster preview feature we rely on.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

experiment_partitions = dg.StaticPartitionsDefinition(list(load_experiments()))
arm_partitions = dg.StaticPartitionsDefinition(all_arm_keys())

#: upstream experiment-level partition → the arm partitions of that experiment (arm asset depends on experiment asset).
experiment_to_arms = dg.StaticPartitionMapping(
    {exp: [cfg.key for cfg in e.handles.values()] for exp, e in load_experiments().items()}
)
#: upstream arm partition → its experiment's partition (e.g. pairwise stats depend on all arms of it).
arms_to_experiment = dg.StaticPartitionMapping(
    {cfg.key: exp for exp, e in load_experiments().items() for cfg in e.handles.values()}
)


def handle_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> HandleConfig:
    """The HandleConfig of the partition being materialized (fails at once for a pair not in the YAML)."""
    return parse_arm_key(context.partition_key)


def experiment_arm_keys(experiment: str) -> list[str]:
    """All arm partition keys of one experiment (for a per-experiment backfill)."""
    return [cfg.key for cfg in get_experiment(experiment).handles.values()]
