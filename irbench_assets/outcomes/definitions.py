"""The outcome registry: every label column, its task type, probe family, threshold and source codes.

One source of truth for the computation (``base.py``, ``extended.py``), the data dictionary
(``docs/outcomes.md``), the evaluation families of each experiment and the outcome descriptives. The
thresholds and itemids are the ones of the original benchmark (irbench_facts.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Cohort = Literal["all", "icu"]
TaskType = Literal["classification", "regression"]
FamilySuffix = Literal["primary_binary", "additional_binary", "length_of_stay", "extended_regression"]
Agg = Literal["min", "max"]
Op = Literal[">=", "<"]

# ------------------------------------------------------------------------------------ constants
OBSERVATION_HOURS = 24.0
LONG_LOS_HOURS = 7 * 24.0
PROLONGED_ICU_HOURS = 48.0
ICU_COHORT_MIN_LOS_HOURS = 24.0
#: Discharge-location words that mean the patient died in hospital (case-insensitive substring match).
DEATH_WORDS = ("died", "expired", "dead", "death")

IMV_PROCEDURE_ITEMIDS = (224385, 225792)  # invasive ventilation, intubation (procedureevents)
VASOPRESSOR_ITEMIDS: dict[int, str] = {
    221906: "norepinephrine",
    221289: "epinephrine",
    222315: "vasopressin",
    221749: "phenylephrine",
    221662: "dopamine",
    221653: "dobutamine",
}
CRRT_PROCEDURE_ITEMIDS = (225802,)
CRRT_CHART_ITEMIDS = (227290,)
HEMODIALYSIS_PROCEDURE_ITEMIDS = (225441,)
HEMODIALYSIS_CHART_ITEMIDS = (226499,)


@dataclass(frozen=True)
class Measure:
    """A measured quantity pooled over several itemids of one MEDS domain, with an optional plausible range."""

    name: str
    domain: Literal["LAB", "VITAL"]
    itemids: tuple[int, ...]
    unit: str
    plausible: tuple[float, float] | None = None  # inclusive; values outside are dropped


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in [
        Measure("creatinine", "LAB", (50912,), "mg/dL"),
        Measure("troponin", "LAB", (51003, 51002), "ng/mL"),
        Measure("hemoglobin", "LAB", (51222, 50811), "g/dL"),
        Measure("potassium", "LAB", (50971, 50822), "mEq/L"),
        Measure("glucose", "LAB", (50931, 50809), "mg/dL"),
        Measure("sodium", "LAB", (50983, 50824, 52623), "mEq/L"),
        Measure("bnp", "LAB", (50963, 50964), "pg/mL"),
        Measure("heart_rate", "VITAL", (220045,), "bpm", (20.0, 300.0)),
        Measure("sbp", "VITAL", (220050, 220179), "mmHg", (20.0, 300.0)),
        Measure("dbp", "VITAL", (220051, 220180), "mmHg", (20.0, 300.0)),
        Measure("map", "VITAL", (220052, 220181), "mmHg", (10.0, 250.0)),
    ]
}


@dataclass(frozen=True)
class Condition:
    """``<agg>(measure) <op> threshold`` over a time window, e.g. max potassium >= 6.5."""

    measure: str
    agg: Agg
    op: Op
    threshold: float

    def text(self) -> str:
        """Human-readable form for the data dictionary, e.g. 'max potassium >= 6.5 mEq/L'."""
        return f"{self.agg} {self.measure} {self.op} {self.threshold:g} {MEASURES[self.measure].unit}"


#: Extended regression targets: name -> (measure, aggregate over values strictly after admit + 24 h).
EXTENDED_REGRESSIONS: dict[str, tuple[str, Agg]] = {
    "peak_creatinine": ("creatinine", "max"),
    "peak_troponin": ("troponin", "max"),
    "min_hemoglobin": ("hemoglobin", "min"),
    "peak_potassium": ("potassium", "max"),
    "min_potassium": ("potassium", "min"),
    "min_glucose": ("glucose", "min"),
    "min_sodium": ("sodium", "min"),
    "max_sodium": ("sodium", "max"),
    "peak_bnp": ("bnp", "max"),
    "max_heart_rate": ("heart_rate", "max"),
    "max_sbp": ("sbp", "max"),
    "max_dbp": ("dbp", "max"),
}

#: Measurement-based binaries: positive when ANY condition holds; null when none of the measures was taken.
MEASUREMENT_BINARIES: dict[str, tuple[Condition, ...]] = {
    "hyperkalemia": (Condition("potassium", "max", ">=", 6.5),),
    "severe_hypokalemia": (Condition("potassium", "min", "<", 2.5),),
    "severe_anemia": (Condition("hemoglobin", "min", "<", 7.0),),
    "hypoglycemia": (Condition("glucose", "min", "<", 54.0),),
    "profound_hyponatremia": (Condition("sodium", "min", "<", 120.0),),
    "severe_hypernatremia": (Condition("sodium", "max", ">=", 160.0),),
    "tachycardia_hr130": (Condition("heart_rate", "max", ">=", 130.0),),
    "severe_hypertension": (Condition("sbp", "max", ">=", 180.0), Condition("dbp", "max", ">=", 120.0)),
    "hypotension": (Condition("map", "min", "<", 65.0), Condition("sbp", "min", "<", 90.0)),
}


def _proc(itemids: tuple[int, ...] | list[int]) -> tuple[str, ...]:
    return tuple(f"PROCEDURE//START//{i}" for i in itemids)


#: Event-based binaries: exact codes and code prefixes (``VITAL//<itemid>//`` matches any unit); 0-filled.
EVENT_BINARIES: dict[str, tuple[str, ...]] = {
    "vasopressor_initiation": tuple(f"INFUSION_START//{i}" for i in VASOPRESSOR_ITEMIDS),
    "crrt_initiation": _proc(CRRT_PROCEDURE_ITEMIDS) + tuple(f"VITAL//{i}//" for i in CRRT_CHART_ITEMIDS),
    "hemodialysis_initiation": _proc(HEMODIALYSIS_PROCEDURE_ITEMIDS)
    + tuple(f"VITAL//{i}//" for i in HEMODIALYSIS_CHART_ITEMIDS),
}
IMV_CODES = _proc(IMV_PROCEDURE_ITEMIDS)

#: Additional (extended) binaries in the paper's order.
ADDITIONAL_BINARY_ORDER = (
    "hyperkalemia",
    "severe_hypokalemia",
    "severe_anemia",
    "hypoglycemia",
    "profound_hyponatremia",
    "severe_hypernatremia",
    "tachycardia_hr130",
    "severe_hypertension",
    "vasopressor_initiation",
    "hypotension",
    "crrt_initiation",
    "hemodialysis_initiation",
)


# ------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class OutcomeDef:
    """One outcome column: what it means, how it is probed, and which family it is reported in."""

    name: str
    task_type: TaskType
    family: FamilySuffix | None  # None: computed but not in any probe family (icu_length_of_stay)
    threshold: str | None
    source_codes: tuple[str, ...]
    description: str
    has_24h_flag: bool = False
    null_when_unmeasured: bool = False

    @property
    def flag_column(self) -> str | None:
        """The first-24h flag column whose True rows are excluded from evaluation, if any."""
        return f"{self.name}_24h" if self.has_24h_flag else None


def _measure_codes(measure: str) -> tuple[str, ...]:
    m = MEASURES[measure]
    return tuple(f"{m.domain}//{i}//*" for i in m.itemids)


def _plaus(measures: list[str]) -> str:
    parts = [f"{m} in [{MEASURES[m].plausible[0]:g}, {MEASURES[m].plausible[1]:g}]"  # type: ignore[index]
             for m in measures if MEASURES[m].plausible is not None]
    return f" Implausible values dropped ({'; '.join(parts)})." if parts else ""


def _build_registry() -> dict[str, OutcomeDef]:
    after = "strictly after admission + 24 h"
    defs: list[OutcomeDef] = [
        OutcomeDef(
            "length_of_stay", "regression", "length_of_stay", None,
            ("HOSPITAL_ADMISSION//*", "HOSPITAL_DISCHARGE//*"),
            "Hospital length of stay in hours: discharge time minus admission time.",
        ),
        OutcomeDef(
            "icu_length_of_stay", "regression", None, None, ("ICU_ADMISSION//*", "ICU_DISCHARGE//*"),
            "Total ICU hours: union of ICU segments ICU_ADMISSION..ICU_DISCHARGE (not the envelope); an "
            "open segment ends at hospital discharge; 0 without ICU stay.",
        ),
        OutcomeDef(
            "same_admission_death", "classification", "primary_binary", None,
            ("HOSPITAL_DISCHARGE//*", "MEDS_DEATH"),
            "Died during the admission: discharge location contains died/expired/dead/death, or MEDS_DEATH "
            "falls within [admission, discharge].",
        ),
        OutcomeDef(
            "long_length_of_stay", "classification", "primary_binary", f"LOS > {LONG_LOS_HOURS:g} h (7 d)",
            ("HOSPITAL_ADMISSION//*", "HOSPITAL_DISCHARGE//*"), "Hospital stay longer than 7 days.",
        ),
        OutcomeDef(
            "icu_admission", "classification", "primary_binary", None, ("ICU_ADMISSION//*",),
            "Any ICU admission linked to the hospitalization (Exp1-2 ICU endpoint).", has_24h_flag=True,
        ),
        OutcomeDef(
            "imv_event", "classification", "primary_binary", None, IMV_CODES,
            "Any invasive mechanical ventilation procedure (procedureevents 224385 invasive ventilation, "
            "225792 intubation) during the admission.",
            has_24h_flag=True,
        ),
        OutcomeDef(
            "prolonged_icu_stay", "classification", "primary_binary", f"ICU LOS > {PROLONGED_ICU_HOURS:g} h",
            ("ICU_ADMISSION//*", "ICU_DISCHARGE//*"),
            "Had an ICU stay and total ICU hours above 48 (Exp3 ICU endpoint, replaces icu_admission).",
        ),
    ]
    for name, (measure, agg) in EXTENDED_REGRESSIONS.items():
        defs.append(
            OutcomeDef(
                name, "regression", "extended_regression", None, _measure_codes(measure),
                f"{'Maximum' if agg == 'max' else 'Minimum'} {measure.replace('_', ' ')} "
                f"({MEASURES[measure].unit}) over values {after}; null without such a value.{_plaus([measure])}",
            )
        )
    event_text = {
        "vasopressor_initiation": "Start of a vasopressor/inotrope infusion (norepinephrine, epinephrine, "
        "vasopressin, phenylephrine, dopamine, dobutamine)",
        "crrt_initiation": "CRRT procedure (225802) or CRRT chart event (227290)",
        "hemodialysis_initiation": "Hemodialysis procedure (225441) or hemodialysis chart event (226499)",
    }
    for name in ADDITIONAL_BINARY_ORDER:
        if name in MEASUREMENT_BINARIES:
            conds = MEASUREMENT_BINARIES[name]
            measures = sorted({c.measure for c in conds})
            codes = tuple(code for m in measures for code in _measure_codes(m))
            thr = " or ".join(c.text() for c in conds)
            defs.append(
                OutcomeDef(
                    name, "classification", "additional_binary", thr, codes,
                    f"{thr} over values {after}; null when {' and '.join(measures)} "
                    f"{'was' if len(measures) == 1 else 'were'} not measured after 24 h.{_plaus(measures)}",
                    has_24h_flag=True, null_when_unmeasured=True,
                )
            )
        else:
            defs.append(
                OutcomeDef(
                    name, "classification", "additional_binary", None,
                    tuple(c + "*" if c.endswith("//") else c for c in EVENT_BINARIES[name]),
                    f"{event_text[name]} {after}; False (0) when absent.", has_24h_flag=True,
                )
            )
    return {d.name: d for d in defs}


OUTCOMES: dict[str, OutcomeDef] = _build_registry()

BASE_COLUMNS = (
    "length_of_stay",
    "icu_length_of_stay",
    "same_admission_death",
    "long_length_of_stay",
    "icu_admission",
    "icu_admission_24h",
    "imv_event",
    "imv_event_24h",
    "prolonged_icu_stay",
)
KEY_COLUMNS = ("hadm_id", "subject_id", "split", "admission_time", "discharge_time")


def extended_columns() -> tuple[str, ...]:
    """Extended outcome columns in table order: 12 regressions, then each binary followed by its 24 h flag."""
    cols = list(EXTENDED_REGRESSIONS)
    for name in ADDITIONAL_BINARY_ORDER:
        cols += [name, f"{name}_24h"]
    return tuple(cols)


def output_columns() -> tuple[str, ...]:
    """Every column of the outcomes table, in order."""
    return KEY_COLUMNS + BASE_COLUMNS + extended_columns()


def families_for(experiment: str, cohort: Cohort | None = None) -> dict[str, str]:
    """Outcome -> family name (``<experiment>_<suffix>``) for one experiment: 16 binaries + 13 regressions.

    The ICU cohort (Exp3) reports ``prolonged_icu_stay`` instead of ``icu_admission``. ``cohort=None``
    takes the experiment's cohort from ``resources/experiments.yaml``.
    """
    if cohort is None:
        from irbench_assets.experiments import load_experiments

        exps = load_experiments()
        if experiment not in exps:
            raise ValueError(f"unknown experiment {experiment!r}; known: {sorted(exps)}")
        cohorts = {h.cohort for h in exps[experiment].handles.values()}
        if len(cohorts) != 1:
            raise ValueError(f"experiment {experiment!r} mixes cohorts {sorted(cohorts)}; pass cohort=")
        cohort = cohorts.pop()  # type: ignore[assignment]
    if cohort not in ("all", "icu"):
        raise ValueError(f"cohort must be 'all' or 'icu', got {cohort!r}")
    icu_endpoint = "prolonged_icu_stay" if cohort == "icu" else "icu_admission"
    out: dict[str, str] = {}
    for name in ("same_admission_death", "long_length_of_stay", icu_endpoint, "imv_event"):
        out[name] = f"{experiment}_primary_binary"
    for name in ADDITIONAL_BINARY_ORDER:
        out[name] = f"{experiment}_additional_binary"
    out["length_of_stay"] = f"{experiment}_length_of_stay"
    for name in EXTENDED_REGRESSIONS:
        out[name] = f"{experiment}_extended_regression"
    return out


def eligibility_text(d: OutcomeDef) -> str:
    """The evaluation-eligibility rule of one outcome, in words (docs and appendix tables)."""
    if d.task_type == "regression":
        return "target non-null"
    if d.has_24h_flag:
        return f"label non-null and {d.name}_24h is False"
    return "all admissions (label never null)"


def data_dictionary() -> list[dict[str, str]]:
    """One row per registered outcome: name, type, family, threshold, source codes, eligibility, definition."""
    return [
        {
            "name": d.name,
            "task_type": d.task_type,
            "family": d.family or "(none)",
            "threshold": d.threshold or "",
            "source_codes": ", ".join(d.source_codes),
            "eligibility": eligibility_text(d),
            "definition": d.description,
        }
        for d in OUTCOMES.values()
    ]
