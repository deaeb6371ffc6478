"""Reading tokenized timelines, packed / windowed plans, collation (labels, code ids, positions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from irbench_assets.models.config import IGNORE_INDEX, read_tokenizer_outputs
from irbench_assets.models.data import collate, packed_plan, read_timelines, windowed_plan
from irbench_assets.models.synthetic import write_synthetic_tokenized


@pytest.fixture(scope="module")
def handles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two handles of one 'experiment': same admissions, different tokenizations."""
    root = tmp_path_factory.mktemp("tok")
    return {"deciles_tt": write_synthetic_tokenized(root / "a", n_admissions=160, temporal="tt"),
            "xval_none": write_synthetic_tokenized(root / "b", n_admissions=160, numeric_encoding="xval",
                                                   temporal="none")}


def _train(d: Path, minutes: bool = False):
    return read_timelines(d / "full" / "train" / "tokens_timelines.parquet", need_minutes=minutes)


def test_packing_covers_every_token_once_and_is_dense(handles: dict[str, Path]) -> None:
    tl = _train(handles["deciles_tt"])
    plan = packed_plan(tl, block_size=128, seed=42, epoch=0)
    covered = np.zeros(len(tl.tokens), dtype=np.int64)
    for d, a, b in zip(plan.doc, plan.start, plan.stop, strict=True):
        covered[tl.offsets[d] + a: tl.offsets[d] + b] += 1
    assert np.all(covered == 1)
    assert plan.efficiency(batch_size=8) >= 0.97
    assert plan.efficiency(batch_size=8) == pytest.approx(len(tl.tokens) / (plan.n_rows * 128))


def test_data_order_depends_on_hadm_and_seed_not_on_the_handle(handles: dict[str, Path]) -> None:
    a, b = _train(handles["deciles_tt"]), _train(handles["xval_none"])
    assert np.array_equal(a.hadm_id, b.hadm_id) and not np.array_equal(a.tokens.size, b.tokens.size)

    def doc_order(tl, seed: int, epoch: int) -> list[int]:
        p = packed_plan(tl, 128, seed, epoch)
        return list(dict.fromkeys(tl.hadm_id[p.doc].tolist()))

    assert doc_order(a, 42, 0) == doc_order(b, 42, 0)
    assert doc_order(a, 42, 0) != doc_order(a, 43, 0)
    assert doc_order(a, 42, 0) != doc_order(a, 42, 1)
    assert sorted(doc_order(a, 42, 0)) == sorted(a.hadm_id.tolist())


def test_windows_cover_timelines_with_continuation_markers(handles: dict[str, Path]) -> None:
    tok = read_tokenizer_outputs(handles["deciles_tt"] / "train")
    tl = _train(handles["deciles_tt"], minutes=True)
    L = 48
    plan = windowed_plan(tl, L, seed=42, epoch=0, max_windows=None)
    covered = np.zeros(len(tl.tokens), dtype=np.int64)
    for d, a, b in zip(plan.doc, plan.start, plan.stop, strict=True):
        covered[tl.offsets[d] + a: tl.offsets[d] + b] += 1
    assert np.all(covered == 1)
    assert np.array_equal(plan.cont, plan.start > 0)
    assert np.all(plan.stop - plan.start + plan.cont <= L)
    batch = collate(tl, plan.batch_pieces(0, 16), tok.vocab, rope=True, positions_per_hour=60.0)
    sub = plan.batch_pieces(0, 16)
    for r in range(16):
        n = int(sub.stop[r] - sub.start[r] + sub.cont[r])
        ids = batch.input_ids[r]
        assert (ids[0] == tok.vocab.tl_cont_id) == bool(sub.cont[r])
        assert ids[n:].eq(tok.vocab.pad_id).all() and batch.segments[r, n:].eq(-1).all()
        assert batch.labels[r, : n - 1].tolist() == ids[1:n].tolist()
        assert batch.labels[r, n - 1:].eq(IGNORE_INDEX).all()
        assert batch.positions[r, 0] == 0 and (batch.positions[r, 1:n].diff() >= 0).all()
        # the code id of the first real token is its true predecessor in the full timeline
        d, a = int(sub.doc[r]), int(sub.start[r])
        expected = -1 if a == 0 else int(tl.tokens[tl.offsets[d] + a - 1])
        assert int(batch.code_ids[r, int(sub.cont[r])]) == expected
    capped = windowed_plan(tl, L, seed=42, epoch=0, max_windows=2)
    assert np.bincount(capped.doc).max() <= 2 and set(capped.doc) == set(plan.doc)


def test_packed_labels_stop_at_piece_boundaries(handles: dict[str, Path]) -> None:
    tok = read_tokenizer_outputs(handles["deciles_tt"] / "train")
    tl = _train(handles["deciles_tt"])
    plan = packed_plan(tl, 64, seed=42, epoch=0)
    batch = collate(tl, plan.batch_pieces(1, 8), tok.vocab, rope=False, positions_per_hour=60.0)
    seg = batch.segments
    cross = seg[:, 1:] != seg[:, :-1]
    assert batch.labels[:, :-1][cross].eq(IGNORE_INDEX).all()
    assert batch.labels[:, -1].eq(IGNORE_INDEX).all()
    starts = np.flatnonzero(np.diff(seg[0].numpy(), prepend=-2) != 0)
    assert all(batch.positions[0, s] == 0 for s in starts)
    assert batch.n_real == 8 * 64


def test_bad_input_names_file_row_and_admission(tmp_path: Path) -> None:
    t = pa.table({"hadm_id": pa.array([5, 6], pa.int64()),
                  "tokens": pa.array([[1, 2], [1, 2, 3]], pa.list_(pa.int32())),
                  "numeric_values": pa.array([[None, None], [None, 1.0]], pa.list_(pa.float32()))})
    p = tmp_path / "tokens_timelines.parquet"
    pq.write_table(t, p)
    with pytest.raises(ValueError, match=r"row 1 \(hadm_id 6\): numeric_values has 2 entries, tokens has 3"):
        read_timelines(p, need_minutes=False)
    with pytest.raises(ValueError, match=r"missing columns \['times'\]"):
        read_timelines(p, need_minutes=True)
