"""Base + extended clinical outcomes computed from MEDS event times (see docs/outcomes.md)."""

from irbench_assets.outcomes.base import admissions, icu_cohort
from irbench_assets.outcomes.compute import compute_outcomes
from irbench_assets.outcomes.definitions import OUTCOMES, OutcomeDef, families_for, output_columns
from irbench_assets.outcomes.evaluation import eligibility, outcome_descriptives, prevalence_bounds_check

__all__ = [
    "OUTCOMES",
    "OutcomeDef",
    "admissions",
    "compute_outcomes",
    "eligibility",
    "families_for",
    "icu_cohort",
    "outcome_descriptives",
    "output_columns",
    "prevalence_bounds_check",
]
