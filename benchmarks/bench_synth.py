"""Benchmark the synthetic MIMIC-IV generator: wall time, events/s and peak RSS per size.

Each size runs in a fresh subprocess (so peak RSS is that run's own). The baseline, measured in the
same run, is the irreducible cost of the output format: gzip-compressing the same CSV bytes at the
generator's level on one thread. ``ratio`` = generation time / that baseline.

    .venv/bin/python benchmarks/bench_synth.py [--quick] [--sizes 2000 20000] [--out benchmarks/results/synth.md]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _child(admissions: int, out: Path) -> None:
    """Generate once and print a JSON line with the summary and this process's peak RSS."""
    from irbench_assets.mimic.synth import GZIP_LEVEL, generate_synthetic_mimic

    summary = generate_synthetic_mimic(out, admissions, seed=42)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the baseline allocates anything
    baseline, raw = _compress_seconds(out, GZIP_LEVEL)
    gz = sum(p.stat().st_size for p in out.rglob("*.csv.gz"))
    summary.update(peak_rss_mb=peak, csv_mb=raw / 1e6, gz_mb=gz / 1e6, baseline_gzip_s=baseline)
    print(json.dumps(summary))


def _compress_seconds(out: Path, level: int, block: int = 64 << 20) -> tuple[float, int]:
    """Seconds to gzip-compress all tables' CSV bytes once, streamed in blocks (reading not counted)."""
    total = 0.0
    raw = 0
    for path in sorted(out.rglob("*.csv.gz")):
        comp = zlib.compressobj(level, zlib.DEFLATED, 31)
        with gzip.open(path, "rb") as f:
            while data := f.read(block):
                raw += len(data)
                t1 = time.perf_counter()
                comp.compress(data)
                total += time.perf_counter() - t1
        t1 = time.perf_counter()
        comp.flush()
        total += time.perf_counter() - t1
    return total, raw


def main() -> None:
    """Run each size in a subprocess and write the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="only the demo size (2,000 admissions)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "synth.md")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.dir)
        return
    sizes = [2000] if args.quick else args.sizes
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--child", str(n), "--dir", str(Path(tmp) / "mimic")]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
            res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["ratio"] = res["seconds"] / max(res["baseline_gzip_s"], 1e-9)
        results.append(res)
        print(
            f"{n:>7} admissions: {res['seconds']:.1f} s, {res['n_events'] / 1e6:.2f} M events, "
            f"peak RSS {res['peak_rss_mb']:.0f} MB, {res['ratio']:.1f}x gzip baseline",
            flush=True,
        )
    lines = [
        "# Synthetic MIMIC-IV generator (`benchmarks/bench_synth.py`)",
        "",
        f"Machine: {os.cpu_count()} CPUs (shared with other jobs), seed 42, chunk_admissions 5000.",
        "Baseline: gzip (same level) of the same CSV bytes on one thread; ratio = generation / baseline.",
        "",
        "| admissions | subjects | events | labevents | chartevents | emar | seconds | events/s | peak RSS MB | CSV MB | gz MB | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows = r["rows"]
        lines.append(
            f"| {r['n_admissions']:,} | {r['n_subjects']:,} | {r['n_events']:,} | {rows['labevents']:,} | "
            f"{rows['chartevents']:,} | {rows['emar']:,} | {r['seconds']:.1f} | {r['n_events'] / r['seconds']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['csv_mb']:.0f} | {r['gz_mb']:.0f} | {r['ratio']:.1f} |"
        )
    names = list(results[0]["rows"]) if results else []
    lines += [
        "",
        "Rows per table:",
        "",
        "| table | " + " | ".join(f"{r['n_admissions']:,} adm." for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    lines += [f"| {name} | " + " | ".join(f"{r['rows'][name]:,}" for r in results) + " |" for name in names]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
