"""Run the benchmark suites and print their markdown tables: python benchmarks/run.py [suite ...]."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
SUITES = ["solvers", "collapse", "training", "everyday"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suites", nargs="*", default=SUITES, help=f"which to run (default all: {SUITES})")
    modules = {}
    for name in SUITES:
        try:
            modules[name] = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        modules[name].add_args(parser.add_argument_group(name))
    args = parser.parse_args()
    for name in args.suites:
        if name not in modules:
            parser.error(f"unknown suite {name!r}; choose from {sorted(modules)}")
        print(f"\n## {name}\n\n{modules[name].run(args)}\n", flush=True)


if __name__ == "__main__":
    main()
