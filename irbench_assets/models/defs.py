"""Dagster assets of Stages 1 and 2: one checkpoint and one feature set per (experiment, handle).

Both run as dagster-pipes payloads through :class:`IrbenchCompute` — a local subprocess by default,
an sbatch job with IRBENCH_COMPUTE_MODE=slurm — so the assets never know where they ran.
"""

import json

import dagster as dg
import polars as pl
import pyarrow.parquet as pq

from irbench_assets.compute.resource import IrbenchCompute
from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.markdown import png_markdown
from irbench_assets.partitions import arm_partitions, handle_of
from irbench_assets.storage import features_dir, model_dir, runs_dir, tokenized_dir

SPLITS = ("train", "tuning", "held_out")


@dg.asset(
    group_name="models",
    partitions_def=arm_partitions,
    deps=[dg.AssetKey("tokenized")],
    kinds={"pytorch"},
    tags={"irbench/stage": "train"},
    description="Stage 1: a Llama-style decoder trained from scratch on the handle's full timelines "
    "(Exp1 packed with a learning-rate sweep; Exp2/3 windowed), with its representation mechanics.",
)
def checkpoint(
    context: dg.AssetExecutionContext, settings: IrbenchSettings, compute: IrbenchCompute
) -> dg.MaterializeResult:
    s = settings.get()
    h = handle_of(context)
    out = model_dir(s, h.experiment, h.handle)
    train_cfg = {**s.section("train"), "seed": s.seed}
    result = compute.run(
        context,
        stage="train",
        payload="irbench_assets.models.train_payload:train_arm",
        args={
            "tokenized_dir": str(tokenized_dir(s, h.experiment, h.handle)),
            "experiment": h.experiment,
            "handle": h.handle,
            "model_cfg": s.section("model"),
            "train_cfg": train_cfg,
            "out_dir": str(out),
            "work_dir": str(runs_dir(s) / "work" / "train" / f"{h.experiment}_{h.handle}"),
        },
    )
    assert isinstance(result, dg.MaterializeResult)
    extra: dict[str, object] = {"path": dg.MetadataValue.path(str(out))}
    if (out / "loss_curve.png").exists():
        extra["loss_curve"] = dg.MetadataValue.md(png_markdown(out / "loss_curve.png", f"loss curve {h.key}"))
    return dg.MaterializeResult(metadata={**(result.metadata or {}), **extra})


@dg.asset_check(
    asset=checkpoint, blocking=True, partitions_def=arm_partitions,
    description="Training loss is finite and lower at the end than at the start.",
)
def training_loss_decreased(context: dg.AssetCheckExecutionContext, settings: IrbenchSettings) -> dg.AssetCheckResult:
    h = handle_of(context)
    summary = json.loads((model_dir(settings.get(), h.experiment, h.handle) / "summary.json").read_text())
    first, last = float(summary["initial_loss"]), float(summary["final_loss"])
    ok = all(map(lambda v: v == v and abs(v) != float("inf"), (first, last))) and last < first
    meta = {"initial_loss": first, "final_loss": last}
    if "xval" in summary:
        meta["xval_share_abs_z_below_0_1"] = float(summary["xval"]["share_abs_z_below_0_1"])
    return dg.AssetCheckResult(passed=ok, metadata=meta)


@dg.asset(
    group_name="models",
    partitions_def=arm_partitions,
    deps=[checkpoint],
    kinds={"pytorch", "parquet"},
    tags={"irbench/stage": "extract"},
    description="Stage 2: final-layer hidden state at the last real token of each admission's first-24h "
    "timeline, with the representation mechanics applied (soft, xVal, RoPE).",
)
def features(context: dg.AssetExecutionContext, settings: IrbenchSettings, compute: IrbenchCompute) -> dg.MaterializeResult:
    s = settings.get()
    h = handle_of(context)
    out = features_dir(s, h.experiment, h.handle)
    result = compute.run(
        context,
        stage="extract",
        payload="irbench_assets.models.extract_payload:extract_arm",
        args={
            "model_dir": str(model_dir(s, h.experiment, h.handle)),
            "tokenized_dir": str(tokenized_dir(s, h.experiment, h.handle)),
            "out_dir": str(out),
        },
    )
    assert isinstance(result, dg.MaterializeResult)
    return dg.MaterializeResult(metadata={**(result.metadata or {}), "path": dg.MetadataValue.path(str(out))})


@dg.asset_check(
    asset=features, blocking=True, partitions_def=arm_partitions,
    description="Features are finite, one row per tokenized first-24h admission, dimension = hidden size.",
)
def features_valid(context: dg.AssetCheckExecutionContext, settings: IrbenchSettings) -> dg.AssetCheckResult:
    s = settings.get()
    h = handle_of(context)
    hidden = int(s.section("model").get("hidden_size", 0))
    problems: list[str] = []
    rows = {}
    for split in SPLITS:
        f = features_dir(s, h.experiment, h.handle) / f"{split}.parquet"
        df = pl.read_parquet(f)
        ids = pq.read_table(tokenized_dir(s, h.experiment, h.handle) / "first_24h" / split / "tokens_timelines.parquet",
                            columns=["hadm_id"]).column("hadm_id").to_numpy()
        rows[split] = df.height
        if df.height != len(ids) or set(df["hadm_id"].to_list()) != set(ids.tolist()):
            problems.append(f"{split}: {df.height} feature rows for {len(ids)} admissions")
        if df["hadm_id"].n_unique() != df.height:
            problems.append(f"{split}: duplicate hadm_id rows")
        width = df.schema["features"].size if isinstance(df.schema["features"], pl.Array) else None
        if width != hidden:
            problems.append(f"{split}: feature dimension {width} != hidden size {hidden}")
        arr = df["features"].to_numpy()
        if not (arr == arr).all() or (abs(arr) == float("inf")).any():
            problems.append(f"{split}: non-finite features")
    return dg.AssetCheckResult(passed=not problems, metadata={"rows": dg.MetadataValue.json(rows),
                                                               "problems": dg.MetadataValue.json(problems)})


defs = dg.Definitions(assets=[checkpoint, features], asset_checks=[training_loss_decreased, features_valid])
