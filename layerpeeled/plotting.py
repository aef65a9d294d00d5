"""Figure output shared by the model, network and reproduction plots (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from .atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FORMATS = ("png", "svg", "pdf")


def check_formats(formats) -> tuple[str, ...]:
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"figure formats must be among {FORMATS}, got {bad or formats!r}")
    return formats


def save_figure(fig, folder, stem: str, formats=("png",)) -> list[Path]:
    """Save ``fig`` as folder/stem.<fmt> for each format, each written atomically; closes it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in check_formats(formats):
        path = folder / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths
