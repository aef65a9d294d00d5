"""A folder of records keyed by their configuration, each written atomically.

One JSON file per finished configuration (``records/<key>.json``) means a sweep killed at any
moment leaves only complete records behind, several workers never write the same file, and a
re-run skips every configuration already present. ``table.csv`` is the tidy view for pandas.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from ..atomic import atomic_write_text


def _clean(value):
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def config_key(config: dict) -> str:
    """A stable identifier of a configuration (order of keys and int/float spelling do not matter)."""
    canon = json.dumps(_clean({k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                               for k, v in config.items()}), sort_keys=True)
    return hashlib.sha1(canon.encode()).hexdigest()[:16]


class ResultStore:
    """Records of a sweep in ``folder``; ``put`` is atomic, ``has`` tells what is already done."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.records_dir = self.folder / "records"
        self.records_dir.mkdir(parents=True, exist_ok=True)

    def path(self, config: dict) -> Path:
        return self.records_dir / f"{config_key(config)}.json"

    def has(self, config: dict) -> bool:
        return self.path(config).is_file()

    def put(self, config: dict, record: dict) -> None:
        atomic_write_text(self.path(config), json.dumps(_clean({"config": config, **record})))

    def get(self, config: dict) -> dict | None:
        """The record of ``config``, or None when it has not been computed."""
        path = self.path(config)
        return self._read(path) if path.is_file() else None

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:  # cannot come from put(); say where it is
            raise ValueError(f"corrupt record {path}: {exc}; delete it to recompute") from None

    def records(self) -> list[dict]:
        return [self._read(p) for p in sorted(self.records_dir.glob("*.json"))]

    def table(self):
        """One row per record: configuration columns first, then results (pandas DataFrame)."""
        import pandas as pd

        rows = [{**r["config"], **{k: v for k, v in r.items() if k != "config" and not isinstance(v, (dict, list))}}
                for r in self.records()]
        return pd.DataFrame(rows)

    def export(self, name: str = "table.csv"):
        """Write the tidy table atomically next to the records; returns its path."""
        path = self.folder / name
        atomic_write_text(path, self.table().to_csv(index=False))
        return path
