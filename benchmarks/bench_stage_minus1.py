"""Stage -1 benchmark: MIMIC-IV → MEDS on N synthetic admissions (wall time, events/s, peak RSS), and the
ratio against a naive pandas read-everything implementation measured in the same run on a subset.

    .venv/bin/python benchmarks/bench_stage_minus1.py --admissions 100000 --subset 5000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, run_measured

OURS = """
import json, sys, time
from pathlib import Path
from irbench_assets.meds.extract import extract_meds
from irbench_assets.settings import MedsConfig
r = extract_meds(Path({mimic!r}), Path({out!r}), MedsConfig())
print(json.dumps({{"events": r["n_events"], "seconds": r["seconds"], "cpu_s": time.process_time()}}))
"""

# The straightforward approach a notebook would take: read every table whole with pandas, build all
# events in memory, concatenate, sort, write one file per split.
NAIVE = """
import json, time
import numpy as np, pandas as pd
from pathlib import Path
root, out = Path({mimic!r}), Path({out!r})
t0 = time.perf_counter()
out.mkdir(parents=True, exist_ok=True)
rd = lambda t: pd.read_csv(root / t, low_memory=False)
pat, adm = rd("hosp/patients.csv.gz"), rd("hosp/admissions.csv.gz")
for c in ["admittime", "dischtime"]:
    adm[c] = pd.to_datetime(adm[c])
ev = []
def add(df, code, time, num=None):
    ev.append(pd.DataFrame({{"subject_id": df["subject_id"].values, "time": pd.to_datetime(time).values,
        "code": code.values, "numeric_value": (num.values if num is not None else np.nan)}}))
add(adm, "HOSPITAL_ADMISSION//" + adm["admission_type"].astype(str), adm["admittime"])
add(adm, "HOSPITAL_DISCHARGE//" + adm["discharge_location"].astype(str), adm["dischtime"])
for t, p in [("hosp/labevents.csv.gz", "LAB"), ("icu/chartevents.csv.gz", "VITAL")]:
    d = rd(t)
    add(d, p + "//" + d["itemid"].astype(str) + "//" + d["valueuom"].astype(str), d["storetime"].fillna(d["charttime"]), d["valuenum"])
d = rd("hosp/emar.csv.gz"); add(d, "MEDICATION//" + d["medication"].astype(str), d["storetime"].fillna(d["charttime"]))
d = rd("hosp/transfers.csv.gz"); add(d, "TRANSFER_TO//" + d["eventtype"].astype(str), d["intime"])
d = rd("icu/icustays.csv.gz"); add(d, "ICU_ADMISSION//" + d["first_careunit"].astype(str), d["intime"])
add(d, "ICU_DISCHARGE//" + d["last_careunit"].astype(str), d["outtime"])
d = rd("icu/procedureevents.csv.gz"); add(d, "PROCEDURE//START//" + d["itemid"].astype(str), d["storetime"])
d = rd("icu/inputevents.csv.gz"); add(d, "INFUSION_START//" + d["itemid"].astype(str), d["starttime"], d["rate"])
add(d, "INFUSION_END//" + d["itemid"].astype(str), d["endtime"])
allev = pd.concat(ev, ignore_index=True).sort_values(["subject_id", "time", "code"])
subj = np.sort(pat["subject_id"].unique()); rng = np.random.default_rng(42); perm = rng.permutation(len(subj))
split = np.empty(len(subj), dtype=object); n = len(subj)
split[perm[: int(.7*n)]] = "train"; split[perm[int(.7*n): int(.8*n)]] = "tuning"; split[perm[int(.8*n):]] = "held_out"
allev = allev.merge(pd.DataFrame({{"subject_id": subj, "split": split}}), on="subject_id")
for s, g in allev.groupby("split"):
    g.drop(columns="split").to_parquet(out / f"{{s}}.parquet")
print(json.dumps({{"events": int(len(allev)), "seconds": time.perf_counter() - t0, "cpu_s": time.process_time()}}))
"""


def ensure_mimic(n: int, work: Path) -> Path:
    out = work / f"mimic_{n}"
    if not (out / "icu" / "inputevents.csv.gz").exists():
        # In a child process: Linux carries a parent's peak RSS over fork/exec into the child's ru_maxrss,
        # so generating here would inflate every later measurement.
        run_measured(
            "from pathlib import Path; from irbench_assets.mimic.synth import generate_synthetic_mimic; "
            f"generate_synthetic_mimic(Path({str(out)!r}), admissions={n}, seed=42)"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--admissions", type=int, default=100_000)
    ap.add_argument("--subset", type=int, default=5_000)
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "_work"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stage_minus1.md"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    big = ensure_mimic(args.admissions, work)
    small = ensure_mimic(args.subset, work)
    load_before = os.getloadavg()[0]
    full = run_measured(OURS.format(mimic=str(big), out=str(work / "meds_full")))
    load_after = os.getloadavg()[0]
    ours_sub = run_measured(OURS.format(mimic=str(small), out=str(work / "meds_sub")))
    naive_sub = run_measured(NAIVE.format(mimic=str(small), out=str(work / "naive_sub")))

    ev_full = full["result"]["events"]
    eps = ev_full / full["wall_s"]
    rss_ratio = naive_sub["peak_rss_mib"] / ours_sub["peak_rss_mib"]
    speed_ratio = naive_sub["wall_s"] / ours_sub["wall_s"]
    lines = [
        "## Stage -1: MIMIC-IV → MEDS",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_stage_minus1.py --admissions {args.admissions} "
        f"--subset {args.subset}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"1-min load average {load_before:.1f} before / {load_after:.1f} after the full run (other jobs share "
        "the cores)",
        "",
        "| run | admissions | events | wall (s) | events/s | CPU (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
        f"| irbench (full) | {args.admissions:,} | {ev_full:,} | {full['wall_s']:.1f} | {eps:,.0f} | "
        f"{full['result']['cpu_s']:.1f} | {full['peak_rss_mib']:.0f} |",
        f"| irbench (subset) | {args.subset:,} | {ours_sub['result']['events']:,} | {ours_sub['wall_s']:.1f} | "
        f"{ours_sub['result']['events'] / ours_sub['wall_s']:,.0f} | {ours_sub['result']['cpu_s']:.1f} | "
        f"{ours_sub['peak_rss_mib']:.0f} |",
        f"| naive pandas (subset) | {args.subset:,} | {naive_sub['result']['events']:,} | "
        f"{naive_sub['wall_s']:.1f} | {naive_sub['result']['events'] / naive_sub['wall_s']:,.0f} | "
        f"{naive_sub['result']['cpu_s']:.1f} | {naive_sub['peak_rss_mib']:.0f} |",
        "",
        f"Ratios on the same subset (naive / irbench): wall time {speed_ratio:.2f}×, peak RSS {rss_ratio:.2f}×.",
        f"Targets: peak RSS ≤ 3 GB on the full run ({'met' if full['peak_rss_mib'] <= 3072 else 'NOT met'}), "
        f"≥ 1 M events/s ({'met' if eps >= 1e6 else 'NOT met'}). Wall time includes interpreter start-up "
        "and the import of polars/pyarrow; CPU is the extraction process's user+system time (all threads), "
        f"i.e. {ev_full / full['result']['cpu_s']:,.0f} events per CPU-second on the full run.",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
