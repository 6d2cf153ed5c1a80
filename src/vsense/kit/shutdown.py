"""The first sign of a stop: the server's own signal handlers, chained.

The server (uvicorn) answers SIGTERM and SIGINT by refusing new connections and waiting
for the open requests to end, and only then tells the application (the lifespan's
shutdown). Work that waits by design, the long polls above all, must learn of the stop
when it is asked for, so that it can answer at once instead of holding the stop.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` in the running event loop when the process is asked to stop, then
    the handler that was in place (the server's). Only where a server has put a handler
    of its own in the main thread; returns what undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Callable[[int, FrameType | None], object]] = {}

    def chained(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        previous[signum](signum, frame)

    for stop_signal in STOP_SIGNALS:
        handler = signal.getsignal(stop_signal)
        if callable(handler) and handler is not signal.default_int_handler:
            previous[stop_signal] = handler
            signal.signal(stop_signal, chained)

    def undo() -> None:
        for stop_signal, handler in previous.items():
            if signal.getsignal(stop_signal) is chained:
                signal.signal(stop_signal, handler)

    return undo
