"""The ``lpm`` command line: one sub-command per job, each a thin layer over the Python API."""
from __future__ import annotations

import argparse
import sys

from . import collapse_cmd, reproduce_cmd, solve_cmd, train_cmd

COMMANDS = [solve_cmd, collapse_cmd, train_cmd, reproduce_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpm", description="The Layer-Peeled Model: solve, analyse, train, reproduce.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError, RuntimeError) as exc:
        parser.exit(2, f"lpm {args.command}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
