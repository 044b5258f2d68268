"""A local HTTP forward proxy that answers the first requests with faults, then forwards.

Point `HTTP_PROXY` at it and any client that honours the variable (requests does, for
`http://` URLs) meets the faults, whichever server it talks to::

    with FaultProxy(["429", "503"]) as proxy:
        os.environ["HTTP_PROXY"] = proxy.url
        ...  # the first request gets 429 (Retry-After: 1), the second 503, the rest pass

It forwards a request's method, path, headers and body, and relays the answer as is.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import urllib3

from bizon_core.testing.server import LocalServer, QuietHandler

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te"}
_FAULTS = {
    "429": (429, {"Retry-After": "1"}, b'{"error": "rate limited"}'),
    "503": (503, {}, b'{"error": "service unavailable"}'),
}


class _ProxyHandler(QuietHandler):
    server: FaultProxy

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = self.server._next_fault()
        if fault is not None:
            status, headers, payload = _FAULTS[fault]
            self.send_answer(status, payload, {**headers, "Content-Type": "application/json"})
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        answer = self.server._pool.request(
            self.command, self.path, body=body, headers=headers, redirect=False, retries=False
        )
        relayed = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        self.send_answer(answer.status, answer.data, relayed)


class FaultProxy(LocalServer):
    """Answers the first requests with `faults` ("429", "503"), in order; forwards the rest."""

    def __init__(self, faults: list[str], *, port: int = 0) -> None:
        handler: type[BaseHTTPRequestHandler] = _ProxyHandler
        super().__init__(handler, port)
        self._faults = list(faults)
        self._lock = threading.Lock()
        self._pool = urllib3.PoolManager()
        #: Faults answered so far.
        self.answered = 0

    def _next_fault(self) -> str | None:
        with self._lock:
            if not self._faults:
                return None
            self.answered += 1
            return self._faults.pop(0)

    def __exit__(self, *exc_info: Any) -> None:
        super().__exit__(*exc_info)
        self._pool.clear()
