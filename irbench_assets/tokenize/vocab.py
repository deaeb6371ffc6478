"""Token strings, the ETHOS-style time-spacing buckets and the per-handle vocabulary.

The vocabulary of a handle is built from train counts only (see :mod:`.fit`), in a fixed order so
that token ids are reproducible: the special tokens, the value tokens (``Q0..Q{n-1}`` or ``[NUM]``),
the time-spacing tokens (temporal=tt only), then every other token by descending train count and then
by string. Entries that never occur in train (e.g. fused bins no train value falls into) are kept with
count 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from irbench_assets.tokenize.config import CODE_SEP

PAD, TL_START, TL_END, TRUNC, UNK, TL_CONT, NAN = "PAD", "TL_START", "TL_END", "TRUNC", "UNK", "TL_CONT", "nan"
SPECIALS = (PAD, TL_START, TL_END, TRUNC, UNK, TL_CONT, NAN)
NUM = "[NUM]"
TIME_TOKENS = (
    "T_5m-15m", "T_15m-1h", "T_1h-2h", "T_2h-6h", "T_6h-12h", "T_12h-1d", "T_1d-3d",
    "T_3d-1w", "T_1w-2w", "T_2w-1mt", "T_1mt-3mt", "T_3mt-6mt", "T_6mt+",
)
_MIN, _HOUR, _DAY = 60, 3600, 86400
_MONTH = 2_629_800  # 365.25 / 12 days, in seconds (an integer)
# lower bound (inclusive, seconds) of each time token; gaps below 5 min get no token
TIME_BOUNDS_S = (
    5 * _MIN, 15 * _MIN, _HOUR, 2 * _HOUR, 6 * _HOUR, 12 * _HOUR, _DAY,
    3 * _DAY, 7 * _DAY, 14 * _DAY, _MONTH, 3 * _MONTH, 6 * _MONTH,
)
TIME_BOUNDS_US = np.asarray(TIME_BOUNDS_S, dtype=np.int64) * 1_000_000
KINDS = ("special", "value", "time", "prefix", "event", "fused", "suffix")


def q_token(k: int) -> str:
    """The shared value-bin token of bin ``k``."""
    return f"Q{k}"


def field_token(token: str, value: str) -> str:
    """A prefix/suffix token ``<TOKEN>//<value>``."""
    return f"{token}{CODE_SEP}{value}"


def time_bucket(gap_us: np.ndarray) -> np.ndarray:
    """Index into TIME_TOKENS of each gap (microseconds), -1 where the gap is below 5 minutes."""
    return (np.searchsorted(TIME_BOUNDS_US, gap_us, side="right") - 1).astype(np.int8)


@dataclass(frozen=True)
class Vocab:
    """A frozen vocabulary: token strings in id order, train counts and kinds."""

    tokens: tuple[str, ...]
    counts: np.ndarray
    kinds: tuple[str, ...]

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            if t in seen:
                raise ValueError(f"vocabulary: token {t!r} appears twice (ids {seen[t]} and {i})")
            seen[t] = i
        object.__setattr__(self, "_index", seen)

    @property
    def index(self) -> dict[str, int]:
        return self._index  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        """The id of ``token``, the UNK id if it is not in the vocabulary."""
        return self.index.get(token, self.index[UNK])

    def ids(self, tokens: list[str]) -> np.ndarray:
        """Vectorised :meth:`id` (int32)."""
        unk = self.index[UNK]
        return np.fromiter((self.index.get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))

    def frame(self) -> pl.DataFrame:
        """vocab.parquet: token_id, token, count, kind."""
        return pl.DataFrame(
            {
                "token_id": np.arange(len(self.tokens), dtype=np.int32),
                "token": list(self.tokens),
                "count": self.counts.astype(np.int64),
                "kind": list(self.kinds),
            }
        )

    @classmethod
    def build(
        cls,
        fixed: list[tuple[str, int, str]],
        ranked: list[tuple[str, int, str]],
    ) -> Vocab:
        """``fixed`` entries keep their order; ``ranked`` ones follow by (-count, token). Each is (token, count, kind)."""
        ranked = sorted(ranked, key=lambda e: (-e[1], e[0]))
        allv = list(fixed) + ranked
        return cls(
            tokens=tuple(e[0] for e in allv),
            counts=np.asarray([e[1] for e in allv], dtype=np.int64),
            kinds=tuple(e[2] for e in allv),
        )
