"""MIMIC-IV 3.1 item catalog: real itemids, labels, units and reference ranges of the items irbench uses.

Plain frozen dataclasses and tuples, importable by any stage (outcomes, tokenizer anchoring, QC) without
pulling in the synthetic generator. Itemids, labels, fluids/categories and units are the ones of the
PhysioNet release (``hosp/d_labitems``, ``icu/d_items``); reference ranges are the usual hospital ranges
that MIMIC-IV reports in ``labevents.ref_range_lower/upper``. The synthetic generator
(:mod:`irbench_assets.mimic.synth`) writes ``d_labitems`` / ``d_items`` from exactly these records.
"""

from __future__ import annotations

from dataclasses import dataclass


# --------------------------------------------------------------------------------------------- labs
@dataclass(frozen=True)
class LabItem:
    """A ``hosp/d_labitems`` row plus what labevents reports with it (unit, reference range, rounding)."""

    itemid: int
    label: str
    fluid: str
    category: str
    unit: str | None
    ref_low: float | None
    ref_high: float | None
    decimals: int
    ref_low_female: float | None = None  # sex-specific ranges (hemoglobin, creatinine, hematocrit)
    ref_high_female: float | None = None


LAB_ITEMS: tuple[LabItem, ...] = (
    LabItem(50971, "Potassium", "Blood", "Chemistry", "mEq/L", 3.5, 5.1, 1),
    LabItem(50822, "Potassium, Whole Blood", "Blood", "Blood Gas", "mEq/L", 3.5, 5.3, 1),
    LabItem(50983, "Sodium", "Blood", "Chemistry", "mEq/L", 133.0, 145.0, 0),
    LabItem(50824, "Sodium, Whole Blood", "Blood", "Blood Gas", "mEq/L", 133.0, 145.0, 0),
    LabItem(50902, "Chloride", "Blood", "Chemistry", "mEq/L", 96.0, 108.0, 0),
    LabItem(50882, "Bicarbonate", "Blood", "Chemistry", "mEq/L", 22.0, 32.0, 0),
    LabItem(50868, "Anion Gap", "Blood", "Chemistry", "mEq/L", 8.0, 20.0, 0),
    LabItem(51006, "Urea Nitrogen", "Blood", "Chemistry", "mg/dL", 6.0, 20.0, 0),
    LabItem(50912, "Creatinine", "Blood", "Chemistry", "mg/dL", 0.5, 1.2, 1, 0.4, 1.1),
    LabItem(50931, "Glucose", "Blood", "Chemistry", "mg/dL", 70.0, 100.0, 0),
    LabItem(50809, "Glucose", "Blood", "Blood Gas", "mg/dL", 70.0, 105.0, 0),
    LabItem(50960, "Magnesium", "Blood", "Chemistry", "mg/dL", 1.6, 2.6, 1),
    LabItem(50970, "Phosphate", "Blood", "Chemistry", "mg/dL", 2.7, 4.5, 1),
    LabItem(50893, "Calcium, Total", "Blood", "Chemistry", "mg/dL", 8.4, 10.3, 1),
    LabItem(51222, "Hemoglobin", "Blood", "Hematology", "g/dL", 13.7, 17.5, 1, 11.2, 15.7),
    LabItem(50811, "Hemoglobin", "Blood", "Blood Gas", "g/dL", 12.0, 16.0, 1),
    LabItem(51221, "Hematocrit", "Blood", "Hematology", "%", 40.0, 52.0, 1, 34.0, 45.0),
    LabItem(51301, "White Blood Cells", "Blood", "Hematology", "K/uL", 4.0, 11.0, 1),
    LabItem(51265, "Platelet Count", "Blood", "Hematology", "K/uL", 150.0, 440.0, 0),
    LabItem(51237, "INR(PT)", "Blood", "Hematology", None, 0.9, 1.1, 1),
    LabItem(51274, "PT", "Blood", "Hematology", "sec", 9.4, 12.5, 1),
    LabItem(50813, "Lactate", "Blood", "Blood Gas", "mmol/L", 0.5, 2.0, 1),
    LabItem(51003, "Troponin T", "Blood", "Chemistry", "ng/mL", 0.0, 0.01, 2),
    LabItem(51002, "Troponin I", "Blood", "Chemistry", "ng/mL", 0.0, 0.04, 2),
    LabItem(50963, "NTproBNP", "Blood", "Chemistry", "pg/mL", 0.0, 353.0, 0),
)
LAB_BY_ID: dict[int, LabItem] = {lab.itemid: lab for lab in LAB_ITEMS}

# Itemids per analyte as the outcome definitions group them (facts §2; BNP = NT-proBNP in MIMIC-IV).
LAB_GROUPS: dict[str, tuple[int, ...]] = {
    "potassium": (50971, 50822),
    "sodium": (50983, 50824),
    "creatinine": (50912,),
    "hemoglobin": (51222, 50811),
    "glucose": (50931, 50809),
    "troponin": (51003, 51002),
    "bnp": (50963,),
    "lactate": (50813,),
}


# ------------------------------------------------------------------------------------- icu d_items
@dataclass(frozen=True)
class ChartItem:
    """An ``icu/d_items`` row linked to chartevents, with the unit charted and its normal range."""

    itemid: int
    label: str
    abbreviation: str
    category: str
    unitname: str | None
    param_type: str
    lownormalvalue: float | None
    highnormalvalue: float | None
    decimals: int = 0


CHART_ITEMS: tuple[ChartItem, ...] = (
    ChartItem(220045, "Heart Rate", "HR", "Routine Vital Signs", "bpm", "Numeric", 60, 100),
    ChartItem(220050, "Arterial Blood Pressure systolic", "ABPs", "Routine Vital Signs", "mmHg", "Numeric", 90, 140),
    ChartItem(220051, "Arterial Blood Pressure diastolic", "ABPd", "Routine Vital Signs", "mmHg", "Numeric", 60, 90),
    ChartItem(220052, "Arterial Blood Pressure mean", "ABPm", "Routine Vital Signs", "mmHg", "Numeric", 65, 110),
    ChartItem(220179, "Non Invasive Blood Pressure systolic", "NBPs", "Routine Vital Signs", "mmHg", "Numeric", 90, 140),
    ChartItem(220180, "Non Invasive Blood Pressure diastolic", "NBPd", "Routine Vital Signs", "mmHg", "Numeric", 60, 90),
    ChartItem(220181, "Non Invasive Blood Pressure mean", "NBPm", "Routine Vital Signs", "mmHg", "Numeric", 65, 110),
    ChartItem(220210, "Respiratory Rate", "RR", "Respiratory", "insp/min", "Numeric", 12, 20),
    ChartItem(220277, "O2 saturation pulseoxymetry", "SpO2", "Respiratory", "%", "Numeric", 92, 100),
    ChartItem(223761, "Temperature Fahrenheit", "Temperature F", "Routine Vital Signs", "°F", "Numeric", 97.0, 99.5, 1),
    ChartItem(226512, "Admission Weight (Kg)", "Admission Weight (Kg)", "General", "kg", "Numeric", None, None, 1),
    ChartItem(223835, "Inspired O2 Fraction", "FiO2", "Respiratory", None, "Numeric", None, None),
    ChartItem(223849, "Ventilator Mode", "Ventilator Mode", "Respiratory", None, "Text", None, None),
    ChartItem(220739, "GCS - Eye Opening", "GCS - Eye Opening", "Neurological", None, "Text", None, None),
    ChartItem(223900, "GCS - Verbal Response", "GCS - Verbal Response", "Neurological", None, "Text", None, None),
    ChartItem(223901, "GCS - Motor Response", "GCS - Motor Response", "Neurological", None, "Text", None, None),
    ChartItem(227290, "CRRT mode", "CRRT mode", "Dialysis", None, "Text", None, None),
    ChartItem(226499, "Hemodialysis Output", "Hemodialysis Output", "Dialysis", "mL", "Numeric", None, None),
)
CHART_BY_ID: dict[int, ChartItem] = {c.itemid: c for c in CHART_ITEMS}

VITAL_GROUPS: dict[str, tuple[int, ...]] = {
    "heart_rate": (220045,),
    "sbp": (220050, 220179),
    "dbp": (220051, 220180),
    "map": (220052, 220181),
    "resp_rate": (220210,),
    "spo2": (220277,),
    "temperature_f": (223761,),
}


@dataclass(frozen=True)
class ProcedureItem:
    """An ``icu/d_items`` row linked to procedureevents; ``duration`` items carry value = minutes."""

    itemid: int
    label: str
    category: str
    ordercategoryname: str
    duration: bool

    @property
    def unitname(self) -> str:
        """d_items.unitname / procedureevents.valueuom: minutes for durations, 'None' otherwise."""
        return "min" if self.duration else "None"


PROCEDURE_ITEMS: tuple[ProcedureItem, ...] = (
    ProcedureItem(224385, "Intubation", "Intubation/Extubation", "Procedures", False),
    ProcedureItem(225792, "Invasive Ventilation", "Ventilation", "Ventilation", True),
    ProcedureItem(227194, "Extubation", "Intubation/Extubation", "Procedures", False),
    ProcedureItem(225794, "Non-invasive Ventilation", "Ventilation", "Ventilation", True),
    ProcedureItem(225802, "Dialysis - CRRT", "Dialysis", "Dialysis", True),
    ProcedureItem(225441, "Hemodialysis", "Dialysis", "Dialysis", True),
    ProcedureItem(225752, "Arterial Line", "Access Lines - Invasive", "Invasive Lines", True),
    ProcedureItem(224263, "Multi Lumen", "Access Lines - Invasive", "Invasive Lines", True),
    ProcedureItem(224275, "20 Gauge", "Access Lines - Peripheral", "Peripheral Lines", True),
    ProcedureItem(225459, "Chest X-Ray", "Imaging", "Imaging", False),
    ProcedureItem(225401, "Blood Cultured", "Procedures", "Procedures", False),
)
PROCEDURE_BY_ID: dict[int, ProcedureItem] = {p.itemid: p for p in PROCEDURE_ITEMS}


@dataclass(frozen=True)
class InputItem:
    """An ``icu/d_items`` row linked to inputevents, with the units and order category MIMIC charts."""

    itemid: int
    label: str
    abbreviation: str
    category: str
    amountuom: str
    rateuom: str | None
    ordercategoryname: str
    ordercategorydescription: str
    secondaryordercategoryname: str | None = None
    weight_based: bool = False  # rate is per kg (mcg/kg/min)


INPUT_ITEMS: tuple[InputItem, ...] = (
    InputItem(221906, "Norepinephrine", "Norepinephrine", "Medications", "mg", "mcg/kg/min", "01-Drips", "Continuous Med", "Additive (Crystalloid)", True),
    InputItem(221289, "Epinephrine", "Epinephrine", "Medications", "mg", "mcg/kg/min", "01-Drips", "Continuous Med", "Additive (Crystalloid)", True),
    InputItem(222315, "Vasopressin", "Vasopressin", "Medications", "units", "units/min", "01-Drips", "Continuous Med", "Additive (Crystalloid)"),
    InputItem(221749, "Phenylephrine", "Phenylephrine", "Medications", "mg", "mcg/kg/min", "01-Drips", "Continuous Med", "Additive (Crystalloid)", True),
    InputItem(221662, "Dopamine", "Dopamine", "Medications", "mg", "mcg/kg/min", "01-Drips", "Continuous Med", "Additive (Crystalloid)", True),
    InputItem(221653, "Dobutamine", "Dobutamine", "Medications", "mg", "mcg/kg/min", "01-Drips", "Continuous Med", "Additive (Crystalloid)", True),
    InputItem(225158, "NaCl 0.9%", "NaCl 0.9%", "Fluids/Intake", "mL", "mL/hour", "03-IV Fluid Bolus", "Bolus"),
    InputItem(225828, "LR", "LR", "Fluids/Intake", "mL", "mL/hour", "02-Fluids (Crystalloids)", "Continuous IV"),
    InputItem(220949, "Dextrose 5%", "D5W", "Fluids/Intake", "mL", "mL/hour", "02-Fluids (Crystalloids)", "Continuous IV"),
    InputItem(222168, "Propofol", "Propofol", "Medications", "mg", "mcg/kg/min", "01-Drips", "Continuous Med", "Additive (Crystalloid)", True),
    InputItem(221744, "Fentanyl", "Fentanyl", "Medications", "mcg", "mcg/hour", "01-Drips", "Continuous Med", "Additive (Crystalloid)"),
    InputItem(223258, "Insulin - Regular", "Insulin - Regular", "Medications", "units", "units/hour", "01-Drips", "Continuous Med", "Additive (Crystalloid)"),
    InputItem(225152, "Heparin Sodium", "Heparin Sodium", "Medications", "units", "units/hour", "01-Drips", "Continuous Med", "Additive (Crystalloid)"),
    InputItem(225166, "Potassium Chloride", "KCL", "Medications", "mEq", "mEq/hour", "02-Fluids (Crystalloids)", "Continuous IV", "Additive (Crystalloid)"),
    InputItem(221456, "Calcium Gluconate", "Calcium Gluconate", "Medications", "grams", None, "05-Med Bolus", "Drug Push"),
)
INPUT_BY_ID: dict[int, InputItem] = {i.itemid: i for i in INPUT_ITEMS}

# Outcome-relevant itemid groups (facts §2).
VASOPRESSOR_ITEMIDS: tuple[int, ...] = (221906, 221289, 222315, 221749, 221662, 221653)
IMV_ITEMIDS: tuple[int, ...] = (224385, 225792)
CRRT_PROCEDURE_ITEMID = 225802
CRRT_CHART_ITEMID = 227290
HEMODIALYSIS_PROCEDURE_ITEMID = 225441
HEMODIALYSIS_CHART_ITEMID = 226499


# ------------------------------------------------------------------------------------------- emar
@dataclass(frozen=True)
class Medication:
    """An emar medication name (as MIMIC spells it) and how it is given: every ``interval_h`` or PRN."""

    name: str
    interval_h: int  # 0 = PRN (as needed)
    event_txt: str = "Administered"  # the usual event text ('Flushed' for flushes, 'Applied' for patches)


MEDICATIONS: tuple[Medication, ...] = (
    Medication("Heparin", 8),
    Medication("Pantoprazole", 24),
    Medication("Acetaminophen", 0),
    Medication("Sodium Chloride 0.9%  Flush", 8, "Flushed"),
    Medication("Docusate Sodium", 12),
    Medication("Senna", 12),
    Medication("Polyethylene Glycol", 24),
    Medication("Ondansetron", 0),
    Medication("Metoprolol Tartrate", 6),
    Medication("Furosemide", 12),
    Medication("Insulin", 6),
    Medication("Vancomycin", 12),
    Medication("Piperacillin-Tazobactam", 8),
    Medication("CefTRIAXone", 24),
    Medication("Atorvastatin", 24),
    Medication("Aspirin", 24),
    Medication("Lisinopril", 24),
    Medication("amLODIPine", 24),
    Medication("OxyCODONE (Immediate Release)", 0),
    Medication("HYDROmorphone (Dilaudid)", 0),
    Medication("Morphine Sulfate", 0),
    Medication("Lorazepam", 0),
    Medication("Haloperidol", 0),
    Medication("Albuterol 0.083% Neb Soln", 0),
    Medication("Ipratropium-Albuterol Neb", 6),
    Medication("PredniSONE", 24),
    Medication("sevelamer CARBONATE", 8),
    Medication("Warfarin", 24),
    Medication("Apixaban", 12),
    Medication("Gabapentin", 8),
    Medication("Levetiracetam", 12),
    Medication("Nicotine Patch", 24, "Applied"),
    Medication("Tamsulosin", 24),
    # given in reaction to a lab result (see synth: potassium, glucose, magnesium)
    Medication("Potassium Chloride", 0),
    Medication("Sodium Polystyrene Sulfonate", 0),
    Medication("Calcium Gluconate", 0),
    Medication("Dextrose 50%", 0),
    Medication("Magnesium Sulfate", 0),
)
MEDICATION_BY_NAME: dict[str, Medication] = {m.name: m for m in MEDICATIONS}
EMAR_EVENT_TXT: tuple[str, ...] = (
    "Administered", "Not Given", "Held", "Flushed", "Applied", "Delayed Administered", "Confirmed",
)


# ---------------------------------------------------------------------------------- demographics
# Categories as spelled in MIMIC-IV 3.1 admissions/patients, with approximate shares.
ANCHOR_YEAR_GROUPS: tuple[str, ...] = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022")
ADMISSION_TYPES: tuple[str, ...] = (
    "EW EMER.", "EU OBSERVATION", "OBSERVATION ADMIT", "URGENT", "SURGICAL SAME DAY ADMISSION",
    "DIRECT EMER.", "ELECTIVE", "DIRECT OBSERVATION", "AMBULATORY OBSERVATION",
)
ED_ADMISSION_LOCATIONS: tuple[tuple[str, float], ...] = (
    ("EMERGENCY ROOM", 0.86), ("WALK-IN/SELF REFERRAL", 0.04), ("TRANSFER FROM HOSPITAL", 0.06),
    ("TRANSFER FROM SKILLED NURSING FACILITY", 0.04),
)
OTHER_ADMISSION_LOCATIONS: tuple[tuple[str, float], ...] = (
    ("PHYSICIAN REFERRAL", 0.55), ("CLINIC REFERRAL", 0.14), ("TRANSFER FROM HOSPITAL", 0.12),
    ("PROCEDURE SITE", 0.08), ("PACU", 0.05), ("INTERNAL TRANSFER TO OR FROM PSYCH", 0.02),
    ("AMBULATORY SURGERY TRANSFER", 0.02), ("INFORMATION NOT AVAILABLE", 0.02),
)
DISCHARGE_LOCATIONS_ALIVE: tuple[tuple[str | None, float], ...] = (
    ("HOME", 0.42), ("HOME HEALTH CARE", 0.24), ("SKILLED NURSING FACILITY", 0.15), ("REHAB", 0.05),
    ("CHRONIC/LONG TERM ACUTE CARE", 0.03), ("ACUTE HOSPITAL", 0.02), ("HOSPICE", 0.02),
    ("AGAINST ADVICE", 0.01), ("PSYCH FACILITY", 0.01), ("OTHER FACILITY", 0.01), (None, 0.04),
)
INSURANCES: tuple[str, ...] = ("Medicare", "Medicaid", "Private", "Other", "No charge")
LANGUAGES: tuple[tuple[str | None, float], ...] = (
    ("English", 0.895), ("Spanish", 0.035), ("Chinese", 0.012), ("Russian", 0.011), ("Kabuverdianu", 0.007),
    ("Portuguese", 0.007), ("Haitian", 0.006), ("Vietnamese", 0.004), ("Other", 0.015), (None, 0.008),
)
MARITAL_STATUSES: tuple[tuple[str | None, float], ...] = (
    ("MARRIED", 0.42), ("SINGLE", 0.33), ("WIDOWED", 0.12), ("DIVORCED", 0.09), (None, 0.04),
)
RACES: tuple[tuple[str, float], ...] = (
    ("WHITE", 0.60), ("BLACK/AFRICAN AMERICAN", 0.14), ("HISPANIC/LATINO - PUERTO RICAN", 0.02),
    ("HISPANIC OR LATINO", 0.02), ("HISPANIC/LATINO - DOMINICAN", 0.01), ("ASIAN", 0.02),
    ("ASIAN - CHINESE", 0.02), ("WHITE - OTHER EUROPEAN", 0.02), ("WHITE - RUSSIAN", 0.01),
    ("BLACK/CAPE VERDEAN", 0.01), ("PORTUGUESE", 0.01), ("OTHER", 0.04), ("UNKNOWN", 0.05),
    ("UNABLE TO OBTAIN", 0.015), ("PATIENT DECLINED TO ANSWER", 0.015),
)

WARD_CAREUNITS: tuple[str, ...] = (
    "Medicine", "Med/Surg", "Medicine/Cardiology", "Surgery", "Cardiology", "Neurology",
    "Hematology/Oncology", "Transplant", "Vascular", "Med/Surg/Trauma", "Observation",
)
ICU_CAREUNITS: tuple[str, ...] = (
    "Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)",
    "Surgical Intensive Care Unit (SICU)", "Cardiac Vascular Intensive Care Unit (CVICU)",
    "Coronary Care Unit (CCU)", "Trauma SICU (TSICU)", "Neuro Surgical Intensive Care Unit (Neuro SICU)",
)
ED_CAREUNIT = "Emergency Department"


# ------------------------------------------------------------------------------------- billing
@dataclass(frozen=True)
class Condition:
    """A diagnosis with its ICD-9 and ICD-10 codes and the DRGs billed when it is the principal one."""

    key: str
    icd9: str
    icd10: str
    hcfa_drg: tuple[str, str] | None = None  # (code, description)
    apr_drg: tuple[str, str] | None = None


CONDITIONS: tuple[Condition, ...] = (
    Condition("sepsis", "0389", "A419", ("871", "SEPTICEMIA OR SEVERE SEPSIS W/O MV >96 HOURS W MCC"),
              ("720", "SEPTICEMIA & DISSEMINATED INFECTIONS")),
    Condition("septic_shock", "78552", "R6521"),
    Condition("aki", "5849", "N179", ("682", "RENAL FAILURE W MCC"), ("460", "RENAL FAILURE")),
    Condition("ckd", "5859", "N189"),
    Condition("esrd", "5856", "N186"),
    Condition("hyperkalemia", "2767", "E875"),
    Condition("hypokalemia", "2768", "E876"),
    Condition("hyponatremia", "2761", "E871",
              ("641", "MISC DISORDERS OF NUTRITION,METABOLISM,FLUIDS/ELECTROLYTES W/O MCC"),
              ("422", "HYPOVOLEMIA & RELATED ELECTROLYTE DISORDERS")),
    Condition("hypernatremia", "2760", "E870"),
    Condition("heart_failure", "4280", "I509", ("291", "HEART FAILURE AND SHOCK W MCC"), ("194", "HEART FAILURE")),
    Condition("ami", "41071", "I214", ("280", "ACUTE MYOCARDIAL INFARCTION, DISCHARGED ALIVE W MCC"),
              ("190", "ACUTE MYOCARDIAL INFARCTION")),
    Condition("resp_failure", "51881", "J9601", ("189", "PULMONARY EDEMA AND RESPIRATORY FAILURE"),
              ("133", "RESPIRATORY FAILURE")),
    Condition("pneumonia", "486", "J189", ("193", "SIMPLE PNEUMONIA AND PLEURISY W MCC"), ("139", "OTHER PNEUMONIA")),
    Condition("gi_bleed", "5789", "K922", ("377", "G.I. HEMORRHAGE W MCC"),
              ("253", "OTHER & UNSPECIFIED GASTROINTESTINAL HEMORRHAGE")),
    Condition("anemia", "2859", "D649"),
    Condition("diabetes", "25000", "E119", ("638", "DIABETES W CC"), ("420", "DIABETES")),
    Condition("hypoglycemia", "2512", "E162"),
    Condition("hypertension", "4019", "I10"),
    Condition("copd", "496", "J449"),
    Condition("afib", "42731", "I4891"),
    Condition("hyperlipidemia", "2724", "E785"),
    Condition("gerd", "53081", "K219"),
    Condition("depression", "311", "F329"),
    Condition("tobacco", "V1582", "Z87891"),
    Condition("cardiac_arrest", "4275", "I469"),
    Condition("dnr", "V4986", "Z66"),
    Condition("palliative", "V667", "Z515"),
    Condition("chest_pain", "78650", "R079", ("313", "CHEST PAIN"), ("203", "CHEST PAIN")),
    Condition("syncope", "7802", "R55", ("312", "SYNCOPE AND COLLAPSE"), ("204", "SYNCOPE & COLLAPSE")),
    Condition("osteoarthritis", "71536", "M170",
              ("470", "MAJOR HIP AND KNEE JOINT REPLACEMENT OR REATTACHMENT OF LOWER EXTREMITY W/O MCC"),
              ("302", "KNEE JOINT REPLACEMENT")),
)
CONDITION_BY_KEY: dict[str, Condition] = {c.key: c for c in CONDITIONS}
MV_LONG_DRG = (("207", "RESPIRATORY SYSTEM DIAGNOSIS W VENTILATOR SUPPORT >96 HOURS"),
               ("130", "RESPIRATORY SYSTEM DIAGNOSIS W VENTILATOR SUPPORT >96 HOURS"))


@dataclass(frozen=True)
class IcdProcedure:
    """An ICD procedure (both coding versions) billed for an ICU intervention."""

    key: str
    icd9: str
    icd10: str


ICD_PROCEDURES: tuple[IcdProcedure, ...] = (
    IcdProcedure("imv_short", "9671", "5A1945Z"),  # mechanical ventilation 24-96 h
    IcdProcedure("imv_long", "9672", "5A1955Z"),  # > 96 h
    IcdProcedure("intubation", "9604", "0BH17EZ"),
    IcdProcedure("crrt", "3995", "5A1D90Z"),
    IcdProcedure("hemodialysis", "3995", "5A1D70Z"),
    IcdProcedure("central_line", "3893", "02HV33Z"),
    IcdProcedure("transfusion", "9904", "30233N1"),
    IcdProcedure("knee_replacement", "8154", "0SRD0JZ"),
)
ICD_PROCEDURE_BY_KEY: dict[str, IcdProcedure] = {p.key: p for p in ICD_PROCEDURES}

HCPCS: dict[str, tuple[str, str]] = {  # key -> (hcpcs_cd, short_description)
    "initial": ("99223", "Hospital inpatient services, initial"),
    "subsequent": ("99232", "Hospital inpatient services, subsequent"),
    "critical": ("99291", "Critical care services, first hour"),
    "central_line": ("36556", "Insert non-tunnel cv cath"),
    "intubation": ("31500", "Insert emergency airway"),
    "hemodialysis": ("90935", "Hemodialysis one evaluation"),
    "crrt": ("90945", "Dialysis one evaluation"),
    "discharge": ("99239", "Hospital discharge day"),
}
