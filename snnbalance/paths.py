"""Where snnbalance keeps files between runs: one rule for every cache (data, trained networks,
the native kernel, the bench's networks).

The user's cache folder as each platform names it (``platformdirs``): ``$XDG_CACHE_HOME`` or
``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows, with an
``snnbalance`` folder inside.
"""

from __future__ import annotations

from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``<user cache>/snnbalance/<parts...>`` (not created here)."""
    import platformdirs

    return platformdirs.user_cache_path("snnbalance", appauthor=False, opinion=False).joinpath(*parts)


__all__ = ["cache_dir"]
