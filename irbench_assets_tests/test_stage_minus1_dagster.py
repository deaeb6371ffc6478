"""End to end through Dagster's real in-process executor: synthetic MIMIC-IV → MEDS, with its checks."""

from __future__ import annotations

import gzip
from pathlib import Path

import dagster as dg
import pytest

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.definitions import defs
from irbench_assets.settings import get_settings
from irbench_assets.storage import meds_root

STAGE = ["mimic_source", "meds_dataset"]


@pytest.fixture()
def small_resources(tiny_resources) -> Path:
    """A copy of resources/ whose demo profile generates only 300 admissions."""
    return tiny_resources({"synthetic": {"admissions": 300}, "meds": {"subjects_per_shard": 80}})


def _materialize(instance: dg.DagsterInstance, settings: IrbenchSettings, raise_on_error: bool = True):
    return dg.materialize(
        list(defs.assets) + list(defs.asset_checks),
        selection=STAGE,
        instance=instance,
        resources={**defs.resources, "settings": settings},
        raise_on_error=raise_on_error,
    )


def test_stage_minus1_materializes_with_passing_checks(small_resources: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = IrbenchSettings(home=str(home), profile="demo")
    with dg.instance_for_test() as instance:
        result = _materialize(instance, settings)
        assert result.success
        mats = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
        assert set(mats) == set(STAGE)
        evals = result.get_asset_check_evaluations()
        assert {e.check_name for e in evals} == {
            "meds_schema_valid", "splits_disjoint_by_subject", "no_billing_codes", "row_reconciliation"}
        assert all(e.passed for e in evals)
        md = mats["meds_dataset"].materialization.metadata
        assert md["n_events"].value > 10_000
        root = meds_root(get_settings(str(home), "demo"))
        assert (root / "metadata" / "codes.parquet").exists()

        # Corrupt the source: the rerun fails with a message naming file/column/line and the previous
        # MEDS dataset stays byte-identical.
        before = {p: p.read_bytes() for p in root.rglob("*.parquet")}
        lab = home / "mimic" / "hosp" / "labevents.csv.gz"
        lines = gzip.decompress(lab.read_bytes()).decode().splitlines(keepends=True)
        lines[5] = lines[5].replace(lines[5].split(",")[6], "not-a-time", 1)
        lab.write_bytes(gzip.compress("".join(lines).encode()))
        failed = dg.materialize(
            list(defs.assets) + list(defs.asset_checks), selection=["meds_dataset"], instance=instance,
            resources={**defs.resources, "settings": settings}, raise_on_error=False,
        )
        assert not failed.success
        failures = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
        err, msg = failures[0].event_specific_data.error, ""
        while err is not None:  # Dagster wraps the domain error; read the whole cause chain
            msg += err.message
            err = err.cause
        assert "labevents.csv.gz" in msg and "column 'charttime'" in msg and "line 6" in msg
        assert {p: p.read_bytes() for p in root.rglob("*.parquet")} == before
