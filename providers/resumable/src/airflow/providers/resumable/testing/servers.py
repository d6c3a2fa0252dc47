# Licensed under the Apache License, Version 2.0.
"""
The fakes' one server base: start, stop, a context manager and the port, in background threads.

What it is for: every fake that talks over a wire (the fake job service and Databricks over HTTP,
the AWS proxy in front of moto, Dataproc over gRPC, the moto stack as a whole) starts in the test's
process on ``127.0.0.1`` and a free port, and must stop without leaking a thread or a socket.

How it works: :class:`BackgroundServer` owns the public flow (``start`` returns the server, ``with``
starts and stops it, :attr:`~BackgroundServer.url` is built from :attr:`~BackgroundServer.port`); a
subclass implements ``_start``, ``_stop`` and ``port``. :class:`ThreadedHttpServer` is that for a
``ThreadingHTTPServer`` on a daemon thread, with the handler reaching the served object as
``self.server.service``.

What it does not do: restart. A stopped server is done; make a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow.providers.resumable.testing.faults import Fault

if TYPE_CHECKING:
    # typing.Self is 3.11+; typing_extensions comes with Airflow.
    from typing_extensions import Self

__all__ = ["BackgroundServer", "FaultingHttpHandler", "ServiceHttpServer", "ThreadedHttpServer"]

LOCALHOST = "127.0.0.1"
S = TypeVar("S")
R = TypeVar("R")


class BackgroundServer:
    """A fake's server: ``start``/``stop``, a context manager, and where it listens."""

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        """The port it listens on (bound when it was made, so known before ``start``)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> Self:
        self._start()
        return self

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceHttpServer(ThreadingHTTPServer, Generic[S]):
    """A ``ThreadingHTTPServer`` on 127.0.0.1 and a free port, whose handlers reach ``service``."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], service: S) -> None:
        super().__init__((LOCALHOST, 0), handler)
        self.service = service


class ThreadedHttpServer(BackgroundServer, Generic[S]):
    """
    Serves ``service`` over HTTP with ``handler`` on a daemon thread.

    :param handler: the request handler class (it finds the service at ``self.server.service``).
    :param service: what the handler serves.
    :param name: the thread's name.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], service: S, *, name: str) -> None:
        self._server: ServiceHttpServer[S] = ServiceHttpServer(handler, service)
        self._thread = threading.Thread(
            # A short poll interval so stop() returns in milliseconds, not the default 0.5 s.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=name,
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _start(self) -> None:
        self._thread.start()

    def _stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class FaultingHttpHandler(BaseHTTPRequestHandler):
    """
    An HTTP request handler that does a request's work under one injected fault.

    The fault semantics (refuse with an error, serve late, do the work and lose or hold the answer)
    live here once; a handler says how to do the work, how to answer it, and how its API answers an
    injected error.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests print their own story
        pass

    def _serve_under(
        self,
        fault: Fault | None,
        work: Callable[[], R],
        answer: Callable[[R], None],
        refuse: Callable[[Fault], None],
    ) -> None:
        """Do ``work`` under ``fault`` and ``answer`` it (or, for a lost response, don't)."""
        if fault is not None and not fault.commits:
            refuse(fault)
            return
        if fault is not None:
            fault.before_work()
        result = work()
        if fault is not None:
            fault.after_work()
            if fault.loses_response:
                # The work is done; the client never hears of it.
                self.close_connection = True
                return
        answer(result)
