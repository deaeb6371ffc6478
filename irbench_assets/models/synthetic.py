"""Small hand-made tokenized handles in the exact Stage-0 format (docs/tokenized_format.md), for the model
tests, the training benchmark and the GPU check — so Stage 1/2 can be exercised without the tokenizer.

Timelines: ``TL_START, SEX//x, AGE, <age value>, events..., DSCG//x, TL_END``; an event is a lab
(``LAB//<i>//u`` + value token) or a medication (``MED//<i>``); with ``temporal='tt'`` a time-spacing token
precedes an event that follows a gap >= 5 min. Unfused value tokens are the shared ``Q<k>`` (bins fitted on
the train split, ``np.digitize`` convention) or ``[NUM]`` for xVal. Uses numpy + pyarrow only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SPECIALS = ("PAD", "TL_START", "TL_END", "TRUNC", "UNK", "TL_CONT", "nan")
SPACERS = (("T_5m-15m", 15), ("T_15m-1h", 60), ("T_1h-2h", 120), ("T_2h-6h", 360), ("T_6h-12h", 720),
           ("T_12h-1d", 1440), ("T_1d-3d", 4320), ("T_3d-1w", 10080), ("T_1w-2w", 20160),
           ("T_2w-1mt", 43830), ("T_1mt-3mt", 131490), ("T_3mt-6mt", 262980), ("T_6mt+", float("inf")))
SPLITS = ("train", "tuning", "held_out")


def _spacer(gap_min: float) -> int | None:
    if gap_min < 5:
        return None
    return next(i for i, (_, hi) in enumerate(SPACERS) if gap_min < hi)


def write_synthetic_tokenized(out: Path, *, n_admissions: int = 120, numeric_encoding: str = "quantile",
                              n_bins: int = 10, temporal: str = "tt", n_lab_codes: int = 12,
                              n_med_codes: int = 8, events_per_hour: float = 0.6, max_len: int = 512,
                              seed: int = 42) -> Path:
    """Write ``full/``, ``first_24h/`` (train/tuning/held_out) and ``train/`` vocab, bins, stats under ``out``."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    words = list(SPECIALS)
    words += [f"Q{k}" for k in range(n_bins)] if numeric_encoding == "quantile" else ["[NUM]"]
    if temporal == "tt":
        words += [s for s, _ in SPACERS]
    labs = [f"LAB//{50800 + i}//u" for i in range(n_lab_codes)]
    meds = [f"MED//{i}" for i in range(n_med_codes)]
    words += ["SEX//F", "SEX//M", "AGE", *labs, *meds, "DSCG//HOME", "DSCG//DIED"]
    tid = {w: i for i, w in enumerate(words)}
    mu = rng.uniform(1, 200, n_lab_codes)
    sd = mu * rng.uniform(0.05, 0.4, n_lab_codes)

    # 1) raw events per admission: (minutes since admission, code word, value or None)
    subjects = np.arange(n_admissions) // 2
    u = rng.random(subjects.max() + 1)
    split_of = np.where(u < 0.7, "train", np.where(u < 0.8, "tuning", "held_out"))
    raw: list[dict] = []
    for i in range(n_admissions):
        los_h = 12 + rng.gamma(2.0, 30.0)
        n_ev = rng.poisson(events_per_hour * los_h) + 1
        times = np.sort(rng.uniform(0, los_h * 60, n_ev))
        events = []
        for t in times:
            if rng.random() < 0.6:
                c = int(rng.integers(n_lab_codes))
                v = None if rng.random() < 0.02 else float(rng.normal(mu[c], sd[c]))
                events.append((t, labs[c], v))
            else:
                events.append((t, meds[int(rng.integers(n_med_codes))], None))
        raw.append({"hadm_id": 20_000_000 + 7 * i, "subject_id": 10_000_000 + int(subjects[i]),
                    "split": split_of[subjects[i]], "admit": np.datetime64("2150-01-01T00:00", "us")
                    + np.timedelta64(int(rng.integers(0, 3650 * 1440)), "m"),
                    "los_min": los_h * 60, "sex": "SEX//F" if rng.random() < 0.5 else "SEX//M",
                    "age": float(rng.uniform(18, 90)), "died": bool(rng.random() < 0.1), "events": events})

    # 2) bins and robust stats from the train split
    train_vals: dict[str, list[float]] = {w: [] for w in ["AGE", *labs]}
    for a in raw:
        if a["split"] == "train":
            train_vals["AGE"].append(a["age"])
            for _, w, v in a["events"]:
                if v is not None:
                    train_vals[w].append(v)
    edges, stats = {}, {}
    for w, vals in train_vals.items():
        arr = np.asarray(vals, dtype=np.float64)
        if arr.size == 0:
            continue
        edges[w] = np.quantile(arr, np.arange(1, n_bins) / n_bins)
        q25, med, q75 = np.quantile(arr, [0.25, 0.5, 0.75])
        stats[w] = {"token_id": tid[w], "median": float(med), "q25": float(q25), "q75": float(q75),
                    "iqr": float(q75 - q25), "std": float(max((q75 - q25) / 1.35, 1e-8)), "n": int(arr.size)}

    def value_token(w: str, v: float | None) -> int:
        if v is None or not np.isfinite(v):
            return tid["nan"]
        if numeric_encoding == "xval":
            return tid["[NUM]"]
        if w not in edges:  # a code never measured in train has no bins
            return tid["nan"]
        return tid[f"Q{int(np.searchsorted(edges[w], v, side='right'))}"]

    # 3) timelines
    rows: dict[tuple[str, str], list[dict]] = {(kind, s): [] for kind in ("full", "first_24h") for s in SPLITS}
    counts = np.zeros(len(words), dtype=np.int64)
    for a in raw:
        toks: list[int] = [tid["TL_START"], tid[a["sex"]], tid["AGE"], value_token("AGE", a["age"])]
        mins: list[float] = [0.0] * 4
        vals: list[float | None] = [None, None, None, a["age"]]
        prev = None
        for t, w, v in a["events"]:
            if temporal == "tt" and prev is not None and (k := _spacer(t - prev)) is not None:
                toks.append(tid[SPACERS[k][0]]), mins.append(t), vals.append(None)
            toks.append(tid[w]), mins.append(t), vals.append(None)
            if w.startswith("LAB"):
                vt = value_token(w, v)
                toks.append(vt), mins.append(t), vals.append(v if vt != tid["nan"] else None)
            prev = t
        dscg = "DSCG//DIED" if a["died"] else "DSCG//HOME"
        toks += [tid[dscg], tid["TL_END"]]
        mins += [a["los_min"], a["los_min"]]
        vals += [None, None]
        if a["split"] == "train":
            np.add.at(counts, toks, 1)
        for kind in ("full", "first_24h"):
            keep = len(toks) if kind == "full" else sum(m <= 1440 for m in mins)
            tk, mn, vl = toks[:keep], mins[:keep], vals[:keep]
            truncated = len(tk) > max_len
            if truncated:
                tk, mn, vl = [*tk[: max_len - 1], tid["TRUNC"]], mn[:max_len], [*vl[: max_len - 1], None]
            times = [a["admit"] + np.timedelta64(round(m * 60e6), "us") for m in mn]
            rows[(kind, a["split"])].append({"hadm_id": a["hadm_id"], "subject_id": a["subject_id"], "tokens": tk,
                                             "times": times, "numeric_values": vl, "seq_len": len(tk),
                                             "truncated": truncated})

    schema = pa.schema([("hadm_id", pa.int64()), ("subject_id", pa.int64()), ("tokens", pa.list_(pa.int32())),
                        ("times", pa.list_(pa.timestamp("us"))), ("numeric_values", pa.list_(pa.float32())),
                        ("seq_len", pa.int32()), ("truncated", pa.bool_())])
    for (kind, split), rs in rows.items():
        rs.sort(key=lambda r: r["hadm_id"])
        d = out / kind / split
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rs, schema=schema), d / "tokens_timelines.parquet")

    tdir = out / "train"
    tdir.mkdir(parents=True, exist_ok=True)
    kinds = ["special" if w in SPECIALS else "value" if w.startswith("Q") or w == "[NUM]" else
             "time" if w.startswith("T_") else "code" for w in words]
    pq.write_table(pa.table({"token_id": pa.array(range(len(words)), pa.int32()), "token": words,
                             "count": pa.array(counts, pa.int64()), "kind": kinds}), tdir / "vocab.parquet")
    bin_rows = [{"code": w, "code_token_id": tid[w], "edges": list(map(float, e)), "n_values": len(train_vals[w]),
                 "n_bins_nominal": n_bins, "n_bins_realized": len(e) + 1, "ref_range_lower": None,
                 "ref_range_upper": None} for w, e in sorted(edges.items())]
    bschema = pa.schema([("code", pa.string()), ("code_token_id", pa.int32()), ("edges", pa.list_(pa.float64())),
                         ("n_values", pa.int64()), ("n_bins_nominal", pa.int32()), ("n_bins_realized", pa.int32()),
                         ("ref_range_lower", pa.float64()), ("ref_range_upper", pa.float64())])
    if numeric_encoding == "quantile":
        pq.write_table(pa.Table.from_pylist(bin_rows, schema=bschema), tdir / "bins.parquet")
    (tdir / "numeric_stats.json").write_text(json.dumps(
        {"schema_version": 1, "method": "median_iqr", "clip_sigma": 5.0, "codes": stats}, indent=2, sort_keys=True))
    (out / "tokenizer.json").write_text(json.dumps(
        {"synthetic": True, "numeric_encoding": numeric_encoding, "n_bins": n_bins, "temporal": temporal,
         "max_len": max_len, "seed": seed}, indent=2, sort_keys=True))
    return out
