"""The code location: every stage's Definitions merged, plus the shared resources. Nothing else."""

from __future__ import annotations

import dagster as dg

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.meds.defs import defs as meds_defs
from irbench_assets.mimic.defs import defs as mimic_defs

defs = dg.Definitions.merge(
    mimic_defs,
    meds_defs,
    dg.Definitions(resources={"settings": IrbenchSettings()}),
)
