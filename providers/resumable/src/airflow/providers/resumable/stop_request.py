# Licensed under the Apache License, Version 2.0.
"""A stop request that a signal handler can raise safely and a poll loop can wait on."""

from __future__ import annotations

import contextlib
import os
import select
import time
from typing import Any


class StopRequest:
    """
    Records that the task was asked to stop and wakes whoever is waiting.

    Airflow's task runner calls ``on_kill()`` from its SIGTERM handler, on the main thread, between
    two bytecodes of whatever the task was doing. ``threading.Event.set()`` is not safe there: if the
    main thread was inside ``Event.wait()`` holding the event's (non-reentrant) lock, the handler
    deadlocks. So :meth:`request` only sets a flag and writes one byte to a pipe (async-signal-safe),
    and :meth:`wait` blocks in ``select()`` on that pipe, which returns as soon as the byte lands.

    The pipe is opened by :meth:`arm` when the task starts executing, not at construction: operators
    are copied and serialized while a DAG is parsed, and file descriptors must not travel with them.
    A request made before :meth:`arm` is still remembered.
    """

    def __init__(self) -> None:
        self._requested = False
        self._requested_at: float | None = None
        self._read_fd: int | None = None
        self._write_fd: int | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> StopRequest:
        return StopRequest()

    def __getstate__(self) -> dict[str, Any]:
        return {"_requested": False, "_requested_at": None, "_read_fd": None, "_write_fd": None}

    def arm(self) -> None:
        """Open the wake-up pipe (idempotent)."""
        if self._read_fd is None:
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._write_fd, False)
            if self._requested:
                self._poke()

    def close(self) -> None:
        """Close the pipe; the flag stays as it is."""
        for fd in (self._read_fd, self._write_fd):
            if fd is not None:
                os.close(fd)
        self._read_fd = self._write_fd = None

    def request(self) -> None:
        """Ask the task to stop. Safe to call from a signal handler: no locks, no blocking I/O."""
        if self._requested_at is None:
            self._requested_at = time.monotonic()
        self._requested = True
        self._poke()

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self._requested

    @property
    def requested_at(self) -> float | None:
        """When the first stop was requested (``time.monotonic()``), or ``None``."""
        return self._requested_at

    def wait(self, timeout: float) -> bool:
        """
        Sleep up to ``timeout`` seconds, returning early (``True``) once a stop is requested.

        ``select`` is retried by Python after a signal handler returns (PEP 475) but then sees the
        byte the handler wrote, so a SIGTERM ends the wait within microseconds.
        """
        if self._requested:
            return True
        if self._read_fd is None:
            self.arm()
        assert self._read_fd is not None
        readable, _, _ = select.select([self._read_fd], [], [], max(0.0, timeout))
        return self._requested or bool(readable)

    def _poke(self) -> None:
        if self._write_fd is not None:
            # A full pipe already holds a wake-up; a closed one has nobody left to wake.
            with contextlib.suppress(OSError):
                os.write(self._write_fd, b"x")
