"""What the paper builders read: locations of the run artifacts, display labels and orders, the validated
statistics tables, and the manifest every builder returns.

A missing input (an experiment not run yet) raises :class:`MissingInput`, which the build functions turn
into a recorded skip; malformed input (unknown handle, missing column) raises ``ValueError`` naming the
file, the column and the offending row or value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from irbench_assets import storage
from irbench_assets.experiments import Experiment, HandleConfig, load_experiments
from irbench_assets.outcomes.definitions import (
    ADDITIONAL_BINARY_ORDER,
    EXTENDED_REGRESSIONS,
    OUTCOMES,
    families_for,
)
from irbench_assets.settings import REPO_ROOT, Settings
from irbench_assets.stats.families import METRICS_SCHEMA, PAIRWISE_SCHEMA

# ------------------------------------------------------------------------------------------ labels
OUTCOME_ORDER: tuple[str, ...] = (
    "same_admission_death",
    "long_length_of_stay",
    "icu_admission",
    "prolonged_icu_stay",
    "imv_event",
    *ADDITIONAL_BINARY_ORDER,
    "length_of_stay",
    *EXTENDED_REGRESSIONS,
)
OUTCOME_LABELS: dict[str, str] = {
    "same_admission_death": "Hospital mortality",
    "long_length_of_stay": "Hospital LOS > 7 d",
    "icu_admission": "ICU admission",
    "prolonged_icu_stay": "ICU LOS > 48 h",
    "imv_event": "Invasive mechanical ventilation",
    "hyperkalemia": "Hyperkalemia (K ≥ 6.5)",
    "severe_hypokalemia": "Severe hypokalemia (K < 2.5)",
    "severe_anemia": "Severe anemia (Hb < 7)",
    "hypoglycemia": "Hypoglycemia (glucose < 54)",
    "profound_hyponatremia": "Profound hyponatremia (Na < 120)",
    "severe_hypernatremia": "Severe hypernatremia (Na ≥ 160)",
    "tachycardia_hr130": "Tachycardia (HR ≥ 130)",
    "severe_hypertension": "Severe hypertension",
    "vasopressor_initiation": "Vasopressor initiation",
    "hypotension": "Hypotension",
    "crrt_initiation": "CRRT initiation",
    "hemodialysis_initiation": "Hemodialysis initiation",
    "length_of_stay": "Hospital LOS (h)",
    "peak_creatinine": "Peak creatinine",
    "peak_troponin": "Peak troponin",
    "min_hemoglobin": "Minimum hemoglobin",
    "peak_potassium": "Peak potassium",
    "min_potassium": "Minimum potassium",
    "min_glucose": "Minimum glucose",
    "min_sodium": "Minimum sodium",
    "max_sodium": "Maximum sodium",
    "peak_bnp": "Peak BNP",
    "max_heart_rate": "Maximum heart rate",
    "max_sbp": "Maximum SBP",
    "max_dbp": "Maximum DBP",
}
METRIC_ORDER: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "pr_auc", "brier", "ece_15"),
    "regression": ("spearman_rho", "r2", "mae", "rmse"),
}
METRIC_LABELS = {"roc_auc": "AUROC", "pr_auc": "AUPRC", "brier": "Brier", "ece_15": "ECE-15",
                 "spearman_rho": "Spearman ρ", "r2": "R²", "mae": "MAE", "rmse": "RMSE"}
#: The metric a sweep, forest plot, heatmap and axis summary rank by.
PRIMARY_METRIC = {"classification": "roc_auc", "regression": "spearman_rho"}
TASK_LABELS = {"classification": "binary", "regression": "regression"}
FAMILY_SUFFIX_LABELS = {"primary_binary": "primary binary outcomes", "additional_binary": "additional binary outcomes",
                        "length_of_stay": "hospital length of stay", "extended_regression": "extended regression outcomes"}
ALPHA = 0.05

#: Design axes of the experiment matrix (HandleConfig fields) with display names and level labels.
AXES: dict[str, str] = {"quantizer": "Granularity", "anchoring": "Anchoring", "fused": "Fusion",
                        "representation": "Value encoding", "temporal": "Time encoding", "arm": "Vocabulary arm"}
LEVEL_LABELS: dict[str, dict[Any, str]] = {
    "quantizer": {"deciles": "Deciles", "ventiles": "Ventiles", "trentiles": "Trentiles", "centiles": "Centiles"},
    "anchoring": {"none": "Population", "5-10-5": "Clinical 5-10-5", "10-10-10": "Clinical 10-10-10"},
    "fused": {False: "Unfused", True: "Fused"},
    "representation": {"discrete": "Discrete", "soft": "Soft", "xval": "xVal-CN", "xval_affine": "xVal-Aff"},
    "temporal": {"none": "Event order only", "tt": "Time tokens", "rope": "Admission-relative RoPE"},
    "arm": {"meds": "Native MIMIC codes", "mapped": "CLIF-mapped", "randomized": "Randomized mapped codes",
            "freqmatched": "Frequency-matched mapped codes"},
}


def outcome_label(outcome: str) -> str:
    """Display label of an outcome (the column name when none is registered)."""
    return OUTCOME_LABELS.get(outcome, outcome)


def outcome_rank(outcome: str) -> int:
    """Position of an outcome in the paper's order."""
    return OUTCOME_ORDER.index(outcome) if outcome in OUTCOME_ORDER else len(OUTCOME_ORDER)


def family_suffix(family: str, experiment: str) -> str:
    """``exp1_primary_binary`` → ``primary_binary``."""
    return family[len(experiment) + 1:]


def design_axes(exp: Experiment) -> list[str]:
    """The design axes that vary across an experiment's handles, in :data:`AXES` order."""
    hs = list(exp.handles.values())
    return [a for a in AXES if len({getattr(h, a) for h in hs}) > 1]


def level_label(axis: str, value: Any) -> str:
    """Display label of one level of a design axis."""
    return LEVEL_LABELS.get(axis, {}).get(value, str(value))


# ------------------------------------------------------------------------------------------- manifest
class MissingInput(Exception):
    """An input of a table or figure does not exist yet; the item is skipped with this reason."""


@dataclass(frozen=True)
class Skipped:
    """One table or figure (or part of it) that was not produced, and why."""

    item: str
    reason: str


def grouped_skips(item: str, missing: Mapping[str, list[str]], what: str) -> list[Skipped]:
    """One :class:`Skipped` per experiment listing its handles that lack an input (``what``)."""
    return [Skipped(f"{item}/{e}", f"{what} missing for {', '.join(hs)}") for e, hs in missing.items() if hs]


@dataclass
class Manifest:
    """What a build produced: files (relative to ``out_dir``), skipped items with reasons, table previews."""

    out_dir: Path
    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    previews: dict[str, str] = field(default_factory=dict)

    @property
    def images(self) -> list[str]:
        """The PNG files (for image previews in the Dagster UI)."""
        return sorted(f for f in self.files if f.endswith(".png"))

    def add_file(self, path: Path) -> None:
        """Record a written file (relative to ``out_dir``, or absolute when outside it)."""
        p = Path(path)
        try:
            rel = str(p.relative_to(self.out_dir))
        except ValueError:
            rel = str(p)
        if rel not in self.files:
            self.files.append(rel)

    def skip(self, item: str, reason: str) -> None:
        """Record a skipped item."""
        self.skipped.append(Skipped(item, reason))

    def merge(self, other: Manifest) -> Manifest:
        """Add another manifest's entries to this one (same out_dir expected) and return self."""
        for f in other.files:
            if f not in self.files:
                self.files.append(f)
        self.skipped += [s for s in other.skipped if s not in self.skipped]
        self.previews.update(other.previews)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able, sorted form (Dagster metadata, manifest.json)."""
        return {"out_dir": str(self.out_dir), "files": sorted(self.files),
                "skipped": [{"item": s.item, "reason": s.reason} for s in sorted(self.skipped, key=lambda s: s.item)],
                "tables": sorted(self.previews)}


# ------------------------------------------------------------------------------------------- locations
def default_paper_dir() -> Path:
    """Where generated tables and figures go: ``$IRBENCH_PAPER_DIR`` or ``<repo>/paper/generated``."""
    return Path(os.environ.get("IRBENCH_PAPER_DIR") or REPO_ROOT / "paper" / "generated").resolve()


@dataclass(frozen=True)
class PaperInputs:
    """Where the run artifacts the paper reads live (the layout of :mod:`irbench_assets.storage`)."""

    home: Path
    stats_dir: Path | None = None
    experiments: Mapping[str, Experiment] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PaperInputs:
        """Inputs of one IRBENCH_HOME."""
        return cls(home=settings.home)

    @property
    def _settings(self) -> Settings:
        return Settings(home=Path(self.home), profile="paper", mimic_root=None)

    @property
    def exps(self) -> Mapping[str, Experiment]:
        return self.experiments if self.experiments is not None else load_experiments()

    @property
    def statistics(self) -> Path:
        return Path(self.stats_dir) if self.stats_dir is not None else storage.statistics_dir(self._settings)

    def tokenized(self, h: HandleConfig) -> Path:
        return storage.tokenized_dir(self._settings, h.experiment, h.handle)

    def model(self, h: HandleConfig) -> Path:
        return storage.model_dir(self._settings, h.experiment, h.handle)

    def predictions(self, h: HandleConfig) -> Path:
        return storage.predictions_path(self._settings, h.experiment, h.handle)

    def outcomes(self, experiment: str) -> Path:
        return storage.outcomes_path(self._settings, experiment)

    def exp3_meta(self, arm: str = "mapped") -> Path:
        return storage.exp3_arms_root(self._settings) / f"meds_{arm}" / "mappings" / "meta.json"


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; a missing file is a :class:`MissingInput`, a broken one a ValueError naming it."""
    path = Path(path)
    if not path.exists():
        raise MissingInput(f"{path} does not exist")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


# ------------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class StatsTables:
    """The validated study-wide statistics tables, each with an ``experiment`` column added."""

    metrics: pl.DataFrame
    pairwise_baseline: pl.DataFrame | None = None
    pairwise: pl.DataFrame | None = None

    def experiments(self) -> list[str]:
        """Experiments present in the metrics table (their order in experiments.yaml)."""
        return list(dict.fromkeys(self.metrics.get_column("experiment").to_list()))


def _experiment_of(family: str, exps: Mapping[str, Experiment]) -> str | None:
    best = None
    for name in exps:
        if family.startswith(name + "_") and (best is None or len(name) > len(best)):
            best = name
    return best


def validate_stats(df: pl.DataFrame, kind: str, source: str,
                   experiments: Mapping[str, Experiment] | None = None) -> pl.DataFrame:
    """Check a statistics table (``metrics`` or ``pairwise``) and return it typed, with ``experiment``.

    Raises ValueError naming ``source``, the column and the first bad row/value: missing columns, a family
    of no experiment, a handle or outcome the experiment does not have, an unknown metric or task type.
    Rows come back sorted by experiment order, family, outcome order, metric and handle order.
    """
    exps = experiments if experiments is not None else load_experiments()
    schema = METRICS_SCHEMA if kind == "metrics" else PAIRWISE_SCHEMA
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: columns {missing} missing (has {df.columns})")
    try:
        df = df.select([pl.col(c).cast(t) for c, t in schema.items()])
    except pl.exceptions.PolarsError as e:
        raise ValueError(f"{source}: a column has the wrong type ({e})") from e
    metrics = {m for ms in METRIC_ORDER.values() for m in ms}
    fams = df.get_column("family_name").to_list()
    exp_col: list[str] = []
    for i, fam in enumerate(fams):
        exp = _experiment_of(fam or "", exps)
        if exp is None:
            raise ValueError(f"{source}: column family_name, row {i}: {fam!r} belongs to no experiment of "
                             f"experiments.yaml ({', '.join(exps)})")
        exp_col.append(exp)
    df = df.with_columns(pl.Series("experiment", exp_col, pl.String))
    handle_cols = ["handle"] if kind == "metrics" else ["handle0", "handle1"]
    fam_maps = {e: families_for(e) for e in dict.fromkeys(exp_col)}
    for i, row in enumerate(df.iter_rows(named=True)):
        exp = exps[row["experiment"]]
        for col in handle_cols:
            if row[col] not in exp.handles:
                raise ValueError(f"{source}: column {col}, row {i}: {row[col]!r} is not a handle of "
                                 f"{exp.name} ({', '.join(exp.handles)})")
        fam_map = fam_maps[exp.name]
        if row["outcome"] not in OUTCOMES or row["outcome"] not in fam_map:
            raise ValueError(f"{source}: column outcome, row {i}: {row['outcome']!r} is not an outcome of {exp.name}")
        if fam_map[row["outcome"]] != row["family_name"]:
            raise ValueError(f"{source}: row {i}: outcome {row['outcome']!r} belongs to family "
                             f"{fam_map[row['outcome']]!r}, not {row['family_name']!r}")
        if row["metric"] not in metrics:
            raise ValueError(f"{source}: column metric, row {i}: unknown metric {row['metric']!r}")
        if row["metric"] not in METRIC_ORDER.get(row["task_type"], ()):
            raise ValueError(f"{source}: row {i}: metric {row['metric']!r} does not fit task_type "
                             f"{row['task_type']!r}")
    return sort_stats(df, exps)


def sort_stats(df: pl.DataFrame, exps: Mapping[str, Experiment]) -> pl.DataFrame:
    """Sort a statistics frame in the paper's order (experiment, family, outcome, metric, handle(s))."""
    exp_rank = {e: i for i, e in enumerate(exps)}
    metric_rank = {m: i for ms in METRIC_ORDER.values() for i, m in enumerate(ms)}
    handle_rank = {f"{e.name}.{h}": i for e in exps.values() for i, h in enumerate(e.handles)}
    outcome_ranks = {o: i for i, o in enumerate(OUTCOME_ORDER)}

    def hr(col: str) -> pl.Expr:
        return pl.concat_str("experiment", pl.lit("."), col).replace_strict(handle_rank, return_dtype=pl.Int64)

    keys = [
        pl.col("experiment").replace_strict(exp_rank, return_dtype=pl.Int64).alias("_e"),
        pl.col("family_name").alias("_f"),
        pl.col("outcome").replace_strict(outcome_ranks, default=len(outcome_ranks), return_dtype=pl.Int64).alias("_o"),
        pl.col("metric").replace_strict(metric_rank, return_dtype=pl.Int64).alias("_m"),
    ]
    handle_cols = [c for c in ("handle", "handle0", "handle1") if c in df.columns]
    keys += [hr(c).alias(f"_{c}") for c in handle_cols]
    if df.height == 0:
        return df
    tmp = df.with_columns(keys)
    return tmp.sort([k.meta.output_name() for k in keys]).drop([k.meta.output_name() for k in keys])


def _read_csv(path: Path, kind: str) -> pl.DataFrame:
    schema = METRICS_SCHEMA if kind == "metrics" else PAIRWISE_SCHEMA
    try:
        return pl.read_csv(path, schema_overrides=schema)
    except pl.exceptions.PolarsError as e:
        raise ValueError(f"{path}: cannot be read as a statistics table ({e})") from e


def read_stats(stats_dir: Path, experiments: Mapping[str, Experiment] | None = None) -> StatsTables:
    """Read ``all_family_{metrics,pairwise_baseline,pairwise}.csv`` from ``stats_dir`` (the study-wide files,
    else the per-experiment ``<exp>/`` files that exist). Metrics are required (else MissingInput)."""
    exps = experiments if experiments is not None else load_experiments()
    stats_dir = Path(stats_dir)
    frames: dict[str, pl.DataFrame | None] = {}
    for name, kind in (("all_family_metrics", "metrics"), ("all_family_pairwise_baseline", "pairwise"),
                       ("all_family_pairwise", "pairwise")):
        top = stats_dir / f"{name}.csv"
        paths = [top] if top.exists() else [stats_dir / e / f"{name}.csv" for e in exps
                                            if (stats_dir / e / f"{name}.csv").exists()]
        if not paths:
            frames[name] = None
            continue
        parts = [validate_stats(_read_csv(p, kind), kind, str(p), exps) for p in paths]
        frames[name] = sort_stats(pl.concat(parts), exps)
    if frames["all_family_metrics"] is None:
        raise MissingInput(f"no all_family_metrics.csv under {stats_dir} (materialize the statistics first)")
    return StatsTables(frames["all_family_metrics"], frames["all_family_pairwise_baseline"],
                       frames["all_family_pairwise"])


def stats_from_frames(metrics: pl.DataFrame, pairwise_baseline: pl.DataFrame | None = None,
                      pairwise: pl.DataFrame | None = None,
                      experiments: Mapping[str, Experiment] | None = None) -> StatsTables:
    """Validate in-memory statistics frames (the asset inputs) into :class:`StatsTables`."""
    exps = experiments if experiments is not None else load_experiments()
    return StatsTables(
        validate_stats(metrics, "metrics", "all_family_metrics", exps),
        None if pairwise_baseline is None else validate_stats(pairwise_baseline, "pairwise",
                                                              "all_family_pairwise_baseline", exps),
        None if pairwise is None else validate_stats(pairwise, "pairwise", "all_family_pairwise", exps),
    )


def common_outcome_means(metrics: pl.DataFrame, experiment: str, metric: str) -> tuple[dict[str, float], list[str]]:
    """Per handle, the mean of ``metric`` over the outcomes where every handle of the experiment in the table
    has a finite value (so means compare like with like); returns the means and the outcomes used."""
    m = metrics.filter((pl.col("experiment") == experiment) & (pl.col("metric") == metric))
    if m.height == 0:
        return {}, []
    handles = set(m.get_column("handle").to_list())
    ok = m.with_columns(pl.col("point").fill_nan(None)).drop_nulls("point")
    per = ok.group_by("outcome").agg(pl.col("handle").n_unique().alias("n"))
    common = sorted(per.filter(pl.col("n") == len(handles)).get_column("outcome").to_list(), key=outcome_rank)
    if not common:
        return {}, []
    agg = ok.filter(pl.col("outcome").is_in(common)).group_by("handle").agg(pl.col("point").mean())
    return dict(zip(agg.get_column("handle").to_list(), agg.get_column("point").to_list(), strict=True)), common


def ordered_handles(exp: Experiment, present: Iterable[str]) -> list[str]:
    """The handles of ``present`` in experiments.yaml order."""
    s = set(present)
    return [h for h in exp.handles if h in s]


def stats_or_skip(inputs: PaperInputs, man: Manifest, stats: StatsTables | None) -> StatsTables | None:
    """``stats`` if given, else the statistics tables read from ``inputs``; a missing one is a recorded skip."""
    if stats is not None:
        return stats
    try:
        return read_stats(inputs.statistics, inputs.exps)
    except MissingInput as err:
        man.skip("statistics", str(err))
        return None


def built_items(man: Manifest, builders: Iterable[tuple[str, Callable[[], Any]]]) -> Iterator[Any]:
    """Run each (item, build) in order and yield its result; an item whose input is missing is recorded in
    ``man`` as skipped with the reason (bad input still raises)."""
    for item, build in builders:
        try:
            yield build()
        except MissingInput as err:
            man.skip(item, str(err))
