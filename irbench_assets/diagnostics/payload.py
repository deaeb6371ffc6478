"""Diagnostics payload: run one diagnostic by name under dagster-pipes (or as a CLI with JSON arguments).

The GPU-heavy diagnostics (``xval_zero_audit``, ``attention_washout``) go through the same
``IrbenchCompute`` resource as training; the CPU ones can run the same way or be called in process::

    python -m irbench_assets.diagnostics.payload --json-args '{"name": "xval_zero_audit", "args": {
        "arms": [{"model_dir": ".../models/exp2_xval_rope", "tokenized_dir": ".../tokenized/exp2/xval_rope"}],
        "out_dir": ".../outputs/diagnostics_xval_zero_audit"}}'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from irbench_assets.diagnostics.attention import attention_washout
from irbench_assets.diagnostics.boundary_probe import clinical_boundary_probe
from irbench_assets.diagnostics.geometry import embedding_geometry, potassium_geometry_grid
from irbench_assets.diagnostics.sparsity import sparsity_distance
from irbench_assets.diagnostics.xval_audit import xval_zero_audit

DIAGNOSTICS: dict[str, Callable[..., dict[str, Any]]] = {
    "xval_zero_audit": xval_zero_audit,
    "attention_washout": attention_washout,
    "clinical_boundary_probe": clinical_boundary_probe,
    "embedding_geometry": embedding_geometry,
    "potassium_geometry_grid": potassium_geometry_grid,
    "sparsity_distance": sparsity_distance,
}
GPU_DIAGNOSTICS = ("xval_zero_audit", "attention_washout")


def run_diagnostic(*, name: str, args: Mapping[str, Any], log: Callable[[Any], None]) -> dict[str, Any]:
    """Dispatch to diagnostic ``name`` with ``args`` (``arms``: list of {model_dir, tokenized_dir?, name?},
    ``out_dir`` and the diagnostic's keyword options); its summary becomes the asset's metadata."""
    if name not in DIAGNOSTICS:
        raise ValueError(f"unknown diagnostic {name!r}; valid: {', '.join(DIAGNOSTICS)}")
    kwargs = dict(args)
    missing = [k for k in ("arms", "out_dir") if k not in kwargs]
    if missing:
        raise ValueError(f"diagnostic {name}: args lack {missing}")
    arms, out_dir = kwargs.pop("arms"), Path(kwargs.pop("out_dir"))
    log({"event": "diagnostic", "name": name, "n_arms": len(arms), "out_dir": str(out_dir)})
    return DIAGNOSTICS[name](arms, out_dir, log=log, **kwargs)


if __name__ == "__main__":
    from irbench_assets.compute.payload import run_payload

    run_payload(run_diagnostic)
