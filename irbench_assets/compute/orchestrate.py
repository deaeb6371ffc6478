"""Run the whole asset graph (or one experiment of it) in dependency order through Dagster.

The graph mixes unpartitioned, per-experiment and per-arm assets. We cut its topological order into
segments of assets that share a partitions definition and materialize each segment once per partition
with Dagster's in-process executor against the persistent instance ($DAGSTER_HOME), so every run,
materialization and check result is recorded and visible in the UI. A partition whose assets are all
materialized and newer than every upstream materialization is skipped (nothing stale is recomputed).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from irbench_assets.experiments import parse_arm_key
from irbench_assets.settings import Settings


@dataclass
class Segment:
    """Consecutive assets (in topological order) that share one partitions definition."""

    partitions_def: dg.PartitionsDefinition | None
    keys: list[dg.AssetKey] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(k.to_user_string() for k in self.keys)


def plan(defs: dg.Definitions, selection: Iterable[dg.AssetKey] | None = None) -> list[Segment]:
    """Topological order of the (selected) assets, cut into as few same-partitioning segments as possible."""
    graph = defs.resolve_asset_graph()
    keys = set(selection) if selection is not None else set(graph.materializable_asset_keys)
    parents = {k: {p for p in graph.get(k).parent_keys if p in keys} for k in keys}
    done: set[dg.AssetKey] = set()
    segments: list[Segment] = []
    while len(done) < len(keys):
        ready = sorted((k for k in keys - done if parents[k] <= done), key=lambda k: k.to_user_string())
        if not ready:
            raise RuntimeError("cycle in the asset graph")
        current = segments[-1].partitions_def if segments else None
        same = [k for k in ready if graph.get(k).partitions_def == current] if segments else []
        pick = same or [k for k in ready if graph.get(k).partitions_def == graph.get(ready[0]).partitions_def]
        pdef = graph.get(pick[0]).partitions_def
        if not segments or segments[-1].partitions_def != pdef or not same:
            segments.append(Segment(pdef))
        segments[-1].keys.extend(pick)
        done.update(pick)
    return segments


def _latest_ts(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> float | None:
    flt = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    res = instance.fetch_materializations(flt, limit=1)
    return res.records[0].timestamp if res.records else None


def _parent_partitions(graph, parent: dg.AssetKey, key: dg.AssetKey, partition: str | None) -> list[str | None]:
    ppdef = graph.get(parent).partitions_def
    if ppdef is None:
        return [None]
    if ppdef == graph.get(key).partitions_def:
        return [partition]
    keys = list(ppdef.get_partition_keys())
    # Arm ↔ experiment (the StaticPartitionMappings of irbench_assets.partitions): only the partitions of the
    # same experiment; an unpartitioned asset depends on all of them.
    if partition is None:
        return keys
    exp = parse_arm_key(partition).experiment if "." in partition else partition
    return [k for k in keys if (parse_arm_key(k).experiment if "." in k else k) == exp]


def stale_keys(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[dg.AssetKey], partition: str | None
) -> list[dg.AssetKey]:
    """The keys (in the given topological order) that must be recomputed for ``partition``: never
    materialized, older than an upstream materialization, or downstream of a stale key of this segment."""
    graph = defs.resolve_asset_graph()
    stale: list[dg.AssetKey] = []
    for key in keys:
        ts = _latest_ts(instance, key, partition)
        parents = graph.get(key).parent_keys
        if ts is None or any(p in stale for p in parents):
            stale.append(key)
            continue
        for parent in parents:
            newer = [pts for pp in _parent_partitions(graph, parent, key, partition)
                     if (pts := _latest_ts(instance, parent, pp)) is not None and pts > ts]
            if newer:
                stale.append(key)
                break
    return stale


def missing_fan_in(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[dg.AssetKey], partition: str | None
) -> dict[dg.AssetKey, list[str]]:
    """Per-experiment assets that read every handle of their experiment (e.g. family statistics), mapped to
    the arm partitions of that experiment not yet materialized; such an asset waits until all exist."""
    graph = defs.resolve_asset_graph()
    out: dict[dg.AssetKey, list[str]] = {}
    if partition is not None and "." in partition:
        return out
    for key in keys:
        for parent in graph.get(key).parent_keys:
            ppdef = graph.get(parent).partitions_def
            if ppdef is None or ppdef == graph.get(key).partitions_def:
                continue
            mapped = _parent_partitions(graph, parent, key, partition)
            missing = [pp for pp in mapped if _latest_ts(instance, parent, pp) is None]
            # An unpartitioned summary (paper statistics) works on whatever exists, but needs something.
            if missing and (partition is not None or len(missing) == len(mapped)):
                out.setdefault(key, []).extend(missing)
    return out


def _partition_keys(seg: Segment, experiments: set[str] | None, arms: set[str] | None) -> list[str | None]:
    if seg.partitions_def is None:
        return [None]
    out: list[str | None] = []
    for key in seg.partitions_def.get_partition_keys():
        if "." in key:
            cfg = parse_arm_key(key)
            if experiments and cfg.experiment not in experiments:
                continue
            if arms and key not in arms:
                continue
        elif experiments and key not in experiments:
            continue
        out.append(key)
    return out


Reporter = Callable[[str, dict], None]


def orchestrate_jobs(settings: Settings) -> int:
    """Partitions run side by side by default: the profile's ``orchestrate.jobs`` (``auto`` = the cores, at most 4)."""
    value = settings.section("orchestrate").get("jobs", 1)
    if value == "auto":
        return max(1, min(4, os.cpu_count() or 1))
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"profile {settings.profile!r}: orchestrate.jobs must be an integer or 'auto', "
                         f"got {value!r}") from None
    if n < 1:
        raise ValueError(f"profile {settings.profile!r}: orchestrate.jobs must be >= 1, got {n}")
    return n


def orchestrate_torch_threads(settings: Settings) -> int | None:
    """The profile's ``orchestrate.torch_threads``: CPU threads of every training/extraction payload (None = torch's
    default). Pinning it makes CPU results independent of ``jobs`` and of the machine's core count."""
    value = settings.section("orchestrate").get("torch_threads")
    if value is None:
        return None
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"profile {settings.profile!r}: orchestrate.torch_threads must be an integer >= 1, "
                         f"got {value!r}")
    return value


DEFS_REF = "irbench_assets.definitions:defs"


def _materialize_one(
    assets: list, todo: list[dg.AssetKey], pk: str | None, instance: dg.DagsterInstance, resources: dict,
    log_level: str,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        selection=todo,
        partition_key=pk,
        instance=instance,
        resources=resources,
        tags={"irbench/segment": todo[0].to_user_string()},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=True,
    )


def _resource_specs(resources: dict) -> dict[str, tuple[str, str, dict]]:
    """Resources as (module, class, config) for a worker process: a ConfigurableResource does not pickle."""
    specs = {}
    for name, res in resources.items():
        if not hasattr(res, "model_dump"):
            raise TypeError(f"resource {name!r} ({type(res).__name__}) cannot be sent to a worker process")
        specs[name] = (type(res).__module__, type(res).__qualname__, res.model_dump())
    return specs


def _rebuild_resources(specs: dict[str, tuple[str, str, dict]]) -> dict:
    import importlib

    return {name: getattr(importlib.import_module(mod), cls)(**cfg) for name, (mod, cls, cfg) in specs.items()}


def _worker(
    defs_ref: str, instance_ref: object, keys: list[str], pk: str, resource_specs: dict, log_level: str,
    log_path: str | None,
) -> dict:
    """One partition in a worker process (spawned): its own Dagster run against the same persistent instance.
    Its output goes to ``log_path`` (the CLI's log file), or to the terminal it inherited when None."""
    import importlib

    resources = _rebuild_resources(resource_specs)
    module, _, attr = defs_ref.partition(":")
    defs = getattr(importlib.import_module(module), attr)
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    todo = [dg.AssetKey.from_user_string(k) for k in keys]
    t0 = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            if log_path:
                sink = stack.enter_context(open(log_path, "a", buffering=1))
                stack.enter_context(contextlib.redirect_stdout(sink))
                stack.enter_context(contextlib.redirect_stderr(sink))
            instance = stack.enter_context(dg.DagsterInstance.from_ref(instance_ref))
            result = _materialize_one(assets, todo, pk, instance, resources, log_level)
        return {"ok": result.success, "run_id": result.run_id, "seconds": round(time.perf_counter() - t0, 2)}
    except Exception as exc:  # returned as text: Dagster's exceptions do not always pickle
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - t0, 2)}


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (payloads and spawned workers inherit them), then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_parallel(
    work: list[tuple[str, list[dg.AssetKey]]], label: str, jobs: int, instance: dg.DagsterInstance, resources: dict,
    log_level: str, log_path: str | None, defs_ref: str, say: Reporter, add: Callable[[dict], dict],
) -> None:
    """Materialize the partitions of one per-arm segment, ``jobs`` at a time, each in its own process."""
    ctx = multiprocessing.get_context("spawn")
    errors: list[str] = []
    # Split the cores between the workers (polars, BLAS/OpenMP, torch unless pinned by the profile); workers
    # are spawned inside this block, so they start with these variables.
    per = str(max(1, (os.cpu_count() or 1) // jobs))
    names = ("IRBENCH_TORCH_THREADS", "POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    values = dict.fromkeys(names, per)
    values["IRBENCH_TORCH_THREADS"] = os.environ.get("IRBENCH_TORCH_THREADS") or per
    with _env(values), ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {}
        for pk, todo in work:
            say("start", {"segment": label, "partition": pk})
            fut = pool.submit(_worker, defs_ref, instance.get_ref(), [k.to_user_string() for k in todo], pk,
                              _resource_specs(resources), log_level, log_path)
            futures[fut] = (pk, todo)
        for fut in as_completed(futures):
            if fut.cancelled():
                continue
            pk, todo = futures[fut]
            res = fut.result()
            if "error" in res:
                errors.append(f"{label} [{pk}]: {res['error']}")
                for other in futures:  # stop launching; partitions already running finish
                    other.cancel()
                continue
            say("done", add({"segment": label, "partition": pk, "status": "ok" if res["ok"] else "failed",
                              "assets": [k.to_user_string() for k in todo], "seconds": res["seconds"],
                              "run_id": res["run_id"]}))
    if errors:
        raise RuntimeError("\n".join(errors))


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    selection: Iterable[dg.AssetKey] | None = None,
    experiments: set[str] | None = None,
    arms: set[str] | None = None,
    force: bool = False,
    report: Reporter | None = None,
    log_level: str = "INFO",
    resources: dict | None = None,
    jobs: int = 1,
    torch_threads: int | None = None,
    log_path: str | Path | None = None,
    defs_ref: str = DEFS_REF,
) -> list[dict]:
    """Materialize every segment × partition in order; returns one record per (segment, partition) step.

    ``resources`` override the definitions' resources (tests point ``settings`` at a temporary home).
    With ``jobs`` > 1 and a persistent instance, the partitions of a per-arm segment run ``jobs`` at a time in
    worker processes (``defs_ref`` names the definitions they import; their output goes to ``log_path``).
    ``torch_threads`` pins the payloads' torch threads (see :func:`orchestrate_torch_threads`).
    """
    if torch_threads is not None:
        with _env({"IRBENCH_TORCH_THREADS": str(torch_threads)}):
            return materialize_all(defs, instance, selection=selection, experiments=experiments, arms=arms,
                                   force=force, report=report, log_level=log_level, resources=resources, jobs=jobs,
                                   log_path=log_path, defs_ref=defs_ref)
    say = report or (lambda _ev, _info: None)
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    resources = {**(defs.resources or {}), **(resources or {})}
    steps: list[dict] = []
    base = time.perf_counter()

    def add(rec: dict) -> dict:
        """Record a step with its end time (seconds since the start); its start is ``end - seconds``."""
        rec["end"] = round(time.perf_counter() - base, 2)
        steps.append(rec)
        return rec

    for seg in plan(defs, selection):
        work: list[tuple[str | None, list[dg.AssetKey]]] = []
        for pk in _partition_keys(seg, experiments, arms):
            todo = seg.keys if force else stale_keys(defs, instance, seg.keys, pk)
            waiting = missing_fan_in(defs, instance, todo, pk)
            if waiting:
                graph = defs.resolve_asset_graph()
                blocked = set(waiting)
                for key in todo:  # topological order: a dependant of a waiting asset waits too
                    if graph.get(key).parent_keys & blocked:
                        blocked.add(key)
                todo = [k for k in todo if k not in blocked]
                n_missing = len({a for arms_ in waiting.values() for a in arms_})
                what = f"{n_missing} handle(s) of {pk}" if pk else "upstream partitions"
                say("skip", add({"segment": seg.label, "partition": pk, "seconds": 0.0,
                                 "status": f"waiting for {what}"}))
            if not todo:
                if not waiting:
                    say("skip", add({"segment": seg.label, "partition": pk, "status": "fresh", "seconds": 0.0}))
                continue
            work.append((pk, todo))
        per_arm = bool(work) and all(pk is not None and "." in pk for pk, _ in work)
        if jobs > 1 and per_arm and len(work) > 1 and instance.is_persistent:
            _run_parallel(work, seg.label, min(jobs, len(work)), instance, resources, log_level,
                          str(log_path) if log_path else None, defs_ref, say, add)
            continue
        for pk, todo in work:
            say("start", {"segment": seg.label, "partition": pk})
            t0 = time.perf_counter()
            result = _materialize_one(assets, todo, pk, instance, resources, log_level)
            say("done", add(
                {"segment": seg.label, "partition": pk, "status": "ok" if result.success else "failed",
                 "assets": [k.to_user_string() for k in todo],
                 "seconds": round(time.perf_counter() - t0, 2), "run_id": result.run_id}
            ))
    return steps
