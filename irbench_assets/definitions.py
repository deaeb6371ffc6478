"""The code location: every stage's Definitions merged, plus the shared resources. Nothing else."""

from __future__ import annotations

import warnings

import dagster as dg

from irbench_assets.compute.resource import IrbenchCompute
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.diagnostics.defs import defs as diagnostics_defs
from irbench_assets.meds.defs import defs as meds_defs
from irbench_assets.mimic.defs import defs as mimic_defs
from irbench_assets.models.defs import defs as models_defs
from irbench_assets.outcomes.defs import defs as outcomes_defs
from irbench_assets.paper.defs import defs as paper_defs
from irbench_assets.probes.defs import defs as probes_defs
from irbench_assets.stats.defs import defs as stats_defs
from irbench_assets.tokenize.defs import defs as tokenize_defs

# Partitioned asset checks (one result per experiment/arm partition) are a Dagster preview feature we rely on.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

defs = dg.Definitions.merge(
    mimic_defs,
    meds_defs,
    outcomes_defs,
    tokenize_defs,
    models_defs,
    probes_defs,
    stats_defs,
    diagnostics_defs,
    paper_defs,
    dg.Definitions(resources={"settings": IrbenchSettings(), "compute": IrbenchCompute()}),
)
del mimic_defs, meds_defs, outcomes_defs, tokenize_defs, models_defs, probes_defs, stats_defs, diagnostics_defs, paper_defs  # one Definitions at module scope
