"""Representation mechanics on hand-built batches: soft interpolation and targets, xVal scaling / clipping /
masking, admission-relative RoPE, piece masks and PAD handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from irbench_assets.models.config import IGNORE_INDEX, ModelConfig, NumericStats, TokenizerOutputs, Vocabulary
from irbench_assets.models.data import Batch, Plan, Timelines, collate
from irbench_assets.models.llama import build_llama
from irbench_assets.models.soft import SoftRepresentation
from irbench_assets.models.wrapper import RepresentationModel, build_representation
from irbench_assets.models.xval import XValRepresentation

WORDS = ["PAD", "TL_START", "TL_END", "TRUNC", "UNK", "TL_CONT", "nan", "Q0", "Q1", "Q2", "Q3", "[NUM]",
         "CODE_A", "CODE_B", "CODE_C", "MED"]
T = {w: i for i, w in enumerate(WORDS)}
VOCAB = Vocabulary(tokens=tuple(WORDS), pad_id=0, tl_start_id=1, tl_end_id=2, trunc_id=3, tl_cont_id=5,
                   q_token_ids=(T["Q0"], T["Q1"], T["Q2"], T["Q3"]), num_token_id=T["[NUM]"])
BINS = {T["CODE_A"]: np.array([0.0, 10.0, 20.0]), T["CODE_C"]: np.array([5.0])}
STATS = NumericStats(median={T["CODE_A"]: 10.0}, std={T["CODE_A"]: 2.0}, clip_sigma=5.0)
TINY = ModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def make_batch(rows: list[list[tuple[str, float | None]]], positions: list[list[float]] | None = None) -> Batch:
    """Right-padded batch from rows of (token, value); code ids = previous token; one piece per row."""
    width = max(len(r) for r in rows)
    B = len(rows)
    ids = torch.zeros(B, width, dtype=torch.long)
    vals = torch.full((B, width), float("nan"))
    codes = torch.full((B, width), -1, dtype=torch.long)
    seg = torch.full((B, width), -1, dtype=torch.long)
    labels = torch.full((B, width), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros(B, width)
    for b, row in enumerate(rows):
        n = len(row)
        ids[b, :n] = torch.tensor([T[w] for w, _ in row])
        vals[b, :n] = torch.tensor([float("nan") if v is None else v for _, v in row])
        codes[b, 1:n] = ids[b, : n - 1]
        seg[b, :n] = 0
        labels[b, : n - 1] = ids[b, 1:n]
        pos[b, :n] = torch.tensor(positions[b]) if positions else torch.arange(n, dtype=torch.float32)
    return Batch(ids, vals, codes, pos, seg, labels)


# ------------------------------------------------------------------------------------------ soft
@pytest.fixture
def soft() -> SoftRepresentation:
    torch.manual_seed(0)
    return SoftRepresentation(VOCAB, BINS, n_bins=4, hidden_size=8, init_std=1.0)


# (bin token, value) → expected (lo, hi, alpha) under the centred rule, edges [0, 10, 20]
SOFT_CASES = [
    ("Q1", 5.0, 1, 2, 0.0),  # centre of bin 1 → pure B1
    ("Q1", 7.5, 1, 2, 0.25),  # three quarters into bin 1
    ("Q1", 10.0, 1, 2, 0.5),  # on edge e1, tie put in the lower bin ...
    ("Q2", 10.0, 1, 2, 0.5),  # ... or in the upper bin: same mix
    ("Q2", 12.5, 1, 2, 0.75),
    ("Q0", -5.0, 0, 1, 0.0),  # centre of the open bottom bin (borrowed width 10)
    ("Q0", -2.5, 0, 1, 0.25),
    ("Q0", -100.0, 0, 1, 0.0),  # far below the range
    ("Q3", 20.0, 2, 3, 0.5),  # on the last edge
    ("Q3", 25.0, 3, 3, 0.0),  # centre of the open top bin
    ("Q3", 1e6, 3, 3, 0.0),  # far above the range
]


@pytest.mark.parametrize(("tok", "value", "lo", "hi", "alpha"), SOFT_CASES)
def test_soft_interpolation_at_between_and_outside_edges(soft: SoftRepresentation, tok: str, value: float,
                                                         lo: int, hi: int, alpha: float) -> None:
    batch = make_batch([[("CODE_A", None), (tok, value)]])
    is_soft, los, his, alphas = soft.coordinates(batch)
    assert bool(is_soft[0, 1]) and not bool(is_soft[0, 0])
    assert (int(los[0, 1]), int(his[0, 1])) == (lo, hi)
    assert float(alphas[0, 1]) == pytest.approx(alpha, abs=1e-6)
    base = torch.randn(1, 2, 8)
    out = soft.embed(base, batch)
    B = soft.bin_embeddings.detach()
    torch.testing.assert_close(out[0, 1], (1 - alpha) * B[lo] + alpha * B[hi])
    torch.testing.assert_close(out[0, 0], base[0, 0])


def test_soft_is_continuous_and_monotone_across_edges(soft: SoftRepresentation) -> None:
    values = np.linspace(-30, 50, 801)
    bins = np.searchsorted(BINS[T["CODE_A"]], values, side="right")  # the tokenizer's digitize convention
    batch = make_batch([[("CODE_A", None), (f"Q{k}", float(v))] for k, v in zip(bins, values, strict=True)])
    _, lo, _, alpha = soft.coordinates(batch)
    u = (lo[:, 1].double() + alpha[:, 1].double()).numpy()
    assert np.all(np.diff(u) >= -1e-6)
    assert np.max(np.abs(np.diff(u))) < 0.05  # no jumps (the reference jumps a whole bin at the top edge)
    assert u.min() == 0 and u.max() == 3


def test_soft_leaves_non_soft_positions_alone(soft: SoftRepresentation) -> None:
    rows = [[("CODE_B", None), ("Q1", 3.0)],  # code without edges
            [("CODE_A", None), ("Q1", None)],  # no value
            [("Q1", 4.0), ("MED", None)],  # no code before the Q token
            [("CODE_C", None), ("Q0", 1.0)]]  # a single edge: outer bins are pure
    batch = make_batch(rows)
    base = torch.randn(4, 2, 8)
    out = soft.embed(base, batch)
    torch.testing.assert_close(out[:3], base[:3])
    torch.testing.assert_close(out[3, 1], soft.bin_embeddings.detach()[0])


def test_soft_target_is_the_matching_two_bin_distribution(soft: SoftRepresentation) -> None:
    batch = make_batch([[("TL_START", None), ("CODE_A", None), ("Q1", 7.5), ("MED", None)],
                        [("CODE_B", None), ("Q2", 3.0), ("PAD", None)]])
    batch.labels[1, 1] = IGNORE_INDEX  # the PAD position
    logits = torch.randn(2, 4, len(WORDS))
    parts = soft.loss(logits, torch.zeros(2, 4, 8), batch)
    logp = F.log_softmax(logits, -1)
    manual = [-logp[0, 0, T["CODE_A"]],
              -(0.75 * logp[0, 1, T["Q1"]] + 0.25 * logp[0, 1, T["Q2"]]),  # soft target for the value
              -logp[0, 2, T["MED"]],
              -logp[1, 0, T["Q2"]]]  # no edges for CODE_B → hard target
    assert parts.n_targets == 4
    torch.testing.assert_close(parts.total, torch.stack(manual).mean())


# ------------------------------------------------------------------------------------------ xVal
@pytest.mark.parametrize("affine", [False, True])
def test_xval_scaling_clipping_and_no_stats_masking(affine: bool) -> None:
    torch.manual_seed(0)
    rep = XValRepresentation(VOCAB, STATS, hidden_size=8, init_std=1.0, affine=affine, loss_weight=1.0)
    batch = make_batch([[("CODE_A", None), ("[NUM]", 14.0)],  # z = 2
                        [("CODE_A", None), ("[NUM]", 1000.0)],  # z clipped to 5
                        [("CODE_A", None), ("[NUM]", -1000.0)],  # z clipped to -5
                        [("CODE_B", None), ("[NUM]", 3.0)],  # no stats → unscaled
                        [("CODE_A", None), ("[NUM]", 10.0)]])  # z = 0
    is_num, z = rep.normalized(batch)
    assert is_num[:, 1].tolist() == [True, True, True, False, True]
    assert z[:, 1].tolist() == [2.0, 5.0, -5.0, 0.0, 0.0]
    base = torch.randn(5, 2, 8)
    out = rep.embed(base, batch)
    shift = rep.shift.detach() if affine else torch.zeros(8)
    for b, zz in enumerate([2.0, 5.0, -5.0]):
        torch.testing.assert_close(out[b, 1], zz * base[b, 1] + shift)
    torch.testing.assert_close(out[3, 1], base[3, 1])
    torch.testing.assert_close(out[:, 0], base[:, 0])
    if affine:
        assert out[4, 1].norm() > 0.1  # the affine shift keeps z = 0 visible
    else:
        assert out[4, 1].abs().max() == 0  # plain xVal erases a value at its code's median


def test_xval_numeric_loss_is_mse_on_the_next_valued_num() -> None:
    torch.manual_seed(0)
    rep = XValRepresentation(VOCAB, STATS, hidden_size=8, init_std=1.0, affine=False, loss_weight=0.5)
    batch = make_batch([[("CODE_A", None), ("[NUM]", 14.0), ("CODE_B", None), ("[NUM]", 3.0), ("CODE_A", None),
                         ("[NUM]", 7.0)]])
    hidden = torch.randn(1, 6, 8)
    logits = torch.randn(1, 6, len(WORDS))
    parts = rep.loss(logits, hidden, batch)
    pred = rep.head(hidden[0]).squeeze(-1).detach()
    mse = ((pred[0] - 2.0) ** 2 + (pred[4] - (-1.5)) ** 2) / 2  # position 2 ([NUM] after CODE_B) excluded
    ce = F.cross_entropy(logits[0, :5], batch.labels[0, :5])
    torch.testing.assert_close(parts.numeric, mse)
    torch.testing.assert_close(parts.total.detach(), ce + 0.5 * mse)


# ------------------------------------------------------------------------------------------ model-level
def tiny_model(kind: str = "discrete", attn: str = "sdpa") -> RepresentationModel:
    torch.manual_seed(0)
    tok = TokenizerOutputs(vocab=VOCAB, bins=BINS, stats=STATS)
    return RepresentationModel(build_llama(TINY, VOCAB, attn), build_representation(kind, tok, TINY, 4)).eval()


def test_rope_time_positions_are_shift_invariant_but_time_sensitive() -> None:
    minutes = np.array([0, 0, 30, 30, 95, 400], dtype=np.float32)
    tl = Timelines(hadm_id=np.array([7]), offsets=np.array([0, 6]),
                   tokens=np.array([1, 12, 8, 15, 13, 15], dtype=np.int32),
                   values=np.array([np.nan, np.nan, 4.0, np.nan, np.nan, np.nan], dtype=np.float32),
                   code_ids=np.array([-1, 1, 12, 8, 15, 13], dtype=np.int32), minutes=minutes, source="hand-made")
    plan = Plan(np.array([0]), np.array([0]), np.array([0]), np.array([6]), np.array([False]), 1, None)
    timed = collate(tl, plan, VOCAB, rope=True, positions_per_hour=60.0)
    indexed = collate(tl, plan, VOCAB, rope=False, positions_per_hour=60.0)
    assert timed.positions[0].tolist() == [0, 0, 30, 30, 95, 400]  # one rotary unit per minute
    assert indexed.positions[0].tolist() == [0, 1, 2, 3, 4, 5]
    model = tiny_model()
    with torch.no_grad():
        h = model(timed)
        shifted = Batch(**{**timed.__dict__, "positions": timed.positions + 1234.0})
        torch.testing.assert_close(model(shifted), h, atol=2e-4, rtol=1e-3)
        assert not torch.allclose(model(indexed), h, atol=1e-3)
        later = Batch(**{**timed.__dict__, "positions": timed.positions * torch.tensor([1, 1, 1, 1, 1, 3.0])})
        assert not torch.allclose(model(later)[0, 5], h[0, 5], atol=1e-3)
        torch.testing.assert_close(model(later)[0, :5], h[0, :5])  # causal: the past is untouched


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_rows_never_attend_across_admissions(attn: str) -> None:
    model = tiny_model("soft", attn)
    a = [("TL_START", None), ("CODE_A", None), ("Q1", 4.0), ("MED", None)]
    b = [("TL_START", None), ("MED", None), ("CODE_A", None), ("Q2", 11.0), ("TL_END", None)]
    alone = make_batch([b])
    packed = make_batch([a + b])
    packed.segments[0, len(a):] = 1
    packed.positions[0, len(a):] = torch.arange(len(b), dtype=torch.float32)
    packed.code_ids[0, len(a)] = -1
    packed.labels[0, len(a) - 1] = IGNORE_INDEX
    with torch.no_grad():
        torch.testing.assert_close(model(packed)[0, len(a):], model(alone)[0], atol=1e-5, rtol=1e-4)
        mixed = make_batch([a + b])  # the same row without piece boundaries does see the first admission
        assert not torch.allclose(model(mixed)[0, len(a):], model(alone)[0], atol=1e-3)


def test_pad_positions_are_ignored_in_the_loss() -> None:
    model = tiny_model("xval")
    long = [("TL_START", None), ("CODE_A", None), ("[NUM]", 12.0), ("MED", None), ("CODE_A", None),
            ("[NUM]", 5.0), ("TL_END", None)]
    short = [("TL_START", None), ("CODE_A", None), ("[NUM]", 9.0), ("MED", None)]
    both = make_batch([long, short])
    assert both.labels[1, 3:].tolist() == [IGNORE_INDEX] * 4  # last real position and the PADs
    with torch.no_grad():
        parts = model.loss(both)
        one_l, one_s = model.loss(make_batch([long])), model.loss(make_batch([short]))
        assert parts.n_targets == one_l.n_targets + one_s.n_targets == 6 + 3
        expected = (one_l.token * 6 + one_s.token * 3) / 9
        torch.testing.assert_close(parts.token, expected, atol=1e-5, rtol=1e-5)
        # changing what sits in the PAD slots changes nothing
        other = make_batch([long, short])
        other.input_ids[1, 4:] = T["MED"]
        torch.testing.assert_close(model.loss(other).total, parts.total)


def test_flash_attention_pieces_become_varlen_sequences() -> None:
    from irbench_assets.models.wrapper import attention_inputs

    seg = torch.tensor([[0, 0, 0, 1, 1, -1], [0, 0, 0, 0, 0, 0]])
    kw = attention_inputs(seg, "flash_attention_2")
    assert kw["attention_mask"] is None
    assert kw["cu_seq_lens_q"].tolist() == [0, 3, 5, 6, 12] and kw["max_length_q"] == 6
    sd = attention_inputs(seg, "sdpa")["attention_mask"]
    assert sd.shape == (2, 1, 6, 6) and sd.dtype == torch.bool
    assert not sd[0, 0, 3, :3].any() and sd[0, 0, 4, 3:5].all() and sd[0, 0, 5, 5] and not sd[0, 0, 5, :5].any()
    assert attention_inputs(torch.tensor([[0, 0, -1]]), "sdpa")["attention_mask"].tolist() == [[1, 1, 0]]
