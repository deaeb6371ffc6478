"""Per-arm partitions run side by side in worker processes (``jobs`` > 1) against one persistent Dagster
instance: the same bytes as a sequential run, every run recorded, and a failing partition names itself."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import dagster as dg
import pytest

from irbench_assets.compute.orchestrate import materialize_all, orchestrate_jobs, orchestrate_torch_threads
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.definitions import defs
from irbench_assets.settings import REPO_ROOT, Settings, get_settings
from irbench_assets.storage import events_dir, tokenized_dir

SMALL = {"synthetic": {"admissions": 200}, "tokenize": {"max_len": 256}}
UPSTREAM = ["mimic_source", "meds_dataset", "exp3_arms", "outcomes", "tokenizer_events"]
EXP3 = ["meds", "mapped", "randomized", "freqmatched"]


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _instance(dh: Path) -> dg.DagsterInstance:
    dh.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", dh / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(dh))


def _run(home: Path, instance: dg.DagsterInstance, jobs: int, keys: list[str]) -> list[dict]:
    resources = {"settings": IrbenchSettings(home=str(home), profile="demo")}
    selection = [dg.AssetKey(k) for k in keys]
    return materialize_all(defs, instance, selection=selection, experiments={"exp3"}, resources=resources,
                           jobs=jobs)


@pytest.mark.slow
def test_parallel_partitions_match_sequential_and_failures_name_the_partition(tiny_resources, tmp_path: Path) -> None:
    tiny_resources(SMALL)
    seq_home, par_home = tmp_path / "seq", tmp_path / "par"
    with _instance(tmp_path / "dh_seq") as seq, _instance(tmp_path / "dh_par") as par:
        _run(seq_home, seq, 1, [*UPSTREAM, "tokenized"])
        _run(par_home, par, 1, UPSTREAM)
        steps = _run(par_home, par, 2, ["tokenized"])
        arm_steps = [st for st in steps if st["segment"] == "tokenized"]
        assert sorted(st["partition"] for st in arm_steps) == [f"exp3.{h}" for h in sorted(EXP3)]
        assert {st["status"] for st in arm_steps} == {"ok"}
        assert len({st["run_id"] for st in arm_steps}) == 4, "one Dagster run per partition"
        # the workers recorded their runs and materializations in the parent's instance
        assert par.get_materialized_partitions(dg.AssetKey("tokenized")) == {f"exp3.{h}" for h in EXP3}
        for st in arm_steps:
            assert par.get_run_by_id(st["run_id"]).is_success
        # two partitions overlapped in time (they ran side by side)
        spans = sorted((st["end"] - st["seconds"], st["end"]) for st in arm_steps)
        assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))
        # byte-identical to the sequential run
        s_seq, s_par = get_settings(str(seq_home), "demo"), get_settings(str(par_home), "demo")
        for h in EXP3:
            assert _tree_digest(tokenized_dir(s_par, "exp3", h)) == _tree_digest(tokenized_dir(s_seq, "exp3", h))

        # a partition whose input is broken fails the whole call with its name; the others are unaffected
        shutil.rmtree(events_dir(s_par, "exp3", "randomized") / "train")
        before = _tree_digest(tokenized_dir(s_par, "exp3", "randomized"))
        resources = {"settings": IrbenchSettings(home=str(par_home), profile="demo")}
        with pytest.raises(RuntimeError, match=r"tokenized \[exp3\.randomized\]"):
            materialize_all(defs, par, selection=[dg.AssetKey("tokenized")], experiments={"exp3"},
                            resources=resources, jobs=2, force=True)
        assert _tree_digest(tokenized_dir(s_par, "exp3", "randomized")) == before, "previous output intact"


def test_jobs_setting_is_validated(tmp_path: Path) -> None:
    def jobs(value: object) -> int:
        return orchestrate_jobs(Settings(tmp_path, "demo", None, {"orchestrate": {"jobs": value}}))

    assert jobs(3) == 3
    assert 1 <= jobs("auto") <= 4
    assert orchestrate_jobs(get_settings(str(tmp_path), "paper")) == 1
    with pytest.raises(ValueError, match=r"orchestrate\.jobs must be >= 1"):
        jobs(0)
    with pytest.raises(ValueError, match="integer or 'auto', got 'many'"):
        jobs("many")


def test_torch_threads_setting(tmp_path: Path) -> None:
    def threads(value: object) -> int | None:
        return orchestrate_torch_threads(Settings(tmp_path, "demo", None, {"orchestrate": {"torch_threads": value}}))

    assert threads(1) == 1
    assert threads(None) is None
    assert orchestrate_torch_threads(get_settings(str(tmp_path), "demo")) == 1
    with pytest.raises(ValueError, match="torch_threads must be an integer >= 1, got 0"):
        threads(0)
