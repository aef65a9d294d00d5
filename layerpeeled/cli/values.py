"""Parsing of value lists on the command line: ``1,10,100``, ``logspace:0:4:41``, ``linspace:1:5:9``."""
from __future__ import annotations

import numpy as np


def parse_values(text: str, name: str, kind=float) -> list:
    """A comma list, or ``logspace:a:b:n`` (10^a .. 10^b, n points) / ``linspace:a:b:n``."""
    text = str(text).strip()
    try:
        if text.startswith(("logspace:", "linspace:")):
            head, a, b, n = text.split(":")
            fn = np.logspace if head == "logspace" else np.linspace
            values = fn(float(a), float(b), int(n)).tolist()
        else:
            values = [kind(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--{name}: cannot read {text!r}; give a comma list such as 1,10,100 or "
                         f"logspace:0:4:41 / linspace:1:5:9") from None
    if not values:
        raise ValueError(f"--{name}: no values in {text!r}")
    return values
