"""The ``lpm`` command line: one sub-command per job, each a thin layer over the Python API.

Heavy libraries (torch, Dask, matplotlib, cvxpy, scipy.optimize) are imported inside the
sub-command that needs them, so ``lpm solve`` starts in about the time numpy takes to import.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..threads import SOLVER_THREADS, user_set_threads

COMMANDS = ("solve_cmd", "collapse_cmd", "train_cmd", "reproduce_cmd")
# On a small machine shared with other work, spinning thread pools steal the cores they wait for:
# OpenMP threads (torch) sleep while idle, and numpy's BLAS runs on one thread (our solves are many
# small matrix operations that a second thread does not speed up but a busy core slows down 10x);
# large dense solves split their work over the cores by row blocks instead (LPM_THREADS, 'auto'
# unless the user exported a thread count). Set before numpy or torch is loaded; a value the user
# exported wins.
THREAD_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the help already says it (or it is a flag)."""

    def _get_help_string(self, action):
        if "default" in (action.help or "") or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def configure_threads(environ=os.environ) -> None:
    if not user_set_threads(environ):
        environ.setdefault(SOLVER_THREADS, "auto")
    for key, value in THREAD_ENVIRONMENT.items():
        environ.setdefault(key, value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpm", description="The Layer-Peeled Model: solve, analyse, train, reproduce.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    configure_threads()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, TypeError, RuntimeError) as exc:
        parser.exit(2, f"lpm {args.command}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
