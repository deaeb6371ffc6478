"""The paper's tables: each builder returns a :class:`TableResult` (a machine-readable frame for the CSV, a
:class:`~irbench_assets.paper.latex.TableSpec` for LaTeX and Markdown); :func:`write_table` writes
``<name>.csv`` and ``<name>.tex`` atomically; :func:`build_tables` writes them all and the text macros.

Tables: evaluation coverage, binary and regression sweeps (best handle per outcome × experiment), full
per-handle results per family, baseline-centred pairwise deltas per family, model inventory, tokenization
appendix, outcome descriptives (binary, regression), Exp3 remapping coverage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from irbench_assets.experiments import Experiment
from irbench_assets.outcomes.definitions import families_for
from irbench_assets.outcomes.evaluation import outcome_descriptives
from irbench_assets.paper.inputs import (
    ALPHA,
    FAMILY_SUFFIX_LABELS,
    METRIC_LABELS,
    METRIC_ORDER,
    OUTCOME_LABELS,
    OUTCOME_ORDER,
    PRIMARY_METRIC,
    Manifest,
    MissingInput,
    PaperInputs,
    Skipped,
    StatsTables,
    common_outcome_means,
    family_suffix,
    grouped_skips,
    outcome_label,
    outcome_rank,
    read_json,
)
from irbench_assets.paper.latex import (
    NA,
    Cell,
    Column,
    Group,
    TableSpec,
    ci,
    count,
    is_missing,
    macro_name,
    magnitude_digits,
    num,
    pvalue,
    render_macros,
)
from irbench_assets.storage import atomic_dir, atomic_file

SPLIT_LABELS = {"train": "Train", "tuning": "Tuning", "held_out": "Held-out"}
COHORT_LABELS = {"all": "all", "icu": "ICU"}


@dataclass
class TableResult:
    """One table: its CSV frame, its LaTeX/Markdown spec, and parts skipped for missing inputs."""

    name: str
    frame: pl.DataFrame
    spec: TableSpec
    skipped: list[Skipped] = field(default_factory=list)


def _finite(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _digits(metric: str, ref: float | None) -> int:
    return magnitude_digits(ref) if metric in ("mae", "rmse") else 3


def _label(exps: Mapping[str, Experiment], experiment: str, handle: str) -> str:
    return exps[experiment].handles[handle].label


def _exp_title(exps: Mapping[str, Experiment], experiment: str) -> str:
    return f"{experiment.capitalize()}: {exps[experiment].title}"


def _outcome_labels(col: pl.Expr) -> pl.Expr:
    return col.replace_strict(OUTCOME_LABELS, default=col, return_dtype=pl.String)


def _handle_labels(exp: Experiment, col: pl.Expr) -> pl.Expr:
    return col.replace_strict({h: c.label for h, c in exp.handles.items()}, return_dtype=pl.String)


def _best(points: list[tuple[str, float | None]], higher: bool) -> set[str]:
    """Handles whose value equals the best finite value (all tied ones)."""
    finite = [(h, v) for h, v in points if _finite(v)]
    if not finite:
        return set()
    b = max(v for _, v in finite) if higher else min(v for _, v in finite)
    return {h for h, v in finite if v == b}


# -------------------------------------------------------------------------------------------- coverage
def evaluation_coverage(stats: StatsTables, exps: Mapping[str, Experiment]) -> TableResult:
    """Per experiment: models evaluated, outcomes × metrics per task, held-out N range, baseline tests."""
    rows = []
    m = stats.metrics
    for e in stats.experiments():
        me = m.filter(pl.col("experiment") == e)
        rec: dict[str, Any] = {"experiment": e, "title": exps[e].title,
                               "n_models": me.get_column("handle").n_unique(),
                               "n_models_planned": len(exps[e].handles), "baseline": exps[e].baseline}
        for task, key in (("classification", "binary"), ("regression", "regression")):
            t = me.filter(pl.col("task_type") == task)
            rec[f"n_{key}_outcomes"] = t.get_column("outcome").n_unique()
            present = set(t.get_column("metric").unique().to_list())
            rec[f"{key}_metrics"] = ", ".join(METRIC_LABELS[x] for x in METRIC_ORDER[task] if x in present)
        n_eval = me.get_column("n_eval").drop_nulls()
        rec["n_eval_min"] = int(n_eval.min()) if n_eval.len() else None  # type: ignore[arg-type]
        rec["n_eval_max"] = int(n_eval.max()) if n_eval.len() else None  # type: ignore[arg-type]
        pw = stats.pairwise_baseline
        if pw is not None and (pe := pw.filter(pl.col("experiment") == e)).height:
            p = pe.get_column("p_adj").fill_nan(None)
            rec["n_baseline_tests"] = int(p.drop_nulls().len())
            rec["n_significant"] = int((p < ALPHA).sum())
        else:
            rec["n_baseline_tests"], rec["n_significant"] = None, None
        rows.append(rec)
    frame = pl.DataFrame(rows, schema={
        "experiment": pl.String, "title": pl.String, "n_models": pl.Int64, "n_models_planned": pl.Int64,
        "baseline": pl.String, "n_binary_outcomes": pl.Int64, "binary_metrics": pl.String,
        "n_regression_outcomes": pl.Int64, "regression_metrics": pl.String, "n_eval_min": pl.Int64,
        "n_eval_max": pl.Int64, "n_baseline_tests": pl.Int64, "n_significant": pl.Int64})
    spec = TableSpec(
        "evaluation_coverage",
        "Evaluation coverage per experiment: models evaluated (of those planned), outcomes × metrics per task "
        "(logistic-regression probes for binary outcomes, ridge probes for regressions), held-out admissions "
        "per outcome, and baseline-centred paired permutation tests (BH within family × metric; "
        f"significant at adjusted p < {ALPHA}).",
        [Column("Experiment", "p{3.4cm}"), Column("Models", "r"), Column("Baseline", "p{2.4cm}"),
         Column("Binary", "p{2.6cm}"), Column("Regression", "p{2.6cm}"), Column("Held-out N", "r"),
         Column("Tests (sig.)", "r")],
        size=r"\footnotesize",
    )
    for r in frame.iter_rows(named=True):
        nb, nr = r["n_binary_outcomes"], r["n_regression_outcomes"]
        rng = (Cell(NA, NA) if r["n_eval_min"] is None else
               Cell(f"{count(r['n_eval_min']).md}–{count(r['n_eval_max']).md}",
                    f"{count(r['n_eval_min']).tex}--{count(r['n_eval_max']).tex}"))
        tests = (Cell(NA, NA) if r["n_baseline_tests"] is None else
                 Cell(f"{r['n_baseline_tests']} ({r['n_significant']})", f"{r['n_baseline_tests']} ({r['n_significant']})"))
        spec.rows.append([
            Cell.text(_exp_title(exps, r["experiment"])),
            Cell.text(f"{r['n_models']}/{r['n_models_planned']}"),
            Cell.text(_label(exps, r["experiment"], r["baseline"])),
            Cell.text(f"{nb} × {r['binary_metrics']}" if nb else "none"),
            Cell.text(f"{nr} × {r['regression_metrics']}" if nr else "none"),
            rng, tests,
        ])
    return TableResult("evaluation_coverage", frame, spec)


# ---------------------------------------------------------------------------------------------- sweeps
def sweep(stats: StatsTables, exps: Mapping[str, Experiment], task_type: str) -> TableResult:
    """Best handle per outcome × experiment by the task's primary metric (AUROC / Spearman ρ), with 95% CI."""
    metric = PRIMARY_METRIC[task_type]
    name = "binary_sweep" if task_type == "classification" else "regression_sweep"
    m = stats.metrics.filter((pl.col("task_type") == task_type) & (pl.col("metric") == metric))
    if m.height == 0:
        raise MissingInput(f"no {metric} rows in the metrics table")
    rows = []
    outcomes = sorted(set(m.get_column("outcome").to_list()), key=outcome_rank)
    for outcome in outcomes:
        for e in stats.experiments():
            part = m.filter((pl.col("experiment") == e) & (pl.col("outcome") == outcome))
            if part.height == 0:
                continue
            recs = part.to_dicts()
            higher = bool(recs[0]["higher_is_better"])
            best = _best([(r["handle"], r["point"]) for r in recs], higher)
            top = next((r for r in recs if r["handle"] in best), None)  # yaml order breaks ties
            base = next((r for r in recs if r["handle"] == exps[e].baseline), None)
            rows.append({
                "outcome": outcome, "outcome_label": outcome_label(outcome), "experiment": e,
                "family_name": recs[0]["family_name"], "metric": metric,
                "best_handle": top["handle"] if top else None,
                "best_label": _label(exps, e, top["handle"]) if top else None,
                "point": top["point"] if top else None, "ci_lo": top["ci_lo"] if top else None,
                "ci_hi": top["ci_hi"] if top else None, "n_eval": top["n_eval"] if top else None,
                "n_handles": part.height, "baseline_point": base["point"] if base else None,
            })
    frame = pl.DataFrame(rows, schema={
        "outcome": pl.String, "outcome_label": pl.String, "experiment": pl.String, "family_name": pl.String,
        "metric": pl.String, "best_handle": pl.String, "best_label": pl.String, "point": pl.Float64,
        "ci_lo": pl.Float64, "ci_hi": pl.Float64, "n_eval": pl.Int64, "n_handles": pl.Int64,
        "baseline_point": pl.Float64})
    what = "binary outcome" if task_type == "classification" else "regression outcome"
    spec = TableSpec(
        name,
        f"Best handle per {what} and experiment by {METRIC_LABELS[metric]} on the held-out split, with the "
        "95% percentile bootstrap CI (2000 resamples) and the baseline's value.",
        [Column("Outcome", "p{3.6cm}"), Column("Exp."), Column("Best handle", "p{4.2cm}"),
         Column(f"{METRIC_LABELS[metric]} [95% CI]", "r"), Column("Baseline", "r"), Column("N", "r")],
        long=True, size=r"\footnotesize",
    )
    prev = None
    for r in frame.iter_rows(named=True):
        spec.rows.append([
            Cell.text(r["outcome_label"] if r["outcome"] != prev else ""),
            Cell.text(r["experiment"].capitalize()),
            Cell.text(r["best_label"] or NA),
            ci(r["point"], r["ci_lo"], r["ci_hi"]),
            num(r["baseline_point"]),
            count(r["n_eval"]),
        ])
        prev = r["outcome"]
    return TableResult(name, frame, spec)


# ------------------------------------------------------------------------------------ per-family results
def family_results(stats: StatsTables, exps: Mapping[str, Experiment], family: str) -> TableResult:
    """Every handle × outcome × metric of one family (point [95% CI]); the best value per outcome and metric
    is bold (direction from ``higher_is_better``)."""
    m = stats.metrics.filter(pl.col("family_name") == family)
    if m.height == 0:
        raise MissingInput(f"no metrics rows for family {family}")
    e = m.get_column("experiment")[0]
    task = m.get_column("task_type")[0]
    metrics = [x for x in METRIC_ORDER[task] if x in set(m.get_column("metric").to_list())]
    best: dict[tuple[str, str], set[str]] = {}
    for (outcome, metric), part in m.group_by(["outcome", "metric"], maintain_order=True):
        recs = part.to_dicts()
        best[(outcome, metric)] = _best([(r["handle"], r["point"]) for r in recs], bool(recs[0]["higher_is_better"]))
    best_rows = pl.DataFrame([(o, x, h) for (o, x), hs in best.items() for h in sorted(hs)],
                             schema={"outcome": pl.String, "metric": pl.String, "handle": pl.String}, orient="row")
    frame = m.with_columns(
        _outcome_labels(pl.col("outcome")).alias("outcome_label"),
        _handle_labels(exps[e], pl.col("handle")).alias("handle_label"),
    ).join(best_rows.with_columns(pl.lit(True).alias("is_best")), on=["outcome", "metric", "handle"], how="left",
           maintain_order="left").with_columns(pl.col("is_best").fill_null(False)).select("family_name", "experiment", "task_type", "outcome", "outcome_label", "handle", "handle_label",
             "metric", "higher_is_better", "n_eval", "point", "ci_lo", "ci_hi", "is_best")
    suffix = FAMILY_SUFFIX_LABELS.get(family_suffix(family, e), family)
    spec = TableSpec(
        f"results_{family}",
        f"{_exp_title(exps, e)} — {suffix}: every handle on the held-out split, point estimate with 95% "
        "percentile bootstrap CI; bold = best per outcome and metric (lower is better for "
        f"{', '.join(METRIC_LABELS[x] for x in metrics if x in ('brier', 'ece_15', 'mae', 'rmse'))}).",
        [Column("Handle"), Column("N", "r"), *[Column(METRIC_LABELS[x], "r") for x in metrics]],
        long=True, landscape=len(metrics) > 2, size=r"\scriptsize",
    )
    by_key = {(r["outcome"], r["handle"], r["metric"]): r for r in frame.iter_rows(named=True)}
    outcomes = sorted(set(frame.get_column("outcome").to_list()), key=outcome_rank)
    for outcome in outcomes:
        spec.rows.append(Group(outcome_label(outcome)))
        handles = [h for h in exps[e].handles if any((outcome, h, x) in by_key for x in metrics)]
        for h in handles:
            cells = []
            n_eval = None
            for x in metrics:
                r = by_key.get((outcome, h, x))
                if r is None:
                    cells.append(Cell(NA, NA))
                    continue
                n_eval = n_eval if n_eval is not None else r["n_eval"]
                c = ci(r["point"], r["ci_lo"], r["ci_hi"], _digits(x, r["point"]))
                cells.append(c.bold() if r["is_best"] else c)
            lab = _label(exps, e, h) + (" (baseline)" if h == exps[e].baseline else "")
            spec.rows.append([Cell.text(lab), count(n_eval), *cells])
    return TableResult(f"results_{family}", frame, spec)


def pairwise_results(stats: StatsTables, exps: Mapping[str, Experiment], family: str) -> TableResult:
    """Baseline-centred deltas of one family: Δ = handle − baseline with paired 95% CI per metric, BH-adjusted
    p; a cell is marked when p_adj < 0.05."""
    if stats.pairwise_baseline is None:
        raise MissingInput("no all_family_pairwise_baseline.csv")
    pw = stats.pairwise_baseline.filter(pl.col("family_name") == family)
    if pw.height == 0:
        raise MissingInput(f"no baseline pairwise rows for family {family}")
    e = pw.get_column("experiment")[0]
    task = pw.get_column("task_type")[0]
    bases = sorted(set(pw.get_column("handle0").to_list()))
    if len(bases) != 1:
        raise ValueError(f"all_family_pairwise_baseline: family {family} has several handle0 values {bases}; "
                         "a baseline-centred table needs one baseline")
    base = bases[0]
    metrics = [x for x in METRIC_ORDER[task] if x in set(pw.get_column("metric").to_list())]
    primary = PRIMARY_METRIC[task]
    frame = pw.with_columns(
        _outcome_labels(pl.col("outcome")).alias("outcome_label"),
        _handle_labels(exps[e], pl.col("handle1")).alias("handle1_label"),
        (pl.col("p_adj").fill_nan(None) < ALPHA).fill_null(False).alias("significant"),
    ).select("family_name", "experiment", "task_type", "outcome", "outcome_label", "metric", "higher_is_better",
             "handle0", "handle1", "handle1_label", "n_eval_common", "metric0", "metric1", "delta_raw",
             "delta_better", "delta_ci_lo_raw", "delta_ci_hi_raw", "p_raw", "p_adj", "significant")
    suffix = FAMILY_SUFFIX_LABELS.get(family_suffix(family, e), family)
    spec = TableSpec(
        f"pairwise_{family}",
        f"{_exp_title(exps, e)} — {suffix}: difference to the baseline ({_label(exps, e, base)}), Δ = handle − "
        "baseline on the admissions all handles share, with the paired bootstrap 95% CI; * marks "
        f"Benjamini–Hochberg-adjusted p < {ALPHA} (paired permutation test, 2000 permutations, BH within family "
        f"and metric). Positive Δ is better for {', '.join(METRIC_LABELS[x] for x in metrics if x in ('roc_auc', 'pr_auc', 'spearman_rho', 'r2'))}, "
        f"negative Δ for the others. The p column is for {METRIC_LABELS[primary]}; every p is in the CSV.",
        [Column("Handle"), Column("N", "r"), *[Column(f"Δ {METRIC_LABELS[x]}", "r") for x in metrics],
         Column(f"p ({METRIC_LABELS[primary]})", "r")],
        long=True, landscape=True, size=r"\scriptsize",
    )
    by_key = {(r["outcome"], r["handle1"], r["metric"]): r for r in frame.iter_rows(named=True)}
    for outcome in sorted(set(frame.get_column("outcome").to_list()), key=outcome_rank):
        spec.rows.append(Group(outcome_label(outcome)))
        for h in [h for h in exps[e].handles if any((outcome, h, x) in by_key for x in metrics)]:
            cells = []
            n = None
            for x in metrics:
                r = by_key.get((outcome, h, x))
                if r is None:
                    cells.append(Cell(NA, NA))
                    continue
                n = n if n is not None else r["n_eval_common"]
                d = _digits(x, r["metric0"])
                cells.append(ci(r["delta_raw"], r["delta_ci_lo_raw"], r["delta_ci_hi_raw"], d, signed=True)
                             .marked(r["significant"]))
            rp = by_key.get((outcome, h, primary))
            spec.rows.append([Cell.text(_label(exps, e, h)), count(n), *cells,
                              pvalue(rp["p_adj"] if rp else None)])
    return TableResult(f"pairwise_{family}", frame, spec)


# ------------------------------------------------------------------------------------------ model inventory
def _human(n: float | None, unit: str = "") -> Cell:
    if is_missing(n):
        return Cell(NA, NA)
    a = abs(float(n))  # type: ignore[arg-type]
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return Cell.text(f"{n / div:.3g}{suf}{unit}")
    return Cell.text(f"{n:.3g}{unit}")


def model_inventory(inputs: PaperInputs) -> TableResult:
    """Per trained model: vocabulary size, parameters, initial/final training loss, tuning loss, tokens seen,
    throughput, chosen learning rate (``summary.json`` + ``config.json`` of each model directory)."""
    exps = inputs.exps
    rows: list[dict[str, Any]] = []
    missing: dict[str, list[str]] = {}
    for e, exp in exps.items():
        for h in exp.handles.values():
            mdir = inputs.model(h)
            try:
                summ = read_json(mdir / "summary.json")
                cfg = read_json(mdir / "config.json")
            except MissingInput:
                missing.setdefault(e, []).append(h.handle)
                continue
            rows.append({
                "experiment": e, "handle": h.handle, "label": h.label, "vocab_size": cfg.get("vocab_size"),
                "n_parameters": summ.get("n_parameters"), "initial_loss": summ.get("initial_loss"),
                "final_loss": summ.get("final_loss"), "tuning_loss": summ.get("tuning_loss"),
                "tokens_seen": summ.get("tokens_seen"), "tokens_per_s": summ.get("tokens_per_s"),
                "best_lr": summ.get("best_lr"), "steps": summ.get("steps"),
                "n_lr_runs": len(summ.get("sweep") or []), "device": summ.get("device"),
            })
    if not rows:
        raise MissingInput(f"no model directory with summary.json and config.json yet under "
                           f"{Path(inputs.home) / 'runs' / 'models'}")
    frame = pl.DataFrame(rows, schema={
        "experiment": pl.String, "handle": pl.String, "label": pl.String, "vocab_size": pl.Int64,
        "n_parameters": pl.Int64, "initial_loss": pl.Float64, "final_loss": pl.Float64,
        "tuning_loss": pl.Float64, "tokens_seen": pl.Int64, "tokens_per_s": pl.Float64, "best_lr": pl.Float64,
        "steps": pl.Int64, "n_lr_runs": pl.Int64, "device": pl.String})
    spec = TableSpec(
        "model_inventory",
        "Model inventory: vocabulary size, parameters, mean training loss over the first and last logging "
        "windows, tuning-split loss, training tokens seen, throughput and learning rate (the best of the "
        "sweep for packed Exp1 models).",
        [Column("Handle"), Column("Vocab", "r"), Column("Params", "r"), Column("Initial loss", "r"),
         Column("Final loss", "r"), Column("Tuning loss", "r"), Column("Tokens", "r"), Column("Tokens/s", "r"),
         Column("LR", "r")],
        long=True, size=r"\footnotesize",
    )
    prev = None
    for r in frame.iter_rows(named=True):
        if r["experiment"] != prev:
            spec.rows.append(Group(_exp_title(exps, r["experiment"])))
            prev = r["experiment"]
        lr = Cell(NA, NA) if is_missing(r["best_lr"]) else Cell.text(f"{r['best_lr']:.0e}")
        spec.rows.append([Cell.text(r["label"]), count(r["vocab_size"]), _human(r["n_parameters"]),
                          num(r["initial_loss"]), num(r["final_loss"]), num(r["tuning_loss"]),
                          _human(r["tokens_seen"]), _human(r["tokens_per_s"]), lr])
    return TableResult("model_inventory", frame, spec,
                       grouped_skips("model_inventory", missing, "model directory (summary.json, config.json)"))


# ------------------------------------------------------------------------------------- tokenization appendix
def tokenization_appendix(inputs: PaperInputs) -> TableResult:
    """Per tokenized handle: vocabulary, sequence-length quantiles (train; full and first 24 h), overflow
    fraction beyond max_len, realized vs nominal bins, zero-frequency tokens (from ``tokenizer.json``)."""
    exps = inputs.exps
    rows: list[dict[str, Any]] = []
    missing: dict[str, list[str]] = {}
    for e, exp in exps.items():
        for h in exp.handles.values():
            try:
                tj = read_json(inputs.tokenized(h) / "tokenizer.json")
            except MissingInput:
                missing.setdefault(e, []).append(h.handle)
                continue
            md = tj.get("metadata")
            if not isinstance(md, dict):
                raise ValueError(f"{inputs.tokenized(h) / 'tokenizer.json'}: key 'metadata' missing")
            sl = md.get("seq_len", {}).get("train", {})
            of = md.get("overflow_fraction", {})
            b = md.get("bins", {})
            rows.append({
                "experiment": e, "handle": h.handle, "label": h.label, "vocab_size": md.get("vocab_size"),
                "max_len": md.get("max_len"),
                **{f"full_{q}": sl.get("full", {}).get(q) for q in ("p50", "p90", "p99", "max")},
                **{f"first_24h_{q}": sl.get("first_24h", {}).get(q) for q in ("p50", "p90", "p99", "max")},
                "overflow_full_train": of.get("train", {}).get("full"),
                "overflow_first_24h_train": of.get("train", {}).get("first_24h"),
                "overflow_first_24h_held_out": of.get("held_out", {}).get("first_24h"),
                "n_bins_nominal": b.get("n_bins_nominal"), "n_numeric_codes": b.get("n_numeric_codes"),
                "realized_mean": b.get("realized_mean"), "realized_min": b.get("realized_min"),
                "n_codes_realized_below_nominal": b.get("n_codes_realized_below_nominal"),
                "zero_frequency_tokens": md.get("zero_frequency_tokens"),
            })
    if not rows:
        raise MissingInput(f"no tokenizer.json yet under {Path(inputs.home) / 'runs' / 'tokenized'}")
    frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("^(full|first_24h)_.*$", "^overflow_.*$", "realized_mean").cast(pl.Float64))
    spec = TableSpec(
        "tokenization",
        "Tokenization per handle (train split): vocabulary size, sequence length (tokens) of full timelines and "
        "of the first 24 h (median / 90th / 99th percentile), share of timelines longer than the context "
        "(full: windowed in training; first 24 h: truncated), bins per numeric code (nominal; realized = holding "
        "at least one train value, mean and minimum over codes), and vocabulary entries never seen in train.",
        [Column("Handle"), Column("Vocab", "r"), Column("Full p50/p90/p99", "r"), Column("24 h p50/p90/p99", "r"),
         Column("Overflow full", "r"), Column("Overflow 24 h", "r"), Column("Bins nominal", "r"),
         Column("Realized mean (min)", "r"), Column("Zero-freq.", "r")],
        long=True, landscape=True, size=r"\footnotesize",
    )

    def q3(r: dict[str, Any], k: str) -> Cell:
        vals = [r[f"{k}_{q}"] for q in ("p50", "p90", "p99")]
        return Cell.text("/".join(NA if is_missing(v) else f"{v:.0f}" for v in vals))

    def pct(x: float | None) -> Cell:
        return Cell(NA, NA) if is_missing(x) else Cell(f"{100 * x:.1f}%", f"{100 * x:.1f}\\%")

    prev = None
    for r in frame.iter_rows(named=True):
        if r["experiment"] != prev:
            spec.rows.append(Group(_exp_title(exps, r["experiment"])))
            prev = r["experiment"]
        real = (Cell(NA, NA) if is_missing(r["realized_mean"]) else
                Cell.text(f"{r['realized_mean']:.1f} ({r['realized_min']})"))
        spec.rows.append([Cell.text(r["label"]), count(r["vocab_size"]), q3(r, "full"), q3(r, "first_24h"),
                          pct(r["overflow_full_train"]), pct(r["overflow_first_24h_train"]),
                          count(r["n_bins_nominal"]), real, count(r["zero_frequency_tokens"])])
    return TableResult("tokenization", frame, spec, grouped_skips("tokenization", missing, "tokenizer.json"))


# ---------------------------------------------------------------------------------------- descriptives
def outcome_descriptives_frame(inputs: PaperInputs) -> tuple[pl.DataFrame, list[Skipped]]:
    """Descriptives per cohort group, split and outcome; experiments with identical descriptives (same
    cohort) share one group, named ``<cohort> (<exp>, <exp>)``."""
    groups: list[tuple[str, list[str], pl.DataFrame]] = []
    skipped = []
    for e, exp in inputs.exps.items():
        path = inputs.outcomes(e)
        if not path.exists():
            skipped.append(Skipped(f"outcome_descriptives/{e}", f"{path} does not exist"))
            continue
        df = pl.read_parquet(path)
        missing = [c for c in ("hadm_id", "split") if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: columns {missing} missing")
        cohort = next(iter(exp.handles.values())).cohort
        d = outcome_descriptives(df, families_for(e))
        for g in groups:
            if g[0] == cohort and g[2].drop("family").equals(d.drop("family")):
                g[1].append(e)
                break
        else:
            groups.append((cohort, [e], d))
    if not groups:
        raise MissingInput("no experiment has an outcomes.parquet yet")
    frames = [d.with_columns(pl.lit(cohort).alias("cohort"), pl.lit(", ".join(es)).alias("experiments"))
              .drop("family") for cohort, es, d in groups]
    out = pl.concat(frames).select("cohort", "experiments", "split", "outcome", "task_type", "n_eligible",
                                   "n_positive", "n_negative", "prevalence", "mean", "sd")
    split_rank = {s: i for i, s in enumerate(SPLIT_LABELS)}
    group_rank = {", ".join(es): i for i, (_, es, _) in enumerate(groups)}
    out = out.with_columns(
        pl.col("experiments").replace_strict(group_rank, return_dtype=pl.Int64).alias("_g"),
        pl.col("outcome").replace_strict({o: i for i, o in enumerate(OUTCOME_ORDER)}, default=len(OUTCOME_ORDER),
                                         return_dtype=pl.Int64).alias("_o"),
        pl.col("split").replace_strict(split_rank, default=len(split_rank), return_dtype=pl.Int64).alias("_s"),
    ).sort("_o", "_s", "_g").drop("_g", "_o", "_s")
    return out, skipped


def outcome_descriptives_tables(inputs: PaperInputs) -> list[TableResult]:
    """Binary (eligible N, positives (prevalence), negatives) and regression (eligible N, mean (SD))
    descriptives, rows = outcome × split, column groups = cohort."""
    frame, skipped = outcome_descriptives_frame(inputs)
    group_names = list(dict.fromkeys(frame.get_column("experiments").to_list()))
    cohort_of = dict(zip(frame.get_column("experiments"), frame.get_column("cohort"), strict=False))
    out = []
    for task, name in (("classification", "outcome_descriptives_binary"),
                       ("regression", "outcome_descriptives_regression")):
        f = frame.filter(pl.col("task_type") == task)
        cols = [Column("Split")]
        for g in group_names:
            tag = f"{COHORT_LABELS.get(cohort_of[g], cohort_of[g])}: {g}"
            if task == "classification":
                cols += [Column(f"N ({tag})", "r"), Column("Pos. (%)", "r"), Column("Neg.", "r")]
            else:
                cols += [Column(f"N ({tag})", "r"), Column("Mean (SD)", "r")]
        spec = TableSpec(
            name,
            ("Binary outcome descriptives: eligible admissions (label known and, where a first-24 h flag exists, "
             "not already positive in the first 24 h), positives (prevalence) and negatives, per split and cohort."
             if task == "classification" else
             "Regression outcome descriptives: admissions with a target value, mean (sample SD), per split and "
             "cohort (hours for length of stay; the lab or vital sign's unit otherwise)."),
            cols, long=True, size=r"\footnotesize")
        by_key = {(r["experiments"], r["outcome"], r["split"]): r for r in f.iter_rows(named=True)}
        for outcome in dict.fromkeys(f.get_column("outcome").to_list()):
            spec.rows.append(Group(outcome_label(outcome)))
            splits = [s for s in dict.fromkeys(f.filter(pl.col("outcome") == outcome).get_column("split").to_list())]
            for s in splits:
                row = [Cell.text(SPLIT_LABELS.get(s, s))]
                for g in group_names:
                    r = by_key.get((g, outcome, s))
                    if r is None:
                        row += [Cell(NA, NA)] * (3 if task == "classification" else 2)
                    elif task == "classification":
                        pos = count(r["n_positive"])
                        prev = r["prevalence"]
                        pc = pos if is_missing(prev) else Cell(f"{pos.md} ({100 * prev:.1f})",
                                                               f"{pos.tex} ({100 * prev:.1f})")
                        row += [count(r["n_eligible"]), pc, count(r["n_negative"])]
                    else:
                        dg = min(magnitude_digits(r["mean"]), 2)
                        ms = (Cell(NA, NA) if is_missing(r["mean"]) else
                              Cell(f"{num(r['mean'], dg).md} ({num(r['sd'], dg).md})",
                                   f"{num(r['mean'], dg).tex} ({num(r['sd'], dg).tex})"))
                        row += [count(r["n_eligible"]), ms]
                spec.rows.append(row)
        out.append(TableResult(name, f, spec, skipped))
    return out


# ------------------------------------------------------------------------------------- Exp3 remapping
def exp3_remapping_coverage(meta: dict[str, Any], source: str = "meta.json") -> TableResult:
    """Events whose code the CLIF mapping rewrote, per split × domain, and distinct train codes native →
    mapped (from the mapped arm's ``meta.json``)."""
    cov = meta.get("coverage")
    if not isinstance(cov, dict):
        raise ValueError(f"{source}: key 'coverage' missing or not an object")
    tok_domains = set(meta.get("tokenizer_domains", []))
    distinct = meta.get("n_distinct_codes_train", {})
    splits = [s for s in SPLIT_LABELS if s in cov] + sorted(s for s in cov if s not in SPLIT_LABELS)
    domains = list(dict.fromkeys(d for s in splits for d in cov[s]))
    rows = []
    for s in splits:
        for d in domains:
            c = cov[s].get(d)
            if c is None:
                continue
            for k in ("n_total", "n_mapped"):
                if k not in c:
                    raise ValueError(f"{source}: coverage.{s}.{d}: key {k!r} missing")
            rows.append({"split": s, "domain": d, "n_total": c["n_total"], "n_mapped": c["n_mapped"],
                         "n_unmapped": c.get("n_unmapped", c["n_total"] - c["n_mapped"]),
                         "pct_remapped": c.get("pct_remapped"), "reaches_model": d in tok_domains,
                         "n_codes_native_train": distinct.get(d, {}).get("native"),
                         "n_codes_mapped_train": distinct.get(d, {}).get("mapped")})
    frame = pl.DataFrame(rows, schema={
        "split": pl.String, "domain": pl.String, "n_total": pl.Int64, "n_mapped": pl.Int64, "n_unmapped": pl.Int64,
        "pct_remapped": pl.Float64, "reaches_model": pl.Boolean, "n_codes_native_train": pl.Int64,
        "n_codes_mapped_train": pl.Int64})
    cols = [Column("Domain"), Column("In model")]
    for s in splits:
        cols += [Column(f"Events {SPLIT_LABELS.get(s, s)}", "r"), Column("Remapped", "r")]
    cols += [Column("Train codes native → mapped", "r")]
    spec = TableSpec(
        "exp3_remapping_coverage",
        "Exp3 CLIF remapping coverage: events per domain and split, share whose code the mapping rewrote, and "
        "distinct train codes before and after mapping. Only the LAB and VITAL domains reach the Exp3 tokenizer "
        "(column In model).",
        cols, size=r"\footnotesize")
    by = {(r["split"], r["domain"]): r for r in rows}
    for d in domains:
        row = [Cell.text(d), Cell.text("yes" if d in tok_domains else "no")]
        for s in splits:
            r = by.get((s, d))
            if r is None:
                row += [Cell(NA, NA), Cell(NA, NA)]
                continue
            p = r["pct_remapped"]
            row += [count(r["n_total"]), Cell(NA, NA) if is_missing(p) else Cell(f"{p:.1f}%", f"{p:.1f}\\%")]
        nat = distinct.get(d, {}).get("native")
        mp = distinct.get(d, {}).get("mapped")
        row.append(Cell(NA, NA) if nat is None else Cell(f"{count(nat).md} → {count(mp).md}",
                                                         f"{count(nat).tex} $\\rightarrow$ {count(mp).tex}"))
        spec.rows.append(row)
    return TableResult("exp3_remapping_coverage", frame, spec)


# --------------------------------------------------------------------------------------------- macros
def macro_values(stats: StatsTables | None, exps: Mapping[str, Experiment],
                 exp3_meta: dict[str, Any] | None = None) -> pl.DataFrame:
    """Every number the paper's text uses, as (name, md, tex); always the same names, ``n/a`` when the input
    is missing, so the skeleton compiles whatever has been run."""
    out: list[tuple[str, Cell]] = []
    all_outcomes: dict[str, str] = {}
    for e in exps:
        all_outcomes.update(families_for(e))
    n_bin = sum(1 for f in all_outcomes.values() if f.endswith("binary"))
    out += [("NExperiments", count(len(exps))), ("NModelsPlanned", count(sum(len(x.handles) for x in exps.values()))),
            ("SignificanceLevel", Cell(f"{ALPHA:g}", f"{ALPHA:g}")), ("NOutcomesTotal", count(len(all_outcomes))), ("NBinaryOutcomesTotal", count(n_bin)),
            ("NRegressionOutcomesTotal", count(len(all_outcomes) - n_bin))]
    present = set(stats.experiments()) if stats is not None else set()
    n_models_total = 0
    for e, exp in exps.items():
        p = macro_name(e)
        fam = families_for(e)
        out += [(f"{p}NBinaryOutcomes", count(sum(1 for f in fam.values() if f.endswith("binary")))),
                (f"{p}NRegressionOutcomes", count(sum(1 for f in fam.values() if not f.endswith("binary")))),
                (f"{p}NHandles", count(len(exp.handles))), (f"{p}BaselineLabel", Cell.text(exp.handles[exp.baseline].label))]
        if e in present and stats is not None:
            me = stats.metrics.filter(pl.col("experiment") == e)
            n_models = me.get_column("handle").n_unique()
            n_models_total += n_models
            ne = me.get_column("n_eval").drop_nulls()
            out += [(f"{p}NModels", count(n_models)), (f"{p}NEvalMin", count(ne.min() if ne.len() else None)),
                    (f"{p}NEvalMax", count(ne.max() if ne.len() else None))]
        else:
            out += [(f"{p}NModels", Cell(NA, NA)), (f"{p}NEvalMin", Cell(NA, NA)), (f"{p}NEvalMax", Cell(NA, NA))]
        for metric, tag in (("roc_auc", "AUROC"), ("spearman_rho", "Spearman")):
            means = common_outcome_means(stats.metrics, e, metric)[0] if e in present and stats is not None else {}
            ordered = [(h, means[h]) for h in exp.handles if h in means]
            if ordered:
                bh, bv = max(ordered, key=lambda kv: kv[1])  # first in yaml order on ties
                out += [(f"{p}Best{tag}Handle", Cell.text(exp.handles[bh].label)), (f"{p}Best{tag}", num(bv)),
                        (f"{p}Baseline{tag}", num(means.get(exp.baseline)))]
            else:
                out += [(f"{p}Best{tag}Handle", Cell(NA, NA)), (f"{p}Best{tag}", Cell(NA, NA)),
                        (f"{p}Baseline{tag}", Cell(NA, NA))]
            pw = stats.pairwise_baseline if stats is not None else None
            pe = (pw.filter((pl.col("experiment") == e) & (pl.col("metric") == metric))
                  .with_columns(pl.col("p_adj", "delta_better").fill_nan(None)) if pw is not None else None)
            if pe is not None and pe.height:
                sig = pe.filter(pl.col("p_adj") < ALPHA)
                out += [(f"{p}NTests{tag}", count(pe.get_column("p_adj").drop_nulls().len())),
                        (f"{p}NBetter{tag}", count(sig.filter(pl.col("delta_better") > 0).height)),
                        (f"{p}NWorse{tag}", count(sig.filter(pl.col("delta_better") < 0).height))]
            else:
                out += [(f"{p}NTests{tag}", Cell(NA, NA)), (f"{p}NBetter{tag}", Cell(NA, NA)),
                        (f"{p}NWorse{tag}", Cell(NA, NA))]
    out.append(("NModelsEvaluated", count(n_models_total) if present else Cell(NA, NA)))
    cov = (exp3_meta or {}).get("coverage", {}).get("train", {})
    for d, tag in (("LAB", "Lab"), ("VITAL", "Vital")):
        v = cov.get(d, {}).get("pct_remapped")
        out.append((f"Remap{tag}PctTrain", Cell(NA, NA) if is_missing(v) else Cell(f"{v:.1f}%", f"{v:.1f}\\%")))
    return pl.DataFrame({"name": [n for n, _ in out], "value": [c.md for _, c in out],
                         "tex": [c.tex for _, c in out]})


# --------------------------------------------------------------------------------------------- writing
def write_table(result: TableResult, tables_dir: Path) -> list[Path]:
    """Write ``<name>.csv`` (the frame) and ``<name>.tex`` (booktabs) atomically; return both paths."""
    tables_dir = Path(tables_dir)
    csv, tex = tables_dir / f"{result.name}.csv", tables_dir / f"{result.name}.tex"
    with atomic_file(csv) as tmp:
        result.frame.write_csv(tmp)
    with atomic_file(tex) as tmp:
        tmp.write_text(result.spec.to_tex())
    return [csv, tex]


def write_macros(macros: pl.DataFrame, tables_dir: Path) -> list[Path]:
    """Write ``macros.tex`` (``\\newcommand`` per number) and ``macros.csv`` atomically."""
    tables_dir = Path(tables_dir)
    tex, csv = tables_dir / "macros.tex", tables_dir / "macros.csv"
    pairs = [(r["name"], Cell(r["value"], r["tex"])) for r in macros.iter_rows(named=True)]
    with atomic_file(tex) as tmp:
        tmp.write_text(render_macros(pairs))
    with atomic_file(csv) as tmp:
        macros.write_csv(tmp)
    return [tex, csv]


def family_names(exps: Mapping[str, Experiment]) -> list[str]:
    """Every family of every experiment, in experiment then family order."""
    return [f for e in exps for f in dict.fromkeys(families_for(e).values())]


def table_builders(inputs: PaperInputs, stats: StatsTables | None) -> list[tuple[str, Callable[[], Any]]]:
    """Every table of the paper as (item name, zero-argument builder), in the paper's order."""
    exps = inputs.exps

    def need_stats() -> StatsTables:
        if stats is None:
            raise MissingInput("statistics tables are missing")
        return stats

    items: list[tuple[str, Callable[[], Any]]] = [
        ("evaluation_coverage", lambda: evaluation_coverage(need_stats(), exps)),
        ("binary_sweep", lambda: sweep(need_stats(), exps, "classification")),
        ("regression_sweep", lambda: sweep(need_stats(), exps, "regression")),
    ]
    for fam in family_names(exps):
        items.append((f"results_{fam}", lambda fam=fam: family_results(need_stats(), exps, fam)))
        items.append((f"pairwise_{fam}", lambda fam=fam: pairwise_results(need_stats(), exps, fam)))
    meta_path = inputs.exp3_meta("mapped")
    items += [
        ("model_inventory", lambda: model_inventory(inputs)),
        ("tokenization", lambda: tokenization_appendix(inputs)),
        ("outcome_descriptives", lambda: outcome_descriptives_tables(inputs)),
        ("exp3_remapping_coverage", lambda: exp3_remapping_coverage(read_json(meta_path), str(meta_path))),
    ]
    return items


def build_tables(out_dir: Path, inputs: PaperInputs, stats: StatsTables | None = None,
                 preview_rows: int = 40) -> Manifest:
    """Write every table (CSV + LaTeX) and ``macros.tex``/``macros.csv`` under ``out_dir/tables``.

    ``stats`` defaults to :func:`~irbench_assets.paper.inputs.read_stats` of ``inputs.statistics``. A table
    whose input is missing is skipped with its reason; bad input raises. The folder is written to a
    temporary directory and swapped in, so no table of an earlier build survives that this one skipped.
    """
    from irbench_assets.paper.inputs import built_items, stats_or_skip

    out_dir = Path(out_dir)
    final = out_dir / "tables"
    man = Manifest(out_dir)
    stats = stats_or_skip(inputs, man, stats)
    with atomic_dir(final) as tmp:
        for res in built_items(man, table_builders(inputs, stats)):
            for r in res if isinstance(res, list) else [res]:
                for p in write_table(r, tmp):
                    man.add_file(final / p.name)
                man.previews[r.name] = r.spec.to_markdown(preview_rows)
                man.skipped += r.skipped
        try:
            meta = read_json(inputs.exp3_meta("mapped"))
        except MissingInput:
            meta = None
        macros = macro_values(stats, inputs.exps, meta)
        for p in write_macros(macros, tmp):
            man.add_file(final / p.name)
    man.previews["macros"] = "\n".join(f"- `\\{n}` = {v}" for n, v in zip(macros["name"], macros["value"],
                                                                               strict=True)) + "\n"
    return man
