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
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SnnBalanceError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return path


def _read_umask() -> int:
    """The process umask, read once at import.

    Setting the umask to read it back is a process-wide change that races with every thread
    creating files meanwhile (the TUI's save worker, the native engine's threads), so it is never
    done after start-up: Linux reports the umask in /proc; elsewhere it is read here, at import
    time, before snnbalance starts any thread.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, an output folder that cannot be written.

    Nothing is created: the folder (or the nearest part of its path that exists) must be a
    folder the process may write into.

    Raises:
        SnnBalanceError: the path or one of its parents is a file, or the folder is not writable.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise SnnBalanceError(f"output folder {path} {what}; choose another with --output")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise SnnBalanceError(f"output folder {path} cannot be written ({probe} is not writable); choose another with --output")
    return path


__all__ = ["UMASK", "atomic_write", "check_output_dir"]
