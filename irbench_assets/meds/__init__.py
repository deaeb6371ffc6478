"""Stage -1 (MIMIC-IV → MEDS), subject splits, and the Exp3 vocabulary arms."""
