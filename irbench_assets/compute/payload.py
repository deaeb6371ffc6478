"""Entry points for stage payloads: run a domain function under dagster-pipes, or as a plain CLI.

A domain function (training, extraction, a GPU diagnostic) is written without Dagster::

    def train_arm(*, tokenized_dir: str, out_dir: str, seed: int, log: LogFn) -> dict: ...

and a stage's payload module is two lines::

    from irbench_assets.compute.payload import run_payload
    from irbench_assets.models.train import train_arm

    if __name__ == "__main__":
        run_payload(train_arm)

Launched by :class:`~irbench_assets.compute.resource.IrbenchCompute` the module opens the dagster-pipes
context, reads its keyword arguments from the pipes extras, forwards every ``log({...})`` record to the
Dagster run log, and reports the returned dict as the asset's materialization metadata. Launched by
hand (debugging, hand-submitted sbatch files) it takes ``--json-args '{...}'`` or ``--json-file
args.json`` instead and prints the log records and the final metadata as JSON lines.

``python -m irbench_assets.compute.payload TARGET [--json-args ...]`` dispatches by name: TARGET is
``pkg.module:function``, a payload module ``pkg.module``, or a stage name of
``resources/slurm/<IRBENCH_PROFILE>.yaml`` (its ``payload:``).

:func:`supervise` is what the generated entry script runs: it starts that command as a child process,
tees its output into a log file (whose tail goes into the Dagster error when the payload fails) and
returns the child's exit status.

Only the standard library and ``dagster_pipes`` (imported when launched by Dagster) are used here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

LogFn = Callable[[Mapping[str, Any] | str], None]
PayloadFn = Callable[..., Mapping[str, Any] | None]

ARGS_EXTRA = "irbench_args"  # pipes extras key that holds the payload's keyword arguments
STAGE_EXTRA = "irbench_stage"
LOG_PREFIX = "[irbench]"
# dagster-pipes' own "Starting/Stopped PipesDefaultLogWriterChannel(stdout)" lines say nothing about a failure.
_PIPES_NOISE = re.compile(r"^(Starting|Stopped) Pipes\w*Channel\(")
_USAGE = (
    "usage: python -m irbench_assets.compute.payload TARGET [--json-args JSON | --json-file PATH]\n"
    "  TARGET: pkg.module:function | pkg.module (a payload module) | a stage name of resources/slurm/<profile>.yaml"
)


# ------------------------------------------------------------------------------------------ helpers
def _format_record(record: Mapping[str, Any] | str) -> str:
    if isinstance(record, str):
        return record
    return json.dumps(_plain(record), sort_keys=True, default=str, allow_nan=True)


def _plain(value: Any) -> Any:
    """Turn numpy scalars, paths and tuples into JSON-friendly Python values (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _pipes_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Domain metadata → dagster-pipes metadata: paths as ``path``, dicts/lists as ``json``, else inferred.

    A value that is already ``{"raw_value": ..., "type": ...}`` is passed through (e.g. ``"md"``).
    """
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, Mapping) and set(value) == {"raw_value", "type"}:
            out[key] = dict(value)
        elif isinstance(value, Path):
            out[key] = {"raw_value": str(value), "type": "path"}
        elif isinstance(value, Mapping | list | tuple):
            out[key] = {"raw_value": _plain(value), "type": "json"}
        else:
            plain = _plain(value)
            if isinstance(plain, float) and not math.isfinite(plain):
                out[key] = {"raw_value": str(plain), "type": "text"}  # JSON has no NaN/inf
            else:
                out[key] = plain
    return out


def _parse_cli(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="irbench-payload", description="Run a stage payload.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json-args", help="the payload's keyword arguments as a JSON object")
    group.add_argument("--json-file", help="a .json file holding the payload's keyword arguments")
    return parser.parse_args(list(argv))


def _load_cli_args(ns: argparse.Namespace) -> dict[str, Any]:
    if ns.json_file is not None:
        path = Path(ns.json_file)
        try:
            args = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"--json-file {path}: cannot read a JSON object ({exc})") from None
    else:
        try:
            args = json.loads(ns.json_args)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--json-args is not valid JSON ({exc}): {ns.json_args!r}") from None
    if not isinstance(args, dict):
        raise SystemExit(f"payload arguments must be a JSON object, got {type(args).__name__}")
    return args


def launched_by_dagster() -> bool:
    """True when the dagster-pipes bootstrap variables are present (the process was started by Dagster)."""
    return "DAGSTER_PIPES_CONTEXT" in os.environ and "DAGSTER_PIPES_MESSAGES" in os.environ


def _call(fn: PayloadFn, args: Mapping[str, Any], log: LogFn) -> Mapping[str, Any]:
    result = fn(**args, log=log)
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise TypeError(f"payload {fn.__module__}.{fn.__qualname__} returned {type(result).__name__}, not a dict")
    return result


# --------------------------------------------------------------------------------------- public API
def _limit_threads() -> None:
    """Honour IRBENCH_TORCH_THREADS: the orchestrator splits the cores when it runs partitions side by side."""
    n = os.environ.get("IRBENCH_TORCH_THREADS", "").strip()
    if n and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, int(n)))


def run_payload(fn: PayloadFn, argv: Sequence[str] | None = None) -> None:
    """Run ``fn(**args, log=log)`` as a stage payload: under dagster-pipes, or as a CLI with JSON args.

    Under Dagster, ``args`` come from the pipes extras, ``log`` records go to the Dagster run log (and
    to stdout, so they are in the payload's log file), and the returned dict becomes the asset's
    materialization metadata. An exception propagates (the process exits non-zero, which fails the step).
    """
    argv = sys.argv[1:] if argv is None else argv
    ns = _parse_cli(argv)
    _limit_threads()
    if ns.json_args is not None or ns.json_file is not None:
        args = _load_cli_args(ns)

        def cli_log(record: Mapping[str, Any] | str) -> None:
            print(f"{LOG_PREFIX} {_format_record(record)}", flush=True)

        meta = _call(fn, args, cli_log)
        print(json.dumps({"metadata": _plain(meta)}, sort_keys=True, default=str), flush=True)
        return
    if not launched_by_dagster():
        raise SystemExit(f"not launched by Dagster (no DAGSTER_PIPES_* variables): give the arguments\n{_USAGE}")

    from dagster_pipes import PipesDefaultMessageWriter, open_dagster_pipes

    class _NoStdioMessageWriter(PipesDefaultMessageWriter):
        """Pipes messages without the stdout/stderr copy dagster-slurm's readers ask for.

        dagster-slurm streams the payload's output itself (LocalRunner pipes it; on SLURM it tails the
        job's .out/.err), so dagster-pipes' second copy (a ``tee`` per stream, re-sent as messages) only
        duplicates every line and costs ~6 s at close (two 1 s tee waits plus polling per stream).
        """

        def open(self, params: Mapping[str, Any]) -> AbstractContextManager[Any]:
            return super().open({**params, self.INCLUDE_STDIO_IN_MESSAGES_KEY: False})

    with open_dagster_pipes(message_writer=_NoStdioMessageWriter()) as context:
        extras = context.extras
        args = dict(extras.get(ARGS_EXTRA) or {})
        stage = extras.get(STAGE_EXTRA) or fn.__name__

        def pipes_log(record: Mapping[str, Any] | str) -> None:
            text = _format_record(record)
            print(f"{LOG_PREFIX} {text}", flush=True)
            context.log.info(f"[{stage}] {text}")

        meta = _call(fn, args, pipes_log)
        if not context.is_asset_step:
            context.log.info(f"[{stage}] result {_format_record(meta)}")
            return
        keys = list(context.asset_keys)
        if len(keys) == 1:
            context.report_asset_materialization(metadata=_pipes_metadata(meta), asset_key=keys[0])
            return
        # Several assets in one step: the function returns {asset_key: metadata}.
        missing = [k for k in keys if k not in meta]
        if missing:
            raise ValueError(f"payload for assets {keys} must return metadata per asset key; missing {missing}")
        for key in keys:
            context.report_asset_materialization(metadata=_pipes_metadata(meta[key]), asset_key=key)


def resolve_target(target: str) -> PayloadFn | str:
    """A ``pkg.module:function`` target → the function; ``pkg.module`` → the module name; a stage → its payload."""
    if ":" in target:
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        try:
            fn = getattr(module, attr)
        except AttributeError:
            raise ValueError(f"payload target {target!r}: module {module_name} has no {attr!r}") from None
        if not callable(fn):
            raise ValueError(f"payload target {target!r} is not callable")
        return fn
    if "." in target:
        return target
    from irbench_assets.compute.jobfiles import load_slurm_profile

    profile = os.environ.get("IRBENCH_PROFILE") or "demo"
    res = load_slurm_profile(profile).stage(target)
    if not res.payload:
        raise ValueError(f"stage {target!r} of profile {profile} has no payload (it runs inside Dagster)")
    return resolve_target(res.payload)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m irbench_assets.compute.payload TARGET [--json-args ...]``: dispatch to a payload by name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        raise SystemExit(0 if argv else 2)
    target, rest = argv[0], argv[1:]
    resolved = resolve_target(target)
    if isinstance(resolved, str):
        # A payload module: run its ``if __name__ == "__main__"`` block exactly as ``python -m`` would.
        sys.argv = [resolved, *rest]
        runpy.run_module(resolved, run_name="__main__", alter_sys=True)
        return
    run_payload(resolved, rest)


def _describe_status(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"


def supervise(
    target: str, log_path: str | os.PathLike[str], argv: Sequence[str] = (), linger_s: float = 0.0
) -> int:
    """Run the payload ``target`` in a child process, tee its output to ``log_path``; return its exit status.

    A separate process (instead of redirecting our own file descriptors) keeps the log complete even
    when the payload dies hard (segfault, OOM kill), and lets us append a final status line.
    SIGTERM/SIGINT/SIGUSR1 (SLURM's time-limit and cancel signals) are forwarded to the child.
    ``linger_s``: stay alive that long after the child exits. dagster-slurm 1.22's ``LocalMessageReader``
    polls the messages file (0.5 s until it exists, then every 0.2 s) and stops reading as soon as the
    process has exited, so the last messages of a payload that finishes quickly would be dropped.
    """
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-u", "-m", "irbench_assets.compute.payload", target, *argv]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out = sys.stdout.buffer
    with log.open("wb") as logf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None

        def forward(signum: int, _frame: Any) -> None:
            if proc.poll() is None:
                proc.send_signal(signum)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, forward)
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            out.write(chunk)
            out.flush()
            logf.write(chunk)
            logf.flush()
        rc = proc.wait()
        if rc != 0:
            line = f"{LOG_PREFIX} payload {target} failed with {_describe_status(rc)}; log: {log}\n".encode()
            out.write(line)
            out.flush()
            logf.write(line)
    if linger_s > 0 and launched_by_dagster():
        time.sleep(linger_s)
    return rc if rc >= 0 else 128 - rc


def log_tail(text_or_path: str | os.PathLike[str], lines: int = 40, max_bytes: int = 65536) -> str:
    """The last ``lines`` lines of a log file (reads at most ``max_bytes`` from its end)."""
    path = Path(text_or_path)
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    return tail_lines(data.decode("utf-8", errors="replace"), lines)


def tail_lines(text: str, lines: int = 40) -> str:
    """The last ``lines`` non-empty lines of ``text`` (carriage-return progress bars keep their last state)."""
    kept = [ln.rsplit("\r", 1)[-1].rstrip() for ln in text.splitlines()]
    kept = [ln for ln in kept if ln.strip() and not _PIPES_NOISE.match(ln)]
    return "\n".join(kept[-lines:])


if __name__ == "__main__":
    main()
