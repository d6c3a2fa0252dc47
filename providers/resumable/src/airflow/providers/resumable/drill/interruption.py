# Licensed under the Apache License, Version 2.0.
"""
A SIGTERM or Ctrl-C to a running drill, taken in two steps.

What it is for: a drill of many disruptions runs for an hour or more, and whoever stops it (a CI
runner's SIGTERM, a person's Ctrl-C) still wants what it found so far. The first signal asks the drill
to start no new disruption and to let those in flight finish; a second one asks it to abandon those
too. Either way the drill reports what finished and stops its stack.

How it works: :meth:`Interruption.handle` is the SIGTERM and SIGINT handler while
:meth:`Interruption.installed`. While the drill is still starting (nothing has run, so nothing is
lost), it raises ``KeyboardInterrupt`` so the start unwinds at once; once the disruptions run
(:meth:`Interruption.count_only`), it only counts the signal, and the runner's lanes and main thread
read the count. Counting is all the handler does then, because it runs on the main thread between two
bytecodes: ``threading.Event.set()`` there could wait for a lock the main thread itself holds (the
same reason as :class:`~airflow.providers.resumable.stop_request.StopRequest`).

What it does not do: stop a disruption in flight. A thread cannot be stopped from outside; the runner
abandons it instead (its result, should it come, is dropped).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""What stops a drill: a CI runner's or an orchestrator's SIGTERM, a terminal's Ctrl-C."""
_POLL_SECONDS = 0.1


class Interruption:
    """The signals a running drill received, and what they ask of it."""

    def __init__(self) -> None:
        self.signals = 0
        self.first_at: float | None = None
        """When the first signal came (``time.monotonic()``), or ``None``."""
        self.last_signal: int | None = None
        self._unwinding = True

    @property
    def requested(self) -> bool:
        """Start no new disruption: at least one signal came."""
        return self.signals >= 1

    @property
    def abandon_in_flight(self) -> bool:
        """Stop waiting for the disruptions in flight too: a second signal came."""
        return self.signals >= 2

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """
        The signal handler: count the signal; while the drill starts, also unwind it.

        :param signum: the signal received.
        :param frame: the interrupted frame (unused).
        """
        self.signals += 1
        self.last_signal = signum
        if self.first_at is None:
            self.first_at = time.monotonic()
        if self._unwinding:
            # Once: the unwind stops every process the drill started, and another signal must not
            # cut that short.
            self._unwinding = False
            raise KeyboardInterrupt

    def count_only(self) -> None:
        """The disruptions run from now on: a signal is only counted, so what finished is kept."""
        self._unwinding = False

    def sleep(self, seconds: float) -> bool:
        """
        Wait ``seconds``, less if a signal comes; whether one came.

        :param seconds: how long to wait at most.
        """
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        return self.requested

    def describe(self) -> str:
        """The last signal as a person would name it (``Ctrl-C``, ``SIGTERM``)."""
        if self.last_signal is None:
            return "no signal"
        return "Ctrl-C" if self.last_signal == signal.SIGINT else signal.Signals(self.last_signal).name

    @contextmanager
    def installed(self) -> Iterator[Interruption]:
        """Handle :data:`SIGNALS` meanwhile; the previous handlers are put back after."""
        previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
        try:
            # One at a time inside the try: a signal between two installs still restores the first.
            for signum in SIGNALS:
                previous[signum] = signal.signal(signum, self.handle)
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
