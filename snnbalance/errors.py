"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class SnnBalanceError(Exception):
    """A problem with the user's input (model, data, options), not a bug in snnbalance."""


class UnsupportedError(SnnBalanceError):
    """The network contains something that cannot be converted faithfully."""


class DataError(SnnBalanceError):
    """A dataset is missing, malformed or cannot be downloaded."""
