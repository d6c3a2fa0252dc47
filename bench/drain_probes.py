# Licensed under the Apache License, Version 2.0.
"""
What the rest of Airflow feels during a mass drain: the scheduler's loop time and the health endpoint.

What it is for: ``bench/celery_drain.py`` drains a worker under many tasks at once; a drain that
checkpoints quickly but stalls the scheduler or the API server (every task asks the server why it
was stopped, then reports) would only move the problem. These two probes say whether it does.

How it works:

- **Scheduler loop time.** Airflow times each scheduler loop (``scheduler.scheduler_loop_duration``,
  sent to StatsD when ``[metrics] statsd_on``) and logs the same figure at DEBUG ("Ran scheduling
  loop in N ms"). The bench venv has no ``statsd`` client package, so the stack raises only the
  scheduler job runner's logger to DEBUG (:data:`SCHEDULER_LOOP_LOG_ENV`, through ``[logging]
  namespace_levels``) and :func:`loop_durations` reads the lines back with their timestamps.
- **Health probes.** :class:`HealthProbe` polls the API server's ``/api/v2/monitor/health`` from a
  thread, recording each answer's latency, HTTP status, the metadatabase, scheduler and triggerer
  statuses and the age of the scheduler's last heartbeat.

What it does not do: judge. The bench writes the figures down; the page states the targets.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

SCHEDULER_LOOP_LOG_ENV = {
    # Only the scheduler job runner's logger: every loop logs one DEBUG line ("Ran scheduling loop in
    # N ms") and a "Next timed event" one; the rest of the scheduler stays at INFO.
    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.jobs.scheduler_job_runner=DEBUG",
}
_LOOP_LINE = re.compile(r"^(\S+Z) .*Ran scheduling loop in ([0-9.]+) ms")


def loop_durations(scheduler_log: Path) -> list[tuple[float, float]]:
    """(epoch seconds, milliseconds) of every scheduler loop the log records.

    :param scheduler_log: the scheduler's log file (the stack's ``component-logs/scheduler.log``).
    """
    found = []
    for line in scheduler_log.read_text(errors="replace").splitlines():
        match = _LOOP_LINE.search(line)
        if match:
            at = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
            found.append((at, float(match.group(2))))
    return found


def summarise_ms(values: list[float]) -> dict[str, float | int]:
    """Count, p50, p95 and max of ``values`` (milliseconds), rounded; ``{"loops": 0}`` when empty.

    :param values: the durations.
    """
    if not values:
        return {"loops": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "loops": len(values),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


def loops_between(loops: list[tuple[float, float]], start: float, end: float) -> dict[str, float | int]:
    """The summary of the loops that ended in ``[start, end)`` (epoch seconds).

    :param loops: what :func:`loop_durations` returned.
    :param start: the window's start.
    :param end: its end.
    """
    return summarise_ms([ms for at, ms in loops if start <= at < end])


@dataclass(frozen=True)
class HealthAnswer:
    """One poll of ``/api/v2/monitor/health``."""

    at: float
    """Epoch seconds when the request was sent."""
    seconds: float
    """How long the answer took (the timeout when there was none)."""
    http_status: int | None
    """None: no answer (timeout, refused)."""
    metadatabase: str | None
    scheduler: str | None
    triggerer: str | None
    scheduler_heartbeat_age: float | None
    """Seconds between the scheduler's last heartbeat and the request."""


class HealthProbe:
    """Polls the API server's health endpoint from a thread until stopped; answers kept in order."""

    def __init__(self, base_url: str, *, interval: float = 0.5, timeout: float = 10.0) -> None:
        """
        :param base_url: the API server's address (``http://127.0.0.1:PORT``).
        :param interval: seconds between the end of one poll and the next.
        :param timeout: seconds after which a poll counts as failed.
        """
        self.url = f"{base_url}/api/v2/monitor/health"
        self.interval = interval
        self.timeout = timeout
        self.answers: list[HealthAnswer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def start(self) -> HealthProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                self.answers.append(self._poll(client))
                self._stop.wait(self.interval)

    def _poll(self, client: httpx.Client) -> HealthAnswer:
        sent = time.time()
        began = time.monotonic()
        try:
            response = client.get(self.url)
        except httpx.HTTPError:
            return HealthAnswer(sent, time.monotonic() - began, None, None, None, None, None)
        seconds = time.monotonic() - began
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        heartbeat = (body.get("scheduler") or {}).get("latest_scheduler_heartbeat")
        age = None
        if heartbeat:
            age = sent - datetime.fromisoformat(heartbeat).astimezone(timezone.utc).timestamp()
        return HealthAnswer(
            sent,
            seconds,
            response.status_code,
            (body.get("metadatabase") or {}).get("status"),
            (body.get("scheduler") or {}).get("status"),
            (body.get("triggerer") or {}).get("status"),
            age,
        )


def summarise_health(answers: list[HealthAnswer], start: float, end: float) -> dict[str, Any]:
    """Polls sent in ``[start, end)`` (epoch seconds): how many, failures, latency, heartbeat age.

    A failure is no answer, an HTTP status other than 200, or an unhealthy metadatabase or scheduler
    (the stacks of this bench run no triggerer, so its status is reported, not counted).

    :param answers: the probe's answers.
    :param start: the window's start.
    :param end: its end.
    """
    window = [answer for answer in answers if start <= answer.at < end]
    if not window:
        return {"polls": 0}
    failed = [
        answer
        for answer in window
        if answer.http_status != 200 or answer.metadatabase != "healthy" or answer.scheduler != "healthy"
    ]
    latencies = sorted(answer.seconds for answer in window)
    ages = [answer.scheduler_heartbeat_age for answer in window if answer.scheduler_heartbeat_age is not None]
    return {
        "polls": len(window),
        "failed": len(failed),
        "first_failures": [asdict(answer) for answer in failed[:5]],
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_max_s": round(latencies[-1], 3),
        "scheduler_heartbeat_age_max_s": round(max(ages), 1) if ages else None,
        "triggerer_statuses": sorted({str(answer.triggerer) for answer in window}),
    }
