"""Atomic file output: write beside the target, then rename, so readers never see half a file."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def output_folder(path, create: bool = True) -> Path:
    """``path`` as a folder for results: created when missing, a clear error when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a folder: choose a folder for the results")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(path):
    """Yield a hidden temporary path next to ``path`` (ending in .tmp, so no glob for the real
    files picks up a leftover; writers must be told the format); on success it replaces
    ``path`` in one rename, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
