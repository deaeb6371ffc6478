"""Tokenizer configuration: which MEDS codes become prefix, event and suffix tokens of a timeline.

A config lives in ``resources/tokenizers/<name>.yaml`` (schema in docs/tokenizer.md). It only says
*what* goes into a timeline; *how* values are binned and times are encoded is the handle's business
(:class:`irbench_assets.experiments.HandleConfig`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from irbench_assets.settings import resources_dir

CODE_SEP = "//"
_TOP_KEYS = {"name", "description", "options", "admission", "prefix", "events", "suffix"}


@dataclass(frozen=True)
class FieldSpec:
    """One prefix/suffix token: ``<token>//<value>`` where value is the first code part after ``code``.

    ``age`` marks the age-at-admission field (quantized like a numeric code); ``aggregate`` collects every
    distinct value of the admission (e.g. procedures) into several tokens.
    """

    token: str
    code: str | None = None
    age: bool = False
    aggregate: bool = False


@dataclass(frozen=True)
class EventSpec:
    """One event block: the MEDS codes equal to ``code`` or starting with ``code//``; ``numeric`` keeps values."""

    code: str
    name: str
    numeric: bool = False


@dataclass(frozen=True)
class AdmissionSpec:
    """MEDS codes that define one admission: its start, end and the subject's birth."""

    start_code: str = "HOSPITAL_ADMISSION"
    end_code: str = "HOSPITAL_DISCHARGE"
    birth_code: str = "MEDS_BIRTH"


@dataclass(frozen=True)
class TokenizerConfig:
    """A resolved tokenizer config: admission definition, prefix/event/suffix blocks and options."""

    name: str
    description: str
    admission: AdmissionSpec
    prefix: tuple[FieldSpec, ...]
    events: tuple[EventSpec, ...]
    suffix: tuple[FieldSpec, ...]
    day_stay_filter: bool = True
    max_len: int = 4096

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """Prefix then suffix fields (each becomes one column of admissions.parquet named by its token)."""
        return self.prefix + self.suffix

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (written next to the prepared events and into tokenizer.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "<dict>") -> TokenizerConfig:
        """Validate and build a config from its YAML/JSON form; errors name ``where`` and the key."""
        return _parse(raw, where)


def _err(where: str, msg: str) -> ValueError:
    return ValueError(f"{where}: {msg}")


def _field(raw: Any, where: str) -> FieldSpec:
    if not isinstance(raw, dict) or "token" not in raw:
        raise _err(where, f"expected a mapping with 'token', got {raw!r}")
    unknown = set(raw) - {"token", "code", "age", "aggregate"}
    if unknown:
        raise _err(where, f"unknown keys {sorted(unknown)}")
    spec = FieldSpec(
        token=str(raw["token"]),
        code=None if raw.get("code") is None else str(raw["code"]),
        age=bool(raw.get("age", False)),
        aggregate=bool(raw.get("aggregate", False)),
    )
    if spec.age == (spec.code is not None):
        raise _err(where, f"field {spec.token!r} needs exactly one of 'code' or 'age: true'")
    if CODE_SEP in spec.token:
        raise _err(where, f"token {spec.token!r} must not contain {CODE_SEP!r}")
    return spec


def _parse(raw: dict[str, Any], where: str) -> TokenizerConfig:
    if not isinstance(raw, dict):
        raise _err(where, "a tokenizer config must be a mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise _err(where, f"unknown top-level keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    for key in ("name", "events"):
        if key not in raw:
            raise _err(where, f"missing key {key!r}")
    opts = dict(raw.get("options") or {})
    bad = set(opts) - {"day_stay_filter", "max_len"}
    if bad:
        raise _err(where, f"options: unknown keys {sorted(bad)}")
    adm_raw = dict(raw.get("admission") or {})
    bad = set(adm_raw) - {"start_code", "end_code", "birth_code"}
    if bad:
        raise _err(where, f"admission: unknown keys {sorted(bad)}")
    prefix = tuple(_field(f, f"{where}: prefix[{i}]") for i, f in enumerate(raw.get("prefix") or []))
    suffix = tuple(_field(f, f"{where}: suffix[{i}]") for i, f in enumerate(raw.get("suffix") or []))
    events: list[EventSpec] = []
    for i, ev in enumerate(raw["events"] or []):
        w = f"{where}: events[{i}]"
        if not isinstance(ev, dict) or "code" not in ev:
            raise _err(w, f"expected a mapping with 'code', got {ev!r}")
        bad = set(ev) - {"code", "name", "numeric"}
        if bad:
            raise _err(w, f"unknown keys {sorted(bad)}")
        events.append(EventSpec(code=str(ev["code"]), name=str(ev.get("name", ev["code"])),
                                numeric=bool(ev.get("numeric", False))))
    if not events:
        raise _err(where, "events: at least one event block is needed")
    tokens = [f.token for f in prefix + suffix]
    dup = sorted({t for t in tokens if tokens.count(t) > 1})
    if dup:
        raise _err(where, f"prefix/suffix tokens must be unique, repeated: {dup}")
    if sum(f.age for f in prefix + suffix) > 1:
        raise _err(where, "at most one 'age: true' field")
    if any(f.age for f in suffix):
        raise _err(where, "the age field belongs in the prefix")
    codes = [e.code for e in events]
    for i, a in enumerate(codes):
        for b in codes[:i] + codes[i + 1 :]:
            if a == b or b.startswith(a + CODE_SEP):
                raise _err(where, f"event blocks overlap: {a!r} contains {b!r}")
    max_len = int(opts.get("max_len", 4096))
    if max_len < 2:
        raise _err(where, f"options.max_len must be >= 2, got {max_len}")
    return TokenizerConfig(
        name=str(raw["name"]),
        description=str(raw.get("description", "")).strip(),
        admission=AdmissionSpec(**adm_raw),
        prefix=prefix,
        events=tuple(events),
        suffix=suffix,
        day_stay_filter=bool(opts.get("day_stay_filter", True)),
        max_len=max_len,
    )


def load_tokenizer_config(name_or_path: str | Path) -> TokenizerConfig:
    """Load ``resources/tokenizers/<name>.yaml`` (or a YAML path) and validate it."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = resources_dir() / "tokenizers" / f"{name_or_path}.yaml"
    if not p.exists():
        avail = sorted(q.stem for q in (resources_dir() / "tokenizers").glob("*.yaml"))
        raise FileNotFoundError(f"tokenizer config {p} does not exist; available: {', '.join(avail)}")
    cfg = _parse(yaml.safe_load(p.read_text()), str(p))
    if p.parent == resources_dir() / "tokenizers" and cfg.name != p.stem:
        raise _err(str(p), f"name {cfg.name!r} must equal the file stem {p.stem!r}")
    return cfg
