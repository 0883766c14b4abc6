"""Progress bars as a protocol: what long work reports to, whoever shows it (the CLI's bars,
a worker relaying to its parent, nothing)."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...


Bars = Callable[[str, int], ContextManager[Bar]]
"""A factory of progress bars: (description, total) -> context manager with ``.update(n)``."""


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def no_bars(desc: str, total: int) -> ContextManager[Bar]:
    """The progress-bar factory that shows nothing."""
    return contextlib.nullcontext(_NoBar())
