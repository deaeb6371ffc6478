"""Assemble BENCHMARKS.md from the per-benchmark result files in benchmarks/results/ (each written by its
benchmark script, with the command that reproduces it)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["stage_minus1", "synth", "tokenize", "train", "stats", "diagnostics", "demo"]
HEADER = """# Benchmarks

Every figure is a ratio against a baseline measured in the same run, with the command that reproduces it.
Machine unless stated: the 2-core / 24 GiB CPU development machine, often shared with other work (load
noted where measured). GPU figures come from one lent NVIDIA H200. Regenerate this file with
`.venv/bin/python benchmarks/assemble.py` after running the benchmarks.
"""


def main() -> None:
    parts = [HEADER]
    results = ROOT / "benchmarks" / "results"
    for name in ORDER:
        f = results / f"{name}.md"
        if f.exists():
            text = f.read_text().strip()
            if not text.startswith("#"):
                text = f"## {name}\n\n{text}"
            if text.startswith("# "):  # a standalone report: nest its headings one level down
                text = "\n".join("#" + ln if ln.startswith("#") else ln for ln in text.splitlines())
            parts.append(text)
    (ROOT / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
