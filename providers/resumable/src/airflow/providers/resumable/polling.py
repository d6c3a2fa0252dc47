# Licensed under the Apache License, Version 2.0.
"""How often to ask the cloud about a running job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class PollSchedule:
    """
    Poll intervals that start at ``initial`` and grow by ``factor`` up to ``maximum`` seconds.

    A job that has run for an hour is unlikely to finish in the next ten seconds, so backing off
    saves API calls (and rate-limit budget shared with everything else in the workspace) at a
    bounded cost in completion-detection latency: at most ``maximum`` seconds.

    :param initial: the first interval, in seconds.
    :param maximum: the longest interval, in seconds (``>= initial``).
    :param factor: growth per poll (``1.0`` polls at a constant ``initial``).
    """

    initial: float
    maximum: float
    factor: float = 1.5

    def __post_init__(self) -> None:
        if self.initial <= 0:
            raise ValueError(f"poll_interval must be positive, got {self.initial}")
        if self.maximum < self.initial:
            raise ValueError(
                f"max_poll_interval ({self.maximum}) must be at least poll_interval ({self.initial})"
            )
        if self.factor < 1.0:
            raise ValueError(f"the backoff factor must be at least 1.0, got {self.factor}")

    def intervals(self) -> Iterator[float]:
        """Yield the wait before each next poll, forever."""
        interval = self.initial
        while True:
            yield interval
            interval = min(self.maximum, interval * self.factor)
