"""irbench: the input-representation benchmark for generative EHR transformers as a Dagster asset graph."""

__version__ = "0.1.0"
