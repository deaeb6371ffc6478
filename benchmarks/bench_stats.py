"""Vectorized bootstrap / permutation statistics vs a per-resample scikit-learn / scipy loop.

Both arms score the IDENTICAL resamples (``ResamplePlan.bootstrap_indices(b)``). The loop runs on the
first ``--loop`` resamples and is extrapolated linearly to ``--resamples``; the vectorized arm runs
all of them. Both are single-threaded (``threadpoolctl``). Reported per metric (one handle):

* loop: ``metric(y[idx], p[idx])`` per resample, indices drawn beforehand (not timed);
* vec: the same resamples, indices drawn beforehand (not timed); timed = index -> multiplicity
  counting + the metric kernel; ratio = loop / vec;
* vec e2e: ``bootstrap_distributions`` end to end, drawing the indices itself; ratio against the loop
  plus its own draws;
* max |diff| between loop and vectorized values on the common resamples.

Times are CPU seconds of this process (``time.process_time``: user + system), not wall time, so that
the other jobs on a shared machine do not inflate either arm. The machine is shared, so the arms are
interleaved: the loop resamples are split into ``--repeats`` slices, and after each slice every
vectorized arm runs once in full; vectorized times are the median of the ``--repeats`` runs.

Run:  .venv/bin/python benchmarks/bench_stats.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from threadpoolctl import threadpool_limits

from irbench_assets.stats.metrics import Workspace
from irbench_assets.stats.resample import (
    ResamplePlan,
    Scorer,
    auto_chunk,
    bootstrap_distributions,
    counts_from_indices,
    permutation_distribution,
)
from irbench_assets.storage import atomic_file


def _ece(y: np.ndarray, p: np.ndarray) -> float:
    sy, _ = np.histogram(p, bins=15, range=(0.0, 1.0), weights=y)
    sp, _ = np.histogram(p, bins=15, range=(0.0, 1.0), weights=p)
    return float(np.abs(sy - sp).sum() / p.size)


def _rho(y: np.ndarray, x: np.ndarray) -> float:
    return float(spearmanr(y, x).statistic)


LOOP_FUNCS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": roc_auc_score,
    "pr_auc": average_precision_score,
    "brier": brier_score_loss,
    "ece_15": _ece,
    "spearman_rho": _rho,
    "r2": r2_score,
    "mae": mean_absolute_error,
    "rmse": root_mean_squared_error,
}
TASK_OF = {m: "classification" for m in ("roc_auc", "pr_auc", "brier", "ece_15")} | {
    m: "regression" for m in ("spearman_rho", "r2", "mae", "rmse")
}


def make_data(n: int, seed: int = 0) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    """A 10 %-prevalence binary outcome and a LOS-like regression target (ties: 0.1 h resolution),
    each with four handles' predictions of different quality."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(float)
    probs = [1 / (1 + np.exp(-(2.2 - 0.3 * k) * y + 2.0 + rng.normal(size=n))) for k in range(4)]
    los = np.round(rng.gamma(2.0, 60.0, n), 1)
    preds = [los + rng.normal(0, 40 + 10 * k, n) for k in range(4)]
    return {"classification": (y, probs), "regression": (los, preds)}


def _median(xs: list[float]) -> float:
    return float(np.median(xs))


def bench_metric(
    metric: str, y: np.ndarray, p: np.ndarray, plan: ResamplePlan, n_loop: int, chunk: int, repeats: int
) -> dict[str, float]:
    """Loop vs vectorized for one metric and one handle on the plan's resamples (interleaved)."""
    task = TASK_OF[metric]
    f = LOOP_FUNCS[metric]
    B = plan.n_resamples
    loop_vals = np.empty(n_loop)
    t_loop = t_draw_loop = 0.0
    scorer = Scorer(y, {"h": p}, task, [metric])
    vals = np.empty(B)

    def vec() -> float:
        ws = Workspace()
        spent = 0.0
        for s in range(0, B, chunk):
            e = min(B, s + chunk)
            idx = [plan.bootstrap_indices(b) for b in range(s, e)]  # drawn outside the timer
            t0 = time.process_time()
            vals[s:e] = scorer(counts_from_indices(idx, plan.n_items, ws))["h"][metric]
            spent += time.process_time() - t0
        return spent

    def e2e() -> float:
        t0 = time.process_time()
        bootstrap_distributions(y, {"h": p}, task, plan, [metric], chunk_size=chunk)
        return time.process_time() - t0

    t_vec, t_e2e = [], []
    for part in np.array_split(np.arange(n_loop), repeats):
        for b in part:
            t0 = time.process_time()
            idx = plan.bootstrap_indices(int(b))
            t1 = time.process_time()
            loop_vals[b] = f(y[idx], p[idx])
            t_loop += time.process_time() - t1
            t_draw_loop += t1 - t0
        t_vec.append(vec())
        t_e2e.append(e2e())
    scale = B / n_loop
    return {
        "loop": t_loop * scale,
        "loop_draw": (t_loop + t_draw_loop) * scale,
        "vec": _median(t_vec),
        "e2e": _median(t_e2e),
        "diff": float(np.max(np.abs(vals[:n_loop] - loop_vals))),
    }


def bench_permutation(
    metric: str,
    y: np.ndarray,
    p0: np.ndarray,
    p1: np.ndarray,
    plan: ResamplePlan,
    n_loop: int,
    chunk: int,
    repeats: int,
) -> dict[str, float]:
    """Paired swap permutations of two handles: loop (2 library calls each) vs vectorized (interleaved)."""
    task = TASK_OF[metric]
    f = LOOP_FUNCS[metric]
    loop_vals = np.empty(n_loop)
    t_loop = 0.0
    t_vec = []
    deltas: dict[str, np.ndarray] = {}
    for part in np.array_split(np.arange(n_loop), repeats):
        for k in part:
            swap = plan.swap_mask(int(k))
            t0 = time.process_time()
            loop_vals[k] = f(y, np.where(swap, p0, p1)) - f(y, np.where(swap, p1, p0))
            t_loop += time.process_time() - t0
        t0 = time.process_time()
        _, deltas = permutation_distribution(y, p0, p1, task, plan, [metric], chunk_size=chunk)
        t_vec.append(time.process_time() - t0)
    return {
        "loop": t_loop * plan.n_permutations / n_loop,
        "vec": _median(t_vec),
        "diff": float(np.max(np.abs(deltas[metric][:n_loop] - loop_vals))),
    }


def bench_family(
    task: str,
    y: np.ndarray,
    preds: list[np.ndarray],
    plan: ResamplePlan,
    chunk: int,
    metrics: list[str] | None,
    repeats: int,
) -> tuple[float, float]:
    """End-to-end bootstrap for 1 and for 4 handles sharing the resamples (``metrics``: all if None);
    medians of ``repeats`` interleaved runs."""
    times: dict[int, list[float]] = {1: [], 4: []}
    for _ in range(repeats):
        for k in (1, 4):
            t0 = time.process_time()
            handles = {f"h{i}": preds[i] for i in range(k)}
            bootstrap_distributions(y, handles, task, plan, metrics, chunk_size=chunk)
            times[k].append(time.process_time() - t0)
    return _median(times[1]), _median(times[4])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n=20000, 400 resamples, 20 loop resamples")
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--loop", type=int, default=100, help="resamples scored by the reference loop")
    ap.add_argument("--chunk", type=int, default=None, help="resamples per chunk (default: auto_chunk)")
    ap.add_argument("--repeats", type=int, default=3, help="vectorized timings: median of this many")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stats.md")
    args = ap.parse_args()
    if args.quick:
        args.n, args.resamples, args.loop, args.repeats = 20_000, 400, 20, 1
    warnings.simplefilter("ignore")
    chunks = {t: args.chunk or auto_chunk(args.n, t) for t in ("classification", "regression")}
    data = make_data(args.n)
    plan = ResamplePlan.for_ids(
        np.arange(args.n), "bench", n_resamples=args.resamples, n_permutations=args.resamples
    )
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    n_perm_loop = max(args.loop // 2, 5)
    rows, perm_rows, fam_rows = [], [], []
    with threadpool_limits(1):
        for metric, task in TASK_OF.items():
            y, preds = data[task]
            r = bench_metric(metric, y, preds[0], plan, args.loop, chunks[task], args.repeats)
            rows.append((metric, r))
            print(
                f"{metric:13s} loop {r['loop']:7.2f}s  vec {r['vec']:6.3f}s ({r['loop'] / r['vec']:5.1f}x)  "
                f"e2e {r['e2e']:6.3f}s ({r['loop_draw'] / r['e2e']:5.1f}x)  max|diff| {r['diff']:.1e}",
                flush=True,
            )
        for metric in ("roc_auc", "pr_auc", "spearman_rho"):
            task = TASK_OF[metric]
            y, preds = data[task]
            r = bench_permutation(
                metric, y, preds[0], preds[1], plan, n_perm_loop, chunks[task], args.repeats
            )
            perm_rows.append((metric, r))
            print(
                f"perm {metric:13s} loop {r['loop']:7.2f}s  vec {r['vec']:6.3f}s ({r['loop'] / r['vec']:5.1f}x)",
                flush=True,
            )
        loops = dict(rows)
        for label, task, metrics in (
            ("roc_auc", "classification", ["roc_auc"]),
            ("pr_auc", "classification", ["pr_auc"]),
            ("spearman_rho", "regression", ["spearman_rho"]),
            ("all 4 binary metrics", "classification", None),
            ("all 4 regression metrics", "regression", None),
        ):
            y, preds = data[task]
            t1, t4 = bench_family(task, y, preds, plan, chunks[task], metrics, args.repeats)
            names = metrics or [m for m, t in TASK_OF.items() if t == task]
            loop = sum(loops[m]["loop_draw"] for m in names)
            fam_rows.append((label, t1, t4, loop))
            print(f"family {label}: 1 handle {t1:.2f}s, 4 handles {t4:.2f}s, per extra {(t4 - t1) / 3:.3f}s")
    total = time.perf_counter() - started
    cmd = "  .venv/bin/python benchmarks/bench_stats.py" + (" --quick" if args.quick else "")
    lines = [
        "# Statistics: vectorized resampling vs a per-resample library loop",
        "",
        f"Command:\n\n```\n{cmd}\n```",
        "",
        f"n = {args.n:,} admissions, {args.resamples} bootstrap resamples / permutations, chunk = "
        f"{chunks['classification']} (binary) / {chunks['regression']} (regression) resamples; loop arm run on "
        f"the first {args.loop} resamples (permutations: {n_perm_loop}) of the SAME plan and extrapolated "
        f"x{args.resamples / args.loop:g}, split into {args.repeats} slices interleaved with {args.repeats} "
        f"full runs of every vectorized arm (vectorized times: median). CPU time, single-threaded "
        f"(threadpoolctl). Host: {platform.machine()}, {os.cpu_count()} cores, shared with other jobs: load "
        f"average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. Total benchmark time "
        f"{total:.0f} s.",
        "",
        "Binary outcome: 10 % prevalence, continuous probabilities. Regression: LOS-like gamma target "
        "rounded to 0.1 h (tied targets), continuous predictions.",
        "",
        "## Bootstrap, one handle, one metric",
        "",
        "`vec` = multiplicity counting + kernel, indices drawn beforehand (like the loop); `e2e` = "
        "`bootstrap_distributions` drawing its own indices, compared with loop + the same draws.",
        "",
        "| metric | loop (s, extrap.) | vec (s) | ratio | e2e (s) | ratio e2e | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m, r in rows:
        lines.append(
            f"| {m} | {r['loop']:.2f} | {r['vec']:.3f} | {r['loop'] / r['vec']:.0f}x | {r['e2e']:.3f} | "
            f"{r['loop_draw'] / r['e2e']:.0f}x | {r['diff']:.1e} |"
        )
    lines += [
        "",
        "## Paired swap permutation test, one pair (end to end, swap draws included)",
        "",
        "| metric | loop (s, extrap.) | vec (s) | ratio | max abs diff |",
        "|---|---:|---:|---:|---:|",
    ]
    for m, r in perm_rows:
        lines.append(
            f"| {m} | {r['loop']:.2f} | {r['vec']:.3f} | {r['loop'] / r['vec']:.0f}x | {r['diff']:.1e} |"
        )
    lines += [
        "",
        "## Family: handles sharing the resamples (end to end, draws included)",
        "",
        "The statistics stage scores every handle of an outcome on the same resamples, so the draws, the "
        "multiplicity counts and the y ranks are paid once per outcome. Per extra handle = (time with 4 "
        "handles - time with 1) / 3; the loop column is the per-handle loop time (with its draws).",
        "",
        "| metrics | 1 handle (s) | 4 handles (s) | per extra handle (s) | loop per handle (s) | "
        "ratio per extra handle |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, t1, t4, loop in fam_rows:
        extra = (t4 - t1) / 3
        lines.append(f"| {label} | {t1:.2f} | {t4:.2f} | {extra:.3f} | {loop:.1f} | {loop / extra:.0f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        with atomic_file(args.out) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
