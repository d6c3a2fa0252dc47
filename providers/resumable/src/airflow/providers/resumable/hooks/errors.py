# Licensed under the Apache License, Version 2.0.
"""
Transient-error classification shared by every cloud's hook: pure functions, no I/O.

A cloud's hook adds its client's own errors (botocore codes, gRPC statuses, the Databricks hook's
wrapped errors) on top of these, and the base operator's defaults are these.
"""

from __future__ import annotations

import socket


def http_status(error: BaseException) -> int | None:
    """The HTTP status an error carries (``error.status_code`` or ``error.response.status_code``)."""
    # Only a status set on the instance counts: AirflowException has a *class* attribute
    # status_code = 500 (for the REST API), which would make every AirflowException look like a 5xx.
    for candidate in (
        vars(error).get("status_code"),
        getattr(getattr(error, "response", None), "status_code", None),
    ):
        if isinstance(candidate, int):
            return candidate
    return None


def is_transient_http(error: BaseException) -> bool:
    """Socket-level failures, and anything carrying an HTTP status of 429 or 5xx."""
    if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
        return True
    status = http_status(error)
    return status is not None and (status == 429 or 500 <= status < 600)


def http_retry_after(error: BaseException) -> float | None:
    """
    Seconds the server asked to wait before retrying ``error``: the ``Retry-After`` of its response
    (``requests``: ``error.response.headers``) or of the error itself (``aiohttp``'s
    ``ClientResponseError.headers``, what the Databricks hook's async calls raise).
    """
    headers = getattr(getattr(error, "response", None), "headers", None)
    if headers is None:
        headers = getattr(error, "headers", None)
    get = getattr(headers, "get", None)
    value = get("Retry-After") if callable(get) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
