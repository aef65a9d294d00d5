"""Figure output shared by the model, network and reproduction plots (matplotlib, headless).

matplotlib is loaded on the first figure, not on import, so commands that draw nothing stay quick.
"""
from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path, output_folder

FORMATS = ("png", "svg", "pdf")


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_formats(formats) -> tuple[str, ...]:
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"figure formats must be among {FORMATS}, got {bad or formats!r}")
    return formats


def save_figure(fig, folder, stem: str, formats=("png",)) -> list[Path]:
    """Save ``fig`` as folder/stem.<fmt> for each format, each written atomically; closes it."""
    folder = output_folder(folder)
    paths = []
    for fmt in check_formats(formats):
        path = folder / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(path)
    pyplot().close(fig)
    return paths
