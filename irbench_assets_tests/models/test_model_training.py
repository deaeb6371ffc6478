"""Stage 1 and 2 end to end on tiny models: loss goes down, the checkpoint directory, resume after an
interruption, save/load round trip, non-finite loss, extraction position and output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from irbench_assets.experiments import HandleConfig, get_handle
from irbench_assets.models.config import ModelConfig, TrainConfig, read_tokenizer_outputs
from irbench_assets.models.data import Plan, collate, read_timelines
from irbench_assets.models.extract import extract_features, load_model
from irbench_assets.models.synthetic import write_synthetic_tokenized
from irbench_assets.models.train import NonFiniteLossError, _Data, evaluate, train_model

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
TRAIN = {"block_size": 64, "batch_size": 4, "lr": 3e-3, "max_steps": 24, "warmup_ratio": 0.1, "log_every": 1}


def handle(rep: str, temporal: str = "tt", training: str = "windowed") -> HandleConfig:
    enc = "xval" if rep.startswith("xval") else "quantile"
    return dataclasses.replace(get_handle("exp2", "discrete_tt"), handle=f"{rep}_{temporal}", representation=rep,
                               temporal=temporal, training=training, numeric_encoding=enc)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tok")
    return {"quantile": write_synthetic_tokenized(root / "q", n_admissions=80, temporal="tt", max_len=200),
            "xval": write_synthetic_tokenized(root / "x", n_admissions=80, numeric_encoding="xval",
                                              temporal="rope", max_len=200)}


@pytest.mark.parametrize(("rep", "temporal"), [("discrete", "tt"), ("soft", "tt"), ("xval", "rope"),
                                               ("xval_affine", "rope")])
def test_training_lowers_the_loss_and_writes_the_checkpoint(data: dict[str, Path], tmp_path: Path, rep: str,
                                                            temporal: str) -> None:
    h = handle(rep, temporal)
    logged: list[dict] = []
    s = train_model(data["xval" if rep.startswith("xval") else "quantile"], h, TINY, TRAIN, tmp_path / "m",
                    tmp_path / "w", log=logged.append)
    assert s["final_loss"] < s["initial_loss"] - 0.2
    assert len(logged) == s["steps"] == 24 and logged[-1]["step"] == 24
    out = tmp_path / "m"
    names = {p.name for p in out.iterdir()}
    assert {"base", "config.json", "vocab", "train_log.csv", "loss_curve.png", "initial_embeddings.safetensors",
            "summary.json", "sweep.csv"} <= names
    assert ("representation.safetensors" in names) == (rep != "discrete")
    assert not (tmp_path / "w").exists()  # work dir cleaned once the checkpoint is in place
    header = (out / "train_log.csv").read_text().splitlines()[0]
    assert header == "step,loss,token_loss,numeric_loss,lr,tokens_per_s"
    init = load_file(str(out / "initial_embeddings.safetensors"))["embed_tokens"]
    trained, _ = load_model(out)
    assert init.shape == trained.base.get_input_embeddings().weight.shape
    assert not torch.equal(init, trained.base.get_input_embeddings().weight.detach())
    if rep.startswith("xval"):
        assert s["xval"]["num_positions"] > 0 and 0 <= s["xval"]["share_abs_z_below_0_1"] <= 1
        assert any(float(r["numeric_loss"]) > 0 for r in logged)


@pytest.mark.parametrize("rep", ["soft", "xval_affine"])
def test_save_load_round_trip_reproduces_the_trained_model(data: dict[str, Path], tmp_path: Path, rep: str) -> None:
    h = handle(rep, "rope" if rep.startswith("xval") else "tt")
    d = data["xval" if rep.startswith("xval") else "quantile"]
    s = train_model(d, h, TINY, {**TRAIN, "max_steps": 6}, tmp_path / "m", tmp_path / "w")
    model, meta = load_model(tmp_path / "m")
    tcfg = TrainConfig.from_dict({**TRAIN, "max_steps": 6})
    tune = _Data(read_timelines(d / "full" / "tuning" / "tokens_timelines.parquet", h.temporal == "rope"), h, tcfg)
    again = evaluate(model, tune, meta["tokenizer"].vocab, tcfg, ModelConfig.from_dict(meta["model"]),
                     torch.device("cpu"), None)
    assert again["loss"] == pytest.approx(s["tuning_loss"], rel=1e-6, abs=1e-6)
    model2, _ = load_model(tmp_path / "m")
    tl = read_timelines(d / "first_24h" / "train" / "tokens_timelines.parquet", h.temporal == "rope")
    plan = Plan(np.arange(3), np.arange(3), np.zeros(3, dtype=np.int64), tl.lengths[:3], np.zeros(3, bool), 3, None)
    batch = collate(tl, plan, meta["tokenizer"].vocab, h.temporal == "rope", 60.0)
    with torch.no_grad():
        assert torch.equal(model.logits(batch), model2.logits(batch))


def test_resume_after_interruption_equals_an_uninterrupted_run(data: dict[str, Path], tmp_path: Path) -> None:
    h = handle("soft", "tt", "packed")
    cfg = {**TRAIN, "max_steps": 10, "checkpoint_every": 4, "lr_sweep": [3e-3]}
    train_model(data["quantile"], h, TINY, cfg, tmp_path / "straight", tmp_path / "w1")

    class Crash(Exception):
        pass

    def crash_at_7(row: dict) -> None:
        if row["step"] == 7:
            raise Crash

    with pytest.raises(Crash):
        train_model(data["quantile"], h, TINY, cfg, tmp_path / "resumed", tmp_path / "w2", log=crash_at_7)
    assert not (tmp_path / "resumed").exists() and (tmp_path / "w2" / "run-0" / "state.pt").exists()
    s = train_model(data["quantile"], h, TINY, cfg, tmp_path / "resumed", tmp_path / "w2")
    assert s["resumed_from_step"] == 4
    a = load_file(str(tmp_path / "straight" / "base" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "base" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra = load_file(str(tmp_path / "straight" / "representation.safetensors"))
    rb = load_file(str(tmp_path / "resumed" / "representation.safetensors"))
    assert all(torch.equal(ra[k], rb[k]) for k in ra)

    def losses(p: Path) -> list[str]:
        return [line.split(",")[1] for line in (p / "train_log.csv").read_text().splitlines()[1:]]

    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")


def test_muon_optimizer_option_trains(data: dict[str, Path], tmp_path: Path) -> None:
    s = train_model(data["quantile"], handle("discrete"), TINY, {**TRAIN, "optimizer": "muon", "lr": 1e-2},
                    tmp_path / "m", tmp_path / "w")
    assert s["final_loss"] < s["initial_loss"] - 0.2


def test_lr_sweep_keeps_the_best_tuning_loss(data: dict[str, Path], tmp_path: Path) -> None:
    h = handle("discrete", "tt", "packed")
    s = train_model(data["quantile"], h, TINY, {**TRAIN, "max_steps": 8, "lr_sweep": [1e-5, 3e-3]},
                    tmp_path / "m", tmp_path / "w")
    assert [r["lr"] for r in s["sweep"]] == [1e-5, 3e-3]
    best = min(s["sweep"], key=lambda r: r["tuning_loss"])
    assert s["best_lr"] == best["lr"] == 3e-3 and best["chosen"]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["best_lr"] == 3e-3
    assert s["packing_efficiency"] >= 0.97


def test_non_finite_loss_fails_clearly_and_writes_nothing(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"exp2.discrete_tt: non-finite loss at step \d+ \(run 0, lr 1e\+30"):
        train_model(data["quantile"], handle("discrete"), TINY, {**TRAIN, "lr": 1e30, "warmup_ratio": 0.0},
                    tmp_path / "m", tmp_path / "w")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("rep", "temporal", "block"), [("soft", "tt", 64), ("xval", "rope", 16)])
def test_extraction_reads_the_last_real_token(data: dict[str, Path], tmp_path: Path, rep: str, temporal: str,
                                              block: int) -> None:
    d = data["xval" if rep.startswith("xval") else "quantile"]
    h = handle(rep, temporal)
    train_model(d, h, TINY, {**TRAIN, "max_steps": 3, "block_size": block}, tmp_path / "m", tmp_path / "w")
    summary = extract_features(tmp_path / "m", d, tmp_path / "f", batch_size=5, chunk_rows=7)
    model, _ = load_model(tmp_path / "m")
    vocab = read_tokenizer_outputs(d / "train").vocab
    for split in ("train", "tuning", "held_out"):
        src = pq.read_table(d / "first_24h" / split / "tokens_timelines.parquet")
        got = pq.read_table(tmp_path / "f" / f"{split}.parquet")
        assert str(got.schema.field("features").type) == "fixed_size_list<element: float>[32]"
        assert got.column("hadm_id").to_pylist() == src.column("hadm_id").to_pylist()
        assert summary["splits"][split]["rows"] == src.num_rows
        feats = np.stack(got.column("features").to_numpy(zero_copy_only=False))
        assert np.isfinite(feats).all()
    # by hand: the hidden state at the token before the first PAD/TRUNC/TL_END, last `block` tokens kept
    tl = read_timelines(d / "first_24h" / "train" / "tokens_timelines.parquet", temporal == "rope")
    feats = np.stack(pq.read_table(tmp_path / "f" / "train.parquet").column("features").to_numpy(zero_copy_only=False))
    checked_cut = False
    for i in range(tl.n):
        toks = tl.tokens[tl.offsets[i]:tl.offsets[i + 1]].tolist()
        stop = next((j for j, t in enumerate(toks) if t in vocab.stop_ids), len(toks))
        start = max(0, stop - block)
        cont = start > 0  # windowed model: the kept tail starts with TL_CONT
        start += cont
        checked_cut |= cont
        plan = Plan(np.array([0]), np.array([i]), np.array([start]), np.array([stop]), np.array([cont]), 1, None)
        batch = collate(tl, plan, vocab, temporal == "rope", 60.0)
        if cont:
            assert int(batch.input_ids[0, 0]) == vocab.tl_cont_id
        with torch.no_grad():
            h_last = model(batch)[0, -1].numpy()
        np.testing.assert_allclose(feats[i], h_last, rtol=1e-4, atol=1e-5)
    assert checked_cut == (block == 16)
    assert (summary["splits"]["train"]["cut_to_context"] > 0) == (block == 16)
