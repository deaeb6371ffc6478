"""Stages 1 and 2: Llama-style decoders with the discrete / soft / xVal value representations and
none / time-token / admission-relative-RoPE time encodings; training and hidden-state extraction.

Public entry points: :func:`irbench_assets.models.train.train_model`,
:func:`irbench_assets.models.extract.extract_features`, :func:`irbench_assets.models.extract.load_model`.
No Dagster here: the compute payloads in ``irbench_assets/compute`` call these functions.
"""
