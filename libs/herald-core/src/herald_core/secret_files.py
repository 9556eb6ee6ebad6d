"""Secrets kept in files (a mounted Kubernetes Secret, a file an operator rewrites), read when needed.

A secret read once at start would outlive its rotation; one read from disk on every request costs a read per
request. `SecretFiles` sits between: a file's text is kept until the file changes, which one `stat` tells.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: a file changed less than this long before it was read may change again within the file system's time
#: granularity (a second or two on some) without its stamp showing it: such a read is not trusted again
SETTLING_NS = 2_000_000_000

_Stamp = tuple[int, int, int, int]


class SecretFiles:
    """The text of secret files (surrounding whitespace removed, as `echo` and secret tooling leave a newline),
    each cached under the file's stamp — modification time, size, inode and device — and read again when it
    changes. The stamp follows symbolic links, so a Kubernetes Secret volume, which swaps a `..data` link under
    names that stay the same, is seen as changed. A rewrite is used at the next read, without a restart."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[_Stamp, str]] = {}

    def read(self, path: Path) -> str:
        """The file's text; `OSError` when it cannot be read (missing, not permitted)."""
        try:
            status = os.stat(path)
        except OSError:
            self._cache.pop(path, None)
            raise
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino, status.st_dev)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        # stat before read: a change between the two leaves a newer text under an older stamp, read again next time
        text = path.read_text().strip()
        if time.time_ns() - status.st_mtime_ns >= SETTLING_NS:
            self._cache[path] = (stamp, text)
        else:
            self._cache.pop(path, None)
        return text
