"""Did-you-mean suggestions for a name a user typed (a signal, strategy, metric, symbol,
source, config key...): the one place flushback asks :mod:`difflib` for the closest known name,
so every error message suggests the same way (similarity cutoff 0.6, one suggestion).

It sits in the bottom layer (``flushback.data``) so that every layer may import it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["closest", "did_you_mean"]


def closest(word: Any, candidates: Iterable[Any]) -> str | None:
    """The candidate closest to ``word`` (compared as strings), or None if none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: Any, candidates: Iterable[Any]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` if nothing is close:
    appended to an error message."""
    close = closest(word, candidates)
    return f" (did you mean {close!r}?)" if close is not None else ""
