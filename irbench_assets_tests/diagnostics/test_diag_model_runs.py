"""The diagnostics that run the models (xVal zero-out audit, attention washout / contextual CE) on tiny trained
models of hand-made tokenized handles, checked on cases with a known answer and against independent
computations (numpy from the parquet files, transformers' own ``output_attentions``)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from irbench_assets.compute.payload import run_payload
from irbench_assets.diagnostics import Arm, attention_washout, xval_zero_audit
from irbench_assets.diagnostics.attention import summarise as summarise_washout
from irbench_assets.diagnostics.attention import washout_stats
from irbench_assets.diagnostics.common import (
    analysis_batches,
    load_for_analysis,
    read_timeline_subset,
    resolve_arms,
    token_classes,
)
from irbench_assets.diagnostics.payload import run_diagnostic
from irbench_assets.experiments import get_handle
from irbench_assets.models.config import IGNORE_INDEX
from irbench_assets.models.synthetic import write_synthetic_tokenized
from irbench_assets.models.train import train_model

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2}
TRAIN = {"block_size": 64, "batch_size": 4, "lr": 3e-3, "max_steps": 3, "warmup_ratio": 0.0, "eval_max_batches": 1}
SPLIT = "first_24h/held_out/tokens_timelines.parquet"


def strict_json(path: Path) -> dict:
    """Parse a JSON file, failing on NaN / Infinity (they are not JSON)."""
    def bad(x: str) -> None:
        raise AssertionError(f"{path}: non-standard JSON constant {x}")
    return json.loads(path.read_text(), parse_constant=bad)


@pytest.fixture(scope="module")
def xval(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """xVal tokenized handle, a copy whose held-out values all sit at their code's median, and two models."""
    root = tmp_path_factory.mktemp("xval")
    data = write_synthetic_tokenized(root / "tok", n_admissions=60, numeric_encoding="xval", temporal="none",
                                     max_len=120)
    out = {"tok": data}
    for rep in ("xval", "xval_affine"):
        train_model(data, get_handle("exp2", f"{rep}_none"), TINY, TRAIN, root / rep, root / "work")
        out[rep] = root / rep
    med = root / "median"
    shutil.copytree(data, med)
    stats = json.loads((data / "train" / "numeric_stats.json").read_text())["codes"]
    vocab = pq.read_table(data / "train" / "vocab.parquet").column("token").to_pylist()
    median_of = {vocab.index(c): s["median"] for c, s in stats.items()}
    num = vocab.index("[NUM]")
    t = pq.read_table(med / SPLIT)
    vals = []
    for toks, vs in zip(t.column("tokens").to_pylist(), t.column("numeric_values").to_pylist(), strict=True):
        vals.append([median_of[toks[i - 1]] if tok == num and v is not None else v
                     for i, (tok, v) in enumerate(zip(toks, vs, strict=True))])
    t = t.set_column(t.schema.get_field_index("numeric_values"), "numeric_values", pa.array(vals, pa.list_(pa.float32())))
    pq.write_table(t, med / SPLIT)
    out["median"] = med
    return out


def test_values_at_the_median_erase_xval_inputs_but_not_xval_affine(xval: dict[str, Path], tmp_path: Path) -> None:
    arms = [Arm(xval["xval"], xval["median"]), Arm(xval["xval_affine"], xval["median"])]
    s = xval_zero_audit(arms, tmp_path / "out", max_timelines=25, batch_size=4)
    res = strict_json(tmp_path / "out" / "xval_zero_out_results.json")
    assert (tmp_path / "out" / "xval_zero_out.png").stat().st_size > 10_000
    a, b = res["arms"]["exp2.xval_none"], res["arms"]["exp2.xval_affine_none"]
    # every scale factor is exactly 0: all in the first |z| bin
    for r in (a, b):
        assert r["n_num_scaled"] > 20 and r["share_scale_within_near_zero"] == 1.0
        assert r["abs_z_bin_counts"][0] == r["n_num_scaled"] and r["scale_factor_quantiles"]["q99"] == 0.0
    # xval: the decoder receives the zero vector at [NUM]; xval_affine: the learned shift s
    assert a["norm_by_abs_z"]["input"][0]["mean"] == 0.0 and a["norm_by_abs_z"]["input"][0]["p90"] == 0.0
    assert a["share_input_erased"] == 1.0
    assert b["norm_by_abs_z"]["input"][0]["mean"] == pytest.approx(b["shift_norm"], rel=1e-5)
    assert b["shift_norm"] > 0.05 and b["share_input_erased"] == 0.0
    # deeper layers are not zero for either (attention brings context in)
    assert a["norm_by_abs_z"]["layer_1"][0]["mean"] > 0
    assert res["contrasts"] == [{"xval": "exp2.xval_none", "xval_affine": "exp2.xval_affine_none", "temporal": "none",
                                 "near_zero_over_far_norm": res["contrasts"][0]["near_zero_over_far_norm"],
                                 "share_input_erased": [1.0, 0.0]}]
    assert s["share_input_erased"] == {"exp2.xval_affine_none": 0.0, "exp2.xval_none": 1.0}


def test_scale_factors_match_numpy_on_the_real_values(xval: dict[str, Path], tmp_path: Path) -> None:
    xval_zero_audit([Arm(xval["xval"], xval["tok"])], tmp_path / "out", max_timelines=None, batch_size=8)
    r = strict_json(tmp_path / "out" / "xval_zero_out_results.json")["arms"]["exp2.xval_none"]
    # independent: z of every valued [NUM] in the first context_length tokens, from the parquet + stats json
    stats = json.loads((xval["tok"] / "train" / "numeric_stats.json").read_text())
    vocab = pq.read_table(xval["tok"] / "train" / "vocab.parquet").column("token").to_pylist()
    context = json.loads((xval["xval"] / "config.json").read_text())["context_length"]
    t = pq.read_table(xval["tok"] / SPLIT)
    zs = []
    for toks, vs in zip(t.column("tokens").to_pylist(), t.column("numeric_values").to_pylist(), strict=True):
        for i in range(1, min(len(toks), context)):
            if vocab[toks[i]] == "[NUM]" and vs[i] is not None:
                st = stats["codes"][vocab[toks[i - 1]]]
                zs.append(np.clip((np.float32(vs[i]) - np.float32(st["median"])) / np.float32(st["std"]), -5, 5))
    zs = np.abs(np.asarray(zs, dtype=np.float64))
    assert r["n_timelines"] == t.num_rows and r["n_num_scaled"] == len(zs)
    assert r["share_scale_within_near_zero"] == pytest.approx(np.mean(zs <= 0.1), abs=1e-12)
    assert r["abs_z_bin_counts"][0] == int((zs < 0.1).sum())
    # a healthy xVal input is erased only near z = 0: input norm grows with |z|
    assert r["spearman_abs_z_norm"]["input"] > 0.99


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A quantile-tokenized handle with times and a discrete and a soft model (admission-relative RoPE)."""
    root = tmp_path_factory.mktemp("pair")
    data = write_synthetic_tokenized(root / "tok", n_admissions=60, temporal="rope", max_len=120)
    out = {"tok": data}
    for rep in ("discrete", "soft"):
        train_model(data, get_handle("exp2", f"{rep}_rope"), TINY, TRAIN, root / rep, root / "work")
        out[rep] = root / rep
    return out


def test_zero_queries_give_uniform_attention_and_zero_hidden_gives_uniform_ce(pair: dict[str, Path]) -> None:
    (arm,) = resolve_arms([Arm(pair["discrete"], pair["tok"])])
    model, meta = load_for_analysis(arm, device="cpu", attn_implementation="eager")
    with torch.no_grad():
        for layer in model.base.model.layers:
            layer.self_attn.q_proj.weight.zero_()  # every score 0 → softmax uniform over the visible keys
        model.base.model.norm.weight.zero_()  # final hidden 0 → every logit 0 → CE = ln V everywhere
    tl = read_timeline_subset(pair["tok"], "held_out", 15, 42, need_minutes=True)
    res = summarise_washout(washout_stats(model, meta, tl, batch_size=4))
    # independent uniform baseline: plain loops over the token lists
    cls = token_classes(meta["tokenizer"].vocab.tokens)
    context = int(meta["context_length"])
    shares = []
    for i in range(tl.n):
        toks = tl.tokens[tl.offsets[i]:tl.offsets[i + 1]][:context]
        for q in range(len(toks)):
            if cls[toks[q]] == 2:
                shares.append(sum(cls[t] == 1 for t in toks[:q + 1]) / (q + 1))
    expected = float(np.mean(shares))
    att = res["attention"]
    assert att["uniform_numeric_share"] == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(att["numeric_share"], expected, rtol=1e-5)
    np.testing.assert_allclose(att["numeric_enrichment"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(att["numeric_share"] + att["categorical_share"] + att["special_share"], 1.0, rtol=1e-6)
    v = meta["tokenizer"].vocab.size
    for k in ("after_numeric", "after_categorical", "categorical_targets"):
        assert res["ce"][k]["mean"] == pytest.approx(math.log(v), rel=1e-6)
    assert res["ce"]["after_numeric"]["n"] > 0 and res["ce"]["after_categorical"]["n"] > 0
    assert res["ce"]["degradation"] == pytest.approx(0.0, abs=1e-5)


def test_attention_washout_matches_transformers_attentions_and_a_plain_ce(pair: dict[str, Path], tmp_path: Path) -> None:
    arms = [Arm(pair["discrete"], pair["tok"]), Arm(pair["soft"], pair["tok"])]
    s = attention_washout(arms, tmp_path / "out", max_timelines=12, batch_size=3)
    res = strict_json(tmp_path / "out" / "attention_washout_results.json")
    assert (tmp_path / "out" / "attention_washout.png").stat().st_size > 10_000
    assert res["contrasts"][0]["discrete"] == "exp2.discrete_rope" and res["contrasts"][0]["soft"] == "exp2.soft_rope"
    assert set(s["degradation"]) == {"exp2.discrete_rope", "exp2.soft_rope"}
    r = res["arms"]["exp2.soft_rope"]
    # independent: transformers' output_attentions and a plain cross-entropy over the model's logits
    (arm,) = resolve_arms([arms[1]])
    model, meta = load_for_analysis(arm, device="cpu", attn_implementation="eager")
    tl = read_timeline_subset(pair["tok"], "held_out", 12, 42, need_minutes=True)
    cls = torch.as_tensor(token_classes(meta["tokenizer"].vocab.tokens), dtype=torch.long)
    from irbench_assets.models.wrapper import attention_inputs

    mass = torch.zeros(2, 4, dtype=torch.float64)
    nq, ce_all = 0, []
    with torch.no_grad():
        for _rows, batch in analysis_batches(tl, meta, 5):
            embeds = model.representation.embed(model.base.get_input_embeddings()(batch.input_ids), batch)
            out = model.base.model(inputs_embeds=embeds, position_ids=batch.positions, output_attentions=True,
                                   **attention_inputs(batch.segments, "eager"))
            real = batch.segments >= 0
            c = cls[batch.input_ids]
            q = ((c == 2) & real).double()
            knum = ((c == 1) & real).double()
            for li, w in enumerate(out.attentions):
                mass[li] += torch.einsum("bhqk,bk,bq->h", w.double(), knum, q)
            nq += int(q.sum())
            logits = model.base.lm_head(out.last_hidden_state)
            lab = batch.labels
            sel = (lab != IGNORE_INDEX) & (cls[lab.clamp(min=0)] == 2)
            ce_all.append(F.cross_entropy(logits[sel], lab[sel], reduction="none"))
    np.testing.assert_allclose(np.asarray(r["attention"]["numeric_share"]), (mass / nq).numpy(), rtol=1e-5, atol=1e-7)
    assert r["n_categorical_queries"] == nq
    assert r["ce"]["categorical_targets"]["mean"] == pytest.approx(float(torch.cat(ce_all).double().mean()), rel=1e-5)
    share = np.asarray(r["attention"]["numeric_share"]) + np.asarray(r["attention"]["categorical_share"]) \
        + np.asarray(r["attention"]["special_share"])
    np.testing.assert_allclose(share, 1.0, rtol=1e-5)


def test_payload_runs_a_diagnostic_by_name(xval: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = {"name": "xval_zero_audit", "args": {
        "arms": [{"model_dir": str(xval["xval"]), "tokenized_dir": str(xval["tok"])}],
        "out_dir": str(tmp_path / "out"), "max_timelines": 5}}
    run_payload(run_diagnostic, ["--json-args", json.dumps(args)])
    lines = capsys.readouterr().out.strip().splitlines()
    meta = json.loads(lines[-1])["metadata"]
    assert meta["n_arms"] == 1 and (tmp_path / "out" / "xval_zero_out_results.json").exists()
    assert any('"event": "xval_zero_audit"' in ln for ln in lines)
    with pytest.raises(ValueError, match="unknown diagnostic 'nope'"):
        run_diagnostic(name="nope", args={}, log=print)
    with pytest.raises(ValueError, match="needs tokenized_dir"):
        xval_zero_audit([Arm(xval["xval"])], tmp_path / "o2")
    with pytest.raises(FileNotFoundError, match=r"config\.json does not exist"):
        xval_zero_audit([Arm(tmp_path / "none", xval["tok"])], tmp_path / "o2")
    assert not (tmp_path / "o2").exists()
