# Licensed under the Apache License, Version 2.0.
"""
The fakes' one fault queue: faults injected per operation, taken by the next request, and a record
of every request.

What it is for: every fake (the fake job service, Databricks over HTTP, Dataproc over gRPC, the AWS
proxy in front of moto) lets a test queue faults for its next requests of an operation. The queue,
the request record and the per-operation counters live here once; each fake says only how a fault
looks on its wire (an HTTP status and ``Retry-After``; a gRPC code and ``RetryInfo``).

How it works: :class:`FaultQueue` holds, per operation name, the faults still to apply; a fake calls
:meth:`FaultQueue.take` once per request, which records the request and pops the next fault.
:class:`InjectedFault` names the fault kinds (:class:`FaultKind`) shared by every wire; a wire's own
fault class adds its error status (:class:`Fault` for HTTP,
:class:`~airflow.providers.resumable.testing.dataproc.GrpcFault` for gRPC).

What it does not do: it answers nothing itself; the fake applies the fault around its work.

Known limitation: a fault queued ``times`` times is one object, so its ``release`` event ends every
``hold_after_commit`` made from it at once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from airflow.providers.resumable._compat import StrEnum

if TYPE_CHECKING:
    # typing.Self is 3.11+; typing_extensions comes with Airflow.
    from typing_extensions import Self

__all__ = ["Fault", "FaultKind", "FaultQueue", "InjectedFault", "InjectsFaults"]


class FaultKind(StrEnum):
    """What a fault does to the request it is applied to."""

    ERROR = "error"
    """Answer the wire's error status; the work is not done."""
    DELAY = "delay"
    """Sleep, then serve."""
    DROP_RESPONSE = "drop_response"
    """Do the work, then lose the answer (HTTP: close the connection; gRPC: answer an error)."""
    HOLD_AFTER_COMMIT = "hold_after_commit"
    """Do the work, then hang until ``release`` is set; the client never gets the answer."""


@dataclass
class InjectedFault:
    """
    One injected fault, consumed by the next matching request.

    :param kind: what it does (:class:`FaultKind`).
    :param retry_after: the delay the error asks the client to wait (``Retry-After``, ``RetryInfo``).
    :param seconds: latency for ``delay``.
    :param release: the event that ends a ``hold_after_commit``.
    """

    kind: FaultKind
    retry_after: float | None = None
    seconds: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def delay(cls, seconds: float) -> Self:
        """Serve the request ``seconds`` late."""
        return cls(FaultKind.DELAY, seconds=seconds)

    @classmethod
    def drop_response(cls) -> Self:
        """Do the work, then lose the answer: the classic duplicate maker."""
        return cls(FaultKind.DROP_RESPONSE)

    @classmethod
    def hold_after_commit(cls) -> Self:
        """Do the work, then hang until ``fault.release`` is set; the client never gets an answer."""
        return cls(FaultKind.HOLD_AFTER_COMMIT)

    @property
    def commits(self) -> bool:
        """Whether the work is done under this fault (everything but an error)."""
        return self.kind is not FaultKind.ERROR

    @property
    def loses_response(self) -> bool:
        """Whether the client never hears of the work (dropped or held)."""
        return self.kind in (FaultKind.DROP_RESPONSE, FaultKind.HOLD_AFTER_COMMIT)

    def before_work(self) -> None:
        """What happens before the work: the latency of a ``delay``."""
        if self.kind is FaultKind.DELAY:
            time.sleep(self.seconds)

    def after_work(self) -> None:
        """What happens after the work: a ``hold_after_commit`` waits for its release (60 s at most)."""
        if self.kind is FaultKind.HOLD_AFTER_COMMIT:
            self.release.wait(timeout=60)


@dataclass
class Fault(InjectedFault):
    """
    A fault on an HTTP wire (the fake job service, Databricks, the AWS proxy).

    :param status: the HTTP status of an ``error``.
    """

    status: int = 503

    @classmethod
    def error(cls, status: int = 503, *, retry_after: float | None = None) -> Fault:
        """Answer the request with ``status`` (and ``Retry-After`` if given)."""
        return cls(FaultKind.ERROR, retry_after=retry_after, status=status)

    def headers(self) -> dict[str, str]:
        """The headers an ``error`` answer carries: ``Retry-After`` when it has one."""
        return {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}


F = TypeVar("F", bound=InjectedFault)


class FaultQueue(Generic[F]):
    """
    Faults queued per operation, and the record of every request, thread-safe.

    :param counters: where to add ``requests:<operation>`` for every request taken (optional: the
        fake job service keeps its counters free of them).
    """

    def __init__(self, counters: Counter[str] | None = None) -> None:
        self.requests: list[tuple[str, float]] = []
        """Every request taken, faulted ones included: (operation, monotonic time)."""
        self.counts: Counter[str] = Counter()
        """Requests taken per operation."""
        self._counters = counters
        self._queues: dict[str, deque[F]] = {}
        self._lock = threading.Lock()

    def inject(self, operation: str, fault: F, *, times: int = 1) -> F:
        """Queue ``fault`` for the next ``times`` requests of ``operation``; returns it."""
        with self._lock:
            self._queues.setdefault(operation, deque()).extend([fault] * times)
        return fault

    def discard(self, operations: Iterable[str] | None = None) -> int:
        """
        Drop the faults still queued for ``operations`` (all when ``None``) and release any held ones;
        how many were dropped.
        """
        with self._lock:
            names = (
                list(self._queues) if operations is None else [op for op in operations if op in self._queues]
            )
            dropped = [fault for name in names for fault in self._queues.pop(name)]
        for fault in dropped:
            fault.release.set()
        return len(dropped)

    def release_all(self) -> None:
        """Set the release of every queued fault (a server stopping must not wait for held calls)."""
        with self._lock:
            for queue in self._queues.values():
                for fault in queue:
                    fault.release.set()

    def take(self, operation: str) -> F | None:
        """Record a request of ``operation`` and take the next fault queued for it, if any."""
        with self._lock:
            self.requests.append((operation, time.monotonic()))
            self.counts[operation] += 1
            if self._counters is not None:
                self._counters[f"requests:{operation}"] += 1
            queue = self._queues.get(operation)
            return queue.popleft() if queue else None

    def pending(self, operation: str) -> int:
        """How many faults are still queued for ``operation``."""
        with self._lock:
            return len(self._queues.get(operation, ()))


class InjectsFaults(Generic[F]):
    """The fault-injection face a fake shows to tests, over its :attr:`fault_queue`."""

    fault_queue: FaultQueue[F]

    @property
    def requests(self) -> list[tuple[str, float]]:
        """Every request that reached the fake, faulted ones included: (operation, monotonic time)."""
        return self.fault_queue.requests

    def inject(self, operation: str, fault: F, *, times: int = 1) -> F:
        """Queue ``fault`` for the next ``times`` requests of ``operation``; returns it."""
        return self.fault_queue.inject(operation, fault, times=times)

    def discard_faults(self, operations: Iterable[str] | None = None) -> int:
        """Drop the faults still queued for ``operations`` (all by default); how many were dropped."""
        return self.fault_queue.discard(operations)

    def record(self, operation: str) -> F | None:
        """Record a request of ``operation`` and take the next fault queued for it, if any."""
        return self.fault_queue.take(operation)
