"""The ``irbench`` console script: synthetic MIMIC-IV, the whole demo, per-experiment backfills, status."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from irbench_assets.settings import REPO_ROOT, get_settings


def _ensure_dagster_home() -> Path:
    """Use $DAGSTER_HOME, or ./.dagster with the repo's dagster.yaml, so runs land in a persistent instance."""
    home = Path(os.environ.get("DAGSTER_HOME") or (Path.cwd() / ".dagster")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists() and (REPO_ROOT / "dagster.yaml").exists():
        shutil.copy(REPO_ROOT / "dagster.yaml", cfg)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from irbench_assets.mimic.synth import generate_synthetic_mimic

    bar = tqdm(total=args.admissions, unit="adm", desc="synthetic MIMIC-IV", disable=args.quiet)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    summary = generate_synthetic_mimic(
        Path(args.out), admissions=args.admissions, seed=args.seed, chunk_admissions=args.chunk, progress=progress
    )
    bar.close()
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _run(args: argparse.Namespace, experiments: set[str] | None, arms: set[str] | None) -> int:
    import dagster as dg
    from tqdm import tqdm

    from irbench_assets.compute.orchestrate import (
        materialize_all,
        orchestrate_jobs,
        orchestrate_torch_threads,
        plan,
    )
    from irbench_assets.definitions import defs

    _ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    selection = None
    if getattr(args, "select", None):
        selection = [dg.AssetKey.from_user_string(s) for s in args.select.split(",")]
    segments = plan(defs, selection)
    out, err = sys.stdout, sys.stderr
    bar = tqdm(desc="irbench", unit="step", total=None, disable=args.quiet, file=err)
    t0 = time.perf_counter()

    def report(event: str, info: dict) -> None:
        part = f" [{info['partition']}]" if info.get("partition") else ""
        if event == "start":
            bar.set_description(f"{info['segment'][:60]}{part}")
        elif event in ("done", "skip"):
            bar.update(1)
            tqdm.write(f"{'✓' if event == 'done' else '·'} {info['segment'][:70]}{part} "
                       f"{info['status']} {info['seconds']:.1f}s", file=out)

    jobs = args.jobs if args.jobs is not None else orchestrate_jobs(get_settings())

    def run(log_path: Path | None) -> list[dict]:
        return materialize_all(
            defs, instance, selection=selection, experiments=experiments, arms=arms, force=args.force,
            report=report, log_level="DEBUG" if args.verbose else "WARNING", jobs=jobs, log_path=log_path,
            torch_threads=orchestrate_torch_threads(get_settings()),
        )

    if args.verbose:
        steps = run(None)
    else:
        # The payload subprocesses' output (banners, per-step training logs) and Dagster's console logs go to
        # a log file; the terminal keeps one line per step. Each payload also keeps its own log (logs/compute).
        log_path = get_settings().home / "logs" / f"irbench-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"irbench: payload output and Dagster logs go to {log_path} (--verbose shows them here)", file=out)
        with open(log_path, "a", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            try:
                steps = run(log_path)
            except BaseException:
                bar.close()
                print(f"irbench: the failed step's output is in {log_path}", file=err)
                raise
    bar.close()
    total = time.perf_counter() - t0
    # Wall time per segment: from its first step's start to its last step's end (partitions may overlap).
    spans: dict[str, tuple[float, float]] = {}
    for st in steps:
        lo, hi = st["end"] - st["seconds"], st["end"]
        old = spans.get(st["segment"], (lo, hi))
        spans[st["segment"]] = (min(old[0], lo), max(old[1], hi))
    print(f"\n{len(steps)} steps in {total:.1f}s over {len(segments)} stage segments (jobs={jobs})", file=out)
    for seg, (lo, hi) in spans.items():
        print(f"  {hi - lo:8.1f}s  {seg}", file=out)
    if args.timing:
        Path(args.timing).write_text(json.dumps(
            {"total_seconds": total, "jobs": jobs, "segment_wall_seconds": {k: round(b - a, 2) for k, (a, b) in
                                                                           spans.items()}, "steps": steps},
            indent=2) + "\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    os.environ.setdefault("IRBENCH_PROFILE", "demo")
    return _run(args, None, None)


def cmd_materialize(args: argparse.Namespace) -> int:
    from irbench_assets.experiments import get_handle

    arms = None
    if args.handle:
        arms = {get_handle(args.experiment, h).key for h in args.handle}
    else:
        from irbench_assets.partitions import experiment_arm_keys

        experiment_arm_keys(args.experiment)  # fails at once, listing the valid experiments
    return _run(args, {args.experiment}, arms)


def cmd_status(args: argparse.Namespace) -> int:
    import dagster as dg

    from irbench_assets.definitions import defs

    _ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    graph = defs.resolve_asset_graph()
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        pdef = graph.get(key).partitions_def
        if pdef is None:
            ev = instance.get_latest_materialization_event(key)
            state = "materialized" if ev else "missing"
        else:
            done = instance.get_materialized_partitions(key)
            state = f"{len(done)}/{len(pdef.get_partition_keys())} partitions"
        print(f"{key.to_user_string():40s} {state}")
    return 0


def cmd_jobfiles(args: argparse.Namespace) -> int:
    from irbench_assets.compute.jobfiles import write_jobfiles

    for path in write_jobfiles(args.profile, Path(args.out)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="irbench", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth-mimic", help="write a deterministic synthetic MIMIC-IV 3.1 directory")
    s.add_argument("--out", required=True)
    s.add_argument("--admissions", type=int, default=2000)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--chunk", type=int, default=5000, help="admissions generated per chunk (bounds memory)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    for name, func, hlp in [
        ("demo", cmd_demo, "materialize the whole asset graph (all partitions) through Dagster"),
        ("materialize", cmd_materialize, "materialize one experiment (a per-experiment backfill) or some handles"),
    ]:
        d = sub.add_parser(name, help=hlp)
        if name == "materialize":
            d.add_argument("--experiment", required=True)
            d.add_argument("--handle", action="append", help="restrict to this handle (repeatable)")
        d.add_argument("--select", help="comma-separated asset keys (default: all)")
        d.add_argument("--force", action="store_true", help="recompute even what is fresh")
        d.add_argument("--timing", help="write per-step timings as JSON here")
        d.add_argument("--quiet", action="store_true")
        d.add_argument("--verbose", action="store_true", help="show Dagster's step logs on the terminal")
        d.add_argument("--jobs", type=int, default=None,
                       help="per-arm partitions run side by side (default: the profile's orchestrate.jobs)")
        d.set_defaults(func=func)

    j = sub.add_parser("slurm-jobfiles", help="write the sbatch files of every stage for a cluster user")
    j.add_argument("--profile", default="paper", choices=["demo", "paper"])
    j.add_argument("--out", required=True)
    j.set_defaults(func=cmd_jobfiles)

    st = sub.add_parser("status", help="materialization status of every asset")
    st.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"irbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
