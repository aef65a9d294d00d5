"""Strict JSON out of every answer and record: one conversion, used by the CLI, the stores and runs.

Strict means what any JSON parser accepts: no NaN or Infinity tokens. An undefined number (a
cosine of vanished classifiers, a NaN block entry) becomes null; numpy scalars and arrays become
plain numbers and lists. An infinite imbalance ratio is not undefined: configurations spell it
"inf" before they get here (see :mod:`layerpeeled.imbalance`).
"""
from __future__ import annotations

import json
import math


def jsonable(value):
    """``value`` with numpy types turned into Python ones and every non-finite float into None."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalars and arrays
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def dumps(value, **kw) -> str:
    """Strict JSON text of ``value`` (non-finite numbers as null)."""
    return json.dumps(jsonable(value), allow_nan=False, **kw)


def reject_constant(token: str):
    raise ValueError(f"not strict JSON: {token} is not a JSON value")


def loads(text: str):
    """Parse strict JSON (NaN or Infinity tokens are an error, as in any other JSON parser)."""
    return json.loads(text, parse_constant=reject_constant)
