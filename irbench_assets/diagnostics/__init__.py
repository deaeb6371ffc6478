"""Mechanistic diagnostics (docs/diagnostics.md): xVal zero-out audit, attention washout / contextual CE,
clinical boundary probe, embedding geometry, potassium grid, sparsity distance. Pure functions of model and
tokenized folders that write a JSON + PNG folder atomically and return a small summary."""

from irbench_assets.diagnostics.attention import attention_washout
from irbench_assets.diagnostics.boundary_probe import DEFAULT_LABS, LabRange, clinical_boundary_probe
from irbench_assets.diagnostics.common import DEFAULT_HANDLES, OUTPUTS, Arm, default_arms, output_dir
from irbench_assets.diagnostics.geometry import GEOMETRY_CODES, embedding_geometry, potassium_geometry_grid
from irbench_assets.diagnostics.sparsity import sparsity_distance
from irbench_assets.diagnostics.xval_audit import xval_zero_audit

__all__ = [
    "DEFAULT_HANDLES",
    "DEFAULT_LABS",
    "GEOMETRY_CODES",
    "OUTPUTS",
    "Arm",
    "LabRange",
    "attention_washout",
    "clinical_boundary_probe",
    "default_arms",
    "embedding_geometry",
    "output_dir",
    "potassium_geometry_grid",
    "sparsity_distance",
    "xval_zero_audit",
]
