"""The Dagster UI on the repo's workspace.yaml: a real dagster-webserver on a free loopback port, queried over
its GraphQL API (every stage's assets, the experiment × handle partitions, the asset checks, and the
materialization status after a run on the same instance), and a headless Chromium screenshot of the
global asset lineage page."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from irbench_assets.compute.orchestrate import materialize_all
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.definitions import defs
from irbench_assets.experiments import all_arm_keys, load_experiments
from irbench_assets.settings import REPO_ROOT

WEBSERVER = Path(REPO_ROOT / ".venv" / "bin" / "dagster-webserver")
# Another workspace file can be given for a local check; the default is the one `make ui` serves.
WORKSPACE = Path(os.environ.get("IRBENCH_UI_WORKSPACE", REPO_ROOT / "workspace.yaml"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARM_ASSETS = {"tokenized", "checkpoint", "features", "predictions", "handle_metrics"}
EXPERIMENT_ASSETS = {"outcomes", "tokenizer_events", "family_statistics"}
GLOBAL_ASSETS = {"mimic_source", "meds_dataset", "exp3_arms", "paper_statistics", "paper_tables", "paper_figures",
                 "attention_washout", "clinical_boundary_probe", "embedding_geometry", "potassium_geometry_grid",
                 "sparsity_distance", "xval_zero_audit"}
CHECKS = {
    "meds_dataset": {"meds_schema_valid", "splits_disjoint_by_subject", "no_billing_codes", "row_reconciliation"},
    "exp3_arms": {"exp3_arms_row_fixed"},
    "outcomes": {"outcome_prevalence_sane"},
    "tokenized": {"first_24h_no_late_tokens", "fitted_on_train_only"},
    "checkpoint": {"training_loss_decreased"},
    "features": {"features_valid"},
    "predictions": {"predictions_valid"},
    "family_statistics": {"statistics_complete"},
}
GROUPS = ("source", "meds", "tokenize", "outcomes", "models", "probes", "statistics", "diagnostics", "paper")

pytestmark = pytest.mark.skipif(not WEBSERVER.exists(), reason="dagster-webserver is not installed in .venv")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST one GraphQL query; a GraphQL-level error fails the test with its message."""
    req = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert not out.get("errors"), out["errors"]
    return out["data"]


LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


class Webserver:
    """A dagster-webserver subprocess (own process group) on a free port with its own DAGSTER_HOME."""

    def __init__(self, dagster_home: Path, irbench_home: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, DAGSTER_HOME=str(dagster_home), IRBENCH_HOME=str(irbench_home))
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [str(WEBSERVER), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.log = log

    def wait_loaded(self, timeout: float = 120.0) -> None:
        """Wait until the server answers and the code location is loaded; a load error fails with its text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                entries = graphql(self.url, LOCATIONS)["workspaceOrError"]["locationEntries"]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
                continue
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e["locationOrLoadError"].get("message") for e in entries
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not errors, f"{WORKSPACE}: code location failed to load: {errors}"
                return
            time.sleep(0.5)
        pytest.fail(f"dagster-webserver did not load {WORKSPACE} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh instance directory with the repo's dagster.yaml (plus the community pop-up switched off, which
    would otherwise cover the screenshot)."""
    home = tmp_path_factory.mktemp("dagster_home")
    cfg = (REPO_ROOT / "dagster.yaml").read_text()
    if "nux:" not in cfg:
        cfg += "\nnux:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(cfg)
    return home


@pytest.fixture(scope="module")
def server(dagster_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    tmp = tmp_path_factory.mktemp("ui")
    web = Webserver(dagster_home, tmp / "irbench_home", tmp / "webserver.log")
    try:
        web.wait_loaded()
        yield web
    finally:
        web.stop()


ASSET_NODES = """{ assetNodes { assetKey { path } groupName isPartitioned partitionKeys
  assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }"""


def test_graphql_lists_every_stage_with_partitions_and_checks(server: Webserver) -> None:
    nodes = {"/".join(n["assetKey"]["path"]): n for n in graphql(server.url, ASSET_NODES)["assetNodes"]}
    assert set(nodes) >= ARM_ASSETS | EXPERIMENT_ASSETS | GLOBAL_ASSETS
    assert set(nodes) == {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    assert {n["groupName"] for n in nodes.values()} == set(GROUPS)

    arm_keys = all_arm_keys()
    assert len(arm_keys) == 28 and all(k.count(".") == 1 for k in arm_keys)
    for name in ARM_ASSETS:
        assert nodes[name]["partitionKeys"] == arm_keys, name
    for name in EXPERIMENT_ASSETS:
        assert nodes[name]["partitionKeys"] == list(load_experiments()) == ["exp1", "exp2", "exp3"], name
    for name in GLOBAL_ASSETS:
        assert not nodes[name]["isPartitioned"], name

    for name, expected in CHECKS.items():
        got = nodes[name]["assetChecksOrError"]
        assert got["__typename"] == "AssetChecks", got
        assert {c["name"] for c in got["checks"]} == expected, name


MATERIALIZATIONS = """query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
  assetMaterializations(limit: 1) { runId timestamp }
  assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } } } }"""


def test_materialization_on_the_same_instance_shows_in_graphql(
    server: Webserver, dagster_home: Path, tiny_resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [{"path": ["mimic_source"]}, {"path": ["meds_dataset"]}]
    before = graphql(server.url, MATERIALIZATIONS, {"keys": keys})["assetNodes"]
    assert all(n["assetMaterializations"] == [] for n in before)

    tiny_resources({"synthetic": {"admissions": 200}, "meds": {"subjects_per_shard": 80}})
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    resources = {"settings": IrbenchSettings(home=str(tmp_path / "home"), profile="demo")}
    with dg.DagsterInstance.get() as instance:
        steps = materialize_all(defs, instance, selection=[dg.AssetKey("mimic_source"), dg.AssetKey("meds_dataset")],
                                resources=resources, log_level="WARNING")
    assert [st["status"] for st in steps] == ["ok"]

    after = {"/".join(n["assetKey"]["path"]): n for n in graphql(server.url, MATERIALIZATIONS, {"keys": keys})["assetNodes"]}
    for name in ("mimic_source", "meds_dataset"):
        assert [m["runId"] for m in after[name]["assetMaterializations"]] == [steps[0]["run_id"]], name
    checks = {c["name"]: c["executionForLatestMaterialization"]["status"] for c in after["meds_dataset"]["assetChecksOrError"]["checks"]}
    assert checks == dict.fromkeys(CHECKS["meds_dataset"], "SUCCEEDED")
    runs = graphql(server.url, '{ runsOrError { ... on Runs { results { runId status } } } }')["runsOrError"]["results"]
    assert {"runId": steps[0]["run_id"], "status": "SUCCESS"} in runs


def lineage_url(base: str) -> str:
    """The global asset lineage page with every group expanded (the UI collapses groups by default; the
    ``expanded`` query parameter holds the group ids, ``global@global:<group>`` in this Dagster version)."""
    return f"{base}/asset-groups?expanded=" + ",".join(f"global@global:{g}" for g in GROUPS)


def screenshot(url: str, out: Path, profile_dir: Path, size: str = "1600,1000") -> None:
    """Headless Chromium screenshot of ``url`` after 15 s of virtual time (the graph lays out asynchronously)."""
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile_dir}", f"--screenshot={out}", f"--window-size={size}",
           "--virtual-time-budget=15000", url]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` is not installed (apt-get install -y chromium)")
def test_lineage_page_screenshot(server: Webserver, tmp_path: Path) -> None:
    out = tmp_path / "lineage.png"
    screenshot(lineage_url(server.url), out, tmp_path / "chromium")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1600, 1000)
    # A blank or error page compresses to a few kB; the rendered graph (nodes, edges, labels) does not.
    assert len(data) > 50_000
    if target := os.environ.get("IRBENCH_UI_SCREENSHOT"):
        shutil.copy(out, target)
