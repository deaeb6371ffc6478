"""Stage 3: linear probes on frozen hidden states (logistic regression for binaries, ridge for regressions)."""
