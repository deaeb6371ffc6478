"""Benchmark helpers: run a Python snippet in a fresh subprocess and read its wall time and peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_measured(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` with this interpreter; return wall seconds, peak RSS (MiB) and the JSON it prints last."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"benchmark subprocess failed ({status}):\n{out[-2000:]}")
    last = [ln for ln in out.splitlines() if ln.startswith("{")]
    return {
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "result": json.loads(last[-1]) if last else {},
    }
