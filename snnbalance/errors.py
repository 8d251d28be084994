"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class SnnBalanceError(Exception):
    """A problem with the user's input (model, data, options), not a bug in snnbalance."""


class UnsupportedError(SnnBalanceError):
    """The network contains something that cannot be converted faithfully."""


class DataError(SnnBalanceError):
    """A dataset is missing, malformed or cannot be downloaded."""


def did_you_mean(value: object, choices) -> str:
    """``"; did you mean 'y'?"`` for the closest of ``choices``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def choice_error(what: str, value: object, choices) -> SnnBalanceError:
    """``unknown WHAT 'x' (choose from a, b); did you mean 'y'?`` -- one line for a bad name."""
    choices = [str(c) for c in choices]
    return SnnBalanceError(f"unknown {what} {str(value)!r} (choose from {', '.join(choices)}){did_you_mean(value, choices)}")


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, for a one-line error (the last line of a TorchScript
    interpreter error, which is the real one; long texts cut at 300 characters)."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not text:
        return type(exc).__name__
    if text[0].startswith("The following operation failed in the TorchScript interpreter"):
        return text[-1][:300]  # the real error, already "Type: message"
    line = text[0] if len(text[0]) <= 300 else text[0][:297] + "..."
    return f"{type(exc).__name__}: {line}"
