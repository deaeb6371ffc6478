"""Benchmark Stage 0 tokenization: one handle, all 12 Exp1 handles, and a per-admission Python baseline.

    .venv/bin/python benchmarks/bench_tokenize.py [--quick] [--events N] [--keep DIR]

A synthetic prepared-events folder (the layout ``prepare_events`` writes; random LAB/VITAL/MEDICATION/
TRANSFER/ICU codes with realistic values, reference ranges, minute-resolution times and ties) of
``--events`` events (20 M; 2 M with ``--quick``) is generated, then each measurement runs in a fresh
child process so that its peak RSS (``VmHWM``) is its own:

- ``one``: ``tokenize_handle`` for exp1.deciles_unfused;
- ``all``: ``tokenize_handles`` for the 12 Exp1 handles in one pass;
- ``baseline``: a straightforward per-admission pure-Python tokenizer (dicts, lists, ``np.quantile`` per
  code) on a subset of admissions, against ``tokenize_handle`` on the same subset — whose token strings
  must be identical (a correctness check of both).

Results go to stdout and ``benchmarks/results/tokenize.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irbench_assets.experiments import HandleConfig, load_experiments  # noqa: E402
from irbench_assets.tokenize.config import load_tokenizer_config  # noqa: E402
from irbench_assets.tokenize.events import (  # noqa: E402
    EVENTS_SCHEMA,
    PREPARED_SCHEMA_VERSION,
    SPLITS,
)

EVENTS_PER_ADMISSION = 200
MAX_LEN = 4096
NOTES = """
Where the time goes: the 12 handles share the read, the train fit, the bins of the 6 quantizer/anchoring
pairs and the token layout of the 2 fused/unfused layouts; what remains per handle is the vocabulary, one
gather of token ids and the Parquet encoding of its own full + first_24h files (list columns tokens /
times / numeric_values), which is most of the per-handle cost and cannot be shared between files. The
writes of different handles run on a 2-thread pool, so the CPU ratio is higher than the wall ratio and
the wall ratio depends on how busy the shared cores are.
"""


# ------------------------------------------------------------------------------------------ generator
def _codes(rng: np.random.Generator) -> pl.DataFrame:
    """A code table: code, kind (numeric or not), value location/scale, rounding, ref range, frequency."""
    rows = []
    for i in range(400):  # labs: lognormal values, ref range around the median
        mu = float(rng.uniform(-1, 6))
        rows.append(
            (
                "LAB",
                f"LAB//{50800 + i}//mg/dL",
                True,
                mu,
                float(rng.uniform(0.1, 0.6)),
                int(rng.integers(0, 3)),
                np.exp(mu) * 0.7,
                np.exp(mu) * 1.3,
            )
        )
    for i in range(150):  # vitals: integers around a typical value
        mu = float(rng.uniform(2.5, 5))
        rows.append(("VITAL", f"VITAL//{220000 + i}//bpm", True, mu, 0.15, 0, None, None))
    rows += [
        ("MED", f"MEDICATION//drug{i}//Administered", False, 0.0, 0.0, 0, None, None) for i in range(300)
    ]
    rows += [("XFER", f"TRANSFER_TO//transfer//unit{i}", False, 0.0, 0.0, 0, None, None) for i in range(30)]
    rows += [("ICU", f"ICU_ADMISSION//icu{i}", False, 0.0, 0.0, 0, None, None) for i in range(8)]
    rows += [("ICU", f"ICU_DISCHARGE//icu{i}", False, 0.0, 0.0, 0, None, None) for i in range(8)]
    df = pl.DataFrame(
        rows, schema=["block", "code", "numeric", "mu", "sigma", "decimals", "lo", "hi"], orient="row"
    )
    w = 1.0 / np.arange(1, df.height + 1) ** 0.9  # Zipf-like code frequencies
    w = w[rng.permutation(df.height)]
    return df.with_columns(pl.Series("p", w / w.sum()))


def generate(out: Path, n_events: int, seed: int = 0) -> dict[str, int]:
    """Write a synthetic prepared-events folder with about ``n_events`` events; returns events per split."""
    rng = np.random.default_rng(seed)
    codes = _codes(rng)
    n_adm = max(10, n_events // EVENTS_PER_ADMISSION)
    split_of = rng.choice(3, size=n_adm, p=[0.7, 0.1, 0.2])
    hadm = np.sort(rng.choice(np.arange(20_000_000, 30_000_000), n_adm, replace=False))
    los_min = np.maximum(24 * 60, rng.lognormal(np.log(4 * 24 * 60), 0.7, n_adm)).astype(np.int64)
    base = np.datetime64("2150-01-01T00:00", "us").astype(np.int64)
    admit = base + rng.integers(0, 50 * 365 * 24 * 60, n_adm) * 60_000_000
    n_ev = rng.multinomial(n_events, los_min / los_min.sum())
    adm_of = np.repeat(np.arange(n_adm), n_ev)
    minute = (rng.random(len(adm_of)) * los_min[adm_of]).astype(np.int64)
    t = admit[adm_of] + minute * 60_000_000
    ci = rng.choice(codes.height, size=len(adm_of), p=codes["p"].to_numpy())
    num = codes["numeric"].to_numpy()[ci]
    v = np.exp(codes["mu"].to_numpy()[ci] + codes["sigma"].to_numpy()[ci] * rng.standard_normal(len(ci)))
    dec = codes["decimals"].to_numpy()[ci]
    v = np.round(v * 10.0**dec) / 10.0**dec
    v[rng.random(len(v)) < 0.03] = np.nan
    lo = codes["lo"].to_numpy().astype(np.float64)[ci]
    hi = codes["hi"].to_numpy().astype(np.float64)[ci]
    ev = pl.DataFrame(
        {
            "hadm_id": hadm[adm_of],
            "subject_id": hadm[adm_of] - 10_000_000,
            "time": pl.Series(t).cast(pl.Datetime("us")),
            "code": codes["code"].gather(ci),
            "numeric_value": pl.Series(np.where(num, v, np.nan)).cast(pl.Float32).fill_nan(None),
            "ref_range_lower": pl.Series(lo).cast(pl.Float32).fill_nan(None),
            "ref_range_upper": pl.Series(hi).cast(pl.Float32).fill_nan(None),
            "__split": split_of[adm_of],
        }
    ).sort(
        ["hadm_id", "time", "code", "numeric_value", "ref_range_lower", "ref_range_upper"], nulls_last=True
    )
    cat = lambda vals: rng.choice(vals, n_adm)  # noqa: E731
    adm = pl.DataFrame(
        {
            "hadm_id": hadm,
            "subject_id": hadm - 10_000_000,
            "admittime": pl.Series(admit).cast(pl.Datetime("us")),
            "dischtime": pl.Series(admit + los_min * 60_000_000).cast(pl.Datetime("us")),
            "RACE": cat(["WHITE", "BLACK/AFRICAN AMERICAN", "ASIAN", "HISPANIC/LATINO", "OTHER", "UNK"]),
            "LANG": cat(["ENGLISH", "SPANISH", "UNK"]),
            "SEX": cat(["F", "M"]),
            "AGE": rng.uniform(18, 95, n_adm),
            "INSR": cat(["Medicare", "Medicaid", "Private", "Other"]),
            "MRRD": cat(["MARRIED", "SINGLE", "WIDOWED", "DIVORCED", "UNK"]),
            "ADMN": cat(["EW EMER.", "URGENT", "ELECTIVE", "OBSERVATION ADMIT"]),
            "DSCG": cat(["HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "DIED"]),
            "PROC": [
                sorted(set(rng.choice(["225792", "225402", "224385", "225459"], int(k)).tolist()))
                for k in rng.integers(0, 3, n_adm)
            ],
            "n_events": n_ev.astype(np.int64),
            "__split": split_of,
        }
    )
    cfg = load_tokenizer_config("mimic-meds")
    counts = {}
    for s, name in enumerate(SPLITS):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        e = ev.filter(pl.col("__split") == s).drop("__split")
        pq.write_table(
            e.to_arrow().cast(EVENTS_SCHEMA),
            d / "events.parquet",
            row_group_size=1_000_000,
            compression="zstd",
        )
        adm.filter(pl.col("__split") == s).drop("__split").write_parquet(d / "admissions.parquet")
        counts[name] = e.height
    (out / "prepare.json").write_text(
        json.dumps(
            {
                "schema_version": PREPARED_SCHEMA_VERSION,
                "tokenizer": cfg.name,
                "config": cfg.to_dict(),
                "splits": {},
            }
        )
    )
    return counts


def subset(src: Path, out: Path, n_adm: int) -> int:
    """A prepared-events folder with the first admissions of every split (for the baseline comparison)."""
    total = 0
    for s in SPLITS:
        (out / s).mkdir(parents=True, exist_ok=True)
        k = n_adm if s == "train" else max(1, n_adm // 4)
        adm = pl.read_parquet(src / s / "admissions.parquet").head(k)
        n = int(adm["n_events"].sum())
        adm.write_parquet(out / s / "admissions.parquet")
        pq.write_table(pq.read_table(src / s / "events.parquet").slice(0, n), out / s / "events.parquet")
        total += n
    shutil.copy(src / "prepare.json", out / "prepare.json")
    return total


# ------------------------------------------------------------------------------------------- baseline
TIME_BOUNDS_S = [
    300,
    900,
    3600,
    7200,
    21600,
    43200,
    86400,
    259200,
    604800,
    1209600,
    2629800,
    7889400,
    15778800,
]
TIME_NAMES = [
    "T_5m-15m",
    "T_15m-1h",
    "T_1h-2h",
    "T_2h-6h",
    "T_6h-12h",
    "T_12h-1d",
    "T_1d-3d",
    "T_3d-1w",
    "T_1w-2w",
    "T_2w-1mt",
    "T_1mt-3mt",
    "T_3mt-6mt",
    "T_6mt+",
]
PREFIX = [
    ("RACE", "RACE"),
    ("LANG", "LANG"),
    ("SEX", "SEX"),
    ("AGE", None),
    ("INSR", "INSR"),
    ("MRRD", "MRRD"),
    ("ADMN", "ADMN"),
]


def baseline(events_dir: Path, max_len: int) -> dict[str, dict[str, list]]:
    """Per-admission pure-Python deciles/unfused/tt tokenizer (dicts, lists, np.quantile per code).

    Writes full + first_24h timelines (token strings, times, values) like the real tokenizer and returns
    them per split for the comparison.
    """
    ev_train = pl.read_parquet(events_dir / "train" / "events.parquet")
    values: dict[str, list[float]] = {}
    for code, v in zip(ev_train["code"].to_list(), ev_train["numeric_value"].to_list(), strict=True):
        if v is not None and np.isfinite(v):
            values.setdefault(code, []).append(float(v))
    adm_train = pl.read_parquet(events_dir / "train" / "admissions.parquet")
    values["AGE"] = [a for a in adm_train["AGE"].to_list() if a is not None]
    qs = np.arange(1, 10) / 10
    edges = {c: np.quantile(np.asarray(v), qs) for c, v in values.items()}
    known = set(ev_train["code"].to_list()) | {
        f"{t}//{x}" for t, col in PREFIX if col for x in adm_train[col].to_list()
    }
    known |= {f"DSCG//{x}" for x in adm_train["DSCG"].to_list()}
    known |= {f"PROC//{x}" for xs in adm_train["PROC"].to_list() for x in xs}
    day = timedelta(days=1)
    out: dict[str, dict[str, list]] = {}
    for split in SPLITS:
        adm = pl.read_parquet(events_dir / split / "admissions.parquet")
        ev = pl.read_parquet(events_dir / split / "events.parquet")
        by_adm: dict[int, list[tuple]] = {}
        for r in ev.iter_rows():
            by_adm.setdefault(r[0], []).append(r)
        res: dict[str, list] = {
            "tokens": [],
            "times": [],
            "values": [],
            "tokens_24h": [],
            "times_24h": [],
            "values_24h": [],
        }
        for a in adm.iter_rows(named=True):
            seq, times, vals = [], [], []

            def put(tok: str, t: datetime, v: float | None = None, seq=seq, times=times, vals=vals) -> None:
                seq.append(tok)
                times.append(t)
                vals.append(v)

            put("TL_START", a["admittime"])
            for tok, col in PREFIX:
                if col is None:
                    put("AGE", a["admittime"])
                    put(f"Q{int(np.digitize(a['AGE'], edges['AGE']))}", a["admittime"], a["AGE"])
                else:
                    s = f"{tok}//{a[col]}"
                    put(s if s in known else "UNK", a["admittime"])
            prev = None
            for _h, _s, t, code, v, _lo, _hi in by_adm.get(a["hadm_id"], []):
                if prev is not None:
                    k = int(np.searchsorted(TIME_BOUNDS_S, (t - prev).total_seconds(), side="right")) - 1
                    if k >= 0:
                        put(TIME_NAMES[k], t)
                prev = t
                if code not in known:
                    put("UNK", t)
                    continue
                put(code, t)
                if code in edges:
                    if v is not None and np.isfinite(v):
                        put(f"Q{int(np.digitize(v, edges[code]))}", t, v)
                    else:
                        put("nan", t)
            s = f"DSCG//{a['DSCG']}"
            put(s if s in known else "UNK", a["dischtime"])
            for p in a["PROC"]:
                put(f"PROC//{p}" if f"PROC//{p}" in known else "UNK", a["dischtime"])
            put("TL_END", a["dischtime"])
            keep = [i for i, t in enumerate(times) if t <= a["admittime"] + day]
            cut, cut_vals = [seq[i] for i in keep], [vals[i] for i in keep]
            if len(cut) > max_len:
                keep = keep[:max_len]
                cut, cut_vals = [*cut[: max_len - 1], "TRUNC"], [*cut_vals[: max_len - 1], None]
            res["tokens"].append(seq)
            res["times"].append(times)
            res["values"].append(vals)
            res["tokens_24h"].append(cut)
            res["times_24h"].append([times[i] for i in keep])
            res["values_24h"].append(cut_vals)
        tmp = Path(tempfile.gettempdir())
        for layout, suffix in (("full", ""), ("first_24h", "_24h")):
            pl.DataFrame(
                {
                    "hadm_id": adm["hadm_id"],
                    "tokens": res[f"tokens{suffix}"],
                    "times": res[f"times{suffix}"],
                    "numeric_values": res[f"values{suffix}"],
                },
                schema_overrides={"numeric_values": pl.List(pl.Float32)},
            ).write_parquet(tmp / f"irbench_baseline_{os.getpid()}_{layout}_{split}.parquet")
            (tmp / f"irbench_baseline_{os.getpid()}_{layout}_{split}.parquet").unlink()
        out[split] = res
    return out


# ---------------------------------------------------------------------------------------------- child
def _exp1() -> list[HandleConfig]:
    return list(load_experiments()["exp1"].handles.values())


def child(mode: str, events_dir: Path, out: Path) -> dict:
    """Run one measurement in this (fresh) process; returns seconds and peak RSS."""
    from irbench_assets.tokenize.timelines import tokenize_handle, tokenize_handles

    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = ru0.ru_utime + ru0.ru_stime
    res: dict = {}
    if mode == "one":
        h = _exp1()[0]
        md = tokenize_handle(events_dir, h, out / h.handle, MAX_LEN)
        res["tokens"] = sum(v["full"] for v in md["n_tokens"].values())
    elif mode == "all":
        hs = _exp1()
        tokenize_handles(events_dir, hs, [out / h.handle for h in hs], MAX_LEN)
    elif mode == "baseline":
        base = baseline(events_dir, MAX_LEN)
        res["seconds_baseline"] = time.perf_counter() - t0
        h = _exp1()[0]
        t1 = time.perf_counter()
        tokenize_handle(events_dir, h, out / h.handle, MAX_LEN)
        res["seconds_ours"] = time.perf_counter() - t1
        vocab = pl.read_parquet(out / h.handle / "train" / "vocab.parquet")["token"].to_list()
        for split in SPLITS:
            for layout, suffix in (("full", ""), ("first_24h", "_24h")):
                tl = pl.read_parquet(out / h.handle / layout / split / "tokens_timelines.parquet")
                ours = [[vocab[i] for i in row] for row in tl["tokens"].to_list()]
                same = (
                    ours == base[split][f"tokens{suffix}"]
                    and tl["times"].to_list() == base[split][f"times{suffix}"]
                    and [
                        [None if v is None else np.float32(v) for v in row]
                        for row in tl["numeric_values"].to_list()
                    ]
                    == [
                        [None if v is None else np.float32(v) for v in row]
                        for row in base[split][f"values{suffix}"]
                    ]
                )
                if not same:
                    raise AssertionError(f"baseline and tokenize_handle differ on {layout}/{split}")
        res["identical"] = True
    res["seconds"] = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res["cpu_seconds"] = ru.ru_utime + ru.ru_stime - cpu0
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike ru_maxrss it does not inherit the RSS of the parent
    that forked us (Linux carries the pre-exec high-water mark into ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(mode: str, events_dir: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--events-dir", str(events_dir), "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode:
        raise RuntimeError(f"child {mode} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 M events instead of 20 M")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--baseline-admissions", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp folder)")
    ap.add_argument("--child", choices=["one", "all", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--events-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.events_dir, args.out)))
        return
    n_events = args.events or (2_000_000 if args.quick else 20_000_000)
    work = args.keep or Path(tempfile.mkdtemp(prefix="irbench_bench_tok_"))
    try:
        ev_dir = work / "events"
        t0 = time.perf_counter()
        counts = generate(ev_dir, n_events)
        gen_s = time.perf_counter() - t0
        total = sum(counts.values())
        print(f"generated {total:,} events {counts} in {gen_s:.1f} s", flush=True)
        one = _run_child("one", ev_dir, work / "one")
        print("one handle:", one, flush=True)
        shutil.rmtree(work / "one", ignore_errors=True)
        allh = _run_child("all", ev_dir, work / "all")
        print("12 handles:", allh, flush=True)
        shutil.rmtree(work / "all", ignore_errors=True)
        sub = work / "subset"
        n_sub = subset(ev_dir, sub, args.baseline_admissions)
        base = _run_child("baseline", sub, work / "base")
        print("baseline subset:", n_sub, "events", base, flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    eps_one = total / one["seconds"]
    eps_all = total / allh["seconds"]
    eps_base = n_sub / base["seconds_baseline"]
    eps_ours_sub = n_sub / base["seconds_ours"]
    load = os.getloadavg()[0]
    cmd = (
        "benchmarks/bench_tokenize.py"
        + (" --quick" if args.quick else "")
        + (f" --events {args.events}" if args.events else "")
    )
    md = f"""# Stage 0 tokenization benchmark

Command: `.venv/bin/python {cmd}` — {datetime.now().date()}, {os.cpu_count()} cores shared with other
jobs (1-min load average {load:.1f} at the end of the run; wall times vary with it, CPU seconds less).
Synthetic prepared events: {total:,} events ({counts} per split), {EVENTS_PER_ADMISSION} events per
admission on average, ~1 100 codes (LAB/VITAL numeric, 3 % missing values), max_len {MAX_LEN}.
Each measurement runs in a fresh process (peak RSS = its `VmHWM`); times include the train fit and
writing full + first_24h timelines of all three splits.

| run | wall s | CPU s | events/s (wall) | peak RSS MB |
|---|---:|---:|---:|---:|
| `tokenize_handle` exp1.deciles_unfused | {one["seconds"]:.1f} | {one["cpu_seconds"]:.1f} | {eps_one:,.0f} | {one["peak_rss_mb"]:,.0f} |
| `tokenize_handles`, the 12 Exp1 handles | {allh["seconds"]:.1f} | {allh["cpu_seconds"]:.1f} | {eps_all:,.0f} ({12 * eps_all:,.0f} handle-events/s) | {allh["peak_rss_mb"]:,.0f} |
| per-admission Python baseline, subset of {n_sub:,} events | {base["seconds_baseline"]:.2f} | — | {eps_base:,.0f} | — |
| `tokenize_handle` on the same subset | {base["seconds_ours"]:.2f} | — | {eps_ours_sub:,.0f} | — |

- 12 handles / 1 handle: **{allh["seconds"] / one["seconds"]:.2f}×** wall, **{allh["cpu_seconds"] / one["cpu_seconds"]:.2f}×** CPU (target < 4×).
- vectorized vs per-admission Python: **{eps_one / eps_base:.0f}×** events/s (full run vs baseline subset);
  {eps_ours_sub / eps_base:.1f}× on the identical small subset, where fixed costs dominate.
- the baseline and `tokenize_handle` give identical full and first_24h timelines (token strings, times,
  values) on the subset: {base.get("identical")}.
- targets: >= 1 M events/s per handle: {"met" if eps_one >= 1e6 else "NOT met"} ({eps_one / 1e6:.2f} M/s);
  peak RSS <= 4 GB: {"met" if max(one["peak_rss_mb"], allh["peak_rss_mb"]) <= 4096 else "NOT met"};
  12 handles < 4× one: {"met" if allh["seconds"] / one["seconds"] < 4 else "NOT met"}.
{NOTES}"""
    print(md)
    res = REPO / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "tokenize.md").write_text(md)


if __name__ == "__main__":
    main()
