"""Stage 0 tokenization: MEDS → prepared events (one scan per experiment) → timelines per handle.

Public API (no Dagster here; the assets in ``defs.py`` call these):

- :func:`load_tokenizer_config` — ``resources/tokenizers/<name>.yaml`` → :class:`TokenizerConfig`
- :func:`prepare_events` — the one MEDS scan: per split ``events.parquet`` + ``admissions.parquet``
- :func:`tokenize_handle` / :func:`tokenize_handles` — fitted on train, the layout of docs/tokenized_format.md
"""

from irbench_assets.tokenize.config import TokenizerConfig, load_tokenizer_config
from irbench_assets.tokenize.events import prepare_events
from irbench_assets.tokenize.timelines import tokenize_handle, tokenize_handles

__all__ = ["TokenizerConfig", "load_tokenizer_config", "prepare_events", "tokenize_handle", "tokenize_handles"]
