"""Column names and dtypes of the MIMIC-IV 3.1 tables that irbench reads or generates.

One source of truth for the synthetic generator (which writes exactly these columns in this order)
and the readers (which validate a real or synthetic download against them). Dtypes are the ones of
the PhysioNet release: ``int`` (64-bit), ``float``, ``str``, ``datetime`` (``YYYY-MM-DD HH:MM:SS``)
and ``date`` (``YYYY-MM-DD``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dtype = Literal["int", "float", "str", "datetime", "date"]


@dataclass(frozen=True)
class TableSchema:
    """A MIMIC-IV table: its path below the MIMIC root, columns in file order, and the ones we need."""

    module: Literal["hosp", "icu"]
    name: str
    columns: dict[str, Dtype]
    required: tuple[str, ...]
    billing: bool = False

    @property
    def relpath(self) -> str:
        return f"{self.module}/{self.name}.csv.gz"


def _t(module: str, name: str, cols: str, required: str, billing: bool = False) -> TableSchema:
    columns: dict[str, Dtype] = {}
    for item in cols.split():
        col, dtype = item.split(":")
        columns[col] = dtype  # type: ignore[assignment]
    req = tuple(required.split()) if required else tuple(columns)
    return TableSchema(module, name, columns, req, billing)  # type: ignore[arg-type]


TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in [
        _t(
            "hosp", "patients",
            "subject_id:int gender:str anchor_age:int anchor_year:int anchor_year_group:str dod:date",
            "subject_id gender anchor_age anchor_year dod",
        ),
        _t(
            "hosp", "admissions",
            "subject_id:int hadm_id:int admittime:datetime dischtime:datetime deathtime:datetime "
            "admission_type:str admit_provider_id:str admission_location:str discharge_location:str "
            "insurance:str language:str marital_status:str race:str edregtime:datetime edouttime:datetime "
            "hospital_expire_flag:int",
            "subject_id hadm_id admittime dischtime deathtime admission_type admission_location "
            "discharge_location insurance language marital_status race hospital_expire_flag",
        ),
        _t(
            "hosp", "labevents",
            "labevent_id:int subject_id:int hadm_id:int specimen_id:int itemid:int order_provider_id:str "
            "charttime:datetime storetime:datetime value:str valuenum:float valueuom:str "
            "ref_range_lower:float ref_range_upper:float flag:str priority:str comments:str",
            "subject_id hadm_id itemid charttime storetime value valuenum valueuom ref_range_lower ref_range_upper",
        ),
        _t("hosp", "d_labitems", "itemid:int label:str fluid:str category:str", "itemid label"),
        _t(
            "hosp", "emar",
            "subject_id:int hadm_id:int emar_id:str emar_seq:int poe_id:str pharmacy_id:int "
            "enter_provider_id:str charttime:datetime medication:str event_txt:str scheduletime:datetime "
            "storetime:datetime",
            "subject_id hadm_id charttime medication event_txt storetime",
        ),
        _t(
            "hosp", "transfers",
            "subject_id:int hadm_id:int transfer_id:int eventtype:str careunit:str intime:datetime outtime:datetime",
            "subject_id hadm_id eventtype careunit intime",
        ),
        # Billing tables: generated so that their exclusion is testable; Stage -1 never opens them.
        _t("hosp", "diagnoses_icd", "subject_id:int hadm_id:int seq_num:int icd_code:str icd_version:int", "", True),
        _t(
            "hosp", "procedures_icd",
            "subject_id:int hadm_id:int seq_num:int chartdate:date icd_code:str icd_version:int", "", True,
        ),
        _t(
            "hosp", "hcpcsevents",
            "subject_id:int hadm_id:int chartdate:date hcpcs_cd:str seq_num:int short_description:str", "", True,
        ),
        _t(
            "hosp", "drgcodes",
            "subject_id:int hadm_id:int drg_type:str drg_code:str description:str drg_severity:int "
            "drg_mortality:int", "", True,
        ),
        _t(
            "icu", "icustays",
            "subject_id:int hadm_id:int stay_id:int first_careunit:str last_careunit:str intime:datetime "
            "outtime:datetime los:float",
            "subject_id hadm_id stay_id first_careunit last_careunit intime outtime",
        ),
        _t(
            "icu", "chartevents",
            "subject_id:int hadm_id:int stay_id:int caregiver_id:int charttime:datetime storetime:datetime "
            "itemid:int value:str valuenum:float valueuom:str warning:int",
            "subject_id hadm_id itemid charttime storetime value valuenum valueuom",
        ),
        _t(
            "icu", "d_items",
            "itemid:int label:str abbreviation:str linksto:str category:str unitname:str param_type:str "
            "lownormalvalue:float highnormalvalue:float",
            "itemid label linksto",
        ),
        _t(
            "icu", "procedureevents",
            "subject_id:int hadm_id:int stay_id:int caregiver_id:int starttime:datetime endtime:datetime "
            "storetime:datetime itemid:int value:float valueuom:str location:str locationcategory:str "
            "orderid:int linkorderid:int ordercategoryname:str ordercategorydescription:str patientweight:float "
            "isopenbag:int continueinnextdept:int statusdescription:str originalamount:float originalrate:float",
            "subject_id hadm_id itemid starttime endtime storetime",
        ),
        _t(
            "icu", "inputevents",
            "subject_id:int hadm_id:int stay_id:int caregiver_id:int starttime:datetime endtime:datetime "
            "storetime:datetime itemid:int amount:float amountuom:str rate:float rateuom:str orderid:int "
            "linkorderid:int ordercategoryname:str secondaryordercategoryname:str "
            "ordercomponenttypedescription:str ordercategorydescription:str patientweight:float "
            "totalamount:float totalamountuom:str isopenbag:int continueinnextdept:int statusdescription:str "
            "originalamount:float originalrate:float",
            "subject_id hadm_id itemid starttime endtime amount rate",
        ),
    ]
}

BILLING_TABLES = tuple(name for name, t in TABLES.items() if t.billing)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"
