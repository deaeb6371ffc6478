"""Stage 0 on the Stage -1 MEDS extraction of the synthetic MIMIC-IV (the real data path, several shards)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from irbench_assets.experiments import get_handle
from irbench_assets.tokenize import load_tokenizer_config, prepare_events, tokenize_handles
from irbench_assets.tokenize.events import SPLITS, match_code


def test_prepare_and_tokenize_the_extraction(small_meds: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = small_meds
    cfg = load_tokenizer_config("mimic-meds")
    events = tmp_path / "events"
    report = prepare_events(root, cfg, events)
    hs = [get_handle("exp1", "deciles_unfused"), get_handle("exp1", "ventiles_5_10_5_fused"),
          get_handle("exp2", "xval_tt")]
    outs = [tmp_path / h.handle for h in hs]
    mds = tokenize_handles(events, hs, outs, max_len=256)
    for split in SPLITS:
        meds = pl.scan_parquet(root / "data" / split / "*.parquet")
        adm = meds.filter(match_code("HOSPITAL_ADMISSION")).select("hadm_id", pl.col("time").alias("a"))
        dis = meds.filter(match_code("HOSPITAL_DISCHARGE")).select("hadm_id", pl.col("time").alias("d"))
        expected = (adm.join(dis, on="hadm_id").filter(pl.col("d") - pl.col("a") >= timedelta(days=1))
                    .select("hadm_id").collect().sort("hadm_id"))
        adm_out = pl.read_parquet(events / split / "admissions.parquet")
        assert adm_out["hadm_id"].to_list() == expected["hadm_id"].to_list(), split  # every eligible admission
        assert report["splits"][split]["n_admissions"] == adm_out.height
        ev = pl.read_parquet(events / split / "events.parquet").join(adm_out, on="hadm_id")
        assert ev.filter((pl.col("time") < pl.col("admittime")) | (pl.col("time") > pl.col("dischtime"))).is_empty()
        for out, md in zip(outs, mds, strict=True):
            cut = pl.read_parquet(out / "first_24h" / split / "tokens_timelines.parquet")
            assert cut["hadm_id"].to_list() == adm_out["hadm_id"].to_list()
            late = (cut.join(adm_out.select("hadm_id", "admittime"), on="hadm_id").explode("times")
                    .filter(pl.col("times") > pl.col("admittime") + timedelta(days=1)))
            assert late.is_empty(), f"{out.name}/{split}: first_24h holds tokens after admission + 24 h"
            assert (cut["seq_len"] <= 256).all() and md["n_admissions"][split] == adm_out.height
    for out in outs:
        vocab = pl.read_parquet(out / "train" / "vocab.parquet")
        toks = np.concatenate(pl.read_parquet(out / "full" / "train" / "tokens_timelines.parquet")["tokens"].to_list())
        np.testing.assert_array_equal(np.bincount(toks, minlength=vocab.height), vocab["count"].to_numpy())
    assert mds[1]["bins"]["n_codes_anchored"] > 0  # labs carry reference ranges
    assert mds[0]["unk_tokens"]["train"] == 0
