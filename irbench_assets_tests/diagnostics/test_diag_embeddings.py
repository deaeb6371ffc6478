"""The embedding diagnostics (clinical boundary probe, embedding geometry, potassium grid, sparsity distance)
on tiny Exp1 models trained on the real Stage 0 tokenization of the synthetic MIMIC-IV extraction, plus
constructed embeddings whose answer is known; values re-derived here from the parquet / safetensors files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file, save_file
from scipy.stats import spearmanr
from sklearn.decomposition import PCA

from irbench_assets.diagnostics import (
    Arm,
    LabRange,
    clinical_boundary_probe,
    embedding_geometry,
    potassium_geometry_grid,
    sparsity_distance,
)
from irbench_assets.diagnostics.boundary_probe import probe_bins
from irbench_assets.diagnostics.common import BinSet, reachable_bins
from irbench_assets.diagnostics.geometry import set_geometry
from irbench_assets.diagnostics.payload import run_diagnostic
from irbench_assets.experiments import get_handle
from irbench_assets.models.train import train_model
from irbench_assets.tokenize import load_tokenizer_config, prepare_events, tokenize_handles

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}
TRAIN = {"block_size": 128, "batch_size": 4, "lr": 3e-3, "max_steps": 3, "warmup_ratio": 0.0, "eval_max_batches": 1}
HANDLES = ("deciles_unfused", "deciles_fused", "centiles_fused")
EMB = "model.embed_tokens.weight"


def strict_json(path: Path) -> dict:
    def bad(x: str) -> None:
        raise AssertionError(f"{path}: non-standard JSON constant {x}")
    return json.loads(path.read_text(), parse_constant=bad)


@pytest.fixture(scope="module")
def exp1(small_meds: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Arm]:
    """Exp1 handles tokenized from the MEDS extraction, each with a tiny model trained for 3 steps, plus an
    'untrained' deciles_fused model (lr 0: the weights stay exactly at their initial values)."""
    root = tmp_path_factory.mktemp("exp1")
    meds, _ = small_meds
    prepare_events(meds, load_tokenizer_config("mimic-meds"), root / "events")
    hs = [get_handle("exp1", h) for h in HANDLES]
    tokenize_handles(root / "events", hs, [root / "tok" / h for h in HANDLES], max_len=256)
    arms = {}
    for h in hs:
        train_model(root / "tok" / h.handle, h, TINY, TRAIN, root / "models" / h.handle, root / "work")
        arms[h.handle] = Arm(root / "models" / h.handle, root / "tok" / h.handle)
    untrained = root / "models" / "untrained"
    train_model(root / "tok" / "deciles_fused", hs[1], TINY, {**TRAIN, "lr": 0.0, "max_steps": 1}, untrained,
                root / "work")
    arms["untrained"] = Arm(untrained, root / "tok" / "deciles_fused", name="untrained")
    return arms


def embeddings(arm: Arm) -> np.ndarray:
    return load_file(str(arm.model_dir / "base" / "model.safetensors"))[EMB]


def vocab(arm: Arm) -> pl.DataFrame:
    return pl.read_parquet(arm.model_dir / "vocab" / "vocab.parquet").sort("token_id")


def potassium_edges(arm: Arm) -> tuple[str, np.ndarray]:
    b = pl.read_parquet(arm.model_dir / "vocab" / "bins.parquet").filter(pl.col("code").str.starts_with("LAB//50971//"))
    return b["code"][0], np.asarray(b["edges"][0], dtype=float)


# ------------------------------------------------------------------------------------------- units
def test_reachable_bins_skip_duplicate_edges_and_extrapolate_the_outer_bins() -> None:
    ks, mids = reachable_bins(np.array([1.0, 1.0, 1.0, 2.0, 4.0]))
    # digitize: v < 1 → 0; 1 <= v < 2 → 3 (bins 1, 2 are empty); 2 <= v < 4 → 4; v >= 4 → 5
    assert ks.tolist() == [0, 3, 4, 5] and np.digitize([0.5, 1.0, 3.0, 9.0], [1, 1, 1, 2, 4]).tolist() == [0, 3, 4, 5]
    np.testing.assert_allclose(mids, [0.5, 1.5, 3.0, 5.0])
    ks, mids = reachable_bins(np.array([3.0, 3.0]))
    assert ks.tolist() == [0, 2] and np.isnan(mids).all()


def test_probe_is_perfect_on_separable_bins_and_skips_with_a_reason() -> None:
    rng = np.random.default_rng(0)
    mids = np.array([2.0, 3.0, 3.8, 4.2, 4.6, 5.5, 6.5])  # range 3.5-5.0 → abnormal, abnormal, 3 normal, 2 abnormal
    y = (mids < 3.5) | (mids > 5.0)
    x = rng.normal(size=(7, 16)) * 0.1
    x[:, 0] += np.where(y, 1.0, -1.0)
    r = probe_bins(x, mids, 3.5, 5.0)
    assert r["labels"] == y.astype(int).tolist() and r["status"] == "ok"
    assert r["accuracy"] == 1.0 and r["balanced_accuracy"] == 1.0 and r["majority_baseline"] == pytest.approx(4 / 7)
    assert probe_bins(x, np.full(7, 4.0), 3.5, 5.0)["reason"] == "single class: every bin is normal"
    assert "too few bins in one class (abnormal 1" in probe_bins(x, np.r_[1.0, np.full(6, 4.0)], 3.5, 5.0)["reason"]
    assert "too few bins (3" in probe_bins(x[:3], mids[:3], 3.5, 5.0)["reason"]
    assert "midpoints undefined" in probe_bins(x[:4], np.array([np.nan, 4, 4, np.nan]), 3.5, 5.0)["reason"]


def _bins(vectors: np.ndarray) -> BinSet:
    n = len(vectors)
    return BinSet("t", None, True, np.arange(n), np.arange(n), np.ones(n, dtype=np.int64), vectors)


def test_u_shape_metric_on_constructed_embeddings() -> None:
    k = np.arange(9)
    # folded scale: the extremes coincide (angle pi*|k-4|/4), the middle is opposite → U = 1 - (-1) = 2
    theta = np.pi * np.abs(k - 4) / 4
    g = set_geometry(_bins(np.column_stack([np.cos(theta), np.sin(theta), np.zeros(9)])))
    assert g["u_shape"] == pytest.approx(2.0) and g["middle_index"] == 4
    # ordinal half circle (angle pi*k/8): cos(first,last) = -1, cos(first,middle) = 0 → U = -1; similarity
    # falls monotonically with bin distance; PC1 orders the bins
    theta = np.pi * k / 8
    g = set_geometry(_bins(np.column_stack([np.cos(theta), np.sin(theta)])))
    assert g["u_shape"] == pytest.approx(-1.0) and g["cos_first_middle"] == pytest.approx(0.0, abs=1e-12)
    assert g["ordinal_rho"] == pytest.approx(-1.0) and g["pc1_rho"] == pytest.approx(1.0)
    assert sum(g["pca"]["explained_variance_ratio"]) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- on models
def test_boundary_probe_finds_a_planted_boundary_in_fused_embeddings(exp1: dict[str, Arm], tmp_path: Path) -> None:
    src = exp1["deciles_fused"]
    planted = tmp_path / "planted"
    shutil.copytree(src.model_dir, planted)
    code, edges = potassium_edges(src)
    ks, mids = reachable_bins(edges)
    low, high = float(mids[2]), float(mids[6])  # a reference range with 3 normal bins inside the midpoints
    weights = load_file(str(planted / "base" / "model.safetensors"))
    emb = weights[EMB]
    v = vocab(src)
    ids = [v.filter(pl.col("token") == f"{code}//Q{k}")["token_id"][0] for k in ks]
    abnormal = (mids < low) | (mids > high)
    emb[ids, 0] = np.where(abnormal, 1.0, -1.0)  # one dimension separates the two classes
    save_file(weights, str(planted / "base" / "model.safetensors"), metadata={"format": "pt"})
    labs = [LabRange("k_planted", "LAB//50971//", low, high), LabRange("troponin_t", "LAB//51003//", 0.0, 0.04),
            LabRange("absent", "LAB//99999//", 0, 1)]
    arms = [Arm(planted, name="planted"), exp1["deciles_unfused"]]
    s = clinical_boundary_probe(arms, tmp_path / "out", labs=labs)
    res = strict_json(tmp_path / "out" / "clinical_boundary_probe_results.json")
    assert (tmp_path / "out" / "clinical_boundary_probe.png").stat().st_size > 5_000
    r = res["arms"]["planted"]["labs"]["k_planted"]
    assert r["status"] == "ok" and r["code"] == code and r["bins"] == ks.tolist()
    assert r["labels"] == abnormal.astype(int).tolist() and r["accuracy"] == 1.0
    assert r["shared_embeddings"] is False and s["accuracy"]["planted"]["k_planted"] == 1.0
    assert res["arms"]["planted"]["labs"]["absent"]["reason"] == "no code starting with LAB//99999// in bins.parquet"
    u = res["arms"]["exp1.deciles_unfused"]
    assert u["shared_q_tokens"] is True and u["labs"]["k_planted"]["shared_embeddings"] is True
    assert "same embedding matrix" in res["note"]
    for lab in ("k_planted", "troponin_t"):
        assert u["labs"][lab]["status"] in ("ok", "skipped")
        if u["labs"][lab]["status"] == "skipped":
            assert u["labs"][lab]["reason"]


def test_embedding_geometry_of_shared_and_fused_bins(exp1: dict[str, Arm], tmp_path: Path) -> None:
    arms = [exp1["deciles_unfused"], exp1["deciles_fused"]]
    s = embedding_geometry(arms, tmp_path / "out")
    res = strict_json(tmp_path / "out" / "embedding_geometry_results.json")
    for png in ("embedding_geometry.png", "embedding_geometry_u_shape.png"):
        assert (tmp_path / "out" / png).stat().st_size > 5_000
    shared = res["arms"]["exp1.deciles_unfused"]["sets"]["shared Q"]
    assert list(res["arms"]["exp1.deciles_unfused"]["sets"]) == ["shared Q"] and shared["bins"] == list(range(10))
    # independent: cosine and PCA of the Q0..Q9 rows read straight from the safetensors file
    v = vocab(arms[0])
    x = embeddings(arms[0])[[v.filter(pl.col("token") == f"Q{k}")["token_id"][0] for k in range(10)]].astype(float)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.testing.assert_allclose(shared["cosine"], cos, atol=1e-5)
    assert shared["u_shape"] == pytest.approx(cos[0, 9] - cos[0, 4], abs=1e-5)
    np.testing.assert_allclose(shared["pca"]["explained_variance_ratio"], PCA(2).fit(x).explained_variance_ratio_,
                               rtol=1e-6)
    fused = res["arms"]["exp1.deciles_fused"]["sets"]
    assert {"potassium", "glucose", "creatinine", "hemoglobin"} <= set(fused)
    assert fused["potassium"]["code"].startswith("LAB//50971//") and fused["potassium"]["shared"] is False
    assert set(s["u_shape"]["exp1.deciles_fused"]) == set(fused)


def test_potassium_grid_counts_breakpoints_and_missing_fused_bins(exp1: dict[str, Arm], tmp_path: Path) -> None:
    arms = [exp1["deciles_unfused"], exp1["deciles_fused"], exp1["centiles_fused"]]
    potassium_geometry_grid(arms, tmp_path / "out")
    res = strict_json(tmp_path / "out" / "potassium_geometry_grid_results.json")
    assert (tmp_path / "out" / "potassium_geometry_grid.png").stat().st_size > 5_000
    for arm in arms:
        r = res["arms"][arm.name if arm.name else f"exp1.{arm.model_dir.name}"]
        code, edges = potassium_edges(arm)
        assert r["code"] == code and r["n_breakpoints"] == len(edges)
        assert r["n_unique_breakpoints"] == len(np.unique(edges)) == r["n_bins_reachable"] - 1
        if r["fused"]:
            counts = vocab(arm).filter(pl.col("token").str.starts_with(code + "//Q"))
            k = counts["token"].str.extract(r"Q(\d+)$").cast(pl.Int64)
            assert sorted(r["fused_bins_missing"]) == sorted(k.filter(counts["count"] == 0).to_list())
            assert sorted(r["fused_bins_present"]) == sorted(k.filter(counts["count"] > 0).to_list())
            assert len(r["pca"]["bins"]) == len(r["fused_bins_present"])
        else:
            assert r["fused_bins_missing"] is None
    c = res["arms"]["exp1.centiles_fused"]
    # potassium is reported to 0.1 mEq/L: centiles repeat breakpoints and leave fused bins unseen
    assert c["n_unique_breakpoints"] < c["n_breakpoints"] == 99 and len(c["fused_bins_missing"]) > 0
    assert sum(m for _, m in c["duplicate_breakpoints"]) - len(c["duplicate_breakpoints"]) == 99 - c["n_unique_breakpoints"]


def test_sparsity_distance_is_zero_untrained_and_tracks_frequency_when_trained(exp1: dict[str, Arm],
                                                                              tmp_path: Path) -> None:
    arms = [exp1["untrained"], exp1["centiles_fused"]]
    s = sparsity_distance(arms, tmp_path / "out")
    res = strict_json(tmp_path / "out" / "sparsity_distance_results.json")
    u = res["arms"]["untrained"]
    assert u["median_distance"] == 0.0 and u["frozen_share"] == 1.0 and u["n_frozen"] == u["n_evaluated"]
    assert u["n_zero_init_norm"] == 1  # PAD's row is zero at init
    # independent: distances from the two safetensors files, frequencies from vocab.parquet
    arm = exp1["centiles_fused"]
    e1 = embeddings(arm).astype(float)
    e0 = load_file(str(arm.model_dir / "initial_embeddings.safetensors"))["embed_tokens"].astype(float)
    dist, norm0 = np.linalg.norm(e1 - e0, axis=1), np.linalg.norm(e0, axis=1)
    ok = norm0 > 0
    counts = vocab(arm)["count"].to_numpy()
    r = res["arms"]["exp1.centiles_fused"]
    assert r["vocab_size"] == len(counts) and r["n_zero_count"] == int(((counts == 0) & ok).sum()) > 0
    assert r["frozen_share"] == pytest.approx(np.mean(dist[ok] / norm0[ok] < 0.1))
    assert r["median_distance"] == pytest.approx(np.median(dist[ok]))
    rho = spearmanr(np.log10(counts[ok] + 1.0), dist[ok]).statistic
    assert r["spearman_log_freq_distance"] == pytest.approx(rho)
    assert r["reference_threshold"] == pytest.approx(1.5 * 0.02 * np.sqrt(32))
    assert s["frozen_share"]["untrained"] == 1.0
    assert (tmp_path / "out" / "sparsity_distance.png").stat().st_size > 5_000


def test_outputs_are_deterministic_and_go_through_the_payload(exp1: dict[str, Arm], tmp_path: Path) -> None:
    arms = [{"model_dir": str(exp1["deciles_fused"].model_dir), "name": "d"}]
    logs: list = []
    for out in ("a", "b"):
        s = run_diagnostic(name="sparsity_distance", args={"arms": arms, "out_dir": str(tmp_path / out)},
                           log=logs.append)
        assert s["n_arms"] == 1 and "| d |" in s["preview_md"]
    for f in ("sparsity_distance_results.json", "sparsity_distance.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert logs[0]["name"] == "sparsity_distance"
    with pytest.raises(ValueError, match="arm names must be unique"):
        sparsity_distance([Arm(exp1["untrained"].model_dir, name="x"), Arm(exp1["untrained"].model_dir, name="x")],
                          tmp_path / "c")


def test_default_arms_are_handles_of_experiments_yaml(tmp_path: Path) -> None:
    from irbench_assets.diagnostics import DEFAULT_HANDLES, OUTPUTS, default_arms, output_dir

    assert set(DEFAULT_HANDLES) == set(OUTPUTS)
    for name, handles in DEFAULT_HANDLES.items():
        for e, h in handles:
            get_handle(e, h)  # raises for a handle that is not in resources/experiments.yaml
        arms = default_arms(name, tmp_path)
        assert arms[0].model_dir == tmp_path / "runs" / "models" / f"{handles[0][0]}_{handles[0][1]}"
        assert output_dir(tmp_path / "outputs", name).name.startswith("diagnostics_")
    assert output_dir(tmp_path, "xval_zero_audit").name == "diagnostics_xval_zero_audit"
