# Licensed under the Apache License, Version 2.0.
"""The normalised view of a remote job that every cloud adapter translates its own states into."""

from __future__ import annotations

from dataclasses import dataclass

from airflow.providers.resumable._compat import StrEnum


class RemoteStatus(StrEnum):
    """A remote job's state, the same words for every cloud."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NOT_FOUND = "NOT_FOUND"
    """The cloud has no such job (never created, expired out of its history, or deleted)."""

    @property
    def is_active(self) -> bool:
        """Still going: worth reconnecting to and polling."""
        return self in (RemoteStatus.PENDING, RemoteStatus.RUNNING)

    @property
    def is_terminal(self) -> bool:
        """Will never change again."""
        return not self.is_active


@dataclass(frozen=True)
class JobState:
    """
    What ``describe`` returns: the normalised status plus what the cloud said, for humans.

    :param status: the normalised status.
    :param raw_state: the cloud's own state words (e.g. ``"TERMINATED/FAILED"``), logged verbatim.
    :param message: a human explanation: the cloud's state message, failure reason, log or page URL.
    """

    status: RemoteStatus
    raw_state: str
    message: str = ""

    @classmethod
    def not_found(cls, message: str) -> JobState:
        """The cloud has no such job: ``NOT_FOUND``, with what it said in ``message``."""
        return cls(RemoteStatus.NOT_FOUND, "NOT_FOUND", message)

    def __str__(self) -> str:
        text = self.status.value
        if self.raw_state and self.raw_state != self.status.value:
            text += f" ({self.raw_state})"
        return f"{text}: {self.message}" if self.message else text
