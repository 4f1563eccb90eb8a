"""Atomic writes: a reader sees the old file or the new one, never half of one.

The data goes to a temporary file in the destination's folder (same file system), which is then renamed over the
destination with ``os.replace`` (atomic on POSIX and Windows). If writing fails, the temporary file is removed and
the destination is untouched. Every file ladder_edu writes that another process or a later run may read
(checkpoints, model directories, traces, JSON results, rank reports) goes through here.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; on a clean exit, rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w"):
    """``with atomic_write(path) as f: f.write(...)``: an open file whose content replaces ``path`` on exit."""
    if mode not in ("w", "wb"):
        raise ValueError(f"unknown mode {mode!r}; valid choices: w, wb")
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_json(path: str, obj, indent: int = 1) -> str:
    """``json.dump(obj)`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent)
    return path
