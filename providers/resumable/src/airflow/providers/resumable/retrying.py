# Licensed under the Apache License, Version 2.0.
"""
Retrying transient cloud errors (429, 5xx, connection errors, timeouts) with tenacity.

Every retry in this provider is built here from tenacity's composable strategies: bounded by both
attempts and elapsed time, exponential with jitter, and honouring a server's ``Retry-After`` hint.
A retried *submit* is safe because it re-sends the same idempotency key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

T = TypeVar("T")


class WarningLogger(Protocol):
    """Any logger with ``warning`` (stdlib ``logging`` and Airflow's structlog loggers alike)."""

    def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...


ErrorPredicate = Callable[[BaseException], bool]
RetryAfterHint = Callable[[BaseException], float | None]


class wait_retry_after(wait_base):
    """Wait what the server asked for (``Retry-After``), capped; otherwise fall back to ``fallback``."""

    def __init__(self, hint: RetryAfterHint, fallback: wait_base, cap: float) -> None:
        self.hint = hint
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        hinted = self.hint(error) if error is not None else None
        if hinted is not None and hinted >= 0:
            return min(float(hinted), self.cap)
        return self.fallback(retry_state)


class stop_when(stop_base):
    """Stop retrying as soon as ``condition()`` is true (e.g. the task was asked to stop)."""

    def __init__(self, condition: Callable[[], bool]) -> None:
        self.condition = condition

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.condition()


@dataclass(frozen=True)
class BackoffPolicy:
    """
    How hard to retry a transient error.

    :param max_attempts: total calls, the first included.
    :param max_delay: seconds after the first call beyond which no new attempt starts.
    :param initial_wait: the first backoff, in seconds; it doubles each time, with jitter.
    :param max_wait: the longest single backoff (and the cap on a ``Retry-After`` hint).
    """

    max_attempts: int = 8
    max_delay: float = 300.0
    initial_wait: float = 1.0
    max_wait: float = 30.0

    def call(
        self,
        fn: Callable[[], T],
        *,
        is_transient: ErrorPredicate,
        retry_after: RetryAfterHint,
        give_up: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], object] = time.sleep,
        logger: WarningLogger | None = None,
        what: str = "cloud call",
    ) -> T:
        """
        Call ``fn`` until it returns, retrying only errors ``is_transient`` accepts.

        :param fn: the call to make.
        :param is_transient: whether an error is worth another try.
        :param retry_after: the server's requested wait for an error, if it gave one.
        :param give_up: checked before each retry; true stops retrying and re-raises the last error.
        :param sleep: how to wait between attempts (an interruptible wait during polling).
        :param logger: where to log each retry.
        :param what: what is being retried, for the log line.
        """
        retrying = tenacity.Retrying(
            **self._strategy(is_transient, retry_after, give_up, logger, what), sleep=_discard_result(sleep)
        )
        return retrying(fn)

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        is_transient: ErrorPredicate,
        retry_after: RetryAfterHint,
        logger: WarningLogger | None = None,
        what: str = "cloud call",
    ) -> T:
        """
        :meth:`call`'s async twin, for a trigger polling in the triggerer's event loop.

        The same strategy (attempts, elapsed time, exponential jitter, ``Retry-After`` capped at
        :attr:`max_wait`); the wait is ``asyncio.sleep``, so the loop serves other triggers meanwhile
        and a cancelled trigger stops waiting at once.

        :param fn: makes the awaitable to await (called once per attempt).
        :param is_transient: whether an error is worth another try.
        :param retry_after: the server's requested wait for an error, if it gave one.
        :param logger: where to log each retry.
        :param what: what is being retried, for the log line.
        """
        retrying = tenacity.AsyncRetrying(
            **self._strategy(is_transient, retry_after, lambda: False, logger, what), sleep=asyncio.sleep
        )

        # A coroutine function, not ``fn`` itself: tenacity calls anything else synchronously and
        # would hand back the awaitable unawaited.
        async def attempt() -> T:
            return await fn()

        return await retrying(attempt)

    def _strategy(
        self,
        is_transient: ErrorPredicate,
        retry_after: RetryAfterHint,
        give_up: Callable[[], bool],
        logger: WarningLogger | None,
        what: str,
    ) -> dict[str, Any]:
        """tenacity's arguments for this policy (everything but how to sleep)."""

        def _log(retry_state: tenacity.RetryCallState) -> None:
            if logger is None or retry_state.outcome is None:
                return
            logger.warning(
                "Transient error on %s (attempt %d of %d), retrying in %.1fs: %s",
                what,
                retry_state.attempt_number,
                self.max_attempts,
                retry_state.upcoming_sleep,
                retry_state.outcome.exception(),
            )

        return {
            "retry": tenacity.retry_if_exception(is_transient),
            "stop": (
                tenacity.stop_after_attempt(self.max_attempts)
                | tenacity.stop_after_delay(self.max_delay)
                | stop_when(give_up)
            ),
            "wait": wait_retry_after(
                retry_after,
                fallback=tenacity.wait_exponential_jitter(initial=self.initial_wait, max=self.max_wait),
                cap=self.max_wait,
            ),
            "before_sleep": _log,
            "reraise": True,
        }


def _discard_result(sleep: Callable[[float], object]) -> Callable[[float], None]:
    # tenacity wants a sleep returning None; an interruptible wait returns whether it was woken.
    def _sleep(seconds: float) -> None:
        sleep(seconds)

    return _sleep
