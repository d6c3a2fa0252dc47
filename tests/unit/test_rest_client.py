# Licensed under the Apache License, Version 2.0.
"""
The stacks' REST client sends a request safe to repeat again after a 5xx, as often as asked, and no
other: on sqlite under load a write can wait out the busy timeout and be answered 500 before the
route ran. A narrow unit: the HTTP server is httpx's in-memory transport, answering as told.
"""

from __future__ import annotations

import httpx
import pytest

from airflow.providers.resumable.testing.stack import RestClient

DATABASE_ERROR = {"detail": {"reason": "Database error"}}


def _client(answers: list[int]) -> tuple[RestClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        status = answers.pop(0)
        return httpx.Response(status, json=DATABASE_ERROR if status >= 400 else {"state": "failed"})

    client = RestClient("http://127.0.0.1:1", "token")
    client.close()  # its own client, replaced by one on the in-memory transport
    client.http = httpx.Client(
        base_url="http://127.0.0.1:1/api/v2", transport=httpx.MockTransport(answer), trust_env=False
    )
    return client, sent


def test_a_5xx_is_sent_again_up_to_the_retries_asked_for(monkeypatch):
    monkeypatch.setattr("airflow.providers.resumable.testing.stack.time.sleep", lambda _: None)
    client, sent = _client([500, 503, 200])

    assert client.json("PATCH", "/dags/d/dagRuns/r/taskInstances/t", json={}, retries=5) == {
        "state": "failed"
    }
    assert len(sent) == 3


def test_without_retries_or_past_them_a_5xx_raises_with_the_body(monkeypatch):
    monkeypatch.setattr("airflow.providers.resumable.testing.stack.time.sleep", lambda _: None)
    client, sent = _client([500])
    with pytest.raises(AssertionError, match=r"HTTP 500: .*Database error"):
        client.json("PATCH", "/x", json={})
    assert len(sent) == 1

    client, sent = _client([500, 500, 500])
    with pytest.raises(AssertionError, match="HTTP 500"):
        client.json("PATCH", "/x", json={}, retries=2)
    assert len(sent) == 3


def test_a_4xx_is_never_sent_again(monkeypatch):
    monkeypatch.setattr("airflow.providers.resumable.testing.stack.time.sleep", lambda _: None)
    client, sent = _client([409, 200])
    with pytest.raises(AssertionError, match="HTTP 409"):
        client.json("PATCH", "/x", json={}, retries=5)
    assert len(sent) == 1
