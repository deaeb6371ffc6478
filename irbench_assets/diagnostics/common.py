"""Shared pieces of the mechanistic diagnostics: which model/tokenized folders to read (:class:`Arm`), the
learned embeddings of a checkpoint, the value-bin token sets of a code, token classes, deterministic
timeline subsets and atomic JSON + PNG output.

Everything reads the files Stage 0/1 wrote (docs/tokenized_format.md, docs/representations.md §7):
``<model_dir>/config.json``, ``base/model.safetensors`` (``model.embed_tokens.weight``),
``initial_embeddings.safetensors``, ``representation.safetensors`` (soft bin table) and the vocabulary
copy ``<model_dir>/vocab/{vocab,bins}.parquet`` — the exact files the model was trained with.
No Dagster here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from irbench_assets.storage import atomic_dir, write_json

LogFn = Callable[[Mapping[str, Any] | str], None]
SCHEMA_VERSION = 1
SPECIAL_TOKENS = frozenset({"PAD", "TL_START", "TL_END", "TRUNC", "UNK", "TL_CONT", "nan"})
_Q = re.compile(r"^Q(\d+)$")
_FUSED = re.compile(r"^(?P<code>.+)//Q(?P<k>\d+)$")
NUM_TOKEN = "[NUM]"

# token classes (attention washout): special tokens are neither numeric nor categorical
SPECIAL, NUMERIC, CATEGORICAL = 0, 1, 2
CLASS_NAMES = ("special", "numeric", "categorical")


def _noop(_: Mapping[str, Any] | str) -> None:
    return None


# ------------------------------------------------------------------------------------------- arms
@dataclass(frozen=True)
class Arm:
    """One trained handle to diagnose: its checkpoint folder and (for the GPU diagnostics) its tokenized
    folder ``$IRBENCH_HOME/runs/tokenized/<exp>/<handle>/``; ``name`` defaults to ``<exp>.<handle>``."""

    model_dir: Path
    tokenized_dir: Path | None = None
    name: str | None = None


@dataclass
class ResolvedArm:
    """An :class:`Arm` with its ``config.json`` read and its display name fixed."""

    name: str
    model_dir: Path
    tokenized_dir: Path | None
    config: dict[str, Any]
    handle: dict[str, Any] = field(default_factory=dict)

    @property
    def representation(self) -> str:
        return str(self.config.get("representation", self.handle.get("representation", "discrete")))

    @property
    def fused(self) -> bool:
        return bool(self.handle.get("fused", False))

    @property
    def quantizer(self) -> str:
        return str(self.handle.get("quantizer", ""))

    @property
    def vocab_dir(self) -> Path:
        return self.model_dir / "vocab"

    def describe(self) -> dict[str, Any]:
        """The handle fields a reader of the JSON needs next to the numbers."""
        keys = ("experiment", "handle", "quantizer", "anchoring", "fused", "representation", "temporal")
        return {"model_dir": str(self.model_dir), **{k: self.handle.get(k) for k in keys}}


def resolve_arms(arms: Iterable[Arm | Mapping[str, Any]]) -> list[ResolvedArm]:
    """Read every arm's ``config.json``; names must be unique. Accepts :class:`Arm` or JSON-style dicts
    (``{"model_dir": ..., "tokenized_dir": ..., "name": ...}``, as payload arguments carry them)."""
    out: list[ResolvedArm] = []
    for raw in arms:
        arm = raw if isinstance(raw, Arm) else Arm(
            model_dir=Path(raw["model_dir"]),
            tokenized_dir=Path(raw["tokenized_dir"]) if raw.get("tokenized_dir") else None,
            name=raw.get("name"))
        mdir = Path(arm.model_dir)
        cfg_path = mdir / "config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"{cfg_path} does not exist (not a model directory written by train_model)")
        config = json.loads(cfg_path.read_text())
        handle = dict(config.get("handle") or {})
        name = arm.name or (f"{handle['experiment']}.{handle['handle']}" if "experiment" in handle else mdir.name)
        out.append(ResolvedArm(name, mdir, Path(arm.tokenized_dir) if arm.tokenized_dir else None, config, handle))
    names = [a.name for a in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"arm names must be unique; repeated: {dup} (pass Arm(name=...) to tell them apart)")
    if not out:
        raise ValueError("no arms given")
    return out


# ------------------------------------------------------------------------------------------- vocabulary
@dataclass(frozen=True)
class VocabTable:
    """``vocab.parquet`` as arrays indexed by token id."""

    tokens: tuple[str, ...]
    counts: np.ndarray  # int64 [V]
    kinds: tuple[str, ...]
    lookup: dict[str, int]

    @property
    def size(self) -> int:
        return len(self.tokens)


def matched_pairs(arms: Sequence[ResolvedArm], rep_a: str, rep_b: str) -> list[tuple[ResolvedArm, ResolvedArm]]:
    """(a, b) arms with representations ``rep_a`` / ``rep_b`` of the same experiment and time encoding: the
    contrasts a diagnostic reports (e.g. soft − discrete)."""
    return [
        (a, b)
        for a in arms if a.representation == rep_a
        for b in arms
        if b.representation == rep_b and b.handle.get("temporal") == a.handle.get("temporal")
        and b.handle.get("experiment") == a.handle.get("experiment")
    ]


def read_vocab_table(path: Path) -> VocabTable:
    """Read ``vocab.parquet`` (token_id 0..V-1, token, count[, kind])."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    have = pq.read_schema(path).names
    missing = [c for c in ("token_id", "token", "count") if c not in have]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (have {have})")
    t = pq.read_table(path, columns=[c for c in ("token_id", "token", "count", "kind") if c in have])
    ids = t.column("token_id").to_numpy().astype(np.int64)
    order = np.argsort(ids, kind="stable")
    if not np.array_equal(ids[order], np.arange(len(ids))):
        raise ValueError(f"{path}: column token_id must be exactly 0..{len(ids) - 1}")
    toks = [t.column("token").to_pylist()[i] for i in order]
    counts = t.column("count").to_numpy().astype(np.int64)[order]
    kinds = [t.column("kind").to_pylist()[i] for i in order] if "kind" in have else [""] * len(toks)
    return VocabTable(tuple(toks), counts, tuple(kinds), {w: i for i, w in enumerate(toks)})


@dataclass(frozen=True)
class CodeBins:
    """One row of ``bins.parquet``."""

    code: str
    edges: np.ndarray
    n_values: int
    n_bins_nominal: int
    n_bins_realized: int | None


def read_bins_table(path: Path) -> dict[str, CodeBins]:
    """Read ``bins.parquet`` → {code: CodeBins} (edges sorted, finite)."""
    path = Path(path)
    if not path.exists():
        return {}
    have = pq.read_schema(path).names
    cols = [c for c in ("code", "edges", "n_values", "n_bins_nominal", "n_bins_realized") if c in have]
    if "code" not in cols or "edges" not in cols:
        raise ValueError(f"{path}: needs columns code and edges (have {have})")
    t = pq.read_table(path, columns=cols).to_pylist()
    out: dict[str, CodeBins] = {}
    for row_no, r in enumerate(t):
        e = np.asarray(r["edges"] or [], dtype=np.float64)
        if e.size and (not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0)):
            raise ValueError(f"{path}: row {row_no} (code {r['code']!r}): edges must be finite and sorted")
        out[r["code"]] = CodeBins(r["code"], e, int(r.get("n_values") or 0), int(r.get("n_bins_nominal") or 0),
                                  None if r.get("n_bins_realized") is None else int(r["n_bins_realized"]))
    return out


def check_same_vocab(arm: ResolvedArm) -> None:
    """When a tokenized folder is given, its vocabulary must be the one the model was trained with."""
    if arm.tokenized_dir is None:
        return
    own = arm.tokenized_dir / "train" / "vocab.parquet"
    if not own.exists():
        raise FileNotFoundError(f"{own} does not exist (tokenized folder of arm {arm.name})")
    a = pq.read_table(own, columns=["token"]).column("token").to_pylist()
    b = pq.read_table(arm.vocab_dir / "vocab.parquet", columns=["token"]).column("token").to_pylist()
    if a != b:
        raise ValueError(f"{own} differs from the vocabulary the model in {arm.model_dir} was trained with")


def find_code(bins: Mapping[str, CodeBins], prefix: str) -> str | None:
    """The code of ``bins`` equal to ``prefix`` or starting with ``prefix`` (e.g. ``LAB//50971//``); when
    several units match, the one with the most train values (then the smaller string)."""
    bare = prefix.rstrip("/")
    hits = [c for c in bins if c == bare or c.startswith(prefix if prefix.endswith("//") else prefix + "//")]
    if not hits:
        return None
    return sorted(hits, key=lambda c: (-bins[c].n_values, c))[0]


def token_classes(tokens: Sequence[str]) -> np.ndarray:
    """Per token id: NUMERIC for value tokens (``Q<k>``, ``[NUM]``, fused ``<code>//Q<k>``), SPECIAL for
    PAD / TL_* / TRUNC / UNK / ``nan``, CATEGORICAL for everything else (codes, time and prefix tokens)."""
    out = np.full(len(tokens), CATEGORICAL, dtype=np.int8)
    for i, w in enumerate(tokens):
        if w in SPECIAL_TOKENS:
            out[i] = SPECIAL
        elif w == NUM_TOKEN or _Q.match(w) or _FUSED.match(w):
            out[i] = NUMERIC
    return out


# ------------------------------------------------------------------------------------------- embeddings
def _tensor(path: Path, key: str) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        if key not in f.keys():  # noqa: SIM118 - safe_open has keys(), not __contains__
            raise KeyError(f"{path} has no tensor {key!r} (has {sorted(f.keys())[:8]}...)")
        return f.get_tensor(key).float().numpy()


def input_embeddings(model_dir: Path) -> np.ndarray:
    """The learned token-embedding matrix [V, d] (float32) of a checkpoint (``base/`` safetensors)."""
    base = Path(model_dir) / "base"
    key = "model.embed_tokens.weight"
    index = base / "model.safetensors.index.json"
    if index.exists():
        shard = json.loads(index.read_text())["weight_map"].get(key)
        if shard is None:
            raise KeyError(f"{index}: no shard holds {key}")
        return _tensor(base / shard, key)
    path = base / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (checkpoint written by train_model?)")
    return _tensor(path, key)


def initial_embeddings(model_dir: Path) -> np.ndarray:
    """The token embeddings at initialisation, saved by train_model (``initial_embeddings.safetensors``)."""
    path = Path(model_dir) / "initial_embeddings.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the checkpoint predates saving the initial weights; "
                                "retrain it to get the sparsity distance")
    return _tensor(path, "embed_tokens")


def soft_bin_table(model_dir: Path) -> np.ndarray:
    """The soft representation's shared bin table B [n_bins, d] (``representation.safetensors``)."""
    return _tensor(Path(model_dir) / "representation.safetensors", "bin_embeddings")


# ------------------------------------------------------------------------------------------- value bins
def reachable_bins(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bins a value can fall into and their midpoints, for np.digitize edges (bin k = [e_{k-1}, e_k)).

    Duplicate edges make the bins between them empty; the reachable bins are bin 0 and, per distinct edge
    u, bin ``#(edges <= u)``. Midpoints: centre of each bin between two distinct edges; the two open outer
    bins are extrapolated by half the width of their inner neighbour. Fewer than 2 distinct edges → the
    outer midpoints are NaN (no width to borrow).
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.size == 0:
        return np.array([0], dtype=np.int64), np.array([np.nan])
    u = np.unique(e)
    ks = np.concatenate([[0], np.searchsorted(e, u, side="right")]).astype(np.int64)
    mids = np.full(len(ks), np.nan)
    if len(u) >= 2:
        mids[1:-1] = (u[:-1] + u[1:]) / 2
        mids[0] = u[0] - (u[1] - u[0]) / 2
        mids[-1] = u[-1] + (u[-1] - u[-2]) / 2
    return ks, mids


@dataclass
class BinSet:
    """Embeddings of the value bins of one code (or of the shared ``Q<k>`` tokens), in bin order."""

    label: str
    code: str | None
    shared: bool  # True: shared Q<k> (or soft bin table) rows, the same for every code
    bins: np.ndarray  # int64 bin indices k
    token_ids: np.ndarray  # int64 token id per bin (-1 for soft-table rows without a token)
    counts: np.ndarray  # int64 train count of the token (shared: all codes together)
    vectors: np.ndarray  # float32 [n, d]
    midpoints: np.ndarray | None = None  # bin midpoints in the code's units (None for the shared set)
    excluded: dict[str, list[int]] = field(default_factory=dict)  # reason → bins left out


def _shared_rows(arm: ResolvedArm, vocab: VocabTable, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin k: the token id of Q<k> (-1 if absent) and the vector the model reads for bin k (the soft
    bin table for soft models, whose value positions never use the Q<k> token embedding)."""
    ks = sorted(int(m.group(1)) for w in vocab.tokens if (m := _Q.match(w)))
    n = ks[-1] + 1 if ks else 0
    tids = np.array([vocab.lookup.get(f"Q{k}", -1) for k in range(n)], dtype=np.int64)
    if arm.representation == "soft":
        table = soft_bin_table(arm.model_dir)
        n = max(n, table.shape[0])
        tids = np.concatenate([tids, np.full(n - len(tids), -1, dtype=np.int64)])
        return tids, table[:n].astype(np.float32)
    vec = np.zeros((n, emb.shape[1]), dtype=np.float32)
    vec[tids >= 0] = emb[tids[tids >= 0]]
    return tids, vec


def shared_bin_set(arm: ResolvedArm, vocab: VocabTable, emb: np.ndarray, min_count: int = 1) -> BinSet | None:
    """All shared ``Q<k>`` bins present in the vocabulary with a train count >= ``min_count`` (None when the
    handle is fused or xVal)."""
    tids, vec = _shared_rows(arm, vocab, emb)
    if len(tids) == 0 or (tids < 0).all():
        return None
    counts = np.where(tids >= 0, vocab.counts[np.maximum(tids, 0)], 0)
    keep = (tids >= 0) & (counts >= min_count)
    excl = {"zero_count": [int(k) for k in np.flatnonzero((tids >= 0) & ~keep)]}
    ks = np.flatnonzero(keep)
    return BinSet("shared Q", None, True, ks, tids[ks], counts[ks], vec[ks], None, excl)


def code_bin_set(arm: ResolvedArm, vocab: VocabTable, bins: Mapping[str, CodeBins], code: str, emb: np.ndarray,
                 min_count: int = 1) -> BinSet:
    """The reachable bins of ``code`` with their embeddings: fused ``<code>//Q<k>`` tokens (bins whose token
    has fewer than ``min_count`` train occurrences are left out and listed) or, unfused, the shared
    ``Q<k>`` rows (the same vectors for every code)."""
    cb = bins[code]
    ks, mids = reachable_bins(cb.edges)
    unreachable = sorted(set(range(len(cb.edges) + 1)) - {int(k) for k in ks})
    if arm.fused:
        tids = np.array([vocab.lookup.get(f"{code}//Q{k}", -1) for k in ks], dtype=np.int64)
        rows = emb[np.maximum(tids, 0)]
    else:
        q_tids, q_vec = _shared_rows(arm, vocab, emb)
        inside = ks < len(q_tids)
        tids = np.full(len(ks), -1, dtype=np.int64)
        tids[inside] = q_tids[ks[inside]]
        rows = np.zeros((len(ks), emb.shape[1]), dtype=np.float32)
        rows[tids >= 0] = q_vec[ks[tids >= 0]]
    missing = tids < 0
    counts = np.where(missing, 0, vocab.counts[np.maximum(tids, 0)])
    keep = ~missing & (counts >= min_count)
    excl = {"unreachable": unreachable, "not_in_vocab": [int(k) for k in ks[missing]],
            "zero_count": [int(k) for k in ks[~missing & ~keep]]}
    return BinSet(code, code, not arm.fused, ks[keep], tids[keep], counts[keep], rows[keep].astype(np.float32),
                  mids[keep], excl)


# ------------------------------------------------------------------------------------------- geometry
def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows of ``x`` (a zero row gives 0)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return unit @ unit.T


def u_shape(cos: np.ndarray) -> dict[str, float | int]:
    """U-shape metric = cos(bin0, last) - cos(bin0, middle), middle = index (n-1)//2 of the ordered bins;
    > 0: the two extremes are closer to each other than the low extreme is to the middle (a folded scale)."""
    n = cos.shape[0]
    if n < 3:
        return {"u_shape": float("nan"), "cos_first_last": float("nan"), "cos_first_middle": float("nan"),
                "middle_index": -1}
    mid = (n - 1) // 2
    return {"u_shape": float(cos[0, -1] - cos[0, mid]), "cos_first_last": float(cos[0, -1]),
            "cos_first_middle": float(cos[0, mid]), "middle_index": int(mid)}


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """2-D PCA (sklearn, full SVD) → coordinates [n, 2] and explained-variance ratios; signs fixed so that
    each component correlates positively with the row order (deterministic plots)."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float64)
    k = min(2, x.shape[0], x.shape[1])
    if x.shape[0] < 2 or k < 1:
        return np.zeros((x.shape[0], 2)), [float("nan"), float("nan")]
    pca = PCA(n_components=k, svd_solver="full").fit(x)
    coords = pca.transform(x)
    order = np.arange(x.shape[0]) - (x.shape[0] - 1) / 2
    for j in range(k):
        if float(order @ coords[:, j]) < 0:
            coords[:, j] = -coords[:, j]
    ratio = [float(r) for r in pca.explained_variance_ratio_]
    if k < 2:
        coords = np.column_stack([coords, np.zeros(x.shape[0])])
        ratio.append(float("nan"))
    return coords, ratio


# ------------------------------------------------------------------------------------------- timelines
def subset_rows(hadm_ids: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Row indices of a deterministic pseudo-random subset of at most ``n`` admissions (a keyed hash of
    hadm_id, so every handle of an experiment gets the same admissions), in file order."""
    from irbench_assets.models.data import order_key

    if n is None or n >= len(hadm_ids):
        return np.arange(len(hadm_ids))
    key = order_key(np.asarray(hadm_ids, dtype=np.int64), seed, 0)
    pick = np.lexsort((hadm_ids, key))[:n]
    return np.sort(pick)


def read_timeline_subset(tokenized_dir: Path, split: str, n: int | None, seed: int, need_minutes: bool) -> Any:
    """The first-24h timelines of ``split`` restricted to :func:`subset_rows` (a models.data.Timelines)."""
    from irbench_assets.models.data import timelines_from_table

    path = Path(tokenized_dir) / "first_24h" / split / "tokens_timelines.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    cols = ["hadm_id", "tokens", "numeric_values"] + (["times"] if need_minutes else [])
    hadm = pq.read_table(path, columns=["hadm_id"]).column("hadm_id").to_numpy()
    rows = subset_rows(hadm, n, seed)
    table = pq.read_table(path, columns=cols).take(pa.array(rows))
    if table.num_rows == 0:
        raise ValueError(f"{path}: no timelines to analyse")
    return timelines_from_table(table, str(path), need_minutes=need_minutes)


# ------------------------------------------------------------------------------------------- output
def to_jsonable(obj: Any, digits: int | None = None) -> Any:
    """numpy → Python, NaN/inf → None (strict JSON), floats optionally rounded to ``digits`` decimals."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, digits) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), digits)
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, digits) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return round(obj, digits) if digits is not None else obj
    return obj


def write_outputs(out_dir: Path, json_name: str, result: Mapping[str, Any], figures: Mapping[str, Any]) -> dict[str, str]:
    """Write ``result`` as JSON and each matplotlib Figure as PNG into ``out_dir``, atomically (temp dir →
    rename); return {file name: final path}."""
    out_dir = Path(out_dir)
    written: dict[str, str] = {}
    with atomic_dir(out_dir) as tmp:
        write_json(to_jsonable(result), tmp / json_name)
        written[json_name] = str(out_dir / json_name)
        for name, fig in sorted(figures.items()):
            fig.savefig(tmp / name, dpi=110, metadata={"Software": None})
            written[name] = str(out_dir / name)
    return written


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas, without pyplot (no global backend or figure registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (scipy), NaN when either side is constant or has < 3 points."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


# ------------------------------------------------------------------------------------------- models
def load_for_analysis(arm: ResolvedArm, device: str = "auto", attn_implementation: str | None = None) -> tuple[Any, dict]:
    """``models.extract.load_model`` in eval mode, optionally switched to another attention implementation
    (``eager`` is the one that returns attention weights; transformers' ``set_attn_implementation``)."""
    from irbench_assets.models.extract import load_model

    model, meta = load_model(arm.model_dir, device=device)
    if attn_implementation is not None and model.attn_implementation != attn_implementation:
        model.base.set_attn_implementation(attn_implementation)
    meta = {**meta, "attn_implementation": model.attn_implementation}
    check_same_vocab(arm)
    return model, meta


def analysis_batches(tl: Any, meta: Mapping[str, Any], batch_size: int) -> Iterable[tuple[np.ndarray, Any]]:
    """Micro-batches of whole timelines cut to the model's context (their first ``context_length`` tokens,
    as the first training window), longest first; yields (timeline rows, Batch on the model's device)."""
    from irbench_assets.models.data import Plan, check_token_ids, collate

    vocab = meta["tokenizer"].vocab
    check_token_ids(tl, vocab)
    context = int(meta["context_length"])
    stop = np.minimum(tl.lengths, context).astype(np.int64)
    order = np.lexsort((tl.hadm_id, -stop))
    rope, per_hour = meta["temporal"] == "rope", float(meta["model"]["rope_positions_per_hour"])
    for s in range(0, tl.n, batch_size):
        rows = order[s:s + batch_size]
        k = len(rows)
        plan = Plan(row=np.arange(k), doc=rows, start=np.zeros(k, dtype=np.int64), stop=stop[rows],
                    cont=np.zeros(k, dtype=bool), n_rows=k, row_len=None)
        yield rows, collate(tl, plan, vocab, rope, per_hour).to(meta["device"])


def summary_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A small Markdown table (asset preview) of ``rows`` restricted to ``columns``."""
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# output folder (under $IRBENCH_HOME/outputs/) and file names of every diagnostic
OUTPUTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "xval_zero_audit": ("diagnostics_xval_zero_audit", "xval_zero_out_results.json", ("xval_zero_out.png",)),
    "attention_washout": ("diagnostics_attention_washout", "attention_washout_results.json",
                          ("attention_washout.png",)),
    "clinical_boundary_probe": ("diagnostics_clinical_boundary_probe", "clinical_boundary_probe_results.json",
                                ("clinical_boundary_probe.png",)),
    "embedding_geometry": ("diagnostics_embedding_geometry", "embedding_geometry_results.json",
                           ("embedding_geometry.png", "embedding_geometry_u_shape.png")),
    "potassium_geometry_grid": ("diagnostics_potassium_geometry_grid", "potassium_geometry_grid_results.json",
                                ("potassium_geometry_grid.png",)),
    "sparsity_distance": ("diagnostics_sparsity_distance", "sparsity_distance_results.json",
                          ("sparsity_distance.png",)),
}


def output_dir(outputs_root: Path, name: str) -> Path:
    """``<outputs_root>/diagnostics_<...>/`` of diagnostic ``name`` (outputs_root = $IRBENCH_HOME/outputs)."""
    if name not in OUTPUTS:
        raise ValueError(f"unknown diagnostic {name!r}; valid: {', '.join(OUTPUTS)}")
    return Path(outputs_root) / OUTPUTS[name][0]


# the arms each diagnostic is meant for (experiment, handle), as in the reference's analyses
DEFAULT_HANDLES: dict[str, tuple[tuple[str, str], ...]] = {
    "xval_zero_audit": tuple(("exp2", f"{r}_{t}") for r in ("xval", "xval_affine") for t in ("none", "tt", "rope")),
    "attention_washout": tuple(("exp2", f"{r}_{t}") for t in ("rope", "tt", "none") for r in ("discrete", "soft")),
    "clinical_boundary_probe": tuple(("exp1", f"{q}_{f}") for q in ("deciles", "ventiles", "trentiles", "centiles")
                                     for f in ("unfused", "fused")),
    "embedding_geometry": tuple(("exp1", f"{q}_{f}") for q in ("deciles", "ventiles", "trentiles", "centiles")
                                for f in ("unfused", "fused")),
    "potassium_geometry_grid": tuple(("exp1", f"{q}_{f}") for q in ("deciles", "trentiles", "centiles")
                                     for f in ("unfused", "fused")),
    "sparsity_distance": (("exp1", "deciles_fused"), ("exp1", "centiles_fused")),
}


def default_arms(name: str, home: Path, handles: Sequence[tuple[str, str]] | None = None) -> list[Arm]:
    """Arms of diagnostic ``name`` under ``home`` (= $IRBENCH_HOME): ``runs/models/<exp>_<handle>/`` and
    ``runs/tokenized/<exp>/<handle>/`` for :data:`DEFAULT_HANDLES` (or ``handles``)."""
    if name not in DEFAULT_HANDLES:
        raise ValueError(f"unknown diagnostic {name!r}; valid: {', '.join(DEFAULT_HANDLES)}")
    runs = Path(home) / "runs"
    return [Arm(runs / "models" / f"{e}_{h}", runs / "tokenized" / e / h, f"{e}.{h}")
            for e, h in (handles or DEFAULT_HANDLES[name])]
