"""Sweeps: many configurations, one record each, stored so that a killed sweep resumes cleanly."""
from .store import ResultStore, config_key

__all__ = ["ResultStore", "config_key"]
