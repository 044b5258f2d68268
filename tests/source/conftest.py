"""A scripted HTTP server on 127.0.0.1: each path answers from its own queue of replies."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from bizon_core.testing import RecordedRequest


@dataclass
class Reply:
    """One scripted answer, sent after `delay` seconds; `drop` resets the connection instead
    of answering, `truncate` announces a longer body than it sends, then closes."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    truncate: bool = False

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body)


class ScriptedServer:
    """`ThreadingHTTPServer` in a thread. `add(path, ...)` queues an answer of a path, e.g.
    `scripted.add("/x", 429, headers={"Retry-After": "1"}).add("/x", 200, {"ok": True})`;
    a path without a queued answer answers 418."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def add(
        self,
        path: str,
        status: int = 200,
        body: Any = b"",
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        drop: bool = False,
        truncate: bool = False,
    ) -> ScriptedServer:
        """Queue one answer of `path`; see `Reply`. A `body` not bytes nor str is JSON."""
        reply = Reply(status, body, headers or {}, delay, drop, truncate)
        with self._lock:
            self._replies[path].append(reply)
        return self

    def received(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._replies[request.path]
            return queue.popleft() if queue else Reply(418, b"unscripted")

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(
                method=self.command,
                path=url.path,
                query=dict(parse_qsl(url.query)),
                headers=dict(self.headers.items()),
                body=self.rfile.read(length),
            )
            reply = server.next_reply(request)
            time.sleep(reply.delay)
            if reply.drop:
                # SO_LINGER 0: closing sends a TCP reset, as a crashed server or proxy would.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            body = reply.payload()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body) + (10 if reply.truncate else 0)))
            self.end_headers()
            self.wfile.write(body)
            if reply.truncate:
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server
