"""Minority Collapse: exact onsets, mitigation, sweeps and figures (SPEC §2.6-2.7)."""
from .mitigation import effective_counts, min_oversampling
from .onset import Onset, collapse_margin, find_onset, onset_vs_energy, vanish_margin

__all__ = ["Onset", "find_onset", "collapse_margin", "vanish_margin", "onset_vs_energy",
           "effective_counts", "min_oversampling"]
