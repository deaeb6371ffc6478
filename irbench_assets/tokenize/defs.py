"""Dagster assets of Stage 0 / 0E: the shared per-experiment event scan, then one tokenized dataset per arm."""

import json

import dagster as dg
import numpy as np
import polars as pl

from irbench_assets.compute.resources import IrbenchSettings
from irbench_assets.experiments import get_experiment
from irbench_assets.markdown import frame_to_markdown
from irbench_assets.meds.defs import exp3_arms, meds_dataset
from irbench_assets.meds.exp3_arms import arm_dir
from irbench_assets.outcomes import icu_cohort
from irbench_assets.partitions import arm_partitions, experiment_partitions, experiment_to_arms, handle_of
from irbench_assets.storage import events_dir, exp3_arms_root, meds_root, tokenized_dir
from irbench_assets.tokenize import load_tokenizer_config, prepare_events, tokenize_handle

SPLITS = ("train", "tuning", "held_out")
DAY_US = 86_400_000_000


def _arms_of(experiment: str) -> list[str]:
    """The distinct vocabulary arms an experiment's handles use (Exp3: four; Exp1/2: only `meds`)."""
    return sorted({h.arm for h in get_experiment(experiment).handles.values()})


@dg.asset(
    group_name="tokenize",
    partitions_def=experiment_partitions,
    deps=[meds_dataset, exp3_arms],
    kinds={"polars", "parquet"},
    tags={"irbench/stage": "tokenize"},
    description="Stage 0 shared scan: the MEDS events an experiment's tokenizer reads (per Exp3 arm), "
    "cut to each admission's stay and sorted — read once, reused by every handle of the experiment.",
)
def tokenizer_events(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    exp = get_experiment(context.partition_key)
    names = {h.tokenizer for h in exp.handles.values()}
    if len(names) != 1:
        raise ValueError(f"{exp.name}: handles use several tokenizer configs {sorted(names)}; one scan needs one")
    cfg = load_tokenizer_config(names.pop())
    cohorts = {h.cohort for h in exp.handles.values()}
    # The ICU cohort (H_ICU) is read from the arm datasets, which already hold only its admissions; passing
    # the list keeps the prepared events self-describing (the tokenizer refuses a cohort mismatch).
    hadm_ids = icu_cohort(meds_root(s)).select("hadm_id") if cohorts == {"icu"} else None
    reports = {}
    for arm in _arms_of(exp.name):
        src = arm_dir(exp3_arms_root(s), arm) if hadm_ids is not None else meds_root(s)
        reports[arm] = prepare_events(src, cfg, events_dir(s, exp.name, arm), hadm_ids=hadm_ids)
        context.log.info(f"{exp.name}/{arm}: {json.dumps(reports[arm]['splits'])}")
    per_split = {
        arm: {sp: {k: r["splits"][sp][k] for k in ("n_admissions", "n_events")} for sp in r["splits"]}
        for arm, r in reports.items()
    }
    return dg.MaterializeResult(
        metadata={
            "tokenizer": cfg.name,
            "arms": dg.MetadataValue.json(per_split),
            "dropped": dg.MetadataValue.json(
                {arm: {sp: r["splits"][sp].get("admissions_dropped") for sp in r["splits"]} for arm, r in reports.items()}
            ),
        }
    )


@dg.asset(
    group_name="tokenize",
    partitions_def=arm_partitions,
    ins={"tokenizer_events": dg.AssetIn(partition_mapping=experiment_to_arms, dagster_type=dg.Nothing)},
    kinds={"polars", "parquet"},
    tags={"irbench/stage": "tokenize"},
    description="Stage 0/0E: one handle's timelines (full + first 24 h, train/tuning/held_out), with the "
    "vocabulary, bin edges and numeric stats fitted on train only.",
)
def tokenized(context: dg.AssetExecutionContext, settings: IrbenchSettings) -> dg.MaterializeResult:
    s = settings.get()
    h = handle_of(context)
    max_len = int(s.section("tokenize").get("max_len", 4096))
    md = tokenize_handle(events_dir(s, h.experiment, h.arm), h, tokenized_dir(s, h.experiment, h.handle), max_len)
    vocab = pl.read_parquet(tokenized_dir(s, h.experiment, h.handle) / "train" / "vocab.parquet")
    first = pl.read_parquet(tokenized_dir(s, h.experiment, h.handle) / "first_24h" / "train" / "tokens_timelines.parquet",
                            n_rows=1)
    words = dict(zip(vocab["token_id"].to_list(), vocab["token"].to_list(), strict=True))
    example = " ".join(words[t] for t in first["tokens"][0][:60])
    seq = {sp: md["seq_len"][sp]["first_24h"] for sp in md["seq_len"]}
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(tokenized_dir(s, h.experiment, h.handle))),
            "vocab_size": md["vocab_size"],
            "zero_frequency_tokens": md["zero_frequency_tokens"],
            "n_tokens": dg.MetadataValue.json(md["n_tokens"]),
            "first_24h_seq_len": dg.MetadataValue.json(seq),
            "overflow_fraction": dg.MetadataValue.json(md["overflow_fraction"]),
            "unk_tokens": dg.MetadataValue.json(md["unk_tokens"]),
            "bins": dg.MetadataValue.json(md["bins"]),
            "example_first_24h": dg.MetadataValue.text(example),
        }
    )


def _timelines(settings: IrbenchSettings, context: dg.AssetCheckExecutionContext, part: str, split: str) -> pl.DataFrame:
    h = handle_of(context)
    return pl.read_parquet(tokenized_dir(settings.get(), h.experiment, h.handle) / part / split / "tokens_timelines.parquet")


@dg.asset_check(
    asset=tokenized, blocking=True, partitions_def=arm_partitions,
    description="first_24h holds no token timed after admission + 24 h (TL_START is stamped at admission).",
)
def first_24h_no_late_tokens(context: dg.AssetCheckExecutionContext, settings: IrbenchSettings) -> dg.AssetCheckResult:
    late = {}
    for split in SPLITS:
        tl = _timelines(settings, context, "first_24h", split)
        span = tl.select((pl.col("times").list.max() - pl.col("times").list.first()).dt.total_microseconds().alias("us"))
        late[split] = int((span["us"] > DAY_US).sum())
    return dg.AssetCheckResult(passed=not any(late.values()), metadata={"late_timelines": dg.MetadataValue.json(late)})


@dg.asset_check(
    asset=tokenized, blocking=True, partitions_def=arm_partitions,
    description="Vocabulary fitted on train only: its counts equal the train token counts, and tuning/held_out "
    "hold no id outside it; every admission of the prepared events is present.",
)
def fitted_on_train_only(context: dg.AssetCheckExecutionContext, settings: IrbenchSettings) -> dg.AssetCheckResult:
    s = settings.get()
    h = handle_of(context)
    root = tokenized_dir(s, h.experiment, h.handle)
    vocab = pl.read_parquet(root / "train" / "vocab.parquet").sort("token_id")
    train = _timelines(settings, context, "full", "train")
    counts = np.bincount(train["tokens"].explode().drop_nulls().to_numpy(), minlength=vocab.height)
    problems = []
    if not np.array_equal(counts[: vocab.height], vocab["count"].to_numpy()):
        problems.append("vocab counts differ from the train token counts")
    missing = {}
    for split in SPLITS:
        full = _timelines(settings, context, "full", split)
        if int(full["tokens"].explode().max() or 0) >= vocab.height:
            problems.append(f"{split}: token id outside the vocabulary")
        prepared = pl.read_parquet(events_dir(s, h.experiment, h.arm) / split / "admissions.parquet", columns=["hadm_id"])
        missing[split] = prepared.join(full.select("hadm_id"), on="hadm_id", how="anti").height
    if any(missing.values()):
        problems.append(f"admissions missing from the tokenized data: {missing}")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"problems": dg.MetadataValue.json(problems), "vocab_size": vocab.height,
                  "vocab_head": dg.MetadataValue.md(frame_to_markdown(vocab.sort("count", descending=True), 10))},
    )


defs = dg.Definitions(assets=[tokenizer_events, tokenized], asset_checks=[first_24h_no_late_tokens, fitted_on_train_only])
