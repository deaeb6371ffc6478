"""Stage 1 payload: train one (experiment, handle) model; run by IrbenchCompute locally or on SLURM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from irbench_assets.experiments import get_handle
from irbench_assets.models.train import train_model


def train_arm(
    *, tokenized_dir: str, experiment: str, handle: str, model_cfg: dict, train_cfg: dict, out_dir: str,
    work_dir: str, log: Callable[[Any], None],
) -> dict:
    """Resolve the handle and train it; the returned summary becomes the checkpoint's Dagster metadata."""
    return train_model(
        Path(tokenized_dir), get_handle(experiment, handle), model_cfg, train_cfg, Path(out_dir), Path(work_dir), log
    )


if __name__ == "__main__":
    from irbench_assets.compute.payload import run_payload

    run_payload(train_arm)
