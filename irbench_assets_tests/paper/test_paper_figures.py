"""Paper figures on hand-made run artifacts: files exist and are real PDFs/PNGs, each plotting table holds
the plotted rows (checked against the inputs), shared heatmap scale, BH markers, calibration bins, length
histograms, value-bin PCA (hand-made embeddings and a tiny trained model), determinism, paper.tex coverage."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from paper_fixtures import HANDLES, P_ADJ, PRIMARY, pairwise_frame, predictions_frame, write_run

from irbench_assets.experiments import get_handle, load_experiments
from irbench_assets.paper import PaperInputs, build_paper
from irbench_assets.paper.figures import (
    BinEmbeddings,
    calibration_bins,
    figure_builders,
    handle_styles,
    load_bin_embeddings,
    pca_value_bins,
    value_bin_rows,
)
from irbench_assets.paper.inputs import MissingInput
from irbench_assets.paper.tables import table_builders

EXPS = load_experiments()
PAPER_TEX = Path(__file__).resolve().parents[2] / "paper" / "paper.tex"


def fake_embeddings(model_dir: Path) -> BinEmbeddings:
    """Hand-made embeddings: fused potassium bins on a straight line (+ a rare second unit), heart rate on a
    circle, hemoglobin absent; unfused: shared Q tokens."""
    rng = np.random.default_rng(0)
    d = 8
    if model_dir.name.endswith("_unfused"):
        tokens = ["PAD", *[f"Q{k}" for k in range(100)], "LAB//50971//mEq/L"]
        return BinEmbeddings(rng.normal(size=(len(tokens), d)), tuple(tokens), np.ones(len(tokens), np.int64))
    tokens = ["PAD"]
    rows = [rng.normal(size=d)]
    counts = [0]
    direction = np.eye(d)[0] * 2 + np.eye(d)[1]
    for k in range(100):
        tokens.append(f"LAB//50971//mEq/L//Q{k}")
        rows.append(k * direction + 1e-3 * rng.normal(size=d))
        counts.append(0 if k == 99 else 5)  # the top bin never seen in train
    for k in range(3):
        tokens.append(f"LAB//50971//mmol/L//Q{k}")
        rows.append(rng.normal(size=d))
        counts.append(1)
    for k in range(100):
        a = 2 * np.pi * k / 100
        tokens.append(f"VITAL//220045//bpm//Q{k}")
        rows.append(np.cos(a) * np.eye(d)[2] + np.sin(a) * np.eye(d)[3])
        counts.append(3)
    return BinEmbeddings(np.asarray(rows), tuple(tokens), np.asarray(counts, np.int64))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    home = tmp_path_factory.mktemp("home")
    write_run(home)
    out = home / "generated"
    man = build_paper(out, PaperInputs(home), dpi=60, embeddings=fake_embeddings)
    return home, out, man


def _src(out: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(out / "figures" / "sources" / f"{name}.csv")


def test_figures_are_written_as_pdf_png_and_source(run: tuple[Path, Path, object]) -> None:
    _, out, man = run
    names = sorted(p.stem for p in (out / "figures").glob("*.pdf"))
    assert names == sorted([
        "forest_exp1_binary", "forest_exp1_regression", "forest_exp3_binary", "forest_exp3_regression",
        "delta_heatmap_exp1_binary", "delta_heatmap_exp1_regression", "delta_heatmap_exp3_binary",
        "delta_heatmap_exp3_regression", "axis_summary_exp1", "axis_summary_exp3", "calibration_exp1",
        "length_histograms_fusion", "pca_value_bins_exp1_centiles_fused", "pca_value_bins_exp1_centiles_unfused"])
    for n in names:
        pdf, png = (out / "figures" / f"{n}.pdf").read_bytes(), (out / "figures" / f"{n}.png").read_bytes()
        assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:] and len(pdf) > 5000
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
        assert _src(out, n).height > 0
    skipped = {s.item: s.reason for s in man.skipped}
    assert skipped["forest_exp2_binary"] == "no AUROC rows for exp2"
    assert skipped["calibration_exp3"].startswith("no held-out predictions")
    assert "exp2.discrete_tt" in skipped["length_histograms_temporal"]
    assert "pca_value_bins_exp1_centiles_fused/Hemoglobin" in skipped
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"] == sorted(man.files) and "figures/forest_exp1_binary.pdf" in manifest["files"]
    assert {"item": "forest_exp2_binary", "reason": "no AUROC rows for exp2"} in manifest["skipped"]
    # the default loader on a model that was not trained: a recorded skip, not a crash
    with pytest.raises(MissingInput, match="model not trained yet"):
        load_bin_embeddings(out / "no_model")


def test_forest_source_holds_every_plotted_point_in_handle_order(run: tuple[Path, Path, object]) -> None:
    _, out, _ = run
    src = _src(out, "forest_exp1_binary")
    expected = [(o, h) for o in ("same_admission_death", "long_length_of_stay", "hyperkalemia")
                for h in HANDLES["exp1"] if not np.isnan(PRIMARY[("exp1", o)][h])]
    assert list(zip(src["outcome"], src["handle"], strict=True)) == expected  # NaN point not plotted
    for r in src.iter_rows(named=True):
        assert r["point"] == pytest.approx(PRIMARY[("exp1", r["outcome"])][r["handle"]])
        assert r["y"] == 2 - HANDLES["exp1"].index(r["handle"])  # top to bottom in yaml order
    st = handle_styles(EXPS["exp1"])
    assert st["deciles_unfused"].color == st["deciles_fused"].color != st["centiles_fused"].color
    assert st["deciles_unfused"].marker != st["deciles_fused"].marker == st["centiles_fused"].marker


def test_heatmaps_share_one_colour_scale_and_mark_bh_cells(run: tuple[Path, Path, object]) -> None:
    _, out, _ = run
    pw = pairwise_frame()
    lim = pw.filter(pl.col("metric") == "roc_auc")["delta_better"].abs().max()
    e1, e3 = _src(out, "delta_heatmap_exp1_binary"), _src(out, "delta_heatmap_exp3_binary")
    assert e1["color_limit"].to_list() == pytest.approx([lim] * e1.height)
    assert e3["color_limit"].to_list() == pytest.approx([lim] * e3.height)
    for r in pl.concat([e1, e3]).iter_rows(named=True):
        p = P_ADJ[(r["experiment"], r["outcome"], r["handle1"])]
        assert r["significant"] == (p < 0.05)
        d = PRIMARY[(r["experiment"], r["outcome"])][r["handle1"]] - PRIMARY[(r["experiment"], r["outcome"])][r["handle0"]]
        assert r["delta_better"] == pytest.approx(d, nan_ok=True)
    assert e1.select("row", "handle1").unique().sort("row").rows() == [(0, "deciles_fused"), (1, "centiles_fused")]
    reg = _src(out, "delta_heatmap_exp1_regression")
    assert set(reg["metric"]) == {"spearman_rho"}


def test_axis_summary_averages_common_outcomes(run: tuple[Path, Path, object]) -> None:
    _, out, _ = run
    src = _src(out, "axis_summary_exp1").filter(pl.col("metric") == "roc_auc")
    common = ("same_admission_death", "long_length_of_stay")  # hyperkalemia is NaN for one handle
    mean = {h: np.mean([PRIMARY[("exp1", o)][h] for o in common]) for h in HANDLES["exp1"]}
    fused = src.filter((pl.col("axis") == "fused") & (pl.col("level") == "True"))
    assert sorted(fused["handle"]) == ["centiles_fused", "deciles_fused"]
    assert fused["level_mean"][0] == pytest.approx((mean["deciles_fused"] + mean["centiles_fused"]) / 2)
    assert set(src["axis"]) == {"quantizer", "anchoring", "fused"}
    assert set(_src(out, "axis_summary_exp3")["axis"]) == {"arm"}


def test_calibration_bins_follow_the_ece_convention(run: tuple[Path, Path, object]) -> None:
    _, out, _ = run
    src = _src(out, "calibration_exp1")
    for i, h in enumerate(HANDLES["exp1"]):
        pred = predictions_frame(i).filter((pl.col("split") == "held_out") & (pl.col("outcome") == "same_admission_death"))
        part = src.filter((pl.col("handle") == h) & (pl.col("outcome") == "same_admission_death"))
        assert part["n"].sum() == pred.height
        p, y = pred["y_pred"].to_numpy(), pred["y_true"].to_numpy()
        k = np.minimum((p * 15).astype(int), 14)  # the last bin is closed at 1
        for r in part.iter_rows(named=True):
            sel = k == r["bin"]
            assert r["n"] == sel.sum() and r["frac_pos"] == pytest.approx(y[sel].mean())
            assert r["mean_pred"] == pytest.approx(p[sel].mean())
    t = calibration_bins(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 14 / 15]))
    assert t["bin"].to_list() == [0, 14] and t["n"].to_list() == [1, 2]


def test_length_histograms_count_every_admission(run: tuple[Path, Path, object]) -> None:
    home, out, _ = run
    src = _src(out, "length_histograms_fusion")
    assert sorted(set(src["handle"])) == ["deciles_fused", "deciles_unfused"]
    for (h, lay), part in src.group_by(["handle", "layout"]):
        lens = pl.read_parquet(home / "runs" / "tokenized" / "exp1" / h / lay / "train" / "tokens_timelines.parquet")
        assert part["count"].sum() == lens.height == part["n"][0]
        assert part["median"][0] == pytest.approx(float(np.median(lens["seq_len"].to_numpy())))


def test_pca_of_fused_value_bins_matches_svd(run: tuple[Path, Path, object]) -> None:
    _, out, _ = run
    src = _src(out, "pca_value_bins_exp1_centiles_fused")
    k = src.filter(pl.col("panel") == "Potassium")
    assert set(k["code"]) == {"LAB//50971//mEq/L"}  # the unit with the most train tokens
    assert k["bin"].to_list() == list(range(100))
    assert k["ev1"][0] > 0.999  # bins on a line: one component explains everything
    pc1 = k["pc1"].to_numpy()
    assert np.all(np.diff(pc1) > 0) or np.all(np.diff(pc1) < 0)
    emb = fake_embeddings(Path("exp1_centiles_fused"))
    rows = value_bin_rows(emb.tokens, emb.counts, "LAB", 50971)
    x = emb.token_embeddings[rows[1]]
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(pc1), np.abs(u[:, 0] * s[0]), rtol=1e-6, atol=1e-9)
    assert k.filter(pl.col("bin") == 99)["train_count"].to_list() == [0]
    hr = src.filter(pl.col("panel") == "Heart rate")
    r = np.hypot(hr["pc1"].to_numpy(), hr["pc2"].to_numpy())
    np.testing.assert_allclose(r, 1.0, atol=1e-9)  # a circle stays a circle
    uf = _src(out, "pca_value_bins_exp1_centiles_unfused")
    assert set(uf["panel"]) == {"Shared Q<k> tokens (all codes)"} and uf.height == 100
    with pytest.raises(MissingInput, match="xVal has no value-bin embeddings"):
        pca_value_bins(get_handle("exp2", "xval_tt"), emb)


def test_pca_on_a_tiny_trained_fused_model(tmp_path: Path) -> None:
    """Through load_model: a real checkpoint whose vocabulary holds fused potassium tokens."""
    from irbench_assets.models.synthetic import write_synthetic_tokenized
    from irbench_assets.models.train import train_model

    d = write_synthetic_tokenized(tmp_path / "tok", n_admissions=30, max_len=200)
    v = pl.read_parquet(d / "train" / "vocab.parquet")
    ren = {f"MED//{i}": f"LAB//50971//mEq/L//Q{i}" for i in range(7)} | {"MED//7": "LAB//50971//mmol/L//Q0"}
    v.with_columns(pl.col("token").replace(ren)).write_parquet(d / "train" / "vocab.parquet")
    h = get_handle("exp1", "centiles_fused")
    train_model(d, h, {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
                {"block_size": 64, "batch_size": 4, "lr": 3e-3, "max_steps": 2, "log_every": 1},
                tmp_path / "m", tmp_path / "w")
    emb = load_bin_embeddings(tmp_path / "m")
    res = pca_value_bins(h, emb)
    assert set(res.source["code"]) == {"LAB//50971//mEq/L"} and res.source["bin"].to_list() == list(range(7))
    ids = [emb.tokens.index(f"LAB//50971//mEq/L//Q{k}") for k in range(7)]
    x = emb.token_embeddings[ids].astype(np.float64)
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(res.source["pc1"].to_numpy()), np.abs(u[:, 0] * s[0]), rtol=1e-5, atol=1e-7)
    assert len(res.skipped) == 5  # the other five labs/vitals are not in this vocabulary
    unf = pca_value_bins(dataclasses.replace(h, fused=False, handle="centiles_unfused"), emb)
    assert unf.source["panel"][0] == "Shared Q<k> tokens (all codes)" and unf.source.height == 10


def test_same_inputs_give_byte_identical_outputs(run: tuple[Path, Path, object], tmp_path: Path) -> None:
    home, out, _ = run
    again = tmp_path / "again"
    build_paper(again, PaperInputs(home), dpi=60, embeddings=fake_embeddings)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file() and p.name != "manifest.json")
    for f in files:
        assert (out / f).read_bytes() == (again / f).read_bytes(), f


def test_paper_tex_includes_every_table_and_figure() -> None:
    tex = "\n".join(ln.split("%")[0] for ln in PAPER_TEX.read_text().splitlines())  # no comments
    tables = set(re.findall(r"\\irtable\{([^}]+)\}", tex))
    figures = set(re.findall(r"\\irfigure(?:\[[^]]*\])?\{([^}]+)\}", tex))
    inputs = PaperInputs(Path("/nonexistent"))
    expected_tables = {n for n, _ in table_builders(inputs, None)} - {"outcome_descriptives"}
    expected_tables |= {"outcome_descriptives_binary", "outcome_descriptives_regression"}
    assert tables == expected_tables
    assert figures == {n for n, _ in figure_builders(inputs, None)}
