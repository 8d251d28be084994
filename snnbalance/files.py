"""Output files, written atomically: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Union

from .errors import SnnBalanceError

Content = Union[bytes, str, Callable[[IO[bytes]], object]]


def atomic_write(path: str | os.PathLike[str], data: Content) -> Path:
    """Write ``data`` (bytes, text, or a function that writes into a binary file) to ``path``.

    The data goes to a temporary file in the same folder, is flushed to disk, gets the
    permissions a plain ``open()`` would give (``mkstemp`` makes files 0600), and then replaces
    ``path`` in one step. A failure leaves ``path`` as it was and no temporary file behind.

    Raises:
        SnnBalanceError: the folder or file cannot be written (one line, with the reason).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise SnnBalanceError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SnnBalanceError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask


__all__ = ["atomic_write"]
