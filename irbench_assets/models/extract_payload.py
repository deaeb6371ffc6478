"""Stage 2 payload: hidden states of the first-24h timelines for one (experiment, handle) model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from irbench_assets.models.extract import extract_features


def extract_arm(*, model_dir: str, tokenized_dir: str, out_dir: str, batch_size: int = 32,
                log: Callable[[Any], None]) -> dict:
    """Extract one vector per admission and split; the summary becomes the features' Dagster metadata."""
    log({"event": "extract", "model_dir": model_dir})
    return extract_features(Path(model_dir), Path(tokenized_dir), Path(out_dir), batch_size=batch_size)


if __name__ == "__main__":
    from irbench_assets.compute.payload import run_payload

    run_payload(extract_arm)
