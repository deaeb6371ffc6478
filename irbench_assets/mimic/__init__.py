"""MIMIC-IV 3.1: table schemas, validated streaming readers, and the synthetic generator."""
