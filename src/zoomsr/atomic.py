"""Atomic file writes: a temporary file in the same folder, then a rename.

Readers never see half a file, and a failed or killed write leaves the previous file (or none)
behind. The temporary name starts with a dot (``list_images`` skips it) and keeps the
extension, so encoders that look at it pick the right format.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, save: Callable[[Path], object]) -> Path:
    """Call ``save(tmp)`` to write a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    # The temporary is created inside the try: an interrupt (SIGINT, or SIGTERM made one) that
    # lands just after the create, as a signal that arrives during the system call does, must
    # still remove it.
    try:
        for _ in range(100):
            tmp = path.with_name(f".{path.stem}.tmp{secrets.token_hex(4)}{path.suffix}")
            try:  # exclusive create; 0o666 lets the umask give the usual permissions
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                tmp = None  # another writer's file: never ours to remove
        else:
            raise OSError(f"no free temporary name next to '{path}'")
        save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2) + "\n")
