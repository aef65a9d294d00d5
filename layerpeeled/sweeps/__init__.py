"""Sweeps: many configurations, one record each, stored so that a killed sweep resumes cleanly."""
from .store import ResultStore, atomic_write_text, config_key

__all__ = ["ResultStore", "atomic_write_text", "config_key"]
