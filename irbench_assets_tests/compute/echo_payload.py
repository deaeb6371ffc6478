"""Tiny payloads for the compute tests: one writes a file and reports metadata, one fails after printing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from irbench_assets.compute.payload import LogFn, run_payload


def echo(*, out_path: str, text: str, repeat: int = 1, log: LogFn) -> dict[str, Any]:
    """Write ``text`` ``repeat`` times (one per line) to ``out_path``; log progress; return metadata."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    for i in range(repeat):
        log({"step": i + 1, "of": repeat, "phase": "echo"})
    out.write_text("".join(f"{text}\n" for _ in range(repeat)))
    return {"lines": repeat, "bytes": out.stat().st_size, "out_path": out, "summary": {"text": text}}


def fail(*, lines: int, code: int = 3, log: LogFn) -> dict[str, Any]:
    """Print ``lines`` numbered lines, log one record, then exit with status ``code``."""
    log({"phase": "about to fail", "lines": lines})
    for i in range(1, lines + 1):
        print(f"line {i} of {lines}", flush=True)
    print("boom: simulated payload failure", file=sys.stderr, flush=True)
    sys.exit(code)


def nan_loss(*, step: int, log: LogFn) -> dict[str, Any]:
    """Fail the way a diverged training run does: an exception, not an explicit exit status."""
    log({"step": step, "loss": float("nan")})
    raise FloatingPointError(f"loss is NaN at step {step}")


if __name__ == "__main__":
    run_payload(echo)
