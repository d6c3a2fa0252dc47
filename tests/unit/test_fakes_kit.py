# Licensed under the Apache License, Version 2.0.
"""The fakes' kit: the fault queue, the background-server base and the job-lifecycle clock."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections import Counter
from http import HTTPStatus

import pytest

from airflow.providers.resumable.testing.faults import Fault, FaultKind, FaultQueue
from airflow.providers.resumable.testing.lifecycle import JobClock
from airflow.providers.resumable.testing.servers import FaultingHttpHandler, ThreadedHttpServer

# -- the fault queue --------------------------------------------------------------------------------


def test_fault_queue_applies_each_fault_to_one_request_of_its_operation_in_order():
    queue: FaultQueue[Fault] = FaultQueue()
    first, second = Fault.error(429, retry_after=2), Fault.drop_response()
    queue.inject("submit", first)
    queue.inject("submit", second)
    queue.inject("get", Fault.delay(0.1), times=2)

    assert queue.take("cancel") is None
    assert queue.take("submit") is first
    assert queue.take("submit") is second
    assert queue.take("submit") is None
    assert [queue.take("get"), queue.take("get"), queue.take("get")][2] is None


def test_fault_queue_records_every_request_and_counts_per_operation_faulted_or_not():
    counters: Counter[str] = Counter()
    queue: FaultQueue[Fault] = FaultQueue(counters)
    queue.inject("submit", Fault.error(503))
    for operation in ("submit", "submit", "get"):
        queue.take(operation)

    assert [operation for operation, _ in queue.requests] == ["submit", "submit", "get"]
    assert queue.counts == Counter({"submit": 2, "get": 1})
    assert counters == Counter({"requests:submit": 2, "requests:get": 1})


def test_discarding_faults_drops_only_the_named_operations_and_releases_held_ones():
    queue: FaultQueue[Fault] = FaultQueue()
    held = queue.inject("submit", Fault.hold_after_commit())
    queue.inject("get", Fault.error(503), times=3)

    assert queue.discard(["submit", "unknown"]) == 1
    assert held.release.is_set()
    assert queue.take("submit") is None
    assert queue.pending("get") == 3
    assert queue.discard() == 3
    assert queue.take("get") is None


def test_fault_kinds_say_whether_the_work_is_done_and_whether_the_answer_is_lost():
    assert (Fault.error(500).commits, Fault.error(500).loses_response) == (False, False)
    assert (Fault.delay(1).commits, Fault.delay(1).loses_response) == (True, False)
    assert (Fault.drop_response().commits, Fault.drop_response().loses_response) == (True, True)
    assert Fault.hold_after_commit().kind is FaultKind.HOLD_AFTER_COMMIT
    assert Fault.error(429, retry_after=1.5).headers() == {"Retry-After": "1.5"}
    assert Fault.error(503).headers() == {}


# -- the server base ----------------------------------------------------------------------------------


class _Echo(FaultingHttpHandler):
    server: ThreadedHttpServer  # type: ignore[assignment]

    def do_GET(self) -> None:
        queue: FaultQueue[Fault] = self.server.service  # type: ignore[attr-defined]
        self._serve_under(queue.take("get"), lambda: b"done", self._answer, self._refuse)

    def _answer(self, body: bytes) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, fault: Fault) -> None:
        self.send_response(fault.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_threaded_http_server_serves_on_its_port_inside_with_and_frees_it_after():
    queue: FaultQueue[Fault] = FaultQueue()
    with ThreadedHttpServer(_Echo, queue, name="kit-test") as server:
        port = server.port
        assert server.url == f"http://127.0.0.1:{port}"
        assert _get(server.url) == (200, b"done")
        queue.inject("get", Fault.error(429))
        assert _get(server.url) == (429, b"")
        queue.inject("get", Fault.drop_response())
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(server.url, timeout=5)
        assert queue.counts["get"] == 3
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not any(t.name == "kit-test" for t in threading.enumerate())


# -- the job-lifecycle clock -------------------------------------------------------------------------


def _clock(run_seconds: float | None = 2.0, cancel_seconds: float | None = 0.0) -> JobClock[str]:
    return JobClock(
        phases=[("PENDING", 1.0), ("RUNNING", run_seconds)],
        final="SUCCEEDED",
        cancelling="CANCELLING",
        cancelled="CANCELLED",
        cancel_seconds=cancel_seconds,
        started_at=100.0,
    )


def test_clock_goes_through_its_phases_then_holds_its_final_state():
    clock = _clock()
    assert [clock.state(t) for t in (100.0, 100.9, 101.0, 102.9, 103.0, 500.0)] == [
        "PENDING",
        "PENDING",
        "RUNNING",
        "RUNNING",
        "SUCCEEDED",
        "SUCCEEDED",
    ]
    assert clock.at(103.5) == ("SUCCEEDED", 103.0)
    assert clock.history(103.5) == [("PENDING", 100.0), ("RUNNING", 101.0)]
    assert not clock.is_over(102.0)
    assert clock.is_over(103.0)


def test_clock_with_no_run_time_runs_until_finished():
    clock = _clock(run_seconds=None)
    assert clock.state(10_000.0) == "RUNNING"
    clock.finish("FAILED", now=200.0)
    assert clock.at(10_000.0) == ("FAILED", 200.0)
    assert clock.is_over(10_000.0)
    assert clock.cancel(10_000.0) is False, "a finished job cannot be cancelled"


def test_clock_cancel_takes_its_delay_and_only_counts_once():
    clock = _clock(cancel_seconds=0.5)
    assert clock.cancel(101.5) is True
    assert clock.state(101.9) == "CANCELLING"
    assert clock.cancel(101.9) is False, "already being cancelled"
    assert clock.at(102.5) == ("CANCELLED", 102.0)
    assert clock.cancel(103.0) is False, "already cancelled"


def test_clock_cancel_that_never_takes_effect_and_a_cancel_after_the_end():
    hanging = _clock(cancel_seconds=None)
    hanging.cancel(101.5)
    assert hanging.state(10_000.0) == "CANCELLING"
    assert not hanging.is_over(10_000.0)
    over = _clock()
    assert over.cancel(104.0) is False
    assert over.state(104.0) == "SUCCEEDED"


def test_clock_restart_runs_new_phases_from_now():
    clock = _clock()
    clock.finish("FAILED", now=102.0)
    clock.restart(200.0, phases=[("RUNNING", 1.0)], final="REPAIRED")
    assert [clock.state(t) for t in (200.5, 201.0)] == ["RUNNING", "REPAIRED"]


# -- the drill's fake-cloud adapters, on the kit ----------------------------------------------------


def test_fake_cloud_adapters_route_each_drill_fault_to_their_wire_and_refuse_unknown_ones():
    import grpc

    from airflow.providers.resumable.testing.clouds import FakeDatabricksCloud, FakeDataprocCloud
    from airflow.providers.resumable.testing.dataproc import GrpcFault

    databricks = FakeDatabricksCloud(run_seconds=1)
    databricks.inject("throttle", times=2)
    databricks.inject("cancel_refused", times=1)
    queue = databricks.service.fault_queue
    assert (queue.pending("runs/get"), queue.pending("runs/cancel")) == (2, 1)
    throttle = queue.take("runs/get")
    assert throttle is not None
    assert (throttle.status, throttle.retry_after) == (429, 1)
    held = databricks.hold_next_submit()
    assert queue.take("runs/submit").release is held  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown fault 'nope'"):
        databricks.inject("nope", times=1)

    dataproc = FakeDataprocCloud(run_seconds=1)
    dataproc.inject("drop_submit_response", times=1)
    dropped = dataproc.service.fault_queue.take("SubmitJob")
    assert isinstance(dropped, GrpcFault)
    assert (dropped.kind, dropped.code) == (FaultKind.DROP_RESPONSE, grpc.StatusCode.DEADLINE_EXCEEDED)
    dataproc.hold_next_submit()
    held_call = dataproc.service.fault_queue.take("SubmitJob")
    assert isinstance(held_call, GrpcFault)
    assert held_call.kind is FaultKind.HOLD_AFTER_COMMIT


def test_fake_cloud_adapter_counts_sum_their_counters():
    from airflow.providers.resumable.testing.clouds import FakeDatabricksCloud

    cloud = FakeDatabricksCloud(run_seconds=1)
    cloud.service.counters.update({"runs_created": 2, "cancel_requests": 1, "cancel_all_requests": 3})
    counts = cloud.counts()
    assert (counts.submissions, counts.cancellations) == (2, 4)
