"""Per-stage sbatch resources (``resources/slurm/<profile>.yaml``) and readable sbatch job files.

The same :class:`StageResources` feed two consumers: :class:`~irbench_assets.compute.resource.IrbenchCompute`
in ``slurm`` mode (as dagster-slurm's ``extra_slurm_opts``) and :func:`write_jobfiles`, which writes the
scripts a cluster user can read or submit by hand (the seed's ``slurm/generated/`` habit). The ``#SBATCH``
lines are the options dagster-slurm 1.22 puts on its ``sbatch`` command line for the same stage, so a
hand-submitted job and a Dagster-submitted job ask the scheduler for the same thing.

This module does not import Dagster (the ``irbench`` CLI and the payload entry point use it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from irbench_assets.settings import PROFILES, resources_dir

_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+):(\d{2}):(\d{2})$")
_MEM_RE = re.compile(r"^\d+[KMGT]?$")
_STAGE_KEYS = {
    "title", "seed_stage", "partition", "cpus", "mem", "gpus", "gpu_model", "time", "payload", "select",
}


def time_limit_seconds(value: str) -> int:
    """Seconds in a SLURM time limit written ``[D-]HH:MM:SS`` (the only form our YAML accepts)."""
    m = _TIME_RE.match(value.strip())
    if not m or int(m.group(3)) >= 60 or int(m.group(4)) >= 60:
        raise ValueError(f"time limit {value!r} is not [D-]HH:MM:SS")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@dataclass(frozen=True)
class StageResources:
    """What one stage asks the scheduler for, plus what it runs (a payload target or an asset selection)."""

    stage: str
    title: str
    seed_stage: str
    partition: str  # the site's partition name ("" = the cluster's default partition)
    cpus: int
    mem: str
    gpus: int
    time: str
    gpu_model: str | None = None
    payload: str | None = None  # "pkg.module" or "pkg.module:function", run by compute.payload
    select: str | None = None  # Dagster asset selection for stages that run in process

    @property
    def time_seconds(self) -> int:
        """The time limit in seconds (used to size dagster-slurm's poll timeout)."""
        return time_limit_seconds(self.time)


@dataclass(frozen=True)
class SlurmProfile:
    """A parsed ``resources/slurm/<profile>.yaml``: stages in file order plus site-wide sbatch settings."""

    profile: str
    path: Path
    stages: dict[str, StageResources]
    account: str | None = None
    qos: str | None = None
    setup: tuple[str, ...] = field(default_factory=tuple)

    def stage(self, name: str) -> StageResources:
        """The resources of ``name``; an unknown stage names the file and the valid stages."""
        if name not in self.stages:
            raise KeyError(f"{self.path}: no stage {name!r}; stages: {', '.join(self.stages)}")
        return self.stages[name]


def parse_partitions(spec: str | None) -> dict[str, str]:
    """Parse ``IRBENCH_SLURM_PARTITIONS`` style overrides: ``"gpu=a100,cpu=standard"`` → dict."""
    out: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"partition override {item!r} is not logical=site (e.g. gpu=a100)")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_slurm_profile(
    profile: str, partitions: Mapping[str, str] | None = None, path: Path | None = None
) -> SlurmProfile:
    """Read and validate ``resources/slurm/<profile>.yaml``; ``partitions`` maps logical → site names.

    Errors name the file, the stage and the offending key/value.
    """
    path = Path(path) if path is not None else resources_dir() / "slurm" / f"{profile}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sbatch resources for profile {profile!r} (profiles: {PROFILES})")
    raw = yaml.safe_load(path.read_text()) or {}
    names = {str(k): "" if v is None else str(v) for k, v in (raw.get("partitions") or {}).items()}
    names.update({k: str(v) for k, v in (partitions or {}).items()})
    stages: dict[str, StageResources] = {}
    for name, spec in (raw.get("stages") or {}).items():
        where = f"{path}: stage {name!r}"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: expected a mapping, got {spec!r}")
        unknown = sorted(set(spec) - _STAGE_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_STAGE_KEYS)}")
        for key in ("partition", "cpus", "mem", "gpus", "time"):
            if key not in spec:
                raise ValueError(f"{where}: missing {key!r}")
        logical = str(spec["partition"])
        if logical not in names:
            raise ValueError(f"{where}: partition {logical!r} is not in partitions: {sorted(names)}")
        mem = str(spec["mem"]).upper()
        if not _MEM_RE.match(mem):
            raise ValueError(f"{where}: mem {spec['mem']!r} is not a SLURM size such as 32G")
        try:
            time_limit_seconds(str(spec["time"]))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        cpus, gpus = int(spec["cpus"]), int(spec["gpus"])
        if cpus < 1 or gpus < 0:
            raise ValueError(f"{where}: cpus must be ≥ 1 and gpus ≥ 0 (got cpus={cpus}, gpus={gpus})")
        if spec.get("payload") and spec.get("select"):
            raise ValueError(f"{where}: give either payload or select, not both")
        stages[str(name)] = StageResources(
            stage=str(name),
            title=str(spec.get("title", name)),
            seed_stage=str(spec.get("seed_stage", "")),
            partition=names[logical],
            cpus=cpus,
            mem=mem,
            gpus=gpus,
            time=str(spec["time"]),
            gpu_model=spec.get("gpu_model"),
            payload=spec.get("payload"),
            select=spec.get("select"),
        )
    return SlurmProfile(
        profile=profile,
        path=path,
        stages=stages,
        account=raw.get("account") or None,
        qos=raw.get("qos") or None,
        setup=tuple(str(s) for s in raw.get("setup") or ()),
    )


def sbatch_options(
    res: StageResources, account: str | None = None, qos: str | None = None
) -> list[tuple[str, str]]:
    """The (long option, value) pairs dagster-slurm 1.22 passes to sbatch for this stage.

    Mirrors ``SlurmPipesClient._build_sbatch_command`` for the options we set: ``--mem`` is always
    explicit (we override it, so dagster-slurm keeps it on GPU jobs too), GPUs go as ``--gres=gpu:N``,
    and ``--nodes=1`` is left out for single-GPU jobs as dagster-slurm does.
    """
    opts: list[tuple[str, str]] = []
    if res.partition:
        opts.append(("partition", res.partition))
    opts += [("time", res.time), ("cpus-per-task", str(res.cpus)), ("mem", res.mem)]
    if res.gpus != 1:
        opts.append(("nodes", "1"))
    if res.gpus:
        opts.append(("gres", f"gpu:{res.gpus}"))
    if qos:
        opts.append(("qos", qos))
    if account:
        opts.append(("account", account))
    return opts


@dataclass(frozen=True)
class Job:
    """One concrete job file: a stage plus its arguments (payload JSON args, or a partition key)."""

    name: str
    stage: str
    args: Mapping[str, Any] | str | None = None


_PLACEHOLDER_ENV = "/path/to/irbench/.venv"


def render_jobfile(
    profile: SlurmProfile,
    res: StageResources,
    *,
    job: Job | None = None,
    env_path: str | None = None,
    python_path: Sequence[str] = (),
) -> str:
    """The text of one sbatch script for ``res`` (deterministic: no dates, sorted JSON)."""
    name = job.name if job else res.stage
    lines = [
        "#!/bin/bash",
        f"# irbench — {res.title}" + (f" (seed stage {res.seed_stage})" if res.seed_stage else ""),
        f"# Profile {profile.profile}; sbatch resources from resources/slurm/{profile.path.name}.",
        "# Written by `irbench slurm-jobfiles`; the #SBATCH lines are what Dagster (IRBENCH_COMPUTE_MODE=slurm)",
        "# asks the scheduler for when it runs this stage through dagster-slurm.",
    ]
    if res.gpu_model:
        lines.append(f"# GPU model of the original study: {res.gpus}× {res.gpu_model} (choose the partition that has it).")
    lines.append(f"#SBATCH --job-name=irbench-{name}")
    lines += [f"#SBATCH --{k}={v}" for k, v in sbatch_options(res, profile.account, profile.qos)]
    lines += [
        "#SBATCH --output=%x-%j.out",
        "",
        "set -euo pipefail",
        "",
        "# The installed environment (a venv with `pip install -e .` of this repository).",
        f'IRBENCH_VENV="${{IRBENCH_VENV:-{env_path or _PLACEHOLDER_ENV}}}"',
    ]
    if profile.setup:
        lines += ["", "# Site setup (resources/slurm/*.yaml `setup:`)", *profile.setup]
    lines += [
        'if [ ! -x "$IRBENCH_VENV/bin/python" ]; then',
        '  echo "irbench: no python at $IRBENCH_VENV/bin/python; set IRBENCH_VENV" >&2',
        "  exit 2",
        "fi",
        'source "$IRBENCH_VENV/bin/activate"',
        f"export IRBENCH_PROFILE={shlex.quote(profile.profile)}",
    ]
    if python_path:
        joined = ":".join(python_path)
        lines.append(f'export PYTHONPATH={shlex.quote(joined)}"${{PYTHONPATH:+:$PYTHONPATH}}"')
    lines.append("")
    if res.payload:
        default = json.dumps(dict(job.args), sort_keys=True) if job and isinstance(job.args, Mapping) else None
        usage = "usage: sbatch <this file> '<json args>' | args.json"
        lines += [
            "# Payload arguments: a JSON object or a path to a .json file (the same `args` Dagster passes).",
            *([f"DEFAULT_ARGS={shlex.quote(default)}", 'ARGS="${1:-$DEFAULT_ARGS}"'] if default
              else [f'ARGS="${{1:?{usage}}}"']),
            'if [ -f "$ARGS" ]; then FLAG=--json-file; else FLAG=--json-args; fi',
            f'exec python -m irbench_assets.compute.payload {shlex.quote(res.payload)} "$FLAG" "$ARGS"',
        ]
    elif res.select:
        default = str(job.args) if job and isinstance(job.args, str) else None
        lines += [
            "# This stage runs inside Dagster; the job materializes its assets for one partition",
            "# (an <experiment>.<handle> or <experiment> key, or none for unpartitioned assets).",
            "# Set DAGSTER_HOME to record the run in your instance.",
            *([f"DEFAULT_PARTITION={shlex.quote(default)}", 'PARTITION="${1:-$DEFAULT_PARTITION}"'] if default
              else ['PARTITION="${1:-}"']),
            f"exec dagster asset materialize -m irbench_assets.definitions --select {shlex.quote(res.select)} "
            '${PARTITION:+--partition "$PARTITION"}',
        ]
    else:
        raise ValueError(f"{profile.path}: stage {res.stage!r} has neither payload nor select")
    return "\n".join(lines) + "\n"


def write_jobfiles(
    profile: str,
    out_dir: Path,
    stages: list[str] | None = None,
    *,
    jobs: Sequence[Job] | None = None,
    env_path: str | None = None,
    partitions: Mapping[str, str] | None = None,
    python_path: Sequence[str] = (),
) -> list[Path]:
    """Write ``NN_<stage>.sbatch`` (or ``<job.name>.sbatch`` for ``jobs``) into ``out_dir``; return the paths.

    ``stages`` restricts the stage list (file order kept); ``env_path`` is the cluster venv
    (default ``$IRBENCH_SLURM_ENV``, else a placeholder that the script refuses to run with);
    ``partitions`` maps logical partition names to site names (default ``$IRBENCH_SLURM_PARTITIONS``).
    """
    from irbench_assets.storage import atomic_file  # local import: storage pulls in polars

    prof = load_slurm_profile(profile, partitions or parse_partitions(os.environ.get("IRBENCH_SLURM_PARTITIONS")))
    env_path = env_path or os.environ.get("IRBENCH_SLURM_ENV") or None
    names = list(prof.stages)
    if stages is not None:
        for s in stages:
            prof.stage(s)  # raises with the valid names
        names = [s for s in names if s in set(stages)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets: list[tuple[str, StageResources, Job | None]] = []
    if jobs is not None:
        targets = [(j.name, prof.stage(j.stage), j) for j in jobs]
    else:
        order = list(prof.stages)
        targets = [(f"{order.index(s):02d}_{s}", prof.stage(s), None) for s in names]
    written: list[Path] = []
    for fname, res, job in targets:
        path = out_dir / f"{fname}.sbatch"
        with atomic_file(path) as tmp:
            tmp.write_text(render_jobfile(prof, res, job=job, env_path=env_path, python_path=python_path))
            tmp.chmod(0o755)
        written.append(path)
    return written
