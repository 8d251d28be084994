"""``snnbalance tui``: a terminal UI over the same library calls as ``snnbalance convert``.

Importing this package imports Textual; the CLI imports it only when the ``tui`` command runs.
"""

from __future__ import annotations

from .app import SnnBalanceApp, make_app

__all__ = ["SnnBalanceApp", "make_app"]
