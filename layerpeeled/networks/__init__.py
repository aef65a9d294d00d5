"""Real networks on real imbalanced data: datasets, models, training, measurements (SPEC §3-5)."""
