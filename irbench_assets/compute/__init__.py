"""Dagster resources: run settings, and the compute resource that runs GPU stages locally or on SLURM."""
