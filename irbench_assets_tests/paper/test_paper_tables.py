"""Paper tables on hand-made run artifacts with known content: values, ordering, significance markers,
escaping, macros, skips for missing inputs and clear errors for bad input."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from paper_fixtures import (
    EXP3_META,
    OUTCOMES_OF,
    P_ADJ,
    PRIMARY,
    metrics_frame,
    outcomes_frame,
    value,
    write_run,
)

from irbench_assets.experiments import load_experiments
from irbench_assets.paper import PaperInputs, build_tables, read_stats
from irbench_assets.paper.latex import Cell, TableSpec, macro_name, tex_escape
from irbench_assets.paper.tables import exp3_remapping_coverage

EXPS = load_experiments()
LABEL = {(e, h): c.label for e, x in EXPS.items() for h, c in x.handles.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    home = tmp_path_factory.mktemp("home")
    write_run(home)
    out = home / "paper"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "stale_table.tex").write_text("from an earlier build")
    man = build_tables(out, PaperInputs(home))
    return out / "tables", man


def _tex_rows(tex: str) -> list[str]:
    return [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "&" in ln]


def _group_blocks(tex: str) -> dict[str, list[str]]:
    """Rows of a generated table under each \\multicolumn group title."""
    blocks: dict[str, list[str]] = {}
    cur = None
    for ln in tex.splitlines():
        m = re.match(r"\\multicolumn\{\d+\}\{l\}\{\\textit\{(.*)\}\} \\\\$", ln)
        if m and m.group(1) != "(continued)":
            cur = m.group(1)
            blocks[cur] = []
        elif cur is not None and ln.endswith(r"\\") and "&" in ln:
            blocks[cur].append(ln)
    return blocks


# ---------------------------------------------------------------------------------------------- latex
def test_tex_escape_handles_every_special_character() -> None:
    assert tex_escape(r"a_b & 50% $x #1 {y} ~ ^ \ <>|") == (
        r"a\_b \& 50\% \$x \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{} "
        r"\textless{}\textgreater{}\textbar{}")
    assert tex_escape("K ≥ 6.5, Δ ρ R²") == r"K $\geq$ 6.5, $\Delta$ $\rho$ R$^{2}$"
    c = Cell.text("a_b").bold().marked(True)
    assert c.tex == r"\textbf{a\_b}$^{*}$" and c.md == "**a_b**\\*"
    assert macro_name("exp12", "best_auroc") == "ExpOneTwoBestAuroc"
    spec = TableSpec("t", "cap", [])
    spec.rows.append([Cell.text("x")])
    with pytest.raises(ValueError, match="row 0 has 1 cells, expected 0"):
        spec.to_tex()


# ---------------------------------------------------------------------------------------------- sweeps
def test_binary_sweep_picks_the_best_handle_in_paper_order(built: tuple[Path, object]) -> None:
    tables, _ = built
    df = pl.read_csv(tables / "binary_sweep.csv")
    # outcome order of the paper (mortality, long LOS, ICU LOS > 48 h, hyperkalemia), experiments in yaml order
    assert df.select("outcome", "experiment").rows() == [
        ("same_admission_death", "exp1"), ("long_length_of_stay", "exp1"), ("prolonged_icu_stay", "exp3"),
        ("hyperkalemia", "exp1")]
    for r in df.iter_rows(named=True):
        vals = {h: v for h, v in PRIMARY[(r["experiment"], r["outcome"])].items() if not math.isnan(v)}
        best = max(vals, key=vals.get)
        assert r["best_handle"] == best and r["point"] == pytest.approx(vals[best])
        assert r["ci_lo"] == pytest.approx(vals[best] - 0.02) and r["ci_hi"] == pytest.approx(vals[best] + 0.02)
    tex = (tables / "binary_sweep.tex").read_text()
    rows = _tex_rows(tex)
    body = [r for r in rows if "Exp" in r and "Best handle" not in r]
    assert body[1].startswith(r"Hospital LOS \textgreater{} 7 d & Exp1 & Deciles (pop.), fused & 0.740 [0.720, 0.760]")
    assert body[3].startswith(r"Hyperkalemia (K $\geq$ 6.5) & Exp1 & Deciles (pop.), unfused & 0.660")
    assert r"\begin{longtable}{p{3.6cm}lp{4.2cm}rrr}" in tex and r"\toprule" in tex and r"\bottomrule" in tex


def test_regression_sweep_uses_spearman(built: tuple[Path, object]) -> None:
    tables, _ = built
    df = pl.read_csv(tables / "regression_sweep.csv")
    assert df.select("outcome", "experiment", "best_handle").rows() == [
        ("length_of_stay", "exp1", "deciles_fused"), ("length_of_stay", "exp3", "meds"),
        ("peak_potassium", "exp1", "centiles_fused")]
    assert set(df["metric"]) == {"spearman_rho"}


# ------------------------------------------------------------------------------------- per-family tables
def test_family_results_order_bold_best_and_missing_values(built: tuple[Path, object]) -> None:
    tables, _ = built
    df = pl.read_csv(tables / "results_exp1_primary_binary.csv")
    # every row is in yaml handle order within (outcome, metric), whatever the input order
    for (_, _), part in df.group_by(["outcome", "metric"], maintain_order=True):
        assert part["handle"].to_list() == ["deciles_unfused", "deciles_fused", "centiles_fused"]
    for r in df.iter_rows(named=True):
        vals = PRIMARY[("exp1", r["outcome"])]
        best = max(vals, key=vals.get)  # every derived metric is monotone in the primary one
        assert r["is_best"] == (r["handle"] == best), r
    blocks = _group_blocks((tables / "results_exp1_primary_binary.tex").read_text())
    assert list(blocks) == ["Hospital mortality", r"Hospital LOS \textgreater{} 7 d"]
    mort = blocks["Hospital mortality"]
    assert [ln.split(" & ")[0] for ln in mort] == ["Deciles (pop.), unfused (baseline)", "Deciles (pop.), fused",
                                                  "Centiles (pop.), fused"]
    assert mort[2].count(r"\textbf{") == 4 and r"\textbf{" not in mort[0]  # lower-is-better Brier/ECE too
    got = df.filter((pl.col("outcome") == "same_admission_death") & (pl.col("handle") == "centiles_fused"))
    assert got["point"].to_list() == pytest.approx(
        [value("exp1", "same_admission_death", "centiles_fused", m) for m in ("roc_auc", "pr_auc", "brier", "ece_15")])
    cells = [rf"\textbf{{{r['point']:.3f} [{r['ci_lo']:.3f}, {r['ci_hi']:.3f}]}}" for r in got.iter_rows(named=True)]
    assert mort[2] == "Centiles (pop.), fused & 1{,}020 & " + " & ".join(cells) + r" \\"
    hyper = _group_blocks((tables / "results_exp1_additional_binary.tex").read_text())
    fused = next(ln for ln in hyper[r"Hyperkalemia (K $\geq$ 6.5)"] if ln.startswith("Deciles (pop.), fused"))
    assert fused.count("n/a") == 4  # NaN point estimates
    add = pl.read_csv(tables / "results_exp1_additional_binary.csv")
    assert add.filter(pl.col("handle") == "deciles_fused")["is_best"].to_list() == [False] * 4


def test_pairwise_table_marks_bh_significant_cells(built: tuple[Path, object]) -> None:
    tables, _ = built
    df = pl.read_csv(tables / "pairwise_exp1_primary_binary.csv")
    for r in df.iter_rows(named=True):
        p = P_ADJ[("exp1", r["outcome"], r["handle1"])]
        assert r["significant"] == (p < 0.05) and r["p_adj"] == pytest.approx(p)
        assert r["handle0"] == "deciles_unfused"
    blocks = _group_blocks((tables / "pairwise_exp1_primary_binary.tex").read_text())
    for title, outcome in (("Hospital mortality", "same_admission_death"),
                           (r"Hospital LOS \textgreater{} 7 d", "long_length_of_stay")):
        rows = blocks[title]
        assert [ln.split(" & ")[0] for ln in rows] == ["Deciles (pop.), fused", "Centiles (pop.), fused"]
        for ln, h in zip(rows, ["deciles_fused", "centiles_fused"], strict=True):
            assert ln.count("$^{*}$") == (4 if P_ADJ[("exp1", outcome, h)] < 0.05 else 0), ln
    # p = 0.05 exactly is not significant; the p column is the AUROC's
    assert blocks[r"Hospital LOS \textgreater{} 7 d"][1].endswith("& 0.050 \\\\")
    assert blocks["Hospital mortality"][1].startswith(r"Centiles (pop.), fused & 900 & +0.050 [+0.040, +0.060]$^{*}$")
    nan_row = pl.read_csv(tables / "pairwise_exp1_additional_binary.csv").filter(
        (pl.col("handle1") == "deciles_fused") & (pl.col("metric") == "roc_auc"))
    assert nan_row["significant"].to_list() == [False]  # NaN p_adj is never significant
    md = built[1].previews["pairwise_exp1_primary_binary"]
    assert "+0.050 [+0.040, +0.060]\\*" in md


def test_bad_statistics_input_names_file_column_and_row(tmp_path: Path) -> None:
    bad = metrics_frame().with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("no_such_handle")).otherwise(pl.col("handle")).alias("handle"))
    bad.write_csv(tmp_path / "all_family_metrics.csv")
    with pytest.raises(ValueError, match=r"all_family_metrics\.csv: column handle, row 3: 'no_such_handle' is not a "
                                         r"handle of exp1"):
        read_stats(tmp_path)
    metrics_frame().drop("n_eval").write_csv(tmp_path / "all_family_metrics.csv")
    with pytest.raises(ValueError, match=r"columns \['n_eval'\] missing"):
        read_stats(tmp_path)


# ------------------------------------------------------------------------------------------ coverage
def test_evaluation_coverage_counts(built: tuple[Path, object]) -> None:
    tables, _ = built
    df = pl.read_csv(tables / "evaluation_coverage.csv")
    assert df["experiment"].to_list() == ["exp1", "exp3"]
    e1 = df.row(0, named=True)
    assert (e1["n_models"], e1["n_models_planned"], e1["n_binary_outcomes"], e1["n_regression_outcomes"]) == (3, 12, 3, 2)
    p = np.array([v for (e, _, _), v in P_ADJ.items() if e == "exp1"])
    assert e1["n_baseline_tests"] == 4 * np.isfinite(p).sum()
    assert e1["n_significant"] == 4 * (p < 0.05).sum()
    assert e1["binary_metrics"] == "AUROC, AUPRC, Brier, ECE-15"


# --------------------------------------------------------------------------------------------- macros
def test_macros_are_computed_from_the_tables_and_cover_the_text(built: tuple[Path, object]) -> None:
    tables, _ = built
    mac = dict(pl.read_csv(tables / "macros.csv").select("name", "value").iter_rows())
    # means over the binaries every handle has (hyperkalemia is NaN for deciles_fused, so left out)
    means = {h: np.mean([PRIMARY[("exp1", o)][h] for o in ("same_admission_death", "long_length_of_stay")])
             for h in ("deciles_unfused", "deciles_fused", "centiles_fused")}
    best = max(means, key=means.get)
    assert mac["ExpOneBestAUROCHandle"] == LABEL[("exp1", best)]
    assert mac["ExpOneBestAUROC"] == f"{means[best]:.3f}"
    assert mac["ExpOneBaselineAUROC"] == f"{means['deciles_unfused']:.3f}"
    better = sum(1 for (e, o, h), p in P_ADJ.items() if e == "exp1" and OUTCOMES_OF["exp1"][o].endswith("binary")
                 and p < 0.05 and PRIMARY[("exp1", o)][h] > PRIMARY[("exp1", o)]["deciles_unfused"])
    worse = sum(1 for (e, o, h), p in P_ADJ.items() if e == "exp1" and OUTCOMES_OF["exp1"][o].endswith("binary")
                and p < 0.05 and PRIMARY[("exp1", o)][h] < PRIMARY[("exp1", o)]["deciles_unfused"])
    assert (mac["ExpOneNBetterAUROC"], mac["ExpOneNWorseAUROC"], mac["ExpOneNTestsAUROC"]) == (str(better), str(worse), "5")
    assert mac["ExpTwoBestAUROC"] == "n/a" and mac["ExpTwoNModels"] == "n/a"  # exp2 not run
    assert mac["NModelsPlanned"] == "28" and mac["NOutcomesTotal"] == "30" and mac["NBinaryOutcomesTotal"] == "17"
    assert mac["RemapLabPctTrain"] == "87.5%"
    tex = (tables / "macros.tex").read_text()
    assert r"\newcommand{\ExpOneBestAUROCHandle}{Deciles (pop.), fused}" in tex
    assert r"\newcommand{\RemapLabPctTrain}{87.5\%}" in tex
    paper = (Path(__file__).resolve().parents[2] / "paper" / "paper.tex").read_text()
    used = set(re.findall(r"\\((?:Exp(?:One|Two|Three)|N[A-Z]|Remap|Significance)[A-Za-z]*)", paper))
    assert used and used <= set(mac), sorted(used - set(mac))
    body = paper.split(r"\begin{document}")[1]
    assert not re.search(r"(?<![\w\\{])\d+\.\d+(?!\\linewidth)", body), "a result typed by hand"


# ------------------------------------------------------------------------- inventory / tokenization
def test_model_inventory_and_tokenization_tables(built: tuple[Path, object]) -> None:
    tables, man = built
    inv = pl.read_csv(tables / "model_inventory.csv")
    assert inv.select("experiment", "handle").rows() == [("exp1", "deciles_unfused"), ("exp1", "deciles_fused")]
    r = inv.row(0, named=True)
    assert (r["vocab_size"], r["n_parameters"], r["final_loss"], r["tokens_seen"], r["n_lr_runs"]) == (
        321, 1_234_567, 2.25, 3_000_000, 2)
    assert r"Deciles (pop.), unfused & 321 & 1.23M & 5.500 & 2.250 & 2.500 & 3M & 12.3k & 3e-04 \\" in (
        tables / "model_inventory.tex").read_text()
    tok = pl.read_csv(tables / "tokenization.csv")
    assert tok.select("experiment", "handle").rows() == [
        ("exp1", "deciles_unfused"), ("exp1", "deciles_fused"), ("exp1", "centiles_fused"), ("exp3", "meds"),
        ("exp3", "mapped")]
    assert tok["vocab_size"].to_list() == [100, 110, 120, 100, 110]
    assert tok["overflow_full_train"].to_list() == [0.125] * 5 and tok["full_p90"].to_list() == [30.0] * 5
    assert r"Deciles (pop.), fused & 110 & 10/30/60 & 5/30/60 & 12.5\% & 0.0\% & 10 & 9.5 (3) & 7 \\" in (
        tables / "tokenization.tex").read_text()
    skipped = {s.item: s.reason for s in man.skipped}
    assert "centiles_fused" in skipped["model_inventory/exp1"] and "model_inventory/exp2" in skipped


# ------------------------------------------------------------------------------------ outcome descriptives
def test_outcome_descriptives_per_split_and_cohort(built: tuple[Path, object]) -> None:
    tables, _ = built
    df = pl.read_csv(tables / "outcome_descriptives_binary.csv")
    # exp1 and exp2 have identical outcome tables (same cohort): one column group
    assert list(dict.fromkeys(df["experiments"])) == ["exp1, exp2", "exp3"]
    for exps, seed in (("exp1, exp2", 1), ("exp3", 2)):
        raw = outcomes_frame(60, seed).filter(pl.col("split") == "held_out")
        ok = raw.filter(pl.col("hyperkalemia").is_not_null() & ~pl.col("hyperkalemia_24h"))
        r = df.filter((pl.col("experiments") == exps) & (pl.col("outcome") == "hyperkalemia")
                      & (pl.col("split") == "held_out")).row(0, named=True)
        assert (r["n_eligible"], r["n_positive"], r["n_negative"]) == (
            ok.height, int(ok["hyperkalemia"].sum()), ok.height - int(ok["hyperkalemia"].sum()))
    assert set(df.filter(pl.col("cohort") == "icu")["outcome"]) >= {"prolonged_icu_stay"}
    assert "icu_admission" not in set(df.filter(pl.col("cohort") == "icu")["outcome"])
    reg = pl.read_csv(tables / "outcome_descriptives_regression.csv")
    raw = outcomes_frame(60, 2).filter(pl.col("split") == "train")["length_of_stay"].drop_nulls()
    r = reg.filter((pl.col("experiments") == "exp3") & (pl.col("outcome") == "length_of_stay")
                   & (pl.col("split") == "train")).row(0, named=True)
    assert r["mean"] == pytest.approx(raw.mean()) and r["sd"] == pytest.approx(raw.std(ddof=1))
    los = _group_blocks((tables / "outcome_descriptives_regression.tex").read_text())["Hospital LOS (h)"]
    assert los[0].startswith("Train & ")
    assert los[0].endswith(f"& {r['n_eligible']} & {r['mean']:.1f} ({r['sd']:.1f}) \\\\")  # exp3 = last group


def test_exp3_remapping_coverage(built: tuple[Path, object]) -> None:
    tables, _ = built
    df = pl.read_csv(tables / "exp3_remapping_coverage.csv")
    lab = df.filter((pl.col("split") == "train") & (pl.col("domain") == "LAB")).row(0, named=True)
    assert (lab["n_total"], lab["n_mapped"], lab["pct_remapped"], lab["reaches_model"]) == (1000, 875, 87.5, True)
    tex = (tables / "exp3_remapping_coverage.tex").read_text()
    assert r"LAB & yes & 1{,}000 & 87.5\% & 1{,}000 & 87.5\% & 1{,}000 & 87.5\% & 120 $\rightarrow$ 40 \\" in tex
    assert r"MEDICATION & no & 0 & n/a" in tex
    with pytest.raises(ValueError, match=r"meta\.json: coverage\.train\.LAB: key 'n_mapped' missing"):
        exp3_remapping_coverage({"coverage": {"train": {"LAB": {"n_total": 1}}}}, "meta.json")
    assert EXP3_META["coverage"]["train"]["VITAL"]["pct_remapped"] == df.filter(
        (pl.col("split") == "train") & (pl.col("domain") == "VITAL"))["pct_remapped"][0]


# ------------------------------------------------------------------------------------------- skipping
def test_missing_inputs_are_skipped_with_reasons(built: tuple[Path, object], tmp_path: Path) -> None:
    tables, man = built
    skipped = {s.item: s.reason for s in man.skipped}
    assert skipped["results_exp2_primary_binary"] == "no metrics rows for family exp2_primary_binary"
    assert "pairwise_exp3_additional_binary" in skipped
    assert not (tables / "results_exp2_primary_binary.tex").exists()
    assert not (tables / "stale_table.tex").exists()  # the folder was swapped in whole
    assert sorted(p.name for p in tables.iterdir()) == sorted(Path(f).name for f in man.files)
    for tex in tables.glob("*.tex"):  # every Unicode label was escaped (no inputenc surprises)
        assert tex.read_text().isascii(), tex.name
    # an empty IRBENCH_HOME: nothing but the macros, every skip recorded, no crash
    empty = build_tables(tmp_path / "out", PaperInputs(tmp_path / "nothing"))
    assert sorted(empty.files) == ["tables/macros.csv", "tables/macros.tex"]
    items = {s.item for s in empty.skipped}
    assert {"statistics", "binary_sweep", "model_inventory", "tokenization", "outcome_descriptives",
            "exp3_remapping_coverage"} <= items
    assert "no all_family_metrics.csv" in next(s.reason for s in empty.skipped if s.item == "statistics")
