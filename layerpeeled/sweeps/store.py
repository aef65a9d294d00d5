"""A folder of records keyed by their configuration, each written atomically.

One JSON file per finished configuration (``records/<key>.json``) means a sweep killed at any
moment leaves only complete records behind, several workers never write the same file, and a
re-run skips every configuration already present. ``table.csv`` is the tidy view for pandas.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..atomic import atomic_write_text, output_folder
from ..jsonio import dumps, jsonable, loads


def config_key(config: dict) -> str:
    """A stable identifier of a configuration (order of keys and int/float spelling do not matter)."""
    canon = json.dumps(jsonable({k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                                 for k, v in config.items()}), sort_keys=True)
    return hashlib.sha1(canon.encode()).hexdigest()[:16]


class ResultStore:
    """Records of a sweep in ``folder``; ``put`` is atomic, ``has`` tells what is already done."""

    def __init__(self, folder):
        self.folder = output_folder(folder)
        self.records_dir = output_folder(self.folder / "records")

    def path(self, config: dict) -> Path:
        return self.records_dir / f"{config_key(config)}.json"

    def has(self, config: dict) -> bool:
        return self.path(config).is_file()

    def put(self, config: dict, record: dict) -> None:
        atomic_write_text(self.path(config), dumps({"config": config, **record}))

    def get(self, config: dict) -> dict | None:
        """The record of ``config``, or None when it has not been computed."""
        path = self.path(config)
        return self._read(path) if path.is_file() else None

    @staticmethod
    def _read(path: Path) -> dict:
        """A record as put() wrote it: a JSON object with a ``config`` object (else a clear error)."""
        try:
            record = loads(path.read_text())
        except ValueError as exc:  # cannot come from put(); say where it is
            raise ValueError(f"corrupt record {path}: {exc}; delete it to recompute") from None
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise ValueError(f"record {path} is valid JSON but not a sweep record (an object with a 'config' "
                             "object); delete it to recompute")
        return record

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
