"""One way to write files: into a temporary file in the destination's directory, then rename.

A reader never sees a half-written file, and an interrupted write (error, Ctrl-C) leaves the
previous file untouched and no temporary behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{p.name}.", suffix=".part", dir=p.parent if str(p.parent) else "."
    )
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
