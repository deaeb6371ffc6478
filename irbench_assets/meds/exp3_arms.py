"""Exp3 vocabulary-semantics arms: the ICU-cohort MEDS dataset with four code vocabularies, row-fixed.

Arms (``meds_<arm>/`` under ``out_root``):

* ``meds``        native MIMIC codes (the baseline);
* ``mapped``      LAB / VITAL / MEDICATION / INFUSION_START / INFUSION_END codes rewritten many-to-one onto
                  CLIF-style categories from ``resources/mappings/*.csv``; unmapped codes stay native;
* ``randomized``  null control: per domain, the native train codes are assigned cyclically to a seeded
                  shuffle of the mapped arm's train codes (same vocabulary size, random semantics);
* ``freqmatched`` null control: per domain, native train codes (most frequent first) go greedily to the
                  mapped train code with the largest remaining count (same frequency profile).

Only the ``code`` column differs between arms: the rows, their order, times and values are identical,
so any difference between the models trained on them is due to the vocabulary alone. The Exp3
tokenizer reads only the LAB and VITAL blocks; the MEDICATION and INFUSION rewrites are made (and
counted) but not consumed by it.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from irbench_assets.outcomes.base import icu_cohort, split_files
from irbench_assets.storage import atomic_dir, write_json

ARMS = ("meds", "mapped", "randomized", "freqmatched")
DOMAINS = ("LAB", "VITAL", "MEDICATION", "INFUSION_START", "INFUSION_END")
TOKENIZER_DOMAINS = ("LAB", "VITAL")
NUMERIC_DOMAINS = ("LAB", "VITAL")
DECILES = tuple(round(0.1 * k, 1) for k in range(1, 10))
DECISIONS = ("MAPPED", "NO MAPPING")
TOKENIZER_NOTE = (
    "The Exp3 tokenizer reads only the LAB and VITAL event blocks; the MEDICATION and INFUSION_START/END "
    "rewrites are made and counted here but not consumed by the tokenizer."
)
SPLIT_NOTE = (
    "Splits are the MEDS subject splits (train/tuning/held_out) restricted to H_ICU. The reference "
    "additionally intersected them with a second seed-42 patient split of H_ICU (align_cohorts), which "
    "shrank its test set to about 0.2 x 0.2 of H_ICU; irbench does not."
)


def arm_dir(out_root: Path, arm: str) -> Path:
    """The MEDS root of one arm: ``<out_root>/meds_<arm>``."""
    if arm not in ARMS:
        raise ValueError(f"unknown Exp3 arm {arm!r}; arms: {', '.join(ARMS)}")
    return Path(out_root) / f"meds_{arm}"


# ------------------------------------------------------------------------------------ mappings
def normalize_drug_name(name: str) -> str:
    """Lowercase, drop parenthetical parts, collapse whitespace: 'HYDROmorphone (Dilaudid) ' -> 'hydromorphone'."""
    return re.sub(r"\s+", " ", re.sub(r"\([^)]*\)", " ", name.lower())).strip()


@dataclass(frozen=True)
class CodeMappings:
    """The four mapping tables (NO MAPPING rows dropped) and the sha256 of each source CSV."""

    labs: dict[int, str]
    vitals: dict[int, str]
    medications: dict[str, str]  # normalized drug name -> med_category
    infusions: dict[int, str]
    sources: dict[str, str]


_TABLES = {  # file -> (key column, category column, key kind)
    "labs.csv": ("itemid", "lab_category", "itemid"),
    "vitals.csv": ("itemid", "vital_category", "itemid"),
    "medications.csv": ("medication", "med_category", "drug"),
    "infusions.csv": ("itemid", "med_category", "itemid"),
}


def _read_mapping(path: Path, key_col: str, cat_col: str, kind: str) -> dict[Any, str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mapping table not found")
    df = pl.read_csv(path, infer_schema_length=0)  # every column as text; validated below
    missing = {key_col, cat_col, "decision"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; has {df.columns}")
    out: dict[Any, str] = {}
    decided: dict[Any, str] = {}
    for i, row in enumerate(df.iter_rows(named=True)):
        line = i + 2  # 1-based, after the header
        decision = (row["decision"] or "").strip()
        if decision not in DECISIONS:
            raise ValueError(f"{path}: row {line}, column decision: {decision!r} is not one of {list(DECISIONS)}")
        raw = (row[key_col] or "").strip()
        if kind == "itemid":
            if not raw.isdigit():
                raise ValueError(f"{path}: row {line}, column {key_col}: {raw!r} is not an integer itemid")
            key: Any = int(raw)
        else:
            key = normalize_drug_name(raw)
            if not key:
                raise ValueError(f"{path}: row {line}, column {key_col}: empty drug name")
        cat = (row[cat_col] or "").strip()
        if decision == "MAPPED" and (not cat or "//" in cat):
            raise ValueError(f"{path}: row {line}, column {cat_col}: {cat!r} is not a valid category")
        target = cat if decision == "MAPPED" else "NO MAPPING"
        if key in decided and decided[key] != target:
            raise ValueError(
                f"{path}: row {line}, column {key_col}: {raw!r} maps to {target!r} but an earlier row says "
                f"{decided[key]!r}"
            )
        decided[key] = target
        if decision == "MAPPED":
            out[key] = cat
    return dict(sorted(out.items()))


def load_mappings(mapping_dir: Path) -> CodeMappings:
    """Read and validate ``labs.csv``, ``vitals.csv``, ``medications.csv``, ``infusions.csv``."""
    mapping_dir = Path(mapping_dir)
    tables = {f: _read_mapping(mapping_dir / f, *spec) for f, spec in _TABLES.items()}
    sources = {f: hashlib.sha256((mapping_dir / f).read_bytes()).hexdigest() for f in _TABLES}
    return CodeMappings(
        labs=tables["labs.csv"], vitals=tables["vitals.csv"], medications=tables["medications.csv"],
        infusions=tables["infusions.csv"], sources=sources,
    )


def code_domain(code: str) -> str | None:
    """The remappable domain of a MEDS code (its first ``//`` part), or None for every other code."""
    head = code.split("//", 1)[0]
    return head if head in DOMAINS else None


def map_code(code: str, m: CodeMappings) -> str | None:
    """The CLIF-style code for a native code, or None when it is not covered (it then stays native).

    LAB//<itemid>//<unit> -> LAB//<lab_category>//<unit> (VITAL alike); MEDICATION//<drug>//<action> ->
    MEDICATION//<med_category>//<action>; INFUSION_START//<itemid> -> INFUSION_START//<med_category>.
    """
    parts = code.split("//")
    domain = parts[0]
    if domain not in DOMAINS or len(parts) < 2:
        return None
    key: Any
    if domain == "MEDICATION":
        key, table = normalize_drug_name(parts[1]), m.medications
    else:
        if not parts[1].isdigit():
            return None
        key = int(parts[1])
        table = {"LAB": m.labs, "VITAL": m.vitals}.get(domain, m.infusions)
    cat = table.get(key)
    return None if cat is None else "//".join([domain, cat, *parts[2:]])


# ---------------------------------------------------------------------------------- null controls
def randomized_mapping(
    source_counts: Mapping[str, int], target_counts: Mapping[str, int], rng: np.random.Generator
) -> dict[str, str]:
    """Sorted source codes assigned cyclically to a shuffled list of the (sorted) target codes."""
    targets = sorted(target_counts)
    if not targets:
        return {}
    shuffled = [targets[i] for i in rng.permutation(len(targets))]
    return {src: shuffled[i % len(shuffled)] for i, src in enumerate(sorted(source_counts))}


def freqmatched_mapping(source_counts: Mapping[str, int], target_counts: Mapping[str, int]) -> dict[str, str]:
    """Greedy: source codes by descending count each go to the target with the largest remaining count.

    The remaining count of the chosen target is decremented by the source's count; ties go to the
    lexicographically smaller code, so the result is deterministic.
    """
    heap = [(-int(n), t) for t, n in target_counts.items()]
    if not heap:
        return {}
    heapq.heapify(heap)
    out: dict[str, str] = {}
    for src in sorted(source_counts, key=lambda c: (-int(source_counts[c]), c)):
        neg_remaining, tgt = heapq.heappop(heap)
        out[src] = tgt
        heapq.heappush(heap, (neg_remaining + int(source_counts[src]), tgt))
    return dict(sorted(out.items()))


# -------------------------------------------------------------------------------------- builder
def _cohort_filter(cohort: pl.DataFrame) -> pl.Expr:
    """H_ICU rows: the cohort's admissions plus the subject-level rows (no hadm_id) of its subjects."""
    hadm = cohort.get_column("hadm_id").unique()
    subj = cohort.get_column("subject_id").unique()
    return pl.col("hadm_id").is_in(hadm.implode()) | (
        pl.col("hadm_id").is_null() & pl.col("subject_id").is_in(subj.implode())
    )


def _replace(mapping: Mapping[str, str]) -> pl.Expr:
    if not mapping:
        return pl.col("code")
    return pl.col("code").replace(list(mapping), list(mapping.values()))


def _coverage(counts: pl.DataFrame, mapping: Mapping[str, str], splits: list[str]) -> dict[str, Any]:
    """Per split x domain: events n_total, n_mapped (code rewritten), n_unmapped, pct_remapped."""
    out: dict[str, Any] = {}
    for split in splits:
        per: dict[str, Any] = {}
        part = counts.filter(pl.col("split") == split)
        for domain in DOMAINS:
            dom = part.filter(pl.col("domain") == domain)
            total = int(dom["n"].sum())
            mapped = int(dom.filter(pl.col("code").is_in(list(mapping)))["n"].sum()) if mapping else 0
            per[domain] = {
                "n_total": total, "n_mapped": mapped, "n_unmapped": total - mapped,
                "pct_remapped": round(100.0 * mapped / total, 4) if total else None,
            }
        out[split] = per
    return out


def _numeric_stats(train_values: pl.LazyFrame, mapping: Mapping[str, str], domain: str) -> dict[str, Any]:
    """Pooled decile boundaries per target code of ``domain`` from the train values of all its source codes."""
    m = pl.DataFrame({"code": list(mapping), "target": list(mapping.values())}, schema={"code": pl.String,
                                                                                        "target": pl.String})
    df = (
        train_values.filter(pl.col("domain") == domain)
        .join(m.lazy(), on="code", how="left")
        .with_columns(pl.coalesce("target", "code").alias("target"))
        .group_by("target")
        .agg(
            pl.len().alias("n_values"),
            *[pl.col("numeric_value").quantile(q, "linear").alias(f"q{q}") for q in DECILES],
            pl.col("numeric_value").quantile(0.25, "linear").alias("q25"),
            pl.col("numeric_value").quantile(0.75, "linear").alias("q75"),
            pl.col("code").unique().sort().alias("src_codes_pooled"),
        )
        .sort("target")
        .collect(engine="streaming")
    )
    out: dict[str, Any] = {}
    for r in df.iter_rows(named=True):
        out[r["target"]] = {
            "n_values": int(r["n_values"]),
            "boundaries": [float(r[f"q{q}"]) for q in DECILES],
            "median": float(r["q0.5"]),
            "iqr": float(r["q75"] - r["q25"]),
            "src_codes_pooled": list(r["src_codes_pooled"]),
        }
    return out


def build_exp3_arms(meds_root: Path, out_root: Path, mapping_dir: Path, seed: int = 42) -> dict[str, Any]:
    """Write the four row-fixed Exp3 arms of the H_ICU cohort under ``out_root`` and return their metadata.

    Each ``meds_<arm>/`` holds ``data/<split>/<shard>.parquet`` (input schema and shard names, rows of
    H_ICU admissions plus their subjects' subject-level rows), a copy of ``metadata/``, and for the
    non-native arms ``mappings/`` (meta.json, ``<DOMAIN>_mapping.json``, ``<DOMAIN>_numeric_stats.json``
    for LAB and VITAL). Every arm directory is written atomically.
    """
    meds_root, out_root = Path(meds_root), Path(out_root)
    files = split_files(meds_root)
    splits = list(files)
    mappings = load_mappings(mapping_dir)
    cohort = icu_cohort(meds_root)
    keep = _cohort_filter(cohort)
    domain_expr = pl.col("code").str.split("//").list.first()
    domain_expr = pl.when(domain_expr.is_in(list(DOMAINS))).then(domain_expr).alias("domain")

    # ---- pass 1: per (split, code) event counts of the cohort rows
    scans = {s: pl.scan_parquet(files[s]).filter(keep) for s in splits}
    counts = pl.concat(
        [lf.group_by("code").agg(pl.len().alias("n")).with_columns(pl.lit(s).alias("split")) for s, lf in
         scans.items()]
    ).collect(engine="streaming").with_columns(domain_expr).sort("split", "code")
    n_rows = {s: int(counts.filter(pl.col("split") == s)["n"].sum()) for s in splits}

    # ---- the mapped arm: every cohort code a mapping table covers
    mapped: dict[str, str] = {}
    for code in counts.filter(pl.col("domain").is_not_null())["code"].unique().sort().to_list():
        new = map_code(code, mappings)
        if new is not None:
            mapped[code] = new

    # ---- null controls: per domain, source = native train codes, target = mapped train code counts
    train = counts.filter((pl.col("split") == "train") & pl.col("domain").is_not_null())
    rng = np.random.default_rng(seed)
    controls: dict[str, dict[str, str]] = {"randomized": {}, "freqmatched": {}}
    control_info: dict[str, dict[str, Any]] = {}
    for domain in DOMAINS:
        dom = train.filter(pl.col("domain") == domain)
        src = dict(zip(dom["code"].to_list(), dom["n"].to_list(), strict=True))
        tgt: dict[str, int] = {}
        for code, n in src.items():
            t = mapped.get(code, code)
            tgt[t] = tgt.get(t, 0) + int(n)
        controls["randomized"].update(randomized_mapping(src, tgt, rng))
        controls["freqmatched"].update(freqmatched_mapping(src, tgt))
        control_info[domain] = {"n_source_codes": len(src), "n_target_codes": len(tgt)}
    arm_maps: dict[str, dict[str, str]] = {"meds": {}, "mapped": mapped, **controls}
    coverage = {arm: _coverage(counts, arm_maps[arm], splits) for arm in ARMS if arm != "meds"}

    # ---- numeric stats (LAB, VITAL) per target code from the train values
    train_values: pl.LazyFrame | None = None
    if "train" in scans:
        train_values = (
            scans["train"]
            .select("code", "numeric_value")
            .filter(pl.col("numeric_value").is_not_null() & pl.col("numeric_value").is_finite())
            .with_columns(domain_expr)
            .filter(pl.col("domain").is_in(list(NUMERIC_DOMAINS)))
        )

    cohort_info = {
        "definition": "hospital LOS >= 24 h and >= 1 ICU_ADMISSION for the same hadm_id (H_ICU); subject-level "
                      "rows (no hadm_id) of the cohort's subjects are kept",
        "n_admissions": {s: int((cohort["split"] == s).sum()) for s in splits},
        "n_subjects": {s: int(cohort.filter(pl.col("split") == s)["subject_id"].n_unique()) for s in splits},
        "n_rows": n_rows,
    }
    common = {
        "seed": seed,
        "domains_remapped": list(DOMAINS),
        "tokenizer_domains": list(TOKENIZER_DOMAINS),
        "tokenizer_note": TOKENIZER_NOTE,
        "split_policy": SPLIT_NOTE,
        "row_fixed": "only the code column differs between arms; rows, row order, times and values are identical",
        "cohort": cohort_info,
        "mapping_source": {
            "description": "irbench's own CSVs in resources/mappings (MIMIC itemids / drug names -> CLIF-style "
                           "categories, decision column; NO MAPPING rows dropped)",
            "files": mappings.sources,
        },
    }

    with ExitStack() as stack:
        tmp = {arm: stack.enter_context(atomic_dir(arm_dir(out_root, arm))) for arm in ARMS}
        for split in splits:
            for f in files[split]:
                table = pq.read_table(f)
                df = pl.from_arrow(table).filter(keep)  # type: ignore[union-attr]
                for arm in ARMS:
                    out = df.with_columns(_replace(arm_maps[arm]).cast(df.schema["code"]))
                    dest = tmp[arm] / "data" / split / f.name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    pq.write_table(out.to_arrow().cast(table.schema), dest, compression="zstd")
        meta_src = meds_root / "metadata"
        for arm in ARMS:
            if meta_src.is_dir():
                shutil.copytree(meta_src, tmp[arm] / "metadata")
            if arm == "meds":
                continue
            mdir = tmp[arm] / "mappings"
            for domain in DOMAINS:
                dom_map = {c: t for c, t in arm_maps[arm].items() if code_domain(c) == domain}
                write_json(dom_map, mdir / f"{domain}_mapping.json")
            for domain in NUMERIC_DOMAINS:
                stats = _numeric_stats(train_values, arm_maps[arm], domain) if train_values is not None else {}
                write_json(stats, mdir / f"{domain}_numeric_stats.json")
            meta: dict[str, Any] = {**common, "arm": arm, "coverage": coverage[arm]}
            if arm == "mapped":
                meta["schema_version"] = 2
                meta["n_distinct_codes_train"] = {
                    d: {"native": control_info[d]["n_source_codes"], "mapped": control_info[d]["n_target_codes"]}
                    for d in DOMAINS
                }
            else:
                meta["schema_version"] = 3
                meta["method"] = (
                    "randomized: per domain, sorted native train codes assigned cyclically to the mapped arm's "
                    "train codes shuffled with numpy default_rng(seed) (one generator, domains in order "
                    f"{list(DOMAINS)})" if arm == "randomized" else
                    "freqmatched: per domain, native train codes by descending count each assigned to the mapped "
                    "train code with the largest remaining count (decremented by the source count)"
                )
                meta["target_distribution"] = "per domain, the code counts of the meds_mapped train split"
                meta["numeric_matched"] = True
                meta["domains"] = control_info
                meta["unseen_codes"] = "codes absent from the train split keep their native code (UNK at tokenization)"
            write_json(meta, mdir / "meta.json")

    return {
        **common,
        "arms": {arm: str(arm_dir(out_root, arm)) for arm in ARMS},
        "coverage": coverage,
        "null_controls": control_info,
        "n_codes_remapped": {arm: len(arm_maps[arm]) for arm in ARMS},
    }


def verify_row_fixed(out_root: Path) -> list[str]:
    """Problems if the arms under ``out_root`` differ in anything but ``code`` (empty list when row-fixed)."""
    base = arm_dir(out_root, "meds")
    problems: list[str] = []
    base_files = sorted(p.relative_to(base) for p in (base / "data").glob("*/*.parquet"))
    for arm in ARMS[1:]:
        root = arm_dir(out_root, arm)
        files = sorted(p.relative_to(root) for p in (root / "data").glob("*/*.parquet"))
        if files != base_files:
            problems.append(f"{root}: shard files {[str(f) for f in files]} differ from {base}")
            continue
        for rel in base_files:
            a, b = pl.read_parquet(base / rel), pl.read_parquet(root / rel)
            if a.schema != b.schema or a.height != b.height:
                problems.append(f"{root / rel}: schema or row count differs from {base / rel}")
            elif not a.drop("code").equals(b.drop("code")):
                problems.append(f"{root / rel}: a column other than code differs from {base / rel}")
            else:
                changed = a.filter(pl.col("code") != b["code"])["code"]
                stray = [c for c in changed.unique().sort().to_list() if code_domain(c) is None]
                if stray:
                    problems.append(f"{root / rel}: codes outside {list(DOMAINS)} were rewritten: {stray[:5]}")
    return problems
