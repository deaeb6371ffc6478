"""Time encodings as rotary positions.

- ``none`` and ``tt``: the rotary position of a token is its index in the visible piece (0, 1, 2, ...);
  ``tt`` differs only in its data (time-spacing tokens between events), ``none`` has neither.
- ``rope`` (admission-relative RoPE): the rotary position is the token's *time*, not its index:
  ``position = hours since the piece's first visible token x positions_per_hour`` (default 60, i.e. one
  rotary unit per minute). Tokens stamped at the same time share a position; their order is still given
  by the causal mask.

How transformers consumes it (checked in transformers 5.24, ``LlamaRotaryEmbedding.forward``): the angle
is ``position_ids[..., None].float() * inv_freq``, so any float tensor works as ``position_ids`` — no index
lookup, no integer cast. Because RoPE depends only on position *differences*, shifting every position of a
sequence by a constant leaves attention unchanged; subtracting the first visible time therefore changes
nothing but keeps the float32 angles small and precise. (The wrapper never lets transformers infer packing
from ``position_ids``; see ``wrapper.attention_inputs``.)
"""

from __future__ import annotations

import numpy as np


def index_positions(n: int) -> np.ndarray:
    """Token-index positions 0..n-1 (temporal none / tt)."""
    return np.arange(n, dtype=np.float32)


def time_positions(minutes: np.ndarray, positions_per_hour: float) -> np.ndarray:
    """Admission-relative time positions of one visible piece: (t - t_first) in hours x positions_per_hour."""
    m = np.asarray(minutes, dtype=np.float64)
    if m.size == 0:
        return m.astype(np.float32)
    return ((m - m[0]) * (positions_per_hour / 60.0)).astype(np.float32)
