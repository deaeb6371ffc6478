"""Deterministic subject-level train/tuning/held_out split (70/10/20 by default, seed 42)."""

from __future__ import annotations

import numpy as np
import polars as pl

SPLITS = ("train", "tuning", "held_out")


def subject_splits(
    subject_ids: pl.Series | np.ndarray, seed: int = 42, train: float = 0.7, tuning: float = 0.1
) -> pl.DataFrame:
    """Assign each subject to one split: shuffle the sorted ids with ``seed``; first 70 % train, next 10 % tuning.

    Sorting first makes the result independent of the order in which subjects were read.
    """
    if not (0 < train < 1 and 0 <= tuning < 1 and train + tuning < 1):
        raise ValueError(f"split fractions train={train}, tuning={tuning} must be in (0,1) and sum below 1")
    ids = np.unique(np.asarray(subject_ids, dtype=np.int64))
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train = int(train * len(ids))
    n_tuning = int(tuning * len(ids))
    split = np.empty(len(ids), dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train : n_train + n_tuning]] = "tuning"
    split[order[n_train + n_tuning :]] = "held_out"
    return pl.DataFrame({"subject_id": ids, "split": split.astype(str)}).sort("subject_id")


def assign_shards(splits: pl.DataFrame, subjects_per_shard: int) -> pl.DataFrame:
    """Add a ``shard`` column: within each split, consecutive blocks of ``subjects_per_shard`` subject ids."""
    if subjects_per_shard < 1:
        raise ValueError("subjects_per_shard must be >= 1")
    return splits.sort("subject_id").with_columns(
        (pl.int_range(pl.len()).over("split") // subjects_per_shard).cast(pl.Int32).alias("shard")
    )
